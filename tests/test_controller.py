"""The controller's loop on real processes, with synthetic scores in place of a GPU.

Tasks run as subprocesses through the local executor (``fake_tasks.py`` scores a merge
from its weights); profile tasks are real. The end-to-end test with real merges and
real generation is ``test_local_run.py``.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from builders import (
    ONE_BENCHMARK,
    QUICK_SEARCH,
    benchmark_score,
    run_manifest,
    write_numeric_benchmark,
)
from fake_tasks import (
    FakeExecutor,
    dominated_scores,
    partial,
    run_controller,
    synthetic_scores,
)
from tiny_models import link_tree, make_base, make_expert

from paretomerge.controller.anchors import cached_scores
from paretomerge.controller.artifacts import pareto_candidates
from paretomerge.controller.decision_space import DecisionSpace
from paretomerge.controller.estimates import record_estimates, validation_anchors_of
from paretomerge.controller.loop import Controller
from paretomerge.controller.objectives import (
    AnchorError,
    CloseAnchorsError,
    anchor_errors,
    check_anchors,
    close_anchors,
    judge_anchors,
    objective_values,
)
from paretomerge.controller.state import CandidateRecord, RunState
from paretomerge.controller.task_runner import Limits
from paretomerge.executors import LocalExecutor
from paretomerge.k8s.status import run_status
from paretomerge.report import RunDirectory, write_html
from paretomerge.search import (
    AskTellOptimizer,
    ProbablyDominated,
    ScreeningStage,
    SearchConfig,
    hypervolume,
    pareto_mask,
    search_in_process,
)
from paretomerge.search.front import reported_front
from paretomerge.spec import parse_run

TESTS = Path(__file__).parent
NUM_LAYERS = 4


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> Path:
    """A volume template holding a 4-layer base and an expert that differs in every layer."""
    root = tmp_path_factory.mktemp("pair")
    base = make_base(root / "base", num_layers=NUM_LAYERS, seed=0)
    make_expert(base, root / "expert", range(NUM_LAYERS), True, seed=1)
    return root


def manifest(name: str = "fake", **search) -> dict:
    two = {**ONE_BENCHMARK, "name": "two", "path": "data/two.jsonl"}
    return run_manifest(
        name,
        search={**QUICK_SEARCH, "budget": 8, "initialPoints": 4, **search},
        objectives={"benchmarks": [ONE_BENCHMARK, two]},
        evaluation={"engine": "transformers", "maxTokens": 64},
        execution={"parallelism": 2, "maxFailedCandidates": 2, "candidateRetries": 1},
    )


@pytest.fixture
def volume(tmp_path: Path, pair: Path) -> Path:
    link_tree(pair, tmp_path / "models")
    for name in ("one", "two"):
        write_numeric_benchmark(tmp_path / "data" / f"{name}.jsonl")
    return tmp_path


def write_run(volume: Path, data: dict) -> Path:
    path = volume / f"{data['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run_in_process(
    volume: Path, data: dict, env: dict[str, str] | None = None, **controller_options
) -> RunState:
    old = {k: os.environ.get(k) for k in env or {}}
    os.environ.update(env or {})
    try:
        run = parse_run(data)
        executor = FakeExecutor(volume, deadline_seconds=120)
        try:
            controller = Controller(run, volume, executor, poll_seconds=0.05, **controller_options)
            return controller.run_to_end()
        finally:
            executor.close()
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_a_run_spends_its_budget_and_writes_consistent_artifacts(volume: Path) -> None:
    state = run_in_process(volume, manifest())
    assert state.phase == "Succeeded", state.message
    assert state.count("succeeded") == 8 and state.count("failed") == 0
    run_dir = volume / "runs" / "fake"
    objectives = np.load(run_dir / "objectives.npy")
    variables = np.load(run_dir / "decision_variables.npy")
    assert objectives.shape == (8, 2) and variables.shape == (8, NUM_LAYERS + 1)
    assert variables[0].tolist() == pytest.approx([0.5] * (NUM_LAYERS + 1))  # the user's solution
    # Every value has its standard deviation beside it, the anchors' errors included.
    stds = np.load(run_dir / "objectives_std.npy")
    assert stds.shape == (8, 2) and np.all(stds > 0)
    results = json.loads((run_dir / "results.json").read_text())
    assert [c["id"] for c in results["candidates"]] == [f"c{i:04d}" for i in range(1, 9)]
    assert np.array([c["objectives"] for c in results["candidates"]]) == pytest.approx(objectives)
    assert np.array([c["objectives_std"] for c in results["candidates"]]) == pytest.approx(stds)
    # The front is chosen and valued by the search's estimates, kept per candidate, and
    # their standard deviations (reported_front's rule; tests/test_search.py tests it).
    estimated = np.array([c["estimate"]["mean"] for c in results["candidates"]])
    estimated_std = np.array([c["estimate"]["std"] for c in results["candidates"]])
    front = list(csv.DictReader((run_dir / "pareto.csv").open()))
    anchors = np.array([[0.0, 1.0], [1.0, 0.0]])  # no trade-off when an anchor covers it
    members = reported_front(estimated, None, anchors, estimated_std)
    assert [row["candidate"] for row in front] == [f"c{m.index + 1:04d}" for m in members]
    front_Y = np.array([[float(row["f1"]), float(row["f2"])] for row in front])
    for row, y in zip(front, front_Y, strict=True):
        candidate = results["candidates"][int(row["candidate"][1:]) - 1]
        assert y == pytest.approx(candidate["estimate"]["mean"], rel=1e-5)
        assert float(row["f1_std"]) == pytest.approx(candidate["estimate"]["std"][0], rel=1e-5)
    # One hypervolume per result, in the order the results came, of the front reported then:
    # the last one is the estimate of the true hypervolume of the front in pareto.csv, its
    # values' hypervolume less the bias their errors give it, inside its 90% interval.
    history = json.loads((run_dir / "hypervolume.json").read_text())
    assert sorted(history["after"]) == [f"c{i:04d}" for i in range(1, 9)]
    assert len(history["hypervolume"]) == 8
    front_std = np.array([[float(row["f1_std"]), float(row["f2_std"])] for row in front])
    observed = hypervolume(front_Y, np.array([-0.2, -0.2]))
    low, high = state.hypervolume_interval
    assert low < history["hypervolume"][-1] < high and low < observed < high
    assert abs(history["hypervolume"][-1] - observed) < 2 * float(front_std.max())
    # The search was told each benchmark's values (2 objectives by 2 benchmarks), whose
    # means are the objectives, and models them benchmark by benchmark.
    trials = [t for t in AskTellOptimizer.from_state_dict(state.optimizer).trials]
    by_benchmark = np.array([t.y_by_benchmark for t in trials])
    assert by_benchmark.shape == (8, 2, 2) and np.all(
        np.array([t.yvar_by_benchmark for t in trials]) > 0
    )
    np.testing.assert_allclose(by_benchmark.mean(axis=2), objectives)
    # Objectives follow the anchors: base (0, 1), expert (1, 0) on the synthetic scores.
    assert state.anchors["base"].scores["one"].accuracy == pytest.approx(0.2)
    assert state.anchors["expert"].scores["one"].accuracy == pytest.approx(0.8)


def test_anchors_are_cached_across_runs(volume: Path) -> None:
    first = run_in_process(volume, manifest("first", budget=4))
    second = run_in_process(volume, manifest("second", budget=4))
    assert not first.anchors["base"].cached and not first.anchors["expert"].cached
    assert second.anchors["base"].cached and second.anchors["expert"].cached
    assert not (volume / "runs" / "second" / "anchors").exists()
    assert second.anchors["base"].scores == first.anchors["base"].scores


def test_failed_candidates_are_retried_then_recorded_never_scored(volume: Path) -> None:
    state = run_in_process(volume, manifest(), env={"FAKE_FAIL": "c0002:0,c0003:*"})
    assert state.phase == "Succeeded", state.message
    retried, failed = state.candidate("c0002"), state.candidate("c0003")
    assert retried.status == "succeeded" and retried.attempts == 2 and len(retried.reasons) == 1
    assert failed.status == "failed" and failed.attempts == 2 and failed.objectives is None
    assert "injected crash" in failed.reasons[-1]
    assert state.finished == 8 and state.count("succeeded") == 7
    assert len(np.load(volume / "runs" / "fake" / "objectives.npy")) == 7
    trials = state.optimizer["trials"]
    assert trials[2]["status"] == "failed" and trials[2]["y"] is None


def test_a_run_fails_past_max_failed_candidates(volume: Path) -> None:
    data = manifest()
    data["spec"]["execution"]["maxFailedCandidates"] = 1
    state = run_in_process(volume, data, env={"FAKE_FAIL": "c0001:*,c0002:*,c0003:*"})
    assert state.phase == "Failed"
    assert "maxFailedCandidates (1)" in state.message and "injected crash" in state.message
    assert state.count("failed") == 2
    assert state.count("running") <= 2  # stopped at once; nothing left running
    leftover = subprocess.run(["pgrep", "-f", str(volume / "runs")], capture_output=True)
    assert leftover.stdout == b""


@pytest.mark.parametrize(
    ("visible", "gpus"),
    [("", 0), ("0", 1), ("0,1", 2), ("2, 3,", 2), ("1,-1,2", 1), ("GPU-5e0c,GPU-77aa", 2)],
)
def test_the_local_executor_counts_the_gpus_its_tasks_see(
    tmp_path: Path, visible: str, gpus: int
) -> None:
    """What an evaluation's GPU-seconds are counted with: CUDA_VISIBLE_DEVICES as CUDA
    reads it (a negative index hides the devices after it)."""
    executor = LocalExecutor(tmp_path, 60, env={"CUDA_VISIBLE_DEVICES": visible})
    assert executor.evaluation_gpus() == gpus


def test_degenerate_anchors_fail_with_the_benchmark_named() -> None:
    base = {"gsm": benchmark_score("gsm", 0.5, 100.0)}
    expert = {"gsm": benchmark_score("gsm", 0.5, 300.0)}
    with pytest.raises(AnchorError, match="gsm: the expert is no more accurate"):
        check_anchors(base, expert, ["gsm"])
    expert = {"gsm": benchmark_score("gsm", 0.9, 80.0)}
    with pytest.raises(AnchorError, match="gsm: the expert writes no more tokens"):
        check_anchors(base, expert, ["gsm"])


def test_close_anchors_are_named_with_how_far_apart_they_are() -> None:
    """Apart by 2 standard errors of the gap or more passes; less names the benchmark,
    the figure and the distance. A score without a token error is judged on accuracy."""
    base = {
        "aime": benchmark_score("aime", 0.667, 100.0),
        "gpqa": benchmark_score("gpqa", 0.4, 90.0),
    }
    expert = {
        "aime": benchmark_score("aime", 0.733, 300.0),
        "gpqa": benchmark_score("gpqa", 0.7, 250.0),
    }
    close = list(map(str, close_anchors(base, expert, ["aime", "gpqa"])))
    assert close == ["aime: accuracy 0.733 (expert) vs 0.667 (base), 0.6 standard errors apart"]
    expert["aime"] = benchmark_score("aime", 0.95, 300.0)  # 0.283 / 0.095 = 3.0 apart
    assert close_anchors(base, expert, ["aime", "gpqa"]) == []
    base = {"aime": base["aime"].model_copy(update={"mean_output_tokens_stderr": 30.0})}
    update = {"mean_output_tokens": 200.0, "mean_output_tokens_stderr": 70.0}
    expert = {"aime": expert["aime"].model_copy(update=update)}
    assert list(map(str, close_anchors(base, expert, ["aime"]))) == [
        "aime: tokens 200.0 (expert) vs 100.0 (base), 1.3 standard errors apart"
    ]


def test_a_first_measurement_the_wrong_way_round_is_measured_again_not_fatal() -> None:
    """One unlucky draw does not end a run: the first measurement is measured again;
    measured again, the wrong way round is an :class:`AnchorError` and close a
    :class:`CloseAnchorsError`, each naming the benchmark."""
    base = {"aime": benchmark_score("aime", 0.6, 100.0)}
    expert = {"aime": benchmark_score("aime", 0.55, 300.0)}
    (close,) = judge_anchors(base, expert, ["aime"])
    assert str(close).startswith("aime: accuracy 0.550 (expert) vs 0.600 (base), -0.4 ")
    assert str(close).endswith("(the wrong way round)")
    with pytest.raises(AnchorError, match="aime: the expert is no more accurate"):
        judge_anchors(base, expert, ["aime"], measured_again=4)
    expert = {"aime": benchmark_score("aime", 0.7, 300.0)}
    with pytest.raises(CloseAnchorsError, match="asking each question 4 times: aime: acc"):
        judge_anchors(base, expert, ["aime"], measured_again=4)
    expert = {"aime": benchmark_score("aime", 0.95, 300.0)}
    assert judge_anchors(base, expert, ["aime"]) == []
    assert judge_anchors(base, expert, ["aime"], measured_again=4) == []
    with pytest.raises(AnchorError, match="gpqa: no anchor score"):
        judge_anchors(base, expert, ["aime", "gpqa"])


def test_close_anchors_are_measured_again_with_more_repeats(volume: Path) -> None:
    """An expert's anchor one standard error above the base's on benchmark ``one`` is
    set aside (its cost counted), and both anchors are measured again on ``one`` alone,
    asking each question 4 times; ``two`` keeps its first measurement, and the run
    searches on them. A second run finds both measurements in the cache."""
    warnings: list[tuple[str, str]] = []
    env = {"FAKE_CLOSE": "anchor-expert"}
    state = run_in_process(
        volume, manifest(budget=4), env, on_warning=lambda *w: warnings.append(w)
    )
    assert state.phase == "Succeeded", state.message
    assert [reason for reason, _ in warnings] == ["AnchorsMeasuredAgain"]
    assert (
        "one: accuracy 0.250 (expert) vs 0.200 (base), 0.7 standard errors apart"
        in (warnings[0][1])
    )
    assert "asking each question 4 times" in warnings[0][1] and "two:" not in warnings[0][1]
    first = state.replaced_anchors
    assert {s.repeats for a in first.values() for s in a.scores.values()} == {1}
    for role in ("base", "expert"):
        assert state.anchors[role].scores["one"].repeats == 4
        assert state.anchors[role].scores["two"] == first[role].scores["two"]
    assert state.anchors["expert"].scores["one"].accuracy == pytest.approx(0.8)
    # Both measurements paid: 2 anchors x 2 benchmarks x 30 questions, then 2 x 1 x 30 x 4.
    assert state.anchor_cost.evaluations == 4 and state.anchor_cost.answers == 120 + 240
    # A candidate answers each question once, whatever the anchors did.
    assert {c.cost.answers for c in state.candidates} == {60}
    results = json.loads((volume / "runs" / "fake" / "results.json").read_text())
    assert results["replaced_anchors"]["expert"]["scores"]["one"]["accuracy"] == 0.25
    html = write_html(RunDirectory.open(volume / "runs" / "fake"), [], [], volume / "r.html")
    text = html.read_text()
    assert "<td class='text'>expert (replaced)</td>" in text
    assert "<td class='text'>anchor base (replaced)</td><td class='text'>evaluated</td>" in text
    again = run_in_process(volume, manifest("again", budget=4), env)
    assert again.phase == "Succeeded", again.message
    records = [*again.anchors.values(), *again.replaced_anchors.values()]
    assert all(a.cached for a in records) and again.anchor_cost.evaluations == 0
    assert again.anchors == {
        role: a.model_copy(update={"cost": None, "cached": True})
        for role, a in state.anchors.items()
    }


def test_anchors_still_close_when_measured_again_fail_the_run_naming_the_benchmark(
    volume: Path,
) -> None:
    state = run_in_process(volume, manifest(budget=4), {"FAKE_CLOSE": "anchor-expert*"})
    assert state.phase == "Failed"
    assert "even measured again asking each question 4 times" in state.message
    assert "one: accuracy 0.225 (expert) vs 0.200 (base), 0.7 standard errors apart" in (
        state.message
    )
    assert "objectives.repeats" in state.message
    assert state.candidates == []


def test_objectives_put_the_base_at_0_1_and_the_expert_at_1_0() -> None:
    base = {"a": benchmark_score("a", 0.2, 50.0)}
    expert = {"a": benchmark_score("a", 0.6, 250.0)}
    assert objective_values(base, base, expert, ["a"]).values == pytest.approx((0.0, 1.0))
    assert objective_values(expert, base, expert, ["a"]).values == pytest.approx((1.0, 0.0))
    middle = {"a": benchmark_score("a", 0.5, 100.0)}
    assert objective_values(middle, base, expert, ["a"]).values == pytest.approx((0.75, 0.75))


def test_a_candidate_that_wins_only_by_luck_is_not_on_the_reported_front() -> None:
    """A smooth trade-off (the front at ``x1 = 0``) evaluated with small errors, and one
    dominated point whose noisy evaluation happened to land far above it: its raw values
    beat its neighbours, the posterior, which knows how noisy it was, does not."""
    config = SearchConfig(
        dim=2,
        num_objectives=2,
        strategy="gp",
        ref_point=(-0.2, -0.2),
        budget=17,
        initial_points=17,
        seed=3,
    )
    optimizer = AskTellOptimizer(config)
    state = RunState(run="luck")

    def truth(x: list[float]) -> np.ndarray:
        return np.array([x[0] - 0.3 * x[1], 1.0 - x[0] - 0.3 * x[1]])

    trials = optimizer.ask(16)
    for trial in trials:
        optimizer.tell(trial, truth(trial.x), np.full(2, 0.02**2))
    # (0.26, 0.26) in truth, evaluated at (0.71, 0.71) with a standard error of 0.3
    lucky = optimizer.add([0.5, 0.8], truth([0.5, 0.8]) + 0.45, np.full(2, 0.3**2))
    for trial in optimizer.trials:
        y, var = np.array(trial.y), np.array(trial.yvar)
        state.candidates.append(
            CandidateRecord(
                id=f"c{trial.id + 1:04d}",
                x=trial.x,
                variables=trial.x,
                trial=trial.id,
                status="succeeded",
                objectives=y.tolist(),
                objectives_std=np.sqrt(var).tolist(),
            )
        )
    lucky_id = f"c{lucky.id + 1:04d}"
    raw = np.array([c.objectives for c in state.candidates])
    assert pareto_mask(raw)[lucky.id]  # by its raw values it is on the front
    record_estimates(state, optimizer)
    front = {c.id for c in pareto_candidates(state)}
    assert front and lucky_id not in front
    estimate = state.candidate(lucky_id).estimate
    assert all(m < y - 0.2 for m, y in zip(estimate.mean, lucky.y, strict=True))
    for candidate in state.candidates:  # everyone else is where it was measured
        if candidate.id != lucky_id:
            assert candidate.estimate.mean == pytest.approx(candidate.objectives, abs=0.08)


def test_the_decision_space_of_each_granularity() -> None:
    profile = (0.1, 0.9, 0.2, 0.8, 0.5)
    layer = parse_run(manifest(weightRange=[0.2, 0.6])).spec
    space = DecisionSpace(layer, NUM_LAYERS, profile)
    assert space.dim == 5 and space.search_config().initial_solutions == ((0.75,) * 5,)
    plan = space.plan([0.0, 0.25, 0.5, 0.75, 1.0])
    assert plan.layer_weights == pytest.approx([0.2, 0.3, 0.4, 0.5]) and plan.head_weight == 0.6

    block = manifest(strategy="bambo")
    block["spec"]["merge"] = {
        "granularity": "block",
        "blocks": {"count": 2, "strategy": "variance"},
    }
    space = DecisionSpace(parse_run(block).spec, NUM_LAYERS, profile)
    plan = space.plan([0.1, 0.1, 0.7, 0.7, 0.3])
    assert plan.granularity == "block" and plan.block_starts == list(space.partition.starts)

    model = manifest(strategy="model-level")
    model["spec"]["merge"] = {"method": "ties", "granularity": "model"}
    space = DecisionSpace(parse_run(model).spec, NUM_LAYERS, profile)
    assert space.dim == 2 and space.variable_names() == ["weight", "density"]
    plan = space.plan([0.5, 1.0])
    assert plan.layer_weights == [0.5] * NUM_LAYERS and plan.density == pytest.approx(0.9)


def test_a_run_resumes_only_under_the_spec_its_results_were_made_with(volume: Path) -> None:
    data = manifest(budget=4, initialPoints=4)
    assert run_in_process(volume, data).phase == "Succeeded"
    run_dir = volume / "runs" / "fake"
    checkpoint, started = (
        (run_dir / "checkpoint.json").read_text(),
        (run_dir / "run.yaml").read_text(),
    )

    changed = manifest(budget=4, initialPoints=4)
    changed["spec"]["merge"] = {"method": "ties"}
    changed["spec"]["objectives"]["benchmarks"][1]["path"] = "data/other.jsonl"
    state = run_in_process(volume, changed)
    assert state.phase == "Failed"
    assert 'spec.merge.method: was "task_arithmetic" when the run started and is now "ties"' in (
        state.message
    )
    assert "spec.objectives.benchmarks" in state.message
    assert state.count("succeeded") == 4  # the results are still there, and on disk unchanged
    assert (run_dir / "checkpoint.json").read_text() == checkpoint
    assert (run_dir / "run.yaml").read_text() == started

    editable = manifest(budget=4, initialPoints=4)
    editable["spec"]["execution"]["parallelism"] = 3
    state = run_in_process(volume, editable)
    assert state.phase == "Succeeded" and state.count("succeeded") == 4


@pytest.mark.parametrize("budget", [2, 6], ids=["below-launched", "above-launched"])
def test_budget_and_parallelism_lowered_mid_run(volume: Path, monkeypatch, budget: int) -> None:
    """Budget 8 -> ``budget`` and parallelism 3 -> 1 after two results: candidates already
    running finish and count, new ones start one at a time up to the new budget."""
    monkeypatch.setenv("FAKE_SECONDS", "0.5")
    launched_at_edit: list[int] = []
    running_at_new_launches: list[int] = []

    def on_update(state: RunState) -> None:
        if not launched_at_edit and state.finished >= 2:
            launched_at_edit.append(len(state.candidates))
        elif launched_at_edit and len(state.candidates) > launched_at_edit[0]:
            running_at_new_launches.append(state.count("running"))

    def limits() -> Limits:
        return Limits(budget, parallelism=1) if launched_at_edit else Limits(8, 3)

    executor = FakeExecutor(volume, deadline_seconds=120)
    try:
        state = Controller(
            parse_run(manifest(budget=8)),
            volume,
            executor,
            on_update=on_update,
            limits=limits,
            poll_seconds=0.05,
        ).run_to_end()
    finally:
        executor.close()
    assert state.phase == "Succeeded", state.message
    assert launched_at_edit[0] > 2  # a candidate was still running at the edit
    assert len(state.candidates) == max(budget, launched_at_edit[0])
    assert state.finished == state.count("succeeded") == len(state.candidates)
    assert bool(running_at_new_launches) == (budget > launched_at_edit[0])
    assert max(running_at_new_launches, default=1) == 1


def test_every_task_is_retried_one_way_its_failure_checkpointed_first(volume: Path) -> None:
    """The profile, an anchor and a candidate each crash once: each is retried, with its
    reason kept, and every failure is in a checkpoint before its retry starts."""
    saved: dict[str, list[tuple[int, int]]] = {}

    def on_update(state: RunState) -> None:
        records = {**state.task_attempts, **{c.id: c for c in state.candidates}}
        for task, record in records.items():
            seen = saved.setdefault(task, [])
            if not seen or seen[-1] != (record.due, record.attempts):
                seen.append((record.due, record.attempts))

    data = manifest(budget=4, initialPoints=4)
    failures = {"FAKE_FAIL": "profile:0,anchor-expert:0,c0003:0"}
    executor = FakeExecutor(volume, deadline_seconds=120, env=failures)
    try:
        state = Controller(
            parse_run(data), volume, executor, on_update=on_update, poll_seconds=0.05
        ).run_to_end()
    finally:
        executor.close()
    assert state.phase == "Succeeded", state.message
    for task, record in [*state.task_attempts.items(), ("c0003", state.candidate("c0003"))]:
        failed = task in ("profile", "anchor-expert", "c0003")
        assert (record.attempts, record.due) == ((2, 1) if failed else (1, 0)), task
        if failed:
            assert "injected crash" in record.reasons[0]
            # (failures, attempts started): failure told before the retry started
            assert saved[task][-2:] == [(1, 1), (1, 2)], saved[task]


def test_a_restarted_controller_grants_an_anchor_no_extra_retries(volume: Path) -> None:
    data = manifest(budget=4, initialPoints=4)
    state = run_in_process(volume, data, env={"FAKE_FAIL": "anchor-base:*:merge"})
    assert state.phase == "Failed" and "anchor-base failed 2 time(s)" in state.message
    assert "injected merge error" in state.task_attempts["anchor-base"].reasons[-1]
    # As if the controller had been killed after the second attempt started: resumed, it
    # adopts that (failed) attempt and fails the run instead of starting a third.
    run_dir = volume / "runs" / "fake"
    state.phase, state.message = "Anchoring", ""
    state.save(run_dir)
    resumed = run_in_process(volume, data, env={"FAKE_FAIL": "anchor-base:*:merge"})
    assert resumed.phase == "Failed" and "anchor-base failed 2 time(s)" in resumed.message
    assert len(list((run_dir / "anchors" / "base").glob("attempt-*.pid"))) == 2


def test_a_failed_run_run_again_retries_what_gave_up_and_keeps_what_finished(
    volume: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The expert's anchor fails past its retries: the run fails. Run again (the cause
    gone), the anchor runs again under a new attempt number, the profile and the base's
    anchor are not repeated, and the run says what it retries."""
    data = manifest(budget=4, initialPoints=4)
    failed = run_in_process(volume, data, env={"FAKE_FAIL": "anchor-expert:*"})
    assert failed.phase == "Failed" and "anchor-expert failed 2 time(s)" in failed.message
    caplog.set_level(logging.INFO, logger="paretomerge.controller")
    state = run_in_process(volume, data)
    assert state.phase == "Succeeded", state.message
    assert "retrying run fake, which failed (anchor-expert failed 2 time(s)" in caplog.text
    assert "run again: anchor-expert" in caplog.text
    attempts = {
        task: (a.attempts, a.due, a.failures_forgiven) for task, a in state.task_attempts.items()
    }
    assert attempts == {"profile": (1, 0, 0), "anchor-base": (1, 0, 0), "anchor-expert": (3, 2, 2)}
    anchors = volume / "runs" / "fake" / "anchors"
    assert len(list((anchors / "base").glob("attempt-*.pid"))) == 1
    assert len(list((anchors / "expert").glob("attempt-*.pid"))) == 3


