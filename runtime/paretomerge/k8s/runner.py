"""The controller pod's side of Kubernetes: read its run, write its status, run the loop.

``paretomerge controller --run NAMESPACE/NAME`` runs :func:`run_controller`: the same
:class:`~paretomerge.controller.loop.Controller` as a local run, with the Kubernetes executor,
the volume mounted at ``/data``, the budget and parallelism re-read from the resource on
every iteration (users may edit them while it runs), and the status patched after every
checkpoint. A controller that restarts resumes from the checkpoint on the volume and
adopts the candidate Jobs that are still running. Before anything is launched, the
preflight's verdict goes into the ``Preflight`` condition; with problems, nothing is.

``paretomerge controller --run NAMESPACE/NAME --check-only`` runs :func:`check_refused_run`
instead, for a run the operator refused for its spec: the preflight on what parsed, every
problem into the status, nothing launched.

What a cluster owner sets once (Helm values) reaches the controller as environment
variables from the operator (:class:`~paretomerge.k8s.settings.ClusterSettings`): the
images, their pull policy and pull secrets, and run defaults — a partial
``spec.execution`` whose fields fill those a run leaves out or empty.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from paretomerge.controller.loop import Controller
from paretomerge.controller.state import RunState
from paretomerge.controller.task_runner import Limits
from paretomerge.k8s import client
from paretomerge.k8s.constants import RETRY_ANNOTATION
from paretomerge.k8s.executor import KubernetesExecutor
from paretomerge.k8s.runs import RunResource, checked_run, effective_run
from paretomerge.k8s.settings import ClusterSettings
from paretomerge.k8s.status import condition, merge_conditions, run_status, valid_condition
from paretomerge.preflight import PreflightFailed, run_file_preflight
from paretomerge.run_layout import run_directory
from paretomerge.spec import RunFileCheck, SpecError, SpecProblem, resume_conflicts


def preflight_condition(problems: list[SpecProblem]) -> dict[str, str]:
    """Condition ``Preflight``: whether the run has what it needs, else every problem."""
    if problems:
        return condition("Preflight", False, "ProblemsFound", str(PreflightFailed(problems)))
    return condition(
        "Preflight", True, "Passed", "the models, data, engine and volume are in order"
    )


class RunFollower:
    """Keeps up with a run while it goes on: the budget and parallelism users may edit,
    the generation and conditions the status must carry."""

    def __init__(self, resource: RunResource, run_object: dict[str, Any], run_defaults: dict):
        self.resource = resource
        self.run_object = run_object
        self.run_defaults = run_defaults
        self.started = effective_run(run_object, run_defaults)
        spec = self.started.spec
        self.latest_limits = Limits.of(spec)
        self.run_dir = run_directory(self.started)
        self.unapplied: list[str] = []

    def limits(self) -> Limits:
        """The limits of the resource as it is now; an invalid edit changes nothing (the
        operator reports it), an edit of what the results mean is reported and not
        applied (:func:`~paretomerge.spec.resume_conflicts`)."""
        current = self.resource.read()
        if current is None:  # deleted: the garbage collector is about to stop this pod
            return self.latest_limits
        try:
            run = effective_run(current, self.run_defaults)
        except SpecError:
            return self.latest_limits
        self.run_object = current
        self.latest_limits = Limits.of(run.spec)
        unapplied = [str(problem) for problem in resume_conflicts(self.started, run)]
        if unapplied != self.unapplied:
            self.unapplied = unapplied
            self._set_condition(self.spec_applied())
        return self.latest_limits

    def _set_condition(self, update: dict[str, str]) -> None:
        self.resource.update_status(
            lambda status: {"conditions": merge_conditions(status.get("conditions", []), [update])}
        )

    def preflight_checked(self, problems: list[SpecProblem]) -> None:
        """Condition ``Preflight``: whether the run has what it needs, else every problem."""
        self._set_condition(preflight_condition(problems))

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

    def warn(self, reason: str, message: str) -> None:
        """What the run did instead of what was asked: an Event on the run, and the log."""
        logging.getLogger("paretomerge.controller").warning(message)
        self.resource.record_event(self.run_object, reason, message)

    def publish(self, state: RunState) -> None:
        """Patch the status for ``state``, its conditions merged into the run's current
        ones (the operator writes conditions too; see :meth:`RunResource.update_status`)."""
        generation = self.run_object["metadata"].get("generation")
        self.resource.update_status(
            lambda status: run_status(state, self.run_dir, generation, status.get("conditions", []))
        )


def run_controller(namespace: str, name: str, volume: Path) -> RunState:
    """Drive run ``namespace/name`` to its end.

    Raises:
        SpecError: the run is invalid (the operator has reported it on the run).
        LookupError: there is no such run.
    """
    resource, run_object = _read_run(namespace, name)
    settings = ClusterSettings.from_environment()
    follower = RunFollower(resource, run_object, settings.run_defaults)
    executor = KubernetesExecutor(follower.started, run_object, volume, settings.images)
    controller = Controller(
        follower.started,
        volume,
        executor,
        on_update=follower.publish,
        on_preflight=follower.preflight_checked,
        on_warning=follower.warn,
        limits=follower.limits,
    )
    return controller.run_to_end()


def check_refused_run(namespace: str, name: str, volume: Path) -> list[SpecProblem]:
    """Look at run ``namespace/name``, refused by the operator for its spec, on its volume
    too (which only a pod can read), and write every problem into its status at once: its
    fields' and those across them (``Valid``), the preflight's on the run as far as it
    parsed (``Preflight``), all of them in the message. Nothing is started: the run stays
    Failed until its spec is fixed and it is retried. Returns every problem found.

    Raises:
        LookupError: there is no such run.
    """
    resource, run_object = _read_run(namespace, name)
    checked = checked_run(run_object, ClusterSettings.from_environment().run_defaults)
    found = run_file_preflight(checked, volume, tasks_path=None)  # tasks run in their image
    generation = run_object["metadata"].get("generation")
    resource.update_status(
        lambda status: refused_run_status(status, checked, found, str(resource), generation)
    )
    return [*checked.problems, *found]


def refused_run_status(
    status: dict[str, Any],
    checked: RunFileCheck,
    preflight_problems: list[SpecProblem],
    source: str,
    generation: int | None,
) -> dict[str, Any] | None:
    """The status of run ``source``, refused for its spec, once its volume is checked:
    still Failed, every problem in the message; ``None`` (nothing to write) where it is
    not Failed any more (retried meanwhile: its new controller writes the status)."""
    if status.get("phase") != "Failed":
        return None
    problems = [*checked.problems, *preflight_problems]
    if problems:
        message = str(SpecError(problems, source))
    else:  # fixed since the operator refused it
        message = (
            f"{source}: the spec as it is now and its volume have no problem; the run starts "
            f"when it is retried ({RETRY_ANNOTATION})"
        )
    updates = [valid_condition(checked.problems, source), preflight_condition(preflight_problems)]
    return {
        "message": message,
        "observedGeneration": generation,
        "conditions": merge_conditions(status.get("conditions", []), updates),
    }


def _read_run(namespace: str, name: str) -> tuple[RunResource, dict[str, Any]]:
    """The run ``namespace/name`` and its object as the API has it now.

    Raises:
        LookupError: there is no such run.
    """
    client.load_credentials()
    resource = RunResource(namespace, name)
    run_object = resource.read()
    if run_object is None:
        raise LookupError(f"there is no ParetoMergeRun {resource}")
    return resource, run_object
