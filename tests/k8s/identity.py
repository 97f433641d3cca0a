"""Acting as a ServiceAccount from outside the cluster: its token (TokenRequest API), a
kubeconfig holding it, and a REST client with it."""

from __future__ import annotations

import json
from pathlib import Path

from .control_plane import ControlPlane
from .rest import KubeApi


def service_account_token(
    cluster: ControlPlane, namespace: str, name: str, seconds: int = 3600
) -> str:
    """A token of ServiceAccount ``namespace/name``, valid ``seconds``, asked for as the admin."""
    request = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": seconds},
    }
    path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token"
    return cluster.rest().request("POST", path, request)["status"]["token"]


def token_kubeconfig(cluster: ControlPlane, token: str, namespace: str) -> dict:
    """A kubeconfig for ``cluster`` that authenticates with ``token``, in ``namespace``."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "cluster",
                "cluster": {
                    "server": cluster.api_url,
                    "certificate-authority": str(cluster.ca_file),
                },
            }
        ],
        "users": [{"name": "user", "user": {"token": token}}],
        "contexts": [
            {
                "name": "user",
                "context": {"cluster": "cluster", "user": "user", "namespace": namespace},
            }
        ],
        "current-context": "user",
    }


def write_token_kubeconfig(cluster: ControlPlane, token: str, namespace: str, path: Path) -> Path:
    """``token_kubeconfig`` written to ``path``; returns ``path``."""
    path.write_text(json.dumps(token_kubeconfig(cluster, token, namespace), indent=1))
    return path


def token_api(cluster: ControlPlane, token: str) -> KubeApi:
    """A REST client of ``cluster`` that authenticates with ``token``."""
    return KubeApi(cluster.api_url, cluster.ca_file, token)
