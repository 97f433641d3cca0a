"""Faults on the real control plane: nothing loses a finished evaluation, runs a candidate
twice by accident, or leaves work running after its run is gone.

Candidates are fake (``fake_tasks.py`` behind a ``paretomerge`` shim on the node
simulator's PATH: synthetic scores in seconds, failures injected by ``FAKE_FAIL``); the
operator, the controller pods, the Job controller, the scheduler and the garbage collector
are the real ones. Each test checks one run (or two) for several faults at once.
"""

from __future__ import annotations

import json
import os
import random
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from builders import write_numeric_benchmark
from fake_tasks import cluster_run, write_paretomerge_shim
from k8s.control_plane import ControlPlane, wait_until
from k8s.node_simulator import NodeSimulator
from k8s.operator_process import OperatorProcess, install_crd, run_status, wait_for_phase
from tiny_models import link_tree

from paretomerge.k8s.constants import API_GROUP, PLURAL, VERSION
from paretomerge.k8s.status import condition, merge_conditions

pytest_plugins = ["k8s.fixtures"]
pytestmark = [pytest.mark.k8s, pytest.mark.slow]

CLAIM = "paretomerge-models"
RUN_SECONDS = 420
# A deleted run's Jobs and Pods are all gone within this bound (the garbage collector
# deletes the Jobs, then their Pods; the node simulator kills their processes).
DELETION_SECONDS = 30
CONTROLLER_KILLS = 3
EVALUATION = "app.kubernetes.io/component=merged-evaluation"


@pytest.fixture(scope="module")
def crd(k8s_cluster: ControlPlane) -> None:
    install_crd(k8s_cluster)


@pytest.fixture
def volume(tmp_path: Path, models: dict) -> Path:
    """The run's volume: a tiny base and expert under models/ (the fake evaluates neither,
    the profile task reads both) and the benchmark's data (the preflight reads it)."""
    root = tmp_path / "volume"
    (root / "models").mkdir(parents=True)
    link_tree(models["qwen3"]["base"], root / "models" / "base")
    link_tree(models["qwen3"]["experts"][0], root / "models" / "expert")
    write_numeric_benchmark(root / "data" / "one.jsonl")
    return root


@pytest.fixture
def node(k8s_cluster: ControlPlane, k8s_namespace: str, tmp_path: Path, volume: Path, monkeypatch):
    shim = write_paretomerge_shim(tmp_path / "shim")
    monkeypatch.setenv("PATH", f"{shim}{os.pathsep}{os.environ['PATH']}")
    with NodeSimulator(k8s_cluster, tmp_path / "node", claims={CLAIM: volume}) as node:
        node.create_claim(k8s_namespace, CLAIM)
        yield node


@pytest.fixture
def operator(k8s_cluster: ControlPlane, crd, k8s_namespace: str, tmp_path: Path) -> Iterator:
    # Room for the kills below on top of an unlucky restart.
    settings = {"PARETOMERGE_CONTROLLER_RESTARTS": str(CONTROLLER_KILLS + 3)}
    log_file = tmp_path / "operator.log"
    with OperatorProcess.standalone(k8s_cluster, log_file, (k8s_namespace,), settings) as process:
        yield process


def apply(cluster: ControlPlane, manifest: dict) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))


def jobs_of(cluster: ControlPlane, namespace: str, run: str, selector: str = EVALUATION) -> list:
    labels = f"{selector},paretomerge.io/run={run}" if selector else f"paretomerge.io/run={run}"
    return cluster.get("jobs", "-n", namespace, "-l", labels).get("items", [])


def rows(final: dict) -> dict[str, dict]:
    """The status' evaluation rows by candidate id, as dicts of their columns."""
    return {
        row[0]: dict(zip(final["evaluationColumns"], row, strict=True))
        for row in final["evaluations"]
    }


def results(volume: Path, final: dict) -> dict[str, dict]:
    data = json.loads((volume / final["runDirectory"] / "results.json").read_text())
    return {c["id"]: c for c in data["candidates"]}


def pods_of(node: NodeSimulator, namespace: str, run: str, kind: str = r"c\d{4}-a\d+") -> list:
    pattern = re.compile(rf"{re.escape(run)}-{kind}-[a-z0-9]{{5}}$")
    return [pod for ns, pod in node.running_pods() if ns == namespace and pattern.match(pod)]


