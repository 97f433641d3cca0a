"""The activation-discrepancy prior: measured on the real demo pair, cached on the volume,
combined with the parameter profile, refused before any work when it cannot be measured.

The demo's thinking model was trained further in its last ``VERBOSE_LAYERS`` layers only
(:mod:`paretomerge.demo.pair`), so those are the layers the profile must single out.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from builders import run_manifest
from fake_tasks import FakeExecutor
from tiny_models import link_tree, make_base, make_expert
from typer.testing import CliRunner

from paretomerge import activations
from paretomerge.activations import (
    calibration_questions,
    compute_activation_profile,
)
from paretomerge.cli import app
from paretomerge.controller.loop import Controller
from paretomerge.controller.state import RunState
from paretomerge.demo.pair import NUM_LAYERS, VERBOSE_LAYERS
from paretomerge.importance import ImportanceProfile, combined_prior
from paretomerge.partition import normalize_profile
from paretomerge.preflight import preflight
from paretomerge.results import ProfileResult
from paretomerge.spec import ParetoMergeRun, parse_run
from paretomerge.tasks import ActivationPrior, ProfileTask, run_task, write_task

DEMO_BENCHMARK = {"name": "demo", "type": "jsonl", "path": "benchmark.jsonl", "format": "numeric"}
LAST_LAYERS = set(range(NUM_LAYERS - VERBOSE_LAYERS, NUM_LAYERS))


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models on a shared 2-core machine: a second thread only contends."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def demo_run(**search) -> dict:
    """A run on the demo pair as it lies in its directory (``instruct/``, ``thinking/``)."""
    return run_manifest(
        "act",
        models={"base": {"path": "instruct"}, "experts": [{"path": "thinking"}]},
        objectives={"benchmarks": [DEMO_BENCHMARK]},
        search={"prior": {"activations": True}, **search},
    )


@pytest.fixture
def volume(tmp_path: Path, demo_models: Path) -> Path:
    """The demo pair and its benchmark on a volume of the test's own (it writes the cache)."""
    return link_tree(demo_models, tmp_path / "volume")


def test_the_thinking_models_extra_layers_rank_highest(demo_models: Path) -> None:
    spec = parse_run(demo_run()).spec
    questions = calibration_questions(spec, demo_models, 32)
    assert len(questions) == 32 and len(set(questions)) == 32
    profile = compute_activation_profile(
        demo_models / "instruct", [demo_models / "thinking"], questions
    )
    layers = np.array(profile.layers)
    assert layers.shape == (NUM_LAYERS,) and profile.prompts == 32 and profile.tokens > 32 * 10
    top = set(np.argsort(layers)[-VERBOSE_LAYERS:].tolist())
    assert top == LAST_LAYERS, layers
    # Not by a hair: the least of them changed twice as much as any other layer.
    others = [layers[i] for i in range(NUM_LAYERS) if i not in LAST_LAYERS]
    assert min(layers[sorted(LAST_LAYERS)]) > 2 * max(others), layers
    assert 0 < profile.head < min(others)  # the embeddings and logits barely changed
    assert profile.experts[0].layers == profile.layers  # one expert: the mean is its own


def test_each_layer_is_measured_on_its_own_not_on_what_it_inherits(tmp_path: Path) -> None:
    """An expert that differs from the base in layer 2 alone: the layers after it see the
    base's input (teacher forcing), so they and the head show no change at all."""
    base = make_base(tmp_path / "base", arch="llama", num_layers=4, dtype=torch.bfloat16)
    expert = make_expert(base, tmp_path / "expert", [2])
    profile = compute_activation_profile(base, [expert], ["w1 w2 w3", "w4 w5 w6 w7"])
    assert profile.layers[2] > 0.1
    assert profile.layers[:2] + profile.layers[3:] == [0.0, 0.0, 0.0]
    assert profile.head == 0.0 and profile.tokens == 3 + 4  # no chat template: the words


