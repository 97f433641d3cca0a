"""A tiny "instruct" / "thinking" pair of real Qwen3 models and their benchmark, built offline.

Both models are fine-tuned from one shared base, so merging them is meaningful:

1. a base model is trained from scratch on chat transcripts of the demo task
   (:mod:`paretomerge.demo.task`) in both reply styles, worked answers (a think block,
   then ``Answer: d``) three times as often as direct ones (``Answer: d``);
2. one copy is fine-tuned on direct answers only: the instruct model, terse and weak;
3. another copy is fine-tuned on worked answers only: the thinking model, long and strong.

Each model directory holds safetensors weights, a word-level tokenizer and a chat template
that turns ``[{"role": "user", "content": question}]`` with ``add_generation_prompt=True``
into the prompt the models were trained on; ``<|im_end|>`` is the eos token and ends every
reply. The benchmark is a held-out set of the same task as a ``numeric`` JSONL file.

The models have 2 layers of width 192. Deeper tiny models (3 or 4 layers of width 128)
learned the worked answers far less reliably within the same CPU budget: for some seeds
not at all. Everything runs on the CPU with at most two threads and is deterministic for
a seed. A marker file records what was built, so building again into the same directory
with the same settings returns the existing pair at once.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedTokenizerFast,
    Qwen3Config,
    Qwen3ForCausalLM,
)

from paretomerge.demo.task import (
    MODULUS,
    OPERATORS,
    THINK_CLOSE,
    THINK_OPEN,
    Problem,
    final_answer,
    held_out_problems,
    problem_stream,
    write_numeric_benchmark,
)

# Bump when the task, tokenizer, model or training changes: cached pairs are rebuilt.
VERSION = 1
MARKER_FILE = "demo-pair.json"
BENCHMARK_FILE = "benchmark.jsonl"
BASE_DIR = "instruct"
EXPERT_DIR = "thinking"
NUM_STEPS = 4
MAX_THREADS = 2
EOS = "<|im_end|>"
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{ '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}"
)
# Reply styles of the shared base's batches, in turn: worked answers are what takes long
# to learn, direct ones only need their format.
BASE_REPLIES = (*[Problem.thinking_reply] * 3, Problem.direct_reply)


@dataclass(frozen=True)
class DemoPair:
    """A built pair: model directories (each with its tokenizer) and the benchmark."""

    base: Path  # instruct model directory
    expert: Path  # thinking model directory
    benchmark: Path  # numeric jsonl
    questions: int


@dataclass(frozen=True)
class TrainingSchedule:
    """Optimiser steps and peak learning rates; every step sees ``batch_size`` new problems."""

    base_steps: int = 240
    finetune_steps: int = 60
    batch_size: int = 64
    base_learning_rate: float = 3e-3
    finetune_learning_rate: float = 2e-3


@dataclass(frozen=True)
class Measurement:
    """One model's answers to a benchmark, scored."""

    accuracy: float
    mean_output_tokens: float  # generated tokens per question, eos included
    parsed: float  # fraction of outputs with a number to read as the answer
    outputs: tuple[str, ...]


def build_demo_pair(
    out_dir: Path,
    *,
    seed: int = 0,
    questions: int = 40,
    progress: Callable[[str], None] | None = None,
) -> DemoPair:
    """Build the instruct/thinking pair and a ``questions``-line benchmark under ``out_dir``
    (``instruct/``, ``thinking/``, ``benchmark.jsonl``), or return the pair already there
    if it was built with the same settings. ``progress`` receives one line per phase."""
    out_dir = Path(out_dir)
    report = progress or (lambda message: None)
    settings = _settings(seed, questions)
    pair = DemoPair(
        base=out_dir / BASE_DIR,
        expert=out_dir / EXPERT_DIR,
        benchmark=out_dir / BENCHMARK_FILE,
        questions=questions,
    )
    if _is_complete(pair, out_dir / MARKER_FILE, settings):
        report(f"reusing the demo pair in {out_dir}")
        return pair
    (out_dir / MARKER_FILE).unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    benchmark = held_out_problems(seed, questions, NUM_STEPS)
    write_numeric_benchmark(pair.benchmark, benchmark)
    # fork_rng: seeding for the build must not change the caller's random state.
    with _cpu_threads(MAX_THREADS), torch.random.fork_rng(devices=[]):
        _train_pair(pair, seed, frozenset(benchmark), TrainingSchedule(), report)
    (out_dir / MARKER_FILE).write_text(json.dumps(settings, indent=2) + "\n")
    return pair


