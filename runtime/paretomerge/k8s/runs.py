"""A ParetoMergeRun in the API: the run as the operator and the controller see it, and
its status, read and patched through :class:`RunResource`."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from paretomerge.k8s import client
from paretomerge.k8s.constants import API_GROUP, PLURAL, VERSION
from paretomerge.spec import ParetoMergeRun, RunFileCheck, check_run, parse_run

CONFLICT_RETRIES = 20


def effective_run(run_object: Mapping[str, Any], run_defaults: dict[str, Any]) -> ParetoMergeRun:
    """The run as the operator and the controller see it: ``run_object`` (as read from the
    API) with the cluster's run defaults filled in (:func:`with_run_defaults`), validated.

    Raises:
        SpecError: every problem, under the run's ``namespace/name``.
    """
    return parse_run(with_run_defaults(run_object, run_defaults), run_source(run_object))


def checked_run(run_object: Mapping[str, Any], run_defaults: dict[str, Any]) -> RunFileCheck:
    """``run_object`` with the cluster's run defaults, read through to its end
    (:func:`~paretomerge.spec.check_run`): every problem of its spec, and the run as far as
    it parsed (what the preflight of a run refused for its spec looks at)."""
    return check_run(with_run_defaults(run_object, run_defaults))


def run_source(run_object: Mapping[str, Any]) -> str:
    """``namespace/name`` of ``run_object``: how messages about its spec name it."""
    metadata = run_object.get("metadata") or {}
    return f"{metadata.get('namespace')}/{metadata.get('name')}"


def with_run_defaults(manifest: Mapping[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``manifest`` with ``spec.execution`` filled from ``defaults`` where the run leaves a
    field out or empty (``{}``, ``[]``, null); nested objects are filled field by field.
    ``manifest`` itself is not changed."""
    spec = manifest.get("spec") or {}
    execution = _fill(spec.get("execution") or {}, defaults)
    return {**manifest, "spec": {**spec, "execution": execution}}


def _fill(values: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    filled = dict(values)
    for key, default in defaults.items():
        value = filled.get(key)
        if isinstance(value, dict) and value and isinstance(default, dict):
            filled[key] = _fill(value, default)
        elif value is None or value == {} or value == []:
            filled[key] = default
    return filled


class StatusConflictError(RuntimeError):
    """A run's status changed under every one of :data:`CONFLICT_RETRIES` writes."""


class RunResource:
    """One ParetoMergeRun in the API: read it, write its status."""

    def __init__(self, namespace: str, name: str):
        self.namespace, self.name = namespace, name

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"

    def read(self) -> dict[str, Any] | None:
        """The run as the API has it now; ``None`` once it is deleted."""
        return client.call(
            lambda: client.custom_objects().get_namespaced_custom_object(
                API_GROUP, VERSION, self.namespace, PLURAL, self.name
            ),
            f"reading {self}",
            absent_ok=True,
        )

    def update_status(self, make: Callable[[dict[str, Any]], dict[str, Any] | None]) -> None:
        """Merge-patch the status with ``make(current status)`` (fields it does not name
        are left alone), against the version of the run that status was read from. When
        the run changed meanwhile (409), read it again and ask ``make`` again, so no
        writer's change is lost: the controller and the operator both write
        ``conditions``, one list. The run being gone, or ``make`` returning ``None``
        (nothing to write), ends it.

        Raises:
            StatusConflictError: still conflicting after :data:`CONFLICT_RETRIES` tries.
        """
        for _ in range(CONFLICT_RETRIES):
            run = self.read()
            if run is None:
                return
            status = make(run.get("status") or {})
            if status is None:
                return
            patch = functools.partial(
                client.custom_objects().patch_namespaced_custom_object_status,
                API_GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                self.name,
                {
                    "metadata": {"resourceVersion": run["metadata"]["resourceVersion"]},
                    "status": status,
                },
            )
            patched = client.call(
                patch,
                f"patching the status of {self}",
                absent_ok=True,  # deleted meanwhile: the next read says so
                conflict_ok=True,  # changed meanwhile: read it again
            )
            if patched is not None:
                return
        raise StatusConflictError(
            f"the status of {self} changed {CONFLICT_RETRIES} times while it was written"
        )

    def record_event(self, run_object: dict[str, Any], reason: str, message: str) -> None:
        """Post a Warning Event about the run (``kubectl describe`` shows it), as the
        operator's are: ``reason`` a CamelCase word, ``message`` what happened."""
        metadata = run_object["metadata"]
        stamp = datetime.now(UTC)
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{self.name}.", "namespace": self.namespace},
            "involvedObject": {
                "apiVersion": run_object["apiVersion"],
                "kind": run_object["kind"],
                "name": self.name,
                "namespace": self.namespace,
                "uid": metadata["uid"],
            },
            "reason": reason,
            "message": message[:1024],
            "type": "Warning",
            "source": {"component": "paretomerge-controller"},
            "firstTimestamp": stamp.isoformat(),
            "lastTimestamp": stamp.isoformat(),
            "count": 1,
        }
        client.call(
            lambda: client.core().create_namespaced_event(self.namespace, event),
            f"posting an Event on {self}",
        )
