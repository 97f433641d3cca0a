"""One benchmark through evalscope against a served model, read back sample by sample.

evalscope is the OpenAI client (``eval_type='openai_api'``). It keeps, per sample:

- ``predictions/<model>/<benchmark>_<subset>.jsonl``: the model output, with the API's
  ``usage.completion_tokens`` as ``model_output.usage.output_tokens`` and the reply as
  ``model_output.choices[0].message.content`` (a string, or parts: evalscope moves a
  complete ``<think>...</think>`` block, or a server's ``reasoning_content``, into a
  ``reasoning`` part);
- ``reviews/<model>/<benchmark>_<subset>.jsonl``: the score, keyed by the same
  ``index``: ``sample_score.score.value[main_score_name]`` (``accuracy`` for multiple
  choice, ``acc`` for the others, where the name is left out as the only value), 1.0 if
  right; a sample its benchmark could not score has no value and counts as wrong.

Those two files are the records read here; nothing is recounted. evalscope numbers the
samples of ``n`` questions asked ``r`` times ``0 .. n r - 1``, the repeats of a question
one after the other: sample ``i`` is repeat ``i mod r`` of the ``i // r``-th question
it was given, whose id is that position in :attr:`PreparedBenchmark.question_ids`.
:func:`write_records` keeps the records beside evalscope's outputs as
``records.jsonl``, one line per sample with its question id.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

from paretomerge.evaluate.benchmarks import PreparedBenchmark
from paretomerge.evaluate.scoring import THINK_CLOSE, SampleRecord
from paretomerge.evaluate.serving import ServedModel
from paretomerge.spec import SamplingSpec

MODEL_ID = "model"  # evalscope's folder name for the model under predictions/ and reviews/
RECORDS_FILE = "records.jsonl"


class EvalscopeOutputError(RuntimeError):
    """evalscope's outputs lack what a score needs (a sample's review or token usage)."""


def generation_config(sampling: SamplingSpec, max_tokens: int, timeout_s: float) -> dict[str, Any]:
    """evalscope's ``generation_config``: what every request carries (``top_k`` goes in the
    request body, as vLLM reads it) and the per-request timeout in seconds."""
    return {
        "max_tokens": max_tokens,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "top_k": sampling.top_k,
        "timeout": timeout_s,
    }


def run_benchmark(
    benchmark: PreparedBenchmark,
    served: ServedModel,
    *,
    sampling: SamplingSpec,
    max_tokens: int,
    concurrency: int,
    timeout_s: float,
    out_dir: Path,
) -> list[SampleRecord]:
    """Run ``benchmark`` against ``served`` with evalscope, each of its questions
    ``benchmark.repeats`` times; outputs and logs go to ``out_dir`` (emptied first, so a
    retry never reads an earlier attempt's samples), the records to
    ``out_dir/records.jsonl``.

    Raises:
        EvalscopeOutputError: a sample has no review or no token usage.
    """
    from evalscope import TaskConfig, run_task

    shutil.rmtree(out_dir, ignore_errors=True)
    config = TaskConfig(
        eval_type="openai_api",
        api_url=served.base_url,
        api_key=served.api_key,
        model=served.model,
        model_id=MODEL_ID,
        datasets=[benchmark.dataset],
        dataset_args={benchmark.dataset: benchmark.dataset_args},
        generation_config=generation_config(sampling, max_tokens, timeout_s),
        repeats=benchmark.repeats,
        eval_batch_size=concurrency,
        work_dir=str(out_dir),
        no_timestamp=True,
    )
    run_task(config)
    records = read_records(out_dir, benchmark)
    write_records(records, out_dir / RECORDS_FILE)
    return records


def write_records(records: list[SampleRecord], path: Path) -> None:
    """``records`` as JSON lines: ``question``, ``repeat``, ``correct``, ``output_tokens``,
    ``thinking_closed``."""
    lines = (json.dumps(dataclasses.asdict(record)) + "\n" for record in records)
    path.write_text("".join(lines), encoding="utf-8")


def read_records_file(path: Path) -> list[SampleRecord]:
    """The records :func:`write_records` left in ``path``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [SampleRecord(**json.loads(line)) for line in lines if line.strip()]


def _rows(path: Path) -> dict[int, dict[str, Any]]:
    """A predictions or reviews file's rows by sample ``index`` (empty if it is missing)."""
    if not path.is_file():
        return {}
    lines = path.read_text(encoding="utf-8").splitlines()
    rows = (json.loads(line) for line in lines if line.strip())
    return {row["index"]: row for row in rows}


def output_closed_thinking(content: str | list[dict[str, Any]] | None) -> bool:
    """Whether a reply, as evalscope stored it, closed a think block: a ``</think>`` in
    its text, or a ``reasoning`` part (evalscope splits off complete blocks only)."""
    if isinstance(content, str):
        return THINK_CLOSE in content
    return any(
        part.get("type") == "reasoning" or THINK_CLOSE in (part.get("text") or "")
        for part in content or []
    )


def sample_correct(score: dict[str, Any]) -> bool:
    """Whether a review's score (``sample_score.score``) says the answer was right."""
    values = score.get("value") or {}
    key = score.get("main_score_name") or (next(iter(values)) if len(values) == 1 else None)
    return float(values.get(key, 0.0)) == 1.0


def read_records(out_dir: Path, benchmark: PreparedBenchmark) -> list[SampleRecord]:
    """Per-sample records of ``benchmark`` from evalscope's predictions and reviews.

    Raises:
        EvalscopeOutputError: a failed request, or a prediction without review or usage.
    """
    records = []
    for predictions_file in sorted(
        (out_dir / "predictions" / MODEL_ID).glob(f"{benchmark.dataset}_*.jsonl")
    ):
        reviews = _rows(out_dir / "reviews" / MODEL_ID / predictions_file.name)
        for index, prediction in sorted(_rows(predictions_file).items()):
            where = f"benchmark {benchmark.name!r}, sample {index} of {predictions_file}"
            output = prediction.get("model_output") or {}
            if output.get("error"):
                raise EvalscopeOutputError(f"{where}: the request failed: {output['error']}")
            if index not in reviews:
                raise EvalscopeOutputError(f"{where}: evalscope wrote no review")
            if output.get("usage") is None:
                raise EvalscopeOutputError(
                    f"{where}: the server returned no usage, so output tokens are unknown"
                )
            position, repeat = divmod(index, benchmark.repeats)
            if position >= len(benchmark.question_ids):
                raise EvalscopeOutputError(
                    f"{where}: beyond the {len(benchmark.question_ids)} question(s) asked "
                    f"{benchmark.repeats} time(s) each"
                )
            message = ((output.get("choices") or [{}])[0]).get("message") or {}
            records.append(
                SampleRecord(
                    correct=sample_correct(reviews[index]["sample_score"]["score"]),
                    output_tokens=int(output["usage"]["output_tokens"]),
                    thinking_closed=output_closed_thinking(message.get("content")),
                    question=benchmark.question_ids[position],
                    repeat=repeat,
                )
            )
    return records
