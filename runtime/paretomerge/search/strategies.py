"""Search strategies: how a strategy groups the variables and proposes new points.

A strategy sees the search space ``[0, 1]^k`` of its grouping (see :mod:`.space`) and
returns candidates there; the optimiser expands them to decision vectors.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from botorch.models.model import Model
from torch.quasirandom import SobolEngine

from paretomerge.partition import BlockPartition, block_partition
from paretomerge.search.acquisition import propose_by_nehvi
from paretomerge.search.config import SearchConfig
from paretomerge.search.prior import (
    normalize_profile,
    sip_initial_lengthscales,
    sip_saas_prior_scales,
)
from paretomerge.search.space import Grouping, tied_grouping
from paretomerge.search.surrogates import (
    BenchmarkMeanModel,
    NoWarmStart,
    fit_benchmark_mean_gp,
    fit_map_saas_gp,
    fit_matern_gp,
    fit_saas_gp,
    variances_at_fitted,
)

# Coarse-to-fine's finest blocks when the configuration sets none (the spec's default).
DEFAULT_FINEST_BLOCKS = 8


@dataclass(frozen=True)
class ProposalContext:
    """What a strategy may use to propose ``q`` points, all in its search space.

    ``X`` ``(n, k)`` and ``Y`` ``(n, m)`` are the finished evaluations and ``Yvar``
    ``(n, m)`` their known variances (``None``: unknown, the noise is inferred);
    ``by_benchmark`` their values and variances on each of ``S`` benchmarks, each
    ``(n, m, S)``, when every evaluation told them (``None`` otherwise);
    ``fully_evaluated`` ``(n,)`` which evaluations asked every question; ``X_pending``
    ``(p, k)`` the points still being evaluated and those that failed; ``position`` the
    index of the first new trial (for quasi-random sequences); ``seed`` is derived from
    the run's seed and ``position``. ``warm_start`` holds the surrogate's raw
    hyperparameters from the previous proposal (JSON lists by parameter name), and a
    strategy that uses it stores the new ones there.
    """

    X: np.ndarray
    Y: np.ndarray
    Yvar: np.ndarray | None
    by_benchmark: tuple[np.ndarray, np.ndarray] | None
    fully_evaluated: np.ndarray
    X_pending: np.ndarray
    q: int
    position: int
    seed: int
    warm_start: dict[str, list]


def sobol_points(dim: int, seed: int, start: int, count: int) -> np.ndarray:
    """Points ``start .. start+count-1`` of the scrambled Sobol sequence of ``seed``."""
    engine = SobolEngine(dim, scramble=True, seed=seed)
    if start:
        engine.fast_forward(start)
    return engine.draw(count, dtype=torch.double).numpy()


class Strategy(ABC):
    """How to group the decision variables and propose points in the grouped space."""

    def __init__(self, config: SearchConfig):
        self.config = config
        self.grouping = self.make_grouping()

    def make_grouping(self) -> Grouping:
        return Grouping.identity(self.config.dim)

    def grouping_at(self, searched: int) -> Grouping:
        """The search space once ``searched`` search trials have been asked for."""
        return self.grouping

    @abstractmethod
    def propose(self, context: ProposalContext) -> np.ndarray:
        """``(q, k)`` new points in ``[0, 1]^k``."""

    def surrogate(self, context: ProposalContext) -> Model | None:
        """The strategy's model of the data in ``context``, or ``None`` when it has none
        (then the observations themselves are the estimates). ``context.warm_start`` is
        read and may be updated."""
        return None


class RandomStrategy(Strategy):
    """Independent uniform points."""

    def propose(self, context: ProposalContext) -> np.ndarray:
        rng = np.random.default_rng(context.seed)
        return rng.random((context.q, self.grouping.search_dim))


class SobolStrategy(Strategy):
    """The scrambled Sobol sequence, continued from the initial design."""

    def propose(self, context: ProposalContext) -> np.ndarray:
        start = context.position - len(self.config.initial_solutions)
        return sobol_points(self.grouping.search_dim, self.config.seed, start, context.q)


class BayesianStrategy(Strategy):
    """A surrogate of every objective, fitted to the data, and qLogNEHVI over it."""

    def surrogate(self, context: ProposalContext) -> Model:
        X = torch.as_tensor(context.X, dtype=torch.double)
        Y = torch.as_tensor(context.Y, dtype=torch.double)
        Yvar = None if context.Yvar is None else torch.as_tensor(context.Yvar, dtype=torch.double)
        return self.fit(X, Y, Yvar, context.seed, context.warm_start)

    def propose(self, context: ProposalContext) -> np.ndarray:
        X = torch.as_tensor(context.X, dtype=torch.double)
        model = self.surrogate(context)
        X_pending = torch.as_tensor(context.X_pending, dtype=torch.double)
        return propose_by_nehvi(
            model,
            X_baseline=X,
            ref_point=torch.as_tensor(self.config.ref_point, dtype=torch.double),
            q=context.q,
            X_pending=X_pending if len(X_pending) else None,
            settings=self.config.acquisition,
            seed=context.seed,
        ).numpy()

    @abstractmethod
    def fit(
        self,
        X: torch.Tensor,
        Y: torch.Tensor,
        Yvar: torch.Tensor | None,
        seed: int,
        warm_start: dict,
    ) -> Model:
        """A fitted model of ``Y`` ``(n, m)`` given ``X`` ``(n, k)``, with the known noise
        variances ``Yvar`` ``(n, m)`` or, when ``None``, an inferred noise level."""

    def importance(self) -> np.ndarray:
        """Importance of each search variable in ``[0, 1]``; extra variables count as 1."""
        weights = normalize_profile(self.config.layer_profile)
        return np.concatenate([weights, np.ones(self.config.extra_variables)])


class GPStrategy(BayesianStrategy):
    """MAP Matern-5/2 ARD GP ("plain BoTorch"); per benchmark a multi-task GP when the
    evaluations say each benchmark's values; known variances moved to the fit.

    Why per benchmark: an objective is the mean over benchmarks of very unequal
    precision (a merge's normalised tokens have a standard error near 0.03 on
    GPQA-Diamond, 0.3 on AIME25), and the mean carries the coarse one's error. Modelled
    jointly, the precise benchmark informs the coarse one as far as the data say they
    move together: ``bench/per_benchmark_surrogate.py`` measures the prediction error,
    ``bench/search_efficiency.py`` the fronts.

    Why the variances move (``variances_at_fit``): a told variance comes from the same
    answers as its value, so a fit on them leans on the draws that erred one way. Each
    variance is moved to the value of the previous proposal's fit (its hyperparameters,
    this data: :func:`~paretomerge.search.surrogates.variances_at_fitted`), and the model
    is fitted on the moved ones; with no previous fit of this model (the first, or a
    new search space) it is fitted on the told variances first. Fitted on the moved
    variances, the model's token objective at the front lost three quarters of its bias
    (0.033 to 0.009 on average); only rebuilt on them with the fit's hyperparameters,
    two fifths (``bench/claim_bias.py``). Fitting twice in every proposal took a little
    more out for a fit more (``bench/search_efficiency.py``: 12.9 s per proposal in the
    hard family's runs, 8.0 this way).
    """

    variances_at_fit = True

    def surrogate(self, context: ProposalContext) -> Model:
        X = torch.as_tensor(context.X, dtype=torch.double)
        warm_start = context.warm_start
        if context.by_benchmark is not None:
            values, told = (torch.as_tensor(a, dtype=torch.double) for a in context.by_benchmark)

            def fit(variances: torch.Tensor, optimise: bool = True) -> Model:
                return fit_benchmark_mean_gp(X, values, variances, warm_start, optimise)

            def fitted(model: BenchmarkMeanModel) -> torch.Tensor:
                return model.benchmark_means(X)

        else:
            values = torch.as_tensor(context.Y, dtype=torch.double)
            told = None if context.Yvar is None else torch.as_tensor(context.Yvar)

            def fit(variances: torch.Tensor | None, optimise: bool = True) -> Model:
                if optimise:
                    return self.fit(X, values, variances, context.seed, warm_start)
                return fit_matern_gp(X, values, variances, warm_start=warm_start, optimise=False)

            def fitted(model: Model) -> torch.Tensor:
                with torch.no_grad():
                    return model.posterior(X).mean

        if told is None or not self.variances_at_fit:
            return fit(told)
        try:
            previous = fit(told, optimise=False)
        except NoWarmStart:
            previous = fit(told)
        full = torch.as_tensor(context.fully_evaluated, dtype=torch.bool)
        return fit(variances_at_fitted(values, told, fitted(previous), full))

    def fit(self, X, Y, Yvar, seed, warm_start) -> Model:
        return fit_matern_gp(X, Y, Yvar, warm_start=warm_start)


class SipGPStrategy(BayesianStrategy):
    """SIP-BMM's reference scheme: every fit starts from lengthscales set by importance."""

    def fit(self, X, Y, Yvar, seed, warm_start) -> Model:
        lengthscales = sip_initial_lengthscales(self.importance())
        return fit_matern_gp(X, Y, Yvar, initial_lengthscales=lengthscales)


class SaasStrategy(BayesianStrategy):
    """Fully Bayesian SAAS GP (NUTS); with ``use_prior`` the SIP prior scales inside it."""

    use_prior = False

    def fit(self, X, Y, Yvar, seed, warm_start) -> Model:
        scales = sip_saas_prior_scales(self.importance()) if self.use_prior else None
        return fit_saas_gp(X, Y, Yvar, prior_scales=scales, nuts=self.config.nuts, seed=seed)


class SipSaasStrategy(SaasStrategy):
    use_prior = True


class SipMapSaasStrategy(BayesianStrategy):
    """MAP SAAS GP with the SIP prior: the practical default on CPU.

    Every fit starts cold. Warm-started from its previous optimum, the MAP fit stays in
    the flat mode it finds with the first few points (every inverse lengthscale near the
    half-Cauchy mode at zero) and the search goes blind: on the benchmark's layer
    landscape 0.81 of the best-known hypervolume warm, 0.89 cold (3 seeds).

    Where it stands (``bench/search_efficiency.py``, 3 seeds): best of all strategies
    when few variables matter (Branin-Currin in 37 dimensions, 0.99), below ``gp`` on the
    layer landscape, whose merging-interference term makes every layer matter a little
    (0.89 against 0.92). There the SIP prior barely moves a MAP SAAS fit: plain MAP SAAS
    0.88, SIP strength 1, 2 or 3 0.88-0.89, SIP starting lengthscales 0.88; ``bambo`` (0.97)
    is the strategy for such landscapes.
    """

    def fit(self, X, Y, Yvar, seed, warm_start) -> Model:
        scales = sip_saas_prior_scales(self.importance())
        return fit_map_saas_gp(X, Y, Yvar, prior_scales=scales)


class ModelLevelStrategy(GPStrategy):
    """One scalar for every merge weight (the classic model-level merge), by GP + qLogNEHVI."""

    def make_grouping(self) -> Grouping:
        return tied_grouping(self.config.dim, range(self.config.num_weights))


class BamboStrategy(GPStrategy):
    """BAMBO: layers cut into contiguous blocks by the DP, one weight per block.

    The head variable and any extra variables stay blocks of their own.
    """

    def make_grouping(self) -> Grouping:
        return block_grouping(self.config, self.config.num_blocks)


class CoarseToFineStrategy(GPStrategy):
    """Blocks first, then finer blocks: a GP in a low dimension while the data are few.

    Phase ``i`` searches ``block_counts[i]`` blocks of the DP partition (plus the head and
    extra variables) from search trial ``fractions[i] * budget`` on: half of
    ``config.num_blocks`` (``merge.blocks.count``; 8 when unset), then all of them, never
    more than one per layer. Every fit sees every evaluation, projected onto the phase's
    blocks. The decision vectors stay per layer.

    Why: one real evaluation is as noisy as the front is wide (sd ~0.1 of the normalised
    objectives, issue 17), and 88 such values teach a GP little in 37 or even 9
    dimensions. In 5 (4 blocks and the head) they do, and little is lost: on members 0-3
    of the layer landscape family the best front reachable with 4 DP blocks holds
    0.94-0.99 of the layer-wise one, with 8 blocks 0.97-0.99, with one model-level weight
    0.89-0.92 (Chebyshev scalarisations, each maximised by L-BFGS-B in block space). The
    second half of the budget refines in 8 blocks. ``bench/search_efficiency.py`` has the
    figures against every other strategy.
    """

    fractions = (0.0, 0.5)

    @property
    def block_counts(self) -> tuple[int, int]:
        """The blocks of each phase: half the finest, then the finest."""
        finest = self.config.num_blocks or DEFAULT_FINEST_BLOCKS
        return max(1, finest // 2), finest

    def make_grouping(self) -> Grouping:
        return self.grouping_at(self.config.budget)

    def grouping_at(self, searched: int) -> Grouping:
        phase = max(i for i, f in enumerate(self.fractions) if searched >= f * self.config.budget)
        return block_grouping(self.config, self.block_counts[phase])


def block_grouping(config: SearchConfig, num_blocks: int) -> Grouping:
    """``num_blocks`` blocks of layers by the DP (at most one per layer), then the head and
    any extra variables each on its own."""
    partition = bambo_partition(config, num_blocks)
    own = range(partition.num_blocks, partition.num_blocks + 1 + config.extra_variables)
    return Grouping((*partition.labels.tolist(), *own))


def bambo_partition(config: SearchConfig, num_blocks: int | None = None) -> BlockPartition:
    """The blocks BAMBO searches: :func:`~paretomerge.partition.block_partition` of
    ``config.layer_profile`` (one value per merge weight: the layers, then the head) into
    ``num_blocks`` blocks (default ``config.num_blocks``), one per layer where there are
    fewer layers."""
    return block_partition(
        config.layer_profile,
        min(num_blocks or config.num_blocks, config.num_weights - 1),
        config.partition_strategy,
        config.partition_alpha,
        config.partition_beta,
    )


STRATEGIES: dict[str, Callable[[SearchConfig], Strategy]] = {
    "random": RandomStrategy,
    "sobol": SobolStrategy,
    "model-level": ModelLevelStrategy,
    "gp": GPStrategy,
    "sip-gp": SipGPStrategy,
    "saas": SaasStrategy,
    "sip-saas": SipSaasStrategy,
    "sip-map-saas": SipMapSaasStrategy,
    "coarse-to-fine": CoarseToFineStrategy,
    "bambo": BamboStrategy,
}
