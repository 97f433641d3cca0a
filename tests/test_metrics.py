"""The operator's metrics, fed through its kopf handlers with run bodies and scraped."""

from __future__ import annotations

from importlib.metadata import version
from types import SimpleNamespace

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from paretomerge.k8s.status import EVALUATION_COLUMNS
from paretomerge_operator.handlers.progress import run_changed
from paretomerge_operator.handlers.runs import spec_edited
from paretomerge_operator.metrics import OperatorMetrics


def row(
    candidate: str,
    status: str,
    merge=30.0,
    evaluate=600.0,
    proposal=1.5,
    attempts=1,
    tokens=None,
    serve=None,
):
    """A status row; a succeeded one costs ``tokens`` (default 1000) and a server start of
    ``serve`` seconds (default 40) on one GPU."""
    succeeded = status == "succeeded"
    tokens = tokens if tokens is not None else 1000 if succeeded else None
    serve = serve if serve is not None else 40.0 if succeeded else None
    values = {
        "id": candidate,
        "status": status,
        "f1": 0.5 if status == "succeeded" else None,
        "f2": 0.4 if status == "succeeded" else None,
        "mergeSeconds": merge,
        "evaluateSeconds": evaluate,
        "proposalSeconds": proposal,
        "attempts": attempts,
        "outputTokens": tokens,
        "serveSeconds": serve,
        "gpuSeconds": evaluate if succeeded else None,
    }
    return [values.get(column) for column in EVALUATION_COLUMNS]


def body(name: str, phase: str, rows: list, namespace: str = "team-a", **status) -> dict:
    return {
        "metadata": {"namespace": namespace, "name": name},
        "spec": {"search": {"budget": 88, "validation": {"budget": 8}}},
        "status": {
            "phase": phase,
            "finished": len(rows),
            "running": 2,
            "paretoSize": 3,
            "hypervolume": 0.42,
            "evaluations": rows,
            **status,
        },
    }


@pytest.fixture
def memo() -> SimpleNamespace:
    return SimpleNamespace(metrics=OperatorMetrics())


def scrape(memo: SimpleNamespace) -> dict[tuple[str, frozenset], float]:
    """Every sample of the registry's exposition, by name and labels."""
    text = generate_latest(memo.metrics.registry).decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def labels(**values: str) -> frozenset:
    return frozenset(values.items())


def test_names_follow_the_conventions(memo) -> None:
    run_changed(body=body("r", "Running", [row("c0001", "succeeded")]), type="ADDED", memo=memo)
    names = {family.name for family in memo.metrics.registry.collect()}
    ours = {name for name in names if name.startswith("paretomerge_")}
    assert ours == {
        "paretomerge_build",
        "paretomerge_runs",
        "paretomerge_evaluations",
        "paretomerge_run_evaluations_finished",
        "paretomerge_run_evaluations_running",
        "paretomerge_run_budget_evaluations",
        "paretomerge_run_hypervolume",
        "paretomerge_run_pareto_size",
        "paretomerge_run_validations_finished",
        "paretomerge_run_validations_running",
        "paretomerge_run_budget_validations",
        "paretomerge_run_cost_budget",
        "paretomerge_run_cost_spent",
        "paretomerge_candidate_duration_seconds",
        "paretomerge_proposal_duration_seconds",
        "paretomerge_reconcile_errors",
        "paretomerge_output_tokens",
        "paretomerge_gpu_seconds",
    }
    samples = scrape(memo)
    assert samples[("paretomerge_build_info", labels(version=version("paretomerge")))] == 1
    for (name, label_set), _ in samples.items():
        assert not any(value.startswith("c000") for _, value in label_set), name


