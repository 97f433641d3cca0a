"""The merge methods a plan may use: mergekit's names, each with what it does.

One registry: the run spec's choices, the plan's checks, the mergekit configuration and
the decision space all read a method's properties here. Light on purpose (no numpy, no
mergekit): the spec, and so the operator, import it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class MergeMethod:
    """A mergekit merge method.

    Attributes:
        name: mergekit's name.
        averages: the weight ``w`` mixes the models, ``(1 - w) W_base + (w / m) sum_k
            W_k`` (``linear``); otherwise it scales the experts' task vectors
            ``W_base + w sum_k D_k``, which may be ``normalize``-d.
        has_density: it sparsifies every task vector, keeping a ``density`` fraction of
            its entries (so a model-level search may search the density).
        stochastic: it drops entries at random, so its result depends on the plan's
            ``seed`` (DARE, DELLA).
        has_epsilon: it takes DELLA's ``epsilon``, the spread of keep probabilities.
        has_gamma: it takes Model Breadcrumbs' ``gamma``, the share of largest entries
            removed.
    """

    name: str
    averages: bool = False
    has_density: bool = False
    stochastic: bool = False
    has_epsilon: bool = False
    has_gamma: bool = False


METHODS: dict[str, MergeMethod] = {
    method.name: method
    for method in (
        MergeMethod("linear", averages=True),
        MergeMethod("task_arithmetic"),
        MergeMethod("ties", has_density=True),
        MergeMethod("dare_ties", has_density=True, stochastic=True),
        MergeMethod("dare_linear", has_density=True, stochastic=True),
        MergeMethod("breadcrumbs", has_density=True, has_gamma=True),
        MergeMethod("breadcrumbs_ties", has_density=True, has_gamma=True),
        MergeMethod("della", has_density=True, stochastic=True, has_epsilon=True),
        MergeMethod("della_linear", has_density=True, stochastic=True, has_epsilon=True),
    )
}

#: A method's name, as the spec and the plan validate it (the CRD's enum).
MergeMethodName = Literal[tuple(METHODS)]


def method_names(where: Callable[[MergeMethod], bool]) -> list[str]:
    """The names of the methods ``where`` holds for, in registry order."""
    return [name for name, method in METHODS.items() if where(method)]
