"""Where tasks run: local subprocesses here, Kubernetes Jobs in
:mod:`paretomerge.k8s.executor`.

The controller's loop only sees :class:`Executor`: it submits tasks and collects their
outcomes as they finish, whatever runs them.
"""

from paretomerge.executors.base import Executor, TaskOutcome
from paretomerge.executors.local import LocalExecutor

__all__ = ["Executor", "LocalExecutor", "TaskOutcome"]
