"""Minimum-cost assignment (the Hungarian method) for linking detections frame to frame.

SciPy is not a dependency of the project, and the matrices here are tiny (the deer of one frame
against the tracks still open in a burst), so a compact O(n^3) shortest-augmenting-path solver in
numpy is enough.
"""

from __future__ import annotations

import numpy as np


def _solve_square_rows(cost: np.ndarray) -> np.ndarray:
    """Solve for n rows <= m columns; return the column assigned to each row."""
    n, m = cost.shape
    u = np.zeros(n + 1)
    v = np.zeros(m + 1)
    match_col = np.zeros(m + 1, dtype=int)  # row (1-based) assigned to each column, 0 = none
    way = np.zeros(m + 1, dtype=int)
    for i in range(1, n + 1):
        match_col[0] = i
        j0 = 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = match_col[j0]
            cur = cost[i0 - 1] - u[i0] - v[1:]
            free = ~used[1:]
            better = free & (cur < minv[1:])
            minv[1:][better] = cur[better]
            way[1:][better] = j0
            candidates = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(candidates)) + 1
            delta = candidates[j1 - 1]
            u[match_col[used]] += delta
            v[used] -= delta
            minv[1:][free] -= delta
            j0 = j1
            if match_col[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            match_col[j0] = match_col[j1]
            j0 = j1
    rows_to_col = np.full(n, -1, dtype=int)
    for j in range(1, m + 1):
        if match_col[j]:
            rows_to_col[match_col[j] - 1] = j - 1
    return rows_to_col


def linear_assignment(cost: np.ndarray, max_cost: float = np.inf) -> list[tuple[int, int]]:
    """Return the (row, column) pairs of a minimum-cost assignment.

    Args:
        cost: (n, m) matrix; ``inf`` (or anything above ``max_cost``) marks a forbidden pair.
        max_cost: pairs costing more than this are left unassigned.

    Returns:
        Pairs sorted by row; every row and column appears at most once.
    """
    cost = np.asarray(cost, dtype=float)
    if cost.size == 0:
        return []
    allowed = np.isfinite(cost) & (cost <= max_cost)
    # Forbidden pairs get a cost larger than any full assignment of allowed ones, so the solver
    # only picks them when it must; they are dropped afterwards.
    finite = cost[allowed]
    big = (np.abs(finite).sum() + 1.0) * 2.0 if finite.size else 1.0
    work = np.where(allowed, cost, big)
    transposed = work.shape[0] > work.shape[1]
    if transposed:
        work = work.T
    cols = _solve_square_rows(work)
    pairs = [(r, int(c)) for r, c in enumerate(cols) if c >= 0]
    if transposed:
        pairs = [(c, r) for r, c in pairs]
    return sorted((r, c) for r, c in pairs if allowed[r, c])
