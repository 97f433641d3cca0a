"""Live progress a person can read: a local run's bar and the demo pair's training.

A run's bar shows its phase, the evaluations done of the budget, how many are running,
the hypervolume of the reported front (the controller's last record: the value the
report prints), one ETA that counts down between completions, and the time elapsed;
the validation after the search has a bar of its own (its budget is counted apart). With
a cost budget (``search.costBudget``) the bar fills with what was spent of it, in its
unit, and its ETA counts the cost left: ``search.budget`` is then no cap, and the
candidates are counted without a total. The
training bar shows the phase, its steps, the same ETA and the time elapsed. Lines above
a bar carry their time, never a source file.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Self

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn
from rich.text import Text

from paretomerge.controller.cost_budget import budget_use
from paretomerge.controller.objectives import format_hypervolume

if TYPE_CHECKING:  # the demo pair imports torch: only the demo needs it
    from paretomerge.controller.state import RunState
    from paretomerge.demo.pair import TrainingProgress
    from paretomerge.spec import ParetoMergeRun

Clock = Callable[[], float]
# Completions a run's ETA is measured over: the latest few, as proposals slow down.
RUN_ETA_WINDOW = 4
# Steps the training's ETA is measured over: about a minute of the cheapest.
TRAINING_ETA_WINDOW = 200


def clock_text(seconds: float) -> str:
    """A duration as the bars write it: ``1:52`` (minutes, seconds), ``1:02:03`` with hours."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def line_console() -> Console:
    """A console whose log lines carry their time and no source reference
    (``progress.py:96`` means nothing to a user)."""
    return Console(log_path=False)


class Throughput:
    """Work finished per second over the latest ``window`` completions this process saw
    (increases of the work done): work done before it watched (a resumed run's) and the
    start-up before the first completion (the profile, the anchors) do not count, and
    the rate follows the work as it slows down (a search's proposals take longer as its
    surrogate learns more points)."""

    def __init__(self, window: int) -> None:
        self._seen: float | None = None
        self._completions: deque[tuple[float, float]] = deque(maxlen=window + 1)

    def observe(self, now: float, done: float) -> None:
        """Note the work done at ``now``."""
        if self._seen is not None and done > self._seen:
            self._completions.append((now, done))
        self._seen = done

    def finish_at(self, remaining: float) -> float | None:
        """When ``remaining`` work will be done at this rate (on the clock ``observe`` was
        given); ``None`` before two completions at different times."""
        if len(self._completions) < 2:
            return None
        first_time, first_done = self._completions[0]
        latest_time, latest_done = self._completions[-1]
        if latest_time <= first_time:
            return None
        rate = (latest_done - first_done) / (latest_time - first_time)
        return latest_time + remaining / rate


class EtaColumn(ProgressColumn):
    """``eta 1:52``: the time left until the task's ``finish_at`` field (a time on the
    progress's clock), counting down between updates; ``eta -`` while it is unknown, and
    nothing for a task without the field."""

    def render(self, task: Task) -> Text:
        if "finish_at" not in task.fields:
            return Text("")
        finish_at = task.fields["finish_at"]
        if finish_at is None:
            return Text("eta -")
        return Text(f"eta {clock_text(max(0.0, finish_at - task.get_time()))}")


class ElapsedColumn(ProgressColumn):
    """``elapsed 4:02``: the time since the task started; nothing before it started."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed
        return Text("") if elapsed is None else Text(f"elapsed {clock_text(elapsed)}")


class DoneColumn(ProgressColumn):
    """``3/12``, the work done of the task's total; a task with a ``counted`` field (the
    run's bar under a cost budget, whose total is not a count) shows that instead."""

    def __init__(self) -> None:
        super().__init__()
        self._of_total = MofNCompleteColumn()

    def render(self, task: Task) -> Text:
        counted = task.fields.get("counted")
        return self._of_total.render(task) if counted is None else Text(counted)


class LiveBar:
    """A rich ``Progress`` (``self.progress``) shown while the ``with`` block runs, with
    lines above it (:meth:`note`)."""

    progress: Progress

    def __enter__(self) -> Self:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def note(self, text: str) -> None:
        """A line above the bar (what the controller did: resumed, adopted a task; a
        training phase done, the pair reused)."""
        self.progress.console.log(text, markup=False)


