"""The objects the operator creates for a run: its controller's Job, ServiceAccount, Role
and RoleBinding, all owned by the run (garbage-collected with it).

Names are deterministic, so creating them again (a resumed operator, a second handler
call) finds them instead of making a second controller.
"""

from __future__ import annotations

from typing import Any

from paretomerge.k8s.constants import API_GROUP, CONTROLLER, PLURAL, VOLUME_MOUNT
from paretomerge.k8s.objects import (
    container_security_context,
    controller_name,
    data_mount,
    data_volume,
    labels,
    metadata,
    pod_security_context,
)
from paretomerge.k8s.settings import ClusterSettings
from paretomerge.spec import ParetoMergeRun


def _metadata(run: ParetoMergeRun, body: dict[str, Any]) -> dict[str, Any]:
    return metadata(controller_name(run.name), body, labels(run.name, CONTROLLER))


def controller_service_account(run: ParetoMergeRun, body: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _metadata(run, body)}


def controller_role(run: ParetoMergeRun, body: dict[str, Any]) -> dict[str, Any]:
    """Least privilege for one run's controller: its own run and status (by name), Jobs
    and Pods in its namespace (Jobs cannot be restricted by name before they exist), only
    the verbs the controller uses; Events it posts about its run; no Secrets (pods get them
    from the kubelet)."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _metadata(run, body),
        "rules": [
            {
                "apiGroups": [API_GROUP],
                "resources": [PLURAL],
                "resourceNames": [run.name],
                "verbs": ["get"],
            },
            {
                "apiGroups": [API_GROUP],
                "resources": [f"{PLURAL}/status"],
                "resourceNames": [run.name],
                "verbs": ["get", "patch"],
            },
            {
                "apiGroups": ["batch"],
                "resources": ["jobs"],
                "verbs": ["create", "get", "delete"],
            },
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
            {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
        ],
    }


def controller_role_binding(run: ParetoMergeRun, body: dict[str, Any]) -> dict[str, Any]:
    name = controller_name(run.name)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _metadata(run, body),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [
            {"kind": "ServiceAccount", "name": name, "namespace": body["metadata"]["namespace"]}
        ],
    }


def controller_job(
    run: ParetoMergeRun,
    body: dict[str, Any],
    settings: ClusterSettings,
    *,
    check_only: bool = False,
) -> dict[str, Any]:
    """The controller as a Job: a pod that dies is replaced (``backoffLimit``) and resumes
    from the run's checkpoint; a Job that runs out of restarts fails the run.

    Args:
        run: the run, or for ``check_only`` the run as far as it parsed.
        check_only: a run refused for its spec: the controller looks at its volume too,
            writes every problem into its status and starts nothing (``--check-only``).
    """
    job_metadata = _metadata(run, body)
    namespace = body["metadata"]["namespace"]
    container = {
        "name": CONTROLLER,
        "image": settings.images.runtime,
        "imagePullPolicy": settings.images.pull_policy,
        "command": ["paretomerge", "controller", "--run", f"{namespace}/{run.name}"],
        "args": ["--volume", VOLUME_MOUNT, *(["--check-only"] if check_only else [])],
        "env": [
            *settings.controller_environment(),
            {"name": "HOME", "value": "/tmp"},
            {"name": "MPLCONFIGDIR", "value": "/tmp"},
        ],
        "resources": {
            "requests": {"cpu": "500m", "memory": settings.controller_memory},
            "limits": {"memory": settings.controller_memory},
        },
        "volumeMounts": [data_mount(), {"name": "tmp", "mountPath": "/tmp"}],
        "securityContext": container_security_context(),
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": job_metadata,
        "spec": {
            "backoffLimit": settings.controller_restarts,
            "template": {
                "metadata": {"labels": job_metadata["labels"]},
                "spec": {
                    "serviceAccountName": job_metadata["name"],
                    "restartPolicy": "Never",
                    "securityContext": pod_security_context(),
                    "imagePullSecrets": [{"name": s} for s in settings.images.pull_secrets],
                    "containers": [container],
                    "volumes": [
                        data_volume(run.spec.execution.storage.claim_name),
                        {"name": "tmp", "emptyDir": {}},
                    ],
                },
            },
        },
    }
