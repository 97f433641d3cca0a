"""A run directory written by an earlier version still loads, reads the same and resumes.

``data/run-v1`` is a volume as ParetoMerge d1074ed left it (the controller with the fake
tasks of ``fake_tasks.py``, whose result files have the real ones' shape): run ``old``,
budget 4, parallelism 1, snapshotted while candidate ``c0003`` ran its second attempt
after a crash, and the expert's anchor had needed a second attempt. It holds the files
that version wrote and this one reads: ``run.yaml``, ``checkpoint.json``, a profile's
and a candidate's ``result.json``, an anchor cache entry, and the ``results.json`` and
``pareto.csv`` written from that checkpoint.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from builders import write_numeric_benchmark
from fake_tasks import FakeExecutor
from tiny_models import make_base, make_expert

from paretomerge.controller.anchors import cached_scores
from paretomerge.controller.artifacts import write_artifacts
from paretomerge.controller.decision_space import DecisionSpace
from paretomerge.controller.loop import Controller
from paretomerge.controller.state import RunState
from paretomerge.k8s.status import EvaluationRow
from paretomerge.results import (
    BenchmarkScore,
    CostTotal,
    EvaluateTaskResult,
    EvaluationCost,
    ProfileResult,
)
from paretomerge.run_layout import PARETO_FILE, RESULTS_FILE
from paretomerge.spec import load_started_run
from paretomerge.tasks import EvaluateTask, ProfileTask, read_result

OLD_VOLUME = Path(__file__).parent / "data" / "run-v1"
RUN_DIR = OLD_VOLUME / "runs" / "old"


@pytest.fixture
def volume(tmp_path: Path) -> Path:
    """The old volume, with the models and data its run reads (what a preflight checks;
    the checkpoint already holds their profile and anchors)."""
    shutil.copytree(OLD_VOLUME, tmp_path, dirs_exist_ok=True)
    base = make_base(tmp_path / "models" / "base", num_layers=2, seed=0)
    make_expert(base, tmp_path / "models" / "expert", range(2), True, seed=1)
    write_numeric_benchmark(tmp_path / "data" / "one.jsonl")
    return tmp_path


def test_an_old_checkpoint_loads_with_typed_scores() -> None:
    state = RunState.load(RUN_DIR)
    assert state.phase == "Searching" and state.num_layers == 2 and len(state.profile) == 3
    base = state.anchors["base"].scores["one"]
    assert isinstance(base, BenchmarkScore) and (base.accuracy, base.n) == (0.2, 30)
    assert state.anchors["expert"].scores["one"].mean_output_tokens == 220.0
    done = state.candidate("c0002")
    assert done.status == "succeeded" and done.scores["one"].accuracy == pytest.approx(0.6913, 1e-3)
    running = state.candidate("c0003")
    assert (running.status, running.attempts, len(running.reasons)) == ("running", 2, 1)
    # Counted attempts as they were kept for the profile and the anchors then.
    attempts = {task: (a.attempts, a.due) for task, a in state.task_attempts.items()}
    assert attempts == {"profile": (1, 0), "anchor-base": (1, 0), "anchor-expert": (2, 1)}


def test_old_result_files_and_anchor_entries_load() -> None:
    profile = read_result(
        ProfileTask(id="profile", work_dir="runs/old/profile", base="b", experts=["e"]),
        OLD_VOLUME,
    )
    assert isinstance(profile, ProfileResult) and len(profile.merge_weight_profile) == 3
    run = load_started_run(RUN_DIR / "run.yaml")
    candidate = read_result(
        EvaluateTask(
            id="c0002",
            work_dir="runs/old/candidates/c0002",
            role="merged",
            model="m",
            evaluation=run.spec.evaluation,
            objectives=run.spec.objectives,
        ),
        OLD_VOLUME,
    )
    assert isinstance(candidate, EvaluateTaskResult)
    assert candidate.scores == RunState.load(RUN_DIR).candidate("c0002").scores
    (entry,) = (OLD_VOLUME / ".paretomerge" / "anchors").glob("*.json")
    scores = cached_scores(OLD_VOLUME, entry.stem)
    assert scores == RunState.load(RUN_DIR).anchors["expert"].scores


def test_costs_that_counted_answers_as_questions_load() -> None:
    """Results, checkpoints and status rows written while a cost's answers were called
    ``questions`` load with them as ``answers``."""
    old = {"questions": 228, "output_tokens": 3_148_128, "gpus": 1}
    assert EvaluationCost.model_validate(old).answers == 228
    assert CostTotal.model_validate({**old, "evaluations": 2}).answers == 228
    checkpoint = json.loads((RUN_DIR / "checkpoint.json").read_text())
    checkpoint["candidates"][0]["cost"] = old
    state = RunState.model_validate(checkpoint)
    assert (state.candidates[0].cost.answers, state.cost.answers) == (228, 228)
    assert json.loads(state.model_dump_json())["candidates"][0]["cost"]["answers"] == 228
    row = EvaluationRow.from_status(["c0001", "succeeded", 228], ["id", "status", "questions"])
    assert row.answers == 228


def test_the_artifacts_of_an_old_checkpoint_are_written_as_before(tmp_path: Path) -> None:
    state = RunState.load(RUN_DIR)
    run = load_started_run(RUN_DIR / "run.yaml")
    write_artifacts(
        tmp_path, state, DecisionSpace(run.spec, state.num_layers, tuple(state.profile))
    )
    # The same rows and columns, and columns since added: indistinguishable_from and the standard
    # deviations, empty (that version measured no token error), and validated (false).
    written = list(csv.DictReader((tmp_path / PARETO_FILE).open()))
    before = list(csv.DictReader((RUN_DIR / PARETO_FILE).open()))
    assert [{k: row[k] for k in before[0]} for row in written] == before
    assert set(written[0]) - set(before[0]) == {
        "indistinguishable_from",
        "f1_std",
        "f2_std",
        "validated",
    }
    for row in written:
        assert (row["indistinguishable_from"], row["f1_std"], row["f2_std"]) == ("", "", "")
        assert row["validated"] == "false"
    # The same values under the same keys (a candidate's attempts now come first), and
    # the fields since added, empty.
    results = json.loads((tmp_path / RESULTS_FILE).read_text())
    assert within(json.loads((RUN_DIR / RESULTS_FILE).read_text()), results)
    assert all(c["objectives_std"] is None for c in results["candidates"])
    assert all(c["failures_forgiven"] == 0 for c in results["candidates"])  # never retried
    assert results["candidates"][2]["reasons"]


def within(old: object, new: object) -> bool:
    """Whether ``new`` holds every value of ``old`` under the same keys (and maybe more)."""
    if isinstance(old, dict):
        return isinstance(new, dict) and all(k in new and within(v, new[k]) for k, v in old.items())
    if isinstance(old, list):
        return isinstance(new, list) and len(old) == len(new) and all(map(within, old, new))
    return old == new


def test_an_old_run_resumes_where_it_stopped(volume: Path) -> None:
    # The spec it started with, as its user has it now (batchSize, since removed, left out).
    run = load_started_run(volume / "runs" / "old" / "run.yaml")
    before = RunState.load(volume / "runs" / "old")
    executor = FakeExecutor(volume, deadline_seconds=120)
    try:
        state = Controller(run, volume, executor, poll_seconds=0.05).run_to_end()
    finally:
        executor.close()
    assert state.phase == "Succeeded", state.message
    assert [c.id for c in state.candidates] == ["c0001", "c0002", "c0003", "c0004"]
    # Nothing evaluated again (the search's estimates are new: that version had none).
    assert [c.model_dump(exclude={"estimate"}) for c in state.candidates[:2]] == [
        c.model_dump(exclude={"estimate"}) for c in before.candidates[:2]
    ]
    assert all(c.estimate is not None for c in state.candidates)
    resumed = state.candidate("c0003")
    assert (resumed.status, resumed.attempts, len(resumed.reasons)) == ("succeeded", 2, 1)
    # The second attempt ran once, under its own number: the first one's crash stays told.
    work_dir = volume / "runs" / "old" / "candidates" / "c0003"
    assert sorted(p.name for p in work_dir.glob("attempt-*.pid")) == ["attempt-1.pid"]
    assert "injected crash of c0003 attempt 0" in resumed.reasons[0]
