"""A failed run resumes after a fix, re-evaluating nothing that had finished.

The run is real: a real profile and real merges of tiny models, evalscope against the
fake ``vllm`` of :mod:`fake_vllm` (every answer scripted, no GPU), tasks as processes of
the local executor; the second run is the ``paretomerge run`` command itself. What the
test does by hand is what a user would: a dataset goes missing while the run goes on, and
comes back.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from builders import run_manifest
from fake_vllm import fake_vllm_environment
from test_stops import pair, volume  # noqa: F401 - fixtures: a tiny pair, the sevens data

from paretomerge.controller.loop import Controller
from paretomerge.controller.state import RunState
from paretomerge.executors import LocalExecutor
from paretomerge.spec import parse_run

RUN = "resumed"
SEVENS = {"name": "sevens", "type": "jsonl", "path": "data/sevens.jsonl", "format": "numeric"}


@pytest.fixture
def environment(tmp_path: Path) -> Iterator[dict[str, str]]:
    with fake_vllm_environment(tmp_path / "bin") as env:
        yield env


def manifest() -> dict:
    return run_manifest(
        RUN,
        search={"budget": 3, "initialPoints": 3, "initialSolutions": [0.5]},
        objectives={"benchmarks": [SEVENS]},
        evaluation={"engine": "vllm", "maxTokens": 64, "timeoutSeconds": 120},
        execution={
            "parallelism": 1,
            "candidateRetries": 0,
            "maxFailedCandidates": 0,
            "keepMergedModels": "none",
        },
    )


def attempts_run(run_dir: Path) -> dict[str, list[str]]:
    """Every attempt each task started, by its work directory: the work done."""
    return {
        str(pid.parent.relative_to(run_dir)): sorted(
            p.name for p in pid.parent.glob("attempt-*.pid")
        )
        for pid in run_dir.rglob("attempt-0.pid")
    }


def test_a_run_that_failed_on_a_missing_dataset_succeeds_once_it_is_back(
    volume: Path,  # noqa: F811
    environment: dict[str, str],
) -> None:
    data, aside = volume / "data" / "sevens.jsonl", volume / "sevens.jsonl.aside"

    def dataset_lost_after_the_first_candidate(state: RunState) -> None:
        if state.count("succeeded") == 1 and data.exists():
            data.rename(aside)

    executor = LocalExecutor(volume, deadline_seconds=600, env=environment)
    try:
        failed = Controller(
            parse_run(manifest()),
            volume,
            executor,
            on_update=dataset_lost_after_the_first_candidate,
            poll_seconds=0.2,
        ).run_to_end()
    finally:
        executor.close()
    assert failed.phase == "Failed", failed.message
    assert "more than maxFailedCandidates (0)" in failed.message
    assert "data/sevens.jsonl: no such file" in failed.message
    run_dir = volume / "runs" / RUN
    before, work_before = RunState.load(run_dir), attempts_run(run_dir)
    assert [c.status for c in before.candidates] == ["succeeded", "failed"]

    aside.rename(data)  # the fix
    run_file = volume / "run.yaml"
    run_file.write_text(yaml.safe_dump(manifest()))
    result = subprocess.run(
        [sys.executable, "-m", "paretomerge", "run", str(run_file)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    output = " ".join((result.stdout + result.stderr).split())
    assert f"retrying run {RUN}, which failed (1 candidates failed" in output
    assert "1 finished evaluation(s) kept; run again: c0002" in output

    after = RunState.load(run_dir)
    assert after.phase == "Succeeded", after.message
    assert [c.status for c in after.candidates] == ["succeeded"] * 3
    # What had finished is as it was: the profile, both anchors, the first candidate.
    assert (after.profile, after.anchors) == (before.profile, before.anchors)
    # (Its estimate moves as the search learns more; its evaluation does not.)
    moving = {"estimate"}
    assert after.candidates[0].model_dump(exclude=moving) == before.candidates[0].model_dump(
        exclude=moving
    )
    retried = after.candidate("c0002")
    assert (retried.attempts, retried.failures_forgiven) == (2, 1)
    assert "data/sevens.jsonl: no such file" in retried.reasons[0]
    # The work done: no finished task started again; the failed one once more.
    work_after = attempts_run(run_dir)
    assert {task: work_after[task] for task in work_before} == {
        **work_before,
        "candidates/c0002": ["attempt-0.pid", "attempt-1.pid"],
    }
    assert work_after["candidates/c0003"] == ["attempt-0.pid"]
