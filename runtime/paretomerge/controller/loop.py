"""The controller's loop: profile -> anchors -> asynchronous ask/tell over candidates.

Whenever a worker slot is free the optimiser is asked for one candidate, with every
candidate still running as a pending point (AP-BMM); each result is told as it arrives.
The loop only talks to an :class:`~paretomerge.executors.Executor`, so the same code
runs candidates as local processes or as Kubernetes Jobs.

Every change is checkpointed before it counts, so a controller that is killed and
started again on the same run directory loses no finished evaluation and repeats none:
finished attempts are collected from their result files, running ones adopted. Every
task, the profile and the anchors as much as the candidates, is started, adopted and
retried the same way (:meth:`Controller._start`, :meth:`Controller._retry`).

Before any work a preflight looks at everything the run needs and lists every problem at
once (:mod:`paretomerge.preflight`). A run that failed is retried when it is run again
(its cause fixed): finished evaluations are kept and every task that gave up gets its
retries again; a run that succeeded goes on when its budget was raised
(:meth:`Controller._reopen`).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from paretomerge.controller.anchors import anchor_key, cached_scores, store_scores
from paretomerge.controller.artifacts import (
    ANCHOR_OBJECTIVES,
    pareto_candidates,
    pareto_points,
    write_artifacts,
)
from paretomerge.controller.decision_space import DecisionSpace
from paretomerge.controller.objectives import AnchorError, check_anchors, objective_values
from paretomerge.controller.state import (
    AnchorRecord,
    CandidateRecord,
    PointEstimate,
    RunState,
    TaskAttempts,
    ValidationRecord,
    now,
)
from paretomerge.evaluate import latest_stage
from paretomerge.executors import Executor, TaskOutcome
from paretomerge.preflight import PreflightFailed, preflight
from paretomerge.questions import QuestionPart, QuestionSplit, QuestionStages
from paretomerge.results import EvaluateTaskResult, EvaluationResult, ProfileResult
from paretomerge.run_layout import RunLayout
from paretomerge.search import AskTellOptimizer, hypervolume
from paretomerge.search.estimates import pool_observations
from paretomerge.search.screening import conditioned_on_stage, screened_out
from paretomerge.spec import (
    ParetoMergeRun,
    SpecProblem,
    dump_run,
    load_started_run,
    resume_conflicts,
)
from paretomerge.tasks import (
    EVAL_DIR,
    EvaluateTask,
    ProfileTask,
    evaluate_task_result,
    merge_seconds,
    read_result,
    request_stop,
    write_task,
)
from paretomerge.volume import OutsideVolumeError, in_volume

Task = ProfileTask | EvaluateTask

ANCHOR_ROLES = ("base", "expert")


class RunFailed(RuntimeError):
    """The run cannot go on; the message says why."""


@dataclass(frozen=True)
class Limits:
    """What may change while a run goes on (Kubernetes users edit them like in Katib)."""

    budget: int
    parallelism: int


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
        self.limits = limits or (
            lambda: Limits(self.spec.search.budget, self.spec.execution.parallelism)
        )
        self.poll_seconds = poll_seconds
        self.benchmarks = [b.name for b in self.spec.objectives.benchmarks]
        self.space: DecisionSpace | None = None
        self.optimizer: AskTellOptimizer | None = None

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
            candidates_left=max(self.limits().budget - state.count("succeeded"), 0),
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
        budget asks for no more candidates than it evaluated (said, not ignored)."""
        budget = self.limits().budget
        if state.phase != "Succeeded" or budget > len(state.candidates):
            return True
        self.on_note(
            f"run {self.run.name} has already succeeded with {len(state.candidates)} "
            f"candidate(s); a budget of {budget} asks for no more (raise spec.search.budget "
            "to continue it)"
        )
        return False

    def _reopen(self, state: RunState) -> None:
        """Make the checkpointed run ready for the work left, and say what it is: one in
        progress resumes; a Failed one is retried (:meth:`_forgive_failures`); a Succeeded
        one goes on to its raised budget."""
        name, finished = self.run.name, state.finished
        if state.phase == "Succeeded":
            budget = self.limits().budget
            self.on_note(
                f"continuing run {name}: the budget is now {budget}, "
                f"{budget - len(state.candidates)} candidate(s) more than it evaluated"
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
            if not self._retries_left(attempts):
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
        )
        result = self._complete([task], state)["profile"]
        state.profile = result.merge_weight_profile
        state.num_layers = len(result.layers)
        self._save(state)

    def _anchor(self, state: RunState, held_out: bool = False) -> None:
        """Evaluate the base and the expert (each cached on the volume): on the search's
        questions, or with ``held_out`` on the questions held out of it (with the
        validation's repeats), which normalise the validations."""
        anchors = state.held_out_anchors if held_out else state.anchors
        missing = [role for role in ANCHOR_ROLES if role not in anchors]
        if missing and not held_out:
            self._set_phase(state, "Anchoring", "evaluating the base and the expert")
        tasks = []
        for role in missing:
            task = self._anchor_task(role, held_out)
            key = anchor_key(
                self.volume / task.model,
                self.spec.evaluation,
                self.spec.objectives,
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
        results = self._complete([task for task, _ in tasks], state)
        for task, key in tasks:
            result = results[task.id]
            store_scores(self.volume, key, task.model, result.scores)
            anchors[task.role] = AnchorRecord(
                model=task.model, scores=result.scores, cache_key=key, cost=result.cost
            )
        self._save(state)
        check_anchors(anchors["base"].scores, anchors["expert"].scores, self.benchmarks)

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
            questions=self._questions("held-out" if held_out else "search"),
            repeats=self.spec.search.validation.repeats if held_out else None,
            gpus=self.executor.evaluation_gpus(),
        )

    def _questions(self, part: QuestionPart) -> QuestionSplit | None:
        """The side ``part`` of the held-out split, or ``None`` (every question) when no
        question is held out."""
        held_out = self.spec.search.validation.held_out
        if held_out == 0.0:
            return None
        return QuestionSplit(held_out=held_out, seed=self.spec.search.seed, part=part)

    def _complete(
        self, tasks: list[Task], state: RunState
    ) -> dict[str, ProfileResult | EvaluateTaskResult]:
        """Run ``tasks`` to success, each retried like a candidate; a task that fails past
        its retries fails the run."""
        waiting, results = list(tasks), {}
        by_id = {task.id: task for task in tasks}
        while waiting or self.executor.running():
            while waiting and len(self.executor.running()) < self.limits().parallelism:
                task = waiting.pop(0)
                attempts = state.task_attempts.get(task.id)
                resuming = attempts is not None  # an earlier controller may have started it
                if attempts is None:
                    attempts = state.task_attempts[task.id] = TaskAttempts()
                    self._save(state)  # recorded before anything runs, like a candidate
                elif not self._retries_left(attempts):  # failed for good before a restart
                    raise RunFailed(self._gave_up(task, attempts))
                self._start(task, attempts, resuming=resuming)
                self._save(state)
            for outcome in self.executor.wait(self.poll_seconds):
                task, attempts = by_id[outcome.task_id], state.task_attempts[outcome.task_id]
                result, reason = self._read_outcome(task, outcome)
                if result is not None:
                    results[task.id] = result
                elif not self._retry(state, task, attempts, reason):
                    raise RunFailed(self._gave_up(task, attempts))
                else:
                    self._save(state)
        return results

    def _start(self, task: Task, attempts: TaskAttempts, *, resuming: bool = False) -> None:
        """Start the attempt of ``task`` that is due. ``resuming``: the checkpoint an
        earlier controller left says the task was under way, so that attempt may have
        started after the checkpoint was written: if it still runs, or finished while no
        controller was there, it is followed, not run again."""
        attempt = attempts.due
        adopted = resuming and self.executor.adopt(task, attempt)
        if resuming:
            self._note_resumed(task.id, attempt, adopted)
        if not adopted:
            write_task(task, self.volume)
            self.executor.submit(task, attempt)
        attempts.attempts = attempt + 1

    def _retry(self, state: RunState, task: Task, attempts: TaskAttempts, reason: str) -> bool:
        """Record a failed attempt of ``task`` and, while retries are left, start the next
        one; ``False`` when none is left (nothing is started)."""
        attempts.reasons.append(f"attempt {attempts.due + 1}: {reason}")
        if not self._retries_left(attempts):
            return False
        self._save(state)  # a controller killed now must not grant this retry twice
        self._start(task, attempts)
        return True

    def _retries_left(self, attempts: TaskAttempts) -> bool:
        failures = attempts.due - attempts.failures_forgiven
        return failures <= self.spec.execution.candidate_retries

    @staticmethod
    def _gave_up(task: Task, attempts: TaskAttempts) -> str:
        return f"{task.id} failed {attempts.due} time(s); last: {attempts.reasons[-1]}"

    def _read_outcome(
        self, task: Task, outcome: TaskOutcome
    ) -> tuple[ProfileResult | EvaluateTaskResult | None, str]:
        """The result of a finished attempt, or ``None`` and why the attempt failed (its
        own reason, or a result file that cannot be read or lacks a benchmark)."""
        if not outcome.succeeded:
            return None, outcome.reason or "unknown failure"
        try:
            result = read_result(task, self.volume)
        except (OSError, ValueError) as error:
            return None, f"unusable result: {error!r}"
        if result is None:
            return None, "the attempt succeeded but left no result file"
        if isinstance(result, EvaluateTaskResult):
            missing = [name for name in self.benchmarks if name not in result.scores]
            if missing:
                return None, f"unusable result: no score for {', '.join(missing)}"
        return result, ""

    # --- the search -------------------------------------------------------------------------

    def _search(self, state: RunState) -> None:
        self.space = DecisionSpace(self.spec, state.num_layers, tuple(state.profile))
        if state.optimizer is None:
            self.optimizer = AskTellOptimizer(self.space.search_config())
        else:
            self.optimizer = AskTellOptimizer.from_state_dict(state.optimizer)
        if state.phase != "Validating":
            self._set_phase(state, "Searching", "")
        for candidate in state.candidates:
            if candidate.status == "running" and not candidate.waiting:
                self._start(self._evaluation_task(state, candidate), candidate, resuming=True)
        while True:
            limits = self.limits()
            self.optimizer.set_budget(limits.budget)
            running = len(self.executor.running())
            # Retried candidates, and any whose retry a killed controller left unstarted.
            waiting = [c for c in state.candidates if c.status == "running" and c.waiting]
            if state.finished >= limits.budget and running == 0 and not waiting:
                break
            while running < limits.parallelism and (
                waiting or len(state.candidates) < limits.budget
            ):
                if waiting:
                    candidate = waiting.pop(0)
                    self._start(self._candidate_task(candidate), candidate, resuming=True)
                    self._save(state)
                else:
                    self._launch_candidate(state)
                running += 1
            for outcome in self.executor.wait(self.poll_seconds):
                self._collect(state, outcome)
            self._screen(state)
        self._validate(state)
        validated = sum(c.validated is not None for c in pareto_candidates(state))
        self._set_phase(
            state,
            "Succeeded",
            f"{state.count('succeeded')} candidates evaluated, "
            f"{len(pareto_candidates(state))} on the Pareto front"
            + (f" ({validated} validated)" if state.validations else ""),
        )

    def _validate(self, state: RunState) -> None:
        """After the search: evaluate again the candidates that may be on the front, as
        :meth:`AskTellOptimizer.ask_validation` picks them (most likely first, spread
        over them), until ``search.validation.budget`` evaluations are done. With
        questions held out, the anchors are evaluated on those questions first: they
        normalise the validations."""
        validation = self.spec.search.validation
        if validation.budget == 0 or state.count("succeeded") == 0:
            return
        self._set_phase(state, "Validating", "evaluating the front again")
        if validation.held_out > 0.0:
            self._anchor(state, held_out=True)
        for record in state.validations:
            if record.status == "running":
                self._start(self._evaluation_task(state, record), record, resuming=True)
        while True:
            running = len(self.executor.running())
            if state.validations_finished >= validation.budget and running == 0:
                break
            parallelism = self.limits().parallelism
            while running < parallelism and len(state.validations) < validation.budget:
                self._launch_validation(state)
                running += 1
            for outcome in self.executor.wait(self.poll_seconds):
                self._collect(state, outcome)

    def _launch_candidate(self, state: RunState) -> None:
        started = time.monotonic()
        trial = self.optimizer.ask(1)[0]
        candidate = CandidateRecord(
            id=f"c{len(state.candidates) + 1:04d}",
            trial=trial.id,
            x=trial.x,
            variables=self.space.variables(trial.x).tolist(),
            seconds={"proposal": time.monotonic() - started},
        )
        state.candidates.append(candidate)
        self._launch(state, candidate)

    def _launch_validation(self, state: RunState) -> None:
        trial = self.optimizer.ask_validation(1)[0]
        validated = next(c for c in state.candidates if state.trial_of(c) == trial.validates)
        record = ValidationRecord(
            id=f"v{len(state.validations) + 1:04d}", trial=trial.id, candidate=validated.id
        )
        state.validations.append(record)
        self._launch(state, record)

    def _launch(self, state: RunState, record: CandidateRecord | ValidationRecord) -> None:
        state.optimizer = self.optimizer.state_dict()
        self._save(state)  # the proposal is recorded before anything runs
        self._start(self._evaluation_task(state, record), record)
        self._save(state)

    def _note_resumed(self, task_id: str, attempt: int, adopted: bool) -> None:
        """Say what became of a task that the checkpoint left running."""
        if adopted:
            self.on_note(f"adopted {task_id} (attempt {attempt + 1}), started earlier")
        else:
            self.on_note(f"starting {task_id} again (attempt {attempt + 1}): nothing to adopt")

    def _evaluation_task(
        self, state: RunState, record: CandidateRecord | ValidationRecord
    ) -> EvaluateTask:
        """The task of a candidate, or of a validation: the same merge (the same plan, so
        the same model) on the held-out questions, its merged weights never kept."""
        if isinstance(record, ValidationRecord):
            return self._candidate_task(state.candidate(record.candidate)).model_copy(
                update={
                    "id": record.id,
                    "work_dir": str(self.layout.validation(record.id)),
                    "keep_merged": False,
                    "questions": self._questions("held-out"),
                    "repeats": self.spec.search.validation.repeats,
                    "stages": None,  # a validation is evaluated in full
                }
            )
        return self._candidate_task(record)

    def _candidate_task(self, candidate: CandidateRecord) -> EvaluateTask:
        index = int(candidate.id[1:])
        return EvaluateTask(
            id=candidate.id,
            work_dir=str(self.layout.candidate(candidate.id)),
            role="merged",
            plan=self.space.plan(candidate.x, seed=self.spec.search.seed + index),
            keep_merged=self.spec.execution.keep_merged_models != "none",
            evaluation=self.spec.evaluation,
            objectives=self.spec.objectives,
            questions=self._questions("search"),
            stages=self._stages(),
            gpus=self.executor.evaluation_gpus(),
        )

    def _stages(self) -> QuestionStages | None:
        screening = self.spec.evaluation.screening
        if screening is None:
            return None
        return QuestionStages(shares=screening.stages, seed=self.spec.search.seed)

    def _screen(self, state: RunState) -> None:
        """Stop every running candidate whose latest stage shows it probably dominated
        (:func:`~paretomerge.search.screening.screened_out`): the surrogate's posterior at
        its point, conditioned on the stage
        (:func:`~paretomerge.search.screening.conditioned_on_stage`; the stage alone for a
        strategy with no surrogate), puts it behind a finished candidate or an anchor, at
        their reported estimates, with probability at least the run's confidence.

        The stop is written to the volume before it is checkpointed, so a controller
        killed in between finds the task stopping (or stopped) on its own; then the
        task is cancelled and the slot is free for the next candidate.
        """
        screening = self.spec.evaluation.screening
        running = self.executor.running()
        if screening is None or not running:
            return
        staged = {}
        for candidate in state.candidates:
            if candidate.status != "running" or candidate.id not in running:
                continue
            stage = latest_stage(self.volume / self.layout.candidate(candidate.id) / EVAL_DIR)
            if stage is not None and stage.stage < stage.stages:
                staged[candidate.id] = (candidate, stage)  # else the result is coming
        if not staged:
            return
        finished = np.array(
            [
                *ANCHOR_OBJECTIVES,
                *(c.reported[0] for c in state.candidates if c.status == "succeeded"),
            ]
        )
        prior = self.optimizer.predict(np.array([c.x for c, _ in staged.values()]))
        for i, (candidate, stage) in enumerate(staged.values()):
            y = objective_values(
                stage.scores,
                state.anchors["base"].scores,
                state.anchors["expert"].scores,
                self.benchmarks,
            )
            if y.own_variance is None:
                continue
            # The surrogate knows the candidates' own errors; the anchors' share is common
            # to every candidate, so it moves none of them against the others.
            at = None if prior is None else (prior[0][i], prior[1][i])
            mean, std = conditioned_on_stage(y.values, y.own_variance, at)
            if not screened_out(mean, std, finished, screening.confidence):
                continue
            task = self._candidate_task(candidate)
            request_stop(
                task, self.volume, f"screened out after stage {stage.stage} of {stage.stages}"
            )
            evaluation = EvaluationResult(
                scores=stage.scores,
                seconds=stage.seconds,
                cost=stage.cost,
                stopped_after=stage.stage,
            )
            merged = merge_seconds(task, self.volume)  # known here on Kubernetes only
            seconds = {"evaluate": stage.seconds} | ({"merge": merged} if merged else {})
            self._record_result(state, candidate, evaluate_task_result(task, evaluation, seconds))
            self._checkpoint_result(state)
            self.executor.cancel(candidate.id)

    def _checkpoint_result(self, state: RunState) -> None:
        """Keep what a result changed: the optimiser's state, the artifacts, the checkpoint."""
        state.optimizer = self.optimizer.state_dict()
        write_artifacts(self.files.root, state, self.space)
        self._save(state)

    def _collect(self, state: RunState, outcome: TaskOutcome) -> None:
        record = state.evaluation(outcome.task_id)
        if record.status != "running":
            return  # screened out while its attempt was ending
        task = self._evaluation_task(state, record)
        result, reason = self._read_outcome(task, outcome)
        if result is not None:
            self._record_result(state, record, result)
        elif not self._retry(state, task, record, reason):
            record.status, record.finished = "failed", now()
            self.optimizer.tell_failed(state.trial_of(record), reason)
        self._checkpoint_result(state)
        failed = state.count("failed") + state.count_validations("failed")
        if failed > self.spec.execution.max_failed_candidates:
            raise RunFailed(
                f"{failed} candidates failed, more than maxFailedCandidates "
                f"({self.spec.execution.max_failed_candidates}); last: {record.reasons[-1]}"
            )

    def _record_result(
        self,
        state: RunState,
        record: CandidateRecord | ValidationRecord,
        result: EvaluateTaskResult,
    ) -> None:
        # Validations on held-out questions are normalised by the anchors on them.
        held_out = isinstance(record, ValidationRecord) and bool(state.held_out_anchors)
        anchors = state.held_out_anchors if held_out else state.anchors
        y = objective_values(
            result.scores, anchors["base"].scores, anchors["expert"].scores, self.benchmarks
        )
        # The surrogate gets the evaluation's own variance: the anchors' share of the
        # error is common to every candidate (see objectives.py).
        stopped_after = result.evaluation.stopped_after
        self.optimizer.tell(
            state.trial_of(record), y.values, y.own_variance, screened=stopped_after is not None
        )
        record.status = "succeeded" if stopped_after is None else "screened"
        record.objectives = list(y.values)
        record.objectives_std = None if y.std is None else list(y.std)
        record.scores = result.scores
        record.seconds.update(result.seconds)
        record.cost = result.cost
        record.finished = now()
        if isinstance(record, CandidateRecord):
            record.merged_model = result.merged_model
            record.screened_after = stopped_after
        record_estimates(state, self.optimizer)
        record_validated(state, self.optimizer, held_out=self.spec.search.validation.held_out > 0)
        front = [point.candidate.reported[0] for point in pareto_points(state)]
        state.hypervolume.append(
            hypervolume(np.array(front).reshape(-1, 2), np.array(self.spec.search.reference_point))
        )
        state.hypervolume_after.append(record.id)
        self._prune_merged_models(state)

    def _prune_merged_models(self, state: RunState) -> None:
        """With ``keepMergedModels: pareto``, delete merges that left the front."""
        if self.spec.execution.keep_merged_models != "pareto":
            return
        front = {c.id for c in pareto_candidates(state)}
        for candidate in state.candidates:
            if candidate.merged_model and candidate.id not in front:
                shutil.rmtree(self.volume / candidate.merged_model, ignore_errors=True)
                candidate.merged_model = None


