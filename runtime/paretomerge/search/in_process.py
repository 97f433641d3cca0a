"""``optimize``: a whole search of a black-box objective, batch by batch.

It runs the search policy of :mod:`paretomerge.search` in-process, as the controller runs
it over tasks: the optimiser's asks (search, then validation), the screener's stops
(:mod:`paretomerge.search.screening`) on an objective evaluated in screening stages, the
reported front (:mod:`paretomerge.search.front`), valued by held-out validations where
it has them, and the estimate of its hypervolume, with an interval
(:mod:`paretomerge.search.claims`), after each batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from paretomerge.search.acquisition import AcquisitionSettings
from paretomerge.search.claims import AnchorErrors, hypervolume_claim
from paretomerge.search.config import SearchConfig, expand_initial_solutions
from paretomerge.search.cost_budget import (
    CostBudget,
    CostLedger,
    allows_candidate,
    allows_validation,
)
from paretomerge.search.optimizer import AskTellOptimizer, by_benchmark_problem
from paretomerge.search.screening import Screener
from paretomerge.search.surrogates import NutsSettings


@dataclass(frozen=True)
class ScreeningStage:
    """A staged objective's estimates of ``q`` points after one screening stage (the
    questions asked so far): ``Y`` ``(q, m)``, ``Yvar`` ``(q, m)`` the variances of the
    evaluation's own error, ``cost`` ``(q,)`` what the questions asked so far cost (any
    unit: output tokens, say), or ``None``. Objectives that are means over ``S``
    benchmarks may say each benchmark's values ``Y_by_benchmark`` ``(q, m, S)`` (their
    mean over the last axis is ``Y``) and variances ``Yvar_by_benchmark``: the search
    then models each benchmark (:meth:`AskTellOptimizer.tell`). A single stage is an
    unstaged evaluation with all of these."""

    Y: np.ndarray
    Yvar: np.ndarray
    cost: np.ndarray | None = None
    Y_by_benchmark: np.ndarray | None = None
    Yvar_by_benchmark: np.ndarray | None = None


# f(X (q, d)) -> Y (q, m); or (Y, Yvar) with Yvar (q, m) the variances of Y's entries; or,
# staged, the ScreeningStages of one evaluation, growing, the last one asking every question.
Objective = Callable[
    [np.ndarray], np.ndarray | tuple[np.ndarray, np.ndarray] | Sequence[ScreeningStage]
]


@dataclass(frozen=True)
class HeldOutValidation:
    """Validation on questions held out of the search: ``objective`` evaluates points on
    them (an :data:`Objective`, normalised by the anchors measured on them; a single
    :class:`ScreeningStage` carries its cost), ``anchor_errors`` those anchors' share of
    the error (:class:`~paretomerge.search.claims.AnchorErrors`), ``None`` if not known."""

    objective: Objective
    anchor_errors: AnchorErrors | None = None


@dataclass
class OptimizeResult:
    """Every evaluation of a search, in order, and the Pareto set it reports.

    Attributes:
        X: ``(n, dim)`` every point evaluated, search then validation evaluations
            (``n = budget + validation_budget`` without a cost budget).
        Y: ``(n, m)`` the raw values the objective returned for them.
        Yvar: ``(n, m)`` their variances when the objective returned them, else ``None``.
        is_validation: ``(n,)`` which evaluations were validations.
        held_out: ``(n,)`` which were validations on the held-out questions (their ``Y``
            normalised by the held-out anchors).
        pareto_X: ``(k, dim)`` the reported front: the evaluated points whose estimated
            values are non-dominated (see :mod:`paretomerge.search.estimates`), best
            first objective first.
        pareto_Y: ``(k, m)`` their values: a point's held-out validations pooled where it
            has some (``pareto_held_out``), else the surrogate's posterior mean given
            every evaluation (a point's repeated evaluations pooled), or for a strategy
            with no surrogate the pooled observations.
        pareto_Y_std: ``(k, m)`` their standard deviations (NaN when no variance is
            known); the interval of each value is
            :func:`~paretomerge.search.claims.point_interval`.
        pareto_held_out: ``(k,)`` which values are held-out validations'.
        pareto_probability: ``(k,)`` each point's posterior probability of being
            non-dominated among the evaluated points.
        hypervolume: ``(b,)`` the estimate of the true hypervolume of the reported front
            after each batch (:func:`~paretomerge.search.claims.hypervolume_claim`: the
            hypervolume of its values less their bias).
        hypervolume_interval: ``(low, high)`` the 90% interval of the last one.
        hypervolume_after: ``(b,)`` the number of evaluations after which each was taken.
        stopped_after: ``(n,)`` the screening stage each evaluation stopped after (its
            last stage: evaluated in full; 0 for an objective that is not staged).
        screened: ``(n,)`` which evaluations a screener stopped early.
        cost: ``(n,)`` what each evaluation cost, its stages up to the one it stopped
            after (a staged objective's ``cost``), else ``None``.
        cost_spent: their sum (what a cost budget counts), ``None`` without costs.
        proposal_seconds: the wall time of each ``ask``, initial design and validation
            included.
        state: the optimiser's state (:meth:`AskTellOptimizer.state_dict`).
    """

    X: np.ndarray
    Y: np.ndarray
    Yvar: np.ndarray | None
    is_validation: np.ndarray
    held_out: np.ndarray
    pareto_X: np.ndarray
    pareto_Y: np.ndarray
    pareto_Y_std: np.ndarray
    pareto_held_out: np.ndarray
    pareto_probability: np.ndarray
    hypervolume: np.ndarray
    hypervolume_interval: tuple[float, float]
    hypervolume_after: np.ndarray
    stopped_after: np.ndarray
    screened: np.ndarray
    cost: np.ndarray | None
    proposal_seconds: list[float] = field(default_factory=list)
    state: dict = field(default_factory=dict)

    @property
    def cost_spent(self) -> float | None:
        return None if self.cost is None else float(self.cost.sum())


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
    baselines: Sequence[Sequence[float]] | None = None,
    screener: Screener | None = None,
    anchor_errors: AnchorErrors | None = None,
    held_out: HeldOutValidation | None = None,
    cost_budget: float | CostBudget | None = None,
) -> OptimizeResult:
    """Search the Pareto set of ``objective`` over ``[0, 1]^dim`` (all objectives maximised).

    The search spends ``budget`` evaluations, then ``validation_budget`` more on the
    points that may be on the front (:meth:`AskTellOptimizer.ask_validation`), in
    batches of ``batch_size``. With a ``cost_budget`` it spends that instead, by the
    controller's rule (:mod:`paretomerge.search.cost_budget`): a batch holds the
    candidates that fit, the validations included, and ``budget`` is only the horizon
    the strategy plans by. The front it reports is chosen by the surrogate's posterior
    at the evaluated points, never by the raw values, and valued by it, or with
    ``held_out`` by the validations on the held-out questions, which never choose
    (:meth:`AskTellOptimizer.front`).

    A staged objective returns a candidate's estimates after each screening stage. With
    a ``screener``, each search candidate of a batch stops after the first stage at which
    :meth:`Screener.screen` says so, judged on the optimiser as it was when the batch was
    asked, and is told that stage's values as screened; validations are evaluated in
    full. Without one, every candidate is told its last stage.

    Args:
        objective: ``f(X)`` with ``X`` ``(q, dim)`` in ``[0, 1]^dim`` returning ``Y``
            ``(q, m)`` finite values, or ``(Y, Yvar)`` with ``Yvar`` ``(q, m)`` the
            variances of those values (the squared standard errors of the objective's own
            estimates), or a list of :class:`ScreeningStage` (staged). With ``Yvar``
            every Bayesian strategy fits with that noise (heteroscedastic); without, it
            infers one noise level per objective.
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
        baselines: ``(k, m)`` values the user has without any search (a merge's base and
            expert); the front leaves out what they match or beat, and a screener
            compares with them.
        screener: stops candidates of a staged objective early (see above).
        anchor_errors: the anchors' share of the objective's errors, common to every
            value (:class:`~paretomerge.search.claims.AnchorErrors`): the hypervolume's
            interval draws it once for all points. ``None``: every error is a point's own.
        held_out: validate on held-out questions (:class:`HeldOutValidation`) instead of
            evaluating ``objective`` again.
        cost_budget: what the search and its validations may spend, in the unit of the
            staged objective's ``cost`` (a number, or a :class:`CostBudget` that says
            what a validation costs relative to a candidate); the objective must report
            costs.

    Raises:
        ValueError: for an invalid configuration.
        ObjectiveError: when ``objective`` returns the wrong shape or non-finite values;
            its ``partial`` attribute holds every evaluation finished before.
    """
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
        baselines=tuple(
            tuple(float(v) for v in b) for b in (() if baselines is None else baselines)
        ),
    )
    return search_in_process(
        objective,
        config,
        batch_size=batch_size,
        validation_budget=validation_budget,
        screener=screener,
        anchor_errors=anchor_errors,
        held_out=held_out,
        cost_budget=CostBudget(cost_budget)
        if isinstance(cost_budget, int | float)
        else cost_budget,
    )


def search_in_process(
    objective: Objective,
    config: SearchConfig,
    *,
    batch_size: int,
    validation_budget: int = 0,
    screener: Screener | None = None,
    anchor_errors: AnchorErrors | None = None,
    held_out: HeldOutValidation | None = None,
    cost_budget: CostBudget | None = None,
) -> OptimizeResult:
    """The loop behind :func:`optimize`, for a ready :class:`SearchConfig` (the one a
    run's controller builds, say): ``config.initial_points`` first, then batches of
    ``batch_size`` until ``config.budget`` (or, with a ``cost_budget``, while they fit),
    then ``validation_budget`` validations (those that fit)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if validation_budget < 0:
        raise ValueError(f"validation_budget must be >= 0, got {validation_budget}")
    optimizer = AskTellOptimizer(config)
    search = _SearchRecord((anchor_errors, None if held_out is None else held_out.anchor_errors))
    validated, searching = 0, True
    while True:
        started = time.perf_counter()
        if searching:
            most = config.initial_points if not optimizer.trials else batch_size
            asked = optimizer.num_search_trials
            q = search.candidates_that_fit(
                most, asked, config.budget, cost_budget, validation_budget
            )
            searching = q > 0
        if searching:
            trials = optimizer.ask(q)
        else:
            q = search.validations_that_fit(batch_size, validated, validation_budget, cost_budget)
            if q == 0:
                break
            trials = optimizer.ask_validation(q, held_out=held_out is not None)
            validated += len(trials)
        search.proposal_seconds.append(time.perf_counter() - started)
        X = np.array([t.x for t in trials])
        on_held_out = held_out is not None and trials[0].kind == "validation"
        evaluate = held_out.objective if on_held_out else objective
        stages, problem = _objective_stages(evaluate(X), X, config.num_objectives)
        if problem:
            raise ObjectiveError(problem, search.result(optimizer))
        last = len(stages) - 1
        stopped = [last] * len(trials)
        if screener is not None and stages[0].Yvar is not None:
            for i, trial in enumerate(trials):
                if trial.kind == "search":
                    stopped[i] = next(
                        (
                            k
                            for k in range(last)
                            if screener.screen(optimizer, trial, stages[k].Y[i], stages[k].Yvar[i])
                        ),
                        last,
                    )
        for i, (trial, k) in enumerate(zip(trials, stopped, strict=True)):
            stage = stages[k]
            yvar = None if stage.Yvar is None else stage.Yvar[i]
            optimizer.tell(
                trial,
                stage.Y[i],
                yvar,
                screened=k < last,
                y_by_benchmark=None if stage.Y_by_benchmark is None else stage.Y_by_benchmark[i],
                yvar_by_benchmark=None
                if stage.Yvar_by_benchmark is None
                else stage.Yvar_by_benchmark[i],
            )
            cost = None if stage.cost is None else float(stage.cost[i])
            if cost is None and cost_budget is not None:
                raise ObjectiveError(
                    "a cost budget needs the objective's costs (ScreeningStage.cost)",
                    search.result(optimizer),
                )
            search.record(k, last, cost, validation=trial.kind == "validation")
        search.record_front(optimizer)
    return search.result(optimizer)


@dataclass
class _SearchRecord:
    """What ``optimize()`` keeps besides the optimiser: per evaluation the screening stage
    it stopped after and its cost; per batch the proposal's seconds and the reported
    front's hypervolume."""

    anchor_errors: tuple[AnchorErrors | None, AnchorErrors | None]
    stopped_after: list[int] = field(default_factory=list)
    screened: list[bool] = field(default_factory=list)
    cost: list[float | None] = field(default_factory=list)
    validation: list[bool] = field(default_factory=list)
    proposal_seconds: list[float] = field(default_factory=list)
    hypervolume: list[float] = field(default_factory=list)
    hypervolume_interval: tuple[float, float] = (0.0, 0.0)
    hypervolume_after: list[int] = field(default_factory=list)

    def record(
        self, stopped_after: int, last: int, cost: float | None, validation: bool = False
    ) -> None:
        self.stopped_after.append(stopped_after)
        self.screened.append(stopped_after < last)
        self.cost.append(cost)
        self.validation.append(validation)

    def candidates_that_fit(
        self,
        most: int,
        asked: int,
        budget: int,
        cost_budget: CostBudget | None,
        validations: int,
    ) -> int:
        """How many of at most ``most`` candidates the next batch holds, ``asked`` asked
        so far and ``validations`` to come: started one by one, as the controller starts
        them, while the rule allows (:func:`allows_candidate`)."""
        k = 0
        while k < most and allows_candidate(
            asked + k, budget, cost_budget, self.ledger(cost_budget, validations, candidates=k)
        ):
            k += 1
        return k

    def validations_that_fit(
        self, most: int, asked: int, budget: int, cost_budget: CostBudget | None
    ) -> int:
        """How many of at most ``most`` validations the next batch holds, ``asked`` of
        ``budget`` asked so far (:func:`allows_validation`)."""
        k = 0
        while k < most and allows_validation(
            asked + k, budget, cost_budget, self.ledger(cost_budget, 0, validations=k)
        ):
            k += 1
        return k

    def ledger(
        self,
        cost_budget: CostBudget | None,
        validations_left: int,
        candidates: int = 0,
        validations: int = 0,
    ) -> CostLedger | None:
        """What was spent, for ``cost_budget`` (``None`` without one), with ``candidates``
        or ``validations`` of a batch started before the next and ``validations_left``
        to come after the search."""
        if cost_budget is None:
            return None
        rows = list(zip(self.cost, self.screened, self.validation, strict=True))
        return CostLedger(
            spent=sum(c for c, _, _ in rows),
            candidates=[c for c, _, v in rows if not v],
            full=[c for c, s, v in rows if not v and not s],
            validations=[c for c, _, v in rows if v],
            running_candidates=candidates,
            running_validations=validations,
            validations_left=validations_left,
        )

    def record_front(self, optimizer: AskTellOptimizer) -> None:
        front = optimizer.front()
        m = optimizer.config.num_objectives
        claim = hypervolume_claim(
            np.array([p.mean for p in front]).reshape(-1, m),
            np.array([p.std for p in front]).reshape(-1, m),
            optimizer.config.ref_point,
            self.anchor_errors,
            scale=np.array([p.held_out for p in front], dtype=int),
            seed=len(self.stopped_after),  # the evaluations so far, as the controller seeds it
        )
        self.hypervolume.append(claim.value)
        self.hypervolume_interval = (claim.low, claim.high)
        self.hypervolume_after.append(len(self.stopped_after))

    def result(self, optimizer: AskTellOptimizer) -> OptimizeResult:
        completed = [t for t in optimizer.trials if t.status == "completed"]
        front = optimizer.front() if completed else []
        m, d = optimizer.config.num_objectives, optimizer.config.dim
        known_cost = self.cost and all(c is not None for c in self.cost)
        return OptimizeResult(
            X=optimizer.X,
            Y=optimizer.Y,
            Yvar=optimizer.Yvar,
            is_validation=np.array([t.kind == "validation" for t in completed], dtype=bool),
            held_out=np.array([t.held_out for t in completed], dtype=bool),
            pareto_X=np.array([p.x for p in front]).reshape(-1, d),
            pareto_Y=np.array([p.mean for p in front]).reshape(-1, m),
            pareto_Y_std=np.array([p.std for p in front]).reshape(-1, m),
            pareto_held_out=np.array([p.held_out for p in front], dtype=bool),
            pareto_probability=np.array([p.prob_non_dominated for p in front]),
            hypervolume=np.array(self.hypervolume),
            hypervolume_interval=self.hypervolume_interval,
            hypervolume_after=np.array(self.hypervolume_after, dtype=int),
            stopped_after=np.array(self.stopped_after, dtype=int),
            screened=np.array(self.screened, dtype=bool),
            cost=np.array(self.cost, dtype=float) if known_cost else None,
            proposal_seconds=self.proposal_seconds,
            state=optimizer.state_dict(),
        )


def _objective_stages(
    output, X: np.ndarray, num_objectives: int
) -> tuple[list[ScreeningStage], str | None]:
    """The screening stages of what the objective returned for ``X`` (one, unstaged, for
    ``Y`` or ``(Y, Yvar)``) and what is wrong with them, if anything."""
    if isinstance(output, Sequence) and output and isinstance(output[0], ScreeningStage):
        stages = list(output)
    else:
        stages = [ScreeningStage(*_as_values(output))]
    for k, stage in enumerate(stages):
        problem = _values_problem(stage.Y, stage.Yvar, X, num_objectives) or _by_benchmark(stage)
        if problem is None and stage.cost is not None and np.shape(stage.cost) != (len(X),):
            problem = f"objective returned cost of shape {np.shape(stage.cost)} for {len(X)} points"
        if problem:
            return stages, (f"screening stage {k}: {problem}" if len(stages) > 1 else problem)
    return stages, None


def _as_values(output) -> tuple[np.ndarray, np.ndarray | None]:
    Y, Yvar = output if isinstance(output, tuple) and len(output) == 2 else (output, None)
    Y = np.asarray(Y, dtype=float)
    return Y, None if Yvar is None else np.asarray(Yvar, dtype=float)


def _by_benchmark(stage: ScreeningStage) -> str | None:
    """What is wrong with ``stage``'s values by benchmark, if it has them."""
    values, variances = (
        None if a is None else np.asarray(a, dtype=float)
        for a in (stage.Y_by_benchmark, stage.Yvar_by_benchmark)
    )
    problem = by_benchmark_problem(np.asarray(stage.Y, dtype=float), values, variances)
    return problem and f"objective returned {problem}"


def _values_problem(
    Y: np.ndarray, Yvar: np.ndarray | None, X: np.ndarray, num_objectives: int
) -> str | None:
    """What is wrong with the values ``Y`` and variances ``Yvar`` returned for ``X``."""
    expected = (len(X), num_objectives)
    for name, values in (("values", Y), ("variances", Yvar)):
        if values is None:
            continue
        if values.shape != expected:
            problem = f"objective returned {name} of shape {values.shape} for {len(X)} points"
            return f"{problem}, expected {expected}"
        usable = np.isfinite(values) & (values >= 0 if name == "variances" else True)
        bad = np.flatnonzero(~np.all(usable, axis=1))
        if len(bad):
            i = int(bad[0])
            kind = "non-finite" if name == "values" else "negative or non-finite"
            return (
                f"objective returned {kind} {name} {values[i].tolist()} for row {i} of the "
                f"batch (x={X[i].round(4).tolist()}); {len(bad)} of {len(X)} rows are unusable"
            )
    return None
