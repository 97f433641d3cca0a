"""Benchmark problems for the search: a synthetic layer-wise merge landscape and BoTorch's
test functions embedded in a higher dimension. Used by the benchmark, the search demo and
the tests; every objective is maximised and takes ``X`` ``(q, d)`` in ``[0, 1]^d``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from botorch.test_functions.multi_objective import DTLZ2, BraninCurrin

from paretomerge.controller.objectives import (
    close_benchmarks,
    judge_anchors,
    remeasure_repeats,
    validation_anchors,
)
from paretomerge.evaluate.scoring import accuracy_stderr, tokens_stderr
from paretomerge.questions import QuestionSplit, question_order, stage_counts
from paretomerge.results import BenchmarkScore, Scores
from paretomerge.search.claims import AnchorErrors


@dataclass
class LayerMergeLandscape:
    r"""A synthetic stand-in for merging a thinking expert into an instruct base.

    Decision vector: one expert weight per layer, then the head variable (``d = L + 1``).
    Each variable ``i`` has a capability sensitivity ``a_i`` and a verbosity sensitivity
    ``b_i``; both are sparse (``num_capability`` and ``num_verbosity`` layers matter,
    ``shared`` of them for both), so a layer-wise merge can take capability from some
    layers without the verbosity of others — model-level merges (all weights equal) are
    dominated. The sensitive layers are scattered at random, or with ``contiguous`` two
    runs of neighbouring layers that overlap in ``shared`` layers. With
    ``u = a·w / sum(a)`` and ``v = b·w / sum(b)``:

    .. math::
        f_1 = \frac{1 - e^{-\kappa u}}{1 - e^{-\kappa}} - \lambda P(w), \qquad
        f_2 = 1 - v^{3/2} - \lambda P(w),

    with ``P(w)`` the mean squared difference of neighbouring layer weights (merging
    interference) and Gaussian noise of standard deviation ``noise`` on both. The base
    model (``w = 0``) scores (0, 1), the expert (``w = 1``) (1, 0), as normalised
    objectives do. :attr:`profile` is what a user could measure: divergence correlated
    with ``a + b`` through a log-normal factor of spread ``profile_noise``, plus a uniform
    floor of height ``profile_floor``, plus ``decoys`` layers that diverge as much as the
    sensitive ones and matter to neither objective (the more of each, the farther the
    profile lies from what matters).
    """

    num_layers: int = 36
    seed: int = 0
    noise: float = 0.01
    curvature: float = 3.0
    interference: float = 0.3
    num_capability: int = 6
    num_verbosity: int = 6
    shared: int = 2
    contiguous: bool = False
    profile_noise: float = 0.35
    profile_floor: float = 0.15
    decoys: int = 0
    a: np.ndarray = field(init=False)
    b: np.ndarray = field(init=False)
    profile: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        d = self.num_layers + 1
        capability, verbosity = self._sensitive_layers(rng)
        self.a = np.full(d, 0.02)
        self.b = np.full(d, 0.02)
        self.a[capability] = rng.uniform(0.5, 1.0, capability.size)
        self.b[verbosity] = rng.uniform(0.5, 1.0, verbosity.size)
        self.a[-1], self.b[-1] = 0.2, 0.2  # the head matters a little for both
        spread = rng.lognormal(0.0, self.profile_noise, d)
        self.profile = (self.a + self.b) * spread + rng.uniform(0, self.profile_floor, d)
        inert = np.setdiff1d(np.arange(self.num_layers), np.r_[capability, verbosity])
        decoys = rng.choice(inert, size=self.decoys, replace=False)
        self.profile[decoys] += rng.uniform(0.5, 1.0, self.decoys)
        self._noise_rng = np.random.default_rng(self.seed + 1)

    def _sensitive_layers(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Layer indices ``(capability, verbosity)``, sharing ``shared`` layers (scattered
        layers are cut short where the model has fewer)."""
        span = self.num_capability + self.num_verbosity - self.shared
        if self.contiguous:
            if span > self.num_layers:
                raise ValueError(f"contiguous runs of {span} layers exceed {self.num_layers}")
            start = int(rng.integers(0, self.num_layers - span + 1))
            layers = np.arange(start, start + span)
            if rng.random() < 0.5:  # which run comes first
                layers = layers[::-1]
        else:
            layers = rng.permutation(self.num_layers)
        first = self.num_capability - self.shared
        return layers[: self.num_capability], layers[first : first + self.num_verbosity]

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

    def benchmark_values(self, X: np.ndarray, benchmarks: int) -> tuple[np.ndarray, np.ndarray]:
        """The normalised accuracy and tokens of every benchmark, each ``(q, benchmarks)``:
        here the same on every benchmark (the objectives themselves)."""
        f = self.true_values(X)
        return np.repeat(f[:, :1], benchmarks, axis=1), np.repeat(f[:, 1:], benchmarks, axis=1)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        values = self.true_values(X)
        return values + self.noise * self._noise_rng.standard_normal(values.shape)


