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
  (:attr:`RunState.cost`); after a validation also the ``validations`` and the anchors
  on the held-out questions;
- ``pareto.csv``: the Pareto set as :func:`pareto_points` defines it, most accurate
  first, ``point`` numbering its rows for ``paretomerge materialize --point``: ``f1``,
  ``f2`` the search's estimates (posterior means), ``f1_std``, ``f2_std`` their standard
  deviations (a 95% interval is ``+-1.96`` of them), ``validated`` whether they are the
  values of its validations (``true``) or the search's (``false``), the benchmark
  columns the raw scores of the candidate's evaluation;
- ``hypervolume.json``: the hypervolume of the reported front after each result, the
  candidate whose result it followed (``after``), and the reference point.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from paretomerge.controller.state import CandidateRecord, RunState
from paretomerge.files import write_atomic
from paretomerge.run_layout import WITHIN_RUN, RunLayout

if TYPE_CHECKING:  # imported by the status module: no search (torch) behind it
    from paretomerge.controller.decision_space import DecisionSpace


# Where the anchors sit in objective space (see objectives.py): base, expert.
ANCHOR_OBJECTIVES = np.array([[0.0, 1.0], [1.0, 0.0]])


@dataclass(frozen=True)
class ParetoPoint:
    """One point of the Pareto set: ``candidate``, the first merge evaluated with these
    objectives, and ``same_scores``, the ids of later merges that scored exactly the same
    (equally good, so listed with it rather than as points of their own)."""

    candidate: CandidateRecord
    same_scores: tuple[str, ...] = ()


def pareto_points(state: RunState) -> list[ParetoPoint]:
    """The Pareto set of the evaluated merges, most accurate (highest f1) first.

    Chosen and ordered by the values the run reports (:attr:`CandidateRecord.reported`:
    the search's posterior estimates, never the raw evaluations, whose best are the
    luckiest draws). A user chooses among models: the base and the expert are there
    without any merge, so a merge that one of them matches or beats in both objectives is
    no trade-off worth listing, and merges with identical values are one choice, not
    several. A screened candidate was valued on part of the questions: it is a point
    only once a validation evaluated it in full.
    """
    done = [
        c
        for c in state.candidates
        if c.status == "succeeded" or (c.status == "screened" and c.validated is not None)
    ]
    if not done:
        return []
    Y = np.array([c.reported.mean for c in done])
    beaten_by_anchor = (ANCHOR_OBJECTIVES[None, :, :] >= Y[:, None, :]).all(axis=2).any(axis=1)
    points: dict[tuple[float, ...], list[CandidateRecord]] = {}
    for candidate, y, keep, matched in zip(
        done, Y, non_dominated(Y), beaten_by_anchor, strict=True
    ):
        if keep and not matched:
            points.setdefault(tuple(y), []).append(candidate)
    front = [ParetoPoint(same[0], tuple(c.id for c in same[1:])) for same in points.values()]
    return sorted(front, key=lambda p: tuple(-v for v in p.candidate.reported.mean))


def pareto_candidates(state: RunState) -> list[CandidateRecord]:
    """The candidate of each point of :func:`pareto_points`, in its order."""
    return [point.candidate for point in pareto_points(state)]


def non_dominated(Y: np.ndarray) -> np.ndarray:
    """Boolean mask ``(n,)`` of the rows of ``Y`` ``(n, m)`` that no other row dominates
    (maximisation: ``y'`` dominates ``y`` when ``y' >= y`` in every objective and ``>`` in
    one); duplicate non-dominated rows are all kept. ``O(n^2 m)`` time, ``O(n m)`` memory.

    In numpy rather than BoTorch's ``is_non_dominated``: the run's status is built with
    it, and the operator, which imports the status module, must not load torch."""
    dominated = np.zeros(len(Y), dtype=bool)
    for y in Y:
        dominated |= (y >= Y).all(axis=1) & (y > Y).any(axis=1)
    return ~dominated


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
    }
    write_atomic(files.hypervolume, json.dumps(history, indent=1) + "\n")


def pareto_table(state: RunState, space: DecisionSpace) -> str:
    """``pareto.csv``'s content."""
    benchmarks = [b.name for b in space.spec.objectives.benchmarks]
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
            *[f"{name}_{metric}" for name in benchmarks for metric in ("accuracy", "tokens")],
            "weight_mean",
            "weight_min",
            "weight_max",
            "variables",
            "merge_task",
            "same_scores",
            "validated",
        ]
    )
    for point, pareto_point in enumerate(pareto_points(state)):
        candidate = pareto_point.candidate
        mean, std = candidate.reported
        weights = np.asarray(candidate.variables[:weight_count])
        writer.writerow(
            [
                point,
                candidate.id,
                f"{mean[0]:.6g}",
                f"{mean[1]:.6g}",
                *((f"{v:.6g}" for v in std) if std else ("", "")),
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
                " ".join(pareto_point.same_scores),
                "true" if candidate.validated is not None else "false",
            ]
        )
    return buffer.getvalue()


def _write_npy(path: Path, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array)
    write_atomic(path, buffer.getvalue())
