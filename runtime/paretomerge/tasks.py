"""The units of work a controller hands to an executor, and how each one is carried out.

A task is a small typed value written as ``task.json`` into its own work directory on
the run's volume; whoever runs it (a local subprocess, a container of a Kubernetes Job)
calls :func:`run_task` with the volume's local path, and the task leaves ``result.json``
(its typed result, its ``result_type``: see :mod:`paretomerge.results`) or
``error.json`` beside it. Every path in a task is relative to the volume, so the same
file works wherever the volume is mounted.

- :class:`ProfileTask`: the importance profile of the experts against the base (CPU).
- :class:`EvaluateTask`: evaluate a model; with a merge plan, merge it first (a
  candidate), without one evaluate the model as it is (an anchor). On Kubernetes the
  merge runs in an init container and the evaluation in the main one (``step``).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import time
import traceback
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from paretomerge.files import write_atomic
from paretomerge.merge.plan import MergePlan
from paretomerge.questions import QuestionSplit, QuestionStages
from paretomerge.results import (
    EvaluateTaskResult,
    EvaluationCost,
    EvaluationResult,
    ProfileResult,
)
from paretomerge.screening_files import EVAL_DIR, stop_requested
from paretomerge.spec import EvaluationSpec, ObjectivesSpec, SamplingSpec, VolumePath
from paretomerge.volume import OutsideVolumeError, in_volume

TASK_FILE = "task.json"
RESULT_FILE = "result.json"
ERROR_FILE = "error.json"
PROFILE_FILE = "profile.json"
MERGED_DIR = "merged"
# The merge step's seconds, for the evaluate step when they run apart (Kubernetes).
MERGE_SECONDS_FILE = "merge-seconds.json"
# Kubernetes shows this file's content as the container's termination message.
TERMINATION_LOG_ENV = "PARETOMERGE_TERMINATION_LOG"
Step = Literal["merge", "evaluate", "all"]


class TaskBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=40)
    work_dir: VolumePath


class ActivationPrior(BaseModel):
    """The activation profile a profile task measures besides the parameter profile, on
    ``questions`` (unformatted), and its share ``weight`` of the search's prior."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    questions: list[str] = Field(min_length=1)
    weight: float = Field(ge=0.0, le=1.0)


class ProfileTask(TaskBase):
    """Measure the per-layer divergence profile (``profile.json`` in the work dir), with
    ``activations`` also the activation profile (cached on the volume) and the prior that
    combines both."""

    result_type: ClassVar[type[ProfileResult]] = ProfileResult
    kind: Literal["profile"] = "profile"
    base: VolumePath
    experts: list[VolumePath]
    activations: ActivationPrior | None = None


class EvaluateTask(TaskBase):
    """Evaluate ``model``, or the merge of ``plan`` (paths in the plan are volume-relative).

    ``keep_merged`` keeps the merged weights in ``<work_dir>/merged`` after the
    evaluation; otherwise they are deleted (a 4B model is 8 GB). ``questions`` is the
    side of a held-out split it asks (``None``: every question), ``repeats`` how many
    times it asks each (``None``: as ``objectives`` says); ``gpus`` the GPUs its pod
    (or machine) gives the model server, as the executor that runs it knows them, for
    the GPU-seconds of its :class:`~paretomerge.results.EvaluationCost`. With
    ``stages`` (a screened candidate) it asks them stage by stage, and stops before the
    next stage once the controller has asked it to stop
    (:func:`~paretomerge.screening_files.request_stop`).
    """

    result_type: ClassVar[type[EvaluateTaskResult]] = EvaluateTaskResult
    kind: Literal["evaluate"] = "evaluate"
    role: Literal["base", "expert", "merged"]
    model: VolumePath | None = None
    plan: MergePlan | None = None
    keep_merged: bool = False
    evaluation: EvaluationSpec
    objectives: ObjectivesSpec
    questions: QuestionSplit | None = None
    repeats: int | None = Field(default=None, ge=1)
    stages: QuestionStages | None = None
    gpus: int = Field(default=0, ge=0)

    @property
    def sampling(self) -> SamplingSpec:
        if self.role == "base":
            return self.evaluation.base_sampling
        return self.evaluation.sampling


Task = Annotated[ProfileTask | EvaluateTask, Field(discriminator="kind")]
TASK_ADAPTER: TypeAdapter[Task] = TypeAdapter(Task)


class TaskFailure(RuntimeError):
    """A task that could not be completed; ``step`` says where (merge, evaluate, ...)."""

    def __init__(self, step: str, message: str):
        super().__init__(f"{step}: {message}")
        self.step = step
        self.message = message


