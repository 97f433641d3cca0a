import json

import numpy as np
import pytest
import torch
from botorch.test_functions.multi_objective import BraninCurrin

from paretomerge.search import (
    STRATEGY_NAMES,
    AcquisitionSettings,
    AskTellOptimizer,
    NutsSettings,
    ObjectiveError,
    SearchConfig,
    hypervolume,
    hypervolume_history,
    optimize,
    pareto_mask,
)
from paretomerge.search.problems import EmbeddedTestProblem, LayerMergeLandscape
from paretomerge.search.surrogates import fit_map_saas_gp

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


def test_hypervolume_history_is_prefix_hypervolume():
    Y = np.array([[0.5, 0.5], [2.0, 1.0], [0.1, 0.1], [1.0, 2.0]])
    history = hypervolume_history(Y, np.zeros(2))
    assert history.tolist() == pytest.approx([0.25, 2.0, 2.0, 3.0])


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
    assert len(result.hypervolume) == budget
    assert np.all(np.diff(result.hypervolume) >= 0)
    assert result.hypervolume[-1] == pytest.approx(hypervolume(result.Y, np.array([-0.2, -0.2])))
    # The initial solutions come first, as given.
    np.testing.assert_array_equal(result.X[0], np.full(LANDSCAPE.dim, 0.55))
    np.testing.assert_array_equal(result.X[1], np.full(LANDSCAPE.dim, 0.8))
    assert np.all(pareto_mask(result.Y) == np.isin(result.Y[:, 0], result.pareto_Y[:, 0]))
    assert len({tuple(x) for x in result.X}) == budget  # nothing evaluated twice


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


def drive(optimizer, rounds, q=2):
    for _ in range(rounds):
        for x in optimizer.ask(q):
            optimizer.tell(x, LANDSCAPE.true_values(x)[0])


def test_state_round_trips_through_json_to_identical_proposals():
    original = AskTellOptimizer(make_config(strategy="sip-map-saas"))
    drive(original, 4)
    pending = original.ask(2)
    restored = AskTellOptimizer.from_state_dict(json.loads(json.dumps(original.state_dict())))
    np.testing.assert_array_equal(restored.pending, pending)
    np.testing.assert_array_equal(original.ask(2), restored.ask(2))
    assert original.state_dict() == restored.state_dict()


def test_pending_points_are_never_proposed_again():
    optimizer = AskTellOptimizer(make_config())
    drive(optimizer, 3)
    first = optimizer.ask(3)
    second = optimizer.ask(3)  # the first three are still running
    everything = np.vstack([optimizer.X, first, second])
    assert len({tuple(x) for x in everything}) == len(everything)
    assert optimizer.pending.shape == (6, LANDSCAPE.dim)


def test_asynchronous_ask_one_at_a_time():
    optimizer = AskTellOptimizer(make_config(initial_points=4))
    running = list(optimizer.ask(4))
    for step in range(4):
        done = running.pop(0)
        optimizer.tell(done, LANDSCAPE.true_values(done)[0])
        running.extend(optimizer.ask(1))
        assert len(optimizer.pending) == 4
        assert len(optimizer.X) == step + 1


def test_failed_points_are_recorded_not_modelled_and_stay_pending_for_the_model():
    optimizer = AskTellOptimizer(make_config())
    drive(optimizer, 2)
    x_failed = optimizer.ask(1)[0]
    optimizer.tell_failed(x_failed, "merge crashed: out of memory")
    assert optimizer.failed == [(x_failed.tolist(), "merge crashed: out of memory")]
    assert len(optimizer.pending) == 0 and len(optimizer.X) == 4
    following = optimizer.ask(2)
    assert not any(np.array_equal(x, x_failed) for x in following)
    restored = AskTellOptimizer.from_state_dict(json.loads(json.dumps(optimizer.state_dict())))
    assert restored.failed == optimizer.failed


def test_tell_an_external_point_adds_a_trial():
    optimizer = AskTellOptimizer(make_config())
    optimizer.tell(np.zeros(LANDSCAPE.dim), [0.0, 1.0])
    assert optimizer.X.tolist() == [[0.0] * LANDSCAPE.dim]


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
        (dict(strategy="bambo", num_blocks=9), r"num_blocks must be in \[1, 5\]"),
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
    x = optimizer.ask(1)[0]
    with pytest.raises(ValueError, match=r"must be finite.*tell_failed"):
        optimizer.tell(x, [np.nan, 0.1])
    with pytest.raises(ValueError, match="expected 2 objective values"):
        optimizer.tell(x, [0.1])
    with pytest.raises(ValueError, match="decision vector of 6 values"):
        optimizer.tell(x[:3], [0.1, 0.2])
    with pytest.raises(ValueError, match="n >= 1"):
        optimizer.ask(0)


def test_embedded_problems_are_maximised_with_their_reference_points():
    problem = EmbeddedTestProblem("branin-currin", dim=8)
    X = np.random.default_rng(0).random((3, 8))
    unit = torch.as_tensor(X[:, :2])
    expected = -BraninCurrin()(unit)  # BoTorch's Branin-Currin lives on [0, 1]^2
    np.testing.assert_allclose(problem(X), expected.numpy())
    assert problem.ref_point.tolist() == [-18.0, -6.0] and problem.max_hv > 0
