"""The demo's instruct/thinking pair: built offline, loadable, cached, and a trade-off that
per-layer merging reaches and model-level merging does not."""

from __future__ import annotations

import json
import random
import re
import time
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from paretomerge.demo import DemoPair, Measurement, build_demo_pair, measure
from paretomerge.demo.pair import (
    NUM_LAYERS,
    PHASE_STEP_COST,
    VERBOSE_LAYERS,
    TrainingProgress,
    TrainingSchedule,
    _train_pair,
)
from paretomerge.demo.task import (
    Problem,
    final_answer,
    held_out_problems,
    problem_stream,
    write_numeric_benchmark,
)
from paretomerge.importance import compute_profile
from paretomerge.merge import merge_models, plan_from_weights

QUESTIONS = 40
STEP = re.compile(r"x = x ([+*]) (\d+)")


@pytest.fixture(scope="module")
def built(demo_build):
    """The session's pair (conftest): training takes a minute or more, so once."""
    return demo_build


@pytest.fixture(scope="module")
def pair(built) -> DemoPair:
    return built.pair


@pytest.fixture(scope="module")
def scores(pair) -> dict[str, Measurement]:
    """Greedy answers of both models to the whole benchmark."""
    return {
        "instruct": measure(pair.base, pair.benchmark),
        "thinking": measure(pair.expert, pair.benchmark),
    }


def solve(question: str) -> int:
    """The answer to a benchmark question, computed from its text alone."""
    value = int(re.match(r"x = (\d+);", question).group(1))
    for op, operand in STEP.findall(question):
        value = value + int(operand) if op == "+" else value * int(operand)
    return value % 10


def test_build_reports_each_phase_and_restores_torch_state(built):
    if built.lines and built.lines[0].startswith("reusing"):
        pytest.skip("PARETOMERGE_DEMO_PAIR_DIR named a pair built earlier: nothing was trained")
    pair = built.pair
    phases = ["shared base", "instruct", "thinking skill", "thinking check"]
    assert [line.split(":")[0] for line in built.lines] == phases
    assert built.threads[0] == built.threads[1]
    assert built.rng_unchanged
    for model in (pair.base, pair.expert):
        assert (model / "model.safetensors").is_file()
        assert (model / "tokenizer.json").is_file()
    assert pair.base.parent == pair.expert.parent == pair.benchmark.parent


def test_training_tells_every_step_with_its_work_weighted_by_the_steps_cost(tmp_path):
    """What the training's bar and ETA are fed: each phase's steps, and the work done of
    the whole in shared-base steps (a tiny schedule: the counting, not the learning)."""
    schedule = TrainingSchedule(
        base_steps=2, instruct_steps=1, skill_steps=1, verbose_steps=1, batch_size=2
    )
    pair = DemoPair(tmp_path / "instruct", tmp_path / "thinking", tmp_path / "q.jsonl", 0)
    told: list[TrainingProgress] = []
    _train_pair(pair, 0, frozenset(), schedule, lambda line: None, told.append)
    phases = ["shared base", "shared base", "instruct", "thinking skill", "thinking check"]
    assert [(t.phase, t.step, t.steps) for t in told] == list(
        zip(phases, [1, 2, 1, 1, 1], [2, 2, 1, 1, 1], strict=True)
    )
    costs = [PHASE_STEP_COST[phase] for phase in phases]
    assert [t.work_done for t in told] == pytest.approx(
        [sum(costs[: k + 1]) for k in range(len(costs))]
    )
    assert [t.work_total for t in told] == pytest.approx([sum(costs)] * len(told))


def test_models_share_architecture_and_differ_most_in_the_late_layers(pair):
    base = AutoModelForCausalLM.from_pretrained(pair.base)
    expert = AutoModelForCausalLM.from_pretrained(pair.expert)
    assert type(base).__name__ == type(expert).__name__ == "Qwen3ForCausalLM"
    assert base.config.num_hidden_layers == NUM_LAYERS >= 8
    assert (pair.base / "config.json").read_text() == (pair.expert / "config.json").read_text()
    base_state, expert_state = base.state_dict(), expert.state_dict()
    assert base_state.keys() == expert_state.keys()
    for name, tensor in base_state.items():
        assert tensor.shape == expert_state[name].shape, name
    # The importance profile sees where the thinking model's check was trained.
    layers = compute_profile(pair.base, [pair.expert]).layers
    assert all(value > 0 for value in layers)
    late = range(NUM_LAYERS - VERBOSE_LAYERS, NUM_LAYERS)
    assert min(layers[k] for k in late) > max(layers[: late.start])


def test_chat_template_renders_the_training_prompt(pair):
    question = json.loads(pair.benchmark.read_text().splitlines()[0])["question"]
    for model in (pair.base, pair.expert):
        tokenizer = AutoTokenizer.from_pretrained(model)
        messages = [{"role": "user", "content": question}]
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        assert prompt == f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
        ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        assert tokenizer.unk_token_id not in ids
        assert tokenizer.eos_token == "<|im_end|>"
        generation = AutoModelForCausalLM.from_pretrained(model).generation_config
        assert generation.eos_token_id == tokenizer.eos_token_id
        # <think> is a normal token, as in Qwen3: decoding without special tokens keeps it.
        tagged = tokenizer("<think>\n1 + 3 = 4.\n</think>", add_special_tokens=False)
        assert "</think>" in tokenizer.decode(tagged["input_ids"], skip_special_tokens=True)


