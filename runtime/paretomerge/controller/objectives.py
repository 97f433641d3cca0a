"""Normalised objectives from benchmark scores, against the base and expert anchors.

For benchmarks ``s`` with accuracy ``acc_s`` and mean output tokens ``tok_s``, a model
``M`` scores (both maximised, each the mean over benchmarks)::

    f1 = mean_s (acc_s(M) - acc_s(base)) / (acc_s(expert) - acc_s(base))
    f2 = mean_s (tok_s(M) - tok_s(expert)) / (tok_s(base) - tok_s(expert))

so the base sits at ``(0, 1)`` and the expert at ``(1, 0)``. That needs anchors that
differ the expected way on every benchmark: an expert more accurate and more verbose than
the base. Anything else is an :class:`AnchorError`, not a division by zero.
Anchors that differ by less than their noise, or the wrong way round, are measured
again, on the benchmarks where they are close, asking each question more times
(:func:`judge_anchors`). Each benchmark weighs in f1 and f2 by one over its anchor gap,
and a gap under 2 standard errors is not known to be positive at 95% (Fieller: the
interval of a ratio is then unbounded); under 1, that benchmark's noise swamps the
others' signal and nothing can be claimed. It is common: on AIME25's 30 questions the
Qwen3-4B Instruct and Thinking pair measures close in 2 runs of 5, and the rule cuts the
normalisation error of both objectives by a quarter to two fifths at about three
candidates' tokens (``bench/anchor_rule.py``). The measurement again replaces the first,
not pooled with it: the first was chosen for being close, and pooling would keep that
bias. Still too close, the run ends with a :class:`CloseAnchorsError` that names the
benchmark (the wrong way round, an :class:`AnchorError`).

Every score is an estimate with a standard error (:mod:`paretomerge.evaluate.scoring`),
and so is every objective. Each term is a normalised value
``v = (m - lo) / (hi - lo)`` of the model's figure ``m`` between two anchors' (accuracy:
``lo`` the base, ``hi`` the expert; tokens: ``lo`` the expert, ``hi`` the base). The
delta method (first-order Taylor expansion, the three estimates independent) gives::

    Var v = (s_m^2 + (1 - v)^2 s_lo^2 + v^2 s_hi^2) / (hi - lo)^2

with ``s`` the standard errors, and ``Var f = sum_s Var v_s / S^2`` over the ``S``
benchmarks (evaluated on different questions, so independent). The first term is the
model's *own* variance; the anchors' terms, the uncertainty of each benchmark's anchor
gap ``hi - lo``, are shared by every candidate of a run (the same two anchor
evaluations normalise all of them). They do not rescale every candidate alike: ``f1``
and ``f2`` are means over benchmarks, and a noisy gap changes how much its benchmark
weighs against the others (on AIME25's 30 questions the expert-minus-base accuracy gap
has a coefficient of variation of about 0.3), and with it which candidate is better.
So every value carries them: the surrogate is told, and the run reports, the *total*
variance (measured under realistic noise, the front chosen with the total is worth more
of the best-known hypervolume than with the own variance alone:
``bench/search_efficiency.py``'s docstring). Where values are judged together, the
anchors' share is one error common to all of them, not an independent one per value:
the hypervolume's interval draws it once per draw for every point
(:func:`anchor_errors`, :mod:`paretomerge.search.claims`). The covariance of f1 and f2
(accuracy and length of the same answers) is not modelled; each is reported with its
own error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from paretomerge.results import BenchmarkScore, Scores
from paretomerge.search.claims import AnchorErrors
from paretomerge.spec import MAX_REPEATS

# Where the anchors sit in objective space, by the normalisation above: base, expert.
ANCHOR_OBJECTIVES = np.array([[0.0, 1.0], [1.0, 0.0]])
ANCHOR_OBJECTIVES.setflags(write=False)

# Decimals of every hypervolume shown to a user (report, plots, CLI, progress).
HYPERVOLUME_DECIMALS = 4


def format_hypervolume(value: float) -> str:
    """A hypervolume as every table, legend and line shows it."""
    return f"{value:.{HYPERVOLUME_DECIMALS}f}"


class AnchorError(ValueError):
    """The base and expert evaluations cannot normalise the objectives."""


def check_anchors(base: Scores, expert: Scores, benchmarks: Sequence[str]) -> None:
    """Raise :class:`AnchorError` naming every benchmark on which the anchors are degenerate."""
    problems = []
    for name in benchmarks:
        if name not in base or name not in expert:
            problems.append(f"{name}: no anchor score")
            continue
        acc_base, acc_expert = base[name].accuracy, expert[name].accuracy
        tok_base, tok_expert = base[name].mean_output_tokens, expert[name].mean_output_tokens
        if not acc_expert > acc_base:
            problems.append(
                f"{name}: the expert is no more accurate than the base "
                f"({acc_expert:.4f} <= {acc_base:.4f}), so accuracy cannot be normalised"
            )
        if not tok_expert > tok_base:
            problems.append(
                f"{name}: the expert writes no more tokens than the base "
                f"({tok_expert:.1f} <= {tok_base:.1f}), so the token cost cannot be normalised"
            )
    if problems:
        raise AnchorError(
            "degenerate anchors (choose other models or benchmarks, or more questions): "
            + "; ".join(problems)
        )


# Anchors whose gap on a benchmark is under this many standard errors of the gap are
# measured again; the gap then sets how much the benchmark weighs in f1 or f2 (a gap of
# 2 standard errors is known to within half itself, a gap of 0.6 not even in sign).
ANCHOR_SEPARATION = 2.0
# ... asking each question this many times as often, which halves the standard errors.
ANCHOR_REMEASURE_FACTOR = 4


@dataclass(frozen=True)
class CloseFigure:
    """A benchmark's ``figure`` (``accuracy`` or ``tokens``) on which the anchors are only
    ``apart`` standard errors of their gap apart (``expert`` against ``base``)."""

    benchmark: str
    figure: str
    expert: float
    base: float
    apart: float

    def __str__(self) -> str:
        shown = ".3f" if self.figure == "accuracy" else ".1f"
        return (
            f"{self.benchmark}: {self.figure} {self.expert:{shown}} (expert) vs "
            f"{self.base:{shown}} (base), {self.apart:.1f} standard errors apart"
            + (" (the wrong way round)" if self.apart <= 0 else "")
        )


def close_anchors(base: Scores, expert: Scores, benchmarks: Sequence[str]) -> list[CloseFigure]:
    """Each benchmark's figure on which the anchors are under :data:`ANCHOR_SEPARATION`
    standard errors of their gap apart, or the wrong way round.

    The gap's standard error is ``sqrt(s_b^2 + s_e^2)`` from the two scores' ``s``
    (measured independently). A figure without a standard error, or a benchmark without
    a score, is not judged here (:func:`check_anchors` names the latter).
    """
    close = []
    for name in benchmarks:
        if name not in base or name not in expert:
            continue
        b, e = base[name], expert[name]
        for figure, low, high, low_error, high_error in (
            ("accuracy", b.accuracy, e.accuracy, b.accuracy_stderr, e.accuracy_stderr),
            (
                "tokens",
                b.mean_output_tokens,
                e.mean_output_tokens,
                b.mean_output_tokens_stderr,
                e.mean_output_tokens_stderr,
            ),
        ):
            if low_error is None or high_error is None:
                continue
            apart = (high - low) / (low_error**2 + high_error**2) ** 0.5
            if apart < ANCHOR_SEPARATION:
                close.append(CloseFigure(name, figure, high, low, apart))
    return close


def judge_anchors(
    base: Scores, expert: Scores, benchmarks: Sequence[str], measured_again: int | None = None
) -> list[CloseFigure]:
    """The one rule of a run's search anchors, in the controller and the benchmark's
    simulator alike.

    A first measurement (``measured_again`` ``None``) returns its close figures
    (:func:`close_anchors`, the wrong way round included: one unlucky draw is no reason
    to end a run), to be measured again; with none, it must not be degenerate
    (:func:`check_anchors`: a figure without a standard error is judged there alone).
    Measured again, asking each question ``measured_again`` times, the anchors must be
    neither degenerate (:class:`AnchorError`) nor close (:class:`CloseAnchorsError`).
    """
    close = close_anchors(base, expert, benchmarks)
    if close and measured_again is None:
        return close
    check_anchors(base, expert, benchmarks)
    if close:
        raise CloseAnchorsError(close, measured_again)
    return []


def remeasure_repeats(scores: Scores, close: Sequence[CloseFigure]) -> int:
    """How many times the anchors measured again ask each question of the ``close``
    benchmarks: the most they were asked, times :data:`ANCHOR_REMEASURE_FACTOR` (at most
    :data:`~paretomerge.spec.MAX_REPEATS`)."""
    asked = max(scores[c.benchmark].repeats for c in close)
    return min(MAX_REPEATS, ANCHOR_REMEASURE_FACTOR * asked)


def close_benchmarks(close: Sequence[CloseFigure]) -> list[str]:
    """The benchmarks of ``close``, each once, in order."""
    return list(dict.fromkeys(c.benchmark for c in close))


class CloseAnchorsError(AnchorError):
    """The anchors stayed too close to normalise by even when measured again."""

    def __init__(self, close: Sequence[CloseFigure], repeats: int):
        super().__init__(
            f"the base and the expert are not measurably apart, even measured again asking "
            f"each question {repeats} times: {'; '.join(map(str, close))}. Their gap sets how much "
            "each benchmark weighs, so it must be known: choose benchmarks on which the "
            "models differ, more questions (objectives.limit) or more repeats "
            "(objectives.repeats)"
        )


@dataclass(frozen=True)
class ObjectiveValues:
    """``(f1, f2)`` of one evaluation, each the mean of its terms ``by_benchmark`` ``(2,
    S)`` (one per benchmark, which the search models benchmark by benchmark), and their
    variances: ``own`` (the model's own sampling error alone) and ``total`` (the anchors'
    errors added: what the surrogate is told and the run reports), the latter from each
    term's ``total_variance_by_benchmark``; ``None`` when a score has no standard error
    (results written before the token error was measured)."""

    by_benchmark: tuple[tuple[float, ...], tuple[float, ...]]
    own_variance: tuple[float, float] | None
    total_variance_by_benchmark: tuple[tuple[float, ...], tuple[float, ...]] | None

    @property
    def values(self) -> tuple[float, float]:
        return tuple(sum(terms) / len(terms) for terms in self.by_benchmark)

    @property
    def total_variance(self) -> tuple[float, float] | None:
        if self.total_variance_by_benchmark is None:
            return None
        return tuple(sum(v) / len(v) ** 2 for v in self.total_variance_by_benchmark)

    @property
    def std(self) -> tuple[float, float] | None:
        """The total standard deviations, as reported."""
        total = self.total_variance
        if total is None:
            return None
        return (total[0] ** 0.5, total[1] ** 0.5)


def _normalised(
    m: float, lo: float, hi: float, errors: tuple[float | None, float | None, float | None]
) -> tuple[float, float | None, float | None]:
    """``v = (m - lo) / (hi - lo)`` with its own and total delta-method variances (see
    the module docstring); ``errors`` are the standard errors of ``m``, ``lo``, ``hi``."""
    span = hi - lo
    v = (m - lo) / span
    if any(e is None for e in errors):
        return v, None, None
    s_m, s_lo, s_hi = errors
    own = s_m**2 / span**2
    return v, own, own + ((1.0 - v) ** 2 * s_lo**2 + v**2 * s_hi**2) / span**2


def objective_values(
    scores: Scores, base: Scores, expert: Scores, benchmarks: Sequence[str]
) -> ObjectiveValues:
    """``(f1, f2)`` of a model's ``scores`` with their variances; anchors must have
    passed :func:`check_anchors`."""

    def accuracy(score: BenchmarkScore) -> tuple[float, float | None]:
        return score.accuracy, score.accuracy_stderr

    def tokens(score: BenchmarkScore) -> tuple[float, float | None]:
        return score.mean_output_tokens, score.mean_output_tokens_stderr

    terms = []  # per objective: (value, own variance, total variance) per benchmark
    for figure, anchor_lo, anchor_hi in ((accuracy, base, expert), (tokens, expert, base)):
        per_benchmark = []
        for name in benchmarks:
            (m, s_m), (lo, s_lo), (hi, s_hi) = (
                figure(scores[name]),
                figure(anchor_lo[name]),
                figure(anchor_hi[name]),
            )
            per_benchmark.append(_normalised(m, lo, hi, (s_m, s_lo, s_hi)))
        terms.append(per_benchmark)
    by_benchmark = tuple(tuple(t[0] for t in objective) for objective in terms)
    if any(t[1] is None for objective in terms for t in objective):
        return ObjectiveValues(by_benchmark, None, None)
    count = len(benchmarks)
    own = tuple(sum(t[1] for t in objective) / count**2 for objective in terms)
    total_by_benchmark = tuple(tuple(t[2] for t in objective) for objective in terms)
    return ObjectiveValues(by_benchmark, own, total_by_benchmark)


def anchor_errors(base: Scores, expert: Scores, benchmarks: Sequence[str]) -> AnchorErrors | None:
    """The anchors' share of the error of every value they normalise, common to all of
    them (:class:`~paretomerge.search.claims.AnchorErrors`: per objective, the variance of
    the low and the high anchor's normalised figure); ``None`` when a score has no
    standard error."""
    scores = [(base[name], expert[name]) for name in benchmarks]
    if any(s.mean_output_tokens_stderr is None for pair in scores for s in pair):
        return None
    # f1: low the base, high the expert; f2 (tokens): low the expert, high the base.
    spans = [
        [e.accuracy - b.accuracy for b, e in scores],
        [b.mean_output_tokens - e.mean_output_tokens for b, e in scores],
    ]
    low = [[b.accuracy_stderr for b, _ in scores], [e.mean_output_tokens_stderr for _, e in scores]]
    high = [
        [e.accuracy_stderr for _, e in scores],
        [b.mean_output_tokens_stderr for b, _ in scores],
    ]
    return AnchorErrors.of(np.array(spans), np.array(low), np.array(high))


def full_set_score(search: BenchmarkScore, held_out: BenchmarkScore) -> BenchmarkScore:
    """One model's score on every question of a benchmark, from its scores on the two
    sides of a held-out split: each figure the questions' mean (weighted by the
    questions on each side), its standard error from the two sides' (independent
    answers)."""
    total = search.n + held_out.n
    a, b = search.n / total, held_out.n / total

    def joined(x: float, y: float) -> float:
        return a * x + b * y

    def joined_error(x: float | None, y: float | None) -> float | None:
        return None if x is None or y is None else ((a * x) ** 2 + (b * y) ** 2) ** 0.5

    return search.model_copy(
        update={
            "accuracy": joined(search.accuracy, held_out.accuracy),
            "accuracy_stderr": joined_error(search.accuracy_stderr, held_out.accuracy_stderr),
            "mean_output_tokens": joined(search.mean_output_tokens, held_out.mean_output_tokens),
            "mean_output_tokens_stderr": joined_error(
                search.mean_output_tokens_stderr, held_out.mean_output_tokens_stderr
            ),
            "thinking_closed": joined(search.thinking_closed, held_out.thinking_closed),
            "n": total,
        }
    )


@dataclass(frozen=True)
class ValidationAnchors:
    """What normalises the validations on held-out questions: ``base`` and ``expert``
    scores, and ``fallback``, why they are the full-set anchors (the held-out ones were
    degenerate), or ``None`` when they are the held-out anchors."""

    base: Scores
    expert: Scores
    fallback: str | None


def validation_anchors(
    search: tuple[Scores, Scores], held_out: tuple[Scores, Scores], benchmarks: Sequence[str]
) -> ValidationAnchors:
    """The anchors that normalise held-out validations: the held-out anchors (base,
    expert) when they pass :func:`check_anchors`; else every question's, joined from both
    sides (:func:`full_set_score`), which a run that already passed its search anchors
    almost always can use (if even they are degenerate, :class:`AnchorError`).

    A few held-out questions make degenerate anchors likely: with 9 of AIME25's, about one
    run in eight measures an expert no better than the base. Falling back costs nothing
    and ends no run; the validated values then carry the held-out questions' offset from
    the full set (their difficulty and length), which the held-out anchors would have
    cancelled.
    """
    try:
        check_anchors(*held_out, benchmarks)
        return ValidationAnchors(*held_out, fallback=None)
    except AnchorError as error:
        joined = tuple(
            {name: full_set_score(side[name], out[name]) for name in benchmarks}
            for side, out in zip(search, held_out, strict=True)
        )
        check_anchors(*joined, benchmarks)
        return ValidationAnchors(*joined, fallback=str(error))
