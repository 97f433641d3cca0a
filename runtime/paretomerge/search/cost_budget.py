"""When a search stops: its budget of candidates, or of what they cost.

The one rule for the run's controller and for ``optimize()`` (so the benchmark runs it
too). Without a cost budget a search asks for ``budget`` candidates, then for its
validations. With one (:class:`CostBudget`), an evaluation is started only while

    spent + predicted cost of those running + of the new one + reserve  <=  limit,

where ``spent`` is what every evaluation so far cost and the reserve holds the
validations still to come; validations then follow the same rule without a reserve. The
count budget is the strategy's planning horizon, never a cap: a screened candidate costs
less, so the candidates screening saves buy more candidates (up to
:data:`MAX_CANDIDATES`).

A candidate's cost is predicted by the mean cost of the candidates finished, screened
ones included at what they cost: their sum over those running is then unbiased, so a run
ends on average at its budget and never more than about one candidate's spread past it.
A high quantile would stop a parallel run several candidates early (one quantile for
every running one) and, with screening, always predict a full candidate's price,
throwing away part of what screening saved. A validation (every question, asked anew)
is predicted by the validations finished, else by the candidates evaluated in full times
``validation_scale``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# With a cost budget the candidates are capped only here (what ``search.budget`` allows at
# most): a search whose evaluations cost nothing must still end.
MAX_CANDIDATES = 10_000


@dataclass(frozen=True)
class CostLedger:
    """What a search has spent and has under way, in the budget's unit.

    ``spent`` is every evaluation paid for so far (a run's anchors too); ``candidates``
    the costs of the candidates finished (a screened one's for the stages it asked),
    ``full`` those of the ones evaluated in full, ``validations`` those of the validations
    finished; ``running_candidates`` and ``running_validations`` are started and not
    finished; ``validations_left`` are still to start after them (what the search
    reserves); ``prior`` predicts a candidate before any finished (``None``: unknown).
    """

    spent: float
    candidates: Sequence[float] = ()
    full: Sequence[float] = ()
    validations: Sequence[float] = ()
    running_candidates: int = 0
    running_validations: int = 0
    validations_left: int = 0
    prior: float | None = None


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


@dataclass(frozen=True)
class CostBudget:
    """A budget of ``limit`` cost units (whatever unit the costs are in: output tokens,
    GPU-hours), and ``validation_scale``, what a validation costs relative to a candidate
    evaluated in full (more repeats, fewer questions held out: their ratio)."""

    limit: float
    validation_scale: float = 1.0

    def candidate_cost(self, ledger: CostLedger) -> float | None:
        """The predicted cost of a candidate: the mean of those finished, else the prior."""
        mean = _mean(ledger.candidates)
        return ledger.prior if mean is None else mean

    def validation_cost(self, ledger: CostLedger) -> float | None:
        """The predicted cost of a validation: the mean of those finished, else the
        candidates evaluated in full (else any candidate) times ``validation_scale``."""
        mean = _mean(ledger.validations)
        if mean is not None:
            return mean
        full = _mean(ledger.full)
        candidate = self.candidate_cost(ledger) if full is None else full
        return None if candidate is None else candidate * self.validation_scale

    def allows_candidate(self, ledger: CostLedger) -> bool:
        """Whether one more candidate fits, with those running and the validations still
        to come. Before any cost is known only what was spent is compared (the first
        candidates start on the count alone)."""
        candidate = self.candidate_cost(ledger)
        if candidate is None:
            return ledger.spent < self.limit
        validation = self.validation_cost(ledger) or 0.0
        committed = (
            ledger.spent
            + candidate * (ledger.running_candidates + 1)
            + validation * (ledger.running_validations + ledger.validations_left)
        )
        return committed <= self.limit

    def allows_validation(self, ledger: CostLedger) -> bool:
        """Whether one more validation fits, with those running."""
        validation = self.validation_cost(ledger)
        if validation is None:
            return ledger.spent < self.limit
        return ledger.spent + validation * (ledger.running_validations + 1) <= self.limit


def allows_candidate(
    asked: int, budget: int, cost_budget: CostBudget | None, ledger: CostLedger | None
) -> bool:
    """Whether the search asks for one more candidate, ``asked`` asked so far: within
    ``budget`` without a cost budget, else while ``cost_budget`` allows it (``ledger``)."""
    if cost_budget is None:
        return asked < budget
    return asked < MAX_CANDIDATES and cost_budget.allows_candidate(ledger)


def allows_validation(
    asked: int, budget: int, cost_budget: CostBudget | None, ledger: CostLedger | None
) -> bool:
    """Whether one more validation starts, ``asked`` of ``budget`` asked so far: within
    it, and while ``cost_budget`` (if any) allows it (``ledger``)."""
    return asked < budget and (cost_budget is None or cost_budget.allows_validation(ledger))
