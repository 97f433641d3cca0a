"""What a search claims of its front: the hypervolume's estimate and interval, the anchors'
common error, and validations pooled as dependent (``paretomerge.search.claims``)."""

from __future__ import annotations

import numpy as np
import pytest

from paretomerge.controller.objectives import anchor_errors, objective_values
from paretomerge.evaluate.scoring import SampleRecord, score_benchmark
from paretomerge.search import AskTellOptimizer, SearchConfig, hypervolume
from paretomerge.search.claims import (
    AnchorErrors,
    hypervolume_2d,
    hypervolume_claim,
    point_interval,
    pool_repeated_questions,
)

REF = np.array([-0.2, -0.2])
TRUE_FRONT = np.stack([np.linspace(0, 1, 8), 1 - np.linspace(0, 1, 8) ** 2], axis=1)


def test_the_vectorised_hypervolume_is_botorchs() -> None:
    rng = np.random.default_rng(0)
    sets = rng.normal(0.5, 0.4, (20, 6, 2))
    expected = [hypervolume(points, REF) for points in sets]
    assert hypervolume_2d(sets, REF) == pytest.approx(expected)


def test_exact_values_claim_their_own_hypervolume() -> None:
    claim = hypervolume_claim(TRUE_FRONT, np.zeros_like(TRUE_FRONT), REF)
    observed = hypervolume(TRUE_FRONT, REF)
    assert claim.value == pytest.approx(observed) and claim.low == pytest.approx(observed)
    assert claim.high == pytest.approx(observed)


def test_the_interval_covers_the_true_hypervolume_and_the_estimate_loses_the_bias() -> None:
    """Noisy values of a true front: their hypervolume is biased upward; the estimate
    much less (a fifth of that bias), and the 90% interval covers the truth in most of
    150 draws, with an anchor error common to every point."""
    rng = np.random.default_rng(1)
    errors = AnchorErrors(low=(0.002, 0.002), high=(0.002, 0.002))
    truth = hypervolume(TRUE_FRONT, REF)
    observed, estimated, covered = [], [], 0
    for draw in range(150):
        common = errors.shifts(TRUE_FRONT, rng, 1)[0]
        values = TRUE_FRONT + common + rng.normal(0, 0.12, TRUE_FRONT.shape)
        total = np.sqrt(0.12**2 + errors.variance_at(TRUE_FRONT))
        claim = hypervolume_claim(values, total, REF, [errors], seed=draw)
        observed.append(hypervolume(values, REF))
        estimated.append(claim.value)
        covered += claim.low <= truth <= claim.high
    bias = np.mean(observed) - truth
    assert bias > 0.04
    assert abs(np.mean(estimated) - truth) < bias / 5
    assert covered >= 0.85 * 150


def test_the_interval_shrinks_when_repeats_grow() -> None:
    """The same model's scores from 1 and from 4 repeats of every question: the errors
    fall, and with them each value's interval and the hypervolume's."""

    def scores(repeats: int):
        records = [
            SampleRecord(
                correct=(q + r) % 3 != 0,
                output_tokens=100 + 40 * ((q * 7 + r) % 5),
                thinking_closed=True,
                question=q,
                repeat=r,
            )
            for q in range(30)
            for r in range(repeats)
        ]
        return {"b": score_benchmark("b", records)}

    def anchor(accuracy: float, tokens: float, repeats: int):
        score = scores(repeats)["b"]
        return {"b": score.model_copy(update={"accuracy": accuracy, "mean_output_tokens": tokens})}

    widths = []
    for repeats in (1, 4):
        base, expert = anchor(0.3, 60.0, repeats), anchor(0.9, 260.0, repeats)
        value = objective_values(scores(repeats), base, expert, ["b"])
        low, high = point_interval(np.array(value.values), np.array(value.std))
        claim = hypervolume_claim(
            np.array([value.values]),
            np.array([value.std]),
            REF,
            [anchor_errors(base, expert, ["b"])],
        )
        widths.append((high - low, claim.high - claim.low))
    (point_once, hv_once), (point_four, hv_four) = widths
    assert np.all(point_four < 0.6 * point_once) and hv_four < 0.6 * hv_once


def test_validations_on_the_same_questions_pool_as_dependent() -> None:
    Y = np.array([[0.4, 0.6], [0.6, 0.4]])
    var = np.array([[0.04, 0.01], [0.02, 0.03]])
    mean, pooled = pool_repeated_questions(Y, var)
    assert mean == pytest.approx([0.5, 0.5]) and pooled == pytest.approx([0.03, 0.02])
    assert pool_repeated_questions(Y, None)[1] is None


def test_held_out_validations_value_the_optimisers_front_without_choosing_it() -> None:
    config = SearchConfig(
        dim=2,
        num_objectives=2,
        strategy="sobol",
        ref_point=(-0.2, -0.2),
        budget=6,
        initial_points=6,
    )
    optimizer = AskTellOptimizer(config)
    trials = optimizer.ask(6)
    values = [[0.1, 0.9], [0.5, 0.5], [0.9, 0.1], [0.2, 0.2], [0.3, 0.3], [0.05, 0.05]]
    for trial, y in zip(trials, values, strict=True):
        optimizer.tell(trial, y, [0.0001, 0.0001])
    members = [p.trial_id for p in optimizer.front()]
    (validation,) = optimizer.ask_validation(1)
    optimizer.tell(validation, [-1.0, -1.0], [0.01, 0.04], held_out=True)
    front = optimizer.front()
    assert [p.trial_id for p in front] == members
    (valued,) = [p for p in front if p.trial_id == validation.validates]
    assert valued.held_out and valued.mean == pytest.approx([-1.0, -1.0])
    assert valued.std == pytest.approx([0.1, 0.2])
    # Never fitted: the estimates are what they were before the validation.
    assert optimizer.estimates().num_observations.tolist() == [1] * 6
    with pytest.raises(ValueError, match="only a validation is held out"):
        optimizer.tell(optimizer.ask(1)[0], [0.0, 0.0], held_out=True)
