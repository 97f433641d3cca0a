"""Screening's pure parts: the dominance rule, the question order, the stage counts, and
the question-level simulator's stage-by-stage evaluation that the benchmark screens on."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from paretomerge.questions import question_order, stage_counts
from paretomerge.search.problems import QuestionLevelMergeProblem, landscape_family_member
from paretomerge.search.screening import (
    prob_dominated,
    prob_dominated_given_stage,
    screened_out,
)

FRONT = np.array([[0.8, 0.3], [0.5, 0.7], [0.0, 1.0], [1.0, 0.0]])
NO_FRONT = np.zeros((0, 2))


def test_the_probability_of_being_dominated_is_exact():
    # One point at the candidate's mean: dominated when both objectives fall below it.
    assert prob_dominated(np.array([0.5, 0.5]), np.array([0.1, 0.2]), [[0.5, 0.5]]) == (
        pytest.approx(0.25)
    )
    # Two points: the staircase's two steps, by hand.
    mean, std = np.array([0.45, 0.5]), np.array([0.1, 0.1])
    by_hand = norm.cdf(0.5, 0.45, 0.1) * norm.cdf(0.7, 0.5, 0.1) + (
        norm.cdf(0.8, 0.45, 0.1) - norm.cdf(0.5, 0.45, 0.1)
    ) * norm.cdf(0.3, 0.5, 0.1)
    assert prob_dominated(mean, std, FRONT[:2]) == pytest.approx(by_hand)
    # Against Monte Carlo, on random fronts that include dominated points.
    rng = np.random.default_rng(0)
    for _ in range(5):
        front, mean, std = rng.random((6, 2)), rng.random(2), 0.01 + 0.3 * rng.random(2)
        draws = mean + std * rng.standard_normal((200_000, 2))
        share = (front[None] >= draws[:, None]).all(-1).any(1).mean()
        assert prob_dominated(mean, std, front) == pytest.approx(share, abs=0.005)


def test_a_probably_dominated_candidate_is_screened_out():
    std = np.array([0.05, 0.05])
    assert screened_out(np.array([0.4, 0.5]), std, FRONT, 0.9)  # behind (0.5, 0.7) by 2 sd
    # Better than every finished point in one objective: kept.
    assert not screened_out(np.array([0.95, 0.2]), std, FRONT, 0.5)
    # Level with the front: as likely on it as not.
    assert not screened_out(np.array([0.5, 0.7]), std, FRONT, 0.5)


def test_the_confidence_is_the_probability_of_being_dominated_needed():
    mean, std = np.array([0.45, 0.65]), np.array([0.05, 0.05])  # 1 sd behind (0.5, 0.7)
    probability = prob_dominated(mean, std, FRONT)
    assert 0.5 < probability < 0.9
    assert screened_out(mean, std, FRONT, 0.5)
    assert not screened_out(mean, std, FRONT, 0.9)
    with pytest.raises(ValueError, match="confidence"):
        screened_out(mean, std, FRONT, 1.0)


def test_a_wide_estimate_is_kept_where_a_narrow_one_is_screened():
    mean = np.array([0.3, 0.4])
    assert not screened_out(mean, np.array([0.4, 0.4]), FRONT, 0.9)
    assert screened_out(mean, np.array([0.02, 0.02]), FRONT, 0.9)


def test_nothing_is_screened_against_no_finished_candidate():
    assert not screened_out(np.array([-5.0, -5.0]), np.array([0.01, 0.01]), NO_FRONT, 0.5)


def test_an_unknown_variance_never_screens():
    nan = np.array([np.nan, 0.01])
    assert not screened_out(np.array([-5.0, -5.0]), nan, FRONT, 0.5)


def test_only_two_objectives_are_compared():
    with pytest.raises(ValueError, match="two objectives"):
        prob_dominated(np.zeros(3), np.ones(3), np.ones((2, 3)))


def fused(prior_mean, prior_sd, y, var):
    """The normal posterior of one objective given its prior and a stage estimate."""
    precision = 1 / prior_sd**2 + 1 / var
    return (prior_mean / prior_sd**2 + y / var) / precision, np.sqrt(1 / precision)


def test_the_stage_weights_the_posterior_draws_as_bayes_rule_does():
    """Exact finished points, a normal prior at the candidate: the weighted draws give the
    exact probability under the prior conditioned on the stage."""
    rng = np.random.default_rng(0)
    prior_mean, prior_sd = np.array([0.45, 0.5]), np.array([0.1, 0.1])
    y, var = np.array([0.3, 0.55]), np.full(2, 0.25**2)
    draws = prior_mean + prior_sd * rng.standard_normal((200_000, 2))
    finished = np.broadcast_to(FRONT[:2], (len(draws), 2, 2))
    weighted = prob_dominated_given_stage(draws, finished, FRONT[2:], y, var)
    mean, std = fused(prior_mean, prior_sd, y, var)
    assert weighted == pytest.approx(prob_dominated(mean, std, FRONT), abs=0.005)


def test_the_surrogate_screens_a_candidate_its_stage_alone_cannot_and_keeps_a_likely_one():
    rng = np.random.default_rng(1)
    stage, var = np.array([0.45, 0.55]), np.full(2, 0.25**2)  # a tenth of the questions
    assert not screened_out(stage, np.sqrt(var), FRONT, 0.5)
    finished = np.broadcast_to(FRONT[:2], (4096, 2, 2))
    # Its neighbours say it is well behind the front: now probably dominated.
    behind = np.array([0.35, 0.45]) + 0.06 * rng.standard_normal((4096, 2))
    assert prob_dominated_given_stage(behind, finished, FRONT[2:], stage, var) > 0.8
    # Its neighbours say it lies on the front: an unlucky first stage does not stop it.
    unlucky = np.array([0.2, 0.2])
    assert screened_out(unlucky, np.sqrt(var), FRONT, 0.5)
    on_front = np.array([0.65, 0.6]) + 0.06 * rng.standard_normal((4096, 2))
    assert prob_dominated_given_stage(on_front, finished, FRONT[2:], unlucky, var) < 0.3


def test_a_finished_point_that_moves_with_the_candidate_does_not_screen_it():
    """The finished points' values are uncertain too, and correlated with the candidate's
    (one surrogate): a candidate always 0.02 ahead of its finished neighbour in every
    draw is never dominated by it, though their marginals overlap almost entirely (taken
    as exact, the neighbour's estimate would call it dominated nearly a fifth of the
    time)."""
    rng = np.random.default_rng(2)
    shared = np.array([0.5, 0.5]) + 0.1 * rng.standard_normal((4096, 2))
    candidate, neighbour = shared + 0.02, shared[:, None, :]
    y, var = np.array([0.5, 0.5]), np.full(2, 0.25**2)
    assert prob_dominated_given_stage(candidate, neighbour, np.zeros((0, 2)), y, var) == 0.0
    marginal = prob_dominated(np.array([0.52, 0.52]), np.array([0.1, 0.1]), [[0.5, 0.5]])
    assert marginal > 0.15


def test_the_question_order_is_the_run_s_and_only_the_run_s():
    ids = list(range(198))
    first = question_order("gpqa_diamond", ids, seed=3)
    # Every candidate of the run computes it afresh and gets the same order.
    assert question_order("gpqa_diamond", ids, seed=3) == first
    assert sorted(first) == ids and first != ids
    assert question_order("gpqa_diamond", ids, seed=4) != first
    # Another benchmark of the same size is ordered apart.
    assert question_order("other", ids, seed=3) != first
    # The search side of a held-out split keeps its ids, in the same relative order.
    search_side = ids[::2]
    ordered = question_order("gpqa_diamond", search_side, seed=3)
    assert ordered == [i for i in first if i in set(search_side)]


@pytest.mark.parametrize(
    ("count", "expected"),
    [(198, [50, 99, 198]), (30, [8, 15, 30]), (3, [1, 2, 3]), (2, [1, 2]), (1, [1])],
)
def test_stage_counts(count, expected):
    assert stage_counts(count, [0.25, 0.5, 1.0]) == expected


def test_stage_counts_end_with_every_question():
    assert stage_counts(10, [0.3, 0.9]) == [3, 9, 10]
    assert stage_counts(10, [0.1, 0.15, 0.2]) == [1, 2, 10]


def problem_pair() -> tuple[QuestionLevelMergeProblem, QuestionLevelMergeProblem]:
    """Two copies of one problem: same anchors, same draws for the same calls."""
    member = landscape_family_member(0)
    return QuestionLevelMergeProblem(member, seed=5), QuestionLevelMergeProblem(member, seed=5)


def test_a_staged_evaluation_ends_with_the_full_one_and_charges_what_it_asked():
    staged, full = problem_pair()
    X = np.random.default_rng(0).random((3, 37))
    stages = staged.staged(X, [0.25, 0.5, 1.0], order_seed=7)
    whole = full.evaluate(X)
    assert [s.questions for s in stages] == [(50, 8), (99, 15), (198, 30)]
    np.testing.assert_array_equal(stages[-1].Y, whole.Y)
    np.testing.assert_array_equal(stages[-1].Yvar, whole.Yvar)
    np.testing.assert_array_equal(stages[-1].tokens, whole.tokens)
    assert np.all(np.diff([s.tokens for s in stages], axis=0) > 0)
    # A stage's cost is the tokens of the first questions of the seeded order.
    _, again = problem_pair()
    records = again.records(X)
    first_stage = sum(
        r.tokens[:, question_order(name, range(n), 7)[:asked]].sum(axis=1)
        for r, name, n, asked in zip(
            records, ("gpqa_diamond", "aime25"), (198, 30), (50, 8), strict=True
        )
    )
    np.testing.assert_allclose(stages[0].tokens, first_stage)


def test_a_stage_estimate_is_unbiased_and_its_variance_larger():
    problem, _ = problem_pair()
    x = np.random.default_rng(1).random((1, 37))
    stages = problem.staged(np.repeat(x, 400, axis=0), [0.25, 0.5, 1.0], order_seed=0)
    truth = problem.true_values_by_measured_anchors(x)[0]
    first, last = stages[0], stages[-1]
    # One order for every merge: the first quarter's questions are a fixed sample, whose
    # error the variance holds; over the draws the estimate stays within it of the truth.
    within = 3 * np.sqrt(first.Yvar.mean(axis=0))
    assert np.all(np.abs(first.Y.mean(axis=0) - truth) < within)
    assert np.all(first.Yvar.mean(axis=0) > 1.5 * last.Yvar.mean(axis=0))
    assert np.all(first.Y.std(axis=0) > 1.5 * last.Y.std(axis=0))


def test_stages_too_fine_for_a_benchmark_are_refused():
    problem, _ = problem_pair()
    with pytest.raises(ValueError, match="'aime25' of 30 questions"):
        problem.staged(np.zeros((1, 37)), [0.01, 0.02, 1.0], order_seed=0)
