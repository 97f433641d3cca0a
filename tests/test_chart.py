"""The Helm chart, linted and rendered by Helm's own Go SDK (helm-python-sdk), for the
default values and the other shapes a cluster owner picks."""

from __future__ import annotations

import json

import helm_python as helm
import pytest
from builders import run_manifest
from helm_chart import (
    CHART,
    DASHBOARD,
    MONITORED,
    NAMESPACE,
    NAMESPACED,
    OWNER_SET,
    ROOT,
    VALUE_SETS,
    crds,
    dashboard_expressions,
    of_kind,
    render,
)
from promql import PromQLSyntaxError, metric_names

from paretomerge.k8s.constants import RUN_DEFAULTS_ENV
from paretomerge.k8s.settings import ClusterSettings
from paretomerge.spec import parse_run
from paretomerge_operator.metrics import OperatorMetrics
from paretomerge_operator.resources import controller_role


def operator_container(objects: list[dict]) -> dict:
    (deployment,) = of_kind(objects, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def verbs(rules: list[dict]) -> set[tuple[str, str, str, str]]:
    """Every (group, resource, resource name or *, verb) a set of rules grants."""
    return {
        (group, resource, name, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for name in rule.get("resourceNames", ["*"])
        for verb in rule["verbs"]
    }


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_the_chart_lints_clean(values: dict) -> None:
    report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not report["errors"] and not problems, report


def test_the_operator_deployment_is_hardened_and_probed() -> None:
    objects = render()
    (deployment,) = of_kind(objects, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = operator_container(objects)
    context = container["securityContext"]
    assert context["allowPrivilegeEscalation"] is False and context["runAsNonRoot"] is True
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {}} in pod["volumes"]
    probe = container["livenessProbe"]["httpGet"]
    assert probe["path"] == "/healthz"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"healthz": 8080, "metrics": 9090} and probe["port"] == "healthz"
    assert container["resources"]["limits"]["memory"]
    assert container["command"] == ["paretomerge-operator"]
    assert "--liveness=http://0.0.0.0:8080/healthz" in container["args"]
    assert "--metrics-port=9090" in container["args"]
    assert "--peering=paretomerge" in container["args"]
    assert not any(a.startswith("--namespace") or a == "--standalone" for a in container["args"])
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["PARETOMERGE_RUNTIME_IMAGE"] == container["image"]
    assert env["PARETOMERGE_EVAL_IMAGE"].endswith(":0.1.0-eval")
    assert env["PARETOMERGE_IMAGE_PULL_POLICY"] == "IfNotPresent"
    assert (
        "PARETOMERGE_IMAGE_PULL_SECRETS" not in env
    )  # none: no empty value for the server to drop
    assert pod["serviceAccountName"] == "pm-paretomerge"


def test_every_object_carries_the_release_labels() -> None:
    for values in VALUE_SETS.values():
        for item in render(values):
            labels = item["metadata"]["labels"]
            assert labels["app.kubernetes.io/instance"] == "pm", item["kind"]
            assert labels["app.kubernetes.io/managed-by"] == "Helm", item["kind"]


def test_cluster_wide_rbac_holds_what_it_grants_and_peers_cluster_wide() -> None:
    objects = render()
    assert not of_kind(objects, "Role") and not of_kind(objects, "RoleBinding")
    (role,) = of_kind(objects, "ClusterRole")
    (binding,) = of_kind(objects, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "pm-paretomerge", "namespace": NAMESPACE}
    ]
    granted = verbs(role["rules"])
    assert ("paretomerge.io", "paretomergeruns", "*", "watch") in granted
    assert ("paretomerge.io", "paretomergeruns/status", "*", "patch") in granted
    assert ("batch", "jobs", "*", "watch") in granted
    assert ("rbac.authorization.k8s.io", "roles", "*", "create") in granted
    assert ("", "events", "*", "create") in granted
    assert ("kopf.dev", "clusterkopfpeerings", "paretomerge", "patch") in granted
    assert not {v for v in granted if v[3] in ("escalate", "bind", "*", "update")}
    assert not {v for v in granted if v[1] in ("secrets", "*")}
    (peering,) = of_kind(objects, "ClusterKopfPeering")
    assert peering["metadata"]["name"] == "paretomerge"


