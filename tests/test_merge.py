"""Merges through mergekit: every layer gets its own weight, the head its own, exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from conftest import NUM_LAYERS
from mergekit.config import MergeConfiguration
from tiny_models import drop_shard, make_base, make_expert
from transformers import AutoModelForCausalLM, AutoTokenizer

from paretomerge.checkpoint import Checkpoint, CheckpointError
from paretomerge.merge import (
    MERGEKIT_CONFIG_FILE,
    PLAN_FILE,
    MergePlan,
    merge_models,
    plan_from_block_weights,
    plan_from_weights,
)
from paretomerge.merge.methods import METHODS, method_names
from paretomerge.partition import BlockPartition
from paretomerge.tensor_layout import TensorLayout

LAYER_WEIGHTS = [0.1, 0.9, 0.35, 0.0, 1.0, 0.6]
HEAD_WEIGHT = 0.75


def expected_weight(layout: TensorLayout, name: str, layer_weights, head_weight) -> float:
    role = layout.role(name)
    assert role is not None, name
    return head_weight if role == "head" else layer_weights[role]


def assert_layerwise(out: Path, base: Path, experts: list[Path], method: str, weights, head):
    """merged = W_base + w_l * sum_k D_k (task_arithmetic) or
    (1 - w_l) W_base + w_l mean_k W_k (linear), for every tensor."""
    merged, base_ck = Checkpoint(out), Checkpoint(base)
    layout = TensorLayout.of(base_ck)
    assert merged.tensors.keys() == base_ck.tensors.keys()
    for name in base_ck.tensors:
        w = expected_weight(layout, name, weights, head)
        b = base_ck.read(name).double()
        deltas = [Checkpoint(e).read(name).double() - b for e in experts]
        share = 1 / len(deltas) if method == "linear" else 1.0
        expected = b + w * share * sum(deltas)
        torch.testing.assert_close(
            merged.read(name).double(), expected, rtol=1e-6, atol=1e-6, msg=name
        )


@pytest.mark.parametrize("arch", ["qwen3", "qwen2", "llama"])
@pytest.mark.parametrize("method", ["linear", "task_arithmetic"])
def test_every_layer_gets_its_own_weight(models, tmp_path, arch, method):
    base, experts = models[arch]["base"], models[arch]["experts"][:1]
    weights = [*LAYER_WEIGHTS, HEAD_WEIGHT]
    plan = plan_from_weights(base, experts, method, weights, NUM_LAYERS)
    out = merge_models(plan, tmp_path / "merged")
    assert_layerwise(out, base, experts, method, LAYER_WEIGHTS, HEAD_WEIGHT)
    # A model directory others can read and serve, its card titled by its own name.
    card = (out / "README.md").read_text().splitlines()
    assert [line for line in card if line.startswith("# ")] == ["# merged"]
    assert {oct(path.stat().st_mode & 0o777) for path in out.iterdir() if path.is_file()} == {
        oct(0o644)
    }


@pytest.mark.parametrize("method", ["linear", "task_arithmetic"])
def test_two_experts(models, tmp_path, method):
    base, experts = models["qwen3"]["base"], models["qwen3"]["experts"]
    plan = plan_from_weights(base, experts, method, [*LAYER_WEIGHTS, HEAD_WEIGHT], NUM_LAYERS)
    out = merge_models(plan, tmp_path / "merged")
    assert_layerwise(out, base, experts, method, LAYER_WEIGHTS, HEAD_WEIGHT)
    # A model directory others can read and serve, its card titled by its own name.
    card = (out / "README.md").read_text().splitlines()
    assert [line for line in card if line.startswith("# ")] == ["# merged"]
    assert {oct(path.stat().st_mode & 0o777) for path in out.iterdir() if path.is_file()} == {
        oct(0o644)
    }


def test_block_weights_expand_to_their_layers(models, tmp_path):
    base, experts = models["qwen3"]["base"], models["qwen3"]["experts"][:1]
    partition = BlockPartition(starts=(0, 1, 4), num_layers=NUM_LAYERS)
    plan = plan_from_block_weights(
        base, experts, "task_arithmetic", [0.2, 0.7, 0.45, 0.9], partition
    )
    assert plan.layer_weights == [0.2, 0.7, 0.7, 0.7, 0.45, 0.45]
    out = merge_models(plan, tmp_path / "merged")
    assert_layerwise(out, base, experts, "task_arithmetic", plan.layer_weights, 0.9)
    config = yaml.safe_load((out / MERGEKIT_CONFIG_FILE).read_text())
    ranges = [s["sources"][0]["layer_range"] for s in config["slices"]]
    assert ranges == [[0, 1], [1, 4], [4, 6]]


def test_model_level_weight_is_one_slice(models, tmp_path):
    base, experts = models["llama"]["base"], models["llama"]["experts"][:1]
    plan = plan_from_weights(base, experts, "task_arithmetic", [0.4], NUM_LAYERS)
    assert plan.granularity == "model"
    out = merge_models(plan, tmp_path / "merged")
    assert_layerwise(out, base, experts, "task_arithmetic", [0.4] * NUM_LAYERS, 0.4)
    config = yaml.safe_load((out / MERGEKIT_CONFIG_FILE).read_text())
    assert [s["sources"][0]["layer_range"] for s in config["slices"]] == [[0, NUM_LAYERS]]


def test_head_weight_reaches_embeddings_norm_and_lm_head(models, tmp_path):
    base, experts = models["qwen3"]["base"], models["qwen3"]["experts"][:1]
    plan = plan_from_weights(
        base, experts, "task_arithmetic", [0.0] * NUM_LAYERS + [1.0], NUM_LAYERS
    )
    merged, base_ck, expert = (
        Checkpoint(merge_models(plan, tmp_path / "m")),
        Checkpoint(base),
        Checkpoint(experts[0]),
    )
    head = ["model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"]
    for name in merged.tensors:
        source = expert if name in head else base_ck
        assert torch.equal(merged.read(name), source.read(name)), name


def test_bf16_stays_bf16_loads_and_generates(tmp_path):
    base = make_base(tmp_path / "base", arch="qwen3", num_layers=2, dtype=torch.bfloat16)
    expert = make_expert(base, tmp_path / "expert", layers=[0, 1], head=True)
    plan = plan_from_weights(base, [expert], "task_arithmetic", [0.3, 0.8, 0.5], 2)
    out = merge_models(plan, tmp_path / "merged")
    assert {info.dtype for info in Checkpoint(out).tensors.values()} == {"BF16"}
    name = "model.layers.1.mlp.up_proj.weight"
    b, e = Checkpoint(base).read(name).float(), Checkpoint(expert).read(name).float()
    # computed in bf16 by mergekit: within a few bf16 rounding steps of the exact value
    torch.testing.assert_close(
        Checkpoint(out).read(name).float(), b + 0.8 * (e - b), rtol=2e-2, atol=2e-3
    )

    base_config = json.loads((base / "config.json").read_text())
    merged_config = json.loads((out / "config.json").read_text())
    assert merged_config == base_config
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert (out / name).read_bytes() == (base / name).read_bytes()
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.dtype == torch.bfloat16
    tokenizer = AutoTokenizer.from_pretrained(out)
    inputs = tokenizer("w1 w2 w3", return_tensors="pt")
    generated = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert generated.shape[1] == inputs["input_ids"].shape[1] + 4


def test_written_configuration_recreates_the_merge(models, tmp_path):
    base, experts = models["qwen2"]["base"], models["qwen2"]["experts"][:1]
    plan = plan_from_weights(
        base, experts, "dare_ties", [*LAYER_WEIGHTS, HEAD_WEIGHT], NUM_LAYERS, density=0.5, seed=7
    )
    out = merge_models(plan, tmp_path / "merged")
    config = MergeConfiguration.model_validate(
        yaml.safe_load((out / MERGEKIT_CONFIG_FILE).read_text())
    )
    assert config.merge_method == "dare_ties"
    again = MergePlan.model_validate_json((out / PLAN_FILE).read_text())
    assert again == plan
    repeat = merge_models(again, tmp_path / "again")
    assert (repeat / "model.safetensors").read_bytes() == (out / "model.safetensors").read_bytes()


@pytest.mark.parametrize("method", method_names(lambda method: method.stochastic))
def test_stochastic_methods_are_seeded(models, tmp_path, method):
    base, experts = models["qwen3"]["base"], models["qwen3"]["experts"][:1]

    def merged_bytes(seed: int, name: str) -> bytes:
        plan = plan_from_weights(
            base, experts, method, [0.8] * (NUM_LAYERS + 1), NUM_LAYERS, density=0.5, seed=seed
        )
        return (merge_models(plan, tmp_path / name) / "model.safetensors").read_bytes()

    first = merged_bytes(3, "a")
    assert merged_bytes(3, "b") == first
    assert merged_bytes(4, "c") != first


@pytest.mark.parametrize("method", method_names(lambda method: not method.stochastic))
def test_the_other_methods_ignore_the_seed(models, tmp_path, method):
    base, experts = models["qwen3"]["base"], models["qwen3"]["experts"][:1]
    density = {"density": 0.5} if METHODS[method].has_density else {}

    def merged_bytes(seed: int, name: str) -> bytes:
        plan = plan_from_weights(
            base, experts, method, [0.8] * (NUM_LAYERS + 1), NUM_LAYERS, seed=seed, **density
        )
        return (merge_models(plan, tmp_path / name) / "model.safetensors").read_bytes()

    assert merged_bytes(3, "a") == merged_bytes(4, "b")


SPARSIFYING = sorted(method_names(lambda method: method.has_density))


def changed_fraction(merged: Checkpoint, base: Checkpoint, names) -> float:
    changed = total = 0
    for name in names:
        changed += int((merged.read(name) != base.read(name)).sum())
        total += base.tensors[name].shape[0] * base.tensors[name].shape[1]
    return changed / total


@pytest.mark.parametrize("method", SPARSIFYING)
def test_sparsifying_methods_respect_density_and_weight_zero(models, tmp_path, method):
    base, experts = models["qwen3"]["base"], models["qwen3"]["experts"][:1]
    base_ck = Checkpoint(base)
    matrices = [n for n, i in base_ck.tensors.items() if len(i.shape) == 2 and "layers" in n]

    weights = [0.0, 0.8, 0.0, 0.8, 0.0, 0.8, 0.8]  # even layers: weight 0
    plan = plan_from_weights(base, experts, method, weights, NUM_LAYERS, density=0.3, seed=1)
    merged = Checkpoint(merge_models(plan, tmp_path / "merged"))
    layout = TensorLayout.of(base_ck)
    for name in base_ck.tensors:
        if layout.role(name) in (0, 2, 4):
            assert torch.equal(merged.read(name), base_ck.read(name)), name
    odd = [n for n in matrices if layout.role(n) in (1, 3, 5)]
    # breadcrumbs keeps `density` but also drops the largest `gamma` (default 0.01).
    assert changed_fraction(merged, base_ck, odd) == pytest.approx(0.3, abs=0.04)


@pytest.mark.parametrize("method", ["ties", "dare_ties", "dare_linear", "breadcrumbs_ties"])
def test_weight_one_full_density_gives_the_expert(models, tmp_path, method):
    base, experts = models["llama"]["base"], models["llama"]["experts"][:1]
    extra = {"gamma": 0.0} if method.startswith("breadcrumbs") else {}
    plan = plan_from_weights(base, experts, method, [1.0], NUM_LAYERS, density=1.0, **extra)
    merged, expert = Checkpoint(merge_models(plan, tmp_path / "m")), Checkpoint(experts[0])
    for name in merged.tensors:
        torch.testing.assert_close(merged.read(name), expert.read(name), rtol=1e-6, atol=1e-6)


def test_sharded_models_merge(tmp_path):
    base = make_base(tmp_path / "base", num_layers=3, hidden_size=64, max_shard_size="100KB")
    expert = make_expert(base, tmp_path / "expert", layers=[0, 1, 2], head=True)
    assert (base / "model.safetensors.index.json").is_file()
    weights = [0.25, 0.5, 0.75, 0.1]
    out = merge_models(
        plan_from_weights(base, [expert], "task_arithmetic", weights, 3), tmp_path / "m"
    )
    assert_layerwise(out, base, [expert], "task_arithmetic", weights[:-1], weights[-1])


# --- error paths --------------------------------------------------------------------


def test_wrong_number_of_weights(models):
    with pytest.raises(ValueError, match=r"expected 1 \(model level\) or 7 values"):
        plan_from_weights(models["qwen3"]["base"], [], "linear", [0.1, 0.2], NUM_LAYERS)


def test_wrong_number_of_block_weights(models):
    partition = BlockPartition(starts=(0, 3), num_layers=NUM_LAYERS)
    with pytest.raises(ValueError, match="expected 3 values"):
        plan_from_block_weights("b", ["e"], "linear", [0.1, 0.2], partition)


@pytest.mark.parametrize(
    ("method", "params", "message"),
    [
        ("task_arithmetic", {"density": 0.5}, "density applies to sparsifying methods only"),
        ("ties", {"epsilon": 0.1}, "epsilon applies to della"),
        ("ties", {"gamma": 0.1}, "gamma applies to breadcrumbs"),
        ("linear", {"normalize": True}, "normalize applies"),
        ("ties", {"density": 1.5}, "density"),
        ("slerp", {}, "method"),
    ],
)
def test_invalid_plans(method, params, message):
    with pytest.raises(ValueError, match=message):
        plan_from_weights("b", ["e"], method, [0.5], 2, **params)


def test_non_finite_weight():
    with pytest.raises(ValueError, match="finite"):
        plan_from_weights("b", ["e"], "linear", [0.5, float("nan"), 0.2], 2)


def test_output_directory_must_be_empty(models, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    plan = plan_from_weights(
        models["qwen3"]["base"], models["qwen3"]["experts"][:1], "linear", [0.5], NUM_LAYERS
    )
    with pytest.raises(FileExistsError, match="not empty"):
        merge_models(plan, tmp_path / "out")


def test_incompatible_expert(models, tmp_path):
    plan = plan_from_weights(
        models["qwen3"]["base"], [models["qwen2"]["base"]], "linear", [0.5], NUM_LAYERS
    )
    with pytest.raises(CheckpointError, match="Qwen2ForCausalLM"):
        merge_models(plan, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_shard_is_named(tmp_path):
    base = make_base(tmp_path / "base", num_layers=2, hidden_size=64, max_shard_size="100KB")
    expert = make_expert(base, tmp_path / "expert", layers=[0])
    shard = drop_shard(expert)
    plan = plan_from_weights(base, [expert], "linear", [0.5], 2)
    with pytest.raises(CheckpointError, match=f"shard {shard} is missing"):
        merge_models(plan, tmp_path / "out")


def test_plan_layer_count_must_match_model(models, tmp_path):
    plan = plan_from_weights(
        models["qwen3"]["base"], models["qwen3"]["experts"][:1], "linear", [0.5], 3
    )
    with pytest.raises(CheckpointError, match="3 layer weights"):
        merge_models(plan, tmp_path / "out")
