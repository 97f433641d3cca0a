"""The structural importance profile: how far each layer of an expert moved from the base.

For a base ``B`` and experts ``E_1..E_m`` with task vectors ``D_k = W_{E_k} - W_B``, every
tensor ``t`` gives four statistics (computed in float32):

    frobenius  ||D_t||_F = sqrt(sum D_t^2)
    l1         ||D_t||_1 = sum |D_t|
    linf       ||D_t||_inf = max |D_t|
    relative   ||D_t||_F / ||W_B,t||_F      (tensors with a zero base are left out)

The value of a statistic for layer ``l`` is the mean of the per-tensor values over the
tensors of layer ``l``; the head variable gets the same mean over the embeddings, the
final norm and ``lm_head``. With several experts each one is reported, and the profile's
own values are the mean over experts. The default statistic, ``frobenius``, is the one
the SIP prior and the BAMBO partition use (docs/design.md).

Tensors are streamed (see :mod:`paretomerge.checkpoint`) and reduced in cache-sized
chunks by a few worker threads, each holding one tensor of each model at a time, so
memory stays within a few tensors of each model.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NoReturn

import numpy as np
import torch
from pydantic import BaseModel

from paretomerge.checkpoint import Checkpoint, CheckpointError, check_compatible
from paretomerge.partition import (
    BlockPartition,
    PartitionStrategy,
    block_partition,
    normalize_profile,
)
from paretomerge.tensor_layout import TensorLayout

STATISTICS: tuple[str, ...] = ("frobenius", "l1", "linf", "relative")
# 256 Ki float32 values (1 MiB) per operand: both operands stay in a core's cache.
CHUNK_ELEMENTS = 1 << 18
# Tensors reduced at once: the reduction is bound by memory and the interpreter, so more
# than a few threads gain nothing.
MAX_WORKERS = 4
DEFAULT_STATISTIC = "frobenius"


class ModelIdentity(BaseModel):
    """What a profile was measured on, from the model's config and shard headers."""

    path: str
    architecture: str
    model_type: str | None
    num_layers: int
    hidden_size: int | None
    dtypes: list[str]
    num_tensors: int
    num_bytes: int

    @classmethod
    def of(cls, checkpoint: Checkpoint) -> ModelIdentity:
        return cls(
            path=str(checkpoint.path.resolve()),
            architecture=checkpoint.architecture,
            model_type=checkpoint.config.get("model_type"),
            num_layers=checkpoint.num_layers,
            hidden_size=checkpoint.config.get("hidden_size"),
            dtypes=sorted({info.dtype for info in checkpoint.tensors.values()}),
            num_tensors=len(checkpoint.tensors),
            num_bytes=checkpoint.total_bytes,
        )


class StatisticProfile(BaseModel):
    """One statistic: a value per layer (``len == num_layers``) and one for the head."""

    layers: list[float]
    head: float


class ExpertProfile(BaseModel):
    model: ModelIdentity
    statistics: dict[str, StatisticProfile]


class PartitionRecord(BaseModel):
    """The block partition of the normalised default statistic drawn on the heatmap."""

    strategy: str
    alpha: float
    beta: float
    starts: list[int]
    bounds: list[tuple[int, int]]

    @classmethod
    def of(
        cls, partition: BlockPartition, strategy: str, alpha: float, beta: float
    ) -> PartitionRecord:
        return cls(
            strategy=strategy,
            alpha=alpha,
            beta=beta,
            starts=list(partition.starts),
            bounds=partition.bounds,
        )


class ActivationProfile(BaseModel):
    """The activation-discrepancy profile (:mod:`paretomerge.activations`).

    ``layers`` and ``head`` hold ``statistic`` (dimensionless, a relative change) as the
    mean over experts, ``experts`` each expert's own values (in the order of the
    experts); it was measured on ``prompts`` prompts, ``tokens`` tokens in all, and is
    cached under ``key``.
    """

    statistic: str
    layers: list[float]
    head: float
    experts: list[StatisticProfile]
    prompts: int
    tokens: int
    key: str | None = None

    @property
    def merge_weight_profile(self) -> list[float]:
        """The layers, then the head (``L + 1`` values)."""
        return [*self.layers, self.head]


