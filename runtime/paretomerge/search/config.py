"""The configuration of one search, validated once and serialisable to plain JSON."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from paretomerge.search.acquisition import AcquisitionSettings
from paretomerge.search.surrogates import NutsSettings
from paretomerge.vocabulary import PARTITION_STRATEGIES, PROFILE_STRATEGIES, STRATEGY_NAMES

__all__ = ["PROFILE_STRATEGIES", "STRATEGY_NAMES", "SearchConfig", "expand_initial_solutions"]


@dataclass(frozen=True)
class SearchConfig:
    """Everything that defines a search besides its data.

    Decision vectors have ``dim`` entries in ``[0, 1]``: the merge weights first (one per
    layer, then the head variable for embeddings, final norm and ``lm_head``), then
    ``extra_variables`` trailing variables that are not merge weights (e.g. a density),
    which every strategy searches on their own. ``layer_profile`` has one divergence per
    merge weight (``dim - extra_variables`` values).

    ``baselines`` ``(k, m)`` are objective values the user has without any search (the
    base and the expert of a merge): the reported front leaves out what one of them
    matches or beats, and screening compares a candidate with them
    (:mod:`paretomerge.search.front`, :mod:`paretomerge.search.screening`).
    """

    dim: int
    num_objectives: int
    strategy: str
    ref_point: tuple[float, ...]
    budget: int
    initial_points: int
    seed: int = 0
    layer_profile: tuple[float, ...] | None = None
    initial_solutions: tuple[tuple[float, ...], ...] = ()
    extra_variables: int = 0
    num_blocks: int | None = None
    partition_strategy: str = "hybrid"
    partition_alpha: float = 1.0
    partition_beta: float = 0.005
    acquisition: AcquisitionSettings = field(default_factory=AcquisitionSettings)
    nuts: NutsSettings = field(default_factory=NutsSettings)
    baselines: tuple[tuple[float, ...], ...] = ()

    def __post_init__(self) -> None:
        problems = list(self._problems())
        if problems:
            raise ValueError("invalid search configuration: " + "; ".join(problems))

    @property
    def num_weights(self) -> int:
        """Merge weights in a decision vector: layers plus the head variable."""
        return self.dim - self.extra_variables

    def _problems(self):
        if self.strategy not in STRATEGY_NAMES:
            yield f"strategy {self.strategy!r} is unknown; expected one of {', '.join(STRATEGY_NAMES)}"
        if self.dim < 1:
            yield f"dim must be >= 1, got {self.dim}"
        if self.num_objectives < 2:
            yield f"num_objectives must be >= 2 for a Pareto search, got {self.num_objectives}"
        if len(self.ref_point) != self.num_objectives:
            yield (
                f"ref_point has {len(self.ref_point)} values but there are "
                f"{self.num_objectives} objectives"
            )
        if not all(np.isfinite(self.ref_point)):
            yield f"ref_point must be finite, got {list(self.ref_point)}"
        for i, baseline in enumerate(self.baselines):
            if len(baseline) != self.num_objectives or not all(np.isfinite(baseline)):
                yield (
                    f"baselines[{i}] must be {self.num_objectives} finite values, "
                    f"got {list(baseline)}"
                )
        if not 0 <= self.extra_variables < self.dim:
            yield f"extra_variables must be in [0, dim), got {self.extra_variables}"
        if self.initial_points < 1:
            yield f"initial_points must be >= 1, got {self.initial_points}"
        if self.budget < self.initial_points:
            yield f"budget ({self.budget}) is below the initial design ({self.initial_points} points)"
        if len(self.initial_solutions) > self.initial_points:
            yield (
                f"{len(self.initial_solutions)} initial_solutions do not fit in "
                f"initial_points={self.initial_points}"
            )
        for i, solution in enumerate(self.initial_solutions):
            if len(solution) != self.dim:
                yield f"initial_solutions[{i}] has {len(solution)} values, expected {self.dim}"
            elif not all(0.0 <= v <= 1.0 for v in solution):
                yield f"initial_solutions[{i}] has values outside [0, 1]: {list(solution)}"
        yield from self._profile_problems()

    def _profile_problems(self):
        if self.layer_profile is None:
            if self.strategy in PROFILE_STRATEGIES:
                yield f"strategy {self.strategy!r} needs a layer_profile"
        elif len(self.layer_profile) != self.num_weights:
            yield (
                f"layer_profile has {len(self.layer_profile)} values, expected "
                f"{self.num_weights} (one per merge weight)"
            )
        elif not all(np.isfinite(self.layer_profile)):
            yield "layer_profile must be finite"
        if self.strategy == "bambo" and self.num_blocks is None:
            yield "strategy 'bambo' needs num_blocks"
        if self.num_blocks is not None and self.num_blocks < 1:  # above the layers: one each
            yield f"num_blocks must be >= 1, got {self.num_blocks}"
        cuts_blocks = self.strategy in ("bambo", "coarse-to-fine")  # the DP's blocks
        if cuts_blocks and self.partition_strategy not in PARTITION_STRATEGIES:
            yield (
                f"partition strategy {self.partition_strategy!r} is unknown; expected "
                f"one of {', '.join(PARTITION_STRATEGIES)}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchConfig:
        data = dict(data)
        data["ref_point"] = tuple(data["ref_point"])
        if data.get("layer_profile") is not None:
            data["layer_profile"] = tuple(data["layer_profile"])
        data["initial_solutions"] = tuple(tuple(s) for s in data.get("initial_solutions", ()))
        data["baselines"] = tuple(tuple(b) for b in data.get("baselines", ()))
        data["acquisition"] = AcquisitionSettings(**data.get("acquisition", {}))
        data["nuts"] = NutsSettings(**data.get("nuts", {}))
        return cls(**data)


def expand_initial_solutions(
    solutions: Sequence[float | Sequence[float]] | None, dim: int
) -> tuple[tuple[float, ...], ...]:
    """User solutions as full vectors: a scalar ``c`` fills every variable with ``c``."""
    out = []
    for solution in solutions or ():
        if np.isscalar(solution):
            out.append((float(solution),) * dim)
        else:
            out.append(tuple(float(v) for v in solution))
    return tuple(out)
