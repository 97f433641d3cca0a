"""One look at everything a run needs, before any work: every problem at once.

A run otherwise finds its problems one at a time, each after minutes of work: a missing
expert after the profile, a broken benchmark line after the anchors. :func:`preflight`
reads what the run will read and lists every problem, each under the field of the run
file it comes from, its message naming the file, tensor or command at fault:

- every path of the run stays inside the volume, symbolic links followed (a path that
  leads out is named and not read);
- every model directory: ``config.json`` parses, the safetensors are complete (the
  index's shards exist, every header reads, no tensor runs past its file's end), and
  every expert has the base's architecture, layer count, tensor names and shapes;
- every benchmark's data, line by line (the checks evaluation itself makes,
  :func:`~paretomerge.evaluate.benchmarks.benchmark_problems`);
- with the activation prior, experts of the base's hidden size, and search questions
  to measure it on in every benchmark;
- the engine: ``vllm`` on the tasks' ``PATH`` when they run on this machine; a
  ``GET /models`` of an ``endpoint``;
- a cost budget can be counted: ``outputTokens`` from an ``endpoint`` that reports
  ``usage.completion_tokens`` (one one-token completion asks it), ``gpuHours`` from
  evaluations that get a GPU;
- the run directory can be written, and its file system has room for the merges that
  ``keepMergedModels`` keeps at once.

It reads headers, configs and data files only: seconds, not the minutes of a profile.
:func:`run_file_problems` runs it on a run file with bad fields too, on what parsed, so
that ``paretomerge validate`` and ``run`` name the file's every problem in one attempt.
"""

from __future__ import annotations

import shutil
import tempfile
import urllib.error
from pathlib import Path

from paretomerge.activations import calibration_problems
from paretomerge.checkpoint import Checkpoint, CheckpointError, check_compatible
from paretomerge.evaluate.benchmarks import benchmark_problems
from paretomerge.evaluate.serving import (
    SERVER_PROGRAMS,
    ServingError,
    endpoint_api_key,
    endpoint_completion_tokens,
    endpoint_model_ids,
)
from paretomerge.run_layout import RunLayout
from paretomerge.spec import ParetoMergeRun, RunFileCheck, SpecProblem
from paretomerge.volume import (
    OutsideVolumeError,
    in_volume,
    outside_volume_problems,
    volume_paths,
)

BASE_FIELD = "spec.models.base.path"
ENGINE_FIELD = "spec.evaluation.engine"
RUNS_FIELD = "spec.execution.storage.runsPath"
ACTIVATIONS_FIELD = "spec.search.prior.activations"


class PreflightFailed(RuntimeError):
    """The preflight found problems; the message lists them all, one a line."""

    def __init__(self, problems: list[SpecProblem]):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"the preflight found {len(problems)} problem(s), nothing was started:\n{lines}"
        )


def preflight(
    run: ParetoMergeRun,
    volume: Path,
    *,
    tasks_path: str | None,
    candidates_left: int,
    evaluation_gpus: int | None = None,
) -> list[SpecProblem]:
    """Every problem that would stop ``run`` on ``volume``: paths out of the volume,
    models, benchmark data, the engine, a cost budget that cannot be counted, the run
    directory (none: ``[]``).

    Args:
        tasks_path: the ``PATH`` of tasks that run on this machine, where ``vllm`` must be
            found; ``None`` where tasks run elsewhere (the eval image brings vLLM).
        candidates_left: candidates still to merge (the budget less those evaluated), for
            ``keepMergedModels: all``.
        evaluation_gpus: the GPUs an evaluation gets where the run's executor runs it
            (what GPU-hours are counted with); ``None``: as ``execution.resources`` says.
    """
    spec = run.spec
    outside = {p.field: p for p in outside_volume_problems(spec, volume)}
    problems = list(outside.values())
    checkpoints = {
        field: _checkpoint(field, volume / path, problems)
        for field, path in volume_paths(spec)
        if field.startswith("spec.models.") and field not in outside
    }
    base = checkpoints.get(BASE_FIELD)
    for field, expert in checkpoints.items():
        if field != BASE_FIELD and base is not None and expert is not None:
            try:
                check_compatible(base, expert)
            except CheckpointError as error:
                problems.append(SpecProblem(field, str(error)))
    for i, benchmark in enumerate(spec.objectives.benchmarks):
        field = f"spec.objectives.benchmarks[{i}].path"
        if field not in outside:
            problems += [SpecProblem(field, p) for p in benchmark_problems(benchmark, volume)]
    if spec.search.prior.activations:
        problems += _activation_problems(run, volume, checkpoints)
    engine_problems = _engine_problems(run, tasks_path)
    problems += engine_problems
    if not engine_problems:  # an endpoint that does not answer is named once
        problems += _cost_budget_problems(run, tasks_path, evaluation_gpus)
    if RUNS_FIELD not in outside:
        model_bytes = base.total_bytes if base is not None else 0
        problems += _storage_problems(run, volume, model_bytes, candidates_left)
    return problems


