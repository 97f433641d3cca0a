"""Multi-objective Bayesian optimisation of merge weights, usable for any black box.

>>> from paretomerge.search import optimize
>>> result = optimize(objective, dim=37, strategy="coarse-to-fine", layer_profile=profile)
>>> result.pareto_X, result.pareto_Y, result.pareto_Y_std  # the front, by the posterior

The names below are imported on first use: :mod:`paretomerge.search.front`, the rule of
the reported front, needs numpy alone, and the operator imports it without loading the
optimiser (and torch behind it).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# name -> the module that defines it
_EXPORTS = {
    "STRATEGY_NAMES": "config",
    "SearchConfig": "config",
    "AcquisitionSettings": "acquisition",
    "AnchorErrors": "claims",
    "CostBudget": "cost_budget",
    "HypervolumeClaim": "claims",
    "FrontPoint": "estimates",
    "PointEstimates": "estimates",
    "FrontMember": "front",
    "reported_front": "front",
    "HeldOutValidation": "in_process",
    "ObjectiveError": "in_process",
    "OptimizeResult": "in_process",
    "ScreeningStage": "in_process",
    "optimize": "in_process",
    "search_in_process": "in_process",
    "AskTellOptimizer": "optimizer",
    "Trial": "optimizer",
    "hypervolume": "pareto",
    "pareto_mask": "pareto",
    "ProbablyDominated": "screening",
    "Screener": "screening",
    "NutsSettings": "surrogates",
}

__all__ = [
    "STRATEGY_NAMES",
    "AcquisitionSettings",
    "AnchorErrors",
    "AskTellOptimizer",
    "CostBudget",
    "FrontMember",
    "FrontPoint",
    "HeldOutValidation",
    "HypervolumeClaim",
    "NutsSettings",
    "ObjectiveError",
    "OptimizeResult",
    "PointEstimates",
    "ProbablyDominated",
    "Screener",
    "ScreeningStage",
    "SearchConfig",
    "Trial",
    "hypervolume",
    "optimize",
    "pareto_mask",
    "reported_front",
    "search_in_process",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from paretomerge.search.acquisition import AcquisitionSettings
    from paretomerge.search.claims import AnchorErrors, HypervolumeClaim
    from paretomerge.search.config import STRATEGY_NAMES, SearchConfig
    from paretomerge.search.cost_budget import CostBudget
    from paretomerge.search.estimates import FrontPoint, PointEstimates
    from paretomerge.search.front import FrontMember, reported_front
    from paretomerge.search.in_process import (
        HeldOutValidation,
        ObjectiveError,
        OptimizeResult,
        ScreeningStage,
        optimize,
        search_in_process,
    )
    from paretomerge.search.optimizer import AskTellOptimizer, Trial
    from paretomerge.search.pareto import hypervolume, pareto_mask
    from paretomerge.search.screening import ProbablyDominated, Screener
    from paretomerge.search.surrogates import NutsSettings
