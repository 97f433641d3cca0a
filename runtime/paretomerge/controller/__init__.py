"""The run's controller: importance profile, anchors, and the asynchronous search loop.

It joins ``search``, ``merge`` and ``evaluate`` through an executor, and knows nothing of
where tasks run.

The state, the objectives and the artifacts are light; the loop (and BoTorch behind it) is imported only
when something from it is first used, so that the operator, which builds a run's status
from the state, loads no torch.
"""

from importlib import import_module

from paretomerge.controller.objectives import AnchorError
from paretomerge.controller.state import RunState

_LAZY = {
    "Controller": "paretomerge.controller.loop",
    "Limits": "paretomerge.controller.loop",
    "RunFailed": "paretomerge.controller.loop",
    "run_directory": "paretomerge.controller.loop",
}

__all__ = ["AnchorError", "Controller", "Limits", "RunFailed", "RunState", "run_directory"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