# The structures of the landscape family (member i is seeded with i): where the sensitive
# layers sit, how many there are, and how far the profile lies from them.
FAR_PROFILE = {"profile_noise": 0.8, "profile_floor": 0.3, "decoys": 5}
LANDSCAPE_FAMILY: tuple[dict, ...] = (
    {},  # 6 + 6 scattered layers, 2 shared, a close profile: the original landscape
    {"contiguous": True},  # two runs of 6 neighbouring layers overlapping in 2
    {"num_capability": 12, "num_verbosity": 12, "shared": 6},  # dense: a third of the layers
    {"num_capability": 3, "num_verbosity": 3, "shared": 1, **FAR_PROFILE},  # very sparse
    {"num_capability": 10, "num_verbosity": 8, "shared": 3, "contiguous": True, **FAR_PROFILE},
    {"num_capability": 4, "num_verbosity": 8, "shared": 0},  # disjoint, unequal
)


def landscape_family_member(member: int, num_layers: int = 36, noise: float = 0.01):
    """Member ``member`` of the layer landscape family (structures in ``LANDSCAPE_FAMILY``,
    seed ``member``)."""
    if not 0 <= member < len(LANDSCAPE_FAMILY):
        raise ValueError(f"the landscape family has members 0..{len(LANDSCAPE_FAMILY) - 1}")
    structure = LANDSCAPE_FAMILY[member]
    return LayerMergeLandscape(num_layers=num_layers, seed=member, noise=noise, **structure)


