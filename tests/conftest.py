"""Shared tiny models: built once per session, read-only for the tests."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest
from tiny_models import make_base, make_expert

NUM_LAYERS = 6


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict:
    """Per architecture: a 6-layer fp32 base and two experts that differ in every layer
    and in the head (different noise), under ``tmp/<arch>/``."""
    root = tmp_path_factory.mktemp("models")
    built = {}
    for arch in ("qwen3", "qwen2", "llama"):
        base = make_base(root / arch / "base", arch=arch, num_layers=NUM_LAYERS, seed=0)
        built[arch] = {
            "base": base,
            "experts": [
                make_expert(base, root / arch / f"expert{k}", range(NUM_LAYERS), True, seed=k + 1)
                for k in range(2)
            ],
        }
    return built


@pytest.fixture(scope="session")
def demo_models(tmp_path_factory) -> Path:
    """The demo's trained instruct/thinking pair and benchmark (``instruct/``, ``thinking/``,
    ``benchmark.jsonl``), built once per session."""
    from paretomerge.demo.pair import build_demo_pair

    directory = tmp_path_factory.mktemp("demo-models")
    build_demo_pair(directory)
    return directory
