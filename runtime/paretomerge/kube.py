"""The controller pod's side of Kubernetes: read its run, write its status, run the loop.

``paretomerge controller --run NAMESPACE/NAME`` runs :func:`run_controller`: the same
:class:`~paretomerge.controller.Controller` as a local run, with the Kubernetes executor,
the volume mounted at ``/data``, the budget and parallelism re-read from the resource on
every iteration (users may edit them while it runs), and the status patched after every
checkpoint. A controller that restarts resumes from the checkpoint on the volume and
adopts the candidate Jobs that are still running.

What a cluster owner sets once (Helm values) reaches the controller as environment
variables from the operator: the images, their pull policy and pull secrets, and run
defaults — a partial ``spec.execution`` whose fields fill those a run leaves out or empty.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from paretomerge.controller import Controller, Limits, RunState, run_directory
from paretomerge.executors.kubernetes import Images, KubernetesExecutor, with_retries
from paretomerge.spec import API_GROUP, ExecutionSpec, SpecError, parse_run, resume_conflicts
from paretomerge.status import condition, merge_conditions, run_status

VERSION = "v1alpha1"
PLURAL = "paretomergeruns"
RUNTIME_IMAGE_ENV = "PARETOMERGE_RUNTIME_IMAGE"
EVAL_IMAGE_ENV = "PARETOMERGE_EVAL_IMAGE"
IMAGE_PULL_POLICY_ENV = "PARETOMERGE_IMAGE_PULL_POLICY"
IMAGE_PULL_SECRETS_ENV = "PARETOMERGE_IMAGE_PULL_SECRETS"  # comma-separated Secret names
RUN_DEFAULTS_ENV = "PARETOMERGE_RUN_DEFAULTS"  # JSON: a partial spec.execution
CONFLICT_RETRIES = 20


def load_kube_config() -> None:
    """A kubeconfig when ``KUBECONFIG`` is set (tests, out of cluster), else the pod's
    own ServiceAccount."""
    from kubernetes import config

    if os.environ.get("KUBECONFIG"):
        config.load_kube_config()
    else:
        config.load_incluster_config()


def image_pull_secrets_from_environment() -> tuple[str, ...]:
    return tuple(filter(None, os.environ.get(IMAGE_PULL_SECRETS_ENV, "").split(",")))


def run_defaults_from_environment() -> dict[str, Any]:
    """The cluster's run defaults; invalid ones fail here, at startup, not in every run."""
    defaults = json.loads(os.environ.get(RUN_DEFAULTS_ENV) or "{}")
    ExecutionSpec.model_validate(defaults)
    return defaults


