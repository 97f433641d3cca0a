"""``paretomerge-operator``: registers the handlers and runs kopf.

Out of cluster it uses the current kubeconfig; the Helm chart's Deployment runs the same
command in the cluster. ``--standalone`` skips peering (tests, one replica without the
peering CRD); otherwise replicas coordinate through kopf's peering so only one acts. ``--metrics-port`` serves the Prometheus metrics of
:mod:`paretomerge_operator.metrics`.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import kopf

from paretomerge.k8s import client
from paretomerge.k8s.settings import ClusterSettings
from paretomerge_operator import handlers  # noqa: F401 - registers every handler
from paretomerge_operator.metrics import OperatorMetrics


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """kopf's own settings, and the cluster owner's (``memo.cluster_settings``: Helm values)."""
    client.connect()
    memo.cluster_settings = ClusterSettings.from_environment()
    settings.posting.level = 20  # INFO and above become Events
    settings.watching.server_timeout = 300
    if memo.metrics_port:
        memo.metrics.serve(memo.metrics_port)


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="paretomerge-operator",
        description="The ParetoMerge operator: runs ParetoMergeRun resources.",
    )
    parser.add_argument(
        "--namespace",
        action="append",
        default=[],
        help="Namespace to watch (repeatable); every namespace when none is given.",
    )
    parser.add_argument(
        "--standalone", action="store_true", help="No peering with other operator replicas."
    )
    parser.add_argument(
        "--liveness",
        default="http://0.0.0.0:8080/healthz",
        help="Liveness endpoint URL (default: %(default)s).",
    )
    parser.add_argument("--peering", default="paretomerge", help="Peering object's name.")
    parser.add_argument("--verbose", action="store_true", help="Log kopf's debug messages.")
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=9090,
        help="Port of the Prometheus /metrics endpoint; 0 disables it (default: %(default)s).",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    arguments = parse_arguments(argv)
    kopf.configure(verbose=arguments.verbose)
    settings = kopf.OperatorSettings()
    # A namespaced operator (the chart's Roles) may not list namespaces or CRDs cluster-wide:
    # without this, kopf retries those lists with errors in the log before it falls back to
    # the named namespaces and the CRDs present at startup, which is all it needs.
    settings.scanning.disabled = bool(arguments.namespace)
    asyncio.run(
        kopf.operator(
            settings=settings,
            standalone=arguments.standalone,
            # A peering name makes peering mandatory, even for a standalone operator.
            peering_name=None if arguments.standalone else arguments.peering,
            namespaces=arguments.namespace or (),
            clusterwide=not arguments.namespace,
            liveness_endpoint=arguments.liveness,
            memo=kopf.Memo(metrics=OperatorMetrics(), metrics_port=arguments.metrics_port),
        )
    )


if __name__ == "__main__":
    main()
