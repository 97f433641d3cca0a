import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from botorch.test_functions.multi_objective import BraninCurrin

from paretomerge.controller.objectives import CloseAnchorsError, judge_anchors
from paretomerge.search import (
    STRATEGY_NAMES,
    AcquisitionSettings,
    AskTellOptimizer,
    NutsSettings,
    ObjectiveError,
    SearchConfig,
    hypervolume,
    optimize,
    pareto_mask,
    reported_front,
)
from paretomerge.search.claims import hypervolume_claim
from paretomerge.search.in_process import ScreeningStage
from paretomerge.search.problems import (
    LANDSCAPE_FAMILY,
    QWEN3_4B_BENCHMARKS,
    EmbeddedTestProblem,
    LayerMergeLandscape,
    QuestionLevelMergeProblem,
    QuestionRecords,
    landscape_family_member,
    normalised_by_benchmark,
    switching_family_member,
)
from paretomerge.search.strategies import STRATEGIES, ProposalContext
from paretomerge.search.surrogates import (
    BenchmarkMeanModel,
    NoWarmStart,
    fit_benchmark_mean_gp,
    fit_map_saas_gp,
    fit_matern_gp,
    variances_at_fitted,
)

FAST_ACQ = AcquisitionSettings(num_restarts=2, raw_samples=32, mc_samples=32, maxiter=20)
FAST_NUTS = NutsSettings(warmup_steps=16, num_samples=16, thinning=8, max_tree_depth=4)
LANDSCAPE = LayerMergeLandscape(num_layers=5, seed=3)


def run(strategy, objective=LANDSCAPE.true_values, **kwargs):
    args = dict(
        dim=LANDSCAPE.dim,
        strategy=strategy,
        budget=10,
        batch_size=2,
        initial_points=4,
        layer_profile=LANDSCAPE.profile,
        num_blocks=2,
        initial_solutions=[0.55, 0.8],
        seed=1,
        acquisition=FAST_ACQ,
        nuts=FAST_NUTS,
    )
    args.update(kwargs)
    return optimize(objective, **args)


def make_config(**kwargs):
    args = dict(
        dim=LANDSCAPE.dim,
        num_objectives=2,
        strategy="gp",
        ref_point=(-0.2, -0.2),
        budget=20,
        initial_points=4,
        seed=5,
        layer_profile=tuple(LANDSCAPE.profile),
        acquisition=FAST_ACQ,
    )
    args.update(kwargs)
    return SearchConfig(**args)


def plane_config(strategy: str, budget: int) -> SearchConfig:
    """Two variables, two objectives, reference point (-1, -1), 4 initial points."""
    return make_config(
        dim=2, strategy=strategy, ref_point=(-1.0, -1.0), budget=budget, layer_profile=None
    )


# --- hypervolume and Pareto masks ------------------------------------------------------


def test_hypervolume_hand_computed():
    ref = np.array([0.0, 0.0])
    # Two boxes 2x1 and 1x2 overlapping in a 1x1 square: 2 + 2 - 1.
    assert hypervolume(np.array([[2.0, 1.0], [1.0, 2.0]]), ref) == pytest.approx(3.0)
    # A dominated point and a point outside the reference box add nothing.
    Y = np.array([[2.0, 1.0], [1.0, 2.0], [0.5, 0.5], [3.0, -1.0]])
    assert hypervolume(Y, ref) == pytest.approx(3.0)
    assert hypervolume(np.array([[1.0, 1.0]]), np.array([-0.2, -0.2])) == pytest.approx(1.44)
    assert hypervolume(np.zeros((0, 2)), ref) == 0.0


def test_reported_front_takes_eligible_non_dominated_points_no_baseline_matches():
    values = np.array(
        [
            [0.5, 0.5],  # a member
            [0.9, 0.4],  # dominates nothing eligible: a member
            [0.95, 0.45],  # would dominate the one above, but was screened
            [0.5, 0.5],  # the same values as the first: listed with it
            [-0.1, 1.0],  # the base (0, 1) matches or beats it
            [0.4, 0.4],  # dominated
        ]
    )
    eligible = np.array([True, True, False, True, True, True])
    baselines = np.array([[0.0, 1.0], [1.0, 0.0]])
    members = reported_front(values, eligible, baselines)
    assert [(m.index, m.indistinguishable_from) for m in members] == [(1, ()), (0, (3,))]
    # No rule but dominance without eligibility or baselines.
    assert {m.index for m in reported_front(values)} == {2, 0, 4}


ANCHORS = np.array([[0.0, 1.0], [1.0, 0.0]])
# One standard deviation of every value in the tests below: two merges of sd 0.05 are told
# apart when they differ by more than z * sqrt(2) * 0.05 = 0.018 (z = 0.25, members), a
# merge and an exact baseline by more than z * 0.05 = 0.042 (z = 0.84, baselines).
SD = 0.05


def test_a_point_the_base_covers_within_noise_is_dropped():
    # f1 0.04 above the base's 0 is 0.8 sd (probability 0.79 < 0.8, the baselines' level); the
    # tokens are the base's within noise: nothing a user does not have already.
    values = np.array([[0.04, 0.999], [0.5, 0.5]])
    std = np.full_like(values, SD)
    assert [
        (m.index, m.indistinguishable_from) for m in reported_front(values, None, ANCHORS, std)
    ] == [(1, ())]
    # Exact values (std None) keep it: the base does not match or beat it.
    assert [m.index for m in reported_front(values, None, ANCHORS)] == [1, 0]
    # Measured precisely, the same gain stands out.
    assert [m.index for m in reported_front(values, None, ANCHORS, std / 10)] == [1, 0]


def test_two_points_within_noise_of_each_other_are_one_member():
    values = np.array([[0.51, 0.50], [0.50, 0.51], [0.80, 0.20]])
    members = reported_front(values, None, ANCHORS, np.full_like(values, SD))
    # The most accurate of the two stands for both.
    assert [(m.index, m.indistinguishable_from) for m in members] == [(2, ()), (0, (1,))]


def test_points_far_apart_are_both_listed():
    values = np.array([[0.3, 0.7], [0.7, 0.3]])
    members = reported_front(values, None, ANCHORS, np.full_like(values, SD))
    assert [(m.index, m.indistinguishable_from) for m in members] == [(1, ()), (0, ())]


