"""Read-only access to a Hugging Face safetensors checkpoint, one tensor at a time.

A checkpoint directory holds ``config.json`` and either ``model.safetensors`` or shards
listed in ``model.safetensors.index.json``. Tensor metadata (dtype, shape) comes from
the shard headers without reading any tensor data.

Two ways to read a tensor: :meth:`Checkpoint.read` loads it whole through safetensors,
and :meth:`Checkpoint.read_chunks` streams its bytes with plain reads into one small
reused buffer (no memory map, no page faults, no copy of the whole tensor), which is what
reductions over whole models use.

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
    offset: int  # where its data starts in the shard file, in bytes

    @property
    def num_bytes(self) -> int:
        size = _DTYPE_BYTES.get(self.dtype, 4)
        for dim in self.shape:
            size *= dim
        return size


# Values per read of a finiteness check: one sum over them is far cheaper than isfinite.
FINITE_CHUNK = 1 << 22
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I8": 1, "U8": 1}
_TORCH_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I8": torch.int8,
    "U8": torch.uint8,
}


class Checkpoint:
    """The tensors and config of one model directory.

    Raises:
        CheckpointError: no ``config.json`` (or one that is not JSON), no safetensors
            weights, an index whose ``weight_map`` names a shard that does not exist, or
            a shard whose header lacks a tensor the index assigns to it.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise CheckpointError(f"model directory {self.path} does not exist")
        config_path = self.path / "config.json"
        if not config_path.is_file():
            raise CheckpointError(f"model {self.path} has no config.json")
        self.config: dict = _read_json(config_path)
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

    def read_chunks(self, name: str, chunk_elements: int) -> Iterator[torch.Tensor]:
        """The values of tensor ``name``, flattened, ``chunk_elements`` at a time.

        Every chunk is a 1-D view into one buffer that the next chunk overwrites: use it
        before asking for the next. The last chunk may be shorter.

        Raises:
            CheckpointError: the shard ends before the tensor's data does.
        """
        info = self.tensors[name]
        if info.dtype not in _TORCH_DTYPES:
            raise CheckpointError(f"tensor {name} of model {self.path} has dtype {info.dtype}")
        itemsize = _DTYPE_BYTES[info.dtype]
        count = info.num_bytes // itemsize
        buffer = torch.empty(max(min(chunk_elements, count), 1), dtype=_TORCH_DTYPES[info.dtype])
        raw = memoryview(buffer.view(torch.uint8).numpy())
        with info.shard.open("rb", buffering=0) as stream:
            stream.seek(info.offset)
            for start in range(0, count, chunk_elements):
                size = min(chunk_elements, count - start)
                wanted, filled = size * itemsize, 0
                while filled < wanted:
                    got = stream.readinto(raw[filled:wanted])
                    if not got:
                        raise CheckpointError(
                            f"tensor {name} of model {self.path}: shard {info.shard.name} "
                            "ends before its data (a truncated file)"
                        )
                    filled += got
                yield buffer[:size]

    def is_finite(self, name: str, chunk_elements: int = FINITE_CHUNK) -> bool:
        """Whether tensor ``name`` holds no NaN and no infinity (integer tensors always;
        streamed through :meth:`read_chunks`, so memory stays at one chunk)."""
        if self.tensors[name].dtype not in ("F64", "F32", "F16", "BF16"):
            return True
        return all(map(_all_finite, self.read_chunks(name, chunk_elements)))

    def iter_tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        """Every tensor in name order, one at a time."""
        for name in sorted(self.tensors):
            yield name, self.read(name)

    def _read_headers(self) -> dict[str, TensorInfo]:
        index_path = self.path / INDEX_FILE
        if index_path.is_file():
            weight_map: dict[str, str] = _read_json(index_path).get("weight_map")
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
            for name, (dtype, shape, offset) in _shard_header(shard).items():
                tensors[name] = TensorInfo(
                    name=name, shard=shard, dtype=dtype, shape=shape, offset=offset
                )

        if weight_map:
            for name, shard_name in weight_map.items():
                if name not in tensors or tensors[name].shard.name != shard_name:
                    raise CheckpointError(
                        f"model {self.path}: tensor {name} is not in shard {shard_name} "
                        f"as {INDEX_FILE} says"
                    )
        return tensors


def _read_json(path: Path) -> dict:
    """A JSON object file of a checkpoint; :class:`CheckpointError` naming the file if it
    is unreadable or not an object."""
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path} is not readable JSON: {error}") from None
    if not isinstance(value, dict):
        raise CheckpointError(f"{path} is not a JSON object")
    return value


def non_finite_tensors(checkpoint: Checkpoint, chunk_elements: int = FINITE_CHUNK) -> Iterator[str]:
    """Names of the tensors that hold a NaN or an infinity, in name order."""
    for name in sorted(checkpoint.tensors):
        if not checkpoint.is_finite(name, chunk_elements):
            yield name


def _all_finite(values: torch.Tensor) -> bool:
    # A sum is NaN or infinite when a value is (20x faster than isfinite on bf16); only
    # a sum that overflows from finite values needs the exact check.
    total = values.sum(dtype=torch.float64 if values.dtype == torch.float64 else torch.float32)
    return bool(torch.isfinite(total)) or bool(torch.isfinite(values).all())


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


def _shard_header(shard: Path) -> dict[str, tuple[str, tuple[int, ...], int]]:
    """``{name: (dtype, shape, data offset in the file)}`` from a safetensors header
    (8-byte length, then JSON with offsets relative to the end of the header).

    Raises:
        CheckpointError: an unreadable header, or tensor data that would lie beyond the
            end of the file (a truncated shard).
    """
    try:
        with shard.open("rb") as stream:
            length = int.from_bytes(stream.read(8), "little")
            header = json.loads(stream.read(length))
        file_size = shard.stat().st_size
        header.pop("__metadata__", None)
        entries = {
            name: (
                entry["dtype"],
                tuple(entry["shape"]),
                [8 + length + o for o in entry["data_offsets"]],
            )
            for name, entry in header.items()
        }
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CheckpointError(
            f"shard {shard} is not a readable safetensors file: {error!r}"
        ) from error
    for name, (_, _, (_, end)) in entries.items():
        if end > file_size:
            raise CheckpointError(
                f"shard {shard} is truncated: tensor {name} ends at byte {end}, "
                f"the file has {file_size}"
            )
    return {name: (dtype, shape, start) for name, (dtype, shape, (start, _)) in entries.items()}