def run_file_problems(
    checked: RunFileCheck, volume: Path, *, tasks_path: str | None
) -> list[SpecProblem]:
    """Every problem of a run file at once, for a run not started yet: those of its fields
    and across them (:func:`~paretomerge.spec.check_run`), then the preflight's on the run
    as far as it parsed (:func:`run_file_preflight`).

    Args:
        tasks_path: as for :func:`preflight`.
    """
    return [*checked.problems, *run_file_preflight(checked, volume, tasks_path=tasks_path)]


def run_file_preflight(
    checked: RunFileCheck, volume: Path, *, tasks_path: str | None
) -> list[SpecProblem]:
    """The preflight's problems of a run not started yet, on the run as far as it parsed.
    Where a field the preflight reads did not parse, the preflight waits for it, and the
    one problem says so (:meth:`~paretomerge.spec.RunFileCheck.preflight_waits`).

    Args:
        tasks_path: as for :func:`preflight`.
    """
    run = checked.preflight_run()
    if run is None:
        return [checked.preflight_waits()]
    return preflight(run, volume, tasks_path=tasks_path, candidates_left=run.spec.search.budget)


def _checkpoint(field: str, path: Path, problems: list[SpecProblem]) -> Checkpoint | None:
    """The model at ``path``, or ``None`` with its problem added to ``problems``."""
    try:
        return Checkpoint(path)
    except CheckpointError as error:
        problems.append(SpecProblem(field, str(error)))
        return None


def _activation_problems(
    run: ParetoMergeRun, volume: Path, checkpoints: dict[str, Checkpoint | None]
) -> list[SpecProblem]:
    """What stops the activation prior: an expert whose hidden size is not the base's
    (hidden states are compared token by token), a benchmark that leaves the search no
    question to measure them on."""
    problems = []
    base = checkpoints.get(BASE_FIELD)
    for i in range(len(run.spec.models.experts)):
        expert = checkpoints.get(f"spec.models.experts[{i}].path")
        if base is None or expert is None:
            continue
        sizes = base.config.get("hidden_size"), expert.config.get("hidden_size")
        if sizes[0] != sizes[1]:
            problems.append(
                SpecProblem(
                    ACTIVATIONS_FIELD,
                    f"compares hidden states token by token, but spec.models.experts[{i}] "
                    f"has hidden size {sizes[1]} and the base {sizes[0]}",
                )
            )
    return problems + list(calibration_problems(run.spec, volume))


def _engine_problems(run: ParetoMergeRun, tasks_path: str | None) -> list[SpecProblem]:
    evaluation = run.spec.evaluation
    if evaluation.engine == "vllm" and tasks_path is not None:
        program = SERVER_PROGRAMS["vllm"][0]
        if shutil.which(program, path=tasks_path) is None:
            return [
                SpecProblem(
                    ENGINE_FIELD,
                    f"vllm: the command {program!r} is not on PATH: install vLLM into an "
                    "environment of its own and put its bin directory on PATH (see the "
                    "README's Evaluation)",
                )
            ]
    if evaluation.engine == "endpoint" and evaluation.endpoint is not None:
        return _endpoint_problems(run, remote=tasks_path is None)
    return []