@dataclass
class SwitchingMergeLandscape:
    r"""A harder stand-in for merging a thinking expert into an instruct base.

    Decision vector: one expert weight per layer, then the head (``d = L + 1``). Layers
    have roles, each set scattered over depth at random: ``mode`` layers carry the
    thinking mode, ``knowledge`` layers a knowledge benchmark's skill (GPQA-like),
    ``reasoning`` layers a reasoning benchmark's (AIME-like), ``verbosity`` layers
    length alone. With role sensitivities :math:`c, a_K, a_R, b` (each sparse, uniform in
    ``[0.5, 1]`` on its layers, 0.02 elsewhere) and :math:`u_X = x \cdot w / \sum x`:

    - **a thinking-mode switch** (Qwen3-4B Thinking into Instruct behaves like Instruct
      below :math:`\lambda \approx 0.4` and like Thinking above 0.6, arXiv 2510.10977):
      :math:`m = S(k (u_c - \theta))`, a logistic :math:`S` of steepness ``steepness``
      rescaled to 0 at ``w = 0`` and 1 at ``w = 1``;
    - **benchmarks with their own layers**: the knowledge benchmark gains
      :math:`g_K = \beta\, u_K + (1 - \beta)\, m` (part of its gain needs no mode),
      the reasoning one :math:`g_R = m\, u_R` (it pays off only once the mode is on),
      minus the penalties below; linear in the shares, so that a partial weight on every
      layer (a model-level merge) gives only partial skill;
    - **coupled layers far apart**: ``couplings`` pairs of layers at least a third of the
      depth apart whose weights must move together: both gains lose
      :math:`\gamma \cdot \text{mean}_{(i,j)} (w_i - w_j)^2`, and neighbouring layers
      interfere as in :class:`LayerMergeLandscape` (:math:`\lambda P(w)`);
    - **tokens mostly from the mode**: the token objective (1 at the base's length, 0 at
      the expert's, the same on both benchmarks) is
      :math:`1 - \rho\, m - (1 - \rho)\, (m + 0.1 (1 - m))\, u_b`: the mode costs the
      share :math:`\rho` (``mode_tokens``) and the verbosity layers the rest, mostly once
      the mode is on (the demo pair's check);
    - **a weak profile**: :attr:`profile` is half signal (the layers' summed
      sensitivities, max-normalised) and half uniform noise; :attr:`activation_profile`
      is a second guide of the same kind with noise of its own (the activation
      discrepancy of AP-BMM), drawn independently.

    f1 is the mean of the two gains and f2 the token objective: what the tool's
    normalised objectives are, with the base at (0, 1) and the expert at (1, 0). Called,
    it returns them with Gaussian noise of standard deviation ``noise`` on both (the
    question-level noise is :class:`QuestionLevelMergeProblem`'s).
    """

    num_layers: int = 36
    seed: int = 0
    noise: float = 0.0
    num_mode: int = 6
    num_knowledge: int = 6
    num_reasoning: int = 6
    num_verbosity: int = 4
    couplings: int = 2
    threshold: float = 0.5
    steepness: float = 20.0
    knowledge_without_mode: float = 0.5
    mode_tokens: float = 0.6
    coupling_penalty: float = 0.15
    interference: float = 0.1
    profile_signal: float = 0.5
    roles: dict[str, np.ndarray] = field(init=False)
    profile: np.ndarray = field(init=False)
    activation_profile: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng([self.seed, 26])
        d = self.num_layers + 1
        counts = {
            "mode": self.num_mode,
            "knowledge": self.num_knowledge,
            "reasoning": self.num_reasoning,
            "verbosity": self.num_verbosity,
        }
        if sum(counts.values()) > self.num_layers:
            raise ValueError(f"roles of {sum(counts.values())} layers exceed {self.num_layers}")
        order = rng.permutation(self.num_layers)
        ends = np.cumsum([0, *counts.values()])
        self.roles = {
            role: np.sort(order[start:end])
            for role, start, end in zip(counts, ends[:-1], ends[1:], strict=True)
        }
        self.sensitivity = {}
        for role, layers in self.roles.items():
            weights = np.full(d, 0.02)
            weights[layers] = rng.uniform(0.5, 1.0, layers.size)
            weights[-1] = 0.1  # the head matters a little to everything
            self.sensitivity[role] = weights
        self.coupled = self._far_pairs(rng)
        signal = sum(self.sensitivity[r] for r in counts)
        signal = signal / signal.max()
        # Two guides of the same kind, each with noise of its own.
        self.profile, self.activation_profile = (
            self.profile_signal * signal + (1 - self.profile_signal) * noise.random(d)
            for noise in (rng, np.random.default_rng([self.seed, 27]))
        )
        self._noise_rng = np.random.default_rng([self.seed, 28])

    def _far_pairs(self, rng: np.random.Generator) -> np.ndarray:
        """``(couplings, 2)`` layer pairs at least a third of the depth apart, each pair
        one skill layer (knowledge or reasoning) and another layer."""
        skill = np.r_[self.roles["knowledge"], self.roles["reasoning"]]
        pairs = []
        while len(pairs) < self.couplings:
            i = int(rng.choice(skill))
            far = np.flatnonzero(np.abs(np.arange(self.num_layers) - i) >= self.num_layers / 3)
            pairs.append((i, int(rng.choice(far))))
        return np.array(pairs, dtype=int).reshape(-1, 2)

    @property
    def dim(self) -> int:
        return self.num_layers + 1

    def _share(self, X: np.ndarray, role: str) -> np.ndarray:
        weights = self.sensitivity[role]
        return X @ weights / weights.sum()

    def mode(self, X: np.ndarray) -> np.ndarray:
        """How far each merge is in thinking mode, ``(q,)`` in ``[0, 1]``."""
        low, high = (_sigmoid(self.steepness * (u - self.threshold)) for u in (0.0, 1.0))
        on = _sigmoid(self.steepness * (self._share(X, "mode") - self.threshold))
        return (on - low) / (high - low)

    def benchmark_values(self, X: np.ndarray, benchmarks: int = 2) -> tuple[np.ndarray, np.ndarray]:
        """The normalised accuracy (knowledge, then reasoning) and tokens, each ``(q, 2)``."""
        if benchmarks != 2:
            raise ValueError(f"this landscape has 2 benchmarks, not {benchmarks}")
        X = np.atleast_2d(X)
        m = self.mode(X)
        layers = X[:, : self.num_layers]
        penalty = self.interference * np.mean(np.diff(layers, axis=1) ** 2, axis=1)
        if len(self.coupled):
            gap = layers[:, self.coupled[:, 0]] - layers[:, self.coupled[:, 1]]
            penalty = penalty + self.coupling_penalty * np.mean(gap**2, axis=1)
        beta = self.knowledge_without_mode
        knowledge = beta * self._share(X, "knowledge") + (1 - beta) * m
        reasoning = m * self._share(X, "reasoning")
        gains = np.stack([knowledge, reasoning], axis=-1) - penalty[:, None]
        # The verbose layers lengthen a thinking merge (its check) and barely an instruct one.
        length = self._share(X, "verbosity")
        verbose = m + 0.1 * (1 - m)
        tokens = 1 - self.mode_tokens * m - (1 - self.mode_tokens) * verbose * length
        return gains, np.repeat(tokens[:, None], 2, axis=1)

    def true_values(self, X: np.ndarray) -> np.ndarray:
        """Noiseless objectives, ``(q, 2)``: the mean gain and the tokens."""
        gains, tokens = self.benchmark_values(X)
        return np.stack([gains.mean(axis=1), tokens.mean(axis=1)], axis=-1)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        values = self.true_values(X)
        return values + self.noise * self._noise_rng.standard_normal(values.shape)

    def role_points(self) -> np.ndarray:
        """``(16, d)`` merges that take each combination of the mode, knowledge, reasoning
        and verbosity layers whole (weight 1) and the rest not, the head at 0.5: starts
        for searching this landscape's front when its roles are known."""
        points = []
        for mask in range(16):
            x = np.zeros(self.dim)
            for bit, role in enumerate(("mode", "knowledge", "reasoning", "verbosity")):
                if mask >> bit & 1:
                    x[self.roles[role]] = 1.0
            x[-1] = 0.5
            points.append(x)
        return np.array(points)


