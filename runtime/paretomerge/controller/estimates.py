"""What the run reports after each result: every candidate's estimate, the validated
values and the hypervolume of the front they make.

Functions of the :class:`RunState` and the search's :class:`AskTellOptimizer` alone, so
that a test can record what the controller would from an optimiser it fed itself.
"""

from __future__ import annotations

import numpy as np

from paretomerge.controller.artifacts import pareto_points
from paretomerge.controller.state import PointEstimate, RunState, ValidationRecord
from paretomerge.search import AskTellOptimizer, hypervolume
from paretomerge.search.estimates import pool_observations


def record_estimates(state: RunState, optimizer: AskTellOptimizer) -> None:
    """Give every evaluated candidate the search's estimate of its objectives
    (:meth:`AskTellOptimizer.estimates`: the posterior at its point, or its pooled
    evaluations for a strategy with no surrogate).

    The optimiser knows each evaluation's own variance only; the anchors' share of it,
    common to every candidate, is added back to the standard deviation reported:
    ``std^2 = posterior var + (total var - own var)`` of the candidate's evaluation.
    """
    estimates = optimizer.estimates()
    row = {int(trial): i for i, trial in enumerate(estimates.trial_ids)}
    for candidate in state.candidates:
        trial = state.trial_of(candidate)
        if candidate.status not in ("succeeded", "screened") or trial not in row:
            continue
        i = row[trial]
        std = estimates.std[i]
        if np.isnan(std).any():
            reported = None
        else:
            own = optimizer.trials[trial].yvar
            shared = 0.0
            if own is not None and candidate.objectives_std is not None:
                shared = np.maximum(np.square(candidate.objectives_std) - np.asarray(own), 0.0)
            reported = np.sqrt(np.square(std) + shared).tolist()
        candidate.estimate = PointEstimate(
            mean=estimates.mean[i].tolist(),
            std=reported,
            prob_non_dominated=float(estimates.prob_non_dominated[i]),
            evaluations=int(estimates.num_observations[i]),
        )


def record_validated(state: RunState, optimizer: AskTellOptimizer, *, held_out: bool) -> None:
    """Give every candidate with a finished validation its validated value.

    With no question held out the validations were told to the optimiser like any
    evaluation of the point, so the validated value is the search's estimate, now pooled
    over them. With questions held out it is the validations' own values alone (unbiased
    by the search's choice), pooled by precision (:func:`pool_observations`, with each
    evaluation's own variance) and the held-out anchors' share of the variance added
    once: ``std^2 = (sum_i 1 / own_i)^-1 + mean_i (total_i - own_i)``.
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
        Y = np.array([r.objectives for r in records])
        own = [optimizer.trials[state.trial_of(r)].yvar for r in records]
        if any(v is None for v in own) or any(r.objectives_std is None for r in records):
            mean, std = pool_observations(Y, None)[0], None
        else:
            mean, var = pool_observations(Y, np.array(own))
            shared = np.square([r.objectives_std for r in records]) - np.array(own)
            std = np.sqrt(var + np.maximum(shared, 0.0).mean(axis=0)).tolist()
        candidate.validated = PointEstimate(
            mean=mean.tolist(),
            std=std,
            prob_non_dominated=candidate.estimate.prob_non_dominated if candidate.estimate else 1.0,
            evaluations=len(records),
        )


def record_hypervolume(state: RunState, reference_point: list[float], after: str) -> None:
    """Append the hypervolume of the reported front, after the result of ``after`` (the
    candidate's or validation's id)."""
    front = [point.candidate.reported[0] for point in pareto_points(state)]
    state.hypervolume.append(hypervolume(np.array(front).reshape(-1, 2), np.array(reference_point)))
    state.hypervolume_after.append(after)
