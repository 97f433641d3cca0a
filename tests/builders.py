"""Values the tests build again and again, in one place."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

from paretomerge.results import BenchmarkScore

#: A benchmark that ``fake_tasks.py`` scores and the tiny volumes hold.
ONE_BENCHMARK = {"name": "one", "type": "jsonl", "path": "data/one.jsonl", "format": "numeric"}
#: The default strategy with an acquisition cheap enough for a test, and one user solution.
QUICK_SEARCH = {
    "strategy": "sip-map-saas",
    "initialSolutions": [0.5],
    "acquisition": {"numRestarts": 2, "rawSamples": 32, "mcSamples": 32},
}


def run_manifest(
    name: str = "run",
    namespace: str | None = None,
    metadata: dict[str, Any] | None = None,
    **sections: dict[str, Any],
) -> dict[str, Any]:
    """A ParetoMergeRun as plain data: base ``models/base``, one expert ``models/expert``
    and the numeric benchmark :data:`ONE_BENCHMARK`, everything else at its default.

    Each keyword is a spec section merged into that (``search={"budget": 4}``): mappings
    key by key, at any depth; lists and other values replace. ``metadata`` adds fields
    (``uid``, ``generation``) to the name and namespace.
    """
    spec: dict[str, Any] = {
        "models": {"base": {"path": "models/base"}, "experts": [{"path": "models/expert"}]},
        "objectives": {"benchmarks": [ONE_BENCHMARK]},
    }
    return {
        "apiVersion": "paretomerge.io/v1alpha1",
        "kind": "ParetoMergeRun",
        "metadata": {
            "name": name,
            **({"namespace": namespace} if namespace else {}),
            **(metadata or {}),
        },
        "spec": merged(spec, sections),
    }


def write_numeric_benchmark(path: Path, questions: int = 4) -> Path:
    """A ``numeric`` jsonl benchmark at ``path`` whose every answer is 7 (what the fake
    ``vllm``'s expert and merges answer)."""
    rows = [{"question": f"What is {k} + {7 - k}?", "answer": "7"} for k in range(questions)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def merged(data: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` with ``changes``: mappings merged key by key, other values
    (lists included) replaced."""
    out = copy.deepcopy(data)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def benchmark_score(name: str, accuracy: float, mean_output_tokens: float, n: int = 30):
    """A :class:`BenchmarkScore` with the binomial standard error of ``accuracy`` over
    ``n`` questions, every output closing its think block."""
    return BenchmarkScore(
        name=name,
        accuracy=accuracy,
        accuracy_stderr=math.sqrt(accuracy * (1.0 - accuracy) / n),
        mean_output_tokens=mean_output_tokens,
        thinking_closed=1.0,
        n=n,
    )
