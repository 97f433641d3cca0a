"""A ParetoMergeRun's ``status``, built from the controller's state.

Written by the controller after every checkpoint (and by the operator for the phases it
owns). It stays compact enough for budgets of several hundred evaluations within the
API server's object size limit (about 1.5 MB): each finished evaluation is one short row
``[id, status, f1, f2, ...]``; weights and raw scores are kept for the Pareto set only,
and everything else is in the run directory on the volume (``status.runDirectory``). The
rows carry each candidate's stage durations, which the operator turns into metrics.
Beyond :data:`MAX_STATUS_EVALUATIONS` finished evaluations the status keeps no rows, and
beyond :data:`MAX_STATUS_PARETO` Pareto points only the most accurate ones; it then names
the file that holds them all: ``evaluationsIn`` (``results.json``), ``paretoIn``
(``pareto.csv``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from paretomerge.controller.artifacts import pareto_candidates
from paretomerge.controller.state import CandidateRecord, RunState
from paretomerge.results import Scores
from paretomerge.run_layout import RunLayout

CONDITION_TYPES = ("Valid", "SpecApplied", "Running", "Succeeded", "Failed")
# Beyond this many evaluations the compact rows stay in the run directory only.
MAX_STATUS_EVALUATIONS = 2000
# Pareto points shown with their weights (~0.5 KB each with 37 weights).
MAX_STATUS_PARETO = 200


def condition(kind: str, status: bool, reason: str, message: str) -> dict[str, str]:
    """A Kubernetes-style condition (``lastTransitionTime`` now)."""
    return {
        "type": kind,
        "status": "True" if status else "False",
        "reason": reason,
        "message": message,
        "lastTransitionTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def merge_conditions(
    previous: list[dict[str, str]], updates: list[dict[str, str]]
) -> list[dict[str, str]]:
    """``previous`` with ``updates`` applied; a condition keeps its transition time while
    its status does not change."""
    by_type = {c["type"]: dict(c) for c in previous}
    for update in updates:
        old = by_type.get(update["type"])
        if old is not None and old["status"] == update["status"]:
            update = {**update, "lastTransitionTime": old["lastTransitionTime"]}
        by_type[update["type"]] = update
    return [by_type[t] for t in CONDITION_TYPES if t in by_type] + [
        c for t, c in by_type.items() if t not in CONDITION_TYPES
    ]


def run_status(
    state: RunState,
    run_directory: str,
    generation: int | None,
    previous_conditions: list[dict[str, str]] = (),
) -> dict[str, Any]:
    """The status object for ``state``."""
    files = RunLayout(PurePosixPath(run_directory))
    front = pareto_candidates(state)
    finished = [c for c in state.candidates if c.status != "running"]
    done = state.phase in ("Succeeded", "Failed")
    updates = [
        condition("Running", not done, state.phase, state.message or state.phase),
        condition("Succeeded", state.phase == "Succeeded", state.phase, state.message),
        condition("Failed", state.phase == "Failed", state.phase, state.message),
    ]
    status: dict[str, Any] = {
        "phase": state.phase,
        "message": state.message,
        "observedGeneration": generation,
        "runDirectory": run_directory,
        "finished": state.finished,
        "running": state.count("running"),
        "succeeded": state.count("succeeded"),
        "failed": state.count("failed"),
        "paretoSize": len(front),
        "hypervolume": state.hypervolume[-1] if state.hypervolume else 0.0,
        "hypervolumeHistory": [round(v, 6) for v in state.hypervolume],
        "anchors": {
            role: {"model": a.model, "cached": a.cached, "scores": _short_scores(a.scores)}
            for role, a in state.anchors.items()
        },
        "pareto": [
            {
                "id": c.id,
                "f1": round(c.objectives[0], 6),
                "f2": round(c.objectives[1], 6),
                "weights": [round(v, 4) for v in c.variables],
                "scores": _short_scores(c.scores),
                "mergeTask": str(files.candidate_task(c.id)),
            }
            for c in front[:MAX_STATUS_PARETO]
        ],
        # null removes a pointer that a merge patch wrote before
        "paretoIn": str(files.pareto) if len(front) > MAX_STATUS_PARETO else None,
        "conditions": merge_conditions(list(previous_conditions), updates),
    }
    status["evaluationColumns"] = list(EVALUATION_COLUMNS)
    if len(finished) <= MAX_STATUS_EVALUATIONS:
        status["evaluations"] = [_evaluation_row(c) for c in finished]
    else:
        status["evaluations"] = None
        status["evaluationsIn"] = str(files.results)
    return status


# A row's missing value: the API server drops nulls inside lists, which would shift the
# columns after them.
NO_VALUE = "-"
EVALUATION_COLUMNS = (
    "id",
    "status",
    "f1",
    "f2",
    "mergeSeconds",
    "evaluateSeconds",
    "proposalSeconds",
    "attempts",
)


def _evaluation_row(candidate: CandidateRecord) -> list[Any]:
    """One finished evaluation as a row of :data:`EVALUATION_COLUMNS` (:data:`NO_VALUE`
    where a failed candidate has no value)."""
    f1, f2 = candidate.objectives or (None, None)
    seconds = candidate.seconds
    return [
        candidate.id,
        candidate.status,
        NO_VALUE if f1 is None else round(f1, 6),
        NO_VALUE if f2 is None else round(f2, 6),
        *(
            round(seconds[k], 3) if k in seconds else NO_VALUE
            for k in ("merge", "evaluate", "proposal")
        ),
        candidate.attempts,
    ]


def _short_scores(scores: Scores | None) -> dict[str, dict[str, float]]:
    return {
        name: {
            "accuracy": round(s.accuracy, 6),
            "meanOutputTokens": round(s.mean_output_tokens, 2),
        }
        for name, s in (scores or {}).items()
    }
