"""A Node that plays the kubelet: Pods bound to it run as local processes.

The control plane of ``tools/k8s`` has no kubelet and no container runtime. A
``NodeSimulator`` registers a Node with the capacity it is given (cpu, memory, pods and
simulated GPUs, so the real scheduler queues Pods on GPUs), and runs every Pod the
scheduler binds to it:

- init containers one after another, then the main containers side by side, each as
  ``command + args`` in its own process group (the image is ignored; a container without
  ``command`` cannot run here: the Pod fails, that container waiting with reason
  ``NoCommand``);
- restartPolicy ``Never`` fails the Pod on a failed container; ``OnFailure`` and ``Always``
  restart it in place, counting ``restartCount``; ``$(VAR)`` in ``command`` and ``args``
  expands the container's declared ``env`` (``$$`` is a literal ``$``, as in Kubernetes);
- environment: the simulator's own environment without ``KUBECONFIG``, then ``HOSTNAME``
  (the Pod's name), then the container's ``env`` (literal values with ``$(VAR)`` expansion,
  ``secretKeyRef``, ``configMapKeyRef``, ``fieldRef`` of ``FIELD_PATHS``);
- volumes as local directories: a PersistentVolumeClaim ``X`` is ``claims[X]`` (default
  ``<workdir>/claims/X``, shared by all Pods like a ReadWriteMany volume), ``hostPath`` is
  that path, ``emptyDir`` (any medium) is a fresh directory per Pod, ``secret``,
  ``configMap``, ``downwardAPI`` and ``projected`` volumes are written as files;
- a container that mounts a ServiceAccount token (the legacy token Secret at
  ``SERVICE_ACCOUNT_MOUNT``, or a projected ``serviceAccountToken``) gets ``KUBECONFIG``
  pointing at a kubeconfig with that token, so code that loads a kubeconfig when one is
  set talks to the API server as the Pod's ServiceAccount, under real RBAC.

Path rule: a container's processes see local paths, not its mount paths. Every mount path
of the container and its ``terminationMessagePath`` are replaced by their local paths
wherever they occur as a whole path prefix (``/data``, ``/data/x``, not ``/database``) in
``command``, ``args``, literal ``env`` values and ``workingDir``; the longest mount path
wins. Paths a program builds at run time from other inputs are not rewritten.

Status: the Pod goes Pending -> Running -> Succeeded/Failed with container statuses
(``state.terminated`` with ``exitCode``, ``reason``, ``message``, ``startedAt``,
``finishedAt``). The message is the container's termination message file (at most
``MAX_MESSAGE_BYTES``); with ``terminationMessagePolicy: FallbackToLogsOnError`` and an
empty file, a failed container's message is its log tail. ``activeDeadlineSeconds`` kills
the Pod and fails it with reason ``DeadlineExceeded``. A Pod that is deleted (or gets a
``deletionTimestamp``) has its process groups killed (SIGTERM, SIGKILL after
``KILL_GRACE_SECONDS``) and is then removed with ``gracePeriodSeconds=0``. Unlike a
kubelet, which waits and retries, the simulator fails a Pod it cannot set up (a missing
Secret or key, a volume type it does not know) at once, with reason ``NodeSimulatorError``.

``kill_container`` ends a running container's processes with a signal (a crash, an OOM
kill), as faults tests need.

Not simulated: images, resource limits at run time (requests and limits only count for
scheduling), which GPU a Pod gets (no ``CUDA_VISIBLE_DEVICES``), probes, ports and
Services, securityContext, read-only mounts, node heartbeats.

Use::

    with NodeSimulator(cluster, tmp_path / "node", gpus=1, claims={"models": models_dir}) as node:
        node.create_claim("ns", "models")  # a bound PVC, so the scheduler admits its Pods
        ...
        node.logs("ns", "pod-name", "container-name")
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .control_plane import ControlPlane, wait_until
from .identity import write_token_kubeconfig
from .rest import KubeApi, KubeApiError

SERVICE_ACCOUNT_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
DEFAULT_TERMINATION_MESSAGE_PATH = "/dev/termination-log"
MAX_MESSAGE_BYTES = 4096
# The kubelet's fallback message: the last 80 lines of the log, at most 2 KiB.
FALLBACK_LOG_LINES = 80
FALLBACK_LOG_BYTES = 2048
KILL_GRACE_SECONDS = 3.0
RESTART_BACKOFF_SECONDS = 1.0
# How long a status write is retried while the API server cannot be reached.
STATUS_RETRY_SECONDS = 60.0
# Server-side timeout of each watch; also bounds how long ``stop`` waits for the watcher.
WATCH_SECONDS = 2
FIELD_PATHS = {
    "metadata.name": lambda pod: pod["metadata"]["name"],
    "metadata.namespace": lambda pod: pod["metadata"]["namespace"],
    "metadata.uid": lambda pod: pod["metadata"]["uid"],
    "spec.nodeName": lambda pod: pod["spec"]["nodeName"],
    "spec.serviceAccountName": lambda pod: pod["spec"].get("serviceAccountName", "default"),
    "status.hostIP": lambda pod: "127.0.0.1",
    "status.podIP": lambda pod: "127.0.0.1",
}
Obj = dict[str, Any]


def now() -> str:
    """The current time as Kubernetes writes it (RFC 3339, seconds, UTC)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_patch(api: KubeApi, path: str, body: Obj) -> None:
    """PATCH ``path`` with a JSON merge patch (lists in ``body`` replace whole lists)."""
    api.request("PATCH", path, body, content_type="application/merge-patch+json")