def test_a_point_that_covers_a_member_taken_before_takes_its_place():
    # The first is more accurate by less than its noise; the second has clearly fewer
    # tokens: the first is covered by the second, not the other way round.
    values = np.array([[0.55, 0.30], [0.50, 0.60], [0.45, 0.602]])
    std = np.array([[0.3, 0.01], [0.01, 0.01], [0.01, 0.01]])
    members = reported_front(values, None, ANCHORS, std)
    assert [(m.index, m.indistinguishable_from) for m in members] == [(1, (0, 2))]


def test_without_standard_deviations_the_rule_is_dominance_and_equality():
    rng = np.random.default_rng(0)
    for _ in range(20):
        values = rng.integers(0, 5, size=(12, 2)) / 4
        old = reported_front(values, None, ANCHORS)
        assert reported_front(values, None, ANCHORS, np.zeros_like(values)) == old
        assert reported_front(values, None, ANCHORS, np.full_like(values, np.nan)) == old
        kept = pareto_mask(values) & ~(ANCHORS[None] >= values[:, None]).all(axis=2).any(axis=1)
        firsts = {tuple(values[i]): i for i in reversed(np.flatnonzero(kept))}
        assert {m.index for m in old} == set(firsts.values())
        for member in old:
            assert all(
                (values[i] == values[member.index]).all() for i in member.indistinguishable_from
            )


def test_pareto_mask_keeps_non_dominated_and_duplicates():
    Y = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.4, 0.4], [1.0, 0.0]])
    assert pareto_mask(Y).tolist() == [True, True, True, False, True]


# --- optimize per strategy -------------------------------------------------------------


@pytest.mark.parametrize("strategy", STRATEGY_NAMES)
def test_optimize_every_strategy(strategy):
    # NUTS recompiles per fit: one model-based batch is enough for the SAAS strategies.
    budget = 6 if strategy in ("saas", "sip-saas") else 10
    result = run(strategy, budget=budget)
    assert result.X.shape == (budget, LANDSCAPE.dim) and result.Y.shape == (budget, 2)
    assert np.all((result.X >= 0) & (result.X <= 1))
    np.testing.assert_allclose(result.Y, LANDSCAPE.true_values(result.X))
    # The estimate of the reported front's true hypervolume after each batch: the last
    # that of the front, its values' hypervolume less their bias, inside its interval.
    assert result.hypervolume_after.tolist() == list(range(4, budget + 1, 2))
    claim = hypervolume_claim(result.pareto_Y, result.pareto_Y_std, [-0.2, -0.2], seed=budget)
    assert result.hypervolume[-1] == pytest.approx(claim.value)
    assert result.hypervolume_interval == pytest.approx((claim.low, claim.high))
    observed = hypervolume(result.pareto_Y, np.array([-0.2, -0.2]))
    assert claim.low - 1e-9 <= observed <= claim.high + 1e-9
    # The initial solutions come first, as given.
    np.testing.assert_array_equal(result.X[0], np.full(LANDSCAPE.dim, 0.55))
    np.testing.assert_array_equal(result.X[1], np.full(LANDSCAPE.dim, 0.8))
    assert len({tuple(x) for x in result.X}) == budget  # nothing evaluated twice
    # The reported front: evaluated points, non-dominated by their estimated values, each
    # with a standard deviation and a probability of being non-dominated.
    k = len(result.pareto_X)
    assert k >= 1 and result.pareto_Y.shape == result.pareto_Y_std.shape == (k, 2)
    assert all(any(np.array_equal(p, x) for x in result.X) for p in result.pareto_X)
    assert np.all(pareto_mask(result.pareto_Y))
    assert np.all((result.pareto_probability >= 0) & (result.pareto_probability <= 1))
    if strategy in ("random", "sobol"):  # no surrogate: the observations, noise unknown
        assert np.all(
            pareto_mask(result.Y)
            == [any(np.array_equal(x, p) for p in result.pareto_X) for x in result.X]
        )
        assert np.all(np.isnan(result.pareto_Y_std))
    else:  # the posterior of a noiseless objective stays close to the values
        np.testing.assert_allclose(
            result.pareto_Y, LANDSCAPE.true_values(result.pareto_X), atol=0.1
        )
        assert np.all(result.pareto_Y_std >= 0)


def test_model_level_ties_every_weight():
    result = run("model-level")
    assert np.all(result.X[:, :1] == result.X)


def test_model_level_keeps_extra_variables_free():
    result = run(
        "model-level",
        objective=lambda X: LANDSCAPE.true_values(X[:, :-1]) - 0.1 * X[:, -1:],
        dim=LANDSCAPE.dim + 1,
        extra_variables=1,
        initial_solutions=None,
    )
    X = result.X
    assert np.all(X[:, :-1] == X[:, :1])
    assert not np.all(X[:, -1] == X[:, 0])  # the density is searched on its own
    assert np.all(X[4:, -1] == 0.0)  # and found where this objective wants it


def test_bambo_shares_weights_within_blocks_and_keeps_head_alone():
    result = run("bambo", num_blocks=2, initial_solutions=None)
    layers = result.X[:, :5]
    labels = AskTellOptimizer(make_config(strategy="bambo", num_blocks=2)).strategy.grouping.groups
    for row in layers:  # every layer takes its block's weight
        for block in (0, 1):
            assert len({w for w, label in zip(row, labels, strict=False) if label == block}) == 1
    assert max(len(set(row)) for row in layers) == 2
    assert not np.all(result.X[:, 5] == result.X[:, 0])  # the head is its own variable


def coarse_to_fine(budget: int) -> tuple[AskTellOptimizer, LayerMergeLandscape]:
    """A coarse-to-fine optimiser of ``budget`` on a 12-layer landscape, and the landscape."""
    landscape = LayerMergeLandscape(num_layers=12, seed=3)
    config = make_config(
        strategy="coarse-to-fine",
        dim=landscape.dim,
        layer_profile=tuple(landscape.profile),
        budget=budget,
    )
    return AskTellOptimizer(config), landscape


