"""Test tooling for a real Kubernetes control plane on 127.0.0.1 (not product code).

- ``control_plane``: build (``tools/k8s/build.sh``), start and stop the control plane.
- ``node_simulator``: a Node that plays the kubelet by running Pods as local processes.
- ``fixtures``: the pytest fixtures ``k8s_cluster``, ``k8s_namespace`` and ``k8s_node``.
- ``rest``: the small standard-library REST client the simulator uses.
- ``operator_process``: ``paretomerge-operator`` as a local process, the CRD installed.
"""
