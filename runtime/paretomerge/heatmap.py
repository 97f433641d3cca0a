"""The importance heatmap: per-layer statistics as rows, with the block partition on top.

Each row is one statistic (mean over experts; with several experts, also each expert's
Frobenius row; with an activation profile, its row and the prior's that combines both),
min-max normalised on its own because the statistics have different units (the prior's
row as the search sees it: normalised with the head). The last row shows the blocks of
the partition, each cell coloured by its block's normalised importance mass and
numbered; white lines mark the block boundaries through every row.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and in pods

import matplotlib.pyplot as plt
import numpy as np

from paretomerge.importance import STATISTICS, ImportanceProfile
from paretomerge.partition import BlockPartition, layer_importance, normalize_profile

FONT_SIZE = 11


def plot_profile(profile: ImportanceProfile, path: str | Path, note: str | None = None) -> None:
    """Write the heatmap of ``profile`` (and of ``profile.partition`` if set) as a PNG;
    ``note`` says what the blocks are (the title's second line)."""
    rows: list[tuple[str, np.ndarray]] = [
        (statistic, normalize_profile(profile.statistics[statistic].layers))
        for statistic in STATISTICS
    ]
    if len(profile.experts) > 1:
        rows += [
            (
                f"frobenius: {Path(e.model.path).name}",
                normalize_profile(e.statistics["frobenius"].layers),
            )
            for e in profile.experts
        ]
    if profile.activation is not None:
        rows += [
            (
                f"activation ({profile.activation.statistic})",
                normalize_profile(profile.activation.layers),
            ),
            (
                f"prior ({profile.activation_weight:.2f} activation)",
                layer_importance(profile.prior),
            ),
        ]
    partition = None
    if profile.partition is not None:
        partition = BlockPartition(
            starts=tuple(profile.partition.starts), num_layers=profile.num_layers
        )
        importance = layer_importance(profile.prior)
        block_mass = [importance[a:b].sum() for a, b in partition.bounds]
        rows.append(
            (
                f"blocks ({profile.partition.strategy})",
                partition.expand(normalize_profile(block_mass)),
            ),
        )

    num_layers = profile.num_layers
    figure, axes = plt.subplots(figsize=(max(7.2, 0.3 * num_layers + 3), 0.55 * len(rows) + 2.0))
    image = axes.imshow(
        np.stack([values for _, values in rows]),
        aspect="auto",
        cmap="viridis",
        vmin=0.0,
        vmax=1.0,
        interpolation="nearest",
    )
    axes.set_yticks(range(len(rows)), [label for label, _ in rows], fontsize=FONT_SIZE - 1)
    step = max(1, num_layers // 24)
    axes.set_xticks(range(0, num_layers, step))
    axes.tick_params(axis="x", labelsize=FONT_SIZE - 1)
    axes.set_xlabel("layer", fontsize=FONT_SIZE)
    if partition is not None:
        for start in partition.starts[1:]:
            axes.axvline(start - 0.5, color="white", linewidth=2.5)
        block_values = rows[-1][1]
        for block, (first, stop) in enumerate(partition.bounds):
            axes.text(
                (first + stop - 1) / 2,
                len(rows) - 1,
                f"B{block}",
                ha="center",
                va="center",
                fontsize=FONT_SIZE - 1,
                color="black" if block_values[first] > 0.6 else "white",  # viridis: light top
                fontweight="bold",
            )
    measured = "Task-vector" if profile.activation is None else "Task-vector and activation"
    title = f"{measured} statistics per layer (each row min-max normalised)"
    axes.set_title(title + (f"\n{note}" if note else ""), fontsize=FONT_SIZE)
    colorbar = figure.colorbar(image, ax=axes, fraction=0.03, pad=0.02)
    colorbar.ax.tick_params(labelsize=FONT_SIZE - 2)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
