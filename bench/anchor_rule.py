"""How far do the anchors' errors move the objectives, and how much does the run's rule help?

    python bench/anchor_rule.py [--draws 300] [--points 400]

Every value a run reports is normalised by the base's and the expert's scores, measured
once on the same questions (``paretomerge.controller.objectives``). For each of
``--draws`` measurements of the two anchors through the benchmark's simulator
(``QuestionLevelMergeProblem`` on member 0 of the smooth family: GPQA-Diamond's 198 and
AIME25's 30 questions, calibrated by the published Qwen3-4B Instruct and Thinking
figures; seed ``i`` draws the ``i``-th), on every question and on the search side of a
0.3 held-out split (21 of AIME25's), this prints:

- how often the first measurement is close on some benchmark, by accuracy, by output
  tokens (under 2 standard errors of the gap apart, or the wrong way round), and under 1;
- how often the run's rule (``judge_anchors``: measured again on that benchmark, each
  question asked 4 times) still ends the run;
- the normalisation error of ``--points`` random merges' true scores: the mean, 95th
  percentile and largest (over the draws) of the mean absolute difference between
  their objectives normalised by the measured anchors and by the true ones, with the
  first measurement alone (the baseline, in the same draws) and by the rule;
- what the rule costs: the anchors' output tokens over those of the first measurement.

Measured 7 Dec 2026 (300 draws, 400 points; the errors over the draws that both keep)::

    | questions | close | accuracy | tokens | under 1 | run ends: first | rule | f1 error mean, 95%, max: first | rule | f2 error mean, 95%, max: first | rule | anchor tokens / first |
    | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
    | every question | 0.40 | 0.20 | 0.24 | 0.05 | 0.000 | 0.000 | 0.086, 0.239, 0.762 | 0.066, 0.169, 0.412 | 0.077, 0.182, 1.271 | 0.052, 0.143, 0.333 | 1.59 |
    | search side of heldOut 0.3 | 0.64 | 0.34 | 0.41 | 0.14 | 0.013 | 0.000 | 0.121, 0.395, 0.787 | 0.076, 0.187, 0.434 | 0.105, 0.291, 1.114 | 0.064, 0.154, 0.266 | 1.68 |

``run ends: first`` is the policy before the rule: a first measurement the wrong way
round ended the run, any other was used as it came.

What these say: on AIME25's 30 questions the two models' accuracies (0.47 and 0.80) and
lengths (15k and 23k tokens, each answer's spread 0.64 of its mean) are often within
noise of each other, so the first measurement is close in 2 runs of 5 (on the 21
questions of a held-out split, 2 in 3), and under 1 standard error in 1 of 20 (1 in 7).
The rule cuts the mean normalisation error of both objectives by a quarter to two
fifths, and the worst draw's from 0.76 and 1.27 (a benchmark whose gap came out a
fraction of the truth weighs several times its share) to 0.41 and 0.33. No run ends
for an unlucky draw any more (4 in 300 did on 21 questions). It costs the anchors 1.6-1.7
times their tokens, about three candidates' worth, once per pair of models and
questions (the anchors are cached).
"""

from __future__ import annotations

import argparse

import numpy as np

from paretomerge.controller.objectives import AnchorError, check_anchors, close_anchors
from paretomerge.search.problems import (
    MeasuredAnchors,
    QuestionLevelMergeProblem,
    QuestionRecords,
    landscape_family_member,
)


class FirstMeasurement(QuestionLevelMergeProblem):
    """The simulator with the anchors as first measured: the same draws as the rule's
    first measurement (its measurement again draws after them)."""

    def _search_anchors(self, records: list[QuestionRecords]) -> MeasuredAnchors:
        return MeasuredAnchors.of(records)


def draw(seed: int, held_out: float, X: np.ndarray) -> dict[str, object]:
    """One draw of the anchors: the first measurement's close figures, the normalisation
    errors by it and by the rule (``None`` when the rule ends the run), and the
    anchors' tokens by the rule over the first measurement's."""
    landscape = landscape_family_member(0)
    first = FirstMeasurement(landscape, seed=seed, held_out=held_out)
    counts = [len(ids) for ids in first.search_ids]
    close = close_anchors(*first.anchors.scores(first.names, counts), first.names)
    truth = first.true_values(X)
    accuracy, tokens = first.true_scores(X)
    exact = np.zeros_like(accuracy)

    def error(anchors: MeasuredAnchors) -> np.ndarray:
        Y = first.normalise_by_benchmark(accuracy, exact, tokens, exact, anchors)[0].mean(axis=2)
        return np.abs(Y - truth).mean(axis=0)

    try:
        check_anchors(*first.anchors.scores(first.names, counts), first.names)
        degenerate = False
    except AnchorError:
        degenerate = True
    try:
        rule = QuestionLevelMergeProblem(landscape, seed=seed, held_out=held_out)
    except AnchorError:
        rule = None
    return {
        "degenerate": degenerate,
        "close": bool(close),
        "accuracy": any(c.figure == "accuracy" for c in close),
        "tokens": any(c.figure == "tokens" for c in close),
        "under 1": any(c.apart < 1 for c in close),
        "first": None if degenerate else error(first.anchors),
        "rule": None if rule is None else error(rule.anchors),
        "token ratio": None if rule is None else rule.anchor_tokens / first.anchor_tokens,
    }


def summary(errors: np.ndarray) -> str:
    return f"{errors.mean():.3f}, {np.percentile(errors, 95):.3f}, {errors.max():.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--draws", type=int, default=300)
    parser.add_argument("--points", type=int, default=400)
    args = parser.parse_args()
    X = np.random.default_rng(1).random((args.points, landscape_family_member(0).dim))
    print(
        "| questions | close | accuracy | tokens | under 1 | run ends: first | rule | f1 error "
        "mean, 95%, max: first | rule | f2 error mean, 95%, max: first | rule | anchor "
        "tokens / first |"
    )
    print("| --- " * 12 + "|")
    for label, held_out in (("every question", 0.0), ("search side of heldOut 0.3", 0.3)):
        draws = [draw(seed, held_out, X) for seed in range(args.draws)]
        kept = [d for d in draws if d["rule"] is not None and d["first"] is not None]
        share = {key: np.mean([d[key] for d in draws]) for key in ("close", "accuracy")}
        share |= {key: np.mean([d[key] for d in draws]) for key in ("tokens", "under 1")}
        ends_first = np.mean([d["degenerate"] for d in draws])
        ends_rule = np.mean([d["rule"] is None for d in draws])
        # The errors over the draws both keep (a run that ends reports nothing).
        first, rule = (np.array([d[key] for d in kept]) for key in ("first", "rule"))
        print(
            f"| {label} | {share['close']:.2f} | {share['accuracy']:.2f} | "
            f"{share['tokens']:.2f} | {share['under 1']:.2f} | {ends_first:.3f} | "
            f"{ends_rule:.3f} | {summary(first[:, 0])} | {summary(rule[:, 0])} | "
            f"{summary(first[:, 1])} | {summary(rule[:, 1])} | "
            f"{np.mean([d['token ratio'] for d in kept]):.2f} |"
        )


if __name__ == "__main__":
    main()