def test_the_prior_is_the_weighted_sum_of_the_normalised_profiles() -> None:
    parameter, activation = [1.0, 2.0, 3.0, 0.0], [10.0, 0.0, 5.0, 20.0]
    mixed = combined_prior(parameter, activation, 0.25)
    expected = 0.75 * np.array([1 / 3, 2 / 3, 1, 0]) + 0.25 * np.array([0.5, 0, 0.25, 1])
    assert mixed == pytest.approx(expected.tolist())
    assert combined_prior(parameter, activation, 0.0) == pytest.approx(
        normalize_profile(parameter).tolist()
    )
    assert combined_prior(parameter, activation, 1.0) == pytest.approx(
        normalize_profile(activation).tolist()
    )
    with pytest.raises(ValueError, match="has 4 values, the activation profile 3"):
        combined_prior(parameter, activation[:3], 0.5)


def profile_task(name: str, questions: list[str], weight: float = 0.5) -> ProfileTask:
    return ProfileTask(
        id="profile",
        work_dir=f"runs/{name}/profile",
        base="instruct",
        experts=["thinking"],
        activations=ActivationPrior(questions=questions, weight=weight),
    )


def test_a_second_run_reads_the_profile_from_the_volume(volume: Path, monkeypatch) -> None:
    questions = calibration_questions(parse_run(demo_run()).spec, volume, 8)
    first = run_task(write_task(profile_task("first", questions), volume), volume)
    assert isinstance(first, ProfileResult) and first.prior is not None
    written = ImportanceProfile.model_validate_json(
        (volume / "runs/first/profile/profile.json").read_text()
    )
    assert written.activation is not None and written.activation_weight == 0.5
    assert first.merge_weight_profile == written.prior
    assert first.prior == combined_prior(
        [*written.layers, written.head], written.activation.merge_weight_profile, 0.5
    )
    cached = list((volume / ".paretomerge" / "activations").glob("*.json"))
    assert [path.stem for path in cached] == [written.activation.key]

    def measured_again(*args, **kwargs):
        raise AssertionError("the activation profile was measured again")

    monkeypatch.setattr(activations, "_run_base", measured_again)
    second = run_task(write_task(profile_task("second", questions, 0.8), volume), volume)
    again = ImportanceProfile.model_validate_json(
        (volume / "runs/second/profile/profile.json").read_text()
    )
    assert again.activation == written.activation  # served from the cache
    assert second.prior != first.prior  # its own weight, on the same profiles
    # Other questions are another key: measured, not served.
    with pytest.raises(AssertionError, match="measured again"):
        run_task(write_task(profile_task("third", questions[:4]), volume), volume)


def test_the_profile_phase_feeds_the_combined_prior_into_the_search(volume: Path) -> None:
    run = parse_run(demo_run(prior={"activations": True, "activationWeight": 0.3, "prompts": 6}))
    executor = FakeExecutor(volume, deadline_seconds=120)
    try:
        controller = Controller(run, volume, executor, poll_seconds=0.05)
        state = RunState(run=run.name)
        controller._profile(state)
    finally:
        executor.close()
    profile = ImportanceProfile.model_validate_json(
        (volume / "runs/act/profile/profile.json").read_text()
    )
    assert profile.activation is not None and profile.activation.prompts == 6
    assert state.profile == pytest.approx(profile.prior)
    assert state.profile == pytest.approx(
        combined_prior(
            [*profile.layers, profile.head], profile.activation.merge_weight_profile, 0.3
        )
    )
    assert state.num_layers == NUM_LAYERS


def test_activations_off_leave_the_parameter_profile_as_the_prior(volume: Path) -> None:
    task = ProfileTask(
        id="profile", work_dir="runs/off/profile", base="instruct", experts=["thinking"]
    )
    result = run_task(write_task(task, volume), volume)
    assert result.prior is None and result.merge_weight_profile == [*result.layers, result.head]
    assert not (volume / ".paretomerge" / "activations").exists()


