"""Screening: stop evaluating a candidate once it clearly cannot reach the front.

A candidate is evaluated stage by stage, on growing shares of each benchmark's
questions. After a stage its objectives are an estimate ``mean`` with standard deviation
``std`` (larger than a full evaluation's: fewer questions). Its *confidence box* at level
``c`` is ``mean +- z std`` per objective, with ``z = Phi^-1((1 + c) / 2)`` (a two-sided
interval of level ``c`` on each objective; ``z = 1.645`` for ``c = 0.9``).

The finished candidates give a *pessimistic front*: every finished point at
``mean - z std``. The candidate is screened out when the *optimistic corner* of its box,
``mean + z std``, is dominated by a point of that pessimistic front (maximisation): even
at its best, it would lie below what the finished candidates reach at their worst.
Neither value's noise is ignored, so a candidate is stopped only when both are clear.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

from paretomerge.search.pareto import pareto_mask


def confidence_z(confidence: float) -> float:
    """The half-width, in standard deviations, of a two-sided interval of level
    ``confidence`` in (0, 1): ``Phi^-1((1 + confidence) / 2)``.

    Raises:
        ValueError: ``confidence`` outside (0, 1).
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), not {confidence}")
    return float(norm.ppf((1.0 + confidence) / 2.0))


def pessimistic_front(mean: np.ndarray, std: np.ndarray, confidence: float) -> np.ndarray:
    """The non-dominated rows of ``mean - z std`` (``(n, m)`` each; maximisation), shape
    ``(k, m)`` with ``k <= n``. A NaN ``std`` (variance unknown) counts as 0."""
    lower = np.asarray(mean, dtype=float) - confidence_z(confidence) * np.nan_to_num(
        np.asarray(std, dtype=float)
    )
    return lower[pareto_mask(lower)] if lower.shape[0] else lower


def screened_out(
    mean: np.ndarray,
    std: np.ndarray,
    finished_mean: np.ndarray,
    finished_std: np.ndarray,
    confidence: float,
) -> bool:
    """Whether a partly evaluated candidate is dominated even at its best.

    Args:
        mean: ``(m,)`` the candidate's estimate after a stage.
        std: ``(m,)`` its standard deviation (NaN: unknown, which never screens).
        finished_mean: ``(n, m)`` the finished candidates' estimates (``n`` may be 0).
        finished_std: ``(n, m)`` their standard deviations.
        confidence: the level ``c`` of every interval.

    Returns:
        ``True`` when some point of the pessimistic front weakly exceeds the optimistic
        corner ``mean + z std`` in every objective and strictly in one.
    """
    std = np.asarray(std, dtype=float)
    if np.isnan(std).any():
        return False
    corner = np.asarray(mean, dtype=float) + confidence_z(confidence) * std
    front = pessimistic_front(finished_mean, finished_std, confidence)
    if front.shape[0] == 0:
        return False
    dominates = (front >= corner).all(axis=1) & (front > corner).any(axis=1)
    return bool(dominates.any())
