"""What a finished (or running) run directory says: the Pareto table and the plots.

- ``pareto_front.png``: every evaluated merge in objective space, the front, the anchors
  (base at ``(0, 1)``, expert at ``(1, 0)``) and, if given, model-level baseline runs;
- ``hypervolume.png``: hypervolume against evaluations;
- ``importance.png``: the importance heatmap, with the blocks of a block-wise run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and in pods

import matplotlib.pyplot as plt
import numpy as np

from paretomerge.controller.artifacts import pareto_candidates
from paretomerge.controller.decision_space import DecisionSpace
from paretomerge.controller.state import CandidateRecord, RunState
from paretomerge.importance import ImportanceProfile, PartitionRecord
from paretomerge.run_layout import RUN_FILE, RunLayout
from paretomerge.spec import ParetoMergeRun, load_started_run
from paretomerge.tasks import EvaluateTask, read_task


@dataclass(frozen=True)
class RunDirectory:
    """A run directory on a local volume, read back."""

    path: Path
    run: ParetoMergeRun
    state: RunState

    @classmethod
    def open(cls, path: Path) -> RunDirectory:
        files = RunLayout(path)
        if not files.run_file.exists():
            raise FileNotFoundError(f"{path} is not a run directory: it has no {RUN_FILE}")
        state = RunState.load(path)
        if state is None:
            raise FileNotFoundError(f"{path} has no checkpoint yet: the run has not started")
        return cls(path, load_started_run(files.run_file), state)

    @property
    def files(self) -> RunLayout[Path]:
        return RunLayout(self.path)

    @property
    def volume(self) -> Path:
        """The volume the run's paths are relative to."""
        return RunLayout.of(self.run).volume_of(self.path)

    def space(self) -> DecisionSpace | None:
        if self.state.profile is None:
            return None
        return DecisionSpace(self.run.spec, self.state.num_layers, tuple(self.state.profile))

    def pareto(self) -> list[CandidateRecord]:
        return pareto_candidates(self.state)

    def merge_task(self, point: int) -> EvaluateTask:
        """The task (with its merge plan) of Pareto point ``point`` (``pareto.csv`` order)."""
        front = self.pareto()
        if not 0 <= point < len(front):
            raise IndexError(f"--point {point}: the Pareto set has points 0..{len(front) - 1}")
        task = read_task(self.files.candidate_task(front[point].id))
        if not isinstance(task, EvaluateTask) or task.plan is None:
            raise ValueError(f"candidate {front[point].id} has no merge plan")
        return task


def write_plots(run_dir: RunDirectory, baselines: list[RunDirectory] = ()) -> list[Path]:
    """Write the report's plots into the run directory; returns their paths."""
    files = run_dir.files
    paths = [files.front_plot, files.hypervolume_plot]
    plot_front(run_dir, baselines, paths[0])
    plot_hypervolume(run_dir.state, paths[1])
    profile_path = files.profile_file
    if profile_path.exists():
        paths.append(files.importance_plot)
        plot_importance(run_dir, profile_path, paths[-1])
    return paths


def plot_front(run_dir: RunDirectory, baselines: list[RunDirectory], path: Path) -> None:
    figure, axes = plt.subplots(figsize=(6.4, 4.8))
    done = [c for c in run_dir.state.candidates if c.status == "succeeded"]
    if done:
        Y = np.array([c.objectives for c in done])
        axes.scatter(Y[:, 0], Y[:, 1], s=18, color="0.65", label="evaluated merges")
    front = np.array([c.objectives for c in run_dir.pareto()]).reshape(-1, 2)
    if len(front):
        order = np.argsort(front[:, 0])
        axes.plot(
            front[order, 0], front[order, 1], "o-", color="tab:red", label="Pareto front", ms=5
        )
    for baseline in baselines:
        Yb = np.array(
            [c.objectives for c in baseline.state.candidates if c.status == "succeeded"]
        ).reshape(-1, 2)
        axes.scatter(Yb[:, 0], Yb[:, 1], s=22, marker="^", label=f"{baseline.run.name} (baseline)")
    axes.scatter([0.0], [1.0], s=80, marker="s", color="tab:blue", label="base (instruct)")
    axes.scatter([1.0], [0.0], s=80, marker="D", color="tab:green", label="expert (thinking)")
    axes.set_xlabel("f1: accuracy gain (0 = base, 1 = expert)")
    axes.set_ylabel("f2: token saving (0 = expert, 1 = base)")
    axes.set_title(f"{run_dir.run.name}: capability-efficiency front")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_hypervolume(state: RunState, path: Path) -> None:
    figure, axes = plt.subplots(figsize=(6.4, 4.0))
    history = state.hypervolume
    axes.plot(range(1, len(history) + 1), history, color="tab:purple")
    axes.set_xlabel("evaluations")
    axes.set_ylabel("hypervolume")
    axes.set_title("Hypervolume of the front found so far")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_importance(run_dir: RunDirectory, profile_path: Path, path: Path) -> None:
    from paretomerge.heatmap import plot_profile

    profile = ImportanceProfile.model_validate_json(profile_path.read_text())
    space = run_dir.space()
    partition = space.partition if space is not None else None
    if partition is not None:
        blocks = run_dir.run.spec.merge.blocks
        profile.partition = PartitionRecord.of(
            partition, blocks.strategy, blocks.alpha, blocks.beta
        )
    plot_profile(profile, path)
