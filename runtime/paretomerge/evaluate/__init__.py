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
included, as ``records.jsonl``).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from paretomerge.evaluate.benchmarks import BenchmarkDataError, prepare_benchmarks
from paretomerge.evaluate.evalscope_task import EvalscopeOutputError, run_benchmark
from paretomerge.evaluate.scoring import score_benchmark
from paretomerge.evaluate.serving import ServingError, serve
from paretomerge.questions import QuestionSplit
from paretomerge.results import BenchmarkScore, EvaluationCost, EvaluationResult
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
) -> EvaluationResult:
    """Score the model in ``model_dir`` on every benchmark of ``objectives``.

    Benchmark paths are relative to ``volume``; ``objectives.limit`` caps the questions
    per benchmark (its first ones), of which ``questions`` picks one side of a held-out
    split (default: all); each is asked ``repeats`` times (default:
    ``objectives.repeats``, or its benchmark's own ``repeats``); every request carries
    ``sampling`` and ``evaluation.max_tokens``.
    ``seconds`` in the result is the whole call's wall-clock time, serving included;
    its ``cost`` the answers, output tokens, server start and generation seconds
    (:class:`~paretomerge.results.EvaluationCost`, without merge and GPUs).

    Raises:
        BenchmarkDataError: missing or malformed data (raised before serving).
        ServingError: the model could not be served (with the server log's tail).
        EvalscopeOutputError: evalscope's outputs lack a review or token usage.
    """
    started = time.monotonic()
    work_dir = Path(work_dir)

    def chosen(spec: BenchmarkSpec, count: int) -> list[int]:
        count = min(count, objectives.limit or count)
        if questions is None:
            return list(range(count))
        try:
            return questions.ids(spec.name, count)
        except ValueError as error:
            raise BenchmarkDataError(str(error)) from None

    benchmarks = prepare_benchmarks(objectives.benchmarks, Path(volume), work_dir / "data", chosen)
    scores = {}
    answers = output_tokens = 0
    generate_seconds = 0.0
    with serve(Path(model_dir), evaluation, log_dir=work_dir) as served:
        for spec, benchmark in zip(objectives.benchmarks, benchmarks, strict=True):
            generating = time.monotonic()
            records = run_benchmark(
                replace(benchmark, repeats=repeats or objectives.repeats_of(spec)),
                served,
                sampling=sampling,
                max_tokens=evaluation.max_tokens,
                concurrency=evaluation.concurrency,
                timeout_s=evaluation.timeout_seconds,
                out_dir=work_dir / "benchmarks" / benchmark.name,
            )
            generate_seconds += time.monotonic() - generating
            answers += len(records)
            output_tokens += sum(record.output_tokens for record in records)
            scores[benchmark.name] = score_benchmark(benchmark.name, records)
    cost = EvaluationCost(
        questions=answers,
        output_tokens=output_tokens,
        serve_seconds=served.startup_seconds,
        generate_seconds=generate_seconds,
    )
    return EvaluationResult(scores=scores, seconds=time.monotonic() - started, cost=cost)
