import numpy as np
import pytest

from paretomerge.partition import BlockPartition
from paretomerge.search.prior import (
    block_importance,
    normalize_profile,
    sip_initial_lengthscales,
    sip_saas_prior_scales,
)


def test_normalize_profile_min_max():
    assert normalize_profile([2.0, 4.0, 3.0]).tolist() == [0.0, 1.0, 0.5]
    assert normalize_profile([3.0, 3.0]).tolist() == [0.5, 0.5]
    with pytest.raises(ValueError, match="non-finite values at positions \\[1\\]"):
        normalize_profile([1.0, np.inf])


def test_block_importance_sums_then_normalises():
    partition = BlockPartition((0, 2, 3), num_layers=5)
    # sums: 0.1+0.2, 0.9, 0.0+0.3 -> 0.3, 0.9, 0.3
    assert block_importance([0.1, 0.2, 0.9, 0.0, 0.3], partition).tolist() == pytest.approx(
        [0.0, 1.0, 0.0]
    )


def test_rank_lengthscales_follow_shares():
    importance = np.linspace(1.0, 0.0, 20)  # already in rank order
    lengthscales = sip_initial_lengthscales(importance, "rank")
    assert lengthscales[:3].tolist() == [0.5] * 3  # top 15%
    assert lengthscales[3:8].tolist() == [1.0] * 5  # up to 40%
    assert lengthscales[8:14].tolist() == [2.0] * 6  # up to 70%
    assert lengthscales[14:].tolist() == [5.0] * 6


def test_threshold_lengthscales():
    assert sip_initial_lengthscales([0.95, 0.8, 0.7, 0.1], "threshold").tolist() == [
        0.5,
        1.0,
        5.0,
        5.0,
    ]


@pytest.mark.parametrize("mapping", ["rank", "threshold"])
def test_lengthscales_non_increasing_in_importance(mapping):
    importance = np.random.default_rng(0).random(37)
    lengthscales = sip_initial_lengthscales(importance, mapping)
    order = np.argsort(importance)
    assert np.all(np.diff(lengthscales[order]) <= 0)


def test_saas_prior_scale_strictly_increasing_and_neutral_at_half():
    importance = np.random.default_rng(1).random(50)
    scales = sip_saas_prior_scales(importance)
    order = np.argsort(importance)
    assert np.all(np.diff(scales[order]) > 0)
    assert sip_saas_prior_scales([0.5, 0.5]).tolist() == [1.0, 1.0]
    assert sip_saas_prior_scales([0.0, 1.0]).tolist() == pytest.approx([0.1, 10.0])
    assert sip_saas_prior_scales([0.0, 1.0], strength=0).tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="strength"):
        sip_saas_prior_scales([0.5], strength=-1)
