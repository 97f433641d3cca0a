"""A ParetoMergeRun's ``status``, built from the controller's state.

Written by the controller after every checkpoint (and by the operator for the phases it
owns). It stays compact enough for budgets of several hundred evaluations within the
API server's object size limit (about 1.5 MB): each finished evaluation is one short row
``[id, status, f1, f2, ...]`` (validations, ``v0001``..., after the candidates, counted
apart in ``validationsFinished``); weights and raw scores are kept for the Pareto set only,
and everything else is in the run directory on the volume (``status.runDirectory``). The
rows (:class:`EvaluationRow`) carry each candidate's step durations and cost, which the
operator turns into metrics; ``cost`` holds their sum (``anchorCost`` the anchors'), and
``costBudget`` what a run with ``spec.search.costBudget`` spent of it.
Beyond :data:`MAX_STATUS_EVALUATIONS` finished evaluations the status keeps no rows, and
beyond :data:`MAX_STATUS_PARETO` Pareto points only the most accurate ones; it then names
the file that holds them all: ``evaluationsIn`` (``results.json``), ``paretoIn``
(``pareto.csv``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from paretomerge.controller.artifacts import ParetoPoint, pareto_points
from paretomerge.controller.cost_budget import budget_use
from paretomerge.controller.state import EvaluationRecord, RunState
from paretomerge.k8s.constants import FINAL_PHASES
from paretomerge.results import CostTotal, EvaluationCost, Scores
from paretomerge.run_layout import RunLayout
from paretomerge.spec import SpecError, SpecProblem

CONDITION_TYPES = ("Valid", "SpecApplied", "Preflight", "Running", "Succeeded", "Failed")
# Beyond this many evaluations the compact rows stay in the run directory only.
MAX_STATUS_EVALUATIONS = 2000
# Pareto points shown with their weights (~0.5 KB each with 37 weights).
MAX_STATUS_PARETO = 200


def condition(kind: str, status: bool | None, reason: str, message: str) -> dict[str, str]:
    """A Kubernetes-style condition (``lastTransitionTime`` now); ``status`` ``None``:
    ``Unknown``, not known yet."""
    return {
        "type": kind,
        "status": {True: "True", False: "False", None: "Unknown"}[status],
        "reason": reason,
        "message": message,
        "lastTransitionTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def valid_condition(problems: Sequence[SpecProblem], source: str) -> dict[str, str]:
    """Condition ``Valid``: whether the spec of run ``source`` (``namespace/name``) has no
    problem of its fields or across them, else every one."""
    if problems:
        return condition("Valid", False, "InvalidSpec", str(SpecError(list(problems), source)))
    return condition("Valid", True, "SpecAccepted", "the spec is valid")


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


# A row's missing value: the API server drops nulls inside lists, which would shift the
# columns after them.
NO_VALUE = "-"


class EvaluationRow(BaseModel):
    """One finished evaluation in the status: ``status.evaluations`` holds it as a list of
    values in the order of ``status.evaluationColumns`` (:data:`EVALUATION_COLUMNS`),
    ``None`` written :data:`NO_VALUE`. ``f1``, ``f2`` are the objectives as evaluated,
    ``f1Std``, ``f2Std`` their standard deviations (anchors' errors included), the
    durations are in seconds, ``attempts`` counts the attempts started; ``answers``,
    ``outputTokens``, ``serveSeconds``, ``generateSeconds`` and ``gpuSeconds`` are its
    :class:`~paretomerge.results.EvaluationCost` (none where it has no cost: a failed
    one). New columns go last, and a reader takes the columns the writer named
    (``evaluationColumns``; a renamed one by its old name too, :data:`RENAMED_COLUMNS`)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    id: str
    status: str
    f1: float | None = None
    f2: float | None = None
    merge_seconds: float | None = None
    evaluate_seconds: float | None = None
    proposal_seconds: float | None = None
    attempts: int | None = None
    f1_std: float | None = None
    f2_std: float | None = None
    answers: int | None = None
    output_tokens: int | None = None
    serve_seconds: float | None = None
    generate_seconds: float | None = None
    gpu_seconds: float | None = None

    @classmethod
    def of(cls, candidate: EvaluationRecord) -> EvaluationRow:
        """The row of a finished candidate or validation (a failed one has no
        objectives)."""
        f1, f2 = _rounded(candidate.objectives)
        f1_std, f2_std = _rounded(candidate.objectives_std)
        seconds = {k: round(v, 3) for k, v in candidate.seconds.items()}
        return cls(
            id=candidate.id,
            status=candidate.status,
            f1=f1,
            f2=f2,
            merge_seconds=seconds.get("merge"),
            evaluate_seconds=seconds.get("evaluate"),
            proposal_seconds=seconds.get("proposal"),
            attempts=candidate.attempts,
            f1_std=f1_std,
            f2_std=f2_std,
            **_cost_columns(candidate.cost),
        )

    def to_status(self) -> list[Any]:
        """The row as the status holds it."""
        values = self.model_dump(by_alias=True)
        return [NO_VALUE if values[c] is None else values[c] for c in EVALUATION_COLUMNS]

    @classmethod
    def from_status(cls, values: list[Any], columns: Sequence[str] | None = None) -> EvaluationRow:
        """A row read from a status whose ``evaluationColumns`` are ``columns`` (default:
        this version's; a controller of another version may have written fewer or more,
        and columns this version does not know are ignored). An API server that drops
        nulls from lists (Kubernetes before 1.21, kubernetes#98080) shortens a row with a
        missing value and shifts the columns after it: of such a row only the id and
        status, never null, are kept."""
        columns = tuple(RENAMED_COLUMNS.get(c, c) for c in columns or EVALUATION_COLUMNS)
        if len(values) != len(columns):
            columns = ("id", "status")
        return cls.model_validate(
            {
                column: value
                for column, value in zip(columns, values, strict=False)
                if value is not None and value != NO_VALUE and column in EVALUATION_COLUMNS
            }
        )


EVALUATION_COLUMNS = tuple(field.alias for field in EvaluationRow.model_fields.values())
#: Columns an earlier version named otherwise: old name -> this version's.
RENAMED_COLUMNS = {"questions": "answers"}


def _cost_columns(cost: EvaluationCost | None) -> dict[str, float | int | None]:
    """A row's cost columns (all ``None`` without a cost)."""
    if cost is None:
        return {}
    return {
        "answers": cost.answers,
        "output_tokens": cost.output_tokens,
        "serve_seconds": round(cost.serve_seconds, 3),
        "generate_seconds": round(cost.generate_seconds, 3),
        "gpu_seconds": round(cost.gpu_seconds, 3),
    }


def status_cost(total: CostTotal) -> dict[str, float | int]:
    """A :class:`~paretomerge.results.CostTotal` as the status holds it (camelCase keys,
    seconds to the millisecond)."""
    return {
        to_camel(name): round(value, 3) if isinstance(value, float) else value
        for name, value in total.model_dump().items()
    }


def status_cost_budget(state: RunState) -> dict[str, Any] | None:
    """``{"unit": "outputTokens", "budget": 2e8, "spent": 1.2e7}`` (GPU-hours to the
    GPU-second), or ``None`` for a run without a cost budget."""
    used = budget_use(state)
    if used is None:
        return None
    return {"unit": used.unit, "budget": used.budget, "spent": round(used.spent, 6)}


def _rounded(values: list[float] | None) -> tuple[float | None, float | None]:
    """A pair of objectives (or their deviations) as the status shows them."""
    if values is None:
        return None, None
    return round(values[0], 6), round(values[1], 6)


def run_status(
    state: RunState,
    run_directory: str,
    generation: int | None,
    previous_conditions: list[dict[str, str]] = (),
) -> dict[str, Any]:
    """The status object for ``state``."""
    files = RunLayout(PurePosixPath(run_directory))
    front = pareto_points(state)
    finished = [r for r in [*state.candidates, *state.validations] if r.status != "running"]
    done = state.phase in FINAL_PHASES
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
        "screened": state.count("screened"),
        "failed": state.count("failed"),
        # Validations are counted apart from the search's budget.
        "validationsFinished": state.validations_finished,
        "validationsRunning": state.count_validations("running"),
        "validationsFailed": state.count_validations("failed"),
        "paretoSize": len(front),
        # Why the validations are normalised by the anchors on every question (null: by
        # those on the held-out ones, or none are held out).
        "validationFallback": state.validation_fallback,
        "hypervolume": state.hypervolume[-1] if state.hypervolume else 0.0,
        "hypervolumeHistory": [round(v, 6) for v in state.hypervolume],
        # The 90% interval of the true hypervolume of the reported front (null: none yet).
        "hypervolumeInterval": (
            None if state.hypervolume_interval is None else _rounded(state.hypervolume_interval)
        ),
        # The candidates' and validations' cost (the rows' sum), the anchors' apart.
        "cost": status_cost(state.cost),
        "anchorCost": status_cost(state.anchor_cost),
        # Spent of spec.search.costBudget (every evaluation this run paid for), in its
        # unit; null without one.
        "costBudget": status_cost_budget(state),
        "anchors": {
            role: {"model": a.model, "cached": a.cached, "scores": _short_scores(a.scores)}
            for role, a in state.anchors.items()
        },
        "pareto": [_pareto_entry(point, files) for point in front[:MAX_STATUS_PARETO]],
        # null removes a pointer that a merge patch wrote before
        "paretoIn": str(files.pareto) if len(front) > MAX_STATUS_PARETO else None,
        "conditions": merge_conditions(list(previous_conditions), updates),
    }
    status["evaluationColumns"] = list(EVALUATION_COLUMNS)
    if len(finished) <= MAX_STATUS_EVALUATIONS:
        status["evaluations"] = [EvaluationRow.of(c).to_status() for c in finished]
    else:
        status["evaluations"] = None
        status["evaluationsIn"] = str(files.results)
    return status


def _pareto_entry(point: ParetoPoint, files: RunLayout[PurePosixPath]) -> dict[str, Any]:
    """A member of the Pareto set as the status shows it: its values, their standard
    deviations, whether validations on held-out questions value it (``heldOut``), the
    merges listed with it (``indistinguishableFrom``), its weights, raw scores and merge
    task."""
    c = point.candidate
    return {
        "id": c.id,
        **dict(zip(("f1", "f2"), _rounded(c.reported.mean), strict=True)),
        **dict(zip(("f1Std", "f2Std"), _rounded(c.reported.std), strict=True)),
        "validated": c.validated is not None,
        "heldOut": c.validated is not None and c.validated.held_out,
        "indistinguishableFrom": list(point.indistinguishable_from),
        "weights": [round(v, 4) for v in c.variables],
        "scores": _short_scores(c.scores),
        "mergeTask": str(files.candidate_task(c.id)),
    }


def _short_scores(scores: Scores | None) -> dict[str, dict[str, float]]:
    return {
        name: {
            "accuracy": round(s.accuracy, 6),
            "meanOutputTokens": round(s.mean_output_tokens, 2),
        }
        for name, s in (scores or {}).items()
    }
