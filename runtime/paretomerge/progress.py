"""Live progress of a local run: evaluations done / budget, running, hypervolume, ETA; the
validation after the search on a bar of its own (its budget is counted apart)."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from paretomerge.controller.objectives import format_hypervolume
from paretomerge.controller.state import RunState
from paretomerge.spec import ParetoMergeRun


def eta_seconds(
    state: RunState, budget: int, parallelism: int, validation_budget: int = 0
) -> float | None:
    """Remaining candidates and validations times their mean duration, spread over the
    workers."""
    durations = [
        c.seconds.get("merge", 0.0) + c.seconds.get("evaluate", 0.0)
        for c in [*state.candidates, *state.validations]
        if c.status == "succeeded"
    ]
    if not durations:
        return None
    remaining = max(0, budget - state.finished)
    remaining += max(0, validation_budget - state.validations_finished)
    return remaining * (sum(durations) / len(durations)) / parallelism


class RunProgressBar:
    """A rich progress bar fed with the controller's state after every checkpoint."""

    def __init__(self, run: ParetoMergeRun, console: Console | None = None):
        self.run = run
        self.progress = Progress(
            TextColumn("[bold]{task.fields[phase]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("running {task.fields[running]}"),
            TextColumn("HV {task.fields[hv]}"),
            TextColumn("ETA {task.fields[eta]}"),
            TimeElapsedColumn(),
            console=console,
        )
        self.task = self.progress.add_task(
            run.name, total=run.spec.search.budget, phase="Pending", running=0, hv="-", eta="-"
        )
        validation_budget = run.spec.search.validation.budget
        self.validation_task = (
            self.progress.add_task(
                "validation",
                total=validation_budget,
                phase="validation",
                running=0,
                hv="",
                eta="",
            )
            if validation_budget
            else None
        )
        self._last_message = ""

    def __enter__(self) -> RunProgressBar:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def note(self, text: str) -> None:
        """A line above the bar (what the controller did: resumed, adopted a task)."""
        self.progress.console.log(text, markup=False)

    def update(self, state: RunState) -> None:
        spec = self.run.spec
        eta = eta_seconds(
            state, spec.search.budget, spec.execution.parallelism, spec.search.validation.budget
        )
        if self.validation_task is not None:
            self.progress.update(
                self.validation_task,
                completed=state.validations_finished,
                running=state.count_validations("running"),
            )
        self.progress.update(
            self.task,
            completed=state.finished,
            phase=state.phase,
            running=state.count("running"),
            hv=format_hypervolume(state.hypervolume[-1]) if state.hypervolume else "-",
            eta=time.strftime("%H:%M:%S", time.gmtime(eta)) if eta is not None else "-",
        )
        if state.message and state.message != self._last_message:
            self.progress.console.log(f"{state.phase}: {state.message}", markup=False)
            self._last_message = state.message
