"""Per-layer weights -> mergekit configuration -> merged model directory.

Build a :class:`MergePlan` (from per-layer, block or model-level weights), then run it
with :func:`merge_models`; :func:`build_configuration` shows the mergekit configuration
a plan becomes without running it.
"""

from paretomerge.merge.execute import (
    MERGEKIT_CONFIG_FILE,
    PLAN_FILE,
    ExecutionOptions,
    merge_models,
)
from paretomerge.merge.mergekit_config import build_configuration
from paretomerge.merge.plan import (
    MERGE_METHODS,
    SPARSIFYING_METHODS,
    STOCHASTIC_METHODS,
    MergePlan,
    plan_from_block_weights,
    plan_from_weights,
)

__all__ = [
    "MERGEKIT_CONFIG_FILE",
    "MERGE_METHODS",
    "PLAN_FILE",
    "SPARSIFYING_METHODS",
    "STOCHASTIC_METHODS",
    "ExecutionOptions",
    "MergePlan",
    "build_configuration",
    "merge_models",
    "plan_from_block_weights",
    "plan_from_weights",
]
