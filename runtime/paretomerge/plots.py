"""The report's figures, drawn from plain arrays: no run directory, no spec.

- :func:`plot_fronts`: fronts in objective space as staircases (a front of finitely many
  merges reaches the region below and left of each point, never the straight segment
  between two of them), each front point labelled with its ``materialize --point``
  number, with optional error bars and validated values drawn apart from search
  estimates, every evaluated merge, the anchors, and other runs (e.g. a model-level
  sweep) overlaid;
- :func:`plot_hypervolume`: hypervolume against any cumulative x (evaluations, or their
  cumulative cost), each curve's last value in the legend;
- the importance heatmap lives in :mod:`paretomerge.heatmap`.

Sizes and fonts are set for figures shown about 700 pixels wide in the HTML report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and in pods

import matplotlib.pyplot as plt
import numpy as np

from paretomerge.controller.objectives import ANCHOR_OBJECTIVES, format_hypervolume

DPI = 120
FONT_SIZE = 11
# One colour per run, the searched run first; baselines take the next ones.
RUN_COLOURS = ("tab:red", "tab:blue", "tab:orange", "tab:purple", "tab:brown")
# Label positions (points, from the labelled point to the label's lower-left corner)
# tried in turn, so that labels of close points do not cover each other.
LABEL_OFFSETS = ((6, 5), (6, -14), (-6, 5), (-6, -14), (6, 17), (-6, 17), (6, -26), (-6, -26))
LABEL_CHAR_WIDTH = 0.62  # of the font size: a digit or comma in bold


@dataclass(frozen=True)
class FrontSeries:
    """One run in objective space (both objectives maximised).

    Attributes:
        label: the legend's name for the run.
        front: ``(n, 2)`` the reported front, in ``pareto.csv`` order.
        points: ``(n,)`` each front member's ``materialize --point`` number, or ``None``
            to leave the front unlabelled (a baseline).
        front_std: ``(n, 2)`` standard deviations of ``front`` (drawn as error bars), or
            ``None``.
        evaluated: ``(m, 2)`` every evaluated merge of the run.
        hypervolume: the front's hypervolume, shown in the legend.
        validated: ``(n,)`` booleans, true where a front value comes from validation
            (re-evaluation on held-out questions) rather than from the search's own
            estimate; such members are drawn as stars. ``None``: no validation.
        evaluated_std: ``(m, 2)`` standard deviations of ``evaluated``, or ``None``.
    """

    label: str
    front: np.ndarray
    points: Sequence[int] | None
    front_std: np.ndarray | None
    evaluated: np.ndarray
    hypervolume: float
    validated: np.ndarray | None = None
    evaluated_std: np.ndarray | None = None


@dataclass(frozen=True)
class Curve:
    """A cumulative curve: ``y[i]`` after ``x[i]`` (``x`` increasing)."""

    label: str
    x: np.ndarray
    y: np.ndarray


def staircase(front: np.ndarray, ref_point: Sequence[float]) -> np.ndarray:
    """The boundary of the region a maximising front dominates, down to ``ref_point``.

    Args:
        front: ``(n, 2)`` mutually non-dominated points.
        ref_point: ``(2,)`` lower-left corner of the region.

    Returns:
        ``(2n + 1, 2)`` vertices from ``(ref_x, y_1)`` to ``(x_n, ref_y)``, the points
        sorted by ``x`` increasing (so ``y`` decreasing): between ``x_i`` and ``x_{i+1}``
        the boundary is at ``y_{i+1}``, the best ``f2`` still reachable with an ``f1``
        of at least ``x``.
    """
    ordered = front[np.argsort(front[:, 0], kind="stable")]
    next_y = [*ordered[1:, 1], ref_point[1]]
    vertices = [(ref_point[0], ordered[0, 1])]
    for (x, y), below in zip(ordered, next_y, strict=True):
        vertices += [(x, y), (x, below)]
    return np.array(vertices)


def plot_fronts(
    runs: Sequence[FrontSeries],
    ref_point: Sequence[float],
    title: str,
    path: Path,
) -> None:
    """Draw ``runs`` (the searched run first) into one PNG at ``path``.

    Each front is a staircase over the area it dominates (its hypervolume against
    ``ref_point``); evaluated merges are hollow so that points on top of each other
    stay visible; front members sharing a position share one label (``"2,3"``).
    """
    figure, axes = plt.subplots(figsize=(7.2, 6.6))
    for index, run in enumerate(reversed(runs)):  # the searched run drawn last, on top
        colour = RUN_COLOURS[(len(runs) - 1 - index) % len(RUN_COLOURS)]
        marker = "o" if index == len(runs) - 1 else "^"
        if run.evaluated_std is not None and len(run.evaluated):
            _error_bars(axes, run.evaluated, run.evaluated_std, colour, alpha=0.25)
        if len(run.evaluated):
            axes.scatter(
                run.evaluated[:, 0],
                run.evaluated[:, 1],
                s=26,
                marker=marker,
                facecolors="none",
                edgecolors=colour,
                alpha=0.45,
                linewidths=0.9,
                label=f"{run.label}: merges evaluated",
            )
        if not len(run.front):
            continue
        steps = staircase(run.front, ref_point)
        axes.fill_between(steps[:, 0], steps[:, 1], ref_point[1], color=colour, alpha=0.07)
        axes.plot(
            steps[:, 0],
            steps[:, 1],
            color=colour,
            linewidth=1.8,
            label=f"{run.label}: front, hypervolume {format_hypervolume(run.hypervolume)}",
        )
        if run.front_std is not None:
            _error_bars(axes, run.front, run.front_std, colour, alpha=0.8)
        validated = (
            np.zeros(len(run.front), dtype=bool)
            if run.validated is None
            else np.asarray(run.validated, dtype=bool)
        )
        estimated = ~validated
        axes.scatter(
            run.front[estimated, 0],
            run.front[estimated, 1],
            s=52,
            marker=marker,
            color=colour,
            edgecolors="white",
            linewidths=0.8,
            zorder=4,
            label=f"{run.label}: search estimates" if run.validated is not None else None,
        )
        if validated.any():
            axes.scatter(
                run.front[validated, 0],
                run.front[validated, 1],
                s=150,
                marker="*",
                color=colour,
                edgecolors="black",
                linewidths=0.9,
                zorder=4,
                label=f"{run.label}: validated",
            )
    for (x, y), marker, role in zip(ANCHOR_OBJECTIVES, "sD", ("base", "expert"), strict=True):
        label = f"{role} ({x:g}, {y:g})"
        # Hollow, so that a merge at an anchor's place stays visible under it.
        axes.scatter(
            [x], [y], s=120, marker=marker, facecolors="none", edgecolors="0.15",
            linewidths=1.8, zorder=5, label=label,
        )  # fmt: skip
    axes.set_xlabel("f1: accuracy gain (0 = base, 1 = expert)")
    axes.set_ylabel("f2: output-token saving (0 = expert, 1 = base)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    _fit_limits(axes, runs, ref_point)
    for run in runs:
        if run.points is not None and len(run.front):
            _label_points(axes, run.front, run.points, avoid=ANCHOR_OBJECTIVES)
    # Below the axes, the searched run's entries first: no legend hides a point.
    handles = dict(zip(*reversed(axes.get_legend_handles_labels()), strict=True))
    order = sorted(handles, key=lambda label: _legend_rank(label, runs))
    axes.legend(
        [handles[label] for label in order],
        order,
        fontsize=FONT_SIZE - 2,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.13),
        ncol=2,
        frameon=False,
    )
    _save(figure, path)


def _error_bars(axes, values: np.ndarray, std: np.ndarray, colour: str, alpha: float) -> None:
    """One standard deviation either side of each of ``values`` ``(n, 2)``, both axes."""
    axes.errorbar(
        values[:, 0],
        values[:, 1],
        xerr=std[:, 0],
        yerr=std[:, 1],
        fmt="none",
        ecolor=colour,
        elinewidth=1.0,
        capsize=3,
        alpha=alpha,
    )


def _legend_rank(label: str, runs: Sequence[FrontSeries]) -> int:
    return next((i for i, run in enumerate(runs) if label.startswith(f"{run.label}:")), len(runs))


def plot_hypervolume(curves: Sequence[Curve], x_label: str, title: str, path: Path) -> None:
    """Draw each cumulative hypervolume curve as a step function of ``x_label``."""
    figure, axes = plt.subplots(figsize=(7.2, 4.2))
    for index, curve in enumerate(curves):
        axes.step(
            curve.x,
            curve.y,
            where="post",
            color=RUN_COLOURS[index % len(RUN_COLOURS)],
            linewidth=1.8,
            label=(
                f"{curve.label} (final {format_hypervolume(curve.y[-1])})"
                if len(curve.y)
                else curve.label
            ),
        )
    axes.set_xlabel(x_label)
    axes.set_ylabel("hypervolume of the front")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.set_ylim(bottom=0.0)
    if curves:
        axes.legend(fontsize=FONT_SIZE - 1, loc="lower right")
    _save(figure, path)


def _fit_limits(axes, runs: Sequence[FrontSeries], ref_point: Sequence[float]) -> None:
    """Show the anchors, every point and the reference corner, with a margin."""
    values = np.vstack([ANCHOR_OBJECTIVES, *(r.evaluated for r in runs if len(r.evaluated))])
    low = np.minimum(values.min(axis=0), ref_point)
    high = values.max(axis=0)
    margin = 0.06 * (high - low)
    axes.set_xlim(low[0] - margin[0], high[0] + margin[0])
    axes.set_ylim(low[1] - margin[1], high[1] + margin[1])


def label_boxes(
    anchors: np.ndarray, widths: Sequence[float], height: float, obstacles: np.ndarray
) -> list[tuple[float, float]]:
    """Where to put labels so that none covers another or a marker.

    Args:
        anchors: ``(n, 2)`` pixel positions of the labelled points, in labelling order.
        widths: each label's width in pixels; ``height`` is every label's height.
        obstacles: ``(k, 4)`` pixel boxes ``(x0, y0, x1, y1)`` labels must avoid (markers).

    Returns:
        Per label, the first of :data:`LABEL_OFFSETS` (scaled to pixels by ``height``; a
        negative x offset puts the label's right edge there) whose box meets no obstacle
        and no label placed before, else the first offset.
    """
    scale = height / FONT_SIZE
    taken = [tuple(box) for box in obstacles]
    chosen = []
    for (x, y), width in zip(anchors, widths, strict=True):
        boxes = []
        for dx, dy in LABEL_OFFSETS:
            left = x + dx * scale if dx >= 0 else x + dx * scale - width
            bottom = y + dy * scale
            boxes.append(((dx, dy), (left, bottom, left + width, bottom + height)))
        offset, box = next(
            ((o, b) for o, b in boxes if not any(_overlap(b, t) for t in taken)), boxes[0]
        )
        taken.append(box)
        chosen.append(offset)
    return chosen


def _overlap(a: Sequence[float], b: Sequence[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _label_points(axes, front: np.ndarray, points: Sequence[int], avoid: np.ndarray) -> None:
    """Write each front point's number beside it, one label per distinct position (the
    numbers of coinciding points joined: ``"2,3"``), clear of each other and of the
    markers at ``avoid`` ``(k, 2)`` (data coordinates)."""
    figure = axes.figure
    figure.canvas.draw()  # fixes the data-to-pixel transform used for the placement
    groups: dict[tuple[float, float], list[int]] = {}
    for (x, y), number in zip(front, points, strict=True):
        groups.setdefault((round(float(x), 6), round(float(y), 6)), []).append(int(number))
    texts = [",".join(str(n) for n in sorted(numbers)) for numbers in groups.values()]
    pixels_per_point = figure.dpi / 72.0
    height = FONT_SIZE * pixels_per_point
    half = 0.45 * height  # a marker's half size
    markers = axes.transData.transform(np.asarray(avoid, dtype=float).reshape(-1, 2))
    offsets = label_boxes(
        axes.transData.transform(np.array(list(groups), dtype=float).reshape(-1, 2)),
        [len(text) * LABEL_CHAR_WIDTH * height for text in texts],
        height,
        np.hstack([markers - half, markers + half]),
    )
    for (x, y), text, (dx, dy) in zip(groups, texts, offsets, strict=True):
        axes.annotate(
            text,
            (x, y),
            xytext=(dx, dy),
            textcoords="offset points",
            ha="left" if dx >= 0 else "right",
            va="bottom",
            fontsize=FONT_SIZE - 1,
            fontweight="bold",
            zorder=6,
            bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8},
        )


def _save(figure, path: Path) -> None:
    for axes in figure.axes:
        axes.title.set_fontsize(FONT_SIZE + 1)
        axes.xaxis.label.set_fontsize(FONT_SIZE)
        axes.yaxis.label.set_fontsize(FONT_SIZE)
        axes.tick_params(labelsize=FONT_SIZE - 1)
    figure.tight_layout()
    figure.savefig(path, dpi=DPI, bbox_inches="tight")  # keeps a legend below the axes
    plt.close(figure)
