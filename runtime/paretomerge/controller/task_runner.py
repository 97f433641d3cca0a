"""How the controller runs a task: started or adopted, retried while retries are left.

Every task, the profile and the anchors as much as the candidates and validations, keeps
its attempts in the run's state (:class:`~paretomerge.controller.state.TaskAttempts`),
and a failure is checkpointed before the next attempt starts. So a controller that is
killed and started again follows the attempt that was due (adopted from the executor if
an earlier controller started it, started otherwise) and never grants a retry twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from paretomerge.controller.state import RunState, TaskAttempts
from paretomerge.executors import Executor, TaskOutcome
from paretomerge.results import EvaluateTaskResult, ProfileResult
from paretomerge.spec import CostBudgetSpec, RunSpec
from paretomerge.tasks import EvaluateTask, ProfileTask, read_result, write_task

Task = ProfileTask | EvaluateTask


class RunFailed(RuntimeError):
    """The run cannot go on; the message says why."""


@dataclass(frozen=True)
class Limits:
    """What may change while a run goes on (Kubernetes users edit them like in Katib):
    ``spec.search.budget``, ``spec.execution.parallelism`` and
    ``spec.search.costBudget``."""

    budget: int
    parallelism: int
    cost_budget: CostBudgetSpec | None = None

    @classmethod
    def of(cls, spec: RunSpec) -> Limits:
        return cls(spec.search.budget, spec.execution.parallelism, spec.search.cost_budget)


class TaskRunner:
    """Starts, follows and retries a run's tasks through its executor.

    Args:
        executor: runs the tasks.
        volume: local path of the run's volume (where task files are written and read).
        retries: how many failed attempts a task may have before it gives up (the spec's
            ``candidateRetries``), failures forgiven by a retried run aside.
        save: checkpoints the state.
        on_note: told what became of a task that a checkpoint left running.
        limits: the current budget and parallelism.
        poll_seconds: longest wait for an outcome.
    """

    def __init__(
        self,
        executor: Executor,
        volume: Path,
        *,
        retries: int,
        save: Callable[[RunState], None],
        on_note: Callable[[str], None],
        limits: Callable[[], Limits],
        poll_seconds: float,
    ):
        self.executor = executor
        self.volume = volume
        self.retries = retries
        self.save = save
        self.on_note = on_note
        self.limits = limits
        self.poll_seconds = poll_seconds

    def complete(
        self, tasks: list[Task], state: RunState
    ) -> dict[str, ProfileResult | EvaluateTaskResult]:
        """Run ``tasks`` to success, each retried like a candidate; a task that fails past
        its retries fails the run."""
        waiting, results = list(tasks), {}
        by_id = {task.id: task for task in tasks}
        while waiting or self.executor.running():
            while waiting and len(self.executor.running()) < self.limits().parallelism:
                task = waiting.pop(0)
                attempts = state.task_attempts.get(task.id)
                resuming = attempts is not None  # an earlier controller may have started it
                if attempts is None:
                    attempts = state.task_attempts[task.id] = TaskAttempts()
                    self.save(state)  # recorded before anything runs, like a candidate
                elif not self.retries_left(attempts):  # failed for good before a restart
                    raise RunFailed(self._gave_up(task, attempts))
                self.start(task, attempts, resuming=resuming)
                self.save(state)
            for outcome in self.executor.wait(self.poll_seconds):
                task, attempts = by_id[outcome.task_id], state.task_attempts[outcome.task_id]
                result, reason = self.read_outcome(task, outcome)
                if result is not None:
                    results[task.id] = result
                elif not self.retry(state, task, attempts, reason):
                    raise RunFailed(self._gave_up(task, attempts))
                else:
                    self.save(state)
        return results

    def start(self, task: Task, attempts: TaskAttempts, *, resuming: bool = False) -> None:
        """Start the attempt of ``task`` that is due. ``resuming``: the checkpoint an
        earlier controller left says the task was under way, so that attempt may have
        started after the checkpoint was written: if it still runs, or finished while no
        controller was there, it is followed, not run again."""
        attempt = attempts.due
        adopted = resuming and self.executor.adopt(task, attempt)
        if resuming:
            self._note_resumed(task.id, attempt, adopted)
        if not adopted:
            write_task(task, self.volume)
            self.executor.submit(task, attempt)
        attempts.attempts = attempt + 1

    def retry(self, state: RunState, task: Task, attempts: TaskAttempts, reason: str) -> bool:
        """Record a failed attempt of ``task`` and, while retries are left, start the next
        one; ``False`` when none is left (nothing is started)."""
        attempts.reasons.append(f"attempt {attempts.due + 1}: {reason}")
        if not self.retries_left(attempts):
            return False
        self.save(state)  # a controller killed now must not grant this retry twice
        self.start(task, attempts)
        return True

    def retries_left(self, attempts: TaskAttempts) -> bool:
        failures = attempts.due - attempts.failures_forgiven
        return failures <= self.retries

    def read_outcome(
        self, task: Task, outcome: TaskOutcome
    ) -> tuple[ProfileResult | EvaluateTaskResult | None, str]:
        """The result of a finished attempt, or ``None`` and why the attempt failed (its
        own reason, or a result file that cannot be read or lacks a benchmark the task
        asked)."""
        if not outcome.succeeded:
            return None, outcome.reason or "unknown failure"
        try:
            result = read_result(task, self.volume)
        except (OSError, ValueError) as error:
            return None, f"unusable result: {error!r}"
        if result is None:
            return None, "the attempt succeeded but left no result file"
        if isinstance(result, EvaluateTaskResult):
            asked = task.objectives.names
            missing = [name for name in asked if name not in result.scores]
            if missing:
                return None, f"unusable result: no score for {', '.join(missing)}"
        return result, ""

    @staticmethod
    def _gave_up(task: Task, attempts: TaskAttempts) -> str:
        return f"{task.id} failed {attempts.due} time(s); last: {attempts.reasons[-1]}"

    def _note_resumed(self, task_id: str, attempt: int, adopted: bool) -> None:
        """Say what became of a task that the checkpoint left running."""
        if adopted:
            self.on_note(f"adopted {task_id} (attempt {attempt + 1}), started earlier")
        else:
            self.on_note(f"starting {task_id} again (attempt {attempt + 1}): nothing to adopt")
