"""A run is created, resumed after an operator restart, or its spec is edited."""

from __future__ import annotations

from typing import Any

import kopf

from paretomerge.k8s import client
from paretomerge.k8s.constants import API_GROUP, FINAL_PHASES, PLURAL, VERSION
from paretomerge.k8s.runs import effective_run
from paretomerge.k8s.status import condition, merge_conditions
from paretomerge.spec import ParetoMergeRun, SpecError
from paretomerge_operator.metrics import counting_errors
from paretomerge_operator.resources import (
    controller_job,
    controller_role,
    controller_role_binding,
    controller_service_account,
)
from paretomerge_operator.status_updates import set_run_phase, update_run_status

#: kopf cuts an Event's message longer than this out of its middle.
EVENT_MESSAGE_LENGTH = 1024


def event_message(error: SpecError) -> str:
    """``error`` for an Event: whole where it fits, else the field of every problem (an
    Event longer than :data:`EVENT_MESSAGE_LENGTH` would lose the problems in its middle;
    the run's status has each one in full)."""
    message = str(error)
    if len(message) <= EVENT_MESSAGE_LENGTH:
        return message
    fields = ", ".join(dict.fromkeys(problem.field for problem in error.problems))
    summary = f"{len(error.problems)} problems, in {fields}; the run's status has each one"
    return summary[:EVENT_MESSAGE_LENGTH]


def reject(body: kopf.Body, error: SpecError) -> None:
    """Phase Failed, a Valid=False condition and an Event, all saying what to fix: every
    problem the spec has (:func:`~paretomerge.spec.check_run`)."""
    message = str(error)
    set_run_phase(
        body,
        "Failed",
        message,
        [
            condition("Valid", False, "InvalidSpec", message),
            condition("Failed", True, "InvalidSpec", message),
        ],
    )
    kopf.warn(body, reason="InvalidSpec", message=event_message(error))


def create_controller_access(run: ParetoMergeRun, manifest: dict[str, Any]) -> None:
    """The service account, role and binding the controller's pod runs under, where they
    are missing: made when the run starts, or when a run refused at its start (a bad spec,
    since fixed) is retried."""
    for make in (controller_service_account, controller_role, controller_role_binding):
        client.create_if_absent(make(run, manifest))


@kopf.on.resume(API_GROUP, VERSION, PLURAL)
@kopf.on.create(API_GROUP, VERSION, PLURAL)
@counting_errors
def start_run(body: kopf.Body, memo: kopf.Memo, logger, **_: Any) -> None:
    """Validate the run and start its controller (once: names are deterministic)."""
    if body.get("status", {}).get("phase") in FINAL_PHASES:
        return
    try:
        run = effective_run(body, memo.cluster_settings.run_defaults)
    except SpecError as error:
        reject(body, error)
        raise kopf.PermanentError(str(error)) from None
    manifest = dict(body)
    create_controller_access(run, manifest)
    created = client.create_if_absent(controller_job(run, manifest, memo.cluster_settings))
    if created:
        kopf.info(body, reason="ControllerStarted", message="the run's controller Job is created")
        logger.info("controller Job created")
    update_run_status(
        body.metadata.namespace,
        body.metadata.name,
        lambda status: (
            None
            if status.get("phase")  # the controller has started writing
            else {
                "phase": "Pending",
                "message": "waiting for the controller",
                "observedGeneration": body.metadata.get("generation"),
                "conditions": merge_conditions(
                    status.get("conditions", []),
                    [condition("Valid", True, "SpecAccepted", "the spec is valid")],
                ),
            }
        ),
    )


@kopf.on.field(API_GROUP, VERSION, PLURAL, field="spec")
@counting_errors
def spec_edited(body: kopf.Body, old: Any, new: Any, memo: kopf.Memo, **_: Any) -> None:
    """An edit while running: the controller picks up budget and parallelism itself (and
    reports any other edit in the ``SpecApplied`` condition, unapplied); an invalid edit
    is reported here (and ignored by the controller). The run is judged as at creation,
    with the cluster's run defaults."""
    if old is None or body.get("status", {}).get("phase") in FINAL_PHASES:
        return
    try:
        effective_run(body, memo.cluster_settings.run_defaults)
    except SpecError as error:
        update = condition("Valid", False, "InvalidEdit", f"the edit is ignored: {error}")
        kopf.warn(body, reason="InvalidEdit", message=event_message(error))
    else:
        update = condition("Valid", True, "SpecAccepted", "the spec is valid")
    update_run_status(
        body.metadata.namespace,
        body.metadata.name,
        lambda status: {"conditions": merge_conditions(status.get("conditions", []), [update])},
    )