def test_a_succeeded_run_goes_on_when_its_budget_is_raised_and_says_when_not(
    volume: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="paretomerge.controller")
    first = run_in_process(volume, manifest(budget=4, initialPoints=4))
    assert first.phase == "Succeeded"
    run_file = volume / "runs" / "fake" / "run.yaml"
    started = run_file.read_text()

    same = run_in_process(volume, manifest(budget=4, initialPoints=4))
    assert same.candidates == first.candidates
    assert "has already succeeded with 4 candidate(s); a budget of 4 asks for no more" in (
        caplog.text
    )
    assert run_file.read_text() == started  # nothing ran: the run file is as it started

    raised = run_in_process(volume, manifest(budget=6, initialPoints=4))
    assert raised.phase == "Succeeded", raised.message
    assert "continuing run fake: the budget is now 6, 2 candidate(s) more" in caplog.text
    # Nothing evaluated again (the search's estimates move with the new results).
    assert [c.model_dump(exclude={"estimate"}) for c in raised.candidates[:4]] == [
        c.model_dump(exclude={"estimate"}) for c in first.candidates
    ]
    assert [c.status for c in raised.candidates[4:]] == ["succeeded"] * 2
    assert "budget: 6" in run_file.read_text()
    assert raised.optimizer["config"]["budget"] == 6  # what coarse-to-fine plans by


