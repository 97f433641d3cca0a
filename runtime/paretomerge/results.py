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

from collections.abc import Iterable
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, computed_field


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


class Spending(ResultModel):
    """What evaluating spent: ``answers`` generated, ``sum_b n_b r_b`` over the benchmarks
    (``n_b`` questions asked ``r_b`` times each: a repeat counts as an answer of its own;
    files written before the rename call it ``questions``); ``output_tokens``, the tokens generated over all those answers (the sum
    of the API's ``usage.completion_tokens``, thinking included); and wall-clock seconds:
    ``merge_seconds`` writing the merge (0 for a model evaluated as it is),
    ``serve_seconds`` from launching the model server until its ``/health`` answered (0
    for the ``endpoint`` engine, which starts nothing), ``generate_seconds`` the
    benchmarks' evalscope runs against the served model."""

    answers: int = Field(default=0, validation_alias=AliasChoices("answers", "questions"))
    output_tokens: int = 0
    merge_seconds: float = 0.0
    serve_seconds: float = 0.0
    generate_seconds: float = 0.0


class EvaluationCost(Spending):
    """What one evaluation cost: its :class:`Spending` and ``gpus``, the GPUs of the pod
    (or the machine) that served the model, 0 on a CPU.

    :attr:`gpu_seconds` is what the GPUs were held for: ``(serve + generate) * gpus``
    (the merge runs on the CPU, in a container without them); it is written with the
    fields, and recomputed when read.
    """

    gpus: int = 0

    @computed_field
    @property
    def gpu_seconds(self) -> float:
        return (self.serve_seconds + self.generate_seconds) * self.gpus


class CostTotal(Spending):
    """The sum of the :class:`EvaluationCost` of ``evaluations`` evaluations (GPU-seconds
    summed per evaluation, each with its own GPUs)."""

    evaluations: int = 0
    gpu_seconds: float = 0.0

    @classmethod
    def of(cls, costs: Iterable[EvaluationCost]) -> CostTotal:
        costs = list(costs)
        spent = {name: sum(getattr(c, name) for c in costs) for name in Spending.model_fields}
        return cls(evaluations=len(costs), gpu_seconds=sum(c.gpu_seconds for c in costs), **spent)


class EvaluationResult(ResultModel):
    """One model evaluated: every benchmark's score, the wall-clock seconds the
    evaluation took (serving the model included) and its ``cost`` (no merge, no GPUs:
    the task that ran it knows those; ``None`` in results written before costs were
    measured). ``paretomerge evaluate --out`` writes it.

    A screened evaluation (asked its questions in stages) that was stopped early has
    ``stopped_after``, the last stage it finished (from 1), and its scores and cost cover
    the questions asked until then; ``None``: every question was asked.
    """

    scores: Scores
    seconds: float
    cost: EvaluationCost | None = None
    stopped_after: int | None = None


class StageResult(ResultModel):
    """Where a screened evaluation stands after stage ``stage`` (from 1) of ``stages``:
    ``scores`` over every question asked so far, the seconds since it started, and what
    every stage so far cost (``cost``: answers, tokens, server starts and generation of
    every attempt that asked them; no merge, no GPUs)."""

    stage: int
    stages: int
    scores: Scores
    seconds: float
    cost: EvaluationCost | None = None


class ProfileResult(ResultModel):
    """What a profile task leaves: the divergence of every layer and of the head (the
    default statistic; the whole profile is ``profile.json`` beside it), with an
    activation profile the ``prior`` that combines both (``L + 1`` values), and its
    seconds."""

    task: str
    kind: Literal["profile"] = "profile"
    layers: list[float]
    head: float
    prior: list[float] | None = None
    seconds: dict[str, float] = {}

    @property
    def merge_weight_profile(self) -> list[float]:
        """What the search's prior sees per merge weight, the layers then the head
        (``L + 1`` values): the combined ``prior``, else the divergence."""
        return self.prior if self.prior is not None else [*self.layers, self.head]


class EvaluateTaskResult(ResultModel):
    """What an evaluate task leaves: the model's :class:`EvaluationResult`, where its
    merged weights stay (``None`` once deleted), the seconds of each step (``merge``,
    ``evaluate``) and the whole evaluation's ``cost``, merge and GPUs included (``None``
    in results written before costs were measured)."""

    task: str
    kind: Literal["evaluate"] = "evaluate"
    role: Literal["base", "expert", "merged"]
    evaluation: EvaluationResult
    merged_model: str | None = None
    seconds: dict[str, float] = {}
    cost: EvaluationCost | None = None

    @property
    def scores(self) -> Scores:
        return self.evaluation.scores
