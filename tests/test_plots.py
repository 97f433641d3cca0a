"""The report's figures: staircase fronts, labels that stay apart, error bars, curves."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from paretomerge.plots import (
    FONT_SIZE,
    LABEL_OFFSETS,
    Curve,
    FrontSeries,
    label_boxes,
    plot_fronts,
    plot_hypervolume,
    staircase,
)
from paretomerge.search import hypervolume, pareto_mask

REF = (-0.2, -0.2)


def polygon_area(vertices: np.ndarray) -> float:
    x, y = vertices[:, 0], vertices[:, 1]
    return 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


@pytest.mark.parametrize("seed", range(5))
def test_the_staircase_encloses_exactly_the_hypervolume(seed):
    rng = np.random.default_rng(seed)
    points = rng.uniform(-0.1, 1.2, size=(12, 2))
    front = points[pareto_mask(points)]
    steps = staircase(front, REF)
    # Closed at the reference corner, the staircase is the dominated region's boundary.
    region = np.vstack([steps, [REF]])
    assert polygon_area(region) == pytest.approx(hypervolume(front, np.array(REF)))
    # Only horizontal and vertical segments: no straight line between two front points.
    segments = np.diff(steps, axis=0)
    assert np.all((segments[:, 0] == 0) | (segments[:, 1] == 0))
    # Every front point is a corner of it.
    assert {tuple(p) for p in front} <= {tuple(v) for v in steps}


def boxes(anchors, widths, height, offsets):
    scale = height / FONT_SIZE
    placed = []
    for (x, y), width, (dx, dy) in zip(anchors, widths, offsets, strict=True):
        left = x + dx * scale if dx >= 0 else x + dx * scale - width
        placed.append((left, y + dy * scale, left + width, y + dy * scale + height))
    return placed


def overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_labels_of_close_points_avoid_each_other_and_the_markers_and_far_ones_stay_put():
    # Three crowded points, one long label ("2,3,4,5" of coinciding points), a marker on
    # top of them, and a lone point far away.
    anchors = np.array([[100.0, 100.0], [104.0, 98.0], [101.0, 103.0], [400.0, 300.0]])
    widths, height = [10.0, 60.0, 10.0, 10.0], 15.0
    marker = np.array([[95.0, 118.0, 115.0, 138.0]])
    offsets = label_boxes(anchors, widths, height, marker)
    placed = boxes(anchors, widths, height, offsets)
    for i, box in enumerate(placed):
        assert not overlap(box, marker[0]), i
        assert not any(overlap(box, other) for other in placed[:i]), i
    assert offsets[3] == LABEL_OFFSETS[0]  # nothing near the lone point


def series(front_std: np.ndarray | None, validated: np.ndarray | None = None) -> FrontSeries:
    front = np.array([[1.0, 0.4], [0.6, 0.6], [0.6, 0.6], [0.1, 0.95]])
    return FrontSeries(
        label="demo (layer-wise)",
        front=front,
        points=[0, 1, 2, 3],
        front_std=front_std,
        evaluated=np.vstack([front, [[0.3, 0.3], [0.5, 0.1]]]),
        hypervolume=hypervolume(front, np.array(REF)),
        validated=validated,
    )


def test_fronts_plot_with_and_without_error_bars_and_a_baseline(tmp_path):
    baseline = FrontSeries(
        label="sweep (model-level)",
        front=np.array([[0.9, 0.1], [0.0, 0.9]]),
        points=None,
        front_std=None,
        evaluated=np.array([[0.9, 0.1], [0.0, 0.9], [0.4, 0.2]]),
        hypervolume=0.5,
    )
    sizes = []
    for std in (None, np.full((4, 2), 0.05)):
        path = tmp_path / f"front-{std is None}.png"
        plot_fronts([series(std), baseline], REF, "demo", path)
        with Image.open(path) as image:
            sizes.append(image.size)
            pixels = np.asarray(image.convert("RGB"), dtype=int)
        # The searched run's red and the baseline's blue are both drawn.
        red = (pixels[..., 0] > 180) & (pixels[..., 1] < 80) & (pixels[..., 2] < 80)
        blue = (pixels[..., 2] > 150) & (pixels[..., 0] < 80)
        assert red.sum() > 200 and blue.sum() > 200
    assert sizes[0] == sizes[1] and sizes[0][0] >= 700


def test_hypervolume_curves_of_several_runs(tmp_path):
    path = tmp_path / "hv.png"
    curves = [
        Curve("layer-wise", np.arange(1, 6), np.array([0.1, 0.3, 0.3, 0.7, 0.8])),
        Curve("model-level", np.arange(1, 6), np.array([0.1, 0.2, 0.4, 0.4, 0.5])),
    ]
    plot_hypervolume(curves, "evaluations", "Hypervolume", path)
    with Image.open(path) as image:
        assert image.size[0] >= 700


def dark_pixels(path) -> int:
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=int)
    return int((pixels.max(axis=-1) < 60).sum())


def test_validated_members_are_drawn_apart_from_search_estimates(tmp_path):
    # Validated members are black-edged stars, with their own legend entry: far more
    # near-black pixels than the same front drawn as search estimates only.
    plain, marked = tmp_path / "plain.png", tmp_path / "validated.png"
    plot_fronts([series(None)], REF, "demo", plain)
    plot_fronts([series(None, np.array([True, False, False, True]))], REF, "demo", marked)
    assert dark_pixels(marked) > dark_pixels(plain) + 150