def test_coarse_to_fine_searches_four_blocks_then_eight():
    optimizer, landscape = coarse_to_fine(budget=16)
    coarse = optimizer.strategy.grouping_at(0)
    assert coarse.search_dim == 5 and optimizer.strategy.grouping_at(7) == coarse
    fine = optimizer.strategy.grouping_at(8)  # half the budget: 8 blocks
    assert fine.search_dim == 9 and optimizer.strategy.grouping == fine
    for _ in range(3):  # 4 design points, then 2 batches of 2 proposals
        for trial in optimizer.ask(4 if not optimizer.trials else 2):
            optimizer.tell(trial, landscape.true_values(np.array(trial.x))[0])
    early = np.array([t.x for t in optimizer.trials])
    assert len(early) == 8
    np.testing.assert_allclose(early, coarse.expand(coarse.reduce(early)))
    for _ in range(2):
        for trial in optimizer.ask(2):
            optimizer.tell(trial, landscape.true_values(np.array(trial.x))[0])
    late = np.array([t.x for t in optimizer.trials[8:]])
    np.testing.assert_allclose(late, fine.expand(fine.reduce(late)))
    assert not np.allclose(late, coarse.expand(coarse.reduce(late)))  # finer than 4 blocks
    restored = AskTellOptimizer.from_state_dict(json.loads(json.dumps(optimizer.state_dict())))
    assert restored.ask(2) == optimizer.ask(2)


def test_a_raised_budget_moves_coarse_to_fines_second_phase():
    """Budget 8 -> 16 after the design: the fine phase starts at search trial 8, not 4,
    and the state records the new budget."""
    optimizer, landscape = coarse_to_fine(budget=8)
    coarse, fine = optimizer.strategy.grouping_at(0), optimizer.strategy.grouping_at(4)
    assert (coarse.search_dim, fine.search_dim) == (5, 9)
    for trial in optimizer.ask(4):
        optimizer.tell(trial, landscape.true_values(np.array(trial.x))[0])
    optimizer.set_budget(16)
    late = np.array([t.x for t in optimizer.ask(2)])
    np.testing.assert_allclose(late, coarse.expand(coarse.reduce(late)))
    assert optimizer.strategy.grouping_at(7) == coarse and optimizer.strategy.grouping_at(8) == fine
    restored = AskTellOptimizer.from_state_dict(json.loads(json.dumps(optimizer.state_dict())))
    assert restored.config.budget == 16 and restored.strategy.grouping_at(7) == coarse


def test_seed_reproduces_and_changes():
    a, b, c = run("gp"), run("gp"), run("gp", seed=2)
    np.testing.assert_array_equal(a.X, b.X)
    assert not np.array_equal(a.X[2:], c.X[2:])


def test_saas_prior_scales_are_inside_the_model():
    X = torch.rand(12, 3, dtype=torch.double)
    Y = torch.stack([X.sum(-1), -X[:, 0]], -1)
    model = fit_map_saas_gp(X, Y, prior_scales=np.array([0.1, 1.0, 10.0]))
    priors = {name: prior for name, _, prior, *_ in model.named_priors()}
    prior = priors["covar_module.base_kernel.inv_lengthscale_prior"]
    assert prior.scale.tolist() == [0.1, 1.0, 10.0]


# --- ask / tell ------------------------------------------------------------------------


def values(trial):
    return LANDSCAPE.true_values(np.array(trial.x))[0]


def drive(optimizer, rounds, q=2):
    for _ in range(rounds):
        for trial in optimizer.ask(q):
            optimizer.tell(trial, values(trial))


def test_state_round_trips_through_json_to_identical_proposals():
    original = AskTellOptimizer(make_config(strategy="sip-map-saas"))
    drive(original, 4)
    pending = original.ask(2)
    restored = AskTellOptimizer.from_state_dict(json.loads(json.dumps(original.state_dict())))
    np.testing.assert_array_equal(restored.pending, [t.x for t in pending])
    assert original.ask(2) == restored.ask(2)
    assert original.state_dict() == restored.state_dict()


def test_tell_by_trial_or_id_never_by_value():
    optimizer = AskTellOptimizer(make_config(initial_points=4, initial_solutions=((0.5,) * 6,)))
    first, second = optimizer.ask(2)
    assert (first.id, second.id) == (0, 1) and first.kind == "search"
    optimizer.tell(second.id, [0.2, 0.3])
    # The handle's x is a copy: changing it changes nothing the optimiser holds.
    first.x[0] = 0.9
    optimizer.tell(first, [0.1, 0.4], yvar=[0.01, 0.02])
    assert optimizer.trials[0].x == [0.5] * 6
    assert optimizer.Y.tolist() == [[0.1, 0.4], [0.2, 0.3]]
    with pytest.raises(ValueError, match="trial 1 is already completed; a trial is told once"):
        optimizer.tell(1, [0.0, 0.0])
    with pytest.raises(ValueError, match=r"no trial 7: the trials are 0\.\.1"):
        optimizer.tell_failed(7, "lost")
    # The same point asked twice is two trials, told apart by id.
    twin = optimizer.ask(1)[0]
    optimizer.trials[twin.id].x = optimizer.trials[0].x
    optimizer.tell_failed(twin.id, "worker lost")
    assert [t.status for t in optimizer.trials] == ["completed", "completed", "failed"]


def test_add_records_a_point_from_elsewhere_outside_the_budget():
    optimizer = AskTellOptimizer(make_config())
    anchor = optimizer.add(np.zeros(LANDSCAPE.dim), [0.0, 1.0], yvar=[1e-3, 1e-3])
    assert anchor.kind == "added" and anchor.status == "completed"
    assert optimizer.X.tolist() == [[0.0] * LANDSCAPE.dim]
    assert optimizer.num_search_trials == 0
    design = optimizer.ask(4)  # the whole initial design is still due
    assert [t.id for t in design] == [1, 2, 3, 4] and optimizer.num_search_trials == 4
    fresh = AskTellOptimizer(make_config()).ask(4)
    assert [t.x for t in design] == [t.x for t in fresh]


def test_a_version_1_state_migrates_and_proposes_what_it_would_have():
    # Written by the optimiser before trial ids (ParetoMerge at d1074ed), with the two
    # points it proposed next.
    saved = json.loads((Path(__file__).parent / "data" / "optimizer_state_v1.json").read_text())
    assert saved["state"]["version"] == 1
    optimizer = AskTellOptimizer.from_state_dict(saved["state"])
    assert [t.id for t in optimizer.trials] == list(range(len(saved["state"]["trials"])))
    assert [t.status for t in optimizer.trials][-2:] == ["failed", "pending"]
    proposed = optimizer.ask(2)
    # Equal but for the last bits of floating point, which BLAS builds may change.
    np.testing.assert_allclose([t.x for t in proposed], saved["next_ask_2"], rtol=0, atol=1e-9)
    state = optimizer.state_dict()
    assert state["version"] == 2 and state["trials"][0]["kind"] == "search"
    # The running trial of the old state is told by its id (its position).
    optimizer.tell(len(saved["state"]["trials"]) - 1, [0.3, 0.4])


