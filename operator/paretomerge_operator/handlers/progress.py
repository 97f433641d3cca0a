"""Every change of a run, as the API server reports it: its status becomes metrics.

An event handler (not a change handler): kopf stores nothing on the run for it, it sees
every version of the object, including the listing after an operator restart, and it
cannot fail a run. :class:`~paretomerge_operator.metrics.OperatorMetrics` makes repeated
events harmless.
"""

from __future__ import annotations

from typing import Any

import kopf

from paretomerge.k8s.constants import API_GROUP, PLURAL, VERSION
from paretomerge_operator.metrics import RunSnapshot, counting_errors


@kopf.on.event(API_GROUP, VERSION, PLURAL)
@counting_errors
def run_changed(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    """Update the run's gauges and count its new evaluations; forget a deleted run."""
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    if type == "DELETED":
        memo.metrics.forget(namespace, name)
        return
    snapshot = RunSnapshot.from_body(body.get("spec") or {}, body.get("status") or {})
    memo.metrics.observe(namespace, name, snapshot)
