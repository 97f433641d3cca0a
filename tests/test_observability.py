"""The Helm chart's objects, RBAC and metrics on the real control plane, scraped by a real
Prometheus (Debian's, ``tools/prometheus/install.sh``).

- Every object the chart renders, for each value set of ``helm_chart.VALUE_SETS``, passes
  ``kubectl apply --dry-run=server`` and the server keeps every field sent (Kubernetes 1.20
  drops unknown fields silently instead of refusing them).
- The operator runs out of cluster with the token of the chart's ServiceAccount, bound by
  the chart's namespaced Role, with the chart's arguments and environment, and carries a
  run to Succeeded (RBAC is enough); candidates score synthetically (``fake_tasks.py``)
  through real Jobs and Pods. Prometheus scrapes it every second: the run's series agree
  with its status and every metric the dashboard reads was scraped. The same token is
  refused what the chart does not grant (RBAC is not too much).
- Under the chart's cluster-wide ClusterRole, with kopf peering as installed by default,
  the operator handles a run in any namespace.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import fake_tasks
import pytest
from builders import QUICK_SEARCH, run_manifest, write_numeric_benchmark
from helm_chart import VALUE_SETS, crds, dashboard_expressions, of_kind, render
from k8s import prometheus
from k8s.control_plane import ControlPlane, free_ports, wait_until
from k8s.identity import service_account_token, token_api, write_token_kubeconfig
from k8s.node_simulator import NodeSimulator
from k8s.operator_process import OperatorProcess
from k8s.prometheus import PrometheusServer
from k8s.rest import KubeApiError
from promql import metric_names
from tiny_models import make_base, make_expert

pytest_plugins = ["k8s.fixtures"]
pytestmark = [pytest.mark.k8s, pytest.mark.slow]

CLAIM = "observed-models"
RUN = "observed"
RUN_SECONDS = 600
GRANTED_KINDS = ("ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")
# Grafana's variables, as the dashboard would fill them for this test's run.
PANEL_RANGE = {"$__range": "1h", "$__rate_interval": "5m"}

# A minimal ServiceMonitor CRD (the test control plane has no prometheus-operator): the
# fields the chart sets, typed as prometheus-operator types them, and nothing else, so a
# field the chart misspells is dropped and the dry-run comparison names it.
DURATION = (
    r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
)
SERVICE_MONITOR_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
    "spec": {
        "group": "monitoring.coreos.com",
        "scope": "Namespaced",
        "names": {
            "kind": "ServiceMonitor",
            "plural": "servicemonitors",
            "singular": "servicemonitor",
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "required": ["spec"],
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["selector", "endpoints"],
                                "properties": {
                                    "namespaceSelector": {
                                        "type": "object",
                                        "properties": {
                                            "matchNames": {
                                                "type": "array",
                                                "items": {"type": "string"},
                                            }
                                        },
                                    },
                                    "selector": {
                                        "type": "object",
                                        "properties": {
                                            "matchLabels": {
                                                "type": "object",
                                                "additionalProperties": {"type": "string"},
                                            }
                                        },
                                    },
                                    "endpoints": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "properties": {
                                                "port": {"type": "string"},
                                                "path": {"type": "string"},
                                                "interval": {"type": "string", "pattern": DURATION},
                                                "scrapeTimeout": {
                                                    "type": "string",
                                                    "pattern": DURATION,
                                                },
                                            },
                                        },
                                    },
                                },
                            }
                        },
                    }
                },
            }
        ],
    },
}


@pytest.fixture(scope="module")
def prometheus_binary() -> Path:
    reason = prometheus.why_uninstallable()
    if reason:
        pytest.skip(f"cannot get Prometheus: {reason}")
    return prometheus.installed()


def wait_established(cluster: ControlPlane, *definitions: dict) -> None:
    cluster.apply(*definitions)
    names = [f"crd/{d['metadata']['name']}" for d in definitions]
    cluster.kubectl("wait", "--for=condition=Established", *names)


@pytest.fixture(scope="module")
def chart_crds(k8s_cluster: ControlPlane) -> None:
    """The chart's crds/ (the run CRD and kopf's peering CRDs), as ``helm install`` puts them."""
    wait_established(k8s_cluster, *crds())


@pytest.fixture
def namespaces(k8s_cluster: ControlPlane) -> Iterator[Callable[..., None]]:
    """``make(name, ...)`` creates namespaces, deleted after the test."""
    made: list[str] = []

    def make(*names: str) -> None:
        k8s_cluster.apply(
            *({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in names)
        )
        made.extend(names)

    yield make
    if made:
        k8s_cluster.kubectl("delete", "namespace", *made, "--wait=false")


def dropped_fields(sent, kept, path: str = "") -> list[str]:
    """The paths of ``sent`` that ``kept`` (the object as the server stores it) lacks or
    changed; fields the server adds are fine."""
    if isinstance(sent, dict):
        if not isinstance(kept, dict):
            return [path]
        return [
            dropped
            for key, value in sent.items()
            for dropped in (
                dropped_fields(value, kept[key], f"{path}.{key}")
                if key in kept
                else [f"{path}.{key}"]
            )
        ]
    if isinstance(sent, list):
        if not isinstance(kept, list) or len(sent) != len(kept):
            return [path]
        return [
            d
            for i, (a, b) in enumerate(zip(sent, kept, strict=True))
            for d in dropped_fields(a, b, f"{path}[{i}]")
        ]
    return [] if sent == kept else [f"{path}: {sent!r} became {kept!r}"]


def test_every_rendered_object_passes_a_server_side_dry_run(
    k8s_cluster: ControlPlane, chart_crds, namespaces
) -> None:
    wait_established(k8s_cluster, SERVICE_MONITOR_CRD)
    rendered = {label: render(values) for label, values in VALUE_SETS.items()}
    namespaces(
        *sorted(
            {
                o["metadata"]["namespace"]
                for objects in rendered.values()
                for o in objects
                if "namespace" in o["metadata"]
            }
        )
    )
    kinds = set()
    for label, objects in rendered.items():
        answer = k8s_cluster.kubectl(
            "apply",
            "--dry-run=server",
            "-o",
            "json",
            "-f",
            "-",
            stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}),
        )
        stored = json.loads(answer.stdout)
        stored = stored["items"] if stored.get("kind") == "List" else [stored]
        assert len(stored) == len(objects), label
        for sent, kept in zip(objects, stored, strict=True):
            what = f"{label}: {sent['kind']} {sent['metadata']['name']}"
            assert (kept["kind"], kept["metadata"]["name"]) == (
                sent["kind"],
                sent["metadata"]["name"],
            )
            assert not dropped_fields(sent, kept), what
            kinds.add(sent["kind"])
    assert kinds == {
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Deployment",
        "Service",
        "ClusterKopfPeering",
        "KopfPeering",
        "PersistentVolumeClaim",
        "ServiceMonitor",
        "ConfigMap",
    }
    # Nothing was created.
    assert not k8s_cluster.get("clusterrole", "pm-paretomerge")


def operator_container(objects: list[dict]) -> dict:
    (deployment,) = of_kind(objects, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def operator_command(objects: list[dict], health_port: int) -> tuple[list[str], dict[str, str]]:
    """The arguments and environment of the chart's operator container, for a process
    here: liveness on ``health_port`` of 127.0.0.1, and only the ``PARETOMERGE_*``
    variables (the others set up the container's read-only filesystem)."""
    container = operator_container(objects)
    liveness = f"--liveness=http://127.0.0.1:{health_port}/healthz"
    args = [liveness if a.startswith("--liveness=") else a for a in container["args"]]
    env = {e["name"]: e["value"] for e in container["env"] if e["name"].startswith("PARETOMERGE_")}
    return args, env


def install_identity(
    cluster: ControlPlane, objects: list[dict], tmp_path: Path
) -> tuple[str, Path]:
    """Apply the chart's ServiceAccount and RBAC objects; return the ServiceAccount's token
    and a kubeconfig with it."""
    cluster.apply(*(o for o in objects if o["kind"] in GRANTED_KINDS))
    (account,) = of_kind(objects, "ServiceAccount")
    namespace = account["metadata"]["namespace"]
    token = service_account_token(cluster, namespace, account["metadata"]["name"])
    return token, write_token_kubeconfig(
        cluster, token, namespace, tmp_path / "operator.kubeconfig"
    )


@pytest.fixture
def fake_paretomerge(tmp_path: Path, monkeypatch) -> None:
    """Pods run a ``paretomerge`` that hands ``task`` to ``fake_tasks.py`` (profiles for
    real, synthetic scores for evaluations) and everything else to the real command."""
    directory = tmp_path / "bin"
    directory.mkdir()
    real = Path(sys.executable).parent / "paretomerge"
    shim = directory / "paretomerge"
    shim.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = task ]; then shift; exec "{sys.executable}" "{fake_tasks.__file__}" "$@"; fi\n'
        f'exec "{real}" "$@"\n'
    )
    shim.chmod(0o755)
    path = [str(directory), str(real.parent), os.environ["PATH"]]
    monkeypatch.setenv("PATH", os.pathsep.join(path))


