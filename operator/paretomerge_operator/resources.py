"""The objects the operator creates for a run, all owned by it (garbage-collected with it).

Names are deterministic, so creating them again (a resumed operator, a second handler
call) finds them instead of making a second controller.
"""

from __future__ import annotations

import json
from typing import Any

from paretomerge.executors.kubernetes import (
    COMPONENT_LABEL,
    RUN_LABEL,
    VOLUME_MOUNT,
    job_name,
    owner_reference,
    restricted_security_context,
)
from paretomerge.kube import (
    EVAL_IMAGE_ENV,
    IMAGE_PULL_POLICY_ENV,
    IMAGE_PULL_SECRETS_ENV,
    RUN_DEFAULTS_ENV,
    RUNTIME_IMAGE_ENV,
)
from paretomerge.spec import API_GROUP, ParetoMergeRun
from paretomerge_operator.settings import OperatorSettings

CONTROLLER = "controller"


def controller_name(run_name: str) -> str:
    """Name of the controller's Job, ServiceAccount, Role and RoleBinding."""
    return job_name(run_name, CONTROLLER, 0).removesuffix("-a0")


def _metadata(run: ParetoMergeRun, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": controller_name(run.name),
        "namespace": body["metadata"]["namespace"],
        "labels": {
            "app.kubernetes.io/name": "paretomerge",
            COMPONENT_LABEL: CONTROLLER,
            RUN_LABEL: run.name,
        },
        "ownerReferences": [owner_reference(body)],
    }


def controller_service_account(run: ParetoMergeRun, body: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _metadata(run, body)}


def controller_role(run: ParetoMergeRun, body: dict[str, Any]) -> dict[str, Any]:
    """Least privilege for one run's controller: its own run and status (by name), Jobs
    and Pods in its namespace (Jobs cannot be restricted by name before they exist), only
    the verbs the controller uses; no Secrets (pods get them from the kubelet)."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _metadata(run, body),
        "rules": [
            {
                "apiGroups": [API_GROUP],
                "resources": ["paretomergeruns"],
                "resourceNames": [run.name],
                "verbs": ["get"],
            },
            {
                "apiGroups": [API_GROUP],
                "resources": ["paretomergeruns/status"],
                "resourceNames": [run.name],
                "verbs": ["get", "patch"],
            },
            {
                "apiGroups": ["batch"],
                "resources": ["jobs"],
                "verbs": ["create", "get", "delete"],
            },
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
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
    run: ParetoMergeRun, body: dict[str, Any], settings: OperatorSettings
) -> dict[str, Any]:
    """The controller as a Job: a pod that dies is replaced (``backoffLimit``) and resumes
    from the run's checkpoint; a Job that runs out of restarts fails the run."""
    metadata = _metadata(run, body)
    namespace = body["metadata"]["namespace"]
    container = {
        "name": CONTROLLER,
        "image": settings.runtime_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["paretomerge", "controller", "--run", f"{namespace}/{run.name}"],
        "args": ["--volume", VOLUME_MOUNT],
        "env": [
            {"name": RUNTIME_IMAGE_ENV, "value": settings.runtime_image},
            {"name": EVAL_IMAGE_ENV, "value": settings.eval_image},
            {"name": IMAGE_PULL_POLICY_ENV, "value": settings.image_pull_policy},
            {"name": IMAGE_PULL_SECRETS_ENV, "value": ",".join(settings.image_pull_secrets)},
            {"name": RUN_DEFAULTS_ENV, "value": json.dumps(settings.run_defaults)},
            {"name": "HOME", "value": "/tmp"},
            {"name": "MPLCONFIGDIR", "value": "/tmp"},
        ],
        "resources": {
            "requests": {"cpu": "500m", "memory": settings.controller_memory},
            "limits": {"memory": settings.controller_memory},
        },
        "volumeMounts": [
            {"name": "data", "mountPath": VOLUME_MOUNT},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        "securityContext": {**restricted_security_context(), "readOnlyRootFilesystem": True},
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {
            "backoffLimit": settings.controller_restarts,
            "template": {
                "metadata": {"labels": metadata["labels"]},
                "spec": {
                    "serviceAccountName": metadata["name"],
                    "restartPolicy": "Never",
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 1000,
                        "runAsGroup": 1000,
                        "fsGroup": 1000,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "imagePullSecrets": [{"name": s} for s in settings.image_pull_secrets],
                    "containers": [container],
                    "volumes": [
                        {
                            "name": "data",
                            "persistentVolumeClaim": {
                                "claimName": run.spec.execution.storage.claim_name
                            },
                        },
                        {"name": "tmp", "emptyDir": {}},
                    ],
                },
            },
        },
    }