def test_rows_are_counted_once_across_repeated_events(memo) -> None:
    first = [row("c0001", "succeeded"), row("c0002", "failed", evaluate=None, attempts=2)]
    for _ in range(3):  # the same object again: a resync, a watch restart
        run_changed(body=body("r", "Running", first), type="MODIFIED", memo=memo)
    third = row("c0003", "succeeded", merge=90.0, evaluate=4000.0, attempts=3, tokens=2500)
    # A screened candidate: its tokens count, as any evaluation's.
    fourth = row("c0004", "screened", merge=None, evaluate=None, proposal=None, tokens=300)
    later = [*first, third, fourth]
    run_changed(body=body("r", "Running", later), type="MODIFIED", memo=memo)
    later = body("r", "Running", later, validationsFinished=2, validationsRunning=1)
    run_changed(body=later, type=None, memo=memo)  # initial listing

    samples = scrape(memo)
    run = {"namespace": "team-a", "run": "r"}
    total = "paretomerge_evaluations_total"
    assert samples[(total, labels(**run, outcome="succeeded"))] == 2
    assert samples[(total, labels(**run, outcome="failed"))] == 1
    assert samples[(total, labels(**run, outcome="screened"))] == 1
    assert samples[(total, labels(**run, outcome="retried"))] == 1 + 2
    duration = "paretomerge_candidate_duration_seconds"
    assert samples[(f"{duration}_count", labels(**run, step="merge"))] == 3
    assert samples[(f"{duration}_count", labels(**run, step="evaluate"))] == 2
    assert samples[(f"{duration}_sum", labels(**run, step="evaluate"))] == 4600.0
    assert samples[(f"{duration}_bucket", labels(**run, step="merge", le="60.0"))] == 2
    assert samples[("paretomerge_proposal_duration_seconds_count", labels(**run))] == 3
    # The cost: counted once per row, as the rows say.
    assert samples[(f"{duration}_count", labels(**run, step="serve"))] == 2
    assert samples[(f"{duration}_sum", labels(**run, step="serve"))] == 80.0
    assert samples[("paretomerge_output_tokens_total", labels(**run))] == 1000 + 2500 + 300
    assert samples[("paretomerge_gpu_seconds_total", labels(**run))] == 600.0 + 4000.0
    assert samples[("paretomerge_run_evaluations_finished", labels(**run))] == 4
    assert samples[("paretomerge_run_budget_evaluations", labels(**run))] == 88
    assert samples[("paretomerge_run_hypervolume", labels(**run))] == 0.42
    assert samples[("paretomerge_run_pareto_size", labels(**run))] == 3
    # validations apart from the search's budget
    assert samples[("paretomerge_run_validations_finished", labels(**run))] == 2
    assert samples[("paretomerge_run_validations_running", labels(**run))] == 1
    assert samples[("paretomerge_run_budget_validations", labels(**run))] == 8


def test_runs_by_phase_follow_transitions_and_deletion(memo) -> None:
    run_changed(body=body("a", "Pending", []), type="ADDED", memo=memo)
    run_changed(body=body("b", "Running", []), type="ADDED", memo=memo)
    run_changed(body=body("a", "Running", []), type="MODIFIED", memo=memo)
    run_changed(body=body("c", "Running", [], namespace="team-b"), type="ADDED", memo=memo)
    samples = scrape(memo)
    assert samples[("paretomerge_runs", labels(namespace="team-a", phase="Pending"))] == 0
    assert samples[("paretomerge_runs", labels(namespace="team-a", phase="Running"))] == 2
    assert samples[("paretomerge_runs", labels(namespace="team-b", phase="Running"))] == 1

    run_changed(body=body("b", "Succeeded", []), type="MODIFIED", memo=memo)
    run_changed(body=body("b", "Succeeded", []), type="DELETED", memo=memo)
    samples = scrape(memo)
    assert samples[("paretomerge_runs", labels(namespace="team-a", phase="Running"))] == 1
    assert samples[("paretomerge_runs", labels(namespace="team-a", phase="Succeeded"))] == 0