def test_the_operator_holds_every_permission_of_the_controller_role() -> None:
    """RBAC's escalation rule: without `escalate`, the operator can only create the
    controller's Role if it holds every permission in it."""
    body = run_manifest(
        "r",
        "team-a",
        {"uid": "1"},
        models={"base": {"path": "b"}, "experts": [{"path": "e"}]},
        objectives={"benchmarks": [{"name": "aime25"}]},
    )
    needed = verbs(controller_role(parse_run(body), body)["rules"])
    for values in ({}, NAMESPACED):
        (role, *_) = of_kind(render(values), "ClusterRole" if not values else "Role")
        held = verbs(role["rules"])
        missing = {(g, r, n, v) for g, r, n, v in needed if (g, r, "*", v) not in held}
        assert not missing


def test_namespaced_rbac_peering_and_storage_in_each_watched_namespace() -> None:
    objects = render(NAMESPACED)
    assert not of_kind(objects, "ClusterRole") and not of_kind(objects, "ClusterRoleBinding")
    for kind in ("Role", "RoleBinding", "KopfPeering", "PersistentVolumeClaim"):
        assert sorted(o["metadata"]["namespace"] for o in of_kind(objects, kind)) == [
            "team-a",
            "team-b",
        ], kind
    role = of_kind(objects, "Role")[0]
    granted = verbs(role["rules"])
    assert ("kopf.dev", "kopfpeerings", "paretomerge", "patch") in granted
    assert not {v for v in granted if v[1] in ("customresourcedefinitions", "clusterkopfpeerings")}
    binding = of_kind(objects, "RoleBinding")[0]
    assert binding["subjects"][0]["namespace"] == NAMESPACE
    (claim, _) = of_kind(objects, "PersistentVolumeClaim")
    assert claim["metadata"]["name"] == "paretomerge-models"
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    args = operator_container(objects)["args"]
    assert args[:2] == ["--namespace=team-a", "--namespace=team-b"]


def test_standalone_drops_peering() -> None:
    objects = render({"operator": {"standalone": True}})
    assert "--standalone" in operator_container(objects)["args"]
    assert not any("peering" in a for a in operator_container(objects)["args"])
    assert not of_kind(objects, "ClusterKopfPeering") and not of_kind(objects, "KopfPeering")
    (role,) = of_kind(objects, "ClusterRole")
    assert not {v for v in verbs(role["rules"]) if v[0] == "kopf.dev"}


def test_service_monitor_and_dashboard_only_when_enabled() -> None:
    assert not of_kind(render(), "ServiceMonitor") and not of_kind(render(), "ConfigMap")
    objects = render(MONITORED)
    (service,) = of_kind(objects, "Service")
    (monitor,) = of_kind(objects, "ServiceMonitor")
    assert monitor["metadata"]["namespace"] == NAMESPACE
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}
    ]
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["spec"]["selector"].items()
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9090, "targetPort": "metrics"}]
    (config_map,) = of_kind(objects, "ConfigMap")
    assert config_map["metadata"]["namespace"] == "monitoring"
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["paretomerge.json"]) == json.loads(DASHBOARD.read_text())


