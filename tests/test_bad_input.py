"""Bad input: every run in ``tests/data/invalid_runs.yaml`` is refused with the field
named, by the spec model, by ``paretomerge run`` and by the real API server with the
operator; bad models on the volume fail the profile and candidate steps naming the
file or tensor.

Entries marked ``volume: true`` have a valid spec and wrong files on the volume: the
operator cannot see the volume, so only the run's own controller finds them (its profile
step). They are checked here through ``paretomerge run``, whose controller is the one the
controller pod runs, not on the cluster (that would need a node and a controller pod per
entry for the same code path).
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from k8s.control_plane import ControlPlane, wait_until
from safetensors.torch import save_file
from test_operator import crd, manifest, operator  # noqa: F401 - fixtures
from tiny_models import drop_shard, link_tree, make_base, make_expert
from typer.testing import CliRunner

from paretomerge.checkpoint import Checkpoint, non_finite_tensors
from paretomerge.cli import app
from paretomerge.k8s.objects import controller_name
from paretomerge.merge.plan import MergePlan
from paretomerge.spec import SpecError, parse_run
from paretomerge.tasks import ERROR_FILE, EvaluateTask, ProfileTask, TaskFailure, run_task
from paretomerge.tasks import write_task as write_task_file

pytest_plugins = ["k8s.fixtures"]

ROOT = Path(__file__).parent.parent
CORPUS = Path(__file__).parent / "data" / "invalid_runs.yaml"
EXAMPLE = ROOT / "examples" / "tiny-cpu.yaml"
INLINE_SECRETS = ("hf_inlineTokenValue0123456789", "sk-inlineKeyValue0123456789")


@dataclass(frozen=True)
class InvalidRun:
    name: str
    manifest: dict[str, Any]
    names: str  # what the error must name: a field, or a file on the volume
    volume: bool


def _change(data: dict, dotted: str, value: Any, delete: bool = False) -> None:
    *parents, last = dotted.split(".")
    node = data
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    if isinstance(node, list):
        index = int(last)
        if delete:
            del node[index]
        elif index == len(node):
            node.append(value)
        else:
            node[index] = value
    elif delete:
        del node[last]
    else:
        node[last] = value


def load_corpus() -> list[InvalidRun]:
    example = yaml.safe_load(EXAMPLE.read_text())
    runs = []
    for entry in yaml.safe_load(CORPUS.read_text()):
        data = copy.deepcopy(example)
        data["metadata"]["name"] = entry["name"]
        for dotted, value in entry.get("set", {}).items():
            _change(data, dotted, value)
        for dotted, length in entry.get("long", {}).items():
            _change(data, dotted, "a" * length)
        for dotted in entry.get("delete", []):
            _change(data, dotted, None, delete=True)
        runs.append(InvalidRun(entry["name"], data, entry["names"], entry.get("volume", False)))
    return runs


CORPUS_RUNS = load_corpus()
SPEC_RUNS = [run for run in CORPUS_RUNS if not run.volume]
VOLUME_RUNS = [run for run in CORPUS_RUNS if run.volume]


def test_the_corpus_is_broad_and_its_base_is_valid() -> None:
    parse_run(yaml.safe_load(EXAMPLE.read_text()))
    names = [run.name for run in CORPUS_RUNS]
    assert len(SPEC_RUNS) >= 30 and VOLUME_RUNS and len(set(names)) == len(names)


@pytest.mark.parametrize("run", SPEC_RUNS, ids=[run.name for run in SPEC_RUNS])
def test_the_spec_rejects_each_run_naming_the_field(run: InvalidRun) -> None:
    with pytest.raises(SpecError) as info:
        parse_run(run.manifest)
    fields = [problem.field for problem in info.value.problems]
    assert run.names in fields, str(info.value)
    assert not any(secret in str(info.value) for secret in INLINE_SECRETS)


def test_nan_and_infinity_are_refused_where_yaml_allows_them() -> None:
    """YAML has ``.nan`` and ``.inf`` (JSON, and so a cluster, has neither)."""
    data = yaml.safe_load(EXAMPLE.read_text())
    data["spec"]["search"]["referencePoint"] = [float("nan"), -0.2]
    data["spec"]["merge"]["blocks"] = {"beta": float("inf")}
    with pytest.raises(SpecError) as info:
        parse_run(data)
    fields = {problem.field for problem in info.value.problems}
    assert fields == {"spec.search.referencePoint[0]", "spec.merge.blocks.beta"}


@pytest.mark.parametrize(
    "run",
    [r for r in SPEC_RUNS if r.name in ("batch-size-removed", "base-path-climbs-out")],
    ids=lambda run: run.name,
)
def test_paretomerge_run_exits_with_the_field_named(run: InvalidRun, tmp_path: Path) -> None:
    run_file = tmp_path / "run.yaml"
    run_file.write_text(yaml.safe_dump(run.manifest))
    result = CliRunner().invoke(app, ["run", str(run_file)])
    assert result.exit_code == 1
    assert f"{run_file} is invalid" in result.output and f"  - {run.names}" in result.output
    assert not (tmp_path / "runs").exists()  # nothing started


@pytest.mark.slow
@pytest.mark.parametrize("run", VOLUME_RUNS, ids=[run.name for run in VOLUME_RUNS])
def test_a_model_missing_on_the_volume_fails_the_run_naming_it(
    run: InvalidRun, tmp_path: Path
) -> None:
    run_file = tmp_path / "run.yaml"
    run_file.write_text(yaml.safe_dump(run.manifest))
    result = CliRunner().invoke(app, ["run", str(run_file)])
    assert result.exit_code == 1
    assert "Failed" in result.output and run.names in result.output
    assert not (tmp_path / "runs" / run.name).exists()  # the preflight found it: nothing ran


# --- bad models on the volume ----------------------------------------------------------------

BROKEN_TENSOR = "model.layers.1.self_attn.o_proj.weight"


def _missing_shard(base: Path, expert: Path) -> str:
    make_expert(base, expert, layers=[0])
    return f"shard {drop_shard(expert)} is missing"


def _mismatched_shapes(base: Path, expert: Path) -> str:
    make_base(expert, num_layers=2, hidden_size=32)
    return r"tensor lm_head.weight has shape \[128, 32\] in expert"


def _non_finite(base: Path, expert: Path) -> str:
    make_expert(base, expert, layers=[0])
    index = json.loads((expert / "model.safetensors.index.json").read_text())["weight_map"]
    shard = expert / index[BROKEN_TENSOR]
    tensors = {name: tensor.clone() for name, tensor in _read_shard(shard).items()}
    tensors[BROKEN_TENSOR][3, 4] = float("nan")
    save_file(tensors, shard, metadata={"format": "pt"})
    return rf"tensor {BROKEN_TENSOR} .*non-finite values"


def _truncated(base: Path, expert: Path) -> str:
    make_expert(base, expert, layers=[0])
    shard = sorted(expert.glob("*.safetensors"))[-1]
    shard.write_bytes(shard.read_bytes()[:-1000])
    return rf"shard .*{shard.name} is truncated: tensor \S+ ends at byte"


def _read_shard(shard: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(shard)


DEFECTS = {
    "missing-shard": _missing_shard,
    "mismatched-shapes": _mismatched_shapes,
    "non-finite-weights": _non_finite,
    "truncated-safetensors": _truncated,
}


@pytest.fixture(scope="module")
def sharded_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_base(
        tmp_path_factory.mktemp("bad-models") / "base",
        num_layers=2,
        hidden_size=64,
        max_shard_size="100KB",
    )


def _volume_with_defect(tmp_path: Path, base: Path, defect: str) -> tuple[Path, str]:
    volume = tmp_path / "volume"
    (volume / "models").mkdir(parents=True)
    link_tree(base, volume / "models" / "base")
    pattern = DEFECTS[defect](base, volume / "models" / "expert")
    return volume, pattern


def _fails_naming(task: ProfileTask | EvaluateTask, volume: Path, step: str, pattern: str):
    """The task fails in ``step`` with ``pattern`` in its exception and its ``error.json``
    (what the executors report as the attempt's reason)."""
    task_file = write_task_file(task, volume)
    with pytest.raises(TaskFailure, match=pattern):
        run_task(task_file, volume, "merge" if step == "merge" else "all")
    error = json.loads((volume / task.work_dir / ERROR_FILE).read_text())
    assert error["step"] == step and re.search(pattern, error["message"]), error


@pytest.mark.parametrize("defect", DEFECTS)
def test_a_bad_expert_fails_the_profile_task_naming_it(
    defect: str, sharded_base: Path, tmp_path: Path
) -> None:
    volume, pattern = _volume_with_defect(tmp_path, sharded_base, defect)
    task = ProfileTask(
        id="profile", work_dir="runs/r/profile", base="models/base", experts=["models/expert"]
    )
    _fails_naming(task, volume, "profile", pattern)


@pytest.mark.parametrize("defect", DEFECTS)
def test_a_bad_expert_fails_the_candidate_merge_naming_it(
    defect: str, sharded_base: Path, tmp_path: Path
) -> None:
    volume, pattern = _volume_with_defect(tmp_path, sharded_base, defect)
    run = parse_run(yaml.safe_load(EXAMPLE.read_text()))
    task = EvaluateTask(
        id="c0001",
        work_dir="runs/r/candidates/c0001",
        role="merged",
        plan=MergePlan(
            base="models/base",
            experts=["models/expert"],
            method="task_arithmetic",
            granularity="layer",
            layer_weights=[0.5, 0.5],
            head_weight=0.5,
        ),
        evaluation=run.spec.evaluation,
        objectives=run.spec.objectives,
    )
    _fails_naming(task, volume, "merge", pattern)
    assert not (volume / task.work_dir / "merged").exists()


def test_huge_finite_values_are_not_taken_for_non_finite_ones(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    huge = torch.full((1000,), 3e38)  # its sum overflows float32
    broken = huge.clone()
    broken[7] = float("-inf")
    save_file({"huge": huge, "broken": broken}, tmp_path / "model.safetensors")
    assert list(non_finite_tensors(Checkpoint(tmp_path), chunk_elements=64)) == ["broken"]


def test_the_shards_of_the_sharded_base_are_intact(sharded_base: Path) -> None:
    """The defects above change copies: the shared base still reads in full."""
    checkpoint = Checkpoint(sharded_base)
    assert len({info.shard for info in checkpoint.tensors.values()}) > 1
    assert all(torch.isfinite(t).all() for _, t in checkpoint.iter_tensors())


# --- on the real API server, with the operator ---------------------------------------------------


def _outcomes(cluster: ControlPlane, namespace: str) -> dict[str, dict]:
    runs = cluster.get("pmr", "-n", namespace).get("items", [])
    return {run["metadata"]["name"]: run.get("status", {}) for run in runs}


@pytest.mark.k8s
@pytest.mark.slow
def test_the_cluster_refuses_or_fails_every_invalid_run_and_serves_a_valid_one(
    k8s_cluster: ControlPlane,
    k8s_namespace: str,
    operator,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    expected: dict[str, InvalidRun] = {}
    refused: dict[str, str] = {}
    valid = manifest(k8s_namespace)
    valid["metadata"]["name"] = "valid-alongside"
    for i, run in enumerate(SPEC_RUNS):
        if i == len(SPEC_RUNS) // 2:  # halfway, among the failing runs
            k8s_cluster.kubectl("apply", "-f", "-", stdin=json.dumps(valid))
        data = {**run.manifest, "metadata": {**run.manifest["metadata"]}}
        data["metadata"]["namespace"] = k8s_namespace
        name = data["metadata"]["name"]
        expected[name] = run
        applied = k8s_cluster.kubectl("apply", "-f", "-", stdin=json.dumps(data), check=False)
        if applied.returncode != 0:
            refused[name] = applied.stderr
    accepted = set(expected) - set(refused)

    def every_accepted_run_failed() -> bool:
        outcomes = _outcomes(k8s_cluster, k8s_namespace)
        return all(outcomes.get(name, {}).get("phase") == "Failed" for name in accepted)

    wait_until(every_accepted_run_failed, "the operator to fail every accepted run", timeout=180)
    outcomes = _outcomes(k8s_cluster, k8s_namespace)
    table, unnamed = [], []
    for name, run in expected.items():
        if name in refused:
            message, where = refused[name], "refused by the API server"
        else:
            valid_condition = next(c for c in outcomes[name]["conditions"] if c["type"] == "Valid")
            assert valid_condition["status"] == "False", name
            message, where = valid_condition["message"], "Failed by the operator"
        table.append(f"{run.name:42} {where}")
        # The API server of Kubernetes 1.20 leaves list indices out of a field's name
        # (spec.objectives.benchmarks.name); the operator's messages keep them.
        field = re.sub(r"\[\d+\]", "", run.names) if name in refused else run.names
        if field not in message:
            unnamed.append(f"{run.name}: {message}")
        assert not any(secret in message for secret in INLINE_SECRETS), run.name
    print("\n".join(table))
    assert not unnamed, "\n".join(unnamed)
    assert refused and accepted  # both layers take part
    # A secret written inline is refused without being repeated where others read.
    events = k8s_cluster.kubectl("get", "events", "-n", k8s_namespace, "-o", "json").stdout
    operator_log = (tmp_path / "operator.log").read_text(errors="replace")
    assert not any(secret in events + operator_log for secret in INLINE_SECRETS)

    # The operator kept serving: the valid run has its controller Job; an invalid one at
    # most a controller that only checks its volume.
    jobs = k8s_cluster.get("jobs", "-n", k8s_namespace).get("items", [])
    running = [
        job["metadata"]["name"]
        for job in jobs
        if "--check-only" not in job["spec"]["template"]["spec"]["containers"][0]["args"]
    ]
    assert running == [controller_name("valid-alongside")]
    assert _outcomes(k8s_cluster, k8s_namespace)["valid-alongside"]["phase"] == "Pending"