def record_estimates(state: RunState, optimizer: AskTellOptimizer) -> None:
    """Give every evaluated candidate the search's estimate of its objectives
    (:meth:`AskTellOptimizer.estimates`: the posterior at its point, or its pooled
    evaluations for a strategy with no surrogate).

    The optimiser knows each evaluation's own variance only; the anchors' share of it,
    common to every candidate, is added back to the standard deviation reported:
    ``std^2 = posterior var + (total var - own var)`` of the candidate's evaluation.
    """
    estimates = optimizer.estimates()
    row = {int(trial): i for i, trial in enumerate(estimates.trial_ids)}
    for candidate in state.candidates:
        trial = state.trial_of(candidate)
        if candidate.status not in ("succeeded", "screened") or trial not in row:
            continue
        i = row[trial]
        std = estimates.std[i]
        if np.isnan(std).any():
            reported = None
        else:
            own = optimizer.trials[trial].yvar
            shared = 0.0
            if own is not None and candidate.objectives_std is not None:
                shared = np.maximum(np.square(candidate.objectives_std) - np.asarray(own), 0.0)
            reported = np.sqrt(np.square(std) + shared).tolist()
        candidate.estimate = PointEstimate(
            mean=estimates.mean[i].tolist(),
            std=reported,
            prob_non_dominated=float(estimates.prob_non_dominated[i]),
            evaluations=int(estimates.num_observations[i]),
        )


