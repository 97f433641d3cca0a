"""kopf handlers, one module per cause: :mod:`.runs` (a run created or resumed, its spec
edited) and :mod:`.controller_jobs` (a controller Job that ran out of restarts)."""
