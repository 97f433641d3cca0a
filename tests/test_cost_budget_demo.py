"""A cost budget on the demo pair, for real: the run stops within one candidate of its
budget, and goes on when the budget is raised, evaluating nothing twice.

Real merges of the trained demo pair (mergekit), evaluated through evalscope against the
built-in transformers server on the CPU, as ``tests/test_local_run.py`` runs the demo;
both runs are the ``paretomerge run`` command on the same run file, the second after the
user raised ``search.costBudget.outputTokens`` in it. Four questions an evaluation and one
candidate at a time (so that each candidate is started knowing what every earlier one
cost): about four minutes on two cores (3 candidates, then 6 more, as measured).
"""

from __future__ import annotations

from pathlib import Path
from statistics import mean

import pytest
import yaml
from tiny_models import link_tree
from typer.testing import CliRunner

from paretomerge.cli import app
from paretomerge.controller.cost_budget import budget_use
from paretomerge.controller.state import RunState
from paretomerge.demo.runner import MAX_TOKENS, RUN_NAME, demo_manifest
from paretomerge.k8s.status import run_status

LIMIT = 4  # questions an evaluation asks (screening stages of 1, 2 and 4)
# The most an evaluation can generate: every answer cut at the demo's maxTokens. The
# expert's answers take about 56 tokens (224 an evaluation), the base's 4, a merge's
# either or in between.
CAP = LIMIT * MAX_TOKENS
# What the anchors cost depends on whether they are told apart at once or measured again
# (4 questions are few), so the runs' budgets are set past it: the first run, with a
# budget too small for any candidate, measures the anchors alone; then some 3 candidates
# fit the next budget.
ANCHORS_ONLY = 1
FIRST = 2 * CAP
# Raised by at least a candidate's most: a run stops with less than its mean left and at
# most (largest - mean) past it, so at least one more candidate fits the raised budget.
RAISED = FIRST + CAP

pytestmark = pytest.mark.slow


def tokens(record) -> int:
    return record.cost.output_tokens


def write_run_file(path: Path, output_tokens: int) -> None:
    manifest = demo_manifest(RUN_NAME, "layer", budget=3, parallelism=1, seed=0, limit=LIMIT)
    manifest["spec"]["search"]["costBudget"] = {"outputTokens": output_tokens}
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))


def run(run_file: Path) -> str:
    """``paretomerge run`` on ``run_file``; its output, on one line."""
    result = CliRunner().invoke(app, ["run", str(run_file)])
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def assert_stopped_within_one_candidate(state: RunState, budget: int) -> None:
    """The rule, checked on what every candidate cost, in the order they ran (one at a
    time): the last one started while what was spent and its predicted cost (the mean of
    those finished before it) fit in the budget, and no other fits by the same
    prediction. So less than one candidate of the budget is left, and at most what the
    last cost above its prediction went past it."""
    assert state.phase == "Succeeded", state.message
    assert state.cost_budget is not None and state.cost_budget.limit == budget
    costs = [tokens(c) for c in state.candidates]
    anchors = sum(tokens(a) for a in [*state.anchors.values(), *state.replaced_anchors.values()])
    spent = budget_use(state).spent
    assert spent == anchors + sum(costs)  # every evaluation this run paid for
    assert len(costs) >= 2
    before_last = spent - costs[-1]
    assert before_last + mean(costs[:-1]) <= budget  # the last one fitted when it started
    assert spent + mean(costs) > budget  # and no other does
    largest = max(costs)
    assert budget - largest < spent <= budget + largest
    assert spent - budget <= costs[-1] - mean(costs[:-1])


def attempts(run_dir: Path) -> dict[str, list[str]]:
    """Every attempt each task started, by its work directory: the work done."""
    return {
        str(pid.parent.relative_to(run_dir)): sorted(
            p.name for p in pid.parent.glob("attempt-*.pid")
        )
        for pid in run_dir.rglob("attempt-0.pid")
    }


def test_a_cost_budgeted_demo_run_stops_within_one_candidate_and_resumes_when_raised(
    tmp_path: Path, demo_models: Path
) -> None:
    link_tree(demo_models, tmp_path / "models")
    run_file = tmp_path / "demo.yaml"
    run_dir = tmp_path / "runs" / RUN_NAME
    write_run_file(run_file, ANCHORS_ONLY)
    output = run(run_file)
    anchored = RunState.load(run_dir)
    assert anchored.phase == "Succeeded" and anchored.candidates == []
    anchor_cost = budget_use(anchored).spent
    assert "the anchors spent the cost budget: raise search.costBudget" in output

    first_budget = anchor_cost + FIRST
    write_run_file(run_file, first_budget)
    output = run(run_file)
    first = RunState.load(run_dir)
    assert_stopped_within_one_candidate(first, first_budget)
    assert first.count("failed") == 0
    spent = budget_use(first).spent
    # Shown: the run's last line and bar, its status, the report (text and HTML).
    shown = f"{spent:,} of {first_budget:,} output tokens spent"
    assert f"cost budget: {shown}" in output
    assert run_status(first, f"runs/{RUN_NAME}", 1)["costBudget"] == {
        "unit": "outputTokens",
        "budget": first_budget,
        "spent": spent,
    }
    report = CliRunner().invoke(app, ["report", str(run_dir), "--html", str(tmp_path / "r.html")])
    assert report.exit_code == 0, report.output
    assert f"cost budget: {shown}" in " ".join(report.output.split())
    assert f"<p id='cost-budget'>Cost budget: {shown}," in (tmp_path / "r.html").read_text()
    work_before = attempts(run_dir)

    # The user raises the budget in the run file and runs the same command again.
    raised_budget = anchor_cost + RAISED
    write_run_file(run_file, raised_budget)
    output = run(run_file)
    assert (
        f"continuing run {RUN_NAME}: the cost budget is now {raised_budget} output tokens "
        f"({spent:,} of {raised_budget:,} output tokens spent)" in output
    )
    raised = RunState.load(run_dir)
    assert_stopped_within_one_candidate(raised, raised_budget)
    old = len(first.candidates)
    assert len(raised.candidates) > old
    # What had finished is as it was: the anchors (not evaluated again), the candidates
    # (their estimates move as the search learns more; their evaluations do not).
    assert raised.anchors == first.anchors
    assert [c.model_dump(exclude={"estimate"}) for c in raised.candidates[:old]] == [
        c.model_dump(exclude={"estimate"}) for c in first.candidates
    ]
    # No candidate evaluated twice: distinct ids and decision vectors, and every task
    # started once (the anchors' and the first run's not again).
    assert len({c.id for c in raised.candidates}) == len(raised.candidates)
    assert len({tuple(c.x) for c in raised.candidates}) == len(raised.candidates)
    work_after = attempts(run_dir)
    assert {task: work_after[task] for task in work_before} == work_before
    assert set(work_after) - set(work_before) == {
        f"candidates/{c.id}" for c in raised.candidates[old:]
    }
    assert all(started == ["attempt-0.pid"] for started in work_after.values())
    assert (
        f"cost budget: {budget_use(raised).spent:,} of {raised_budget:,} output tokens spent"
        in output
    )
