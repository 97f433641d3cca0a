"""``optimize``: a whole search of a black-box objective, batch by batch."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from paretomerge.search.acquisition import AcquisitionSettings
from paretomerge.search.config import SearchConfig, expand_initial_solutions
from paretomerge.search.optimizer import AskTellOptimizer
from paretomerge.search.pareto import hypervolume_history, pareto_mask
from paretomerge.search.surrogates import NutsSettings

Objective = Callable[[np.ndarray], np.ndarray]


@dataclass
class OptimizeResult:
    """Every evaluation of a search, in order, and its Pareto set.

    ``X`` ``(budget, dim)``, ``Y`` ``(budget, m)``; ``pareto_X``/``pareto_Y`` the
    non-dominated rows; ``hypervolume[i]`` the hypervolume of ``Y[: i + 1]``;
    ``proposal_seconds`` the wall time of each batch proposal (initial design included).
    """

    X: np.ndarray
    Y: np.ndarray
    pareto_X: np.ndarray
    pareto_Y: np.ndarray
    hypervolume: np.ndarray
    proposal_seconds: list[float] = field(default_factory=list)
    state: dict = field(default_factory=dict)


class ObjectiveError(ValueError):
    """The objective returned something unusable; ``partial`` holds what was finished."""

    def __init__(self, message: str, partial: OptimizeResult):
        super().__init__(message)
        self.partial = partial


def optimize(
    objective: Objective,
    dim: int,
    num_objectives: int = 2,
    strategy: str = "sip-map-saas",
    budget: int = 88,
    batch_size: int = 4,
    initial_points: int = 8,
    ref_point: Sequence[float] = (-0.2, -0.2),
    layer_profile: Sequence[float] | None = None,
    num_blocks: int | None = None,
    initial_solutions: Sequence[float | Sequence[float]] | None = None,
    seed: int = 0,
    *,
    extra_variables: int = 0,
    partition_strategy: str = "hybrid",
    acquisition: AcquisitionSettings | None = None,
    nuts: NutsSettings | None = None,
) -> OptimizeResult:
    """Search the Pareto set of ``objective`` over ``[0, 1]^dim`` (all objectives maximised).

    Args:
        objective: ``f(X)`` with ``X`` ``(q, dim)`` in ``[0, 1]^dim`` returning ``(q, m)``
            finite values.
        dim: number of decision variables (merge weights, then ``extra_variables``).
        num_objectives: ``m >= 2``.
        strategy: one of random, sobol, model-level, gp, sip-gp, saas, sip-saas,
            sip-map-saas, bambo.
        budget: total number of evaluations, exactly.
        batch_size: points per batch after the initial design.
        initial_points: size of the initial design, evaluated as one batch.
        ref_point: hypervolume reference point, ``(m,)``.
        layer_profile: divergence per merge weight (``dim - extra_variables`` values);
            needed by sip-gp, sip-saas, sip-map-saas and bambo.
        num_blocks: number of layer blocks for bambo (the head variable is one more).
        initial_solutions: points for the initial design; a scalar fills every variable.
        seed: makes the whole search reproducible.
        extra_variables: trailing decision variables that are not merge weights.
        partition_strategy: bambo's block partition (hybrid, variance, balance, uniform).
        acquisition: acquisition optimisation budget.
        nuts: NUTS budget of the fully Bayesian strategies.

    Raises:
        ValueError: for an invalid configuration.
        ObjectiveError: when ``objective`` returns the wrong shape or non-finite values;
            its ``partial`` attribute holds every evaluation finished before.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    config = SearchConfig(
        dim=dim,
        num_objectives=num_objectives,
        strategy=strategy,
        ref_point=tuple(float(r) for r in ref_point),
        budget=budget,
        initial_points=initial_points,
        seed=seed,
        layer_profile=None if layer_profile is None else tuple(float(v) for v in layer_profile),
        initial_solutions=expand_initial_solutions(initial_solutions, dim),
        extra_variables=extra_variables,
        num_blocks=num_blocks,
        partition_strategy=partition_strategy,
        acquisition=acquisition or AcquisitionSettings(),
        nuts=nuts or NutsSettings(),
    )
    optimizer = AskTellOptimizer(config)
    seconds: list[float] = []
    while len(optimizer.trials) < budget:
        remaining = budget - len(optimizer.trials)
        q = min(initial_points if not optimizer.trials else batch_size, remaining)
        started = time.perf_counter()
        X = optimizer.ask(q)
        seconds.append(time.perf_counter() - started)
        Y = np.asarray(objective(X), dtype=float)
        problem = _objective_problem(X, Y, num_objectives)
        if problem:
            raise ObjectiveError(problem, _result(optimizer, seconds))
        for x, y in zip(X, Y, strict=True):
            optimizer.tell(x, y)
    return _result(optimizer, seconds)


def _objective_problem(X: np.ndarray, Y: np.ndarray, num_objectives: int) -> str | None:
    expected = (len(X), num_objectives)
    if Y.shape != expected:
        return f"objective returned shape {Y.shape} for {len(X)} points, expected {expected}"
    bad = np.flatnonzero(~np.all(np.isfinite(Y), axis=1))
    if len(bad):
        i = int(bad[0])
        return (
            f"objective returned non-finite values {Y[i].tolist()} for row {i} of the batch "
            f"(x={X[i].round(4).tolist()}); {len(bad)} of {len(X)} rows are non-finite"
        )
    return None


def _result(optimizer: AskTellOptimizer, seconds: list[float]) -> OptimizeResult:
    X, Y = optimizer.X, optimizer.Y
    mask = pareto_mask(Y)
    return OptimizeResult(
        X=X,
        Y=Y,
        pareto_X=X[mask],
        pareto_Y=Y[mask],
        hypervolume=hypervolume_history(Y, np.asarray(optimizer.config.ref_point)),
        proposal_seconds=seconds,
        state=optimizer.state_dict(),
    )
