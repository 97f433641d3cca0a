"""Manifests built for Kubernetes, checked without a cluster."""

from __future__ import annotations

from builders import run_manifest

from paretomerge.k8s.executor import task_job
from paretomerge.k8s.objects import job_name
from paretomerge.k8s.settings import Images
from paretomerge.merge.plan import MergePlan
from paretomerge.spec import parse_run
from paretomerge.tasks import EvaluateTask, ProfileTask

MANIFEST = run_manifest(
    "r",
    "team-a",
    {"uid": "1234", "generation": 3},
    objectives={"benchmarks": [{"name": "aime25"}]},
    execution={
        "nodeSelector": {"gpu": "h100"},
        "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "priorityClassName": "batch-low",
        "resources": {"gpus": 2, "gpuResource": "amd.com/gpu", "memory": "80Gi"},
        "hubTokenSecret": {"name": "hub", "key": "token"},
    },
)
IMAGES = Images(runtime="rt:1", eval="ev:1")


def test_job_names_are_deterministic_and_fit_a_label() -> None:
    assert job_name("r", "c0001", 0) == "r-c0001-a0"
    long = job_name("x" * 70, "c0001", 2)
    assert len(long) <= 63 and long.endswith("-c0001-a2-" + long.split("-")[-1])
    assert long == job_name("x" * 70, "c0001", 2) != job_name("x" * 69 + "y", "c0001", 2)


def test_a_candidate_job_merges_in_an_init_container_and_evaluates_on_gpus() -> None:
    run = parse_run(MANIFEST)
    plan = MergePlan(
        base="models/base",
        experts=["models/expert"],
        method="task_arithmetic",
        granularity="model",
        layer_weights=[0.5, 0.5],
        head_weight=0.5,
    )
    task = EvaluateTask(
        id="c0007",
        work_dir="runs/r/candidates/c0007",
        role="merged",
        plan=plan,
        evaluation=run.spec.evaluation,
        objectives=run.spec.objectives,
    )
    job = task_job(task, 1, run, MANIFEST, IMAGES)
    assert job["metadata"]["name"] == "r-c0007-a1"
    assert job["metadata"]["ownerReferences"][0]["uid"] == "1234"
    assert job["spec"]["backoffLimit"] == 0
    pod = job["spec"]["template"]["spec"]
    (merge,), (evaluate,) = pod["initContainers"], pod["containers"]
    assert merge["image"] == "rt:1" and merge["args"] == ["--step", "merge"]
    assert evaluate["image"] == "ev:1" and evaluate["args"] == ["--step", "evaluate"]
    assert evaluate["resources"]["limits"]["amd.com/gpu"] == "2"
    assert "amd.com/gpu" not in merge["resources"]["limits"]
    assert pod["nodeSelector"] == {"gpu": "h100"} and pod["priorityClassName"] == "batch-low"
    assert pod["tolerations"][0]["key"] == "gpu"
    assert {"name": "dshm", "emptyDir": {"medium": "Memory"}} in pod["volumes"]
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "paretomerge-models"
    secret_env = next(e for e in evaluate["env"] if e["name"] == "HF_TOKEN")
    assert secret_env["valueFrom"]["secretKeyRef"] == {"name": "hub", "key": "token"}
    for container in (merge, evaluate):
        context = container["securityContext"]
        assert context["runAsNonRoot"] and not context["allowPrivilegeEscalation"]
        assert context["capabilities"]["drop"] == ["ALL"] and context["readOnlyRootFilesystem"]
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert "c0007" in evaluate["command"][2]


def test_the_profile_runs_on_cpu() -> None:
    run = parse_run(MANIFEST)
    task = ProfileTask(id="profile", work_dir="runs/r/profile", base="m/b", experts=["m/e"])
    pod = task_job(task, 0, run, MANIFEST, IMAGES)["spec"]["template"]["spec"]
    assert pod["initContainers"] == [] and "amd.com/gpu" not in str(pod["containers"])
