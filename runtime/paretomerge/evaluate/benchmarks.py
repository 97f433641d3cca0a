"""Benchmarks: the run's :class:`BenchmarkSpec` list made into evalscope tasks, data offline.

Every benchmark is read from the run's volume, checked before any model is served, and
handed to evalscope as ``dataset_args[name]['local_path']``:

- ``gpqa_diamond`` (evalscope's own prompt, choice shuffling and letter extraction):
  a directory holding ``train.jsonl``, one object per question with the columns
  ``Question``, ``Correct Answer``, ``Incorrect Answer 1``, ``Incorrect Answer 2`` and
  ``Incorrect Answer 3`` (the Hugging Face ``Idavidrein/gpqa`` diamond columns; others
  are ignored).
- ``aime25`` (evalscope's prompt, ``\\boxed{}`` extraction, integer comparison): a
  directory holding ``test.jsonl`` with the columns ``problem`` and ``answer``.
- ``jsonl`` ``multiple_choice``: lines ``{"question": str, "choices": [str, ...],
  "answer": "B"}`` (2 to 10 choices), run as evalscope's ``general_mcq``. The prompt is
  the question, a blank line, and the choices as ``A) ...`` lines, nothing else (put any
  instruction into the question text); the answer is read by evalscope's letter
  extraction (the last ``ANSWER: X`` in any case, else the last capital letter that
  names a choice).
- ``jsonl`` ``numeric``: lines ``{"question": str, "answer": "42"}``, run as
  :mod:`.numeric_benchmark` (the question text as is; the last number after
  ``</think>`` answers).

A user file is converted into ``work_dir`` in evalscope's format, so evalscope never
sees the user's path. evalscope falls back to a hub download when a ``local_path`` does
not exist, hence the checks here, and :func:`force_offline` for everything it imports.
The builtin directories are read by ``datasets.load_dataset``, which keeps an Arrow copy
under ``HF_DATASETS_CACHE`` (``~/.cache/huggingface/datasets`` unless set).
"""

from __future__ import annotations

import json
import os
import string
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paretomerge.evaluate.scoring import parse_number
from paretomerge.spec import BenchmarkSpec
from paretomerge.volume import OutsideVolumeError, in_volume

BUILTIN_DATA = {
    "gpqa_diamond": (
        "train.jsonl",
        (
            "Question",
            "Correct Answer",
            "Incorrect Answer 1",
            "Incorrect Answer 2",
            "Incorrect Answer 3",
        ),
    ),
    "aime25": ("test.jsonl", ("problem", "answer")),
}
MULTIPLE_CHOICE_BENCHMARK = "general_mcq"
MULTIPLE_CHOICE_PROMPT = "{question}\n\n{choices}"
MAX_CHOICES = 10  # general_mcq reads the columns A to J
OFFLINE_ENVIRONMENT = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


class BenchmarkDataError(ValueError):
    """A benchmark's data is missing or malformed; the message names the file (and line)."""


@dataclass(frozen=True)
class PreparedBenchmark:
    """A benchmark ready for evalscope: the run's ``name``, evalscope's benchmark
    ``dataset`` and its ``dataset_args`` entry (``local_path`` and overrides)."""

    name: str
    dataset: str
    dataset_args: dict[str, Any]


def force_offline() -> None:
    """Keep Hugging Face libraries off the network in this process.

    Called before evalscope (and with it ``datasets``) is imported: both read these
    variables once, at import.
    """
    os.environ.update(OFFLINE_ENVIRONMENT)


