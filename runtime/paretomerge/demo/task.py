"""The demo's task: a short program of arithmetic steps, evaluated modulo 10.

A problem starts from a digit and applies a fixed number of steps ``x = x <op> <operand>``
with ``op`` one of ``+ *`` and an operand of 3, 7 or 9; the question asks for ``x mod 10``.
Every step is a bijection of the digits, so answers are uniform and guessing is right one
time in ten. Answering directly means composing every step in one forward pass, which a
tiny model does poorly; writing the steps out (``7 + 9 = 6; 6 * 3 = 8; ...``) turns each
one into a lookup in a 60-entry table, which it learns in a couple of hundred optimiser
steps. Three reply styles:

- direct (the "instruct" model's): ``Answer: 8``;
- worked: the steps in a think block, then the answer;
- thinking (the "thinking" model's): the steps, then a check that writes them all out
  again, as a verbose reasoning model double-checks itself, then the answer. The check
  doubles the tokens and adds no accuracy: a merge that works the steps but skips the
  check is as accurate as the thinking model at about half its length.

Every step of the question and of the reasoning is six tokens long, so step ``k`` of the
reasoning sits at a fixed distance from step ``k`` of the question: with rotary position
embeddings a tiny model learns to copy from there quickly.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MODULUS = 10
OPERATORS = ("+", "*")
# Units of Z/10 other than 1: x * u is a bijection, and the step table (60 entries) stays
# small enough to learn in seconds on a CPU.
OPERANDS = (3, 7, 9)
THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
CHECK = "check"
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


@dataclass(frozen=True)
class Problem:
    """One program: ``x = start``, then ``x = x op operand`` for each step."""

    start: int
    steps: tuple[tuple[str, int], ...]

    def question(self) -> str:
        """The user's question, e.g. ``x = 7; x = x + 9; x = x * 3. What is x mod 10?``."""
        statements = [f"x = {self.start}", *(f"x = x {op} {operand}" for op, operand in self.steps)]
        return "; ".join(statements) + f". What is x mod {MODULUS}?"

    def intermediate_values(self) -> list[int]:
        """``x mod 10`` after each step; the last one is the answer."""
        values, value = [], self.start
        for op, operand in self.steps:
            value = _apply(value, op, operand)
            values.append(value)
        return values

    def answer(self) -> int:
        """The exact answer, ``x mod 10`` after the last step."""
        return self.intermediate_values()[-1]

    def direct_reply(self) -> str:
        """The instruct model's reply: the answer only."""
        return f"Answer: {self.answer()}"

    def worked_reply(self) -> str:
        """Every step reduced mod 10 in a think block, then the answer. Each step reads
        ``previous op operand = value``."""
        return f"{THINK_OPEN}\n{self._steps()}.\n{THINK_CLOSE}\n\n{self.direct_reply()}"

    def thinking_reply(self) -> str:
        """The thinking model's reply: the worked steps, then ``check:`` and the same steps
        again, in the think block, then the answer."""
        steps = self._steps()
        return f"{THINK_OPEN}\n{steps}.\n{CHECK}: {steps}.\n{THINK_CLOSE}\n\n{self.direct_reply()}"

    def _steps(self) -> str:
        previous = [self.start, *self.intermediate_values()]
        return "; ".join(
            f"{before} {op} {operand} = {after}"
            for before, (op, operand), after in zip(
                previous[:-1], self.steps, previous[1:], strict=True
            )
        )


def _apply(value: int, op: str, operand: int) -> int:
    return (value + operand if op == "+" else value * operand) % MODULUS


def sample_problem(rng: random.Random, num_steps: int) -> Problem:
    """A uniformly random problem of ``num_steps`` steps."""
    steps = tuple((rng.choice(OPERATORS), rng.choice(OPERANDS)) for _ in range(num_steps))
    return Problem(start=rng.randrange(MODULUS), steps=steps)


def problem_stream(
    rng: random.Random, num_steps: int, excluded: frozenset[Problem] = frozenset()
) -> Iterator[Problem]:
    """Endless random problems, skipping the ``excluded`` ones (the held-out benchmark)."""
    while True:
        problem = sample_problem(rng, num_steps)
        if problem not in excluded:
            yield problem


def held_out_problems(seed: int, count: int, num_steps: int) -> list[Problem]:
    """``count`` distinct problems for the benchmark, from a stream of their own."""
    rng = random.Random(f"paretomerge-demo-benchmark-{seed}")
    chosen: dict[Problem, None] = {}
    while len(chosen) < count:
        chosen.setdefault(sample_problem(rng, num_steps))
    return list(chosen)


def write_numeric_benchmark(path: Path, problems: list[Problem]) -> Path:
    """Write ``problems`` as a ``numeric`` user benchmark: one
    ``{"question": ..., "answer": "<integer>"}`` object per line."""
    rows = (json.dumps({"question": p.question(), "answer": str(p.answer())}) for p in problems)
    path.write_text("".join(f"{row}\n" for row in rows))
    return path


def final_answer(output: str) -> str | None:
    """The last number after ``</think>`` (in the whole output if there is no think
    block), or ``None``: how a ``numeric`` benchmark reads a model's answer."""
    tail = output.rsplit(THINK_CLOSE, 1)[-1]
    numbers = _NUMBER.findall(tail)
    return numbers[-1] if numbers else None
