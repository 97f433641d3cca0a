"""The operator on a real control plane: kubectl apply a run, get a Pareto set.

The API server, the Job controller and the scheduler are real (``tests/k8s``); a node
simulator plays the kubelet and runs every container's command as a local process. The
run is ``examples/tiny-cpu.yaml`` on the demo's trained pair: the controller pod, the
profile, anchor and candidate Jobs all run the real ``paretomerge`` commands.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from k8s.control_plane import ControlPlane, KubectlError, wait_until
from k8s.node_simulator import NodeSimulator
from k8s.operator_process import OperatorProcess, install_crd, run_status, wait_for_phase
from tiny_models import link_tree

pytest_plugins = ["k8s.fixtures"]
pytestmark = [pytest.mark.k8s, pytest.mark.slow]

ROOT = Path(__file__).parent.parent
EXAMPLE = ROOT / "examples" / "tiny-cpu.yaml"
CLAIM = "paretomerge-models"
RUN_SECONDS = 900


@pytest.fixture(scope="module")
def crd(k8s_cluster: ControlPlane) -> None:
    install_crd(k8s_cluster)


@pytest.fixture
def volume(tmp_path: Path, demo_models: Path) -> Path:
    """The run's volume: the demo pair under models/ (read-only use), runs written beside."""
    root = tmp_path / "volume"
    root.mkdir()
    link_tree(demo_models, root / "models")
    return root


@pytest.fixture
def node(k8s_cluster: ControlPlane, tmp_path: Path, volume: Path, monkeypatch) -> Iterator:
    # Pod processes run `paretomerge ...`: the one of this environment.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with NodeSimulator(k8s_cluster, tmp_path / "node", gpus=1, claims={CLAIM: volume}) as node:
        yield node


@pytest.fixture
def operator(k8s_cluster: ControlPlane, crd, k8s_namespace: str, tmp_path: Path) -> Iterator:
    """``paretomerge-operator --standalone`` watching the test's namespace."""
    with OperatorProcess.standalone(k8s_cluster, tmp_path / "operator.log", (k8s_namespace,)) as p:
        yield p


def manifest(namespace: str, **search) -> dict:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["metadata"]["namespace"] = namespace
    data["spec"]["search"].update(search)
    return data


def candidate_jobs(cluster: ControlPlane, namespace: str) -> list[dict]:
    jobs = cluster.get(
        "jobs", "-n", namespace, "-l", "app.kubernetes.io/component=merged-evaluation"
    )
    return jobs.get("items", [])


def test_a_run_applied_with_kubectl_ends_with_a_pareto_set(
    k8s_cluster: ControlPlane, k8s_namespace: str, node: NodeSimulator, operator
) -> None:
    node.create_claim(k8s_namespace, CLAIM)
    run = manifest(k8s_namespace)
    k8s_cluster.kubectl("apply", "-f", "-", stdin=json.dumps(run))
    final = wait_for_phase(k8s_cluster, k8s_namespace, "tiny-cpu", RUN_SECONDS)
    assert final["phase"] == "Succeeded", final.get("message")
    budget = run["spec"]["search"]["budget"]
    assert final["finished"] == final["succeeded"] == budget and final["failed"] == 0
    # Merges that an anchor matches or beats are no trade-off and stay off the front; the
    # tiny models can land there every time, and then (only then) the front is empty.
    columns = final["evaluationColumns"]
    scores = [(row[columns.index("f1")], row[columns.index("f2")]) for row in final["evaluations"]]
    anchors_match_all = all((f1 <= 0 and f2 <= 1) or (f1 <= 1 and f2 <= 0) for f1, f2 in scores)
    assert final["paretoSize"] == len(final["pareto"]) >= (0 if anchors_match_all else 1)
    assert len(final["evaluations"]) == budget
    assert {"base", "expert"} == set(final["anchors"])
    # Every row has its cost: the merge timed in the init container, the server's start
    # and the generation in the main one; the run's cost is the rows' sum.
    for row in final["evaluations"]:
        cost = dict(zip(columns, row, strict=True))
        assert cost["answers"] > 0 and cost["outputTokens"] > 0, cost
        assert min(cost["mergeSeconds"], cost["serveSeconds"], cost["generateSeconds"]) > 0, cost
        held = cost["serveSeconds"] + cost["generateSeconds"]  # by resources.gpus: 1
        assert cost["gpuSeconds"] == pytest.approx(held, abs=0.002)
    tokens = sum(row[columns.index("outputTokens")] for row in final["evaluations"])
    assert final["cost"]["outputTokens"] == tokens
    assert final["cost"]["evaluations"] == budget
    assert len(candidate_jobs(k8s_cluster, k8s_namespace)) == budget
    succeeded = next(c for c in final["conditions"] if c["type"] == "Succeeded")
    assert succeeded["status"] == "True"

    table = k8s_cluster.kubectl("get", "pmr", "-n", k8s_namespace).stdout.splitlines()
    assert table[0].split()[:7] == [
        "NAME",
        "PHASE",
        "DONE",
        "BUDGET",
        "PARETO",
        "HYPERVOLUME",
        "AGE",
    ]
    row = table[1].split()
    assert row[:5] == ["tiny-cpu", "Succeeded", str(budget), str(budget), str(len(final["pareto"]))]
    described = k8s_cluster.kubectl("describe", "pmr", "tiny-cpu", "-n", k8s_namespace).stdout
    assert "ControllerStarted" in described


