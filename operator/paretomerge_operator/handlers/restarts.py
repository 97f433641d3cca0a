"""A finished run is started again: a Failed run whose retry annotation changed
(``kubectl annotate pmr NAME paretomerge.io/retry=1 --overwrite``; any new value asks
again), or a Succeeded run whose budget was raised above the candidates it evaluated, or
whose cost budget was raised above what it spent (or set on a run that had none).

The run's controller Job has ended; it is deleted and made again, and the new controller
resumes from the checkpoint on the volume: every finished evaluation is kept, and what
failed (or the candidates the budget adds) runs after a new preflight. A request that
asks for nothing (a retry of a run that has not failed, a budget of a Succeeded run that
is not above what it evaluated) is refused with an Event that says why.
"""

from __future__ import annotations

from typing import Any

import kopf

from paretomerge.k8s import client
from paretomerge.k8s.constants import API_GROUP, PLURAL, RETRY_ANNOTATION, VERSION
from paretomerge.k8s.objects import controller_name
from paretomerge.k8s.runs import run_source
from paretomerge.k8s.status import condition, valid_condition
from paretomerge_operator.handlers.runs import accepted_run, start_controller_job
from paretomerge_operator.metrics import counting_errors
from paretomerge_operator.status_updates import set_run_phase


@kopf.on.field(API_GROUP, VERSION, PLURAL, field=("metadata", "annotations", RETRY_ANNOTATION))
@counting_errors
def retry_requested(body: kopf.Body, old: Any, new: Any, memo: kopf.Memo, **_: Any) -> None:
    """A Failed run is retried; any other is left as it is, and told so."""
    if new is None or new == old:  # removing the annotation asks for nothing
        return
    phase = body.get("status", {}).get("phase")
    if phase != "Failed":
        kopf.warn(
            body,
            reason="RetryRefused",
            message=f"{RETRY_ANNOTATION}: the run is {phase or 'not started'}, and only a "
            "Failed run is retried",
        )
        return
    _restart(body, memo, f"retry requested ({RETRY_ANNOTATION}: {new})")


@kopf.on.field(API_GROUP, VERSION, PLURAL, field="spec.search.budget")
@counting_errors
def budget_changed(body: kopf.Body, old: Any, new: Any, memo: kopf.Memo, **_: Any) -> None:
    """A Succeeded run goes on when its budget rises above the candidates it evaluated
    (a running run follows its budget itself, a Failed one is retried)."""
    status = body.get("status", {})
    if status.get("phase") != "Succeeded":
        return
    evaluated = status.get("finished", 0)
    if new is None or new <= evaluated:
        kopf.warn(
            body,
            reason="BudgetNotRaised",
            message=f"spec.search.budget {new}: the run has succeeded with {evaluated} "
            "candidates, and is continued only by a budget above that",
        )
        return
    _restart(body, memo, f"budget raised from {old} to {new}")


@kopf.on.field(API_GROUP, VERSION, PLURAL, field="spec.search.costBudget")
@counting_errors
def cost_budget_changed(body: kopf.Body, old: Any, new: Any, memo: kopf.Memo, **_: Any) -> None:
    """A Succeeded run goes on when its cost budget rises above what it spent; its
    controller then starts what fits, and puts the run back to Succeeded, saying so,
    when no candidate does."""
    status = body.get("status", {})
    if status.get("phase") != "Succeeded":
        return
    refusal = cost_budget_refusal(status.get("costBudget"), new)
    if refusal is not None:
        kopf.warn(body, reason="CostBudgetNotRaised", message=refusal)
        return
    _restart(body, memo, f"cost budget raised from {old} to {new}")


def cost_budget_refusal(used: dict[str, Any] | None, new: Any) -> str | None:
    """Why a Succeeded run's new ``spec.search.costBudget`` asks for nothing, if it does:
    none given, or one in the unit the run went by (the status's ``costBudget``) that is
    not above what it spent. ``None``: the run goes on."""
    if not new:
        return "spec.search.costBudget removed: the run has succeeded and goes on only by a raise"
    if used is None or used.get("unit") not in new:
        return None
    unit = used["unit"]
    value = new[unit]
    if isinstance(value, int | float) and value > used.get("spent", 0):
        return None
    return (
        f"spec.search.costBudget.{unit} {value}: the run has succeeded having spent "
        f"{used.get('spent')}, and is continued only by a budget above that"
    )


def _restart(body: kopf.Body, memo: kopf.Memo, why: str) -> None:
    """Phase back to Pending (``Running`` true), and a new controller Job; a spec with
    problems is refused again, with a new check of its volume
    (:func:`~paretomerge_operator.handlers.runs.refuse`)."""
    _remove_controller_job(body)
    run = accepted_run(body, memo.cluster_settings)
    message = f"{why}: the controller starts again"
    set_run_phase(
        body,
        "Pending",
        message,
        [
            valid_condition([], run_source(body)),  # once refused, since fixed
            condition("Running", True, "Restarted", message),
            condition("Succeeded", False, "Restarted", message),
            condition("Failed", False, "Restarted", message),
        ],
    )
    start_controller_job(run, body, memo.cluster_settings)
    kopf.info(body, reason="ControllerRestarted", message=message)


def _remove_controller_job(body: kopf.Body) -> None:
    """Delete the run's controller Job, which has ended (or checked a refused spec).

    Raises:
        kopf.TemporaryError: the Job is still there; background deletion removes it at
            once, its pods after, so one still there is on its way out.
    """
    namespace, job = body.metadata.namespace, controller_name(body.metadata.name)
    client.call(
        lambda: client.batch().delete_namespaced_job(
            job, namespace, propagation_policy="Background"
        ),
        f"deleting job {namespace}/{job}",
        absent_ok=True,
    )
    still_there = client.call(
        lambda: client.batch().read_namespaced_job(job, namespace),
        f"reading job {namespace}/{job}",
        absent_ok=True,
    )
    if still_there is not None:
        raise kopf.TemporaryError(f"job {namespace}/{job} is still being deleted", delay=2)
