"""Ask/tell multi-objective optimiser with pending points (AP-BMM's asynchronous scheme).

A free worker asks for one candidate and gets it at once: every point still being
evaluated is passed to qLogNEHVI as pending (``X_pending``), so the new point is chosen
for the improvement it adds beyond what the running ones are expected to bring. Failed
points stay pending for good: they are no data for the model, and a proposal next to one
earns no credit for repeating it.

Every evaluation is a :class:`Trial` with an id, as in Optuna: :meth:`AskTellOptimizer.ask`
returns trials, :meth:`~AskTellOptimizer.tell` takes one (or its id) with the values and,
when known, their variances; :meth:`~AskTellOptimizer.add` records a point evaluated
elsewhere (an anchor, an imported result). Three kinds of trial:

- ``search``: proposed by :meth:`~AskTellOptimizer.ask`; what a search budget counts.
- ``validation``: a second evaluation of a point that may be on the front, proposed by
  :meth:`~AskTellOptimizer.ask_validation` once the search budget is spent; counted apart.
- ``added``: told by :meth:`~AskTellOptimizer.add`; data for the model, counted nowhere.

The front is never the raw non-dominated values (the lucky draws of a noisy objective):
:meth:`~AskTellOptimizer.estimates` gives the surrogate's posterior at every evaluated
point, all its evaluations pooled, and :meth:`~AskTellOptimizer.front` the points whose
posterior means are non-dominated.

The whole state is plain JSON (:meth:`AskTellOptimizer.state_dict`). Proposals and
estimates are deterministic functions of that state, so a restored optimiser proposes
exactly what the original would have. States of version 1 (before trial ids) load too.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import torch
from botorch.models.model import Model

from paretomerge.search.claims import pool_repeated_questions
from paretomerge.search.config import SearchConfig
from paretomerge.search.estimates import (
    FrontPoint,
    PointEstimates,
    observed_estimates,
    posterior_estimates,
    posterior_moments,
)
from paretomerge.search.front import reported_front
from paretomerge.search.space import Grouping
from paretomerge.search.strategies import STRATEGIES, ProposalContext, sobol_points

STATE_VERSION = 2
# A model needs at least this many finished evaluations; until then the design continues.
MIN_OBSERVATIONS = 2
# Candidates closer than this (max-norm, search space) to a known point are replaced.
DUPLICATE_TOLERANCE = 1e-6
# The surrogates here are small (n <= a few hundred): one thread avoids the thread-pool
# overhead that made a GP fit ~5x slower with two threads on a two-core machine.
SEARCH_THREADS = 1
# A point is worth validating while its posterior probability of being non-dominated is at
# least this.
VALIDATION_THRESHOLD = 0.1

TrialStatus = Literal["pending", "completed", "failed"]
TrialKind = Literal["search", "validation", "added"]


@dataclass
class Trial:
    """One evaluation of a decision vector ``x`` ``(dim,)`` and what became of it.

    ``id`` is the trial's position in the optimiser (0, 1, ...); ``y`` and ``yvar``
    ``(m,)`` the objective values and their variances (``None`` when unknown);
    ``y_by_benchmark`` and ``yvar_by_benchmark`` ``(m, S)`` each objective's value on
    each of ``S`` benchmarks and their variances, when the objectives are their means
    and the evaluation told them (``None`` otherwise);
    ``validates`` the id of the trial whose point a validation trial evaluates again;
    ``screened`` whether its evaluation stopped early (part of the questions: data for the
    model, never reported unless validated); ``held_out`` whether a validation asks the
    questions held out of the search (its values, normalised by other anchors, value the
    point and never enter a fit, nor move one: the fits' seeds do not count it).
    """

    id: int
    x: list[float]
    kind: TrialKind = "search"
    status: TrialStatus = "pending"
    y: list[float] | None = None
    yvar: list[float] | None = None
    reason: str | None = None
    validates: int | None = None
    screened: bool = False
    held_out: bool = False
    y_by_benchmark: list[list[float]] | None = None
    yvar_by_benchmark: list[list[float]] | None = None

    @property
    def point_id(self) -> int:
        """The trial that first evaluated this point: its own id, or the validated one."""
        return self.id if self.validates is None else self.validates


@dataclass(frozen=True)
class _Fit:
    """The estimates of one state of the optimiser: its key (``trials`` asked, of which
    ``completed``), the surrogate behind them (``None`` without one) and the search space
    it was fitted in."""

    trials: int
    completed: int
    estimates: PointEstimates
    model: Model | None
    grouping: Grouping


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class AskTellOptimizer:
    """Propose decision vectors in ``[0, 1]^dim`` and learn from their objective values.

    Objectives are maximised. :meth:`ask` returns trials (pending until told); then
    :meth:`tell` each result, or :meth:`tell_failed` if its evaluation failed.
    """

    def __init__(
        self,
        config: SearchConfig,
        trials: Sequence[Trial] = (),
        warm_start: dict[str, list] | None = None,
    ):
        self.config = config
        self.strategy = STRATEGIES[config.strategy](config)
        self.trials: list[Trial] = list(trials)
        # The surrogate's last hyperparameters: part of the state, so that a restored
        # optimiser starts its next fit where the original would have.
        self.warm_start: dict[str, list] = dict(warm_start or {})
        self._fit: _Fit | None = None  # the last estimates, cached

    def set_budget(self, budget: int) -> None:
        """Search ``budget`` trials in all (the run's budget, edited while it runs): the
        configuration, and so the state, record it, and a strategy that plans by it
        (coarse-to-fine's phases) follows it. A budget below the initial design is
        recorded as the design's size (the search stops there either way)."""
        budget = max(budget, self.config.initial_points)
        if budget != self.config.budget:
            self.config = replace(self.config, budget=budget)
            self.strategy = STRATEGIES[self.config.strategy](self.config)
            self._fit = None  # fitted in the search space of the old budget

    def set_baselines(self, baselines: Sequence[Sequence[float]]) -> None:
        """Report and screen against ``baselines`` ``(k, m)`` (see
        :attr:`SearchConfig.baselines`); the proposals do not depend on them."""
        baselines = tuple(tuple(float(v) for v in b) for b in baselines)
        if baselines != self.config.baselines:
            self.config = replace(self.config, baselines=baselines)

    # --- asking ---------------------------------------------------------------------

    def ask(self, n: int = 1) -> list[Trial]:
        """Propose ``n`` search trials; they are pending until told.

        The first ``initial_points`` search trials are the initial design: the user's
        initial solutions, then scrambled Sobol points. After that the strategy proposes,
        with every pending and failed point passed as pending.

        Returns:
            ``n`` trials (copies: tell them back by trial or id), ``x`` of ``dim`` values.
        """
        if n < 1:
            raise ValueError(f"ask(n) needs n >= 1, got {n}")
        searched = self.num_search_trials
        design_count = max(0, min(n, self.config.initial_points - searched))
        if self._num_completed() < MIN_OBSERVATIONS:
            design_count = n  # no model yet: the design sequence goes on
        grouping = self._grouping()
        X = self._design_points(searched, design_count)
        if n > design_count:
            with _torch_threads(SEARCH_THREADS):
                Z = self._propose(also_pending=grouping.reduce(X), q=n - design_count)
            X = np.vstack([X, grouping.expand(np.clip(Z, 0.0, 1.0))])
        return [self._new_trial(row, "search") for row in X]

    def ask_validation(self, n: int = 1, held_out: bool = False) -> list[Trial]:
        """Propose ``n`` validation trials: evaluations again of the points that may be on
        the front, once the search is over.

        Candidates are the points whose posterior probability of being non-dominated is
        at least ``VALIDATION_THRESHOLD`` (the estimated front always among them). They
        are taken fewest evaluations first (pending validations included), then screened
        points on the estimated front first (only a full evaluation can report one), then
        most likely on the front first, so that ``n`` trials spread over the candidates
        before any point is validated twice. A validation trial's value is pooled with the
        point's other evaluations (:meth:`estimates`), or, ``held_out`` (asked on the
        questions held out of the search), values the point apart (:meth:`front`).
        """
        if n < 1:
            raise ValueError(f"ask_validation(n) needs n >= 1, got {n}")
        estimates = self.estimates()
        candidates = np.flatnonzero(
            (estimates.prob_non_dominated >= VALIDATION_THRESHOLD) | estimates.front_mask
        )
        load = {int(estimates.trial_ids[i]): int(estimates.num_observations[i]) for i in candidates}
        for trial in self.trials:
            if trial.kind == "validation" and (trial.status == "pending" or trial.held_out):
                load[trial.validates] = load.get(trial.validates, 0) + 1
        prob = dict(zip(estimates.trial_ids.tolist(), estimates.prob_non_dominated, strict=True))
        unreported = {  # screened, never evaluated in full, on the estimated front
            int(estimates.trial_ids[i])
            for i in np.flatnonzero(estimates.front_mask)
            if self.trials[int(estimates.trial_ids[i])].screened
            and estimates.num_observations[i] == 1
        }
        trials = []
        for _ in range(n):
            point = min(load, key=lambda i: (load[i], i not in unreported, -prob[i], i))
            load[point] += 1
            x = np.asarray(self.trials[point].x)
            trials.append(self._new_trial(x, "validation", validates=point, held_out=held_out))
        return trials

    def _new_trial(
        self, x: np.ndarray, kind: TrialKind, validates: int | None = None, held_out: bool = False
    ) -> Trial:
        trial = Trial(
            id=len(self.trials),
            x=np.asarray(x, dtype=float).tolist(),
            kind=kind,
            validates=validates,
            held_out=held_out,
        )
        self.trials.append(trial)
        return replace(trial, x=list(trial.x))

    def _design_points(self, position: int, count: int) -> np.ndarray:
        """Initial-design decision vectors for search trials ``position ..``: the user's
        solutions as given, then Sobol points of the strategy's search space."""
        solutions = self.config.initial_solutions
        grouping = self._grouping()
        points = [np.zeros((0, self.config.dim))]
        for i in range(position, position + count):
            if i < len(solutions):
                points.append(np.asarray(solutions[i])[None])
            else:
                j = i - len(solutions)
                points.append(
                    grouping.expand(sobol_points(grouping.search_dim, self.config.seed, j, 1))
                )
        return np.vstack(points)

    def _grouping(self) -> Grouping:
        """The strategy's search space now (a strategy may refine it as the search goes)."""
        return self.strategy.grouping_at(self.num_search_trials)

    def _propose(self, also_pending: np.ndarray, q: int) -> np.ndarray:
        grouping = self._grouping()
        waiting = [t.x for t in self.trials if t.status != "completed"]
        X_pending = np.vstack(
            [grouping.reduce(np.array(waiting).reshape(-1, self.config.dim)), also_pending]
        )
        position = self.num_search_trials + len(also_pending)
        seed = self._seed(position)
        context = self._context(X_pending, q, position, seed, self.warm_start)
        with torch.random.fork_rng():
            torch.manual_seed(seed)  # a fit that fails retries from random restarts
            candidates = self.strategy.propose(context)
        return self._replace_duplicates(candidates, np.vstack([context.X, X_pending]), seed)

    def _context(
        self, X_pending: np.ndarray, q: int, position: int, seed: int, warm_start: dict
    ) -> ProposalContext:
        """The finished evaluations, in the strategy's search space."""
        completed = self._completed()
        return ProposalContext(
            X=self._grouping().reduce(np.array([t.x for t in completed])),
            Y=np.array([t.y for t in completed]),
            Yvar=self._known_variances(completed),
            by_benchmark=self._by_benchmark(completed),
            fully_evaluated=np.array([not t.screened for t in completed], dtype=bool),
            X_pending=X_pending,
            q=q,
            position=position,
            seed=seed,
            warm_start=warm_start,
        )

    def _seed(self, *position: int) -> int:
        state = np.random.SeedSequence([self.config.seed, *position]).generate_state(1)
        return int(state[0])

    @staticmethod
    def _replace_duplicates(candidates: np.ndarray, known: np.ndarray, seed: int) -> np.ndarray:
        """Replace candidates that repeat a known point, or each other, by uniform points."""
        rng = np.random.default_rng(seed)
        out = candidates.copy()
        for i in range(len(out)):
            others = np.vstack([known, out[:i]])
            while len(others) and np.min(np.abs(others - out[i]).max(axis=1)) < DUPLICATE_TOLERANCE:
                out[i] = rng.random(out.shape[1])
        return out

    # --- telling --------------------------------------------------------------------

    def tell(
        self,
        trial: Trial | int,
        y: Sequence[float],
        yvar: Sequence[float] | None = None,
        screened: bool = False,
        y_by_benchmark: Sequence[Sequence[float]] | None = None,
        yvar_by_benchmark: Sequence[Sequence[float]] | None = None,
    ) -> None:
        """Record the objective values ``y`` ``(m,)`` of a pending trial (or its id), with
        their variances ``yvar`` ``(m,)`` when known; ``screened`` when the evaluation
        stopped early (its larger variance says how much less it knows). Objectives that
        are means over benchmarks may come with each benchmark's values
        ``y_by_benchmark`` ``(m, S)`` (their mean over ``S`` is ``y``) and variances
        ``yvar_by_benchmark``.

        The surrogates fit with the known variances when every finished evaluation has
        them, and infer one noise level per objective otherwise; a Gaussian-process
        strategy models each benchmark when every finished evaluation told them
        (:class:`~paretomerge.search.surrogates.BenchmarkMeanModel`).
        """
        pending = self._pending(trial)
        values, variances = self._check_values(y, yvar, pending.x)
        by_benchmark = self._check_by_benchmark(values, y_by_benchmark, yvar_by_benchmark)
        pending.y, pending.yvar = values, variances
        pending.y_by_benchmark, pending.yvar_by_benchmark = by_benchmark
        pending.status, pending.screened = "completed", screened

    def tell_failed(self, trial: Trial | int, reason: str) -> None:
        """Record that a pending trial's evaluation failed, and why. It stays pending for
        the model."""
        pending = self._pending(trial)
        pending.status, pending.reason = "failed", str(reason)

    def retry(self, trial: Trial | int) -> None:
        """Evaluate a failed trial again (its cause fixed): it is pending once more."""
        trial_id = trial.id if isinstance(trial, Trial) else int(trial)
        found = self.trials[trial_id]
        if found.status != "failed":
            raise ValueError(f"trial {trial_id} is {found.status}; only a failed one is retried")
        found.status, found.reason = "pending", None

    def add(
        self, x: Sequence[float], y: Sequence[float], yvar: Sequence[float] | None = None
    ) -> Trial:
        """Record a point evaluated elsewhere (an anchor, an imported result): data for the
        model, counted in no budget. Returns its trial."""
        x_arr = self._check_x(x)
        values, variances = self._check_values(y, yvar, x_arr.tolist())
        trial = Trial(
            id=len(self.trials),
            x=x_arr.tolist(),
            kind="added",
            status="completed",
            y=values,
            yvar=variances,
        )
        self.trials.append(trial)
        return replace(trial, x=list(trial.x))

    def _pending(self, trial: Trial | int) -> Trial:
        trial_id = trial.id if isinstance(trial, Trial) else int(trial)
        if not 0 <= trial_id < len(self.trials):
            raise ValueError(f"no trial {trial_id}: the trials are 0..{len(self.trials) - 1}")
        found = self.trials[trial_id]
        if found.status != "pending":
            raise ValueError(f"trial {trial_id} is already {found.status}; a trial is told once")
        return found

    def _check_x(self, x: Sequence[float]) -> np.ndarray:
        x_arr = np.asarray(x, dtype=float)
        if x_arr.shape != (self.config.dim,):
            raise ValueError(
                f"expected a decision vector of {self.config.dim} values, got shape {x_arr.shape}"
            )
        if not np.all(np.isfinite(x_arr)):
            raise ValueError(f"decision vector must be finite, got {x_arr.tolist()}")
        return x_arr

    def _check_values(
        self, y: Sequence[float], yvar: Sequence[float] | None, x: list[float]
    ) -> tuple[list[float], list[float] | None]:
        m = self.config.num_objectives
        y_arr = np.asarray(y, dtype=float)
        if y_arr.shape != (m,):
            raise ValueError(f"expected {m} objective values, got shape {y_arr.shape}")
        if not np.all(np.isfinite(y_arr)):
            raise ValueError(
                f"objective values must be finite, got {y_arr.tolist()} for x={x}; "
                "record a failed evaluation with tell_failed(trial, reason)"
            )
        if yvar is None:
            return y_arr.tolist(), None
        var = np.asarray(yvar, dtype=float)
        if var.shape != (m,) or not np.all(np.isfinite(var)) or np.any(var < 0):
            raise ValueError(
                f"expected {m} finite, non-negative variances, got {np.asarray(yvar).tolist()}"
            )
        return y_arr.tolist(), var.tolist()

    def _check_by_benchmark(
        self,
        y: list[float],
        values: Sequence[Sequence[float]] | None,
        variances: Sequence[Sequence[float]] | None,
    ) -> tuple[list[list[float]] | None, list[list[float]] | None]:
        if values is None and variances is None:
            return None, None
        told = next((t.y_by_benchmark for t in self.trials if t.y_by_benchmark is not None), None)
        problem = by_benchmark_problem(
            np.asarray([y]),
            None if values is None else np.asarray([values], dtype=float),
            None if variances is None else np.asarray([variances], dtype=float),
            benchmarks=None if told is None else np.shape(told)[1],
            names=("y_by_benchmark", "yvar_by_benchmark"),
        )
        if problem:
            raise ValueError(problem)
        return np.asarray(values, dtype=float).tolist(), np.asarray(variances, dtype=float).tolist()

    # --- estimates ------------------------------------------------------------------

    def estimates(self) -> PointEstimates:
        """The surrogate's posterior at every evaluated point, each point's evaluations
        (search or added, then validations) pooled; the observations themselves for a
        strategy with no surrogate (see :mod:`paretomerge.search.estimates`).

        The fit starts from the last proposal's hyperparameters without changing them,
        so asking for estimates never changes what the optimiser proposes next.
        """
        return self._estimated()

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The surrogate's posterior of the latent objectives at points ``X`` ``(n, dim)``
        given every finished evaluation (the model of :meth:`estimates`): ``(mean, std)``,
        each ``(n, m)``. ``None`` with no surrogate (a strategy without one, or fewer than
        ``MIN_OBSERVATIONS`` evaluations): nothing is known at an unevaluated point."""
        surrogate = self._surrogate_at(X)
        if surrogate is None:
            return None
        with _torch_threads(SEARCH_THREADS):
            return posterior_moments(*surrogate)

    def finished_points(self) -> tuple[np.ndarray, np.ndarray]:
        """The points evaluated in full, ``(k, dim)``, and their estimates ``(k, m)`` (from
        the fit :meth:`predict` uses): what a partly evaluated candidate is compared
        with when it is screened, besides the baselines."""
        if not self._num_completed():
            m = self.config.num_objectives
            return np.zeros((0, self.config.dim)), np.zeros((0, m))
        estimates = self._latest_fit().estimates
        full = estimates.fully_evaluated
        return estimates.X[full], estimates.mean[full]

    def posterior_draws(self, X: np.ndarray, num_samples: int, seed: int) -> np.ndarray | None:
        """Joint draws ``(S, n, m)`` of the latent objectives at ``X`` ``(n, dim)`` from the
        posterior given every finished evaluation (the model of :meth:`predict`; a fully
        Bayesian one's mixture, ``S`` a multiple of ``num_samples``), seeded by ``seed``;
        ``None`` with no surrogate."""
        surrogate = self._surrogate_at(X)
        if surrogate is None:
            return None
        model, Z = surrogate
        with _torch_threads(SEARCH_THREADS), torch.no_grad(), torch.random.fork_rng():
            torch.manual_seed(seed)
            posterior = model.posterior(torch.as_tensor(Z, dtype=torch.double))
            samples = posterior.rsample(torch.Size([num_samples]))
        n, m = samples.shape[-2:]
        return samples.reshape(-1, n, m).numpy()

    def _surrogate_at(self, X: np.ndarray) -> tuple[Model, np.ndarray] | None:
        """The latest fit's surrogate and ``X`` ``(n, dim)`` in its search space, or
        ``None`` when there is no surrogate (a strategy without one, or too few
        evaluations)."""
        if self._num_completed() < MIN_OBSERVATIONS:
            return None
        fit = self._latest_fit()
        if fit.model is None:
            return None
        return fit.model, fit.grouping.reduce(
            np.asarray(X, dtype=float).reshape(-1, self.config.dim)
        )

    def _latest_fit(self) -> _Fit:
        """The last fit while only pending trials were added since (an ask is no new data)
        and the search space holds; else a new one."""
        fit = self._fit
        if (
            fit is None
            or fit.completed != self._num_completed()
            or fit.grouping != self._grouping()
        ):
            self._estimated()
        return self._fit

    def _estimated(self) -> PointEstimates:
        """:meth:`estimates`, fitted once per state (kept in ``self._fit``)."""
        # Held-out validations are no data for the fit, and do not move its seed either.
        key = (sum(not t.held_out for t in self.trials), self._num_completed())
        if self._fit is not None and (self._fit.trials, self._fit.completed) == key:
            return self._fit.estimates
        completed = self._completed()
        points = [t for t in completed if t.kind != "validation"]
        if not points:
            raise ValueError("no finished evaluation to estimate from")
        members = {p.id: [t for t in completed if t.point_id == p.id] for p in points}
        seed = self._seed(*key)
        model = None
        if len(completed) >= MIN_OBSERVATIONS:
            nothing_pending = np.zeros((0, self._grouping().search_dim))
            warm_start = copy.deepcopy(self.warm_start)
            context = self._context(nothing_pending, 0, key[0], seed, warm_start)
            with _torch_threads(SEARCH_THREADS), torch.random.fork_rng():
                torch.manual_seed(seed)
                model = self.strategy.surrogate(context)
        X = np.array([p.x for p in points])
        if model is not None:
            Z = self._grouping().reduce(X)
            mean, std, prob = posterior_estimates(model, Z, seed)
        else:
            known = self._known_variances(completed) is not None
            mean, std, prob = observed_estimates(
                [np.array([t.y for t in members[p.id]]) for p in points],
                [np.array([t.yvar for t in members[p.id]]) for p in points] if known else None,
                seed,
            )
        estimates = PointEstimates(
            trial_ids=np.array([p.id for p in points]),
            X=X,
            mean=mean,
            std=std,
            prob_non_dominated=prob,
            num_observations=np.array([len(members[p.id]) for p in points]),
            fully_evaluated=np.array([any(not t.screened for t in members[p.id]) for p in points]),
        )
        self._fit = _Fit(*key, estimates, model, self._grouping())
        return estimates

    def front(self) -> list[FrontPoint]:
        """The reported Pareto set, chosen then valued: chosen by the search's estimates
        (:func:`~paretomerge.search.front.reported_front` of the posterior means and
        standard deviations: points evaluated in full, or validated, non-dominated,
        distinguishable from the baselines and from each other), best first objective
        first; each valued by its held-out validations where it has some
        (:func:`~paretomerge.search.claims.pool_repeated_questions`: they share their
        questions), else by its estimate. A validated value never moves a point on or off
        the front."""
        estimates = self.estimates()
        held_out = self._held_out_validations()
        eligible = estimates.fully_evaluated | np.isin(estimates.trial_ids, list(held_out))
        members = reported_front(
            estimates.mean, eligible, np.asarray(self.config.baselines), std=estimates.std
        )
        front = []
        for member in members:
            point = estimates.point(member.index)
            validations = held_out.get(point.trial_id)
            if validations:
                mean, var = pool_repeated_questions(
                    np.array([t.y for t in validations]),
                    self._known_variances(validations),
                )
                std = np.full_like(mean, np.nan) if var is None else np.sqrt(var)
                point = replace(point, mean=mean, std=std, held_out=True)
            front.append(point)
        return front

    def _held_out_validations(self) -> dict[int, list[Trial]]:
        """The finished held-out validations of each point (by its first trial)."""
        validations: dict[int, list[Trial]] = {}
        for trial in self.trials:
            if trial.held_out and trial.status == "completed":
                validations.setdefault(trial.point_id, []).append(trial)
        return validations

    # --- views ----------------------------------------------------------------------

    def _completed(self) -> list[Trial]:
        """The finished evaluations the model fits (held-out validations are not)."""
        return [t for t in self.trials if t.status == "completed" and not t.held_out]

    def _num_completed(self) -> int:
        return len(self._completed())

    @staticmethod
    def _known_variances(trials: list[Trial]) -> np.ndarray | None:
        """``(n, m)`` variances of ``trials``, or ``None`` unless every one has them."""
        if not trials or any(t.yvar is None for t in trials):
            return None
        return np.array([t.yvar for t in trials], dtype=float)

    @staticmethod
    def _by_benchmark(trials: list[Trial]) -> tuple[np.ndarray, np.ndarray] | None:
        """``(n, m, S)`` values and variances of ``trials`` on each benchmark, or ``None``
        unless every one told them, on two benchmarks or more."""
        if not trials or any(t.y_by_benchmark is None for t in trials):
            return None
        values = np.array([t.y_by_benchmark for t in trials], dtype=float)
        if values.shape[-1] < 2:
            return None  # one benchmark: the objectives are its values
        return values, np.array([t.yvar_by_benchmark for t in trials], dtype=float)

    @property
    def num_search_trials(self) -> int:
        """Search trials asked for so far (what a search budget counts)."""
        return sum(t.kind == "search" for t in self.trials)

    @property
    def pending(self) -> np.ndarray:
        """``(p, dim)`` points asked for and not yet told."""
        return self._x_with_status("pending")

    @property
    def failed(self) -> list[tuple[list[float], str]]:
        """Failed points with their reasons."""
        return [(t.x, t.reason or "") for t in self.trials if t.status == "failed"]

    @property
    def X(self) -> np.ndarray:
        """``(n, dim)`` decision vectors of the finished evaluations (every kind, held-out
        validations included), in trial order."""
        return self._x_with_status("completed")

    @property
    def Y(self) -> np.ndarray:
        """``(n, m)`` objective values of the finished evaluations, as observed."""
        ys = [t.y for t in self.trials if t.status == "completed"]
        return np.array(ys, dtype=float).reshape(-1, self.config.num_objectives)

    @property
    def Yvar(self) -> np.ndarray | None:
        """``(n, m)`` their variances, or ``None`` unless every one is known."""
        return self._known_variances([t for t in self.trials if t.status == "completed"])

    def _x_with_status(self, status: TrialStatus) -> np.ndarray:
        xs = [t.x for t in self.trials if t.status == status]
        return np.array(xs, dtype=float).reshape(-1, self.config.dim)

    # --- state ----------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The whole state as JSON-compatible data."""
        return {
            "version": STATE_VERSION,
            "config": self.config.to_dict(),
            "trials": [vars(t).copy() for t in self.trials],
            "warm_start": self.warm_start,
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> AskTellOptimizer:
        """Restore an optimiser from :meth:`state_dict` (any version so far)."""
        version = state.get("version")
        if version == 1:
            state = migrate_state_v1(state)
        elif version != STATE_VERSION:
            raise ValueError(f"unsupported optimiser state version {version!r}")
        config = SearchConfig.from_dict(state["config"])
        return cls(config, [Trial(**t) for t in state["trials"]], state.get("warm_start"))


def by_benchmark_problem(
    Y: np.ndarray,
    values: np.ndarray | None,
    variances: np.ndarray | None,
    benchmarks: int | None = None,
    names: tuple[str, str] = ("Y_by_benchmark", "Yvar_by_benchmark"),
) -> str | None:
    """What is wrong with the values ``(q, m, S)`` and variances ``(q, m, S)`` of ``S``
    benchmarks told with the objectives ``Y`` ``(q, m)``, if anything: both or neither,
    of that shape (``S`` = ``benchmarks`` when earlier evaluations set it), finite,
    variances non-negative, and ``Y`` their means over the benchmarks. ``names``: the
    two as the caller calls them."""
    if values is None and variances is None:
        return None
    if values is None or variances is None:
        return f"{names[0]} and {names[1]} come together: one was given without the other"
    q, m = Y.shape
    count = benchmarks or (values.shape[-1] if values.ndim == 3 else "benchmarks")
    for name, array in zip(names, (values, variances), strict=True):
        if array.ndim != 3 or array.shape[:2] != (q, m) or array.shape[2] != values.shape[2]:
            return f"{name} of shape {array.shape} for {q} points, expected ({q}, {m}, {count})"
        if benchmarks and array.shape[2] != benchmarks:
            return f"{name} of {array.shape[2]} benchmarks, expected {benchmarks} as before"
    bad = np.flatnonzero(
        ~(np.isfinite(values) & np.isfinite(variances) & (variances >= 0)).all(axis=(1, 2))
    )
    if len(bad):
        return f"non-finite values or negative variances by benchmark in row {int(bad[0])}"
    off = np.flatnonzero(~np.isclose(values.mean(axis=2), Y, rtol=1e-6, atol=1e-9).all(axis=1))
    if len(off):
        i = int(off[0])
        return (
            f"values {Y[i].tolist()} of row {i} are not the means of its {names[0]} "
            f"{values[i].tolist()}"
        )
    return None


def migrate_state_v1(state: dict[str, Any]) -> dict[str, Any]:
    """A version-1 state (trials matched by their ``x``, no ids, no variances) as version 2.

    Version 1 had search trials only (a told point that was never asked became one too,
    and so counted in the design and the proposal seeds as a search trial): each becomes a
    search trial whose id is its position, so the restored optimiser proposes exactly what
    the version-1 one would have.
    """
    trials = [{**t, "id": i, "kind": "search"} for i, t in enumerate(state["trials"])]
    return {**state, "version": STATE_VERSION, "trials": trials}
