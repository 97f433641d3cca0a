"""Screening's pure parts: the dominance rule, the question order, the stage counts, and
the question-level simulator's stage-by-stage evaluation that the benchmark screens on."""

from __future__ import annotations

import numpy as np
import pytest

from paretomerge.questions import question_order, stage_counts
from paretomerge.search.problems import QuestionLevelMergeProblem, landscape_family_member
from paretomerge.search.screening import confidence_z, pessimistic_front, screened_out

FRONT = np.array([[0.8, 0.3], [0.5, 0.7]])
FRONT_STD = np.full((2, 2), 0.05)
NO_FRONT = np.zeros((0, 2))


def test_confidence_z_is_the_two_sided_normal_quantile():
    assert confidence_z(0.9) == pytest.approx(1.6449, abs=1e-4)
    assert confidence_z(0.95) == pytest.approx(1.9600, abs=1e-4)
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="confidence"):
            confidence_z(bad)


def test_pessimistic_front_lowers_every_point_and_keeps_the_non_dominated():
    mean = np.array([[0.8, 0.3], [0.5, 0.7], [0.4, 0.2]])
    std = np.array([[0.1, 0.1], [0.0, 0.2], [0.0, 0.0]])
    front = pessimistic_front(mean, std, 0.9)
    z = confidence_z(0.9)
    # The third point is dominated by the first even after it is lowered: left out.
    np.testing.assert_allclose(front, [[0.8 - 0.1 * z, 0.3 - 0.1 * z], [0.5, 0.7 - 0.2 * z]])


def test_a_candidate_dominated_even_at_its_best_is_screened_out():
    # Optimistic corner (0.2, 0.2) + 1.645 * 0.05 = (0.28, 0.28); pessimistic front point
    # (0.5, 0.7) - 0.08 = (0.42, 0.62) dominates it.
    assert screened_out(np.array([0.2, 0.2]), np.array([0.05, 0.05]), FRONT, FRONT_STD, 0.9)


def test_a_candidate_that_could_still_trade_off_is_kept():
    std = np.array([0.05, 0.05])
    # Behind the front on its mean, but its optimistic corner passes the pessimistic one.
    assert not screened_out(np.array([0.45, 0.6]), std, FRONT, FRONT_STD, 0.9)
    # Better than every finished point in one objective: never dominated.
    assert not screened_out(np.array([0.95, 0.0]), std, FRONT, FRONT_STD, 0.9)
    # The same candidate with a wide box is kept; with a narrow one, screened.
    assert not screened_out(np.array([0.3, 0.4]), np.array([0.2, 0.2]), FRONT, FRONT_STD, 0.9)
    assert screened_out(np.array([0.3, 0.4]), np.array([0.02, 0.02]), FRONT, FRONT_STD, 0.9)


def test_nothing_is_screened_against_no_finished_candidate():
    assert not screened_out(np.array([-5.0, -5.0]), np.array([0.01, 0.01]), NO_FRONT, NO_FRONT, 0.9)


def test_an_unknown_variance_never_screens():
    nan = np.array([np.nan, 0.01])
    assert not screened_out(np.array([-5.0, -5.0]), nan, FRONT, FRONT_STD, 0.9)


def test_a_finished_point_of_unknown_variance_counts_at_its_mean():
    finished_std = np.full((1, 2), np.nan)
    assert screened_out(np.zeros(2), np.zeros(2), np.array([[0.1, 0.1]]), finished_std, 0.9)


def test_equal_values_do_not_dominate():
    zero = np.zeros(2)
    point = np.array([[0.5, 0.5]])
    assert not screened_out(np.array([0.5, 0.5]), zero, point, np.zeros((1, 2)), 0.9)
    # Equal in one objective and worse in the other: dominated.
    assert screened_out(np.array([0.5, 0.4]), zero, point, np.zeros((1, 2)), 0.9)


def test_a_point_that_dominates_only_at_a_lower_confidence_keeps_the_candidate():
    # Corner 0.5 + 0.1 z against 0.8 - 0.1 z: dominated while z < 1.5.
    mean, std = np.array([0.5, 0.5]), np.array([0.1, 0.1])
    finished, finished_std = np.array([[0.8, 0.8]]), np.full((1, 2), 0.1)
    assert confidence_z(0.8) < 1.5 < confidence_z(0.9)
    assert screened_out(mean, std, finished, finished_std, 0.8)
    assert not screened_out(mean, std, finished, finished_std, 0.9)


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
