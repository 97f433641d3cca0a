"""What the run reports after each result: every candidate's estimate, the validated
values and the estimate of the hypervolume of the front they make, with its interval.

Functions of the :class:`RunState` and the search's :class:`AskTellOptimizer` alone, so
that a test can record what the controller would from an optimiser it fed itself.
"""

from __future__ import annotations

import numpy as np

from paretomerge.controller.artifacts import pareto_points
from paretomerge.controller.objectives import (
    ValidationAnchors,
    anchor_errors,
    validation_anchors,
)
from paretomerge.controller.state import PointEstimate, RunState, ValidationRecord
from paretomerge.search import AskTellOptimizer
from paretomerge.search.claims import hypervolume_claim, pool_repeated_questions


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


def validation_anchors_of(state: RunState, benchmarks: list[str]) -> ValidationAnchors:
    """What normalises this run's held-out validations (the held-out anchors, or the
    full-set ones they fell back to: :func:`~paretomerge.controller.objectives.validation_anchors`)."""
    roles = ("base", "expert")
    return validation_anchors(
        tuple(state.anchors[r].scores for r in roles),
        tuple(state.held_out_anchors[r].scores for r in roles),
        benchmarks,
    )


def record_validated(state: RunState, *, held_out: bool) -> None:
    """Give every candidate with a finished validation its validated value.

    With no question held out the validations were told to the optimiser like any
    evaluation of the point, so the validated value is the search's estimate, now pooled
    over them. With questions held out it is the validations' own values alone (unbiased
    by the search's choice), as each was recorded: normalised by the validation anchors
    (:func:`validation_anchors_of`), their errors included. A candidate's validations
    ask the same questions, so they are pooled as dependent
    (:func:`~paretomerge.search.claims.pool_repeated_questions`).
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
        known = all(r.objectives_std is not None for r in records)
        mean, var = pool_repeated_questions(
            np.array([r.objectives for r in records]),
            np.array([r.objectives_std for r in records]) ** 2 if known else None,
        )
        candidate.validated = PointEstimate(
            mean=mean.tolist(),
            std=None if var is None else np.sqrt(var).tolist(),
            prob_non_dominated=candidate.estimate.prob_non_dominated if candidate.estimate else 1.0,
            evaluations=len(records),
            held_out=True,
        )


def record_hypervolume(
    state: RunState, reference_point: list[float], after: str, benchmarks: list[str]
) -> None:
    """Append the estimate of the true hypervolume of the reported front, after the
    result of ``after`` (the candidate's or validation's id), and keep its interval
    (:func:`~paretomerge.search.claims.hypervolume_claim`: each member's own error and the
    anchors' common one, the search's anchors for estimates and the validation anchors
    for held-out values)."""
    front = [point.candidate for point in pareto_points(state)]
    values = np.array([c.reported.mean for c in front]).reshape(-1, 2)
    std = np.array([c.reported.std or [np.nan, np.nan] for c in front]).reshape(-1, 2)
    held_out = np.array([c.validated is not None and c.validated.held_out for c in front])
    errors = [
        anchor_errors(state.anchors["base"].scores, state.anchors["expert"].scores, benchmarks)
    ]
    if held_out.any():
        anchors = validation_anchors_of(state, benchmarks)
        errors.append(anchor_errors(anchors.base, anchors.expert, benchmarks))
    claim = hypervolume_claim(
        values,
        std,
        reference_point,
        errors,
        scale=held_out.astype(int),
        seed=len(state.hypervolume) + 1,  # the evaluations so far, as optimize() seeds it
    )
    state.hypervolume.append(claim.value)
    state.hypervolume_after.append(after)
    state.hypervolume_interval = (claim.low, claim.high)
