"""paretomerge.evaluate: serving, benchmarks through evalscope, scoring, the CLI command.

Scores are checked against a scripted OpenAI endpoint on 127.0.0.1 (known replies and
known usage) so that evalscope's real client path is exercised; the built-in transformers
server is checked with a tiny random model; ``vllm`` is a fake executable on PATH.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from builders import run_manifest
from tiny_models import make_base
from typer.testing import CliRunner

from paretomerge.cli import app
from paretomerge.evaluate import (
    BenchmarkDataError,
    BenchmarkScore,
    EvalscopeOutputError,
    EvaluationResult,
    ServingError,
    evaluate_model,
)
from paretomerge.evaluate.benchmarks import STAGED_DATA_DIR
from paretomerge.evaluate.evalscope_task import output_closed_thinking
from paretomerge.evaluate.scoring import SampleRecord, final_number, score_benchmark, tokens_stderr
from paretomerge.evaluate.serving import serve, stop_process_group
from paretomerge.questions import QuestionSplit, QuestionStages
from paretomerge.results import StageResult
from paretomerge.screening_files import screening_stage_file
from paretomerge.spec import (
    BenchmarkSpec,
    EndpointSpec,
    EvaluationSpec,
    ObjectivesSpec,
    SamplingSpec,
    SecretKeyRef,
)

API_KEY_VARIABLE = "PARETOMERGE_TEST_API_KEY"
API_KEY = "sk-test-not-to-be-logged"
SAMPLING = SamplingSpec(temperature=0.6, top_p=0.95, top_k=20)
BASE_SAMPLING = SamplingSpec(temperature=0.7, top_p=0.8, top_k=20)
MAX_TOKENS = 64


# --- a scripted OpenAI endpoint ---------------------------------------------------------------

Reply = Callable[[str], str]


def choice_letter(prompt: str, choice: str) -> str:
    """The letter evalscope gave ``choice`` in a multiple-choice prompt (``B) text``)."""
    return re.search(rf"^([A-J])\) {re.escape(choice)}$", prompt, re.MULTILINE).group(1)


# question -> (reply given the prompt, completion tokens reported in usage)
GPQA = [
    ("Which gas do plants absorb?", "CO2", ("O2", "N2", "He")),
    ("Which particle has no charge?", "neutron", ("proton", "electron", "positron")),
    ("Which organelle makes ATP?", "mitochondrion", ("ribosome", "nucleus", "vacuole")),
    ("Which is a noble gas?", "argon", ("sodium", "iron", "carbon")),
]
AIME = [("Compute 6 times 7.", "42"), ("Compute 100 minus 1.", "99"), ("Compute 2 to the 3.", "8")]
NUMERIC = [
    ("x = 7; x = x + 5. What is x mod 10?", "2"),
    ("x = 3; x = x * 3. What is x mod 10?", "9"),
    ("x = 4; x = x - 1. What is x mod 10?", "3"),
    ("What is 6 times 7?", "42"),
    ("What is 1 plus 1?", "2"),
]
MULTIPLE_CHOICE = [
    ("Capital of France?", ["Berlin", "Paris", "Rome"], "B"),
    ("Largest planet?", ["Jupiter", "Mars", "Venus"], "A"),
    ("Smallest prime?", ["1", "4", "2", "9"], "C"),
]
NO_USAGE_QUESTION = "How many moons has Mars?"
SCRIPT: dict[str, tuple[Reply, int | None]] = {
    # gpqa_diamond: right (thinking closed), wrong, right, unfinished thinking
    GPQA[0][0]: (
        lambda p: f"<think>\nCO2 it is\n</think>\n\nANSWER: {choice_letter(p, 'CO2')}",
        30,
    ),
    GPQA[1][0]: (lambda p: f"ANSWER: {choice_letter(p, 'proton')}", 10),
    GPQA[2][0]: (lambda p: f"ANSWER: {choice_letter(p, 'mitochondrion')}", 12),
    GPQA[3][0]: (lambda p: "<think>\nargon or sodium, A or B", 100),
    # aime25: right, right after a thinking block without its opening tag, wrong
    AIME[0][0]: (lambda p: "6 * 7 = 42, so \\boxed{42}", 9),
    AIME[1][0]: (lambda p: "100 - 1 ...\n</think>\n\nThe answer is \\boxed{99}.", 21),
    AIME[2][0]: (lambda p: "\\boxed{6}", 3),
    # numeric: right, right (the 5 in the thinking is not the answer), wrong, 42.0 == 42, none
    NUMERIC[0][0]: (lambda p: "Answer: 2", 3),
    NUMERIC[1][0]: (lambda p: "<think>\n3 * 3 = 9; 9 + 5 = 5.\n</think>\n\nAnswer: 9", 25),
    NUMERIC[2][0]: (lambda p: "<think>\n4 - 1 = 3.\n</think>\n\nAnswer: 4", 20),
    NUMERIC[3][0]: (lambda p: "Answer: 42.0", 4),
    NUMERIC[4][0]: (lambda p: "I do not know.", 8),
    # multiple choice: right, wrong, right after thinking
    MULTIPLE_CHOICE[0][0]: (lambda p: "Answer: B", 3),
    MULTIPLE_CHOICE[1][0]: (lambda p: "ANSWER: C", 3),
    MULTIPLE_CHOICE[2][0]: (lambda p: "<think>\nA? no, C.\n</think>\nANSWER: C", 15),
    NO_USAGE_QUESTION: (lambda p: "Answer: 2", None),  # a server that reports no usage
}
EXPECTED = {  # name: (accuracy, mean output tokens, thinking closed, n)
    "gpqa_diamond": (2 / 4, (30 + 10 + 12 + 100) / 4, 1 / 4, 4),
    "aime25": (2 / 3, (9 + 21 + 3) / 3, 1 / 3, 3),
    "house-qa": (2 / 3, (3 + 3 + 15) / 3, 1 / 3, 3),
    "mod-ten": (3 / 5, (3 + 25 + 20 + 4 + 8) / 5, 2 / 5, 5),
}


class ScriptedEndpoint(ThreadingHTTPServer):
    """An OpenAI chat endpoint that answers from :data:`SCRIPT` and records requests."""

    daemon_threads = True
    model = "scripted"

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _ScriptedHandler)
        self.requests: list[dict] = []
        self.authorizations: set[str] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _ScriptedHandler(BaseHTTPRequestHandler):
    server: ScriptedEndpoint

    def do_GET(self) -> None:
        self._send({"object": "list", "data": [{"id": self.server.model, "object": "model"}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(body)
        self.server.authorizations.add(self.headers.get("Authorization", ""))
        prompt = body["messages"][-1]["content"]
        reply, tokens = next(v for q, v in SCRIPT.items() if q in prompt)
        usage = None
        if tokens is not None:
            usage = {"prompt_tokens": 11, "completion_tokens": tokens, "total_tokens": 11 + tokens}
        self._send(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply(prompt)},
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage,
            }
        )

    def _send(self, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def endpoint():
    server = ScriptedEndpoint()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


# --- benchmark data on a volume ---------------------------------------------------------------


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


@pytest.fixture(scope="module")
def volume(tmp_path_factory) -> Path:
    """gpqa_diamond and aime25 in evalscope's local formats, and two user jsonl files."""
    root = tmp_path_factory.mktemp("volume")
    write_jsonl(
        root / "datasets/gpqa_diamond/train.jsonl",
        [
            {
                "Question": q,
                "Correct Answer": right,
                **{f"Incorrect Answer {i + 1}": w for i, w in enumerate(wrong)},
                "Subdomain": "test",
            }
            for q, right, wrong in GPQA
        ],
    )
    write_jsonl(root / "datasets/aime25/test.jsonl", [{"problem": q, "answer": a} for q, a in AIME])
    write_jsonl(
        root / "data/house-qa.jsonl",
        [{"question": q, "choices": c, "answer": a} for q, c, a in MULTIPLE_CHOICE],
    )
    write_jsonl(root / "data/mod-ten.jsonl", [{"question": q, "answer": a} for q, a in NUMERIC])
    return root


