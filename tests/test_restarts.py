"""A run on the real control plane: the preflight in the controller pod, a retry asked by
annotation, a budget raised after success.

Candidates are fake (``fake_tasks.py`` behind a ``paretomerge`` shim on the node
simulator's PATH); the operator, the controller pods (and their preflight), the Job
controller and the scheduler are the real ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from builders import write_numeric_benchmark
from fake_tasks import cluster_run
from k8s.control_plane import ControlPlane, wait_until
from k8s.node_simulator import NodeSimulator
from k8s.operator_process import run_status, wait_for_phase
from test_faults import apply, crd, jobs_of, node, operator, rows, volume  # noqa: F401

from paretomerge.k8s.constants import RETRY_ANNOTATION
from paretomerge.k8s.objects import controller_name

pytest_plugins = ["k8s.fixtures"]
pytestmark = [pytest.mark.k8s, pytest.mark.slow]

RUN = "restarted"
RUN_SECONDS = 420


def condition_of(status: dict, kind: str) -> dict:
    return next(c for c in status["conditions"] if c["type"] == kind)


def events(cluster: ControlPlane, namespace: str, reason: str) -> list[str]:
    found = cluster.get("events", "-n", namespace, "--field-selector", f"reason={reason}")
    return [event["message"] for event in found.get("items", [])]


def test_preflight_then_a_retry_by_annotation_then_a_raised_budget(
    k8s_cluster: ControlPlane,
    k8s_namespace: str,
    node: NodeSimulator,  # noqa: F811
    operator,  # noqa: F811
    volume: Path,  # noqa: F811
) -> None:
    def status() -> dict:
        return run_status(k8s_cluster, k8s_namespace, RUN)

    data = volume / "data" / "one.jsonl"
    data.unlink()
    apply(k8s_cluster, cluster_run(k8s_namespace, RUN, budget=2, parallelism=1))
    failed = wait_for_phase(k8s_cluster, k8s_namespace, RUN, RUN_SECONDS)
    assert failed["phase"] == "Failed", failed.get("message")
    preflight = condition_of(failed, "Preflight")
    assert preflight["status"] == "False" and preflight["reason"] == "ProblemsFound"
    assert (
        "spec.objectives.benchmarks[0].path: data/one.jsonl: no such file" in (preflight["message"])
    )
    # Nothing launched: the controller's Job is the run's only one.
    launched = [job["metadata"]["name"] for job in jobs_of(k8s_cluster, k8s_namespace, RUN, "")]
    assert launched == [controller_name(RUN)]

    write_numeric_benchmark(data)  # the fix
    k8s_cluster.kubectl("annotate", "pmr", RUN, "-n", k8s_namespace, f"{RETRY_ANNOTATION}=1")
    wait_until(lambda: status().get("phase") != "Failed", "the retry to start", timeout=60)
    succeeded = wait_for_phase(k8s_cluster, k8s_namespace, RUN, RUN_SECONDS)
    assert succeeded["phase"] == "Succeeded", succeeded.get("message")
    assert succeeded["finished"] == 2
    assert condition_of(succeeded, "Preflight")["status"] == "True"
    assert condition_of(succeeded, "Failed")["status"] == "False"

    def patch_budget(budget: int) -> None:
        patch = json.dumps({"spec": {"search": {"budget": budget}}})
        k8s_cluster.kubectl("patch", "pmr", RUN, "-n", k8s_namespace, "--type=merge", "-p", patch)

    patch_budget(3)
    wait_until(lambda: status().get("phase") != "Succeeded", "the phase to leave Succeeded", 60)
    assert condition_of(status(), "Running")["status"] == "True"
    final = wait_for_phase(k8s_cluster, k8s_namespace, RUN, RUN_SECONDS)
    assert final["phase"] == "Succeeded", final.get("message")
    assert final["finished"] == final["succeeded"] == 3
    before, after = rows(succeeded), rows(final)
    assert {c: after[c] for c in before} == before  # nothing evaluated again
    assert len(jobs_of(k8s_cluster, k8s_namespace, RUN)) == 3  # one Job per candidate

    # A budget that asks for no more, and a retry of a run that has not failed: refused, said.
    patch_budget(2)
    k8s_cluster.kubectl(
        "annotate", "pmr", RUN, "-n", k8s_namespace, f"{RETRY_ANNOTATION}=2", "--overwrite"
    )
    wait_until(
        lambda: (
            events(k8s_cluster, k8s_namespace, "BudgetNotRaised")
            and events(k8s_cluster, k8s_namespace, "RetryRefused")
        ),
        "both refusals as Events",
        timeout=60,
    )
    assert (
        "has succeeded with 3 candidates"
        in events(k8s_cluster, k8s_namespace, "BudgetNotRaised")[0]
    )
    assert status()["phase"] == "Succeeded"


COSTLY = "costly"
# The fake's evaluations (30 questions): the anchors take 600 and 6,600 output tokens, a
# candidate 600-6,600 as its weights rise.
FIRST_TOKENS, RAISED_TOKENS = 15_000, 22_000


def test_a_raised_cost_budget_continues_a_succeeded_run(
    k8s_cluster: ControlPlane,
    k8s_namespace: str,
    node: NodeSimulator,  # noqa: F811
    operator,  # noqa: F811
) -> None:
    def status() -> dict:
        return run_status(k8s_cluster, k8s_namespace, COSTLY)

    def patch_cost_budget(tokens: int) -> None:
        patch = json.dumps({"spec": {"search": {"costBudget": {"outputTokens": tokens}}}})
        k8s_cluster.kubectl(
            "patch", "pmr", COSTLY, "-n", k8s_namespace, "--type=merge", "-p", patch
        )

    def assert_within_one_candidate(final: dict, budget: int) -> None:
        used = final["costBudget"]
        assert (used["unit"], used["budget"]) == ("outputTokens", budget)
        largest = max(int(row["outputTokens"]) for row in rows(final).values())
        assert budget - largest < used["spent"] <= budget + largest

    run = cluster_run(k8s_namespace, COSTLY, budget=2, parallelism=1)
    run["spec"]["search"]["costBudget"] = {"outputTokens": FIRST_TOKENS}
    apply(k8s_cluster, run)
    first = wait_for_phase(k8s_cluster, k8s_namespace, COSTLY, RUN_SECONDS)
    assert first["phase"] == "Succeeded", first.get("message")
    assert_within_one_candidate(first, FIRST_TOKENS)

    patch_cost_budget(RAISED_TOKENS)
    wait_until(lambda: status().get("phase") != "Succeeded", "the phase to leave Succeeded", 60)
    # (The restarted controller must not show the checkpoint's Succeeded again before it
    # searches: wait_for_phase would take that for the end.)
    final = wait_for_phase(k8s_cluster, k8s_namespace, COSTLY, RUN_SECONDS)
    assert final["phase"] == "Succeeded", final.get("message")
    assert_within_one_candidate(final, RAISED_TOKENS)
    before, after = rows(first), rows(final)
    assert len(after) > len(before)
    assert {c: after[c] for c in before} == before  # nothing evaluated again
    assert len(jobs_of(k8s_cluster, k8s_namespace, COSTLY)) == len(after)  # a Job each

    # A budget not above what it spent: refused, said.
    patch_cost_budget(10_000)
    wait_until(
        lambda: events(k8s_cluster, k8s_namespace, "CostBudgetNotRaised"),
        "the refusal as an Event",
        timeout=60,
    )
    assert (
        "is continued only by a budget above that"
        in (events(k8s_cluster, k8s_namespace, "CostBudgetNotRaised")[0])
    )
    assert status()["phase"] == "Succeeded"
