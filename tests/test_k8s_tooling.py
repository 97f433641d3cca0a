"""The test control plane and the node simulator, through the real Job controller,
scheduler and RBAC of ``tools/k8s``."""

from __future__ import annotations

import os
import sys
import textwrap

import pytest
from k8s.control_plane import ControlPlane, wait_until
from k8s.node_simulator import NodeSimulator

pytest_plugins = ["k8s.fixtures"]
pytestmark = pytest.mark.k8s


def job(
    name: str,
    namespace: str,
    script: str,
    *,
    backoff_limit: int = 0,
    gpus: int = 0,
    claim: str | None = None,
    container_fields: dict | None = None,
) -> dict:
    """A batch/v1 Job of one container running ``sh -c script`` (restartPolicy Never),
    with ``gpus`` simulated GPUs and PersistentVolumeClaim ``claim`` at ``/data``."""
    container = {"name": "main", "image": "busybox", "command": ["sh", "-c", script]}
    pod_spec: dict = {"restartPolicy": "Never", "containers": [container]}
    if gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
    if claim:
        container["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
        pod_spec["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]
    container |= container_fields or {}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"backoffLimit": backoff_limit, "template": {"spec": pod_spec}},
    }


def pods_of(cluster: ControlPlane, namespace: str, job_name: str) -> list[dict]:
    return cluster.get("pods", "-n", namespace, "-l", f"job-name={job_name}").get("items", [])


def terminated(pod: dict) -> dict:
    """The terminated state of the Pod's first container."""
    return pod["status"]["containerStatuses"][0]["state"]["terminated"]


def wait_for_job(cluster: ControlPlane, namespace: str, name: str, condition: str) -> None:
    cluster.kubectl(
        "wait", "-n", namespace, f"--for=condition={condition}", f"job/{name}", "--timeout=90s"
    )


def test_control_plane_serves_kubectl_and_the_python_client(k8s_cluster):
    from kubernetes import client

    assert k8s_cluster.kubectl("get", "--raw", "/readyz").stdout == "ok"
    assert "v1.20" in k8s_cluster.kubectl("version", "--short").stdout
    assert k8s_cluster.api_url.startswith("https://127.0.0.1:")
    with k8s_cluster.api_client() as api:
        names = [ns.metadata.name for ns in client.CoreV1Api(api).list_namespace().items]
    assert {"default", "kube-system"} <= set(names)


def test_job_completes_with_its_termination_message(k8s_cluster, k8s_namespace, k8s_node):
    data = k8s_node.create_claim(k8s_namespace, "work")
    script = "echo hi > /data/out.txt; echo done > /dev/termination-log"
    k8s_cluster.apply(job("hello", k8s_namespace, script, claim="work"))
    wait_for_job(k8s_cluster, k8s_namespace, "hello", "complete")
    (pod,) = pods_of(k8s_cluster, k8s_namespace, "hello")
    assert pod["status"]["phase"] == "Succeeded"
    assert terminated(pod)["exitCode"] == 0
    assert terminated(pod)["message"] == "done\n"
    assert (data / "out.txt").read_text() == "hi\n"


def test_failing_job_fails_after_backoff_limit(k8s_cluster, k8s_namespace, k8s_node):
    fallback = {"terminationMessagePolicy": "FallbackToLogsOnError"}
    manifest = job(
        "boom", k8s_namespace, "echo boom; exit 3", backoff_limit=1, container_fields=fallback
    )
    k8s_cluster.apply(manifest)
    wait_for_job(k8s_cluster, k8s_namespace, "boom", "failed")
    pods = pods_of(k8s_cluster, k8s_namespace, "boom")
    assert [p["status"]["phase"] for p in pods] == ["Failed", "Failed"]
    assert {(terminated(p)["exitCode"], terminated(p)["message"]) for p in pods} == {(3, "boom\n")}
    status = k8s_cluster.get("job", "boom", "-n", k8s_namespace)["status"]
    assert status["failed"] == 2


