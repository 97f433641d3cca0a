"""Every change of a run, as the API server reports it: its status becomes metrics.

An event handler (not a change handler): kopf stores nothing on the run for it, it sees
every version of the object, including the listing after an operator restart, and it
cannot fail a run. :class:`~paretomerge_operator.metrics.OperatorMetrics` makes repeated
events harmless.
"""

from __future__ import annotations

from typing import Any

import kopf

from paretomerge.kube import PLURAL, VERSION
from paretomerge.spec import API_GROUP
from paretomerge_operator.metrics import RunProgress, counting_errors


@kopf.on.event(API_GROUP, VERSION, PLURAL)
@counting_errors
def run_changed(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    """Update the run's gauges and count its new evaluations; forget a deleted run."""
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    if type == "DELETED":
        memo.metrics.forget(namespace, name)
        return
    progress = RunProgress.from_body(body.get("spec") or {}, body.get("status") or {})
    memo.metrics.observe(namespace, name, progress)
