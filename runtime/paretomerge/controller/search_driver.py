"""The search of a run, once its profile and anchors are known: asynchronous ask/tell.

Whenever a worker slot is free the optimiser is asked for one candidate, with every
candidate still running as a pending point (AP-BMM); each result is told as it arrives,
and a running candidate whose latest screening stage shows it probably dominated is
stopped (:meth:`SearchDriver._screen`). After the search the candidates that may be on
the front are evaluated again (:meth:`SearchDriver.validate`). Every proposal is
checkpointed before it runs and every result before it counts, so a controller started
again on the run continues the same search.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path, PurePosixPath

import numpy as np

from paretomerge.controller.artifacts import pareto_candidates, write_artifacts
from paretomerge.controller.cost_budget import wants_candidate, wants_validation
from paretomerge.controller.decision_space import DecisionSpace
from paretomerge.controller.estimates import (
    record_estimates,
    record_hypervolume,
    record_validated,
    validation_anchors_of,
)
from paretomerge.controller.objectives import objective_values
from paretomerge.controller.state import CandidateRecord, RunState, ValidationRecord, now
from paretomerge.controller.task_runner import RunFailed, TaskRunner
from paretomerge.executors import TaskOutcome
from paretomerge.questions import QuestionPart, QuestionSplit, QuestionStages
from paretomerge.results import EvaluateTaskResult, EvaluationResult
from paretomerge.run_layout import RunLayout
from paretomerge.screening_files import latest_screening_stage, request_stop
from paretomerge.search import AskTellOptimizer, ProbablyDominated
from paretomerge.spec import RunSpec, SearchSpec
from paretomerge.tasks import EvaluateTask, evaluate_task_result, merge_seconds


def question_split(search: SearchSpec, part: QuestionPart) -> QuestionSplit | None:
    """The side ``part`` of the search's held-out split, or ``None`` (every question) when
    no question is held out."""
    held_out = search.validation.held_out
    if held_out == 0.0:
        return None
    return QuestionSplit(held_out=held_out, seed=search.seed, part=part)


class SearchDriver:
    """Proposes, evaluates and records the candidates of one run, then validates them.

    Args:
        spec: the run's spec.
        volume: local path of the run's volume.
        layout: the run's files, relative to the volume.
        runner: starts and retries the evaluations; its executor, limits, poll interval
            and checkpoint are the run's.
        state: the run's state, with its profile (the optimiser is restored from it).
    """

    def __init__(
        self,
        spec: RunSpec,
        volume: Path,
        layout: RunLayout[PurePosixPath],
        runner: TaskRunner,
        state: RunState,
    ):
        self.spec = spec
        self.volume = volume
        self.layout = layout
        self.files = layout.on(volume)
        self.runner = runner
        self.executor = runner.executor
        self.limits = runner.limits
        self.save = runner.save
        self.benchmarks = spec.objectives.names
        self.space = DecisionSpace(spec, state.num_layers, tuple(state.profile))
        if state.optimizer is None:
            self.optimizer = AskTellOptimizer(self.space.search_config())
        else:
            self.optimizer = AskTellOptimizer.from_state_dict(state.optimizer)
            # States from before the search kept its baselines: the anchors, as now.
            self.optimizer.set_baselines(self.space.search_config().baselines)

    def search(self, state: RunState) -> None:
        """Propose and evaluate candidates until the budget is spent (the count, or the
        cost: :func:`~paretomerge.controller.cost_budget.wants_candidate`) and every one
        of them finished; candidates the checkpoint left running are adopted or started
        again."""
        for candidate in state.candidates:
            if candidate.status == "running" and not candidate.waiting:
                self.runner.start(self._evaluation_task(state, candidate), candidate, resuming=True)
        while True:
            limits = self.limits()
            # A live edit reaches the strategy (its horizon, with a cost budget) too.
            self.optimizer.set_budget(limits.budget)
            state.cost_budget = limits.cost_budget
            running = len(self.executor.running())
            # Retried candidates, and any whose retry a killed controller left unstarted.
            waiting = [c for c in state.candidates if c.status == "running" and c.waiting]
            if running == 0 and not waiting and not wants_candidate(state, self.spec, limits):
                break
            while running < limits.parallelism and (
                waiting or wants_candidate(state, self.spec, limits)
            ):
                if waiting:
                    candidate = waiting.pop(0)
                    self.runner.start(self._candidate_task(candidate), candidate, resuming=True)
                    self.save(state)
                else:
                    self._launch_candidate(state)
                running += 1
            for outcome in self.executor.wait(self.runner.poll_seconds):
                self._collect(state, outcome)
            self._screen(state)

    def validate(self, state: RunState) -> None:
        """Evaluate again the candidates that may be on the front, as
        :meth:`AskTellOptimizer.ask_validation` picks them (most likely first, spread
        over them), until ``search.validation.budget`` evaluations are done, or those
        that fit a cost budget (:func:`~paretomerge.controller.cost_budget.wants_validation`);
        validations the checkpoint left running are adopted or started again. With
        questions held out, the held-out anchors must be evaluated first: they normalise
        the validations."""
        for record in state.validations:
            if record.status == "running":
                self.runner.start(self._evaluation_task(state, record), record, resuming=True)
        while True:
            running = len(self.executor.running())
            limits = self.limits()
            state.cost_budget = limits.cost_budget
            if running == 0 and not wants_validation(state, self.spec, limits):
                break
            while running < limits.parallelism and wants_validation(state, self.spec, limits):
                self._launch_validation(state)
                running += 1
            for outcome in self.executor.wait(self.runner.poll_seconds):
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
        held_out = self.spec.search.validation.held_out > 0
        trial = self.optimizer.ask_validation(1, held_out=held_out)[0]
        validated = next(c for c in state.candidates if state.trial_of(c) == trial.validates)
        record = ValidationRecord(
            id=f"v{len(state.validations) + 1:04d}", trial=trial.id, candidate=validated.id
        )
        state.validations.append(record)
        self._launch(state, record)

    def _launch(self, state: RunState, record: CandidateRecord | ValidationRecord) -> None:
        state.optimizer = self.optimizer.state_dict()
        self.save(state)  # the proposal is recorded before anything runs
        self.runner.start(self._evaluation_task(state, record), record)
        self.save(state)

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
                    "questions": question_split(self.spec.search, "held-out"),
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
            questions=question_split(self.spec.search, "search"),
            stages=self._stages(),
            gpus=self.executor.evaluation_gpus(),
        )

    def _stages(self) -> QuestionStages | None:
        screening = self.spec.evaluation.screening
        if screening is None:
            return None
        return QuestionStages(shares=screening.stages, seed=self.spec.search.seed)

    def _screen(self, state: RunState) -> None:
        """Stop every running candidate whose latest screening stage the run's screener
        (:class:`~paretomerge.search.screening.ProbablyDominated`, the rule ``optimize()``
        and the benchmark apply) says to stop, told the stage's objectives and their
        variances as the surrogate is told them (the anchors' errors included).

        The stop is written to the volume before it is checkpointed, so a controller
        killed in between finds the task stopping (or stopped) on its own; then the
        task is cancelled and the slot is free for the next candidate.
        """
        screening = self.spec.evaluation.screening
        running = self.executor.running()
        if screening is None or not running:
            return
        screener = ProbablyDominated(screening.confidence)
        for candidate in state.candidates:
            if candidate.status != "running" or candidate.id not in running:
                continue
            stage = latest_screening_stage(self.volume / self.layout.candidate(candidate.id))
            if stage is None or stage.stage == stage.stages:
                continue  # not started, or the result is coming
            y = objective_values(
                stage.scores,
                state.anchors["base"].scores,
                state.anchors["expert"].scores,
                self.benchmarks,
            )
            trial = self.optimizer.trials[state.trial_of(candidate)]
            if y.total_variance is None or not screener.screen(
                self.optimizer, trial, np.array(y.values), np.array(y.total_variance)
            ):
                continue
            task = self._candidate_task(candidate)
            request_stop(
                self.volume / task.work_dir,
                f"screened out after stage {stage.stage} of {stage.stages}",
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
        self.save(state)

    def _collect(self, state: RunState, outcome: TaskOutcome) -> None:
        record = state.evaluation(outcome.task_id)
        if record.status != "running":
            return  # screened out while its attempt was ending
        task = self._evaluation_task(state, record)
        result, reason = self.runner.read_outcome(task, outcome)
        if result is not None:
            self._record_result(state, record, result)
        elif not self.runner.retry(state, task, record, reason):
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
        # Validations on held-out questions are normalised by the validation anchors, and
        # value their point apart: they never enter the search's fit.
        held_out = isinstance(record, ValidationRecord) and self.spec.search.validation.held_out > 0
        if held_out:
            anchors = validation_anchors_of(state, self.benchmarks)
            base, expert = anchors.base, anchors.expert
        else:
            base, expert = state.anchors["base"].scores, state.anchors["expert"].scores
        y = objective_values(result.scores, base, expert, self.benchmarks)
        # The surrogate gets the evaluation's total variance, the anchors' errors
        # included (see objectives.py).
        stopped_after = result.evaluation.stopped_after
        known = y.total_variance_by_benchmark is not None
        self.optimizer.tell(
            state.trial_of(record),
            y.values,
            y.total_variance,
            screened=stopped_after is not None,
            y_by_benchmark=y.by_benchmark if known else None,
            yvar_by_benchmark=y.total_variance_by_benchmark,
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
        record_validated(state, held_out=self.spec.search.validation.held_out > 0)
        record_hypervolume(state, self.spec.search.reference_point, record.id, self.benchmarks)
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