def controller_end(cluster: ControlPlane, namespace: str, run: str) -> dict:
    """Wait until the run's controller Job has succeeded (its pod ends once the status
    says the outcome); the Job's status."""

    def job_status() -> dict:
        return cluster.get("job", f"{run}-controller", "-n", namespace)["status"]

    wait_until(lambda: job_status().get("succeeded"), f"the controller of {run} to end", 60)
    return job_status()


def pod_states(cluster: ControlPlane, namespace: str, job: str) -> list:
    """The container states of a Job's pods (what a failed assertion shows)."""
    pods = cluster.get("pods", "-n", namespace, "-l", f"job-name={job}").get("items", [])
    return [
        (p["metadata"]["name"], [s.get("state") for s in p["status"].get("containerStatuses", [])])
        for p in pods
    ]


class PodSampler(threading.Thread):
    """Counts, every 0.2 s, the candidate and controller pods of a run whose processes
    run: the most seen at once, and the most before ``mark()`` was called."""

    def __init__(self, node: NodeSimulator, namespace: str, run: str):
        super().__init__(daemon=True)
        self.node, self.namespace, self.run_name = node, namespace, run
        self.most_candidates = self.most_before_mark = self.most_controllers = 0
        self.marked = False
        self.stopping = threading.Event()

    def mark(self) -> None:
        self.marked = True

    def run(self) -> None:
        while not self.stopping.wait(0.2):
            candidates = len(pods_of(self.node, self.namespace, self.run_name))
            controllers = len(pods_of(self.node, self.namespace, self.run_name, "controller"))
            self.most_candidates = max(self.most_candidates, candidates)
            if not self.marked:
                self.most_before_mark = self.most_candidates
            self.most_controllers = max(self.most_controllers, controllers)

    def stop(self) -> None:
        self.stopping.set()
        self.join()


class StatusWriter(threading.Thread):
    """Another writer of the run's status, as fast as it can: a read-modify-write of its
    own condition against the resourceVersion it read (a conflict: read again, retry),
    then a write against a resourceVersion a few writes old, which must be refused."""

    def __init__(self, cluster: ControlPlane, namespace: str, name: str):
        from kubernetes import client

        super().__init__(daemon=True)
        self.api = client.CustomObjectsApi(cluster.api_client())
        self.namespace, self.name = namespace, name
        self.written = self.conflicts = self.stale_refused = self.stale_accepted = 0
        self.stopping = threading.Event()

    def _patch(self, resource_version: str, status: dict) -> bool:
        from kubernetes.client.exceptions import ApiException

        body = {"metadata": {"resourceVersion": resource_version}, "status": status}
        try:
            self.api.patch_namespaced_custom_object_status(
                API_GROUP, VERSION, self.namespace, PLURAL, self.name, body
            )
        except ApiException as error:
            if error.status != 409:
                raise
            return False
        return True

    def run(self) -> None:
        stale: str | None = None
        while not self.stopping.wait(0.1):
            run = self.api.get_namespaced_custom_object(
                API_GROUP, VERSION, self.namespace, PLURAL, self.name
            )
            version = run["metadata"]["resourceVersion"]
            update = condition("Audited", True, "Audit", f"audit {self.written + 1}")
            conditions = merge_conditions(run.get("status", {}).get("conditions", []), [update])
            if self._patch(version, {"conditions": conditions}):
                self.written += 1
            else:
                self.conflicts += 1
            if stale is not None and stale != version:
                if self._patch(stale, {"audit": "stale"}):
                    self.stale_accepted += 1
                else:
                    self.stale_refused += 1
            stale = version

    def stop(self) -> None:
        self.stopping.set()
        self.join()