OBJECTIVES = ObjectivesSpec(
    benchmarks=[
        BenchmarkSpec(name="gpqa_diamond"),
        BenchmarkSpec(name="aime25"),
        BenchmarkSpec(
            name="house-qa", type="jsonl", path="data/house-qa.jsonl", format="multiple_choice"
        ),
        BenchmarkSpec(name="mod-ten", type="jsonl", path="data/mod-ten.jsonl", format="numeric"),
    ]
)


def endpoint_evaluation(url: str, **fields) -> EvaluationSpec:
    return EvaluationSpec(
        engine="endpoint",
        endpoint=EndpointSpec(
            url=url, api_key_secret=SecretKeyRef(name="llm-api", key=API_KEY_VARIABLE)
        ),
        max_tokens=MAX_TOKENS,
        concurrency=4,
        **fields,
    )


def evaluate_scripted(
    endpoint: ScriptedEndpoint, objectives: ObjectivesSpec, volume: Path, work_dir: Path, **options
) -> EvaluationResult:
    """``objectives`` evaluated against the scripted endpoint (with its API key)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(API_KEY_VARIABLE, API_KEY)
        return evaluate_model(
            Path("unused-by-endpoint"),
            evaluation=endpoint_evaluation(endpoint.url),
            objectives=objectives,
            sampling=SAMPLING,
            volume=volume,
            work_dir=work_dir,
            **options,
        )


@pytest.fixture(scope="module")
def scripted(endpoint, volume, tmp_path_factory) -> tuple[EvaluationResult, Path]:
    """Every benchmark kind evaluated once against the scripted endpoint."""
    work_dir = tmp_path_factory.mktemp("work")
    return evaluate_scripted(endpoint, OBJECTIVES, volume, work_dir), work_dir


# --- scores on known answers ------------------------------------------------------------------


@pytest.mark.parametrize("name", list(EXPECTED))
def test_scores_on_known_answers(scripted, name):
    accuracy, tokens, closed, n = EXPECTED[name]
    score = scripted[0].scores[name]
    assert score.name == name
    assert score.n == n
    assert score.accuracy == pytest.approx(accuracy)
    q = (accuracy * n + 0.5) / (n + 1)  # Jeffreys' estimate
    assert score.accuracy_stderr == pytest.approx(math.sqrt(q * (1 - q) / n))
    assert score.mean_output_tokens == pytest.approx(tokens)
    assert score.thinking_closed == pytest.approx(closed)


def test_results_keep_the_run_order_and_round_trip_through_json(scripted):
    result = scripted[0]
    assert list(result.scores) == [b.name for b in OBJECTIVES.benchmarks]
    assert result.seconds > 0
    assert EvaluationResult.model_validate_json(result.model_dump_json()) == result
    # Its cost: every answer and its tokens, the generation; an endpoint starts no server.
    scores = result.scores.values()
    assert result.cost.answers == sum(s.n * s.repeats for s in scores)
    tokens = sum(s.mean_output_tokens * s.n * s.repeats for s in scores)
    assert result.cost.output_tokens == pytest.approx(tokens)
    assert result.cost.serve_seconds == 0.0 and 0 < result.cost.generate_seconds < result.seconds


def test_requests_carry_the_sampling_and_the_api_key(endpoint, scripted):
    assert endpoint.authorizations == {f"Bearer {API_KEY}"}
    for body in endpoint.requests:
        assert body["model"] == ScriptedEndpoint.model
        assert (body["temperature"], body["top_p"], body["top_k"]) == (0.6, 0.95, 20)
        assert body["max_tokens"] == MAX_TOKENS


def test_the_api_key_is_never_written(scripted):
    work_dir = scripted[1]
    for path in work_dir.rglob("*"):
        if path.is_file():
            assert API_KEY not in path.read_text(errors="replace"), path


def test_jsonl_prompts_are_the_question_and_choices_only(endpoint, scripted):
    prompts = {body["messages"][-1]["content"] for body in endpoint.requests}
    for body in endpoint.requests:
        assert [m["role"] for m in body["messages"]] == ["user"]
    for question, _ in NUMERIC:
        assert question in prompts
    assert "Capital of France?\n\nA) Berlin\nB) Paris\nC) Rome" in prompts


def test_evalscope_outputs_go_to_the_work_dir(scripted):
    work_dir = scripted[1]
    for name in EXPECTED:
        assert list((work_dir / "benchmarks" / name / "predictions").rglob("*.jsonl"))
        assert (work_dir / "benchmarks" / name / "logs" / "eval_log.log").is_file()


def test_every_sample_is_recorded_with_its_question(scripted):
    result, work_dir = scripted
    for name, (accuracy, tokens, _, n) in EXPECTED.items():
        lines = (work_dir / "benchmarks" / name / "records.jsonl").read_text().splitlines()
        records = [json.loads(line) for line in lines]
        assert sorted(r["question"] for r in records) == list(range(n))
        assert {r["repeat"] for r in records} == {0}
        assert sum(r["correct"] for r in records) / n == pytest.approx(accuracy)
        assert sum(r["output_tokens"] for r in records) / n == pytest.approx(tokens)
        own = statistics.stdev(r["output_tokens"] for r in records)
        spread = tokens_stderr(tokens, own, n)  # the spread shrunk towards the prior's
        assert result.scores[name].mean_output_tokens_stderr == pytest.approx(spread)


def test_repeats_ask_every_question_again_and_average_over_the_answers(endpoint, volume, tmp_path):
    objectives = ObjectivesSpec(
        benchmarks=[
            BenchmarkSpec(name="aime25"),
            BenchmarkSpec(
                name="mod-ten", type="jsonl", path="data/mod-ten.jsonl", format="numeric", repeats=3
            ),
        ],
        repeats=2,
    )
    result = evaluate_scripted(endpoint, objectives, volume, tmp_path)
    for name, repeats in (("aime25", 2), ("mod-ten", 3)):
        accuracy, tokens, _, n = EXPECTED[name]
        score = result.scores[name]
        assert (score.n, score.repeats) == (n, repeats)
        # the scripted replies do not vary: the same means, over n * repeats answers
        assert score.accuracy == pytest.approx(accuracy)
        assert score.mean_output_tokens == pytest.approx(tokens)
        q = (accuracy * n * repeats + 0.5) / (n * repeats + 1)  # Jeffreys' estimate
        assert score.accuracy_stderr == pytest.approx(math.sqrt(q * (1 - q) / (n * repeats)))
        lines = (tmp_path / "benchmarks" / name / "records.jsonl").read_text().splitlines()
        asked = sorted((r["question"], r["repeat"]) for r in map(json.loads, lines))
        assert asked == [(q, k) for q in range(n) for k in range(repeats)]


def test_held_out_questions_never_reach_a_search_evaluation(endpoint, volume, tmp_path):
    objectives = ObjectivesSpec(
        benchmarks=[
            BenchmarkSpec(name="aime25"),
            BenchmarkSpec(
                name="mod-ten", type="jsonl", path="data/mod-ten.jsonl", format="numeric"
            ),
        ]
    )
    asked: dict[str, dict[str, set[int]]] = {}
    prompts: dict[str, list[str]] = {}
    for part in ("search", "held-out"):
        split = QuestionSplit(held_out=0.4, seed=7, part=part)
        already = len(endpoint.requests)
        evaluate_scripted(endpoint, objectives, volume, tmp_path / part, questions=split)
        prompts[part] = [b["messages"][-1]["content"] for b in endpoint.requests[already:]]
        asked[part] = {
            name: {
                json.loads(line)["question"]
                for line in (tmp_path / part / "benchmarks" / name / "records.jsonl")
                .read_text()
                .splitlines()
            }
            for name in ("aime25", "mod-ten")
        }
    for name, questions in (("aime25", AIME), ("mod-ten", NUMERIC)):
        search, held_out = asked["search"][name], asked["held-out"][name]
        assert search and held_out and not search & held_out
        assert search | held_out == set(range(len(questions)))
        assert len(held_out) == round(0.4 * len(questions))
        # what the server was asked: no held-out question in a search evaluation
        for i, (question, _) in enumerate(questions):
            sent = any(question in prompt for prompt in prompts["search"])
            assert sent == (i in search), (name, i)


class Killed(Exception):
    """The task's process killed between two stages."""


