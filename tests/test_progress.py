"""What a person reads while a run goes on: the progress bars' lines, drawn from made-up
states on a fake clock, and the surrogate's warnings, counted rather than printed.

The bars are rendered as a terminal would draw them at one moment (rich's task table),
so what is checked is the text itself: labelled ETA and elapsed time, the ETA counting
down between completions, the hypervolume the report prints, no source reference.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import pytest
from linear_operator.utils.warnings import NumericalWarning
from rich.console import Console
from typer.testing import CliRunner

from paretomerge import cli
from paretomerge.controller.loop import Controller
from paretomerge.controller.objectives import format_hypervolume
from paretomerge.controller.state import CandidateRecord, RunState, ValidationRecord
from paretomerge.demo.pair import TrainingProgress
from paretomerge.progress import (
    PairTrainingProgress,
    RunProgressBar,
    Throughput,
    clock_text,
    line_console,
)
from paretomerge.results import EvaluationCost
from paretomerge.spec import CostBudgetSpec, dump_run, load_run, parse_run
from paretomerge.surrogate_warnings import surrogate_warnings_counted

EXAMPLES = Path(__file__).parent.parent / "examples"
JITTER = "A not p.d., added jitter of 1.0e-08 to the diagonal"


class FakeClock:
    """Seconds that pass only when the test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def rendered(progress) -> list[str]:
    """The bar's rows as a terminal draws them now."""
    console = Console(file=io.StringIO(), width=200, color_system=None, record=True)
    console.print(progress.progress.make_tasks_table(progress.progress.tasks))
    return [" ".join(line.split()) for line in console.export_text().splitlines()]


def run_with(budget: int, validation_budget: int = 0, cost_budget: dict | None = None):
    """The tiny CPU example with ``budget`` candidates, a validation budget and a cost
    budget (``search.costBudget``)."""
    run = dump_run(load_run(EXAMPLES / "tiny-cpu.yaml"))
    run["spec"]["search"]["budget"] = budget
    run["spec"]["search"]["initialPoints"] = min(2, budget)
    if validation_budget:
        run["spec"]["search"]["validation"] = {"budget": validation_budget}
    if cost_budget:
        run["spec"]["search"]["costBudget"] = cost_budget
    return parse_run(run)


def state_with(
    finished: int,
    running: int,
    hypervolumes: list[float],
    cost: EvaluationCost | None = None,
    cost_budget: CostBudgetSpec | None = None,
) -> RunState:
    """A searching run: ``finished`` candidates evaluated (each at ``cost``), ``running``
    running, going by ``cost_budget``."""
    candidates = [
        CandidateRecord(
            id=f"c{i + 1:04d}",
            x=[0.5],
            variables=[0.5],
            status="succeeded" if i < finished else "running",
            cost=cost if i < finished else None,
        )
        for i in range(finished + running)
    ]
    return RunState(
        run="tiny-cpu",
        phase="Searching",
        candidates=candidates,
        hypervolume=hypervolumes,
        cost_budget=cost_budget,
    )


def test_a_duration_reads_as_minutes_and_seconds_with_hours_when_there_are_any() -> None:
    assert [clock_text(s) for s in (0, 7.9, 112, 3723)] == ["0:00", "0:07", "1:52", "1:02:03"]


def test_the_run_bar_labels_its_eta_and_elapsed_time_and_counts_down() -> None:
    clock = FakeClock()
    bar = RunProgressBar(run_with(budget=12), console=line_console(), clock=clock)
    clock.now = 90.0
    bar.update(state_with(finished=0, running=2, hypervolumes=[]))
    assert rendered(bar)[0].endswith("0/12 running 2 hypervolume - eta - elapsed 1:30")
    clock.now = 100.0  # the first completion: a rate needs two
    bar.update(state_with(finished=1, running=2, hypervolumes=[0.5]))
    assert "eta -" in rendered(bar)[0]
    clock.now = 160.0  # 1 evaluation a minute: 10 left take 10 minutes
    bar.update(state_with(finished=2, running=2, hypervolumes=[0.5, 0.61234]))
    assert rendered(bar)[0].endswith("2/12 running 2 hypervolume 0.6123 eta 10:00 elapsed 2:40")
    clock.now = 220.0  # no completion: the ETA counts down
    assert rendered(bar)[0].endswith("eta 9:00 elapsed 3:40")
    clock.now = 2000.0  # late: never below zero
    assert "eta 0:00" in rendered(bar)[0]


