"""Where a run keeps its files: the layout of a run directory, in one place.

(Not to be confused with :mod:`paretomerge.tensor_layout`, which says where a model's
tensors belong.) A run's directory is ``<volume>/<runsPath>/<run name>/``::

    run.yaml                  the spec the run started with, every default filled in
    checkpoint.json           the controller's state
    results.json  pareto.csv  decision_variables.npy  objectives.npy  objectives_std.npy
    hypervolume.json          the artifacts, rewritten after every finished evaluation
    pareto_front.png  hypervolume.png  hypervolume_cost.png  importance.png
                              the plots of ``paretomerge report``
    profile/                  the profile task (its profile.json)
    anchors/<role>/           the base's and the expert's evaluations (<role>-held-out/: on
                              the questions held out of the search)
    candidates/<id>/          one candidate's evaluation (merged/ while its weights are kept)
    validations/<id>/         one validation: a candidate evaluated again after the search

Each task's directory holds its ``task.json``, ``result.json`` or ``error.json`` and its
attempts' logs (:mod:`paretomerge.tasks`). One :class:`RunLayout` names these paths
relative to the volume (what tasks and the status name), relative to the run directory
(what ``pareto.csv`` names) or on a local volume (what the controller and the report
open).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath
from typing import Generic, TypeVar

from paretomerge.spec import ParetoMergeRun
from paretomerge.tasks import PROFILE_FILE, TASK_FILE

RUN_FILE = "run.yaml"
CHECKPOINT_FILE = "checkpoint.json"
RESULTS_FILE = "results.json"
PARETO_FILE = "pareto.csv"
DECISION_VARIABLES_FILE = "decision_variables.npy"
OBJECTIVES_FILE = "objectives.npy"
OBJECTIVES_STD_FILE = "objectives_std.npy"  # standard deviations, where a run reports them
HYPERVOLUME_FILE = "hypervolume.json"
FRONT_PLOT = "pareto_front.png"
HYPERVOLUME_PLOT = "hypervolume.png"
HYPERVOLUME_COST_PLOT = "hypervolume_cost.png"
IMPORTANCE_PLOT = "importance.png"

PathT = TypeVar("PathT", bound=PurePath)


def run_directory(run: ParetoMergeRun) -> str:
    """The run's directory, relative to its volume (``runs/<name>``)."""
    return str(PurePosixPath(run.spec.execution.storage.runs_path) / run.name)


@dataclass(frozen=True)
class RunLayout(Generic[PathT]):
    """The paths of one run's files under ``root``, its directory: volume-relative
    (:meth:`of`), a local path (:meth:`on`), or empty (paths within the directory)."""

    root: PathT

    @classmethod
    def of(cls, run: ParetoMergeRun) -> RunLayout[PurePosixPath]:
        """Relative to the run's volume."""
        return RunLayout(PurePosixPath(run_directory(run)))

    def on(self: RunLayout[PurePosixPath], volume: Path) -> RunLayout[Path]:
        """On the volume mounted (or lying) at ``volume``."""
        return RunLayout(volume / self.root)

    def volume_of(self, run_dir: Path) -> Path:
        """The volume under which ``run_dir`` is this (volume-relative) layout's root."""
        return run_dir.resolve().parents[len(self.root.parts) - 1]

    @property
    def run_file(self) -> PathT:
        return self.root / RUN_FILE

    @property
    def checkpoint(self) -> PathT:
        return self.root / CHECKPOINT_FILE

    @property
    def results(self) -> PathT:
        return self.root / RESULTS_FILE

    @property
    def pareto(self) -> PathT:
        return self.root / PARETO_FILE

    @property
    def decision_variables(self) -> PathT:
        return self.root / DECISION_VARIABLES_FILE

    @property
    def objectives(self) -> PathT:
        return self.root / OBJECTIVES_FILE

    @property
    def objectives_std(self) -> PathT:
        return self.root / OBJECTIVES_STD_FILE

    @property
    def hypervolume(self) -> PathT:
        return self.root / HYPERVOLUME_FILE

    @property
    def artifacts(self) -> tuple[PathT, ...]:
        """The files rewritten after every finished evaluation."""
        return (
            self.pareto,
            self.results,
            self.objectives,
            self.objectives_std,
            self.decision_variables,
            self.hypervolume,
        )

    @property
    def front_plot(self) -> PathT:
        return self.root / FRONT_PLOT

    @property
    def hypervolume_plot(self) -> PathT:
        return self.root / HYPERVOLUME_PLOT

    @property
    def hypervolume_cost_plot(self) -> PathT:
        return self.root / HYPERVOLUME_COST_PLOT

    @property
    def importance_plot(self) -> PathT:
        return self.root / IMPORTANCE_PLOT

    @property
    def profile(self) -> PathT:
        """The profile task's directory."""
        return self.root / "profile"

    @property
    def profile_file(self) -> PathT:
        return self.profile / PROFILE_FILE

    def anchor(self, role: str) -> PathT:
        """The directory of the anchor task of ``role`` (``base``, ``expert``)."""
        return self.root / "anchors" / role

    def candidate(self, candidate_id: str) -> PathT:
        """The directory of candidate ``candidate_id``'s task."""
        return self.root / "candidates" / candidate_id

    def validation(self, validation_id: str) -> PathT:
        """The directory of validation ``validation_id``'s task."""
        return self.root / "validations" / validation_id

    def candidate_task(self, candidate_id: str) -> PathT:
        return self.candidate(candidate_id) / TASK_FILE


#: Paths within a run directory, as ``pareto.csv`` names a candidate's task.
WITHIN_RUN = RunLayout(PurePosixPath())