def test_controller_kills_failing_candidates_and_another_status_writer_lose_nothing(
    k8s_cluster: ControlPlane,
    k8s_namespace: str,
    node: NodeSimulator,
    operator,
    volume: Path,
    monkeypatch,
) -> None:
    """20% of the candidates fail for good (a merge error, an evaluation crash), two more
    once (a crash; a hang past ``activeDeadlineSeconds``); the controller pod is killed 3
    times at random moments; another writer keeps writing the status meanwhile."""
    monkeypatch.setenv("FAKE_SECONDS", "2")
    monkeypatch.setenv("FAKE_FAIL", "c0002:0:crash,c0004:*:merge,c0006:0:hang,c0008:*:crash")
    name, budget = "faulty", 10
    run = cluster_run(
        k8s_namespace,
        name,
        budget,
        parallelism=2,
        candidateRetries=1,
        maxFailedCandidates=2,
        activeDeadlineSeconds=60,
    )
    apply(k8s_cluster, run)
    writer = StatusWriter(k8s_cluster, k8s_namespace, name)
    wait_until(lambda: run_status(k8s_cluster, k8s_namespace, name).get("phase"), "a first status")
    writer.start()
    moments = random.Random(20261127)
    kills = []
    try:
        for kill in range(CONTROLLER_KILLS):
            # The first kill while profiling or anchoring, the others mid-search.
            evaluations = 3 * kill
            wait_until(
                lambda n=evaluations: (
                    run_status(k8s_cluster, k8s_namespace, name).get("finished", 0) >= n
                ),
                f"{evaluations} evaluations",
                timeout=RUN_SECONDS,
            )
            pod = wait_until(
                lambda: [
                    pod
                    for pod in pods_of(node, k8s_namespace, name, "controller")
                    if pod not in {killed for killed, _ in kills}
                ],
                "a running controller pod not killed yet",
                timeout=180,
            )[0]
            time.sleep(moments.uniform(1.0, 10.0))
            assert run_status(k8s_cluster, k8s_namespace, name).get("phase") not in (
                "Succeeded",
                "Failed",
            ), f"the run ended before kill {kill + 1}"
            assert node.kill_container(k8s_namespace, pod, "controller"), pod_states(
                k8s_cluster, k8s_namespace, f"{name}-controller"
            )
            kills.append((pod, run_status(k8s_cluster, k8s_namespace, name).get("finished")))
        final = wait_for_phase(k8s_cluster, k8s_namespace, name, RUN_SECONDS)
    finally:
        writer.stop()
    print("kills (pod, evaluations finished then):", kills)
    assert final["phase"] == "Succeeded", final.get("message")

    # The budget is spent: 8 evaluated, 2 failed for good (20%), each attempt one Job.
    by_id = rows(final)
    assert len(by_id) == final["finished"] == budget
    assert (final["succeeded"], final["failed"]) == (8, 2)
    retried = {"c0002", "c0004", "c0006", "c0008"}
    assert {i: r["attempts"] for i, r in by_id.items()} == {
        f"c{k:04d}": 2 if f"c{k:04d}" in retried else 1 for k in range(1, budget + 1)
    }
    assert {i for i, r in by_id.items() if r["status"] == "failed"} == {"c0004", "c0008"}
    jobs = jobs_of(k8s_cluster, k8s_namespace, name)
    created = sorted(
        (
            j["metadata"]["labels"]["paretomerge.io/task"],
            j["metadata"]["labels"]["paretomerge.io/attempt"],
        )
        for j in jobs
    )
    expected = sorted((i, str(a)) for i, r in by_id.items() for a in range(r["attempts"]))
    assert created == expected  # a Job per attempt recorded: none lost, none repeated
    for job in jobs:  # and each Job ran one pod (deleted by the Job controller at its deadline)
        ran = job["status"].get("succeeded", 0) + job["status"].get("failed", 0)
        reasons = [c.get("reason") for c in job["status"].get("conditions", [])]
        assert ran == 1 or (ran == 0 and reasons == ["DeadlineExceeded"]), job["status"]

    # Every failure is recorded with its reason.
    reasons = {i: c["reasons"] for i, c in results(volume, final).items() if c["reasons"]}
    assert set(reasons) == retried
    assert all("injected merge error" in r for r in reasons["c0004"])
    assert all("injected crash" in r for r in reasons["c0008"] + reasons["c0002"])
    assert "DeadlineExceeded" in reasons["c0006"][0]

    # The kills: three controller pods failed, a fourth finished the run.
    assert controller_end(k8s_cluster, k8s_namespace, name).get("failed") == CONTROLLER_KILLS

    # The other writer's last write survived the controller's, and stale writes were refused
    # (read again: the writer may have written once more after `final` was read).
    conditions = run_status(k8s_cluster, k8s_namespace, name)["conditions"]
    audited = next(c for c in conditions if c["type"] == "Audited")
    assert writer.written > 0 and audited["message"] == f"audit {writer.written}"
    assert writer.stale_refused > 0 and writer.stale_accepted == 0
    print(f"status writer: {writer.written} writes, {writer.conflicts} conflicts retried")


