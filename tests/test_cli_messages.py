"""What the command line tells a user: help texts, ``report`` on any run, the Pareto table.

Run directories are written here as a controller leaves them (``run.yaml`` and
``checkpoint.json`` through the real types, the artifacts through the real writer), with
made-up scores: what is checked is what the commands make of them.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from builders import benchmark_score
from typer.testing import CliRunner

from paretomerge.cli import app
from paretomerge.controller.artifacts import pareto_candidates, pareto_points, write_artifacts
from paretomerge.controller.decision_space import DecisionSpace
from paretomerge.controller.objectives import HYPERVOLUME_DECIMALS, format_hypervolume
from paretomerge.controller.state import AnchorRecord, CandidateRecord, RunState
from paretomerge.results import BenchmarkScore, EvaluationCost
from paretomerge.run_layout import PARETO_FILE, RUN_FILE
from paretomerge.search import hypervolume
from paretomerge.spec import dump_run, load_run
from paretomerge.tasks import EvaluateTask, write_task

EXAMPLES = Path(__file__).parent.parent / "examples"
NUM_LAYERS = 2
runner = CliRunner()


def scores(accuracy: float, tokens: float) -> dict[str, BenchmarkScore]:
    return {"modular-arithmetic": benchmark_score("modular-arithmetic", accuracy, tokens, n=12)}


# Objective vectors (f1, f2) of the merges; base (0, 1) and expert (1, 0) are the anchors,
# at accuracy 0.2 / 0.8 and 10 / 50 tokens.
OBJECTIVES = {
    "c0001": (0.0, 1.0),  # scores exactly as the base
    "c0002": (0.5, 0.5),
    "c0003": (1.0, 0.0),  # exactly as the expert
    "c0004": (0.5, 0.5),  # the same as c0002
    "c0005": (0.0, 1.0),
    "c0006": (0.4, 0.4),  # dominated by c0002
    "c0007": (0.75, 0.25),
    "c0008": (-0.1, 0.9),  # beaten by the base in both
}


def candidate(cid: str, f1: float, f2: float) -> CandidateRecord:
    return CandidateRecord(
        id=cid,
        x=[f1] * (NUM_LAYERS + 1),
        variables=[f1, 0.5, 1.0],
        status="succeeded",
        objectives=[f1, f2],
        scores=scores(0.2 + 0.6 * f1, 50 - 40 * f2),
    )


def write_run_dir(volume: Path, state: RunState) -> Path:
    run = load_run(EXAMPLES / "tiny-cpu.yaml")
    run_dir = volume / "runs" / run.name
    run_dir.mkdir(parents=True)
    (run_dir / RUN_FILE).write_text(yaml.safe_dump(dump_run(run), sort_keys=False))
    state.save(run_dir)
    if state.profile is not None:
        space = DecisionSpace(run.spec, NUM_LAYERS, tuple(state.profile))
        write_artifacts(run_dir, state, space)
        for record in state.candidates:
            task = EvaluateTask(
                id=record.id,
                work_dir=f"runs/{run.name}/candidates/{record.id}",
                role="merged",
                plan=space.plan(record.x, seed=0),
                evaluation=run.spec.evaluation,
                objectives=run.spec.objectives,
            )
            write_task(task, volume)
    return run_dir


def searched_state(phase: str = "Succeeded") -> RunState:
    return RunState(
        run="tiny-cpu",
        phase=phase,
        num_layers=NUM_LAYERS,
        profile=[1.0, 2.0, 0.5],
        anchors={
            "base": AnchorRecord(model="models/instruct", scores=scores(0.2, 10), cache_key="b"),
            "expert": AnchorRecord(model="models/thinking", scores=scores(0.8, 50), cache_key="e"),
        },
        candidates=[candidate(cid, *y) for cid, y in OBJECTIVES.items()],
        hypervolume=[0.5],
    )


@pytest.mark.parametrize(
    ("command", "text"),
    [
        ("run", "[default: the file's]"),
        ("importance", "[default: the profile's path with .png]"),
        ("evaluate", "[default: next to --out]"),
    ],
)
def test_help_texts_keep_their_bracketed_defaults(command: str, text: str) -> None:
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert text in " ".join(result.output.split())


def test_one_point_per_distinct_trade_off_that_the_anchors_do_not_offer() -> None:
    state = searched_state()
    points = pareto_points(state)
    assert [(p.candidate.id, p.same_scores) for p in points] == [
        ("c0007", ()),
        ("c0002", ("c0004",)),
    ]
    assert [c.id for c in pareto_candidates(state)] == ["c0007", "c0002"]


def test_report_lists_the_points_with_their_header_and_the_artifacts(tmp_path: Path) -> None:
    run_dir = write_run_dir(tmp_path, searched_state())
    result = runner.invoke(app, ["report", str(run_dir)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "weights mean [min, max]" in result.output
    assert "0.67 [0.50, 1.00]" in result.output  # c0002's weights 0.5, 0.5, 1.0 (bracketed)
    rows = [line for line in result.output.splitlines() if "c00" in line]
    assert len(rows) == 2 and "c0002 (+1 same)" in rows[1] and "c0007" in rows[0]
    assert "2 point(s) from 8 merges" in result.output
    lines = (run_dir / PARETO_FILE).read_text().splitlines()
    assert lines[0].endswith(",same_scores,validated") and lines[2].startswith("1,c0002,")
    assert lines[2].endswith(",c0004,false") and len(lines) == 3
    assert "pareto.csv, results.json, objectives.npy, objectives_std.npy" in result.output


def test_report_on_a_failed_run_gives_the_reason_and_only_files_that_exist(tmp_path: Path) -> None:
    reason = "profile failed 2 time(s); last: profile: model models/thinking has no config.json"
    state = RunState(run="tiny-cpu", phase="Failed", message=reason)
    run_dir = write_run_dir(tmp_path, state)
    result = runner.invoke(app, ["report", str(run_dir)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert f"run Failed: {reason}" in result.output
    assert f"artifacts in {run_dir}: none yet" in result.output
    assert "pareto.csv" not in result.output and "wrote" not in result.output
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoint.json", "run.yaml"]


def test_report_names_each_failed_candidate_with_its_reason(tmp_path: Path) -> None:
    state = searched_state(phase="Failed")
    state.message = "3 candidates failed, more than maxFailedCandidates (1)"
    state.candidates[0] = state.candidates[0].model_copy(
        update={
            "status": "failed",
            "objectives": None,
            "scores": None,
            "reasons": ["attempt 1: merge: [tensor] model.norm.weight is NaN\nlog tail..."],
        }
    )
    result = runner.invoke(app, ["report", str(write_run_dir(tmp_path, state))])
    assert result.exit_code == 0, result.output
    assert "run Failed: 3 candidates failed" in result.output
    assert "c0001 failed: attempt 1: merge: [tensor] model.norm.weight is NaN" in result.output


def test_materialize_into_a_non_empty_folder_says_so(tmp_path: Path) -> None:
    run_dir = write_run_dir(tmp_path, searched_state())
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = runner.invoke(app, ["materialize", str(run_dir), "--point", "0", "--out", str(out)])
    assert result.exit_code == 1
    assert f"error: output directory {out} exists and is not empty" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert (out / "keep.txt").read_text() == "mine"


def recorded_state(unnamed: int = 0) -> RunState:
    """A searched run whose hypervolume history is recorded as the controller records it:
    after each finished evaluation, the hypervolume of the front reported then, naming the
    evaluation (the first ``unnamed`` entries not named, as in older checkpoints). Values
    with many digits, so that a rounding of its own anywhere would show."""
    state = searched_state()
    results = [
        ("c0001", (0.123456789, 0.912345678)),
        ("c0002", (0.487654321, 0.531234567)),
        ("c0003", (0.301234567, 0.601234567)),
        ("c0004", (0.765432101, 0.287654321)),
        ("c0005", (0.456789012, 0.456789012)),  # dominated by c0002
        ("c0006", (0.913579246, 0.102468135)),
    ]
    state.candidates, state.hypervolume = [], []
    reference = np.array(load_run(EXAMPLES / "tiny-cpu.yaml").spec.search.reference_point)
    for index, (cid, y) in enumerate(results):
        record = candidate(cid, *y).model_copy(
            update={
                "cost": EvaluationCost(questions=12, output_tokens=100 * (index + 1), gpus=0),
                "finished": f"2025-01-01T00:00:{index:02d}",
            }
        )
        state.candidates.append(record)
        front = [p.candidate.reported[0] for p in pareto_points(state)]
        state.hypervolume.append(hypervolume(np.array(front).reshape(-1, 2), reference))
        state.hypervolume_after.append(cid)
    state.hypervolume_after = state.hypervolume_after[unnamed:]
    return state


@pytest.mark.parametrize("unnamed", [0, 3])
def test_one_hypervolume_in_the_table_the_legends_the_curves_and_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unnamed: int
) -> None:
    from paretomerge import plots
    from paretomerge.report import RunDirectory

    legends: dict[str, list[str]] = {}
    save = plots._save

    def keep_legend(figure, path):
        legends[Path(path).name] = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
        save(figure, path)

    monkeypatch.setattr(plots, "_save", keep_legend)
    state = recorded_state(unnamed)
    run_dir = write_run_dir(tmp_path, state)
    html_path = tmp_path / "report.html"
    result = runner.invoke(app, ["report", str(run_dir), "--html", str(html_path)])
    assert result.exit_code == 0, result.output

    directory = RunDirectory.open(run_dir)
    curve = directory.hypervolume_curve()
    # The curve is the controller's history, the table's value that of pareto.csv: the
    # same front, so the same number (pareto.csv keeps 6 significant digits).
    assert curve.y.tolist() == state.hypervolume and curve.x.tolist() == [1, 2, 3, 4, 5, 6]
    assert directory.hypervolume() == pytest.approx(curve.y[-1], abs=1e-6)
    shown = format_hypervolume(curve.y[-1])
    assert shown == format_hypervolume(directory.hypervolume())
    assert len(shown.split(".")[1]) == HYPERVOLUME_DECIMALS

    table = html_path.read_text().split("<table id='runs'>")[1].split("</table>")[0]
    assert re.findall(r"<td>(\d+\.\d+)</td>", table) == [shown]
    assert re.search(rf"front of 5, hypervolume {shown}$", result.output, re.MULTILINE)
    assert f"tiny-cpu (layer-wise): front, hypervolume {shown}" in legends["pareto_front.png"]
    assert legends["hypervolume.png"] == [f"tiny-cpu (final {shown})"]
    # Against cost: the evaluations named in order (older entries: the earliest finished).
    assert legends["hypervolume_cost.png"] == [f"tiny-cpu (final {shown})"]
    cost_curve = directory.hypervolume_cost_curve("output_tokens")
    assert cost_curve.x.tolist() == [100, 300, 600, 1000, 1500, 2100]
    assert cost_curve.y.tolist() == state.hypervolume


def test_a_baseline_with_another_reference_point_is_refused(tmp_path: Path) -> None:
    run_dir = write_run_dir(tmp_path / "a", recorded_state())
    other = write_run_dir(tmp_path / "b", recorded_state())
    run_file = other / RUN_FILE
    data = yaml.safe_load(run_file.read_text())
    data["spec"]["search"]["referencePoint"] = [-0.5, -0.5]
    run_file.write_text(yaml.safe_dump(data, sort_keys=False))
    result = runner.invoke(app, ["report", str(run_dir), "--baseline", str(other)])
    assert result.exit_code == 1
    assert "their hypervolumes cannot be compared" in " ".join(result.output.split())


def test_a_changed_spec_is_refused_and_the_run_keeps_its_phase(tmp_path: Path) -> None:
    """``run`` on a finished run whose file changed a field its results depend on: the
    change is refused (exit 1), and the run is still what it was, not Failed."""
    run_dir = write_run_dir(tmp_path, searched_state())
    checkpoint = (run_dir / "checkpoint.json").read_text()
    data = yaml.safe_load((EXAMPLES / "tiny-cpu.yaml").read_text())
    data["spec"]["objectives"]["limit"] = 20
    run_file = tmp_path / "tiny-cpu.yaml"
    run_file.write_text(yaml.safe_dump(data, sort_keys=False))
    result = runner.invoke(app, ["run", str(run_file), "--volume", str(tmp_path)])
    assert result.exit_code == 1
    output = " ".join(result.output.split())
    assert output.startswith(
        "error: run tiny-cpu refused the change and is still Succeeded (its checkpoint "
        "untouched): the spec changed since this run started"
    ), output
    assert "spec.objectives.limit: was 12 when the run started and is now 20" in output
    assert "Failed" not in output
    assert (run_dir / "checkpoint.json").read_text() == checkpoint
