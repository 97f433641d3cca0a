"""A budget in cost: ``search.costBudget`` in output tokens or GPU-hours.

Runs go through the controller's loop on real processes with synthetic scores and costs
(``fake_tasks.py``: a merge's output tokens grow with its weights, a server generates 100
tokens a second), and through ``optimize()``; the endpoint the preflight asks is a real
HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import yaml
from builders import run_manifest, write_numeric_benchmark
from fake_tasks import FakeExecutor
from tiny_models import link_tree, make_base, make_expert
from typer.testing import CliRunner

from paretomerge.cli import app
from paretomerge.controller.cost_budget import budget_use
from paretomerge.controller.loop import Controller
from paretomerge.controller.state import RunState
from paretomerge.k8s.status import run_status
from paretomerge.preflight import preflight
from paretomerge.search import ProbablyDominated, ScreeningStage, optimize
from paretomerge.search.cost_budget import CostBudget, CostLedger
from paretomerge.spec import check_run, parse_run
from paretomerge_operator.metrics import OperatorMetrics, RunSnapshot

NUM_LAYERS = 4


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pair")
    base = make_base(root / "base", num_layers=NUM_LAYERS, seed=0)
    make_expert(base, root / "expert", range(NUM_LAYERS), True, seed=1)
    return root


@pytest.fixture
def volume(tmp_path: Path, pair: Path) -> Path:
    link_tree(pair, tmp_path / "models")
    write_numeric_benchmark(tmp_path / "data" / "one.jsonl")
    return tmp_path


def manifest(cost_budget: dict | None, **search) -> dict:
    """Sobol proposals (no model to fit), one candidate at a time; ``search.budget`` 4,
    which a cost budget may go past."""
    return run_manifest(
        "costly",
        search={
            "strategy": "sobol",
            "budget": 4,
            "initialPoints": 2,
            "initialSolutions": [0.5],
            **({"costBudget": cost_budget} if cost_budget else {}),
            **search,
        },
        evaluation={"engine": "transformers", "maxTokens": 64},
        execution={"parallelism": 1, "keepMergedModels": "none"},
    )


def run(volume: Path, data: dict, gpus: str | None = None, on_update=None) -> RunState:
    env = {} if gpus is None else {"CUDA_VISIBLE_DEVICES": gpus}
    executor = FakeExecutor(volume, deadline_seconds=120, env=env)
    try:
        controller = Controller(
            parse_run(data), volume, executor, on_update=on_update, poll_seconds=0.05
        )
        return controller.run_to_end()
    finally:
        executor.close()


def tokens(record) -> int:
    return record.cost.output_tokens


def assert_within_one_candidate(state: RunState, budget: float) -> None:
    """Spent no more than one candidate past the budget, and stopped with less than one
    candidate of it left."""
    spent = budget_use(state).spent
    largest = max(tokens(c) for c in state.candidates)
    assert budget - largest < spent <= budget + largest


# --- the run -----------------------------------------------------------------------------


def test_a_run_stops_within_one_candidate_of_its_cost_budget_and_resumes_when_raised(
    volume: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="paretomerge.controller")
    first = run(volume, manifest({"outputTokens": 60_000}))
    assert first.phase == "Succeeded", first.message
    # Every evaluation this run paid for: the anchors (not cached yet) and the candidates.
    paid = sum(map(tokens, [*first.anchors.values(), *first.candidates]))
    assert budget_use(first).spent == paid
    assert_within_one_candidate(first, 60_000)
    assert len(first.candidates) > 4  # search.budget plans, the cost budget stops
    assert "cost budget: " in first.message and "of 60,000 output tokens spent" in first.message

    # Shown: the status, the operator's metrics, the report's cost line.
    status = run_status(first, "runs/costly", 1)
    assert status["costBudget"] == {"unit": "outputTokens", "budget": 60_000, "spent": paid}
    metrics = OperatorMetrics()
    metrics.observe("ns", "costly", RunSnapshot.from_body({}, status))
    labels = {"namespace": "ns", "run": "costly", "unit": "outputTokens"}
    assert metrics.registry.get_sample_value("paretomerge_run_cost_budget", labels) == 60_000
    assert metrics.registry.get_sample_value("paretomerge_run_cost_spent", labels) == paid
    report = CliRunner().invoke(app, ["report", str(volume / "runs" / "costly")])
    assert report.exit_code == 0, report.output
    assert f"cost budget: {paid:,} of 60,000 output tokens spent" in report.output

    # The same budget again: nothing to do, and said.
    same = run(volume, manifest({"outputTokens": 60_000}))
    assert same.candidates == first.candidates
    assert "its cost budget has no room for another" in caplog.text

    # Raised: accepted, the run goes on, nothing finished is evaluated again. What it
    # publishes never shows the checkpoint's Succeeded again before it searches (the
    # operator set the status Pending; a watcher would take that Succeeded for the end).
    published: list[str] = []
    raised = run(
        volume,
        manifest({"outputTokens": 100_000}),
        on_update=lambda state: published.append(state.phase),
    )
    assert published[0] == "Searching" and published[-1] == "Succeeded"
    assert published.count("Succeeded") == 1
    assert raised.phase == "Succeeded", raised.message
    assert "continuing run costly: the cost budget is now 100000 output tokens" in caplog.text
    old = len(first.candidates)
    assert [c.model_dump(exclude={"estimate"}) for c in raised.candidates[:old]] == [
        c.model_dump(exclude={"estimate"}) for c in first.candidates
    ]
    assert len(raised.candidates) > old
    assert len({tuple(c.x) for c in raised.candidates}) == len(raised.candidates)
    runs = volume / "runs" / "costly" / "candidates"
    assert all(len(list((runs / c.id).glob("attempt-*.pid"))) == 1 for c in raised.candidates)
    assert_within_one_candidate(raised, 100_000)


def test_validation_after_the_search_fits_in_the_cost_budget(volume: Path) -> None:
    data = manifest({"outputTokens": 60_000}, validation={"budget": 2})
    state = run(volume, data)
    assert state.phase == "Succeeded", state.message
    assert state.validations_finished == 2
    spent = budget_use(state).spent
    assert spent == sum(
        map(tokens, [*state.anchors.values(), *state.candidates, *state.validations])
    )
    largest = max(map(tokens, [*state.candidates, *state.validations]))
    assert 60_000 - largest < spent <= 60_000 + largest
    # Fewer candidates than without validation: two of them went to it.
    unvalidated = manifest({"outputTokens": 60_000})
    unvalidated["metadata"]["name"] = "unvalidated"
    assert len(state.candidates) < len(run(volume, unvalidated).candidates)


def test_a_gpu_hour_budget_counts_the_evaluations_gpu_time(volume: Path) -> None:
    # A candidate of the fake serves for 2 s and generates 100 tokens a second on 1 GPU.
    state = run(volume, manifest({"gpuHours": 0.15}), gpus="0")
    assert state.phase == "Succeeded", state.message
    used = budget_use(state)
    assert used.unit == "gpuHours"
    assert used.spent == pytest.approx(state.paid.gpu_seconds / 3600)
    largest = max(c.cost.gpu_seconds for c in state.candidates) / 3600
    assert 0.15 - largest < used.spent <= 0.15 + largest


# --- optimize() ----------------------------------------------------------------------------


def staged_objective(X: np.ndarray) -> list[ScreeningStage]:
    """Two objectives in conflict; each candidate costs 1000 + 2000 * mean(x) tokens,
    a quarter of them after the first of two stages; x[0] < 0.3 is clearly dominated."""
    Y = np.c_[X.mean(axis=1) - 0.6 * (X[:, 0] < 0.3), 1 - X.mean(axis=1) - 0.6 * (X[:, 0] < 0.3)]
    cost = 1000 + 2000 * X.mean(axis=1)
    return [
        ScreeningStage(Y, np.full_like(Y, 0.04), cost / 4),
        ScreeningStage(Y, np.full_like(Y, 0.01), cost),
    ]


def test_optimize_stops_within_one_candidate_of_its_cost_budget() -> None:
    options = {"dim": 3, "strategy": "sobol", "budget": 6, "batch_size": 2, "initial_points": 2}
    result = optimize(staged_objective, **options, cost_budget=30_000.0, validation_budget=2)
    assert 30_000 - result.cost.max() < result.cost_spent <= 30_000 + result.cost.max()
    assert (~result.is_validation).sum() > 6 and result.is_validation.sum() == 2
    # Without costs there is nothing to count.
    with pytest.raises(ValueError, match="cost budget needs the objective's costs"):
        optimize(lambda X: np.c_[X[:, 0], 1 - X[:, 0]], **options, cost_budget=1.0)


def test_screened_candidates_cost_less_so_more_of_them_fit() -> None:
    options = {"dim": 3, "strategy": "sobol", "budget": 6, "batch_size": 1, "initial_points": 2}
    full = optimize(staged_objective, **options, cost_budget=30_000.0)
    screened = optimize(
        staged_objective, **options, cost_budget=30_000.0, screener=ProbablyDominated(0.9)
    )
    assert screened.screened.any()
    assert len(screened.cost) > len(full.cost)
    assert screened.cost_spent <= 30_000 + screened.cost.max()


def test_the_rule_predicts_by_the_mean_and_reserves_the_validations() -> None:
    budget = CostBudget(100.0, validation_scale=2.0)
    # Nothing known yet: the first candidates start on what was spent alone.
    assert budget.allows_candidate(CostLedger(spent=99.0))
    assert not budget.allows_candidate(CostLedger(spent=100.0))
    ledger = CostLedger(spent=40.0, candidates=[10.0, 30.0], full=[30.0])
    assert budget.candidate_cost(ledger) == 20.0
    assert budget.validation_cost(ledger) == 60.0  # the full one, twice the answers
    assert budget.allows_candidate(ledger)  # 40 + 20 <= 100
    assert budget.allows_candidate(replace(ledger, running_candidates=2))  # 40 + 3 * 20
    assert not budget.allows_candidate(replace(ledger, running_candidates=3))
    assert not budget.allows_candidate(replace(ledger, validations_left=1))  # 40 + 20 + 60
    assert budget.allows_validation(ledger)  # 40 + 60
    assert not budget.allows_validation(replace(ledger, spent=41.0))


# --- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cost_budget", "execution", "problem"),
    [
        (
            {"outputTokens": 2e8, "gpuHours": 12},
            {},
            "spec.search.costBudget: give exactly one of outputTokens and gpuHours",
        ),
        ({}, {}, "spec.search.costBudget: give exactly one of outputTokens and gpuHours"),
        (
            {"outputTokens": 0},
            {},
            "spec.search.costBudget.outputTokens: Input should be greater than 0",
        ),
        ({"gpuHours": -1}, {}, "spec.search.costBudget.gpuHours: Input should be greater than 0"),
        (
            {"gpuHours": 12},
            {"resources": {"gpus": 0}},
            "spec.search.costBudget.gpuHours: counts the GPU-hours of the evaluations, and "
            "execution.resources.gpus is 0",
        ),
    ],
)
def test_a_bad_cost_budget_is_refused_naming_its_field(cost_budget, execution, problem) -> None:
    data = run_manifest("bad", search={"costBudget": cost_budget}, execution=execution)
    problems = [str(p) for p in check_run(data).problems]
    assert len(problems) == 1 and problems[0].startswith(problem), problems


def test_a_cost_budget_as_written_in_yaml() -> None:
    data = yaml.safe_load("search: {costBudget: {outputTokens: 2e8}}")
    run = parse_run(run_manifest("fine", **data))
    assert run.spec.search.cost_budget.limit == 2e8
    assert parse_run(run_manifest("fine", search={"costBudget": {"gpuHours": 12}})).spec.search


class Completions(BaseHTTPRequestHandler):
    """An OpenAI-compatible server of ``model``; its completions carry ``usage`` only
    when the server's ``usage`` says so."""

    def do_GET(self) -> None:
        self._send({"object": "list", "data": [{"id": "model"}]})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        reply = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "O"}}]}
        if self.server.usage:
            reply["usage"] = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
        self._send(reply)

    def _send(self, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(params=[True, False], ids=["usage", "no-usage"])
def endpoint(request) -> Iterator[tuple[str, bool]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Completions)
    server.usage = request.param
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", request.param
    server.shutdown()
    server.server_close()


def test_output_tokens_need_an_endpoint_that_reports_usage(volume: Path, endpoint) -> None:
    url, usage = endpoint
    data = run_manifest(
        "endpoint",
        search={"costBudget": {"outputTokens": 1e6}},
        evaluation={"engine": "endpoint", "endpoint": {"url": url}},
    )
    problems = [
        str(p) for p in preflight(parse_run(data), volume, tasks_path="", candidates_left=1)
    ]
    if usage:
        assert problems == []
    else:
        assert problems == [
            f"spec.search.costBudget.outputTokens: {url} reports no usage.completion_tokens in "
            "its completions, so the output tokens cannot be counted (give gpuHours, or an "
            "endpoint that reports usage)"
        ]


def test_gpu_hours_need_evaluations_with_a_gpu(volume: Path) -> None:
    data = run_manifest(
        "cpu", search={"costBudget": {"gpuHours": 1}}, evaluation={"engine": "transformers"}
    )
    found = preflight(parse_run(data), volume, tasks_path="", candidates_left=1, evaluation_gpus=0)
    assert [p.field for p in found] == ["spec.search.costBudget.gpuHours"]
    assert (
        preflight(parse_run(data), volume, tasks_path="", candidates_left=1, evaluation_gpus=1)
        == []
    )


def test_raising_the_cost_budget_is_no_change_of_what_the_results_mean() -> None:
    from paretomerge.spec import resume_conflicts

    started = parse_run(manifest({"outputTokens": 1e5}))
    assert resume_conflicts(started, parse_run(manifest({"outputTokens": 2e5}))) == []
    assert resume_conflicts(parse_run(manifest(None)), started) == []


def test_the_operator_continues_a_succeeded_run_on_a_raised_cost_budget() -> None:
    from paretomerge_operator.handlers.restarts import cost_budget_refusal

    used = {"unit": "outputTokens", "budget": 6e4, "spent": 58_000}
    assert cost_budget_refusal(used, {"outputTokens": 1e5}) is None
    assert cost_budget_refusal(None, {"gpuHours": 2}) is None  # a run without one gets one
    assert cost_budget_refusal(used, {"gpuHours": 2}) is None  # another unit: the controller sees
    assert "having spent 58000" in cost_budget_refusal(used, {"outputTokens": 5e4})
    assert "removed" in cost_budget_refusal(used, None)