def _json_lines(path: Path, shown: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for every non-blank line of a jsonl file."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise BenchmarkDataError(f"{shown}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise BenchmarkDataError(f"{shown}: cannot read: {error}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise BenchmarkDataError(f"{shown} line {number}: not JSON: {error}") from None
        if not isinstance(row, dict):
            raise BenchmarkDataError(f"{shown} line {number}: not a JSON object")
        yield number, row


def _check_builtin(spec: BenchmarkSpec, volume: Path) -> PreparedBenchmark:
    if spec.name not in BUILTIN_DATA:
        raise BenchmarkDataError(
            f"{spec.name!r} is not a builtin benchmark ({', '.join(BUILTIN_DATA)})"
        )
    file_name, columns = BUILTIN_DATA[spec.name]
    directory = volume / spec.data_path
    shown = f"{spec.data_path}/{file_name}"
    rows = 0
    for number, row in _json_lines(directory / file_name, shown):
        missing = [c for c in columns if c not in row]
        if missing:
            raise BenchmarkDataError(f"{shown} line {number}: missing column(s) {missing}")
        rows += 1
    if rows == 0:
        raise BenchmarkDataError(f"{shown}: no questions")
    return PreparedBenchmark(spec.name, spec.name, {"local_path": str(directory)})


def _multiple_choice_row(row: dict[str, Any], where: str) -> dict[str, Any]:
    question, choices, answer = row.get("question"), row.get("choices"), row.get("answer")
    if not isinstance(question, str):
        raise BenchmarkDataError(f"{where}: 'question' must be a string")
    if (
        not isinstance(choices, list)
        or not 2 <= len(choices) <= MAX_CHOICES
        or not all(isinstance(c, str) for c in choices)
    ):
        raise BenchmarkDataError(f"{where}: 'choices' must be 2 to {MAX_CHOICES} strings")
    letters = string.ascii_uppercase[: len(choices)]
    if not isinstance(answer, str) or answer not in letters:
        raise BenchmarkDataError(
            f"{where}: 'answer' must be one of the letters {', '.join(letters)}, got {answer!r}"
        )
    return {"question": question, **dict(zip(letters, choices, strict=True)), "answer": answer}


def _numeric_row(row: dict[str, Any], where: str) -> dict[str, Any]:
    question, answer = row.get("question"), row.get("answer")
    if not isinstance(question, str):
        raise BenchmarkDataError(f"{where}: 'question' must be a string")
    if isinstance(answer, bool) or not isinstance(answer, str | int | float):
        raise BenchmarkDataError(f"{where}: 'answer' must be a number or a numeric string")
    if parse_number(str(answer)) is None:
        raise BenchmarkDataError(f"{where}: 'answer' {answer!r} is not a number")
    return {"question": question, "answer": str(answer)}


def _convert_jsonl(spec: BenchmarkSpec, volume: Path, scratch: Path) -> PreparedBenchmark:
    if spec.path is None or spec.format is None:
        raise BenchmarkDataError(
            f"benchmark {spec.name!r}: a jsonl benchmark needs path and format"
        )
    convert = _multiple_choice_row if spec.format == "multiple_choice" else _numeric_row
    rows = [
        convert(row, f"{spec.path} line {number}")
        for number, row in _json_lines(volume / spec.path, spec.path)
    ]
    if not rows:
        raise BenchmarkDataError(f"{spec.path}: no questions")
    scratch.mkdir(parents=True, exist_ok=True)
    converted = scratch / f"{spec.name}.jsonl"
    converted.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    if spec.format == "multiple_choice":
        args = {"local_path": str(converted), "prompt_template": MULTIPLE_CHOICE_PROMPT}
        return PreparedBenchmark(spec.name, MULTIPLE_CHOICE_BENCHMARK, args)
    from paretomerge.evaluate.numeric_benchmark import NUMERIC_BENCHMARK

    return PreparedBenchmark(spec.name, NUMERIC_BENCHMARK, {"local_path": str(converted)})


def prepare_benchmarks(
    benchmarks: list[BenchmarkSpec], volume: Path, scratch: Path
) -> list[PreparedBenchmark]:
    """Check every benchmark's data on ``volume`` and convert the user's files into
    ``scratch``, before anything is served.

    Raises:
        BenchmarkDataError: the first missing or malformed file, named by its path on the
            volume (and line).
    """
    force_offline()
    for spec in benchmarks:
        try:
            in_volume(volume, spec.data_path)
        except OutsideVolumeError as error:
            raise BenchmarkDataError(f"benchmark {spec.name!r}: {error}") from None
    return [
        _check_builtin(spec, volume)
        if spec.type == "builtin"
        else _convert_jsonl(spec, volume, scratch)
        for spec in benchmarks
    ]
