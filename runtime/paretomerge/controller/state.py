"""The controller's state: everything needed to resume a run, as one JSON checkpoint.

It is written (atomically) after every change that matters: a candidate launched, a
result or failure recorded. Candidate ``i`` is trial ``i`` of the optimiser, so a
restored controller knows which points are still being evaluated.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from paretomerge.results import Scores

CHECKPOINT_FILE = "checkpoint.json"
STATE_VERSION = 1

Phase = Literal["Pending", "Profiling", "Anchoring", "Searching", "Succeeded", "Failed"]
CandidateStatus = Literal["running", "succeeded", "failed"]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class CandidateRecord(BaseModel):
    """One candidate merge and what became of it.

    ``x`` is its decision vector in ``[0, 1]^d``, ``variables`` the same in merge-weight
    units; ``attempts`` counts attempts started; ``objectives`` is ``(f1, f2)``;
    ``scores`` the raw scores per benchmark; ``seconds`` the time of each stage.
    """

    id: str
    x: list[float]
    variables: list[float]
    status: CandidateStatus = "running"
    attempts: int = 1
    reasons: list[str] = []
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
    task_attempts: dict[str, int] = {}
    started: str = Field(default_factory=now)
    updated: str = Field(default_factory=now)

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
        path = run_dir / CHECKPOINT_FILE
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(self.model_dump_json(indent=1) + "\n")
        os.replace(temporary, path)

    @classmethod
    def load(cls, run_dir: Path) -> RunState | None:
        path = run_dir / CHECKPOINT_FILE
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"{path}: unsupported checkpoint version {data.get('version')!r}")
        return cls.model_validate(data)
