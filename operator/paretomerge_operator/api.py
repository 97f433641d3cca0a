"""The operator's calls to the API server (through the official client)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import kopf
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from paretomerge.kube import (
    PLURAL,
    VERSION,
    StatusConflictError,
    load_kube_config,
    update_status,
)
from paretomerge.spec import API_GROUP


def configure() -> None:
    """Load credentials once at startup: a kubeconfig if set, else the pod's own. A first
    call opens the connection and loads the client's models now, not in a run's first
    reconcile (0.7 s measured)."""
    try:
        load_kube_config()
    except config.ConfigException:
        config.load_kube_config()
    client.VersionApi(_client()).get_code()


@functools.cache
def _client() -> client.ApiClient:
    """One client for every handler: its connection pool is reused (a client per call
    costs a TLS handshake each)."""
    return client.ApiClient()


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
        client.BatchV1Api(_client()).create_namespaced_job(namespace, manifest)
    elif kind == "ServiceAccount":
        client.CoreV1Api(_client()).create_namespaced_service_account(namespace, manifest)
    elif kind == "Role":
        client.RbacAuthorizationV1Api(_client()).create_namespaced_role(namespace, manifest)
    elif kind == "RoleBinding":
        client.RbacAuthorizationV1Api(_client()).create_namespaced_role_binding(namespace, manifest)
    else:
        raise ValueError(f"the operator does not create {kind} objects")


def update_run_status(
    namespace: str,
    name: str,
    make: Callable[[dict[str, Any]], dict[str, Any] | None],
) -> None:
    """Merge-patch a run's status with ``make(current status)`` (``None``: nothing to
    write), retried on conflicts with the controller (:func:`paretomerge.kube.update_status`).
    A run deleted meanwhile is left alone."""
    api = client.CustomObjectsApi(_client())

    def patch(status: dict[str, Any], resource_version: str) -> None:
        body = {"metadata": {"resourceVersion": resource_version}, "status": status}
        try:
            api.patch_namespaced_custom_object_status(
                API_GROUP, VERSION, namespace, PLURAL, name, body
            )
        except ApiException as error:
            if error.status != 404:
                raise

    try:
        update_status(lambda: read_run(namespace, name), patch, make, f"{namespace}/{name}")
    except StatusConflictError as error:
        raise kopf.TemporaryError(str(error), delay=1) from None


def read_run(namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return client.CustomObjectsApi(_client()).get_namespaced_custom_object(
            API_GROUP, VERSION, namespace, PLURAL, name
        )
    except ApiException as error:
        if error.status == 404:
            return None
        raise