def write_task(task: ProfileTask | EvaluateTask, volume: Path) -> Path:
    """Write ``task.json`` into a fresh work directory (earlier attempts' files removed)."""
    work_dir = volume / task.work_dir
    for name in (RESULT_FILE, ERROR_FILE, MERGE_SECONDS_FILE):
        (work_dir / name).unlink(missing_ok=True)
    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / TASK_FILE
    write_atomic(path, task.model_dump_json(indent=2) + "\n")
    return path


def read_task(path: Path) -> ProfileTask | EvaluateTask:
    return TASK_ADAPTER.validate_json(path.read_text())


def read_result(
    task: ProfileTask | EvaluateTask, volume: Path
) -> ProfileResult | EvaluateTaskResult | None:
    """The task's ``result.json`` as its ``result_type``, or ``None`` when it has none (yet).

    Raises:
        pydantic.ValidationError: the file is not a result of this task's kind.
    """
    path = volume / task.work_dir / RESULT_FILE
    if not path.exists():
        return None
    return task.result_type.model_validate_json(path.read_text())


def read_error(task: ProfileTask | EvaluateTask, volume: Path) -> str | None:
    path = volume / task.work_dir / ERROR_FILE
    if not path.exists():
        return None
    return json.loads(path.read_text()).get("message")


def merge_seconds(task: EvaluateTask, volume: Path) -> float | None:
    """The seconds the merge step of ``task``'s attempt took, when it ran in a step of
    its own (a Kubernetes init container) and left them; ``None`` otherwise."""
    path = volume / task.work_dir / MERGE_SECONDS_FILE
    return json.loads(path.read_text())["merge"] if path.exists() else None


def server_pid_file(task: ProfileTask | EvaluateTask, volume: Path) -> Path:
    """Where an attempt of ``task`` records its model server's process group while it runs."""
    from paretomerge.evaluate.serving import SERVER_PID_FILE

    return volume / task.work_dir / EVAL_DIR / SERVER_PID_FILE


def run_task(
    task_file: Path, volume: Path, step: Step = "all"
) -> ProfileResult | EvaluateTaskResult | None:
    """Carry out the task in ``task_file`` and write its result (or error) file.

    Returns:
        The result written, or ``None`` after the merge step alone.

    Raises:
        TaskFailure: after writing ``error.json`` with the step and the reason.
    """
    task = read_task(task_file)
    work_dir = volume / task.work_dir
    try:
        if isinstance(task, ProfileTask):
            result = _run_profile(task, volume)
        else:
            result = _run_evaluate(task, volume, step)
    except TaskFailure as failure:
        error = {"step": failure.step, "message": str(failure)}
        write_atomic(work_dir / ERROR_FILE, json.dumps(error, indent=2) + "\n")
        _write_termination_message(f"failed: {failure}")
        raise
    if result is not None:
        write_result(result, work_dir)
    return result


def write_result(result: ProfileResult | EvaluateTaskResult, work_dir: Path) -> None:
    """Leave ``result.json`` in ``work_dir`` and its summary as the termination message."""
    write_atomic(work_dir / RESULT_FILE, result.model_dump_json(indent=2) + "\n")
    _write_termination_message(_summary(result))


def _run_profile(task: ProfileTask, volume: Path) -> ProfileResult:
    from paretomerge.checkpoint import CheckpointError
    from paretomerge.importance import compute_profile

    started = time.monotonic()
    try:
        base = in_volume(volume, task.base)
        experts = [in_volume(volume, e) for e in task.experts]
        profile = compute_profile(base, experts)
    except (CheckpointError, OSError, ValueError) as error:
        raise TaskFailure("profile", str(error)) from error
    seconds = {"profile": time.monotonic() - started}
    if task.activations is not None:
        from paretomerge.activations import compute_activation_profile

        started = time.monotonic()
        try:
            profile.activation = compute_activation_profile(
                base, experts, task.activations.questions, volume=volume
            )
        except (OSError, ValueError) as error:
            raise TaskFailure("activations", str(error)) from error
        profile.activation_weight = task.activations.weight
        seconds["activations"] = time.monotonic() - started
    profile.write(volume / task.work_dir / PROFILE_FILE)
    return ProfileResult(
        task=task.id,
        layers=profile.layers,
        head=profile.head,
        prior=profile.prior if profile.activation is not None else None,
        seconds=seconds,
    )


