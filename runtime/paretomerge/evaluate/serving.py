"""Serving a model behind an OpenAI-compatible endpoint, one interface for every engine.

:func:`serve` is a context manager that yields a :class:`ServedModel` (base URL, model
name, API key) and stops what it started on exit, also on error:

- ``vllm``: ``vllm serve MODEL_DIR ...`` as a subprocess (it exists in the GPU eval
  image only; vLLM cannot share our Python environment).
- ``transformers``: ``python -m paretomerge.evaluate.server MODEL_DIR ...`` as a
  subprocess, the same way.
- ``endpoint``: a server the user already runs; nothing is started.

A started server gets a free port on 127.0.0.1, writes its output to a log file, and
counts as up once ``GET /health`` answers 200. It is stopped with SIGTERM to its whole
process group (vLLM forks workers), then SIGKILL after a grace period. It runs in a
session of its own, so a signal to the task's group does not reach it: its group is
recorded in ``server.pid`` beside the log while it runs, for an executor that must stop a
task from outside (a deadline, a Ctrl-C of the run) and for the next attempt, which stops
a server that a killed attempt left behind before it starts its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from paretomerge.processes import ProcessRecord, stop_recorded_group
from paretomerge.spec import EndpointSpec, EvaluationSpec

HOST = "127.0.0.1"
SERVER_PID_FILE = "server.pid"
STOP_GRACE_SECONDS = 15.0
HEALTH_POLL_SECONDS = 0.5
LOG_TAIL_LINES = 40


class ServingError(RuntimeError):
    """A model could not be served (a server that did not come up, a missing API key)."""


@dataclass(frozen=True)
class ServedModel:
    """Where requests go: ``base_url`` is the OpenAI base (ending in ``/v1``), ``model``
    the name to request, ``api_key`` the bearer token (never printed);
    ``startup_seconds`` how long the server took from its launch until ``/health``
    answered (0 for an endpoint: nothing was started)."""

    base_url: str
    model: str
    api_key: str = field(default="EMPTY", repr=False)
    startup_seconds: float = 0.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


# The program of each engine that starts a server; the built-in one (see :mod:`.server`)
# takes vLLM's arguments.
SERVER_PROGRAMS = {
    "vllm": ("vllm", "serve"),
    "transformers": (sys.executable, "-m", "paretomerge.evaluate.server"),
}


def server_command(
    engine: str, model_dir: Path, served_name: str, max_model_len: int, port: int
) -> list[str]:
    """The command line that serves ``model_dir`` with ``engine`` on ``127.0.0.1:port``."""
    return [
        *SERVER_PROGRAMS[engine],
        str(model_dir),
        "--served-model-name",
        served_name,
        "--max-model-len",
        str(max_model_len),
        "--host",
        HOST,
        "--port",
        str(port),
    ]


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file ("(empty)" if there are none)."""
    try:
        text = path.read_text(errors="replace")
    except OSError as error:
        return f"(cannot read {path}: {error})"
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def wait_until_healthy(
    process: subprocess.Popen, health_url: str, timeout_s: float, log_path: Path
) -> None:
    """Poll ``health_url`` until it answers 200.

    Raises:
        ServingError: the process exited, or ``timeout_s`` seconds passed; the message
            carries the tail of ``log_path``.
    """
    deadline = time.monotonic() + timeout_s
    while not _healthy(health_url):
        if process.poll() is not None:
            raise ServingError(
                f"the model server exited with code {process.returncode} before it was up "
                f"({' '.join(process.args[:2])}); last lines of {log_path}:\n{log_tail(log_path)}"
            )
        if time.monotonic() > deadline:
            raise ServingError(
                f"the model server was not up after {timeout_s:g} s ({health_url}); "
                f"last lines of {log_path}:\n{log_tail(log_path)}"
            )
        time.sleep(HEALTH_POLL_SECONDS)


