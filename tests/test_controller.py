"""The controller's loop on real processes, with synthetic scores in place of a GPU.

Tasks run as subprocesses through the local executor (``fake_tasks.py`` scores a merge
from its weights); profile tasks are real. The end-to-end test with real merges and
real generation is ``test_local_run.py``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

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
from fake_tasks import FakeExecutor, run_controller
from tiny_models import link_tree, make_base, make_expert

from paretomerge.controller.artifacts import pareto_candidates
from paretomerge.controller.decision_space import DecisionSpace
from paretomerge.controller.loop import Controller, Limits
from paretomerge.controller.objectives import AnchorError, check_anchors, normalised_objectives
from paretomerge.controller.state import RunState
from paretomerge.search import hypervolume_history, pareto_mask
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


def run_in_process(volume: Path, data: dict, env: dict[str, str] | None = None) -> RunState:
    old = {k: os.environ.get(k) for k in env or {}}
    os.environ.update(env or {})
    try:
        run = parse_run(data)
        executor = FakeExecutor(volume, deadline_seconds=120)
        try:
            return Controller(run, volume, executor, poll_seconds=0.05).run_to_end()
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
    history = json.loads((run_dir / "hypervolume.json").read_text())["hypervolume"]
    assert history == pytest.approx(hypervolume_history(objectives, np.array([-0.2, -0.2])))
    front = (run_dir / "pareto.csv").read_text().splitlines()[1:]
    anchors = np.array([[0.0, 1.0], [1.0, 0.0]])  # no trade-off when an anchor matches it
    distinct = {tuple(y) for y in objectives[pareto_mask(objectives)]}
    assert len(front) == len({y for y in distinct if not (anchors >= y).all(axis=1).any()}) >= 1
    results = json.loads((run_dir / "results.json").read_text())
    assert [c["id"] for c in results["candidates"]] == [f"c{i:04d}" for i in range(1, 9)]
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


def test_degenerate_anchors_fail_with_the_benchmark_named() -> None:
    base = {"gsm": benchmark_score("gsm", 0.5, 100.0)}
    expert = {"gsm": benchmark_score("gsm", 0.5, 300.0)}
    with pytest.raises(AnchorError, match="gsm: the expert is no more accurate"):
        check_anchors(base, expert, ["gsm"])
    expert = {"gsm": benchmark_score("gsm", 0.9, 80.0)}
    with pytest.raises(AnchorError, match="gsm: the expert writes no more tokens"):
        check_anchors(base, expert, ["gsm"])


def test_objectives_put_the_base_at_0_1_and_the_expert_at_1_0() -> None:
    base = {"a": benchmark_score("a", 0.2, 50.0)}
    expert = {"a": benchmark_score("a", 0.6, 250.0)}
    assert normalised_objectives(base, base, expert, ["a"]) == pytest.approx((0.0, 1.0))
    assert normalised_objectives(expert, base, expert, ["a"]) == pytest.approx((1.0, 0.0))
    middle = {"a": benchmark_score("a", 0.5, 100.0)}
    assert normalised_objectives(middle, base, expert, ["a"]) == pytest.approx((0.75, 0.75))


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
    assert raised.candidates[:4] == first.candidates  # nothing evaluated again
    assert [c.status for c in raised.candidates[4:]] == ["succeeded"] * 2
    assert "budget: 6" in run_file.read_text()


def test_a_killed_controller_resumes_without_losing_or_repeating_evaluations(
    volume: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = manifest(budget=10)
    run_file = write_run(volume, data)
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
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if checkpoint.exists():
            state = RunState.model_validate_json(checkpoint.read_text())
            if state.count("succeeded") >= 4 and state.count("running") >= 1:
                break
        time.sleep(0.1)
    else:
        pytest.fail("the controller made no progress")
    os.kill(controller.pid, signal.SIGKILL)  # the controller only: its tasks run on
    controller.wait()

    running = {
        c.id for c in RunState.load(volume / "runs" / "fake").candidates if c.status == "running"
    }
    os.environ["FAKE_SECONDS"] = "0.5"
    caplog.set_level(logging.INFO, logger="paretomerge.controller")
    try:
        assert run_controller(run_file, volume) == "Succeeded"
    finally:
        del os.environ["FAKE_SECONDS"]
    state = RunState.load(volume / "runs" / "fake")
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