def test_owner_values_reach_the_operator_as_valid_run_defaults(monkeypatch) -> None:
    objects = render(OWNER_SET)
    (deployment,) = of_kind(objects, "Deployment")
    assert deployment["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "registry"}]
    env = {e["name"]: e["value"] for e in operator_container(objects)["env"]}
    assert env["PARETOMERGE_IMAGE_PULL_SECRETS"] == "registry"
    assert env["PARETOMERGE_IMAGE_PULL_POLICY"] == "Always"
    monkeypatch.setenv(RUN_DEFAULTS_ENV, env[RUN_DEFAULTS_ENV])
    assert ClusterSettings.from_environment().run_defaults == {
        "storage": {"claimName": "paretomerge-models"},
        "resources": {"gpuResource": "amd.com/gpu"},
        "nodeSelector": {"pool": "gpu"},
        "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
    }


def test_the_chart_ships_the_generated_crd_unchanged() -> None:
    generated = ROOT / "crds" / "paretomergeruns.paretomerge.io.yaml"
    assert (CHART / "crds" / generated.name).read_bytes() == generated.read_bytes()
    assert sorted(p.name for p in (CHART / "crds").iterdir()) == [
        "kopfpeerings.kopf.dev.yaml",
        generated.name,
    ]
    names = {crd["metadata"]["name"] for crd in crds()}
    assert "paretomergeruns.paretomerge.io" in names


@pytest.mark.parametrize(
    "values",
    [
        {"images": {"pullPolicy": "Sometimes"}},
        {"watchNamespaces": ["Team_A"]},
        {"metrics": {"port": 0}},
        {"operator": {"standalone": "yes"}},
        {"storage": {"claimNam": "typo"}},
    ],
)
def test_the_values_schema_rejects_bad_values(values: dict) -> None:
    with helm.Chart.load(CHART) as chart:
        with pytest.raises(helm.HelmValuesError):
            chart.validate_schema(values)
        with pytest.raises(helm.HelmError):
            chart.render(values, name="pm", namespace=NAMESPACE)


def exposed_names(metrics: OperatorMetrics) -> set[str]:
    suffixes = {
        "counter": ["_total"],
        "gauge": [""],
        "histogram": ["_bucket", "_sum", "_count"],
        "info": ["_info"],
    }
    return {
        family.name + suffix
        for family in metrics.registry.collect()
        for suffix in suffixes.get(family.type, [""])
    }


@pytest.mark.parametrize(
    ("expression", "names"),
    [
        ("sum by (le) (rate(a_bucket{x=~'y', le!=\"1\"}[5m])) / b", {"a_bucket", "b"}),
        ("sum(rate(a[$__rate_interval])) without (job) > bool 0.5e3", {"a"}),
        ("a offset 1h30m and on(job) group_left(instance) b{__name__=~'x'}", {"a", "b"}),
        ('{__name__="a:b:rate5m"} or max_over_time(c[5m:1m] @ start()) - inf', {"a:b:rate5m", "c"}),
        (
            'count_values("version", paretomerge_build_info) # the "build" info',
            {"paretomerge_build_info"},
        ),
        ('histogram_quantile(0.9, sum by (le) (x_bucket{run=~"${run}"}))', {"x_bucket"}),
    ],
)
def test_metric_names_are_told_from_labels_functions_and_keywords(expression, names) -> None:
    assert metric_names(expression) == names


@pytest.mark.parametrize("expression", ["sum(rate(a[5m])", "a{x='y'", "a]", "a ; b"])
def test_a_malformed_expression_is_refused(expression) -> None:
    with pytest.raises(PromQLSyntaxError, match="in "):
        metric_names(expression)


def test_the_dashboard_reads_only_metrics_the_operator_exposes() -> None:
    exposed = exposed_names(OperatorMetrics())
    read = set().union(*map(metric_names, dashboard_expressions()))
    assert read and read <= exposed, read - exposed
    assert {
        "paretomerge_runs",
        "paretomerge_run_budget_evaluations",
        "paretomerge_run_hypervolume",
        "paretomerge_run_pareto_size",
        "paretomerge_candidate_duration_seconds_bucket",
        "paretomerge_proposal_duration_seconds_bucket",
        "paretomerge_evaluations_total",
        "paretomerge_output_tokens_total",
        "paretomerge_gpu_seconds_total",
    } <= read


def test_the_dashboard_has_the_panels_and_quantiles() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    titles = " | ".join(panel["title"] for panel in dashboard["panels"])
    for word in ("phase", "budget", "Hypervolume", "Pareto", "Candidate", "Failures", "Proposal"):
        assert word in titles
    for word in ("Output tokens", "GPU-seconds", "Model-server start"):  # the cost
        assert word in titles
    expressions = " ".join(dashboard_expressions())
    assert 'step="serve"' in expressions
    assert "histogram_quantile(0.95" in expressions and "histogram_quantile(0.5" in expressions
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