class ImportanceProfile(BaseModel):
    """The profile written by ``paretomerge importance``.

    ``layers`` and ``head`` hold ``statistic`` (Frobenius norm of the task vector, mean
    over a layer's tensors, mean over experts); ``statistics`` holds every statistic as
    the mean over experts, and ``experts`` each expert's own values. With an
    ``activation`` profile the search's prior combines both, the activations weighted by
    ``activation_weight`` (:attr:`prior`).
    """

    statistic: str = DEFAULT_STATISTIC
    layers: list[float]
    head: float
    statistics: dict[str, StatisticProfile]
    experts: list[ExpertProfile]
    base: ModelIdentity
    num_layers: int
    tensors_per_layer: list[int]
    head_tensors: list[str]
    unassigned_tensors: list[str]
    partition: PartitionRecord | None = None
    activation: ActivationProfile | None = None
    activation_weight: float = 0.0

    @property
    def prior(self) -> list[float]:
        """What the search's prior and the partition see, per merge weight (``L + 1``
        values, layers then head): :func:`combined_prior` of the two profiles with an
        activation profile, else the parameter profile as measured."""
        parameter = [*self.layers, self.head]
        if self.activation is None:
            return parameter
        return combined_prior(
            parameter, self.activation.merge_weight_profile, self.activation_weight
        )

    def write(self, path: str | Path) -> None:
        Path(path).write_text(self.model_dump_json(indent=2) + "\n")


def compute_profile(base_path: str | Path, expert_paths: Sequence[str | Path]) -> ImportanceProfile:
    """Measure the importance profile of ``expert_paths`` against ``base_path``.

    Raises:
        CheckpointError: an unreadable or incomplete checkpoint; experts whose
            architecture, layer count, tensor names or shapes differ from the base; a
            non-finite tensor. The message names the model and the tensor.
    """
    if not expert_paths:
        raise CheckpointError("at least one expert model is needed")
    base = Checkpoint(base_path)
    experts = [Checkpoint(path) for path in expert_paths]
    for expert in experts:
        check_compatible(base, expert)
    layout = TensorLayout.of(base)

    roles = {name: layout.role(name) for name in base.tensors}
    groups: list[int | str] = [*range(layout.num_layers), "head"]
    members = {group: [n for n, r in roles.items() if r == group] for group in groups}
    for layer in range(layout.num_layers):
        if not members[layer]:
            raise CheckpointError(f"model {base.path}: layer {layer} has no tensors")

    def statistics_of(name: str) -> list[dict[str, float | None]]:
        return [tensor_statistics(base, expert, name) for expert in experts]

    # sums[k][statistic][group] and counts for the means over tensors.
    sums = [{s: dict.fromkeys(groups, 0.0) for s in STATISTICS} for _ in experts]
    relative_counts = [dict.fromkeys(groups, 0) for _ in experts]
    names = sorted(n for n, r in roles.items() if r is not None)
    # Each worker is one interpreter thread running torch on one intra-op thread (torch
    # releases the GIL inside its kernels); map() keeps the names' order. The thread count
    # is per OS thread (OpenMP), so every worker sets its own: one thread also makes each
    # reduction, and so the profile, deterministic.
    workers = min(MAX_WORKERS, len(os.sched_getaffinity(0)))
    with ThreadPoolExecutor(workers, initializer=torch.set_num_threads, initargs=(1,)) as pool:
        for name, per_expert in zip(names, pool.map(statistics_of, names), strict=True):
            group = roles[name]
            for k, stats in enumerate(per_expert):
                for statistic in ("frobenius", "l1", "linf"):
                    sums[k][statistic][group] += stats[statistic]
                if stats["relative"] is not None:
                    sums[k]["relative"][group] += stats["relative"]
                    relative_counts[k][group] += 1

    expert_profiles = []
    for k, expert in enumerate(experts):
        statistics = {}
        for statistic in STATISTICS:
            counts = (
                relative_counts[k]
                if statistic == "relative"
                else {g: len(members[g]) for g in groups}
            )
            means = {g: sums[k][statistic][g] / counts[g] if counts[g] else 0.0 for g in groups}
            statistics[statistic] = StatisticProfile(
                layers=[means[layer] for layer in range(layout.num_layers)], head=means["head"]
            )
        expert_profiles.append(ExpertProfile(model=ModelIdentity.of(expert), statistics=statistics))

    mean_statistics = {
        statistic: StatisticProfile(
            layers=np.mean(
                [p.statistics[statistic].layers for p in expert_profiles], axis=0
            ).tolist(),
            head=float(np.mean([p.statistics[statistic].head for p in expert_profiles])),
        )
        for statistic in STATISTICS
    }
    default = mean_statistics[DEFAULT_STATISTIC]
    return ImportanceProfile(
        layers=default.layers,
        head=default.head,
        statistics=mean_statistics,
        experts=expert_profiles,
        base=ModelIdentity.of(base),
        num_layers=layout.num_layers,
        tensors_per_layer=[len(members[layer]) for layer in range(layout.num_layers)],
        head_tensors=sorted(members["head"]),
        unassigned_tensors=sorted(n for n, r in roles.items() if r is None),
    )