def test_a_screened_evaluation_goes_stage_by_stage_and_never_repeats_a_finished_one(
    endpoint, volume, tmp_path
):
    objectives = ObjectivesSpec(
        benchmarks=[
            BenchmarkSpec(name="aime25"),
            BenchmarkSpec(
                name="mod-ten", type="jsonl", path="data/mod-ten.jsonl", format="numeric"
            ),
        ]
    )
    stages = QuestionStages(shares=[0.25, 0.5, 1.0], seed=11)
    questions = {"aime25": AIME, "mod-ten": NUMERIC}
    # stage k asks, of each benchmark, its k-th slice of the run's order
    plan = {name: stages.stage_ids(name, range(len(q))) for name, q in questions.items()}
    assert [len(s) for s in plan["mod-ten"]] == [2, 1, 2]

    def attempt(stop_requested: Callable[[], bool]) -> tuple[EvaluationResult | None, set[str]]:
        already = len(endpoint.requests)
        try:
            result = evaluate_scripted(
                endpoint, objectives, volume, tmp_path, stages=stages, stop_requested=stop_requested
            )
        except Killed:
            result = None
        return result, {b["messages"][-1]["content"] for b in endpoint.requests[already:]}

    def asked_in(stage: int) -> set[str]:
        return {
            question
            for name, qs in questions.items()
            if len(plan[name]) >= stage
            for i, (question, _) in enumerate(qs)
            if i in plan[name][stage - 1]
        }

    def killed() -> bool:
        raise Killed

    def sent(prompts: set[str]) -> set[str]:
        every = {q for qs in questions.values() for q, _ in qs}
        return {q for q in every if any(q in prompt for prompt in prompts)}

    # Killed after stage 1; the next attempt is told to stop after stage 2; the last one
    # finishes. No attempt asks a question of a stage an earlier one finished.
    first, prompts = attempt(killed)
    assert first is None and sent(prompts) == asked_in(1)
    second, prompts = attempt(screening_stage_file(tmp_path, 2).exists)
    assert sent(prompts) == asked_in(2)
    assert second.stopped_after == 2
    assert second.scores["mod-ten"].n == len(plan["mod-ten"][0]) + len(plan["mod-ten"][1])
    third, prompts = attempt(lambda: False)
    assert sent(prompts) == asked_in(3)
    assert third.stopped_after is None
    for name, (accuracy, tokens, _, n) in EXPECTED.items():
        if name in questions:  # the same scores as asking everything at once
            score = third.scores[name]
            assert (score.n, score.accuracy, score.mean_output_tokens) == pytest.approx(
                (n, accuracy, tokens)
            )
            lines = (tmp_path / "benchmarks" / name / "records.jsonl").read_text().splitlines()
            assert sorted(json.loads(line)["question"] for line in lines) == list(range(n))
    stage_files = [
        StageResult.model_validate_json(p.read_text())
        for p in sorted((tmp_path / "stages").glob("stage-*.json"))
    ]
    assert [(s.stage, s.stages) for s in stage_files] == [(1, 3), (2, 3), (3, 3)]