def kill_controller_when(
    run_file: Path, volume: Path, ready: Callable[[RunState], object], seconds: float = 360
) -> None:
    """Run the controller of ``run_file`` in a process of its own (evaluations taking 0.5 s)
    and SIGKILL it, and it alone (its tasks run on), once its checkpoint is ``ready``."""
    env = {
        **os.environ,
        "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "FAKE_SECONDS": "0.5",
    }
    controller = subprocess.Popen(
        [sys.executable, str(TESTS / "fake_tasks.py"), "run", str(run_file), str(volume)],
        env=env,
        start_new_session=True,
    )
    checkpoint = volume / "runs" / "fake" / "checkpoint.json"
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if checkpoint.exists() and ready(RunState.model_validate_json(checkpoint.read_text())):
            break
        time.sleep(0.1)
    else:
        controller.kill()
        pytest.fail("the controller made no progress")
    os.kill(controller.pid, signal.SIGKILL)
    controller.wait()


def resume_to_the_end(run_file: Path, volume: Path) -> RunState:
    """Run the controller of ``run_file`` again, in this process, to success."""
    os.environ["FAKE_SECONDS"] = "0.5"
    try:
        assert run_controller(run_file, volume) == "Succeeded"
    finally:
        del os.environ["FAKE_SECONDS"]
    return RunState.load(volume / "runs" / "fake")


