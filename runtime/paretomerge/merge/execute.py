"""Carry out a :class:`MergePlan` with mergekit's ``run_merge`` and write the result.

The output directory is assembled under a hidden sibling name and renamed into place
only when the merge has finished, so a merge that fails or is killed never leaves a
directory that looks like a model. Beside the weights it holds the base's config and
tokenizer (copied by mergekit), ``mergekit_config.yml`` (the configuration that
produced it) and ``paretomerge-merge.json`` (the plan with its seed).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from paretomerge.checkpoint import Checkpoint, CheckpointError, check_compatible
from paretomerge.merge.mergekit_config import build_configuration
from paretomerge.merge.plan import MergePlan
from paretomerge.tensor_layout import TensorLayout

PLAN_FILE = "paretomerge-merge.json"
MODEL_CARD = "README.md"  # mergekit's model card
MERGEKIT_CONFIG_FILE = "mergekit_config.yml"


class ExecutionOptions(BaseModel):
    """How mergekit runs a plan; none of these change the merged weights.

    Attributes:
        device: where the arithmetic runs (``cpu``, ``cuda``, ...).
        out_shard_bytes: size at which an output shard is flushed to disk; the writer
            holds at most about this much merged data in memory.
        async_write: write shards in background threads while merging goes on.
        write_threads: number of those threads.
        num_threads: torch's intra-op threads (``None``: torch's default).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    device: str = "cpu"
    out_shard_bytes: int = Field(default=1 << 30, gt=0)
    async_write: bool = False
    write_threads: int = Field(default=1, ge=1)
    num_threads: int | None = Field(default=None, ge=1)


def merge_models(
    plan: MergePlan,
    out_dir: str | Path,
    options: ExecutionOptions | None = None,
    title: str | None = None,
) -> Path:
    """Merge according to ``plan`` into ``out_dir`` (which must not exist or be empty).

    The model card (``README.md``) is titled ``title`` (default: the directory's name,
    never the staging directory's); every file is readable by all (0644), as a model
    directory others serve must be.

    Returns:
        The output directory.

    Raises:
        CheckpointError: unreadable or incompatible models, or a plan whose layer count
            differs from the models'.
        FileExistsError: ``out_dir`` exists and is not empty.
    """
    # mergekit imports torch and transformers: seconds, so only when merging.
    from mergekit.io.tasks import LoaderCache
    from mergekit.merge import run_merge
    from mergekit.options import MergeOptions

    options = options or ExecutionOptions()
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"output directory {out} exists and is not empty")

    base = Checkpoint(plan.base)
    for expert in plan.experts:
        check_compatible(base, Checkpoint(expert))
    if plan.num_layers != base.num_layers:
        raise CheckpointError(
            f"the plan has {plan.num_layers} layer weights, but model {base.path} has "
            f"{base.num_layers} layers"
        )
    configuration = build_configuration(plan, base, TensorLayout.of(base))

    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    merge_options = MergeOptions(
        device=options.device,
        random_seed=plan.seed,
        out_shard_size=options.out_shard_bytes,
        async_write=options.async_write,
        write_threads=options.write_threads,
        num_threads=options.num_threads,
        copy_tokenizer=True,
        write_model_card=True,  # also writes mergekit_config.yml
        quiet=True,
    )
    try:
        run_merge(configuration, str(staging), merge_options, config_source=configuration.to_yaml())
        (staging / PLAN_FILE).write_text(plan.model_dump_json(indent=2) + "\n")
        _finish_card(staging / MODEL_CARD, title or out.name)
        for path in staging.iterdir():
            if path.is_file():
                path.chmod(0o644)
        if out.exists():
            out.rmdir()
        staging.rename(out)
    finally:
        # mergekit keeps each model's current shard memory-mapped between merges.
        LoaderCache().flush_all()
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _finish_card(card: Path, title: str) -> None:
    """Give mergekit's model card ``card`` the title ``title`` (mergekit titles it with
    the directory it wrote, here the staging one)."""
    if not card.exists():
        return
    lines = card.read_text().splitlines(keepends=True)
    heading = next((i for i, line in enumerate(lines) if line.startswith("# ")), None)
    if heading is not None:
        lines[heading] = f"# {title}\n"
        card.write_text("".join(lines))
