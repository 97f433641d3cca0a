"""The operator's writes to a run's status, through :class:`~paretomerge.k8s.runs.RunResource`
(shared with the controller, which writes the same status)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import kopf

from paretomerge.k8s.runs import RunResource, StatusConflictError
from paretomerge.k8s.status import merge_conditions


def update_run_status(
    namespace: str, name: str, make: Callable[[dict[str, Any]], dict[str, Any] | None]
) -> None:
    """Merge-patch a run's status with ``make(current status)`` (``None``: nothing to
    write; see :meth:`RunResource.update_status`). A status that keeps changing under the
    write (the controller publishing fast) is tried again by kopf a second later."""
    try:
        RunResource(namespace, name).update_status(make)
    except StatusConflictError as error:
        raise kopf.TemporaryError(str(error), delay=1) from None


def set_run_phase(
    body: kopf.Body, phase: str, message: str, conditions: list[dict[str, str]]
) -> None:
    """The run's phase and message for the spec as it is now, ``conditions`` merged into
    the run's own."""
    update_run_status(
        body.metadata.namespace,
        body.metadata.name,
        lambda status: {
            "phase": phase,
            "message": message,
            "observedGeneration": body.metadata.get("generation"),
            "conditions": merge_conditions(status.get("conditions", []), conditions),
        },
    )
