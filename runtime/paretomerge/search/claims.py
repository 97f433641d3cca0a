"""What a search claims of its front, and how sure it is: values pooled over validations,
and an interval on the front's hypervolume.

numpy alone (the controller, ``optimize()`` and the benchmark all use it, and the
operator's status reads what it computed; nothing here fits a model).

A reported value ``f`` is an estimate with two kinds of error:

- its *own*, independent from one point to the next: the answers its evaluations drew
  (and, for a posterior mean, the surrogate's uncertainty at its point);
- the *anchors'*, common to every point normalised by the same two anchor evaluations.
  By the delta method (:mod:`paretomerge.controller.objectives`) an error ``A`` in the low
  anchor's normalised figure and ``B`` in the high one's move a value ``f`` by
  ``-(1 - f) A - f B`` (with ``f`` standing for each benchmark's normalised value, to first
  order), the same ``A`` and ``B`` for every point: :class:`AnchorErrors`.

The hypervolume of noisy points is biased upward by itself (the noise pushes some points
out, and the front keeps them). :func:`hypervolume_claim` estimates the true hypervolume
of the reported points and a 90% interval for it by a parametric bootstrap of both
errors: draws ``y* = y + e_own + e_anchor``, then the *basic* bootstrap, which reflects the
draws' spread around the observed value (the bias the draws show is the bias the
observed value has):

.. math:: \\hat H = 2 H(y) - \\overline{H(y^*)}, \\qquad
          [\\,2 H(y) - q_{0.95}(H(y^*)),\\; 2 H(y) - q_{0.05}(H(y^*))\\,].

References:
    A. C. Davison, D. V. Hinkley. Bootstrap Methods and their Application. Cambridge
    University Press, 1997 (section 5.2, the basic bootstrap interval).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

# The coverage of every interval the tool reports: each point's and the hypervolume's.
INTERVAL_LEVEL = 0.9
# Bootstrap draws behind a hypervolume interval: the 5% and 95% quantiles move by about
# 0.003 of their spread from one seed to another at this size.
HYPERVOLUME_DRAWS = 2000


@dataclass(frozen=True)
class AnchorErrors:
    """The anchors' share of the error of normalised values, common to every value they
    normalise: ``low`` and ``high`` ``(m,)``, per objective the variance of the low and
    the high anchor's normalised figure, averaged over benchmarks,
    :math:`\\operatorname{Var} A_k = \\sum_s s_{lo,s}^2 / (hi_s - lo_s)^2 / S^2` (and
    :math:`B_k` with the high anchor's standard errors)."""

    low: tuple[float, ...]
    high: tuple[float, ...]

    @classmethod
    def of(cls, spans: np.ndarray, low_stderr: np.ndarray, high_stderr: np.ndarray) -> AnchorErrors:
        """From per objective and benchmark ``(m, S)`` anchor gaps ``hi - lo`` and the
        anchors' standard errors."""
        spans = np.asarray(spans, dtype=float)
        count = spans.shape[1]

        def share(stderr):
            return tuple((np.asarray(stderr, dtype=float) ** 2 / spans**2).sum(axis=1) / count**2)

        return cls(share(low_stderr), share(high_stderr))

    def variance_at(self, values: np.ndarray) -> np.ndarray:
        """``(k, m)`` the anchors' share of the variance of values ``(k, m)``:
        ``(1 - f)^2 Var A + f^2 Var B``."""
        values = np.asarray(values, dtype=float)
        return (1.0 - values) ** 2 * np.asarray(self.low) + values**2 * np.asarray(self.high)

    def shifts(self, values: np.ndarray, rng: np.random.Generator, draws: int) -> np.ndarray:
        """``(draws, k, m)`` common errors of values ``(k, m)``: one ``(A, B)`` per draw and
        objective, shared by every value."""
        values = np.asarray(values, dtype=float)
        m = values.shape[1]
        low = rng.standard_normal((draws, 1, m)) * np.sqrt(self.low)
        high = rng.standard_normal((draws, 1, m)) * np.sqrt(self.high)
        return -(1.0 - values) * low - values * high


@dataclass(frozen=True)
class HypervolumeClaim:
    """The true hypervolume of a reported front, estimated: ``value`` (the observed
    hypervolume less its bias) and the ``INTERVAL_LEVEL`` interval ``(low, high)``, in
    the hypervolume's own units."""

    value: float
    low: float
    high: float


def hypervolume_2d(points: np.ndarray, ref_point: np.ndarray) -> np.ndarray:
    """Hypervolume above ``ref_point`` ``(2,)`` of each set of ``points`` ``(..., k, 2)``
    (maximisation), vectorised over the leading dimensions: the staircase of the points
    sorted by the first objective, each adding the strip its second objective raises
    above every point before it."""
    points = np.asarray(points, dtype=float)
    gain = np.maximum(points - np.asarray(ref_point, dtype=float), 0.0)
    order = np.argsort(-gain[..., 0], axis=-1)
    width = np.take_along_axis(gain[..., 0], order, axis=-1)
    height = np.maximum.accumulate(np.take_along_axis(gain[..., 1], order, axis=-1), axis=-1)
    rise = np.diff(height, axis=-1, prepend=0.0)
    return (width * rise).sum(axis=-1)


def hypervolumes(points: np.ndarray, ref_point: np.ndarray) -> np.ndarray:
    """:func:`hypervolume_2d` for two objectives; for more, BoTorch's exact box
    decomposition (:func:`paretomerge.search.pareto.hypervolume`) set by set."""
    points = np.asarray(points, dtype=float)
    if points.shape[-1] == 2:
        return hypervolume_2d(points, ref_point)
    from paretomerge.search.pareto import hypervolume  # torch: only where it is needed

    sets = points.reshape(-1, *points.shape[-2:])
    return np.array([hypervolume(p, ref_point) for p in sets]).reshape(points.shape[:-2])


def hypervolume_claim(
    values: np.ndarray,
    std: np.ndarray,
    ref_point: Sequence[float],
    anchor_errors: Sequence[AnchorErrors | None] = (None,),
    scale: np.ndarray | None = None,
    seed: int = 0,
) -> HypervolumeClaim:
    """Estimate, with an interval, the true hypervolume of the reported points.

    Args:
        values: ``(k, m)`` the reported values (maximised).
        std: ``(k, m)`` their total standard deviations, anchors' errors included (NaN:
            unknown, taken as 0).
        ref_point: ``(m,)``.
        anchor_errors: the anchors behind the values, one per normalisation (``None``:
            not known, every error taken as the point's own).
        scale: ``(k,)`` which of ``anchor_errors`` normalised each value (default: the
            first).
        seed: of the bootstrap draws.

    Returns:
        the bias-corrected hypervolume and its basic-bootstrap interval (module
        docstring); with every ``std`` 0 (or no point) all three are the observed
        hypervolume.
    """
    values = np.asarray(values, dtype=float).reshape(-1, len(ref_point))
    ref = np.asarray(ref_point, dtype=float)
    observed = float(hypervolumes(values, ref))
    total = np.nan_to_num(np.asarray(std, dtype=float).reshape(values.shape) ** 2)
    if not np.any(total > 0):
        return HypervolumeClaim(observed, observed, observed)
    scale = np.zeros(len(values), dtype=int) if scale is None else np.asarray(scale, dtype=int)
    rng = np.random.default_rng(seed)
    common = np.zeros((HYPERVOLUME_DRAWS, *values.shape))
    own = total.copy()
    for index, errors in enumerate(anchor_errors):
        rows = scale == index
        if errors is None or not rows.any():
            continue
        shared = errors.variance_at(values[rows])
        own[rows] = np.maximum(total[rows] - shared, 0.0)
        common[:, rows] = errors.shifts(values[rows], rng, HYPERVOLUME_DRAWS)
    noise = rng.standard_normal((HYPERVOLUME_DRAWS, *values.shape)) * np.sqrt(own)
    draws = values + noise + common
    resampled = hypervolumes(draws, ref)
    low, high = np.quantile(resampled, [(1 - INTERVAL_LEVEL) / 2, (1 + INTERVAL_LEVEL) / 2])
    return HypervolumeClaim(
        value=float(2 * observed - resampled.mean()),
        low=float(2 * observed - high),
        high=float(2 * observed - low),
    )


def point_interval(mean: np.ndarray, std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ``INTERVAL_LEVEL`` normal interval ``(low, high)`` of values ``mean`` with
    standard deviations ``std`` (same shapes)."""
    z = NormalDist().inv_cdf((1 + INTERVAL_LEVEL) / 2)
    mean, std = np.asarray(mean, dtype=float), np.asarray(std, dtype=float)
    return mean - z * std, mean + z * std


def pool_repeated_questions(
    Y: np.ndarray, Yvar: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Evaluations ``Y`` ``(r, m)`` of one point on the *same* questions as one value.

    They share their questions (a validation repeated on the held-out ones), so their
    errors are correlated by the questions' own difficulty and length: pooled as fully
    dependent, the mean of the values with the mean of their variances ``Yvar``
    ``(r, m)`` (no reduction by ``r``: an upper bound, exact when the questions' share of
    the error dominates, which a few dozen questions' does).

    Returns:
        ``(mean (m,), var (m,))``; ``var`` ``None`` when ``Yvar`` is.
    """
    Y = np.asarray(Y, dtype=float)
    if Yvar is None:
        return Y.mean(axis=0), None
    return Y.mean(axis=0), np.asarray(Yvar, dtype=float).mean(axis=0)
