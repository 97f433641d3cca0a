"""The `paretomerge importance` and `paretomerge merge` commands (shape relied on by scripts)."""

from __future__ import annotations

import json

import torch
from conftest import NUM_LAYERS
from typer.testing import CliRunner

from paretomerge.checkpoint import Checkpoint
from paretomerge.cli import app

runner = CliRunner()


def test_importance_writes_profile_and_heatmap(models, tmp_path):
    base, experts = models["qwen3"]["base"], models["qwen3"]["experts"]
    out = tmp_path / "profile.json"
    args = ["importance", "--base", str(base), "--out", str(out), "--blocks", "3"]
    for expert in experts:
        args += ["--expert", str(expert)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    profile = json.loads(out.read_text())
    assert len(profile["layers"]) == NUM_LAYERS
    assert all(isinstance(v, float) and v > 0 for v in profile["layers"])
    assert profile["head"] > 0
    assert len(profile["experts"]) == 2
    assert len(profile["partition"]["starts"]) == 3
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_merge_layer_wise(models, tmp_path):
    base, expert = models["qwen3"]["base"], models["qwen3"]["experts"][0]
    weights = ",".join(str(w) for w in [0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 0.5])
    out = tmp_path / "merged"
    result = runner.invoke(
        app,
        ["merge", "--base", str(base), "--expert", str(expert), "--method", "task_arithmetic",
         "--weights", weights, "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    name = "model.layers.5.mlp.down_proj.weight"
    torch.testing.assert_close(Checkpoint(out).read(name), Checkpoint(expert).read(name))
    plan = json.loads((out / "paretomerge-merge.json").read_text())
    assert plan["granularity"] == "layer" and plan["head_weight"] == 0.5


def test_merge_blocks_and_model_level(models, tmp_path):
    base, expert = models["llama"]["base"], models["llama"]["experts"][0]
    common = ["merge", "--base", str(base), "--expert", str(expert)]
    blocks = runner.invoke(
        app,
        [*common, "--method", "ties", "--weights", "0.3,0.9,1", "--block-starts", "0,2",
         "--density", "0.5", "--out", str(tmp_path / "blocks")],
    )  # fmt: skip
    assert blocks.exit_code == 0, blocks.output
    plan = json.loads((tmp_path / "blocks" / "paretomerge-merge.json").read_text())
    assert plan["layer_weights"] == [0.3, 0.3, 0.9, 0.9, 0.9, 0.9]
    model = runner.invoke(
        app,
        [*common, "--method", "della", "--weights", "0.7", "--density", "0.6", "--epsilon",
         "0.1", "--seed", "5", "--out", str(tmp_path / "model")],
    )  # fmt: skip
    assert model.exit_code == 0, model.output
    plan = json.loads((tmp_path / "model" / "paretomerge-merge.json").read_text())
    assert plan["granularity"] == "model" and plan["seed"] == 5 and plan["epsilon"] == 0.1


def test_merge_errors_are_reported(models, tmp_path):
    base, expert = models["qwen3"]["base"], models["qwen3"]["experts"][0]
    common = ["merge", "--base", str(base), "--expert", str(expert), "--out", str(tmp_path / "o")]
    wrong_count = runner.invoke(app, [*common, "--method", "linear", "--weights", "0.1,0.2"])
    assert wrong_count.exit_code == 1
    assert "expected 1 (model level) or 7 values" in wrong_count.output
    not_numbers = runner.invoke(app, [*common, "--method", "linear", "--weights", "a,b"])
    assert not_numbers.exit_code == 2
    unknown = runner.invoke(app, [*common, "--method", "slerp", "--weights", "0.5"])
    assert unknown.exit_code == 1 and "method" in unknown.output
    missing = runner.invoke(
        app,
        ["importance", "--base", str(tmp_path / "none"), "--expert", str(expert),
         "--out", str(tmp_path / "p.json")],
    )  # fmt: skip
    assert missing.exit_code == 1 and "does not exist" in missing.output


def test_search_demo_prints_a_pareto_table():
    result = runner.invoke(app, ["search-demo", "--budget", "12", "--strategy", "bambo"])
    assert result.exit_code == 0, result.output
    assert "bambo: hypervolume" in result.output
    assert "model-level: hypervolume" in result.output
    assert "Pareto set found by bambo" in result.output


def test_search_demo_rejects_unknown_strategy():
    result = runner.invoke(app, ["search-demo", "--budget", "12", "--strategy", "bayes"])
    assert result.exit_code == 1
    assert "strategy 'bayes' is unknown" in result.output