def test_a_deleted_run_loses_its_series_and_counts_anew_if_recreated(memo) -> None:
    rows = [row("c0001", "succeeded", attempts=2)]
    run_changed(body=body("r", "Running", rows), type="MODIFIED", memo=memo)
    run_changed(body=body("keep", "Running", rows), type="MODIFIED", memo=memo)
    run_changed(body=body("r", "Running", rows), type="DELETED", memo=memo)
    remaining = {label_set for _, label_set in scrape(memo)}
    assert not any(("run", "r") in label_set for label_set in remaining)
    assert any(("run", "keep") in label_set for label_set in remaining)

    run_changed(body=body("r", "Running", rows), type="ADDED", memo=memo)
    key = (
        "paretomerge_evaluations_total",
        labels(namespace="team-a", run="r", outcome="succeeded"),
    )
    assert scrape(memo)[key] == 1


def test_a_status_without_rows_or_phase_sets_the_gauges_only(memo) -> None:
    empty = {"metadata": {"namespace": "n", "name": "r"}, "spec": {}, "status": {}}
    run_changed(body=empty, type="ADDED", memo=memo)
    overflow = body("r", "Running", [], evaluations=None, evaluationsIn="runs/r/results.json")
    run_changed(body=overflow, type="MODIFIED", memo=memo)
    samples = scrape(memo)
    assert (
        samples[("paretomerge_run_evaluations_finished", labels(namespace="team-a", run="r"))] == 0
    )
    # Counters and histograms start at 0, so a first failure shows in increase().
    run = {"namespace": "team-a", "run": "r"}
    for outcome in ("succeeded", "screened", "failed", "retried"):
        assert samples[("paretomerge_evaluations_total", labels(**run, outcome=outcome))] == 0
    for step in ("merge", "serve", "evaluate"):
        duration = "paretomerge_candidate_duration_seconds_count"
        assert samples[(duration, labels(**run, step=step))] == 0
    assert samples[("paretomerge_proposal_duration_seconds_count", labels(**run))] == 0
    assert samples[("paretomerge_output_tokens_total", labels(**run))] == 0
    assert samples[("paretomerge_gpu_seconds_total", labels(**run))] == 0
    for handler in ("start_run", "spec_edited", "controller_job_changed", "run_changed"):
        assert samples[("paretomerge_reconcile_errors_total", labels(handler=handler))] == 0
    assert not any(name == "paretomerge_runs" and ("namespace", "n") in s for name, s in samples)


def test_a_row_shortened_by_the_api_server_counts_its_outcome_only(memo) -> None:
    """Kubernetes before 1.21 drops the nulls of arrays in merge patches: the row of a
    failed candidate loses f1 and f2 and its later columns shift."""
    short = [
        v for v in row("c0001", "failed", merge=30.0, evaluate=None, attempts=3) if v is not None
    ]
    run_changed(body=body("r", "Running", [short, row("c0002", "succeeded")]), type=None, memo=memo)
    samples = scrape(memo)
    run = {"namespace": "team-a", "run": "r"}
    assert samples[("paretomerge_evaluations_total", labels(**run, outcome="failed"))] == 1
    assert samples[("paretomerge_evaluations_total", labels(**run, outcome="retried"))] == 0
    duration = "paretomerge_candidate_duration_seconds_count"
    assert samples[(duration, labels(**run, step="merge"))] == 1  # the full row's only
    assert samples[("paretomerge_reconcile_errors_total", labels(handler="run_changed"))] == 0


def test_handler_exceptions_are_counted_and_raised(memo) -> None:
    broken = SimpleNamespace(get=lambda *_: (_ for _ in ()).throw(RuntimeError("boom")))
    for _ in range(2):
        with pytest.raises(RuntimeError):
            spec_edited(body=broken, old={}, new={}, memo=memo)
    key = ("paretomerge_reconcile_errors_total", labels(handler="spec_edited"))
    assert scrape(memo)[key] == 2
