"""The files through which a screened evaluation and the controller talk, in one place.

A screened candidate's evaluation asks its questions one screening stage (a share of
them) at a time. After each screening stage it writes where it stands (a
:class:`~paretomerge.results.StageResult`); the controller reads a running candidate's
latest one and, when it screens the candidate out, writes a stop request, which the
evaluation reads before its next screening stage (and a later attempt at its start).
In a task's work directory::

    stop.json                     the controller's stop request, with its reason
    eval/                         the evaluation's files (server log, server.pid, ...)
    eval/stages/stage-<k>.json    where it stood after screening stage k (from 1)

Only files, no torch: the evaluation, the task runner and the controller all read it.
"""

from __future__ import annotations

import json
from pathlib import Path

from paretomerge.files import write_atomic
from paretomerge.results import StageResult

EVAL_DIR = "eval"  # in a task's work dir: the evaluation's server log, outputs and stages
SCREENING_STAGES_DIR = "stages"  # in the evaluation's dir: stage-<k>.json
STOP_FILE = "stop.json"  # in a task's work dir: no more screening stages


def screening_stage_file(eval_dir: Path, stage: int) -> Path:
    """Where the evaluation in ``eval_dir`` keeps its result after screening stage
    ``stage`` (from 1)."""
    return Path(eval_dir) / SCREENING_STAGES_DIR / f"stage-{stage}.json"


def write_screening_stage(eval_dir: Path, result: StageResult) -> None:
    """Keep where the evaluation in ``eval_dir`` stands after a screening stage."""
    path = screening_stage_file(eval_dir, result.stage)
    write_atomic(path, result.model_dump_json(indent=2) + "\n")


def read_screening_stage(eval_dir: Path, stage: int) -> StageResult | None:
    """The result of screening stage ``stage``, or ``None`` when no attempt finished it."""
    path = screening_stage_file(eval_dir, stage)
    if not path.exists():
        return None
    return StageResult.model_validate_json(path.read_text())


def latest_screening_stage(task_dir: Path) -> StageResult | None:
    """The last screening stage that the evaluation of the task in ``task_dir`` (its work
    directory) has finished, if any."""
    eval_dir = Path(task_dir) / EVAL_DIR
    numbers = [
        int(path.stem.removeprefix("stage-"))
        for path in (eval_dir / SCREENING_STAGES_DIR).glob("stage-*.json")
    ]
    return read_screening_stage(eval_dir, max(numbers)) if numbers else None


def request_stop(task_dir: Path, reason: str) -> None:
    """Tell the screened evaluation of the task in ``task_dir`` to stop before its next
    screening stage, saying why."""
    write_atomic(Path(task_dir) / STOP_FILE, json.dumps({"reason": reason}, indent=2) + "\n")


def stop_requested(task_dir: Path) -> bool:
    """Whether the controller asked the task in ``task_dir`` to stop."""
    return (Path(task_dir) / STOP_FILE).exists()