# The hard family (member i is seeded with i): members 0-3 tune, 4-7 report.
SWITCHING_FAMILY: tuple[dict, ...] = (
    {},
    {"threshold": 0.4, "steepness": 30.0, "num_knowledge": 8},
    {"num_mode": 4, "num_reasoning": 8, "mode_tokens": 0.5, "couplings": 3},
    {"threshold": 0.6, "knowledge_without_mode": 0.4, "num_verbosity": 6},
    {"num_mode": 8, "num_knowledge": 4, "steepness": 15.0},
    {"threshold": 0.45, "num_reasoning": 4, "couplings": 4, "profile_signal": 0.4},
    {"num_mode": 5, "num_knowledge": 7, "num_reasoning": 7, "mode_tokens": 0.7},
    {"threshold": 0.55, "steepness": 25.0, "knowledge_without_mode": 0.6, "couplings": 1},
)


def switching_family_member(
    member: int, num_layers: int = 36, noise: float = 0.0
) -> SwitchingMergeLandscape:
    """Member ``member`` of the hard family (structures in ``SWITCHING_FAMILY``, seed
    ``member``)."""
    if not 0 <= member < len(SWITCHING_FAMILY):
        raise ValueError(f"the hard family has members 0..{len(SWITCHING_FAMILY) - 1}")
    structure = SWITCHING_FAMILY[member]
    return SwitchingMergeLandscape(num_layers=num_layers, seed=member, noise=noise, **structure)


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


@dataclass(frozen=True)
class BenchmarkCalibration:
    """Published figures of a benchmark for a base and an expert model: ``accuracy`` and
    ``mean_tokens`` (mean output tokens per question) are ``(base, expert)``."""

    name: str
    questions: int
    accuracy: tuple[float, float]
    mean_tokens: tuple[float, float]


# Qwen3-4B-Instruct-2507 (base) and Qwen3-4B-Thinking-2507 (expert), arXiv 2510.10977 Table 2.
QWEN3_4B_BENCHMARKS = (
    BenchmarkCalibration("gpqa_diamond", 198, (0.413, 0.658), (570.0, 9114.0)),
    BenchmarkCalibration("aime25", 30, (0.466, 0.804), (15097.0, 22813.0)),
)