def test_pending_points_are_never_proposed_again():
    optimizer = AskTellOptimizer(make_config())
    drive(optimizer, 3)
    first = optimizer.ask(3)
    second = optimizer.ask(3)  # the first three are still running
    everything = np.vstack([optimizer.X, [t.x for t in first + second]])
    assert len({tuple(x) for x in everything}) == len(everything)
    assert optimizer.pending.shape == (6, LANDSCAPE.dim)


def test_asynchronous_ask_one_at_a_time():
    optimizer = AskTellOptimizer(make_config(initial_points=4))
    running = optimizer.ask(4)
    for step in range(4):
        done = running.pop(0)
        optimizer.tell(done, values(done))
        running.extend(optimizer.ask(1))
        assert len(optimizer.pending) == 4
        assert len(optimizer.X) == step + 1


def test_failed_points_are_recorded_not_modelled_and_stay_pending_for_the_model():
    optimizer = AskTellOptimizer(make_config())
    drive(optimizer, 2)
    failed = optimizer.ask(1)[0]
    optimizer.tell_failed(failed, "merge crashed: out of memory")
    assert optimizer.failed == [(failed.x, "merge crashed: out of memory")]
    assert len(optimizer.pending) == 0 and len(optimizer.X) == 4
    following = optimizer.ask(2)
    assert not any(t.x == failed.x for t in following)
    restored = AskTellOptimizer.from_state_dict(json.loads(json.dumps(optimizer.state_dict())))
    assert restored.failed == optimizer.failed


# --- noise, the reported front and validation -------------------------------------------


def noisy_landscape(noise):
    """The landscape with Gaussian noise of known standard deviation ``noise``."""
    rng = np.random.default_rng(0)

    def objective(X):
        Y = LANDSCAPE.true_values(X)
        return Y + noise * rng.standard_normal(Y.shape), np.full(Y.shape, noise**2)

    return objective


def test_known_noise_round_trips_through_the_json_state():
    result = run("gp", objective=noisy_landscape(0.05))
    assert result.Yvar.shape == result.Y.shape and np.all(result.Yvar == 0.05**2)
    state = json.loads(json.dumps(result.state))
    assert all(t["yvar"] == [0.05**2] * 2 for t in state["trials"])
    original = AskTellOptimizer.from_state_dict(result.state)
    restored = AskTellOptimizer.from_state_dict(state)
    a, b = original.estimates(), restored.estimates()
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(a.std, b.std)
    assert original.ask(2) == restored.ask(2)


def test_the_surrogate_fits_with_the_known_noise():
    X = np.random.default_rng(0).random((12, LANDSCAPE.dim))
    quiet, loud = AskTellOptimizer(make_config()), AskTellOptimizer(make_config())
    for x, y in zip(X, LANDSCAPE.true_values(X), strict=True):
        quiet.add(x, y)  # noise inferred: these values fit almost exactly
        loud.add(x, y, yvar=[0.1**2, 0.1**2])
    # Same values; told they are noisy, the model trusts each one less.
    quiet_std, loud_std = quiet.estimates().std, loud.estimates().std
    assert np.all(loud_std.mean(axis=0) > 2 * quiet_std.mean(axis=0))
    assert np.all(loud_std < 0.1)  # and still pools the neighbours


def draw_dependent_noise(n: int, seed: int):
    """Points ``X`` ``(n, 2)``, true values ``f`` and evaluations ``Y`` ``(n, 2)`` whose
    standard deviation grows with the value, told as a length's is: from the draw's own
    value, ``Yvar = (0.05 + 0.25 y)^2``."""
    rng = np.random.default_rng(seed)
    X = rng.random((n, 2))
    f = np.c_[0.5 + 0.3 * np.sin(3 * X[:, 0]) * X[:, 1], 0.4 + 0.4 * X[:, 0] * X[:, 1]]
    Y = f + rng.standard_normal(f.shape) * (0.05 + 0.25 * f)
    return X, f, Y, (0.05 + 0.25 * Y.clip(min=0)) ** 2


def test_variances_move_to_the_fitted_value_and_keep_each_rows_scale():
    _, f, Y, told = draw_dependent_noise(60, seed=0)
    at_truth = (0.05 + 0.25 * f) ** 2
    full = np.ones(60, dtype=bool)
    moved = variances_at_fitted(*(torch.tensor(a) for a in (Y, told, f, full))).numpy()
    # Told, a variance errs with its draw; at the fitted (here the true) value it does not.
    error = [np.abs(np.log(v / at_truth)).mean() for v in (told, moved)]
    assert error[1] < 0.25 * error[0]
    # A screened row (fewer questions: 4 times the variance) keeps its own scale.
    screened = told.copy()
    screened[0] *= 4
    full[0] = False
    moved_screened = variances_at_fitted(*(torch.tensor(a) for a in (Y, screened, f, full)))
    np.testing.assert_allclose(moved_screened[0].numpy(), 4 * moved[0], rtol=0.05)
    # A value told exact stays exact, and nothing else turns non-finite.
    exact = told.copy()
    exact[5] = 0.0
    moved_exact = variances_at_fitted(*(torch.tensor(a) for a in (Y, exact, f, full))).numpy()
    assert moved_exact[5].tolist() == [0.0, 0.0] and np.all(np.isfinite(moved_exact))
    # Too few rows evaluated in full to fit a variance curve: the told variances stay.
    few = np.zeros(60, dtype=bool)
    few[:7] = True
    kept = variances_at_fitted(*(torch.tensor(a) for a in (Y, told, f, few)))
    np.testing.assert_array_equal(kept.numpy(), told)


def test_a_model_rebuilt_on_its_warm_start_is_the_fitted_one():
    X, _, Y, told = draw_dependent_noise(30, seed=1)
    X, Y, told = (torch.tensor(a) for a in (X, Y, told))
    warm_start: dict = {}
    fitted = fit_matern_gp(X, Y, told, warm_start=warm_start)
    rebuilt = fit_matern_gp(X, Y, told, warm_start=warm_start, optimise=False)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.posterior(X).mean, fitted.posterior(X).mean)
    with pytest.raises(NoWarmStart, match="no fitted hyperparameters"):
        fit_matern_gp(X, Y, told, warm_start={}, optimise=False)


