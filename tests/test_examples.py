"""The download Job of ``examples/volume/``: it puts every model and data set exactly where
the papers' run files look for them, on the PVC they name, and the API server accepts it.
(Every run file of ``examples/`` is checked as a run in ``test_spec.py``.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from paretomerge.spec import load_run
from paretomerge.volume import volume_paths

pytest_plugins = ["k8s.fixtures"]

EXAMPLES = Path(__file__).parent.parent / "examples"
DOWNLOAD_JOB = EXAMPLES / "volume" / "download.yaml"
PAPER_RUNS = sorted(EXAMPLES.glob("qwen3-4b-*.yaml"))


def test_the_download_job_fills_every_path_of_the_papers_runs() -> None:
    job = yaml.safe_load(DOWNLOAD_JOB.read_text())
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (mount,) = [m["mountPath"] for m in container["volumeMounts"] if m["name"] == "data"]
    (claim,) = [
        v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if v["name"] == "data"
    ]
    downloaded = re.findall(r"^hf download .* --local-dir (\S+)$", container["args"][0], re.M)
    assert len(PAPER_RUNS) == 3
    for example in PAPER_RUNS:
        spec = load_run(example).spec
        assert spec.execution.storage.claim_name == claim, example.name
        read = {path for field, path in volume_paths(spec) if not field.endswith("runsPath")}
        assert {f"{mount}/{path}" for path in read} <= set(downloaded), example.name


@pytest.mark.k8s
def test_the_api_server_accepts_the_download_job(k8s_cluster, k8s_namespace) -> None:
    answer = k8s_cluster.kubectl(
        "apply", "--dry-run=server", "-n", k8s_namespace, "-o", "json", "-f", str(DOWNLOAD_JOB)
    )
    sent = yaml.safe_load(DOWNLOAD_JOB.read_text())["spec"]["template"]["spec"]
    kept = json.loads(answer.stdout)["spec"]["template"]["spec"]
    assert kept["containers"][0]["args"] == sent["containers"][0]["args"]
    assert kept["securityContext"]["runAsNonRoot"] is True
