"""Process groups that a run starts, recorded on the volume so that they can be stopped by
whoever comes later (an executor, the next attempt), and recognised only while they are the
very process recorded: a PID is reused once its process is gone, so a record holds the
process's start time (in clock ticks since boot) and the boot's id as well.

Linux only (``/proc``), like the local executor that uses it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path

POLL_SECONDS = 0.1
BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")


@dataclass(frozen=True)
class ProcessRecord:
    """A process that leads its own group (started with ``start_new_session``).

    ``start_ticks`` is field 22 of ``/proc/<pid>/stat``: when the process started, in clock
    ticks since ``boot_id``'s boot. ``command`` is for people reading the file.
    """

    pid: int
    start_ticks: int
    boot_id: str
    command: list[str]

    @classmethod
    def of(cls, pid: int, command: list[str]) -> ProcessRecord | None:
        """The record of the running process ``pid``; ``None`` when it is gone already."""
        start = start_ticks(pid)
        return None if start is None else cls(pid, start, _boot_id(), command)

    def write(self, path: Path) -> None:
        """Write the record atomically (a reader sees it whole or not at all)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(json.dumps(asdict(self)) + "\n")
        os.replace(temporary, path)

    @classmethod
    def read(cls, path: Path) -> ProcessRecord | None:
        """The record in ``path``; ``None`` when there is none or it is unreadable."""
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def members(self) -> list[int]:
        """PIDs of the live processes of the recorded group, the leader included while it
        lives. The kernel hands a PID out again only once no process uses it as its own,
        its group's or its session's id: a process that now holds the leader's PID but
        started at another time means that the whole group is gone."""
        if self.boot_id != _boot_id():
            return []
        leader_start = start_ticks(self.pid)
        if leader_start is not None and leader_start != self.start_ticks:
            return []
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
                state, pgid, start = stat
                if pgid == self.pid and start >= self.start_ticks and state != "Z":
                    found.append(int(entry.name))
        return found


def start_ticks(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot); ``None`` if it is gone."""
    stat = _stat(pid)
    return None if stat is None or stat[0] == "Z" else stat[2]


def _stat(pid: int) -> tuple[str, int, int] | None:
    """State, process group and start time of ``pid``, from ``/proc/<pid>/stat``."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()  # the command name may hold spaces and ')'
    return fields[0], int(fields[2]), int(fields[19])


def _boot_id() -> str:
    try:
        return BOOT_ID_FILE.read_text().strip()
    except OSError:
        return ""


def stop_recorded_group(path: Path, grace_s: float) -> bool:
    """Stop the process group recorded in ``path`` (SIGTERM, then SIGKILL after ``grace_s``
    seconds for whatever is left of it), then remove the file.

    Returns:
        Whether any process of the group was still running.
    """
    record = ProcessRecord.read(path)
    members = record.members() if record is not None else []
    if members:
        _signal_members(record, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while record.members() and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
        _signal_members(record, signal.SIGKILL)
    path.unlink(missing_ok=True)
    return bool(members)


def _signal_members(record: ProcessRecord, sig: signal.Signals) -> None:
    # While a member lives, the group id is still the recorded group's.
    if record.members():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(record.pid, sig)
