"""Screening: stop evaluating a candidate once it is probably dominated.

Whether a running candidate stops is a :class:`Screener`'s decision, a plug-in in the
spirit of Optuna's pruners (``BasePruner.prune(study, trial)``): ``optimize()``, the
controller and the benchmark all ask :meth:`Screener.screen` with the optimiser and the
candidate's trial, and nothing else decides. :class:`ProbablyDominated` is the rule the
run file's ``evaluation.screening`` sets.

A candidate is evaluated stage by stage, on growing shares of each benchmark's
questions. After a stage its objectives are estimated twice over: by the stage itself
(few questions: a standard deviation of ~0.25 per normalised objective after a quarter
of GPQA-Diamond and AIME25) and by the search's surrogate at its point, which pools the
evaluations of its neighbours (~0.1). :func:`conditioned_on_stage` joins the two: the
surrogate's posterior once the stage is known. A strategy with no surrogate has the stage
estimate alone.

The candidate is screened out when that posterior says, with probability at least the
run's ``confidence``, that it is dominated by a finished candidate or an anchor
(:func:`prob_dominated`). The finished candidates enter with their own uncertainty (the
posterior at their points): compared with their estimates as if exact, a candidate as
good as they are is "dominated" about half the time, and the rule stopped a large share
of the candidates that were on the true front. A screened candidate's partial estimate
still teaches the surrogate, with its larger variance, and it is reported only once a
validation has evaluated it in full.

Why not a box rule (the optimistic corner of the candidate's interval against the
pessimistic front of the finished ones)? Under realistic noise it stops almost nothing at
a useful confidence, and where it saves 40% of the tokens it loses more of the front's
hypervolume than this rule: ``bench/search_efficiency.py`` has the figures.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

import numpy as np
from scipy.stats import norm

if TYPE_CHECKING:
    from paretomerge.search.optimizer import AskTellOptimizer, Trial

# Variances are floored here before they are inverted.
EPS = 1e-12
# Draws of the finished front behind a probability of domination when the front is
# uncertain: the Monte Carlo error of the average is below 0.01 at this size.
FRONT_DRAWS = 256


def conditioned_on_stage(
    mean: np.ndarray, var: np.ndarray, prior: tuple[np.ndarray, np.ndarray] | None
) -> tuple[np.ndarray, np.ndarray]:
    r"""What a candidate's partial evaluation says of it: ``(mean, std)`` ``(m,)``, the
    surrogate's posterior at its point once the stage estimate is known.

    The surrogate's prediction ``prior = (mu, s)`` of the latent objective at the point,
    :math:`f \sim N(\mu, s^2)` (from every finished evaluation, this one not among them),
    conditioned on the stage estimate :math:`y = f + \varepsilon`,
    :math:`\varepsilon \sim N(0, v)`:

    .. math:: f \mid y \sim N\Big(\frac{\mu / s^2 + y / v}{1 / s^2 + 1 / v},\;
              \frac{1}{1 / s^2 + 1 / v}\Big),

    per objective (exact for a Gaussian process: one more observation at the point). With
    no surrogate (``prior`` ``None``) the stage estimate alone, ``(y, sqrt(v))``.

    Args:
        mean, var: ``(m,)`` the stage estimate and its variance.
        prior: ``(m,)`` each, the surrogate's prediction at the point, or ``None``.
    """
    mean, var = np.asarray(mean, dtype=float), np.asarray(var, dtype=float)
    if prior is None:
        return mean, np.sqrt(var)
    prior_precision = 1.0 / np.maximum(np.asarray(prior[1], dtype=float) ** 2, EPS)
    precision = 1.0 / np.maximum(var, EPS)
    total = prior_precision + precision
    fused = (prior_precision * np.asarray(prior[0], dtype=float) + precision * mean) / total
    return fused, np.sqrt(1.0 / total)


def prob_dominated(
    mean: np.ndarray, std: np.ndarray, front: np.ndarray, front_std: np.ndarray | None = None
) -> float:
    r"""The probability that some point of ``front`` ``(k, 2)`` dominates
    :math:`f \sim N(\text{mean}, \operatorname{diag} \text{std}^2)` (maximisation; two
    objectives, independent).

    With ``front_std`` ``(k, 2)`` the front's points are uncertain too (independent
    normals): the probability is the average of the exact one below over
    ``FRONT_DRAWS`` draws of the front (seeded, so a decision is reproducible).

    The region the points dominate is a staircase. With the points sorted by the first
    objective, :math:`p_{1,1} \ge p_{1,2} \ge \dots`, and :math:`h_j = \max_{i \le j}
    p_{2,i}` the height of the staircase over :math:`(p_{1,j+1}, p_{1,j}]`,

    .. math:: P = \sum_j \big[\Phi_1(p_{1,j}) - \Phi_1(p_{1,j+1})\big]\, \Phi_2(h_j),
              \qquad \Phi_1(p_{1,k+1}) = 0,

    with :math:`\Phi_i` the normal CDF of objective ``i``: exact, no sampling.

    Raises:
        ValueError: not two objectives.
    """
    front = np.asarray(front, dtype=float).reshape(-1, np.size(mean))
    if front.shape[1] != 2:
        raise ValueError(f"screening compares two objectives, not {front.shape[1]}")
    if front.shape[0] == 0:
        return 0.0
    std = np.maximum(np.asarray(std, dtype=float), np.sqrt(EPS))
    fronts = front[None]
    if front_std is not None and np.any(np.nan_to_num(front_std) > 0):
        noise = np.random.default_rng(0).standard_normal((FRONT_DRAWS, *front.shape))
        fronts = front + noise * np.nan_to_num(np.asarray(front_std, dtype=float))
    order = np.argsort(-fronts[..., 0], axis=1, kind="stable")
    first = norm.cdf((np.take_along_axis(fronts[..., 0], order, axis=1) - mean[0]) / std[0])
    highest = np.maximum.accumulate(np.take_along_axis(fronts[..., 1], order, axis=1), axis=1)
    height = norm.cdf((highest - mean[1]) / std[1])
    steps = first - np.concatenate([first[:, 1:], np.zeros((len(first), 1))], axis=1)
    return float((steps * height).sum(axis=1).mean())


def screened_out(
    mean: np.ndarray,
    std: np.ndarray,
    finished: np.ndarray,
    confidence: float,
    finished_std: np.ndarray | None = None,
) -> bool:
    """Whether a partly evaluated candidate is dominated with probability at least
    ``confidence`` (in (0, 1)).

    Args:
        mean: ``(2,)`` the candidate's estimate after a stage (best: the posterior of
            :func:`conditioned_on_stage`).
        std: ``(2,)`` its standard deviation (NaN: unknown, which never screens).
        finished: ``(n, 2)`` the finished candidates' and the anchors' estimates.
        confidence: the probability of being dominated at which the candidate stops.
        finished_std: ``(n, 2)`` the standard deviations of ``finished`` (the anchors'
            0), or ``None``: exact.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), not {confidence}")
    std = np.asarray(std, dtype=float)
    if np.isnan(std).any():
        return False
    probability = prob_dominated(np.asarray(mean, dtype=float), std, finished, finished_std)
    return probability >= confidence


