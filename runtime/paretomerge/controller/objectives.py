"""Normalised objectives from benchmark scores, against the base and expert anchors.

For benchmarks ``s`` with accuracy ``acc_s`` and mean output tokens ``tok_s``, a model
``M`` scores (both maximised, each the mean over benchmarks)::

    f1 = mean_s (acc_s(M) - acc_s(base)) / (acc_s(expert) - acc_s(base))
    f2 = mean_s (tok_s(M) - tok_s(expert)) / (tok_s(base) - tok_s(expert))

so the base sits at ``(0, 1)`` and the expert at ``(1, 0)``. That needs anchors that
differ the expected way on every benchmark: an expert more accurate and more verbose than
the base. Anything else is an :class:`AnchorError`, not a division by zero.
"""

from __future__ import annotations

from collections.abc import Sequence

from paretomerge.results import Scores


class AnchorError(ValueError):
    """The base and expert evaluations cannot normalise the objectives."""


def check_anchors(base: Scores, expert: Scores, benchmarks: Sequence[str]) -> None:
    """Raise :class:`AnchorError` naming every benchmark on which the anchors are degenerate."""
    problems = []
    for name in benchmarks:
        if name not in base or name not in expert:
            problems.append(f"{name}: no anchor score")
            continue
        acc_base, acc_expert = base[name].accuracy, expert[name].accuracy
        tok_base, tok_expert = base[name].mean_output_tokens, expert[name].mean_output_tokens
        if not acc_expert > acc_base:
            problems.append(
                f"{name}: the expert is no more accurate than the base "
                f"({acc_expert:.4f} <= {acc_base:.4f}), so accuracy cannot be normalised"
            )
        if not tok_expert > tok_base:
            problems.append(
                f"{name}: the expert writes no more tokens than the base "
                f"({tok_expert:.1f} <= {tok_base:.1f}), so the token cost cannot be normalised"
            )
    if problems:
        raise AnchorError(
            "degenerate anchors (choose other models or benchmarks, or more questions): "
            + "; ".join(problems)
        )


def normalised_objectives(
    scores: Scores, base: Scores, expert: Scores, benchmarks: Sequence[str]
) -> tuple[float, float]:
    """``(f1, f2)`` of a model's ``scores``; anchors must have passed :func:`check_anchors`."""
    f1 = f2 = 0.0
    for name in benchmarks:
        acc, tok = scores[name].accuracy, scores[name].mean_output_tokens
        acc_base, acc_expert = base[name].accuracy, expert[name].accuracy
        tok_base, tok_expert = base[name].mean_output_tokens, expert[name].mean_output_tokens
        f1 += (acc - acc_base) / (acc_expert - acc_base)
        f2 += (tok - tok_expert) / (tok_base - tok_expert)
    return f1 / len(benchmarks), f2 / len(benchmarks)
