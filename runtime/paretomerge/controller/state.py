"""The controller's state: everything needed to resume a run, as one JSON checkpoint.

It is written (atomically) after every change that matters: a candidate launched, a
result or failure recorded. Each candidate names its optimiser trial
(:attr:`CandidateRecord.trial`), so a restored controller knows which points are still
being evaluated, and keeps the search's estimate of its objectives
(:class:`PointEstimate`), so that whoever reads the state (the status, the operator, the
report) sees the front the search reports without a model of its own. Every task (the
profile, the anchors, each candidate) keeps its attempts the same way
(:class:`TaskAttempts`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, Field, field_validator

from paretomerge.files import write_atomic
from paretomerge.results import CostTotal, EvaluationCost, Scores
from paretomerge.run_layout import RunLayout
from paretomerge.spec import CostBudgetSpec

STATE_VERSION = 1

Phase = Literal[
    "Pending", "Profiling", "Anchoring", "Searching", "Validating", "Succeeded", "Failed"
]
# screened: stopped after a stage of a screened evaluation, probably dominated (its
# objectives are the partial estimate of the questions asked until then).
CandidateStatus = Literal["running", "succeeded", "screened", "failed"]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Reported(NamedTuple):
    """An evaluation's ``(f1, f2)`` as the run reports them: ``mean`` and its standard
    deviations ``std`` (``None`` where they are not known)."""

    mean: list[float]
    std: list[float] | None


class TaskAttempts(BaseModel):
    """The attempts of one task: how many were started, and why each failed one failed.

    A failure is recorded, and checkpointed, before the next attempt starts, so the
    attempt due is always the one after the failures (:attr:`due`): a restarted
    controller adopts it if an earlier one started it, or starts it, and never grants a
    retry twice.
    """

    attempts: int = 0
    reasons: list[str] = []
    # Failures before the run was last retried (its cause fixed): they keep their
    # reasons and attempt numbers, and count against no retries.
    failures_forgiven: int = 0

    @property
    def due(self) -> int:
        """The attempt to run or follow now (0, 1, ...): the number of failed ones."""
        return len(self.reasons)

    @property
    def waiting(self) -> bool:
        """Whether the attempt due has not been started (a retry granted, not yet begun)."""
        return self.attempts == self.due


class PointEstimate(BaseModel):
    """What the search estimates a candidate's objectives to be: ``mean`` and ``std``
    ``(f1, f2)`` (the surrogate's posterior at its point, every evaluation of it pooled;
    ``std`` includes the anchors' errors, ``None`` where no variance is known),
    ``prob_non_dominated`` its posterior probability of being on the front, and the
    ``evaluations`` pooled; ``held_out`` for a validated value of evaluations on the
    questions held out of the search (normalised by the validation anchors)."""

    mean: list[float]
    std: list[float] | None = None
    prob_non_dominated: float
    evaluations: int = 1
    held_out: bool = False


class EvaluationRecord(TaskAttempts):
    """One evaluation of a merge, a candidate's or a validation's, and what became of it.

    ``trial`` is its optimiser trial (``None`` in checkpoints written before trials had
    ids: there candidate ``i`` is trial ``i``); ``objectives`` is ``(f1, f2)`` as
    evaluated and ``objectives_std`` their standard deviations, the anchors' errors
    included (``None`` where a score had no standard error, as in checkpoints written
    before they were measured); ``scores`` the raw scores per benchmark; ``seconds`` the
    time of each step; ``cost`` what its evaluation cost (``None`` until it has a
    result, and in checkpoints written before costs were measured).
    """

    id: str
    trial: int | None = None
    status: CandidateStatus = "running"
    objectives: list[float] | None = None
    objectives_std: list[float] | None = None
    scores: Scores | None = None
    seconds: dict[str, float] = {}
    cost: EvaluationCost | None = None
    created: str = Field(default_factory=now)
    finished: str | None = None


class CandidateRecord(EvaluationRecord):
    """One candidate merge.

    ``x`` is its decision vector in ``[0, 1]^d``, ``variables`` the same in merge-weight
    units; ``estimate`` the search's estimate, by which the front is chosen
    (:attr:`searched`; ``None`` before the first estimate, and in older checkpoints: the
    evaluation stands in for it); ``validated`` its value after validation (``None``
    until a validation of it finished), by which a chosen point is valued
    (:attr:`reported`) and never chosen.
    ``screened_after`` is the stage after which a screened candidate stopped.
    """

    x: list[float]
    variables: list[float]
    screened_after: int | None = None
    estimate: PointEstimate | None = None
    validated: PointEstimate | None = None
    merged_model: str | None = None

    @property
    def searched(self) -> Reported:
        """``(f1, f2)`` as the search estimates them, what the front is chosen by: the
        search's estimate, else the evaluation itself."""
        if self.estimate is not None:
            return Reported(self.estimate.mean, self.estimate.std)
        return Reported(self.objectives, self.objectives_std)

    @property
    def reported(self) -> Reported:
        """``(f1, f2)`` as the run reports them: the validated value, else the search's
        estimate, else the evaluation itself."""
        value = self.validated or self.estimate
        if value is not None:
            return Reported(value.mean, value.std)
        return Reported(self.objectives, self.objectives_std)


class ValidationRecord(EvaluationRecord):
    """An evaluation again, after the search, of ``candidate`` (its id)."""

    candidate: str


class AnchorRecord(BaseModel):
    """The evaluation of the base or the expert, and where it came from; ``cost`` what
    evaluating it cost this run (``None`` when it came from the cache, or from a
    checkpoint written before costs were measured)."""

    model: str
    scores: Scores
    cache_key: str
    cached: bool = False
    cost: EvaluationCost | None = None


class RunState(BaseModel):
    """A run's progress; ``optimizer`` is :meth:`AskTellOptimizer.state_dict`;
    ``validations`` the evaluations after the search, ``held_out_anchors`` the anchors
    evaluated on the questions held out of the search (which normalise validations, or,
    when they are degenerate, the anchors on every question do: ``validation_fallback``
    says why); ``replaced_anchors`` the first measurement of search anchors too close to
    normalise by, which a measurement with more repeats replaced (kept for its cost);
    ``hypervolume`` the estimate of the true hypervolume of the reported front after each
    result (:func:`~paretomerge.search.claims.hypervolume_claim`), the evaluation whose
    result it followed in ``hypervolume_after`` (which older checkpoints lack for their
    first entries), and ``hypervolume_interval`` the 90% interval of the latest;
    ``cost_budget`` the cost budget the run last went by (``None``: its candidates are
    counted, not their cost)."""

    version: int = STATE_VERSION
    run: str
    phase: Phase = "Pending"
    message: str = ""
    num_layers: int | None = None
    profile: list[float] | None = None
    anchors: dict[str, AnchorRecord] = {}
    optimizer: dict[str, Any] | None = None
    candidates: list[CandidateRecord] = []
    validations: list[ValidationRecord] = []
    held_out_anchors: dict[str, AnchorRecord] = {}
    replaced_anchors: dict[str, AnchorRecord] = {}
    validation_fallback: str | None = None
    hypervolume: list[float] = []
    hypervolume_after: list[str] = []
    hypervolume_interval: tuple[float, float] | None = None
    cost_budget: CostBudgetSpec | None = None
    task_attempts: dict[str, TaskAttempts] = {}
    started: str = Field(default_factory=now)
    updated: str = Field(default_factory=now)

    @field_validator("task_attempts", mode="before")
    @classmethod
    def _counted_attempts(cls, value: Any) -> Any:
        """Checkpoints before :class:`TaskAttempts` counted a task's attempts started, the
        newest one due: every earlier one had failed, for a reason not kept."""
        return {
            task: {"attempts": count, "reasons": ["(reason not recorded)"] * (count - 1)}
            if isinstance(count, int)
            else count
            for task, count in (value or {}).items()
        }

    def count(self, status: CandidateStatus) -> int:
        """Candidates of ``status`` (validations are counted apart)."""
        return sum(c.status == status for c in self.candidates)

    def count_validations(self, status: CandidateStatus) -> int:
        return sum(v.status == status for v in self.validations)

    @property
    def validations_finished(self) -> int:
        """Validations evaluated or given up: what the validation budget counts."""
        return sum(v.status != "running" for v in self.validations)

    @property
    def spent(self) -> int:
        """What the search's budget counts: every candidate proposed, whatever became of
        it (running, evaluated, screened out or given up)."""
        return len(self.candidates)

    @property
    def finished(self) -> int:
        """Candidates evaluated, screened out or given up (none of them running)."""
        return self.count("succeeded") + self.count("screened") + self.count("failed")

    @property
    def cost(self) -> CostTotal:
        """What the candidates' and validations' evaluations cost, those with a known cost
        (a failed attempt's is not known). The anchors, evaluated once and cached
        for every run on the same models and data, are counted apart
        (:attr:`anchor_cost`)."""
        records = [*self.candidates, *self.validations]
        return CostTotal.of(r.cost for r in records if r.cost is not None)

    @property
    def anchor_cost(self) -> CostTotal:
        """What this run's anchor evaluations cost (the cached ones: nothing)."""
        anchors = [*self.anchors.values(), *self.held_out_anchors.values()]
        anchors += self.replaced_anchors.values()
        return CostTotal.of(a.cost for a in anchors if a.cost is not None)

    @property
    def paid(self) -> CostTotal:
        """What a cost budget counts: every evaluation this run paid for, the anchors it
        evaluated (not those from the cache), the candidates (a screened one for the
        stages it asked) and the validations (a failed attempt's cost is not known)."""
        records = [*self.anchors.values(), *self.held_out_anchors.values()]
        records += [*self.replaced_anchors.values(), *self.candidates, *self.validations]
        return CostTotal.of(r.cost for r in records if r.cost is not None)

    def trial_of(self, record: EvaluationRecord) -> int:
        """The optimiser trial of a candidate or validation (in older checkpoints, a
        candidate's position)."""
        return self.candidates.index(record) if record.trial is None else record.trial

    def candidate(self, candidate_id: str) -> CandidateRecord:
        for candidate in self.candidates:
            if candidate.id == candidate_id:
                return candidate
        raise KeyError(candidate_id)

    def evaluation(self, task_id: str) -> CandidateRecord | ValidationRecord:
        """The candidate or validation of task ``task_id``."""
        for record in [*self.candidates, *self.validations]:
            if record.id == task_id:
                return record
        raise KeyError(task_id)

    def save(self, run_dir: Path) -> None:
        self.updated = now()
        write_atomic(RunLayout(run_dir).checkpoint, self.model_dump_json(indent=1) + "\n")

    @classmethod
    def load(cls, run_dir: Path) -> RunState | None:
        path = RunLayout(run_dir).checkpoint
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"{path}: unsupported checkpoint version {data.get('version')!r}")
        return cls.model_validate(data)
