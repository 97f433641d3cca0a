"""The ParetoMerge operator: ParetoMergeRun -> controller Job, status, events.

Handlers live in :mod:`paretomerge_operator.handlers` (one module per cause);
:mod:`paretomerge_operator.main` only registers them and starts kopf.
"""
