"""Normalised objectives from benchmark scores, against the base and expert anchors.

For benchmarks ``s`` with accuracy ``acc_s`` and mean output tokens ``tok_s``, a model
``M`` scores (both maximised, each the mean over benchmarks)::

    f1 = mean_s (acc_s(M) - acc_s(base)) / (acc_s(expert) - acc_s(base))
    f2 = mean_s (tok_s(M) - tok_s(expert)) / (tok_s(base) - tok_s(expert))

so the base sits at ``(0, 1)`` and the expert at ``(1, 0)``. That needs anchors that
differ the expected way on every benchmark: an expert more accurate and more verbose than
the base. Anything else is an :class:`AnchorError`, not a division by zero.

Every score is an estimate with a standard error (:mod:`paretomerge.evaluate.scoring`),
and so is every objective. Each term is a normalised value
``v = (m - lo) / (hi - lo)`` of the model's figure ``m`` between two anchors' (accuracy:
``lo`` the base, ``hi`` the expert; tokens: ``lo`` the expert, ``hi`` the base). The
delta method (first-order Taylor expansion, the three estimates independent) gives::

    Var v = (s_m^2 + (1 - v)^2 s_lo^2 + v^2 s_hi^2) / (hi - lo)^2

with ``s`` the standard errors, and ``Var f = sum_s Var v_s / S^2`` over the ``S``
benchmarks (evaluated on different questions, so independent). The first term is the
model's *own* variance; the anchors' terms are shared by every candidate of a run (the
same two anchor evaluations normalise all of them). Per benchmark they rescale every
candidate alike and so change no ranking there, but ``f1`` and ``f2`` are means over
benchmarks: a noisy anchor gap changes how much a benchmark weighs against the others,
and with it which candidate is better. The surrogate is therefore told the *total*
variance, and the run reports it: measured under realistic noise, the front chosen with
the total is worth more of the best-known hypervolume than with the own variance alone
(``bench/search_efficiency.py``'s docstring). The own variance is kept apart where
evaluations that share their anchors are pooled (validations on held-out questions).
The covariance of f1 and f2 (accuracy and length of the same answers) is not modelled;
each is reported with its own error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from paretomerge.results import BenchmarkScore, Scores

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


@dataclass(frozen=True)
class ObjectiveValues:
    """``(f1, f2)`` of one evaluation and their variances: ``own`` (the model's own
    sampling error alone) and ``total`` (the anchors' errors added: what the surrogate is
    told and the run reports); ``None`` when a score has no standard error (results
    written before the token error was measured)."""

    values: tuple[float, float]
    own_variance: tuple[float, float] | None
    total_variance: tuple[float, float] | None

    @property
    def std(self) -> tuple[float, float] | None:
        """The total standard deviations, as reported."""
        if self.total_variance is None:
            return None
        return (self.total_variance[0] ** 0.5, self.total_variance[1] ** 0.5)


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
    count = len(benchmarks)
    values = tuple(sum(t[0] for t in objective) / count for objective in terms)
    if any(t[1] is None for objective in terms for t in objective):
        return ObjectiveValues(values, None, None)
    own, total = (
        tuple(sum(t[k] for t in objective) / count**2 for objective in terms) for k in (1, 2)
    )
    return ObjectiveValues(values, own, total)
