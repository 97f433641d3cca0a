"""The run's controller: importance profile, anchors, and the asynchronous search loop.

It joins ``search``, ``merge`` and ``evaluate`` through an executor, and knows nothing of
where tasks run. The package imports nothing itself: the operator builds a run's status
from :mod:`.state` and must not load the loop (and BoTorch, torch behind it), so callers
import from the modules: :mod:`.loop` (``Controller``: the run's phases),
:mod:`.task_runner` (``TaskRunner``, ``Limits``, ``RunFailed``), :mod:`.search_driver`
(the search and validation), :mod:`.estimates` (what is recorded after each result),
:mod:`.state` (``RunState``), :mod:`.objectives`, :mod:`.artifacts`.
"""
