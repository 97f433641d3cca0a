"""Benchmark problems for the search: a synthetic layer-wise merge landscape and BoTorch's
test functions embedded in a higher dimension. Used by the benchmark, the search demo and
the tests; every objective is maximised and takes ``X`` ``(q, d)`` in ``[0, 1]^d``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from botorch.test_functions.multi_objective import DTLZ2, BraninCurrin


@dataclass
class LayerMergeLandscape:
    r"""A synthetic stand-in for merging a thinking expert into an instruct base.

    Decision vector: one expert weight per layer, then the head variable (``d = L + 1``).
    Each variable ``i`` has a capability sensitivity ``a_i`` and a verbosity sensitivity
    ``b_i``; both are sparse (a few layers matter) and only partly overlap, so a
    layer-wise merge can take capability from some layers without the verbosity of
    others — model-level merges (all weights equal) are dominated. With
    ``u = a·w / sum(a)`` and ``v = b·w / sum(b)``:

    .. math::
        f_1 = \frac{1 - e^{-\kappa u}}{1 - e^{-\kappa}} - \lambda P(w), \qquad
        f_2 = 1 - v^{3/2} - \lambda P(w),

    with ``P(w)`` the mean squared difference of neighbouring layer weights (merging
    interference) and Gaussian noise of standard deviation ``noise`` on both. The base
    model (``w = 0``) scores (0, 1), the expert (``w = 1``) (1, 0), as normalised
    objectives do. :attr:`profile` is what a user could measure: divergence correlated
    with, but not equal to, ``a + b``.
    """

    num_layers: int = 36
    seed: int = 0
    noise: float = 0.01
    curvature: float = 3.0
    interference: float = 0.3
    a: np.ndarray = field(init=False)
    b: np.ndarray = field(init=False)
    profile: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        d = self.num_layers + 1
        layers = rng.permutation(self.num_layers)
        capability, verbosity = layers[:6], layers[4:10]  # two layers drive both
        self.a = np.full(d, 0.02)
        self.b = np.full(d, 0.02)
        self.a[capability] = rng.uniform(0.5, 1.0, capability.size)
        self.b[verbosity] = rng.uniform(0.5, 1.0, verbosity.size)
        self.a[-1], self.b[-1] = 0.2, 0.2  # the head matters a little for both
        self.profile = (self.a + self.b) * rng.lognormal(0.0, 0.35, d) + rng.uniform(0, 0.15, d)
        self._noise_rng = np.random.default_rng(self.seed + 1)

    @property
    def dim(self) -> int:
        return self.num_layers + 1

    def true_values(self, X: np.ndarray) -> np.ndarray:
        """Noiseless objectives, ``(q, 2)``."""
        X = np.atleast_2d(X)
        u = X @ self.a / self.a.sum()
        v = X @ self.b / self.b.sum()
        layers = X[:, : self.num_layers]
        penalty = self.interference * np.mean(np.diff(layers, axis=1) ** 2, axis=1)
        f1 = (1 - np.exp(-self.curvature * u)) / (1 - np.exp(-self.curvature)) - penalty
        f2 = 1 - np.clip(v, 0, None) ** 1.5 - penalty
        return np.stack([f1, f2], axis=-1)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        values = self.true_values(X)
        return values + self.noise * self._noise_rng.standard_normal(values.shape)


@dataclass
class EmbeddedTestProblem:
    """A BoTorch multi-objective test function on the first variables of ``[0, 1]^dim``.

    The remaining variables are inert. BoTorch's ``negate=True`` makes both objectives
    maximised, with the reference point and maximal hypervolume to match.
    """

    name: str
    dim: int = 37

    def __post_init__(self) -> None:
        problems = {
            "dtlz2": lambda: DTLZ2(dim=6, num_objectives=2, negate=True),
            "branin-currin": lambda: BraninCurrin(negate=True),
        }
        if self.name not in problems:
            raise ValueError(f"unknown test problem {self.name!r}; expected {sorted(problems)}")
        self.problem = problems[self.name]()
        self.ref_point = self.problem.ref_point.numpy()
        self.max_hv = float(self.problem.max_hv)
        self.profile = np.r_[np.ones(self.problem.dim), np.full(self.dim - self.problem.dim, 0.1)]

    def true_values(self, X: np.ndarray) -> np.ndarray:
        X = torch.as_tensor(np.atleast_2d(X)[:, : self.problem.dim], dtype=torch.double)
        lower, upper = self.problem.bounds
        return self.problem(lower + X * (upper - lower)).numpy()

    __call__ = true_values
