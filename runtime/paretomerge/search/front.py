"""Which evaluated points a search reports, and with what values: one rule for every caller.

The optimiser (:meth:`~paretomerge.search.optimizer.AskTellOptimizer.front`, and so
``optimize()`` and the benchmark), the controller's artifacts and the run's status, and
with them the report, the CLI and the plots, all list the members
:func:`reported_front` chooses. It needs numpy alone: the operator builds a run's status
with it and must not load torch.

The rule, for values estimated at ``n`` evaluated points (the search's posterior means,
never raw draws):

- only points evaluated in full may be reported (a screened evaluation saw part of the
  questions);
- a point is reported when no other eligible point dominates it;
- a point that a baseline (a model the user has without any merge: the base and the
  expert) matches or beats in every objective is no trade-off worth listing;
- points with identical values are one choice: the first is the member, the later ones
  are listed with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FrontMember:
    """One member of the reported front: ``index``, the row of the values it was chosen
    from, and ``same_values``, the later rows with exactly its values (listed with it,
    not as members of their own)."""

    index: int
    same_values: tuple[int, ...] = ()


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


def matched_by_baseline(Y: np.ndarray, baselines: np.ndarray) -> np.ndarray:
    """Boolean mask ``(n,)`` of the rows of ``Y`` ``(n, m)`` that some row of ``baselines``
    ``(k, m)`` matches or beats in every objective."""
    Y = np.asarray(Y, dtype=float)
    baselines = np.asarray(baselines, dtype=float).reshape(-1, Y.shape[1])
    return (baselines[None, :, :] >= Y[:, None, :]).all(axis=2).any(axis=1)


def reported_front(
    values: np.ndarray,
    eligible: np.ndarray | None = None,
    baselines: np.ndarray | None = None,
) -> list[FrontMember]:
    """The members of the reported front, best first objective first (ties: the second).

    Args:
        values: ``(n, m)`` the estimated values of the evaluated points (maximised).
        eligible: ``(n,)`` which points may be reported (evaluated in full); default all.
        baselines: ``(k, m)`` values the user has without any merge; a point one of them
            matches or beats is left out. Default none.

    Returns:
        the members; ``index`` refers to the rows of ``values``.
    """
    values = np.asarray(values, dtype=float)
    n = len(values)
    if n == 0:
        return []
    eligible = np.ones(n, dtype=bool) if eligible is None else np.asarray(eligible, dtype=bool)
    rows = np.flatnonzero(eligible)
    keep = np.zeros(n, dtype=bool)
    keep[rows] = non_dominated(values[rows])
    if baselines is not None and len(baselines):
        keep &= ~matched_by_baseline(values, baselines)
    groups: dict[tuple[float, ...], list[int]] = {}
    for i in np.flatnonzero(keep):
        groups.setdefault(tuple(values[i]), []).append(int(i))
    members = [FrontMember(same[0], tuple(same[1:])) for same in groups.values()]
    return sorted(members, key=lambda member: tuple(-values[member.index]))
