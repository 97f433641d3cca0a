"""kopf handlers, one module per cause: :mod:`.runs` (a run created or resumed, its spec
edited), :mod:`.controller_jobs` (a controller Job that ran out of restarts) and
:mod:`.progress` (any change of a run, turned into metrics)."""
