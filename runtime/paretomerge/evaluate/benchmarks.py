"""Benchmarks: the run's :class:`BenchmarkSpec` list made into evalscope tasks, data offline.

Every benchmark is read from the run's volume, checked before any model is served, and
handed to evalscope as ``dataset_args[name]['dataset_id']``, a local path:

- ``gpqa_diamond`` (evalscope's own prompt, choice shuffling and letter extraction) and
  ``aime25`` (evalscope's prompt, ``\\boxed{}`` extraction, integer comparison): a
  ``.jsonl``, ``.csv`` or ``.parquet`` file, or a directory holding one as a download
  leaves it. In a directory the data is, in this order of preference: evalscope's own
  name for the split (``train.*`` for gpqa_diamond, ``test.*`` for aime25); that split's
  shards, ``<split>-*.*`` or ``data/<split>-*.*`` (the parquet layout of the Hugging
  Face and ModelScope hubs); the file the Hugging Face ``Idavidrein/gpqa`` repository
  names ``gpqa_diamond.csv``; ``aime25*`` / ``aime2025*`` files; else the directory's
  only data file. Columns: ``Question``, ``Correct Answer``, ``Incorrect Answer 1``,
  ``Incorrect Answer 2`` and ``Incorrect Answer 3`` (gpqa_diamond; others, like the
  Hugging Face CSV's many more, are ignored), ``problem`` and ``answer`` (aime25).
  The chosen file's rows (every shard's, in name order) are checked, their columns made
  the strings evalscope's adapters need (a parquet ``answer`` may be an integer, which
  the aime25 adapter rejects), and written as ``<split>.jsonl`` into a directory named by
  their content under ``.paretomerge/datasets/`` on the volume. evalscope reads that:
  never the rest of a download (a dataset card naming several configurations, the
  other GPQA sets), and ``datasets`` keeps a single Arrow copy per content under
  ``HF_DATASETS_CACHE`` rather than one per evaluation.
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
sees the user's path. evalscope falls back to a hub download when a ``dataset_id`` is
not a local path, hence the checks here, and :func:`force_offline` for everything it
imports.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import string
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paretomerge.evaluate.scoring import parse_number
from paretomerge.spec import BenchmarkSpec
from paretomerge.volume import OutsideVolumeError, in_volume


@dataclass(frozen=True)
class BuiltinData:
    """Where evalscope's builtin benchmark finds its data: the ``split`` it evaluates,
    the ``columns`` its adapter reads (the question's text first), the file-name stems
    downloads give it besides the split's own name (tried in order, after it), and the
    columns of a multiple-choice question's answers."""

    split: str
    columns: tuple[str, ...]
    stems: tuple[str, ...]
    choices: tuple[str, ...] = ()


BUILTIN_DATA = {
    "gpqa_diamond": BuiltinData(
        split="train",
        columns=(
            "Question",
            "Correct Answer",
            "Incorrect Answer 1",
            "Incorrect Answer 2",
            "Incorrect Answer 3",
        ),
        stems=("gpqa_diamond",),
        choices=(
            "Correct Answer",
            "Incorrect Answer 1",
            "Incorrect Answer 2",
            "Incorrect Answer 3",
        ),
    ),
    "aime25": BuiltinData(
        split="test", columns=("problem", "answer"), stems=("aime25", "aime2025")
    ),
}
DATA_SUFFIXES = (".jsonl", ".csv", ".parquet")
STAGED_DATA_DIR = ".paretomerge/datasets"  # on the volume, beside the anchor cache
MULTIPLE_CHOICE_BENCHMARK = "general_mcq"
MULTIPLE_CHOICE_PROMPT = "{question}\n\n{choices}"
MAX_CHOICES = 10  # general_mcq reads the columns A to J
OFFLINE_ENVIRONMENT = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


# Bad lines a message lists; the error's ``problems`` keep every one.
MAX_LISTED_PROBLEMS = 20


class BenchmarkDataError(ValueError):
    """A benchmark's data is missing or malformed; each of ``problems`` names the file
    (and line), and the message lists them (the first :data:`MAX_LISTED_PROBLEMS`)."""

    def __init__(self, *problems: str):
        self.problems = list(problems)
        listed = self.problems[:MAX_LISTED_PROBLEMS]
        more = len(self.problems) - len(listed)
        super().__init__("\n".join(listed) + (f"\n... and {more} more" if more else ""))


@dataclass(frozen=True)
class PreparedBenchmark:
    """A benchmark ready for evalscope: the run's ``name``, evalscope's benchmark
    ``dataset`` and its ``dataset_args`` entry (``dataset_id`` and overrides), the
    ``question_ids`` its data file holds, in order (each question's row in the
    benchmark's own data, from 0), and how many times each is asked (``repeats``)."""

    name: str
    dataset: str
    dataset_args: dict[str, Any]
    question_ids: tuple[int, ...]
    repeats: int = 1


def force_offline() -> None:
    """Keep Hugging Face libraries off the network in this process.

    Called before evalscope (and with it ``datasets``) is imported: both read these
    variables once, at import.
    """
    os.environ.update(OFFLINE_ENVIRONMENT)


# A row as read: its fields, or why its line is not a row at all (not JSON, not an object).
Row = dict[str, Any] | BenchmarkDataError


def _jsonl_rows(path: Path, shown: str) -> Iterator[tuple[str, Row]]:
    """``(where, object)`` for every non-blank line of a jsonl file (``where``: the file
    and line); a line that is no JSON object comes as the error naming it, so that every
    bad line is found."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise BenchmarkDataError(f"{shown}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise BenchmarkDataError(f"{shown}: cannot read: {error}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{shown} line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            yield where, BenchmarkDataError(f"{where}: not JSON: {error}")
            continue
        yield (
            where,
            row if isinstance(row, dict) else BenchmarkDataError(f"{where}: not a JSON object"),
        )


def _checked_rows(
    rows: Iterable[tuple[str, Row]], convert: Callable[[dict[str, Any], str], dict[str, Any]]
) -> list[dict[str, Any]]:
    """``convert(row, where)`` of every row.

    Raises:
        BenchmarkDataError: every bad row at once, each named by its file and line.
    """
    converted, problems = [], []
    for where, row in rows:
        try:
            if isinstance(row, BenchmarkDataError):
                raise row
            converted.append(convert(row, where))
        except BenchmarkDataError as error:
            problems += error.problems
    if problems:
        raise BenchmarkDataError(*problems)
    return converted


def _builtin_rows(spec: BenchmarkSpec, volume: Path) -> list[dict[str, Any]]:
    """The checked rows of a builtin benchmark's data, every file's (see :func:`_checked_rows`)."""
    if spec.name not in BUILTIN_DATA:
        raise BenchmarkDataError(
            f"{spec.name!r} is not a builtin benchmark ({', '.join(BUILTIN_DATA)})"
        )
    data = BUILTIN_DATA[spec.name]
    files = _data_files(volume / spec.data_path, spec.data_path, spec.name, data)
    rows = _checked_rows(
        (
            (where, row)
            for file in files
            for where, row in _READERS[file.suffix](file, str(file.relative_to(volume)))
        ),
        lambda row, where: _builtin_row(row, data.columns, where),
    )
    if not rows:
        raise BenchmarkDataError(f"{spec.data_path}: no questions")
    return rows


def _check_builtin(spec: BenchmarkSpec, volume: Path, chosen: Chooser) -> PreparedBenchmark:
    rows = _builtin_rows(spec, volume)
    ids = chosen(spec, len(rows))
    split = BUILTIN_DATA[spec.name].split
    staged = _stage([rows[i] for i in ids], f"{split}.jsonl", volume / STAGED_DATA_DIR, spec.name)
    return PreparedBenchmark(spec.name, spec.name, {"dataset_id": str(staged)}, tuple(ids))


def _data_files(path: Path, shown: str, name: str, data: BuiltinData) -> list[Path]:
    """The file(s) holding a builtin benchmark's questions at ``path`` (see the module
    docstring for the order of preference); shards come sorted by name."""
    if path.is_file():
        if path.suffix not in DATA_SUFFIXES:
            raise BenchmarkDataError(f"{shown}: not a {', '.join(DATA_SUFFIXES)} file")
        return [path]
    if not path.is_dir():
        raise BenchmarkDataError(f"{shown}: no such file or directory")
    patterns = [
        f"{data.split}{{suffix}}",
        f"{data.split}-*{{suffix}}",
        f"data/{data.split}-*{{suffix}}",
        *(f"{stem}{{suffix}}" for stem in data.stems),
        *(f"{stem}-*{{suffix}}" for stem in data.stems),
    ]
    for pattern in patterns:
        found = [
            files
            for suffix in DATA_SUFFIXES
            if (files := sorted(path.glob(pattern.format(suffix=suffix))))
        ]
        if len(found) > 1:
            names = ", ".join(str(f.relative_to(path)) for files in found for f in files)
            raise BenchmarkDataError(
                f"{shown}: {names} hold the same questions in different file types: keep one"
            )
        if found:
            return found[0]
    every = sorted(f for f in path.rglob("*") if f.suffix in DATA_SUFFIXES)
    if len(every) == 1:
        return every
    listed = ", ".join(str(f.relative_to(path)) for f in every) or "none"
    raise BenchmarkDataError(
        f"{shown}: no {name} data: expected {data.split}.jsonl, {data.split}.csv or "
        f"{data.split}.parquet (or the hubs' data/{data.split}-*.parquet shards); data "
        f"files there: {listed}"
    )


def _csv_rows(path: Path, shown: str) -> Iterator[tuple[str, Row]]:
    """``(where, row)`` for every record of a CSV file with a header line (a quoted field
    may span lines); every value is a string, as written."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            for number, row in enumerate(csv.DictReader(handle), start=1):
                yield f"{shown} row {number}", row
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise BenchmarkDataError(f"{shown}: cannot read as CSV: {error}") from None


