"""What a finished (or running) run directory says: the Pareto set, the plots, the report.

The front is read from the run's ``pareto.csv``, as the controller reported it: its
``point`` column numbers the members for ``paretomerge materialize --point``, and
optional ``f1_std`` / ``f2_std`` columns give each value's standard deviation. Plots
(:mod:`paretomerge.plots`, :mod:`paretomerge.heatmap`) go into the run directory:

- ``pareto_front.png``: the front as a staircase with numbered points, every evaluated
  merge, the anchors (base at ``(0, 1)``, expert at ``(1, 0)``) and, if given, the
  fronts of baseline runs (e.g. a model-level sweep);
- ``hypervolume.png``: the run's hypervolume history against evaluations, baselines
  overlaid;
- ``hypervolume_cost.png``: the same against the cumulative GPU-seconds of the
  evaluations, or their output tokens where the run used no GPU (runs from before costs
  were measured have none);
- ``importance.png``: the importance heatmap with the block partition drawn on it.

:func:`write_html` makes one self-contained HTML file of it all (plots inline as data
URIs, nothing loaded from elsewhere). It opens with what to deploy: per member, its
measured accuracy and output tokens against the expert's, each the mean over the
benchmarks of the relative change on each (:func:`deploy_headline`). Then the Pareto
table (values ± their standard deviations, the merges listed with each member), the
front of each baseline run, the plots, each member's mergekit configuration and
``materialize`` command, the anchors, what every evaluation cost, the spec in brief, and
the candidates that failed.

A run has one hypervolume: that of its reported front (``pareto.csv``) against its
reference point. The controller records it after every finished evaluation
(:attr:`RunState.hypervolume`, ``hypervolume.json``); the curves draw that history, and
the table, the front plot's legend and the CLI show its last value, recomputed from
``pareto.csv`` (:meth:`RunDirectory.hypervolume`), all printed by one
:func:`~paretomerge.controller.objectives.format_hypervolume`.
"""

from __future__ import annotations

import base64
import csv
import html
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from paretomerge.controller.cost_budget import budget_use
from paretomerge.controller.decision_space import DecisionSpace
from paretomerge.controller.objectives import ANCHOR_OBJECTIVES, format_hypervolume
from paretomerge.controller.state import (
    AnchorRecord,
    CandidateRecord,
    EvaluationRecord,
    RunState,
)
from paretomerge.importance import ImportanceProfile, PartitionRecord, partition_profile
from paretomerge.merge import MergePlan
from paretomerge.plots import Curve, FrontSeries, plot_fronts, plot_hypervolume
from paretomerge.results import CostTotal, EvaluationCost, Scores
from paretomerge.run_layout import RUN_FILE, RunLayout
from paretomerge.spec import ParetoMergeRun, load_started_run
from paretomerge.tasks import EvaluateTask, local_merge_plan, read_task

LAYERS_PER_REFERENCE_BLOCK = 4
GRANULARITY_NAMES = {"layer": "layer-wise", "block": "block-wise", "model": "model-level"}
# The cost the hypervolume is drawn against, and its axis.
CostUnit = Literal["gpu_seconds", "output_tokens"]
COST_AXES = {
    "gpu_seconds": "GPU-seconds (model-server start and generation, times the GPUs)",
    "output_tokens": "output tokens generated (no GPU was used)",
}


