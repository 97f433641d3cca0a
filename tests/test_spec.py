"""The run spec: defaults, round trips, and errors that name their field."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from builders import run_manifest
from typer.testing import CliRunner

from paretomerge.cli import app
from paretomerge.controller.decision_space import DecisionSpace
from paretomerge.search.strategies import STRATEGIES
from paretomerge.spec import (
    SpecError,
    dump_run,
    load_run,
    load_started_run,
    parse_run,
    resume_conflicts,
)

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.yaml"))
MINIMAL = run_manifest("tiny")


def with_changes(*changes: tuple[str, object]) -> dict:
    """MINIMAL with ``("spec.search.budget", 3)``-style changes (``None`` deletes)."""
    data = copy.deepcopy(MINIMAL)
    for dotted, value in changes:
        *parents, last = dotted.split(".")
        node = data
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        if value is None:
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return data


def problems_of(data: dict) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        parse_run(data)
    return {p.field: p.message for p in info.value.problems}


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_run_files_are_valid_and_round_trip(path: Path) -> None:
    run = load_run(path)
    assert parse_run(dump_run(run)) == run


def test_defaults_follow_the_design() -> None:
    spec = parse_run(MINIMAL).spec
    assert spec.search.strategy == "coarse-to-fine"
    assert (spec.search.budget, spec.search.initial_points) == (88, 8)
    assert spec.search.reference_point == [-0.2, -0.2]
    assert spec.evaluation.model_len == 35000 + 3000
    assert (spec.evaluation.base_sampling.temperature, spec.evaluation.base_sampling.top_p) == (
        0.7,
        0.8,
    )
    assert spec.execution.keep_merged_models == "pareto"
    assert (
        spec.objectives.repeats == 1
        and spec.objectives.repeats_of(spec.objectives.benchmarks[0]) == 1
    )
    assert (spec.search.validation.budget, spec.search.validation.held_out) == (0, 0.0)


CASES = [
    (("spec.search.budget", "many"), "spec.search.budget"),
    (("spec.search.budget", 0), "spec.search.budget"),
    (("spec.search.strategy", "simulated-annealing"), "spec.search.strategy"),
    (("spec.merge.method", "slerp"), "spec.merge.method"),
    (("spec.merge.density", 1.5), "spec.merge.density"),
    (("spec.models.experts", []), "spec.models.experts"),
    (("spec.models.base", None), "spec.models.base"),
    (("spec.models.base.path", "/etc/models"), "spec.models.base.path"),
    (("spec.models.base.path", "models/../../etc"), "spec.models.base.path"),
    (("spec.search.initialSolutions", [0.5, 1.5]), "spec.search.initialSolutions[1]"),
    (("spec.evaluation.engine", "tgi"), "spec.evaluation.engine"),
    (("spec.execution.keepMergedModels", "some"), "spec.execution.keepMergedModels"),
    (
        ("spec.execution.resources", {"gpuResource": "NVIDIA GPU"}),
        "spec.execution.resources.gpuResource",
    ),
    (("spec.execution.parallelism", -1), "spec.execution.parallelism"),
    (("spec.search.unknownField", 1), "spec.search.unknownField"),
    (("metadata.name", "Not_A_DNS_Name"), "metadata.name"),
    (("kind", "Job"), "kind"),
    (("spec.objectives.benchmarks.0.name", "x" * 300), "spec.objectives.benchmarks[0].name"),
    (("spec.objectives.repeats", 0), "spec.objectives.repeats"),
    (("spec.objectives.benchmarks.0.repeats", 0), "spec.objectives.benchmarks[0].repeats"),
    (("spec.search.validation", {"budget": 4, "heldOut": 1.0}), "spec.search.validation.heldOut"),
    (("spec.search.validation", {"budget": -1}), "spec.search.validation.budget"),
]


@pytest.mark.parametrize(
    ("num_layers", "count", "blocks"),
    [
        (16, None, (4, 8)),  # the default, as before the count reached coarse-to-fine
        (16, 12, (6, 12)),
        (16, 3, (1, 3)),
        (6, None, (4, 6)),  # never more blocks than layers
        (2, 12, (2, 2)),
    ],
)
def test_blocks_count_is_the_finest_phase_of_coarse_to_fine(
    num_layers: int, count: int | None, blocks: tuple[int, int]
) -> None:
    """``merge.blocks.count`` blocks in the second half of the budget, half as many in
    the first (each block one search variable, plus the head's)."""
    data = with_changes(("spec.merge.blocks.count", count)) if count else MINIMAL
    spec = parse_run(data).spec
    profile = tuple(float(i % 3) for i in range(num_layers + 1))
    config = DecisionSpace(spec, num_layers, profile).search_config()
    strategy = STRATEGIES[spec.search.strategy](config)
    first, last = strategy.grouping_at(0), strategy.grouping_at(config.budget - 1)
    assert (first.search_dim - 1, last.search_dim - 1) == blocks
    assert strategy.grouping_at(config.budget // 2 - 1) == first


@pytest.mark.parametrize(("change", "field"), CASES, ids=[c[1] for c in CASES])
def test_a_bad_field_is_named(change: tuple[str, object], field: str) -> None:
    assert field in problems_of(with_changes(change))


SEMANTIC_CASES = [
    ([("spec.search.budget", 4), ("spec.search.initialPoints", 6)], "spec.search.initialPoints"),
    ([("spec.search.referencePoint", [-0.2, -0.2, -0.2])], "spec.search.referencePoint"),
    ([("spec.search.weightRange", [0.8, 0.2])], "spec.search.weightRange"),
    (
        [("spec.search.weightRange", [0.0, 0.5]), ("spec.search.initialSolutions", [0.8])],
        "spec.search.initialSolutions[0]",
    ),
    (
        [("spec.models.experts", [{"path": "models/e"}, {"path": "models/e"}])],
        "spec.models.experts[1].path",
    ),
    ([("spec.models.experts", [{"path": "models/base"}])], "spec.models.experts[0].path"),
    ([("spec.objectives.benchmarks.0.path", None)], "spec.objectives.benchmarks[0].path"),
    ([("spec.objectives.benchmarks.0.format", None)], "spec.objectives.benchmarks[0].format"),
    ([("spec.objectives.benchmarks.0.type", "builtin")], "spec.objectives.benchmarks[0].name"),
    ([("spec.merge.density", 0.5)], "spec.merge.density"),
    ([("spec.search.validation", {"heldOut": 0.2})], "spec.search.validation.heldOut"),
    ([("spec.search.strategy", "bambo")], "spec.merge.granularity"),
    ([("spec.merge.granularity", "model")], "spec.search.strategy"),
    ([("spec.evaluation.engine", "endpoint")], "spec.evaluation.endpoint"),
    (
        [("spec.evaluation.maxModelLen", 100), ("spec.evaluation.maxTokens", 200)],
        "spec.evaluation.maxModelLen",
    ),
]


@pytest.mark.parametrize(("changes", "field"), SEMANTIC_CASES, ids=[c[1] for c in SEMANTIC_CASES])
def test_a_cross_field_problem_is_named(changes: list, field: str) -> None:
    assert field in problems_of(with_changes(*changes))


def test_every_problem_is_reported_at_once() -> None:
    problems = problems_of(
        with_changes(
            ("spec.search.budget", 0),
            ("spec.merge.method", "slerp"),
            ("spec.models.base.path", "/abs"),
        )
    )
    assert {"spec.search.budget", "spec.merge.method", "spec.models.base.path"} <= set(problems)


def test_load_run_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "run.yaml"
    bad.write_text(yaml.safe_dump(with_changes(("spec.search.budget", -3))))
    with pytest.raises(SpecError, match=r"run\.yaml.*\n.*spec\.search\.budget"):
        load_run(bad)
    bad.write_text("spec: [unclosed")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_run(bad)


REMOVED_BATCH_SIZE = (
    "spec.search.batchSize was removed: execution.parallelism is how many candidates run at once"
)


def test_a_removed_field_is_refused_saying_what_replaces_it(tmp_path: Path) -> None:
    data = with_changes(("spec.search.batchSize", 4), ("spec.search.budget", 0))
    with pytest.raises(SpecError) as info:
        parse_run(data)
    messages = [str(problem) for problem in info.value.problems]
    assert REMOVED_BATCH_SIZE in messages and len(messages) == 2  # with the other problem
    assert f"  - {REMOVED_BATCH_SIZE}\n" in str(info.value) + "\n"
    run_file = tmp_path / "run.yaml"
    run_file.write_text(yaml.safe_dump(with_changes(("spec.search.batchSize", 4))))
    result = CliRunner().invoke(app, ["run", str(run_file)])
    assert result.exit_code == 1 and REMOVED_BATCH_SIZE in result.output


def test_a_started_run_written_with_a_removed_field_reads_without_it(tmp_path: Path) -> None:
    """A run directory's run.yaml of an earlier version has every field of its day."""
    started = tmp_path / "run.yaml"
    started.write_text(yaml.safe_dump(with_changes(("spec.search.batchSize", 4))))
    with pytest.raises(SpecError):
        load_run(started)
    assert load_started_run(started) == parse_run(MINIMAL)
    assert resume_conflicts(load_started_run(started), parse_run(MINIMAL)) == []


def test_a_run_resumes_after_edits_of_how_much_and_how_but_not_of_what() -> None:
    started = parse_run(MINIMAL)
    resumable = with_changes(
        ("spec.search.budget", 200),
        ("spec.search.validation", {"budget": 8}),
        ("spec.execution", {"parallelism": 9, "resources": {"gpus": 2}}),
        ("spec.evaluation", {"concurrency": 8, "timeoutSeconds": 60}),
    )
    assert resume_conflicts(started, parse_run(resumable)) == []

    changed = with_changes(
        ("spec.search.seed", 7),
        ("spec.search.initialSolutions", [0.5]),
        ("spec.merge.density", 0.5),
        ("spec.merge.method", "ties"),
        ("spec.evaluation.sampling", {"temperature": 0.0}),
    )
    conflicts = {p.field: p.message for p in resume_conflicts(started, parse_run(changed))}
    assert set(conflicts) == {
        "spec.search.seed",
        "spec.search.initialSolutions",
        "spec.merge.density",
        "spec.merge.method",
        "spec.evaluation.sampling.temperature",
    }
    assert conflicts["spec.search.seed"].startswith("was 42 when the run started and is now 7")
    assert conflicts["spec.merge.density"].startswith('was "(not set)"')


def test_blocks_under_a_strategy_that_searches_none_are_refused_by_name() -> None:
    refused = with_changes(("spec.search.strategy", "gp"), ("spec.merge.blocks.count", 6))
    with pytest.raises(SpecError) as info:
        parse_run(refused)
    assert [p.field for p in info.value.problems] == ["spec.merge.blocks.count"]
    assert "only bambo and coarse-to-fine use spec.merge.blocks" in str(info.value)
    # The defaults, written out as the run file keeps them, are no choice of the user's.
    defaults = with_changes(("spec.search.strategy", "gp"), ("spec.merge.blocks.count", 8))
    assert parse_run(defaults).spec.merge.blocks.count == 8
