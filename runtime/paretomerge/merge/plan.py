"""A merge plan: which models, which method, and one weight per layer plus one for the head.

The plan is a small typed value, built and validated before anything is read or
written, and kept beside the merged model so the merge can be re-created exactly.
Per-layer weights come from one of three granularities:

- ``layer``: ``L + 1`` weights, ``w_0..w_{L-1}`` for the layers and the last for the head
  (token embeddings, final norm, ``lm_head``);
- ``block``: ``K + 1`` weights and a :class:`~paretomerge.partition.BlockPartition` into
  ``K`` blocks; layer ``l`` gets the weight of its block, the last weight is the head's;
- ``model``: one weight for every layer and the head (the papers' baselines).

What a weight ``w`` means for one tensor, with task vectors ``D_k = W_k - W_base`` of the
``m`` experts (mergekit's definitions; ``sparsify`` and the sign consensus are theirs):

- ``linear``: ``(1 - w) W_base + (w / m) sum_k W_k``;
- ``task_arithmetic``: ``W_base + w sum_k D_k``;
- the sparsifying methods: ``W_base + w sum_k sparsify(D_k)`` (with TIES sign
  consensus for ``ties``, ``dare_ties``, ``breadcrumbs_ties``, ``della``). ``normalize``
  is off unless asked for: mergekit's TIES/DELLA default divides the sum by the weights
  again, which with one expert would make every weight above 0 act alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from paretomerge.merge.methods import METHODS, MergeMethod, MergeMethodName, method_names
from paretomerge.partition import BlockPartition

__all__ = ["MergePlan", "plan_from_block_weights", "plan_from_weights"]


Granularity = Literal["layer", "block", "model"]


class MergePlan(BaseModel):
    """Everything that determines a merged model.

    Attributes:
        base: path of the base model directory.
        experts: paths of the expert model directories (at least one).
        method: the mergekit merge method.
        granularity: how the weights were given (record only; ``layer_weights`` rules).
        layer_weights: ``w_l`` for every layer ``l`` (length ``L``).
        head_weight: the weight of the embeddings, final norm and ``lm_head``.
        block_starts: first layer of every block when ``granularity == "block"``.
        density: fraction of task-vector entries kept, in ``(0, 1]`` (sparsifying
            methods only; mergekit's default 1.0 when unset).
        epsilon: DELLA's spread of keep probabilities around ``density``.
        gamma: Model Breadcrumbs' fraction of largest-magnitude entries removed.
        normalize: divide the merged task vector by the sum of the weights (task
            arithmetic family only).
        seed: seed of mergekit's random generators (DARE and DELLA drop entries at random).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    base: str
    experts: list[str] = Field(min_length=1)
    method: MergeMethodName
    granularity: Granularity
    layer_weights: list[float] = Field(min_length=1)
    head_weight: float
    block_starts: list[int] | None = None
    density: float | None = Field(default=None, gt=0.0, le=1.0)
    epsilon: float | None = Field(default=None, ge=0.0)
    gamma: float | None = Field(default=None, ge=0.0, lt=1.0)
    normalize: bool = False
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> MergePlan:
        weights = [*self.layer_weights, self.head_weight]
        if not all(np.isfinite(weights)):
            raise ValueError(f"merge weights must be finite, got {weights}")
        method = self.merge_method
        if self.density is not None and not method.has_density:
            raise ValueError(f"density applies to sparsifying methods only, not {self.method}")
        for value, name, takes in (
            (self.epsilon, "epsilon", lambda m: m.has_epsilon),
            (self.gamma, "gamma", lambda m: m.has_gamma),
        ):
            if value is not None and not takes(method):
                owners = " and ".join(method_names(takes))
                raise ValueError(f"{name} applies to {owners} only, not {self.method}")
        if self.normalize and method.averages:
            raise ValueError(f"normalize applies to the task arithmetic family, not {self.method}")
        if (self.granularity == "block") != (self.block_starts is not None):
            raise ValueError("block_starts is given exactly when granularity is 'block'")
        return self

    @property
    def merge_method(self) -> MergeMethod:
        return METHODS[self.method]

    @property
    def num_layers(self) -> int:
        return len(self.layer_weights)

    def weight_runs(self) -> list[tuple[int, int, float]]:
        """Maximal runs of consecutive layers with equal weight, as ``(start, stop, w)``
        with ``stop`` exclusive, in layer order."""
        runs: list[tuple[int, int, float]] = []
        for layer, weight in enumerate(self.layer_weights):
            if runs and runs[-1][2] == weight:
                runs[-1] = (runs[-1][0], layer + 1, weight)
            else:
                runs.append((layer, layer + 1, weight))
        return runs


def plan_from_weights(
    base: str,
    experts: Sequence[str],
    method: str,
    weights: Sequence[float],
    num_layers: int,
    **parameters: float | bool | int | None,
) -> MergePlan:
    """A plan from ``L + 1`` per-layer weights (last: head) or one model-level weight.

    ``parameters`` are the optional plan fields (``density``, ``epsilon``, ``gamma``,
    ``normalize``, ``seed``); ``None`` values are left at their defaults.
    """
    weights = [float(w) for w in weights]
    if len(weights) == 1:
        layer_weights, head_weight, granularity = weights * num_layers, weights[0], "model"
    elif len(weights) == num_layers + 1:
        layer_weights, head_weight, granularity = weights[:-1], weights[-1], "layer"
    else:
        raise ValueError(
            f"weights: expected 1 (model level) or {num_layers + 1} values "
            f"({num_layers} layers + head), got {len(weights)}"
        )
    return MergePlan(
        base=str(base),
        experts=[str(e) for e in experts],
        method=method,
        granularity=granularity,
        layer_weights=layer_weights,
        head_weight=head_weight,
        **{k: v for k, v in parameters.items() if v is not None},
    )


def plan_from_block_weights(
    base: str,
    experts: Sequence[str],
    method: str,
    block_weights: Sequence[float],
    partition: BlockPartition,
    **parameters: float | bool | int | None,
) -> MergePlan:
    """A plan from ``K + 1`` block weights (last: head) and a partition into ``K`` blocks."""
    if len(block_weights) != partition.num_blocks + 1:
        raise ValueError(
            f"block weights: expected {partition.num_blocks + 1} values "
            f"({partition.num_blocks} blocks + head), got {len(block_weights)}"
        )
    return MergePlan(
        base=str(base),
        experts=[str(e) for e in experts],
        method=method,
        granularity="block",
        layer_weights=partition.expand(block_weights[:-1]).tolist(),
        head_weight=float(block_weights[-1]),
        block_starts=list(partition.starts),
        **{k: v for k, v in parameters.items() if v is not None},
    )