def test_benchmark_is_numeric_jsonl_with_correct_answers(pair):
    rows = [json.loads(line) for line in pair.benchmark.read_text().splitlines()]
    assert len(rows) == pair.questions == QUESTIONS
    assert len({row["question"] for row in rows}) == QUESTIONS
    for row in rows:
        assert set(row) == {"question", "answer"}
        assert row["answer"] == str(solve(row["question"]))
    # Every step is a bijection of the digits: answers spread over many values.
    assert len({row["answer"] for row in rows}) >= 6


def test_second_build_reuses_the_pair(pair):
    stamps = {path: path.stat().st_mtime_ns for path in pair.base.parent.rglob("*")}
    lines: list[str] = []
    started = time.perf_counter()
    again = build_demo_pair(pair.base.parent, seed=0, questions=QUESTIONS, progress=lines.append)
    assert time.perf_counter() - started < 5
    assert again == pair
    assert lines == [f"reusing the demo pair in {pair.base.parent}"]
    assert {path: path.stat().st_mtime_ns for path in pair.base.parent.rglob("*")} == stamps


def test_thinking_is_more_accurate_and_longer_than_instruct(scores):
    instruct, thinking = scores["instruct"], scores["thinking"]
    assert instruct.parsed == thinking.parsed == 1.0
    assert not any("<think>" in output for output in instruct.outputs)
    assert all("</think>" in output and "check" in output for output in thinking.outputs)
    assert thinking.accuracy >= instruct.accuracy + 0.5
    assert thinking.mean_output_tokens >= 5 * instruct.mean_output_tokens


def test_early_thinking_layers_with_late_instruct_layers_skip_the_check(pair, scores, tmp_path):
    """The trade-off per-layer merging reaches: the thinking model's accuracy at about
    half its tokens; along the model-level line the check comes with the thinking."""
    instruct, thinking = scores["instruct"], scores["thinking"]
    late = VERBOSE_LAYERS
    weights = [1.0] * (NUM_LAYERS - late) + [0.0] * late + [1.0]  # last: the head
    plan = plan_from_weights(pair.base, [pair.expert], "task_arithmetic", weights, NUM_LAYERS)
    layered = measure(merge_models(plan, tmp_path / "layered"), pair.benchmark)
    assert layered.accuracy >= thinking.accuracy - 0.1
    assert layered.mean_output_tokens <= 0.6 * thinking.mean_output_tokens
    assert not any("check" in output for output in layered.outputs)
    for weight in (0.6, 0.7, 0.8):
        plan = plan_from_weights(pair.base, [pair.expert], "task_arithmetic", [weight], NUM_LAYERS)
        merged = measure(merge_models(plan, tmp_path / f"model-{weight}"), pair.benchmark)
        assert merged.parsed >= 0.5, weight
        # Never the layered merge's accuracy at its length: one or the other is lost.
        compact = merged.mean_output_tokens <= 0.6 * thinking.mean_output_tokens
        assert not (compact and merged.accuracy >= layered.accuracy - 0.1), weight
        assert merged.mean_output_tokens >= instruct.mean_output_tokens - 1, weight


def test_problem_formats():
    problem = Problem(start=7, steps=(("+", 9), ("*", 3)))
    assert problem.question() == "x = 7; x = x + 9; x = x * 3. What is x mod 10?"
    assert problem.direct_reply() == "Answer: 8"
    assert problem.worked_reply() == "<think>\n7 + 9 = 6; 6 * 3 = 8.\n</think>\n\nAnswer: 8"
    assert problem.thinking_reply() == (
        "<think>\n7 + 9 = 6; 6 * 3 = 8.\ncheck: 7 + 9 = 6; 6 * 3 = 8.\n</think>\n\nAnswer: 8"
    )


@pytest.mark.parametrize(
    ("output", "answer"),
    [
        ("<think> 7 + 9 = 6 ; 6 * 3 = 8 . </think> Answer : 8", "8"),
        ("<think> 7 + 9 = 6 </think> no number here", None),
        ("Answer: 3", "3"),
        ("<think> 7 + 9 = 6 ; 6 * 3", "3"),
        ("", None),
    ],
)
def test_final_answer_is_the_last_number_after_the_think_block(output, answer):
    assert final_answer(output) == answer


def test_held_out_problems_are_fixed_distinct_and_never_trained_on(tmp_path: Path):
    first = held_out_problems(3, 50, 4)
    assert first == held_out_problems(3, 50, 4) != held_out_problems(4, 50, 4)
    assert len(set(first)) == 50
    # One-step problems: 60 exist, so 2000 draws would meet the held-out ones often.
    held_out = frozenset(held_out_problems(0, 5, 1))
    stream = problem_stream(random.Random(0), 1, excluded=held_out)
    drawn = {next(stream) for _ in range(2000)}
    assert len(drawn) == 60 - len(held_out)
    assert drawn.isdisjoint(held_out)
    path = write_numeric_benchmark(tmp_path / "b.jsonl", first[:2])
    assert [json.loads(line) for line in path.read_text().splitlines()] == [
        {"question": problem.question(), "answer": str(problem.answer())} for problem in first[:2]
    ]
