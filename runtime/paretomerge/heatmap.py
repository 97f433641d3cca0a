"""The importance heatmap: per-layer statistics as rows, with the block partition on top.

Each row is one statistic (mean over experts; with several experts, also each expert's
Frobenius row), min-max normalised on its own because the statistics have different
units. The last row shows the blocks of the partition, each cell coloured by its block's
normalised importance mass; white lines mark the block boundaries through every row.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and in pods

import matplotlib.pyplot as plt
import numpy as np

from paretomerge.importance import STATISTICS, ImportanceProfile
from paretomerge.partition import BlockPartition, layer_importance, normalize_profile


def plot_profile(profile: ImportanceProfile, path: str | Path) -> None:
    """Write the heatmap of ``profile`` (and of ``profile.partition`` if set) as a PNG."""
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
    partition = None
    if profile.partition is not None:
        partition = BlockPartition(
            starts=tuple(profile.partition.starts), num_layers=profile.num_layers
        )
        importance = layer_importance([*profile.layers, profile.head])
        block_mass = [importance[a:b].sum() for a, b in partition.bounds]
        rows.append(
            (
                f"blocks ({profile.partition.strategy})",
                partition.expand(normalize_profile(block_mass)),
            ),
        )

    num_layers = profile.num_layers
    figure, axes = plt.subplots(figsize=(max(6.0, 0.28 * num_layers + 3), 0.5 * len(rows) + 1.6))
    image = axes.imshow(
        np.stack([values for _, values in rows]),
        aspect="auto",
        cmap="viridis",
        vmin=0.0,
        vmax=1.0,
        interpolation="nearest",
    )
    axes.set_yticks(range(len(rows)), [label for label, _ in rows])
    step = max(1, num_layers // 24)
    axes.set_xticks(range(0, num_layers, step))
    axes.set_xlabel("layer")
    if partition is not None:
        for start in partition.starts[1:]:
            axes.axvline(start - 0.5, color="white", linewidth=2)
    axes.set_title("Task-vector statistics per layer (each row min-max normalised)")
    figure.colorbar(image, ax=axes, fraction=0.03, pad=0.02)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