# --- builtin data as the hubs give it ---------------------------------------------------------


def gpqa_rows(extra_columns: bool = False) -> list[dict]:
    """GPQA rows; ``extra_columns`` adds some of the Hugging Face CSV's other columns,
    with commas and line breaks in them."""
    return [
        {
            **({"Pre-Revision Question": f"{q},\nas first written"} if extra_columns else {}),
            "Question": q,
            "Correct Answer": right,
            **{f"Incorrect Answer {i + 1}": w for i, w in enumerate(wrong)},
            **(
                {"Explanation": 'Because, well:\n"it is"', "Subdomain": "x"}
                if extra_columns
                else {}
            ),
        }
        for q, right, wrong in GPQA
    ]


def write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def write_parquet(path: Path, rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


AIME_ROWS = [{"id": str(k), "problem": q, "answer": a} for k, (q, a) in enumerate(AIME)]
AIME_INTEGERS = [{**row, "answer": int(row["answer"])} for row in AIME_ROWS]
# Each layout holds gpqa_diamond and aime25 in one file type, named as a download names it.
DOWNLOADS = {
    # `huggingface-cli download Idavidrein/gpqa`: one CSV per GPQA set and a dataset card
    # naming them as configurations; a single AIME CSV.
    "csv": lambda root: (
        write_csv(root / "gpqa/gpqa_diamond.csv", gpqa_rows(extra_columns=True)),
        write_csv(root / "gpqa/gpqa_main.csv", gpqa_rows(extra_columns=True)[:1]),
        (root / "gpqa/README.md").write_text("---\nconfigs:\n- config_name: gpqa_main\n---\n"),
        write_csv(root / "aime/test.csv", AIME_ROWS),
    ),
    # the hubs' parquet export: data/<split>-NNNNN-of-NNNNN.parquet, here in two shards
    # with integer answers (which evalscope's aime25 adapter would reject)
    "parquet": lambda root: (
        write_parquet(root / "gpqa/data/train-00000-of-00001.parquet", gpqa_rows()),
        write_parquet(root / "aime/data/test-00000-of-00002.parquet", AIME_INTEGERS[:2]),
        write_parquet(root / "aime/data/test-00001-of-00002.parquet", AIME_INTEGERS[2:]),
    ),
    # evalscope's own local layout, given as the files themselves
    "jsonl": lambda root: (
        write_jsonl(root / "gpqa/train.jsonl", gpqa_rows()),
        write_jsonl(root / "aime/aime2025.jsonl", AIME_ROWS),
    ),
}


@pytest.mark.parametrize("file_type", list(DOWNLOADS))
def test_builtin_data_in_every_file_type_runs_through_evalscope(
    endpoint, file_type, tmp_path, monkeypatch
):
    monkeypatch.setenv(API_KEY_VARIABLE, API_KEY)
    DOWNLOADS[file_type](tmp_path)
    given = {"gpqa": "gpqa", "aime": "aime"}
    if file_type == "jsonl":
        given = {"gpqa": "gpqa/train.jsonl", "aime": "aime"}
    result = evaluate_model(
        Path("unused-by-endpoint"),
        evaluation=endpoint_evaluation(endpoint.url),
        objectives=ObjectivesSpec(
            benchmarks=[
                BenchmarkSpec(name="gpqa_diamond", path=given["gpqa"]),
                BenchmarkSpec(name="aime25", path=given["aime"]),
            ]
        ),
        sampling=SAMPLING,
        volume=tmp_path,
        work_dir=tmp_path / "work",
    )
    for name in ("gpqa_diamond", "aime25"):
        accuracy, tokens, _, n = EXPECTED[name]
        score = result.scores[name]
        assert (score.n, score.accuracy, score.mean_output_tokens) == (n, accuracy, tokens)
    # evalscope read the chosen rows only, as its split, from a directory named by content.
    staged = sorted((tmp_path / STAGED_DATA_DIR).iterdir())
    assert [path.name.rsplit("-", 1)[0] for path in staged] == ["aime25", "gpqa_diamond"]
    assert [[f.name for f in path.iterdir()] for path in staged] == [
        ["test.jsonl"],
        ["train.jsonl"],
    ]


# --- the CLI ----------------------------------------------------------------------------------


def test_cli_evaluates_the_base_with_base_sampling(endpoint, volume, tmp_path, monkeypatch):
    monkeypatch.setenv(API_KEY_VARIABLE, API_KEY)
    mod_ten = {
        "name": "mod-ten",
        "type": "jsonl",
        "path": "data/mod-ten.jsonl",
        "format": "numeric",
    }
    run = run_manifest(
        "cli-eval",
        objectives={"benchmarks": [mod_ten], "limit": 2},
        evaluation={
            "engine": "endpoint",
            "endpoint": {
                "url": endpoint.url,
                "apiKeySecret": {"name": "llm-api", "key": API_KEY_VARIABLE},
            },
            "maxTokens": MAX_TOKENS,
        },
    )
    run_file = tmp_path / "run.yaml"
    run_file.write_text(yaml.safe_dump(run))
    out = tmp_path / "result.json"
    seen = len(endpoint.requests)
    args = ["evaluate", "m", "--run", str(run_file), "--volume", str(volume), "--role", "base"]
    result = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    score = EvaluationResult.model_validate_json(out.read_text()).scores["mod-ten"]
    assert (score.n, score.accuracy) == (2, 1.0)  # limit: the first two questions
    assert (out.parent / "result-work" / "benchmarks" / "mod-ten").is_dir()
    new = endpoint.requests[seen:]
    assert {(b["temperature"], b["top_p"], b["top_k"]) for b in new} == {(0.7, 0.8, 20)}


def test_cli_reports_a_bad_role(tmp_path):
    args = ["evaluate", "m", "--run", "r.yaml", "--volume", ".", "--role", "teacher"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "r.json")])
    assert result.exit_code != 0
    assert "base, expert or merged" in result.output


