"""The anchor cache: base and expert evaluations reused across runs.

An anchor is keyed by a hash of the model's files, of the benchmark data, and of every
evaluation setting that can change its scores (engine, token limits, sampling, questions
per benchmark). The cache lives on the run's volume, so every run that sees the same
volume shares it. Hashing an 8 GB model takes seconds, so file digests are remembered by
path, size and modification time.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from paretomerge.files import write_atomic
from paretomerge.questions import QuestionSplit
from paretomerge.results import Scores
from paretomerge.spec import EvaluationSpec, ObjectivesSpec, SamplingSpec

CACHE_DIR = ".paretomerge"
HASH_CHUNK_BYTES = 16 << 20


def anchor_key(
    model_dir: Path,
    evaluation: EvaluationSpec,
    objectives: ObjectivesSpec,
    sampling: SamplingSpec,
    volume: Path,
    questions: QuestionSplit | None = None,
    repeats: int | None = None,
) -> str:
    """A hex key that changes whenever the anchor's scores could (``questions`` and
    ``repeats`` as :class:`~paretomerge.tasks.EvaluateTask` has them)."""
    settings = {
        "engine": evaluation.engine,
        "endpoint": evaluation.endpoint.url if evaluation.endpoint else None,
        "max_tokens": evaluation.max_tokens,
        "max_model_len": evaluation.model_len,
        "sampling": sampling.model_dump(),
        "objectives": _objectives_settings(objectives),
    }
    if questions is not None:
        settings["questions"] = questions.model_dump()
    if repeats is not None:
        settings["repeats"] = repeats
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    digest.update(tree_digest(model_dir, volume).encode())
    for benchmark in objectives.benchmarks:
        data = volume / benchmark.data_path
        digest.update(tree_digest(data, volume).encode() if data.exists() else b"missing")
    return digest.hexdigest()


def _objectives_settings(objectives: ObjectivesSpec) -> dict[str, Any]:
    """``objectives`` as the key hashes them: fields added since keys were first made are
    left out while at their defaults, so that anchors cached before are still found."""
    data = objectives.model_dump()
    if data["repeats"] == 1:
        del data["repeats"]
    for benchmark in data["benchmarks"]:
        if benchmark["repeats"] is None:
            del benchmark["repeats"]
    return data


def tree_digest(path: Path, volume: Path) -> str:
    """SHA-256 over the names and contents of the files under ``path`` (or of the file)."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    memo_path = volume / CACHE_DIR / "file-digests.json"
    memo = _read_json(memo_path) or {}
    digest = hashlib.sha256()
    changed = False
    for file in files:
        stat = file.stat()
        signature = f"{stat.st_size}:{stat.st_mtime_ns}"
        entry = memo.get(str(file))
        if entry is None or entry["signature"] != signature:
            entry = {"signature": signature, "sha256": _file_sha256(file)}
            memo[str(file)] = entry
            changed = True
        relative = file.relative_to(path) if path.is_dir() else Path(file.name)
        digest.update(f"{relative}\0{entry['sha256']}\n".encode())
    if changed:
        write_atomic(memo_path, json.dumps(memo, indent=1) + "\n")
    return digest.hexdigest()


class AnchorEntry(BaseModel):
    """One cached anchor: the model evaluated and its scores."""

    model: str
    scores: Scores


def cached_scores(volume: Path, key: str) -> Scores | None:
    """The benchmark scores stored under ``key``, or ``None`` (also for an unreadable
    entry: the anchor is evaluated again and the entry rewritten)."""
    try:
        text = _anchor_path(volume, key).read_text()
        return AnchorEntry.model_validate_json(text).scores
    except (OSError, ValidationError):
        return None


def store_scores(volume: Path, key: str, model: str, scores: Scores) -> None:
    entry = AnchorEntry(model=model, scores=scores)
    write_atomic(_anchor_path(volume, key), entry.model_dump_json(indent=1) + "\n")


def forget_scores(volume: Path, key: str) -> None:
    """Remove the entry stored under ``key``, if there is one."""
    _anchor_path(volume, key).unlink(missing_ok=True)


def _anchor_path(volume: Path, key: str) -> Path:
    return volume / CACHE_DIR / "anchors" / f"{key}.json"


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