@dataclass(frozen=True)
class QuestionRecords:
    """One evaluation of ``q`` models on one benchmark's ``n`` questions: ``correct``
    ``(q, n)`` booleans and ``tokens`` ``(q, n)`` output tokens (the generation's cost)."""

    correct: np.ndarray
    tokens: np.ndarray

    def subset(self, ids: Sequence[int]) -> QuestionRecords:
        """The records of the questions ``ids`` alone, in that order."""
        ids = np.asarray(ids, dtype=int)
        return QuestionRecords(
            np.take(self.correct, ids, axis=1), np.take(self.tokens, ids, axis=1)
        )

    def scores(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(accuracy, accuracy_var, mean_tokens, mean_tokens_var)``, each ``(q,)``: the
        means over the questions and their squared standard errors, as the tool scores an
        evaluation (:mod:`paretomerge.evaluate.scoring`: never 0, a few answers' token
        spread shrunk towards the prior's)."""
        n = self.correct.shape[1]
        correct = self.correct.sum(axis=1)
        mean_tokens = self.tokens.mean(axis=1)
        sd = self.tokens.std(axis=1, ddof=1) if n > 1 else np.zeros(len(mean_tokens))
        return (
            correct / n,
            accuracy_stderr(correct, n) ** 2,
            mean_tokens,
            tokens_stderr(mean_tokens, sd, n) ** 2,
        )


@dataclass
class SimulatedBenchmark:
    r"""A finite benchmark of ``n`` questions, each with its own difficulty and length.

    Question ``j`` is answered correctly with probability
    :math:`p_j = \sigma(\theta - \delta_j)`, difficulties :math:`\delta_j \sim
    N(0, 1.5^2)`; the model's ability :math:`\theta` is set so that the mean of the
    :math:`p_j` is the model's accuracy. Its output length has mean :math:`T \ell_j`, with
    :math:`T` the model's mean output tokens and :math:`\ell_j` log-normal of mean 1 over
    the questions (coefficient of variation ``between_cv``), and varies from one
    generation to the next as a Gamma variable of coefficient of variation
    ``within_cv``: a question's tokens spread by
    :math:`\sqrt{(1 + \text{between}^2)(1 + \text{within}^2) - 1} \approx 0.64` of their
    mean. The true accuracy and mean tokens of a model are exactly the ones asked for; one
    evaluation samples every question once.
    """

    calibration: BenchmarkCalibration
    seed: int = 0
    difficulty_sd: float = 1.5
    between_cv: float = 0.4
    within_cv: float = 0.5
    difficulty: np.ndarray = field(init=False)
    length: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        n = self.calibration.questions
        self.difficulty = rng.normal(0.0, self.difficulty_sd, n)
        sigma = np.sqrt(np.log1p(self.between_cv**2))
        length = rng.lognormal(-(sigma**2) / 2, sigma, n)
        self.length = length / length.mean()

    def success_probabilities(self, accuracy: np.ndarray) -> np.ndarray:
        """``(q, n)`` per-question success probabilities whose row means are ``accuracy``
        ``(q,)`` (each in ``(0, 1)``), by bisection on the ability."""
        target = np.clip(np.asarray(accuracy, dtype=float), 1e-6, 1 - 1e-6)[:, None]
        low, high = np.full_like(target, -30.0), np.full_like(target, 30.0)
        for _ in range(60):
            mid = (low + high) / 2
            too_high = _sigmoid(mid - self.difficulty).mean(axis=1, keepdims=True) > target
            low, high = np.where(too_high, low, mid), np.where(too_high, mid, high)
        return _sigmoid((low + high) / 2 - self.difficulty)

    def sample(
        self, accuracy: np.ndarray, mean_tokens: np.ndarray, rng: np.random.Generator
    ) -> QuestionRecords:
        """One evaluation of ``q`` models of true ``accuracy`` and ``mean_tokens`` ``(q,)``."""
        p = self.success_probabilities(accuracy)
        expected = np.asarray(mean_tokens, dtype=float)[:, None] * self.length
        shape = 1.0 / self.within_cv**2
        return QuestionRecords(
            correct=rng.random(p.shape) < p,
            tokens=rng.gamma(shape, expected / shape),
        )


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def normalised_by_benchmark(
    scores: np.ndarray,
    scores_var: np.ndarray,
    base: np.ndarray,
    expert: np.ndarray,
    base_var: np.ndarray,
    expert_var: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Scores normalised by the anchors, benchmark by benchmark, with variances by the
    delta method.

    Per benchmark :math:`s`, :math:`g_s = (a_s - b_s) / (e_s - b_s)` (0 at the base, 1 at
    the expert) with the model's, base's and expert's scores :math:`a, b, e` of variances
    :math:`\sigma_a^2, \sigma_b^2, \sigma_e^2`, independent; to first order

    .. math:: \operatorname{Var} g_s =
        \frac{\sigma_{a,s}^2 + g_s^2 \sigma_{e,s}^2 + (1 - g_s)^2 \sigma_{b,s}^2}
        {(e_s - b_s)^2}.

    The objective is the mean of the :math:`g_s` over the :math:`S` benchmarks, its
    variance :math:`\frac{1}{S^2} \sum_s \operatorname{Var} g_s`. For the tokens
    objective pass the tokens with base and expert swapped (fewer is better: 0 at the
    expert, 1 at the base).

    Args:
        scores, scores_var: ``(q, S)``.
        base, expert, base_var, expert_var: ``(S,)``.

    Returns:
        ``(g (q, S), var (q, S))``.
    """
    span = expert - base
    g = (scores - base) / span
    return g, (scores_var + g**2 * expert_var + (1 - g) ** 2 * base_var) / span**2


@dataclass(frozen=True)
class Evaluation:
    """One evaluation of ``q`` merges, on every question or on the first ones of a seeded
    order: the objectives ``Y`` and their variances ``Yvar`` ``(q, m)``, each benchmark's
    ``Y_by_benchmark`` and ``Yvar_by_benchmark`` ``(q, m, S)`` (``Y`` their mean), the
    output tokens it generated ``tokens`` ``(q,)`` (its cost), and the questions it asked
    of each benchmark ``questions`` ``(S,)``."""

    Y: np.ndarray
    Yvar: np.ndarray
    Y_by_benchmark: np.ndarray
    Yvar_by_benchmark: np.ndarray
    tokens: np.ndarray
    questions: tuple[int, ...]


@dataclass(frozen=True)
class MeasuredAnchors:
    """The base's and the expert's measured scores ``(2, S)`` (row 0 the base): accuracy
    and mean tokens, with their squared standard errors; ``fallback`` says why they are
    the full-set anchors standing in for degenerate held-out ones (``None``: they are
    what they were measured on)."""

    accuracy: np.ndarray
    accuracy_var: np.ndarray
    tokens: np.ndarray
    tokens_var: np.ndarray
    fallback: str | None = None

    @classmethod
    def of(cls, records: Sequence[QuestionRecords]) -> MeasuredAnchors:
        """From per-benchmark records of the two anchors (rows base, expert)."""
        columns = zip(*(r.scores() for r in records), strict=True)
        return cls(*(np.stack(c, axis=-1) for c in columns))

    def scores(self, names: Sequence[str], questions: Sequence[int]) -> tuple[Scores, Scores]:
        """As the tool's :class:`~paretomerge.results.BenchmarkScore` (base, expert)."""
        return tuple(
            {
                name: BenchmarkScore(
                    name=name,
                    accuracy=float(self.accuracy[row, s]),
                    accuracy_stderr=float(np.sqrt(self.accuracy_var[row, s])),
                    mean_output_tokens=float(self.tokens[row, s]),
                    mean_output_tokens_stderr=float(np.sqrt(self.tokens_var[row, s])),
                    thinking_closed=float(row),
                    n=questions[s],
                )
                for s, name in enumerate(names)
            }
            for row in (0, 1)
        )

    @classmethod
    def from_scores(
        cls, base: Scores, expert: Scores, names: Sequence[str], fallback: str | None
    ) -> MeasuredAnchors:
        def figure(get):
            return np.array([[get(side[name]) for name in names] for side in (base, expert)])

        return cls(
            figure(lambda b: b.accuracy),
            figure(lambda b: b.accuracy_stderr**2),
            figure(lambda b: b.mean_output_tokens),
            figure(lambda b: b.mean_output_tokens_stderr**2),
            fallback,
        )

    def errors(self) -> AnchorErrors:
        """Their share of the error of the values they normalise (f1: low the base; f2:
        low the expert)."""
        spans = np.stack([self.accuracy[1] - self.accuracy[0], self.tokens[0] - self.tokens[1]])
        low = np.sqrt(np.stack([self.accuracy_var[0], self.tokens_var[1]]))
        high = np.sqrt(np.stack([self.accuracy_var[1], self.tokens_var[0]]))
        return AnchorErrors.of(spans, low, high)


@dataclass
class QuestionLevelMergeProblem:
    """A merge landscape evaluated through finite benchmarks, as the tool evaluates.

    The landscape's noiseless values of each benchmark ``s`` set each merge's true
    scores: accuracy ``acc_base + g_s (acc_expert - acc_base)`` and mean tokens
    ``tok_expert + t_s (tok_base - tok_expert)`` (on :class:`LayerMergeLandscape` ``g_s =
    f1`` and ``t_s = f2`` on every benchmark), so the true normalised objectives are the
    landscape's. An evaluation samples questions of every benchmark
    (:class:`SimulatedBenchmark`); the anchors (base ``w = 0`` and expert ``w = 1``) are
    evaluated once, through the same simulator, when the problem is made. Calling the
    problem returns ``(Y, Yvar)``: the objectives normalised by those measured anchors,
    and their variances by the delta method over questions
    (:func:`normalised_by_benchmark`, averaged; the anchors' errors included), as the tool tells
    its surrogate. :meth:`evaluate` returns them with the output tokens the evaluation
    generated, and :meth:`staged` the same after each stage of a screened evaluation (the
    first questions of a seeded order, growing).

    With ``held_out`` the questions are split as a run's are
    (:class:`~paretomerge.questions.QuestionSplit`, drawn by ``seed``): the search asks
    the search side, :meth:`validate` the held-out side alone, normalised by the anchors
    measured on it, or by the anchors on every question when those are degenerate (the
    run's rule, :func:`~paretomerge.controller.objectives.validation_anchors`).

    ``anchor_tokens`` is what the anchors' evaluations generated.
    """

    landscape: LayerMergeLandscape | SwitchingMergeLandscape
    seed: int = 0
    calibrations: tuple[BenchmarkCalibration, ...] = QWEN3_4B_BENCHMARKS
    held_out: float = 0.0
    anchor_tokens: float = field(init=False)

    def __post_init__(self) -> None:
        self.benchmarks = [
            SimulatedBenchmark(c, seed=self.landscape.seed * 100 + i)
            for i, c in enumerate(self.calibrations)
        ]
        self.names = [c.name for c in self.calibrations]
        self._rng = np.random.default_rng([self.landscape.seed, self.seed])
        self.search_ids, self.held_out_ids = self._split()
        records = self.records(self._anchor_points())
        self.anchor_tokens = float(sum(r.tokens.sum() for r in records))
        self.anchors = self._search_anchors(self._side(records, self.search_ids))
        self.validation_anchors = self._validation_anchors(records)

    def _anchor_points(self) -> np.ndarray:
        """The base (``w = 0``) and the expert (``w = 1``), ``(2, d)``."""
        return np.stack([np.zeros(self.dim), np.ones(self.dim)])

    def _search_anchors(self, records: Sequence[QuestionRecords]) -> MeasuredAnchors:
        """The search's anchors from their first measurement ``records``, by the run's
        rule (:func:`~paretomerge.controller.objectives.judge_anchors`): too close on a
        benchmark, they are measured on it again asking each question more times (the
        answers of every repeat side by side), and the run's error when they stay
        close."""
        counts = [len(i) for i in self.search_ids]
        first = MeasuredAnchors.of(records)
        base, expert = first.scores(self.names, counts)
        close = judge_anchors(base, expert, self.names)
        if not close:
            return first
        repeats = remeasure_repeats(base, close)
        accuracy, mean_tokens = self.true_scores(self._anchor_points())
        again = list(records)
        for name in close_benchmarks(close):
            s = self.names.index(name)
            answers = [
                self.benchmarks[s]
                .sample(accuracy[:, s], mean_tokens[:, s], self._rng)
                .subset(self.search_ids[s])
                for _ in range(repeats)
            ]
            again[s] = QuestionRecords(
                np.concatenate([a.correct for a in answers], axis=1),
                np.concatenate([a.tokens for a in answers], axis=1),
            )
            self.anchor_tokens += float(again[s].tokens.sum())
        anchors = MeasuredAnchors.of(again)
        judge_anchors(*anchors.scores(self.names, counts), self.names, repeats)
        return anchors

    def _split(self) -> tuple[list[list[int]], list[list[int]]]:
        """Per benchmark the question ids the search asks and those held out of it."""
        counts = [c.questions for c in self.calibrations]
        if self.held_out == 0.0:
            return [list(range(n)) for n in counts], [[] for _ in counts]
        sides = [
            QuestionSplit(held_out=self.held_out, seed=self.seed, part=p)
            for p in ("search", "held-out")
        ]
        return tuple(
            [side.ids(name, n) for name, n in zip(self.names, counts, strict=True)]
            for side in sides
        )

    @staticmethod
    def _side(
        records: Sequence[QuestionRecords], ids: Sequence[Sequence[int]]
    ) -> list[QuestionRecords]:
        return [r.subset(i) for r, i in zip(records, ids, strict=True)]

    def _validation_anchors(self, records: Sequence[QuestionRecords]) -> MeasuredAnchors | None:
        """The anchors that normalise validations (see the class docstring)."""
        if self.held_out == 0.0:
            return None
        held_out = MeasuredAnchors.of(self._side(records, self.held_out_ids))
        chosen = validation_anchors(
            self.anchors.scores(self.names, [len(i) for i in self.search_ids]),
            held_out.scores(self.names, [len(i) for i in self.held_out_ids]),
            self.names,
        )
        return MeasuredAnchors.from_scores(chosen.base, chosen.expert, self.names, chosen.fallback)

    @property
    def dim(self) -> int:
        return self.landscape.dim

    @property
    def profile(self) -> np.ndarray:
        return self.landscape.profile

    def true_scores(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(accuracy, mean_tokens)``, each ``(q, S)``: the merges' expected scores."""
        gains, token_values = self.landscape.benchmark_values(X, len(self.calibrations))
        acc = np.array([c.accuracy for c in self.calibrations])  # (S, 2): base, expert
        tok = np.array([c.mean_tokens for c in self.calibrations])
        accuracy = acc[:, 0] + gains * (acc[:, 1] - acc[:, 0])
        mean_tokens = tok[:, 1] + token_values * (tok[:, 0] - tok[:, 1])
        return accuracy, mean_tokens

    def records(self, X: np.ndarray) -> list[QuestionRecords]:
        """One evaluation of the merges ``X`` ``(q, d)``: per benchmark, every question."""
        accuracy, mean_tokens = self.true_scores(np.atleast_2d(X))
        return [
            b.sample(accuracy[:, s], mean_tokens[:, s], self._rng)
            for s, b in enumerate(self.benchmarks)
        ]

    def normalise_by_benchmark(
        self,
        accuracy: np.ndarray,
        accuracy_var: np.ndarray,
        tokens: np.ndarray,
        tokens_var: np.ndarray,
        anchors: MeasuredAnchors | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Scores ``(q, S)`` normalised by the measured ``anchors`` (default the
        search's), benchmark by benchmark, with their variances, the anchors' errors
        included: ``(q, 2, S)`` each, whose means over benchmarks are the objectives and
        their variances, what the tool tells its surrogate (see
        :mod:`paretomerge.controller.objectives`)."""
        a = anchors or self.anchors
        f1 = normalised_by_benchmark(
            accuracy,
            accuracy_var,
            a.accuracy[0],
            a.accuracy[1],
            a.accuracy_var[0],
            a.accuracy_var[1],
        )
        f2 = normalised_by_benchmark(
            tokens, tokens_var, a.tokens[1], a.tokens[0], a.tokens_var[1], a.tokens_var[0]
        )
        return np.stack([f1[0], f2[0]], axis=1), np.stack([f1[1], f2[1]], axis=1)

    def evaluation(
        self, records: Sequence[QuestionRecords], anchors: MeasuredAnchors | None = None
    ) -> Evaluation:
        """The objectives, variances and cost of per-benchmark records."""
        accuracy, accuracy_var, tokens, tokens_var = (
            np.stack(column, axis=-1) for column in zip(*(r.scores() for r in records), strict=True)
        )
        values, variances = self.normalise_by_benchmark(
            accuracy, accuracy_var, tokens, tokens_var, anchors
        )
        return Evaluation(
            Y=values.mean(axis=2),
            Yvar=variances.sum(axis=2) / values.shape[2] ** 2,
            Y_by_benchmark=values,
            Yvar_by_benchmark=variances,
            tokens=sum(r.tokens.sum(axis=1) for r in records),
            questions=tuple(r.tokens.shape[1] for r in records),
        )

    def evaluate(self, X: np.ndarray) -> Evaluation:
        """One evaluation of ``X`` ``(q, d)`` on every question of the search side."""
        return self.evaluation(self._side(self.records(X), self.search_ids))

    def validate(self, X: np.ndarray) -> Evaluation:
        """One evaluation of ``X`` ``(q, d)`` on the held-out questions, normalised by the
        validation anchors."""
        if self.validation_anchors is None:
            raise ValueError("no question is held out of this problem's search")
        return self.evaluation(
            self._side(self.records(X), self.held_out_ids), self.validation_anchors
        )

    def staged(self, X: np.ndarray, shares: Sequence[float], order_seed: int) -> list[Evaluation]:
        """One screened evaluation of ``X`` ``(q, d)``: the evaluation after each stage.

        Each benchmark's search questions are asked in one order drawn by ``order_seed``
        (:func:`~paretomerge.questions.question_order`, the same for every merge), stage
        ``k`` up to the ``shares[k]`` of them (:func:`~paretomerge.questions.stage_counts`);
        each stage's evaluation holds every question asked so far, and its ``tokens`` what
        they cost. The answers are drawn as one full evaluation draws them, so the last
        stage is :meth:`evaluate`'s evaluation and a caller that stops after stage ``k``
        has spent stage ``k``'s tokens.

        Raises:
            ValueError: ``shares`` too fine for a benchmark (a stage that adds none of its
                questions).
        """
        records = self.records(X)
        prefixes = []
        for name, ids, record in zip(self.names, self.search_ids, records, strict=True):
            counts = stage_counts(len(ids), shares)
            if len(counts) != len(shares):
                raise ValueError(
                    f"stages {list(shares)} ask benchmark {name!r} of {len(ids)} questions "
                    f"{counts}: a stage adds none of its questions"
                )
            order = question_order(name, ids, order_seed)
            # In question-id order, so that the last stage is the full records as they are.
            prefixes.append([record.subset(sorted(order[:asked])) for asked in counts])
        return [self.evaluation(stage) for stage in zip(*prefixes, strict=True)]

    def __call__(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One evaluation of ``X`` ``(q, d)``: ``(Y, Yvar)``, each ``(q, 2)``."""
        evaluation = self.evaluate(X)
        return evaluation.Y, evaluation.Yvar

    def true_values(self, X: np.ndarray) -> np.ndarray:
        """The true objectives ``(q, 2)`` (normalised by the true anchors)."""
        return self.landscape.true_values(X)

    def true_values_by_measured_anchors(self, X: np.ndarray) -> np.ndarray:
        """The merges' true scores normalised by the search's anchors as measured,
        ``(q, 2)``: what the values a run reports would be without the merges' own
        evaluation noise."""
        accuracy, mean_tokens = self.true_scores(np.atleast_2d(X))
        zero = np.zeros_like(accuracy)
        return self.normalise_by_benchmark(accuracy, zero, mean_tokens, zero)[0].mean(axis=2)