def test_past_max_failed_candidates_and_after_deletion_no_job_or_pod_is_left(
    k8s_cluster: ControlPlane, k8s_namespace: str, node: NodeSimulator, operator, monkeypatch
) -> None:
    """Two runs at once: ``doomed`` fails past ``maxFailedCandidates`` with candidates
    still running; ``deleted`` is deleted while its candidates run."""
    monkeypatch.setenv("FAKE_SECONDS", "1")
    monkeypatch.setenv(
        "FAKE_FAIL",
        "doomed/c000[1456]:*:hang,doomed/c0002:*:crash,doomed/c0003:*:merge,deleted/c*:*:hang",
    )
    doomed = cluster_run(k8s_namespace, "doomed", 6, 3, candidateRetries=0, maxFailedCandidates=1)
    deleted = cluster_run(k8s_namespace, "deleted", 20, 3)
    apply(k8s_cluster, doomed)
    apply(k8s_cluster, deleted)

    wait_until(
        lambda: len(pods_of(node, k8s_namespace, "deleted")) == 3,
        "three running candidates of run deleted",
        timeout=RUN_SECONDS,
    )
    k8s_cluster.kubectl("delete", "pmr", "deleted", "-n", k8s_namespace, "--wait=false")
    started = time.monotonic()
    wait_until(
        lambda: (
            not jobs_of(k8s_cluster, k8s_namespace, "deleted", "")
            and not k8s_cluster.get(
                "pods", "-n", k8s_namespace, "-l", "paretomerge.io/run=deleted"
            ).get("items")
            and not pods_of(node, k8s_namespace, "deleted", ".+")
        ),
        "every Job and Pod of the deleted run to be gone",
        timeout=DELETION_SECONDS,
    )
    print(f"deleted run: Jobs and Pods gone after {time.monotonic() - started:.1f} s")

    final = wait_for_phase(k8s_cluster, k8s_namespace, "doomed", RUN_SECONDS)
    assert final["phase"] == "Failed"
    assert "more than maxFailedCandidates (1)" in final["message"], final["message"]
    by_id = rows(final)
    assert {i: r["status"] for i, r in by_id.items()} == {"c0002": "failed", "c0003": "failed"}
    # The candidates still running when the run failed are deleted, Jobs and Pods.
    wait_until(
        lambda: not pods_of(node, k8s_namespace, "doomed"),
        "no running candidate pod of run doomed",
        timeout=DELETION_SECONDS,
    )
    left = {
        j["metadata"]["labels"]["paretomerge.io/task"]
        for j in jobs_of(k8s_cluster, k8s_namespace, "doomed")
    }
    assert left == {"c0002", "c0003"}, left
    # A failed run is an outcome: its controller ends without being restarted.
    assert controller_end(k8s_cluster, k8s_namespace, "doomed").get("failed", 0) == 0