def test_variances_at_the_fit_take_the_bias_out_of_the_estimates():
    # Draws that came out low were told small variances: fitted with them the model
    # leans on those draws; with the variances moved to its first fit's values it does
    # not.
    X, f, Y, told = draw_dependent_noise(60, seed=2)
    context = ProposalContext(
        X, Y, told, None, np.ones(60, dtype=bool), np.zeros((0, 2)), 1, 60, 0, {}
    )
    config = SearchConfig(
        dim=2,
        num_objectives=2,
        strategy="gp",
        ref_point=(0.0, 0.0),
        budget=60,
        initial_points=4,
        layer_profile=(1.0, 1.0),
    )
    bias = []
    for at_fit in (False, True):
        strategy = STRATEGIES["gp"](config)
        strategy.variances_at_fit = at_fit
        model = strategy.surrogate(replace(context, warm_start={}))
        with torch.no_grad():
            mean = model.posterior(torch.tensor(X)).mean
        bias.append(np.abs((mean.numpy() - f).mean(axis=0)).mean())
    assert bias[1] < 0.5 * bias[0]


def two_benchmarks(X: np.ndarray, sd: tuple[float, float], seed: int = 0):
    """Objectives that are means over a precise and a coarse benchmark that move
    together (``LANDSCAPE``'s values on both, each with its own noise ``sd``): ``(Y,
    Yvar, Y_by_benchmark, Yvar_by_benchmark)``, ``Y`` ``(n, 2)``, the rest ``(n, 2, 2)``."""
    rng = np.random.default_rng(seed)
    truth = LANDSCAPE.true_values(X)
    variances = np.broadcast_to(np.square(sd), (len(X), 2, 2))
    values = truth[:, :, None] + rng.normal(size=variances.shape) * np.sqrt(variances)
    return values.mean(axis=2), variances.sum(axis=2) / 4, values, variances.copy()


def test_the_benchmark_mean_model_is_the_mean_of_its_benchmarks_joint_posterior():
    X = np.random.default_rng(1).random((16, 3))
    _, _, values, variances = two_benchmarks(np.c_[X, X], (0.02, 0.2))
    model = fit_benchmark_mean_gp(*(torch.tensor(a) for a in (X, values, variances)))
    Z = torch.rand(5, 3, dtype=torch.double)
    posterior = model.posterior(Z)
    assert posterior.mean.shape == (5, 2)
    for j, benchmarks in enumerate(model.models):
        joint = benchmarks.posterior(Z).distribution  # (5 points x 2 benchmarks), jointly
        torch.testing.assert_close(posterior.mean[:, j], joint.mean.mean(dim=-1))
        # Var of the mean of the two = their covariance block summed over 4.
        order = (
            torch.arange(10).reshape(5, 2)
            if joint._interleaved
            else torch.arange(10).reshape(2, 5).T
        )
        block = joint.covariance_matrix[order[:, :, None], order[:, None, :]]
        torch.testing.assert_close(posterior.variance[:, j], block.sum(dim=(1, 2)) / 4)
    # q-batches, as the acquisition asks; draws of both objectives.
    assert model.posterior(Z.reshape(5, 1, 3)).mean.shape == (5, 1, 2)
    assert model.posterior(Z).rsample(torch.Size([3])).shape == (3, 5, 2)


def test_a_precise_benchmark_teaches_the_model_of_a_coarse_one():
    # Both benchmarks move together, one measured ten times as precisely: modelled
    # jointly, the objective (their mean) is predicted better than from the means alone.
    rng = np.random.default_rng(2)
    X, X_test = rng.random((40, LANDSCAPE.dim)), rng.random((200, LANDSCAPE.dim))
    Y, Yvar, values, variances = two_benchmarks(X, (0.03, 0.3))
    tensors = [torch.tensor(a) for a in (X, Y, Yvar, values, variances, X_test)]
    X_t, Y_t, Yvar_t, values_t, variances_t, test = tensors
    truth = torch.tensor(LANDSCAPE.true_values(X_test))
    joint = fit_benchmark_mean_gp(X_t, values_t, variances_t).posterior(test).mean
    means = fit_matern_gp(X_t, Y_t, Yvar_t).posterior(test).mean
    error = [((p.detach() - truth) ** 2).mean().sqrt().item() for p in (joint, means)]
    assert error[0] < 0.8 * error[1]


def staged_by_benchmark(X: np.ndarray, sd=(0.03, 0.3)) -> list[ScreeningStage]:
    Y, Yvar, values, variances = two_benchmarks(X, sd, seed=len(X))
    return [ScreeningStage(Y, Yvar, None, values, variances)]


def test_a_search_told_each_benchmark_models_each_benchmark():
    result = run("gp", objective=staged_by_benchmark)
    state = json.loads(json.dumps(result.state))
    assert all(np.shape(t["y_by_benchmark"]) == (2, 2) for t in state["trials"])
    optimizer = AskTellOptimizer.from_state_dict(state)
    optimizer.estimates()
    assert isinstance(optimizer._latest_fit().model, BenchmarkMeanModel)
    # The same values without each benchmark's: one GP per objective.
    mean_only = AskTellOptimizer(optimizer.config)
    for t in optimizer.trials:
        mean_only.add(t.x, t.y, t.yvar)
    mean_only.estimates()
    assert not isinstance(mean_only._latest_fit().model, BenchmarkMeanModel)


