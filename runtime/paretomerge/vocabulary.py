"""The names a run spec may use, in a module light enough for the operator to import
(no torch, BoTorch or mergekit behind it)."""

from __future__ import annotations

from typing import Literal

MergeMethodName = Literal[
    "linear",
    "task_arithmetic",
    "ties",
    "dare_ties",
    "dare_linear",
    "breadcrumbs",
    "breadcrumbs_ties",
    "della",
    "della_linear",
]
MERGE_METHODS: tuple[str, ...] = MergeMethodName.__args__
SPARSIFYING_METHODS = frozenset(
    {"ties", "dare_ties", "dare_linear", "breadcrumbs", "breadcrumbs_ties", "della", "della_linear"}
)
STOCHASTIC_METHODS = frozenset({"dare_ties", "dare_linear", "della", "della_linear"})
EPSILON_METHODS = frozenset({"della", "della_linear"})
GAMMA_METHODS = frozenset({"breadcrumbs", "breadcrumbs_ties"})

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
