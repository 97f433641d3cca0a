"""Contiguous block partitions of a per-layer profile (BAMBO).

Layers ``0..n-1`` with normalised values ``v`` are cut into ``k`` contiguous blocks by an
exact dynamic programme over the cost

    cost(P) = sum_{B in P} [ alpha * SSE(B) + beta * (sum_{i in B} v_i - S / k)^2 ]

where ``SSE(B) = sum_{i in B} v_i^2 - (sum_{i in B} v_i)^2 / |B|`` is the within-block
squared error and ``S = sum_i v_i``. ``alpha = 1, beta = 0`` is the Fisher-Jenks
"variance" partition (homogeneous blocks), ``alpha = 0, beta = 1`` the "balance"
partition (equal importance mass per block), and "hybrid" mixes both.

The values are the layers' importance under one rule (:func:`layer_importance`), and
:func:`block_partition` is the one partition of a run's profile: the blocks a ``bambo``
search ties together, the blocks ``paretomerge importance --blocks`` draws and the
report's heatmap shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from paretomerge.vocabulary import PARTITION_STRATEGIES, PartitionStrategy


def normalize_profile(profile: Sequence[float]) -> np.ndarray:
    """Min-max normalise a divergence profile to importance in ``[0, 1]``.

    Args:
        profile: shape ``(d,)``, finite values.

    Returns:
        ``(p - min p) / (max p - min p)``, shape ``(d,)``. A constant profile carries no
        information and maps to ``0.5`` everywhere, which makes every SIP prior below
        equal to its plain (importance-free) counterpart.
    """
    p = np.asarray(profile, dtype=float)
    if p.ndim != 1 or p.size == 0:
        raise ValueError(f"layer_profile must be a non-empty 1-D sequence, got shape {p.shape}")
    if not np.all(np.isfinite(p)):
        bad = np.flatnonzero(~np.isfinite(p)).tolist()
        raise ValueError(f"layer_profile has non-finite values at positions {bad}")
    span = p.max() - p.min()
    if span <= 0:
        return np.full_like(p, 0.5)
    return (p - p.min()) / span


def layer_importance(profile: Sequence[float]) -> np.ndarray:
    """The layers' importance from the divergence of every merge weight.

    Args:
        profile: shape ``(L + 1,)``: the ``L`` layers, then the head variable.

    Returns:
        Shape ``(L,)``: the profile min-max normalised over every merge weight, head
        included (:func:`normalize_profile`, the importance the SIP priors see), then
        the layers' values. A head beyond the layers' range so narrows their spread
        but leaves their order.
    """
    return normalize_profile(profile)[:-1]


@dataclass(frozen=True)
class BlockPartition:
    """A partition of ``num_layers`` layers into contiguous blocks.

    ``starts[b]`` is the first layer of block ``b``; block ``b`` ends before ``starts[b+1]``
    (or at ``num_layers`` for the last block).
    """

    starts: tuple[int, ...]
    num_layers: int

    def __post_init__(self) -> None:
        if not self.starts or self.starts[0] != 0:
            raise ValueError(f"a partition starts at layer 0, got starts={list(self.starts)}")
        if any(b <= a for a, b in zip(self.starts, self.starts[1:], strict=False)):
            raise ValueError(f"block starts must increase strictly, got {list(self.starts)}")
        if self.starts[-1] >= self.num_layers:
            raise ValueError(
                f"block start {self.starts[-1]} is past the last layer ({self.num_layers - 1})"
            )

    @property
    def num_blocks(self) -> int:
        return len(self.starts)

    @property
    def bounds(self) -> list[tuple[int, int]]:
        """Half-open ``(start, stop)`` layer ranges, one per block."""
        stops = [*self.starts[1:], self.num_layers]
        return list(zip(self.starts, stops, strict=True))

    @property
    def labels(self) -> np.ndarray:
        """Block index of every layer, shape ``(num_layers,)``."""
        return np.repeat(np.arange(self.num_blocks), [b - a for a, b in self.bounds])

    def expand(self, block_values: Sequence[float]) -> np.ndarray:
        """Per-layer values from per-block values: layer ``l`` gets ``block_values[labels[l]]``."""
        values = np.asarray(block_values, dtype=float)
        if values.shape != (self.num_blocks,):
            raise ValueError(f"expected {self.num_blocks} block values, got shape {values.shape}")
        return values[self.labels]


def partition_cost(
    values: Sequence[float], partition: BlockPartition, alpha: float, beta: float
) -> float:
    """The DP objective ``sum_B alpha*SSE(B) + beta*(sum_B v - S/k)^2`` of one partition."""
    v = np.asarray(values, dtype=float)
    target = v.sum() / partition.num_blocks
    cost = 0.0
    for start, stop in partition.bounds:
        block = v[start:stop]
        sse = float(((block - block.mean()) ** 2).sum())
        cost += alpha * sse + beta * (float(block.sum()) - target) ** 2
    return cost


def optimal_partition(
    values: Sequence[float], num_blocks: int, alpha: float = 1.0, beta: float = 0.0
) -> BlockPartition:
    """The exact minimiser of the block cost, in ``O(k n^2)`` time and ``O(k n)`` memory.

    Args:
        values: per-layer values ``v``, shape ``(n,)``, finite.
        num_blocks: ``k``, with ``1 <= k <= n``.
        alpha: weight of the within-block squared error (homogeneity), ``>= 0``.
        beta: weight of the squared deviation of a block's mass from ``S / k`` (balance),
            ``>= 0``.

    Returns:
        The partition of minimal cost; among equal costs, the one whose blocks end earliest.
    """
    v = np.asarray(values, dtype=float)
    n = v.shape[0]
    _check_partition_args(v, num_blocks, alpha, beta)
    prefix = np.concatenate([[0.0], np.cumsum(v)])
    prefix_sq = np.concatenate([[0.0], np.cumsum(v * v)])
    target = prefix[-1] / num_blocks

    # block_cost[i, j]: cost of one block holding layers i..j-1 (i < j).
    i_idx, j_idx = np.triu_indices(n + 1, k=1)
    sums = prefix[j_idx] - prefix[i_idx]
    sse = prefix_sq[j_idx] - prefix_sq[i_idx] - sums**2 / (j_idx - i_idx)
    block_cost = np.full((n + 1, n + 1), np.inf)
    block_cost[i_idx, j_idx] = alpha * np.maximum(sse, 0.0) + beta * (sums - target) ** 2

    # best[b, j]: minimal cost of cutting layers 0..j-1 into b blocks.
    best = np.full((num_blocks + 1, n + 1), np.inf)
    best[0, 0] = 0.0
    last_start = np.zeros((num_blocks + 1, n + 1), dtype=int)
    for b in range(1, num_blocks + 1):
        # candidates[i, j] = best[b-1, i] + block_cost[i, j]
        candidates = best[b - 1][:, None] + block_cost
        last_start[b] = np.argmin(candidates, axis=0)  # first minimum: earliest cut
        best[b] = candidates[last_start[b], np.arange(n + 1)]

    starts = []
    end = n
    for b in range(num_blocks, 0, -1):
        start = int(last_start[b, end])
        starts.append(start)
        end = start
    return BlockPartition(starts=tuple(reversed(starts)), num_layers=n)


def uniform_partition(num_layers: int, num_blocks: int) -> BlockPartition:
    """Blocks of equal size (sizes differ by at most one, larger blocks first)."""
    if not 1 <= num_blocks <= num_layers:
        raise ValueError(f"num_blocks must be in [1, {num_layers}], got {num_blocks}")
    sizes = np.full(num_blocks, num_layers // num_blocks)
    sizes[: num_layers % num_blocks] += 1
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return BlockPartition(starts=tuple(int(s) for s in starts), num_layers=num_layers)


def partition_layers(
    values: Sequence[float],
    num_blocks: int,
    strategy: PartitionStrategy = "hybrid",
    alpha: float = 1.0,
    beta: float = 0.005,
) -> BlockPartition:
    """Partition by a named strategy.

    ``variance`` uses ``alpha=1, beta=0``; ``balance`` uses ``alpha=0, beta=1``;
    ``hybrid`` uses the given ``alpha`` and ``beta``; ``uniform`` ignores the values.
    """
    if strategy == "uniform":
        return uniform_partition(len(values), num_blocks)
    weights = {"variance": (1.0, 0.0), "balance": (0.0, 1.0), "hybrid": (alpha, beta)}
    if strategy not in weights:
        raise ValueError(
            f"unknown partition strategy {strategy!r}; expected one of {PARTITION_STRATEGIES}"
        )
    return optimal_partition(values, num_blocks, *weights[strategy])


def block_partition(
    profile: Sequence[float],
    num_blocks: int,
    strategy: PartitionStrategy = "hybrid",
    alpha: float = 1.0,
    beta: float = 0.005,
) -> BlockPartition:
    """The blocks of a run's profile: :func:`partition_layers` over
    :func:`layer_importance` (``profile`` is ``L + 1`` values, layers then head; the head
    is never part of a block)."""
    return partition_layers(layer_importance(profile), num_blocks, strategy, alpha, beta)


def _check_partition_args(v: np.ndarray, num_blocks: int, alpha: float, beta: float) -> None:
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"values must be a non-empty 1-D sequence, got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"values must be finite, got {v.tolist()}")
    if not 1 <= num_blocks <= v.size:
        raise ValueError(f"num_blocks must be in [1, {v.size}], got {num_blocks}")
    if alpha < 0 or beta < 0 or alpha + beta == 0:
        raise ValueError(f"alpha and beta must be >= 0 and not both 0, got {alpha}, {beta}")