def test_the_api_server_rejects_a_malformed_run_naming_the_field(
    k8s_cluster: ControlPlane, crd, k8s_namespace: str
) -> None:
    run = manifest(k8s_namespace)
    run["spec"]["search"]["budget"] = "many"
    with pytest.raises(KubectlError, match=r"spec\.search\.budget"):
        k8s_cluster.kubectl("apply", "-f", "-", stdin=json.dumps(run))
    run["spec"]["search"]["budget"] = 3
    run["spec"]["merge"]["method"] = "slerp"
    with pytest.raises(KubectlError, match=r"spec\.merge\.method"):
        k8s_cluster.kubectl("apply", "-f", "-", stdin=json.dumps(run))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"batchSize": 9}, "spec.search.batchSize"),
        ({"referencePoint": [-0.2, -0.2, -0.2]}, "spec.search.referencePoint"),
    ],
)
def test_a_run_the_schema_lets_through_ends_failed_with_the_field_named(
    k8s_cluster: ControlPlane, k8s_namespace: str, operator, change: dict, field: str
) -> None:
    k8s_cluster.kubectl("apply", "-f", "-", stdin=json.dumps(manifest(k8s_namespace, **change)))
    final = wait_for_phase(k8s_cluster, k8s_namespace, "tiny-cpu", 60)
    assert final["phase"] == "Failed" and field in final["message"]
    valid = next(c for c in final["conditions"] if c["type"] == "Valid")
    assert valid["status"] == "False" and field in valid["message"]
    # Nothing launched: the only Job is a controller that checks the volume too (made once
    # the run's status says it is refused).
    jobs = wait_until(lambda: k8s_cluster.get("jobs", "-n", k8s_namespace).get("items"), "a Job")
    (job,) = jobs
    assert "--check-only" in job["spec"]["template"]["spec"]["containers"][0]["args"]
    events = k8s_cluster.kubectl("get", "events", "-n", k8s_namespace).stdout
    assert "InvalidSpec" in events


def test_a_killed_controller_is_restarted_and_counts_every_evaluation_once(
    k8s_cluster: ControlPlane, k8s_namespace: str, node: NodeSimulator, operator
) -> None:
    node.create_claim(k8s_namespace, CLAIM)
    run = manifest(k8s_namespace, budget=4)
    k8s_cluster.kubectl("apply", "-f", "-", stdin=json.dumps(run))
    wait_until(
        lambda: run_status(k8s_cluster, k8s_namespace, "tiny-cpu").get("succeeded", 0) >= 1,
        "a first evaluation",
        timeout=RUN_SECONDS,
        every=2,
    )
    pattern = f"paretomerge controller --run {k8s_namespace}/tiny-cpu"
    killed = subprocess.run(["pkill", "-KILL", "-f", pattern], check=False)
    assert killed.returncode == 0, "no controller process to kill"
    time.sleep(1)
    final = wait_for_phase(k8s_cluster, k8s_namespace, "tiny-cpu", RUN_SECONDS)
    assert final["phase"] == "Succeeded", final.get("message")
    assert final["succeeded"] == 4 and len(final["evaluations"]) == 4
    jobs = candidate_jobs(k8s_cluster, k8s_namespace)
    assert sorted(j["metadata"]["labels"]["paretomerge.io/task"] for j in jobs) == [
        "c0001",
        "c0002",
        "c0003",
        "c0004",
    ]
    controller = k8s_cluster.get("job", "tiny-cpu-controller", "-n", k8s_namespace)
    assert controller["status"].get("failed", 0) >= 1  # the killed pod, replaced
