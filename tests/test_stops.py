"""Clean stops: a Ctrl-C of ``paretomerge run`` and a deadline leave no process behind.

The run is real (``python -m paretomerge run`` in a session of its own, as a shell runs a
foreground job; real profile and merges of tiny models; evalscope against the model
server), only the server is the fake ``vllm`` of :mod:`fake_vllm`, whose worker ignores
SIGTERM and holds the port. Every process the run starts inherits a marker variable, so
"no process started by the run is alive" is read from ``/proc``, not from any record the
code under test keeps.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from builders import run_manifest, write_numeric_benchmark
from fake_vllm import MARK_VARIABLE, fake_vllm_environment, marked_processes
from tiny_models import link_tree, make_pair

from paretomerge.controller.state import RunState
from paretomerge.executors import LocalExecutor
from paretomerge.processes import ProcessRecord, stop_recorded_group
from paretomerge.spec import parse_run
from paretomerge.tasks import EvaluateTask, server_pid_file, write_task

RUN = "stops"


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> Path:
    return make_pair(tmp_path_factory.mktemp("pair"))


@pytest.fixture
def volume(tmp_path: Path, pair: Path) -> Path:
    link_tree(pair, tmp_path / "models")
    write_numeric_benchmark(tmp_path / "data" / "sevens.jsonl")
    return tmp_path


def manifest() -> dict:
    return run_manifest(
        RUN,
        search={"budget": 2, "initialPoints": 2, "initialSolutions": [0.5]},
        objectives={
            "benchmarks": [
                {
                    "name": "sevens",
                    "type": "jsonl",
                    "path": "data/sevens.jsonl",
                    "format": "numeric",
                }
            ]
        },
        evaluation={"engine": "vllm", "maxTokens": 64, "timeoutSeconds": 120},
        execution={"parallelism": 1},
    )


@pytest.fixture
def environment(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The fake vllm first on PATH, candidates' servers that never answer, and a marker
    every process of the test's run inherits (whatever a failing test leaves is killed)."""
    with fake_vllm_environment(tmp_path / "bin", FAKE_VLLM_HANG="*/candidates/*") as env:
        yield env


