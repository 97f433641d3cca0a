"""The run directory's artifacts, rewritten after every finished evaluation.

Names follow the reference code where it has them (where they lie:
:mod:`paretomerge.run_layout`):

- ``decision_variables.npy`` ``(n, d)``: merge weights (and density) of the ``n``
  evaluated candidates, in evaluation order;
- ``objectives.npy`` ``(n, 2)``: their ``(f1, f2)``, both maximised, as evaluated;
- ``objectives_std.npy`` ``(n, 2)``: the standard deviation of each, the anchors' errors
  included (NaN where a score had no standard error);
- ``results.json``: anchors and every candidate, failed ones with their reasons, each
  with its evaluated ``objectives``, the search's ``estimate`` and its ``cost``; the
  ``cost`` of all candidates and validations together and the ``anchor_cost`` apart
  (:attr:`RunState.cost`); ``replaced_anchors``, when the anchors were too close and
  measured again, their first measurement; after a validation also the ``validations``
  and the anchors on the held-out questions;
- ``pareto.csv``: the Pareto set as :func:`pareto_points` defines it, most accurate
  first, ``point`` numbering its rows for ``paretomerge materialize --point``: ``f1``,
  ``f2`` the values the run reports (the search's estimates, posterior means; for a
  member validated on held-out questions, its validations' value), ``f1_std``, ``f2_std``
  their standard deviations and ``f1_low`` ... ``f2_high`` their 90% intervals
  (:func:`~paretomerge.search.claims.point_interval`), ``validated`` whether they are the
  values of its validations (``true``) or the search's (``false``), ``held_out`` whether
  those validations asked the questions held out of the search,
  ``indistinguishable_from`` the merges listed with it (their values cannot be told from
  its own; older files call it ``same_scores``), the benchmark columns the raw scores of
  the candidate's evaluation;
- ``hypervolume.json``: the estimate of the true hypervolume of the reported front after
  each result (:func:`~paretomerge.search.claims.hypervolume_claim`), the candidate
  whose result it followed (``after``), the 90% ``interval`` of the last one, and the
  reference point.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from paretomerge.controller.objectives import ANCHOR_OBJECTIVES
from paretomerge.controller.state import CandidateRecord, RunState
from paretomerge.files import write_atomic
from paretomerge.run_layout import WITHIN_RUN, RunLayout
from paretomerge.search.claims import point_interval
from paretomerge.search.front import reported_front

if TYPE_CHECKING:  # imported by the status module: no search (torch) behind it
    from paretomerge.controller.decision_space import DecisionSpace


@dataclass(frozen=True)
class ParetoPoint:
    """One point of the Pareto set: ``candidate``, the merge listed, and
    ``indistinguishable_from``, the ids of the merges whose values cannot be told from its
    own within their uncertainty (exactly the same values among them), listed with it
    rather than as points of their own
    (:func:`~paretomerge.search.front.reported_front`)."""

    candidate: CandidateRecord
    indistinguishable_from: tuple[str, ...] = ()


def pareto_points(state: RunState) -> list[ParetoPoint]:
    """The Pareto set of the evaluated merges, most accurate (highest f1) first: the
    search's rule (:func:`~paretomerge.search.front.reported_front`) on the search's
    estimates (:attr:`CandidateRecord.searched`: the posterior, never the raw
    evaluations) and their standard deviations (0 where a value has none), with the base
    and the expert as baselines. Validated values then value
    the points chosen (:attr:`CandidateRecord.reported`) and never choose them. A
    screened candidate was valued on part of the questions: it is eligible only once a
    validation evaluated it in full.
    """
    done = [c for c in state.candidates if c.status in ("succeeded", "screened")]
    if not done:
        return []
    members = reported_front(
        np.array([c.searched.mean for c in done]),
        eligible=np.array([c.status == "succeeded" or c.validated is not None for c in done]),
        baselines=ANCHOR_OBJECTIVES,
        std=np.array([c.searched.std or [0.0, 0.0] for c in done], dtype=float),
    )
    return [
        ParetoPoint(done[m.index], tuple(done[i].id for i in m.indistinguishable_from))
        for m in members
    ]


def pareto_candidates(state: RunState) -> list[CandidateRecord]:
    """The candidate of each point of :func:`pareto_points`, in its order."""
    return [point.candidate for point in pareto_points(state)]


def write_artifacts(run_dir: Path, state: RunState, space: DecisionSpace) -> None:
    files = RunLayout(run_dir)
    done = [c for c in state.candidates if c.status == "succeeded"]
    _write_npy(
        files.decision_variables,
        np.array([c.variables for c in done], dtype=float).reshape(-1, space.dim),
    )
    _write_npy(
        files.objectives,
        np.array([c.objectives for c in done], dtype=float).reshape(-1, 2),
    )
    _write_npy(
        files.objectives_std,
        np.array([c.objectives_std or [np.nan, np.nan] for c in done], dtype=float).reshape(-1, 2),
    )
    results = {
        "run": state.run,
        "variables": space.variable_names(),
        "anchors": {role: a.model_dump() for role, a in state.anchors.items()},
        "candidates": [c.model_dump() for c in state.candidates],
        "cost": state.cost.model_dump(),
        "anchor_cost": state.anchor_cost.model_dump(),
    }
    if state.replaced_anchors:
        results["replaced_anchors"] = {
            role: a.model_dump() for role, a in state.replaced_anchors.items()
        }
    if state.validations:
        results["held_out_anchors"] = {
            role: a.model_dump() for role, a in state.held_out_anchors.items()
        }
        results["validations"] = [v.model_dump() for v in state.validations]
    write_atomic(files.results, json.dumps(results, indent=1) + "\n")
    write_atomic(files.pareto, pareto_table(state, space))
    unnamed = len(state.hypervolume) - len(state.hypervolume_after)  # older checkpoints
    history = {
        "reference_point": list(space.spec.search.reference_point),
        "evaluations": list(range(1, len(state.hypervolume) + 1)),
        "after": [None] * unnamed + state.hypervolume_after,
        "hypervolume": state.hypervolume,
        "interval": state.hypervolume_interval,
    }
    write_atomic(files.hypervolume, json.dumps(history, indent=1) + "\n")


def pareto_table(state: RunState, space: DecisionSpace) -> str:
    """``pareto.csv``'s content."""
    benchmarks = space.spec.objectives.names
    weight_count = space.num_weights
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [
            "point",
            "candidate",
            "f1",
            "f2",
            "f1_std",
            "f2_std",
            "f1_low",
            "f1_high",
            "f2_low",
            "f2_high",
            *[f"{name}_{metric}" for name in benchmarks for metric in ("accuracy", "tokens")],
            "weight_mean",
            "weight_min",
            "weight_max",
            "variables",
            "merge_task",
            "indistinguishable_from",
            "validated",
            "held_out",
        ]
    )
    for point, pareto_point in enumerate(pareto_points(state)):
        candidate = pareto_point.candidate
        mean, std = candidate.reported
        # The 90% interval, f1_low, f1_high, f2_low, f2_high.
        low, high = point_interval(mean, std) if std else ([None] * 2, [None] * 2)
        interval = [bound for objective in zip(low, high, strict=True) for bound in objective]
        weights = np.asarray(candidate.variables[:weight_count])
        writer.writerow(
            [
                point,
                candidate.id,
                f"{mean[0]:.6g}",
                f"{mean[1]:.6g}",
                *((f"{v:.6g}" for v in std) if std else ("", "")),
                *("" if v is None else f"{v:.6g}" for v in interval),
                *[
                    f"{value:.6g}"
                    for name in benchmarks
                    for value in (
                        candidate.scores[name].accuracy,
                        candidate.scores[name].mean_output_tokens,
                    )
                ],
                f"{weights.mean():.4f}",
                f"{weights.min():.4f}",
                f"{weights.max():.4f}",
                " ".join(f"{v:.4f}" for v in candidate.variables),
                str(WITHIN_RUN.candidate_task(candidate.id)),
                " ".join(pareto_point.indistinguishable_from),
                "true" if candidate.validated is not None else "false",
                "true"
                if candidate.validated is not None and candidate.validated.held_out
                else "false",
            ]
        )
    return buffer.getvalue()


def _write_npy(path: Path, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array)
    write_atomic(path, buffer.getvalue())
