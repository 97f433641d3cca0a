"""A stand-in for GPU evaluation: runs a task with synthetic scores, as a subprocess.

``python fake_tasks.py TASK.json --volume DIR`` carries out profile tasks for real and
scores evaluate tasks from their merge weights instead of serving a model: accuracy
rises with the weights (early layers count more), output tokens rise with their mean.
The base (all weights 0) and the expert (all 1) anchor the scale. It writes the same
``result.json`` / ``error.json`` as ``paretomerge task``.

Environment: ``FAKE_FAIL`` lists ``task:attempt[:how]`` items (``*`` for every attempt),
e.g. ``c0002:0,c0005:*:merge``; ``task`` is a task id or ``run/task``, either may be a
glob (``doomed/c*``); ``how`` is ``crash`` (the default: exit 3 with no error
file), ``merge`` (a merge error, recorded in ``error.json`` like a real one) or ``hang``
(sleeps until the Job's ``activeDeadlineSeconds`` or the executor's deadline kills it).
``FAKE_SECONDS`` makes each evaluation take longer.

A screened candidate (a task with ``stages``) is scored stage by stage as the real task
is: after stage ``k`` its ``stages/stage-<k>.json`` holds its scores on the share of the
questions asked so far (the standard errors of that many questions), then it waits
``FAKE_STAGE_SECONDS`` (default 1) and goes on unless the controller wrote ``stop.json``.
``FAKE_DOMINATED`` (a glob of task ids) scores a candidate as a clearly dominated merge
would score: the base's accuracy at the expert's length; ``FAKE_CLOSE`` (a glob) scores
an evaluation one standard error more accurate than the base on its first benchmark (an
expert's anchor that cannot be told from the base's there). An evaluation asked ``repeats`` times has standard
errors smaller by ``sqrt(repeats)``.

On the test control plane, :func:`write_paretomerge_shim` puts a ``paretomerge`` first on
the node simulator's PATH that sends ``paretomerge task ...`` here (each step of a
candidate Job: ``--step merge`` in the init container, ``--step evaluate`` in the main
one) and every other command (the controller) to the real one. The attempt of a Pod is
read from its name (``<run>-<task>-a<attempt>-<suffix>``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import stat
import sys
import time
from fnmatch import fnmatchcase as fnmatch
from pathlib import Path

import numpy as np
from builders import run_manifest

from paretomerge.executors import LocalExecutor
from paretomerge.questions import stage_counts
from paretomerge.results import (
    BenchmarkScore,
    EvaluateTaskResult,
    EvaluationCost,
    EvaluationResult,
    ProfileResult,
    StageResult,
)
from paretomerge.run_layout import RunLayout
from paretomerge.screening_files import (
    EVAL_DIR,
    screening_stage_file,
    stop_requested,
    write_screening_stage,
)
from paretomerge.spec import load_run
from paretomerge.tasks import (
    ERROR_FILE,
    RESULT_FILE,
    EvaluateTask,
    ProfileTask,
    read_task,
    run_task,
    write_result,
)


def synthetic_scores(
    layer_weights: list[float], head_weight: float, benchmarks: list[str], repeats: int = 1
) -> dict[str, BenchmarkScore]:
    w = np.asarray(layer_weights)
    emphasis = np.linspace(2.0, 0.5, len(w))
    capability = float(emphasis @ w / emphasis.sum())
    verbosity = float(np.mean(np.append(w, head_weight)) ** 1.5)
    return {
        name: BenchmarkScore(
            name=name,
            accuracy=0.2 + 0.6 * capability ** (1.0 + 0.3 * k),
            accuracy_stderr=0.05 / repeats**0.5,
            mean_output_tokens=20.0 + 200.0 * verbosity,
            mean_output_tokens_stderr=4.0 / repeats**0.5,
            thinking_closed=1.0,
            n=30,
            repeats=repeats,
        )
        for k, name in enumerate(benchmarks)
    }


def dominated_scores(benchmarks: list[str]) -> dict[str, BenchmarkScore]:
    """How a clearly dominated merge scores: the base's skill at the expert's length."""
    expert_tokens = synthetic_scores([1.0], 1.0, benchmarks)
    return {
        name: base.model_copy(update={"mean_output_tokens": expert_tokens[name].mean_output_tokens})
        for name, base in synthetic_scores([0.0], 0.0, benchmarks).items()
    }


def close_scores(scores: dict[str, BenchmarkScore]) -> dict[str, BenchmarkScore]:
    """``scores`` as an expert barely better than the base on the first benchmark would
    score: there, the base's accuracy plus one standard error."""
    first = next(iter(scores))
    base = synthetic_scores([0.0], 0.0, [first])[first]
    close = scores[first].model_copy(
        update={"accuracy": base.accuracy + scores[first].accuracy_stderr}
    )
    return scores | {first: close}


