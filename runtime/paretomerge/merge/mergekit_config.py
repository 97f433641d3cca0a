"""A :class:`MergePlan` in mergekit's own configuration model.

Layer weights become output slices: one slice per maximal run of consecutive layers
with equal weight (so a layer-wise plan has one slice per layer, a block plan one per
block, a model-level plan a single slice). Every slice lists the base and each expert
over the same ``layer_range``, with the weight as a source parameter.

mergekit plans the embeddings with the first slice's parameters and the final norm and
``lm_head`` with the last slice's. Where the head weight differs from that slice's layer
weight, the source parameter is a list of conditional values: first the head weight,
filtered on each head tensor's exact name, then the layer weight with no filter.
mergekit filters by substring, so every filter is checked to match no other tensor.

No ``dtype`` is set: mergekit computes each tensor in its stored dtype and writes the
base's (bf16 stays bf16). Computing bf16 models in float32 instead would change the
result by at most about one bf16 rounding step, at twice the memory traffic.
"""

from __future__ import annotations

from mergekit.common import ModelReference
from mergekit.config import (
    ConditionalParameter,
    InputSliceDefinition,
    MergeConfiguration,
    OutputSliceDefinition,
    ParameterSetting,
)

from paretomerge.checkpoint import Checkpoint, CheckpointError
from paretomerge.merge.plan import MergePlan
from paretomerge.tensor_layout import TensorLayout


def build_configuration(
    plan: MergePlan, base: Checkpoint, layout: TensorLayout
) -> MergeConfiguration:
    """The mergekit configuration that carries out ``plan`` on ``base``'s layout."""
    _check_head_filters(layout, base)
    base_ref = ModelReference.parse(plan.base)
    expert_refs = [ModelReference.parse(path) for path in plan.experts]
    runs = plan.weight_runs()
    slices = []
    for index, (start, stop, weight) in enumerate(runs):
        head_names = [
            *(layout.embedding_names if index == 0 else ()),
            *(layout.final_names if index == len(runs) - 1 else ()),
        ]
        expert_weight, base_weight = _source_weights(plan, weight)
        head_expert_weight, head_base_weight = _source_weights(plan, plan.head_weight)
        sources = [
            InputSliceDefinition(
                model=base_ref,
                layer_range=(start, stop),
                parameters=(
                    {"weight": _setting(base_weight, head_base_weight, head_names)}
                    if plan.merge_method.averages
                    else None
                ),
            )
        ]
        sources += [
            InputSliceDefinition(
                model=ref,
                layer_range=(start, stop),
                parameters={"weight": _setting(expert_weight, head_expert_weight, head_names)},
            )
            for ref in expert_refs
        ]
        slices.append(OutputSliceDefinition(sources=sources))
    return MergeConfiguration(
        merge_method=plan.method,
        base_model=base_ref,
        slices=slices,
        parameters=_method_parameters(plan) or None,
    )


def _source_weights(plan: MergePlan, weight: float) -> tuple[float, float]:
    """``(expert source weight, base source weight)`` for a plan weight ``w``.

    ``linear`` averages its inputs with these weights: ``1 - w`` for the base and
    ``w / m`` for each of ``m`` experts, which sum to 1. The task arithmetic family scales
    each task vector by ``w`` and gives the base no weight.
    """
    if plan.merge_method.averages:
        return weight / len(plan.experts), 1.0 - weight
    return weight, 0.0


def _setting(layer_value: float, head_value: float, head_names: list[str]) -> ParameterSetting:
    if not head_names or head_value == layer_value:
        return layer_value
    return [
        *(ConditionalParameter(filter=name, value=head_value) for name in head_names),
        ConditionalParameter(value=layer_value),
    ]


def _method_parameters(plan: MergePlan) -> dict[str, ParameterSetting]:
    parameters: dict[str, ParameterSetting] = {}
    if plan.density is not None:
        parameters["density"] = plan.density
    if plan.epsilon is not None:  # the plan has checked that its method takes them
        parameters["epsilon"] = plan.epsilon
    if plan.gamma is not None:
        parameters["gamma"] = plan.gamma
    if not plan.merge_method.averages:
        # Written even when False: mergekit's default differs per method.
        parameters["normalize"] = plan.normalize
    return parameters


def _check_head_filters(layout: TensorLayout, base: Checkpoint) -> None:
    """Every head filter must select its own tensor only (mergekit matches substrings)."""
    for name in (*layout.embedding_names, *layout.final_names):
        clashes = sorted(t for t in base.tensors if name in t and t != name)
        if clashes:
            raise CheckpointError(
                f"model {base.path}: head tensor name {name} is part of other tensor "
                f"names ({clashes[0]}), so it cannot select the head weight alone"
            )
