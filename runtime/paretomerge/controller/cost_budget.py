"""A run's cost budget: the stop rule of :mod:`paretomerge.search.cost_budget` on its state.

The controller asks :func:`wants_candidate` before it starts a candidate and
:func:`wants_validation` before a validation; the status, the metrics, the report and the
CLI show :func:`budget_use`. Costs are counted in the budget's unit
(:meth:`~paretomerge.spec.CostBudgetSpec.charged`): output tokens as the evaluations
recorded them, or GPU-hours, ``(server start + generation) * GPUs`` of each evaluation
(:class:`~paretomerge.results.EvaluationCost`; the merge runs without GPUs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from paretomerge.controller.state import RunState
from paretomerge.results import CostTotal, EvaluationCost, Scores
from paretomerge.search.cost_budget import (
    CostBudget,
    CostLedger,
    allows_candidate,
    allows_validation,
)
from paretomerge.spec import CostBudgetSpec, RunSpec

if TYPE_CHECKING:  # the status and the progress bar read this module without the executors
    from paretomerge.controller.task_runner import Limits

UNIT_NAMES = {"outputTokens": "output tokens", "gpuHours": "GPU-hours"}


def _charged(budget: CostBudgetSpec, cost: EvaluationCost | CostTotal) -> float:
    return budget.charged(cost.output_tokens, cost.gpu_seconds)


def _repeats(spec: RunSpec, repeats: int | None = None) -> dict[str, int]:
    """How many times a candidate asks each benchmark's questions: as the objectives say,
    or ``repeats``; not as the anchors asked them (anchors too close to tell apart are
    measured again with more repeats)."""
    return {b.name: repeats or spec.objectives.repeats_of(b) for b in spec.objectives.benchmarks}


def _answers(scores: Scores, spec: RunSpec, repeats: int | None = None) -> int:
    """The answers a candidate gives to ``scores``' questions (see :func:`_repeats`)."""
    asked = _repeats(spec, repeats)
    return sum(s.n * asked[name] for name, s in scores.items())


def _asked(scores: Scores) -> int:
    """The answers the evaluation behind ``scores`` gave."""
    return sum(s.n * s.repeats for s in scores.values())


def _prior(state: RunState, spec: RunSpec, budget: CostBudgetSpec) -> float | None:
    """A candidate's cost before any finished: the mean of the anchors' (a merge lies
    between the base and the expert), for the answers a candidate gives; their tokens
    known from their scores even when they came from the cache, their GPU-hours only
    when this run evaluated them."""
    anchors = list(state.anchors.values())
    if budget.unit == "outputTokens":
        asked = _repeats(spec)
        tokens = [
            sum(s.mean_output_tokens * s.n * asked[name] for name, s in a.scores.items())
            for a in anchors
        ]
        return sum(tokens) / len(tokens) if tokens else None
    known = [
        _charged(budget, a.cost) * _answers(a.scores, spec) / _asked(a.scores)
        for a in anchors
        if a.cost is not None
    ]
    return sum(known) / len(known) if known else None


def _validation_scale(state: RunState, spec: RunSpec) -> float:
    """A validation's answers over a candidate's: the held-out questions with the
    validation's repeats, or the search's questions asked that often."""
    validation = spec.search.validation
    expert = state.anchors.get("expert")
    if expert is None:
        return 1.0
    searched = _answers(expert.scores, spec)
    held_out = state.held_out_anchors.get("expert")
    if held_out is not None:
        return _asked(held_out.scores) / searched
    return _answers(expert.scores, spec, validation.repeats) / searched


def run_cost_budget(state: RunState, spec: RunSpec, budget: CostBudgetSpec) -> CostBudget:
    """``budget`` as the search rule takes it."""
    return CostBudget(budget.limit, validation_scale=_validation_scale(state, spec))


def cost_ledger(
    state: RunState, spec: RunSpec, budget: CostBudgetSpec, validations_left: int
) -> CostLedger:
    """What the run has spent and has under way, in ``budget``'s unit."""
    finished = [c for c in state.candidates if c.status != "running" and c.cost is not None]
    return CostLedger(
        spent=_charged(budget, state.paid),
        candidates=[_charged(budget, c.cost) for c in finished],
        full=[_charged(budget, c.cost) for c in finished if c.status == "succeeded"],
        validations=[
            _charged(budget, v.cost)
            for v in state.validations
            if v.status != "running" and v.cost is not None
        ],
        running_candidates=state.count("running"),
        running_validations=state.count_validations("running"),
        validations_left=validations_left,
        prior=_prior(state, spec, budget),
    )


def wants_candidate(state: RunState, spec: RunSpec, limits: Limits) -> bool:
    """Whether the search starts one more candidate: within ``limits.budget``, or with a
    cost budget while it fits, the validations still to come reserved."""
    budget = limits.cost_budget
    if budget is None:
        return allows_candidate(state.spent, limits.budget, None, None)
    left = max(spec.search.validation.budget - len(state.validations), 0)
    return allows_candidate(
        state.spent,
        limits.budget,
        run_cost_budget(state, spec, budget),
        cost_ledger(state, spec, budget, left),
    )


def wants_validation(state: RunState, spec: RunSpec, limits: Limits) -> bool:
    """Whether one more validation starts: within ``search.validation.budget`` and, with
    a cost budget, while it fits."""
    budget = limits.cost_budget
    return allows_validation(
        len(state.validations),
        spec.search.validation.budget,
        None if budget is None else run_cost_budget(state, spec, budget),
        None if budget is None else cost_ledger(state, spec, budget, 0),
    )


@dataclass(frozen=True)
class BudgetUse:
    """What a run spent of its cost budget: ``spent`` and ``budget`` in ``unit``."""

    unit: str
    budget: float
    spent: float

    def __str__(self) -> str:
        decimals = 0 if self.unit == "outputTokens" else 2
        return (
            f"{self.spent:,.{decimals}f} of {self.budget:,.{decimals}f} "
            f"{UNIT_NAMES[self.unit]} spent"
        )


def budget_use(state: RunState) -> BudgetUse | None:
    """What ``state``'s run spent of the cost budget it went by (``None``: it had none)."""
    budget = state.cost_budget
    if budget is None:
        return None
    return BudgetUse(budget.unit, budget.limit, _charged(budget, state.paid))
