"""Pareto masks and hypervolume, on BoTorch's exact box decompositions."""

from __future__ import annotations

import numpy as np
import torch
from botorch.utils.multi_objective.box_decompositions.dominated import DominatedPartitioning
from botorch.utils.multi_objective.pareto import is_non_dominated


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
