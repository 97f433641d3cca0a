import itertools

import numpy as np
import pytest
from builders import run_manifest

from paretomerge.controller.decision_space import DecisionSpace
from paretomerge.importance import ImportanceProfile, partition_profile
from paretomerge.partition import (
    BlockPartition,
    normalize_profile,
    optimal_partition,
    partition_cost,
    partition_layers,
    uniform_partition,
)
from paretomerge.search.config import SearchConfig
from paretomerge.search.strategies import BamboStrategy
from paretomerge.spec import parse_run


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


def random_profiles(count: int, seed: int = 0):
    """``(layers, head, num_blocks, strategy, alpha, beta)``: 2-48 layers of divergences
    spread over two orders of magnitude, a head inside or (half the time) outside the
    layers' range, and every partition strategy."""
    rng = np.random.default_rng(seed)
    strategies = ("variance", "balance", "hybrid", "uniform")
    for i in range(count):
        num_layers = int(rng.integers(2, 49))
        layers = np.exp(rng.uniform(-2.0, 2.0, num_layers))
        low, high = layers.min(), layers.max()
        head = rng.choice(
            [rng.uniform(low, high), high * rng.uniform(1.5, 20.0), low * rng.uniform(0.0, 0.7)],
            p=[0.5, 0.25, 0.25],
        )
        alpha, beta = float(rng.uniform(0.0, 2.0)), float(rng.uniform(0.001, 2.0))
        num_blocks = int(rng.integers(1, num_layers + 1))
        yield layers.tolist(), float(head), num_blocks, strategies[i % 4], alpha, beta


def test_importance_blocks_the_bambo_strategy_and_the_run_agree_on_every_profile():
    """``paretomerge importance --blocks`` draws the blocks a bambo run searches and
    merges by, heads outside the layers' range included (they once differed on those:
    the importance command normalised the layers alone)."""
    differ_under_layers_alone = 0
    for layers, head, k, strategy, alpha, beta in random_profiles(240):
        drawn = partition_profile(
            ImportanceProfile.model_construct(layers=layers, head=head), k, strategy, alpha, beta
        )
        profile = (*layers, head)
        config = SearchConfig(
            dim=len(profile),
            num_objectives=2,
            strategy="bambo",
            ref_point=(-0.2, -0.2),
            budget=4,
            initial_points=2,
            layer_profile=profile,
            num_blocks=k,
            partition_strategy=strategy,
            partition_alpha=alpha,
            partition_beta=beta,
        )
        searched = BamboStrategy(config).grouping.groups[: len(layers)]
        blocks = {"count": k, "strategy": strategy, "alpha": alpha, "beta": beta}
        run = parse_run(
            run_manifest(
                search={"strategy": "bambo"}, merge={"granularity": "block", "blocks": blocks}
            )
        )
        merged = DecisionSpace(run.spec, len(layers), profile).partition
        assert list(searched) == BlockPartition(tuple(drawn.starts), len(layers)).labels.tolist()
        assert drawn.starts == list(merged.starts)
        alone = partition_layers(normalize_profile(layers), k, strategy, alpha, beta)
        differ_under_layers_alone += alone.starts != tuple(drawn.starts)
    assert differ_under_layers_alone > 0  # the profiles reach the case that once differed
