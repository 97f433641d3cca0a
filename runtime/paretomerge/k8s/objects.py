"""The vocabulary of the objects made for a run: names, labels, owner references, security
contexts and volumes, shared by the operator's controller Job and the controller's task
Jobs.

Every object is owned by its ParetoMergeRun, so deleting the run deletes them all. Names
are deterministic (``<run>-<task>-a<attempt>``, ``<run>-controller``), so creating an
object again (a restarted operator or controller) finds it instead of making a second one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from paretomerge.k8s.constants import (
    APP_NAME,
    COMPONENT_LABEL,
    CONTROLLER,
    MAX_NAME,
    NAME_LABEL,
    RUN_AS,
    RUN_LABEL,
    VOLUME_MOUNT,
)

DATA_VOLUME = "data"


def job_name(run_name: str, task_id: str, attempt: int) -> str:
    """``<run>-<task>-a<attempt>``, shortened with a hash when longer than a label value."""
    name = f"{run_name}-{task_id}-a{attempt}"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    suffix = f"-{task_id}-a{attempt}-{digest}"
    return run_name[: MAX_NAME - len(suffix)].rstrip("-") + suffix


def controller_name(run_name: str) -> str:
    """Name of a run's controller Job, ServiceAccount, Role and RoleBinding."""
    return job_name(run_name, CONTROLLER, 0).removesuffix("-a0")


def labels(run_name: str, component: str, **more: str) -> dict[str, str]:
    """The labels of an object made for run ``run_name``, ``component`` saying its role."""
    return {NAME_LABEL: APP_NAME, COMPONENT_LABEL: component, RUN_LABEL: run_name, **more}


def metadata(
    name: str, run_object: Mapping[str, Any], object_labels: dict[str, str]
) -> dict[str, Any]:
    """Metadata of an object named ``name`` in the run's namespace, owned by the run."""
    return {
        "name": name,
        "namespace": run_object["metadata"]["namespace"],
        "labels": object_labels,
        "ownerReferences": [owner_reference(run_object)],
    }


def owner_reference(run_object: Mapping[str, Any]) -> dict[str, Any]:
    """The run as the controlling owner: the garbage collector deletes what it owns."""
    return {
        "apiVersion": run_object["apiVersion"],
        "kind": run_object["kind"],
        "name": run_object["metadata"]["name"],
        "uid": run_object["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def pod_security_context() -> dict[str, Any]:
    """Every pod of a run: a fixed non-root user, the runtime's default seccomp profile
    (Pod Security Standard ``restricted``)."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    """Every container of a run: no privilege escalation, no capabilities, a read-only
    root filesystem (what a container writes goes to its volumes)."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
        "readOnlyRootFilesystem": True,
    }


def data_volume(claim_name: str) -> dict[str, Any]:
    """The run's volume: the PVC with the models, the data and the run directories."""
    return {"name": DATA_VOLUME, "persistentVolumeClaim": {"claimName": claim_name}}


def data_mount() -> dict[str, str]:
    """Where every container sees the run's volume."""
    return {"name": DATA_VOLUME, "mountPath": VOLUME_MOUNT}
