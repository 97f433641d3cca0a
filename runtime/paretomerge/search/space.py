"""Search spaces: which decision variables share one searched value.

Every strategy searches a unit cube ``[0, 1]^k`` of *search variables* ``z`` and maps it
to the ``d`` decision variables ``x`` through a grouping: decision variable ``i`` takes
the value of search variable ``group[i]``. Layer-wise search is the identity grouping,
BAMBO groups contiguous layers into blocks, the model-level baseline ties every merge
weight to one scalar.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Grouping:
    """Decision variable ``i`` takes search variable ``groups[i]``; every group is used."""

    groups: tuple[int, ...]

    def __post_init__(self) -> None:
        used = sorted(set(self.groups))
        if used != list(range(len(used))):
            raise ValueError(f"groups must use every index 0..k-1, got {list(self.groups)}")

    @classmethod
    def identity(cls, dim: int) -> Grouping:
        return cls(tuple(range(dim)))

    @property
    def dim(self) -> int:
        """Number of decision variables ``d``."""
        return len(self.groups)

    @property
    def search_dim(self) -> int:
        """Number of search variables ``k``."""
        return max(self.groups) + 1

    def expand(self, z: np.ndarray) -> np.ndarray:
        """``(..., k) -> (..., d)``: every decision variable takes its group's value."""
        return np.asarray(z, dtype=float)[..., list(self.groups)]

    def reduce(self, x: np.ndarray) -> np.ndarray:
        """``(..., d) -> (..., k)``: each search variable as the mean over its group.

        Exact inverse of :meth:`expand` for points this grouping produced; for other
        points (user solutions, anchors) the least-squares projection onto its range.
        """
        membership = np.eye(self.search_dim)[list(self.groups)]  # (d, k) one-hot
        return np.asarray(x, dtype=float) @ membership / membership.sum(axis=0)


def tied_grouping(dim: int, tied: Sequence[int]) -> Grouping:
    """One search variable for all ``tied`` decision variables, one each for the others.

    The tied group comes first (search variable 0); the others follow in order.
    """
    tied_set = set(tied)
    groups, next_free = [], 1
    for i in range(dim):
        if i in tied_set:
            groups.append(0)
        else:
            groups.append(next_free)
            next_free += 1
    return Grouping(tuple(groups))
