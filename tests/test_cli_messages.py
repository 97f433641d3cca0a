"""What the command line tells a user: help texts, ``report`` on any run, the Pareto table.

Run directories are written here as a controller leaves them (``run.yaml`` and
``checkpoint.json`` through the real types, the artifacts through the real writer), with
made-up scores: what is checked is what the commands make of them.
"""

from __future__ import annotations

import csv
import io
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
from paretomerge.controller.objectives import (
    ANCHOR_OBJECTIVES,
    HYPERVOLUME_DECIMALS,
    format_hypervolume,
)
from paretomerge.controller.state import AnchorRecord, CandidateRecord, PointEstimate, RunState
from paretomerge.k8s.status import run_status
from paretomerge.results import BenchmarkScore, EvaluationCost
from paretomerge.run_layout import PARETO_FILE, RUN_FILE
from paretomerge.search import hypervolume
from paretomerge.search.front import reported_front
from paretomerge.spec import dump_run, load_run, parse_run
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


def write_run_dir(
    volume: Path, state: RunState, name: str | None = None, benchmarks: list[str] | None = None
) -> Path:
    """The run directory of ``state`` under ``volume``: the ``tiny-cpu`` example's spec,
    renamed ``name`` and with ``benchmarks`` (numeric JSONL ones) in place of its own if
    given."""
    data = dump_run(load_run(EXAMPLES / "tiny-cpu.yaml"))
    data["metadata"]["name"] = name or data["metadata"]["name"]
    if benchmarks:
        [spec] = data["spec"]["objectives"]["benchmarks"]
        data["spec"]["objectives"]["benchmarks"] = [{**spec, "name": b} for b in benchmarks]
    run = parse_run(data)
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
    assert [(p.candidate.id, p.indistinguishable_from) for p in points] == [
        ("c0007", ()),
        ("c0002", ("c0004",)),
    ]
    assert [c.id for c in pareto_candidates(state)] == ["c0007", "c0002"]