def with_run_defaults(manifest: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``manifest`` with ``spec.execution`` filled from ``defaults`` where the run leaves a
    field out or empty (``{}``, ``[]``, null); nested objects are filled field by field."""
    spec = manifest.get("spec") or {}
    execution = _fill(spec.get("execution") or {}, defaults)
    return {**manifest, "spec": {**spec, "execution": execution}}


def _fill(values: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    filled = dict(values)
    for key, default in defaults.items():
        value = filled.get(key)
        if isinstance(value, dict) and value and isinstance(default, dict):
            filled[key] = _fill(value, default)
        elif value is None or value == {} or value == []:
            filled[key] = default
    return filled


class RunResource:
    """One ParetoMergeRun in the API: read it, patch its status."""

    def __init__(self, namespace: str, name: str):
        from kubernetes import client

        self.namespace, self.name = namespace, name
        self.api = client.CustomObjectsApi()

    def read(self) -> dict[str, Any]:
        return with_retries(
            lambda: self.api.get_namespaced_custom_object(
                API_GROUP, VERSION, self.namespace, PLURAL, self.name
            ),
            f"reading {self.namespace}/{self.name}",
        )

    def patch_status(self, status: dict[str, Any], resource_version: str | None = None) -> None:
        """A merge patch of ``status``: fields it does not name are left alone. With
        ``resource_version`` it applies only to that version of the run (409 otherwise)."""
        body: dict[str, Any] = {"status": status}
        if resource_version is not None:
            body["metadata"] = {"resourceVersion": resource_version}
        with_retries(
            lambda: self.api.patch_namespaced_custom_object_status(
                API_GROUP, VERSION, self.namespace, PLURAL, self.name, body
            ),
            f"patching the status of {self.namespace}/{self.name}",
        )


class RunFollower:
    """Keeps up with a run while it goes on: the budget and parallelism users may edit,
    the generation and conditions the status must carry."""

    def __init__(self, resource: RunResource, run_object: dict[str, Any], defaults: dict):
        self.resource = resource
        self.run_object = run_object
        self.defaults = defaults
        self.started = parse_run(with_run_defaults(run_object, defaults))
        spec = self.started.spec
        self.latest_limits = Limits(spec.search.budget, spec.execution.parallelism)
        self.run_dir = run_directory(self.started)
        self.unapplied: list[str] = []

    def limits(self) -> Limits:
        """The limits of the resource as it is now; an invalid edit changes nothing (the
        operator reports it), an edit of what the results mean is reported and not
        applied (:func:`~paretomerge.spec.resume_conflicts`)."""
        current = self.resource.read()
        try:
            run = parse_run(with_run_defaults(current, self.defaults))
        except SpecError:
            return self.latest_limits
        self.run_object = current
        self.latest_limits = Limits(run.spec.search.budget, run.spec.execution.parallelism)
        unapplied = [str(problem) for problem in resume_conflicts(self.started, run)]
        if unapplied != self.unapplied:
            self.unapplied = unapplied
            self._publish_conditions([self.spec_applied()])
        return self.latest_limits

    def spec_applied(self) -> dict[str, str]:
        """Condition ``SpecApplied``: whether the run goes on under the spec as it is now."""
        if not self.unapplied:
            return condition("SpecApplied", True, "Applied", "the run follows its spec")
        return condition(
            "SpecApplied",
            False,
            "EditNotApplied",
            "the run goes on with the values it started with, and a restarted controller "
            f"would stop on them: {'; '.join(self.unapplied)}. Put them back, or start a new "
            "run under another name",
        )

    def _publish_conditions(self, updates: list[dict[str, str]]) -> None:
        self._update_status(
            lambda current: {"conditions": merge_conditions(current.get("conditions", []), updates)}
        )

    def publish(self, state: RunState) -> None:
        """Patch the status for ``state``, its conditions merged into the run's current
        ones (the operator writes conditions too; see :func:`update_status`)."""
        generation = self.run_object["metadata"].get("generation")
        self._update_status(
            lambda current: run_status(
                state, self.run_dir, generation, current.get("conditions", [])
            )
        )

    def _update_status(self, make: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        update_status(
            self.resource.read,
            self.resource.patch_status,
            make,
            f"{self.resource.namespace}/{self.resource.name}",
        )


class StatusConflictError(RuntimeError):
    """A run's status changed under every one of :data:`CONFLICT_RETRIES` writes."""


def update_status(
    read: Callable[[], dict[str, Any] | None],
    patch: Callable[[dict[str, Any], str], None],
    make: Callable[[dict[str, Any]], dict[str, Any] | None],
    what: str,
) -> None:
    """Write ``make(current status)`` with ``patch(status, resourceVersion)`` against the
    version of the run ``read()`` returned it from; on a conflict (409) read again and ask
    ``make`` again, so no writer's change is lost (controller and operator both write
    ``conditions``, one list). ``read()`` returning ``None`` (the run is gone) or ``make``
    returning ``None`` (nothing to write) ends it.

    Raises:
        StatusConflictError: still conflicting after :data:`CONFLICT_RETRIES` tries.
    """
    from kubernetes.client.exceptions import ApiException

    for _ in range(CONFLICT_RETRIES):
        run = read()
        if run is None:
            return
        status = make(run.get("status") or {})
        if status is None:
            return
        try:
            patch(status, run["metadata"]["resourceVersion"])
            return
        except ApiException as error:
            if error.status != 409:
                raise
    raise StatusConflictError(
        f"the status of {what} changed {CONFLICT_RETRIES} times while it was written"
    )


def run_controller(namespace: str, name: str, volume: Path) -> RunState:
    from kubernetes import client

    load_kube_config()
    resource = RunResource(namespace, name)
    run_object = resource.read()
    defaults = run_defaults_from_environment()
    run = parse_run(with_run_defaults(run_object, defaults), f"{namespace}/{name}")
    images = Images(
        runtime=os.environ.get(RUNTIME_IMAGE_ENV, "paretomerge:runtime"),
        eval=os.environ.get(EVAL_IMAGE_ENV, "paretomerge:eval"),
        pull_policy=os.environ.get(IMAGE_PULL_POLICY_ENV, "IfNotPresent"),
        pull_secrets=image_pull_secrets_from_environment(),
    )
    executor = KubernetesExecutor(
        run, run_object, volume, images, client.BatchV1Api(), client.CoreV1Api()
    )
    follower = RunFollower(resource, run_object, defaults)
    controller = Controller(
        run, volume, executor, on_update=follower.publish, limits=follower.limits
    )
    return controller.run_to_end()