def decode_base64_values(data: Mapping[str, str] | None) -> dict[str, bytes]:
    """The values of a Secret's ``data`` (or a ConfigMap's ``binaryData``), decoded."""
    return {key: base64.b64decode(value) for key, value in (data or {}).items()}


def configmap_values(configmap: Obj) -> dict[str, bytes]:
    """Every key of a ConfigMap, ``data`` and ``binaryData``, as bytes."""
    values = {key: value.encode() for key, value in (configmap.get("data") or {}).items()}
    return values | decode_base64_values(configmap.get("binaryData"))


def write_key_files(directory: Path, values: Mapping[str, bytes], items: list | None) -> None:
    """Write ``values`` as files into ``directory``: each key as its own file name, or only
    the ``items`` (``key`` -> ``path``) when given, as the kubelet does."""
    selected = {item["path"]: values[item["key"]] for item in items} if items else values
    for relative, content in selected.items():
        target = directory / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)


def mount_path_rewriter(local_paths: Mapping[str, Path]):
    """A function that replaces each whole-path occurrence of a container path in a string
    with its local path, longest container path first (see the module's path rule)."""
    if not local_paths:
        return lambda text: text
    by_length = sorted(local_paths, key=len, reverse=True)
    pattern = re.compile(
        r"(?<![\w.\-/])(" + "|".join(re.escape(p.rstrip("/")) for p in by_length) + r")(?![\w.\-])"
    )
    stripped = {p.rstrip("/"): str(local) for p, local in local_paths.items()}
    return lambda text: pattern.sub(lambda match: stripped[match.group(1)], text)