def _endpoint_problems(run: ParetoMergeRun, *, remote: bool) -> list[SpecProblem]:
    """``GET /models`` of the endpoint answers and lists the model asked for. Where tasks
    run elsewhere their pods hold the API key, not this one: a refusal (401, 403) then
    shows the endpoint answers, and is enough."""
    endpoint = run.spec.evaluation.endpoint
    field = "spec.evaluation.endpoint.url"
    try:
        api_key = endpoint_api_key(endpoint)
    except ServingError as error:
        if not remote:
            return [SpecProblem("spec.evaluation.endpoint.apiKeySecret", str(error))]
        api_key = "EMPTY"
    try:
        served = endpoint_model_ids(endpoint.url.rstrip("/"), api_key, timeout=10)
    except ServingError as error:
        cause = error.__cause__
        refused = isinstance(cause, urllib.error.HTTPError) and cause.code in (401, 403)
        return [] if remote and refused else [SpecProblem(field, str(error))]
    if endpoint.model is not None and endpoint.model not in served:
        return [
            SpecProblem(
                "spec.evaluation.endpoint.model",
                f"{endpoint.model!r} is not among the models {endpoint.url} serves: "
                f"{', '.join(served)}",
            )
        ]
    return []


def _cost_budget_problems(
    run: ParetoMergeRun, tasks_path: str | None, evaluation_gpus: int | None
) -> list[SpecProblem]:
    """A cost budget this run can count: GPU-hours of evaluations that get a GPU here
    (where the spec asks for none the spec's check says so), output tokens that an
    ``endpoint`` reports (a one-token completion must carry ``usage.completion_tokens``;
    the servers the run starts itself report them)."""
    budget, spec = run.spec.search.cost_budget, run.spec
    if budget is None:
        return []
    if budget.unit == "gpuHours":
        if evaluation_gpus == 0 and spec.execution.resources.gpus > 0:
            return [
                SpecProblem(
                    "spec.search.costBudget.gpuHours",
                    "the evaluations run on no GPU here (CUDA_VISIBLE_DEVICES, or none "
                    "found): nothing would be counted (give outputTokens, or the GPUs)",
                )
            ]
        return []
    endpoint = spec.evaluation.endpoint
    if spec.evaluation.engine != "endpoint" or endpoint is None:
        return []
    try:
        api_key = endpoint_api_key(endpoint)
    except ServingError:
        return []  # in a controller pod the key is the candidates' alone: not asked
    base_url = endpoint.url.rstrip("/")
    try:
        model = endpoint.model or next(iter(endpoint_model_ids(base_url, api_key, 10)), "")
        tokens = endpoint_completion_tokens(base_url, api_key, model, timeout=30)
    except ServingError as error:
        return [SpecProblem("spec.search.costBudget.outputTokens", str(error))]
    if tokens is not None:
        return []
    return [
        SpecProblem(
            "spec.search.costBudget.outputTokens",
            f"{endpoint.url} reports no usage.completion_tokens in its completions, so "
            "the output tokens cannot be counted (give gpuHours, or an endpoint that "
            "reports usage)",
        )
    ]


def _storage_problems(
    run: ParetoMergeRun, volume: Path, model_bytes: int, candidates_left: int
) -> list[SpecProblem]:
    """The run directory can be written, and has room for the merged models kept at once:
    ``parallelism`` of them with ``keepMergedModels: none`` or ``pareto`` (how many the
    front will keep cannot be known ahead), every candidate left with ``all``."""
    layout = RunLayout.of(run)
    try:  # runsPath may stay inside while the run's own directory is a link out of it
        in_volume(volume, str(layout.root))
    except OutsideVolumeError as error:
        return [SpecProblem(RUNS_FIELD, str(error))]
    run_dir = layout.on(volume).root
    existing = next(p for p in (run_dir, *run_dir.parents) if p.exists())
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".preflight-"):
            pass
    except OSError as error:
        return [SpecProblem(RUNS_FIELD, f"the run directory {run_dir} cannot be written: {error}")]
    execution = run.spec.execution
    kept = candidates_left if execution.keep_merged_models == "all" else execution.parallelism
    needed, free = kept * model_bytes, shutil.disk_usage(existing).free
    if needed <= free:
        return []
    return [
        SpecProblem(
            "spec.execution.keepMergedModels",
            f"{execution.keep_merged_models}: {kept} merged model(s) of {_size(model_bytes)} "
            f"need {_size(needed)} at once, and {existing} has {_size(free)} free",
        )
    ]


def _size(num_bytes: float) -> str:
    """``num_bytes`` in the largest binary unit that keeps it at 1 or more."""
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if num_bytes < 1024:
            return f"{num_bytes:.3g} {unit}"
        num_bytes /= 1024
    return f"{num_bytes:.3g} TiB"