# --- data errors ------------------------------------------------------------------------------


def evaluate_on(volume: Path, benchmark: BenchmarkSpec, work_dir: Path) -> EvaluationResult:
    """Engine vllm, absent from PATH here: data errors must come before serving."""
    return evaluate_model(
        Path("model"),
        evaluation=EvaluationSpec(engine="vllm"),
        objectives=ObjectivesSpec(benchmarks=[benchmark]),
        sampling=SAMPLING,
        volume=volume,
        work_dir=work_dir,
    )


@pytest.mark.parametrize(
    ("benchmark", "named"),
    [
        (BenchmarkSpec(name="gpqa_diamond"), "datasets/gpqa_diamond: no such file or directory"),
        (
            BenchmarkSpec(name="aime25", path="mirror/aime"),
            "mirror/aime: no such file or directory",
        ),
        (
            BenchmarkSpec(name="qa", type="jsonl", path="data/qa.jsonl", format="numeric"),
            "data/qa.jsonl: no such file",
        ),
    ],
)
def test_missing_data_names_the_file(tmp_path, benchmark, named):
    with pytest.raises(BenchmarkDataError, match=re.escape(named)):
        evaluate_on(tmp_path, benchmark, tmp_path / "work")


@pytest.mark.parametrize(
    ("fmt", "lines", "message"),
    [
        ("numeric", ['{"question": "q", "answer": "1"}', "{not json"], "line 2: not JSON"),
        (
            "numeric",
            ['{"question": "q", "answer": "one"}'],
            "line 1: 'answer' 'one' is not a number",
        ),
        (
            "multiple_choice",
            ["", '{"question": "q", "choices": ["x", "y"], "answer": "C"}'],
            "line 2: 'answer' must be one of the letters A, B",
        ),
        (
            "multiple_choice",
            ['{"question": "q", "choices": "xy", "answer": "A"}'],
            "line 1: 'choices'",
        ),
    ],
)
def test_malformed_jsonl_names_file_and_line(tmp_path, fmt, lines, message):
    (tmp_path / "data").mkdir()
    (tmp_path / "data/qa.jsonl").write_text("\n".join(lines) + "\n")
    benchmark = BenchmarkSpec(name="qa", type="jsonl", path="data/qa.jsonl", format=fmt)
    with pytest.raises(BenchmarkDataError, match=re.escape(f"data/qa.jsonl {message}")):
        evaluate_on(tmp_path, benchmark, tmp_path / "work")


