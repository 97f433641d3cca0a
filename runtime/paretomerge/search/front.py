"""Which evaluated points a search reports, and with what values: one rule for every caller.

The optimiser (:meth:`~paretomerge.search.optimizer.AskTellOptimizer.front`, and so
``optimize()`` and the benchmark), the controller's artifacts and the run's status, and
with them the report, the CLI and the plots, all list the members
:func:`reported_front` chooses. It needs numpy alone: the operator builds a run's status
with it and must not load torch.

The rule, for values estimated at ``n`` evaluated points (the search's posterior means,
never raw draws) with their standard deviations:

- only points evaluated in full may be reported (a screened evaluation saw part of the
  questions);
- a point is reported only when no other eligible point dominates it in the values;
- a merge is listed only if it is distinguishable from what would dominate it. Point
  ``i`` is *covered* by ``j`` at level ``p`` when in no objective ``i`` is better than
  ``j`` with probability above ``p`` (one-sided, normal:
  ``P(y_i > y_j) = Phi((y_i - y_j) / sqrt(s_i^2 + s_j^2))``, so ``i`` is better in an
  objective when ``y_i - y_j > z * sqrt(s_i^2 + s_j^2)``, ``z = Phi^-1(p)``);
- a point that a baseline (a model the user has without any merge: the base and the
  expert) covers at :data:`DISTINGUISHABLE_FROM_BASELINES` is no trade-off worth
  listing; a baseline's standard deviation is 0, for the anchors' errors are already
  inside every candidate's;
- the remaining points are taken most accurate first (the first objective, then the
  second, then the lower index): one that a member taken before covers (at
  :data:`DISTINGUISHABLE_FROM_MEMBERS`) is listed with
  that member (``indistinguishable_from``), not as a member of its own; a point that
  covers members taken before takes their place, and they (with what was listed with
  them) are listed with it. So no member covers another, and the most accurate point of
  a group that cannot be told apart stands for it.

Points with identical values cover each other: they are always one member. Without
standard deviations (``std=None``) every value counts as exact (standard deviation 0):
then covering is dominance or equality, and the rule is plain Pareto dominance with the
baselines' matches left out and identical values listed together.

:data:`DISTINGUISHABLE_FROM_BASELINES` is 0.8 (``z = 0.84``): a listed merge beats what
the user already has, in some objective, with four chances in five (at 0.9 both of the
demo's fronts, 4 evaluations of 16 questions each, listed nothing, though one merge's
accuracy stood 1.16 standard deviations above the base's). Leaving such a point out costs
no hypervolume the user does not have. :data:`DISTINGUISHABLE_FROM_MEMBERS` is 0.6
(``z = 0.25``): between members only near-duplicates are folded, for a folded point is a
trade-off the front no longer offers. On a simulated front of 14 points with posterior
deviations of 0.08, folding at 0.8 kept 4 points and lost 4.5% of the true hypervolume,
at 0.6 6 points and 1.1%; the benchmark's fronts are in
``bench/search_efficiency.py``'s docstring.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

#: How sure a merge must be to be better than a baseline in an objective to count as
#: better there (one-sided probability, normal errors).
DISTINGUISHABLE_FROM_BASELINES = 0.8
#: The same between two merges, below which one is listed with the other.
DISTINGUISHABLE_FROM_MEMBERS = 0.6
_Z_BASELINES = NormalDist().inv_cdf(DISTINGUISHABLE_FROM_BASELINES)
_Z_MEMBERS = NormalDist().inv_cdf(DISTINGUISHABLE_FROM_MEMBERS)


@dataclass(frozen=True)
class FrontMember:
    """One member of the reported front: ``index``, the row of the values it was chosen
    from, and ``indistinguishable_from``, the rows listed with it rather than as members
    of their own: those it covers (identical values among them), and those of a member it
    took the place of."""

    index: int
    indistinguishable_from: tuple[int, ...] = ()


def non_dominated(Y: np.ndarray) -> np.ndarray:
    """Boolean mask ``(n,)`` of the rows of ``Y`` ``(n, m)`` that no other row dominates
    (maximisation: ``y'`` dominates ``y`` when ``y' >= y`` in every objective and ``>`` in
    one); duplicate non-dominated rows are all kept. ``O(n^2 m)`` time, ``O(n m)`` memory.
    """
    Y = np.asarray(Y, dtype=float)
    dominated = np.zeros(len(Y), dtype=bool)
    for y in Y:
        dominated |= (y >= Y).all(axis=1) & (y > Y).any(axis=1)
    return ~dominated


def better(
    y: np.ndarray,
    y_std: np.ndarray,
    other: np.ndarray,
    other_std: np.ndarray | float,
    z: float = _Z_MEMBERS,
) -> np.ndarray:
    """Where ``y`` is better than ``other`` with probability above ``Phi(z)``:
    ``y - other > z * sqrt(y_std^2 + other_std^2)``, elementwise over arrays of one
    broadcast shape (with both deviations 0: ``y > other``)."""
    return y - other > z * np.hypot(y_std, other_std)


def covered_by(
    y: np.ndarray,
    y_std: np.ndarray,
    others: np.ndarray,
    others_std: np.ndarray,
    z: float = _Z_MEMBERS,
) -> np.ndarray:
    """Boolean mask ``(k,)``: which rows of ``others`` ``(k, m)`` (standard deviations
    ``others_std``, same shape) cover ``y`` ``(m,)`` (``y_std``, same shape): in no
    objective is ``y`` :func:`better` (at ``z``; default the members' level)."""
    return ~better(y, y_std, others, others_std, z).any(axis=1)


def covered_by_baselines(values: np.ndarray, std: np.ndarray, baselines: np.ndarray) -> np.ndarray:
    """Boolean mask ``(n,)``: which rows of ``values`` ``(n, m)`` (standard deviations
    ``std``, same shape) some row of ``baselines`` ``(k, m)``, exact, covers at
    :data:`DISTINGUISHABLE_FROM_BASELINES`."""
    beats = better(values[:, None, :], std[:, None, :], baselines[None, :, :], 0.0, _Z_BASELINES)
    return (~beats.any(axis=2)).any(axis=1)


def reported_front(
    values: np.ndarray,
    eligible: np.ndarray | None = None,
    baselines: np.ndarray | None = None,
    std: np.ndarray | None = None,
) -> list[FrontMember]:
    """The members of the reported front (the module's rule), best first objective first
    (ties: the second).

    Args:
        values: ``(n, m)`` the estimated values of the evaluated points (maximised).
        eligible: ``(n,)`` which points may be reported (evaluated in full); default all.
        baselines: ``(k, m)`` values the user has without any merge, exact; a point one of
            them covers is left out. Default none.
        std: ``(n, m)`` the standard deviations of ``values``; NaN counts as 0 (exact),
            and ``None`` (the default) makes every value exact.

    Returns:
        the members; ``index`` and ``indistinguishable_from`` refer to rows of ``values``.
    """
    values = np.asarray(values, dtype=float)
    n = len(values)
    if n == 0:
        return []
    std = np.zeros_like(values) if std is None else np.nan_to_num(np.asarray(std, dtype=float))
    eligible = np.ones(n, dtype=bool) if eligible is None else np.asarray(eligible, dtype=bool)
    rows = np.flatnonzero(eligible)
    keep = np.zeros(n, dtype=bool)
    keep[rows] = non_dominated(values[rows])
    if baselines is not None and len(baselines):
        baselines = np.asarray(baselines, dtype=float).reshape(-1, values.shape[1])
        keep &= ~covered_by_baselines(values, std, baselines)
    members = _fold_indistinguishable(values, std, _most_accurate_first(values, keep))
    return sorted(members, key=lambda member: tuple(-values[member.index]))


def _most_accurate_first(values: np.ndarray, keep: np.ndarray) -> list[int]:
    """The rows of ``values`` ``(n, m)`` where ``keep`` ``(n,)``, by the first objective
    descending, then the second, then the row."""
    return sorted(np.flatnonzero(keep).tolist(), key=lambda i: (*(-values[i]), i))


def _fold_indistinguishable(
    values: np.ndarray, std: np.ndarray, order: list[int]
) -> list[FrontMember]:
    """Members taken from the rows ``order`` of ``values`` and ``std`` ``(n, m)`` in that
    order: a row covered by a member is listed with the first such member; otherwise it
    becomes a member, and the members it covers, with their rows, are listed with it."""
    folded: dict[int, list[int]] = {}  # member -> the rows listed with it
    for i in order:
        members = list(folded)
        if members:
            cover_i = covered_by(values[i], std[i], values[members], std[members])
            if cover_i.any():
                folded[members[int(np.argmax(cover_i))]].append(i)
                continue
        folded[i] = []
        for j in members:
            if covered_by(values[j], std[j], values[i][None], std[i][None])[0]:
                folded[i] += [j, *folded.pop(j)]
    return [FrontMember(i, tuple(sorted(rows))) for i, rows in folded.items()]
