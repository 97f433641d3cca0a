"""``paretomerge-operator`` as a local process, as a test runs it out of cluster, and what
the tests ask of the runs it drives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from paretomerge.k8s.constants import CRD_NAME

from .control_plane import ControlPlane, free_port, wait_until

CRD_FILE = Path(__file__).parent.parent.parent / "crds" / f"{CRD_NAME}.yaml"


def healthy(port: int) -> bool:
    """Whether the operator's liveness endpoint on 127.0.0.1:``port`` answers 200."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


class OperatorProcess:
    """``paretomerge-operator ARGS`` of this environment with ``env`` added to ours, its
    output appended to ``log_file``. ``start`` returns once its liveness endpoint
    (``--liveness`` on ``health_port``, among ``args``) answers; ``stop`` ends its process
    group (SIGTERM, then SIGKILL). As a context manager it starts, stops, and then prints
    the log's tail (pytest shows it when the test fails)."""

    def __init__(self, args: list[str], env: dict[str, str], health_port: int, log_file: Path):
        self.args = args
        self.env = env
        self.health_port = health_port
        self.log_file = log_file
        self.process: subprocess.Popen | None = None

    @classmethod
    def standalone(
        cls,
        cluster: ControlPlane,
        log_file: Path,
        namespaces: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> OperatorProcess:
        """``--standalone`` on the test control plane, watching ``namespaces`` (every
        namespace when empty), without metrics; ``env`` adds operator settings."""
        health = free_port()
        args = ["--standalone"]
        for namespace in namespaces:
            args += ["--namespace", namespace]
        args += ["--liveness", f"http://127.0.0.1:{health}/healthz", "--metrics-port", "0"]
        return cls(args, {**(env or {}), "KUBECONFIG": str(cluster.kubeconfig)}, health, log_file)

    def start(self) -> OperatorProcess:
        command = [str(Path(sys.executable).parent / "paretomerge-operator"), *self.args]
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process = self.process

        def started() -> bool:
            if process.poll() is not None:
                raise RuntimeError(
                    f"the operator exited ({process.returncode}): see {self.log_file}"
                )
            return healthy(self.health_port)

        try:
            wait_until(started, "the operator's liveness endpoint", timeout=90)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, characters: int = 6000) -> str:
        return self.log_file.read_text(errors="replace")[-characters:]

    def __enter__(self) -> OperatorProcess:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
        print(self.log_tail())


def install_crd(cluster: ControlPlane) -> None:
    """Apply the ParetoMergeRun CRD and wait until the API serves it."""
    cluster.kubectl("apply", "-f", str(CRD_FILE))
    cluster.kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}")


def run_status(cluster: ControlPlane, namespace: str, name: str) -> dict:
    return cluster.get("pmr", name, "-n", namespace).get("status", {})


def wait_for_phase(cluster: ControlPlane, namespace: str, name: str, timeout: float) -> dict:
    """Wait until the run is Succeeded or Failed; its status."""
    wait_until(
        lambda: run_status(cluster, namespace, name).get("phase") in ("Succeeded", "Failed"),
        f"run {namespace}/{name} to finish",
        timeout=timeout,
        every=1,
    )
    return run_status(cluster, namespace, name)
