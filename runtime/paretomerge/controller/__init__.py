"""The run's controller: importance profile, anchors, and the asynchronous search loop.

It joins ``search``, ``merge`` and ``evaluate`` through an executor, and knows nothing of
where tasks run.
"""

from paretomerge.controller.loop import Controller, Limits, RunFailed
from paretomerge.controller.objectives import AnchorError
from paretomerge.controller.state import RunState
from paretomerge.run_layout import run_directory

__all__ = ["AnchorError", "Controller", "Limits", "RunFailed", "RunState", "run_directory"]
