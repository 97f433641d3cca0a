"""Merge and importance throughput on a real-size random-init Qwen3 pair.

Generates a base (Qwen3 layout, hidden 1024, 28 layers, untied ``lm_head``: about
0.75 B parameters, 1.5 GB of bf16 safetensors in shards) and an expert that is the base
plus noise in every tensor, then measures, in this one run and on the same page cache:

- ``cp -r`` of the base directory (the floor for writing a model's bytes);
- a layer-wise ``task_arithmetic`` merge (L + 1 random weights) through
  :func:`paretomerge.merge.merge_models`, in a fresh process: start-up (imports) and the
  merge itself are timed apart, and the process's peak resident set is reported;
- the importance profile of the pair, in a fresh process, against reading every byte
  of both models once (plain buffered reads of the shard files).

Usage: ``python bench/merge_throughput.py [--workdir DIR] [--hidden 1024] [--layers 28]``.
Every step runs ``--repeats`` times (each in a fresh process) and its median run is
reported. Targets (issue 3): merge <= 3 x copy; merge peak RSS <= 1 GiB + one model's size;
importance <= 2 x reading both models.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from real_size import qwen3_config

GIB = 1 << 30

# Child processes: each prints one JSON line. The peak resident set is VmHWM of
# /proc/self/status (kB), which starts afresh at exec; getrusage's ru_maxrss would not: it
# is carried across fork and exec, so every child would report this process's own peak.
_CHILD_PRELUDE = """
import json, re, sys, time
def peak_rss():
    with open('/proc/self/status') as status:
        return int(re.search(r'VmHWM:\\s+(\\d+) kB', status.read()).group(1)) * 1024
t0 = time.perf_counter()
{imports}
t1 = time.perf_counter()
rss_after_import = peak_rss()
"""
_CHILD_EPILOGUE = """
t2 = time.perf_counter()
print(json.dumps({"startup_s": t1 - t0, "work_s": t2 - t1, "peak_rss": peak_rss(),
    "rss_after_import": rss_after_import}))