@pytest.mark.parametrize(
    ("file", "write", "named"),
    [
        (
            "test.jsonl",
            write_jsonl,
            "datasets/aime25/test.jsonl line 2: missing column(s) ['problem']",
        ),
        ("test.csv", write_csv, "datasets/aime25/test.csv row 1: missing column(s) ['problem']"),
        (
            "data/test-00000-of-00001.parquet",
            write_parquet,
            "datasets/aime25/data/test-00000-of-00001.parquet row 1: missing column(s) ['problem']",
        ),
    ],
)
def test_builtin_rows_need_evalscopes_columns(tmp_path, file, write, named):
    rows = [{"question": "q", "answer": "1"}]
    if write is write_jsonl:  # rows of a JSON lines file are checked one by one
        rows.insert(0, {"problem": "p", "answer": "1"})
    write(tmp_path / "datasets/aime25" / file, rows)
    with pytest.raises(BenchmarkDataError, match=re.escape(named)):
        evaluate_on(tmp_path, BenchmarkSpec(name="aime25"), tmp_path / "work")


@pytest.mark.parametrize(
    ("files", "named"),
    [
        (
            ["train.jsonl", "train.csv"],
            "datasets/gpqa_diamond: train.jsonl, train.csv hold the same questions in "
            "different file types: keep one",
        ),
        (
            ["gpqa_main.csv", "gpqa_extended.csv"],
            "datasets/gpqa_diamond: no gpqa_diamond data: expected train.jsonl, train.csv or "
            "train.parquet (or the hubs' data/train-*.parquet shards); data files there: "
            "gpqa_extended.csv, gpqa_main.csv",
        ),
        (["notes.txt"], "data files there: none"),
    ],
)
def test_a_directory_without_one_clear_data_file_is_named(tmp_path, files, named):
    for file in files:
        write_csv(tmp_path / "datasets/gpqa_diamond" / file, gpqa_rows())
    with pytest.raises(BenchmarkDataError, match=re.escape(named)):
        evaluate_on(tmp_path, BenchmarkSpec(name="gpqa_diamond"), tmp_path / "work")


def test_a_server_without_usage_is_an_error(endpoint, tmp_path, monkeypatch):
    monkeypatch.setenv(API_KEY_VARIABLE, API_KEY)
    write_jsonl(tmp_path / "mars.jsonl", [{"question": NO_USAGE_QUESTION, "answer": "2"}])
    benchmark = BenchmarkSpec(name="mars", type="jsonl", path="mars.jsonl", format="numeric")
    with pytest.raises(EvalscopeOutputError, match=r"benchmark 'mars', sample 0 .* no usage"):
        evaluate_model(
            Path("m"),
            evaluation=endpoint_evaluation(endpoint.url),
            objectives=ObjectivesSpec(benchmarks=[benchmark]),
            sampling=SAMPLING,
            volume=tmp_path,
            work_dir=tmp_path / "work",
        )