def test_edits_operator_restart_and_api_server_restart_mid_run(
    k8s_cluster: ControlPlane,
    k8s_namespace: str,
    node: NodeSimulator,
    operator,
    volume: Path,
    monkeypatch,
) -> None:
    """Budget and parallelism raised while the run goes on; the operator restarted; the
    API server and etcd stopped for a few seconds and started again (same data)."""
    monkeypatch.setenv("FAKE_SECONDS", "4")
    name = "edited"
    apply(k8s_cluster, cluster_run(k8s_namespace, name, budget=3, parallelism=1))
    sampler = PodSampler(node, k8s_namespace, name)
    sampler.start()
    try:
        wait_until(
            lambda: run_status(k8s_cluster, k8s_namespace, name).get("finished", 0) >= 1,
            "a first evaluation",
            timeout=RUN_SECONDS,
        )
        # The seed is what the results mean: reported, and not applied.
        patch = {"spec": {"search": {"budget": 7, "seed": 5}, "execution": {"parallelism": 3}}}
        k8s_cluster.kubectl(
            "patch", "pmr", name, "-n", k8s_namespace, "--type=merge", "-p", json.dumps(patch)
        )
        sampler.mark()
        operator.restart()
        wait_until(
            lambda: len(pods_of(node, k8s_namespace, name)) >= 2,
            "more candidates running at once",
            timeout=120,
        )
        k8s_cluster.restart("kube-apiserver", "etcd", down_seconds=3)
        final = wait_for_phase(k8s_cluster, k8s_namespace, name, RUN_SECONDS)
    finally:
        sampler.stop()
    assert final["phase"] == "Succeeded", final.get("message")
    assert final["finished"] == final["succeeded"] == len(final["evaluations"]) == 7
    assert sampler.most_before_mark == 1 and sampler.most_candidates == 3
    assert sampler.most_controllers == 1  # the restarted operator made no second one
    run = k8s_cluster.get("pmr", name, "-n", k8s_namespace)
    assert final["observedGeneration"] == run["metadata"]["generation"] == 2
    spec_applied = next(c for c in final["conditions"] if c["type"] == "SpecApplied")
    assert (
        spec_applied["status"] == "False"
        and "spec.search.seed: was 42 " in (spec_applied["message"])
    )
    # No status update was lost: the status says what the checkpoint on the volume says.
    checkpoint = json.loads((volume / final["runDirectory"] / "checkpoint.json").read_text())
    assert [row[0] for row in final["evaluations"]] == [c["id"] for c in checkpoint["candidates"]]
    assert checkpoint["optimizer"]["config"]["seed"] == 42
    assert len(jobs_of(k8s_cluster, k8s_namespace, name)) == 7
    assert (
        len(jobs_of(k8s_cluster, k8s_namespace, name, "app.kubernetes.io/component=controller"))
        == 1
    )


def test_a_screened_candidates_job_ends_and_the_next_candidate_takes_its_slot(
    k8s_cluster: ControlPlane,
    k8s_namespace: str,
    node: NodeSimulator,
    operator,
    volume: Path,
    monkeypatch,
) -> None:
    """One candidate at a time, screened: c0001 and c0002 (every weight 0.55, 0.8) finish,
    c0003 scores like the base at the expert's length, clearly dominated after its first
    stage: the controller stops it there, its Job is deleted, c0004 runs in its slot."""
    monkeypatch.setenv("FAKE_STAGE_SECONDS", "8")
    monkeypatch.setenv("FAKE_DOMINATED", "c0003")
    name = "screened"
    run = cluster_run(k8s_namespace, name, budget=4, parallelism=1)
    run["spec"]["search"].update(initialPoints=2, initialSolutions=[0.55, 0.8])
    run["spec"]["evaluation"]["screening"] = {"stages": [0.25, 0.5, 1.0], "confidence": 0.9}
    apply(k8s_cluster, run)
    final = wait_for_phase(k8s_cluster, k8s_namespace, name, RUN_SECONDS)
    assert final["phase"] == "Succeeded", final.get("message")
    by_id = rows(final)
    assert {i: r["status"] for i, r in by_id.items()} == {
        "c0001": "succeeded",
        "c0002": "succeeded",
        "c0003": "screened",
        "c0004": by_id["c0004"]["status"],
    }
    assert by_id["c0004"]["status"] in ("succeeded", "screened")
    assert (final["finished"], final["screened"]) == (
        4,
        1 + (by_id["c0004"]["status"] == "screened"),
    )
    # Stopped before its last stage: after the first, or the second when the controller,
    # which looks between its polls, saw the first one late.
    stages = volume / final["runDirectory"] / "candidates" / "c0003" / "eval" / "stages"
    asked = sorted(path.name for path in stages.iterdir())
    assert asked in (["stage-1.json"], ["stage-1.json", "stage-2.json"]), asked
    # Its Job was deleted (no pod of it is left) and no attempt of it ran again.
    assert "c0003" not in {
        j["metadata"]["labels"]["paretomerge.io/task"]
        for j in jobs_of(k8s_cluster, k8s_namespace, name)
    }
    assert not pods_of(node, k8s_namespace, name, r"c0003-a\d+")
    assert by_id["c0003"]["attempts"] == 1
    assert "c0003" not in {point["id"] for point in final["pareto"]}