def refused_run(volume: Path, activations: bool) -> ParetoMergeRun:
    """A run whose second expert is twice as wide as the base, and whose second benchmark
    has one question, which a held-out split cannot share with the search."""
    base = make_base(volume / "models" / "base", num_layers=2, hidden_size=32)
    make_expert(base, volume / "models" / "same", range(2))
    make_base(volume / "models" / "wide", num_layers=2, hidden_size=64, seed=1)
    benchmarks = []
    for name, count in (("many", 4), ("one", 1)):
        rows = [{"question": f"{k} + 1?", "answer": str(k + 1)} for k in range(count)]
        path = volume / "data" / f"{name}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        benchmarks.append(
            {"name": name, "type": "jsonl", "path": f"data/{name}.jsonl", "format": "numeric"}
        )
    experts = [{"path": "models/same"}, {"path": "models/wide"}]
    return parse_run(
        run_manifest(
            "refused",
            models={"base": {"path": "models/base"}, "experts": experts},
            objectives={"benchmarks": benchmarks},
            search={
                "prior": {"activations": activations},
                "validation": {"budget": 2, "heldOut": 0.5},
            },
        )
    )


def test_unmeasurable_priors_are_refused_before_any_work_naming_every_field(
    tmp_path: Path,
) -> None:
    run = refused_run(tmp_path, activations=True)
    problems = preflight(run, tmp_path, tasks_path=None, candidates_left=8)
    by_field = {p.field: p.message for p in problems}
    assert "spec.models.experts[1]" in by_field["spec.search.prior.activations"]
    assert "hidden size 64" in by_field["spec.search.prior.activations"]
    assert "leaves it none" in by_field["spec.objectives.benchmarks[1]"]
    assert "spec.objectives.benchmarks[0]" not in by_field
    # Without the prior neither is a problem of its own (the shapes are, on their field).
    plain = refused_run(tmp_path / "plain", activations=False)
    fields = {
        p.field for p in preflight(plain, tmp_path / "plain", tasks_path=None, candidates_left=8)
    }
    assert "spec.search.prior.activations" not in fields
    assert "spec.objectives.benchmarks[1]" not in fields
    assert "spec.models.experts[1].path" in fields


def test_the_importance_command_prints_and_plots_both_profiles(
    demo_models: Path, tmp_path: Path
) -> None:
    run_file = tmp_path / "run.yaml"
    run_file.write_text(json.dumps(demo_run(prior={"activations": True, "prompts": 6})))
    out = tmp_path / "profile.json"
    args = [
        "importance", "--base", str(demo_models / "instruct"),
        "--expert", str(demo_models / "thinking"), "--out", str(out), "--activations",
        "--run-file", str(run_file), "--volume", str(demo_models), "--activation-weight", "0.4",
    ]  # fmt: skip
    result = CliRunner().invoke(app, args, terminal_width=120)
    assert result.exit_code == 0, result.output
    profile = ImportanceProfile.model_validate_json(out.read_text())
    assert profile.activation is not None and profile.activation.prompts == 6
    assert profile.activation_weight == 0.4
    lines = result.output.splitlines()
    assert any("parameter" in line and "activation" in line and "prior" in line for line in lines)
    for name, prior in zip([*map(str, range(NUM_LAYERS)), "head"], profile.prior, strict=True):
        row = next(line.split() for line in lines if line.split()[:1] == [name])
        assert float(row[-1]) == pytest.approx(prior, abs=1e-3)
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    prompts = CliRunner().invoke(
        app,
        ["importance", "--base", str(demo_models / "instruct"), "--expert",
         str(demo_models / "thinking"), "--out", str(tmp_path / "p.json"), "--activations",
         "--prompts", str(demo_models / "benchmark.jsonl"), "--num-prompts", "3"],
    )  # fmt: skip
    assert prompts.exit_code == 0, prompts.output
    assert json.loads((tmp_path / "p.json").read_text())["activation"]["prompts"] == 3

    neither = CliRunner().invoke(app, [*args[:7], "--activations"])
    assert neither.exit_code == 2 and "--prompts or --run-file" in neither.output
