"""The operator's Prometheus metrics, learnt from the runs' status.

Every name starts with ``paretomerge_``, durations are in seconds, counters end in
``_total``. Labels stay low-cardinality: ``namespace`` and ``run`` (plus ``phase``,
``outcome``, ``step``, ``handler`` from small fixed sets), never a candidate id.

:class:`OperatorMetrics` owns its registry (the one the operator serves on
``--metrics-port``) and remembers, per run, which evaluation rows it has counted, so an
event repeated by the API server never counts a row twice within one process. After an
operator restart the counters start from zero and every row in the status is counted
again once: each counter then holds the run's total, and Prometheus sees a counter reset.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any, TypeVar

import kopf
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    start_http_server,
)

from paretomerge.k8s.status import EvaluationRow

RUN_LABELS = ("namespace", "run")
# The units of spec.search.costBudget, the label of its gauges.
COST_UNITS = ("outputTokens", "gpuHours")
OUTCOMES = ("succeeded", "screened", "failed", "retried")
# "serve" (the model server's start) is part of "evaluate", and told apart for its cost.
STEPS = ("merge", "serve", "evaluate")
# A candidate merges in minutes and evaluates in up to hours (vLLM, 35k-token answers).
CANDIDATE_BUCKETS = (10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800)
# A proposal is a GP fit plus qLogNEHVI: below a second on small runs, minutes for SAAS.
PROPOSAL_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

Handler = TypeVar("Handler", bound=Callable[..., Any])
# Names of the handlers wrapped by ``counting_errors``, filled as their modules are imported
# (importing ``paretomerge_operator.handlers`` imports them all).
COUNTED_HANDLERS: set[str] = set()


@dataclass(frozen=True)
class RunSnapshot:
    """One version of a run, as an event brings it: the fields the metrics need."""

    phase: str | None
    budget: int | None
    finished: int
    running: int
    validation_budget: int
    validations_finished: int
    validations_running: int
    pareto_size: int
    hypervolume: float
    evaluations: list[EvaluationRow]
    cost_budget: dict[str, Any] | None = None

    @classmethod
    def from_body(cls, spec: dict[str, Any], status: dict[str, Any]) -> RunSnapshot:
        return cls(
            phase=status.get("phase") or None,
            budget=(spec.get("search") or {}).get("budget"),
            finished=status.get("finished") or 0,
            running=status.get("running") or 0,
            validation_budget=((spec.get("search") or {}).get("validation") or {}).get("budget")
            or 0,
            validations_finished=status.get("validationsFinished") or 0,
            validations_running=status.get("validationsRunning") or 0,
            pareto_size=status.get("paretoSize") or 0,
            hypervolume=status.get("hypervolume") or 0.0,
            cost_budget=status.get("costBudget") or None,
            evaluations=[
                EvaluationRow.from_status(row, status.get("evaluationColumns"))
                for row in status.get("evaluations") or []
            ],
        )


class OperatorMetrics:
    """The operator's metrics in their own registry, and what has been counted."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        info = Info("paretomerge_build", "The running operator's version.", registry=self.registry)
        info.info({"version": version("paretomerge")})
        self.runs = self._add(Gauge, "paretomerge_runs", "Runs by phase.", ("namespace", "phase"))
        self.evaluations = self._add(
            Counter,
            "paretomerge_evaluations_total",
            "Finished candidate evaluations by outcome; retried counts extra attempts.",
            (*RUN_LABELS, "outcome"),
        )
        self.finished = self._add(
            Gauge, "paretomerge_run_evaluations_finished", "Evaluations finished.", RUN_LABELS
        )
        self.running = self._add(
            Gauge, "paretomerge_run_evaluations_running", "Evaluations running.", RUN_LABELS
        )
        self.budget = self._add(
            Gauge, "paretomerge_run_budget_evaluations", "The run's evaluation budget.", RUN_LABELS
        )
        # Validation after the search is counted apart from the search's budget.
        self.validations_finished = self._add(
            Gauge, "paretomerge_run_validations_finished", "Validations finished.", RUN_LABELS
        )
        self.validations_running = self._add(
            Gauge, "paretomerge_run_validations_running", "Validations running.", RUN_LABELS
        )
        self.validation_budget = self._add(
            Gauge,
            "paretomerge_run_budget_validations",
            "The run's validation budget (evaluations after the search).",
            RUN_LABELS,
        )
        self.cost_budget = self._add(
            Gauge,
            "paretomerge_run_cost_budget",
            "The run's spec.search.costBudget, in its unit (output tokens or GPU-hours).",
            (*RUN_LABELS, "unit"),
        )
        self.cost_spent = self._add(
            Gauge,
            "paretomerge_run_cost_spent",
            "What the run spent of its cost budget, in its unit: every evaluation it paid "
            "for (anchors not from the cache, candidates, validations).",
            (*RUN_LABELS, "unit"),
        )
        self.hypervolume = self._add(
            Gauge, "paretomerge_run_hypervolume", "Hypervolume of the Pareto set.", RUN_LABELS
        )
        self.pareto_size = self._add(
            Gauge, "paretomerge_run_pareto_size", "Merges in the Pareto set.", RUN_LABELS
        )
        self.output_tokens = self._add(
            Counter,
            "paretomerge_output_tokens_total",
            "Tokens generated by the evaluations (every answer and repeat).",
            RUN_LABELS,
        )
        self.gpu_seconds = self._add(
            Counter,
            "paretomerge_gpu_seconds_total",
            "GPU-seconds of the evaluations: server start and generation times the GPUs.",
            RUN_LABELS,
        )
        self.candidate_seconds = self._add(
            Histogram,
            "paretomerge_candidate_duration_seconds",
            "Duration of a candidate's step (merge, serve: the model server's start, "
            "evaluate: serving and generation).",
            (*RUN_LABELS, "step"),
            buckets=CANDIDATE_BUCKETS,
        )
        self.proposal_seconds = self._add(
            Histogram,
            "paretomerge_proposal_duration_seconds",
            "Time to propose one candidate (surrogate fit and acquisition).",
            RUN_LABELS,
            buckets=PROPOSAL_BUCKETS,
        )
        self.reconcile_errors = self._add(
            Counter,
            "paretomerge_reconcile_errors_total",
            "Exceptions raised by the operator's handlers (each retry counts).",
            ("handler",),
        )
        # Series exist at 0 before their first event: a series first scraped at 1 would
        # hide that event from increase() and rate(), and the dashboard would show no data.
        for handler in sorted(COUNTED_HANDLERS):
            self.reconcile_errors.labels(handler=handler)
        self._counted: dict[tuple[str, str], set[str]] = {}
        self._phases: dict[tuple[str, str], str] = {}

    def _add(self, kind: type, name: str, documentation: str, labels: Iterable[str], **options):
        return kind(name, documentation, tuple(labels), registry=self.registry, **options)

    def observe(self, namespace: str, run: str, snapshot: RunSnapshot) -> None:
        """Update the gauges and count the evaluation rows not counted before."""
        key = (namespace, run)
        self._set_phase(key, snapshot.phase)
        labels = {"namespace": namespace, "run": run}
        self.finished.labels(**labels).set(snapshot.finished)
        self.running.labels(**labels).set(snapshot.running)
        self.hypervolume.labels(**labels).set(snapshot.hypervolume)
        self.pareto_size.labels(**labels).set(snapshot.pareto_size)
        self.validations_finished.labels(**labels).set(snapshot.validations_finished)
        self.validations_running.labels(**labels).set(snapshot.validations_running)
        self.validation_budget.labels(**labels).set(snapshot.validation_budget)
        if snapshot.budget is not None:
            self.budget.labels(**labels).set(snapshot.budget)
        self._observe_cost_budget(labels, snapshot.cost_budget)
        if key not in self._counted:
            self._start_series(labels)
        counted = self._counted.setdefault(key, set())
        for row in snapshot.evaluations:
            if row.id not in counted:
                counted.add(row.id)
                self._count_row(labels, row)

    def _observe_cost_budget(self, labels: dict[str, str], cost_budget: dict | None) -> None:
        """The cost budget's gauges, in the unit the status gives (a unit the run no
        longer uses, or a budget removed, leaves no series behind)."""
        unit = (cost_budget or {}).get("unit")
        for gauge in (self.cost_budget, self.cost_spent):
            for other in COST_UNITS:
                if other != unit:
                    gauge.remove(labels["namespace"], labels["run"], other)
        if unit in COST_UNITS:
            self.cost_budget.labels(**labels, unit=unit).set(cost_budget.get("budget") or 0.0)
            self.cost_spent.labels(**labels, unit=unit).set(cost_budget.get("spent") or 0.0)

    def _start_series(self, labels: dict[str, str]) -> None:
        """A run's counters and histograms at 0 (see ``__init__``)."""
        for outcome in OUTCOMES:
            self.evaluations.labels(**labels, outcome=outcome)
        for step in STEPS:
            self.candidate_seconds.labels(**labels, step=step)
        self.proposal_seconds.labels(**labels)
        self.output_tokens.labels(**labels)
        self.gpu_seconds.labels(**labels)

    def _count_row(self, labels: dict[str, str], row: EvaluationRow) -> None:
        """Count a row's outcome, its extra attempts, its durations and its cost (what it
        has: a row shortened by the API server has its outcome only, see
        :meth:`EvaluationRow.from_status`)."""
        if row.status in OUTCOMES:
            self.evaluations.labels(**labels, outcome=row.status).inc()
        retries = (row.attempts or 1) - 1
        if retries > 0:
            self.evaluations.labels(**labels, outcome="retried").inc(retries)
        durations = (row.merge_seconds, row.serve_seconds, row.evaluate_seconds)
        for step, seconds in zip(STEPS, durations, strict=True):
            if seconds is not None:
                self.candidate_seconds.labels(**labels, step=step).observe(seconds)
        if row.proposal_seconds is not None:
            self.proposal_seconds.labels(**labels).observe(row.proposal_seconds)
        if row.output_tokens is not None:
            self.output_tokens.labels(**labels).inc(row.output_tokens)
        if row.gpu_seconds is not None:
            self.gpu_seconds.labels(**labels).inc(row.gpu_seconds)

    def _set_phase(self, key: tuple[str, str], phase: str | None) -> None:
        previous = self._phases.get(key)
        if phase == previous:
            return
        if previous is not None:
            self.runs.labels(namespace=key[0], phase=previous).dec()
        if phase is None:
            self._phases.pop(key, None)
        else:
            self._phases[key] = phase
            self.runs.labels(namespace=key[0], phase=phase).inc()

    def forget(self, namespace: str, run: str) -> None:
        """A deleted run: its series go, and it no longer counts in its phase."""
        key = (namespace, run)
        self._set_phase(key, None)
        self._counted.pop(key, None)
        per_run = (
            self.finished,
            self.running,
            self.budget,
            self.hypervolume,
            self.pareto_size,
            self.validations_finished,
            self.validations_running,
            self.validation_budget,
        )
        for metric in (*per_run, self.proposal_seconds, self.output_tokens, self.gpu_seconds):
            metric.remove(namespace, run)  # a no-op for series never observed
        self._observe_cost_budget({"namespace": namespace, "run": run}, None)
        for outcome in OUTCOMES:
            self.evaluations.remove(namespace, run, outcome)
        for step in STEPS:
            self.candidate_seconds.remove(namespace, run, step)

    def serve(self, port: int) -> None:
        """Serve ``/metrics`` on ``port`` in a background thread."""
        start_http_server(port, registry=self.registry)


def counting_errors(handler: Handler) -> Handler:
    """Count the exceptions ``handler`` raises in ``memo.metrics``, then re-raise them for
    kopf to retry. An invalid spec (:class:`kopf.PermanentError`) is the user's error,
    reported on the run, and not counted."""

    COUNTED_HANDLERS.add(handler.__name__)

    @functools.wraps(handler)
    def counted(*args: Any, **kwargs: Any) -> Any:
        try:
            return handler(*args, **kwargs)
        except kopf.PermanentError:
            raise
        except Exception:
            kwargs["memo"].metrics.reconcile_errors.labels(handler=handler.__name__).inc()
            raise

    return counted  # type: ignore[return-value]
