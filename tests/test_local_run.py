"""The whole loop on this machine, for real: ``paretomerge demo`` and what it leaves.

The demo pair is trained on the CPU (once per session, shared); both of the demo's runs
(per layer, and the model-level sweep) merge every candidate with mergekit and evaluate
it through evalscope against the built-in transformers server in its own process. The
HTML report is opened in a real browser (headless Chromium, ``tests/browser.py``); its
screenshot is kept as ``demo-report.png`` under ``browser.ARTIFACTS`` (the path is
printed).
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from browser import chromium, probe_page, screenshot
from PIL import Image
from tiny_models import link_tree
from typer.testing import CliRunner

from paretomerge.checkpoint import Checkpoint
from paretomerge.cli import app
from paretomerge.controller.objectives import ANCHOR_OBJECTIVES
from paretomerge.controller.state import RunState
from paretomerge.k8s.status import run_status
from paretomerge.search import hypervolume, pareto_mask
from paretomerge.search.front import covered_by, covered_by_baselines

BUDGET = 4


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, demo_models: Path) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("demo")
    link_tree(demo_models, out / "models")  # the session's trained pair, reused as is
    result = CliRunner().invoke(
        app,
        ["demo", "--out", str(out), "--budget", str(BUDGET), "--parallelism", "2", "--limit", "16"],
    )
    return out, result


@pytest.mark.parametrize("run_name", ["demo", "demo-model-level"])
def test_the_demo_finds_a_front_and_leaves_consistent_artifacts(demo_run, run_name) -> None:
    out, result = demo_run
    assert result.exit_code == 0, result.output
    run_dir = out / "runs" / run_name
    state = RunState.load(run_dir)
    # The demo screens: a candidate may stop after a screening stage (4 or 8 of the 16
    # questions), which spends its place in the budget all the same.
    assert state.phase == "Succeeded" and state.finished == state.spent == BUDGET
    assert state.count("failed") == 0
    done = [c for c in state.candidates if c.status == "succeeded"]
    assert done, "every candidate screened"
    base, expert = state.anchors["base"].scores, state.anchors["expert"].scores
    name = "modular-arithmetic"
    # The pair's trade-off, measured through the real client path.
    assert expert[name].accuracy > base[name].accuracy
    assert expert[name].mean_output_tokens > 2 * base[name].mean_output_tokens
    assert base[name].n == expert[name].n == 16

    objectives = np.load(run_dir / "objectives.npy")
    assert objectives.shape == (len(done), 2) and np.all(np.isfinite(objectives))
    assert np.load(run_dir / "decision_variables.npy").shape[0] == len(done)
    # Every value has its error (0 where every answer agreed: all right, or all as long).
    stds = np.load(run_dir / "objectives_std.npy")
    assert stds.shape == (len(done), 2) and np.all(np.isfinite(stds) & (stds >= 0))
    with open(run_dir / "pareto.csv") as handle:
        rows = list(csv.DictReader(handle))
    # By the search's estimates of the candidates evaluated in full: no listed merge is
    # within noise of an anchor or of another listed one, and every merge on the estimates'
    # front that is not listed is within noise of an anchor or listed with a member (four
    # evaluations of 16 questions may tell no merge from the anchors: the front may be
    # empty).
    by_id = {c.id: c for c in done}
    estimate = {c.id: (np.array(c.estimate.mean), np.array(c.estimate.std)) for c in done}
    members = [row["candidate"] for row in rows]
    for member in members:
        y, sd = estimate[member]
        assert not covered_by_baselines(y[None], sd[None], ANCHOR_OBJECTIVES)[0]
        others = [estimate[other] for other in members if other != member]
        if others:
            assert not covered_by(y, sd, *map(np.array, zip(*others, strict=True))).any()
    together = {c for row in rows for c in row["indistinguishable_from"].split()}
    estimated = np.array([c.estimate.mean for c in done])
    for c, on_front in zip(done, pareto_mask(estimated), strict=True):
        y, sd = estimate[c.id]
        near_anchor = covered_by_baselines(y[None], sd[None], ANCHOR_OBJECTIVES)[0]
        assert not on_front or c.id in members or c.id in together or near_anchor
    assert together <= set(by_id) - set(members)
    assert all(float(row["f1_std"]) >= 0 and row["validated"] == "false" for row in rows)
    history = json.loads((run_dir / "hypervolume.json").read_text())
    assert len(history["hypervolume"]) == BUDGET and len(history["after"]) == BUDGET
    # The last is the estimate of the listed front's true hypervolume, inside its interval
    # together with the hypervolume of the listed values.
    front_Y = np.array([[float(row["f1"]), float(row["f2"])] for row in rows]).reshape(-1, 2)
    reference = np.array(history["reference_point"])
    low, high = history["interval"]
    assert low <= history["hypervolume"][-1] <= high
    assert low <= hypervolume(front_Y, reference) <= high
    # Every answer is recorded with its question: 16 questions, one repeat each.
    first = done[0].id
    records = run_dir / "candidates" / first / "eval" / "benchmarks" / name / "records.jsonl"
    questions = [json.loads(line)["question"] for line in records.read_text().splitlines()]
    assert sorted(questions) == list(range(16))
    # What every evaluation cost: its answers (16, or the screening stage's share), the
    # tokens its records hold, a merge, a server start and the generation, no GPU-seconds
    # without a GPU; the run's totals (results.json, the status, the report) are the sums
    # over its candidates.
    for candidate in state.candidates:
        cost = candidate.cost
        asked = 16 if candidate.screened_after is None else 4 * candidate.screened_after
        benchmark = run_dir / "candidates" / candidate.id / "eval" / "benchmarks" / name
        answers = [json.loads(line) for line in (benchmark / "records.jsonl").open()]
        assert cost.answers == asked
        if candidate.screened_after is None:
            assert cost.output_tokens == sum(a["output_tokens"] for a in answers)
            assert cost.merge_seconds == candidate.seconds["merge"] > 0
            assert 0 < cost.serve_seconds + cost.generate_seconds < candidate.seconds["evaluate"]
        else:  # stopped by the controller, from its last screening stage's file (which may
            # have begun the next stage; the merge's seconds are the task's own, not known)
            assert cost.serve_seconds + cost.generate_seconds > 0
        assert cost.generate_seconds > 0
        assert cost.gpus == torch.cuda.device_count()  # the CPU build here: none
        assert cost.gpu_seconds == (cost.serve_seconds + cost.generate_seconds) * cost.gpus
    for anchor in state.anchors.values():  # the run that evaluated them paid for them
        assert (anchor.cost is None) == anchor.cached
        assert anchor.cached or (anchor.cost.answers, anchor.cost.merge_seconds) == (16, 0.0)
    costs = [c.cost for c in state.candidates]
    total = json.loads((run_dir / "results.json").read_text())["cost"]
    assert total["evaluations"] == BUDGET and total["answers"] == sum(c.answers for c in costs)
    assert total["output_tokens"] == sum(c.output_tokens for c in costs)
    for step in ("merge", "serve", "generate"):
        spent = sum(getattr(c, f"{step}_seconds") for c in costs)
        assert total[f"{step}_seconds"] == pytest.approx(spent)
    status = run_status(state, f"runs/{run_name}", 1)
    column = status["evaluationColumns"].index("outputTokens")
    assert status["cost"]["outputTokens"] == sum(row[column] for row in status["evaluations"])
    assert status["cost"]["outputTokens"] == total["output_tokens"]
    assert f"{run_name} cost: {BUDGET} evaluation(s), {total['answers']} answers, " in result.output
    # One line each, however narrow the terminal: scripts read them.
    assert re.search(rf"^{run_name} cost: .* GPU-seconds\)$", result.output, re.MULTILINE)
    if run_name == "demo":  # the model-level run is drawn on the per-layer run's plots
        plots = ("pareto_front.png", "hypervolume.png", "hypervolume_cost.png", "importance.png")
        for plot in plots:
            assert (run_dir / plot).stat().st_size > 0
    assert f"{run_name}: {len(done)} evaluated" in result.output
    # keepMergedModels: none -> no merged weights left behind.
    assert not list((run_dir / "candidates").glob("*/merged"))


def test_a_second_run_reuses_the_anchors_and_a_finished_run_is_not_repeated(demo_run) -> None:
    out, first = demo_run
    assert first.exit_code == 0, first.output
    run_dir = out / "runs" / "demo"
    before = RunState.load(run_dir)
    again = CliRunner().invoke(app, ["run", str(out / "demo.yaml")])
    assert again.exit_code == 0, again.output
    after = RunState.load(run_dir)
    assert after.candidates == before.candidates  # nothing evaluated twice
    # One pair of anchors, evaluated once and shared by both runs.
    anchors = list((out / ".paretomerge" / "anchors").glob("*.json"))
    assert len(anchors) == 2
    baseline = RunState.load(out / "runs" / "demo-model-level").anchors
    assert baseline["base"].cached and baseline["expert"].cached


def test_materialize_recreates_a_pareto_member(demo_run, tmp_path: Path) -> None:
    out, first = demo_run
    assert first.exit_code == 0, first.output
    listing = [out / "runs" / name for name in ("demo", "demo-model-level")]
    listing = [d for d in listing if len((d / "pareto.csv").read_text().splitlines()) > 1]
    if not listing:
        pytest.skip("neither demo run told a merge from the anchors: nothing to materialize")
    run_dir = listing[0]
    result = CliRunner().invoke(
        app, ["materialize", str(run_dir), "--point", "0", "--out", str(tmp_path / "m")]
    )
    assert result.exit_code == 0, result.output
    merged = Checkpoint(tmp_path / "m")
    assert merged.num_layers == Checkpoint(out / "models" / "instruct").num_layers
    card = (tmp_path / "m" / "README.md").read_text().splitlines()
    assert [line for line in card if line.startswith("# ")] == [f"# {run_dir.name}: Pareto point 0"]
    bad = CliRunner().invoke(
        app, ["materialize", str(run_dir), "--point", "99", "--out", str(tmp_path / "x")]
    )
    assert bad.exit_code == 1 and "--point 99" in bad.output


def test_the_demo_report_renders_in_a_browser(demo_run, tmp_path: Path) -> None:
    out, first = demo_run
    assert first.exit_code == 0, first.output
    report = out / "report.html"
    with open(out / "runs" / "demo" / "pareto.csv") as handle:
        listed = list(csv.DictReader(handle))
    points, ids = [row["point"] for row in listed], [row["candidate"] for row in listed]
    text = report.read_text()
    # Self-contained: every image is a data URI, nothing is fetched from elsewhere.
    assert "http://" not in text and "https://" not in text
    browser = chromium()
    found = probe_page(browser, report, tmp_path)
    assert found["title"] == "ParetoMerge report: demo"
    assert found["points"] == points
    assert found["external"] == []
    assert len(found["images"]) == 4  # front, hypervolume, against cost, importance
    # It opens with what to deploy: a line per member, or why there is none.
    assert 0 < found["deployTop"] < 600
    if points:
        assert [line.split(":")[0] for line in found["deploy"]] == [
            f"point {point} ({candidate})" for point, candidate in zip(points, ids, strict=True)
        ]
        assert all(" tokens against the expert. " in line for line in found["deploy"])
    else:
        assert found["nothingToDeploy"].startswith("No merge is listed")
    # The model-level sweep's front, as its pareto.csv lists it.
    with open(out / "runs" / "demo-model-level" / "pareto.csv") as handle:
        baseline_points = [row["point"] for row in csv.DictReader(handle)]
    assert found["baselineFronts"] == [{"run": "demo-model-level", "points": baseline_points}]
    assert all(image["complete"] and image["naturalWidth"] > 0 for image in found["images"])
    for point in points:  # each member: its materialize command and mergekit configuration
        assert f"materialize {(out / 'runs' / 'demo').resolve()} --point {point}" in text
    assert text.count("merge_method: task_arithmetic") == len(points)
    # Every finished evaluation's cost, then the totals.
    costs = text[text.index("<table id='cost'>") :].split("</table>")[0]
    state = RunState.load(out / "runs" / "demo")
    for candidate in state.candidates:
        row = f"<td class='text'>{candidate.id}</td><td class='text'>{candidate.status}</td>"
        assert row in costs
    assert f"{state.cost.output_tokens}</td>" in costs
    shot = screenshot(browser, report, "demo-report.png")
    print(f"report screenshot: {shot}")
    with Image.open(shot) as image:
        assert image.size == (1200, 2400)
        assert len(set(image.convert("L").getdata())) > 50  # a rendered page, not a blank one


def test_the_report_shows_uncertainty_and_failed_candidates_when_the_run_has_them(
    demo_run, tmp_path
):
    out, first = demo_run
    assert first.exit_code == 0, first.output
    volume = tmp_path / "volume"
    shutil.copytree(out / "runs" / "demo", volume / "runs" / "demo")
    state = RunState.load(volume / "runs" / "demo")
    lost = state.candidates[0].model_copy(
        update={"id": "c0099", "status": "failed", "reasons": ["merge: disk <full>"]}
    )
    state.candidates.append(lost)
    state.save(volume / "runs" / "demo")
    run_dir = volume / "runs" / "demo"
    np.save(run_dir / "objectives_std.npy", np.full_like(np.load(run_dir / "objectives.npy"), 0.05))
    pareto = run_dir / "pareto.csv"
    with open(pareto) as handle:
        columns = csv.DictReader(handle).fieldnames
    evaluated = [c for c in state.candidates if c.status == "succeeded"]
    rows = [
        {
            **dict.fromkeys(columns, ""),
            "point": number,
            "candidate": c.id,
            "f1": c.objectives[0],
            "f2": c.objectives[1],
            "f1_std": "0.0625",
            "f2_std": "0.03125",
            "validated": str(number == 0).lower(),
        }
        for number, c in enumerate(evaluated)
    ]
    with open(pareto, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    result = CliRunner().invoke(
        app, ["report", str(volume / "runs" / "demo"), "--html", str(tmp_path / "r.html")]
    )
    assert result.exit_code == 0, result.output
    text = (tmp_path / "r.html").read_text()
    table = text.split("<table id='pareto'>")[1].split("</table>")[0]
    assert len(re.findall(r"<td class='objective'>-?[\d.]+ ± 0\.062</td>", table)) == len(rows)
    assert len(re.findall(r"<td class='objective'>-?[\d.]+ ± 0\.031</td>", table)) == len(rows)
    assert text.count("<td class='text'>validation</td>") == 1
    assert text.count("<td class='text'>search</td>") == len(rows) - 1
    assert "± 0.062" in result.output
    # The models are not on this volume: the configuration says so instead of failing.
    assert "# not available here" in text
    failed = text[re.search(r"<h2>Failed( and screened)? candidates</h2>", text).start() :]
    assert "c0099" in failed and "merge: disk &lt;full&gt;" in failed