def build_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer over the task's words, with the chat template.

    ``<think>`` and ``</think>`` are added as normal tokens, as in Qwen3, so that decoding
    with ``skip_special_tokens`` keeps them; the chat markers are special tokens."""
    words = [
        *(str(digit) for digit in range(MODULUS)),
        str(MODULUS),
        *OPERATORS,
        *["x", "=", ";", ".", "?", ":"],
        *["What", "is", "mod", "Answer", "system", "user", "assistant"],
    ]
    specials = ["<|endoftext|>", "<unk>", "<|im_start|>", EOS]
    vocab = {token: index for index, token in enumerate([*specials, *words])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token="<unk>",
        eos_token=EOS,
        pad_token="<|endoftext|>",
        extra_special_tokens=["<|im_start|>"],
    )
    tokenizer.add_tokens([AddedToken(tag, special=False) for tag in (THINK_OPEN, THINK_CLOSE)])
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def measure(
    model_dir: Path,
    benchmark: Path,
    limit: int | None = None,
    max_new_tokens: int = 64,
    temperature: float = 0.0,
) -> Measurement:
    """Answer the first ``limit`` questions of a ``numeric`` benchmark with the model in
    ``model_dir`` through its chat template (greedy at ``temperature`` 0, else sampled),
    and score the answers as the benchmark does (:func:`~paretomerge.demo.task.final_answer`
    of the output decoded without special tokens)."""
    rows = [json.loads(line) for line in Path(benchmark).read_text().splitlines()][:limit]
    tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    prompts = [_prompt(tokenizer, row["question"]) for row in rows]
    inputs = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    sampled = temperature > 0
    with _cpu_threads(MAX_THREADS), torch.no_grad():
        generated = model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=sampled,
            temperature=temperature if sampled else None,
            top_k=None,
        )
    replies = generated[:, inputs["input_ids"].shape[1] :]
    lengths = [_reply_length(reply, tokenizer.eos_token_id) for reply in replies]
    outputs = tuple(
        tokenizer.decode(reply[:length], skip_special_tokens=True)
        for reply, length in zip(replies, lengths, strict=True)
    )
    answers = [final_answer(output) for output in outputs]
    return Measurement(
        accuracy=_mean(a == row["answer"] for a, row in zip(answers, rows, strict=True)),
        mean_output_tokens=_mean(lengths),
        parsed=_mean(answer is not None for answer in answers),
        outputs=outputs,
    )


def _settings(seed: int, questions: int) -> dict:
    """What determines a built pair: compared with the marker to decide on reuse."""
    return {
        "version": VERSION,
        "seed": seed,
        "questions": questions,
        "num_steps": NUM_STEPS,
        "schedule": asdict(TrainingSchedule()),
    }


def _is_complete(pair: DemoPair, marker: Path, settings: dict) -> bool:
    """Whether ``pair`` was fully built with ``settings`` (the marker is written last)."""
    if not marker.is_file() or json.loads(marker.read_text()) != settings:
        return False
    return pair.benchmark.is_file() and all(
        (model / "model.safetensors").is_file() and (model / "tokenizer.json").is_file()
        for model in (pair.base, pair.expert)
    )


def _train_pair(
    pair: DemoPair,
    seed: int,
    held_out: frozenset[Problem],
    schedule: TrainingSchedule,
    report: Callable[[str], None],
) -> None:
    """Train the shared base, then fine-tune a copy of it into each model directory."""
    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(_model_config(tokenizer))

    def run_phase(name: str, replies: Sequence[Callable[[Problem], str]], steps: int, rate: float):
        problems = problem_stream(random.Random(f"{seed}-{name}"), NUM_STEPS, held_out)
        started = time.perf_counter()
        loss = _train(
            model, _batches(tokenizer, problems, replies, schedule.batch_size), steps, rate
        )
        report(f"{name}: {steps} steps in {time.perf_counter() - started:.1f} s, loss {loss:.3f}")

    run_phase("shared base", BASE_REPLIES, schedule.base_steps, schedule.base_learning_rate)
    base_state = {key: value.clone() for key, value in model.state_dict().items()}
    for name, directory, reply in (
        ("instruct", pair.base, Problem.direct_reply),
        ("thinking", pair.expert, Problem.thinking_reply),
    ):
        model.load_state_dict(base_state)
        run_phase(name, [reply], schedule.finetune_steps, schedule.finetune_learning_rate)
        _save(model, tokenizer, directory)


def _model_config(tokenizer: PreTrainedTokenizerFast) -> Qwen3Config:
    """Qwen3 with 2 layers of width 192; tied embeddings, like the small Qwen3 models."""
    return Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=192,
        intermediate_size=384,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=48,
        max_position_embeddings=256,
        # Transcripts are short: a small base lets attention tell offsets 6 tokens apart,
        # which copying step k of the question into step k of the reasoning needs.
        rope_parameters={"rope_type": "default", "rope_theta": 100.0},
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def _batches(
    tokenizer: PreTrainedTokenizerFast,
    problems: Iterator[Problem],
    replies: Sequence[Callable[[Problem], str]],
    batch_size: int,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless ``(input_ids, labels)`` batches of chat transcripts, taking the reply styles
    in turn, one per batch; only the reply tokens count in the loss. A style's transcripts
    all have the same length (every number is one token), so no padding is needed."""
    for reply in itertools.cycle(replies):
        batch = [next(problems) for _ in range(batch_size)]
        prompts = [_prompt(tokenizer, problem.question()) for problem in batch]
        prompt_length = len(tokenizer(prompts[0], add_special_tokens=False)["input_ids"])
        texts = [
            prompt + reply(problem) + EOS for prompt, problem in zip(prompts, batch, strict=True)
        ]
        input_ids = torch.tensor(tokenizer(texts, add_special_tokens=False)["input_ids"])
        labels = input_ids.clone()
        labels[:, :prompt_length] = -100
        yield input_ids, labels