def stop_process_group(process: subprocess.Popen, grace_s: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM the process's group, wait up to ``grace_s`` seconds for the process, then
    SIGKILL what is left of the group (workers that outlive their leader included)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        # Until the leader is reaped, or while any member lives, the group id is its own.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace_s)


@contextmanager
def run_server(
    command: list[str], port: int, log_path: Path, startup_timeout_s: float
) -> Iterator[str]:
    """Start ``command`` (a server on 127.0.0.1:``port``), wait for ``/health``, yield the
    server's root URL, and stop it on exit. While it runs its group is recorded in
    ``server.pid`` beside ``log_path``; a server recorded there by an attempt that died
    is stopped first.

    Raises:
        ServingError: the executable is missing, or the server did not come up.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    pid_file = log_path.parent / SERVER_PID_FILE
    stop_recorded_group(pid_file, STOP_GRACE_SECONDS)
    with log_path.open("ab") as log:
        try:
            # A session of its own: stopping it must reach every process it forked.
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        except FileNotFoundError:
            raise ServingError(
                f"cannot start the model server: {command[0]!r} is not on PATH"
            ) from None
    root = f"http://{HOST}:{port}"
    try:
        if (record := ProcessRecord.of(process.pid, command)) is not None:
            record.write(pid_file)
        wait_until_healthy(process, f"{root}/health", startup_timeout_s, log_path)
        yield root
    finally:
        stop_process_group(process)
        pid_file.unlink(missing_ok=True)


def endpoint_api_key(endpoint: EndpointSpec) -> str:
    """The endpoint's API key: the environment variable named like the secret's ``key``
    (the operator maps the Secret's key to that variable); ``EMPTY`` without a secret.

    Raises:
        ServingError: the variable is not set.
    """
    if endpoint.api_key_secret is None:
        return "EMPTY"
    variable = endpoint.api_key_secret.key
    value = os.environ.get(variable)
    if not value:
        raise ServingError(
            f"the endpoint's API key is read from the environment variable {variable!r} "
            f"(secret {endpoint.api_key_secret.name!r}), which is not set"
        )
    return value


def endpoint_model_ids(base_url: str, api_key: str, timeout: float = 30) -> list[str]:
    """The ids of the models the endpoint lists under ``GET /models``.

    Raises:
        ServingError: the endpoint does not answer, or not with a model list (the HTTP
            error, if any, is its ``__cause__``).
    """
    request = urllib.request.Request(
        f"{base_url}/models", headers={"Authorization": f"Bearer {api_key}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return [str(model["id"]) for model in json.load(response).get("data") or []]
    except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError) as error:
        raise ServingError(f"cannot list the models of {base_url}: {error}") from error


def endpoint_completion_tokens(
    base_url: str, api_key: str, model: str, timeout: float = 30
) -> int | None:
    """The ``usage.completion_tokens`` of a one-token chat completion of ``model`` (the
    count output tokens are read from), ``None`` where the reply has none.

    Raises:
        ServingError: the endpoint does not answer, or not with a completion.
    """
    body = {"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}
    request = urllib.request.Request(
        f"{base_url}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            reply = json.load(response)
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise ServingError(f"cannot get a chat completion from {base_url}: {error}") from error
    tokens = (
        (reply.get("usage") or {}).get("completion_tokens") if isinstance(reply, dict) else None
    )
    return tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else None


def endpoint_model(base_url: str, api_key: str) -> str:
    """The first model the endpoint lists under ``GET /models``.

    Raises:
        ServingError: the endpoint does not answer, or lists no model.
    """
    models = endpoint_model_ids(base_url, api_key)
    if not models:
        raise ServingError(f"{base_url}/models lists no model; set evaluation.endpoint.model")
    return models[0]


@contextmanager
def serve(
    model_dir: Path, evaluation: EvaluationSpec, log_dir: Path, served_name: str = "model"
) -> Iterator[ServedModel]:
    """Serve ``model_dir`` with ``evaluation.engine`` while the context is open.

    ``vllm`` and ``transformers`` servers get ``evaluation.model_len`` tokens of context,
    ``evaluation.timeout_seconds`` to come up, and log to ``log_dir/server.log``. The
    ``endpoint`` engine ignores ``model_dir``: it evaluates whatever the endpoint serves,
    at ``endpoint.url`` taken as the OpenAI base URL (usually ending in ``/v1``), under
    ``endpoint.model`` or else the first model it lists.

    Raises:
        ServingError: the model could not be served.
    """
    if evaluation.engine == "endpoint":
        endpoint = evaluation.endpoint
        if endpoint is None:
            raise ServingError("engine endpoint needs evaluation.endpoint.url")
        api_key = endpoint_api_key(endpoint)
        base_url = endpoint.url.rstrip("/")
        model = endpoint.model or endpoint_model(base_url, api_key)
        yield ServedModel(base_url=base_url, model=model, api_key=api_key)
        return
    port = free_port()
    command = server_command(
        evaluation.engine, Path(model_dir), served_name, evaluation.model_len, port
    )
    log_path = log_dir / "server.log"
    launched = time.monotonic()
    with run_server(command, port, log_path, evaluation.timeout_seconds) as root:
        startup = time.monotonic() - launched
        yield ServedModel(base_url=f"{root}/v1", model=served_name, startup_seconds=startup)