def test_with_a_cost_budget_the_bar_fills_with_what_was_spent_and_counts_past_the_budget():
    """``search.budget`` (2) is then only the search's horizon: the bar measures the
    tokens spent of the cost budget, the candidates are counted without a total, and the
    ETA is the time the tokens left take at the rate they were spent."""
    clock = FakeClock()
    run = run_with(budget=2, cost_budget={"outputTokens": 10_000})
    bar = RunProgressBar(run, console=line_console(), clock=clock)
    costly = EvaluationCost(answers=8, output_tokens=1000)

    def state(finished: int) -> RunState:
        return state_with(finished, 1, [0.5], costly, run.spec.search.cost_budget)

    bar.update(state(0))
    assert "0 candidates running 1" in rendered(bar)[0]
    clock.now = 60.0
    bar.update(state(1))
    clock.now = 120.0  # 1,000 tokens a minute: the 8,000 left take 8 minutes
    bar.update(state(2))
    clock.now = 180.0
    bar.update(state(3))
    row = rendered(bar)[0]
    assert row.startswith("Searching ")
    assert row.endswith(
        " 3 candidates running 1 hypervolume 0.5000 3,000 of 10,000 output tokens spent "
        "eta 7:00 elapsed 3:00"
    )
    assert "/2" not in row  # never 3 of a budget of 2
    task = bar.progress.tasks[0]
    assert (task.completed, task.total) == (3000, 10_000)
    # Past the budget (by less than a candidate), the bar is full and the ETA zero.
    clock.now = 600.0
    bar.update(state(11))
    assert rendered(bar)[0].endswith(
        "11 candidates running 1 hypervolume 0.5000 "
        "11,000 of 10,000 output tokens spent eta 0:00 elapsed 10:00"
    )
    assert bar.progress.tasks[0].finished


def test_a_gpu_hour_budget_fills_the_bar_with_gpu_hours() -> None:
    run = run_with(budget=4, cost_budget={"gpuHours": 0.5})
    bar = RunProgressBar(run, console=line_console(), clock=FakeClock())
    # 1 GPU held for 9 minutes (server start and generation): 0.15 GPU-hours each.
    cost = EvaluationCost(
        answers=8, output_tokens=100, serve_seconds=60, generate_seconds=480, gpus=1
    )
    bar.update(state_with(2, 0, [0.5], cost, run.spec.search.cost_budget))
    row = rendered(bar)[0]
    assert "2 candidates running 0 hypervolume 0.5000 0.30 of 0.50 GPU-hours spent" in row
    assert bar.progress.tasks[0].completed == pytest.approx(0.3)
    assert bar.progress.tasks[0].total == 0.5


def test_the_bar_shows_the_hypervolume_the_report_prints() -> None:
    """The controller's last record, in the report's format: the value the table, the
    front plot's legend and ``paretomerge report`` print."""
    bar = RunProgressBar(run_with(budget=4), console=line_console(), clock=FakeClock())
    history = [0.93041, 0.91962]  # the front's hypervolume may fall as estimates move
    bar.update(state_with(finished=2, running=0, hypervolumes=history))
    assert f"hypervolume {format_hypervolume(history[-1])}" in rendered(bar)[0]


def test_the_eta_counts_validations_and_their_bar_starts_with_the_first() -> None:
    clock = FakeClock()
    bar = RunProgressBar(
        run_with(budget=2, validation_budget=2), console=line_console(), clock=clock
    )
    bar.update(state_with(finished=0, running=2, hypervolumes=[]))
    clock.now = 60.0
    bar.update(state_with(finished=1, running=1, hypervolumes=[0.5]))
    before = rendered(bar)
    assert before[1].startswith("validation") and "elapsed" not in before[1]
    assert "eta" not in before[1]  # the run's ETA is on its own row, validations included
    clock.now = 120.0
    state = state_with(finished=2, running=0, hypervolumes=[0.5, 0.6])
    state.phase = "Validating"
    state.validations = [ValidationRecord(id="v0001", candidate="c0001")]
    bar.update(state)
    rows = rendered(bar)
    assert rows[0].endswith("eta 2:00 elapsed 2:00")  # 2 validations left at 1 a minute
    assert rows[1].endswith("0/2 running 1 elapsed 0:00")