@dataclass(frozen=True)
class FrontPoint:
    """One member of the reported front: a row of ``pareto.csv``.

    ``objectives`` is ``(f1, f2)``; ``std`` their standard deviations when the run
    reports them (``f1_std``, ``f2_std`` columns), else ``None``; ``validated`` whether
    the values come from validation rather than the search's estimate (a ``validated``
    column: ``true``/``false``), ``None`` when the run does not say;
    ``indistinguishable_from`` the merges listed with it, whose values cannot be told from
    its own (the column of that name, or ``same_scores`` in files written before it)."""

    point: int
    candidate: str
    objectives: tuple[float, float]
    std: tuple[float, float] | None
    validated: bool | None = None
    indistinguishable_from: tuple[str, ...] = ()


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

    def front(self) -> list[FrontPoint]:
        """The reported front, in ``pareto.csv`` order (empty before the first result)."""
        path = self.files.pareto
        if not path.exists():
            return []
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        return [
            FrontPoint(
                point=int(row["point"]),
                candidate=row["candidate"],
                objectives=(float(row["f1"]), float(row["f2"])),
                std=(float(row["f1_std"]), float(row["f2_std"])) if row.get("f1_std") else None,
                validated=_flag(row["validated"]) if row.get("validated") else None,
                indistinguishable_from=tuple(
                    (row.get("indistinguishable_from") or row.get("same_scores") or "").split()
                ),
            )
            for row in rows
        ]

    def candidate(self, member: FrontPoint) -> CandidateRecord:
        return self.state.candidate(member.candidate)

    def merge_task(self, point: int) -> EvaluateTask:
        """The task (with its merge plan) of front member ``point`` (``pareto.csv``)."""
        front = self.front()
        if not 0 <= point < len(front):
            raise IndexError(f"--point {point}: the Pareto set has points 0..{len(front) - 1}")
        candidate = front[point].candidate
        task = read_task(self.files.candidate_task(candidate))
        if not isinstance(task, EvaluateTask) or task.plan is None:
            raise ValueError(f"candidate {candidate} has no merge plan")
        return task

    def member_plan(self, point: int) -> MergePlan:
        """Front member ``point``'s merge plan, its model paths resolved on this volume."""
        return local_merge_plan(self.merge_task(point).plan, self.volume)

    def evaluated(self) -> np.ndarray:
        """``(m, 2)`` objectives of every candidate evaluated."""
        done = [c.objectives for c in self.state.candidates if c.status == "succeeded"]
        return np.array(done, dtype=float).reshape(-1, 2)

    def evaluated_std(self) -> np.ndarray | None:
        """``(m, 2)`` standard deviations of :meth:`evaluated` (``objectives_std.npy``), or
        ``None`` when the run has none (or they do not match the evaluations)."""
        path = self.files.objectives_std
        if not path.exists():
            return None
        std = np.load(path)
        return std if std.shape == self.evaluated().shape else None

    @property
    def reference_point(self) -> list[float]:
        """The point this run's hypervolumes are measured from (its spec's)."""
        return self.run.spec.search.reference_point

    def hypervolume(self) -> float:
        """The estimate of the true hypervolume of the reported front (``pareto.csv``)
        against the run's reference point, as the controller recorded it
        (:func:`~paretomerge.search.claims.hypervolume_claim`: the values' hypervolume less
        its bias): what the table, the front plot's legend and the CLI show, and the last
        value of :meth:`hypervolume_curve`. A run without a history (none finished): 0."""
        return self.state.hypervolume[-1] if self.state.hypervolume else 0.0

    def hypervolume_text(self) -> str:
        """:meth:`hypervolume` with its 90% interval, as every line and table shows it."""
        text = format_hypervolume(self.hypervolume())
        interval = self.state.hypervolume_interval
        if interval is None:
            return text
        low, high = (format_hypervolume(v) for v in interval)
        return f"{text} (90% interval {low}-{high})"

    def hypervolume_curve(self) -> Curve:
        """The run's hypervolume history (:attr:`RunState.hypervolume`: the hypervolume of
        the reported front after each finished evaluation, as the controller recorded it
        and ``hypervolume.json`` lists it) against the evaluations' count."""
        history = np.array(self.state.hypervolume, dtype=float)
        return Curve(self.run.name, np.arange(1, len(history) + 1), history)

    def hypervolume_cost_curve(self, unit: CostUnit) -> Curve | None:
        """:meth:`hypervolume_curve` against the cumulative cost in ``unit`` (GPU-seconds
        or output tokens) of the evaluations each value followed, in that order; ``None``
        when one of them is unknown or has no cost recorded (a run from before costs were
        measured)."""
        evaluations = self._hypervolume_history()
        if evaluations is None or any(e.cost is None for e in evaluations):
            return None
        spent = np.array([getattr(e.cost, unit) for e in evaluations], dtype=float)
        return Curve(self.run.name, np.cumsum(spent), np.array(self.state.hypervolume))

    def _hypervolume_history(self) -> list[EvaluationRecord] | None:
        """The evaluation after which each value of :attr:`RunState.hypervolume` was
        taken (:attr:`RunState.hypervolume_after`), or ``None`` where they cannot be told.

        Older checkpoints name none for their first entries: those are the earliest
        finished evaluations that no later entry names, in the order they finished (the
        controller appends one value per result)."""
        state = self.state
        try:
            named = [state.evaluation(task_id) for task_id in state.hypervolume_after]
        except KeyError:
            return None
        unnamed = len(state.hypervolume) - len(named)
        if unnamed < 0:
            return None
        if unnamed == 0:
            return named
        ids = set(state.hypervolume_after)
        earlier = sorted(
            (
                r
                for r in [*state.candidates, *state.validations]
                if r.finished is not None and r.status != "failed" and r.id not in ids
            ),
            key=lambda r: r.finished or "",
        )
        if len(earlier) < unnamed:
            return None
        return [*earlier[:unnamed], *named]

    def series(self, numbered: bool) -> FrontSeries:
        """This run for :func:`~paretomerge.plots.plot_fronts`."""
        front = self.front()
        stds = [m.std for m in front]
        validated = [m.validated for m in front]
        return FrontSeries(
            label=f"{self.run.name} ({GRANULARITY_NAMES[self.run.spec.merge.granularity]})",
            front=np.array([m.objectives for m in front], dtype=float).reshape(-1, 2),
            points=[m.point for m in front] if numbered else None,
            front_std=np.array(stds, dtype=float) if front and None not in stds else None,
            evaluated=self.evaluated(),
            hypervolume=self.hypervolume(),
            validated=np.array(validated) if front and None not in validated else None,
            evaluated_std=self.evaluated_std(),
        )