def synthetic_cost(
    scores: dict[str, BenchmarkScore], merge_seconds: float, gpus: int
) -> EvaluationCost:
    """The cost of answering as ``scores`` say: every answer's mean tokens, a server that
    starts in 2 s and generates 100 tokens a second."""
    output_tokens = sum(round(s.mean_output_tokens * s.n * s.repeats) for s in scores.values())
    return EvaluationCost(
        answers=sum(s.n * s.repeats for s in scores.values()),
        output_tokens=output_tokens,
        merge_seconds=merge_seconds,
        serve_seconds=2.0,
        generate_seconds=output_tokens / 100.0,
        gpus=gpus,
    )


def injected_failure(task, attempt: int) -> str | None:
    """How attempt ``attempt`` of ``task`` is to fail (see ``FAKE_FAIL``), or None."""
    # work_dir: <runs>/<run>/profile, or <runs>/<run>/{anchors,candidates}/<id>
    parts = Path(task.work_dir).parts
    run = parts[-2] if isinstance(task, ProfileTask) else parts[-3]
    for item in filter(None, os.environ.get("FAKE_FAIL", "").split(",")):
        pattern, which, *how = item.split(":")
        matches = fnmatch(task.id, pattern) or fnmatch(f"{run}/{task.id}", pattern)
        if matches and which in ("*", str(attempt)):
            return how[0] if how else "crash"
    return None


def current_attempt(work_dir: Path) -> int:
    """The attempt being run: from the Pod's name on the control plane, else from the
    local executor's ``attempt-<k>.pid`` files."""
    match = re.search(r"-a(\d+)-[a-z0-9]{5}$", os.environ.get("HOSTNAME", ""))
    if match:
        return int(match.group(1))
    return len(list(work_dir.glob("attempt-*.pid"))) - 1


def main(task_file: Path, volume: Path, step: str = "all") -> int:
    task = read_task(task_file)
    work_dir = volume / task.work_dir
    attempt = current_attempt(work_dir)
    failure = injected_failure(task, attempt)
    if failure == "merge" and step in ("merge", "all"):
        message = f"injected merge error of {task.id} attempt {attempt}"
        (work_dir / ERROR_FILE).write_text(json.dumps({"step": "merge", "message": message}))
        print(message, file=sys.stderr)
        return 1
    if step == "merge":
        return 0
    time.sleep(float(os.environ.get("FAKE_SECONDS", "0")))
    if failure == "hang":
        time.sleep(24 * 3600)
    if failure == "crash":
        print(f"injected crash of {task.id} attempt {attempt}", file=sys.stderr)
        return 3
    if not isinstance(task, EvaluateTask):
        run_task(task_file, volume)
        return 0
    if task.plan is not None:
        weights, head = task.plan.layer_weights, task.plan.head_weight
    else:
        profile = (RunLayout(work_dir.parent.parent).profile / RESULT_FILE).read_text()
        num_layers = len(ProfileResult.model_validate_json(profile).layers)
        value = 0.0 if task.role == "base" else 1.0
        weights, head = [value] * num_layers, value
    benchmarks = [b.name for b in task.objectives.benchmarks]
    scores = synthetic_scores(weights, head, benchmarks, task.repeats or 1)
    if fnmatch(task.id, os.environ.get("FAKE_DOMINATED", "-")):
        scores = dominated_scores(benchmarks)
    if fnmatch(task.id, os.environ.get("FAKE_CLOSE", "-")):
        scores = close_scores(scores)
    stopped_after = None if task.stages is None else staged(task, work_dir, scores)
    if stopped_after is not None:
        scores = partial(scores, task, stopped_after)
    merge_seconds = 0.01 if task.plan is not None else 0.0
    result = EvaluateTaskResult(
        task=task.id,
        role=task.role,
        evaluation=EvaluationResult(scores=scores, seconds=0.0, stopped_after=stopped_after),
        seconds={"evaluate": 0.01} | ({"merge": merge_seconds} if task.plan is not None else {}),
        cost=synthetic_cost(scores, merge_seconds, task.gpus),
    )
    (work_dir / ERROR_FILE).unlink(missing_ok=True)
    write_result(result, work_dir)
    return 0


