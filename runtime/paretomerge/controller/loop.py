"""The controller: drives one run from its checkpoint to its end.

A run goes through its phases: the importance profile, the anchors (the base and the
expert, which normalise every evaluation), the search (:mod:`.search_driver`) and the
validation after it. The controller only talks to an
:class:`~paretomerge.executors.Executor`, so the same code runs tasks as local processes
or as Kubernetes Jobs; every task is started, adopted and retried the same way
(:class:`~paretomerge.controller.task_runner.TaskRunner`).

Every change is checkpointed before it counts, so a controller that is killed and
started again on the same run directory loses no finished evaluation and repeats none:
finished attempts are collected from their result files, running ones adopted.

Before any work a preflight looks at everything the run needs and lists every problem at
once (:mod:`paretomerge.preflight`). A run that failed is retried when it is run again
(its cause fixed): finished evaluations are kept and every task that gave up gets its
retries again; a run that succeeded goes on when its budget was raised
(:meth:`Controller._reopen`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from paretomerge.controller.anchors import (
    anchor_key,
    cached_scores,
    forget_scores,
    store_scores,
)
from paretomerge.controller.artifacts import pareto_candidates
from paretomerge.controller.cost_budget import UNIT_NAMES, budget_use, wants_candidate
from paretomerge.controller.estimates import validation_anchors_of
from paretomerge.controller.objectives import (
    AnchorError,
    CloseFigure,
    close_benchmarks,
    judge_anchors,
    remeasure_repeats,
)
from paretomerge.controller.search_driver import SearchDriver, question_split
from paretomerge.controller.state import AnchorRecord, RunState
from paretomerge.controller.task_runner import Limits, RunFailed, TaskRunner
from paretomerge.executors import Executor
from paretomerge.preflight import PreflightFailed, preflight
from paretomerge.run_layout import RunLayout
from paretomerge.search import AskTellOptimizer
from paretomerge.spec import (
    ParetoMergeRun,
    SpecProblem,
    dump_run,
    load_started_run,
    resume_conflicts,
)
from paretomerge.tasks import ActivationPrior, EvaluateTask, ProfileTask
from paretomerge.volume import OutsideVolumeError, in_volume

ANCHOR_ROLES = ("base", "expert")


@dataclass(frozen=True)
class RefusedChange:
    """A spec change that a checkpointed run refuses: the phase it stays in, and why."""

    phase: str
    reason: str


class Controller:
    """Drives one run to its end.

    Args:
        run: the run manifest.
        volume: local path of the run's volume (model and data paths are relative to it).
        executor: runs the tasks.
        on_update: called with the state after every checkpoint (progress, status).
        on_note: told what a resumed run did (tasks adopted or started again, what a
            retry runs again); default: the ``paretomerge.controller`` logger.
        on_preflight: told the preflight's problems (none when it passed), before any work.
        on_warning: told ``(reason, message)`` of what a run did instead of what was asked
            (validation anchors that fell back); default: the ``paretomerge.controller``
            logger's warnings.
        limits: the current budget and parallelism, asked every iteration; default: the
            spec's.
        poll_seconds: longest wait for an outcome before limits are looked at again.
    """

    def __init__(
        self,
        run: ParetoMergeRun,
        volume: Path,
        executor: Executor,
        *,
        on_update: Callable[[RunState], None] | None = None,
        on_note: Callable[[str], None] | None = None,
        on_preflight: Callable[[list[SpecProblem]], None] | None = None,
        on_warning: Callable[[str, str], None] | None = None,
        limits: Callable[[], Limits] | None = None,
        poll_seconds: float = 5.0,
    ):
        self.run = run
        self.spec = run.spec
        self.volume = volume
        self.executor = executor
        self.layout = RunLayout.of(run)  # volume-relative, as tasks name their directories
        self.files = self.layout.on(volume)
        self.on_update = on_update or (lambda state: None)
        self.on_note = on_note or logging.getLogger("paretomerge.controller").info
        self.on_preflight = on_preflight or (lambda problems: None)
        self.on_warning = on_warning or (
            lambda reason, message: logging.getLogger("paretomerge.controller").warning(message)
        )
        self.limits = limits or (lambda: Limits.of(self.spec))
        self.benchmarks = self.spec.objectives.names
        self.runner = TaskRunner(
            executor,
            volume,
            retries=self.spec.execution.candidate_retries,
            save=self._save,
            on_note=self.on_note,
            limits=self.limits,
            poll_seconds=poll_seconds,
        )

    # --- the run ------------------------------------------------------------------------

    def run_to_end(self) -> RunState:
        """Run (or resume, retry, continue) until the budget is spent or the run fails;
        returns the state."""
        state = self._load_state()
        if state is not None and (conflict := self._resume_conflict()):
            # Told (status, progress) but not checkpointed: put the fields back and the
            # run resumes where it was.
            state.phase, state.message = "Failed", conflict
            self.on_update(state)
            return state
        if state is not None and not self._work_left(state):
            return state
        state = state or RunState(run=self.run.name)
        problems = preflight(
            self.run,
            self.volume,
            tasks_path=self.executor.tasks_path(),
            candidates_left=max(self.limits().budget - state.spent, 0),
            evaluation_gpus=self.executor.evaluation_gpus(),
        )
        self.on_preflight(problems)
        if problems:
            # Told but not checkpointed: nothing was done, and a fixed spec is a new start.
            state.phase, state.message = "Failed", str(PreflightFailed(problems))
            self.on_update(state)
            return state
        self._reopen(state)
        self.files.root.mkdir(parents=True, exist_ok=True)
        self.files.run_file.write_text(yaml.safe_dump(dump_run(self.run), sort_keys=False))
        try:
            self._profile(state)
            self._anchor(state)
            self._anchor_validation(state)
            self._search(state)
        except (RunFailed, AnchorError) as error:
            self.executor.close()
            self._set_phase(state, "Failed", str(error))
        return state

    def _load_state(self) -> RunState | None:
        """The checkpoint, if there is one; ``None`` too for a run directory that leads out
        of the volume (not read; the preflight names it)."""
        try:
            in_volume(self.volume, str(self.layout.root))
        except OutsideVolumeError:
            return None
        return RunState.load(self.files.root)

    def _work_left(self, state: RunState) -> bool:
        """Whether the checkpointed run has work left: any run but a Succeeded one whose
        budget asks for no more candidates than it evaluated, or whose cost budget is
        the one it ended on or has no room for one more (said, not ignored)."""
        limits = self.limits()
        if state.phase != "Succeeded":
            return True
        if limits.cost_budget is None:
            if limits.budget > state.spent:
                return True
            wanted = f"a budget of {limits.budget} asks for no more (raise spec.search.budget"
        else:
            # Only a changed cost budget reopens it: what validation left of the one it
            # ended on (it reserves more than it may spend) buys nothing.
            changed = limits.cost_budget != state.cost_budget
            if changed and wants_candidate(state, self.spec, limits):
                return True
            wanted = (
                f"its cost budget has no room for another ({budget_use(state)}; raise "
                "spec.search.costBudget"
            )
        self.on_note(
            f"run {self.run.name} has already succeeded with {state.spent} "
            f"candidate(s); {wanted} to continue it)"
        )
        self.on_update(state)  # an operator that restarted it on a raise sees it Succeeded
        return False

    def _reopen(self, state: RunState) -> None:
        """Make the checkpointed run ready for the work left, and say what it is: one in
        progress resumes; a Failed one is retried (:meth:`_forgive_failures`); a Succeeded
        one goes on to its raised budget."""
        name, finished = self.run.name, state.finished
        limits = self.limits()
        state.cost_budget = limits.cost_budget  # what the run goes by from now on
        if state.phase == "Succeeded" and limits.cost_budget is not None:
            self.on_note(
                f"continuing run {name}: the cost budget is now "
                f"{limits.cost_budget.limit:g} {UNIT_NAMES[limits.cost_budget.unit]} "
                f"({budget_use(state)})"
            )
        elif state.phase == "Succeeded":
            self.on_note(
                f"continuing run {name}: the budget is now {limits.budget}, "
                f"{limits.budget - state.spent} candidate(s) more than it evaluated"
            )
        elif state.phase == "Failed":
            cause = state.message.partition("\n")[0]
            retried = self._forgive_failures(state)
            self.on_note(
                f"retrying run {name}, which failed ({cause}): "
                f"{state.count('succeeded')} finished evaluation(s) kept; "
                + (f"run again: {', '.join(retried)}" if retried else "no task had given up")
            )
        elif state.phase != "Pending":
            self.on_note(
                f"resuming run {name} from its checkpoint ({state.phase}): {finished} "
                f"candidate(s) finished, {state.count('running')} to adopt or start again"
            )

    def _forgive_failures(self, state: RunState) -> list[str]:
        """Make a failed run's tasks that gave up run again: the profile or an anchor past
        its retries, and every failed candidate (pending again for the optimiser). Their
        earlier failures stay recorded, counted against no retries. Returns their ids."""
        retried = []
        for task_id, attempts in state.task_attempts.items():
            if not self.runner.retries_left(attempts):
                attempts.failures_forgiven = attempts.due
                retried.append(task_id)
        failed = [c for c in state.candidates if c.status == "failed"]
        if failed:
            optimizer = AskTellOptimizer.from_state_dict(state.optimizer)
            for candidate in failed:
                candidate.status, candidate.finished = "running", None
                candidate.failures_forgiven = candidate.due
                optimizer.retry(state.candidates.index(candidate))  # candidate i is trial i
                retried.append(candidate.id)
            state.optimizer = optimizer.state_dict()
        return retried

    def refused_change(self) -> RefusedChange | None:
        """The spec change this run refuses, if it refuses one: its checkpoint's results
        depend on a field that changed since it started (:meth:`run_to_end` stops on it
        and leaves the checkpoint, phase included, as it was)."""
        state = self._load_state()
        if state is None or (conflict := self._resume_conflict()) is None:
            return None
        return RefusedChange(phase=state.phase, reason=conflict)

    def _resume_conflict(self) -> str | None:
        """Why this run's checkpoint cannot be resumed under the current spec, if it
        cannot: a field its results depend on changed since it started."""
        started_file = self.files.run_file
        if not started_file.exists():
            return None
        conflicts = resume_conflicts(load_started_run(started_file), self.run)
        if not conflicts:
            return None
        return (
            f"the spec changed since this run started ({started_file}), in fields its "
            f"results depend on: {'; '.join(map(str, conflicts))}. Put them back to resume "
            "the run, or start a new run under another name"
        )

    def _set_phase(self, state: RunState, phase: str, message: str = "") -> None:
        state.phase, state.message = phase, message
        self._save(state)

    def _save(self, state: RunState) -> None:
        state.save(self.files.root)
        self.on_update(state)

    # --- profile and anchors ---------------------------------------------------------------

    def _profile(self, state: RunState) -> None:
        if state.profile is not None:
            return
        self._set_phase(state, "Profiling", "measuring the per-layer importance profile")
        task = ProfileTask(
            id="profile",
            work_dir=str(self.layout.profile),
            base=self.spec.models.base.path,
            experts=[e.path for e in self.spec.models.experts],
            activations=self._activation_prior(),
        )
        result = self.runner.complete([task], state)["profile"]
        state.profile = result.merge_weight_profile
        state.num_layers = len(result.layers)
        self._save(state)

    def _activation_prior(self) -> ActivationPrior | None:
        """The profile task's activation prior, on the search's own questions (the
        preflight made sure every benchmark has some), where the spec asks for one."""
        prior = self.spec.search.prior
        if not prior.activations:
            return None
        from paretomerge.activations import calibration_questions

        try:
            questions = calibration_questions(self.spec, self.volume, prior.prompts)
        except ValueError as error:
            raise RunFailed(f"the activation prior's questions: {error}") from error
        return ActivationPrior(questions=questions, weight=prior.activation_weight)

    def _anchor(self, state: RunState, held_out: bool = False) -> None:
        """Evaluate the base and the expert (each cached on the volume): on the search's
        questions, or with ``held_out`` on the questions held out of it (with the
        validation's repeats), which normalise the validations. Search anchors too close
        to normalise by on a benchmark are measured on it again with more repeats, once
        (:func:`~paretomerge.controller.objectives.judge_anchors`)."""
        anchors = state.held_out_anchors if held_out else state.anchors
        if not held_out and any(role not in anchors for role in ANCHOR_ROLES):
            self._set_phase(state, "Anchoring", "evaluating the base and the expert")
        if held_out or not state.replaced_anchors:
            self._measure_anchors(state, anchors, self._anchor_task, held_out=held_out)
        if held_out:
            return
        try:
            first = state.replaced_anchors or state.anchors
            close = self._judge(first)
            if close and not state.replaced_anchors:
                self.on_warning(
                    "AnchorsMeasuredAgain",
                    f"the base and the expert are close ({'; '.join(map(str, close))}): "
                    f"measuring them again there, asking each question "
                    f"{remeasure_repeats(first['base'].scores, close)} times",
                )
                state.replaced_anchors, state.anchors = state.anchors, {}
                self._set_phase(state, "Anchoring", "measuring the base and the expert again")
            if close:
                repeats = self._measure_anchors_again(state, close)  # replaces state.anchors
                self._judge(state.anchors, repeats)
        except AnchorError:
            self._forget_anchors(state.anchors)
            raise

    def _judge(
        self, anchors: dict[str, AnchorRecord], measured_again: int | None = None
    ) -> list[CloseFigure]:
        """:func:`~paretomerge.controller.objectives.judge_anchors` of a base and expert."""
        return judge_anchors(
            anchors["base"].scores, anchors["expert"].scores, self.benchmarks, measured_again
        )

    def _measure_anchors(
        self,
        state: RunState,
        anchors: dict[str, AnchorRecord],
        task_of: Callable[..., EvaluateTask],
        **task_options,
    ) -> None:
        """Fill ``anchors`` with every role it lacks, from the cache or evaluated by
        ``task_of(role, **task_options)``."""
        missing = [role for role in ANCHOR_ROLES if role not in anchors]
        tasks = []
        for role in missing:
            task = task_of(role, **task_options)
            key = anchor_key(
                self.volume / task.model,
                self.spec.evaluation,
                task.objectives,
                task.sampling,
                self.volume,
                task.questions,
                task.repeats,
            )
            scores = cached_scores(self.volume, key)
            if scores is not None:
                anchors[role] = AnchorRecord(
                    model=task.model, scores=scores, cache_key=key, cached=True
                )
            else:
                tasks.append((task, key))
        results = self.runner.complete([task for task, _ in tasks], state)
        for task, key in tasks:
            result = results[task.id]
            store_scores(self.volume, key, task.model, result.scores)
            anchors[task.role] = AnchorRecord(
                model=task.model, scores=result.scores, cache_key=key, cost=result.cost
            )
        if missing:
            # Saved (and published) only when something changed: a continued or retried
            # run that had its anchors still has its old phase (Succeeded, Failed) here,
            # which its status must not show again after the operator set it Pending.
            self._save(state)

    def _measure_anchors_again(self, state: RunState, close: list[CloseFigure]) -> int:
        """The anchors measured again on the ``close`` figures' benchmarks alone, asking
        each question more times; on the other benchmarks their first measurement
        (:attr:`RunState.replaced_anchors`) stands. Each record keeps the cache key and
        the cost of the measurement again. Returns how many times each question was
        asked."""
        first = state.replaced_anchors
        repeats = remeasure_repeats(first["base"].scores, close)
        benchmarks = close_benchmarks(close)
        again = dict(state.anchors)
        self._measure_anchors(
            state, again, self._anchor_again_task, benchmarks=benchmarks, repeats=repeats
        )
        state.anchors = {
            role: record.model_copy(update={"scores": first[role].scores | record.scores})
            for role, record in again.items()
        }
        self._save(state)
        return repeats

    def _anchor_validation(self, state: RunState) -> None:
        """With questions held out for validation, evaluate the anchors on them before the
        search, and decide now what normalises the validations: a degenerate pair falls
        back to the anchors on every question (said in the log, an Event and the
        report), so no run fails after its search for it, and is dropped from the cache,
        so the next run measures them again."""
        validation = self.spec.search.validation
        if validation.budget == 0 or validation.held_out == 0.0:
            return
        known = bool(state.held_out_anchors)
        self._anchor(state, held_out=True)
        chosen = validation_anchors_of(state, self.benchmarks)
        if chosen.fallback is None or known:
            return
        self._forget_anchors(state.held_out_anchors)
        state.validation_fallback = (
            f"the anchors on the {validation.held_out:g} of questions held out for validation "
            f"are degenerate ({chosen.fallback}); validations are normalised by the anchors on "
            "every question instead"
        )
        self._save(state)
        self.on_warning("ValidationAnchorsFellBack", state.validation_fallback)

    def _forget_anchors(self, anchors: dict[str, AnchorRecord]) -> None:
        """Drop ``anchors`` from the cache: a degenerate pair is measured again next time,
        not reused."""
        for anchor in anchors.values():
            forget_scores(self.volume, anchor.cache_key)

    def _anchor_task(self, role: str, held_out: bool = False) -> EvaluateTask:
        # With several experts the first one anchors the accuracy and token scales.
        model = self.spec.models.base if role == "base" else self.spec.models.experts[0]
        name = f"{role}-held-out" if held_out else role
        return EvaluateTask(
            id=f"anchor-{name}",
            work_dir=str(self.layout.anchor(name)),
            role=role,
            model=model.path,
            evaluation=self.spec.evaluation,
            objectives=self.spec.objectives,
            questions=question_split(self.spec.search, "held-out" if held_out else "search"),
            repeats=self.spec.search.validation.repeats if held_out else None,
            gpus=self.executor.evaluation_gpus(),
        )

    def _anchor_again_task(self, role: str, benchmarks: list[str], repeats: int) -> EvaluateTask:
        """``role``'s anchor measured again: on the search's questions of ``benchmarks``
        alone, each asked ``repeats`` times."""
        task = self._anchor_task(role)
        name = f"{role}-again"
        objectives = self.spec.objectives.model_copy(
            update={
                "benchmarks": [b for b in self.spec.objectives.benchmarks if b.name in benchmarks]
            }
        )
        return task.model_copy(
            update={
                "id": f"anchor-{name}",
                "work_dir": str(self.layout.anchor(name)),
                "objectives": objectives,
                "repeats": repeats,
            }
        )

    # --- the search ---------------------------------------------------------------------

    def _search(self, state: RunState) -> None:
        """Search until the budget is spent, then validate the front (the anchors on the
        held-out questions first, when questions are held out), and succeed."""
        search = SearchDriver(self.spec, self.volume, self.layout, self.runner, state)
        if state.phase != "Validating":
            self._set_phase(state, "Searching", "")
        search.search(state)
        validation = self.spec.search.validation
        if validation.budget > 0 and state.count("succeeded") > 0:
            self._set_phase(state, "Validating", "evaluating the front again")
            search.validate(state)
        front = pareto_candidates(state)
        validated = sum(c.validated is not None for c in front)
        used = budget_use(state)
        self._set_phase(
            state,
            "Succeeded",
            f"{state.count('succeeded')} candidates evaluated, {len(front)} on the Pareto front"
            + (f" ({validated} validated)" if state.validations else "")
            + (f"; cost budget: {used}" if used else "")
            + (
                " (the anchors spent the cost budget: raise search.costBudget)"
                if used and not state.candidates
                else ""
            ),
        )
