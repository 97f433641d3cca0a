"""Generation throughput of the ``transformers`` engine on a real-size random-init model.

Builds a random-init Qwen3 model (default: Qwen3-1.7B's shape, bf16, about 4 GB) with a
word-level tokenizer over its whole vocabulary and the demo's chat template, then, in
this one run:

- serves it with the built-in server (``python -m paretomerge.evaluate.server``, the
  ``transformers`` engine's serving path) and sends chat completions over HTTP one at a
  time, as evalscope does against it;
- generates the same requests in this process with the server's own
  :class:`~paretomerge.evaluate.server.ChatModel` (no HTTP): the baseline whose ratio
  shows what serving costs.

A random model almost never emits its end token, so every request generates
``--max-tokens`` tokens. Usage::

    python bench/generation_throughput.py [--device cuda] [--hidden 2048] [--layers 28]
        [--requests 6] [--max-tokens 256] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from real_size import qwen3_config

PROMPT_WORDS = 120


def build_model(path: Path, hidden: int, layers: int, vocab: int, device: str) -> int:
    """Write the random-init model and its tokenizer to ``path``; returns its parameter count."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen3ForCausalLM

    from paretomerge.demo.pair import CHAT_TEMPLATE

    specials = ["<|endoftext|>", "<unk>", "<|im_start|>", "<|im_end|>"]
    words = [f"w{i}" for i in range(vocab - len(specials))]
    core = Tokenizer(
        models.WordLevel(vocab={t: i for i, t in enumerate([*specials, *words])}, unk_token="<unk>")
    )
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token="<unk>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens=["<|im_start|>"],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    config = qwen3_config(
        hidden,
        layers,
        vocab,
        max_position_embeddings=40960,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen3ForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    count = sum(p.numel() for p in model.parameters())
    del model
    return count


def requests(count: int, max_tokens: int) -> list[dict]:
    return [
        {
            "model": "bench",
            "messages": [
                {
                    "role": "user",
                    "content": " ".join(f"w{(i * 7 + j) % 1000}" for j in range(PROMPT_WORDS)),
                }
            ],
            "max_tokens": max_tokens,
            "temperature": 0.6,
            "top_p": 0.95,
            "top_k": 20,
            "seed": i,
        }
        for i in range(count)
    ]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=3600) as response:
        return json.loads(response.read())


def through_server(model_dir: Path, device: str, bodies: list[dict]) -> dict:
    port = free_port()
    started = time.perf_counter()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "paretomerge.evaluate.server",
            str(model_dir),
            "--port",
            str(port),
            "--device",
            device,
            "--dtype",
            "bfloat16",
            "--served-model-name",
            "bench",
        ],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    break
            except OSError:
                if server.poll() is not None:
                    sys.exit("the server exited before it was healthy")
                time.sleep(0.5)
        ready = time.perf_counter() - started
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        post(url, {**bodies[0], "max_tokens": 8})  # warm-up: kernels, allocator
        tokens, seconds = 0, 0.0
        for body in bodies:
            tick = time.perf_counter()
            reply = post(url, body)
            seconds += time.perf_counter() - tick
            tokens += reply["usage"]["completion_tokens"]
    finally:
        server.terminate()
        server.wait(timeout=60)
    return {"startup_s": ready, "tokens": tokens, "seconds": seconds}


def in_process(model_dir: Path, device: str, bodies: list[dict]) -> dict:
    import torch

    from paretomerge.evaluate.server import ChatModel, parse_chat_request

    started = time.perf_counter()
    model = ChatModel(model_dir, device, "bfloat16", None)
    ready = time.perf_counter() - started
    model.complete(parse_chat_request({**bodies[0], "max_tokens": 8}, "bench"))
    tokens, seconds = 0, 0.0
    for body in bodies:
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        tick = time.perf_counter()
        completion = model.complete(parse_chat_request(body, "bench"))
        seconds += time.perf_counter() - tick
        tokens += completion.completion_tokens
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None
    del model
    return {"startup_s": ready, "tokens": tokens, "seconds": seconds, "peak_gib": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--layers", type=int, default=28)
    parser.add_argument("--vocab", type=int, default=151936)
    parser.add_argument("--requests", type=int, default=6)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--workdir", type=Path, help="where the model is written [a temp dir]")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="generation-bench-"))
    model_dir = workdir / "model"
    try:
        tick = time.perf_counter()
        parameters = build_model(model_dir, args.hidden, args.layers, args.vocab, args.device)
        size = sum(f.stat().st_size for f in model_dir.glob("*.safetensors"))
        print(
            f"random-init Qwen3, {parameters / 1e9:.2f} B parameters, {size / 2**30:.2f} GiB "
            f"bf16, written in {time.perf_counter() - tick:.1f} s; {args.requests} requests "
            f"x {args.max_tokens} tokens, prompt ~{PROMPT_WORDS} tokens, T=0.6 top_p 0.95 "
            f"top_k 20, on {args.device}",
            flush=True,
        )
        bodies = requests(args.requests, args.max_tokens)
        served = through_server(model_dir, args.device, bodies)
        direct = in_process(model_dir, args.device, bodies)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)

    rows = []
    for name, result in (("HTTP server (engine path)", served), ("in process (baseline)", direct)):
        rate = result["tokens"] / result["seconds"]
        rows.append(
            (
                name,
                f"{result['startup_s']:.1f}",
                str(result["tokens"]),
                f"{rate:.1f}",
                f"{1000 / rate:.1f}",
                f"{rate / (direct['tokens'] / direct['seconds']):.2f}",
            )
        )
    header = ("path", "load s", "tokens", "tokens/s", "ms/token", "x baseline")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    if direct["peak_gib"] is not None:
        print(f"peak GPU memory (in process): {direct['peak_gib']:.2f} GiB")


if __name__ == "__main__":
    main()
