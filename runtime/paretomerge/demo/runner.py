"""``paretomerge demo``: a whole ParetoMerge run on this machine, with no GPU and no hub.

It builds the tiny instruct/thinking pair (:mod:`paretomerge.demo.pair`), writes a run
file for it into the output directory (which plays the run's volume), and runs that file
exactly as ``paretomerge run`` would: importance profile, anchors, then the asynchronous
search, each candidate merged by mergekit and evaluated through evalscope against the
built-in transformers server.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from paretomerge.demo.pair import build_demo_pair
from paretomerge.k8s.constants import API_VERSION, KIND

RUN_NAME = "demo"
RUN_FILE = "demo.yaml"
MODELS_DIR = "models"


def demo_manifest(
    budget: int, parallelism: int, seed: int, limit: int | None = None
) -> dict[str, Any]:
    """The demo's ParetoMergeRun: layer-wise SIP search, the numeric benchmark, CPU serving;
    ``limit`` caps the questions asked per evaluation."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": RUN_NAME},
        "spec": {
            "models": {
                "base": {"path": f"{MODELS_DIR}/instruct"},
                "experts": [{"path": f"{MODELS_DIR}/thinking"}],
            },
            "merge": {"method": "task_arithmetic", "granularity": "layer"},
            "search": {
                "strategy": "sip-map-saas",
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
            "evaluation": {
                "engine": "transformers",
                "maxTokens": 64,
                "sampling": {"temperature": 0.0},
                "baseSampling": {"temperature": 0.0},
                "concurrency": 4,
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
) -> Path:
    """Build (or reuse) the pair and write the run file; returns the run file's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    build_demo_pair(out_dir / MODELS_DIR, seed=seed, progress=progress)
    run_file = out_dir / RUN_FILE
    run_file.write_text(
        yaml.safe_dump(demo_manifest(budget, parallelism, seed, limit), sort_keys=False)
    )
    return run_file
