"""Every call to the API server, through the official client and one policy.

:func:`call` is that policy, for the operator and the controller alike:

- a server error (5xx), throttling (429) or a lost connection is retried with backoff,
  about 90 s in all (an API server that restarts), then fails;
- 404 Not Found returns ``None`` where the caller says the object may be gone
  (``absent_ok``: reading a run that was deleted, deleting a Job already deleted);
- 409 Conflict returns ``None`` where the caller says so (``conflict_ok``: creating an
  object that already exists, patching a status that changed since it was read);
- any other client error is raised: it is a bug or a missing permission, not a state.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

API_RETRIES = 8
T = TypeVar("T")


def load_credentials() -> None:
    """A kubeconfig when ``KUBECONFIG`` is set (tests, out of cluster), else the pod's own
    ServiceAccount, else the default kubeconfig."""
    if os.environ.get("KUBECONFIG"):
        config.load_kube_config()
        return
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()


def connect() -> None:
    """Load credentials once, at startup, and open the connection: the first call also
    loads the client's models now rather than in a run's first reconcile (0.7 s)."""
    load_credentials()
    call(lambda: client.VersionApi(api_client()).get_code(), "reading the server's version")


@functools.cache
def api_client() -> client.ApiClient:
    """One client per process: its connection pool is reused (a client per call costs a
    TLS handshake each)."""
    return client.ApiClient()


def batch() -> client.BatchV1Api:
    return client.BatchV1Api(api_client())


def core() -> client.CoreV1Api:
    return client.CoreV1Api(api_client())


def custom_objects() -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client())


def call(
    request: Callable[[], T], what: str, *, absent_ok: bool = False, conflict_ok: bool = False
) -> T | None:
    """``request()`` under the module's policy; ``what`` names it in errors.

    Returns:
        What ``request()`` returned; ``None`` for a 404 with ``absent_ok`` or a 409 with
        ``conflict_ok``.

    Raises:
        ApiException: any other client error.
        RuntimeError: the API server did not answer through every retry.
    """
    for attempt in range(API_RETRIES):
        try:
            return request()
        except ApiException as error:
            if (error.status == 404 and absent_ok) or (error.status == 409 and conflict_ok):
                return None
            if error.status is not None and error.status < 500 and error.status != 429:
                raise
            failure: Exception = error
        except (HTTPError, OSError) as error:
            failure = error
        time.sleep(min(30.0, 0.5 * 2**attempt))
    raise RuntimeError(f"{what}: the API server did not answer ({failure})")


def create_if_absent(manifest: dict[str, Any]) -> bool:
    """Create ``manifest`` in its namespace; ``False`` when an object of that name already
    exists (made by an earlier operator or controller, or by a retried create that
    landed)."""
    namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
    kind = manifest["kind"]
    if kind == "Job":
        create = functools.partial(batch().create_namespaced_job, namespace, manifest)
    elif kind == "ServiceAccount":
        create = functools.partial(core().create_namespaced_service_account, namespace, manifest)
    elif kind in ("Role", "RoleBinding"):
        rbac = client.RbacAuthorizationV1Api(api_client())
        method = (
            rbac.create_namespaced_role if kind == "Role" else rbac.create_namespaced_role_binding
        )
        create = functools.partial(method, namespace, manifest)
    else:
        raise ValueError(f"no {kind} objects are made for a run")
    return call(create, f"creating {kind} {namespace}/{name}", conflict_ok=True) is not None
