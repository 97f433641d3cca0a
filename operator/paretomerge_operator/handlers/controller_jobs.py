"""A run's controller Job ran out of restarts: the run fails with the reason."""

from __future__ import annotations

from typing import Any

import kopf

from paretomerge.k8s.constants import COMPONENT_LABEL, CONTROLLER, FINAL_PHASES, RUN_LABEL
from paretomerge.k8s.status import condition, merge_conditions
from paretomerge_operator.metrics import counting_errors
from paretomerge_operator.status_updates import update_run_status


@kopf.on.event("batch", "v1", "jobs", labels={COMPONENT_LABEL: CONTROLLER})
@counting_errors
def controller_job_changed(body: kopf.Body, type: str, **_: Any) -> None:
    if type == "DELETED":
        return
    conditions = body.get("status", {}).get("conditions") or []
    failed = [c for c in conditions if c.get("type") == "Failed" and c.get("status") == "True"]
    if not failed:
        return
    run_name = body.metadata.labels[RUN_LABEL]
    reason = failed[0].get("reason", "Failed")
    message = (
        f"the controller failed {body.get('status', {}).get('failed', 0)} time(s) and was "
        f"not restarted again ({reason}: {failed[0].get('message', '')}); see the logs of "
        f"the pods of job {body.metadata.name}"
    )
    update_run_status(
        body.metadata.namespace,
        run_name,
        lambda status: (
            None
            if status.get("phase") in FINAL_PHASES
            else {
                "phase": "Failed",
                "message": message,
                "conditions": merge_conditions(
                    status.get("conditions", []), [condition("Failed", True, reason, message)]
                ),
            }
        ),
    )
