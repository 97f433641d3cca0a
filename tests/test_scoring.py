"""The uncertainty of an evaluation: standard errors from per-sample records, and their
propagation into the normalised objectives (no server, no evalscope: plain records)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from paretomerge.controller.objectives import objective_values
from paretomerge.evaluate.scoring import SampleRecord, score_benchmark
from paretomerge.results import BenchmarkScore


def test_standard_errors_match_the_closed_form_on_hand_made_records() -> None:
    # 3 questions asked twice: 4 of 6 answers right; tokens 10, 20, 30, 40, 50, 60.
    correct = [True, True, False, True, False, True]
    asked = [(q, r) for q in (4, 7, 9) for r in (0, 1)]
    records = [
        SampleRecord(
            correct=c, output_tokens=10 * (k + 1), thinking_closed=k < 3, question=q, repeat=r
        )
        for k, (c, (q, r)) in enumerate(zip(correct, asked, strict=True))
    ]
    score = score_benchmark("b", records)
    # p = 4/6, Jeffreys' q = 4.5/7; sd of 10..60 with 5 degrees of freedom = sqrt(350)
    assert score.accuracy == pytest.approx(4 / 6)
    assert score.accuracy_stderr == pytest.approx(math.sqrt((4.5 / 7) * (2.5 / 7) / 6))
    assert score.mean_output_tokens == pytest.approx(35.0)
    # The spread shrunk towards the prior (cv 0.5 of 35, the weight of 4 answers).
    shrunk = (4 * (0.5 * 35.0) ** 2 + 5 * 350.0) / (4 + 5)
    assert score.mean_output_tokens_stderr == pytest.approx(math.sqrt(shrunk / 6))
    assert (score.n, score.repeats, score.thinking_closed) == (3, 2, 0.5)


def test_a_stage_of_three_answers_all_cut_at_max_tokens_has_a_token_error() -> None:
    """Three AIME answers that all hit max_tokens have no spread of their own; the error
    is the prior's (0.24 of the mean), not 0, and many answers keep their own spread."""
    cut = [SampleRecord(False, 4096, False, question=q) for q in range(3)]
    score = score_benchmark("aime25", cut)
    assert score.mean_output_tokens_stderr == pytest.approx(0.5 * 4096 * math.sqrt(4 / 6 / 3))
    assert score.accuracy_stderr > 0.1
    spread = [SampleRecord(False, 70 + 60 * (q % 2), False, question=q) for q in range(400)]
    own = math.sqrt(sum((r.output_tokens - 100) ** 2 for r in spread) / 399 / 400)
    assert score_benchmark("b", spread).mean_output_tokens_stderr == pytest.approx(own, rel=0.1)


def test_one_sample_has_no_token_spread_and_no_sample_is_an_error() -> None:
    score = score_benchmark("b", [SampleRecord(True, 12, False, question=0)])
    # One sample has no spread of its own: the prior's (cv 0.5) alone.
    assert (score.mean_output_tokens_stderr, score.n) == (pytest.approx(6.0), 1)
    # All right is not known to be perfect: q = 1.5 / 2.
    assert score.accuracy_stderr == pytest.approx(math.sqrt(0.75 * 0.25))
    with pytest.raises(ValueError, match="no samples"):
        score_benchmark("b", [])


