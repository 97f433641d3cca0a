"""The operator under load: many runs at once on the test control plane.

Starts a private control plane (``tests/k8s``, built binaries needed), a node simulator
whose memory admits a few controller pods at a time (2 GiB each, the rest queue in the
real scheduler) and the operator watching one namespace. Candidates are fake
(``tests/fake_tasks.py`` behind a ``paretomerge`` shim: synthetic scores in a second); the
operator, the controller pods and every Job are the real ones. After a warm-up run, one
run alone (the baseline), then ``--runs`` runs created at once; it prints, for each: the reconcile
latency (run created -> its controller Job exists, seen through a watch) p50/p95/max,
the runs that finished, and the operator's resident memory at start, peak and end.

Usage: ``python bench/operator_load.py [--runs 20] [--budget 2] [--workdir DIR]``.
Targets (issue 7): all runs finish; latency p95 < 2 s; the operator's memory bounded
(end within 1.5 x start, peak within 2 x start).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests")]

from builders import write_numeric_benchmark  # noqa: E402
from fake_tasks import cluster_run, write_paretomerge_shim  # noqa: E402
from k8s import control_plane  # noqa: E402
from k8s.control_plane import ControlPlane, wait_until  # noqa: E402
from k8s.node_simulator import NodeSimulator  # noqa: E402
from k8s.operator_process import OperatorProcess, install_crd  # noqa: E402
from tiny_models import make_base, make_expert  # noqa: E402

from paretomerge.k8s.constants import API_GROUP, PLURAL, VERSION  # noqa: E402

NAMESPACE = "load"
CLAIM = "paretomerge-models"
CONTROLLER_MEMORY_GIB = 2
CONTROLLERS_AT_ONCE = 6


def resident_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


class MemorySampler(threading.Thread):
    """The operator's resident set every 0.2 s: the peak."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak = pid, resident_bytes(pid)
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.2):
            self.peak = max(self.peak, resident_bytes(self.pid))

    def stop(self) -> None:
        self.stopping.set()
        self.join()


class ControllerJobWatch(threading.Thread):
    """When each run's controller Job was first seen (monotonic seconds), via a watch."""

    def __init__(self, cluster: ControlPlane):
        from kubernetes import client, watch

        super().__init__(daemon=True)
        self.batch = client.BatchV1Api(cluster.api_client())
        self.watch = watch.Watch()
        self.seen: dict[str, float] = {}

    def run(self) -> None:
        stream = self.watch.stream(
            self.batch.list_namespaced_job,
            NAMESPACE,
            label_selector="app.kubernetes.io/component=controller",
        )
        with contextlib.suppress(Exception):  # the control plane stops at the end
            for event in stream:
                run = event["object"].metadata.labels["paretomerge.io/run"]
                self.seen.setdefault(run, time.monotonic())


def create_runs(cluster: ControlPlane, names: list[str], budget: int) -> dict[str, float]:
    """Create the runs one after another as fast as the API answers; the time each create
    was sent."""
    from kubernetes import client

    api = client.CustomObjectsApi(cluster.api_client())
    sent = {}
    for name in names:
        manifest = cluster_run(NAMESPACE, name, budget, parallelism=2)
        sent[name] = time.monotonic()
        api.create_namespaced_custom_object(API_GROUP, VERSION, NAMESPACE, PLURAL, manifest)
    return sent


def finished(cluster: ControlPlane, names: list[str]) -> dict[str, str]:
    """Phase of each run of ``names`` that has ended."""
    from kubernetes import client

    api = client.CustomObjectsApi(cluster.api_client())
    items = api.list_namespaced_custom_object(API_GROUP, VERSION, NAMESPACE, PLURAL)["items"]
    phases = {i["metadata"]["name"]: i.get("status", {}).get("phase") for i in items}
    return {n: phases[n] for n in names if phases.get(n) in ("Succeeded", "Failed")}