def _run_evaluate(task: EvaluateTask, volume: Path, step: Step) -> EvaluateTaskResult | None:
    work_dir = volume / task.work_dir
    merged = work_dir / MERGED_DIR
    seconds: dict[str, float] = {}
    if task.plan is not None and step in ("merge", "all"):
        seconds["merge"] = _merge(task.plan, volume, merged)
        if step == "merge":
            write_atomic(work_dir / MERGE_SECONDS_FILE, json.dumps(seconds) + "\n")
            return None
    elif task.plan is not None and (merged_in := merge_seconds(task, volume)) is not None:
        seconds["merge"] = merged_in
    if task.plan is None and task.model is None:
        raise TaskFailure("evaluate", "the task names neither a model nor a merge plan")
    try:
        model_dir = merged if task.plan is not None else in_volume(volume, task.model)
    except OutsideVolumeError as error:
        raise TaskFailure("evaluate", str(error)) from error
    if not model_dir.is_dir():
        raise TaskFailure("evaluate", f"model directory {model_dir} does not exist")
    started = time.monotonic()
    try:
        from paretomerge.evaluate import evaluate_model

        evaluation = evaluate_model(
            model_dir,
            evaluation=task.evaluation,
            objectives=task.objectives,
            sampling=task.sampling,
            volume=volume,
            work_dir=work_dir / EVAL_DIR,
            questions=task.questions,
            repeats=task.repeats,
            stages=task.stages,
            stop_requested=functools.partial(stop_requested, work_dir),
        )
    except Exception as error:
        raise TaskFailure("evaluate", _describe(error)) from error
    finally:
        if task.plan is not None and not task.keep_merged:
            shutil.rmtree(merged, ignore_errors=True)
    seconds["evaluate"] = time.monotonic() - started
    merged_model = str(Path(task.work_dir) / MERGED_DIR) if task.keep_merged else None
    return evaluate_task_result(task, evaluation, seconds, merged_model)


def evaluate_task_result(
    task: EvaluateTask,
    evaluation: EvaluationResult,
    seconds: dict[str, float],
    merged_model: str | None = None,
) -> EvaluateTaskResult:
    """``task``'s result from its ``evaluation`` and the ``seconds`` of its steps: the
    evaluation's cost completed with the merge's seconds and the task's GPUs."""
    cost = (evaluation.cost or EvaluationCost()).model_copy(
        update={"merge_seconds": seconds.get("merge", 0.0), "gpus": task.gpus}
    )
    return EvaluateTaskResult(
        task=task.id,
        role=task.role,
        evaluation=evaluation,
        merged_model=merged_model,
        seconds=seconds,
        cost=cost,
    )


def _merge(plan: MergePlan, volume: Path, out: Path) -> float:
    from paretomerge.checkpoint import CheckpointError
    from paretomerge.merge import merge_models

    shutil.rmtree(out, ignore_errors=True)  # a half-written merge of an earlier attempt
    started = time.monotonic()
    try:
        local_plan = local_merge_plan(plan, volume)
        merge_models(local_plan, out)
    except (CheckpointError, OSError, ValueError) as error:
        raise TaskFailure("merge", str(error)) from error
    except Exception as error:
        raise TaskFailure("merge", _describe(error)) from error
    _check_finite(local_plan, out)
    return time.monotonic() - started


def local_merge_plan(plan: MergePlan, volume: Path) -> MergePlan:
    """``plan`` with its models' paths on the volume mounted at ``volume``.

    Raises:
        OutsideVolumeError: a model path leads out of the volume.
    """
    base = in_volume(volume, plan.base)
    experts = [in_volume(volume, expert) for expert in plan.experts]
    return plan.model_copy(update={"base": str(base), "experts": list(map(str, experts))})


def _check_finite(plan: MergePlan, merged: Path) -> None:
    """A merge of a model holding NaN or infinities is not a candidate: fail, naming the
    tensor and the model it came from, rather than let the evaluation score garbage."""
    from paretomerge.checkpoint import Checkpoint, non_finite_tensors

    name = next(non_finite_tensors(Checkpoint(merged)), None)
    if name is None:
        return
    shutil.rmtree(merged, ignore_errors=True)
    sources = [
        model for model in (plan.base, *plan.experts) if not Checkpoint(model).is_finite(name)
    ]
    raise TaskFailure(
        "merge",
        f"merged tensor {name} has non-finite values (NaN or inf in "
        f"{', '.join(sources) or 'no input model: the merge itself overflowed'})",
    )


def _describe(error: BaseException) -> str:
    """The error's type and message, and where it came from when the message is bare."""
    text = f"{type(error).__name__}: {error}"
    if not str(error):
        frame = traceback.extract_tb(error.__traceback__)[-1:]
        text += "".join(f" at {f.filename}:{f.lineno}" for f in frame)
    return text


def _summary(result: ProfileResult | EvaluateTaskResult) -> str:
    if isinstance(result, ProfileResult):
        return f"profile: {len(result.layers)} layers"
    parts = [
        f"{name} acc={s.accuracy:.3f} tok={s.mean_output_tokens:.0f}"
        for name, s in result.scores.items()
    ]
    stopped = result.evaluation.stopped_after
    outcome = "ok" if stopped is None else f"screened after stage {stopped}"
    return f"{outcome}: {', '.join(parts)}"


def _write_termination_message(message: str) -> None:
    path = os.environ.get(TERMINATION_LOG_ENV)
    if path:
        with open(path, "w") as handle:  # Kubernetes keeps at most 4 KiB of it
            handle.write(message[:4000])