def test_a_missing_api_key_names_the_variable(endpoint, volume, tmp_path, monkeypatch):
    monkeypatch.delenv(API_KEY_VARIABLE, raising=False)
    with pytest.raises(ServingError, match=API_KEY_VARIABLE):
        evaluate_model(
            Path("m"),
            evaluation=endpoint_evaluation(endpoint.url),
            objectives=OBJECTIVES,
            sampling=SAMPLING,
            volume=volume,
            work_dir=tmp_path,
        )


# --- the vllm backend, with a fake vllm executable --------------------------------------------

FAKE_VLLM = """#!{python}
import json, os, sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer

with open(os.environ["FAKE_VLLM_ARGV"], "w") as record:
    json.dump(sys.argv[1:], record)
print("INFO loading the model", flush=True)
mode = os.environ["FAKE_VLLM_MODE"]
if mode == "crash":
    print("RuntimeError: CUDA out of memory (fake)", flush=True)
    sys.exit(3)
if mode == "hang":
    time.sleep(600)


class Health(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()


HTTPServer(("127.0.0.1", int(sys.argv[sys.argv.index("--port") + 1])), Health).serve_forever()
"""


@pytest.fixture
def fake_vllm(tmp_path, monkeypatch) -> Path:
    """A ``vllm`` on PATH that records its arguments in the returned file."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    executable = bin_dir / "vllm"
    executable.write_text(FAKE_VLLM.format(python=sys.executable))
    executable.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_VLLM_ARGV", str(tmp_path / "argv.json"))
    return tmp_path / "argv.json"


def health(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except OSError:
        return None


def test_vllm_serve_command_health_and_stop(fake_vllm, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_VLLM_MODE", "serve")
    evaluation = EvaluationSpec(engine="vllm", max_tokens=1000, timeout_seconds=60)
    started = time.monotonic()
    with serve(tmp_path / "merged", evaluation, log_dir=tmp_path / "work") as served:
        root = served.base_url.removesuffix("/v1")
        assert health(f"{root}/health") == 200
        assert 0 < served.startup_seconds <= time.monotonic() - started
        argv = json.loads(fake_vllm.read_text())
        port = root.rsplit(":", 1)[1]
        assert argv == [
            "serve",
            str(tmp_path / "merged"),
            "--served-model-name",
            served.model,
            "--max-model-len",
            "4000",  # maxTokens + 3000
            "--host",
            "127.0.0.1",
            "--port",
            port,
        ]
    assert health(f"{root}/health") is None
    assert "loading the model" in (tmp_path / "work" / "server.log").read_text()


def test_a_server_that_exits_reports_its_log(fake_vllm, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_VLLM_MODE", "crash")
    with (
        pytest.raises(ServingError, match=r"exited with code 3(.|\n)*CUDA out of memory"),
        serve(tmp_path, EvaluationSpec(engine="vllm"), log_dir=tmp_path / "work"),
    ):
        pytest.fail("the server must not be served")


def test_a_server_that_never_comes_up_times_out_with_its_log(fake_vllm, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_VLLM_MODE", "hang")
    evaluation = EvaluationSpec(engine="vllm", timeout_seconds=2)
    with (
        pytest.raises(ServingError, match=r"not up after 2 s(.|\n)*loading the model"),
        serve(tmp_path, evaluation, log_dir=tmp_path / "work"),
    ):
        pytest.fail("the server must not be served")


def test_a_missing_vllm_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with (
        pytest.raises(ServingError, match="'vllm' is not on PATH"),
        serve(tmp_path, EvaluationSpec(engine="vllm"), log_dir=tmp_path),
    ):
        pass


def test_stop_kills_a_server_that_ignores_sigterm():
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(1, flush=True); time.sleep(60)"
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, start_new_session=True
    )
    process.stdout.readline()  # the handler is installed
    stop_process_group(process, grace_s=0.5)
    assert process.returncode == -signal.SIGKILL


# --- the transformers server with a tiny model ------------------------------------------------

CHAT_TEMPLATE = "{% for m in messages %}{{ m['content'] }} {% endfor %}{% if add_generation_prompt %}w1{% endif %}"


@pytest.fixture(scope="module")
def tiny_chat_model(tmp_path_factory) -> Path:
    """A random-init 2-layer Qwen3 whose tokenizer has a chat template."""
    from transformers import AutoTokenizer

    path = make_base(tmp_path_factory.mktemp("tiny") / "chat", num_layers=2)
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(path)
    return path


def chat(base_url: str, body: dict) -> dict:
    request = urllib.request.Request(
        f"{base_url}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def test_transformers_server_generates_greedily_and_reports_usage(tiny_chat_model, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    evaluation = EvaluationSpec(engine="transformers", max_tokens=16, timeout_seconds=120)
    messages = [{"role": "user", "content": "w5 w6 w7"}]
    with serve(tiny_chat_model, evaluation, log_dir=tmp_path) as served:
        with urllib.request.urlopen(f"{served.base_url}/models") as response:
            assert [m["id"] for m in json.load(response)["data"]] == [served.model]
        body = {"model": served.model, "messages": messages, "max_tokens": 6, "temperature": 0}
        first, second = chat(served.base_url, body), chat(served.base_url, body)
        sampled = chat(served.base_url, {**body, "temperature": 0.8, "top_k": 20, "seed": 1})

    tokenizer = AutoTokenizer.from_pretrained(tiny_chat_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_chat_model)
    prompt = tokenizer("w5 w6 w7 w1", return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        output = model.generate(**prompt, max_new_tokens=6, do_sample=False, pad_token_id=3)
    generated = output[0, prompt["input_ids"].shape[1] :].tolist()

    assert first["choices"][0]["message"]["content"] == tokenizer.decode(
        generated, skip_special_tokens=True
    )
    assert first["usage"] == {
        "prompt_tokens": 4,
        "completion_tokens": len(generated),
        "total_tokens": 4 + len(generated),
    }
    ended = "length" if len(generated) == 6 and generated[-1] != tokenizer.eos_token_id else "stop"
    assert first["choices"][0]["finish_reason"] == ended
    assert second["choices"] == first["choices"]
    assert 1 <= sampled["usage"]["completion_tokens"] <= 6


def test_concurrent_requests_are_generated_in_one_batch_as_they_would_be_alone(tiny_chat_model):
    from paretomerge.evaluate.server import ChatModel, parse_chat_request

    model = ChatModel(tiny_chat_model, "cpu", "auto", None)
    prompts = ["w5", "w5 w6 w7", "w9 w8", "w4 w4 w4 w4 w4", "w7 w2 w3"]  # unequal lengths
    requests = [
        parse_chat_request(
            {"messages": [{"role": "user", "content": p}], "max_tokens": 6, "temperature": 0},
            "any",
        )
        for p in prompts
    ]
    alone = [model.complete(request) for request in requests]
    batches = []
    generate = model.model.generate

    def recording_generate(**arguments):
        batches.append(arguments["input_ids"].shape[0])
        return generate(**arguments)

    model.model.generate = recording_generate
    together: dict[int, object] = {}
    threads = [
        threading.Thread(target=lambda k=k: together.update({k: model.complete(requests[k])}))
        for k in range(len(requests))
    ]
    with model._generating:  # busy: every request waits, then one generation takes all
        for thread in threads:
            thread.start()
        while len(model._waiting) < len(requests):
            time.sleep(0.01)
    for thread in threads:
        thread.join(timeout=60)
    assert batches == [len(requests)]
    assert [together[k] for k in range(len(requests))] == alone


def test_evaluate_model_with_the_transformers_engine(tiny_chat_model, volume, tmp_path):
    objectives = ObjectivesSpec(
        benchmarks=[
            BenchmarkSpec(name="mod-ten", type="jsonl", path="data/mod-ten.jsonl", format="numeric")
        ],
        limit=2,
    )
    result = evaluate_model(
        tiny_chat_model,
        evaluation=EvaluationSpec(engine="transformers", max_tokens=8, timeout_seconds=120),
        objectives=objectives,
        sampling=SAMPLING,
        volume=volume,
        work_dir=tmp_path,
    )
    score = result.scores["mod-ten"]
    assert score.n == 2
    assert 1 <= score.mean_output_tokens <= 8
    assert (result.cost.answers, result.cost.output_tokens) == (2, 2 * score.mean_output_tokens)
    assert result.cost.serve_seconds > 0 and result.cost.generate_seconds > 0
    assert result.cost.serve_seconds + result.cost.generate_seconds < result.seconds
    assert "POST /v1/chat/completions" in (tmp_path / "server.log").read_text()


# --- scoring rules ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "answer"),
    [
        ("Answer: 42", "42"),
        ("<think>\n7 + 5 = 2; 2 * 3 = 6.\n</think>\n\nAnswer: 6", "6"),
        ("7 + 5 = 2 ...</think> Answer: -3.5", "-3.5"),
        ("<think> 4 </think> no number", None),
        ("no number at all", None),
        ("<think> unfinished 7", "7"),
    ],
)
def test_final_number(output, answer):
    assert final_number(output) == answer


def test_score_benchmark_aggregates_records():
    records = [SampleRecord(True, 10, True, question=0), SampleRecord(False, 30, False, question=1)]
    records += [
        SampleRecord(r.correct, r.output_tokens, r.thinking_closed, r.question, 1) for r in records
    ]
    expected = BenchmarkScore(
        name="b",
        accuracy=0.5,
        accuracy_stderr=0.25,
        mean_output_tokens=20.0,
        # The spread sqrt(400 / 3) of 4 samples shrunk towards the prior's (0.5 x 20).
        mean_output_tokens_stderr=math.sqrt((4 * 10.0**2 + 3 * 400 / 3) / (4 + 3)) / 2,
        thinking_closed=0.5,
        n=2,
        repeats=2,
    )
    assert score_benchmark("b", records).model_dump() == pytest.approx(expected.model_dump())
    with pytest.raises(ValueError, match="no samples"):
        score_benchmark("b", [])


@pytest.mark.parametrize(
    ("content", "closed"),
    [
        ("plain answer", False),
        ("reasoning</think>answer", True),
        ([{"type": "reasoning", "reasoning": "r"}, {"type": "text", "text": "a"}], True),
        ([{"type": "text", "text": "a"}], False),
        (None, False),
    ],
)
def test_output_closed_thinking(content, closed):
    assert output_closed_thinking(content) is closed
