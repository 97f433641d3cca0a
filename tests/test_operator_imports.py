"""The operator stays light: it reaches the runtime only through ``paretomerge.k8s`` and
the spec, and nothing it imports loads torch, BoTorch, GPyTorch, mergekit or transformers
(the chart gives it 512 Mi)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import paretomerge_operator

HEAVY = {"torch", "botorch", "gpytorch", "mergekit", "transformers"}


def test_importing_the_operator_loads_no_torch_botorch_gpytorch_mergekit_or_transformers() -> None:
    code = (
        "import json, sys\n"
        "import paretomerge_operator.main\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    loaded = {name.split(".")[0] for name in json.loads(result.stdout)}
    assert "kopf" in loaded and "paretomerge" in loaded  # it did import the operator
    assert not loaded & HEAVY


def test_the_operator_imports_only_the_kubernetes_package_and_the_spec() -> None:
    root = Path(paretomerge_operator.__file__).parent
    imported = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
    runtime = {name for name in imported if name.split(".")[0] == "paretomerge"}
    assert runtime  # the walk found the operator's imports
    allowed = ("paretomerge.spec", "paretomerge.k8s")
    assert {
        n for n in runtime if n not in allowed and not n.startswith("paretomerge.k8s.")
    } == set()