"""

MERGE_CHILD = (
    _CHILD_PRELUDE.format(
        imports="import mergekit.merge, transformers\n"
        "from paretomerge.merge import ExecutionOptions, merge_models, plan_from_weights"
    )
    + (
        "args = json.loads(sys.argv[1])\n"
        "plan = plan_from_weights(args['base'], [args['expert']], 'task_arithmetic',\n"
        "                         args['weights'], args['layers'])\n"
        "merge_models(plan, args['out'], ExecutionOptions(**args['options']))\n"
    )
    + _CHILD_EPILOGUE
)

IMPORTANCE_CHILD = (
    _CHILD_PRELUDE.format(
        imports="from paretomerge.importance import compute_profile\n"
        "from paretomerge.tensor_layout import TensorLayout\n"
        "import transformers, mergekit.architecture"
    )
    + ("args = json.loads(sys.argv[1])\ncompute_profile(args['base'], [args['expert']])\n")
    + _CHILD_EPILOGUE
)

# Reading a model once: every byte of every shard into memory (64 MiB at a time). A
# safetensors tensor alone would not do: it is a lazy memory map until its data is used.
READ_CHILD = (
    _CHILD_PRELUDE.format(imports="from paretomerge.checkpoint import Checkpoint")
    + "args = json.loads(sys.argv[1])\n"
    "buffer = memoryview(bytearray(64 << 20))\n"
    "for path in (args['base'], args['expert']):\n"
    "    for shard in sorted({i.shard for i in Checkpoint(path).tensors.values()}):\n"
    "        with open(shard, 'rb', buffering=0) as stream:\n"
    "            while stream.readinto(buffer):\n"
    "                pass\n" + _CHILD_EPILOGUE
)


def generate_pair(workdir: Path, hidden: int, layers: int, shard_bytes: int) -> None:
    """Write the base and the expert (base + N(0, 0.002^2) noise) as sharded bf16 checkpoints."""
    import torch
    from safetensors.torch import save_file
    from transformers import Qwen3ForCausalLM

    config = qwen3_config(hidden, layers, tie_word_embeddings=False)
    with torch.device("meta"):
        shapes = {n: p.shape for n, p in Qwen3ForCausalLM(config).state_dict().items()}
    generator = torch.Generator().manual_seed(0)
    paths = (workdir / "base", workdir / "expert")
    for path in paths:
        path.mkdir()
        config.save_pretrained(path)
    weight_map: dict[str, str] = {}
    shards: list[list[str]] = [[]]
    size = 0
    for name, shape in shapes.items():
        nbytes = 2 * shape.numel()
        if shards[-1] and size + nbytes > shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(name)
        size += nbytes
    for index, names in enumerate(shards):
        shard_name = f"model-{index + 1:05d}-of-{len(shards):05d}.safetensors"
        base, expert = {}, {}
        for name in names:
            shape = shapes[name]
            scale = 1.0 if len(shape) == 1 else 0.02
            weight = scale * torch.randn(shape, generator=generator) + (len(shape) == 1)
            base[name] = weight.to(torch.bfloat16)
            expert[name] = (weight + 0.002 * torch.randn(shape, generator=generator)).to(
                torch.bfloat16
            )
            weight_map[name] = shard_name
        save_file(base, paths[0] / shard_name, metadata={"format": "pt"})
        save_file(expert, paths[1] / shard_name, metadata={"format": "pt"})
        del base, expert
    index = {
        "metadata": {"total_size": sum(2 * s.numel() for s in shapes.values())},
        "weight_map": weight_map,
    }
    for path in paths:
        (path / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))


def run_child(code: str, args: dict) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", code, json.dumps(args)],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
    )
    if result.returncode != 0:
        sys.exit(f"benchmark step failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def time_copy(source: Path, target: Path) -> float:
    start = time.perf_counter()
    subprocess.run(["cp", "-r", str(source), str(target)], check=True)
    elapsed = time.perf_counter() - start
    shutil.rmtree(target)
    return elapsed


def merge_once(merge_args: dict) -> dict:
    result = run_child(MERGE_CHILD, merge_args)
    shutil.rmtree(merge_args["out"])
    return result


def median_run(repeats: int, measure) -> dict:
    """The run of ``measure()`` (a dict with ``work_s``) whose time is the median."""
    runs = sorted((measure() for _ in range(repeats)), key=lambda r: r["work_s"])
    return runs[len(runs) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep the generated pair here and reuse it on later runs (default: a temp dir)",
    )
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=28)
    parser.add_argument("--shard-mb", type=int, default=500, help="input shard size")
    parser.add_argument("--out-shard-mb", type=int, default=256, help="merge output shards")
    parser.add_argument("--async-write", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--threads", type=int, default=None, help="torch threads in the merge")
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs of each step; the median is reported"
    )
    parser.add_argument(
        "--devices",
        default="cpu",
        help="comma-separated devices to merge on, each timed (e.g. cpu,cuda: mergekit's --cuda)",
    )
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="merge-bench-"))
    try:
        start = time.perf_counter()
        base, expert = workdir / "base", workdir / "expert"
        if not (base.is_dir() and expert.is_dir()):
            workdir.mkdir(parents=True, exist_ok=True)
            generate_pair(workdir, args.hidden, args.layers, args.shard_mb << 20)
        model_bytes = sum(f.stat().st_size for f in base.glob("*.safetensors"))
        print(
            f"{model_bytes / GIB:.2f} GiB bf16 pair "
            f"({len(list(base.glob('*.safetensors')))} shards each) "
            f"ready in {time.perf_counter() - start:.1f} s under {workdir}"
        )
        pair = {"base": str(base), "expert": str(expert)}
        run_child(READ_CHILD, pair)  # warm the page cache for every measurement below
        read = median_run(args.repeats, lambda: run_child(READ_CHILD, pair))
        copy_s = median_run(args.repeats, lambda: {"work_s": time_copy(base, workdir / "copy")})[
            "work_s"
        ]
        rng = random.Random(0)
        weights = [rng.random() for _ in range(args.layers + 1)]
        merges = {}
        for device in args.devices.split(","):
            merge_args = {
                **pair,
                "out": str(workdir / "merged"),
                "layers": args.layers,
                "weights": weights,
                "options": {
                    "device": device,
                    "out_shard_bytes": args.out_shard_mb << 20,
                    "async_write": args.async_write,
                    "num_threads": args.threads,
                },
            }
            merges[device] = median_run(args.repeats, lambda a=merge_args: merge_once(a))
        importance = median_run(args.repeats, lambda: run_child(IMPORTANCE_CHILD, pair))
    finally:
        shutil.rmtree(workdir / "merged", ignore_errors=True)
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)

    rss_limit = GIB + model_bytes
    rows = [
        ("cp -r base", f"{copy_s:.2f}", "", "", ""),
        *(
            (
                f"merge task_arithmetic (layer-wise, {device})",
                f"{merged['work_s']:.2f}",
                f"{merged['startup_s']:.2f}",
                f"{merged['peak_rss'] / GIB:.2f}",
                f"{merged['work_s'] / copy_s:.2f} x copy (target <= 3); "
                f"RSS target <= {rss_limit / GIB:.2f} GiB",
            )
            for device, merged in merges.items()
        ),
        (
            "read base + expert once",
            f"{read['work_s']:.2f}",
            f"{read['startup_s']:.2f}",
            f"{read['peak_rss'] / GIB:.2f}",
            "",
        ),
        (
            "importance profile",
            f"{importance['work_s']:.2f}",
            f"{importance['startup_s']:.2f}",
            f"{importance['peak_rss'] / GIB:.2f}",
            f"{importance['work_s'] / read['work_s']:.2f} x read (target <= 2)",
        ),
    ]
    header = ("step", "time s", "start-up s", "peak RSS GiB", "ratio")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
    merged = merges[args.devices.split(",")[0]]  # the targets are for the first device
    ok = (
        merged["work_s"] <= 3 * copy_s
        and merged["peak_rss"] <= rss_limit
        and importance["work_s"] <= 2 * read["work_s"]
    )
    print("targets met" if ok else "TARGETS MISSED")


if __name__ == "__main__":
    main()