def test_a_resumed_runs_earlier_evaluations_do_not_make_its_eta() -> None:
    rate = Throughput(window=4)
    rate.observe(0.0, 10)  # resumed with 10 done, in no time at all
    assert rate.finish_at(5) is None
    rate.observe(30.0, 11)
    rate.observe(90.0, 12)  # one a minute since the resume
    assert rate.finish_at(5) == 90.0 + 300.0


def test_the_eta_follows_the_latest_completions_as_proposals_slow_down() -> None:
    rate = Throughput(window=4)
    rate.observe(0.0, 0)
    for done, now in enumerate([60, 120, 180, 240, 540, 840, 1140, 1440], start=1):
        rate.observe(float(now), done)
    # The last 4 took 5 minutes each: 2 more take 10 minutes, not 2 at the first rate.
    assert rate.finish_at(2) == 1440.0 + 600.0


@pytest.mark.parametrize(
    "bar",
    [
        lambda: RunProgressBar(run_with(budget=2), clock=FakeClock()),
        lambda: PairTrainingProgress(clock=FakeClock()),
    ],
    ids=["run", "training"],
)
def test_lines_above_a_bar_carry_no_source_reference(bar) -> None:
    """What the controller notes and the training's phase lines: ``progress.py:96`` at
    the end of each means nothing to a user."""
    bar = bar()
    output = io.StringIO()
    bar.progress.console.file = output
    bar.note("shared base: 280 steps in 83.1 s, loss 0.412")
    assert "shared base: 280 steps" in output.getvalue()
    assert ".py:" not in output.getvalue()


def test_the_training_bar_shows_the_phase_its_steps_and_a_weighted_eta() -> None:
    clock = FakeClock()
    training = PairTrainingProgress(console=line_console(), clock=clock)
    clock.now = 10.0
    training.step(TrainingProgress("shared base", 1, 280, work_done=1.0, work_total=101.0))
    assert rendered(training)[0].endswith("shared base 1/280 steps eta - elapsed 0:10")
    clock.now = 20.0  # 10 units of work in 10 s: 90 left take 90 s
    training.step(TrainingProgress("shared base", 11, 280, work_done=11.0, work_total=101.0))
    assert rendered(training)[0].endswith("shared base 11/280 steps eta 1:30 elapsed 0:20")


def test_surrogate_warnings_are_counted_not_printed_and_others_still_shown() -> None:
    shown: list[str] = []
    with warnings.catch_warnings(record=True) as printed:
        warnings.simplefilter("default")
        with surrogate_warnings_counted() as quiet:
            for _ in range(3):  # one line of code: counted every time
                warnings.warn(JITTER, NumericalWarning, stacklevel=1)
            warnings.warn("a warning of ours", UserWarning, stacklevel=1)
        with surrogate_warnings_counted(shown.append) as verbose:
            warnings.warn(JITTER, NumericalWarning, stacklevel=1)
    assert [str(w.message) for w in printed] == ["a warning of ours"]
    assert quiet.count == 3 and verbose.count == 1
    assert quiet.summary(verbose=False) == (
        "3 numerical warning(s) from the surrogate fit (see --verbose)"
    )
    assert shown == [f"linear_operator NumericalWarning: {JITTER}"]


@pytest.mark.parametrize("verbose", [False, True])
def test_a_warning_during_a_search_is_counted_and_shown_only_with_verbose(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, verbose: bool
) -> None:
    """``paretomerge run`` with a controller whose search raises gpytorch's warning, as a
    fit of a nearly singular covariance does."""

    def search_with_a_jitter(controller: Controller) -> RunState:
        warnings.warn(JITTER, NumericalWarning, stacklevel=1)
        return RunState(run=controller.run.name, phase="Succeeded")

    monkeypatch.setattr(Controller, "run_to_end", search_with_a_jitter)
    monkeypatch.setattr(cli, "_print_report", lambda *args, **kwargs: None)
    run_file = tmp_path / "tiny-cpu.yaml"
    run_file.write_text((EXAMPLES / "tiny-cpu.yaml").read_text())
    with warnings.catch_warnings(record=True) as printed:
        warnings.simplefilter("default")
        result = CliRunner().invoke(
            cli.app, ["run", str(run_file), *(["--verbose"] if verbose else [])]
        )
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert not printed
    if verbose:
        assert f"linear_operator NumericalWarning: {JITTER}" in output
        assert "1 numerical warning(s) from the surrogate fit" in output
        assert "see --verbose" not in output
    else:
        assert JITTER not in output
        assert "1 numerical warning(s) from the surrogate fit (see --verbose)" in output