def test_values_by_benchmark_must_average_to_the_objectives():
    def objective(X):
        stage = staged_by_benchmark(X)[0]
        if len(X) == 2:  # the first batch after the initial design
            stage.Y_by_benchmark[1, 0, 0] += 0.5
        return [stage]

    with pytest.raises(
        ObjectiveError, match=r"row 1 are not the means of its Y_by_benchmark"
    ) as error:
        run("sobol", objective=objective)
    assert len(error.value.partial.Y) == 4  # the initial design kept
    optimizer = AskTellOptimizer(make_config())
    trial = optimizer.ask(1)[0]
    with pytest.raises(ValueError, match="come together"):
        optimizer.tell(trial, [0.1, 0.2], [0.01, 0.01], y_by_benchmark=[[0.1, 0.1], [0.2, 0.2]])
    with pytest.raises(ValueError, match=r"yvar_by_benchmark of shape \(1, 2, 2\) .* \(1, 2, 3\)"):
        optimizer.tell(
            trial,
            [0.1, 0.2],
            [0.01, 0.01],
            y_by_benchmark=[[0.1] * 3, [0.2] * 3],
            yvar_by_benchmark=[[0.01] * 2, [0.01] * 2],
        )
    two = {"y_by_benchmark": [[0.1] * 2, [0.2] * 2], "yvar_by_benchmark": [[0.01] * 2] * 2}
    optimizer.tell(trial, [0.1, 0.2], [0.01, 0.01], **two)
    trial = optimizer.ask(1)[0]
    with pytest.raises(ValueError, match="y_by_benchmark of 3 benchmarks, expected 2 as before"):
        optimizer.tell(
            trial,
            [0.1, 0.2],
            [0.01, 0.01],
            y_by_benchmark=[[0.1] * 3, [0.2] * 3],
            yvar_by_benchmark=[[0.01] * 3, [0.01] * 3],
        )


def test_a_point_that_wins_only_by_luck_is_not_on_the_reported_front():
    # f1 = x0 - x1, f2 = 1 - x0 - x1: x1 only hurts, the true front is the row x1 = 0.
    config = SearchConfig(
        dim=2, num_objectives=2, strategy="gp", ref_point=(-2.0, -2.0), budget=60, initial_points=4
    )
    optimizer = AskTellOptimizer(config)
    rng, noise = np.random.default_rng(0), 0.2

    def truth(x):
        return np.array([x[0] - x[1], 1 - x[0] - x[1]])

    grid = np.stack(np.meshgrid(np.linspace(0, 1, 7), np.linspace(0, 1, 7)), -1).reshape(-1, 2)
    for x in grid:  # the first 7 points are the row x1 = 0
        optimizer.add(x, truth(x) + noise * rng.standard_normal(2), yvar=[noise**2] * 2)
    lucky_x = np.array([0.45, 0.3])  # truth (0.15, 0.25), observed 3 sd above it on both
    lucky = optimizer.add(lucky_x, truth(lucky_x) + 3 * noise, yvar=[noise**2] * 2)
    assert pareto_mask(optimizer.Y)[-1]  # by its raw value it is on the front
    front = {p.trial_id for p in optimizer.front()}
    assert lucky.id not in front and front <= set(range(7))
    estimates = optimizer.estimates()
    assert estimates.prob_non_dominated[-1] < 0.05
    assert np.all(estimates.mean[-1] < truth(lucky_x) + 1.5 * noise)  # pulled back


def test_the_surrogate_predicts_an_unevaluated_point_from_its_neighbours():
    # f1 = x0, f2 = 1 - x0 on a grid, x1 inert: at an unevaluated point the posterior is
    # near the truth, surer near the data than far from it, and agrees with the estimates.
    optimizer = AskTellOptimizer(plane_config("gp", budget=40))
    assert optimizer.predict(np.array([[0.5, 0.5]])) is None  # no model yet
    rng, noise = np.random.default_rng(1), 0.05
    for x in rng.random((30, 2)) * np.array([0.6, 1.0]):  # x0 < 0.6 only
        optimizer.add(x, [x[0], 1 - x[0]] + noise * rng.standard_normal(2), yvar=[noise**2] * 2)
    mean, std = optimizer.predict(np.array([[0.3, 0.5], [0.95, 0.5]]))
    assert mean.shape == std.shape == (2, 2)
    np.testing.assert_allclose(mean[0], [0.3, 0.7], atol=0.05)
    assert np.all(std[0] < noise) and np.all(std[1] > 2 * std[0])
    estimates = optimizer.estimates()
    again, _ = optimizer.predict(estimates.X[:3])
    np.testing.assert_allclose(again, estimates.mean[:3], atol=1e-6)
    # A new pending trial is no new data: the same fit answers, without fitting again.
    fits = []
    surrogate = optimizer.strategy.surrogate
    optimizer.strategy.surrogate = lambda context: fits.append(1) or surrogate(context)
    optimizer.ask(1)
    np.testing.assert_array_equal(optimizer.predict(estimates.X[:3])[0], again)
    assert fits == []
    optimizer.tell(optimizer.trials[-1].id, [0.5, 0.5], [noise**2] * 2)
    optimizer.predict(estimates.X[:3])
    assert fits == [1]  # new data: fitted again


def test_a_strategy_with_no_surrogate_predicts_nothing():
    optimizer = AskTellOptimizer(plane_config("sobol", budget=10))
    for x in np.random.default_rng(0).random((5, 2)):
        optimizer.add(x, [x[0], 1 - x[0]], yvar=[0.01, 0.01])
    assert optimizer.predict(np.array([[0.5, 0.5]])) is None


def test_validation_takes_a_screened_point_on_the_front_first():
    optimizer = AskTellOptimizer(plane_config("sobol", budget=4))
    sure, unsure = [1e-4, 1e-4], [0.05, 0.05]
    ends, screened, behind = optimizer.ask(2), optimizer.ask(1)[0], optimizer.ask(1)[0]
    optimizer.tell(ends[0], [0.9, 0.1], sure)
    optimizer.tell(ends[1], [0.1, 0.9], sure)
    optimizer.tell(screened, [0.5, 0.5], unsure, screened=True)  # stopped after a stage
    optimizer.tell(behind, [0.05, 0.05], sure)
    estimates = optimizer.estimates()
    on_front = estimates.front_mask.tolist()
    assert on_front == [True, True, True, False]
    # Less likely on the front than the two sure ends, but only a validation can report it.
    assert estimates.prob_non_dominated[2] < estimates.prob_non_dominated[:2].min()
    assert [t.validates for t in optimizer.ask_validation(3)] == [screened.id, 0, 1]
    restored = AskTellOptimizer.from_state_dict(json.loads(json.dumps(optimizer.state_dict())))
    assert [t.screened for t in restored.trials[:4]] == [False, False, True, False]


