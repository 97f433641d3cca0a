"""A tiny "instruct" / "thinking" pair of real Qwen3 models and their benchmark, built offline.

Both models are fine-tuned from one shared base, so merging them is meaningful, and what
the thinking model adds sits in known layers, as in real pairs (the thinking pattern of
Qwen3-4B lives mostly in its later layers; arXiv 2510.10977):

1. a shared base is trained from scratch on chat transcripts of the demo task
   (:mod:`paretomerge.demo.task`) in all three reply styles: worked (the steps in a think
   block, then ``Answer: d``), thinking (the steps, a check that writes them all out
   again, the answer) and direct (``Answer: d``). It is trained with 2 layers (deeper
   tiny models learn the worked answers far less reliably within a CPU budget), then
   deepened to 8: its two layers become layers 0 and 4, and the six new ones start with
   zero output projections, so the deepened model computes what the shallow one did;
2. one copy is fine-tuned, every layer, on direct answers: the instruct model, terse and
   weak;
3. another copy is fine-tuned, every layer, on worked answers (its skill, spread out), then
   its last :data:`VERBOSE_LAYERS` layers only on thinking replies: the thinking model,
   accurate and twice as long.

So the check, which doubles the tokens and adds no accuracy, lives in the later layers
only. A merge that takes the thinking model's early layers and the instruct model's late
ones works the steps and skips the check: as accurate as the thinking model at about half
its length. No single model-level weight reaches that: along the model-level line the
check comes with the thinking.

Each model directory holds safetensors weights, a word-level tokenizer and a chat template
that turns ``[{"role": "user", "content": question}]`` with ``add_generation_prompt=True``
into the prompt the models were trained on; ``<|im_end|>`` is the eos token and ends every
reply. The benchmark is a held-out set of the same task as a ``numeric`` JSONL file.

Everything runs on the CPU in one thread (small matrices gain little from a second one,
and lose much when the cores are shared) and is deterministic for a seed. A marker file
records what was built, so building again into the same directory with the same settings
returns the existing pair at once.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import re
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
from transformers.utils import logging as hf_logging

from paretomerge.demo.task import (
    CHECK,
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
VERSION = 2
MARKER_FILE = "demo-pair.json"
BENCHMARK_FILE = "benchmark.jsonl"
BASE_DIR = "instruct"
EXPERT_DIR = "thinking"
NUM_STEPS = 4
NUM_LAYERS = 8
VERBOSE_LAYERS = 3  # the last layers, where the thinking model learns to check
# The shared base is trained with 2 layers, which become these layers of the 8.
SHALLOW_POSITIONS = (0, 4)
MAX_THREADS = 1
EOS = "<|im_end|>"
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{ '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}"
)
# Reply styles of the shared base's batches, in turn: worked answers (the most frequent,
# so the base's own style) are what takes long to learn, checks reuse their skill, direct
# answers only need their format.
BASE_REPLIES = (
    Problem.worked_reply,
    Problem.thinking_reply,
    Problem.worked_reply,
    Problem.direct_reply,
)
_LAYER = re.compile(r"\blayers\.(\d+)\.")
# The training's phases and the cost of a step of each, relative to a shared-base step:
# the training's ETA weights its steps by it (a deeper model and longer replies cost more).
# Measured on the shared 2-core machine, 6 Dec 2026, 8 steps of each in one thread at a
# load of 2: 0.30, 0.72, 1.39 and 1.53 s.
PHASE_STEP_COST = {
    "shared base": 1.0,
    "instruct": 2.4,
    "thinking skill": 4.7,
    "thinking check": 5.2,
}


@dataclass(frozen=True)
class DemoPair:
    """A built pair: model directories (each with its tokenizer) and the benchmark."""

    base: Path  # instruct model directory
    expert: Path  # thinking model directory
    benchmark: Path  # numeric jsonl
    questions: int


@dataclass(frozen=True)
class TrainingSchedule:
    """Optimiser steps and peak learning rates; every step sees ``batch_size`` new problems.

    ``skill_steps`` fine-tune the expert's every layer on worked answers, then
    ``verbose_steps`` its last :data:`VERBOSE_LAYERS` layers on thinking replies."""

    base_steps: int = 280
    instruct_steps: int = 30
    skill_steps: int = 20
    verbose_steps: int = 40
    batch_size: int = 64
    base_learning_rate: float = 3e-3
    finetune_learning_rate: float = 2e-3


@dataclass(frozen=True)
class TrainingProgress:
    """Where the pair's training is after a step: the phase and its steps done, and the
    whole training's work done and in all, in shared-base steps (each step weighted by
    :data:`PHASE_STEP_COST`), which an ETA divides."""

    phase: str
    step: int
    steps: int
    work_done: float
    work_total: float


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
    on_step: Callable[[TrainingProgress], None] | None = None,
) -> DemoPair:
    """Build the instruct/thinking pair and a ``questions``-line benchmark under ``out_dir``
    (``instruct/``, ``thinking/``, ``benchmark.jsonl``), or return the pair already there
    if it was built with the same settings. ``progress`` receives one line per phase,
    ``on_step`` where the training is after every optimiser step."""
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
        _train_pair(pair, seed, frozenset(benchmark), TrainingSchedule(), report, on_step)
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
        *["What", "is", "mod", "Answer", CHECK, "system", "user", "assistant"],
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
    max_new_tokens: int = 80,
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
    on_step: Callable[[TrainingProgress], None] | None = None,
) -> None:
    """Train the shared base, then fine-tune a copy of it into each model directory."""
    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(_model_config(tokenizer, len(SHALLOW_POSITIONS)))
    tracker = _StepTracker(schedule, on_step or (lambda training: None))

    def run_phase(
        name: str,
        replies: Sequence[Callable[[Problem], str]],
        steps: int,
        rate: float,
        layers: range | None = None,
    ) -> None:
        problems = problem_stream(random.Random(f"{seed}-{name}"), NUM_STEPS, held_out)
        started = time.perf_counter()
        batches = _batches(tokenizer, problems, replies, schedule.batch_size)
        loss = _train(model, batches, steps, rate, layers, tracker.phase(name, steps))
        report(f"{name}: {steps} steps in {time.perf_counter() - started:.1f} s, loss {loss:.3f}")

    run_phase("shared base", BASE_REPLIES, schedule.base_steps, schedule.base_learning_rate)
    model = _deepen(model, _model_config(tokenizer, NUM_LAYERS))
    base_state = {key: value.clone() for key, value in model.state_dict().items()}
    rate = schedule.finetune_learning_rate
    run_phase("instruct", [Problem.direct_reply], schedule.instruct_steps, rate)
    _save(model, tokenizer, pair.base)
    model.load_state_dict(base_state)
    run_phase("thinking skill", [Problem.worked_reply], schedule.skill_steps, rate)
    verbose = range(NUM_LAYERS - VERBOSE_LAYERS, NUM_LAYERS)
    run_phase("thinking check", [Problem.thinking_reply], schedule.verbose_steps, rate, verbose)
    _save(model, tokenizer, pair.expert)


class _StepTracker:
    """Counts the training's steps across its phases, weighted by
    :data:`PHASE_STEP_COST`, and tells ``on_step`` after each."""

    def __init__(self, schedule: TrainingSchedule, on_step: Callable[[TrainingProgress], None]):
        steps = {
            "shared base": schedule.base_steps,
            "instruct": schedule.instruct_steps,
            "thinking skill": schedule.skill_steps,
            "thinking check": schedule.verbose_steps,
        }
        self.work_total = sum(count * PHASE_STEP_COST[name] for name, count in steps.items())
        self.work_done = 0.0
        self.on_step = on_step

    def phase(self, name: str, steps: int) -> Callable[[int], None]:
        """The callback of phase ``name``'s steps: told the steps done so far."""

        def stepped(step: int) -> None:
            self.work_done += PHASE_STEP_COST[name]
            self.on_step(TrainingProgress(name, step, steps, self.work_done, self.work_total))

        return stepped


