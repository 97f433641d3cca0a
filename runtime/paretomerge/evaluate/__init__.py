"""Evaluation of one model: served behind an OpenAI-compatible endpoint, queried by evalscope.

::

    result = evaluate_model(
        model_dir,
        evaluation=run.spec.evaluation,
        objectives=run.spec.objectives,
        sampling=run.spec.evaluation.sampling,  # base_sampling for the base model
        volume=Path("/data"),
        work_dir=Path("/data/runs/x/candidate-3/eval"),
    )
    result.scores["aime25"].accuracy, result.scores["aime25"].mean_output_tokens

Steps: check and convert every benchmark's data (:mod:`.benchmarks`), serve the model
(:mod:`.serving`: ``vllm serve``, the built-in transformers server, or the user's
endpoint), run each benchmark through evalscope (:mod:`.evalscope_task`), and aggregate
the per-sample records (:mod:`.scoring`). ``work_dir`` receives the server's log
(``server.log``), the converted user data (``data/``) and evalscope's outputs and logs
per benchmark (``benchmarks/<name>/``, with the per-sample records, question ids
included, as ``records.jsonl``). A screened evaluation keeps evalscope's outputs per
stage (``benchmarks/<name>/stage-<k>/``) and where it stands after each stage
(``stages/stage-<k>.json``: :mod:`paretomerge.screening_files`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from paretomerge.evaluate.benchmarks import (
    BenchmarkDataError,
    PreparedBenchmark,
    prepare_benchmarks,
)
from paretomerge.evaluate.evalscope_task import (
    RECORDS_FILE,
    EvalscopeOutputError,
    read_records_file,
    run_benchmark,
    write_records,
)
from paretomerge.evaluate.scoring import SampleRecord, score_benchmark
from paretomerge.evaluate.serving import ServedModel, ServingError, serve
from paretomerge.questions import QuestionSplit, QuestionStages, asked_ids
from paretomerge.results import BenchmarkScore, EvaluationCost, EvaluationResult, StageResult
from paretomerge.screening_files import read_screening_stage, write_screening_stage
from paretomerge.spec import BenchmarkSpec, EvaluationSpec, ObjectivesSpec, SamplingSpec

__all__ = [
    "BenchmarkDataError",
    "BenchmarkScore",
    "EvalscopeOutputError",
    "EvaluationResult",
    "ServingError",
    "evaluate_model",
]


def evaluate_model(
    model_dir: Path,
    *,
    evaluation: EvaluationSpec,
    objectives: ObjectivesSpec,
    sampling: SamplingSpec,
    volume: Path,
    work_dir: Path,
    questions: QuestionSplit | None = None,
    repeats: int | None = None,
    stages: QuestionStages | None = None,
    stop_requested: Callable[[], bool] = lambda: False,
) -> EvaluationResult:
    """Score the model in ``model_dir`` on every benchmark of ``objectives``.

    Benchmark paths are relative to ``volume``; ``objectives.limit`` caps the questions
    per benchmark (its first ones), of which ``questions`` picks one side of a held-out
    split (default: all); each is asked ``repeats`` times (default:
    ``objectives.repeats``, or its benchmark's own ``repeats``); every request carries
    ``sampling`` and ``evaluation.max_tokens``.

    With ``stages`` the questions are asked stage by stage, in the run's seeded order,
    all from one served model: after each stage ``stages/stage-<k>.json`` (a
    :class:`StageResult`) holds the scores so far, and the next stage starts only if
    ``stop_requested()`` is false (otherwise the result has ``stopped_after``). A stage
    whose file exists (an earlier attempt finished it) is read back, not asked again.

    ``seconds`` in the result is the whole call's wall-clock time, serving included;
    its ``cost`` the answers, output tokens, server start and generation seconds
    (:class:`~paretomerge.results.EvaluationCost`, without merge and GPUs; with stages,
    those of the stages earlier attempts finished included).

    Raises:
        BenchmarkDataError: missing or malformed data (raised before serving).
        ServingError: the model could not be served (with the server log's tail).
        EvalscopeOutputError: evalscope's outputs lack a review or token usage.
    """
    started = time.monotonic()
    work_dir, volume = Path(work_dir), Path(volume)
    spent = _Spent()

    def chosen(spec: BenchmarkSpec, count: int) -> list[int]:
        try:
            return asked_ids(spec.name, count, objectives.limit, questions)
        except ValueError as error:
            raise BenchmarkDataError(str(error)) from None

    def ask(benchmark: PreparedBenchmark, served: ServedModel, out_dir: Path) -> list[SampleRecord]:
        spec = next(s for s in objectives.benchmarks if s.name == benchmark.name)
        generating = time.monotonic()
        records = run_benchmark(
            replace(benchmark, repeats=repeats or objectives.repeats_of(spec)),
            served,
            sampling=sampling,
            max_tokens=evaluation.max_tokens,
            concurrency=evaluation.concurrency,
            timeout_s=evaluation.timeout_seconds,
            out_dir=out_dir,
        )
        spent.generated(records, time.monotonic() - generating)
        return records

    benchmarks = prepare_benchmarks(objectives.benchmarks, volume, work_dir / "data", chosen)
    if stages is None:
        with serve(Path(model_dir), evaluation, log_dir=work_dir) as served:
            spent.serve_seconds += served.startup_seconds
            scores = {
                b.name: score_benchmark(b.name, ask(b, served, work_dir / "benchmarks" / b.name))
                for b in benchmarks
            }
        return EvaluationResult(
            scores=scores, seconds=time.monotonic() - started, cost=spent.cost()
        )

    # Stage k asks, of each benchmark, the k-th slice of its questions in the run's order.
    plan = {b.name: stages.stage_ids(b.name, b.question_ids) for b in benchmarks}
    count = max(map(len, plan.values()))
    records: dict[str, list[SampleRecord]] = {b.name: [] for b in benchmarks}
    with contextlib.ExitStack() as serving:
        served: ServedModel | None = None
        for stage in range(1, count + 1):
            specs = [s for s in objectives.benchmarks if len(plan[s.name]) >= stage]
            finished = read_screening_stage(work_dir, stage)
            if finished is not None:  # by an earlier attempt
                for spec in specs:
                    out_dir = work_dir / "benchmarks" / spec.name / f"stage-{stage}"
                    records[spec.name] += read_records_file(out_dir / RECORDS_FILE)
                spent.before = finished.cost
                continue
            if stage > 1 and stop_requested():
                return EvaluationResult(
                    scores=_scores(records),
                    seconds=time.monotonic() - started,
                    cost=spent.cost(),
                    stopped_after=stage - 1,
                )
            if served is None:
                served = serving.enter_context(serve(Path(model_dir), evaluation, work_dir))
                spent.serve_seconds += served.startup_seconds
            prepared = prepare_benchmarks(
                specs,
                volume,
                work_dir / "data" / f"stage-{stage}",
                lambda spec, _count, stage=stage: plan[spec.name][stage - 1],
            )
            for benchmark in prepared:
                records[benchmark.name] += ask(
                    benchmark, served, work_dir / "benchmarks" / benchmark.name / f"stage-{stage}"
                )
                write_records(
                    records[benchmark.name], work_dir / "benchmarks" / benchmark.name / RECORDS_FILE
                )
            result = StageResult(
                stage=stage,
                stages=count,
                scores=_scores(records),
                seconds=time.monotonic() - started,
                cost=spent.cost(),
            )
            write_screening_stage(work_dir, result)
    return EvaluationResult(
        scores=_scores(records), seconds=time.monotonic() - started, cost=spent.cost()
    )


@dataclass
class _Spent:
    """What this call has spent so far, on top of ``before`` (the stages an earlier
    attempt finished)."""

    before: EvaluationCost | None = None
    answers: int = 0
    output_tokens: int = 0
    serve_seconds: float = 0.0
    generate_seconds: float = 0.0

    def generated(self, records: list[SampleRecord], seconds: float) -> None:
        self.answers += len(records)
        self.output_tokens += sum(record.output_tokens for record in records)
        self.generate_seconds += seconds

    def cost(self) -> EvaluationCost:
        before = self.before or EvaluationCost()
        return EvaluationCost(
            answers=before.answers + self.answers,
            output_tokens=before.output_tokens + self.output_tokens,
            serve_seconds=before.serve_seconds + self.serve_seconds,
            generate_seconds=before.generate_seconds + self.generate_seconds,
        )


def _scores(records: dict[str, list[SampleRecord]]) -> dict[str, BenchmarkScore]:
    return {name: score_benchmark(name, done) for name, done in records.items()}
