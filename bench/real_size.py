"""The Qwen3 architecture at a chosen size, for the throughput benchmarks' random-init
models (Qwen3-4B: hidden 2560, 36 layers, a vocabulary of 151 936)."""

from __future__ import annotations

from typing import Any


def qwen3_config(hidden: int, layers: int, vocab: int = 151936, **extra: Any):
    """A bf16 ``Qwen3Config`` of ``layers`` layers of width ``hidden`` with Qwen3-4B's
    attention (16 query heads of 128, 8 key-value heads) and a 3x MLP; ``extra`` sets
    any other field (``tie_word_embeddings``, token ids)."""
    from transformers import Qwen3Config

    return Qwen3Config(
        architectures=["Qwen3ForCausalLM"],
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=3 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=16,
        num_key_value_heads=8,
        head_dim=128,
        dtype="bfloat16",
        **extra,
    )
