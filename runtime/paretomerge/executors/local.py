"""Run tasks as subprocesses on this machine (the default, and what the tests use).

Each attempt is ``python -m paretomerge task TASK.json --volume VOLUME`` in a session of
its own, logging to ``attempt-<k>.log`` in the task's work directory, its PID recorded in
``attempt-<k>.pid``. A controller that restarts adopts attempts whose process is still
alive instead of starting them again, and learns the outcome of adopted attempts from the
files they leave (``result.json`` or ``error.json``).

An attempt is stopped (its deadline passed, the run was interrupted) with SIGTERM to its
group, on which the task stops its model server itself; what is left after a grace period
gets SIGKILL, the model server's own group included (it runs in a session of its own and
is found through its ``server.pid``). The same record stops a server whose task died by
any other means once the attempt's end is seen.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from paretomerge.evaluate.serving import STOP_GRACE_SECONDS
from paretomerge.executors.base import Executor, TaskOutcome
from paretomerge.processes import stop_recorded_group
from paretomerge.tasks import (
    ERROR_FILE,
    RESULT_FILE,
    TASK_FILE,
    EvaluateTask,
    ProfileTask,
    read_error,
    server_pid_file,
)

LOG_TAIL_CHARS = 1500
# Room for the task to stop its model server (which gets STOP_GRACE_SECONDS) by itself.
TASK_STOP_GRACE_SECONDS = STOP_GRACE_SECONDS + 5.0


@dataclass
class _Attempt:
    task: ProfileTask | EvaluateTask
    attempt: int
    pid: int
    started: float
    process: subprocess.Popen | None  # None when adopted from an earlier controller


class LocalExecutor(Executor):
    """Subprocesses on this machine.

    Args:
        volume: the local directory that plays the run's volume.
        deadline_seconds: an attempt running longer is killed and fails.
        env: extra environment variables for the tasks.
    """

    poll_seconds = 0.2

    def __init__(self, volume: Path, deadline_seconds: float, env: dict[str, str] | None = None):
        self.volume = volume
        self.deadline_seconds = deadline_seconds
        self.env = {**os.environ, **(env or {})}
        self._attempts: dict[str, _Attempt] = {}

    def tasks_path(self) -> str:
        return self.env.get("PATH", os.defpath)

    def evaluation_gpus(self) -> int:
        """The GPUs the tasks see: those ``CUDA_VISIBLE_DEVICES`` lists when it is set (up
        to a first negative index, which hides the rest, as CUDA reads it), else every
        GPU torch finds on this machine (0 without CUDA)."""
        devices = self.env.get("CUDA_VISIBLE_DEVICES")
        if devices is None:
            import torch

            return torch.cuda.device_count()
        listed = [d.strip() for d in devices.split(",") if d.strip()]
        return next((i for i, d in enumerate(listed) if d.startswith("-")), len(listed))

    def submit(self, task: ProfileTask | EvaluateTask, attempt: int) -> None:
        if task.id in self._attempts:
            raise RuntimeError(f"task {task.id} is already running")
        work_dir = self.volume / task.work_dir
        command = self.command(task, attempt)
        with open(work_dir / f"attempt-{attempt}.log", "wb") as log:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,  # a Ctrl-C of the controller is its alone to handle
            )
        (work_dir / f"attempt-{attempt}.pid").write_text(str(process.pid))
        self._attempts[task.id] = _Attempt(task, attempt, process.pid, time.monotonic(), process)

    def command(self, task: ProfileTask | EvaluateTask, attempt: int) -> list[str]:
        """The command line of an attempt."""
        task_file = self.volume / task.work_dir / TASK_FILE
        return [
            sys.executable,
            "-m",
            "paretomerge",
            "task",
            str(task_file),
            "--volume",
            str(self.volume),
        ]

    def adopt(self, task: ProfileTask | EvaluateTask, attempt: int) -> bool:
        """Follow ``attempt`` of ``task`` if an earlier controller started it and it still
        runs, or finished it without anyone collecting the outcome; ``False`` otherwise."""
        work_dir = self.volume / task.work_dir
        pid_file = work_dir / f"attempt-{attempt}.pid"
        finished = (work_dir / RESULT_FILE).exists() or (work_dir / ERROR_FILE).exists()
        if not pid_file.exists() or not (finished or _runs_task(int(pid_file.read_text()), task)):
            return False
        pid = int(pid_file.read_text())
        self._attempts[task.id] = _Attempt(task, attempt, pid, time.monotonic(), None)
        return True

    def poll(self) -> list[TaskOutcome]:
        outcomes = [o for o in map(self._outcome, list(self._attempts.values())) if o]
        for outcome in outcomes:
            del self._attempts[outcome.task_id]
        return outcomes

    def _outcome(self, attempt: _Attempt) -> TaskOutcome | None:
        work_dir = self.volume / attempt.task.work_dir
        if attempt.process is not None:
            code = attempt.process.poll()
        else:
            code = None if _runs_task(attempt.pid, attempt.task) else 0
        if code is None:
            if time.monotonic() - attempt.started > self.deadline_seconds:
                self._stop([attempt])
                return TaskOutcome(
                    attempt.task.id,
                    attempt.attempt,
                    False,
                    f"deadline exceeded ({self.deadline_seconds:.0f} s)",
                )
            return None
        stop_recorded_group(server_pid_file(attempt.task, self.volume), STOP_GRACE_SECONDS)
        if code == 0 and (work_dir / RESULT_FILE).exists():
            return TaskOutcome(attempt.task.id, attempt.attempt, True)
        reason = read_error(attempt.task, self.volume)
        if reason is None:
            log = _tail(work_dir / f"attempt-{attempt.attempt}.log")
            reason = f"exited with code {code} and no result; log tail:\n{log}"
        return TaskOutcome(attempt.task.id, attempt.attempt, False, reason)

    def running(self) -> dict[str, int]:
        return {task_id: a.attempt for task_id, a in self._attempts.items()}

    def cancel(self, task_id: str) -> None:
        attempt = self._attempts.pop(task_id, None)
        if attempt is not None:
            self._stop([attempt])

    def close(self) -> None:
        """Stop every running attempt, all at once (each one's grace period overlaps)."""
        attempts = list(self._attempts.values())
        self._attempts.clear()
        self._stop(attempts)

    def _stop(self, attempts: list[_Attempt]) -> None:
        """SIGTERM each attempt's group, give them ``TASK_STOP_GRACE_SECONDS`` together to
        stop their servers and exit, then SIGKILL what is left, servers included."""
        for attempt in attempts:
            _signal_group(attempt.pid, signal.SIGTERM)
        deadline = time.monotonic() + TASK_STOP_GRACE_SECONDS
        while any(map(self._alive, attempts)) and time.monotonic() < deadline:
            time.sleep(self.poll_seconds)
        for attempt in attempts:
            _signal_group(attempt.pid, signal.SIGKILL)
            if attempt.process is not None:
                attempt.process.wait()
            stop_recorded_group(server_pid_file(attempt.task, self.volume), grace_s=0.0)

    @staticmethod
    def _alive(attempt: _Attempt) -> bool:
        if attempt.process is not None:
            return attempt.process.poll() is None
        return _runs_task(attempt.pid, attempt.task)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _runs_task(pid: int, task: ProfileTask | EvaluateTask) -> bool:
    """Whether process ``pid`` is alive and is the attempt of ``task`` (PIDs get reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z" and any(
        part.endswith(f"{task.work_dir}/{TASK_FILE}".encode()) for part in cmdline
    )


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
    except OSError:
        return "(no log)"