def _flag(text: str) -> bool:
    """A boolean cell of ``pareto.csv``."""
    if text.strip().lower() not in ("true", "false", "1", "0"):
        raise ValueError(f"pareto.csv: validated is {text!r}, not true or false")
    return text.strip().lower() in ("true", "1")


def check_comparable(run_dir: RunDirectory, baselines: Sequence[RunDirectory]) -> None:
    """Raise :class:`ValueError` unless every baseline measures its hypervolume from the
    run's reference point: each run's history was recorded against its own."""
    for baseline in baselines:
        if list(baseline.reference_point) != list(run_dir.reference_point):
            raise ValueError(
                f"baseline {baseline.run.name}'s reference point "
                f"{tuple(baseline.reference_point)} is not {run_dir.run.name}'s "
                f"{tuple(run_dir.reference_point)}: their hypervolumes cannot be compared"
            )


def write_plots(run_dir: RunDirectory, baselines: Sequence[RunDirectory] = ()) -> list[Path]:
    """Write the report's plots into the run directory; returns their paths."""
    check_comparable(run_dir, baselines)
    ref_point = run_dir.reference_point
    runs = [run_dir.series(True), *(b.series(False) for b in baselines)]
    files = run_dir.files
    paths = [files.front_plot, files.hypervolume_plot]
    plot_fronts(runs, ref_point, f"{run_dir.run.name}: accuracy against output tokens", paths[0])
    plot_hypervolume(
        [run_dir.hypervolume_curve(), *(b.hypervolume_curve() for b in baselines)],
        "evaluations",
        "Hypervolume of the reported front after each evaluation",
        paths[1],
    )
    # GPU-seconds where the run used a GPU, else the tokens, the cost a CPU run has.
    unit: CostUnit = "gpu_seconds" if run_dir.state.cost.gpu_seconds > 0 else "output_tokens"
    cost_curves = [r.hypervolume_cost_curve(unit) for r in (run_dir, *baselines)]
    if cost_curves[0] is not None:
        paths.append(files.hypervolume_cost_plot)
        plot_hypervolume(
            [curve for curve in cost_curves if curve is not None],
            COST_AXES[unit],
            "Hypervolume of the front against what it cost",
            paths[-1],
        )
    profile_path = files.profile_file
    if profile_path.exists():
        paths.append(files.importance_plot)
        plot_importance(run_dir, profile_path, paths[-1])
    return paths