def _train(
    model: Qwen3ForCausalLM,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    steps: int,
    learning_rate: float,
) -> float:
    """``steps`` AdamW steps with a short warm-up and a cosine decay; returns the last
    batch's loss."""
    model.train()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=learning_rate, weight_decay=0.01, betas=(0.9, 0.98)
    )
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / steps)),
    )
    loss = torch.tensor(float("nan"))
    for input_ids, labels in itertools.islice(batches, steps):
        loss = model(input_ids=input_ids, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
    model.eval()
    return loss.item()


def _save(model: Qwen3ForCausalLM, tokenizer: PreTrainedTokenizerFast, directory: Path) -> None:
    """Write the model (safetensors) and its tokenizer to ``directory``, replacing it."""
    shutil.rmtree(directory, ignore_errors=True)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)


def _prompt(tokenizer: PreTrainedTokenizerFast, question: str) -> str:
    """The chat prompt for one user question, ending where the assistant's reply starts."""
    messages = [{"role": "user", "content": question}]
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def _reply_length(reply: torch.Tensor, eos_token_id: int) -> int:
    """Generated tokens up to and including the first eos (all of them if none)."""
    ends = (reply == eos_token_id).nonzero()
    return int(ends[0, 0]) + 1 if len(ends) else len(reply)


def _mean(values: Iterable[float | bool]) -> float:
    values = [float(value) for value in values]
    return sum(values) / len(values) if values else 0.0


@contextmanager
def _cpu_threads(limit: int) -> Iterator[None]:
    """Use at most ``limit`` torch threads inside the block, then restore the setting."""
    previous = torch.get_num_threads()
    torch.set_num_threads(min(limit, previous))
    try:
        yield
    finally:
        torch.set_num_threads(previous)
