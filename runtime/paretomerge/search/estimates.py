"""What a search knows about the points it evaluated: estimates, and the front they give.

An evaluation is an estimate: the same point evaluated twice gives two values. The front a
search reports is therefore chosen and valued by the surrogate's posterior of the latent
objectives at the evaluated points (never by the raw values, whose maxima are the lucky
draws), and each point carries its posterior standard deviation and its probability of
being non-dominated. A strategy with no surrogate (random, sobol) reports its
observations, pooled per point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from botorch.models.model import Model

from paretomerge.search.pareto import pareto_mask

# Joint posterior draws behind each probability of non-dominance: its Monte Carlo standard
# error is at most 0.5 / sqrt(512) ~ 0.02.
NUM_POSTERIOR_SAMPLES = 512


@dataclass(frozen=True)
class PointEstimates:
    """Estimates of the ``m`` objectives at ``n`` distinct evaluated points.

    Attributes:
        trial_ids: ``(n,)`` the trial that first evaluated each point.
        X: ``(n, d)`` the points.
        mean: ``(n, m)`` posterior mean of the objectives (or the pooled observations).
        std: ``(n, m)`` posterior standard deviation (or the pooled observations' standard
            error; NaN where no variance is known).
        prob_non_dominated: ``(n,)`` posterior probability that the point is on the Pareto
            front of the ``n`` points: the share of joint posterior draws in which no other
            point dominates it.
        num_observations: ``(n,)`` evaluations behind each estimate.
        fully_evaluated: ``(n,)`` whether one of them asked every question (not
            screened): only such a point may be reported.
    """

    trial_ids: np.ndarray
    X: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    prob_non_dominated: np.ndarray
    num_observations: np.ndarray
    fully_evaluated: np.ndarray

    @property
    def front_mask(self) -> np.ndarray:
        """``(n,)``: the points whose estimated values no other point's dominate, screened
        ones included (what validation chooses among)."""
        return pareto_mask(self.mean)

    def point(self, i: int) -> FrontPoint:
        """Point ``i`` as a :class:`FrontPoint`."""
        return FrontPoint(
            trial_id=int(self.trial_ids[i]),
            x=self.X[i],
            mean=self.mean[i],
            std=self.std[i],
            prob_non_dominated=float(self.prob_non_dominated[i]),
            num_observations=int(self.num_observations[i]),
        )


@dataclass(frozen=True)
class FrontPoint:
    """One point of the reported front: ``mean`` and ``std`` ``(m,)`` its value, ``x``
    ``(d,)``; ``held_out`` whether the value is its held-out validations' (else the
    search's estimate). Its interval: :func:`~paretomerge.search.claims.point_interval`."""

    trial_id: int
    x: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    prob_non_dominated: float
    num_observations: int
    held_out: bool = False


def pool_observations(Y: np.ndarray, Yvar: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    r"""Several evaluations of one point as one estimate.

    With known variances the precision-weighted mean and its variance,

    .. math:: \hat y = \frac{\sum_i y_i / \sigma_i^2}{\sum_i 1 / \sigma_i^2}, \qquad
              \operatorname{Var} \hat y = \Big(\sum_i 1 / \sigma_i^2\Big)^{-1},

    per objective; without them the plain mean and a NaN variance.

    Args:
        Y: ``(r, m)`` the evaluations.
        Yvar: ``(r, m)`` their variances, or ``None``.

    Returns:
        ``(mean, var)``, each ``(m,)``.
    """
    Y = np.asarray(Y, dtype=float)
    if Yvar is None:
        return Y.mean(axis=0), np.full(Y.shape[1], np.nan)
    precision = 1.0 / np.maximum(np.asarray(Yvar, dtype=float), np.finfo(float).tiny)
    var = 1.0 / precision.sum(axis=0)
    return (precision * Y).sum(axis=0) * var, var


def prob_non_dominated(samples: np.ndarray) -> np.ndarray:
    """Share of the draws ``samples`` ``(S, n, m)`` in which each of the ``n`` points is
    non-dominated among the ``n`` (maximisation); shape ``(n,)``.

    Point ``i`` is dominated in a draw when some ``j`` is at least as good in every
    objective and better in one. One broadcast over ``(S, n, n, m)``: BoTorch's
    ``is_non_dominated`` loops over the draws at this size.
    """
    Y = np.asarray(samples)
    other, this = Y[:, :, None, :], Y[:, None, :, :]  # [s, j, i, k]
    dominates = np.all(other >= this, axis=-1) & np.any(other > this, axis=-1)
    return 1.0 - dominates.any(axis=1).mean(axis=0)


def posterior_estimates(
    model: Model, Z: np.ndarray, seed: int, num_samples: int = NUM_POSTERIOR_SAMPLES
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Posterior of the latent objectives (no observation noise) at ``Z`` ``(n, k)``.

    For a fully Bayesian model the posterior is the mixture over its MCMC draws (mean and
    variance by the laws of total expectation and variance; draws from every component).

    Returns:
        ``(mean (n, m), std (n, m), prob_non_dominated (n,))``.
    """
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(seed)
        posterior = model.posterior(torch.as_tensor(Z, dtype=torch.double))
        samples = posterior.rsample(torch.Size([num_samples]))
    mean, std = _moments(posterior)
    n, m = mean.shape[-2:]
    prob = prob_non_dominated(samples.reshape(-1, n, m).numpy())
    return mean, std, prob


def posterior_moments(model: Model, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation ``(n, m)`` of the latent objectives (no observation
    noise) at ``Z`` ``(n, k)``; a fully Bayesian model's as the mixture over its draws."""
    with torch.no_grad():
        return _moments(model.posterior(torch.as_tensor(Z, dtype=torch.double)))


def _moments(posterior) -> tuple[np.ndarray, np.ndarray]:
    mean = getattr(posterior, "mixture_mean", posterior.mean)
    var = getattr(posterior, "mixture_variance", posterior.variance)
    return mean.numpy(), var.clamp_min(0.0).sqrt().numpy()


def observed_estimates(
    Y: list[np.ndarray], Yvar: list[np.ndarray] | None, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Estimates from the observations alone: each point's evaluations pooled
    (:func:`pool_observations`); its probability of non-dominance under independent
    normal errors of the pooled variances, or 0/1 by the pooled values when no variance is
    known.

    Args:
        Y: per point, its ``(r_i, m)`` evaluations.
        Yvar: per point, their variances, or ``None``.

    Returns:
        ``(mean (n, m), std (n, m), prob_non_dominated (n,))``.
    """
    variances = Yvar if Yvar is not None else [None] * len(Y)
    pooled = [pool_observations(y, v) for y, v in zip(Y, variances, strict=True)]
    mean = np.array([p[0] for p in pooled])
    std = np.sqrt(np.array([p[1] for p in pooled]))
    if Yvar is None:
        return mean, std, pareto_mask(mean).astype(float)
    rng = np.random.default_rng(seed)
    draws = mean + std * rng.standard_normal((NUM_POSTERIOR_SAMPLES, *mean.shape))
    return mean, std, prob_non_dominated(draws)
