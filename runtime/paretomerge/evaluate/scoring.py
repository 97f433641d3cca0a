"""Per-benchmark metrics from per-sample records.

No evalscope here: these are plain functions over the records that
:func:`paretomerge.evaluate.evalscope_task.read_records` takes from evalscope's outputs,
so they can be checked on their own. The scores are the typed
:class:`~paretomerge.results.BenchmarkScore`.

Definitions:

A benchmark of ``n`` questions asked ``r`` times each (evalscope's ``repeats``) gives
``n r`` samples, each a :class:`SampleRecord` naming its question and repeat.

- ``accuracy``: share of the ``n r`` samples scored correct (the mean over the repeats
  of each question's accuracy); a sample the benchmark could not score (evalscope marks
  it excluded, e.g. an AIME answer its math parser rejects) counts as wrong.
- ``accuracy_stderr``: ``sqrt(q (1 - q) / (n r))``, the binomial standard error at
  ``q = (k + 1/2) / (n r + 1)`` for ``k`` correct samples (Jeffreys' estimate of ``p``):
  about ``sqrt(p (1 - p) / (n r))``, but never 0, since all answers right (or wrong) on a
  few questions does not make the accuracy known (a zero variance would make a surrogate
  trust the point, and screening stop a candidate on 8 questions).
- ``mean_output_tokens``: mean of the API's ``usage.completion_tokens`` over the samples
  (every generated token, thinking included).
- ``mean_output_tokens_stderr``: ``sd / sqrt(n r)``, with ``sd`` the samples' standard
  deviation shrunk towards a prior one (:func:`tokens_stderr`): never 0, and a stage of
  a few answers (3 of AIME25's) borrows the spread that output lengths have everywhere
  instead of resting on 2 degrees of freedom.
- ``n``: the questions asked, ``repeats``: how many times each was asked.

Both standard errors assume that the ``n r`` samples are independent draws: the
questions a sample of the population of such questions, every generation a fresh draw
of the model's sampling. Repeats of one question are correlated (the question's own
difficulty and length are shared), so with ``r > 1`` these errors measure the
generation noise of these ``n`` questions, the noise a search compares candidates
under, and understate the error against other questions by up to ``sqrt(r)``.
- ``thinking_closed``: share of *all* outputs that closed a think block (``</think>``).
  Not of the outputs that opened one: Qwen3 thinking templates put ``<think>`` in the
  prompt, so a model's output often carries only the closing tag. An instruct model
  that never thinks scores 0.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from paretomerge.results import BenchmarkScore

THINK_CLOSE = "</think>"
# The prior of an answer's output length: its coefficient of variation around the
# model's mean (measured on Qwen3 answers to GPQA-Diamond and AIME25 it is 0.5-0.7; the
# benchmark's simulator draws 0.64), held with the weight of this many answers.
PRIOR_TOKENS_CV = 0.5
PRIOR_TOKENS_ANSWERS = 4
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
    (``usage.completion_tokens``), did its output close a think block, which question it
    was (its row in the benchmark's data, from 0) and which repeat of it (from 0)."""

    correct: bool
    output_tokens: int
    thinking_closed: bool
    question: int
    repeat: int = 0


def accuracy_stderr(correct, samples):
    """``sqrt(q (1 - q) / N)`` at Jeffreys' ``q = (k + 1/2) / (N + 1)`` for ``k`` correct
    of ``N`` samples: never 0 (see the module docstring). Scalars or numpy arrays."""
    q = (correct + 0.5) / (samples + 1)
    return (q * (1.0 - q) / samples) ** 0.5


def tokens_stderr(mean, sd, samples):
    r"""The standard error of a mean output length over ``N`` samples of mean ``m`` and
    standard deviation ``s`` (``N - 1`` degrees of freedom), the variance shrunk towards
    the prior :math:`s_0 = c\,m` (``c`` = ``PRIOR_TOKENS_CV``) held with the weight of
    :math:`\nu_0` answers (``PRIOR_TOKENS_ANSWERS``), as a conjugate normal prior on the
    variance does:

    .. math:: \hat s^2 = \frac{\nu_0 s_0^2 + (N - 1) s^2}{\nu_0 + N - 1}, \qquad
              \text{se} = \hat s / \sqrt N.

    Three answers all cut at ``max_tokens`` (``s = 0``) get ``se = 0.24 m``, not 0; a
    hundred answers keep their own spread within 2%. Scalars or numpy arrays.
    """
    prior = PRIOR_TOKENS_ANSWERS * (PRIOR_TOKENS_CV * mean) ** 2
    shrunk = (prior + (samples - 1) * sd**2) / (PRIOR_TOKENS_ANSWERS + samples - 1)
    return (shrunk / samples) ** 0.5


def score_benchmark(name: str, records: list[SampleRecord]) -> BenchmarkScore:
    """Aggregate per-sample records into a :class:`BenchmarkScore`.

    Raises:
        ValueError: ``records`` is empty.
    """
    if not records:
        raise ValueError(f"benchmark {name!r}: no samples were evaluated")
    samples = len(records)
    questions = len({r.question for r in records})
    correct = sum(r.correct for r in records)
    tokens = [r.output_tokens for r in records]
    mean_tokens = statistics.fmean(tokens)
    return BenchmarkScore(
        name=name,
        accuracy=correct / samples,
        accuracy_stderr=accuracy_stderr(correct, samples),
        mean_output_tokens=mean_tokens,
        mean_output_tokens_stderr=tokens_stderr(
            mean_tokens, statistics.stdev(tokens) if samples > 1 else 0.0, samples
        ),
        thinking_closed=sum(r.thinking_closed for r in records) / samples,
        n=questions,
        repeats=round(samples / questions),
    )
