"""The controller's loop: profile -> anchors -> asynchronous ask/tell over candidates.

Whenever a worker slot is free the optimiser is asked for one candidate, with every
candidate still running as a pending point (AP-BMM); each result is told as it arrives.
The loop only talks to an :class:`~paretomerge.executors.Executor`, so the same code
runs candidates as local processes or as Kubernetes Jobs.

Every change is checkpointed before it counts, so a controller that is killed and
started again on the same run directory loses no finished evaluation and repeats none:
finished attempts are collected from their result files, running ones adopted.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from paretomerge.controller.anchors import anchor_key, cached_scores, store_scores
from paretomerge.controller.artifacts import pareto_candidates, write_artifacts
from paretomerge.controller.objectives import AnchorError, check_anchors, normalised_objectives
from paretomerge.controller.space import DecisionSpace
from paretomerge.controller.state import AnchorRecord, CandidateRecord, RunState, now
from paretomerge.executors import Executor, TaskOutcome
from paretomerge.search import AskTellOptimizer
from paretomerge.spec import ParetoMergeRun, dump_run, load_run, resume_conflicts
from paretomerge.tasks import EvaluateTask, ProfileTask, read_result, write_task
from paretomerge.volume import outside_volume_problems

RUN_FILE = "run.yaml"
ANCHOR_ROLES = ("base", "expert")


class RunFailed(RuntimeError):
    """The run cannot go on; the message says why."""


@dataclass(frozen=True)
class Limits:
    """What may change while a run goes on (Kubernetes users edit them like in Katib)."""

    budget: int
    parallelism: int


def run_directory(run: ParetoMergeRun) -> str:
    """The run's directory, relative to its volume."""
    return f"{run.spec.execution.storage.runs_path}/{run.name}"


