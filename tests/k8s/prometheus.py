"""A real Prometheus server on 127.0.0.1 for tests: Debian's binary, unpacked by
``tools/prometheus/install.sh`` into ``~/.cache/paretomerge-test/prometheus`` (once per
machine, seconds), run on a free port with its data under a tmp dir and stopped by PID.

Use::

    binary = prometheus.installed()  # or pytest.skip(prometheus.why_uninstallable())
    with PrometheusServer(binary, tmp_path / "prometheus", ["127.0.0.1:9090"]) as server:
        server.query("up")
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from .control_plane import REPO_ROOT, free_port, wait_until

INSTALL = REPO_ROOT / "tools" / "prometheus" / "install.sh"


def default_dir() -> Path:
    """``$PROMETHEUS_DIR``, else ``~/.cache/paretomerge-test/prometheus``."""
    default = Path.home() / ".cache" / "paretomerge-test" / "prometheus"
    return Path(os.environ.get("PROMETHEUS_DIR", default))


def why_uninstallable() -> str | None:
    """Why ``install.sh`` cannot get Prometheus on this machine, or None."""
    return None if shutil.which("apt-get") else "no apt-get: Prometheus comes from Debian"


def installed() -> Path:
    """The ``prometheus`` binary, unpacked first when missing; ``RuntimeError`` with the
    script's output when that fails."""
    directory = default_dir()
    result = subprocess.run(
        ["bash", str(INSTALL)],
        env={**os.environ, "PROMETHEUS_DIR": str(directory)},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"tools/prometheus/install.sh failed:\n{result.stdout}{result.stderr}")
    return directory / "prometheus"


class PrometheusServer:
    """Prometheus scraping ``targets`` (``host:port``, path ``/metrics``) every
    ``interval``, listening on a free port of 127.0.0.1."""

    def __init__(self, binary: Path, workdir: Path, targets: list[str], interval: str = "1s"):
        self.binary = binary
        self.workdir = workdir
        self.targets = targets
        self.interval = interval
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> PrometheusServer:
        """Write the scrape configuration, start the server, return once it is ready."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {"scrape_interval": self.interval, "scrape_timeout": self.interval},
            "scrape_configs": [
                {"job_name": "paretomerge", "static_configs": [{"targets": self.targets}]}
            ],
        }
        config_file = self.workdir / "prometheus.yml"
        config_file.write_text(json.dumps(config))  # JSON is YAML
        log = (self.workdir / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                str(self.binary),
                f"--config.file={config_file}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        try:
            wait_until(self._ready, f"Prometheus on port {self.port}", timeout=60)
        except TimeoutError:
            self.stop()
            raise
        return self

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            log = (self.workdir / "prometheus.log").read_text()[-3000:]
            raise RuntimeError(f"Prometheus exited ({self.process.returncode}):\n{log}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server by its PID (SIGTERM, then SIGKILL after 10 s)."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def api(self, path: str, **query: str) -> Any:
        """``data`` of an HTTP API answer (``/api/v1/...``); ``RuntimeError`` with
        Prometheus's error message when it refuses (a malformed query, say)."""
        url = f"{self.url}{path}?{urllib.parse.urlencode(query)}"
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                answer = json.load(response)
        except urllib.error.HTTPError as error:
            answer = json.load(error)
        if answer.get("status") != "success":
            raise RuntimeError(f"{path} {query}: {answer.get('errorType')}: {answer.get('error')}")
        return answer["data"]

    def query(self, expression: str) -> list[dict]:
        """The instant vector (or scalar as one sample) of ``expression`` now."""
        data = self.api("/api/v1/query", query=expression)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def value(self, expression: str) -> float | None:
        """The single sample of ``expression`` now, or None when it has none."""
        result = self.query(expression)
        if len(result) > 1:
            raise ValueError(f"{expression} has {len(result)} series")
        return float(result[0]["value"][1]) if result else None

    def metric_names(self) -> set[str]:
        """Every metric name Prometheus has stored."""
        return set(self.api("/api/v1/label/__name__/values"))

    def targets_health(self) -> list[str]:
        """The health of each active target (``up``, ``down``, ``unknown``)."""
        return [t["health"] for t in self.api("/api/v1/targets")["activeTargets"]]