def test_gpu_jobs_queue_on_a_one_gpu_node(k8s_cluster, k8s_namespace, k8s_node):
    for name in ("gpu-a", "gpu-b"):
        k8s_cluster.apply(job(name, k8s_namespace, "sleep 3", gpus=1))

    def one_running_one_queued():
        pods = k8s_cluster.get("pods", "-n", k8s_namespace).get("items", [])
        conditions = [c for p in pods for c in p["status"].get("conditions", [])]
        queued = any("Insufficient nvidia.com/gpu" in c.get("message", "") for c in conditions)
        return queued and any(p["status"].get("phase") == "Running" for p in pods)

    wait_until(one_running_one_queued, "one GPU Pod running while the other waits for the GPU")
    for name in ("gpu-a", "gpu-b"):
        wait_for_job(k8s_cluster, k8s_namespace, name, "complete")
    first, second = sorted(
        (
            terminated(p)
            for name in ("gpu-a", "gpu-b")
            for p in pods_of(k8s_cluster, k8s_namespace, name)
        ),
        key=lambda t: t["startedAt"],
    )
    assert first["finishedAt"] <= second["startedAt"]


def test_pod_talks_to_the_api_as_its_service_account(k8s_cluster, k8s_namespace, k8s_node):
    ns = {"namespace": k8s_namespace}
    k8s_cluster.apply(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reader", **ns}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "allowed", **ns}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "read-configmaps", **ns},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "reader", **ns},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "read-configmaps",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "reader", **ns}],
        },
    )
    k8s_cluster.wait_for_service_account(k8s_namespace, "reader")
    script = textwrap.dedent(
        """
        from kubernetes import client, config
        from kubernetes.client.rest import ApiException
        config.load_kube_config()
        core = client.CoreV1Api()
        namespace = open("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read()
        core.read_namespaced_config_map("allowed", namespace)
        try:
            core.list_namespaced_secret(namespace)
            outcome = "secrets listed"
        except ApiException as error:
            outcome = f"secrets {error.status}"
        open("/dev/termination-log", "w").write(f"configmap read, {outcome}")
        """
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "as-reader", **ns},
        "spec": {
            "serviceAccountName": "reader",
            "restartPolicy": "Never",
            "containers": [
                {"name": "main", "image": "python", "command": [sys.executable, "-c", script]}
            ],
        },
    }
    k8s_cluster.apply(pod)
    done = wait_until(
        lambda: (
            k8s_cluster.get("pod", "as-reader", "-n", k8s_namespace)["status"].get("phase")
            in ("Succeeded", "Failed")
            and k8s_cluster.get("pod", "as-reader", "-n", k8s_namespace)
        ),
        "the ServiceAccount Pod to end",
    )
    logs = k8s_node.logs(k8s_namespace, "as-reader", "main")
    assert done["status"]["phase"] == "Succeeded", logs
    assert terminated(done)["message"] == "configmap read, secrets 403"


def test_deleting_a_job_kills_its_process(k8s_cluster, k8s_namespace, k8s_node: NodeSimulator):
    data = k8s_node.create_claim(k8s_namespace, "work")
    script = "echo $$$$ > /data/pid; exec sleep 600"  # Kubernetes reads "$$" as "$"
    k8s_cluster.apply(job("forever", k8s_namespace, script, claim="work"))
    pid = int(wait_until(lambda: (data / "pid").exists() and (data / "pid").read_text(), "the pid"))
    os.kill(pid, 0)  # running
    k8s_cluster.kubectl("delete", "job", "forever", "-n", k8s_namespace, "--wait=false")

    def process_gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_until(process_gone, "the Job's process to be killed", timeout=30)
    wait_until(
        lambda: not pods_of(k8s_cluster, k8s_namespace, "forever"), "the Pod to go", timeout=30
    )


def pod(name: str, namespace: str, script: str, **spec) -> dict:
    """A bare Pod (restartPolicy Never) whose container ``main`` runs ``sh -c script``."""
    container = {"name": "main", "image": "busybox", "command": ["sh", "-c", script]}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"restartPolicy": "Never", "containers": [container], **spec},
    }


