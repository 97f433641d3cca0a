"""What the run reports after each result: every candidate's estimate, the validated
values and the hypervolume of the front they make.

Functions of the :class:`RunState` and the search's :class:`AskTellOptimizer` alone, so
that a test can record what the controller would from an optimiser it fed itself.
"""

from __future__ import annotations

import numpy as np

from paretomerge.controller.artifacts import pareto_points
from paretomerge.controller.objectives import objective_values
from paretomerge.controller.state import PointEstimate, RunState, ValidationRecord
from paretomerge.search import AskTellOptimizer, hypervolume
from paretomerge.search.estimates import pool_observations, pool_with_common_error


def record_estimates(state: RunState, optimizer: AskTellOptimizer) -> None:
    """Give every evaluated candidate the search's estimate of its objectives
    (:meth:`AskTellOptimizer.estimates`: the posterior at its point, or its pooled
    evaluations for a strategy with no surrogate), with the posterior standard deviation
    (the optimiser is told each evaluation's total variance, the anchors' errors
    included)."""
    estimates = optimizer.estimates()
    row = {int(trial): i for i, trial in enumerate(estimates.trial_ids)}
    for candidate in state.candidates:
        trial = state.trial_of(candidate)
        if candidate.status not in ("succeeded", "screened") or trial not in row:
            continue
        i = row[trial]
        std = estimates.std[i]
        candidate.estimate = PointEstimate(
            mean=estimates.mean[i].tolist(),
            std=None if np.isnan(std).any() else std.tolist(),
            prob_non_dominated=float(estimates.prob_non_dominated[i]),
            evaluations=int(estimates.num_observations[i]),
        )


def record_validated(state: RunState, benchmarks: list[str], *, held_out: bool) -> None:
    """Give every candidate with a finished validation its validated value.

    With no question held out the validations were told to the optimiser like any
    evaluation of the point, so the validated value is the search's estimate, now pooled
    over them. With questions held out it is the validations' own values alone (unbiased
    by the search's choice): their own errors pooled by precision and the held-out
    anchors' share of the variance, common to them all, added once
    (:func:`~paretomerge.search.estimates.pool_with_common_error`).
    """
    done: dict[str, list[ValidationRecord]] = {}
    for record in state.validations:
        if record.status == "succeeded":
            done.setdefault(record.candidate, []).append(record)
    for candidate_id, records in done.items():
        candidate = state.candidate(candidate_id)
        if not held_out:
            candidate.validated = candidate.estimate
            continue
        anchors = state.held_out_anchors
        values = [
            objective_values(r.scores, anchors["base"].scores, anchors["expert"].scores, benchmarks)
            for r in records
        ]
        Y = np.array([v.values for v in values])
        if any(v.total_variance is None for v in values):
            mean, std = pool_observations(Y, None)[0], None
        else:
            own = np.array([v.own_variance for v in values])
            total = np.array([v.total_variance for v in values])
            mean, pooled_std = pool_with_common_error(Y, own, total)
            std = pooled_std.tolist()
        candidate.validated = PointEstimate(
            mean=mean.tolist(),
            std=std,
            prob_non_dominated=candidate.estimate.prob_non_dominated if candidate.estimate else 1.0,
            evaluations=len(records),
        )


def record_hypervolume(state: RunState, reference_point: list[float], after: str) -> None:
    """Append the hypervolume of the reported front, after the result of ``after`` (the
    candidate's or validation's id)."""
    front = [point.candidate.reported.mean for point in pareto_points(state)]
    state.hypervolume.append(hypervolume(np.array(front).reshape(-1, 2), np.array(reference_point)))
    state.hypervolume_after.append(after)
