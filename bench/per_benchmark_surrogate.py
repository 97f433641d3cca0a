"""Would a surrogate of each benchmark's figures predict the objectives better?

    python bench/per_benchmark_surrogate.py [--members 0,1,2] [--evaluations 88]

The search models ``f1`` and ``f2`` as they are defined, each the mean over benchmarks of
a normalised figure (``paretomerge.controller.objectives``), with its total variance. The
benchmarks' errors differ a lot: on GPQA-Diamond's 198 questions a merge's normalised
tokens have a standard error near 0.03, on AIME25's 30 near 0.3, and the mean carries
AIME25's. This measures, without the search, what three surrogates of the same
evaluations predict: ``--evaluations`` merges drawn uniformly in the space of 8 uniform
blocks and the head (the space ``coarse-to-fine`` ends in), evaluated question by
question (``QuestionLevelMergeProblem``, the anchors by the run's rule), then the root
mean squared error of the predicted ``f1``, ``f2`` against the true ones at 400 other
merges:

- ``aggregate`` (the baseline, what the tool fits): one GP per objective on its values
  and total variances (``SingleTaskGP``, known noise);
- ``per benchmark``: one GP per benchmark and figure, their predictions averaged;
- ``multi-task``: per figure one ``MultiTaskGP`` over the benchmarks (an intrinsic
  coregionalisation model: one kernel over the merges, a task covariance learnt from
  the data, each benchmark's own known noise), its predictions averaged.

Measured 7 Dec 2026 (members 0-2 of each family, one draw; the probe that led the
search to model each benchmark, ``paretomerge.search.surrogates.BenchmarkMeanModel``)::

    | family | member | aggregate f1, f2 | per benchmark f1, f2 | multi-task f1, f2 |
    | --- | --- | --- | --- | --- |
    | hard | 0 | 0.059, 0.090 | 0.055, 0.082 | 0.062, 0.065 |
    | hard | 1 | 0.072, 0.097 | 0.072, 0.082 | 0.064, 0.075 |
    | hard | 2 | 0.074, 0.073 | 0.069, 0.060 | 0.067, 0.036 |
    | smooth | 0 | 0.046, 0.054 | 0.053, 0.050 | 0.038, 0.038 |
    | smooth | 1 | 0.048, 0.041 | 0.051, 0.038 | 0.054, 0.021 |
    | smooth | 2 | 0.038, 0.035 | 0.041, 0.031 | 0.035, 0.017 |

What these say: the multi-task model predicts the token objective with 0.23-0.51 less
error on the hard family and 0.30-0.51 less on the smooth one: it learns AIME25's
lengths from GPQA-Diamond's precise ones, as far as the data say they move together
(on both families a merge's normalised length is the same on both benchmarks; on real
pairs it is an assumption the task covariance checks). Accuracy gains little (the hard
family's benchmarks have layers of their own). What the better prediction buys the
front is measured by ``bench/search_efficiency.py``, where the default strategy now
fits the multi-task model.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import torch
from botorch.fit import fit_gpytorch_mll
from botorch.models import MultiTaskGP, SingleTaskGP
from botorch.models.transforms import Standardize
from gpytorch.mlls import ExactMarginalLogLikelihood

from paretomerge.search.problems import (
    QuestionLevelMergeProblem,
    landscape_family_member,
    switching_family_member,
)

FAMILIES = {"hard": switching_family_member, "smooth": landscape_family_member}
BLOCKS = 8


def per_benchmark(problem: QuestionLevelMergeProblem, X: np.ndarray):
    """One evaluation of ``X`` ``(n, d)``: each benchmark's normalised accuracy, then
    tokens, ``(n, 2S)``, and their variances, by the measured anchors."""
    anchors = problem.anchors
    values, variances = [], []
    scores = [r.scores() for r in problem.records(X)]
    for figure, low, high in ((0, 0, 1), (2, 1, 0)):  # accuracy: base to expert; tokens
        for s, score in enumerate(scores):
            column = anchors.accuracy if figure == 0 else anchors.tokens
            span = column[high, s] - column[low, s]
            values.append((score[figure] - column[low, s]) / span)
            variances.append(score[figure + 1] / span**2)
    return np.stack(values, 1), np.stack(variances, 1)


def true_objectives(problem: QuestionLevelMergeProblem, X: np.ndarray) -> np.ndarray:
    """``(n, 2)``: the true scores normalised by the measured anchors, as the values are."""
    accuracy, tokens = problem.true_scores(X)
    exact = np.zeros_like(accuracy)
    return problem.normalise_by_benchmark(accuracy, exact, tokens, exact)[0].mean(axis=2)


def expanded(Z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Points ``(n, blocks + 1)`` of the blocks' space as merge weights per layer."""
    return np.c_[Z[:, labels], Z[:, BLOCKS:]]


