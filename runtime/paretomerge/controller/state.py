"""The controller's state: everything needed to resume a run, as one JSON checkpoint.

It is written (atomically) after every change that matters: a candidate launched, a
result or failure recorded. Candidate ``i`` is trial ``i`` of the optimiser, so a
restored controller knows which points are still being evaluated. Every task (the
profile, the anchors, each candidate) keeps its attempts the same way
(:class:`TaskAttempts`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from paretomerge.files import write_atomic
from paretomerge.results import Scores
from paretomerge.run_layout import RunLayout

STATE_VERSION = 1

Phase = Literal["Pending", "Profiling", "Anchoring", "Searching", "Succeeded", "Failed"]
CandidateStatus = Literal["running", "succeeded", "failed"]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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


class CandidateRecord(TaskAttempts):
    """One candidate merge and what became of it.

    ``x`` is its decision vector in ``[0, 1]^d``, ``variables`` the same in merge-weight
    units; ``objectives`` is ``(f1, f2)``; ``scores`` the raw scores per benchmark;
    ``seconds`` the time of each stage.
    """

    id: str
    x: list[float]
    variables: list[float]
    status: CandidateStatus = "running"
    objectives: list[float] | None = None
    scores: Scores | None = None
    seconds: dict[str, float] = {}
    merged_model: str | None = None
    created: str = Field(default_factory=now)
    finished: str | None = None


class AnchorRecord(BaseModel):
    """The evaluation of the base or the expert, and where it came from."""

    model: str
    scores: Scores
    cache_key: str
    cached: bool = False


class RunState(BaseModel):
    """A run's progress; ``optimizer`` is :meth:`AskTellOptimizer.state_dict`."""

    version: int = STATE_VERSION
    run: str
    phase: Phase = "Pending"
    message: str = ""
    num_layers: int | None = None
    profile: list[float] | None = None
    anchors: dict[str, AnchorRecord] = {}
    optimizer: dict[str, Any] | None = None
    candidates: list[CandidateRecord] = []
    hypervolume: list[float] = []
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
        return sum(c.status == status for c in self.candidates)

    @property
    def finished(self) -> int:
        """Candidates evaluated or given up: what the budget counts."""
        return self.count("succeeded") + self.count("failed")

    def candidate(self, candidate_id: str) -> CandidateRecord:
        for candidate in self.candidates:
            if candidate.id == candidate_id:
                return candidate
        raise KeyError(candidate_id)

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
