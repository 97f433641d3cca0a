"""Read-only access to a Hugging Face safetensors checkpoint, one tensor at a time.

A checkpoint directory holds ``config.json`` and either ``model.safetensors`` or shards
listed in ``model.safetensors.index.json``. Tensor metadata (dtype, shape) comes from
the shard headers without reading any tensor data.

Why each tensor gets its own ``safe_open``: a safetensors handle memory-maps its whole
shard, and every page it has touched stays in the process's resident set until the
handle closes. Reading a multi-gigabyte shard through one handle would therefore make
the resident set grow to the shard's size; one short-lived handle per tensor keeps it
at about the size of the largest tensor.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"


class CheckpointError(ValueError):
    """A checkpoint is unreadable, incomplete or inconsistent with another one."""


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lives and what it is, from its shard's header."""

    name: str
    shard: Path
    dtype: str  # safetensors dtype code, e.g. "BF16", "F32"
    shape: tuple[int, ...]

    @property
    def num_bytes(self) -> int:
        size = _DTYPE_BYTES.get(self.dtype, 4)
        for dim in self.shape:
            size *= dim
        return size


_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I8": 1, "U8": 1}


class Checkpoint:
    """The tensors and config of one model directory.

    Raises:
        CheckpointError: no ``config.json``, no safetensors weights, an index whose
            ``weight_map`` names a shard that does not exist, or a shard whose header
            lacks a tensor the index assigns to it.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise CheckpointError(f"model directory {self.path} does not exist")
        config_path = self.path / "config.json"
        if not config_path.is_file():
            raise CheckpointError(f"model {self.path} has no config.json")
        self.config: dict = json.loads(config_path.read_text())
        self.tensors: dict[str, TensorInfo] = self._read_headers()

    @property
    def architecture(self) -> str:
        """The first entry of ``config.json``'s ``architectures`` (e.g. ``Qwen3ForCausalLM``)."""
        architectures = self.config.get("architectures") or []
        if not architectures:
            raise CheckpointError(f"model {self.path}: config.json lists no architectures")
        return str(architectures[0])

    @property
    def num_layers(self) -> int:
        """``num_hidden_layers`` from ``config.json`` (top level or ``text_config``)."""
        for section in (self.config, self.config.get("text_config") or {}):
            if "num_hidden_layers" in section:
                return int(section["num_hidden_layers"])
        raise CheckpointError(f"model {self.path}: config.json has no num_hidden_layers")

    @property
    def total_bytes(self) -> int:
        return sum(info.num_bytes for info in self.tensors.values())

    def read(self, name: str) -> torch.Tensor:
        """Load one tensor (a copy owned by the caller; the shard is unmapped again)."""
        info = self.tensors[name]
        with safe_open(info.shard, framework="pt") as handle:
            return handle.get_tensor(name)

    def iter_tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        """Every tensor in name order, one at a time."""
        for name in sorted(self.tensors):
            yield name, self.read(name)

    def _read_headers(self) -> dict[str, TensorInfo]:
        index_path = self.path / INDEX_FILE
        if index_path.is_file():
            weight_map: dict[str, str] = json.loads(index_path.read_text()).get("weight_map")
            if not weight_map:
                raise CheckpointError(f"model {self.path}: {INDEX_FILE} has no weight_map")
        elif (self.path / SINGLE_FILE).is_file():
            weight_map = None
        else:
            raise CheckpointError(f"model {self.path} has neither {SINGLE_FILE} nor {INDEX_FILE}")

        shard_names = sorted(set(weight_map.values())) if weight_map else [SINGLE_FILE]
        tensors: dict[str, TensorInfo] = {}
        for shard_name in shard_names:
            shard = self.path / shard_name
            if not shard.is_file():
                missing = sorted(n for n, s in weight_map.items() if s == shard_name)
                raise CheckpointError(
                    f"model {self.path}: shard {shard_name} is missing "
                    f"(it holds {len(missing)} tensors, e.g. {missing[0]})"
                )
            for name, (dtype, shape) in _shard_header(shard).items():
                tensors[name] = TensorInfo(name=name, shard=shard, dtype=dtype, shape=shape)

        if weight_map:
            for name, shard_name in weight_map.items():
                if name not in tensors or tensors[name].shard.name != shard_name:
                    raise CheckpointError(
                        f"model {self.path}: tensor {name} is not in shard {shard_name} "
                        f"as {INDEX_FILE} says"
                    )
        return tensors


def check_compatible(base: Checkpoint, expert: Checkpoint) -> None:
    """Raise :class:`CheckpointError` unless ``expert`` has the base's architecture,
    layer count, tensor names and tensor shapes (dtypes may differ)."""
    if expert.architecture != base.architecture:
        raise CheckpointError(
            f"expert {expert.path} is a {expert.architecture}, "
            f"but base {base.path} is a {base.architecture}"
        )
    if expert.num_layers != base.num_layers:
        raise CheckpointError(
            f"expert {expert.path} has {expert.num_layers} layers (num_hidden_layers), "
            f"but base {base.path} has {base.num_layers}"
        )
    for name in sorted(base.tensors.keys() - expert.tensors.keys()):
        raise CheckpointError(f"expert {expert.path} lacks tensor {name} of base {base.path}")
    for name in sorted(expert.tensors.keys() - base.tensors.keys()):
        raise CheckpointError(f"expert {expert.path} has tensor {name} that base {base.path} lacks")
    for name, info in sorted(base.tensors.items()):
        other = expert.tensors[name].shape
        if other != info.shape:
            raise CheckpointError(
                f"tensor {name} has shape {list(other)} in expert {expert.path} "
                f"but {list(info.shape)} in base {base.path}"
            )


def _shard_header(shard: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """``{name: (dtype, shape)}`` from a safetensors header (8-byte length, then JSON)."""
    try:
        with shard.open("rb") as stream:
            length = int.from_bytes(stream.read(8), "little")
            header = json.loads(stream.read(length))
    except (OSError, ValueError) as error:
        raise CheckpointError(
            f"shard {shard} is not a readable safetensors file: {error}"
        ) from error
    header.pop("__metadata__", None)
    return {name: (entry["dtype"], tuple(entry["shape"])) for name, entry in header.items()}
