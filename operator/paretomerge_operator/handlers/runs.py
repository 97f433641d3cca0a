"""A run is created, resumed after an operator restart, or its spec is edited."""

from __future__ import annotations

from typing import Any, NoReturn

import kopf

from paretomerge.k8s import client
from paretomerge.k8s.constants import API_GROUP, FINAL_PHASES, PLURAL, VERSION
from paretomerge.k8s.objects import controller_name
from paretomerge.k8s.runs import checked_run, effective_run, run_source
from paretomerge.k8s.settings import ClusterSettings
from paretomerge.k8s.status import condition, merge_conditions, valid_condition
from paretomerge.spec import ParetoMergeRun, RunFileCheck, SpecError
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


def accepted_run(body: kopf.Body, settings: ClusterSettings) -> ParetoMergeRun:
    """The run, with the cluster's run defaults, where its spec has no problem; else it is
    refused (:func:`refuse`).

    Raises:
        kopf.PermanentError: the spec has problems (they are in the run's status).
    """
    checked = checked_run(body, settings.run_defaults)
    if checked.problems:
        refuse(body, checked, settings)
    return checked.run


def refuse(body: kopf.Body, checked: RunFileCheck, settings: ClusterSettings) -> NoReturn:
    """A run whose spec has problems fails with every one of them (:func:`reject`). Where
    the fields the preflight reads parsed, a controller Job checks the volume too (only a
    pod can read it) and adds the preflight's problems to the status, starting nothing
    (``--check-only``): one apply shows every problem. Fixed, the run is retried.

    Raises:
        kopf.PermanentError: always.
    """
    run = checked.preflight_run()
    error = reject(body, checked, None if run is None else controller_name(run.name))
    if run is not None:
        start_controller_job(run, body, settings, check_only=True)
    raise kopf.PermanentError(str(error))


def reject(body: kopf.Body, checked: RunFileCheck, check_job: str | None) -> SpecError:
    """Phase Failed, a Valid=False condition and an Event, all saying what to fix: every
    problem of the spec, and the ``Preflight`` condition not known yet: job ``check_job``
    looks at the volume, or (``None``) the preflight waits for fields to parse, which the
    problems then say too. Returns the error that lists them."""
    source = run_source(body)
    if check_job is not None:
        error = SpecError(checked.problems, source)
        message = (
            f"job {check_job} looks at the models, data, engine and volume; the run's status "
            "gets what it finds"
        )
        preflight = condition("Preflight", None, "Checking", message)
    else:
        waiting = checked.preflight_waits()
        error = SpecError([*checked.problems, waiting], source)
        preflight = condition("Preflight", None, "WaitingForSpec", waiting.message)
    set_run_phase(
        body,
        "Failed",
        str(error),
        [
            valid_condition(checked.problems, source),
            preflight,
            condition("Failed", True, "InvalidSpec", str(error)),
        ],
    )
    kopf.warn(body, reason="InvalidSpec", message=event_message(error))
    return error


def start_controller_job(
    run: ParetoMergeRun, body: kopf.Body, settings: ClusterSettings, *, check_only: bool = False
) -> bool:
    """The run's controller Job where it is missing (see
    :func:`~paretomerge_operator.resources.controller_job` for ``check_only``), and the
    service account, role and binding its pod runs under where they are (a run refused at
    its start is retried with them). Returns whether the Job was made."""
    manifest = dict(body)
    for make in (controller_service_account, controller_role, controller_role_binding):
        client.create_if_absent(make(run, manifest))
    return client.create_if_absent(controller_job(run, manifest, settings, check_only=check_only))


@kopf.on.resume(API_GROUP, VERSION, PLURAL)
@kopf.on.create(API_GROUP, VERSION, PLURAL)
@counting_errors
def start_run(body: kopf.Body, memo: kopf.Memo, logger, **_: Any) -> None:
    """Validate the run and start its controller (once: names are deterministic)."""
    if body.get("status", {}).get("phase") in FINAL_PHASES:
        return
    run = accepted_run(body, memo.cluster_settings)
    if start_controller_job(run, body, memo.cluster_settings):
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
                    status.get("conditions", []), [valid_condition([], run_source(body))]
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
        update = valid_condition([], run_source(body))
    update_run_status(
        body.metadata.namespace,
        body.metadata.name,
        lambda status: {"conditions": merge_conditions(status.get("conditions", []), [update])},
    )