def record_validated(state: RunState, optimizer: AskTellOptimizer, *, held_out: bool) -> None:
    """Give every candidate with a finished validation its validated value.

    With no question held out the validations were told to the optimiser like any
    evaluation of the point, so the validated value is the search's estimate, now pooled
    over them. With questions held out it is the validations' own values alone (unbiased
    by the search's choice), pooled by precision (:func:`pool_observations`, with each
    evaluation's own variance) and the held-out anchors' share of the variance added
    once: ``std^2 = (sum_i 1 / own_i)^-1 + mean_i (total_i - own_i)``.
    """
    done: dict[str, list[ValidationRecord]] = {}
    for record in state.validations:
        if record.status == "succeeded":
            done.setdefault(record.candidate, []).append(record)
    for candidate_id, records in done.items():
        candidate = state.candidate(candidate_id)
        if not held_out:
            candidate.validated = candidate.estimate
            continue
        Y = np.array([r.objectives for r in records])
        own = [optimizer.trials[state.trial_of(r)].yvar for r in records]
        if any(v is None for v in own) or any(r.objectives_std is None for r in records):
            mean, std = pool_observations(Y, None)[0], None
        else:
            mean, var = pool_observations(Y, np.array(own))
            shared = np.square([r.objectives_std for r in records]) - np.array(own)
            std = np.sqrt(var + np.maximum(shared, 0.0).mean(axis=0)).tolist()
        candidate.validated = PointEstimate(
            mean=mean.tolist(),
            std=std,
            prob_non_dominated=candidate.estimate.prob_non_dominated if candidate.estimate else 1.0,
            evaluations=len(records),
        )
