"""Shared tiny models: built once per session, read-only for the tests."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


@dataclass(frozen=True)
class DemoBuild:
    """The session's demo pair, its progress lines, and torch's state around the build."""

    pair: Any
    lines: list[str]
    threads: tuple[int, int]  # before, after
    rng_unchanged: bool


@pytest.fixture(scope="session")
def demo_build(tmp_path_factory) -> DemoBuild:
    """The demo's trained instruct/thinking pair and its 40-question benchmark, built once
    per session (``instruct/``, ``thinking/``, ``benchmark.jsonl``); ``PARETOMERGE_DEMO_PAIR_DIR``
    names a directory to reuse instead."""
    import torch

    from paretomerge.demo.pair import build_demo_pair

    lines: list[str] = []
    threads, rng = torch.get_num_threads(), torch.random.get_rng_state()
    # A developer may point this at a pair built before (it is rebuilt there if stale);
    # CI leaves it unset and trains once per session.
    directory = os.environ.get("PARETOMERGE_DEMO_PAIR_DIR") or tmp_path_factory.mktemp("demo")
    pair = build_demo_pair(Path(directory), progress=lines.append)
    return DemoBuild(
        pair=pair,
        lines=lines,
        threads=(threads, torch.get_num_threads()),
        rng_unchanged=torch.equal(rng, torch.random.get_rng_state()),
    )


@pytest.fixture(scope="session")
def demo_models(demo_build: DemoBuild) -> Path:
    """The directory of the demo pair (``instruct/``, ``thinking/``, ``benchmark.jsonl``)."""
    return demo_build.pair.base.parent