def partial(scores: dict[str, BenchmarkScore], task: EvaluateTask, stage: int):
    """``scores`` as the first ``stage`` stages measure them: the same means, on fewer
    questions, so with standard errors larger by ``sqrt(n / asked)``."""
    return {
        name: score.model_copy(
            update={
                "n": (asked := stage_counts(score.n, task.stages.shares)[stage - 1]),
                "accuracy_stderr": score.accuracy_stderr * (score.n / asked) ** 0.5,
                "mean_output_tokens_stderr": score.mean_output_tokens_stderr
                * (score.n / asked) ** 0.5,
            }
        )
        for name, score in scores.items()
    }


def staged(task: EvaluateTask, work_dir: Path, scores: dict[str, BenchmarkScore]) -> int | None:
    """Write each stage's file as the real task does, going on until the last stage or
    the controller's stop; returns the stage it stopped after (``None``: it finished)."""
    count = len(task.stages.shares)
    for stage in range(1, count + 1):
        if stage > 1 and stop_requested(work_dir):
            return stage - 1
        if not screening_stage_file(work_dir / EVAL_DIR, stage).exists():  # not asked again
            asked = partial(scores, task, stage)
            done = StageResult(
                stage=stage,
                stages=count,
                scores=asked,
                seconds=0.0,
                cost=synthetic_cost(asked, 0.0, 0),
            )
            write_screening_stage(work_dir / EVAL_DIR, done)
            if stage < count:
                time.sleep(float(os.environ.get("FAKE_STAGE_SECONDS", "1")))
    return None


class FakeExecutor(LocalExecutor):
    """The local executor, running this script instead of ``paretomerge task``."""

    def command(self, task, attempt: int) -> list[str]:
        task_file = self.volume / task.work_dir / "task.json"
        return [sys.executable, __file__, str(task_file), "--volume", str(self.volume)]


def run_controller(run_file: Path, volume: Path) -> str:
    """Run a whole run with fake evaluations; returns the final phase."""
    from paretomerge.controller.loop import Controller  # BoTorch: only in the controller process

    run = load_run(run_file)
    executor = FakeExecutor(volume, deadline_seconds=120)
    try:
        return Controller(run, volume, executor, poll_seconds=0.05).run_to_end().phase
    finally:
        executor.close()


def cluster_run(namespace: str, name: str, budget: int, parallelism: int, **execution) -> dict:
    """A ParetoMergeRun for the test control plane whose candidates suit this fake: Sobol
    proposals (no model fits), no GPU, small requests; ``execution`` adds fields."""
    return run_manifest(
        name,
        namespace,
        search={"strategy": "sobol", "budget": budget, "initialPoints": 1, "initialSolutions": []},
        evaluation={"engine": "transformers", "maxTokens": 64},
        execution={
            "parallelism": parallelism,
            "keepMergedModels": "none",
            "resources": {"gpus": 0, "memory": "256Mi", "cpu": "100m"},
            **execution,
        },
    )


def write_paretomerge_shim(directory: Path) -> Path:
    """Write ``directory/paretomerge``: ``task`` goes to this script, everything else to
    the real command of this environment. Returns ``directory`` (to put first on PATH)."""
    directory.mkdir(parents=True, exist_ok=True)
    real = shutil.which("paretomerge", path=str(Path(sys.executable).parent))
    shim = directory / "paretomerge"
    shim.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = task ]; then shift; exec "{sys.executable}" "{__file__}" "$@"; fi\n'
        f'exec "{real}" "$@"\n'
    )
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    return directory


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="a fake `paretomerge task`")
    parser.add_argument("task_file", type=Path)
    parser.add_argument("--volume", type=Path, required=True)
    parser.add_argument("--step", default="all")
    return parser.parse_args(argv)


if __name__ == "__main__":
    if sys.argv[1] == "run":
        print(run_controller(Path(sys.argv[2]), Path(sys.argv[3])))
        sys.exit(0)
    arguments = parse_arguments(sys.argv[1:])
    sys.exit(main(arguments.task_file, arguments.volume, arguments.step))