def expand_references(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: defined variables are replaced, ``$$`` escapes,
    undefined references stay as written."""
    return re.sub(
        r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)",
        lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)),
        text,
    )


def kill_process_group(process: subprocess.Popen) -> None:
    """SIGTERM the process's group, SIGKILL it after ``KILL_GRACE_SECONDS``."""
    for sig, wait in ((signal.SIGTERM, KILL_GRACE_SECONDS), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


class NodeSimulator:
    """A simulated Node and kubelet on a ``ControlPlane`` (see the module docstring).

    Use as a context manager, or call ``start()`` and ``stop()``.
    """

    def __init__(
        self,
        cluster: ControlPlane,
        workdir: Path,
        *,
        name: str = "sim-node",
        gpus: int = 0,
        gpu_resource: str = "nvidia.com/gpu",
        cpu: str = "16",
        memory: str = "64Gi",
        max_pods: int = 110,
        claims: Mapping[str, Path] | None = None,
    ):
        self.cluster = cluster
        self.workdir = Path(workdir)
        self.name = name
        self.capacity = {"cpu": cpu, "memory": memory, "pods": str(max_pods)}
        if gpus:
            self.capacity[gpu_resource] = str(gpus)
        self.claims = {claim: Path(path) for claim, path in (claims or {}).items()}
        self.api = cluster.rest()
        self._runners: dict[str, PodRunner] = {}
        self._stopping = threading.Event()
        self._watcher = threading.Thread(target=self._watch_pods, name=f"{name}-watch", daemon=True)

    def __enter__(self) -> NodeSimulator:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> NodeSimulator:
        """Register the Node as Ready and schedulable, then start running its Pods."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._register_node()
        self._watcher.start()
        return self

    def stop(self) -> None:
        """Stop watching, kill every process of every Pod, and delete the Node. The Pods
        are left as they are (the pod garbage collector removes them once the Node is gone)."""
        self._stopping.set()
        self._watcher.join()
        for runner in self._runners.values():
            runner.terminate("stopped")
        for runner in self._runners.values():
            runner.join()
        with contextlib.suppress(KubeApiError):
            self.api.request("DELETE", f"/api/v1/nodes/{self.name}")

    def claim_dir(self, claim: str) -> Path:
        """The local directory of PersistentVolumeClaim ``claim`` (created on first use)."""
        directory = self.claims.get(claim, self.workdir / "claims" / claim)
        directory.mkdir(parents=True, exist_ok=True)
        return directory

    def create_claim(self, namespace: str, claim: str, size: str = "1Gi") -> Path:
        """Create PersistentVolumeClaim ``claim`` bound to a hostPath PersistentVolume on
        ``claim_dir(claim)`` (the scheduler holds back Pods with unbound claims); wait until
        bound and return the directory."""
        directory = self.claim_dir(claim)
        volume_name = f"{namespace}-{claim}"
        access = ["ReadWriteMany"]
        volume = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": volume_name},
            "spec": {
                "capacity": {"storage": size},
                "accessModes": access,
                "storageClassName": "",
                "hostPath": {"path": str(directory)},
                "claimRef": {"namespace": namespace, "name": claim},
            },
        }
        claim_object = {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": claim, "namespace": namespace},
            "spec": {
                "accessModes": access,
                "storageClassName": "",
                "volumeName": volume_name,
                "resources": {"requests": {"storage": size}},
            },
        }
        self.cluster.apply(volume, claim_object)
        wait_until(
            lambda: (
                self.cluster.get("pvc", claim, "-n", namespace)["status"].get("phase") == "Bound"
            ),
            f"claim {namespace}/{claim} to be bound",
        )
        return directory

    def log_path(self, namespace: str, pod: str, container: str) -> Path:
        """The file that collects a container's stdout and stderr, over all its restarts."""
        return self.workdir / "logs" / f"{namespace}_{pod}_{container}.log"

    def logs(self, namespace: str, pod: str, container: str) -> str:
        """What a container has written so far ('' before it started)."""
        path = self.log_path(namespace, pod, container)
        return path.read_text(errors="replace") if path.exists() else ""

    def kill_container(
        self, namespace: str, pod: str, container: str, sig: int = signal.SIGKILL
    ) -> bool:
        """Send ``sig`` to the process group of a running container, as an OOM kill or a
        crash would end it; False when that container has no process now."""
        for runner in list(self._runners.values()):
            if (runner.namespace, runner.pod_name) == (namespace, pod):
                with runner.lock:
                    process = runner.processes.get(container)
                if process is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, sig)
                        return True
        return False

    def running_pods(self) -> list[tuple[str, str]]:
        """``(namespace, name)`` of every Pod whose processes run now."""
        return [
            (runner.namespace, runner.pod_name)
            for runner in list(self._runners.values())
            if runner.processes
        ]

    def _register_node(self) -> None:
        """Create the Node, report it Ready with its capacity, and lift the not-ready taint
        that the API server sets on new Nodes (no node-lifecycle controller runs here)."""
        labels = {"kubernetes.io/hostname": self.name, "kubernetes.io/os": "linux"}
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.name, "labels": labels},
        }
        self.api.request("POST", "/api/v1/nodes", node)
        ready = {
            "type": "Ready",
            "status": "True",
            "reason": "KubeletReady",
            "message": "node simulator",
            "lastHeartbeatTime": now(),
            "lastTransitionTime": now(),
        }
        status = {
            "capacity": self.capacity,
            "allocatable": self.capacity,
            "conditions": [ready],
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": self.name},
            ],
        }
        merge_patch(self.api, f"/api/v1/nodes/{self.name}/status", {"status": status})
        merge_patch(self.api, f"/api/v1/nodes/{self.name}", {"spec": {"taints": None}})

    def _watch_pods(self) -> None:
        """List then watch the Pods bound to this Node until stopped; every listed or
        changed Pod goes through ``_reconcile`` (level-triggered, so no event is lost)."""
        query = {"fieldSelector": f"spec.nodeName={self.name}"}
        while not self._stopping.is_set():
            try:
                listed = self.api.request("GET", "/api/v1/pods", query=query)
                for pod in listed["items"]:
                    self._reconcile(pod)
                version = listed["metadata"]["resourceVersion"]
                for event in self.api.watch("/api/v1/pods", version, WATCH_SECONDS, query):
                    if event["type"] == "ERROR":  # e.g. 410 Gone: list again
                        break
                    self._reconcile(event["object"], deleted=event["type"] == "DELETED")
            except Exception as error:  # the API server may be going away at teardown
                if not self._stopping.is_set():
                    print(f"node simulator {self.name}: watch failed: {error!r}")
                    time.sleep(0.5)

    def _reconcile(self, pod: Obj, *, deleted: bool = False) -> None:
        """Start a runner for a new Pod; kill a deleted one, and confirm a graceful
        deletion (the kubelet's part) by removing the Pod with grace period 0."""
        uid = pod["metadata"]["uid"]
        runner = self._runners.get(uid)
        if deleted or pod["metadata"].get("deletionTimestamp"):
            # A runner that has not finished removes the Pod itself once its processes died.
            handled = runner is not None and runner.terminate("deleted")
            if not handled and not deleted:
                force_delete(self.api, pod)
        elif runner is None and pod.get("status", {}).get("phase") in (None, "Pending"):
            runner = PodRunner(self, pod)
            self._runners[uid] = runner
            runner.start()


