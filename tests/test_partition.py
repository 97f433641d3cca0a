import itertools

import numpy as np
import pytest

from paretomerge.partition import (
    BlockPartition,
    optimal_partition,
    partition_cost,
    partition_layers,
    uniform_partition,
)


def brute_force_cost(values, k, alpha, beta):
    n = len(values)
    return min(
        partition_cost(values, BlockPartition((0, *cuts), n), alpha, beta)
        for cuts in itertools.combinations(range(1, n), k - 1)
    )


@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (0.0, 1.0), (1.0, 0.5), (0.3, 2.0)])
def test_dp_is_optimal_against_brute_force(alpha, beta):
    rng = np.random.default_rng(7)
    for _ in range(60):
        n = int(rng.integers(1, 10))
        k = int(rng.integers(1, n + 1))
        values = rng.random(n) ** 2
        partition = optimal_partition(values, k, alpha, beta)
        assert partition.num_blocks == k
        assert partition_cost(values, partition, alpha, beta) == pytest.approx(
            brute_force_cost(values, k, alpha, beta), abs=1e-12
        )


def test_variance_partition_separates_levels():
    values = [0.0] * 5 + [1.0] * 3 + [0.2] * 4
    partition = partition_layers(values, 3, "variance")
    assert partition.bounds == [(0, 5), (5, 8), (8, 12)]


def test_balance_partition_equalises_mass():
    values = [1.0, 1.0, 1.0, 1.0, 4.0]
    partition = partition_layers(values, 2, "balance")
    assert partition.bounds == [(0, 4), (4, 5)]


def test_uniform_partition_sizes():
    partition = uniform_partition(36, 8)
    sizes = [b - a for a, b in partition.bounds]
    assert sum(sizes) == 36 and max(sizes) - min(sizes) <= 1
    assert partition_layers(np.zeros(36), 8, "uniform") == partition


def test_expand_maps_every_layer_to_its_block():
    partition = BlockPartition((0, 2, 5), num_layers=7)
    assert partition.labels.tolist() == [0, 0, 1, 1, 1, 2, 2]
    assert partition.expand([0.1, 0.5, 0.9]).tolist() == [0.1, 0.1, 0.5, 0.5, 0.5, 0.9, 0.9]
    with pytest.raises(ValueError, match="expected 3 block values"):
        partition.expand([0.1, 0.5])


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: optimal_partition([0.1, 0.2], 3), "num_blocks must be in"),
        (lambda: optimal_partition([0.1, float("nan")], 1), "finite"),
        (lambda: optimal_partition([0.1, 0.2], 1, alpha=0, beta=0), "not both 0"),
        (lambda: partition_layers([0.1, 0.2], 1, "kmeans"), "unknown partition strategy"),
        (lambda: BlockPartition((1, 2), 4), "starts at layer 0"),
        (lambda: BlockPartition((0, 2, 2), 4), "increase strictly"),
    ],
)
def test_partition_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