def test_validation_pools_values_and_respects_its_budget():
    noise = 0.05
    result = run("sobol", objective=noisy_landscape(noise), budget=10, validation_budget=3)
    assert len(result.X) == 13 and result.is_validation.tolist() == [False] * 10 + [True] * 3
    assert result.hypervolume_after[-1] == 13  # the last batch validated
    trials = result.state["trials"]
    validated = [t["validates"] for t in trials if t["kind"] == "validation"]
    assert len(set(validated)) == 3  # three candidates before any point twice
    optimizer = AskTellOptimizer.from_state_dict(result.state)
    estimates = optimizer.estimates()
    for point in validated:
        values = np.array([t["y"] for t in trials if point in (t["id"], t["validates"])])
        assert trials[point]["x"] == trials[validated.index(point) + 10]["x"]
        i = estimates.trial_ids.tolist().index(point)
        assert estimates.num_observations[i] == 2
        # Equal variances: the precision-weighted mean is the plain mean, its error /sqrt(2).
        np.testing.assert_allclose(estimates.mean[i], values.mean(axis=0))
        np.testing.assert_allclose(estimates.std[i], noise / np.sqrt(2))
    # The first batch (batch_size 2) validated the two points most likely on the front.
    before = AskTellOptimizer.from_state_dict({**result.state, "trials": trials[:10]})
    prob = before.estimates().prob_non_dominated
    assert validated[:2] == np.argsort(-prob, kind="stable")[:2].tolist()


def test_validation_with_a_surrogate_counts_apart_and_narrows_the_front():
    result = run("gp", objective=noisy_landscape(0.1), validation_budget=4)
    optimizer = AskTellOptimizer.from_state_dict(result.state)
    assert optimizer.num_search_trials == 10 and len(optimizer.trials) == 14
    front = optimizer.front()
    assert [p.mean.tolist() for p in front] == result.pareto_Y.tolist()
    assert any(p.num_observations == 2 for p in front)
    with pytest.raises(ValueError, match="validation_budget must be >= 0"):
        run("gp", validation_budget=-1)


# --- errors ----------------------------------------------------------------------------


def test_non_finite_objective_keeps_what_was_finished():
    calls = []

    def objective(X):
        calls.append(len(X))
        Y = LANDSCAPE.true_values(X)
        if len(calls) == 3:
            Y[1, 0] = np.nan
        return Y

    with pytest.raises(ObjectiveError, match=r"non-finite values .* row 1") as error:
        optimize(
            objective,
            dim=LANDSCAPE.dim,
            strategy="sobol",
            budget=10,
            batch_size=2,
            initial_points=4,
        )
    assert len(error.value.partial.Y) == 6  # the initial design and one batch


def test_objective_variances_are_checked():
    def objective(X):
        Y = LANDSCAPE.true_values(X)
        return Y, -np.ones_like(Y)

    with pytest.raises(ObjectiveError, match="negative or non-finite variances"):
        optimize(objective, dim=LANDSCAPE.dim, strategy="sobol", budget=4, initial_points=4)