def _parquet_rows(path: Path, shown: str) -> Iterator[tuple[str, Row]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as error:
        raise BenchmarkDataError(f"{shown}: cannot read as parquet: {error}") from None
    for number, row in enumerate(table.to_pylist(), start=1):
        yield f"{shown} row {number}", row


_READERS: dict[str, Callable[[Path, str], Iterator[tuple[str, Row]]]] = {
    ".jsonl": _jsonl_rows,
    ".csv": _csv_rows,
    ".parquet": _parquet_rows,
}


def _builtin_row(row: dict[str, Any], columns: tuple[str, ...], where: str) -> dict[str, Any]:
    """``row`` with its ``columns`` as the strings evalscope's adapters need (a parquet
    or JSON ``answer`` may be an integer); other columns pass through."""
    missing = [c for c in columns if c not in row]
    if missing:
        raise BenchmarkDataError(f"{where}: missing column(s) {missing}")
    wrong = [c for c in columns if row[c] is None or isinstance(row[c], dict | list | bool)]
    if wrong:
        raise BenchmarkDataError(f"{where}: column(s) {wrong} must hold text or a number")
    text = {
        c: str(int(v)) if isinstance(v := row[c], float) and v.is_integer() else str(v)
        for c in columns
    }
    return {**row, **text}


def _stage(rows: list[dict[str, Any]], file_name: str, root: Path, name: str) -> Path:
    """A directory under ``root`` named by the content of ``rows``, holding them as
    ``file_name``. Made once per content (a concurrent evaluation may make it first), so
    ``datasets`` keeps one Arrow copy of it."""
    text = "".join(json.dumps(row, default=str) + "\n" for row in rows)
    target = root / f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"
    if target.is_dir():
        return target
    staging = root / f".{target.name}.{os.getpid()}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    (staging / file_name).write_text(text, encoding="utf-8")
    try:
        staging.rename(target)
    except OSError:  # another evaluation staged the same content first
        shutil.rmtree(staging, ignore_errors=True)
    return target


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


def _user_rows(spec: BenchmarkSpec, volume: Path) -> list[dict[str, Any]]:
    """The checked rows of a ``jsonl`` benchmark (see :func:`_checked_rows`)."""
    if spec.path is None or spec.format is None:
        raise BenchmarkDataError(
            f"benchmark {spec.name!r}: a jsonl benchmark needs path and format"
        )
    convert = _multiple_choice_row if spec.format == "multiple_choice" else _numeric_row
    rows = _checked_rows(_jsonl_rows(volume / spec.path, spec.path), convert)
    if not rows:
        raise BenchmarkDataError(f"{spec.path}: no questions")
    return rows


def _convert_jsonl(
    spec: BenchmarkSpec, volume: Path, scratch: Path, chosen: Chooser
) -> PreparedBenchmark:
    rows = _user_rows(spec, volume)
    ids = chosen(spec, len(rows))
    scratch.mkdir(parents=True, exist_ok=True)
    converted = scratch / f"{spec.name}.jsonl"
    converted.write_text("".join(json.dumps(rows[i]) + "\n" for i in ids), encoding="utf-8")
    if spec.format == "multiple_choice":
        args = {"dataset_id": str(converted), "prompt_template": MULTIPLE_CHOICE_PROMPT}
        return PreparedBenchmark(spec.name, MULTIPLE_CHOICE_BENCHMARK, args, tuple(ids))
    from paretomerge.evaluate.numeric_benchmark import NUMERIC_BENCHMARK

    args = {"dataset_id": str(converted)}
    return PreparedBenchmark(spec.name, NUMERIC_BENCHMARK, args, tuple(ids))


def _check_in_volume(spec: BenchmarkSpec, volume: Path) -> None:
    try:
        in_volume(volume, spec.data_path)
    except OutsideVolumeError as error:
        raise BenchmarkDataError(f"benchmark {spec.name!r}: {error}") from None


def benchmark_problems(spec: BenchmarkSpec, volume: Path) -> list[str]:
    """Every problem of one benchmark's data on ``volume``, line by line, each naming its
    file (and line); nothing is converted or written (what a preflight asks)."""
    try:
        _check_in_volume(spec, volume)
        (_builtin_rows if spec.type == "builtin" else _user_rows)(spec, volume)
    except BenchmarkDataError as error:
        return error.problems
    return []


def question_texts(spec: BenchmarkSpec, volume: Path) -> list[str]:
    """The text of each question of a benchmark on ``volume``, in its data's order (a
    question's id is its index): the question, and for multiple choice a blank line and
    the answers as ``A) ...`` lines in the data's order. These are the activation prior's
    prompts (:mod:`paretomerge.activations`), not evalscope's own (which shuffles
    gpqa_diamond's answers and adds its instructions).

    Raises:
        BenchmarkDataError: missing or malformed data, as :func:`prepare_benchmarks`.
    """
    _check_in_volume(spec, volume)
    if spec.type == "builtin":
        rows = _builtin_rows(spec, volume)  # raises for a name that is not builtin
        data = BUILTIN_DATA[spec.name]
        return [_with_choices(row[data.columns[0]], [row[c] for c in data.choices]) for row in rows]
    rows = _user_rows(spec, volume)
    letters = string.ascii_uppercase
    return [
        _with_choices(row["question"], [row[letter] for letter in letters if letter in row])
        for row in rows
    ]


def _with_choices(question: str, choices: list[str]) -> str:
    if not choices:
        return question
    letters = string.ascii_uppercase[: len(choices)]
    lines = "\n".join(
        f"{letter}) {choice}" for letter, choice in zip(letters, choices, strict=True)
    )
    return MULTIPLE_CHOICE_PROMPT.format(question=question, choices=lines)


#: Which questions of a benchmark of ``count`` questions an evaluation asks: their ids.
Chooser = Callable[[BenchmarkSpec, int], list[int]]


def prepare_benchmarks(
    benchmarks: list[BenchmarkSpec],
    volume: Path,
    scratch: Path,
    chosen: Chooser | None = None,
) -> list[PreparedBenchmark]:
    """Check every benchmark's data on ``volume`` and write the questions ``chosen``
    (default: every one) for evalscope, the user's files into ``scratch``, before
    anything is served.

    Raises:
        BenchmarkDataError: the first missing or malformed file, named by its path on the
            volume, with every bad line of it, or a choice that leaves a benchmark no
            question.
    """
    force_offline()
    chosen = chosen or (lambda spec, count: list(range(count)))

    def checked(spec: BenchmarkSpec, count: int) -> list[int]:
        ids = chosen(spec, count)
        if not ids:
            raise BenchmarkDataError(
                f"benchmark {spec.name!r}: none of its {count} question(s) is to be asked"
            )
        return ids

    for spec in benchmarks:
        _check_in_volume(spec, volume)
    return [
        _check_builtin(spec, volume, checked)
        if spec.type == "builtin"
        else _convert_jsonl(spec, volume, scratch, checked)
        for spec in benchmarks
    ]
