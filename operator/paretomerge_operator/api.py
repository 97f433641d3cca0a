"""The operator's calls to the API server (through the official client)."""

from __future__ import annotations

from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from paretomerge.kube import PLURAL, VERSION, load_kube_config
from paretomerge.spec import API_GROUP


def configure() -> None:
    """Load credentials once at startup: a kubeconfig if set, else the pod's own."""
    try:
        load_kube_config()
    except config.ConfigException:
        config.load_kube_config()


def create_if_absent(manifest: dict[str, Any]) -> bool:
    """Create ``manifest``; ``False`` when an object of that name already exists."""
    try:
        _create(manifest)
    except ApiException as error:
        if error.status == 409:
            return False
        raise
    return True


def _create(manifest: dict[str, Any]) -> None:
    namespace = manifest["metadata"]["namespace"]
    kind = manifest["kind"]
    if kind == "Job":
        client.BatchV1Api().create_namespaced_job(namespace, manifest)
    elif kind == "ServiceAccount":
        client.CoreV1Api().create_namespaced_service_account(namespace, manifest)
    elif kind == "Role":
        client.RbacAuthorizationV1Api().create_namespaced_role(namespace, manifest)
    elif kind == "RoleBinding":
        client.RbacAuthorizationV1Api().create_namespaced_role_binding(namespace, manifest)
    else:
        raise ValueError(f"the operator does not create {kind} objects")


def patch_run_status(namespace: str, name: str, status: dict[str, Any]) -> None:
    """Merge-patch a run's status (no resourceVersion: never a conflict)."""
    try:
        client.CustomObjectsApi().patch_namespaced_custom_object_status(
            API_GROUP, VERSION, namespace, PLURAL, name, {"status": status}
        )
    except ApiException as error:
        if error.status != 404:  # a run deleted meanwhile has no status to write
            raise


def read_run(namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return client.CustomObjectsApi().get_namespaced_custom_object(
            API_GROUP, VERSION, namespace, PLURAL, name
        )
    except ApiException as error:
        if error.status == 404:
            return None
        raise