def tiny_volume(root: Path) -> Path:
    """A run volume with a 4-layer base and an expert under models/, and the data."""
    base = make_base(root / "models" / "base", num_layers=4, seed=0)
    make_expert(base, root / "models" / "expert", range(4), True, seed=1)
    write_numeric_benchmark(root / "data" / "one.jsonl")
    return root


def three_candidate_run(namespace: str, name: str = RUN, **search) -> dict:
    """A three-candidate run; its storage claim is left to the chart's run defaults."""
    return run_manifest(
        name,
        namespace,
        search={**QUICK_SEARCH, "budget": 3, "initialPoints": 2, **search},
        evaluation={"engine": "transformers", "maxTokens": 64},
        execution={
            "parallelism": 1,
            "maxFailedCandidates": 1,
            "resources": {"gpus": 1, "memory": "1Gi", "cpu": "1"},
        },
    )


def final_status(cluster: ControlPlane, namespace: str, name: str, timeout: float) -> dict:
    def finished() -> dict | None:
        status = cluster.get("pmr", name, "-n", namespace).get("status", {})
        return status if status.get("phase") in ("Succeeded", "Failed") else None

    return wait_until(finished, f"run {namespace}/{name} to finish", timeout=timeout, every=2)


def fill_variables(expression: str, namespace: str, run: str) -> str:
    """A dashboard expression with Grafana's variables set for one run."""
    for variable, value in {**PANEL_RANGE, "$namespace": namespace, "$run": run}.items():
        expression = expression.replace(variable, value)
    return expression


