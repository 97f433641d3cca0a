"""A run's decision space: unit-cube vectors for the search, merge plans for the models.

The optimiser works in ``[0, 1]^d``. For granularity ``layer`` and ``block`` a vector
holds one variable per layer and one for the head (``d = L + 1``; BAMBO ties the layers
of a block inside the search). For granularity ``model`` it holds one weight, plus a
density when the method is sparsifying and ``search.densityRange`` is set. A variable
``x`` becomes the merge weight ``low + x (high - low)`` of ``search.weightRange``, and a
density variable ``d_low + x (d_high - d_low)`` of ``search.densityRange``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from paretomerge.controller.objectives import ANCHOR_OBJECTIVES
from paretomerge.merge.methods import METHODS
from paretomerge.merge.plan import MergePlan, plan_from_block_weights
from paretomerge.partition import BlockPartition
from paretomerge.search import AcquisitionSettings, SearchConfig
from paretomerge.search.strategies import bambo_partition
from paretomerge.spec import RunSpec

NUM_OBJECTIVES = 2


@dataclass(frozen=True)
class DecisionSpace:
    """Maps decision vectors of one run to merge weights and plans.

    Attributes:
        spec: the run spec.
        num_layers: transformer layers of the models (``L``).
        profile: divergence per merge weight, ``L + 1`` values (layers, then head).
    """

    spec: RunSpec
    num_layers: int
    profile: tuple[float, ...]

    @property
    def searches_density(self) -> bool:
        merge, search = self.spec.merge, self.spec.search
        return (
            merge.granularity == "model"
            and METHODS[merge.method].has_density
            and search.density_range is not None
        )

    @property
    def num_weights(self) -> int:
        return 1 if self.spec.merge.granularity == "model" else self.num_layers + 1

    @property
    def dim(self) -> int:
        return self.num_weights + int(self.searches_density)

    def search_config(self) -> SearchConfig:
        search, merge = self.spec.search, self.spec.merge
        per_layer = merge.granularity != "model"
        return SearchConfig(
            dim=self.dim,
            num_objectives=NUM_OBJECTIVES,
            strategy=search.strategy,
            ref_point=tuple(search.reference_point),
            budget=search.budget,
            initial_points=search.initial_points,
            seed=search.seed,
            layer_profile=self.profile if per_layer else None,
            initial_solutions=tuple(self.unit_solution(c) for c in search.initial_solutions),
            extra_variables=int(self.searches_density),
            num_blocks=merge.blocks.count if per_layer else None,
            partition_strategy=merge.blocks.strategy,
            partition_alpha=merge.blocks.alpha,
            partition_beta=merge.blocks.beta,
            acquisition=AcquisitionSettings(
                num_restarts=search.acquisition.num_restarts,
                raw_samples=search.acquisition.raw_samples,
                mc_samples=search.acquisition.mc_samples,
            ),
            baselines=tuple(tuple(anchor) for anchor in ANCHOR_OBJECTIVES.tolist()),
        )

    def unit_solution(self, weight: float) -> tuple[float, ...]:
        """The decision vector with every merge weight ``weight`` (a density, if searched,
        in the middle of its range)."""
        low, high = self.spec.search.weight_range
        x = float(np.clip((weight - low) / (high - low), 0.0, 1.0))
        return (x,) * self.num_weights + (0.5,) * int(self.searches_density)

    def variables(self, x: Sequence[float]) -> np.ndarray:
        """Decision vector ``(dim,)`` in ``[0, 1]`` -> merge weights (and density) ``(dim,)``."""
        x = np.asarray(x, dtype=float)
        low, high = self.spec.search.weight_range
        out = low + x * (high - low)
        if self.searches_density:
            d_low, d_high = self.spec.search.density_range
            out[-1] = d_low + x[-1] * (d_high - d_low)
        return out

    def variable_names(self) -> list[str]:
        if self.spec.merge.granularity == "model":
            names = ["weight"]
        else:
            names = [f"layer_{layer}" for layer in range(self.num_layers)] + ["head"]
        return names + ["density"] * int(self.searches_density)

    @cached_property
    def partition(self) -> BlockPartition | None:
        """BAMBO's blocks (granularity ``block``), else ``None``; computed once, when
        first asked for, by the rule the strategy follows."""
        if self.spec.merge.granularity != "block":
            return None
        return bambo_partition(self.search_config())

    def plan(self, x: Sequence[float], seed: int = 0) -> MergePlan:
        """The merge plan of decision vector ``x``; model paths stay volume-relative."""
        values = self.variables(x)
        models, merge = self.spec.models, self.spec.merge
        density = float(values[-1]) if self.searches_density else merge.density
        common = {
            "base": models.base.path,
            "experts": [e.path for e in models.experts],
            "method": merge.method,
            "density": density,
            "seed": seed,
        }
        if merge.granularity == "model":
            weight = float(values[0])
            return MergePlan(
                **common,
                granularity="model",
                layer_weights=[weight] * self.num_layers,
                head_weight=weight,
            )
        partition = self.partition
        if partition is not None:
            block_weights = [float(values[start]) for start in partition.starts]
            return plan_from_block_weights(
                block_weights=[*block_weights, float(values[self.num_layers])],
                partition=partition,
                **common,
            )
        return MergePlan(
            **common,
            granularity="layer",
            layer_weights=[float(v) for v in values[: self.num_layers]],
            head_weight=float(values[self.num_layers]),
        )