def simulated_records(questions: int, repeats: int, seed: int) -> list[SampleRecord]:
    """Questions with their own success probability and length, each asked ``repeats``
    times; every answer drawn afresh."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.1, 0.9, questions)
    length = rng.lognormal(6.0, 0.5, questions)
    return [
        SampleRecord(
            correct=bool(rng.random() < p[q]),
            output_tokens=int(rng.gamma(4.0, length[q] / 4.0)),
            thinking_closed=True,
            question=q,
            repeat=r,
        )
        for q in range(questions)
        for r in range(repeats)
    ]


@pytest.mark.parametrize("repeats", [4, 16])
def test_repeats_shrink_the_errors_by_about_the_square_root(repeats: int) -> None:
    once = score_benchmark("b", simulated_records(200, 1, seed=1))
    many = score_benchmark("b", simulated_records(200, repeats, seed=1))
    assert (many.n, many.repeats) == (200, repeats)
    ratio = math.sqrt(repeats)
    assert once.accuracy_stderr / many.accuracy_stderr == pytest.approx(ratio, rel=0.15)
    tokens_ratio = once.mean_output_tokens_stderr / many.mean_output_tokens_stderr
    assert tokens_ratio == pytest.approx(ratio, rel=0.15)


def score(accuracy: float, accuracy_se: float, tokens: float, tokens_se: float | None):
    return {
        "b": BenchmarkScore(
            name="b",
            accuracy=accuracy,
            accuracy_stderr=accuracy_se,
            mean_output_tokens=tokens,
            mean_output_tokens_stderr=tokens_se,
            thinking_closed=1.0,
            n=100,
        )
    }


def test_objective_errors_follow_the_delta_method_with_the_anchors_errors() -> None:
    base, expert = score(0.2, 0.02, 500.0, 20.0), score(0.8, 0.03, 2500.0, 100.0)
    merged = score(0.5, 0.04, 1000.0, 50.0)
    y = objective_values(merged, base, expert, ["b"])
    f1, f2 = 0.5, (2500.0 - 1000.0) / 2000.0  # 0.75
    assert y.values == pytest.approx((f1, f2))
    assert y.own_variance == pytest.approx((0.04**2 / 0.6**2, 50.0**2 / 2000.0**2))
    # accuracy: lo = base, hi = expert; tokens: lo = expert, hi = base
    total_f1 = (0.04**2 + (1 - f1) ** 2 * 0.02**2 + f1**2 * 0.03**2) / 0.6**2
    total_f2 = (50.0**2 + (1 - f2) ** 2 * 100.0**2 + f2**2 * 20.0**2) / 2000.0**2
    assert y.total_variance == pytest.approx((total_f1, total_f2))

    # The same figures by simulation: every score drawn with its standard error.
    rng = np.random.default_rng(0)
    draws = 200_000
    acc = {
        k: rng.normal(m, s, draws)
        for k, m, s in [("m", 0.5, 0.04), ("b", 0.2, 0.02), ("e", 0.8, 0.03)]
    }
    tok = {
        k: rng.normal(m, s, draws)
        for k, m, s in [("m", 1000, 50), ("b", 500, 20), ("e", 2500, 100)]
    }
    f1_draws = (acc["m"] - acc["b"]) / (acc["e"] - acc["b"])
    f2_draws = (tok["e"] - tok["m"]) / (tok["e"] - tok["b"])
    assert f1_draws.var() == pytest.approx(total_f1, rel=0.05)
    assert f2_draws.var() == pytest.approx(total_f2, rel=0.05)


def test_objectives_average_over_benchmarks_and_an_unknown_error_stays_unknown() -> None:
    def two(a: dict, b: dict) -> dict:
        return {
            "x": a["b"].model_copy(update={"name": "x"}),
            "y": b["b"].model_copy(update={"name": "y"}),
        }

    base = two(score(0.2, 0.02, 500.0, 20.0), score(0.1, 0.01, 100.0, 5.0))
    expert = two(score(0.8, 0.03, 2500.0, 100.0), score(0.5, 0.02, 300.0, 10.0))
    merged = two(score(0.5, 0.04, 1000.0, 50.0), score(0.3, 0.03, 200.0, 8.0))
    both = objective_values(merged, base, expert, ["x", "y"])
    alone = [
        objective_values({"b": merged[k]}, {"b": base[k]}, {"b": expert[k]}, ["b"]) for k in "xy"
    ]
    for j in range(2):
        assert both.values[j] == pytest.approx((alone[0].values[j] + alone[1].values[j]) / 2)
        expected = (alone[0].total_variance[j] + alone[1].total_variance[j]) / 4
        assert both.total_variance[j] == pytest.approx(expected)
    old = score(0.5, 0.04, 1000.0, None)  # written before the token error was measured
    unknown = objective_values(
        old, score(0.2, 0.02, 500.0, 20.0), score(0.8, 0.03, 2500.0, 100.0), ["b"]
    )
    assert unknown.values == pytest.approx((0.5, 0.75))
    assert unknown.own_variance is None and unknown.std is None
