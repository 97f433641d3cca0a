"""Screening: stop evaluating a candidate once it is probably dominated.

Whether a running candidate stops is a :class:`Screener`'s decision, a plug-in in the
spirit of Optuna's pruners (``BasePruner.prune(study, trial)``): ``optimize()``, the
controller and the benchmark all ask :meth:`Screener.screen` with the optimiser and the
candidate's trial, and nothing else decides. :class:`ProbablyDominated` is the rule the
run file's ``evaluation.screening`` sets.

A candidate is evaluated stage by stage, on growing shares of each benchmark's
questions. After a stage its objectives are known twice over: by the stage itself (few
questions: a standard deviation of ~0.25 per normalised objective after a tenth of
GPQA-Diamond and AIME25) and by the search's surrogate at its point, which pools the
evaluations of its neighbours (~0.1). The question is whether the candidate is dominated
by what the run already has: the anchors, and the finished candidates, whose values are
estimates too, and estimates correlated with the candidate's (the same surrogate, often
the same neighbours). Treating their estimates as exact stopped a large share of the
candidates that were on the true front: one as good as a finished point is "dominated"
about half the time.

So :func:`prob_dominated_given_stage` works on joint posterior draws of the latent
objectives at the candidate and at every point evaluated in full, conditioned on the
stage by importance weights (the stage's likelihood at each draw of the candidate): the
share of the weight in which an anchor or a finished point dominates the candidate. A
strategy with no surrogate has the stage estimate alone against the finished points'
pooled observations (:func:`prob_dominated`, exact).

A screened candidate's partial estimate still teaches the surrogate, with its larger
variance, and it is reported only once a validation has evaluated it in full.

Why not a box rule (the optimistic corner of the candidate's interval against the
pessimistic front of the finished ones)? Under realistic noise it stops almost nothing at
a useful confidence, and where it saves 40% of the tokens it loses more of the front's
hypervolume than this rule: ``bench/search_efficiency.py`` has the figures.

References:
    A. Doucet, N. de Freitas, N. Gordon (eds.). Sequential Monte Carlo Methods in
    Practice. Springer, 2001 (importance sampling of a posterior by its likelihood).
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
# Joint posterior draws behind a screening decision: with the stage's weights spread over
# them (an effective sample of a few hundred), the probability's Monte Carlo error is
# about 0.03.
SCREENING_DRAWS = 1024


def prob_dominated(mean: np.ndarray, std: np.ndarray, front: np.ndarray) -> float:
    r"""The probability that some point of ``front`` ``(k, 2)`` dominates
    :math:`f \sim N(\text{mean}, \operatorname{diag} \text{std}^2)` (maximisation; two
    objectives, independent).

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
    order = np.argsort(-front[:, 0], kind="stable")
    first = norm.cdf((front[order, 0] - mean[0]) / std[0])
    height = norm.cdf((np.maximum.accumulate(front[order, 1]) - mean[1]) / std[1])
    return float(((first - np.append(first[1:], 0.0)) * height).sum())


def prob_dominated_given_stage(
    candidate: np.ndarray,
    finished: np.ndarray,
    baselines: np.ndarray,
    y: np.ndarray,
    yvar: np.ndarray,
) -> float:
    r"""The posterior probability, given a stage estimate, that a candidate is dominated
    by a finished point or a baseline.

    Draws :math:`s` of the latent objectives, joint over the candidate
    :math:`c_s` and the finished points :math:`F_s` (the surrogate's posterior before the
    stage), are weighted by the stage's likelihood at the candidate's,
    :math:`w_s \propto \prod_j N(y_j; c_{s,j}, v_j)`, which makes them draws of the
    posterior given the stage too (Bayes' rule, by importance sampling):

    .. math:: P = \sum_s w_s\, 1[\exists\, p \in F_s \cup B:\ p \succ c_s].

    Args:
        candidate: ``(S, m)`` draws at the candidate's point.
        finished: ``(S, k, m)`` the same draws at the finished points.
        baselines: ``(b, m)`` exact values (the anchors).
        y, yvar: ``(m,)`` the stage estimate and its variance.
    """
    yvar = np.maximum(np.asarray(yvar, dtype=float), EPS)
    log_weight = -0.5 * (((np.asarray(y, dtype=float) - candidate) ** 2) / yvar).sum(axis=1)
    weight = np.exp(log_weight - log_weight.max())
    baselines = np.broadcast_to(baselines, (len(candidate), *np.shape(baselines)))
    others = np.concatenate([finished, baselines], axis=1)  # (S, k + b, m)
    this = candidate[:, None, :]
    dominated = ((others >= this).all(axis=-1) & (others > this).any(axis=-1)).any(axis=1)
    return float((weight * dominated).sum() / weight.sum())


def screened_out(
    mean: np.ndarray, std: np.ndarray, finished: np.ndarray, confidence: float
) -> bool:
    """Whether a partly evaluated candidate is dominated with probability at least
    ``confidence`` (in (0, 1)).

    Args:
        mean: ``(2,)`` the candidate's estimate after a stage.
        std: ``(2,)`` its standard deviation (NaN: unknown, which never screens).
        finished: ``(n, 2)`` the finished candidates' and the anchors' values, exact.
        confidence: the probability of being dominated at which the candidate stops.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), not {confidence}")
    std = np.asarray(std, dtype=float)
    if np.isnan(std).any():
        return False
    return prob_dominated(np.asarray(mean, dtype=float), std, finished) >= confidence


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

    With a surrogate: :func:`prob_dominated_given_stage` on the optimiser's joint
    posterior draws at the candidate and at the points evaluated in full
    (:meth:`~paretomerge.search.optimizer.AskTellOptimizer.posterior_draws`), against the
    baselines. Without: the stage estimate against the baselines and the finished points'
    estimates (:func:`screened_out`).
    """

    def __init__(self, confidence: float):
        if not 0.0 < confidence < 1.0:
            raise ValueError(f"confidence must lie in (0, 1), not {confidence}")
        self.confidence = confidence

    def screen(
        self, optimizer: AskTellOptimizer, trial: Trial, y: np.ndarray, yvar: np.ndarray
    ) -> bool:
        finished_X, finished_values = optimizer.finished_points()
        baselines = np.asarray(optimizer.config.baselines, dtype=float).reshape(-1, len(y))
        points = np.vstack([np.asarray(trial.x)[None], finished_X])
        draws = optimizer.posterior_draws(points, SCREENING_DRAWS, seed=trial.id)
        if draws is None:
            front = np.vstack([baselines, finished_values])
            return screened_out(y, np.sqrt(yvar), front, self.confidence)
        probability = prob_dominated_given_stage(draws[:, 0], draws[:, 1:], baselines, y, yvar)
        return probability >= self.confidence
