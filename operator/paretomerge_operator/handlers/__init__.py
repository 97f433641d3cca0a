"""kopf handlers, one module per cause: :mod:`.runs` (a run created or resumed, its spec
edited), :mod:`.restarts` (a finished run retried, or its budget raised),
:mod:`.controller_jobs` (a controller Job that ran out of restarts) and :mod:`.progress`
(any change of a run, turned into metrics).

Importing the package, or any of its modules, registers every handler, with kopf and with
the metrics' error counter (which starts each handler's series at 0)."""

from paretomerge_operator.handlers import controller_jobs, progress, restarts, runs  # noqa: F401
