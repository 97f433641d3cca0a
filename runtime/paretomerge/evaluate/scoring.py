"""Per-benchmark metrics from per-sample records.

No evalscope here: these are plain functions over the records that
:func:`paretomerge.evaluate.evalscope_task.read_records` takes from evalscope's outputs,
so they can be checked on their own. The scores are the typed
:class:`~paretomerge.results.BenchmarkScore`.

Definitions:

- ``accuracy``: share of the benchmark's samples scored correct; a sample the benchmark
  could not score (evalscope marks it excluded, e.g. an AIME answer its math parser
  rejects) counts as wrong, so ``n`` is always the number of questions asked.
- ``accuracy_stderr``: ``sqrt(p (1 - p) / n)``, the binomial standard error.
- ``mean_output_tokens``: mean of the API's ``usage.completion_tokens`` per sample
  (every generated token, thinking included).
- ``thinking_closed``: share of *all* outputs that closed a think block (``</think>``).
  Not of the outputs that opened one: Qwen3 thinking templates put ``<think>`` in the
  prompt, so a model's output often carries only the closing tag. An instruct model
  that never thinks scores 0.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from paretomerge.results import BenchmarkScore

THINK_CLOSE = "</think>"
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def final_number(output: str) -> str | None:
    """The answer of a ``numeric`` benchmark: the last number after the last
    ``</think>`` (in the whole output if there is none), or ``None``."""
    numbers = _NUMBER.findall(output.rsplit(THINK_CLOSE, 1)[-1])
    return numbers[-1] if numbers else None


def parse_number(text: str) -> Decimal | None:
    """``text`` as an exact decimal (``"42"``, ``"-3.50"``), or ``None`` if it is not one."""
    if _NUMBER.fullmatch(text.strip()) is None:
        return None
    try:
        return Decimal(text.strip())
    except InvalidOperation:
        return None


def numbers_equal(predicted: str | None, reference: str) -> bool:
    """Whether two decimal strings denote the same number (``"42"`` == ``"42.0"``)."""
    if predicted is None:
        return False
    left, right = parse_number(predicted), parse_number(reference)
    return left is not None and right is not None and left == right


@dataclass(frozen=True)
class SampleRecord:
    """One answered question: was it right, how many tokens did the model generate
    (``usage.completion_tokens``), and did its output close a think block."""

    correct: bool
    output_tokens: int
    thinking_closed: bool


def score_benchmark(name: str, records: list[SampleRecord]) -> BenchmarkScore:
    """Aggregate per-sample records into a :class:`BenchmarkScore`.

    Raises:
        ValueError: ``records`` is empty.
    """
    if not records:
        raise ValueError(f"benchmark {name!r}: no samples were evaluated")
    n = len(records)
    accuracy = sum(r.correct for r in records) / n
    return BenchmarkScore(
        name=name,
        accuracy=accuracy,
        accuracy_stderr=math.sqrt(accuracy * (1.0 - accuracy) / n),
        mean_output_tokens=sum(r.output_tokens for r in records) / n,
        thinking_closed=sum(r.thinking_closed for r in records) / n,
        n=n,
    )
