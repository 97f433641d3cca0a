"""Pareto masks and hypervolume, on BoTorch's exact box decompositions."""

from __future__ import annotations

import numpy as np
import torch
from botorch.utils.multi_objective.box_decompositions.dominated import DominatedPartitioning
from botorch.utils.multi_objective.pareto import is_non_dominated

from paretomerge.search.front import reported_front


def pareto_mask(Y: np.ndarray) -> np.ndarray:
    """Boolean mask ``(n,)`` of the non-dominated rows of ``Y`` ``(n, m)`` (maximisation).

    Duplicate non-dominated rows are all kept.
    """
    Y = np.asarray(Y, dtype=float)
    if Y.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    return is_non_dominated(torch.as_tensor(Y), deduplicate=False).numpy()


def hypervolume(Y: np.ndarray, ref_point: np.ndarray) -> float:
    """Hypervolume dominated by ``Y`` ``(n, m)`` above ``ref_point`` ``(m,)`` (maximisation).

    Points that do not strictly dominate the reference point contribute nothing.
    """
    Y = np.asarray(Y, dtype=float)
    if Y.shape[0] == 0:
        return 0.0
    partitioning = DominatedPartitioning(
        ref_point=torch.as_tensor(ref_point, dtype=torch.double),
        Y=torch.as_tensor(Y, dtype=torch.double),
    )
    return float(partitioning.compute_hypervolume())


def reported_hypervolume(
    values: np.ndarray,
    ref_point: np.ndarray,
    eligible: np.ndarray | None = None,
    baselines: np.ndarray | None = None,
) -> float:
    """Hypervolume of the front a search reports from ``values`` ``(n, m)``: of the members
    :func:`~paretomerge.search.front.reported_front` chooses (``eligible`` ``(n,)``,
    ``baselines`` ``(k, m)`` as there), above ``ref_point`` ``(m,)``."""
    values = np.asarray(values, dtype=float)
    members = reported_front(values, eligible, baselines)
    return hypervolume(values[[member.index for member in members]], ref_point)