class Screener(ABC):
    """Decides whether a partly evaluated candidate stops."""

    @abstractmethod
    def screen(
        self, optimizer: AskTellOptimizer, trial: Trial, y: np.ndarray, yvar: np.ndarray
    ) -> bool:
        """Whether ``trial`` (pending in ``optimizer``) stops after a screening stage that
        estimated its objectives as ``y`` with variances ``yvar`` ``(m,)``, the variances
        of its own evaluation (what the surrogate is told)."""


class ProbablyDominated(Screener):
    """Stop a candidate that is dominated with probability at least ``confidence``.

    Its objectives are the optimiser's prediction at its point conditioned on the stage
    (:func:`conditioned_on_stage`; the stage alone without a surrogate), compared with
    :meth:`~paretomerge.search.optimizer.AskTellOptimizer.finished_front`: the baselines
    and the estimates at the points evaluated in full, with their uncertainty
    (:func:`screened_out`).
    """

    def __init__(self, confidence: float):
        if not 0.0 < confidence < 1.0:
            raise ValueError(f"confidence must lie in (0, 1), not {confidence}")
        self.confidence = confidence

    def screen(
        self, optimizer: AskTellOptimizer, trial: Trial, y: np.ndarray, yvar: np.ndarray
    ) -> bool:
        prior = optimizer.predict(np.asarray(trial.x)[None])
        at = None if prior is None else (prior[0][0], prior[1][0])
        mean, std = conditioned_on_stage(y, yvar, at)
        finished, finished_std = optimizer.finished_front()
        return screened_out(mean, std, finished, self.confidence, finished_std)
