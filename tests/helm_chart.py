"""The Helm chart rendered by Helm's own Go SDK (helm-python-sdk), and the value sets a
cluster owner picks; shared by the render tests and the tests on the control plane."""

from __future__ import annotations

import json
from pathlib import Path

import helm_python as helm
import yaml
from promql import grafana_query

ROOT = Path(__file__).parent.parent
CHART = ROOT / "charts" / "paretomerge"
DASHBOARD = CHART / "dashboards" / "paretomerge.json"
NAMESPACE = "paretomerge-system"

NAMESPACED = {"watchNamespaces": ["team-a", "team-b"], "storage": {"create": True}}
MONITORED = {
    "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "kps"}}},
    "grafanaDashboard": {"enabled": True, "namespace": "monitoring"},
}
OWNER_SET = {
    "images": {"pullSecrets": ["registry"], "pullPolicy": "Always"},
    "runDefaults": {
        "gpuResource": "amd.com/gpu",
        "nodeSelector": {"pool": "gpu"},
        "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
    },
}
VALUE_SETS = {
    "default": {},
    "namespaced": NAMESPACED,
    "standalone": {"operator": {"standalone": True}},
    "monitored": MONITORED,
    "owner-set": OWNER_SET,
}


def render(values: dict | None = None, namespace: str = NAMESPACE, name: str = "pm") -> list[dict]:
    """Every object the chart renders for ``values`` (``helm install`` as release ``name``
    into ``namespace``), without the CRDs of ``crds/``."""
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values, name=name, namespace=namespace, is_install=True)
    return [
        document
        for path, text in sorted(manifests.items())
        if not path.endswith("NOTES.txt")
        for document in yaml.safe_load_all(text)
        if document
    ]


def crds() -> list[dict]:
    """The CustomResourceDefinitions of the chart's ``crds/``, which Helm installs first."""
    with helm.Chart.load(CHART) as chart:
        return [d for crd in chart.crds for d in yaml.safe_load_all(crd["data"]) if d]


def of_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def dashboard_expressions() -> list[str]:
    """The PromQL of every panel target and query variable of the Grafana dashboard."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    variables = dashboard["templating"]["list"]
    return queries + [grafana_query(v["query"]["query"]) for v in variables if v["type"] == "query"]
