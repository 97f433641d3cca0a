"""Which questions of a benchmark an evaluation asks: all of them, or one side of a
seeded held-out split.

With ``search.validation.heldOut`` a fraction of each benchmark's questions is kept from
the search: search evaluations (candidates, and the anchors that normalise them) never
ask them, validation evaluations (and their anchors) ask only them, so a validated value
is not biased by the search having picked its candidate on the same questions.

The split depends on the run's seed, the benchmark's name and the question's id alone
(its row in the benchmark's data, from 0; after ``objectives.limit``): question ``i`` is
ranked by ``sha256(f"{seed}/{name}/{i}")``, and the ``round(fraction * count)`` first
(at least one, and never every question) are held out. Every task computes the same
split from the same data, with no list to carry around.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

QuestionPart = Literal["search", "held-out"]


class QuestionSplit(BaseModel):
    """The side ``part`` of the split that holds out ``held_out`` of each benchmark's
    questions, drawn by ``seed``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    held_out: float = Field(gt=0.0, lt=1.0)
    seed: int
    part: QuestionPart

    def held_out_ids(self, benchmark: str, count: int) -> list[int]:
        """The held-out question ids of a benchmark of ``count`` questions, sorted.

        Raises:
            ValueError: fewer than 2 questions, which cannot be split.
        """
        if count < 2:
            raise ValueError(
                f"benchmark {benchmark!r} has {count} question(s): holding some out of the "
                "search needs at least 2"
            )
        size = min(max(round(self.held_out * count), 1), count - 1)

        def rank(i: int) -> str:
            return hashlib.sha256(f"{self.seed}/{benchmark}/{i}".encode()).hexdigest()

        return sorted(sorted(range(count), key=rank)[:size])

    def ids(self, benchmark: str, count: int) -> list[int]:
        """The question ids of this side of the split, sorted."""
        held = set(self.held_out_ids(benchmark, count))
        return [i for i in range(count) if (i in held) == (self.part == "held-out")]
