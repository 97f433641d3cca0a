"""Paths on a run's volume, checked where they really lead.

The spec refuses absolute paths and ``..`` in the text of a path; a symbolic link on the
volume can still lead anywhere (``models/base`` -> another team's directory on a shared
PVC, ``data/q.jsonl`` -> ``/etc/passwd``). Every path is therefore resolved, links
followed, before it is read or written, and refused when it ends outside the volume.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from paretomerge.spec import RunSpec, SpecProblem


class OutsideVolumeError(ValueError):
    """A volume path whose real path (symlinks followed) is outside the volume."""


def in_volume(volume: Path, path: str) -> Path:
    """``volume / path``, once its real path is known to stay inside the volume's.

    A path that does not exist (yet) is resolved as far as it exists.

    Raises:
        OutsideVolumeError: naming both the path and where it really leads.
    """
    root = Path(volume).resolve()
    real = (root / path).resolve()
    if not real.is_relative_to(root):
        raise OutsideVolumeError(
            f"{path} leads to {real}, outside the volume {root} (through a symbolic link)"
        )
    return Path(volume) / path


def volume_paths(spec: RunSpec) -> Iterator[tuple[str, str]]:
    """Every path the run reads or writes on its volume, with the field that names it."""
    yield "spec.models.base.path", spec.models.base.path
    for i, expert in enumerate(spec.models.experts):
        yield f"spec.models.experts[{i}].path", expert.path
    for i, benchmark in enumerate(spec.objectives.benchmarks):
        yield f"spec.objectives.benchmarks[{i}].path", benchmark.data_path
    yield "spec.execution.storage.runsPath", spec.execution.storage.runs_path


def outside_volume_problems(spec: RunSpec, volume: Path) -> list[SpecProblem]:
    """One problem per path of the run that leads out of ``volume``."""
    problems = []
    for field, path in volume_paths(spec):
        try:
            in_volume(volume, path)
        except OutsideVolumeError as error:
            problems.append(SpecProblem(field, str(error)))
    return problems
