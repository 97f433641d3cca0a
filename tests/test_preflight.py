"""The preflight: every problem of a run at once, before any work, each naming its field,
file, tensor or command.

Models are tiny real checkpoints, data real files, the endpoint a real HTTP server on
127.0.0.1, and the target case is a real ``paretomerge run`` process. Only a full disk is
simulated (``shutil.disk_usage``): this machine cannot have one on demand.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from builders import ONE_BENCHMARK, run_manifest, write_numeric_benchmark
from tiny_models import drop_shard, link_tree, make_base, make_expert, make_pair

from paretomerge.evaluate.benchmarks import BenchmarkDataError, prepare_benchmarks
from paretomerge.preflight import preflight
from paretomerge.spec import parse_run

RUN = "checked"


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> Path:
    return make_pair(tmp_path_factory.mktemp("pair"), max_shard_size="20KB")


@pytest.fixture
def volume(tmp_path: Path, pair: Path) -> Path:
    link_tree(pair, tmp_path / "models")
    write_numeric_benchmark(tmp_path / "data" / "one.jsonl")
    return tmp_path


def break_line(path: Path, number: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n")


def test_a_run_with_three_problems_names_them_all_and_starts_nothing(volume: Path) -> None:
    """The target: a missing expert, a broken data line and no ``vllm`` on PATH make
    ``paretomerge run`` fail naming all three, with no profile and no anchor started."""
    shutil.rmtree(volume / "models" / "expert")
    break_line(volume / "data" / "one.jsonl", 2, '{"question": "What is 1 + 6?", "answer": ')
    run_file = volume / "run.yaml"
    run_file.write_text(yaml.safe_dump(run_manifest(RUN, evaluation={"engine": "vllm"})))
    path = os.pathsep.join(["/usr/bin", "/bin"])
    assert shutil.which("vllm", path=path) is None
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "paretomerge", "run", str(run_file)],
        env={**os.environ, "PATH": path, "COLUMNS": "250"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    seconds = time.monotonic() - started
    print(f"preflight failed the run in {seconds:.1f} s (process start and imports included)")
    assert result.returncode == 1, result.stderr
    assert "the preflight found 3 problem(s), nothing was started" in result.stderr
    assert (
        f"spec.models.experts[0].path: model directory {volume}/models/expert does not exist"
        in (result.stderr)
    )
    assert "spec.objectives.benchmarks[0].path: data/one.jsonl line 2: not JSON" in result.stderr
    assert "spec.evaluation.engine: vllm: the command 'vllm' is not on PATH" in result.stderr
    # The work done: none. No run directory (no profile, no anchor), no anchor cache.
    assert not (volume / "runs").exists()
    assert not (volume / ".paretomerge").exists()


def test_broken_models_are_named_by_file_and_tensor(volume: Path, pair: Path) -> None:
    experts = volume / "models"
    make_expert(pair / "base", experts / "torn", [0], seed=2)
    missing = drop_shard(experts / "torn")
    (experts / "garbage").mkdir()
    shutil.copy(pair / "base" / "model.safetensors.index.json", experts / "garbage")
    (experts / "garbage" / "config.json").write_text("not json")
    make_base(experts / "other", num_layers=2, hidden_size=64)
    data = run_manifest(
        RUN,
        models={
            "base": {"path": "models/base"},
            "experts": [{"path": f"models/{name}"} for name in ("torn", "garbage", "other")],
        },
        evaluation={"engine": "transformers"},
    )
    problems = [
        str(p) for p in preflight(parse_run(data), volume, tasks_path="", candidates_left=4)
    ]
    assert problems[0].startswith("spec.models.experts[0].path: model ")
    assert f"shard {missing} is missing" in problems[0]
    assert problems[1] == (
        f"spec.models.experts[1].path: {experts}/garbage/config.json is not readable JSON: "
        "Expecting value: line 1 column 1 (char 0)"
    )
    assert problems[2].startswith("spec.models.experts[2].path: tensor ")
    assert "has shape [128, 64] in expert" in problems[2]
    assert len(problems) == 3


def test_every_bad_line_of_a_benchmark_is_named(volume: Path) -> None:
    data = volume / "data" / "one.jsonl"
    write_numeric_benchmark(data, questions=6)
    break_line(data, 2, "[1, 2]")
    break_line(data, 4, '{"question": "q", "answer": "seven"}')
    break_line(data, 5, "{")
    two = {**ONE_BENCHMARK, "name": "two", "path": "data/two.jsonl"}
    manifest = run_manifest(RUN, evaluation={"engine": "transformers"})
    manifest["spec"]["objectives"]["benchmarks"].append(two)
    problems = [
        str(p) for p in preflight(parse_run(manifest), volume, tasks_path="", candidates_left=1)
    ]
    field = "spec.objectives.benchmarks"
    assert problems == [
        f"{field}[0].path: data/one.jsonl line 2: not a JSON object",
        f"{field}[0].path: data/one.jsonl line 4: 'answer' 'seven' is not a number",
        f"{field}[0].path: data/one.jsonl line 5: not JSON: "
        "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        f"{field}[1].path: data/two.jsonl: no such file",
    ]
    # Evaluation itself reports the same lines, all of them, with the same checks.
    with pytest.raises(BenchmarkDataError) as error:
        prepare_benchmarks(parse_run(manifest).spec.objectives.benchmarks, volume, volume / "s")
    assert error.value.problems == [p.split(": ", 1)[1] for p in problems[:3]]


class ModelList(BaseHTTPRequestHandler):
    """``GET /v1/models`` of an OpenAI-compatible server that serves ``served``; a request
    without the key ``secret`` is refused (401)."""

    served = "merged-7b"

    def do_GET(self) -> None:
        if self.headers.get("Authorization") != "Bearer secret":
            self.send_response(401)
            self.end_headers()
            return
        body = json.dumps({"object": "list", "data": [{"id": self.served}]}).encode()
        self.send_response(200 if self.path == "/v1/models" else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), ModelList)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def endpoint_run(url: str, model: str | None = None) -> dict:
    endpoint = {"url": url, "apiKeySecret": {"name": "api", "key": "PREFLIGHT_KEY"}}
    return run_manifest(
        RUN,
        evaluation={
            "engine": "endpoint",
            "endpoint": endpoint | ({"model": model} if model else {}),
        },
    )


def test_an_endpoint_is_asked_for_its_models(volume: Path, pair: Path, endpoint: str, monkeypatch):

    def problems(data: dict, tasks_path: str | None = "") -> list[str]:
        run = parse_run(data)
        return [str(p) for p in preflight(run, volume, tasks_path=tasks_path, candidates_left=1)]

    monkeypatch.setenv("PREFLIGHT_KEY", "secret")
    assert problems(endpoint_run(endpoint)) == []
    assert problems(endpoint_run(endpoint, "other")) == [
        f"spec.evaluation.endpoint.model: 'other' is not among the models {endpoint} serves: "
        "merged-7b"
    ]
    closed = endpoint.rsplit(":", 1)[0] + ":1/v1"
    (problem,) = problems(endpoint_run(closed))
    assert problem.startswith(f"spec.evaluation.endpoint.url: cannot list the models of {closed}")
    monkeypatch.delenv("PREFLIGHT_KEY")
    (problem,) = problems(endpoint_run(endpoint))
    assert problem.startswith("spec.evaluation.endpoint.apiKeySecret: ")
    assert "'PREFLIGHT_KEY'" in problem
    # In a controller pod the key is the candidates' alone: a refusal shows the endpoint is up.
    assert problems(endpoint_run(endpoint), tasks_path=None) == []


def test_the_run_directory_must_be_writable_and_hold_the_merges_kept(
    volume: Path, pair: Path, monkeypatch
) -> None:
    (volume / "blocked").write_text("a file where the runs' directory should be")
    blocked = run_manifest(
        RUN, evaluation={"engine": "transformers"}, execution={"storage": {"runsPath": "blocked"}}
    )
    (problem,) = preflight(parse_run(blocked), volume, tasks_path="", candidates_left=8)
    assert problem.field == "spec.execution.storage.runsPath"
    assert f"the run directory {volume}/blocked/{RUN} cannot be written" in problem.message

    (volume / "runs").mkdir()
    (volume / "runs" / RUN).symlink_to(volume.parent)
    runs = run_manifest(RUN, evaluation={"engine": "transformers"})
    (problem,) = preflight(parse_run(runs), volume, tasks_path="", candidates_left=8)
    assert str(problem) == (
        f"spec.execution.storage.runsPath: runs/{RUN} leads to {volume.parent}, outside the "
        f"volume {volume} (through a symbolic link)"
    )
    (volume / "runs" / RUN).unlink()

    size = sum(f.stat().st_size for f in (pair / "base").glob("*.safetensors"))
    free = 5 * size  # room for 5 merges (headers make a file a little larger than its tensors)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(0, 0, free))
    for keep, parallelism, fits in (("none", 4, True), ("pareto", 6, False), ("all", 1, False)):
        data = run_manifest(
            RUN,
            evaluation={"engine": "transformers"},
            execution={"keepMergedModels": keep, "parallelism": parallelism},
        )
        problems = preflight(parse_run(data), volume, tasks_path="", candidates_left=8)
        assert (
            not problems
            if fits
            else [p.field for p in problems] == ["spec.execution.keepMergedModels"]
        )
    (problem,) = problems
    assert problem.message.startswith("all: 8 merged model(s) of ")
    assert f"KiB at once, and {volume}/runs has {free / 1024:.3g} KiB free" in problem.message
