"""Paths on the run's volume are checked where they really lead, symbolic links followed.

A link that stays inside the volume is fine; one that leads out is refused before anything
is read or written through it: by the run as a whole (every such path named at once, with
its field), and by each task that would open it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from tiny_models import link_tree
from typer.testing import CliRunner

from paretomerge.cli import app
from paretomerge.evaluate import BenchmarkDataError
from paretomerge.evaluate.benchmarks import prepare_benchmarks
from paretomerge.spec import BenchmarkSpec
from paretomerge.tasks import ProfileTask, TaskFailure, run_task, write_task
from paretomerge.volume import OutsideVolumeError, in_volume


@pytest.fixture
def pair(models: dict) -> dict[str, Path]:
    """The session's tiny base and expert: outside every test's volume."""
    return {"base": models["qwen3"]["base"], "expert": models["qwen3"]["experts"][0]}


@pytest.fixture
def volume(tmp_path: Path, pair: dict[str, Path]) -> Path:
    """A volume holding the models and a benchmark, and the run file beside them."""
    root = tmp_path / "volume"
    for role, model in pair.items():
        link_tree(model, root / "models" / role)
    (root / "data").mkdir()
    (root / "data" / "q.jsonl").write_text(json.dumps({"question": "1+1?", "answer": "2"}) + "\n")
    run = {
        "apiVersion": "paretomerge.io/v1alpha1",
        "kind": "ParetoMergeRun",
        "metadata": {"name": "links"},
        "spec": {
            "models": {"base": {"path": "models/base"}, "experts": [{"path": "models/expert"}]},
            "objectives": {
                "benchmarks": [
                    {"name": "q", "type": "jsonl", "path": "data/q.jsonl", "format": "numeric"}
                ]
            },
            "evaluation": {"engine": "transformers"},
        },
    }
    (root / "run.yaml").write_text(yaml.safe_dump(run))
    return root


def replace_with_link(path: Path, target: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
    path.symlink_to(target)


def test_a_link_inside_the_volume_is_followed(volume: Path) -> None:
    (volume / "models" / "alias").symlink_to(volume / "models" / "base")
    (volume / "current").symlink_to("models")  # relative, inside too
    assert in_volume(volume, "models/alias") == volume / "models" / "alias"
    assert in_volume(volume, "current/expert") == volume / "current" / "expert"
    assert in_volume(volume, "runs/not-yet-made") == volume / "runs" / "not-yet-made"


def test_a_run_refuses_every_path_that_leads_out_of_the_volume(
    volume: Path, pair: dict[str, Path], tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    replace_with_link(volume / "models" / "base", pair["base"])  # a model
    replace_with_link(volume / "data" / "q.jsonl", Path("/etc/passwd"))  # a dataset
    (volume / "runs").symlink_to(elsewhere)  # the run directories (output)
    result = CliRunner().invoke(app, ["run", str(volume / "run.yaml")])
    assert result.exit_code == 1
    output = " ".join(result.output.split())  # rich wraps long lines
    real_volume = volume.resolve()
    for field, path, real in [
        ("spec.models.base.path", "models/base", pair["base"].resolve()),
        ("spec.objectives.benchmarks[0].path", "data/q.jsonl", Path("/etc/passwd")),
        ("spec.execution.storage.runsPath", "runs", elsewhere.resolve()),
    ]:
        assert f"{field}: {path} leads to {real}, outside the volume {real_volume}" in output
    assert list(elsewhere.iterdir()) == []  # nothing written through the link
    assert "spec.models.experts[0].path" not in output


def test_a_task_refuses_a_model_that_leads_out(volume: Path, pair: dict[str, Path]) -> None:
    replace_with_link(volume / "models" / "expert", pair["expert"])
    task = ProfileTask(
        id="profile", work_dir="runs/links/profile", base="models/base", experts=["models/expert"]
    )
    with pytest.raises(TaskFailure, match=r"profile: models/expert leads to .*outside the volume"):
        run_task(write_task(task, volume), volume)


def test_benchmark_data_that_leads_out_is_never_read(volume: Path, tmp_path: Path) -> None:
    replace_with_link(volume / "data" / "q.jsonl", Path("/etc/passwd"))
    spec = BenchmarkSpec(name="q", type="jsonl", path="data/q.jsonl", format="numeric")
    with pytest.raises(BenchmarkDataError, match=r"'q': data/q.jsonl leads to /etc/passwd"):
        prepare_benchmarks([spec], volume, tmp_path / "scratch")
    with pytest.raises(OutsideVolumeError):
        in_volume(volume, "data/q.jsonl")