def tensor_statistics(base: Checkpoint, expert: Checkpoint, name: str) -> dict[str, float | None]:
    """The four statistics of ``D = W_expert - W_base`` for tensor ``name``.

    Streams both tensors in chunks of :data:`CHUNK_ELEMENTS` (plain reads, see
    :meth:`Checkpoint.read_chunks`), copied into two float32 buffers that stay in cache and
    reduced there in place (``|D|`` overwrites ``D`` once its square is summed); the
    per-chunk partial results are added in float64. ``relative`` is ``None`` when the base
    tensor is all zeros.

    Raises:
        CheckpointError: either tensor holds a NaN or an infinity (named with its model),
            or its shard is truncated.
    """
    count = math.prod(base.tensors[name].shape)
    if count == 0:
        return {"frobenius": 0.0, "l1": 0.0, "linf": 0.0, "relative": None}
    size = min(CHUNK_ELEMENTS, count)
    base32, delta32 = torch.empty(size), torch.empty(size)
    partials = []  # per chunk: sum B^2, sum D^2, sum |D|, max |D|
    chunks = zip(
        base.read_chunks(name, CHUNK_ELEMENTS),
        expert.read_chunks(name, CHUNK_ELEMENTS),
        strict=True,
    )
    for base_chunk, expert_chunk in chunks:
        base_values, delta = base32[: base_chunk.numel()], delta32[: base_chunk.numel()]
        base_values.copy_(base_chunk)
        delta.copy_(expert_chunk).sub_(base_values)
        squares = (torch.dot(base_values, base_values), torch.dot(delta, delta))
        delta.abs_()
        partials.append(torch.stack((*squares, delta.sum(), delta.amax())))
    totals = torch.stack(partials).double()
    base_sq, delta_sq, l1 = (float(v) for v in totals[:, :3].sum(dim=0))
    linf = float(totals[:, 3].max())
    if not np.isfinite(base_sq):
        _raise_if_not_finite(base, name)
    if not np.isfinite(delta_sq + l1 + linf):
        _raise_if_not_finite(expert, name)
    frobenius, base_norm = delta_sq**0.5, base_sq**0.5
    return {
        "frobenius": frobenius,
        "l1": l1,
        "linf": linf,
        "relative": frobenius / base_norm if base_norm > 0 else None,
    }


def _raise_if_not_finite(model: Checkpoint, name: str) -> NoReturn:
    if not model.is_finite(name):
        raise CheckpointError(f"tensor {name} of model {model.path} has non-finite values")
    raise CheckpointError(f"tensor {name} of model {model.path}: its norms overflow")


def combined_prior(
    parameter: Sequence[float], activation: Sequence[float], weight: float
) -> list[float]:
    """The prior of a search that knows both profiles (AP-BMM's combination).

    Args:
        parameter: the parameter profile, shape ``(L + 1,)`` (layers, then head).
        activation: the activation profile, the same shape.
        weight: ``w`` in ``[0, 1]``, the activations' share (AP-BMM: 0.5).

    Returns:
        ``(1 - w) * n(parameter) + w * n(activation)``, shape ``(L + 1,)`` in ``[0, 1]``,
        where ``n`` is the min-max normalisation over every merge weight
        (:func:`~paretomerge.partition.normalize_profile`): the two profiles have
        different units, so each counts by its order and spread, not its scale.
    """
    if len(parameter) != len(activation):
        raise ValueError(
            f"the parameter profile has {len(parameter)} values, the activation profile "
            f"{len(activation)}"
        )
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"the activation weight {weight} is not in [0, 1]")
    mixed = (1.0 - weight) * normalize_profile(parameter) + weight * normalize_profile(activation)
    return mixed.tolist()


def partition_profile(
    profile: ImportanceProfile,
    num_blocks: int,
    strategy: PartitionStrategy = "hybrid",
    alpha: float = 1.0,
    beta: float = 0.005,
) -> PartitionRecord:
    """The block partition of the profile's prior (:func:`block_partition`: the blocks a
    ``bambo`` run with these settings searches)."""
    partition = block_partition(profile.prior, num_blocks, strategy, alpha, beta)
    return PartitionRecord.of(partition, strategy, alpha, beta)
