"""Every mistake of a run file in one attempt (issue 25): its fields' problems, those
across fields (on the fields that parsed) and the preflight's, listed together, each
under its field; a misspelt field with the name it was meant to be.

One manifest carries five mistakes: a negative validation budget and a misspelt
``concurrency`` (fields), ``initialPoints`` above the budget (across fields), a missing
expert and a line of data that is not JSON (the preflight). ``paretomerge validate`` and
``paretomerge run`` name all five at once. On a cluster the API server refuses the first
by its schema; one apply of the other four gets all four in the run's status: the operator
names the fields' problems and starts a controller that only checks the volume (only a pod
can read it) and adds its preflight's, launching nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from builders import merged, run_manifest, write_numeric_benchmark
from fake_tasks import cluster_run
from k8s.control_plane import ControlPlane, KubectlError, wait_until
from k8s.node_simulator import NodeSimulator
from k8s.operator_process import run_status, wait_for_phase
from test_faults import apply, crd, node, operator, volume  # noqa: F401 - fixtures
from tiny_models import link_tree, make_pair

from paretomerge.k8s.constants import RETRY_ANNOTATION
from paretomerge.k8s.objects import controller_name
from paretomerge.k8s.runner import refused_run_status
from paretomerge.spec import check_run

pytest_plugins = ["k8s.fixtures"]

#: The five mistakes, as changes of a valid run whose budget is 4.
MISTAKES = {
    "search": {"budget": 4, "initialPoints": 6, "validation": {"budget": -1}},
    "evaluation": {"concurency": 4},
    "models": {"experts": [{"path": "models/missing"}]},
}
#: What names each mistake, in the output of the command line.
NAMED = (
    "spec.search.validation.budget: Input should be greater than or equal to 0",
    "spec.evaluation.concurency: unknown field; did you mean concurrency?",
    "spec.search.initialPoints: 6 is above the budget (4)",
    "spec.models.experts[0].path: model directory",
    "spec.objectives.benchmarks[0].path: data/one.jsonl line 2: not JSON",
)
BROKEN_LINE = '{"question": "What is 1 + 6?", "answer": '


def break_second_line(path: Path) -> None:
    lines = path.read_text().splitlines()
    lines[1] = BROKEN_LINE
    path.write_text("\n".join(lines) + "\n")


def problems_of(data: dict) -> list[str]:
    return [str(problem) for problem in check_run(data).problems]


# --- the spec --------------------------------------------------------------------------------


def test_a_misspelt_field_suggests_the_name_it_was_meant_to_be() -> None:
    data = run_manifest(evaluation={"concurency": 4}, search={"intialPoints": 2})
    assert problems_of(data) == [
        "spec.search.intialPoints: unknown field; did you mean initialPoints?",
        "spec.evaluation.concurency: unknown field; did you mean concurrency?",
    ]


def test_an_unknown_field_like_no_other_lists_the_fields_there_are() -> None:
    data = run_manifest(merge={"blocks": {"zzz": 1}})
    assert problems_of(data) == [
        "spec.merge.blocks.zzz: unknown field; the fields here are count, strategy, alpha, beta"
    ]


def test_a_cross_field_problem_is_named_alongside_a_bad_field() -> None:
    data = run_manifest(search={"budget": 4, "initialPoints": 6, "seed": -1})
    assert problems_of(data) == [
        "spec.search.seed: Input should be greater than or equal to 0",
        "spec.search.initialPoints: 6 is above the budget (4)",
    ]


def test_a_removed_field_and_a_cross_field_problem_are_named_together() -> None:
    data = run_manifest(search={"batchSize": 4, "budget": 4, "initialPoints": 6})
    assert problems_of(data) == [
        "spec.search.batchSize was removed: execution.parallelism is how many candidates run "
        "at once",
        "spec.search.initialPoints: 6 is above the budget (4)",
    ]


@pytest.mark.parametrize(
    "search",
    [
        {"budget": -1, "initialPoints": 100},  # the budget is not known
        {"budegt": 200, "initialPoints": 100},  # nor is it when misspelt
        {"budget": 200, "initialPoints": "many"},
    ],
)
def test_a_cross_field_check_waits_for_the_bad_fields_it_reads(search: dict) -> None:
    """The default in a bad field's place is not the user's value: a check that reads
    it would judge a value nobody wrote (``100 is above the budget (88)``)."""
    checked = check_run(run_manifest(search=search))
    assert len(checked.problems) == 1, checked.problems
    assert "above the budget" not in str(checked.problems[0])


def test_a_bad_required_section_leaves_the_other_sections_checked() -> None:
    data = run_manifest(
        models={"base": {"path": "/absolute"}}, merge={"method": "task_arithmetic", "density": 0.5}
    )
    checked = check_run(data)
    assert [problem.field for problem in checked.problems] == [
        "spec.models.base.path",
        "spec.merge.density",
    ]
    assert checked.run is None  # no run to look at without its models


# --- the command line ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pair(tmp_path_factory.mktemp("pair"))


@pytest.fixture
def run_file(tmp_path: Path, pair: Path) -> Path:
    """A run file with the five mistakes, on a volume that has the base and the data."""
    link_tree(pair, tmp_path / "models")
    break_second_line(write_numeric_benchmark(tmp_path / "data" / "one.jsonl"))
    path = tmp_path / "run.yaml"
    data = run_manifest("five", evaluation={"engine": "transformers"})
    path.write_text(yaml.safe_dump(merged(data, {"spec": MISTAKES})))
    return path


def paretomerge(*args: str) -> subprocess.CompletedProcess:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "paretomerge", *args],
        env={**os.environ, "COLUMNS": "250"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    print(f"paretomerge {args[0]}: {time.monotonic() - started:.1f} s (process start included)")
    return result


@pytest.mark.parametrize("command", ["validate", "run"])
def test_one_attempt_names_all_five_mistakes(command: str, run_file: Path) -> None:
    result = paretomerge(command, str(run_file))
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{run_file} is invalid (5 problem(s))" in result.stderr
    for named in NAMED:
        assert f"  - {named}" in result.stderr, result.stderr
    assert not (run_file.parent / "runs").exists()  # nothing was started


def test_validate_passes_a_run_file_without_mistakes(tmp_path: Path, pair: Path) -> None:
    link_tree(pair, tmp_path / "models")
    write_numeric_benchmark(tmp_path / "data" / "one.jsonl")
    run_file = tmp_path / "run.yaml"
    run_file.write_text(yaml.safe_dump(run_manifest(evaluation={"engine": "transformers"})))
    result = paretomerge("validate", str(run_file))
    assert result.returncode == 0, result.stderr
    assert f"{run_file} is valid" in result.stdout
    assert not (tmp_path / "runs").exists()


def test_the_preflight_waits_for_a_bad_model_path_and_says_so(tmp_path: Path) -> None:
    data = run_manifest(models={"base": {"path": "/absolute"}})
    run_file = tmp_path / "run.yaml"
    run_file.write_text(yaml.safe_dump(data))
    result = paretomerge("validate", str(run_file))
    assert result.returncode == 1
    assert "spec.models.base.path: '/absolute' must be relative" in result.stderr
    assert (
        "(preflight): the models, data, engine and volume are not looked at until "
        "spec.models" in result.stderr
    )


# --- on the real API server, with the operator and a controller -----------------------------

RUN = "five"


def condition_of(status: dict, kind: str) -> dict:
    return next((c for c in status.get("conditions", []) if c["type"] == kind), {})


def test_a_refused_run_checked_again_after_a_retry_writes_nothing() -> None:
    """A check-only controller whose run was retried meanwhile leaves the status to the
    retried run's controller."""
    checked = check_run(run_manifest(search={"budget": 4, "initialPoints": 6}))
    assert refused_run_status({"phase": "Pending"}, checked, [], "ns/five", 1) is None
    status = refused_run_status({"phase": "Failed"}, checked, [], "ns/five", 1)
    assert status["message"] == f"ns/five is invalid (1 problem(s)):\n  - {NAMED[2]}"
    valid, preflight = (condition_of(status, kind) for kind in ("Valid", "Preflight"))
    assert (valid["status"], preflight["status"]) == ("False", "True")


