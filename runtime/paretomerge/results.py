"""The typed results: what an evaluation or a task leaves, and what everyone else reads.

A task writes its result as ``result.json`` in its work directory (:mod:`paretomerge.tasks`);
the controller, the anchor cache, the objectives, the run's artifacts, the status, the
report and the CLI read these models, never string-keyed dicts. The JSON is pydantic's
dump of each model, so the files stay what they were: ``{"accuracy": 0.41, ...}``.

A field added later gets a default, so that files written before it still load; fields
this version does not know (written by a newer one) are ignored. NaN and infinities are
refused: a score that is not a number is no result.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class ResultModel(BaseModel):
    model_config = ConfigDict(frozen=True, allow_inf_nan=False)


class BenchmarkScore(ResultModel):
    """A model's result on one benchmark.

    ``accuracy`` and ``thinking_closed`` are fractions in [0, 1], ``accuracy_stderr`` is
    in the same unit as ``accuracy``, ``mean_output_tokens`` and its standard error
    ``mean_output_tokens_stderr`` are in tokens per answer, ``n`` counts questions and
    ``repeats`` how many times each was asked; every figure is over the ``n * repeats``
    answers (see :mod:`paretomerge.evaluate.scoring` for the definitions). Results
    written before the token error was measured have ``None`` there.
    """

    name: str
    accuracy: float
    accuracy_stderr: float
    mean_output_tokens: float
    mean_output_tokens_stderr: float | None = None
    thinking_closed: float
    n: int
    repeats: int = 1


#: Scores by benchmark name, in the run's benchmark order.
Scores = dict[str, BenchmarkScore]


class EvaluationResult(ResultModel):
    """One model evaluated: every benchmark's score and the wall-clock seconds the
    evaluation took (serving the model included). ``paretomerge evaluate --out`` writes it.

    A screened evaluation (asked its questions in stages) that was stopped early has
    ``stopped_after``, the last stage it finished (from 1), and its scores cover the
    questions asked until then; ``None``: every question was asked.
    """

    scores: Scores
    seconds: float
    stopped_after: int | None = None


class StageResult(ResultModel):
    """Where a screened evaluation stands after stage ``stage`` (from 1) of ``stages``:
    ``scores`` over every question asked so far, and the seconds since it started."""

    stage: int
    stages: int
    scores: Scores
    seconds: float


class ProfileResult(ResultModel):
    """What a profile task leaves: the divergence of every layer and of the head (the
    default statistic; the whole profile is ``profile.json`` beside it) and its seconds."""

    task: str
    kind: Literal["profile"] = "profile"
    layers: list[float]
    head: float
    seconds: dict[str, float] = {}

    @property
    def merge_weight_profile(self) -> list[float]:
        """Divergence per merge weight: the layers, then the head (``L + 1`` values)."""
        return [*self.layers, self.head]


class EvaluateTaskResult(ResultModel):
    """What an evaluate task leaves: the model's :class:`EvaluationResult`, where its
    merged weights stay (``None`` once deleted) and the seconds of each stage
    (``merge``, ``evaluate``)."""

    task: str
    kind: Literal["evaluate"] = "evaluate"
    role: Literal["base", "expert", "merged"]
    evaluation: EvaluationResult
    merged_model: str | None = None
    seconds: dict[str, float] = {}

    @property
    def scores(self) -> Scores:
        return self.evaluation.scores
