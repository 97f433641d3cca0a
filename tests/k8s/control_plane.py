"""Build, start and stop the loopback control plane of ``tools/k8s`` from Python."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .rest import KubeApi

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = REPO_ROOT / "tools" / "k8s"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")


class KubectlError(RuntimeError):
    """kubectl exited non-zero; the message holds its command line and stderr."""


def default_bin_dir() -> Path:
    """``$K8S_BIN``, else ``~/.cache/k8s-test/bin`` (the default of ``build.sh``)."""
    return Path(os.environ.get("K8S_BIN", Path.home() / ".cache" / "k8s-test" / "bin"))


def is_built(bin_dir: Path) -> bool:
    """Whether every binary the control plane and the tests need is in ``bin_dir``."""
    return all(os.access(bin_dir / name, os.X_OK) for name in BINARIES)


def why_unbuildable() -> str | None:
    """The reason ``build.sh`` cannot run on this machine (no apt, no root), or None."""
    if shutil.which("apt-get") is None:
        return "no apt-get: the control plane is built from Debian packages"
    if os.geteuid() == 0:
        return None
    sudo = ["sudo", "-n", "true"]
    if shutil.which("sudo") and subprocess.run(sudo, capture_output=True).returncode == 0:
        return None
    return "apt-get needs root or password-less sudo"


def build(bin_dir: Path, log_file: Path) -> None:
    """Run ``build.sh`` into ``bin_dir`` (several minutes the first time), its output to
    ``log_file``; raise ``RuntimeError`` with the log's tail when it fails."""
    with log_file.open("w") as log:
        result = subprocess.run(
            ["bash", str(SCRIPTS / "build.sh")],
            env={**os.environ, "K8S_BIN": str(bin_dir)},
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if result.returncode != 0:
        tail = log_file.read_text()[-3000:]
        raise RuntimeError(f"tools/k8s/build.sh failed ({result.returncode}):\n{tail}")


def wait_until(check: Callable[[], object], what: str, timeout: float = 60, every: float = 0.3):
    """Poll ``check`` until it returns something true and return that; ``TimeoutError``
    naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (the kernel's choice)."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that are free now (the kernel's choice;
    all held open while choosing, so none comes twice)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


@dataclass(frozen=True)
class ControlPlane:
    """A running control plane: where it lives and how to talk to it as the admin."""

    directory: Path
    bin_dir: Path
    api_port: int

    @property
    def api_url(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def kubeconfig(self) -> Path:
        """Kubeconfig of the admin user (group ``system:masters``), namespace ``default``."""
        return self.directory / "kubeconfig"

    @property
    def ca_file(self) -> Path:
        """The cluster CA, which signed the API server's certificate."""
        return self.directory / "pki" / "ca.crt"

    @property
    def admin_token(self) -> str:
        return (self.directory / "admin-token").read_text().strip()

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run the built kubectl as the admin; on failure when ``check``, raise
        ``KubectlError`` carrying kubectl's stderr."""
        result = subprocess.run(
            [str(self.bin_dir / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise KubectlError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result

    def apply(self, *objects: dict) -> None:
        """``kubectl apply`` the given manifests (dicts)."""
        self.kubectl(
            "apply",
            "-f",
            "-",
            stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}),
        )

    def get(self, *args: str) -> dict:
        """``kubectl get ARGS -o json``, parsed; ``{}`` when nothing matches (no object of
        that name, or an empty list)."""
        result = self.kubectl("get", *args, "-o", "json", "--ignore-not-found")
        return json.loads(result.stdout) if result.stdout.strip() else {}

    def wait_for_service_account(self, namespace: str, name: str = "default") -> None:
        """Wait until the controller-manager has made the ServiceAccount and its token
        Secret: until then the API server refuses Pods that run as it."""
        wait_until(
            lambda: self.get("serviceaccount", name, "-n", namespace).get("secrets"),
            f"the token of ServiceAccount {namespace}/{name}",
        )

    def rest(self) -> KubeApi:
        """A ``KubeApi`` (standard-library REST client) for the admin."""
        return KubeApi(self.api_url, self.ca_file, self.admin_token)

    def api_client(self):
        """A new ``kubernetes.client.ApiClient`` for the admin."""
        from kubernetes import client

        configuration = client.Configuration()
        configuration.host = self.api_url
        configuration.ssl_ca_cert = str(self.ca_file)
        configuration.api_key = {"authorization": self.admin_token}
        configuration.api_key_prefix = {"authorization": "Bearer"}
        return client.ApiClient(configuration)

    def restart(self, *names: str, down_seconds: float = 0.0) -> None:
        """Stop the named processes (in the order given, e.g. ``"kube-apiserver", "etcd"``),
        leave them down ``down_seconds``, start them again in reverse order with the same
        command lines (same ports, certificates and etcd data directory: its tmpfs data
        survives), and return once the API server is ready again. PIDs are recorded
        again, so ``stop`` still ends them."""
        commands = {}
        for name in names:
            pid = int((self.directory / "pids" / f"{name}.pid").read_text())
            commands[name] = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
            _end_process(pid)
        time.sleep(down_seconds)
        for name in reversed(names):
            with (self.directory / "logs" / f"{name}.log").open("ab") as log:
                process = subprocess.Popen(
                    commands[name], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            (self.directory / "pids" / f"{name}.pid").write_text(f"{process.pid}\n")
        wait_until(
            lambda: self.kubectl("get", "--raw", "/readyz", check=False).returncode == 0,
            "the API server to be ready again",
            timeout=120,
        )

    def stop(self) -> None:
        """Stop every process ``up.sh`` started, by its recorded PID."""
        subprocess.run(
            ["bash", str(SCRIPTS / "down.sh")],
            env={**os.environ, "KT_DIR": str(self.directory)},
            capture_output=True,
            check=False,
        )


def _end_process(pid: int, grace_seconds: float = 15.0) -> None:
    """SIGTERM ``pid``, SIGKILL it after ``grace_seconds``; return once it has exited
    (reaped when it is a child of this process, a zombie counting as exited)."""

    def exited() -> bool:
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        return state == "Z"

    for sig, timeout in ((signal.SIGTERM, grace_seconds), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        with contextlib.suppress(TimeoutError):
            wait_until(exited, f"process {pid} to exit", timeout=timeout, every=0.1)
            return
    raise RuntimeError(f"process {pid} did not exit")


def start(directory: Path, bin_dir: Path) -> ControlPlane:
    """Start etcd, kube-apiserver, controller-manager and scheduler on free loopback ports
    with their state under ``directory``; return once the API serves and the default
    ServiceAccount has its token. Raise ``RuntimeError`` (with ``up.sh``'s output) on failure,
    after stopping whatever had started."""
    api_port, etcd_port, etcd_peer_port = free_ports(3)
    plane = ControlPlane(directory=directory, bin_dir=bin_dir, api_port=api_port)
    env = {
        **os.environ,
        "K8S_BIN": str(bin_dir),
        "KT_DIR": str(directory),
        "API_PORT": str(api_port),
        "ETCD_PORT": str(etcd_port),
        "ETCD_PEER_PORT": str(etcd_peer_port),
    }
    result = subprocess.run(
        ["bash", str(SCRIPTS / "up.sh")], env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        plane.stop()
        raise RuntimeError(f"tools/k8s/up.sh failed:\n{result.stdout}{result.stderr}")
    return plane