@pytest.mark.k8s
@pytest.mark.slow
def test_the_cluster_names_every_mistake_where_it_can_know_it(
    k8s_cluster: ControlPlane,
    k8s_namespace: str,
    node: NodeSimulator,  # noqa: F811
    operator,  # noqa: F811
    volume: Path,  # noqa: F811
) -> None:
    break_second_line(volume / "data" / "one.jsonl")
    valid = cluster_run(k8s_namespace, RUN, budget=4, parallelism=1)
    five = merged(valid, {"spec": MISTAKES})

    def status() -> dict:
        return run_status(k8s_cluster, k8s_namespace, RUN)

    # The API server checks each field by the CRD's schema: the negative budget.
    with pytest.raises(KubectlError, match=r"spec\.search\.validation\.budget"):
        apply(k8s_cluster, five)

    # One apply of the other four: the operator names the fields' problems at once, in
    # the status and the Event, the misspelt field with its suggestion ...
    del five["spec"]["search"]["validation"]
    started = time.monotonic()
    apply(k8s_cluster, five)
    failed = wait_for_phase(k8s_cluster, k8s_namespace, RUN, 60)
    assert failed["phase"] == "Failed"
    assert condition_of(failed, "Valid")["status"] == "False"
    for named in NAMED[1:3]:
        assert named in failed["message"] and named in condition_of(failed, "Valid")["message"]
    events = k8s_cluster.get(
        "events", "-n", k8s_namespace, "--field-selector", "reason=InvalidSpec"
    )
    (event,) = [event["message"] for event in events["items"]]
    assert all(named in event for named in NAMED[1:3]), event

    # ... and a controller that only checks, the volume being a pod's, adds its preflight's:
    # all four in the status, nothing launched.
    wait_until(
        lambda: condition_of(status(), "Preflight").get("status") == "False",
        "the check of the volume",
        timeout=180,
    )
    checked = status()
    print(f"all four in the status {time.monotonic() - started:.1f} s after the apply")
    print(checked["message"])
    assert checked["phase"] == "Failed"
    assert f"{k8s_namespace}/{RUN} is invalid (4 problem(s))" in checked["message"]
    for named in NAMED[1:]:
        assert f"  - {named}" in checked["message"], checked["message"]
    for named in NAMED[1:3]:
        assert named in condition_of(checked, "Valid")["message"]
    for named in NAMED[3:]:
        assert named in condition_of(checked, "Preflight")["message"]
    (job,) = k8s_cluster.get("jobs", "-n", k8s_namespace)["items"]
    assert job["metadata"]["name"] == controller_name(RUN)
    assert "--check-only" in job["spec"]["template"]["spec"]["containers"][0]["args"]
    wait_until(
        lambda: (
            k8s_cluster.get("job", controller_name(RUN), "-n", k8s_namespace)
            .get("status", {})
            .get("succeeded")
        ),
        "the check to end",
        timeout=60,
    )

    # The spec fixed and the run retried, its controller's preflight names what is left.
    fixed_spec = merged(valid, {"spec": {"models": MISTAKES["models"]}})
    apply(k8s_cluster, fixed_spec)
    k8s_cluster.kubectl("annotate", "pmr", RUN, "-n", k8s_namespace, f"{RETRY_ANNOTATION}=1")

    def failed_by_its_preflight() -> bool:
        now = status()
        return now.get("phase") == "Failed" and "the preflight found" in now.get("message", "")

    wait_until(failed_by_its_preflight, "the retried run's preflight", timeout=180)
    retried = status()
    assert condition_of(retried, "Valid")["status"] == "True"
    for named in NAMED[3:]:
        assert (
            named in retried["message"] and named in condition_of(retried, "Preflight")["message"]
        )
    (job,) = k8s_cluster.get("jobs", "-n", k8s_namespace)["items"]
    assert "--check-only" not in job["spec"]["template"]["spec"]["containers"][0]["args"]
