"""Ask/tell multi-objective optimiser with pending points (AP-BMM's asynchronous scheme).

A free worker asks for one candidate and gets it at once: every point still being
evaluated is passed to qLogNEHVI as pending (``X_pending``), so the new point is chosen
for the improvement it adds beyond what the running ones are expected to bring. Failed
points stay pending for good: they are no data for the model, and a proposal next to one
earns no credit for repeating it.

The whole state is plain JSON (:meth:`AskTellOptimizer.state_dict`). Proposals are a
deterministic function of that state, so a restored optimiser proposes exactly what the
original would have.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from paretomerge.search.config import SearchConfig
from paretomerge.search.pareto import hypervolume, pareto_mask
from paretomerge.search.strategies import STRATEGIES, ProposalContext, sobol_points

STATE_VERSION = 1
# A model needs at least this many finished evaluations; until then the design continues.
MIN_OBSERVATIONS = 2
# Candidates closer than this (max-norm, search space) to a known point are replaced.
DUPLICATE_TOLERANCE = 1e-6
# The surrogates here are small (n <= a few hundred): one thread avoids the thread-pool
# overhead that made a GP fit ~5x slower with two threads on a two-core machine.
SEARCH_THREADS = 1

TrialStatus = Literal["pending", "completed", "failed"]


@dataclass
class Trial:
    """One decision vector and what became of it."""

    x: list[float]
    status: TrialStatus = "pending"
    y: list[float] | None = None
    reason: str | None = None


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

    Objectives are maximised. Use :meth:`ask` to get candidates (they become pending),
    then :meth:`tell` each result or :meth:`tell_failed` if its evaluation failed.
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

    # --- asking ---------------------------------------------------------------------

    def ask(self, n: int = 1) -> np.ndarray:
        """Propose ``n`` new decision vectors, shape ``(n, dim)``; they become pending.

        The first ``initial_points`` trials are the initial design: the user's initial
        solutions, then scrambled Sobol points. After that the strategy proposes, with
        every pending and failed point passed as pending.
        """
        if n < 1:
            raise ValueError(f"ask(n) needs n >= 1, got {n}")
        design_count = max(0, min(n, self.config.initial_points - len(self.trials)))
        if self._num_completed() < MIN_OBSERVATIONS:
            design_count = n  # no model yet: the design sequence goes on
        grouping = self.strategy.grouping
        X = self._design_points(len(self.trials), design_count)
        if n > design_count:
            with _torch_threads(SEARCH_THREADS):
                Z = self._propose(also_pending=grouping.reduce(X), q=n - design_count)
            X = np.vstack([X, grouping.expand(np.clip(Z, 0.0, 1.0))])
        self.trials.extend(Trial(x=row.tolist()) for row in X)
        return X

    def _design_points(self, position: int, count: int) -> np.ndarray:
        """Initial-design decision vectors for trials ``position ..``: the user's
        solutions as given, then Sobol points of the strategy's search space."""
        solutions = self.config.initial_solutions
        grouping = self.strategy.grouping
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

    def _propose(self, also_pending: np.ndarray, q: int) -> np.ndarray:
        grouping = self.strategy.grouping
        completed = [t for t in self.trials if t.status == "completed"]
        X = grouping.reduce(np.array([t.x for t in completed]))
        Y = np.array([t.y for t in completed])
        waiting = [t.x for t in self.trials if t.status != "completed"]
        X_pending = np.vstack(
            [grouping.reduce(np.array(waiting).reshape(-1, self.config.dim)), also_pending]
        )
        position = len(self.trials) + len(also_pending)
        seed = self._step_seed(position)
        context = ProposalContext(
            X=X,
            Y=Y,
            X_pending=X_pending,
            q=q,
            position=position,
            seed=seed,
            warm_start=self.warm_start,
        )
        with torch.random.fork_rng():
            torch.manual_seed(seed)  # a fit that fails retries from random restarts
            candidates = self.strategy.propose(context)
        return self._replace_duplicates(candidates, np.vstack([X, X_pending]), seed)

    def _step_seed(self, position: int) -> int:
        return int(np.random.SeedSequence([self.config.seed, position]).generate_state(1)[0])

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

    def tell(self, x: Sequence[float], y: Sequence[float]) -> None:
        """Record objective values ``y`` ``(m,)`` of decision vector ``x`` ``(dim,)``.

        ``x`` is matched to a pending trial; a vector that was never asked (an anchor, a
        user's own evaluation) is recorded as a new trial.
        """
        x_arr = self._check_x(x)
        y_arr = np.asarray(y, dtype=float)
        if y_arr.shape != (self.config.num_objectives,):
            raise ValueError(
                f"expected {self.config.num_objectives} objective values, got shape {y_arr.shape}"
            )
        if not np.all(np.isfinite(y_arr)):
            raise ValueError(
                f"objective values must be finite, got {y_arr.tolist()} for x={x_arr.tolist()}; "
                "record a failed evaluation with tell_failed(x, reason)"
            )
        trial = self._pending_trial(x_arr)
        trial.status, trial.y = "completed", y_arr.tolist()

    def tell_failed(self, x: Sequence[float], reason: str) -> None:
        """Record that evaluating ``x`` failed, and why. It stays pending for the model."""
        trial = self._pending_trial(self._check_x(x))
        trial.status, trial.reason = "failed", str(reason)

    def _check_x(self, x: Sequence[float]) -> np.ndarray:
        x_arr = np.asarray(x, dtype=float)
        if x_arr.shape != (self.config.dim,):
            raise ValueError(
                f"expected a decision vector of {self.config.dim} values, got shape {x_arr.shape}"
            )
        if not np.all(np.isfinite(x_arr)):
            raise ValueError(f"decision vector must be finite, got {x_arr.tolist()}")
        return x_arr

    def _pending_trial(self, x: np.ndarray) -> Trial:
        for trial in self.trials:
            if trial.status == "pending" and np.array_equal(trial.x, x):
                return trial
        self.trials.append(Trial(x=x.tolist()))
        return self.trials[-1]

    # --- views ----------------------------------------------------------------------

    def _num_completed(self) -> int:
        return sum(t.status == "completed" for t in self.trials)

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
        """``(n, dim)`` decision vectors of the finished evaluations, in order told."""
        return self._x_with_status("completed")

    @property
    def Y(self) -> np.ndarray:
        """``(n, m)`` objective values of the finished evaluations."""
        ys = [t.y for t in self.trials if t.status == "completed"]
        return np.array(ys, dtype=float).reshape(-1, self.config.num_objectives)

    def _x_with_status(self, status: TrialStatus) -> np.ndarray:
        xs = [t.x for t in self.trials if t.status == status]
        return np.array(xs, dtype=float).reshape(-1, self.config.dim)

    def pareto(self) -> tuple[np.ndarray, np.ndarray]:
        """The non-dominated finished evaluations ``(X, Y)``."""
        mask = pareto_mask(self.Y)
        return self.X[mask], self.Y[mask]

    def hypervolume(self) -> float:
        return hypervolume(self.Y, np.asarray(self.config.ref_point))

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
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported optimiser state version {state.get('version')!r}")
        config = SearchConfig.from_dict(state["config"])
        return cls(config, [Trial(**t) for t in state["trials"]], state.get("warm_start"))
