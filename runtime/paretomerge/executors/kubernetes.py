"""Run tasks as Kubernetes Jobs: one Job per attempt, owned by the ParetoMergeRun.

A candidate's Job merges in an init container (runtime image) and evaluates in the main
container (eval image with vLLM); both mount the run's volume (a PVC) at
:data:`VOLUME_MOUNT`, a scratch ``emptyDir`` and a memory-backed ``/dev/shm``. Names are
deterministic (``<run>-<task>-a<attempt>``), so a restarted controller finds and adopts
the Jobs still running instead of creating them again. Jobs do not retry by themselves
(``backoffLimit: 0``): the controller's loop decides, as for every executor.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from paretomerge.executors.base import Executor, TaskOutcome
from paretomerge.spec import ParetoMergeRun
from paretomerge.tasks import RESULT_FILE, TASK_FILE, EvaluateTask, ProfileTask, read_error

VOLUME_MOUNT = "/data"
SCRATCH_MOUNT = "/scratch"
TERMINATION_LOG = "/dev/termination-log"
RUN_LABEL = "paretomerge.io/run"
TASK_LABEL = "paretomerge.io/task"
ATTEMPT_LABEL = "paretomerge.io/attempt"
COMPONENT_LABEL = "app.kubernetes.io/component"
MAX_NAME = 63
API_RETRIES = 8
T = TypeVar("T")


@dataclass(frozen=True)
class Images:
    """The two images a cluster owner sets once (Helm values), how to pull them."""

    runtime: str
    eval: str
    pull_policy: str = "IfNotPresent"
    pull_secrets: tuple[str, ...] = ()


def job_name(run_name: str, task_id: str, attempt: int) -> str:
    """``<run>-<task>-a<attempt>``, shortened with a hash when longer than a label value."""
    name = f"{run_name}-{task_id}-a{attempt}"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    suffix = f"-{task_id}-a{attempt}-{digest}"
    return run_name[: MAX_NAME - len(suffix)].rstrip("-") + suffix


def with_retries(call: Callable[[], T], what: str) -> T:
    """``call()``, retried with backoff on server errors and lost connections (an API
    server that restarts: about 90 s in all), not on client errors."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    for attempt in range(API_RETRIES):
        try:
            return call()
        except ApiException as error:
            if error.status is not None and error.status < 500 and error.status != 429:
                raise
            failure = error
        except (HTTPError, OSError) as error:
            failure = error
        time.sleep(min(30.0, 0.5 * 2**attempt))
    raise RuntimeError(f"{what}: the API server did not answer ({failure})")


def owner_reference(run_object: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": run_object["apiVersion"],
        "kind": run_object["kind"],
        "name": run_object["metadata"]["name"],
        "uid": run_object["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def restricted_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def task_job(
    task: ProfileTask | EvaluateTask,
    attempt: int,
    run: ParetoMergeRun,
    run_object: dict[str, Any],
    images: Images,
) -> dict[str, Any]:
    """The Job manifest of one attempt of ``task``."""
    execution = run.spec.execution
    name = job_name(run.name, task.id, attempt)
    component = "profile" if isinstance(task, ProfileTask) else f"{task.role}-evaluation"
    labels = {
        "app.kubernetes.io/name": "paretomerge",
        COMPONENT_LABEL: component,
        RUN_LABEL: run.name,
        TASK_LABEL: task.id,
        ATTEMPT_LABEL: str(attempt),
    }
    task_file = f"{VOLUME_MOUNT}/{task.work_dir}/{TASK_FILE}"

    def container(container_name: str, image: str, stage: str, gpu: bool) -> dict[str, Any]:
        limits: dict[str, Any] = {"memory": execution.resources.memory}
        if gpu and execution.resources.gpus:
            limits[execution.resources.gpu_resource] = str(execution.resources.gpus)
        env = [
            {"name": "PARETOMERGE_TERMINATION_LOG", "value": TERMINATION_LOG},
            {"name": "HF_HUB_OFFLINE", "value": "1"},
            {"name": "HF_HOME", "value": f"{SCRATCH_MOUNT}/hf"},
        ]
        # Secrets by reference only: the kubelet resolves them, no manifest holds a value.
        secrets = {"HF_TOKEN": execution.hub_token_secret}
        endpoint = task.evaluation.endpoint if isinstance(task, EvaluateTask) else None
        if stage != "merge" and endpoint is not None and endpoint.api_key_secret is not None:
            secrets[endpoint.api_key_secret.key] = endpoint.api_key_secret
        env += [
            {
                "name": variable,
                "valueFrom": {"secretKeyRef": {"name": reference.name, "key": reference.key}},
            }
            for variable, reference in secrets.items()
            if reference is not None
        ]
        return {
            "name": container_name,
            "image": image,
            "imagePullPolicy": images.pull_policy,
            "command": ["paretomerge", "task", task_file, "--volume", VOLUME_MOUNT],
            "args": ["--stage", stage],
            "env": env,
            "resources": {
                "requests": {"cpu": execution.resources.cpu, "memory": execution.resources.memory},
                "limits": limits,
            },
            "volumeMounts": [
                {"name": "data", "mountPath": VOLUME_MOUNT},
                {"name": "scratch", "mountPath": SCRATCH_MOUNT},
                {"name": "dshm", "mountPath": "/dev/shm"},
            ],
            "terminationMessagePath": TERMINATION_LOG,
            "terminationMessagePolicy": "FallbackToLogsOnError",
            "securityContext": {**restricted_security_context(), "readOnlyRootFilesystem": True},
        }

    if isinstance(task, ProfileTask):
        init, main = [], [container("profile", images.runtime, "all", gpu=False)]
    elif task.plan is not None:
        init = [container("merge", images.runtime, "merge", gpu=False)]
        main = [container("evaluate", images.eval, "evaluate", gpu=True)]
    else:
        init, main = [], [container("evaluate", images.eval, "evaluate", gpu=True)]
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "runAsGroup": 1000,
            "fsGroup": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "initContainers": init,
        "containers": main,
        "volumes": [
            {"name": "data", "persistentVolumeClaim": {"claimName": execution.storage.claim_name}},
            {"name": "scratch", "emptyDir": {}},
            {"name": "dshm", "emptyDir": {"medium": "Memory"}},
        ],
        "nodeSelector": dict(execution.node_selector),
        "tolerations": list(execution.tolerations),
    }
    if images.pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": secret} for secret in images.pull_secrets]
    if execution.affinity:
        pod_spec["affinity"] = execution.affinity
    if execution.priority_class_name:
        pod_spec["priorityClassName"] = execution.priority_class_name
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": run_object["metadata"]["namespace"],
            "labels": labels,
            "ownerReferences": [owner_reference(run_object)],
        },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": execution.active_deadline_seconds,
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


