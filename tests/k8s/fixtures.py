"""Pytest fixtures for tests on the real control plane. A test module (or the root
conftest) enables them with ``pytest_plugins = ["k8s.fixtures"]``.

- ``k8s_cluster`` (session): builds the binaries when they are missing (``build.sh``,
  several minutes the first time; skips, saying why, only where building is impossible:
  no apt-get, no root), starts the control plane once on free loopback ports under a tmp
  dir and stops it at the end. Yields a ``ControlPlane``.
- ``k8s_namespace``: a fresh namespace whose default ServiceAccount is ready; deleted after.
- ``k8s_node``: a ``NodeSimulator`` with one simulated ``nvidia.com/gpu``, stopped after.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest

from . import control_plane
from .control_plane import ControlPlane
from .node_simulator import NodeSimulator


@pytest.fixture(scope="session")
def k8s_cluster(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[ControlPlane]:
    bin_dir = control_plane.default_bin_dir()
    if not control_plane.is_built(bin_dir):
        reason = control_plane.why_unbuildable()
        if reason:
            pytest.skip(f"cannot build the Kubernetes test control plane: {reason}")
        log_file = tmp_path_factory.getbasetemp() / "k8s-build.log"
        reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
        if reporter:  # output captured or not, say why the suite pauses for minutes
            reporter.write_line(
                f"building the Kubernetes test control plane into {bin_dir} "
                f"(once; ~6-8 min on 2 cores), log: {log_file}"
            )
        control_plane.build(bin_dir, log_file)
    plane = control_plane.start(tmp_path_factory.mktemp("k8s"), bin_dir)
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture
def k8s_namespace(k8s_cluster: ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    """A new namespace named after the test."""
    stem = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40]
    name = f"{stem}-{uuid.uuid4().hex[:5]}"
    k8s_cluster.kubectl("create", "namespace", name)
    k8s_cluster.wait_for_service_account(name)
    yield name
    k8s_cluster.kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture
def k8s_node(k8s_cluster: ControlPlane, tmp_path) -> Iterator[NodeSimulator]:
    with NodeSimulator(k8s_cluster, tmp_path / "node", gpus=1) as node:
        yield node
