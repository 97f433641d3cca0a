"""The Structural Importance Prior (SIP): from a divergence profile to surrogate priors.

A profile holds one non-negative divergence per decision variable (e.g. the mean Frobenius
norm of ``W_expert - W_base`` over a layer's tensors). Importance is that profile min-max
normalised to ``[0, 1]``. Two ways to let importance steer the surrogate:

- :func:`sip_initial_lengthscales` — what the SIP-BMM reference code does: only the
  starting lengthscales of a MAP-fitted Matern GP depend on importance.
- :func:`sip_saas_prior_scales` — ours: importance sets the per-dimension scale of the
  SAAS half-Cauchy prior, so the prior itself (not just the optimiser's start) favours
  important variables while the data can still overrule it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from paretomerge.partition import BlockPartition, normalize_profile

# SIP-BMM's two lengthscale mappings (docs/design.md).
_THRESHOLD_LENGTHSCALES = ((0.9, 0.5), (0.7, 1.0))  # importance > t -> lengthscale
_THRESHOLD_DEFAULT = 5.0
_RANK_LENGTHSCALES = ((0.15, 0.5), (0.40, 1.0), (0.70, 2.0))  # top share -> lengthscale
_RANK_DEFAULT = 5.0


def block_importance(layer_importance: Sequence[float], partition: BlockPartition) -> np.ndarray:
    """Block importance: the sum of its layers' importance, min-max normalised again.

    Args:
        layer_importance: shape ``(n,)``, one value per layer of the partition.
        partition: a partition of those ``n`` layers into ``k`` blocks.

    Returns:
        shape ``(k,)`` in ``[0, 1]``.
    """
    v = np.asarray(layer_importance, dtype=float)
    if v.shape != (partition.num_layers,):
        raise ValueError(
            f"expected {partition.num_layers} layer values for the partition, got {v.shape}"
        )
    sums = np.array([v[a:b].sum() for a, b in partition.bounds])
    return normalize_profile(sums)


def sip_initial_lengthscales(
    importance: Sequence[float], mapping: Literal["rank", "threshold"] = "rank"
) -> np.ndarray:
    """Starting lengthscales of SIP-BMM's Matern GP (inputs scaled to ``[0, 1]``).

    ``rank`` (the later reference version): variables ranked by importance, the top 15%
    get 0.5, the next up to 40% get 1.0, up to 70% get 2.0, the rest 5.0.
    ``threshold`` (the first version): importance > 0.9 -> 0.5, in (0.7, 0.9] -> 1.0,
    else 5.0. Ties in rank are broken by position, so equal importance may straddle a
    boundary.

    Returns:
        shape ``(d,)``, non-increasing in importance.
    """
    imp = np.asarray(importance, dtype=float)
    if mapping == "threshold":
        out = np.full(imp.shape, _THRESHOLD_DEFAULT)
        for threshold, lengthscale in reversed(_THRESHOLD_LENGTHSCALES):
            out[imp > threshold] = lengthscale
        return out
    if mapping != "rank":
        raise ValueError(f"unknown SIP lengthscale mapping {mapping!r}; use 'rank' or 'threshold'")
    order = np.argsort(-imp, kind="stable")
    share = (np.arange(imp.size) + 1) / imp.size  # share of variables at or above this rank
    ranked = np.full(imp.shape, _RANK_DEFAULT)
    for top_share, lengthscale in reversed(_RANK_LENGTHSCALES):
        ranked[share <= top_share] = lengthscale
    out = np.empty_like(ranked)
    out[order] = ranked
    return out


def sip_saas_prior_scales(importance: Sequence[float], strength: float = 2.0) -> np.ndarray:
    r"""Per-dimension scales of the SIP-SAAS prior.

    The SAAS prior puts a global shrinkage :math:`\tau \sim HC(0.1)` and, per dimension
    :math:`j`, :math:`\rho_j = \tau / \ell_j^2 \sim HC(1)` on the inverse squared
    lengthscale. SIP-SAAS replaces the unit scale by

    .. math:: \rho_j \sim HC(s_j), \qquad s_j = 10^{\,\kappa\,(\iota_j - 1/2)},

    with importance :math:`\iota_j \in [0, 1]` and strength :math:`\kappa \ge 0`
    (default 2: scales from 0.1 for the least to 10 for the most important variable).
    :math:`s_j` is strictly increasing in :math:`\iota_j`, so an important variable is a
    priori more likely to have a short lengthscale (to matter); :math:`\iota = 1/2` or
    :math:`\kappa = 0` gives the plain SAAS prior. Heavy Cauchy tails keep every variable
    free to become relevant (or not) when the data say so.

    Returns:
        shape ``(d,)``, positive.
    """
    if strength < 0:
        raise ValueError(f"SIP prior strength must be >= 0, got {strength}")
    imp = np.asarray(importance, dtype=float)
    return 10.0 ** (strength * (imp - 0.5))