def test_a_killed_controller_resumes_without_losing_or_repeating_evaluations(
    volume: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run_file = write_run(volume, manifest(budget=10))
    # Killed with a candidate started (not only recorded: that one is started again).
    kill_controller_when(
        run_file,
        volume,
        lambda state: (
            state.count("succeeded") >= 4
            and any(c.status == "running" and not c.waiting for c in state.candidates)
        ),
    )
    running = {
        c.id for c in RunState.load(volume / "runs" / "fake").candidates if c.status == "running"
    }
    caplog.set_level(logging.INFO, logger="paretomerge.controller")
    state = resume_to_the_end(run_file, volume)
    assert state.count("succeeded") == 10 and len(state.candidates) == 10
    for candidate in state.candidates:
        pids = list((volume / "runs" / "fake" / "candidates" / candidate.id).glob("attempt-*.pid"))
        assert len(pids) == 1, f"{candidate.id} ran {len(pids)} times"
    assert len(pareto_candidates(state)) >= 1
    # The resumed controller says so, and what became of each candidate left running.
    assert caplog.messages[0].startswith("resuming run fake from its checkpoint (Searching)")
    adopted = {m.split()[1] for m in caplog.messages if m.startswith("adopted ")}
    restarted = {m.split()[1] for m in caplog.messages if m.startswith("starting ")}
    assert adopted | restarted == running and adopted


def test_validation_reevaluates_the_front_on_held_out_questions_counted_apart(volume: Path) -> None:
    data = manifest(budget=6)
    data["spec"]["search"]["validation"] = {"budget": 3, "heldOut": 0.5}
    state = run_in_process(volume, data)
    assert state.phase == "Succeeded", state.message
    assert state.finished == 6 and len(state.candidates) == 6  # the search's budget
    assert [v.id for v in state.validations] == ["v0001", "v0002", "v0003"]
    assert all(v.status == "succeeded" for v in state.validations)
    run_dir = volume / "runs" / "fake"
    tasks = {path.parent.name: json.loads(path.read_text()) for path in run_dir.rglob("task.json")}
    # Search evaluations ask the search's side of the split, validations the held-out side,
    # normalised by the anchors evaluated on it.
    tasks.pop("profile")
    for task_id, task in tasks.items():
        held_out = task_id.startswith("v") or task_id.endswith("-held-out")
        assert task["questions"]["part"] == ("held-out" if held_out else "search"), task_id
    assert {"v0001", "base-held-out", "expert-held-out"} <= set(tasks)
    assert set(state.held_out_anchors) == {"base", "expert"}
    # The validated candidates are the likeliest front, each once before any twice.
    validated = [v.candidate for v in state.validations]
    assert len(set(validated)) == 3
    for candidate_id in validated:
        candidate = state.candidate(candidate_id)
        (own,) = [v for v in state.validations if v.candidate == candidate_id]
        assert candidate.validated.mean == pytest.approx(own.objectives)
        assert candidate.validated.evaluations == 1
    front = list(csv.DictReader((run_dir / "pareto.csv").open()))
    for row in front:
        candidate = state.candidate(row["candidate"])
        assert row["validated"] == str(candidate.validated is not None).lower()
        assert float(row["f1"]) == pytest.approx(candidate.reported.mean[0], rel=1e-5)
    assert any(row["validated"] == "true" for row in front)
    status = run_status(state, "runs/fake", 1)
    assert (status["finished"], status["validationsFinished"]) == (6, 3)
    assert {row[0] for row in status["evaluations"]} >= {"v0001", "v0002", "v0003"}
    history = json.loads((run_dir / "hypervolume.json").read_text())
    assert len(history["hypervolume"]) == 6 + 3
    assert sorted(history["after"][-3:]) == ["v0001", "v0002", "v0003"]
    # The run's cost is its candidates' and validations' (every one has its own); the
    # anchors', on both sides of the split, is counted apart.
    records = [*state.candidates, *state.validations]
    assert state.cost.evaluations == 9 and status["cost"]["evaluations"] == 9
    assert status["cost"]["outputTokens"] == sum(r.cost.output_tokens for r in records) > 0
    assert status["anchorCost"]["evaluations"] == 4


def test_held_out_validations_value_the_front_and_never_change_its_members(
    volume: Path,
) -> None:
    """The front is chosen on the search side; validations on held-out questions value its
    members, and however badly they score (here: as a clearly dominated merge), no member
    leaves the front and none joins it. The same search without validation reports the
    same members."""
    # One candidate at a time: with two, which finishes first (the machine's load) would
    # change what the second search is told before it asks, and so its candidates.
    plain = manifest("plain", budget=6)
    plain["spec"]["execution"]["parallelism"] = 1
    searched = run_in_process(volume, plain)
    data = manifest(budget=6)
    data["spec"]["execution"]["parallelism"] = 1
    data["spec"]["search"]["validation"] = {"budget": 3, "heldOut": 0.5}
    state = run_in_process(volume, data, env={"FAKE_DOMINATED": "v*"})
    assert state.phase == "Succeeded", state.message
    members = [c.id for c in pareto_candidates(state)]
    assert members == [c.id for c in pareto_candidates(searched)]
    validated = [c for c in pareto_candidates(state) if c.validated is not None]
    assert validated, "a validation valued a member of the front"
    dominated = objective_values(
        dominated_scores(["one", "two"]),
        state.held_out_anchors["base"].scores,
        state.held_out_anchors["expert"].scores,
        ["one", "two"],
    )
    for candidate in validated:
        assert candidate.validated.held_out
        assert candidate.reported.mean == pytest.approx(list(dominated.values))
        assert candidate.searched.mean == candidate.estimate.mean != candidate.reported.mean
    # The held-out values were never fitted: the search's estimates are the plain run's.
    trials = state.optimizer["trials"]
    assert [t["held_out"] for t in trials if t["kind"] == "validation"] == [True] * 3
    # The claim is valued by the validated values, and carries its interval.
    low, high = state.hypervolume_interval
    assert low <= state.hypervolume[-1] <= high
    status = run_status(state, "runs/fake", 1)
    assert status["hypervolumeInterval"] == (
        pytest.approx(low, abs=1e-6),
        pytest.approx(high, abs=1e-6),
    )
    assert [row["heldOut"] for row in status["pareto"]] == [
        c.validated is not None for c in pareto_candidates(state)
    ]


def test_degenerate_held_out_anchors_fall_back_before_the_search(volume: Path) -> None:
    """An expert that scores no better than the base on the held-out questions is caught
    when the anchors are measured, before any candidate: the validations are normalised
    by the anchors on every question instead, the run says so (warning, report, status)
    and succeeds, and the degenerate pair is not kept in the cache."""
    data = manifest(budget=4, initialPoints=4)
    data["spec"]["search"]["validation"] = {"budget": 2, "heldOut": 0.5}
    warnings = []

    def warned(reason: str, message: str) -> None:
        checkpoint = RunState.load(volume / "runs" / "fake")
        warnings.append((reason, message, len(checkpoint.candidates)))

    state = run_in_process(
        volume, data, env={"FAKE_DOMINATED": "anchor-expert-held-out"}, on_warning=warned
    )
    assert state.phase == "Succeeded", state.message
    ((reason, message, candidates_then),) = warnings
    assert reason == "ValidationAnchorsFellBack" and candidates_then == 0
    assert "expert is no more accurate than the base" in message
    assert state.validation_fallback == message
    assert state.count_validations("succeeded") == 2
    # Normalised by the full-set anchors (search and held-out sides joined: the expert's
    # accuracy the mean of 0.8 and its degenerate 0.2).
    anchors = validation_anchors_of(state, ["one", "two"])
    assert anchors.fallback and anchors.expert["one"].accuracy == pytest.approx(0.5)
    for anchor in state.held_out_anchors.values():
        assert cached_scores(volume, anchor.cache_key) is None
    for anchor in state.anchors.values():
        assert cached_scores(volume, anchor.cache_key) is not None
    assert run_status(state, "runs/fake", 1)["validationFallback"] == message


@pytest.mark.parametrize("held_out", [0.0, 0.5])
def test_a_validation_resumes_after_a_kill_without_running_again(
    volume: Path, held_out: float
) -> None:
    data = manifest(budget=4, initialPoints=4)
    data["spec"]["search"]["validation"] = {"budget": 4, "heldOut": held_out}
    run_file = write_run(volume, data)
    kill_controller_when(
        run_file,
        volume,
        lambda state: state.count_validations("succeeded") and state.count_validations("running"),
    )
    state = resume_to_the_end(run_file, volume)
    assert state.count_validations("succeeded") == 4 and len(state.validations) == 4
    assert state.count("succeeded") == 4
    for record in [*state.candidates, *state.validations]:
        work_dir = (
            volume / "runs" / "fake" / ("validations" if record.id[0] == "v" else "candidates")
        )
        pids = list((work_dir / record.id).glob("attempt-*.pid"))
        assert len(pids) == 1, f"{record.id} ran {len(pids)} times"
    # No question held out: each validation is pooled with the search's evaluation; held
    # out: each values its candidate apart, never fitted.
    trials = [t for t in state.optimizer["trials"] if t["kind"] == "validation"]
    assert [t["held_out"] for t in trials] == [held_out > 0] * 4
    validated = {v.candidate for v in state.validations}
    for candidate in state.candidates:
        assert (candidate.validated is not None) == (candidate.id in validated)
        if candidate.validated is not None:
            assert candidate.validated.held_out == (held_out > 0)
            # Pooled: the search's and a validation; held out: its validations alone.
            assert candidate.validated.evaluations >= (1 if held_out else 2)


@pytest.mark.parametrize("strategy", ["sobol", "gp"])  # the stage alone; with the surrogate
def test_a_clearly_dominated_candidate_is_screened_out_and_its_slot_goes_to_the_next(
    volume: Path, strategy: str
) -> None:
    # One at a time: c0001 (every weight 0.55) and c0002 (0.8) finish, then c0003 scores
    # like the base at the expert's length, which c0001 dominates even at its worst.
    data = manifest(budget=4, initialPoints=2, initialSolutions=[0.55, 0.8], strategy=strategy)
    data["spec"]["execution"]["parallelism"] = 1
    data["spec"]["evaluation"]["screening"] = {"stages": [0.25, 0.5, 1.0], "confidence": 0.9}
    state = run_in_process(
        volume, data, env={"FAKE_DOMINATED": "c0003", "FAKE_STAGE_SECONDS": "1.5"}
    )
    assert state.phase == "Succeeded", state.message
    run_dir = volume / "runs" / "fake"

    def stages_of(candidate_id: str) -> list[str]:
        stages = run_dir / "candidates" / candidate_id / "eval" / "stages"
        return sorted(path.name for path in stages.glob("stage-*.json"))

    screened = state.candidate("c0003")
    assert screened.status == "screened" and screened.screened_after in (1, 2)
    # Stopped before its last stage (after the second only if the first was seen late).
    assert stages_of("c0003") == [f"stage-{k}.json" for k in range(1, screened.screened_after + 1)]
    assert (run_dir / "candidates" / "c0003" / "stop.json").exists()
    # Kept when not dominated: every stage, then the result.
    for kept in ("c0001", "c0002"):
        assert state.candidate(kept).status == "succeeded"
        assert stages_of(kept) == ["stage-1.json", "stage-2.json", "stage-3.json"]
    # The budget counts it, its slot went to c0004, and it is never on the front.
    assert len(state.candidates) == 4 and state.finished == 4
    assert state.candidate("c0004").status in ("succeeded", "screened")
    assert "c0003" not in {c.id for c in pareto_candidates(state)}
    # The surrogate learned from its partial estimate, with the larger variance of a
    # quarter of the questions.
    optimizer = AskTellOptimizer.from_state_dict(state.optimizer)
    trial = optimizer.trials[state.trial_of(screened)]
    full = optimizer.trials[state.trial_of(state.candidate("c0001"))]
    assert trial.status == "completed" and trial.screened and not full.screened
    assert np.all(np.asarray(trial.yvar) > 3 * np.asarray(full.yvar))
    assert run_status(state, "runs/fake", 1)["screened"] == 1
    results = json.loads((run_dir / "results.json").read_text())
    assert results["candidates"][2]["status"] == "screened"


def test_the_controller_and_the_in_process_loop_run_one_policy(volume: Path) -> None:
    # One candidate at a time: the controller over tasks and search_in_process (what
    # optimize() and bench/ run) see the same data in the same order, so on the same
    # seed they must propose the same points, screen the same candidates after the same
    # stage, and report the same front.
    data = manifest(budget=7, initialPoints=1, initialSolutions=[0.55], strategy="gp")
    data["spec"]["execution"]["parallelism"] = 1
    data["spec"]["evaluation"]["screening"] = {"stages": [0.25, 0.5, 1.0], "confidence": 0.5}
    dominated = ("c0004", "c0006")  # score like the base at the expert's length
    env = {"FAKE_STAGE_SECONDS": "1.5", "FAKE_DOMINATED": "c000[46]"}
    state = run_in_process(volume, data, env=env)
    assert state.phase == "Succeeded", state.message

    run = parse_run(data)
    space = DecisionSpace(run.spec, state.num_layers, tuple(state.profile))
    benchmarks = [b.name for b in run.spec.objectives.benchmarks]
    base, expert = state.anchors["base"].scores, state.anchors["expert"].scores
    shares = run.spec.evaluation.screening.stages
    staged_task = SimpleNamespace(stages=SimpleNamespace(shares=shares))

    evaluated: list[np.ndarray] = []

    def objective(X: np.ndarray) -> list[ScreeningStage]:
        """What fake_tasks.py scores after each screening stage, as objectives."""
        ids = [f"c{len(evaluated) + i + 1:04d}" for i in range(len(X))]
        evaluated.extend(X)
        stages = []
        for stage in range(1, len(shares) + 1):
            values = []
            for candidate_id, x in zip(ids, X, strict=True):
                plan = space.plan(x, seed=0)
                full = synthetic_scores(plan.layer_weights, plan.head_weight, benchmarks)
                if candidate_id in dominated:
                    full = dominated_scores(benchmarks)
                values.append(
                    objective_values(partial(full, staged_task, stage), base, expert, benchmarks)
                )
            stages.append(
                ScreeningStage(
                    np.array([v.values for v in values]),
                    np.array([v.total_variance for v in values]),
                    Y_by_benchmark=np.array([v.by_benchmark for v in values]),
                    Yvar_by_benchmark=np.array([v.total_variance_by_benchmark for v in values]),
                )
            )
        return stages

    result = search_in_process(
        objective,
        space.search_config(),
        batch_size=1,
        screener=ProbablyDominated(run.spec.evaluation.screening.confidence),
        anchor_errors=anchor_errors(base, expert, benchmarks),
    )
    np.testing.assert_allclose(result.X, [c.x for c in state.candidates], atol=1e-9)
    last = len(shares) - 1
    in_process = [None if k == last else k + 1 for k in result.stopped_after]  # 1-based
    assert [c.screened_after for c in state.candidates] == in_process
    assert any(k is not None for k in in_process)  # the test screens something
    front = pareto_candidates(state)
    np.testing.assert_allclose([c.x for c in front], result.pareto_X, atol=1e-9)
    np.testing.assert_allclose([c.reported[0] for c in front], result.pareto_Y, atol=1e-6)
    assert state.hypervolume[-1] == pytest.approx(result.hypervolume[-1], abs=1e-6)


def test_a_controller_killed_mid_screening_resumes_without_losing_or_repeating(
    volume: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # c0003 scores like a dominated merge; the controller is killed once its first
    # screening stage is on the volume, whether or not it had stopped it yet.
    data = manifest(budget=5, initialPoints=2, initialSolutions=[0.55, 0.8], strategy="sobol")
    data["spec"]["execution"]["parallelism"] = 1
    data["spec"]["evaluation"]["screening"] = {"stages": [0.25, 0.5, 1.0], "confidence": 0.9}
    run_file = write_run(volume, data)
    monkeypatch.setenv("FAKE_DOMINATED", "c0003")
    monkeypatch.setenv("FAKE_STAGE_SECONDS", "3")
    stages = volume / "runs" / "fake" / "candidates" / "c0003" / "eval" / "stages"
    kill_controller_when(run_file, volume, lambda state: (stages / "stage-1.json").exists())
    state = resume_to_the_end(run_file, volume)
    assert len(state.candidates) == 5 and state.finished == 5
    assert state.candidate("c0003").status == "screened"
    assert [c.status for c in state.candidates].count("screened") == 1
    for candidate in state.candidates:
        work_dir = volume / "runs" / "fake" / "candidates" / candidate.id
        pids = list(work_dir.glob("attempt-*.pid"))
        assert len(pids) == 1, f"{candidate.id} ran {len(pids)} times"
    # Told once: one trial per candidate, the screened one told as screened.
    trials = state.optimizer["trials"]
    assert len(trials) == 5 and [t["screened"] for t in trials].count(True) == 1