class RunProgressBar(LiveBar):
    """A rich progress bar fed with the controller's state after every checkpoint."""

    def __init__(
        self,
        run: ParetoMergeRun,
        console: Console | None = None,
        clock: Clock = time.monotonic,
    ):
        self.run = run
        self.clock = clock
        self.progress = Progress(
            TextColumn("[bold]{task.fields[phase]}"),
            BarColumn(),
            DoneColumn(),
            TextColumn("{task.fields[details]}"),
            EtaColumn(),
            ElapsedColumn(),
            console=console or line_console(),
            get_time=clock,
        )
        # With a cost budget the bar measures what was spent of it: the count budget is
        # only the search's planning horizon, which the candidates may go past.
        self.cost_budget = run.spec.search.cost_budget
        self.task = self.progress.add_task(
            run.name,
            total=run.spec.search.budget if self.cost_budget is None else self.cost_budget.limit,
            phase="Pending",
            details="running 0",
            finish_at=None,
            **({} if self.cost_budget is None else {"counted": _candidates_text(0)}),
        )
        validation_budget = run.spec.search.validation.budget
        self.validation_task = (
            # Started (its elapsed time shown) when the first validation is.
            self.progress.add_task(
                "validation",
                total=validation_budget,
                phase="validation",
                details="running 0",
                start=False,
            )
            if validation_budget
            else None
        )
        self.throughput = Throughput(RUN_ETA_WINDOW)
        self._last_message = ""

    def update(self, state: RunState) -> None:
        """Show ``state``: counts (or the cost spent), the hypervolume the report will
        print, the ETA."""
        self.throughput.observe(self.clock(), self._work_done(state))
        if self.validation_task is not None:
            if state.validations:
                self.progress.start_task(self.validation_task)  # no-op once started
            self.progress.update(
                self.validation_task,
                completed=state.validations_finished,
                details=f"running {state.count_validations('running')}",
            )
        hypervolume = format_hypervolume(state.hypervolume[-1]) if state.hypervolume else "-"
        used = budget_use(state)
        if self.cost_budget is None:
            done = {"completed": state.finished}
        else:
            done = {"completed": self._spent(state), "counted": _candidates_text(state.finished)}
        self.progress.update(
            self.task,
            **done,
            phase=state.phase,
            details=f"running {state.count('running')}  hypervolume {hypervolume}"
            + (f"  {used}" if used else ""),
            finish_at=self.throughput.finish_at(self._work_left(state)),
        )
        if state.message and state.message != self._last_message:
            self.note(f"{state.phase}: {state.message}")
            self._last_message = state.message

    def _spent(self, state: RunState) -> float:
        """What the run paid for so far, in its cost budget's unit."""
        paid = state.paid
        return self.cost_budget.charged(paid.output_tokens, paid.gpu_seconds)

    def _work_done(self, state: RunState) -> float:
        """Candidates and validations finished; with a cost budget, what they cost."""
        if self.cost_budget is not None:
            return self._spent(state)
        return state.finished + state.validations_finished

    def _work_left(self, state: RunState) -> float:
        """Candidates and validations still to finish; with a cost budget, what is left
        of it (the validations are paid from it too)."""
        if self.cost_budget is not None:
            return max(0.0, self.cost_budget.limit - self._spent(state))
        search = self.run.spec.search
        return max(0, search.budget - state.finished) + max(
            0, search.validation.budget - state.validations_finished
        )


def _candidates_text(finished: int) -> str:
    return f"{finished} candidate" + ("" if finished == 1 else "s")


class PairTrainingProgress(LiveBar):
    """A bar for the demo pair's training, fed after every optimiser step: the phase and
    its steps, the ETA of the whole training (its steps weighted by their cost, as
    :class:`~paretomerge.demo.pair.TrainingProgress` counts them) and the time elapsed;
    the phase lines above it. No bar is drawn when the pair is reused (no step)."""

    def __init__(self, console: Console | None = None, clock: Clock = time.monotonic):
        self.clock = clock
        self.progress = Progress(
            TextColumn("[bold]training the demo pair"),
            BarColumn(),
            TextColumn("{task.fields[steps]}"),
            EtaColumn(),
            ElapsedColumn(),
            console=console or line_console(),
            get_time=clock,
        )
        # Shown from the first step (a reused pair takes none); its elapsed time counts
        # from here, the model's set-up included.
        self.task = self.progress.add_task("training", visible=False, steps="")
        self.throughput = Throughput(TRAINING_ETA_WINDOW)
        self.throughput.observe(clock(), 0.0)  # so that the first step is a completion

    def step(self, training: TrainingProgress) -> None:
        """Show where the training is after a step."""
        self.throughput.observe(self.clock(), training.work_done)
        self.progress.update(
            self.task,
            visible=True,
            total=training.work_total,
            completed=training.work_done,
            steps=f"{training.phase} {training.step}/{training.steps} steps",
            finish_at=self.throughput.finish_at(training.work_total - training.work_done),
        )
