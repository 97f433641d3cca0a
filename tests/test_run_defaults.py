"""A cluster's run defaults (Helm values) fill what a run leaves out, on both sides: the
operator's controller Job and the controller's candidate Jobs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from builders import run_manifest
from k8s.control_plane import ControlPlane, wait_until
from k8s.operator_process import OperatorProcess, run_status
from pydantic import ValidationError
from test_operator import crd  # noqa: F401 - fixture
from test_operator import manifest as operator_manifest

from paretomerge.k8s.constants import IMAGE_PULL_SECRETS_ENV, RUN_DEFAULTS_ENV
from paretomerge.k8s.executor import task_job
from paretomerge.k8s.runs import effective_run
from paretomerge.k8s.settings import ClusterSettings, Images
from paretomerge.tasks import ProfileTask
from paretomerge_operator.resources import controller_job

pytest_plugins = ["k8s.fixtures"]

DEFAULTS = {
    "storage": {"claimName": "shared-models"},
    "resources": {"gpuResource": "amd.com/gpu"},
    "nodeSelector": {"pool": "gpu"},
    "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
}


def manifest(execution: dict | None = None) -> dict:
    sections = {"execution": execution} if execution is not None else {}
    return run_manifest(
        "r", "team-a", {"uid": "1"}, objectives={"benchmarks": [{"name": "aime25"}]}, **sections
    )


def test_defaults_fill_what_the_run_leaves_out_or_empty() -> None:
    run = effective_run(manifest({"nodeSelector": {}}), DEFAULTS)
    execution = run.spec.execution
    assert execution.storage.claim_name == "shared-models"
    assert execution.resources.gpu_resource == "amd.com/gpu"
    assert execution.resources.gpus == 1  # a field of neither keeps the spec's default
    assert execution.node_selector == {"pool": "gpu"}
    assert execution.tolerations[0]["key"] == "gpu"


def test_what_the_run_sets_wins() -> None:
    own = {
        "storage": {"claimName": "mine", "runsPath": "out"},
        "resources": {"gpus": 2},
        "nodeSelector": {"pool": "h100"},
        "tolerations": [{"key": "mine", "operator": "Exists"}],
    }
    run = effective_run(manifest(own), DEFAULTS)
    execution = run.spec.execution
    assert (execution.storage.claim_name, execution.storage.runs_path) == ("mine", "out")
    assert (execution.resources.gpus, execution.resources.gpu_resource) == (2, "amd.com/gpu")
    assert execution.node_selector == {"pool": "h100"}
    assert [t["key"] for t in execution.tolerations] == ["mine"]
    assert "execution" not in manifest()["spec"]  # the manifest itself is not changed


def test_defaults_reach_the_controller_and_its_candidate_jobs(monkeypatch) -> None:
    monkeypatch.setenv(RUN_DEFAULTS_ENV, json.dumps(DEFAULTS))
    monkeypatch.setenv(IMAGE_PULL_SECRETS_ENV, "registry-a,registry-b")
    settings = ClusterSettings.from_environment()
    run = effective_run(manifest(), settings.run_defaults)
    job = controller_job(run, manifest(), settings)
    pod = job["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert json.loads(env[RUN_DEFAULTS_ENV]) == DEFAULTS
    assert env[IMAGE_PULL_SECRETS_ENV] == "registry-a,registry-b"
    assert pod["imagePullSecrets"] == [{"name": "registry-a"}, {"name": "registry-b"}]
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "shared-models"

    images = Images("rt:1", "ev:1", pull_secrets=settings.images.pull_secrets)
    task = ProfileTask(id="profile", work_dir="runs/r/profile", base="b", experts=["e"])
    candidate = task_job(task, 0, run, manifest(), images)["spec"]["template"]["spec"]
    assert candidate["nodeSelector"] == {"pool": "gpu"}
    assert candidate["imagePullSecrets"][1] == {"name": "registry-b"}


def test_invalid_defaults_fail_at_startup(monkeypatch) -> None:
    monkeypatch.setenv(RUN_DEFAULTS_ENV, json.dumps({"resources": {"gpus": -1}}))
    with pytest.raises(ValidationError):
        ClusterSettings.from_environment()


# Specs the API server's schema lets through, each with a problem only the operator sees.
EDITS_THE_SCHEMA_LETS_THROUGH = {
    "reference-point-of-three": ("search", "referencePoint", [-0.2, -0.2, -0.2]),
    "expert-is-the-base": ("models", "experts", [{"path": "models/instruct"}]),
    "misspelt-field": ("search", "budgte", 3),
}


@pytest.mark.k8s
def test_the_create_and_edit_handlers_judge_a_run_alike(
    k8s_cluster: ControlPlane,
    crd,  # noqa: F811 - the fixture imported above
    k8s_namespace: str,
    tmp_path: Path,
) -> None:
    """Both handlers judge the run the controller will run, the cluster's run defaults
    filled in, and say so alike: a spec refused at creation is refused as an edit with
    the same problems, and an edit back to a valid spec is accepted as a valid run is."""

    def valid(name: str) -> dict:
        run = operator_manifest(k8s_namespace)
        run["metadata"]["name"] = name
        return run

    def judged(name: str, reason: str | None = None) -> dict:
        """The run's Valid condition once there is one (with ``reason``, when given)."""

        def condition() -> dict | None:
            conditions = run_status(k8s_cluster, k8s_namespace, name).get("conditions", [])
            found = next((c for c in conditions if c["type"] == "Valid"), None)
            return found if found and reason in (None, found["reason"]) else None

        return wait_until(condition, f"{name} judged", timeout=60, every=0.5)

    settings = {RUN_DEFAULTS_ENV: json.dumps(DEFAULTS)}
    log_file = tmp_path / "operator.log"
    with OperatorProcess.standalone(k8s_cluster, log_file, (k8s_namespace,), settings):
        k8s_cluster.apply(valid("accepted"))
        accepted = judged("accepted")
        assert accepted["status"] == "True", accepted
        for case, (section, field, value) in EDITS_THE_SCHEMA_LETS_THROUGH.items():
            refused, edited = f"{case}-created", f"{case}-edited"
            run = valid(refused)
            run["spec"][section][field] = value
            k8s_cluster.apply(run)
            at_creation = judged(refused)
            assert at_creation["status"] == "False", at_creation

            k8s_cluster.apply(valid(edited))
            assert judged(edited, "SpecAccepted")["status"] == "True"
            k8s_cluster.apply({**run, "metadata": {**run["metadata"], "name": edited}})
            as_edit = judged(edited, "InvalidEdit")
            assert as_edit["status"] == "False"
            expected = at_creation["message"].replace(refused, edited)
            assert as_edit["message"] == f"the edit is ignored: {expected}"

            k8s_cluster.apply(valid(edited))
            back = judged(edited, "SpecAccepted")
            assert (back["status"], back["message"]) == (accepted["status"], accepted["message"])
