"""The whole loop on this machine, for real: ``paretomerge demo`` and what it leaves.

The demo pair is trained on the CPU (once per session, shared), every candidate is merged by mergekit and evaluated
through evalscope against the built-in transformers server in its own process.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from tiny_models import link_tree
from typer.testing import CliRunner

from paretomerge.checkpoint import Checkpoint
from paretomerge.cli import app
from paretomerge.controller.state import RunState
from paretomerge.search import pareto_mask

BUDGET = 4


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, demo_models: Path) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("demo")
    link_tree(demo_models, out / "models")  # the session's trained pair, reused as is
    result = CliRunner().invoke(
        app,
        ["demo", "--out", str(out), "--budget", str(BUDGET), "--parallelism", "2", "--limit", "16"],
    )
    return out, result


def test_the_demo_finds_a_front_and_leaves_consistent_artifacts(demo_run) -> None:
    out, result = demo_run
    assert result.exit_code == 0, result.output
    run_dir = out / "runs" / "demo"
    state = RunState.load(run_dir)
    assert state.phase == "Succeeded" and state.count("succeeded") == BUDGET
    base, expert = state.anchors["base"].scores, state.anchors["expert"].scores
    name = "modular-arithmetic"
    # The pair's trade-off, measured through the real client path.
    assert expert[name].accuracy > base[name].accuracy
    assert expert[name].mean_output_tokens > 2 * base[name].mean_output_tokens
    assert base[name].n == expert[name].n == 16

    objectives = np.load(run_dir / "objectives.npy")
    assert objectives.shape == (BUDGET, 2) and np.all(np.isfinite(objectives))
    assert np.load(run_dir / "decision_variables.npy").shape[0] == BUDGET
    with open(run_dir / "pareto.csv") as handle:
        rows = list(csv.DictReader(handle))
    # One row per distinct non-dominated trade-off that neither anchor matches or beats.
    anchors = np.array([[0.0, 1.0], [1.0, 0.0]])
    front = objectives[pareto_mask(objectives)]
    distinct = {tuple(y) for y in front if not (anchors >= y).all(axis=1).any()}
    assert len(rows) == len(distinct) >= 1
    listed = sum(1 + len(row["same_scores"].split()) for row in rows)
    assert listed == sum(tuple(y) in distinct for y in objectives)
    history = json.loads((run_dir / "hypervolume.json").read_text())["hypervolume"]
    assert len(history) == BUDGET and history == sorted(history)
    for plot in ("pareto_front.png", "hypervolume.png", "importance.png"):
        assert (run_dir / plot).stat().st_size > 0
    assert "Pareto set" in result.output
    # keepMergedModels: none -> no merged weights left behind.
    assert not list((run_dir / "candidates").glob("*/merged"))


def test_a_second_run_reuses_the_anchors_and_a_finished_run_is_not_repeated(demo_run) -> None:
    out, first = demo_run
    assert first.exit_code == 0, first.output
    run_dir = out / "runs" / "demo"
    before = RunState.load(run_dir)
    again = CliRunner().invoke(app, ["run", str(out / "demo.yaml")])
    assert again.exit_code == 0, again.output
    after = RunState.load(run_dir)
    assert after.candidates == before.candidates  # nothing evaluated twice
    anchors = list((out / ".paretomerge" / "anchors").glob("*.json"))
    assert len(anchors) == 2


def test_materialize_recreates_a_pareto_member(demo_run, tmp_path: Path) -> None:
    out, first = demo_run
    assert first.exit_code == 0, first.output
    run_dir = out / "runs" / "demo"
    result = CliRunner().invoke(
        app, ["materialize", str(run_dir), "--point", "0", "--out", str(tmp_path / "m")]
    )
    assert result.exit_code == 0, result.output
    merged = Checkpoint(tmp_path / "m")
    assert merged.num_layers == Checkpoint(out / "models" / "instruct").num_layers
    bad = CliRunner().invoke(
        app, ["materialize", str(run_dir), "--point", "99", "--out", str(tmp_path / "x")]
    )
    assert bad.exit_code == 1 and "--point 99" in bad.output