def test_objective_of_wrong_shape():
    with pytest.raises(ObjectiveError, match=r"shape \(4, 3\) for 4 points, expected \(4, 2\)"):
        optimize(
            lambda X: np.zeros((len(X), 3)), dim=3, strategy="random", budget=4, initial_points=4
        )


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(strategy="bayes"), "strategy 'bayes' is unknown"),
        (dict(budget=3), r"budget \(3\) is below the initial design \(4 points\)"),
        (dict(ref_point=(0.0,)), "ref_point has 1 values but there are 2 objectives"),
        (dict(strategy="sip-gp", layer_profile=None), "needs a layer_profile"),
        (dict(layer_profile=(1.0, 2.0)), "layer_profile has 2 values, expected 6"),
        (dict(strategy="bambo", num_blocks=None), "'bambo' needs num_blocks"),
        (dict(strategy="bambo", num_blocks=0), "num_blocks must be >= 1"),
        (dict(initial_solutions=((0.5,) * 3,)), r"initial_solutions\[0\] has 3 values"),
        (dict(initial_solutions=((1.5,) * 6,)), "outside"),
        (dict(num_objectives=1, ref_point=(0.0,)), "num_objectives must be >= 2"),
    ],
)
def test_invalid_configurations_name_the_problem(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_config(**kwargs)


def test_tell_rejects_bad_values():
    optimizer = AskTellOptimizer(make_config())
    trial = optimizer.ask(1)[0]
    with pytest.raises(ValueError, match=r"must be finite.*tell_failed"):
        optimizer.tell(trial, [np.nan, 0.1])
    with pytest.raises(ValueError, match="expected 2 objective values"):
        optimizer.tell(trial, [0.1])
    with pytest.raises(ValueError, match="expected 2 finite, non-negative variances"):
        optimizer.tell(trial, [0.1, 0.2], yvar=[-1.0, 0.1])
    with pytest.raises(ValueError, match="decision vector of 6 values"):
        optimizer.add(trial.x[:3], [0.1, 0.2])
    with pytest.raises(ValueError, match="n >= 1"):
        optimizer.ask(0)
    with pytest.raises(ValueError, match="no finished evaluation"):
        optimizer.ask_validation(1)


def test_embedded_problems_are_maximised_with_their_reference_points():
    problem = EmbeddedTestProblem("branin-currin", dim=8)
    X = np.random.default_rng(0).random((3, 8))
    unit = torch.as_tensor(X[:, :2])
    expected = -BraninCurrin()(unit)  # BoTorch's Branin-Currin lives on [0, 1]^2
    np.testing.assert_allclose(problem(X), expected.numpy())
    assert problem.ref_point.tolist() == [-18.0, -6.0] and problem.max_hv > 0


# --- the benchmark's problems ------------------------------------------------------------


def test_the_landscape_family_changes_structure_not_only_noise():
    members = [landscape_family_member(i) for i in range(len(LANDSCAPE_FAMILY))]
    capability = [np.flatnonzero(m.a[:-1] > 0.1) for m in members]
    assert [len(c) for c in capability] == [6, 6, 12, 3, 10, 4]
    assert np.all(np.diff(capability[1]) == 1) and np.any(np.diff(capability[0]) > 1)
    # The far-profile members rank inert decoy layers among their most divergent ones.
    top = np.argsort(-members[3].profile[:-1])[:6]
    assert not set(top) <= set(np.flatnonzero(members[3].a[:-1] + members[3].b[:-1] > 0.1))
    for m in members:  # every member is a merge landscape: base (0, 1), expert (1, 0)
        np.testing.assert_allclose(m.true_values(np.zeros(37)), [[0.0, 1.0]], atol=1e-12)
        np.testing.assert_allclose(m.true_values(np.ones(37)), [[1.0, 0.0]], atol=1e-12)


def test_question_records_give_standard_errors_over_questions():
    records = QuestionRecords(
        correct=np.array([[True, False, True, True]]), tokens=np.array([[100.0, 300.0, 200.0, 0.0]])
    )
    accuracy, accuracy_var, tokens, tokens_var = records.scores()
    # As the tool scores an evaluation: Jeffreys' accuracy, the token spread shrunk towards
    # the prior's (coefficient of variation 0.5, the weight of 4 answers).
    assert accuracy == [0.75] and accuracy_var == pytest.approx([(3.5 / 5) * (1.5 / 5) / 4])
    shrunk = (4 * (0.5 * 150.0) ** 2 + 3 * np.var([1, 3, 2, 0], ddof=1) * 1e4) / (4 + 3)
    assert tokens == [150.0] and tokens_var == pytest.approx([shrunk / 4])


def test_normalised_variances_are_the_delta_method():
    scores, base, expert = np.array([[0.5, 0.6]]), np.array([0.4, 0.5]), np.array([0.8, 0.7])
    variances = (np.array([[1e-4, 4e-4]]), np.array([2e-4, 1e-4]), np.array([3e-4, 2e-4]))
    g, var = normalised_by_benchmark(scores, variances[0], base, expert, *variances[1:])
    assert g[0] == pytest.approx([0.1 / 0.4, 0.1 / 0.2])
    # Numerical gradient of each benchmark's value in its three scores, J diag(var) J^T.
    for s in range(2):
        point = np.array([scores[0, s], base[s], expert[s]])

        def f(p, s=s):
            moved = [np.array(a, dtype=float) for a in (scores, base, expert)]
            moved[0][0, s], moved[1][s], moved[2][s] = p
            return normalised_by_benchmark(moved[0], np.zeros((1, 2)), moved[1], moved[2], 0, 0)[0][
                0, s
            ]

        gradient = [(f(point + e) - f(point - e)) / 2e-6 for e in np.eye(3) * 1e-6]
        own = [variances[0][0, s], variances[1][s], variances[2][s]]
        assert var[0, s] == pytest.approx(np.sum(np.square(gradient) * own), rel=1e-6)


def test_the_question_level_simulator_is_calibrated():
    problem = QuestionLevelMergeProblem(landscape_family_member(0))
    accuracy, tokens = problem.true_scores(np.stack([np.zeros(37), np.ones(37)]))
    np.testing.assert_allclose(accuracy, [[0.413, 0.466], [0.658, 0.804]])
    np.testing.assert_allclose(tokens, [[570, 15097], [9114, 22813]])
    x = np.random.default_rng(0).random((1, 37))
    Y, Yvar = problem(np.repeat(x, 400, axis=0))
    truth = problem.true_values_by_measured_anchors(x)[0]
    np.testing.assert_allclose(Y.mean(axis=0), truth, atol=0.03)  # unbiased
    assert np.all((Y.std(axis=0) > 0.05) & (Y.std(axis=0) < 0.2))  # the published noise
    # The claimed variances hold the anchors' errors too: above the spread of reruns.
    assert np.all(np.sqrt(Yvar.mean(axis=0)) > Y.std(axis=0))


def test_the_simulator_measures_close_anchors_again_as_a_run_does():
    """Hard member 6's first anchors on AIME25's 30 questions are 0.6 standard errors
    apart in accuracy (0.733 against 0.667; true 0.804 and 0.466): the run's rule
    measures them again there, asking each question 4 times (4 x 30 more answers of
    each, GPQA-Diamond's none), and they come out apart and near the truth. A benchmark on which the models' lengths barely differ stays close and is
    named."""
    problem = QuestionLevelMergeProblem(switching_family_member(6), seed=6)
    base, expert = problem.anchors.scores(problem.names, [198, 30])
    assert judge_anchors(base, expert, problem.names) == []
    assert abs(base["aime25"].accuracy - 0.466) < 0.1
    assert abs(expert["aime25"].accuracy - 0.804) < 0.1
    once = QuestionLevelMergeProblem(switching_family_member(4), seed=4)  # apart at once
    aime = QWEN3_4B_BENCHMARKS[1]
    assert problem.anchor_tokens - once.anchor_tokens == pytest.approx(
        4 * 30 * sum(aime.mean_tokens), rel=0.15
    )
    short = replace(aime, name="short", mean_tokens=(15097.0, 16500.0))
    with pytest.raises(CloseAnchorsError, match="asking each question 4 times: short: tokens"):
        QuestionLevelMergeProblem(
            switching_family_member(4), seed=4, calibrations=(QWEN3_4B_BENCHMARKS[0], short)
        )


def test_the_hard_family_switches_into_thinking_mode_and_splits_its_benchmarks():
    """Anchors at (0, 1) and (1, 0); along the model-level line the mode switches within a
    fifth of the weight range; a merge of the knowledge layers alone gains on the
    knowledge benchmark and not on the reasoning one, at almost no tokens; the simulator
    scores each benchmark by its own values; called, it adds the Gaussian noise it was
    made with."""
    landscape = switching_family_member(1)
    ends = landscape.true_values(np.stack([np.zeros(37), np.ones(37)]))
    np.testing.assert_allclose(ends, [[0, 1], [1, 0]], atol=1e-9)
    line = np.linspace(0, 1, 101)
    mode = landscape.mode(np.repeat(line[:, None], 37, axis=1))
    assert line[np.argmax(mode > 0.9)] - line[np.argmax(mode > 0.1)] < 0.2
    knowledge = np.zeros(37)
    knowledge[landscape.roles["knowledge"]] = 1.0
    gains, tokens = landscape.benchmark_values(knowledge[None])
    assert gains[0, 0] > 0.25 and abs(gains[0, 1]) < 0.05 and tokens[0, 0] > 0.95
    problem = QuestionLevelMergeProblem(landscape, seed=0)
    accuracy, _ = problem.true_scores(knowledge[None])
    base = np.array([c.accuracy[0] for c in problem.calibrations])
    assert accuracy[0, 0] > base[0] + 0.05 and abs(accuracy[0, 1] - base[1]) < 0.02
    X = np.random.default_rng(0).random((2000, 37))
    np.testing.assert_array_equal(landscape(X), landscape.true_values(X))
    error = switching_family_member(1, noise=0.02)(X) - landscape.true_values(X)
    assert 0.019 < error.std() < 0.021 and abs(error.mean()) < 0.002
    with pytest.raises(ValueError, match=r"members 0\.\.7"):
        switching_family_member(8)