def measure(cluster, jobs_seen, names, budget, timeout) -> tuple[list[float], dict[str, str]]:
    sent = create_runs(cluster, names, budget)
    wait_until(lambda: all(n in jobs_seen.seen for n in names), "every controller Job", 60)
    latencies = [jobs_seen.seen[n] - sent[n] for n in names]
    wait_until(lambda: len(finished(cluster, names)) == len(names), "every run", timeout, 2)
    return latencies, finished(cluster, names)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--budget", type=int, default=2, help="Candidates per run.")
    parser.add_argument("--timeout", type=float, default=1200, help="Seconds for all runs.")
    parser.add_argument("--workdir", type=Path, default=None)
    arguments = parser.parse_args()
    bin_dir = control_plane.default_bin_dir()
    if not control_plane.is_built(bin_dir):
        sys.exit(f"build the control plane first: bash tools/k8s/build.sh (into {bin_dir})")
    workdir = arguments.workdir or Path(tempfile.mkdtemp(prefix="operator-load-"))
    volume = workdir / "volume"
    base = make_base(volume / "models" / "base", num_layers=4, seed=0)
    make_expert(base, volume / "models" / "expert", range(4), True, seed=1)
    write_numeric_benchmark(volume / "data" / "one.jsonl")
    shim = write_paretomerge_shim(workdir / "shim")
    os.environ["PATH"] = f"{shim}{os.pathsep}{os.environ['PATH']}"
    os.environ["FAKE_SECONDS"] = "0.5"

    cluster = control_plane.start(workdir / "k8s", bin_dir)
    operator = None
    try:
        install_crd(cluster)
        cluster.kubectl("create", "namespace", NAMESPACE)
        cluster.wait_for_service_account(NAMESPACE)
        memory = f"{CONTROLLERS_AT_ONCE * CONTROLLER_MEMORY_GIB + 1}Gi"
        with NodeSimulator(cluster, workdir / "node", memory=memory, claims={CLAIM: volume}) as n:
            n.create_claim(NAMESPACE, CLAIM)
            settings = {"PARETOMERGE_CONTROLLER_MEMORY": f"{CONTROLLER_MEMORY_GIB}Gi"}
            operator = OperatorProcess.standalone(
                cluster, workdir / "operator.log", (NAMESPACE,), settings
            )
            operator.start()
            pid = operator.process.pid
            jobs_seen = ControllerJobWatch(cluster)
            jobs_seen.start()
            rss_start = resident_bytes(pid)
            sampler = MemorySampler(pid)
            sampler.start()
            started = time.monotonic()
            # Unmeasured: the API server's first objects of each kind are slow (0.5 s).
            measure(cluster, jobs_seen, ["warm-up"], arguments.budget, 300)
            solo, solo_done = measure(cluster, jobs_seen, ["solo"], arguments.budget, 300)
            names = [f"load-{k:02d}" for k in range(arguments.runs)]
            loaded, done = measure(cluster, jobs_seen, names, arguments.budget, arguments.timeout)
            wall = time.monotonic() - started
            sampler.stop()
            rss_end = resident_bytes(pid)
    finally:
        if operator is not None:
            operator.stop()
        cluster.stop()

    succeeded = sum(phase == "Succeeded" for phase in done.values())
    mib = 1 << 20
    table = [
        ("runs at once", "1 (baseline)", str(arguments.runs)),
        ("latency p50 (s)", f"{statistics.median(solo):.2f}", f"{statistics.median(loaded):.2f}"),
        ("latency p95 (s)", f"{percentile(solo, 0.95):.2f}", f"{percentile(loaded, 0.95):.2f}"),
        ("latency max (s)", f"{max(solo):.2f}", f"{max(loaded):.2f}"),
        (
            "runs Succeeded",
            f"{sum(p == 'Succeeded' for p in solo_done.values())}/1",
            f"{succeeded}/{arguments.runs}",
        ),
        (
            "operator RSS start/peak/end (MiB)",
            "",
            f"{rss_start / mib:.0f} / {sampler.peak / mib:.0f} / {rss_end / mib:.0f}",
        ),
    ]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    print(
        f"p95 under load / alone: {percentile(loaded, 0.95) / percentile(solo, 0.95):.1f} x; "
        f"all runs in {wall:.0f} s; workdir {workdir}"
    )
    ok = (
        succeeded == arguments.runs
        and percentile(loaded, 0.95) < 2.0
        and rss_end <= 1.5 * rss_start
        and sampler.peak <= 2 * rss_start
    )
    print("targets met" if ok else "TARGETS MISSED")


if __name__ == "__main__":
    main()