class KubernetesExecutor(Executor):
    """Tasks as Jobs in the run's namespace; outcomes from Job conditions and the volume.

    Args:
        run: the run.
        run_object: the ParetoMergeRun as read from the API (owner of every Job).
        volume: where the controller itself sees the run's volume.
        images: the runtime and eval images.
        batch_api, core_api: ``kubernetes.client`` APIs.
    """

    poll_seconds = 2.0

    def __init__(
        self,
        run: ParetoMergeRun,
        run_object: dict[str, Any],
        volume: Path,
        images: Images,
        batch_api: Any,
        core_api: Any,
    ):
        self.run = run
        self.run_object = run_object
        self.namespace = run_object["metadata"]["namespace"]
        self.volume = volume
        self.images = images
        self.batch = batch_api
        self.core = core_api
        self._tasks: dict[str, tuple[ProfileTask | EvaluateTask, int]] = {}

    def submit(self, task: ProfileTask | EvaluateTask, attempt: int) -> None:
        from kubernetes.client.exceptions import ApiException

        manifest = task_job(task, attempt, self.run, self.run_object, self.images)
        try:
            with_retries(
                lambda: self.batch.create_namespaced_job(self.namespace, manifest),
                f"creating job {manifest['metadata']['name']}",
            )
        except ApiException as error:
            # Already there: an earlier controller created it, or a retried create landed.
            if error.status != 409:
                raise
        self._tasks[task.id] = (task, attempt)

    def adopt(self, task: ProfileTask | EvaluateTask, attempt: int) -> bool:
        if self._read_job(job_name(self.run.name, task.id, attempt)) is None:
            return False
        self._tasks[task.id] = (task, attempt)
        return True

    def poll(self) -> list[TaskOutcome]:
        outcomes = [o for o in map(self._outcome, list(self._tasks.values())) if o]
        for outcome in outcomes:
            del self._tasks[outcome.task_id]
        return outcomes

    def _outcome(self, entry: tuple[ProfileTask | EvaluateTask, int]) -> TaskOutcome | None:
        task, attempt = entry
        name = job_name(self.run.name, task.id, attempt)
        job = self._read_job(name)
        if job is None:
            return TaskOutcome(task.id, attempt, False, f"job {name} disappeared")
        conditions = {c.type: c for c in (job.status.conditions or []) if c.status == "True"}
        if "Complete" in conditions:
            if (self.volume / task.work_dir / RESULT_FILE).exists():
                return TaskOutcome(task.id, attempt, True)
            return TaskOutcome(task.id, attempt, False, f"job {name} completed without a result")
        if "Failed" in conditions:
            condition = conditions["Failed"]
            reason = read_error(task, self.volume) or self._termination_message(name)
            detail = f"{condition.reason}: {condition.message}" if condition.reason else ""
            return TaskOutcome(
                task.id, attempt, False, "; ".join(filter(None, [reason, detail])) or "failed"
            )
        return None

    def _read_job(self, name: str):
        from kubernetes.client.exceptions import ApiException

        try:
            return with_retries(
                lambda: self.batch.read_namespaced_job(name, self.namespace), f"reading job {name}"
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def _termination_message(self, name: str) -> str | None:
        pods = with_retries(
            lambda: self.core.list_namespaced_pod(
                self.namespace, label_selector=f"job-name={name}"
            ),
            f"listing the pods of job {name}",
        )
        for pod in pods.items:
            statuses = (pod.status.init_container_statuses or []) + (
                pod.status.container_statuses or []
            )
            for status in statuses:
                terminated = status.state.terminated if status.state else None
                if terminated is not None and terminated.exit_code:
                    return f"{status.name}: {terminated.message or terminated.reason}"
        return None

    def running(self) -> dict[str, int]:
        return {task_id: attempt for task_id, (_, attempt) in self._tasks.items()}

    def cancel(self, task_id: str) -> None:
        from kubernetes.client.exceptions import ApiException

        entry = self._tasks.pop(task_id, None)
        if entry is None:
            return
        name = job_name(self.run.name, task_id, entry[1])
        try:
            with_retries(
                lambda: self.batch.delete_namespaced_job(
                    name, self.namespace, propagation_policy="Background"
                ),
                f"deleting job {name}",
            )
        except ApiException as error:
            if error.status != 404:
                raise
