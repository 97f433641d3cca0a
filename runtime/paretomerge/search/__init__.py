"""Multi-objective Bayesian optimisation of merge weights, usable for any black box.

>>> from paretomerge.search import optimize
>>> result = optimize(objective, dim=37, strategy="coarse-to-fine", layer_profile=profile)
>>> result.pareto_X, result.pareto_Y, result.pareto_Y_std  # the front, by the posterior
"""

from paretomerge.search.acquisition import AcquisitionSettings
from paretomerge.search.config import STRATEGY_NAMES, SearchConfig
from paretomerge.search.estimates import FrontPoint, PointEstimates
from paretomerge.search.optimize import ObjectiveError, OptimizeResult, optimize
from paretomerge.search.optimizer import AskTellOptimizer, Trial
from paretomerge.search.pareto import hypervolume, hypervolume_history, pareto_mask
from paretomerge.search.surrogates import NutsSettings

__all__ = [
    "STRATEGY_NAMES",
    "AcquisitionSettings",
    "AskTellOptimizer",
    "FrontPoint",
    "NutsSettings",
    "ObjectiveError",
    "OptimizeResult",
    "PointEstimates",
    "SearchConfig",
    "Trial",
    "hypervolume",
    "hypervolume_history",
    "optimize",
    "pareto_mask",
]
