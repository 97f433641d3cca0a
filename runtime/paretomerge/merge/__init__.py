"""Per-layer weights -> mergekit configuration -> merged model directory.

Build a :class:`MergePlan` (from per-layer, block or model-level weights), then run it
with :func:`merge_models`; :func:`build_configuration` shows the mergekit configuration
a plan becomes without running it.

Nothing is imported until it is first used: the spec (and so the operator) reads the
method registry (:mod:`.methods`) without numpy, and mergekit (and torch behind it) is
loaded only by ``execute`` and ``mergekit_config``, so that processes which only pass
plans around (the operator, the controller) start fast.
"""

from importlib import import_module

_LAZY = {
    "METHODS": "paretomerge.merge.methods",
    "MergeMethod": "paretomerge.merge.methods",
    "MergePlan": "paretomerge.merge.plan",
    "plan_from_block_weights": "paretomerge.merge.plan",
    "plan_from_weights": "paretomerge.merge.plan",
    "MERGEKIT_CONFIG_FILE": "paretomerge.merge.execute",
    "PLAN_FILE": "paretomerge.merge.execute",
    "ExecutionOptions": "paretomerge.merge.execute",
    "merge_models": "paretomerge.merge.execute",
    "build_configuration": "paretomerge.merge.mergekit_config",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
