"""Surrogate models: one GP per objective, or per objective and benchmark, fitted to data
in the unit cube.

All builders take ``X`` of shape ``(n, k)`` in ``[0, 1]^k``, ``Y`` of shape ``(n, m)``
(raw objective values, maximised) and optionally ``Yvar`` ``(n, m)``, the known variances
of those values, as double tensors, and return a fitted BoTorch model whose posterior is
on the raw scale of ``Y`` (outcome standardisation is inside the model).

Known noise: with ``Yvar`` each observation ``y_i = f(x_i) + e_i`` has its own
``e_i ~ N(0, Yvar_i)`` (heteroscedastic, BoTorch's ``train_Yvar``: a fixed-noise
likelihood, no noise hyperparameter to fit), floored at ``MIN_NOISE_SHARE`` of each
objective's sample variance so that a value reported as exact cannot make the kernel
matrix singular. Without ``Yvar`` one noise level per objective is inferred.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from botorch.acquisition.objective import PosteriorTransform
from botorch.fit import fit_fully_bayesian_model_nuts, fit_gpytorch_mll
from botorch.models import ModelListGP, MultiTaskGP, SingleTaskGP
from botorch.models.fully_bayesian import SaasFullyBayesianSingleTaskGP, SaasPyroModel
from botorch.models.map_saas import (
    add_saas_prior,
    get_gaussian_likelihood_with_gamma_prior,
    get_mean_module_with_normal_prior,
)
from botorch.models.model import Model
from botorch.models.transforms.input import Normalize
from botorch.models.transforms.outcome import Standardize
from botorch.models.utils.gpytorch_modules import (
    MIN_INFERRED_NOISE_LEVEL,
    get_covar_module_with_dim_scaled_prior,
)
from botorch.posteriors.gpytorch import GPyTorchPosterior
from botorch.utils.constraints import LogTransformedInterval
from gpytorch.distributions import MultitaskMultivariateNormal, MultivariateNormal
from gpytorch.kernels import MaternKernel, ScaleKernel
from gpytorch.mlls import ExactMarginalLogLikelihood
from gpytorch.priors import HalfCauchyPrior
from linear_operator.operators import DenseLinearOperator
from linear_operator.utils.cholesky import psd_safe_cholesky

# The floor of a known variance, as a share of the objective's sample variance: BoTorch's
# own floor of an inferred noise level (``MIN_INFERRED_NOISE_LEVEL``) on standardised data.
MIN_NOISE_SHARE = MIN_INFERRED_NOISE_LEVEL
# :func:`variances_at_fitted`: the rows evaluated in full below which a column's
# variance curve (3 coefficients) is not fitted, and how far it may move one variance.
MIN_ROWS_FOR_VARIANCE_FIT = 8
MAX_VARIANCE_RATIO = 4.0


@dataclass(frozen=True)
class NutsSettings:
    """NUTS budget for the fully Bayesian SAAS GP.

    BoTorch's defaults (512 warm-up, 256 samples, thinning 16) take minutes per fit on
    two CPU cores at n=88, d=37; these caps keep a fit well under a minute while still
    retaining ``num_samples / thinning`` posterior draws for the acquisition.
    """

    warmup_steps: int = 128
    num_samples: int = 64
    thinning: int = 8
    max_tree_depth: int = 5


def _bounds(dim: int) -> torch.Tensor:
    return torch.stack([torch.zeros(dim), torch.ones(dim)]).double()


def floored_noise(Y: torch.Tensor, Yvar: torch.Tensor | None) -> torch.Tensor | None:
    r"""Known variances ``(n, m)`` floored per objective: :math:`\max(Yvar_{ij},
    \epsilon\, s_j^2)` with :math:`s_j^2` the sample variance of ``Y[:, j]`` and
    :math:`\epsilon` = ``MIN_NOISE_SHARE``; ``None`` stays ``None`` (noise inferred)."""
    if Yvar is None:
        return None
    scale = Y.var(dim=0) if len(Y) > 1 else torch.ones(Y.shape[-1], dtype=Y.dtype)
    return torch.maximum(Yvar, MIN_NOISE_SHARE * scale.clamp_min(1e-12))


def variances_at_fitted(
    values: torch.Tensor,
    variances: torch.Tensor,
    fitted: torch.Tensor,
    fully_evaluated: torch.Tensor,
) -> torch.Tensor:
    r"""Known variances moved from each observed value to the fitted one.

    A told variance is computed from the same answers as its value: an evaluation whose
    answers came out short is told a smaller variance of its tokens, one whose accuracy
    came out near 0 or 1 a smaller binomial one. Weighted by those variances a fit
    leans on the draws that erred one way, and its values are biased that way
    (``bench/claim_bias.py`` measures it at the fronts a run reports). As in
    iteratively reweighted least squares, the variance belongs at the fitted value.

    Per column (objective, or objective and benchmark) the told variances of the rows
    evaluated in full are fitted by least squares as a quadratic :math:`v(y)` of their
    values (the tool's scoring is: a binomial variance, a length's variance with its
    square, the anchors' delta-method terms, all quadratic in the normalised value,
    :mod:`paretomerge.controller.objectives`), floored at the column's smallest told
    variance (a told 0 stays 0); each row's variance is then scaled by
    :math:`v(\hat y) / v(y)`, clamped to ``[1/MAX_VARIANCE_RATIO, MAX_VARIANCE_RATIO]``,
    which keeps each row's own scale (a screened row asked fewer questions). A column
    with fewer than ``MIN_ROWS_FOR_VARIANCE_FIT`` full rows keeps its told variances.

    Args:
        values: ``(n, ...)`` the observed values.
        variances: ``(n, ...)`` their told variances.
        fitted: ``(n, ...)`` a fit's posterior mean at each row's point.
        fully_evaluated: ``(n,)`` which rows asked every question.

    Returns:
        ``(n, ...)`` the variances at the fitted values.

    References:
        R. J. Carroll, D. Ruppert. Transformation and Weighting in Regression. Chapman &
        Hall, 1988 (chapter 3: variance functions, weights from the fitted means).
    """
    shape = values.shape
    y, v, f = (t.reshape(shape[0], -1) for t in (values, variances, fitted))
    full = torch.as_tensor(fully_evaluated, dtype=torch.bool)
    if int(full.sum()) < MIN_ROWS_FOR_VARIANCE_FIT:
        return variances
    moved = v.clone()
    for column in range(y.shape[1]):
        told = v[full, column]
        curve = torch.linalg.lstsq(_quadratic(y[full, column]), told.unsqueeze(-1)).solution
        floor = told.min().clamp_min(torch.finfo(told.dtype).tiny)  # an exact value: 0
        at_fitted, at_told = (
            (_quadratic(at) @ curve).squeeze(-1).clamp_min(floor)
            for at in (f[:, column], y[:, column])
        )
        ratio = (at_fitted / at_told).clamp(1 / MAX_VARIANCE_RATIO, MAX_VARIANCE_RATIO)
        moved[:, column] = v[:, column] * ratio
    return moved.reshape(shape)


class NoWarmStart(ValueError):
    """A model asked to keep fitted hyperparameters that its warm start does not hold."""


def _quadratic(values: torch.Tensor) -> torch.Tensor:
    """``(n, 3)`` the basis ``1, y, y^2`` of values ``(n,)``."""
    return torch.stack([torch.ones_like(values), values, values**2], dim=-1)


def _fit_map(
    model: Model, warm_start: dict[str, list] | None, prefix: str = "", optimise: bool = True
) -> Model:
    """MAP fit by L-BFGS-B, started from ``warm_start`` when it fits this model.

    ``warm_start`` maps raw hyperparameter names, each after ``prefix``, to values
    (nested lists). A fit started from the previous proposal's optimum needs about half
    the iterations of a cold one; the new optimum is written back, so the caller can
    keep it (as JSON) for the next. With ``optimise`` false the model keeps
    ``warm_start``'s hyperparameters as they are (new data or noise, the same fit).

    Raises:
        NoWarmStart: ``optimise`` false and ``warm_start`` holds no hyperparameters of
            this model.
    """
    loaded = False
    if warm_start is not None:
        current = {prefix + name: p for name, p in model.named_parameters()}
        own = {name: values for name, values in warm_start.items() if name.startswith(prefix)}
        loaded = bool(own) and all(
            name in current and tuple(current[name].shape) == np.shape(values)
            for name, values in own.items()
        )
        if loaded:
            with torch.no_grad():
                for name, values in own.items():
                    current[name].copy_(torch.as_tensor(values, dtype=current[name].dtype))
    if not optimise:
        if not loaded:
            raise NoWarmStart(f"no fitted hyperparameters {prefix!r} to keep in the warm start")
        return model.eval()
    fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
    if warm_start is not None:
        for name in [name for name in warm_start if name.startswith(prefix)]:
            del warm_start[name]
        warm_start.update(
            {prefix + name: p.detach().tolist() for name, p in model.named_parameters()}
        )
    return model


def fit_matern_gp(
    X: torch.Tensor,
    Y: torch.Tensor,
    Yvar: torch.Tensor | None = None,
    initial_lengthscales: np.ndarray | None = None,
    warm_start: dict[str, list] | None = None,
    optimise: bool = True,
) -> SingleTaskGP:
    """MAP-fitted Matern-5/2 ARD GP, one batch member per objective ("plain BoTorch").

    BoTorch's current defaults apart from the kernel: dimension-scaled log-normal
    lengthscale prior (Hvarfner et al. 2024; the older Gamma(3, 6) prior collapses every
    lengthscale to ~0.33 in 37 dimensions and leaves the GP with nothing learnt),
    log-normal noise prior, input normalisation and outcome standardisation.

    Args:
        X: ``(n, k)`` inputs in ``[0, 1]^k``.
        Y: ``(n, m)`` objective values.
        Yvar: ``(n, m)`` known variances of ``Y``, or ``None`` to infer the noise.
        initial_lengthscales: optional ``(k,)`` starting lengthscales for the MAP fit
            (SIP-BMM's prior); the fit starts there and is free to move.
        warm_start: previous hyperparameters to start from, updated in place (see
            :func:`_fit_map`).
        optimise: false to keep ``warm_start``'s hyperparameters as they are.
    """
    num_objectives = Y.shape[-1]
    batch_shape = torch.Size([num_objectives]) if num_objectives > 1 else torch.Size()
    model = SingleTaskGP(
        X,
        Y,
        floored_noise(Y, Yvar),
        covar_module=get_covar_module_with_dim_scaled_prior(
            X.shape[-1], batch_shape=batch_shape, use_rbf_kernel=False
        ),
        input_transform=Normalize(X.shape[-1], bounds=_bounds(X.shape[-1])),
        outcome_transform=Standardize(num_objectives),
    )
    if initial_lengthscales is not None:
        model.covar_module.lengthscale = torch.as_tensor(
            initial_lengthscales, dtype=X.dtype
        ).expand_as(model.covar_module.lengthscale)
    return _fit_map(model, warm_start, optimise=optimise)


def add_sip_saas_prior(kernel: MaternKernel, prior_scales: np.ndarray | None) -> MaternKernel:
    r"""BoTorch's MAP SAAS prior with a per-dimension half-Cauchy scale.

    ``tau ~ HC(0.1)`` and ``tau / l_j^2 ~ HC(s_j)``; ``s_j = 1`` everywhere is BoTorch's
    MAP SAAS. ``prior_scales`` (shape ``(k,)``) comes from
    :func:`paretomerge.search.prior.sip_saas_prior_scales`.
    """
    add_saas_prior(kernel, tau=None, log_scale=True)
    if prior_scales is not None:
        closure, setting_closure = kernel._priors["inv_lengthscale_prior"][1:]
        kernel.register_prior(
            "inv_lengthscale_prior",
            HalfCauchyPrior(torch.as_tensor(prior_scales, dtype=kernel.raw_lengthscale.dtype)),
            closure,
            setting_closure,
        )
    return kernel


def fit_map_saas_gp(
    X: torch.Tensor,
    Y: torch.Tensor,
    Yvar: torch.Tensor | None = None,
    prior_scales: np.ndarray | None = None,
) -> SingleTaskGP:
    """MAP-fitted Matern-5/2 GP under the (SIP-)SAAS prior, one batch member per objective.

    Args:
        X: ``(n, k)`` inputs in ``[0, 1]^k``.
        Y: ``(n, m)`` objective values.
        Yvar: ``(n, m)`` known variances of ``Y``, or ``None`` to infer the noise (Gamma
            prior, as BoTorch's MAP SAAS).
        prior_scales: ``(k,)`` half-Cauchy scales of ``tau / l_j^2``; ``None`` is plain
            MAP SAAS.
    """
    num_objectives = Y.shape[-1]
    batch_shape = torch.Size([num_objectives]) if num_objectives > 1 else torch.Size()
    base_kernel = MaternKernel(nu=2.5, ard_num_dims=X.shape[-1], batch_shape=batch_shape).to(X)
    add_sip_saas_prior(base_kernel, prior_scales)
    train_Yvar = floored_noise(Y, Yvar)
    model = SingleTaskGP(
        X,
        Y,
        train_Yvar,
        mean_module=get_mean_module_with_normal_prior(batch_shape=batch_shape),
        covar_module=ScaleKernel(
            base_kernel,
            outputscale_constraint=LogTransformedInterval(1e-2, 1e4, initial_value=10),
            batch_shape=batch_shape,
        ),
        likelihood=(
            get_gaussian_likelihood_with_gamma_prior(batch_shape=batch_shape)
            if train_Yvar is None
            else None
        ),
        input_transform=Normalize(X.shape[-1], bounds=_bounds(X.shape[-1])),
        outcome_transform=Standardize(num_objectives),
    ).to(X)
    return _fit_map(model, None)


class SipSaasPyroModel(SaasPyroModel):
    """NumPyro SAAS model whose inverse squared lengthscales have per-dimension scales."""

    prior_scales: np.ndarray | None = None

    def sample_lengthscale(self, dim: int, alpha: float = 0.1):
        import jax.numpy as jnp
        import numpyro
        import numpyro.distributions as dist

        if self.prior_scales is None:
            return super().sample_lengthscale(dim, alpha)
        tausq = numpyro.sample("kernel_tausq", dist.HalfCauchy(jnp.array(alpha)))
        inv_length_sq = numpyro.sample(
            "_kernel_inv_length_sq", dist.HalfCauchy(jnp.asarray(self.prior_scales))
        )
        inv_length_sq = numpyro.deterministic("kernel_inv_length_sq", tausq * inv_length_sq)
        return numpyro.deterministic("lengthscale", 1.0 / jnp.sqrt(inv_length_sq))


class SipSaasFullyBayesianGP(SaasFullyBayesianSingleTaskGP):
    """BoTorch's fully Bayesian SAAS GP with the SIP prior inside its NumPyro model."""

    _pyro_model_class = SipSaasPyroModel

    def __init__(
        self,
        X: torch.Tensor,
        Y: torch.Tensor,
        Yvar: torch.Tensor | None,
        prior_scales: np.ndarray | None,
    ):
        super().__init__(
            X,
            Y,
            Yvar,
            input_transform=Normalize(X.shape[-1], bounds=_bounds(X.shape[-1])),
            outcome_transform=Standardize(1),
        )
        self.pyro_model.prior_scales = prior_scales


def fit_saas_gp(
    X: torch.Tensor,
    Y: torch.Tensor,
    Yvar: torch.Tensor | None = None,
    prior_scales: np.ndarray | None = None,
    nuts: NutsSettings = NutsSettings(),
    seed: int = 0,
) -> Model:
    """Fully Bayesian (SIP-)SAAS GP per objective, fitted by NUTS; a ``ModelListGP``.

    With ``Yvar`` ``(n, m)`` the noise is known (floored), otherwise sampled by NUTS.
    """
    models = []
    train_Yvar = floored_noise(Y, Yvar)
    for j in range(Y.shape[-1]):
        noise = None if train_Yvar is None else train_Yvar[:, j : j + 1]
        model = SipSaasFullyBayesianGP(X, Y[:, j : j + 1], noise, prior_scales)
        fit_fully_bayesian_model_nuts(
            model,
            warmup_steps=nuts.warmup_steps,
            num_samples=nuts.num_samples,
            thinning=nuts.thinning,
            max_tree_depth=nuts.max_tree_depth,
            disable_progbar=True,
            seed=seed + j,
        )
        models.append(model)
    return ModelListGP(*models)


def _any_task(X: torch.Tensor) -> torch.Tensor:
    """``(..., q, k + 1)``: merges ``X`` ``(..., q, k)`` with a task column, which the
    kernel over merges ignores."""
    return torch.cat([X, torch.zeros(*X.shape[:-1], 1).to(X)], dim=-1)


@dataclass(frozen=True)
class _MeanOfTasks:
    r"""The posterior of :math:`f = \frac{1}{S} \sum_s g_s` under one fitted
    ``MultiTaskGP``, in closed form.

    The model's covariance is :math:`B_{st} k(x, x')` (task covariance times a kernel
    over the merges) on standardised outcomes :math:`h_s` with task means :math:`c_s`;
    with the mean weights :math:`w = 1/S`, :math:`\operatorname{Cov}(f(x), h_t(x')) =
    (Bw)_t\, k(x, x')` and :math:`\operatorname{Var} f(x) = w^\top B w\, k(x, x)`.
    So, given the training factor :math:`L L^\top = K + \Sigma` (``(N, N)``, ``N = nS``)
    and :math:`\alpha = (K + \Sigma)^{-1} (y - c)`, the posterior needs the kernel of each
    new point once, not once per task, and against each distinct merge once: :math:`S^2`
    times fewer values than the model's own posterior over every task and training row,
    which dominated a proposal.
    """

    kernel: torch.nn.Module  # k over the merges (the task column ignored)
    merges: torch.Tensor  # (n, k + 1) the distinct training merges (task column any)
    merge_of_row: torch.Tensor  # (N,) each training row's merge
    cross_weights: torch.Tensor  # (N,) (Bw)_t of each training row's task t
    prior_variance: torch.Tensor  # w' B w
    prior_mean: torch.Tensor  # w' c
    factor: torch.Tensor  # (N, N) L
    alpha: torch.Tensor  # (N,)
    offset: torch.Tensor  # the outcome transform's mean
    scale: torch.Tensor  # and standard deviation

    @classmethod
    def of(cls, model: MultiTaskGP) -> _MeanOfTasks:
        model.eval()
        data_kernel, task_kernel = model.covar_module.kernels
        with torch.no_grad():
            train_X = model.train_inputs[0]
            tasks = torch.arange(model.num_tasks, dtype=train_X.dtype).unsqueeze(-1)
            task_rows = torch.cat(
                [torch.zeros(len(tasks), train_X.shape[-1] - 1).to(tasks), tasks], -1
            )
            B = task_kernel(task_rows).to_dense()
            weights = torch.full((model.num_tasks,), 1.0 / model.num_tasks).to(B)
            means = torch.stack([m.constant.squeeze() for m in model.mean_module.base_means])
            train_task = train_X[:, -1].long()
            K = model.covar_module(train_X).to_dense() + torch.diag(model.likelihood.noise)
            factor = psd_safe_cholesky(K)
            residual = (model.train_targets - means[train_task]).unsqueeze(-1)
            alpha = torch.cholesky_solve(residual, factor).squeeze(-1)
            merges, merge_of_row = torch.unique(train_X[:, :-1], dim=0, return_inverse=True)
        return cls(
            kernel=data_kernel,
            merges=_any_task(merges),
            merge_of_row=merge_of_row,
            cross_weights=(B @ weights)[train_task],
            prior_variance=weights @ B @ weights,
            prior_mean=weights @ means,
            factor=factor,
            alpha=alpha,
            offset=model.outcome_transform.means.squeeze(),
            scale=model.outcome_transform.stdvs.squeeze(),
        )

    def cross(self, X: torch.Tensor) -> torch.Tensor:
        r"""``(..., q, N)`` the prior covariance of ``f`` at ``X`` ``(..., q, k)`` with each
        training row's task value, standardised: :math:`(Bw)_t\, k(x, x_i)`."""
        by_merge = self.kernel(_any_task(X), self.merges).to_dense()  # (..., q, n): each merge once
        return by_merge[..., self.merge_of_row] * self.cross_weights

    def __call__(self, X: torch.Tensor) -> MultivariateNormal:
        """The posterior of ``f`` at ``X`` ``(..., q, k)``, jointly over the ``q``."""
        cross = self.cross(X)
        mean = self.prior_mean + cross @ self.alpha
        v = torch.linalg.solve_triangular(self.factor, cross.transpose(-1, -2), upper=False)
        covariance = (
            self.prior_variance * self.kernel(_any_task(X)).to_dense() - v.transpose(-1, -2) @ v
        )
        # Lazy, as GPyTorch's own posteriors are: the difference above can lose definiteness
        # in rounding near the data, and sampling factorises it with jitter.
        return MultivariateNormal(
            self.offset + self.scale * mean, DenseLinearOperator(self.scale**2 * covariance)
        )


class BenchmarkMeanModel(Model):
    r"""Objectives that are means over benchmarks, modelled benchmark by benchmark.

    Objective ``j`` is :math:`f_j(x) = \frac{1}{S} \sum_s g_{js}(x)`, the mean of its
    normalised figure on the ``S`` benchmarks. Per objective one fitted ``MultiTaskGP``
    models the :math:`g_{js}` jointly (intrinsic coregionalisation: a kernel over the
    merges times a task covariance learnt from the data, each benchmark with its own
    known noise), so that a benchmark measured precisely (GPQA-Diamond's 198 questions)
    informs one measured coarsely (AIME25's 30) as far as the data say they move
    together. The posterior of :math:`f_j` is that of the mean of the tasks
    (:class:`_MeanOfTasks`); the objectives are independent.

    References:
        Bonilla, Chai, Williams. Multi-task Gaussian Process Prediction. NeurIPS 2007.
    """

    def __init__(self, models: Sequence[MultiTaskGP]):
        super().__init__()
        self.models = torch.nn.ModuleList(models)
        self._means = [_MeanOfTasks.of(model) for model in models]

    @property
    def num_outputs(self) -> int:
        return len(self.models)

    @property
    def batch_shape(self) -> torch.Size:
        return torch.Size()

    def benchmark_means(self, X: torch.Tensor) -> torch.Tensor:
        """``(n, m, S)`` the posterior mean of each objective's figure on each benchmark
        at ``X`` ``(n, k)``."""
        with torch.no_grad():
            return torch.stack([model.posterior(X).mean for model in self.models], dim=1)

    def posterior(
        self,
        X: torch.Tensor,
        output_indices: list[int] | None = None,
        observation_noise: bool = False,
        posterior_transform: PosteriorTransform | None = None,
    ) -> GPyTorchPosterior:
        """The latent objectives' joint posterior at ``X`` ``(b, q, k)``: ``(b, q, m)``
        (the objectives ``output_indices`` only, when given)."""
        if observation_noise is not False:
            raise NotImplementedError("the objectives' noise is each benchmark's, not modelled")
        indices = range(self.num_outputs) if output_indices is None else output_indices
        mvns = [self._means[j](X) for j in indices]
        joint = (
            mvns[0] if len(mvns) == 1 else MultitaskMultivariateNormal.from_independent_mvns(mvns)
        )
        posterior = GPyTorchPosterior(joint)
        return posterior if posterior_transform is None else posterior_transform(posterior)


def fit_benchmark_mean_gp(
    X: torch.Tensor,
    Y_by_benchmark: torch.Tensor,
    Yvar_by_benchmark: torch.Tensor,
    warm_start: dict[str, list] | None = None,
    optimise: bool = True,
) -> BenchmarkMeanModel:
    """A MAP-fitted :class:`BenchmarkMeanModel`: per objective a ``MultiTaskGP`` with
    BoTorch's defaults (an RBF ARD kernel over the merges with the dimension-scaled
    lengthscale prior, a full-rank task covariance of positive correlations, a mean per
    task, outcome standardisation over all tasks together).

    Args:
        X: ``(n, k)`` inputs in ``[0, 1]^k``.
        Y_by_benchmark: ``(n, m, S)`` each objective's value on each benchmark.
        Yvar_by_benchmark: ``(n, m, S)`` their known variances (floored as in
            :func:`floored_noise`).
        warm_start: previous hyperparameters, by name (see :func:`_fit_map`).
        optimise: false to keep ``warm_start``'s hyperparameters as they are.
    """
    n, m, S = Y_by_benchmark.shape
    task = torch.arange(S, dtype=X.dtype).repeat_interleave(n).unsqueeze(-1)
    X_tasks = torch.cat([X.repeat(S, 1), task], dim=-1)  # benchmark by benchmark
    models = []
    for j in range(m):
        values = Y_by_benchmark[:, j, :].T.reshape(-1, 1)
        model = MultiTaskGP(
            X_tasks,
            values,
            task_feature=-1,
            train_Yvar=floored_noise(values, Yvar_by_benchmark[:, j, :].T.reshape(-1, 1)),
            outcome_transform=Standardize(1),
        )
        models.append(_fit_map(model, warm_start, f"models.{j}.", optimise))
    return BenchmarkMeanModel(models)