def test_report_lists_the_points_with_their_header_and_the_artifacts(tmp_path: Path) -> None:
    state = searched_state()
    state.hypervolume, state.hypervolume_interval = [0.61], (0.52, 0.7)
    run_dir = write_run_dir(tmp_path, state)
    result = runner.invoke(app, ["report", str(run_dir)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    # The last line: the claimed hypervolume with its interval.
    last = result.output.splitlines()[-1]
    assert last.endswith(": hypervolume 0.6100 (90% interval 0.5200-0.7000)")
    assert "weights" in result.output and "mean [min, max]" in result.output
    assert "0.67 [0.50, 1.00]" in result.output  # c0002's weights 0.5, 0.5, 1.0 (bracketed)
    rows = [line for line in result.output.splitlines() if "c00" in line]
    assert len(rows) == 2 and "c0002 (+1)" in rows[1] and "c0007" in rows[0]
    assert "2 point(s) from 8 merges" in result.output
    lines = (run_dir / PARETO_FILE).read_text().splitlines()
    assert lines[0].endswith(",indistinguishable_from,validated,held_out")
    assert lines[2].startswith("1,c0002,")
    assert lines[2].endswith(",c0004,false,false") and len(lines) == 3
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


# Estimated values (f1, f2) and their standard deviation (the same in both) of a searched
# run: one merge within noise of the base, two within noise of each other.
NOISY = {
    "c0001": ((0.05, 0.99), 0.08),  # the base's within noise: 0.6 sd more accurate
    "c0002": ((0.55, 0.50), 0.05),
    "c0003": ((0.54, 0.51), 0.05),  # c0002's within noise
    "c0004": ((0.85, 0.25), 0.05),
    "c0005": ((0.40, 0.40), 0.05),  # dominated by c0002
}


def noisy_state() -> RunState:
    """:func:`searched_state` with the merges of :data:`NOISY`, each with the search's
    estimate, its raw scores those of the estimated values."""
    state = searched_state()
    state.candidates = []
    for cid, ((f1, f2), sd) in NOISY.items():
        estimate = PointEstimate(mean=[f1, f2], std=[sd, sd], prob_non_dominated=0.5)
        record = candidate(cid, f1, f2)
        state.candidates.append(
            record.model_copy(update={"objectives_std": [sd, sd], "estimate": estimate})
        )
    return state


def test_the_front_the_csv_the_status_and_the_report_list_no_noise(tmp_path: Path) -> None:
    state = noisy_state()
    values = np.array([c.estimate.mean for c in state.candidates])
    assert len(reported_front(values, None, ANCHOR_OBJECTIVES)) == 4  # as exact values
    listed = [("c0004", ()), ("c0002", ("c0003",))]
    assert [(p.candidate.id, p.indistinguishable_from) for p in pareto_points(state)] == listed
    run_dir = write_run_dir(tmp_path, state)
    with open(run_dir / PARETO_FILE) as handle:
        rows = [(r["candidate"], r["indistinguishable_from"]) for r in csv.DictReader(handle)]
    assert rows == [("c0004", ""), ("c0002", "c0003")]
    status = run_status(state, "runs/tiny-cpu", 1)
    pareto = [(p["id"], tuple(p["indistinguishableFrom"])) for p in status["pareto"]]
    assert pareto == listed and status["paretoSize"] == 2

    html_path = tmp_path / "report.html"
    result = runner.invoke(app, ["report", str(run_dir), "--html", str(html_path)])
    assert result.exit_code == 0, result.output
    members = [line for line in result.output.splitlines() if "c000" in line]
    assert len(members) == 2 and "c0004" in members[0] and "c0002 (+1)" in members[1]
    assert "2 point(s) from 5 merges" in result.output
    text = html_path.read_text()
    table = text.split("<table id='pareto'>")[1].split("</table>")[0]
    assert re.findall(r"<td class='text'>(c\d+)", table) == ["c0004", "c0002"]
    assert "(indistinguishable: c0003)" in table and "c0001" not in table
    assert "<td class='objective'>0.550 ± 0.050</td>" in table
    deploy = re.findall(r"<li data-point='\d'><b>(.*?)</b>", text)
    assert [line.split(" against")[0] for line in deploy] == [
        # accuracy 0.71 and 40 tokens against the expert's 0.8 and 50
        "point 0 (c0004): \u221211% accuracy for \u221220% tokens",
        # 0.53 and 30
        "point 1 (c0002): \u221234% accuracy for \u221240% tokens",
    ]


def test_the_report_opens_with_what_to_deploy_and_shows_the_baseline_front(
    tmp_path: Path,
) -> None:
    from browser import chromium, probe_page, screenshot
    from PIL import Image

    run_dir = write_run_dir(tmp_path / "a", noisy_state())
    baseline = write_run_dir(tmp_path / "b", searched_state(), name="tiny-cpu-baseline")
    html_path = tmp_path / "report.html"
    result = runner.invoke(
        app, ["report", str(run_dir), "--baseline", str(baseline), "--html", str(html_path)]
    )
    assert result.exit_code == 0, result.output
    browser = chromium()
    found = probe_page(browser, html_path, tmp_path)
    assert found["points"] == ["0", "1"] and found["nothingToDeploy"] is None
    assert [line.split(". ")[0] for line in found["deploy"]] == [
        "point 0 (c0004): \u221211% accuracy for \u221220% tokens against the expert",
        "point 1 (c0002): \u221234% accuracy for \u221240% tokens against the expert",
    ]
    assert "modular-arithmetic: accuracy 0.710 ± 0.131 (expert 0.800)" in found["deploy"][0]
    assert 0 < found["deployTop"] < 600  # on the first screen
    # The baseline's front as its pareto.csv lists it: c0007, then c0002 (with c0004).
    assert found["baselineFronts"] == [{"run": "tiny-cpu-baseline", "points": ["0", "1"]}]
    shot = screenshot(browser, html_path, "report-deploy.png", height=1600)
    print(f"report screenshot: {shot}")
    with Image.open(shot) as image:
        assert len(set(image.convert("L").getdata())) > 50  # a rendered page


def test_the_pareto_tables_fit_80_columns(tmp_path: Path) -> None:
    """The widest cells a table may have: a long benchmark name, two benchmarks, negative
    values, a member with a dozen merges listed with it, tokens in the ten thousands."""
    from rich.console import Console

    from paretomerge.cli import _front_table, _raw_scores_table
    from paretomerge.report import RunDirectory

    names = ["a-benchmark-with-a-rather-long-name", "aime25"]
    wide = benchmark_score(names[0], 0.123456, 12345.678).model_copy(
        update={"mean_output_tokens_stderr": 1234.5}
    )
    wide_scores = {name: wide.model_copy(update={"name": name}) for name in names}
    state = searched_state()
    state.anchors = {
        role: anchor.model_copy(update={"scores": wide_scores})
        for role, anchor in state.anchors.items()
    }
    values = [*[(0.5, 0.5)] * 13, (-0.123, 1.456)]
    state.candidates = [
        candidate(f"c{i:04d}", *y).model_copy(
            update={
                "scores": wide_scores,
                "variables": [-0.25, -0.5, 0.25],
                "estimate": PointEstimate(mean=y, std=[0.0123, 0.0012], prob_non_dominated=1),
            }
        )
        for i, y in enumerate(values, start=1)
    ]
    directory = RunDirectory.open(write_run_dir(tmp_path, state, benchmarks=names))

    def render(width: int) -> list[str]:
        console = Console(width=width, record=True, file=io.StringIO())
        for table in (_front_table(directory), _raw_scores_table(directory)):
            console.print(table)
        return console.export_text().splitlines()

    lines = render(80)
    assert max(len(line) for line in lines) <= 80
    assert lines == render(200)  # nothing wrapped or cut to fit
    members = [line for line in lines if "c00" in line]
    assert len(members) == 2 and "c0001 (+12)" in members[0]
    assert "-0.123 ± 0.012" in members[1] and "1.456 ± 0.001" in members[1]
    assert "mean [min, max]" in "\n".join(lines) and "-0.17 [-0.50, 0.25]" in members[1]
    assert sum("12345.7 ± 1234.5" in line for line in lines) == 2 * 4  # 2 members, 2 anchors
    assert sum("a-benchmark-with-a-rath…" in line for line in lines) == 4
