"""The names a run spec may use, in a module light enough for the operator to import
(no torch, BoTorch or mergekit behind it). Merge methods are in their registry,
:mod:`paretomerge.merge.methods`."""

from __future__ import annotations

from typing import Literal

StrategyName = Literal[
    "random",
    "sobol",
    "model-level",
    "gp",
    "sip-gp",
    "saas",
    "sip-saas",
    "sip-map-saas",
    "coarse-to-fine",
    "bambo",
]
STRATEGY_NAMES: tuple[str, ...] = StrategyName.__args__
# Strategies that need the per-layer importance profile.
PROFILE_STRATEGIES = frozenset({"sip-gp", "sip-saas", "sip-map-saas", "coarse-to-fine", "bambo"})

PartitionStrategy = Literal["variance", "balance", "hybrid", "uniform"]
PARTITION_STRATEGIES: tuple[str, ...] = PartitionStrategy.__args__
