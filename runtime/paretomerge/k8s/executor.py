"""Run tasks as Kubernetes Jobs: one Job per attempt, owned by the ParetoMergeRun.

A candidate's Job merges in an init container (runtime image) and evaluates in the main
container (eval image with vLLM); both mount the run's volume (a PVC) at
:data:`VOLUME_MOUNT`, a scratch ``emptyDir`` and a memory-backed ``/dev/shm``. Names are
deterministic (``<run>-<task>-a<attempt>``), so a restarted controller finds and adopts
the Jobs still running instead of creating them again. Jobs do not retry by themselves
(``backoffLimit: 0``): the controller's loop decides, as for every executor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from paretomerge.executors.base import Executor, TaskOutcome
from paretomerge.k8s import client
from paretomerge.k8s.constants import (
    ATTEMPT_LABEL,
    SCRATCH_MOUNT,
    TASK_LABEL,
    TERMINATION_LOG,
    VOLUME_MOUNT,
)
from paretomerge.k8s.objects import (
    container_security_context,
    data_mount,
    data_volume,
    job_name,
    labels,
    metadata,
    pod_security_context,
)
from paretomerge.k8s.settings import Images
from paretomerge.spec import ParetoMergeRun
from paretomerge.tasks import (
    RESULT_FILE,
    TASK_FILE,
    TERMINATION_LOG_ENV,
    EvaluateTask,
    ProfileTask,
    read_error,
)


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
    job_labels = labels(run.name, component, **{TASK_LABEL: task.id, ATTEMPT_LABEL: str(attempt)})
    task_file = f"{VOLUME_MOUNT}/{task.work_dir}/{TASK_FILE}"

    def container(container_name: str, image: str, step: str, gpu: bool) -> dict[str, Any]:
        limits: dict[str, Any] = {"memory": execution.resources.memory}
        if gpu and execution.resources.gpus:
            limits[execution.resources.gpu_resource] = str(execution.resources.gpus)
        env = [
            {"name": TERMINATION_LOG_ENV, "value": TERMINATION_LOG},
            {"name": "HF_HUB_OFFLINE", "value": "1"},
            {"name": "HF_HOME", "value": f"{SCRATCH_MOUNT}/hf"},
        ]
        # Secrets by reference only: the kubelet resolves them, no manifest holds a value.
        secrets = {"HF_TOKEN": execution.hub_token_secret}
        endpoint = task.evaluation.endpoint if isinstance(task, EvaluateTask) else None
        if step != "merge" and endpoint is not None and endpoint.api_key_secret is not None:
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
            "args": ["--step", step],
            "env": env,
            "resources": {
                "requests": {"cpu": execution.resources.cpu, "memory": execution.resources.memory},
                "limits": limits,
            },
            "volumeMounts": [
                data_mount(),
                {"name": "scratch", "mountPath": SCRATCH_MOUNT},
                {"name": "dshm", "mountPath": "/dev/shm"},
            ],
            "terminationMessagePath": TERMINATION_LOG,
            "terminationMessagePolicy": "FallbackToLogsOnError",
            "securityContext": container_security_context(),
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
        "securityContext": pod_security_context(),
        "initContainers": init,
        "containers": main,
        "volumes": [
            data_volume(execution.storage.claim_name),
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
        "metadata": metadata(name, run_object, job_labels),
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": execution.active_deadline_seconds,
            "template": {"metadata": {"labels": job_labels}, "spec": pod_spec},
        },
    }


class KubernetesExecutor(Executor):
    """Tasks as Jobs in the run's namespace; outcomes from Job conditions and the volume.

    Args:
        run: the run.
        run_object: the ParetoMergeRun as read from the API (owner of every Job).
        volume: where the controller itself sees the run's volume.
        images: the runtime and eval images.
    """

    poll_seconds = 2.0

    def __init__(
        self, run: ParetoMergeRun, run_object: dict[str, Any], volume: Path, images: Images
    ):
        self.run = run
        self.run_object = run_object
        self.namespace = run_object["metadata"]["namespace"]
        self.volume = volume
        self.images = images
        self._tasks: dict[str, tuple[ProfileTask | EvaluateTask, int]] = {}

    def evaluation_gpus(self) -> int:
        """The GPUs each evaluate Job's model-server container requests."""
        return self.run.spec.execution.resources.gpus

    def submit(self, task: ProfileTask | EvaluateTask, attempt: int) -> None:
        client.create_if_absent(task_job(task, attempt, self.run, self.run_object, self.images))
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

    def _read_job(self, name: str) -> Any:
        """The Job ``name`` (``kubernetes.client.V1Job``); ``None`` when there is none."""
        return client.call(
            lambda: client.batch().read_namespaced_job(name, self.namespace),
            f"reading job {name}",
            absent_ok=True,
        )

    def _termination_message(self, name: str) -> str | None:
        pods = client.call(
            lambda: client.core().list_namespaced_pod(
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
        entry = self._tasks.pop(task_id, None)
        if entry is None:
            return
        _, attempt = entry
        name = job_name(self.run.name, task_id, attempt)
        client.call(
            lambda: client.batch().delete_namespaced_job(
                name, self.namespace, propagation_policy="Background"
            ),
            f"deleting job {name}",
            absent_ok=True,
        )
