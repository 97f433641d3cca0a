"""The importance profile: anchored layer indices, exact statistics, every error path."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file
from tiny_models import drop_shard, make_base, make_expert

from paretomerge.checkpoint import Checkpoint, CheckpointError
from paretomerge.importance import compute_profile, partition_profile
from paretomerge.partition import normalize_profile
from paretomerge.tensor_layout import TensorLayout

NUM_LAYERS = 12


@pytest.fixture(scope="module")
def twelve_layers(tmp_path_factory):
    root = tmp_path_factory.mktemp("twelve")
    base = make_base(root / "base", num_layers=NUM_LAYERS, seed=0)
    return root, base


def test_layer_one_never_captures_layers_ten_to_nineteen(twelve_layers):
    root, base = twelve_layers
    expert = make_expert(base, root / "only-layer-1", layers=[1], seed=5)
    profile = compute_profile(base, [expert])
    assert profile.layers[1] > 0
    assert profile.layers[:1] + profile.layers[2:] == [0.0] * (NUM_LAYERS - 1)
    assert profile.head == 0.0
    assert profile.tensors_per_layer == [11] * NUM_LAYERS  # Qwen3: 11 tensors per layer

    layout = TensorLayout.of(Checkpoint(base))
    assert layout.role("model.layers.1.mlp.up_proj.weight") == 1
    assert layout.role("model.layers.10.mlp.up_proj.weight") == 10
    assert layout.role("model.layers.11.self_attn.q_norm.weight") == 11
    assert layout.role("vision.model.layers.1.mlp.up_proj.weight") is None
    with pytest.raises(CheckpointError, match="names layer 12"):
        layout.role("model.layers.12.mlp.up_proj.weight")


def test_each_layer_is_ranked_by_its_own_perturbation(twelve_layers):
    root, base = twelve_layers
    scales = {layer: 0.01 * (layer + 1) for layer in range(NUM_LAYERS)}
    expert = make_expert(base, root / "graded", layer_scales=scales, seed=3)
    profile = compute_profile(base, [expert])
    assert sorted(range(NUM_LAYERS), key=lambda layer: profile.layers[layer]) == list(
        range(NUM_LAYERS)
    )


def test_statistics_match_their_definitions(models):
    base, experts = models["qwen3"]["base"], models["qwen3"]["experts"]
    profile = compute_profile(base, experts)
    base_ck = Checkpoint(base)
    layer_two = [n for n in base_ck.tensors if n.startswith("model.layers.2.")]
    head = ["lm_head.weight", "model.embed_tokens.weight", "model.norm.weight"]
    assert profile.head_tensors == head
    per_expert = []
    for k, path in enumerate(experts):
        expert = Checkpoint(path)

        def means(names, expert=expert):
            deltas = [(expert.read(n).double() - base_ck.read(n).double()) for n in names]
            bases = [base_ck.read(n).double() for n in names]
            return {
                "frobenius": sum(float(d.norm()) for d in deltas) / len(names),
                "l1": sum(float(d.abs().sum()) for d in deltas) / len(names),
                "linf": sum(float(d.abs().max()) for d in deltas) / len(names),
                "relative": sum(
                    float(d.norm() / b.norm()) for d, b in zip(deltas, bases, strict=True)
                )
                / len(names),
            }

        layer, head_stats = means(layer_two), means(head)
        per_expert.append(layer["frobenius"])
        for statistic, value in layer.items():
            got = profile.experts[k].statistics[statistic].layers[2]
            assert got == pytest.approx(value, rel=1e-5), statistic
            assert profile.experts[k].statistics[statistic].head == pytest.approx(
                head_stats[statistic], rel=1e-5
            )
    assert profile.layers[2] == pytest.approx(sum(per_expert) / 2, rel=1e-5)
    assert profile.statistic == "frobenius"
    assert profile.base.architecture == "Qwen3ForCausalLM"
    assert [e.model.path for e in profile.experts] == [str(p.resolve()) for p in experts]


def test_sharded_equals_single_file(tmp_path):
    single = make_base(tmp_path / "single", num_layers=3, hidden_size=64, seed=2)
    sharded = make_base(
        tmp_path / "sharded", num_layers=3, hidden_size=64, seed=2, max_shard_size="100KB"
    )
    assert len({i.shard for i in Checkpoint(sharded).tensors.values()}) > 1
    profiles = [
        compute_profile(
            base, [make_expert(base, tmp_path / f"{base.name}-e", layers=[0, 2], head=True)]
        )
        for base in (single, sharded)
    ]
    assert profiles[0].statistics == profiles[1].statistics


def test_unassigned_tensors_are_listed(tmp_path):
    base = make_base(tmp_path / "base", num_layers=2)
    expert = make_expert(base, tmp_path / "expert", layers=[0])
    for model in (base, expert):
        tensors = {n: Checkpoint(model).read(n) for n in Checkpoint(model).tensors}
        tensors["model.rotary_emb.inv_freq"] = torch.ones(4)
        save_file(tensors, model / "model.safetensors")
    profile = compute_profile(base, [expert])
    assert profile.unassigned_tensors == ["model.rotary_emb.inv_freq"]


def test_partition_and_normalisation(twelve_layers):
    root, base = twelve_layers
    expert = make_expert(base, root / "two-layers", layers=[3, 9], seed=9)
    profile = compute_profile(base, [expert])
    normalized = normalize_profile(profile.layers)
    assert normalized.max() == 1.0 and min(normalized[3], normalized[9]) > 0.9
    assert [v for layer, v in enumerate(normalized) if layer not in (3, 9)] == [0.0] * 10
    record = partition_profile(profile, 4, "variance")
    assert record.starts[0] == 0 and len(record.starts) == 4
    assert sum(b - a for a, b in record.bounds) == NUM_LAYERS


# --- error paths --------------------------------------------------------------------


def test_different_architectures(models):
    with pytest.raises(
        CheckpointError, match=r"is a Qwen2ForCausalLM, but base .* is a Qwen3ForCausalLM"
    ):
        compute_profile(models["qwen3"]["base"], [models["qwen2"]["base"]])


def test_different_layer_counts(models, tmp_path):
    other = make_base(tmp_path / "three", num_layers=3)
    with pytest.raises(CheckpointError, match="has 3 layers"):
        compute_profile(models["qwen3"]["base"], [other])


def test_different_shapes(tmp_path):
    base = make_base(tmp_path / "base", num_layers=2, hidden_size=32)
    wide = make_base(tmp_path / "wide", num_layers=2, hidden_size=64)
    with pytest.raises(
        CheckpointError, match=r"tensor lm_head.weight has shape \[128, 64\] in expert"
    ):
        compute_profile(base, [wide])


def test_missing_tensor(tmp_path):
    base = make_base(tmp_path / "base", num_layers=2)
    expert = make_expert(base, tmp_path / "expert", layers=[0])
    ck = Checkpoint(expert)
    tensors = {n: ck.read(n) for n in ck.tensors if n != "model.layers.1.mlp.up_proj.weight"}
    save_file(tensors, expert / "model.safetensors")
    with pytest.raises(
        CheckpointError, match=r"expert .* lacks tensor model.layers.1.mlp.up_proj.weight"
    ):
        compute_profile(base, [expert])


def test_missing_shard(tmp_path):
    base = make_base(tmp_path / "base", num_layers=2, hidden_size=64, max_shard_size="100KB")
    expert = make_expert(base, tmp_path / "expert", layers=[0])
    shard = drop_shard(expert)
    with pytest.raises(CheckpointError, match=rf"model .*expert: shard {shard} is missing"):
        compute_profile(base, [expert])


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_tensor_names_model_and_tensor(tmp_path, value):
    base = make_base(tmp_path / "base", num_layers=2)
    expert = make_expert(base, tmp_path / "expert", layers=[0])
    ck = Checkpoint(expert)
    tensors = {n: ck.read(n).clone() for n in ck.tensors}
    tensors["model.layers.1.self_attn.o_proj.weight"][3, 4] = value
    save_file(tensors, expert / "model.safetensors")
    with pytest.raises(
        CheckpointError,
        match=r"tensor model.layers.1.self_attn.o_proj.weight of model .*expert has non-finite",
    ):
        compute_profile(base, [expert])


def test_missing_model_files(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"has no config\.json"):
        Checkpoint(tmp_path / "empty")
    (tmp_path / "empty" / "config.json").write_text(json.dumps({"architectures": ["X"]}))
    with pytest.raises(CheckpointError, match=r"neither model\.safetensors nor"):
        Checkpoint(tmp_path / "empty")
    with pytest.raises(CheckpointError, match="does not exist"):
        Checkpoint(tmp_path / "nowhere")


def test_truncated_shard_names_the_shard_and_a_tensor_past_its_end(tmp_path):
    base = make_base(tmp_path / "base", num_layers=2)
    expert = make_expert(base, tmp_path / "expert", layers=[0])
    shard = expert / "model.safetensors"
    shard.write_bytes(shard.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match=rf"shard {shard} is truncated: tensor \S+ ends"):
        compute_profile(base, [expert])


def test_a_shard_cut_while_it_is_read_is_reported(tmp_path):
    base = make_base(tmp_path / "base", num_layers=2)
    checkpoint = Checkpoint(base)
    name = "model.layers.1.mlp.up_proj.weight"
    info = checkpoint.tensors[name]
    with info.shard.open("r+b") as stream:  # the header was read intact, then the file shrank
        stream.truncate(info.offset + 10)
    with pytest.raises(CheckpointError, match=rf"tensor {name} of model .*: shard .* ends before"):
        list(checkpoint.read_chunks(name, 64))


def test_chunks_stream_every_value_in_order(models):
    checkpoint = Checkpoint(models["qwen3"]["base"])
    for name in ("model.embed_tokens.weight", "model.norm.weight"):
        whole = checkpoint.read(name).reshape(-1)
        streamed = torch.cat([chunk.clone() for chunk in checkpoint.read_chunks(name, 100)])
        assert torch.equal(streamed, whole)
