"""Writing files that others may read at any moment (a controller, a status reader, a
user's ``paretomerge report``): whole or not at all."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never
    half of one: into a hidden sibling first, then renamed over ``path`` (the sibling is
    named with this process's id, as several processes may write one file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if isinstance(data, bytes):
        temporary.write_bytes(data)
    else:
        temporary.write_text(data)
    os.replace(temporary, path)
