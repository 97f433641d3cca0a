"""``paretomerge-operator`` as a local process, as a test runs it out of cluster."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from .control_plane import wait_until


def healthy(port: int) -> bool:
    """Whether the operator's liveness endpoint on 127.0.0.1:``port`` answers 200."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def running_operator(
    args: list[str], env: dict[str, str], health_port: int, log_file: Path
) -> Iterator[subprocess.Popen]:
    """Start ``paretomerge-operator ARGS`` of this environment with ``env`` added to ours,
    its output to ``log_file``; yield once its liveness endpoint (``--liveness`` on
    ``health_port``, among ``args``) answers; SIGTERM its process group after, and print
    the log's tail (pytest shows it when the test fails)."""
    command = [str(Path(sys.executable).parent / "paretomerge-operator"), *args]
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            command,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def started() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"the operator exited ({process.returncode}): see {log_file}")
            return healthy(health_port)

        wait_until(started, "the operator's liveness endpoint", timeout=90)
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        print(log_file.read_text()[-6000:])