class Controller:
    """Drives one run to its end.

    Args:
        run: the run manifest.
        volume: local path of the run's volume (model and data paths are relative to it).
        executor: runs the tasks.
        on_update: called with the state after every checkpoint (progress, status).
        on_note: told what a resumed run did (tasks adopted or started again); default:
            the ``paretomerge.controller`` logger.
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
        limits: Callable[[], Limits] | None = None,
        poll_seconds: float = 5.0,
    ):
        self.run = run
        self.spec = run.spec
        self.volume = volume
        self.executor = executor
        self.run_dir_name = run_directory(run)
        self.run_dir = volume / self.run_dir_name
        self.on_update = on_update or (lambda state: None)
        self.on_note = on_note or logging.getLogger("paretomerge.controller").info
        self.limits = limits or (
            lambda: Limits(self.spec.search.budget, self.spec.execution.parallelism)
        )
        self.poll_seconds = poll_seconds
        self.benchmarks = [b.name for b in self.spec.objectives.benchmarks]
        self.space: DecisionSpace | None = None
        self.optimizer: AskTellOptimizer | None = None

    # --- the run ------------------------------------------------------------------------

    def run_to_end(self) -> RunState:
        """Run (or resume) until the budget is spent or the run fails; returns the state."""
        if problems := outside_volume_problems(self.spec, self.volume):
            # Told but not checkpointed: the run directory itself may be what leads out.
            state = RunState(run=self.run.name, phase="Failed")
            state.message = "; ".join(map(str, problems))
            self.on_update(state)
            return state
        self.run_dir.mkdir(parents=True, exist_ok=True)
        state = RunState.load(self.run_dir)
        if state is not None and (conflict := self._resume_conflict()):
            # Told (status, progress) but not checkpointed: put the fields back and the
            # run resumes where it was.
            state.phase, state.message = "Failed", conflict
            self.on_update(state)
            return state
        (self.run_dir / RUN_FILE).write_text(yaml.safe_dump(dump_run(self.run), sort_keys=False))
        state = state or RunState(run=self.run.name)
        if state.phase in ("Succeeded", "Failed"):
            return state  # an outcome: a restarted controller must not extend it
        if state.phase != "Pending":
            self.on_note(
                f"resuming run {self.run.name} from its checkpoint ({state.phase}): "
                f"{state.finished} candidate(s) finished, {state.count('running')} to adopt "
                "or start again"
            )
        try:
            self._profile(state)
            self._anchor(state)
            self._search(state)
        except (RunFailed, AnchorError) as error:
            self.executor.close()
            self._set_phase(state, "Failed", str(error))
        return state

    def _resume_conflict(self) -> str | None:
        """Why this run's checkpoint cannot be resumed under the current spec, if it
        cannot: a field its results depend on changed since it started."""
        started_file = self.run_dir / RUN_FILE
        if not started_file.exists():
            return None
        conflicts = resume_conflicts(load_run(started_file), self.run)
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
        state.save(self.run_dir)
        self.on_update(state)

    # --- profile and anchors ---------------------------------------------------------------

    def _profile(self, state: RunState) -> None:
        if state.profile is not None:
            return
        self._set_phase(state, "Profiling", "measuring the per-layer importance profile")
        task = ProfileTask(
            id="profile",
            work_dir=f"{self.run_dir_name}/profile",
            base=self.spec.models.base.path,
            experts=[e.path for e in self.spec.models.experts],
        )
        result = self._complete([task], state)["profile"]
        state.profile = [*result["layers"], result["head"]]
        state.num_layers = len(result["layers"])
        self._save(state)

    def _anchor(self, state: RunState) -> None:
        missing = [role for role in ANCHOR_ROLES if role not in state.anchors]
        if missing:
            self._set_phase(state, "Anchoring", "evaluating the base and the expert")
        tasks = []
        for role in missing:
            task = self._anchor_task(role)
            key = anchor_key(
                self.volume / task.model,
                self.spec.evaluation,
                self.spec.objectives,
                task.sampling,
                self.volume,
            )
            scores = cached_scores(self.volume, key)
            if scores is not None:
                state.anchors[role] = AnchorRecord(
                    model=task.model, scores=scores, cache_key=key, cached=True
                )
            else:
                tasks.append((task, key))
        results = self._complete([task for task, _ in tasks], state)
        for task, key in tasks:
            scores = results[task.id]["evaluation"]["scores"]
            store_scores(self.volume, key, task.model, scores)
            state.anchors[task.role] = AnchorRecord(
                model=task.model, scores=scores, cache_key=key, cached=False
            )
        self._save(state)
        check_anchors(state.anchors["base"].scores, state.anchors["expert"].scores, self.benchmarks)

    def _anchor_task(self, role: str) -> EvaluateTask:
        # With several experts the first one anchors the accuracy and token scales.
        model = self.spec.models.base if role == "base" else self.spec.models.experts[0]
        return EvaluateTask(
            id=f"anchor-{role}",
            work_dir=f"{self.run_dir_name}/anchors/{role}",
            role=role,
            model=model.path,
            evaluation=self.spec.evaluation,
            objectives=self.spec.objectives,
        )

    def _complete(self, tasks: list, state: RunState) -> dict[str, dict]:
        """Run ``tasks`` to success (retrying each per spec); a task that keeps failing
        fails the run. Attempts are counted in the checkpoint, so a restarted controller
        grants no extra retries: every attempt but the newest has failed."""
        waiting, results = list(tasks), {}
        by_id = {task.id: task for task in tasks}
        while waiting or self.executor.running():
            while waiting and len(self.executor.running()) < self.limits().parallelism:
                task = waiting.pop(0)
                attempts = state.task_attempts.get(task.id, 0)
                state.task_attempts[task.id] = self._start(task, attempts, resume=attempts > 0)
                self._save(state)
            for outcome in self.executor.wait(self.poll_seconds):
                task = by_id[outcome.task_id]
                if outcome.succeeded:
                    results[task.id] = read_result(task, self.volume)
                    continue
                failed = state.task_attempts[task.id]
                if failed > self.spec.execution.candidate_retries:
                    raise RunFailed(
                        f"{task.id} failed {failed} time(s); last: "
                        f"{outcome.reason or 'unknown failure'}"
                    )
                state.task_attempts[task.id] = self._start(
                    task, state.task_attempts[task.id], resume=False
                )
                self._save(state)
        return results

    def _start(self, task, attempts: int, *, resume: bool) -> int:
        """Start the next attempt of ``task``, or on resume adopt its last one (running,
        or finished while no controller was there). Returns the attempts started."""
        if resume:
            # The newest attempt may have started after the last checkpoint was written.
            for attempt in (attempts, attempts - 1):
                if attempt >= 0 and self.executor.adopt(task, attempt):
                    self._note_resumed(task.id, attempt, adopted=True)
                    return attempt + 1
            self._note_resumed(task.id, attempts, adopted=False)
        write_task(task, self.volume)
        self.executor.submit(task, attempts)
        return attempts + 1

    # --- the search -------------------------------------------------------------------------

    def _search(self, state: RunState) -> None:
        self.space = DecisionSpace(self.spec, state.num_layers, tuple(state.profile))
        if state.optimizer is None:
            self.optimizer = AskTellOptimizer(self.space.search_config())
        else:
            self.optimizer = AskTellOptimizer.from_state_dict(state.optimizer)
        self._set_phase(state, "Searching", "")
        for candidate in state.candidates:
            if candidate.status == "running":
                candidate.attempts = self._resume_candidate(candidate)
        while True:
            limits = self.limits()
            running = len(self.executor.running())
            if state.finished >= limits.budget and running == 0:
                break
            while running < limits.parallelism and len(state.candidates) < limits.budget:
                self._launch_candidate(state)
                running += 1
            for outcome in self.executor.wait(self.poll_seconds):
                self._collect(state, outcome)
        self._set_phase(
            state,
            "Succeeded",
            f"{state.count('succeeded')} candidates evaluated, "
            f"{len(pareto_candidates(state))} on the Pareto front",
        )

    def _launch_candidate(self, state: RunState) -> None:
        started = time.monotonic()
        x = self.optimizer.ask(1)[0]
        candidate = CandidateRecord(
            id=f"c{len(state.candidates) + 1:04d}",
            x=x.tolist(),
            variables=self.space.variables(x).tolist(),
            attempts=0,
            seconds={"proposal": time.monotonic() - started},
        )
        state.candidates.append(candidate)
        state.optimizer = self.optimizer.state_dict()
        self._save(state)  # the proposal is recorded before anything runs
        candidate.attempts = self._start(self._candidate_task(candidate), 0, resume=False)
        self._save(state)

    def _resume_candidate(self, candidate: CandidateRecord) -> int:
        """Adopt the attempt of a running candidate that an earlier controller left, or start
        it. Its failed attempts are all recorded before the next one starts, so the attempt
        due is the one after them, whether or not it had started."""
        task, attempt = self._candidate_task(candidate), len(candidate.reasons)
        adopted = self.executor.adopt(task, attempt)
        self._note_resumed(task.id, attempt, adopted)
        if not adopted:
            write_task(task, self.volume)
            self.executor.submit(task, attempt)
        return attempt + 1

    def _note_resumed(self, task_id: str, attempt: int, adopted: bool) -> None:
        """Say what became of a task that the checkpoint left running."""
        if adopted:
            self.on_note(f"adopted {task_id} (attempt {attempt + 1}), started earlier")
        else:
            self.on_note(f"starting {task_id} again (attempt {attempt + 1}): nothing to adopt")

    def _candidate_task(self, candidate: CandidateRecord) -> EvaluateTask:
        index = int(candidate.id[1:])
        return EvaluateTask(
            id=candidate.id,
            work_dir=f"{self.run_dir_name}/candidates/{candidate.id}",
            role="merged",
            plan=self.space.plan(candidate.x, seed=self.spec.search.seed + index),
            keep_merged=self.spec.execution.keep_merged_models != "none",
            evaluation=self.spec.evaluation,
            objectives=self.spec.objectives,
        )

    def _collect(self, state: RunState, outcome: TaskOutcome) -> None:
        candidate = state.candidate(outcome.task_id)
        if outcome.succeeded:
            try:
                self._record_result(state, candidate)
            except (KeyError, TypeError, ValueError) as error:
                outcome = TaskOutcome(
                    outcome.task_id, outcome.attempt, False, f"unusable result: {error!r}"
                )
        if not outcome.succeeded:
            self._record_failure(state, candidate, outcome.reason or "unknown failure")
        state.optimizer = self.optimizer.state_dict()
        write_artifacts(self.run_dir, state, self.space)
        self._save(state)
        failed = state.count("failed")
        if failed > self.spec.execution.max_failed_candidates:
            raise RunFailed(
                f"{failed} candidates failed, more than maxFailedCandidates "
                f"({self.spec.execution.max_failed_candidates}); last: {candidate.reasons[-1]}"
            )

    def _record_result(self, state: RunState, candidate: CandidateRecord) -> None:
        result = read_result(self._candidate_task(candidate), self.volume)
        scores = result["evaluation"]["scores"]
        anchors = state.anchors
        y = normalised_objectives(
            scores, anchors["base"].scores, anchors["expert"].scores, self.benchmarks
        )
        self.optimizer.tell(candidate.x, y)
        candidate.status, candidate.objectives, candidate.scores = "succeeded", list(y), scores
        candidate.seconds.update(result.get("seconds", {}))
        candidate.merged_model = result.get("merged_model")
        candidate.finished = now()
        state.hypervolume.append(self.optimizer.hypervolume())
        self._prune_merged_models(state)

    def _record_failure(self, state: RunState, candidate: CandidateRecord, reason: str) -> None:
        candidate.reasons.append(f"attempt {len(candidate.reasons) + 1}: {reason}")
        if len(candidate.reasons) <= self.spec.execution.candidate_retries:
            self._save(state)  # a controller killed now must not run this attempt again
            candidate.attempts = self._start(
                self._candidate_task(candidate), candidate.attempts, resume=False
            )
            return
        candidate.status, candidate.finished = "failed", now()
        self.optimizer.tell_failed(candidate.x, reason)

    def _prune_merged_models(self, state: RunState) -> None:
        """With ``keepMergedModels: pareto``, delete merges that left the front."""
        if self.spec.execution.keep_merged_models != "pareto":
            return
        front = {c.id for c in pareto_candidates(state)}
        for candidate in state.candidates:
            if candidate.merged_model and candidate.id not in front:
                shutil.rmtree(self.volume / candidate.merged_model, ignore_errors=True)
                candidate.merged_model = None
