"""The run directory's artifacts, rewritten after every finished evaluation.

Names follow the reference code where it has them:

- ``decision_variables.npy`` ``(n, d)``: merge weights (and density) of the ``n``
  evaluated candidates, in evaluation order;
- ``objectives.npy`` ``(n, 2)``: their ``(f1, f2)``, both maximised;
- ``results.json``: anchors and every candidate, failed ones with their reasons;
- ``pareto.csv``: the Pareto set as :func:`pareto_points` defines it, most accurate
  first, ``point`` numbering its rows for ``paretomerge materialize --point``;
- ``hypervolume.json``: hypervolume after each evaluation, and the reference point.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from paretomerge.controller.space import DecisionSpace
from paretomerge.controller.state import CandidateRecord, RunState
from paretomerge.search import pareto_mask

DECISION_VARIABLES_FILE = "decision_variables.npy"
OBJECTIVES_FILE = "objectives.npy"
RESULTS_FILE = "results.json"
PARETO_FILE = "pareto.csv"
HYPERVOLUME_FILE = "hypervolume.json"
ARTIFACT_FILES = (
    PARETO_FILE,
    RESULTS_FILE,
    OBJECTIVES_FILE,
    DECISION_VARIABLES_FILE,
    HYPERVOLUME_FILE,
)


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

    A user chooses among models: the base and the expert are there without any merge, so a
    merge that one of them matches or beats in both objectives is no trade-off worth
    listing, and merges with identical objectives are one choice, not several.
    """
    done = [c for c in state.candidates if c.status == "succeeded"]
    if not done:
        return []
    Y = np.array([c.objectives for c in done])
    beaten_by_anchor = (ANCHOR_OBJECTIVES[None, :, :] >= Y[:, None, :]).all(axis=2).any(axis=1)
    points: dict[tuple[float, ...], list[CandidateRecord]] = {}
    for candidate, keep, matched in zip(done, pareto_mask(Y), beaten_by_anchor, strict=True):
        if keep and not matched:
            points.setdefault(tuple(candidate.objectives), []).append(candidate)
    front = [ParetoPoint(same[0], tuple(c.id for c in same[1:])) for same in points.values()]
    return sorted(front, key=lambda p: (-p.candidate.objectives[0], -p.candidate.objectives[1]))


def pareto_candidates(state: RunState) -> list[CandidateRecord]:
    """The candidate of each point of :func:`pareto_points`, in its order."""
    return [point.candidate for point in pareto_points(state)]


def write_artifacts(run_dir: Path, state: RunState, space: DecisionSpace) -> None:
    done = [c for c in state.candidates if c.status == "succeeded"]
    _atomic_npy(
        run_dir / DECISION_VARIABLES_FILE,
        np.array([c.variables for c in done], dtype=float).reshape(-1, space.dim),
    )
    _atomic_npy(
        run_dir / OBJECTIVES_FILE,
        np.array([c.objectives for c in done], dtype=float).reshape(-1, 2),
    )
    results = {
        "run": state.run,
        "variables": space.variable_names(),
        "anchors": {role: a.model_dump() for role, a in state.anchors.items()},
        "candidates": [c.model_dump() for c in state.candidates],
    }
    _atomic_text(run_dir / RESULTS_FILE, json.dumps(results, indent=1) + "\n")
    _atomic_text(run_dir / PARETO_FILE, pareto_table(state, space, run_dir.name))
    history = {
        "reference_point": list(space.spec.search.reference_point),
        "evaluations": list(range(1, len(state.hypervolume) + 1)),
        "hypervolume": state.hypervolume,
    }
    _atomic_text(run_dir / HYPERVOLUME_FILE, json.dumps(history, indent=1) + "\n")


def pareto_table(state: RunState, space: DecisionSpace, run_dir_name: str) -> str:
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
            *[f"{name}_{metric}" for name in benchmarks for metric in ("accuracy", "tokens")],
            "weight_mean",
            "weight_min",
            "weight_max",
            "variables",
            "merge_task",
            "same_scores",
        ]
    )
    for point, pareto_point in enumerate(pareto_points(state)):
        candidate = pareto_point.candidate
        weights = np.asarray(candidate.variables[:weight_count])
        writer.writerow(
            [
                point,
                candidate.id,
                f"{candidate.objectives[0]:.6g}",
                f"{candidate.objectives[1]:.6g}",
                *[
                    f"{candidate.scores[name][metric]:.6g}"
                    for name in benchmarks
                    for metric in ("accuracy", "mean_output_tokens")
                ],
                f"{weights.mean():.4f}",
                f"{weights.min():.4f}",
                f"{weights.max():.4f}",
                " ".join(f"{v:.4f}" for v in candidate.variables),
                f"candidates/{candidate.id}/task.json",
                " ".join(pareto_point.same_scores),
            ]
        )
    return buffer.getvalue()


def _atomic_npy(path: Path, array: np.ndarray) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "wb") as handle:
        np.save(handle, array)
    os.replace(temporary, path)


def _atomic_text(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