def wait_for_pod_end(cluster: ControlPlane, namespace: str, name: str) -> dict:
    """The Pod once its phase is Succeeded or Failed."""

    def ended():
        found = cluster.get("pod", name, "-n", namespace)
        return found if found["status"].get("phase") in ("Succeeded", "Failed") else None

    return wait_until(ended, f"pod {namespace}/{name} to end")


def test_pod_gets_init_containers_env_and_volumes(k8s_cluster, k8s_namespace, k8s_node):
    ns = {"namespace": k8s_namespace}
    k8s_cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds", **ns},
            "stringData": {"password": "s3cret"},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings", **ns},
            "data": {"mode": "fast"},
        },
    )
    manifest = pod(
        "features",
        k8s_namespace,
        'echo "$(cat /scratch/init.txt) $(cat /etc/settings/mode) $PASSWORD $POD/$NS $GREETING"'
        " > /dev/termination-log",
        initContainers=[
            {
                "name": "init",
                "image": "busybox",
                "command": ["sh", "-c", "echo from-init > /scratch/init.txt"],
                "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
            }
        ],
        volumes=[
            {"name": "scratch", "emptyDir": {"medium": "Memory"}},
            {"name": "settings", "configMap": {"name": "settings"}},
        ],
    )
    manifest["spec"]["containers"][0] |= {
        "env": [
            {
                "name": "PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}},
            },
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "GREETING", "value": "hello-$(POD)"},
        ],
        "volumeMounts": [
            {"name": "scratch", "mountPath": "/scratch"},
            {"name": "settings", "mountPath": "/etc/settings"},
        ],
    }
    k8s_cluster.apply(manifest)
    ended = wait_for_pod_end(k8s_cluster, k8s_namespace, "features")
    assert ended["status"]["phase"] == "Succeeded", k8s_node.logs(k8s_namespace, "features", "main")
    expected = f"from-init fast s3cret features/{k8s_namespace} hello-features\n"
    assert terminated(ended)["message"] == expected
    init_status = ended["status"]["initContainerStatuses"][0]
    assert init_status["state"]["terminated"]["exitCode"] == 0


def test_failing_init_container_fails_the_pod(k8s_cluster, k8s_namespace, k8s_node):
    manifest = pod(
        "bad-init",
        k8s_namespace,
        "echo never",
        initContainers=[{"name": "init", "image": "busybox", "command": ["sh", "-c", "exit 7"]}],
    )
    k8s_cluster.apply(manifest)
    ended = wait_for_pod_end(k8s_cluster, k8s_namespace, "bad-init")
    assert ended["status"]["phase"] == "Failed"
    init_status = ended["status"]["initContainerStatuses"][0]
    assert init_status["state"]["terminated"]["exitCode"] == 7
    assert "waiting" in ended["status"]["containerStatuses"][0]["state"]
    assert k8s_node.logs(k8s_namespace, "bad-init", "main") == ""


def test_active_deadline_kills_and_fails_the_pod(k8s_cluster, k8s_namespace, k8s_node):
    k8s_cluster.apply(pod("slow", k8s_namespace, "sleep 60", activeDeadlineSeconds=2))
    ended = wait_for_pod_end(k8s_cluster, k8s_namespace, "slow")
    assert ended["status"]["phase"] == "Failed"
    assert ended["status"]["reason"] == "DeadlineExceeded"
    assert terminated(ended)["exitCode"] == 128 + 15  # SIGTERM


def test_on_failure_restarts_the_container_in_place(k8s_cluster, k8s_namespace, k8s_node):
    script = "[ -f /scratch/failed-once ] && exit 0; touch /scratch/failed-once; exit 1"
    manifest = pod(
        "retry",
        k8s_namespace,
        script,
        restartPolicy="OnFailure",
        volumes=[{"name": "scratch", "emptyDir": {}}],
    )
    manifest["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "scratch", "mountPath": "/scratch"}
    ]
    k8s_cluster.apply(manifest)
    ended = wait_for_pod_end(k8s_cluster, k8s_namespace, "retry")
    assert ended["status"]["phase"] == "Succeeded"
    status = ended["status"]["containerStatuses"][0]
    assert status["restartCount"] == 1
    assert status["lastState"]["terminated"]["exitCode"] == 1
