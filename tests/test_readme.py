"""The README stays true: its commands run as written after ``tools/install.sh``, the
files it names exist, and the size of the suite it quotes is the suite's.

A command is checked as the shell would split it (backslash continuations joined, ``&&``,
``;`` and ``|`` apart): ``paretomerge`` names one of the CLI's subcommands and only its
options, and the programs that the install puts in ``.venv`` (``paretomerge``, ``hf``,
``python``, ``pytest``) are either called there or after a line of the same block that
activates it.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import typer

from paretomerge.cli import app

REPO = Path(__file__).parent.parent
README = (REPO / "README.md").read_text()
ACTIVATE = "source .venv/bin/activate"
# Programs that tools/install.sh puts in .venv/bin, not on PATH.
IN_VENV = {"paretomerge", "hf", "python", "pytest"}
# The top-level entries of the repository: a path starting with one is in the repository.
TOP_LEVEL = {path.name for path in REPO.iterdir()} - {".venv", ".git"}


def fenced_blocks(language: str) -> list[str]:
    """The README's fenced code blocks of ``language``, continuation lines joined."""
    blocks = re.findall(rf"^```{language}\n(.*?)^```", README, re.MULTILINE | re.DOTALL)
    return [block.replace("\\\n", " ") for block in blocks]


def commands(block: str) -> list[list[str]]:
    """Each command of a shell block as its words, comments and environment assignments
    (``PATH=...``) left out; ``[optional]`` brackets are dropped."""
    found = []
    for line in block.splitlines():
        line = re.sub(r"(^|\s)#.*", "", line)
        for part in re.split(r"&&|\|\||;|\|", line):
            if words := command_words(shlex.split(part)):
                found.append(words)
    return found


def command_words(words: list[str]) -> list[str]:
    """A command's words without leading environment assignments (``PATH=...``) and
    without the brackets of ``[optional]`` parts."""
    words = [word.strip("[]") for word in words]
    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
        words.pop(0)
    return words


def in_repository(word: str) -> bool:
    """Whether ``word`` names a path of this repository (not one a command makes, a
    volume's, or a placeholder's)."""
    return (
        "/" in word
        and word.split("/")[0] in TOP_LEVEL
        and not any(mark in word for mark in "<>*{}$")
    )


SHELL_COMMANDS = [words for block in fenced_blocks("bash") for words in commands(block)]
# Inline code, outside the fenced blocks: `paretomerge report RUN_DIR [--baseline
# RUN_DIR]`, `bench/demo_tradeoff.py`.
PROSE = re.sub(r"^```.*?^```", "", README, flags=re.MULTILINE | re.DOTALL)
INLINE_CODE = [command_words(code.split()) for code in re.findall(r"`([^`]+)`", PROSE)]
CLI = typer.main.get_command(app)


def test_the_readme_has_commands_to_check() -> None:
    programs = {Path(words[0]).name for words in SHELL_COMMANDS}
    assert {"paretomerge", "hf", "bash", "kubectl"} <= programs


def test_every_paretomerge_command_names_a_subcommand_and_its_options() -> None:
    """In the fenced blocks and in inline code (the commands' table among them)."""
    wrong = []
    for words in [*SHELL_COMMANDS, *INLINE_CODE]:
        if len(words) < 2 or Path(words[0]).name != "paretomerge":
            continue
        subcommand = CLI.commands.get(words[1])
        if subcommand is None:
            wrong.append(f"{' '.join(words)}: no subcommand {words[1]!r}")
            continue
        options = {name for p in subcommand.params for name in [*p.opts, *p.secondary_opts]}
        unknown = [word for word in words[2:] if word.startswith("--") and word not in options]
        if unknown:
            wrong.append(f"{' '.join(words)}: no option {unknown}")
    assert not wrong, wrong


def test_programs_of_the_environment_run_as_written_after_the_install() -> None:
    """``.venv/bin/paretomerge``, or a plain ``paretomerge`` after the line that
    activates the environment: ``tools/install.sh`` puts nothing on PATH."""
    bare = []
    for block in fenced_blocks("bash"):
        activated = False
        for words in commands(block):
            activated = activated or " ".join(words) == ACTIVATE
            if words[0] in IN_VENV and not activated:
                bare.append(" ".join(words))
    assert not bare, f"not on PATH after tools/install.sh: {bare}"


def test_every_file_the_readme_names_exists() -> None:
    """Paths in its commands and in its inline code (``bench/demo_tradeoff.py``)."""
    named = {w.rstrip(".,:") for c in [*SHELL_COMMANDS, *INLINE_CODE] for w in c}
    missing = sorted(word for word in named if in_repository(word) and not (REPO / word).exists())
    assert not missing, f"the README names files that do not exist: {missing}"


def test_the_suite_size_the_readme_quotes_is_within_a_tenth_of_the_collected() -> None:
    quoted = re.search(r"`pytest --collect-only -q`: (\d+) tests, (\d+) of them `k8s`", README)
    assert quoted, "the README quotes no suite size"
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "k8s", "-p", "no:warnings"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    counts = re.search(r"(\d+)/(\d+) tests collected", collected.stdout)
    assert counts, collected.stdout[-2000:] + collected.stderr[-2000:]
    k8s, total = map(int, counts.groups())
    quoted_total, quoted_k8s = map(int, quoted.groups())
    assert abs(quoted_total - total) <= 0.1 * total, (quoted_total, total)
    assert abs(quoted_k8s - k8s) <= 0.1 * k8s, (quoted_k8s, k8s)