def fitted(model):
    fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
    return model


def predict_aggregate(Z, Y, V, Z_test, S):
    columns = []
    for figure in range(2):
        part = slice(figure * S, (figure + 1) * S)
        y = Y[:, part].mean(1, keepdims=True)
        v = V[:, part].sum(1, keepdims=True) / S**2
        model = fitted(SingleTaskGP(Z, y, v, outcome_transform=Standardize(1)))
        columns.append(model.posterior(Z_test).mean[:, 0])
    return torch.stack(columns, 1)


def predict_per_benchmark(Z, Y, V, Z_test, S):
    means = [
        fitted(SingleTaskGP(Z, Y[:, j : j + 1], V[:, j : j + 1], outcome_transform=Standardize(1)))
        .posterior(Z_test)
        .mean[:, 0]
        for j in range(2 * S)
    ]
    return torch.stack([torch.stack(means[f * S : (f + 1) * S]).mean(0) for f in range(2)], 1)


def predict_multi_task(Z, Y, V, Z_test, S):
    n = len(Z)
    tasks = torch.cat([torch.cat([Z, torch.full((n, 1), float(s))], 1) for s in range(S)])
    columns = []
    for figure in range(2):
        part = range(figure * S, (figure + 1) * S)
        y = torch.cat([Y[:, j] for j in part])[:, None]
        v = torch.cat([V[:, j] for j in part])[:, None]
        model = fitted(
            MultiTaskGP(tasks, y, task_feature=-1, train_Yvar=v, outcome_transform=Standardize(1))
        )
        columns.append(model.posterior(Z_test).mean.mean(1))
    return torch.stack(columns, 1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", default="0,1,2")
    parser.add_argument("--evaluations", type=int, default=88)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")  # GPyTorch's jitter notes
    torch.set_default_dtype(torch.double)
    rng = np.random.default_rng(0)
    print("| family | member | aggregate f1, f2 | per benchmark f1, f2 | multi-task f1, f2 |")
    print("| --- | --- | --- | --- | --- |")
    for family, member_of in FAMILIES.items():
        for member in map(int, args.members.split(",")):
            problem = QuestionLevelMergeProblem(member_of(member), seed=member)
            layers = problem.dim - 1
            labels = np.arange(layers) * BLOCKS // layers
            Z, Z_test = rng.random((args.evaluations, BLOCKS + 1)), rng.random((400, BLOCKS + 1))
            Y, V = per_benchmark(problem, expanded(Z, labels))
            truth = torch.tensor(true_objectives(problem, expanded(Z_test, labels)))
            S = len(problem.names)
            data = (torch.tensor(Z), torch.tensor(Y), torch.tensor(V), torch.tensor(Z_test), S)
            cells = []
            for predict in (predict_aggregate, predict_per_benchmark, predict_multi_task):
                rmse = ((predict(*data).detach() - truth) ** 2).mean(0).sqrt()
                cells.append(f"{rmse[0]:.3f}, {rmse[1]:.3f}")
            print(f"| {family} | {member} | {' | '.join(cells)} |", flush=True)


if __name__ == "__main__":
    main()
