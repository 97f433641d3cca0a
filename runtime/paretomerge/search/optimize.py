"""``optimize``: a whole search of a black-box objective, batch by batch."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from paretomerge.search.acquisition import AcquisitionSettings
from paretomerge.search.config import SearchConfig, expand_initial_solutions
from paretomerge.search.optimizer import AskTellOptimizer
from paretomerge.search.pareto import hypervolume_history
from paretomerge.search.surrogates import NutsSettings

# f(X (q, d)) -> Y (q, m), or (Y, Yvar) with Yvar (q, m) the variances of Y's entries.
Objective = Callable[[np.ndarray], np.ndarray | tuple[np.ndarray, np.ndarray]]


@dataclass
class OptimizeResult:
    """Every evaluation of a search, in order, and the Pareto set it reports.

    Attributes:
        X: ``(n, dim)`` every point evaluated, search then validation evaluations
            (``n = budget + validation_budget``).
        Y: ``(n, m)`` the raw values the objective returned for them.
        Yvar: ``(n, m)`` their variances when the objective returned them, else ``None``.
        is_validation: ``(n,)`` which evaluations were validations.
        pareto_X: ``(k, dim)`` the reported front: the evaluated points whose estimated
            values are non-dominated (see :mod:`paretomerge.search.estimates`), best
            first objective first.
        pareto_Y: ``(k, m)`` their estimated values: the surrogate's posterior mean given
            every evaluation (a point's repeated evaluations pooled), or for a strategy
            with no surrogate the pooled observations.
        pareto_Y_std: ``(k, m)`` the posterior standard deviations (or the pooled
            observations' standard errors; NaN when no variance is known). A 95% interval
            is ``pareto_Y +- 1.96 pareto_Y_std``.
        pareto_probability: ``(k,)`` each point's posterior probability of being
            non-dominated among the evaluated points.
        hypervolume: ``(budget,)`` ``hypervolume[i]`` is the hypervolume of the raw values
            of the first ``i + 1`` search evaluations (a progress figure).
        proposal_seconds: the wall time of each ``ask``, initial design and validation
            included.
        state: the optimiser's state (:meth:`AskTellOptimizer.state_dict`).
    """

    X: np.ndarray
    Y: np.ndarray
    Yvar: np.ndarray | None
    is_validation: np.ndarray
    pareto_X: np.ndarray
    pareto_Y: np.ndarray
    pareto_Y_std: np.ndarray
    pareto_probability: np.ndarray
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
    strategy: str = "coarse-to-fine",
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
    validation_budget: int = 0,
) -> OptimizeResult:
    """Search the Pareto set of ``objective`` over ``[0, 1]^dim`` (all objectives maximised).

    The search spends ``budget`` evaluations, then ``validation_budget`` more on the
    points that may be on the front (:meth:`AskTellOptimizer.ask_validation`), in
    batches of ``batch_size``. The front it reports is chosen and valued by the
    surrogate's posterior at the evaluated points, never by the raw values.

    Args:
        objective: ``f(X)`` with ``X`` ``(q, dim)`` in ``[0, 1]^dim`` returning ``Y``
            ``(q, m)`` finite values, or ``(Y, Yvar)`` with ``Yvar`` ``(q, m)`` the
            variances of those values (the squared standard errors of the objective's own
            estimates). With ``Yvar`` every Bayesian strategy fits with that noise
            (heteroscedastic); without, it infers one noise level per objective.
        dim: number of decision variables (merge weights, then ``extra_variables``).
        num_objectives: ``m >= 2``.
        strategy: one of random, sobol, model-level, gp, sip-gp, saas, sip-saas,
            sip-map-saas, coarse-to-fine, bambo.
        budget: number of search evaluations, exactly (validation comes on top).
        batch_size: points per batch after the initial design.
        initial_points: size of the initial design, evaluated as one batch.
        ref_point: hypervolume reference point, ``(m,)``.
        layer_profile: divergence per merge weight (``dim - extra_variables`` values);
            needed by sip-gp, sip-saas, sip-map-saas, coarse-to-fine and bambo.
        num_blocks: number of layer blocks for bambo (the head variable is one more).
        initial_solutions: points for the initial design; a scalar fills every variable.
        seed: makes the whole search reproducible.
        extra_variables: trailing decision variables that are not merge weights.
        partition_strategy: bambo's block partition (hybrid, variance, balance, uniform).
        acquisition: acquisition optimisation budget.
        nuts: NUTS budget of the fully Bayesian strategies.
        validation_budget: evaluations after the budget that re-evaluate the points most
            likely on the front; their values are pooled with the earlier ones.

    Raises:
        ValueError: for an invalid configuration.
        ObjectiveError: when ``objective`` returns the wrong shape or non-finite values;
            its ``partial`` attribute holds every evaluation finished before.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if validation_budget < 0:
        raise ValueError(f"validation_budget must be >= 0, got {validation_budget}")
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
    validated = 0
    while optimizer.num_search_trials < budget or validated < validation_budget:
        started = time.perf_counter()
        if optimizer.num_search_trials < budget:
            remaining = budget - optimizer.num_search_trials
            q = min(initial_points if not optimizer.trials else batch_size, remaining)
            trials = optimizer.ask(q)
        else:
            trials = optimizer.ask_validation(min(batch_size, validation_budget - validated))
            validated += len(trials)
        seconds.append(time.perf_counter() - started)
        X = np.array([t.x for t in trials])
        Y, Yvar, problem = _objective_values(objective(X), X, num_objectives)
        if problem:
            raise ObjectiveError(problem, _result(optimizer, seconds))
        for i, trial in enumerate(trials):
            optimizer.tell(trial, Y[i], None if Yvar is None else Yvar[i])
    return _result(optimizer, seconds)


def _objective_values(
    output, X: np.ndarray, num_objectives: int
) -> tuple[np.ndarray, np.ndarray | None, str | None]:
    """``(Y, Yvar, problem)`` from what the objective returned for ``X``; ``problem`` says
    what is wrong with it, if anything."""
    Y, Yvar = output if isinstance(output, tuple) and len(output) == 2 else (output, None)
    Y = np.asarray(Y, dtype=float)
    Yvar = None if Yvar is None else np.asarray(Yvar, dtype=float)
    expected = (len(X), num_objectives)
    for name, values in (("values", Y), ("variances", Yvar)):
        if values is None:
            continue
        if values.shape != expected:
            problem = f"objective returned {name} of shape {values.shape} for {len(X)} points"
            return Y, Yvar, f"{problem}, expected {expected}"
        usable = np.isfinite(values) & (values >= 0 if name == "variances" else True)
        bad = np.flatnonzero(~np.all(usable, axis=1))
        if len(bad):
            i = int(bad[0])
            kind = "non-finite" if name == "values" else "negative or non-finite"
            return (
                Y,
                Yvar,
                (
                    f"objective returned {kind} {name} {values[i].tolist()} for row {i} of the "
                    f"batch (x={X[i].round(4).tolist()}); {len(bad)} of {len(X)} rows are unusable"
                ),
            )
    return Y, Yvar, None


def _result(optimizer: AskTellOptimizer, seconds: list[float]) -> OptimizeResult:
    completed = [t for t in optimizer.trials if t.status == "completed"]
    is_validation = np.array([t.kind == "validation" for t in completed], dtype=bool)
    Y = optimizer.Y
    front = optimizer.front() if completed else []
    m, d = optimizer.config.num_objectives, optimizer.config.dim
    return OptimizeResult(
        X=optimizer.X,
        Y=Y,
        Yvar=optimizer.Yvar,
        is_validation=is_validation,
        pareto_X=np.array([p.x for p in front]).reshape(-1, d),
        pareto_Y=np.array([p.mean for p in front]).reshape(-1, m),
        pareto_Y_std=np.array([p.std for p in front]).reshape(-1, m),
        pareto_probability=np.array([p.prob_non_dominated for p in front]),
        hypervolume=hypervolume_history(Y[~is_validation], np.asarray(optimizer.config.ref_point)),
        proposal_seconds=seconds,
        state=optimizer.state_dict(),
    )