def assert_nothing_refused_or_failed(operator_log: Path) -> None:
    """The operator's log tells of no refused request and no failed handler."""
    log = operator_log.read_text()
    assert not re.search(r"Forbidden|Not enough permissions|Traceback", log), log[-3000:]


def refused(call) -> bool:
    """Whether ``call`` is refused by RBAC (403 Forbidden)."""
    try:
        call()
    except KubeApiError as error:
        return error.status == 403
    return False


def test_the_operator_with_the_charts_token_runs_a_search_that_prometheus_scrapes(
    k8s_cluster: ControlPlane,
    chart_crds,
    k8s_namespace: str,
    namespaces,
    prometheus_binary: Path,
    fake_paretomerge,
    tmp_path: Path,
) -> None:
    watched, release = k8s_namespace, f"{k8s_namespace}-system"
    namespaces(release)
    metrics_port, health_port = free_ports(2)
    values = {
        "watchNamespaces": [watched],
        "operator": {"standalone": True},
        "storage": {"claimName": CLAIM},
        "metrics": {"port": metrics_port},
    }
    objects = render(values, namespace=release)
    token, kubeconfig = install_identity(k8s_cluster, objects, tmp_path)
    args, env = operator_command(objects, health_port)
    assert f"--namespace={watched}" in args and "--standalone" in args
    volume = tiny_volume(tmp_path / "volume")

    with (
        NodeSimulator(k8s_cluster, tmp_path / "node", gpus=1, claims={CLAIM: volume}) as node,
        PrometheusServer(
            prometheus_binary, tmp_path / "prometheus", [f"127.0.0.1:{metrics_port}"]
        ) as server,
        OperatorProcess(
            args, {**env, "KUBECONFIG": str(kubeconfig)}, health_port, tmp_path / "operator.log"
        ),
    ):
        node.create_claim(watched, CLAIM)
        k8s_cluster.apply(three_candidate_run(watched))
        final = final_status(k8s_cluster, watched, RUN, RUN_SECONDS)
        assert final["phase"] == "Succeeded", final.get("message")
        assert final["finished"] == final["succeeded"] == 3 and final["paretoSize"] >= 1

        # The run's series, as Prometheus scraped them, agree with the run's status.
        column = {name: index for index, name in enumerate(final["evaluationColumns"])}

        # Whole rows: a null would be dropped by this Kubernetes 1.20 (see metrics.py).
        assert all(len(row) == len(column) for row in final["evaluations"])

        def timed(step: str) -> int:
            """Evaluations with a time for ``step``."""
            return sum(row[column[f"{step}Seconds"]] is not None for row in final["evaluations"])

        def total(name: str) -> float:
            """The sum of column ``name`` over the rows, each of which has it."""
            values = [row[column[name]] for row in final["evaluations"]]
            assert all(isinstance(value, int | float) for value in values), (name, values)
            return sum(values)

        selector = f'namespace="{watched}",run="{RUN}"'
        expected = {
            f"paretomerge_run_evaluations_finished{{{selector}}}": final["finished"],
            f"paretomerge_run_evaluations_running{{{selector}}}": 0,
            f"paretomerge_run_budget_evaluations{{{selector}}}": 3,
            f"paretomerge_run_pareto_size{{{selector}}}": final["paretoSize"],
            f"paretomerge_run_hypervolume{{{selector}}}": final["hypervolume"],
            f'paretomerge_evaluations_total{{{selector},outcome="succeeded"}}': final["succeeded"],
            f'paretomerge_evaluations_total{{{selector},outcome="failed"}}': 0,
            f'paretomerge_runs{{namespace="{watched}",phase="Succeeded"}}': 1,
            "sum(paretomerge_reconcile_errors_total)": 0,
            f'paretomerge_runs{{namespace="{watched}",phase="Searching"}}': 0,
            f"paretomerge_proposal_duration_seconds_count{{{selector}}}": timed("proposal"),
            f'paretomerge_candidate_duration_seconds_count{{{selector},step="merge"}}': timed(
                "merge"
            ),
            f'paretomerge_candidate_duration_seconds_count{{{selector},step="evaluate"}}': timed(
                "evaluate"
            ),
            f'paretomerge_candidate_duration_seconds_count{{{selector},step="serve"}}': timed(
                "serve"
            ),
            # The cost: the counters are the sums over the status rows, and the status's own.
            f"paretomerge_output_tokens_total{{{selector}}}": total("outputTokens"),
            f"paretomerge_gpu_seconds_total{{{selector}}}": total("gpuSeconds"),
        }
        assert total("outputTokens") == final["cost"]["outputTokens"] > 0
        # One GPU per pod (resources.gpus: 1): server start and generation, once over.
        assert total("gpuSeconds") == pytest.approx(final["cost"]["gpuSeconds"])
        assert total("gpuSeconds") == pytest.approx(
            total("serveSeconds") + total("generateSeconds")
        )

        def differences() -> dict:
            scraped = {query: server.value(query) for query in expected}
            return {
                q: (v, expected[q]) for q, v in scraped.items() if v != pytest.approx(expected[q])
            }

        with contextlib.suppress(TimeoutError):  # the assertion below tells what differs
            wait_until(lambda: not differences(), "the final scrape", timeout=30)
        assert not differences(), (differences(), final["evaluations"])
        assert server.targets_health() == ["up"]

        # Every metric the dashboard reads was scraped, and every panel has data.
        names = server.metric_names()
        for expression in dashboard_expressions():
            assert metric_names(expression) <= names, expression
            assert server.query(fill_variables(expression, watched, RUN)), expression
        run_series = server.query(f'{{__name__=~"paretomerge_.+",{selector}}}')
        assert {s["metric"]["__name__"] for s in run_series} >= {
            "paretomerge_run_hypervolume",
            "paretomerge_candidate_duration_seconds_bucket",
            "paretomerge_proposal_duration_seconds_sum",
            "paretomerge_evaluations_total",
        }
        exposition = subprocess.run(
            [str(prometheus_binary.parent / "promtool"), "check", "metrics"],
            input=_read(f"http://127.0.0.1:{metrics_port}/metrics"),
            capture_output=True,
            text=True,
            check=False,
        )
        assert exposition.returncode == 0, exposition.stdout + exposition.stderr

    assert_nothing_refused_or_failed(tmp_path / "operator.log")  # the Role was enough

    # What the chart does not grant is refused to the same token.
    api = token_api(k8s_cluster, token)
    runs = "/apis/paretomerge.io/v1alpha1/namespaces/{}/paretomergeruns"
    assert api.request("GET", runs.format(watched))["items"]  # the token works
    assert refused(lambda: api.request("GET", f"/api/v1/namespaces/{watched}/secrets"))
    assert refused(lambda: api.request("GET", runs.format(release)))  # not watched
    assert refused(lambda: api.request("DELETE", "/api/v1/nodes/sim-node"))
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": f"{watched}-escalated"},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}],
    }
    assert refused(
        lambda: api.request("POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles", role)
    )
    # A Role in a watched namespace is allowed, but only with permissions held: no escalation.
    role = {**role, "kind": "Role", "metadata": {"name": "escalated", "namespace": watched}}
    roles = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{watched}/roles"
    assert refused(lambda: api.request("POST", roles, role))


