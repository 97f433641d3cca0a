"""Security on a real control plane, checked on one small run (budget 1: the controller,
the profile, both anchors and one candidate each run as a real Job, the candidate with
its merge init container):

- every Pod and container runs restricted: non-root, no privilege escalation, every
  capability dropped, read-only root filesystem, seccomp RuntimeDefault;
- the controller's ServiceAccount, with its own token against the API server, can patch
  its run's status and create Jobs in its namespace, and nothing more: not another run's
  status, not Jobs in another namespace, not Secrets;
- a Secret the run references (the hub token) reaches the candidate pods by reference
  only, and its value is in no status, Event, log or file of the run.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest
from k8s.control_plane import ControlPlane, wait_until
from k8s.node_simulator import NodeSimulator
from k8s.rest import KubeApi, KubeApiError
from test_operator import (  # noqa: F401 - fixtures
    CLAIM,
    RUN_SECONDS,
    crd,
    manifest,
    node,
    operator,
    volume,
    wait_for_phase,
)

from paretomerge.k8s.constants import COMPONENT_LABEL
from paretomerge.k8s.executor import task_job
from paretomerge.k8s.objects import controller_name
from paretomerge.k8s.settings import Images
from paretomerge.merge.plan import MergePlan
from paretomerge.spec import EndpointSpec, parse_run
from paretomerge.tasks import EvaluateTask

pytest_plugins = ["k8s.fixtures"]

RUN = "tiny-cpu"
COMPONENTS = {"controller", "profile", "base-evaluation", "expert-evaluation", "merged-evaluation"}


def service_account_token(cluster: ControlPlane, namespace: str, account: str) -> str:
    """A token of ``account`` from the TokenRequest API, as a pod would get one."""
    request = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": 600},
    }
    path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token"
    return cluster.rest().request("POST", path, request)["status"]["token"]


def status_code(call) -> int:
    try:
        call()
    except KubeApiError as error:
        return error.status
    return 200


def can_i(cluster: ControlPlane, user: str, *args: str) -> bool:
    result = cluster.kubectl("auth", "can-i", *args, f"--as={user}", check=False)
    return result.stdout.strip() == "yes"


def component(pod: dict) -> str:
    return pod["metadata"]["labels"][COMPONENT_LABEL]


def restricted(container: dict, pod_context: dict) -> list[str]:
    """What is missing from the restricted profile for one container (pod-level fields
    count where the container leaves them out)."""
    context = container.get("securityContext") or {}
    problems = []
    if not context.get("runAsNonRoot", pod_context.get("runAsNonRoot")):
        problems.append("runAsNonRoot")
    if context.get("allowPrivilegeEscalation") is not False:
        problems.append("allowPrivilegeEscalation")
    if (context.get("capabilities") or {}).get("drop") != ["ALL"]:
        problems.append("capabilities.drop")
    if context.get("readOnlyRootFilesystem") is not True:
        problems.append("readOnlyRootFilesystem")
    seccomp = context.get("seccompProfile") or pod_context.get("seccompProfile") or {}
    if seccomp.get("type") != "RuntimeDefault":
        problems.append("seccompProfile")
    return problems


def files_containing(root: Path, text: bytes) -> list[str]:
    """Files under ``root`` holding ``text`` (symlinked directories, such as the models
    on the volume, are not followed)."""
    found = []
    for directory, _, names in os.walk(root):
        for name in names:
            path = Path(directory) / name
            if path.is_file() and not path.is_symlink() and text in path.read_bytes():
                found.append(str(path))
    return found


def test_an_endpoint_api_key_reaches_only_the_evaluation_and_by_reference() -> None:
    run = parse_run(manifest("team-a"))
    endpoint = {
        "url": "http://llm:8000/v1",
        "apiKeySecret": {"name": "llm-api", "key": "LLM_API_KEY"},
    }
    evaluation = run.spec.evaluation.model_copy(
        update={"engine": "endpoint", "endpoint": EndpointSpec.model_validate(endpoint)}
    )
    plan = MergePlan(
        base="models/instruct",
        experts=["models/thinking"],
        method="task_arithmetic",
        granularity="model",
        layer_weights=[0.5],
        head_weight=0.5,
    )
    task = EvaluateTask(
        id="c0001",
        work_dir="runs/tiny-cpu/candidates/c0001",
        role="merged",
        plan=plan,
        evaluation=evaluation,
        objectives=run.spec.objectives,
    )
    body = {**manifest("team-a"), "metadata": {"name": RUN, "namespace": "team-a", "uid": "1"}}
    pod = task_job(task, 0, run, body, Images("rt", "ev"))["spec"]["template"]["spec"]
    (merge,), (evaluate,) = pod["initContainers"], pod["containers"]
    reference = {"secretKeyRef": {"name": "llm-api", "key": "LLM_API_KEY"}}
    assert {"name": "LLM_API_KEY", "valueFrom": reference} in evaluate["env"]
    assert "LLM_API_KEY" not in json.dumps(merge)


@pytest.mark.k8s
@pytest.mark.slow
def test_pods_are_restricted_rbac_is_least_privilege_and_secrets_stay_secret(
    k8s_cluster: ControlPlane,
    k8s_namespace: str,
    node: NodeSimulator,  # noqa: F811 - the fixture imported above
    operator,  # noqa: F811
    volume: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    namespace, other_namespace = k8s_namespace, f"{k8s_namespace}-other"
    secret_value = f"hf_secret_{uuid.uuid4().hex}"
    node.create_claim(namespace, CLAIM)
    k8s_cluster.kubectl(
        "create",
        "secret",
        "generic",
        "hub-token",
        f"--from-literal=token={secret_value}",
        "-n",
        namespace,
    )
    k8s_cluster.kubectl("create", "namespace", other_namespace)
    try:
        run = manifest(namespace, budget=1, initialPoints=1)
        run["spec"]["execution"]["hubTokenSecret"] = {"name": "hub-token", "key": "token"}
        other = manifest(namespace, batchSize=9)  # invalid: fails at once, no controller
        other["metadata"]["name"] = "other-run"
        for body in (run, other):
            k8s_cluster.kubectl("apply", "-f", "-", stdin=json.dumps(body))

        check_rbac(k8s_cluster, namespace, other_namespace)
        final = wait_for_phase(k8s_cluster, namespace, RUN, RUN_SECONDS)
        assert final["phase"] == "Succeeded", final.get("message")
    finally:
        k8s_cluster.kubectl("delete", "namespace", other_namespace, "--wait=false")

    pods = k8s_cluster.get("pods", "-n", namespace)["items"]
    components = {component(p) for p in pods}
    assert components == COMPONENTS
    for pod in pods:
        spec, name = pod["spec"], pod["metadata"]["name"]
        context = spec.get("securityContext") or {}
        assert context.get("runAsNonRoot") and context.get("runAsUser", 0) != 0, name
        assert context["seccompProfile"]["type"] == "RuntimeDefault", name
        for container in spec.get("initContainers", []) + spec["containers"]:
            assert not restricted(container, context), (name, container["name"])
        if component(pod) != "controller":
            assert spec["automountServiceAccountToken"] is False, name  # no API access
    merged = [p for p in pods if component(p) == "merged-evaluation"]
    assert [c["name"] for c in merged[0]["spec"]["initContainers"]] == ["merge"]

    # The Secret by reference only, and its value nowhere the run, the operator or the
    # node wrote (logs, task files, results, kubeconfigs), nor in the API's objects.
    hf_token = next(e for e in merged[0]["spec"]["containers"][0]["env"] if e["name"] == "HF_TOKEN")
    assert hf_token == {
        "name": "HF_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "hub-token", "key": "token"}},
    }
    for kind in ("pmr", "events", "jobs", "pods", "configmaps"):
        listing = k8s_cluster.kubectl("get", kind, "-n", namespace, "-o", "json").stdout
        assert secret_value not in listing, kind
    assert (volume / "runs" / RUN / "checkpoint.json").exists()
    assert not files_containing(tmp_path, secret_value.encode())


def check_rbac(cluster: ControlPlane, namespace: str, other_namespace: str) -> None:
    """The controller's ServiceAccount: what ``kubectl auth can-i`` says it may do, then
    real requests with its own token."""
    account = controller_name(RUN)
    user = f"system:serviceaccount:{namespace}:{account}"
    wait_until(  # created after the account, its Role and RoleBinding
        lambda: cluster.get("job", account, "-n", namespace), "the controller Job", timeout=60
    )
    cluster.wait_for_service_account(namespace, account)
    allowed = {
        ("patch", f"paretomergeruns.paretomerge.io/{RUN}", "--subresource=status"),
        ("create", "jobs.batch"),
        ("delete", "jobs.batch"),
        ("list", "pods"),
    }
    denied = {
        ("patch", "paretomergeruns.paretomerge.io/other-run", "--subresource=status"),
        ("get", "paretomergeruns.paretomerge.io/other-run"),
        ("patch", f"paretomergeruns.paretomerge.io/{RUN}"),  # its spec: the user's
        ("delete", f"paretomergeruns.paretomerge.io/{RUN}"),
        ("get", "secrets"),
        ("list", "secrets"),
        ("create", "pods"),
        ("create", "roles.rbac.authorization.k8s.io"),
    }
    for verb, resource, *extra in allowed:
        assert can_i(cluster, user, verb, resource, "-n", namespace, *extra), (verb, resource)
    for verb, resource, *extra in denied:
        assert not can_i(cluster, user, verb, resource, "-n", namespace, *extra), (verb, resource)
    assert not can_i(cluster, user, "create", "jobs.batch", "-n", other_namespace)

    api = KubeApi(
        cluster.api_url, cluster.ca_file, service_account_token(cluster, namespace, account)
    )
    runs = f"/apis/paretomerge.io/v1alpha1/namespaces/{namespace}/paretomergeruns"

    def patch_status(name: str) -> int:
        return status_code(
            lambda: api.request(
                "PATCH",
                f"{runs}/{name}/status",
                {"status": {}},
                content_type="application/merge-patch+json",
            )
        )

    def create_job(where: str) -> int:
        job = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "probe"},
            "spec": {
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "c", "image": "x", "command": ["true"]}],
                    }
                }
            },
        }
        path = f"/apis/batch/v1/namespaces/{where}/jobs"
        return status_code(lambda: api.request("POST", path, job, query={"dryRun": "All"}))

    assert patch_status(RUN) == 200
    assert patch_status("other-run") == 403
    assert create_job(namespace) == 200
    assert create_job(other_namespace) == 403
    secrets = f"/api/v1/namespaces/{namespace}/secrets/hub-token"
    assert status_code(lambda: api.request("GET", secrets)) == 403
