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

Screened evaluations (``evaluation.screening``) ask their questions stage by stage, in
one seeded order of each benchmark's questions, the same for every candidate of a run:
question ``i`` is ranked by ``sha256(f"{seed}/order/{name}/{i}")``
(:func:`question_order`), and stage ``k`` asks the questions of that order up to its
share of them (:func:`stage_counts`).
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Sequence
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


def asked_ids(
    benchmark: str, count: int, limit: int | None, split: QuestionSplit | None
) -> list[int]:
    """The ids of the questions an evaluation asks of ``benchmark`` (``count`` questions):
    the first ``limit`` (``objectives.limit``; ``None``: all), of which ``split``'s side
    (``None``: every one), sorted.

    Raises:
        ValueError: a split of fewer than 2 questions.
    """
    count = min(count, limit or count)
    return list(range(count)) if split is None else split.ids(benchmark, count)


def question_order(benchmark: str, ids: Sequence[int], seed: int) -> list[int]:
    """``ids`` in the run's seeded order for ``benchmark``: the same for every candidate
    of a run (same seed), another for another seed."""

    def rank(i: int) -> str:
        return hashlib.sha256(f"{seed}/order/{benchmark}/{i}".encode()).hexdigest()

    return sorted(ids, key=rank)


def stage_counts(count: int, shares: Sequence[float]) -> list[int]:
    """How many of ``count`` questions have been asked after each stage: ``ceil(share *
    count)`` (at least 1), the last stage every question. Stages that would add no
    question are dropped, so the counts strictly increase and end at ``count``.

    ``shares`` are increasing fractions in (0, 1], the last one 1 (as the spec checks).
    """
    counts: list[int] = []
    for share in shares:
        asked = min(max(math.ceil(share * count - 1e-9), 1), count)
        if not counts or asked > counts[-1]:
            counts.append(asked)
    if counts[-1] != count:
        counts.append(count)
    return counts


class QuestionStages(BaseModel):
    """A screened evaluation's stages: after stage ``k`` the share ``shares[k]`` of each
    benchmark's questions has been asked, in the seeded order of ``seed``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    shares: list[float] = Field(min_length=2)
    seed: int

    def stage_ids(self, benchmark: str, ids: Sequence[int]) -> list[list[int]]:
        """The question ids each stage asks (new ones only, in the run's order); their
        concatenation is ``ids`` reordered. Fewer stages than ``shares`` for a benchmark
        too small to give each one a question."""
        order = question_order(benchmark, ids, self.seed)
        bounds = [0, *stage_counts(len(order), self.shares)] if order else [0]
        return [order[start:end] for start, end in itertools.pairwise(bounds)]
