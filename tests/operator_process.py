"""``paretomerge-operator --standalone`` as a process on the test control plane, and
what the operator, faults and load tests ask of the runs it drives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from k8s.control_plane import ControlPlane, free_port, wait_until
from k8s.operator_process import healthy

from paretomerge.k8s.constants import CRD_NAME

CRD_FILE = Path(__file__).parent.parent / "crds" / "paretomergeruns.paretomerge.io.yaml"


def install_crd(cluster: ControlPlane) -> None:
    """Apply the ParetoMergeRun CRD and wait until the API serves it."""
    cluster.kubectl("apply", "-f", str(CRD_FILE))
    cluster.kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}")


class OperatorProcess:
    """The operator watching ``namespaces`` (all when empty), its output in ``log_file``;
    ``env`` adds environment variables (operator settings). ``start`` returns once its
    liveness endpoint answers; ``stop`` ends it by PID (SIGTERM)."""

    def __init__(
        self,
        cluster: ControlPlane,
        log_file: Path,
        namespaces: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ):
        self.cluster = cluster
        self.log_file = log_file
        self.namespaces = namespaces
        self.env = env or {}
        self.process: subprocess.Popen | None = None

    def start(self) -> OperatorProcess:
        health = free_port()
        arguments = [str(Path(sys.executable).parent / "paretomerge-operator"), "--standalone"]
        for namespace in self.namespaces:
            arguments += ["--namespace", namespace]
        arguments += ["--liveness", f"http://127.0.0.1:{health}/healthz", "--metrics-port", "0"]
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                arguments,
                env={**os.environ, **self.env, "KUBECONFIG": str(self.cluster.kubeconfig)},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(lambda: healthy(health), "the operator's liveness endpoint", timeout=60)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, characters: int = 6000) -> str:
        return self.log_file.read_text(errors="replace")[-characters:]


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