def wait_for(condition, timeout: float, what: str, process: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if process is not None and process.poll() is not None:
            pytest.fail(f"the run ended (code {process.returncode}) before {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)
    return value


def serving_port(pid_file: Path) -> int | None:
    """The port of the server recorded in ``pid_file`` once it answers ``/health``."""
    record = ProcessRecord.read(pid_file)
    if record is None:
        return None
    port = int(record.command[record.command.index("--port") + 1])
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
            return port
    except OSError:
        return None


def port_is_free(port: int) -> bool:
    """Whether a new server could listen on ``port`` (as servers do, with SO_REUSEADDR:
    connections of the stopped one may linger in TIME_WAIT)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def assert_nothing_left(mark: str, port: int) -> None:
    # A SIGKILLed process may take a moment to be gone from /proc.
    deadline = time.monotonic() + 5
    while (left := marked_processes(mark)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert left == [], f"processes the run started are still alive: {left}"
    assert port_is_free(port), f"port {port} of the model server is still taken"


def test_ctrl_c_stops_every_task_and_server_and_the_run_resumes(volume, environment) -> None:
    run_file = volume / "run.yaml"
    run_file.write_text(yaml.safe_dump(manifest()))
    command = [sys.executable, "-m", "paretomerge", "run", str(run_file), "--poll", "0.2"]
    log = volume / "run.log"
    with log.open("w") as output:
        run = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=environment,
            start_new_session=True,
        )
    try:
        pid_file = volume / "runs" / RUN / "candidates" / "c0001" / "eval" / "server.pid"
        port = wait_for(
            lambda: serving_port(pid_file), 600, "the candidate's model server was up", run
        )
        assert len(marked_processes(environment[MARK_VARIABLE])) >= 4  # run, task, server, worker
        os.killpg(run.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        code = run.wait(timeout=60)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    output = log.read_text()
    assert code == 128 + signal.SIGINT, output
    assert "interrupted (SIGINT): run the same command to resume" in output
    assert "Traceback" not in output
    assert_nothing_left(environment[MARK_VARIABLE], port)
    state = RunState.load(volume / "runs" / RUN)
    assert state.phase == "Searching" and state.candidate("c0001").status == "running"

    # The same command resumes: an interrupted attempt is no failure, nothing is repeated.
    environment.pop("FAKE_VLLM_HANG")
    anchors = {role: a.model_dump() for role, a in state.anchors.items()}
    again = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    state = RunState.load(volume / "runs" / RUN)
    assert state.phase == "Succeeded" and state.count("succeeded") == 2
    assert state.candidate("c0001").reasons == []
    told = again.stdout + again.stderr
    assert "resuming run stops from its checkpoint (Searching): 0 candidate(s) finished" in told
    assert "starting c0001 again (attempt 1): nothing to adopt" in told
    assert {role: a.model_dump() for role, a in state.anchors.items()} == anchors
    assert marked_processes(environment[MARK_VARIABLE]) == []


def test_a_deadline_kill_takes_the_model_server_with_it(volume, environment) -> None:
    run = parse_run(manifest())
    task = EvaluateTask(
        id="anchor-expert",
        work_dir=f"runs/{RUN}/anchors/expert",
        role="expert",
        model="models/expert",
        evaluation=run.spec.evaluation,
        objectives=run.spec.objectives,
    )
    environment["FAKE_VLLM_HANG"] = "*/expert"
    executor = LocalExecutor(volume, deadline_seconds=600, env=environment)
    write_task(task, volume)
    executor.submit(task, 0)
    try:
        port = wait_for(
            lambda: serving_port(server_pid_file(task, volume)), 300, "the model server was up"
        )
        executor.deadline_seconds = 0  # the deadline passes now, mid-evaluation
        (outcome,) = executor.wait(timeout=60)
    finally:
        executor.close()
    assert not outcome.succeeded and "deadline exceeded" in outcome.reason
    assert_nothing_left(environment[MARK_VARIABLE], port)
    assert not server_pid_file(task, volume).exists()


def test_a_stale_server_is_stopped_only_if_it_is_the_recorded_process(tmp_path: Path) -> None:
    sleeper = [sys.executable, "-c", "import time; time.sleep(600)"]
    server = subprocess.Popen(sleeper, start_new_session=True)
    try:
        record = ProcessRecord.of(server.pid, sleeper)
        # Another process that later got the same PID: a different start time.
        impostor = ProcessRecord(server.pid, record.start_ticks - 1, record.boot_id, sleeper)
        impostor.write(tmp_path / "server.pid")
        assert stop_recorded_group(tmp_path / "server.pid", grace_s=1) is False
        assert server.poll() is None and not (tmp_path / "server.pid").exists()

        record.write(tmp_path / "server.pid")
        assert stop_recorded_group(tmp_path / "server.pid", grace_s=1) is True
        assert server.wait(timeout=10) == -signal.SIGTERM
    finally:
        server.kill()
        server.wait()


def test_a_server_left_by_a_crash_is_stopped_on_the_next_start(volume, environment) -> None:
    run_file = volume / "run.yaml"
    run_file.write_text(yaml.safe_dump(manifest()))
    command = [sys.executable, "-m", "paretomerge", "run", str(run_file), "--poll", "0.2"]
    run = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=environment,
        start_new_session=True,
    )
    candidate = volume / "runs" / RUN / "candidates" / "c0001"
    try:
        port = wait_for(
            lambda: serving_port(candidate / "eval" / "server.pid"), 600, "the server was up", run
        )
    finally:
        os.killpg(run.pid, signal.SIGKILL)  # a crash: no cleanup of any kind
        run.wait()
    os.killpg(int((candidate / "attempt-0.pid").read_text()), signal.SIGKILL)
    server = ProcessRecord.read(candidate / "eval" / "server.pid")
    time.sleep(0.5)
    assert server.members(), "the crash should have left the server running"

    environment.pop("FAKE_VLLM_HANG")
    again = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "starting c0001 again (attempt 1): nothing to adopt" in again.stdout + again.stderr
    assert server.members() == []
    assert_nothing_left(environment[MARK_VARIABLE], port)
