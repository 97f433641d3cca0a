"""The interface between the controller's loop and whatever runs its tasks."""

from __future__ import annotations

import time
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
    """Runs tasks asynchronously; at most one attempt of a task at a time.

    Attributes:
        poll_seconds: how often :meth:`wait` looks for finished attempts.
    """

    poll_seconds: float

    def tasks_path(self) -> str | None:
        """The ``PATH`` of tasks that run on this machine (where a preflight looks for the
        engine's program); ``None`` where they run elsewhere, from an image that has it."""
        return None

    def evaluation_gpus(self) -> int:
        """The GPUs an evaluate task's model server gets where this executor runs it (what
        its GPU-seconds are counted with)."""
        return 0

    @abstractmethod
    def submit(self, task: ProfileTask | EvaluateTask, attempt: int) -> None:
        """Start ``attempt`` (0, 1, ...) of ``task``; its ``task.json`` is already written."""

    def adopt(self, task: ProfileTask | EvaluateTask, attempt: int) -> bool:
        """Follow ``attempt`` of ``task`` started by an earlier controller, if it still runs
        or finished uncollected; ``False`` when there is nothing to adopt."""
        return False

    def wait(self, timeout: float) -> list[TaskOutcome]:
        """Outcomes of attempts that finished since the last call; waits for at least one
        for ``timeout`` seconds, give or take one :attr:`poll_seconds` (not at all when
        nothing runs)."""
        deadline = time.monotonic() + timeout
        while True:
            outcomes = self.poll()
            if outcomes or not self.running() or time.monotonic() >= deadline:
                return outcomes
            time.sleep(self.poll_seconds)

    @abstractmethod
    def poll(self) -> list[TaskOutcome]:
        """Outcomes of attempts that finished since the last call, without waiting; their
        tasks no longer count as running."""

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