def _read(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def test_the_cluster_wide_operator_with_peering_handles_a_run_in_any_namespace(
    k8s_cluster: ControlPlane, chart_crds, k8s_namespace: str, namespaces, tmp_path: Path
) -> None:
    release = f"{k8s_namespace}-system"
    namespaces(release)
    health_port, metrics_port = free_ports(2)
    objects = render({"metrics": {"port": metrics_port}}, namespace=release, name="pmc")
    (peering,) = of_kind(objects, "ClusterKopfPeering")
    token, kubeconfig = install_identity(k8s_cluster, objects, tmp_path)
    k8s_cluster.apply(peering)
    args, env = operator_command(objects, health_port)
    assert "--peering=paretomerge" in args and not any(a.startswith("--namespace") for a in args)
    try:
        with OperatorProcess(
            args, {**env, "KUBECONFIG": str(kubeconfig)}, health_port, tmp_path / "operator.log"
        ):
            # Invalid past the schema: the operator itself must read, judge and patch it.
            k8s_cluster.apply(three_candidate_run(k8s_namespace, batchSize=9))
            final = final_status(k8s_cluster, k8s_namespace, RUN, 90)
        assert final["phase"] == "Failed" and "spec.search.batchSize" in final["message"]
        assert_nothing_refused_or_failed(tmp_path / "operator.log")
        api = token_api(k8s_cluster, token)
        assert api.request("GET", "/apis/paretomerge.io/v1alpha1/paretomergeruns")["items"]
        assert refused(lambda: api.request("GET", f"/api/v1/namespaces/{k8s_namespace}/secrets"))
        assert refused(lambda: api.request("GET", "/api/v1/secrets"))
    finally:
        for item in (
            peering,
            *of_kind(objects, "ClusterRole"),
            *of_kind(objects, "ClusterRoleBinding"),
        ):
            k8s_cluster.kubectl(
                "delete", item["kind"].lower(), item["metadata"]["name"], "--ignore-not-found"
            )
