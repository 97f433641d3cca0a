"""The interface between the controller's loop and whatever runs its tasks."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from paretomerge.tasks import EvaluateTask, ProfileTask


@dataclass(frozen=True)
class TaskOutcome:
    """A finished attempt of a task.

    ``succeeded`` means the task wrote its ``result.json``; otherwise ``reason`` says
    what went wrong (the task's own error, an exit code, a deadline).
    """

    task_id: str
    attempt: int
    succeeded: bool
    reason: str | None = None


class Executor(ABC):
    """Runs tasks asynchronously; at most one attempt of a task at a time."""

    @abstractmethod
    def submit(self, task: ProfileTask | EvaluateTask, attempt: int) -> None:
        """Start ``attempt`` (0, 1, ...) of ``task``; its ``task.json`` is already written."""

    def adopt(self, task: ProfileTask | EvaluateTask, attempt: int) -> bool:
        """Follow ``attempt`` of ``task`` started by an earlier controller, if it still runs
        or finished uncollected; ``False`` when there is nothing to adopt."""
        return False

    @abstractmethod
    def wait(self, timeout: float) -> list[TaskOutcome]:
        """Outcomes of attempts that finished since the last call; waits up to ``timeout``
        seconds for at least one."""

    @abstractmethod
    def running(self) -> dict[str, int]:
        """Task id -> attempt of every attempt still running (also ones started by an
        earlier controller that this executor adopted)."""

    @abstractmethod
    def cancel(self, task_id: str) -> None:
        """Stop the running attempt of ``task_id``, if any."""

    def close(self) -> None:
        """Stop everything still running (the run is over or aborted)."""
        for task_id in list(self.running()):
            self.cancel(task_id)