def force_delete(api: KubeApi, pod: Obj) -> None:
    """Delete this very Pod (its UID as precondition) with grace period 0; gone is fine."""
    meta = pod["metadata"]
    body = {"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}}
    with contextlib.suppress(KubeApiError):
        api.request("DELETE", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}", body)


class PodRunner(threading.Thread):
    """Runs one Pod's containers as local processes and writes the Pod's status."""

    def __init__(self, node: NodeSimulator, pod: Obj):
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['namespace']}-{meta['name']}", daemon=True)
        self.node = node
        self.pod = pod
        self.namespace = meta["namespace"]
        self.pod_name = meta["name"]
        self.directory = node.workdir / "pods" / f"{self.namespace}_{self.pod_name}_{meta['uid']}"
        self.status_path = f"/api/v1/namespaces/{self.namespace}/pods/{self.pod_name}/status"
        spec = pod["spec"]
        self.restart_policy = spec.get("restartPolicy", "Always")
        self.init_containers = spec.get("initContainers") or []
        self.containers = spec["containers"]
        self.statuses: dict[str, Obj] = {
            c["name"]: self._waiting(c, "PodInitializing" if self.init_containers else None)
            for c in self.init_containers + self.containers
        }
        self.processes: dict[str, subprocess.Popen] = {}
        self.volumes: dict[str, Path] = {}
        self.kubeconfig: Path | None = None
        self.ended_by: str | None = None  # "deleted", "deadline" or "stopped"
        self.finished = False  # the final status is written (or the Pod removed)
        self.phase = "Pending"
        self.lock = threading.Lock()

    def terminate(self, why: str) -> bool:
        """End the Pod for ``why`` ("deleted", "deadline", "stopped"): kill its processes
        now; ``run`` then finishes the Pod accordingly. False when the Pod had finished."""
        with self.lock:
            if self.finished:
                return False
            if self.ended_by is None:
                self.ended_by = why
            processes = list(self.processes.values())
        for process in processes:
            kill_process_group(process)
        return True

    def run(self) -> None:
        start_time = time.monotonic()
        deadline = self.pod["spec"].get("activeDeadlineSeconds")
        timer = threading.Timer(deadline, self.terminate, ("deadline",)) if deadline else None
        try:
            self._write_status("Pending", startTime=now())
            if timer:
                timer.start()
            self._prepare_volumes()
            self._finish(self._run_init_containers() and self._run_main_containers())
        except Exception as error:  # a Pod that cannot be set up fails at once
            self._log(f"failed: {error!r}")
            self._finish(False, error=repr(error))
        finally:
            if timer:
                timer.cancel()
            self._log(f"ended after {time.monotonic() - start_time:.1f} s")

    def _log(self, message: str) -> None:
        path = self.directory / "simulator.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as log:
            log.write(f"{now()} {message}\n")

    def _finish(self, succeeded: bool, error: str | None = None) -> None:
        """Write the final status, or for a deleted Pod remove it."""
        with self.lock:
            self.finished = True
            ended_by = self.ended_by
        if ended_by == "deleted":
            force_delete(self.node.api, self.pod)
        elif ended_by == "deadline":
            self._write_status(
                "Failed",
                reason="DeadlineExceeded",
                message="Pod was active on the node longer than the specified deadline",
            )
        elif ended_by is None and error:
            self._write_status("Failed", reason="NodeSimulatorError", message=error)
        elif ended_by is None:
            self._write_status("Succeeded" if succeeded else "Failed")

    # ---- containers ----

    def _run_init_containers(self) -> bool:
        """Run the init containers in order; False as soon as one fails for good."""
        return all(self._run_until_done(container) for container in self.init_containers)

    def _run_main_containers(self) -> bool:
        """Run the main containers side by side; True when every one exits 0."""
        results: dict[str, bool] = {}
        threads = [
            threading.Thread(
                target=lambda c=c: results.__setitem__(c["name"], self._run_until_done(c))
            )
            for c in self.containers
        ]
        for thread in threads:
            thread.start()
        self._write_status("Running")
        for thread in threads:
            thread.join()
        return all(results.get(c["name"], False) for c in self.containers)

    def _run_until_done(self, container: Obj) -> bool:
        """Run one container, restarting it as the restart policy says; True when its last
        run exited 0, False when it failed for good or the Pod was ended."""
        while self.ended_by is None:
            exit_code = self._run_once(container)
            if exit_code is None:
                return False
            restart = self.restart_policy == "Always" or (
                self.restart_policy == "OnFailure" and exit_code != 0
            )
            if not restart or self.ended_by is not None:
                return exit_code == 0
            status = self.statuses[container["name"]]
            status["lastState"] = {"terminated": status["state"]["terminated"]}
            status["restartCount"] += 1
            time.sleep(RESTART_BACKOFF_SECONDS)
        return False

    def _run_once(self, container: Obj) -> int | None:
        """Run the container's process to its end and record it; its exit code as a
        container runtime reports it (128 + signal when killed), None if it cannot run."""
        name = container["name"]
        if not container.get("command"):
            self.statuses[name] = self._waiting(container, "NoCommand")
            self._write_status(None)
            return None
        message_file = self.directory / "termination" / name
        message_file.parent.mkdir(parents=True, exist_ok=True)
        message_file.write_bytes(b"")
        rewrite = mount_path_rewriter(self._local_paths(container, message_file))
        declared = self._declared_env(container, rewrite)
        words = container["command"] + (container.get("args") or [])
        argv = [rewrite(expand_references(word, declared)) for word in words]
        log_path = self.node.log_path(self.namespace, self.pod_name, name)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        cwd = rewrite(container["workingDir"]) if container.get("workingDir") else self.directory
        Path(cwd).mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log, self.lock:
            if self.ended_by is not None:
                return None
            process = subprocess.Popen(
                argv,
                cwd=cwd,
                env=self._environment(container, declared),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, killed as a whole
            )
            self.processes[name] = process
        started_at = now()
        self._set_state(name, {"running": {"startedAt": started_at}}, ready=True)
        exit_code = process.wait()
        with contextlib.suppress(ProcessLookupError):  # what it left running, as a runtime would
            os.killpg(process.pid, signal.SIGKILL)
        with self.lock:
            del self.processes[name]
        exit_code = 128 - exit_code if exit_code < 0 else exit_code
        terminated = {
            "exitCode": exit_code,
            "reason": "Completed" if exit_code == 0 else "Error",
            "startedAt": started_at,
            "finishedAt": now(),
            "containerID": f"sim://{process.pid}",
        }
        message = self._termination_message(container, message_file, log_path, exit_code)
        if message:
            terminated["message"] = message
        self._set_state(name, {"terminated": terminated}, ready=False)
        return exit_code

    def _termination_message(
        self, container: Obj, message_file: Path, log_path: Path, exit_code: int
    ) -> str:
        """The termination message file's content (at most ``MAX_MESSAGE_BYTES``), or for
        ``FallbackToLogsOnError`` and a failed container with an empty file, the log tail."""
        message = message_file.read_bytes()[:MAX_MESSAGE_BYTES]
        fallback = container.get("terminationMessagePolicy") == "FallbackToLogsOnError"
        if not message and fallback and exit_code != 0:
            lines = log_path.read_bytes().splitlines(keepends=True)[-FALLBACK_LOG_LINES:]
            message = b"".join(lines)[-FALLBACK_LOG_BYTES:]
        return message.decode(errors="replace")

    def _declared_env(self, container: Obj, rewrite) -> dict[str, str]:
        """The container's ``env``, resolved in order: literal values ``$(VAR)``-expanded
        with the variables before them, mount paths rewritten."""
        declared: dict[str, str] = {}
        for var in container.get("env") or []:
            if "valueFrom" in var:
                value = self._value_from(var["valueFrom"])
            else:
                value = rewrite(expand_references(var.get("value", ""), declared))
            if value is not None:
                declared[var["name"]] = value
        return declared

    def _environment(self, container: Obj, declared: Mapping[str, str]) -> dict[str, str]:
        """The process environment (see the module docstring)."""
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        env["HOSTNAME"] = self.pod_name
        env |= declared
        if self.kubeconfig and self._mounts_token(container):
            env["KUBECONFIG"] = str(self.kubeconfig)
        return env

    def _value_from(self, source: Obj) -> str | None:
        """An env value from a Secret, a ConfigMap or the Pod's own fields; None for a
        missing optional key."""
        if "fieldRef" in source:
            return FIELD_PATHS[source["fieldRef"]["fieldPath"]](self.pod)
        if "secretKeyRef" in source:
            ref, values = source["secretKeyRef"], self._secret_values(source["secretKeyRef"])
        else:
            ref, values = (
                source["configMapKeyRef"],
                self._configmap_values(source["configMapKeyRef"]),
            )
        if ref["key"] not in values:
            if ref.get("optional"):
                return None
            raise KeyError(f"key {ref['key']!r} not in {ref['name']!r}")
        return values[ref["key"]].decode()

    def _secret_values(self, ref: Obj) -> dict[str, bytes]:
        secret = self._read("secrets", ref["name"])
        return decode_base64_values(secret.get("data"))

    def _configmap_values(self, ref: Obj) -> dict[str, bytes]:
        return configmap_values(self._read("configmaps", ref["name"]))

    def _read(self, resource: str, name: str) -> Obj:
        """An object of the Pod's namespace, as JSON."""
        return self.node.api.request(
            "GET", f"/api/v1/namespaces/{self.namespace}/{resource}/{name}"
        )

    # ---- volumes ----

    def _prepare_volumes(self) -> None:
        """Give every volume of the Pod a local directory (see the module docstring)."""
        for volume in self.pod["spec"].get("volumes") or []:
            self.volumes[volume["name"]] = self._volume_directory(volume)

    def _volume_directory(self, volume: Obj) -> Path:
        if "persistentVolumeClaim" in volume:
            return self.node.claim_dir(volume["persistentVolumeClaim"]["claimName"])
        if "hostPath" in volume:
            return Path(volume["hostPath"]["path"])
        directory = self.directory / "volumes" / volume["name"]
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        if "secret" in volume:
            source = volume["secret"]
            secret = self._read("secrets", source["secretName"])
            values = decode_base64_values(secret.get("data"))
            write_key_files(directory, values, source.get("items"))
            if secret.get("type") == "kubernetes.io/service-account-token":
                self._write_kubeconfig(values["token"].decode())
        elif "configMap" in volume:
            source = volume["configMap"]
            write_key_files(directory, self._configmap_values(source), source.get("items"))
        elif "downwardAPI" in volume:
            self._write_downward_api(directory, volume["downwardAPI"]["items"])
        elif "projected" in volume:
            for projection in volume["projected"]["sources"]:
                self._write_projection(directory, projection)
        elif "emptyDir" not in volume:
            raise ValueError(f"volume {volume['name']!r}: its type is not simulated")
        return directory

    def _write_projection(self, directory: Path, projection: Obj) -> None:
        """One source of a projected volume: a bound ServiceAccount token (TokenRequest,
        like the kubelet), Secret, ConfigMap or downward API files."""
        if "serviceAccountToken" in projection:
            source = projection["serviceAccountToken"]
            token = self._request_token(source.get("audience"), source.get("expirationSeconds"))
            (directory / source["path"]).write_text(token)
            self._write_kubeconfig(token)
        elif "secret" in projection:
            source = projection["secret"]
            write_key_files(directory, self._secret_values(source), source.get("items"))
        elif "configMap" in projection:
            source = projection["configMap"]
            write_key_files(directory, self._configmap_values(source), source.get("items"))
        elif "downwardAPI" in projection:
            self._write_downward_api(directory, projection["downwardAPI"]["items"])

    def _write_downward_api(self, directory: Path, items: list[Obj]) -> None:
        values = {
            item["path"]: FIELD_PATHS[item["fieldRef"]["fieldPath"]](self.pod).encode()
            for item in items
        }
        write_key_files(directory, values, None)

    def _request_token(self, audience: str | None, expiration_seconds: int | None) -> str:
        """A token of the Pod's ServiceAccount bound to this Pod (TokenRequest API)."""
        spec: Obj = {
            "boundObjectRef": {
                "kind": "Pod",
                "apiVersion": "v1",
                "name": self.pod_name,
                "uid": self.pod["metadata"]["uid"],
            },
            "expirationSeconds": expiration_seconds or 3600,
        }
        if audience:
            spec["audiences"] = [audience]
        account = self.pod["spec"].get("serviceAccountName", "default")
        request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
        path = f"/api/v1/namespaces/{self.namespace}/serviceaccounts/{account}/token"
        return self.node.api.request("POST", path, request)["status"]["token"]

    def _write_kubeconfig(self, token: str) -> None:
        """A kubeconfig for the Pod's processes: this cluster, the ServiceAccount's token,
        the Pod's namespace."""
        self.kubeconfig = write_token_kubeconfig(
            self.node.cluster, token, self.namespace, self.directory / "kubeconfig"
        )

    def _mounts_token(self, container: Obj) -> bool:
        """Whether the container mounts a ServiceAccount token."""
        for mount in container.get("volumeMounts") or []:
            if mount["mountPath"].rstrip("/") == SERVICE_ACCOUNT_MOUNT:
                return True
            volume = next(
                v for v in self.pod["spec"].get("volumes") or [] if v["name"] == mount["name"]
            )
            sources = (volume.get("projected") or {}).get("sources") or []
            if any("serviceAccountToken" in source for source in sources):
                return True
        return False

    def _local_paths(self, container: Obj, message_file: Path) -> dict[str, Path]:
        """Container path -> local path, for the container's mounts and termination message."""
        paths = {
            mount["mountPath"]: self.volumes[mount["name"]] / mount.get("subPath", "")
            for mount in container.get("volumeMounts") or []
        }
        message_path = container.get("terminationMessagePath", DEFAULT_TERMINATION_MESSAGE_PATH)
        paths[message_path] = message_file
        return paths

    # ---- status ----

    @staticmethod
    def _waiting(container: Obj, reason: str | None) -> Obj:
        return {
            "name": container["name"],
            "image": container.get("image", ""),
            "imageID": "",
            "ready": False,
            "restartCount": 0,
            "state": {"waiting": {"reason": reason or "ContainerCreating"}},
        }

    def _set_state(self, name: str, state: Obj, *, ready: bool) -> None:
        self.statuses[name] |= {"state": state, "ready": ready, "started": ready}
        self._write_status(None)

    def _write_status(self, phase: str | None, **extra: str) -> None:
        """Write the Pod's status: ``phase`` (None keeps the last one), conditions and every
        container status; ``extra`` adds fields such as ``reason``. A Pod that is gone by
        now is left alone; an API server that cannot be reached is tried again for up to
        ``STATUS_RETRY_SECONDS``."""
        with self.lock:
            if phase:
                self.phase = phase
            init_names = [c["name"] for c in self.init_containers]
            main = [self.statuses[c["name"]] for c in self.containers]
            status = {
                "phase": self.phase,
                "hostIP": "127.0.0.1",
                "podIP": "127.0.0.1",
                "conditions": self._conditions(main),
                "initContainerStatuses": [self.statuses[n] for n in init_names] or None,
                "containerStatuses": main,
                **extra,
            }
            deadline = time.monotonic() + STATUS_RETRY_SECONDS
            while True:  # like a kubelet, outlast an API server that restarts
                try:
                    merge_patch(self.node.api, self.status_path, {"status": status})
                    return
                except KubeApiError as error:
                    if error.status == 404:
                        return
                    if error.status < 500 or time.monotonic() > deadline:
                        raise
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                time.sleep(0.5)

    def _conditions(self, main_statuses: list[Obj]) -> list[Obj]:
        """PodScheduled as the scheduler wrote it, plus Initialized, ContainersReady, Ready."""
        scheduled = [
            c
            for c in self.pod.get("status", {}).get("conditions") or []
            if c["type"] == "PodScheduled"
        ]
        initialized = all(
            "terminated" in self.statuses[c["name"]]["state"] for c in self.init_containers
        )
        ready = self.phase == "Running" and all(s["ready"] for s in main_statuses)
        conditions = [("Initialized", initialized), ("ContainersReady", ready), ("Ready", ready)]
        return scheduled + [
            {"type": kind, "status": str(value), "lastTransitionTime": now()}
            for kind, value in conditions
        ]
