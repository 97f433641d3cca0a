"""Per-layer weights -> mergekit configuration -> merged model directory.

Build a :class:`MergePlan` (from per-layer, block or model-level weights), then run it
with :func:`merge_models`; :func:`build_configuration` shows the mergekit configuration
a plan becomes without running it.

Plans are light; mergekit (and torch behind it) is imported only when something from
``execute`` or ``mergekit_config`` is first used, so that processes which only pass
plans around (the operator, the controller) start fast.
"""

from importlib import import_module

from paretomerge.merge.plan import (
    MERGE_METHODS,
    SPARSIFYING_METHODS,
    STOCHASTIC_METHODS,
    MergePlan,
    plan_from_block_weights,
    plan_from_weights,
)

_LAZY = {
    "MERGEKIT_CONFIG_FILE": "paretomerge.merge.execute",
    "PLAN_FILE": "paretomerge.merge.execute",
    "ExecutionOptions": "paretomerge.merge.execute",
    "merge_models": "paretomerge.merge.execute",
    "build_configuration": "paretomerge.merge.mergekit_config",
}

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


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
