"""Tiny random-init Hugging Face causal LMs for the tests, built offline.

A base model is a real ``transformers`` model (Qwen3, Qwen2 or Llama) saved with
``save_pretrained`` plus a word-level tokenizer built with ``tokenizers``; an expert is
the base with Gaussian noise added to every tensor of chosen layers (and optionally of
the head), written with the base's exact shard layout.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

from paretomerge.checkpoint import INDEX_FILE, Checkpoint
from paretomerge.tensor_layout import TensorLayout

VOCAB_SIZE = 128
ARCHITECTURES = {
    "qwen3": (Qwen3Config, Qwen3ForCausalLM),
    "qwen2": (Qwen2Config, Qwen2ForCausalLM),
    "llama": (LlamaConfig, LlamaForCausalLM),
}


def build_tokenizer() -> PreTrainedTokenizerFast:
    """A whitespace word-level tokenizer over ``w0..w119`` and four special tokens."""
    specials = ["<unk>", "<s>", "</s>", "<pad>"]
    words = [f"w{i}" for i in range(VOCAB_SIZE - len(specials) - 4)]
    vocab = {token: i for i, token in enumerate([*specials, *words])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
    )


def make_base(
    path: Path,
    arch: str = "qwen3",
    num_layers: int = 4,
    hidden_size: int = 32,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    max_shard_size: str | None = None,
    tie_word_embeddings: bool = False,
) -> Path:
    """Save a random-init model with ``num_layers`` layers and its tokenizer to ``path``."""
    config_cls, model_cls = ARCHITECTURES[arch]
    config = config_cls(
        vocab_size=VOCAB_SIZE,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=hidden_size // 4,
        max_position_embeddings=128,
        tie_word_embeddings=tie_word_embeddings,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=3,
    )
    torch.manual_seed(seed)
    model = model_cls(config).to(dtype)
    # Norm weights start at exactly 1; give them spread so merges of them are testable.
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.ndim == 1:
                parameter.add_(0.1 * torch.randn_like(parameter))
    kwargs = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.save_pretrained(path, **kwargs)
    build_tokenizer().save_pretrained(path)
    return path


def make_expert(
    base: Path,
    path: Path,
    layers: Iterable[int] = (),
    head: bool = False,
    scale: float = 0.05,
    seed: int = 1,
    layer_scales: dict[int, float] | None = None,
) -> Path:
    """Copy ``base`` to ``path``, adding ``scale * N(0, 1)`` noise to every tensor of the
    given layers (``layer_scales`` overrides the scale per layer) and, if ``head``, to
    the embeddings, final norm and ``lm_head``. Shards and dtype are kept."""
    checkpoint = Checkpoint(base)
    layout = TensorLayout.of(checkpoint)
    chosen = set(layers)
    scales = dict(layer_scales or {})
    generator = torch.Generator().manual_seed(seed)
    path.mkdir(parents=True)
    for item in base.iterdir():
        if not item.name.endswith(".safetensors"):
            shutil.copy(item, path / item.name)
    shards: dict[Path, dict[str, torch.Tensor]] = {}
    for name, info in sorted(checkpoint.tensors.items()):  # noise independent of sharding
        tensor = checkpoint.read(name)
        role = layout.role(name)
        amount = scales.get(role, scale) if isinstance(role, int) else scale
        if (isinstance(role, int) and (role in chosen or role in scales)) or (
            role == "head" and head
        ):
            noise = torch.randn(tensor.shape, generator=generator, dtype=torch.float32)
            tensor = (tensor.float() + amount * noise).to(tensor.dtype)
        shards.setdefault(info.shard, {})[name] = tensor
    for shard, tensors in shards.items():
        save_file(tensors, path / shard.name, metadata={"format": "pt"})
    return path


def make_pair(root: Path, **base_options) -> Path:
    """A two-layer ``root/base`` and an ``root/expert`` that differs from it in both layers
    and the head; ``base_options`` go to :func:`make_base` (e.g. ``max_shard_size``)."""
    base = make_base(root / "base", num_layers=2, seed=0, **base_options)
    make_expert(base, root / "expert", range(2), True, seed=1)
    return root


def drop_shard(model: Path) -> str:
    """Delete the first shard of a sharded model; returns its file name."""
    weight_map = json.loads((model / INDEX_FILE).read_text())["weight_map"]
    shard = sorted(set(weight_map.values()))[0]
    (model / shard).unlink()
    return shard


def link_tree(source: Path, target: Path) -> Path:
    """``source`` made available at ``target`` in hard links (copies across file systems),
    not a symbolic link: a run refuses a path whose real path leaves its volume."""

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=link, symlinks=False)
    return target
