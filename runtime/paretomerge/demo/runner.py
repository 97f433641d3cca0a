"""``paretomerge demo``: two whole ParetoMerge runs on this machine, with no GPU and no hub.

It builds the tiny instruct/thinking pair (:mod:`paretomerge.demo.pair`), writes two run
files for it into the output directory (which plays the runs' volume), and runs each
exactly as ``paretomerge run`` would (importance profile, anchors, then the asynchronous
search, each candidate merged by mergekit and evaluated through evalscope against the
built-in transformers server):

- ``demo.yaml``: the per-layer search (one weight per layer and one for the head);
- ``demo-model-level.yaml``: the classic model-level sweep, one weight for the whole
  model, at the same budget.

Both read the same anchors (cached on the volume) and so share one objective space; the
report overlays the model-level front on the per-layer one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from paretomerge.demo.pair import TrainingProgress, build_demo_pair
from paretomerge.k8s.constants import API_VERSION, KIND

RUN_NAME = "demo"
BASELINE_RUN_NAME = "demo-model-level"
MODELS_DIR = "models"
REPORT_FILE = "report.html"
# Each evaluation asks this many tokens at most: the thinking model's replies take about
# 60, a merge that rambles is cut here.
MAX_TOKENS = 80


@dataclass(frozen=True)
class DemoRuns:
    """The demo's run files, in the order they run."""

    search: Path  # per-layer search
    baseline: Path  # model-level sweep


def demo_manifest(
    name: str,
    granularity: Literal["layer", "model"],
    budget: int,
    parallelism: int,
    seed: int,
    limit: int | None = None,
) -> dict[str, Any]:
    """A demo ParetoMergeRun on the numeric benchmark with CPU serving: per-layer SIP
    search (``layer``) or the model-level sweep (``model``); ``limit`` caps the questions
    asked per evaluation."""
    strategy = "sip-map-saas" if granularity == "layer" else "model-level"
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name},
        "spec": {
            "models": {
                "base": {"path": f"{MODELS_DIR}/instruct"},
                "experts": [{"path": f"{MODELS_DIR}/thinking"}],
            },
            "merge": {"method": "task_arithmetic", "granularity": granularity},
            "search": {
                "strategy": strategy,
                "budget": budget,
                "initialPoints": min(4, budget),
                "initialSolutions": [0.55, 0.8],
                "seed": seed,
            },
            "objectives": {
                "benchmarks": [
                    {
                        "name": "modular-arithmetic",
                        "type": "jsonl",
                        "path": f"{MODELS_DIR}/benchmark.jsonl",
                        "format": "numeric",
                    }
                ],
                "limit": limit,
            },
            # Sampling as the paper's setting does (the spec's defaults): it makes the
            # choice to think a probability that the merge weights move, so merges near
            # a boundary reach the trade-offs in between.
            # Screening may stop a candidate after a quarter or a half of its questions (6
            # or 12 of the 24 that `paretomerge demo` asks by default), once the surrogate
            # puts it behind a finished candidate or an anchor with probability 0.9: the
            # spec's default first stage (a tenth) would be 1-4 questions of the demo's
            # small benchmark.
            "evaluation": {
                "engine": "transformers",
                "maxTokens": MAX_TOKENS,
                "concurrency": 8,
                "screening": {"stages": [0.25, 0.5, 1.0], "confidence": 0.9},
            },
            "execution": {
                "parallelism": parallelism,
                "keepMergedModels": "none",
                "maxFailedCandidates": 2,
                "activeDeadlineSeconds": 900,
            },
        },
    }


def prepare_demo(
    out_dir: Path,
    budget: int,
    parallelism: int,
    seed: int,
    limit: int | None = None,
    progress: Callable[[str], None] | None = None,
    on_step: Callable[[TrainingProgress], None] | None = None,
) -> DemoRuns:
    """Build (or reuse) the pair and write both run files; ``progress`` and ``on_step``
    are told how the pair's training goes (:func:`build_demo_pair`)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    build_demo_pair(out_dir / MODELS_DIR, seed=seed, progress=progress, on_step=on_step)
    paths = []
    for name, granularity in ((RUN_NAME, "layer"), (BASELINE_RUN_NAME, "model")):
        manifest = demo_manifest(name, granularity, budget, parallelism, seed, limit)
        paths.append(out_dir / f"{name}.yaml")
        paths[-1].write_text(yaml.safe_dump(manifest, sort_keys=False))
    return DemoRuns(*paths)
