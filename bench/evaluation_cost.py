"""What one candidate of the demo pair costs: merge, server start and generation seconds.

Builds (or reuses, ``--pair``) the demo's instruct/thinking pair, then runs one
candidate the way a run does: ``paretomerge task`` in a fresh process on a layer-wise
``task_arithmetic`` plan with random weights, served by the ``transformers`` engine
(the built-in server) and evaluated through evalscope on the demo's benchmark, with the
demo run's evaluation settings. The task's own :class:`~paretomerge.results.EvaluationCost`
gives the seconds of each step. The baseline, measured in the same run, is a plain copy
of the same bytes: ``shutil.copytree`` of the instruct model's directory (the size of
the merged model), the floor for writing a model. Every step runs ``--repeats`` times
and its median is reported.

Usage: ``nice -n 10 python bench/evaluation_cost.py [--pair DIR] [--questions 40]
[--repeats 3]``.

Measured on the shared 2-core machine (load average 4.2 to 4.8 while it ran; the CPU
time of the task and its server is the steadier figure), the demo's 40 questions, 3 runs::

    one candidate of the demo pair (10.7 MB of weights), 40 answers, median 394 output tokens

    step                                 seconds    x copy
    copy of the same bytes (baseline)      0.009       1.0
    merge (mergekit)                       4.286     456.8
    server start (until /health)          13.577    1447.0
    generation (evalscope)                41.674    4441.8
    candidate (all three)                 59.537    6345.6
    CPU seconds of the task and server    41.787

Other runs under other loads gave 0.2 to 4.3 s of merge, 6 to 13.6 s of server start
and 7 to 140 s of generation. On a model this small every step is a fixed cost (the
imports and start of mergekit, of the server, of evalscope), not its bytes: the copy of
10.7 MB from the page cache takes 10 ms. The server's start alone is worth three merges:
it is paid once per candidate, which is what evaluating every benchmark and every stage
within one served model saves.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from paretomerge.checkpoint import Checkpoint
from paretomerge.demo.pair import build_demo_pair
from paretomerge.demo.runner import MODELS_DIR, demo_manifest
from paretomerge.merge import plan_from_weights
from paretomerge.results import EvaluateTaskResult
from paretomerge.spec import parse_run
from paretomerge.tasks import RESULT_FILE, EvaluateTask, write_task

STEPS = ("merge", "serve", "generate")


def candidate_task(volume: Path, questions: int, attempt: int, seed: int) -> EvaluateTask:
    """One demo candidate on ``volume``: random per-layer weights in [0, 1], the demo
    run's evaluation of ``questions`` questions."""
    run = parse_run(demo_manifest("bench", "layer", 4, 1, seed=0, limit=questions))
    spec = run.spec
    num_layers = Checkpoint(volume / spec.models.base.path).num_layers
    rng = random.Random(seed + attempt)
    plan = plan_from_weights(
        spec.models.base.path,
        [e.path for e in spec.models.experts],
        spec.merge.method,
        [rng.random() for _ in range(num_layers + 1)],
        num_layers,
    )
    return EvaluateTask(
        id=f"c{attempt + 1:04d}",
        work_dir=f"runs/bench/candidates/c{attempt + 1:04d}",
        role="merged",
        plan=plan,
        evaluation=spec.evaluation,
        objectives=spec.objectives,
    )


def run_candidate(task: EvaluateTask, volume: Path) -> tuple[EvaluateTaskResult, float]:
    """``paretomerge task`` in a fresh process, as the local executor starts it; its
    result and the CPU seconds (user + system) of the task and its model server."""
    task_file = write_task(task, volume)
    command = [sys.executable, "-m", "paretomerge", "task", str(task_file), "--volume", str(volume)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{task.id} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result = EvaluateTaskResult.model_validate_json(
        (volume / task.work_dir / RESULT_FILE).read_text()
    )
    return result, cpu


def copy_seconds(model: Path, out: Path) -> float:
    """Seconds to copy ``model``'s directory to ``out`` (removed first and after)."""
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    shutil.copytree(model, out)
    seconds = time.perf_counter() - started
    shutil.rmtree(out)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pair", type=Path, help="where the demo pair is (built there if not)")
    parser.add_argument("--questions", type=int, default=40, help="questions asked (40: all)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="evaluation-cost-"))
    pair_dir = args.pair or workdir / "pair"
    started = time.perf_counter()
    build_demo_pair(pair_dir)
    print(f"demo pair ready in {pair_dir} ({time.perf_counter() - started:.0f} s)")
    volume = workdir / "volume"
    shutil.rmtree(volume, ignore_errors=True)
    shutil.copytree(pair_dir, volume / MODELS_DIR)  # inside the volume, as a run needs it
    model = volume / MODELS_DIR / "instruct"
    size = sum(path.stat().st_size for path in model.rglob("*") if path.is_file())

    copies, costs, cpus = [], [], []
    for attempt in range(args.repeats):
        copies.append(copy_seconds(model, workdir / "copy"))
        task = candidate_task(volume, args.questions, attempt, args.seed)
        result, cpu = run_candidate(task, volume)
        costs.append(result.cost)
        cpus.append(cpu)
    copy = statistics.median(copies)
    medians = {
        step: statistics.median(getattr(c, f"{step}_seconds") for c in costs) for step in STEPS
    }
    answers = costs[0].answers
    tokens = statistics.median(c.output_tokens for c in costs)
    print(
        f"\none candidate of the demo pair ({size / 1e6:.1f} MB of weights), {answers} answers, "
        f"median {tokens:.0f} output tokens; median of {args.repeats} runs\n"
    )
    print(f"{'step':<34} {'seconds':>9} {'x copy':>9}")
    print(f"{'copy of the same bytes (baseline)':<34} {copy:>9.3f} {1.0:>9.1f}")
    names = {
        "merge": "merge (mergekit)",
        "serve": "server start (until /health)",
        "generate": "generation (evalscope)",
    }
    for step in STEPS:
        print(f"{names[step]:<34} {medians[step]:>9.3f} {medians[step] / copy:>9.1f}")
    total = sum(medians.values())
    print(f"{'candidate (all three)':<34} {total:>9.3f} {total / copy:>9.1f}")
    cpu = statistics.median(cpus)
    print(f"{'CPU seconds of the task and server':<34} {cpu:>9.3f}")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    summary = {"copy": copy, **medians, "cpu": cpu, "answers": answers, "output_tokens": tokens}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