def _model_config(tokenizer: PreTrainedTokenizerFast, num_layers: int) -> Qwen3Config:
    """Qwen3 of width 192; tied embeddings, like the small Qwen3 models."""
    return Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=192,
        intermediate_size=384,
        num_hidden_layers=num_layers,
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


def _deepen(shallow: Qwen3ForCausalLM, config: Qwen3Config) -> Qwen3ForCausalLM:
    """A ``config.num_hidden_layers``-layer model that computes what ``shallow`` does.

    The shallow model's layers go to :data:`SHALLOW_POSITIONS`; every other layer is new,
    with zero output projections (``o_proj``, ``down_proj``), so that its residual branch
    adds nothing until fine-tuning trains it. Embeddings and final norm are kept.
    """
    deep = Qwen3ForCausalLM(config)
    state = deep.state_dict()
    for name, value in shallow.state_dict().items():
        layer = _layer_of(name)
        if layer is not None:
            name = name.replace(f"layers.{layer}.", f"layers.{SHALLOW_POSITIONS[layer]}.", 1)
        state[name] = value
    for name, value in state.items():
        new_layer = _layer_of(name) not in (None, *SHALLOW_POSITIONS)
        if new_layer and name.endswith(("o_proj.weight", "down_proj.weight")):
            state[name] = torch.zeros_like(value)
    deep.load_state_dict(state)
    return deep


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
    layers: range | None = None,
    stepped: Callable[[int], None] = lambda step: None,
) -> float:
    """``steps`` AdamW steps with a short warm-up and a cosine decay, on every parameter
    or, with ``layers``, on those decoder layers' only (embeddings and final norm stay);
    ``stepped`` is told the steps done after each. Returns the last batch's loss."""
    trained = [
        parameter
        for name, parameter in model.named_parameters()
        if layers is None or _layer_of(name) in layers
    ]
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    for parameter in trained:
        parameter.requires_grad_(True)
    model.train()
    optimizer = torch.optim.AdamW(trained, lr=learning_rate, weight_decay=0.01, betas=(0.9, 0.98))
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / steps)),
    )
    loss = torch.tensor(float("nan"))
    for step, (input_ids, labels) in enumerate(itertools.islice(batches, steps), start=1):
        loss = model(input_ids=input_ids, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        stepped(step)
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return loss.item()


def _layer_of(name: str) -> int | None:
    """The decoder layer a parameter belongs to (``model.layers.3.mlp...`` -> 3)."""
    match = _LAYER.search(name)
    return int(match.group(1)) if match else None


def _save(model: Qwen3ForCausalLM, tokenizer: PreTrainedTokenizerFast, directory: Path) -> None:
    """Write the model (safetensors) and its tokenizer to ``directory``, replacing it."""
    shutil.rmtree(directory, ignore_errors=True)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    progress_bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # the demo reports its own progress
    try:
        model.save_pretrained(directory)
    finally:
        if progress_bars:
            hf_logging.enable_progress_bar()
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
