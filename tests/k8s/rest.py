"""A minimal JSON client of the Kubernetes REST API, on the standard library only, so the
node simulator does not depend on how a given ``kubernetes`` client version types bodies."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

Obj = dict[str, Any]


class KubeApiError(Exception):
    """An API call answered with an HTTP error; ``status`` is its code (404, 409, ...)."""

    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status


class KubeApi:
    """Requests to one API server with a bearer token, verified against the cluster CA."""

    def __init__(self, url: str, ca_file: Path, token: str):
        self.url = url.rstrip("/")
        self.token = token
        self.context = ssl.create_default_context(cafile=str(ca_file))

    def request(
        self,
        method: str,
        path: str,
        body: Obj | None = None,
        *,
        query: Obj | None = None,
        content_type: str = "application/json",
        timeout: float = 30,
    ) -> Obj:
        """Send ``body`` as JSON to ``path`` (``/api/v1/...``) and return the JSON answer;
        ``KubeApiError`` on an HTTP error."""
        with self._open(method, path, body, query, content_type, timeout) as response:
            return json.loads(response.read() or b"{}")

    def watch(
        self, path: str, resource_version: str, timeout_seconds: int, query: Obj | None = None
    ) -> Iterator[Obj]:
        """The watch events (``{"type", "object"}``) on the collection at ``path`` (with
        ``query``, e.g. a field selector) from ``resource_version``, until the server ends the
        watch after ``timeout_seconds``."""
        query = {
            **(query or {}),
            "watch": "1",
            "resourceVersion": resource_version,
            "timeoutSeconds": str(timeout_seconds),
        }
        with self._open(
            "GET", path, None, query, "application/json", timeout_seconds + 10
        ) as response:
            for line in response:
                if line.strip():
                    yield json.loads(line)

    def _open(self, method, path, body, query, content_type, timeout):
        url = self.url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        request = urllib.request.Request(
            url,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": content_type},
        )
        try:
            return urllib.request.urlopen(request, timeout=timeout, context=self.context)
        except urllib.error.HTTPError as error:
            raise KubeApiError(error.code, error.read().decode(errors="replace")) from None