def plot_importance(run_dir: RunDirectory, profile_path: Path, path: Path) -> None:
    """The heatmap with the run's blocks (block-wise runs), else with the blocks its
    ``merge.blocks`` settings would give, at most one per
    :data:`LAYERS_PER_REFERENCE_BLOCK` layers (a layer-wise run searches every layer, and
    a block per layer would show nothing)."""
    from paretomerge.heatmap import plot_profile

    profile = ImportanceProfile.model_validate_json(profile_path.read_text())
    blocks = run_dir.run.spec.merge.blocks
    space = run_dir.space()
    partition = space.partition if space is not None else None
    if partition is not None:
        profile.partition = PartitionRecord.of(
            partition, blocks.strategy, blocks.alpha, blocks.beta
        )
        note = f"the {len(partition.starts)} blocks searched"
    else:
        count = min(blocks.count, max(2, profile.num_layers // LAYERS_PER_REFERENCE_BLOCK))
        profile.partition = partition_profile(
            profile, count, blocks.strategy, blocks.alpha, blocks.beta
        )
        note = f"BAMBO's {count} blocks, for reference: the run searched each layer"
    plot_profile(profile, path, note=note)


# --- the HTML report -------------------------------------------------------------------------


def write_html(
    run_dir: RunDirectory, baselines: Sequence[RunDirectory], plots: Sequence[Path], out: Path
) -> Path:
    """Write the self-contained HTML report of ``run_dir`` to ``out``, with ``plots``
    (from :func:`write_plots`) inlined."""
    check_comparable(run_dir, baselines)
    sections = [
        _what_to_deploy(run_dir),
        _summary(run_dir, baselines),
        _pareto_table(run_dir),
        *(_baseline_front(baseline) for baseline in baselines),
        "<h2>Plots</h2>" + "".join(_figure(path) for path in plots),
        _members(run_dir),
        _anchors(run_dir),
        _costs(run_dir.state),
        _spec_brief(run_dir.run),
        _unscored(run_dir.state),
    ]
    title = f"ParetoMerge report: {run_dir.run.name}"
    document = (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{_e(title)}</h1>{''.join(sections)}</body></html>\n"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(document, encoding="utf-8")
    return out


STYLE = """
body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.4}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6em 0}
th,td{border:1px solid #ccc;padding:.25em .55em;text-align:right;font-size:.92em}
th{background:#f3f3f3}td.text,th.text{text-align:left}td:not(.text){white-space:nowrap}
figure{margin:1em 0}img{max-width:100%;height:auto;border:1px solid #eee}
pre{background:#f6f6f6;padding:.6em;overflow-x:auto;font-size:.85em}
details{margin:.5em 0;border:1px solid #ddd;padding:.3em .6em;border-radius:4px}
summary{cursor:pointer;font-weight:600}.bar{display:inline-block;height:.8em;
background:#c44;vertical-align:middle}.note{color:#666;font-size:.9em}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _summary(run_dir: RunDirectory, baselines: Sequence[RunDirectory]) -> str:
    state, ref_point = run_dir.state, run_dir.reference_point
    rows = [
        (r, r.state.count("succeeded"), r.state.count("failed"), len(r.front()))
        for r in (run_dir, *baselines)
    ]
    body = "".join(
        f"<tr><td class='text'>{_e(r.run.name)}</td>"
        f"<td class='text'>{_e(GRANULARITY_NAMES[r.run.spec.merge.granularity])}, "
        f"{_e(r.run.spec.search.strategy)}</td><td>{done}</td><td>{failed}</td>"
        f"<td>{size}</td><td>{_e(r.hypervolume_text())}</td></tr>"
        for r, done, failed, size in rows
    )
    return (
        f"<p>Phase <b>{_e(state.phase)}</b>{': ' + _e(state.message) if state.message else ''}."
        f" Reference point {tuple(ref_point)}; objectives normalised by the anchors. The "
        "hypervolume is the estimate of the front's true one (its values' hypervolume less "
        "the bias their errors give it), with a 90% interval.</p>"
        + (
            f"<p class='warning'>{_e(state.validation_fallback)}.</p>"
            if state.validation_fallback
            else ""
        )
        + (
            f"<p id='cost-budget'>Cost budget: {_e(used)}, every evaluation this run paid "
            "for counted (the anchors it evaluated, the candidates, screened ones for the "
            "stages they asked, the validations).</p>"
            if (used := budget_use(state))
            else ""
        )
        + "<table id='runs'><thead><tr><th class='text'>run</th><th class='text'>search</th>"
        "<th>evaluated</th><th>failed</th><th>front size</th><th>hypervolume</th></tr>"
        f"</thead><tbody>{body}</tbody></table>"
    )


def _benchmarks(run_dir: RunDirectory) -> list[str]:
    return run_dir.run.spec.objectives.names


def plus_minus(value: float, std: float | None, decimals: int = 3) -> str:
    """``value`` and its standard deviation, ``"0.821 ± 0.099"`` (``value`` alone when
    ``std`` is ``None``)."""
    if std is None:
        return f"{value:.{decimals}f}"
    return f"{value:.{decimals}f} ± {std:.{decimals}f}"


def _score_cells(scores: Scores | None, benchmarks: list[str]) -> str:
    """Per benchmark: accuracy and mean output tokens, each with its standard error."""
    if scores is None:
        return "<td></td><td></td>" * len(benchmarks)
    return "".join(
        f"<td>{plus_minus(score.accuracy, score.accuracy_stderr)}</td>"
        f"<td>{plus_minus(score.mean_output_tokens, score.mean_output_tokens_stderr, 1)}</td>"
        for score in (scores[name] for name in benchmarks)
    )


def _objective_cells(member: FrontPoint) -> str:
    """``f1`` and ``f2`` with their standard deviations when the run reports them."""
    return "".join(
        f"<td class='objective'>{plus_minus(value, None if member.std is None else std)}</td>"
        for value, std in zip(member.objectives, member.std or (None, None), strict=True)
    )


def _front_rows(run_dir: RunDirectory, linked: bool) -> tuple[str, str]:
    """The head and the body of a front's table: per member, point (a link to the
    member's details where ``linked``), candidate and the merges listed with it, ``f1``,
    ``f2``, where the values come from (when the run says), the raw scores; for an empty
    front, why it is empty."""
    benchmarks = _benchmarks(run_dir)
    front = run_dir.front()
    with_source = any(m.validated is not None for m in front)
    head = "<th>point</th><th class='text'>candidate</th><th>f1</th><th>f2</th>"
    head += "<th class='text'>value from</th>" if with_source else ""
    head += "".join(f"<th>{_e(n)} accuracy</th><th>{_e(n)} tokens</th>" for n in benchmarks)
    rows = []
    for member in front:
        point = f"<a href='#point-{member.point}'>{member.point}</a>" if linked else member.point
        source = {True: "validation", False: "search", None: ""}[member.validated]
        rows.append(
            f"<tr data-point='{member.point}'><td>{point}</td>"
            f"<td class='text'>{_e(member.candidate)}{_indistinguishable_note(member)}</td>"
            f"{_objective_cells(member)}"
            + (f"<td class='text'>{source}</td>" if with_source else "")
            + f"{_score_cells(run_dir.candidate(member).scores, benchmarks)}</tr>"
        )
    nothing = f"<tr><td colspan='{head.count('<th')}' class='text'>{_NOTHING_LISTED}</td></tr>"
    return head, "".join(rows) or nothing


def _uncertainty_note(front: list[FrontPoint]) -> str:
    if any(m.std for m in front):
        return (
            "Values &plusmn; one standard deviation (the raw scores &plusmn; their standard "
            "error). Merges whose values cannot be told from a member's within that "
            "uncertainty are named in its row, not listed apart."
        )
    return "This run reports no uncertainty of its values."


def _pareto_table(run_dir: RunDirectory) -> str:
    """The front, one row per member, its values with their standard deviations when the
    run reports them, and where each value comes from (search or validation) when it
    says."""
    head, body = _front_rows(run_dir, linked=True)
    return (
        "<h2>Pareto set</h2><p class='note'>Most accurate first; <code>point</code> is the "
        "number to give <code>paretomerge materialize --point</code>. "
        f"{_uncertainty_note(run_dir.front())}</p>"
        f"<table id='pareto'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def _baseline_front(baseline: RunDirectory) -> str:
    """A baseline run's front as a table of its own (its members' details are in its own
    report)."""
    head, body = _front_rows(baseline, linked=False)
    name = _e(baseline.run.name)
    kind = GRANULARITY_NAMES[baseline.run.spec.merge.granularity]
    return (
        f"<h2>Baseline front: {name}</h2><p class='note'>The {kind} run {name}, for "
        f"comparison; <code>point</code> numbers its own <code>pareto.csv</code>. "
        f"{_uncertainty_note(baseline.front())}</p>"
        f"<table class='baseline-front' data-run='{name}'><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )


def _indistinguishable_note(member: FrontPoint) -> str:
    """The merges listed with ``member``, named in its row."""
    if not member.indistinguishable_from:
        return ""
    names = _e(" ".join(member.indistinguishable_from))
    return f" <span class='note'>(indistinguishable: {names})</span>"


_NOTHING_LISTED = (
    "No merge is listed: none is distinguishable from the base or the expert within the "
    "uncertainty of its evaluation."
)


def relative_change(value: float, reference: float) -> float:
    """``value / reference - 1``: the change from ``reference``, as a fraction."""
    return value / reference - 1.0


def _signed_percent(fraction: float) -> str:
    """``-0.45`` as ``"−45%"``, ``0.04`` as ``"+4%"`` (a true minus sign)."""
    return f"{fraction:+.0%}".replace("-", "\u2212")


def deploy_headline(
    member: FrontPoint, scores: Scores, expert: Scores, benchmarks: list[str]
) -> str:
    """What deploying ``member`` gives, against the expert: ``"point 0 (c0002): −4%
    accuracy for −45% tokens against the expert"``. Each change is the mean over the
    benchmarks of the per-benchmark change ``member / expert - 1`` of the measured
    accuracy, or mean output tokens (every benchmark weighs the same whatever its
    scale)."""
    accuracy = np.mean(
        [relative_change(scores[b].accuracy, expert[b].accuracy) for b in benchmarks]
    )
    tokens = np.mean(
        [
            relative_change(scores[b].mean_output_tokens, expert[b].mean_output_tokens)
            for b in benchmarks
        ]
    )
    return (
        f"point {member.point} ({member.candidate}): {_signed_percent(accuracy)} accuracy for "
        f"{_signed_percent(tokens)} tokens against the expert"
    )


def deploy_figures(scores: Scores, expert: Scores, benchmarks: list[str]) -> str:
    """The measured figures behind :func:`deploy_headline`, per benchmark."""
    return "; ".join(
        f"{b}: accuracy {plus_minus(scores[b].accuracy, scores[b].accuracy_stderr)} "
        f"(expert {expert[b].accuracy:.3f}), "
        f"{scores[b].mean_output_tokens:.1f} tokens (expert {expert[b].mean_output_tokens:.1f})"
        for b in benchmarks
    )


def _deploy_item(member: FrontPoint, scores: Scores, expert: Scores, benchmarks: list[str]) -> str:
    """One line of "what to deploy": the headline, then the figures behind it."""
    return (
        f"<li data-point='{member.point}'>"
        f"<b>{_e(deploy_headline(member, scores, expert, benchmarks))}</b>. "
        f"<span class='note'>{_e(deploy_figures(scores, expert, benchmarks))}</span></li>"
    )


def _what_to_deploy(run_dir: RunDirectory) -> str:
    """The report's opening: one line per member (:func:`deploy_headline`), or why there is none."""
    front, anchors = run_dir.front(), run_dir.state.anchors
    if front and "expert" in anchors:
        benchmarks, expert = _benchmarks(run_dir), anchors["expert"].scores
        items = "".join(
            _deploy_item(m, run_dir.candidate(m).scores, expert, benchmarks) for m in front
        )
        body = f"<ul id='deploy'>{items}</ul>"
    else:
        body = f"<p id='deploy'>{_NOTHING_LISTED}</p>"
    return (
        "<h2>What to deploy</h2><p class='note'>Each member's measured accuracy and output "
        "tokens against the expert's: the mean over the benchmarks of the change on each.</p>"
        + body
    )


def _figure(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return (
        f"<figure><img src='data:image/png;base64,{data}' alt='{_e(path.stem)}'>"
        f"<figcaption class='note'>{_e(path.name)}</figcaption></figure>"
    )


def _members(run_dir: RunDirectory) -> str:
    """Per front member: its weights, the ``materialize`` command and the mergekit
    configuration (model paths resolved on this volume)."""
    parts = ["<h2>Front members</h2>"]
    space = run_dir.space()
    names = space.variable_names() if space is not None else []
    for member in run_dir.front():
        candidate = run_dir.candidate(member)
        command = shlex.join(
            [
                "paretomerge",
                "materialize",
                str(run_dir.path.resolve()),
                "--point",
                str(member.point),
                "--out",
                f"{run_dir.run.name}-point-{member.point}",
            ]
        )
        weights = "".join(
            f"<tr><td class='text'>{_e(name)}</td><td>{value:.3f}</td><td class='text'>"
            f"<span class='bar' style='width:{max(0.0, min(value, 1.0)) * 12:.2f}em'></span>"
            "</td></tr>"
            for name, value in zip(names, candidate.variables, strict=False)
        )
        parts.append(
            f"<details id='point-{member.point}'{' open' if member.point == 0 else ''}>"
            f"<summary>point {member.point}: "
            f"{_e(member.candidate)} (f1 {_member_value(member, 0)}, f2 "
            f"{_member_value(member, 1)})</summary><p>Re-create it:</p>"
            f"<pre class='command'>{_e(command)}</pre><p>Its mergekit configuration:</p>"
            f"<pre class='mergekit'>{_e(_mergekit_yaml(run_dir, member.point))}</pre>"
            f"<table><thead><tr><th class='text'>variable</th><th>value</th><th></th></tr>"
            f"</thead><tbody>{weights}</tbody></table></details>"
        )
    return "".join(parts)


def _member_value(member: FrontPoint, objective: int) -> str:
    """Objective ``objective`` of ``member`` with its standard deviation, if known."""
    std = None if member.std is None else member.std[objective]
    return plus_minus(member.objectives[objective], std)


def _mergekit_yaml(run_dir: RunDirectory, point: int) -> str:
    """The mergekit YAML of front member ``point``, or why it cannot be shown."""
    from paretomerge.checkpoint import Checkpoint, CheckpointError
    from paretomerge.merge import build_configuration
    from paretomerge.tensor_layout import TensorLayout

    try:
        plan = run_dir.member_plan(point)
        base = Checkpoint(plan.base)
        return build_configuration(plan, base, TensorLayout.of(base)).to_yaml()
    except (OSError, ValueError, CheckpointError) as error:
        return f"# not available here: {error}"


def _point(objectives: np.ndarray) -> str:
    """``(0, 1)``: an anchor's place in objective space."""
    return "(" + ", ".join(f"{value:g}" for value in objectives) + ")"


def _anchors(run_dir: RunDirectory) -> str:
    benchmarks = _benchmarks(run_dir)
    head = "".join(f"<th>{_e(n)} accuracy</th><th>{_e(n)} tokens</th>" for n in benchmarks)
    rows = "".join(
        f"<tr><td class='text'>{_e(role)}</td><td class='text'>{_e(anchor.model)}</td>"
        f"{_score_cells(anchor.scores, benchmarks)}"
        f"<td class='text'>{'cache' if anchor.cached else 'evaluated'}</td></tr>"
        for role, anchor in [
            *run_dir.state.anchors.items(),
            *((f"{role} (replaced)", a) for role, a in run_dir.state.replaced_anchors.items()),
        ]
    )
    replaced = (
        " The first measurement (replaced) was too close to normalise by; the anchors "
        "were measured again, asking each question more times."
        if run_dir.state.replaced_anchors
        else ""
    )
    return (
        f"<h2>Anchors</h2><p class='note'>(f1, f2) = {_point(ANCHOR_OBJECTIVES[0])} at the "
        f"base, {_point(ANCHOR_OBJECTIVES[1])} at the expert, per benchmark, then averaged."
        f"{replaced}</p><table id='anchors'><thead><tr>"
        f"<th class='text'>role</th><th class='text'>model</th>{head}"
        f"<th class='text'>from</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _costs(state: RunState) -> str:
    """Every evaluation's :class:`~paretomerge.results.EvaluationCost` (the anchors
    evaluated by this run, the candidates, the validations), then the totals."""
    evaluated = [
        *((f"anchor {role}", _anchor_source(a), a.cost) for role, a in state.anchors.items()),
        *(
            (f"anchor {role} (held out)", _anchor_source(a), a.cost)
            for role, a in state.held_out_anchors.items()
        ),
        *(
            (f"anchor {role} (replaced)", _anchor_source(a), a.cost)
            for role, a in state.replaced_anchors.items()
        ),
        *((r.id, r.status, r.cost) for r in [*state.candidates, *state.validations]),
    ]
    rows = [
        f"<tr><td class='text'>{_e(name)}</td><td class='text'>{_e(status)}</td>"
        + _cost_cells(cost)
        + "</tr>"
        for name, status, cost in evaluated
        if status != "running"
    ]
    for name, total in (("candidates and validations", state.cost), ("anchors", state.anchor_cost)):
        rows.append(
            f"<tr class='total'><th class='text'>{name}</th><td class='text'>"
            f"{total.evaluations} evaluated</td>" + _cost_cells(total) + "</tr>"
        )
    head = "".join(
        f"<th>{name}</th>"
        for name in (
            "answers",
            "output tokens",
            "merge s",
            "server start s",
            "generation s",
            "GPUs",
            "GPU-seconds",
        )
    )
    return (
        "<h2>Cost</h2><p class='note'>What each evaluation cost: answers generated (every "
        "repeat counted), output tokens, seconds of the merge, the model server's start and "
        "generation, and GPU-seconds = (server start + generation) &times; GPUs of the pod. "
        "Cached anchors cost this run nothing; a failed attempt's cost is not known."
        "</p><table id='cost'><thead><tr><th class='text'>evaluation</th>"
        f"<th class='text'>status</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _anchor_source(anchor: AnchorRecord) -> str:
    return "cached" if anchor.cached else "evaluated"


def _cost_cells(cost: EvaluationCost | CostTotal | None) -> str:
    """The cost columns of one row (empty without a cost; a total has no GPU count)."""
    if cost is None:
        return "<td></td>" * 7
    gpus = str(cost.gpus) if isinstance(cost, EvaluationCost) else ""
    return (
        f"<td>{cost.answers}</td><td>{cost.output_tokens}</td>"
        f"<td>{cost.merge_seconds:.1f}</td><td>{cost.serve_seconds:.1f}</td>"
        f"<td>{cost.generate_seconds:.1f}</td><td>{gpus}</td><td>{cost.gpu_seconds:.1f}</td>"
    )


def _spec_brief(run: ParetoMergeRun) -> str:
    spec = run.spec
    benchmarks = ", ".join(
        b.name if b.type == "builtin" else f"{b.name} ({b.format}, {b.path})"
        for b in spec.objectives.benchmarks
    )
    limit = spec.objectives.limit
    items = [
        ("base", spec.models.base.path),
        ("experts", ", ".join(e.path for e in spec.models.experts)),
        ("merge", f"{spec.merge.method}, {GRANULARITY_NAMES[spec.merge.granularity]}"),
        (
            "search",
            f"{spec.search.strategy}, budget {spec.search.budget}, "
            f"{spec.search.initial_points} initial points, seed {spec.search.seed}",
        ),
        ("benchmarks", benchmarks + (f"; {limit} questions each" if limit else "")),
        (
            "evaluation",
            f"{spec.evaluation.engine}, max {spec.evaluation.max_tokens} tokens, "
            f"temperature {spec.evaluation.sampling.temperature}",
        ),
    ]
    rows = "".join(
        f"<tr><th class='text'>{_e(k)}</th><td class='text'>{_e(v)}</td></tr>" for k, v in items
    )
    return f"<h2>Run spec</h2><table id='spec'><tbody>{rows}</tbody></table>"


def _unscored_reason(candidate: CandidateRecord) -> str:
    if candidate.status == "screened":
        return f"probably dominated after stage {candidate.screened_after}: stopped there"
    return candidate.reasons[-1] if candidate.reasons else ""


def _unscored(state: RunState) -> str:
    """Candidates that finished with no score of their own: failed ones with their last
    reason (and any other such status, e.g. screened)."""
    unscored = [c for c in state.candidates if c.status not in ("succeeded", "running")]
    statuses = sorted({c.status for c in unscored}) or ["failed"]
    title = f"<h2>{_e(' and '.join(statuses).capitalize())} candidates</h2>"
    if not unscored:
        return f"{title}<p>None.</p>"
    rows = "".join(
        f"<tr><td class='text'>{_e(c.id)}</td><td class='text'>{_e(c.status)}</td>"
        f"<td>{c.attempts}</td><td class='text'>{_e(_unscored_reason(c))}</td></tr>"
        for c in unscored
    )
    return (
        f"{title}<table id='unscored'><thead><tr><th class='text'>candidate</th>"
        "<th class='text'>status</th><th>attempts</th><th class='text'>last reason</th></tr>"
        f"</thead><tbody>{rows}</tbody></table>"
    )
