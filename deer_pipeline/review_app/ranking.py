"""The ranked list the review queue keeps between requests: candidates as rows of arrays.

Each candidate (a pair of deer, or a part of a deer that may be a stray) is one row of pair
features with its probability. A refit of the pair model re-scores every row in one matrix
product; the best rows come out of one partial sort; a decision adds and removes a few rows. So
neither a refit nor the next proposal costs a Python loop over tens of thousands of candidates.
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np


class Ranking:
    """Candidate rows: features, probability, and whether each is a stray part or hidden.

    A pair row's score is P(same animal); a stray row's is P(another animal) = 1 - P(same).

    Args:
        width: number of pair features.
    """

    def __init__(self, width: int):
        self.width = width
        self.x = np.zeros((0, width))
        self.p = np.zeros(0)
        self.stray = np.zeros(0, dtype=bool)
        self.live = np.zeros(0, dtype=bool)
        self.hidden = np.zeros(0, dtype=bool)
        self.scored = np.zeros(0, dtype=bool)
        self.version = np.zeros(0, dtype=np.int64)
        self.ends = np.zeros((0, 2), dtype=np.int64)  # a pair row's two deer
        self.keys: list = []
        self.row: dict[Hashable, int] = {}
        self.versions: list[str] = []
        self._free: list[int] = []

    def __len__(self) -> int:
        return len(self.row)

    def _grow(self) -> None:
        n = len(self.keys)
        extra = max(64, n // 2)
        self.x = np.vstack([self.x, np.zeros((extra, self.width))])
        for name in ("p",):
            setattr(self, name, np.concatenate([getattr(self, name), np.zeros(extra)]))
        for name in ("stray", "live", "hidden", "scored"):
            setattr(self, name, np.concatenate([getattr(self, name), np.zeros(extra, bool)]))
        self.version = np.concatenate([self.version, np.full(extra, -1, dtype=np.int64)])
        self.ends = np.vstack([self.ends, np.zeros((extra, 2), dtype=np.int64)])
        self.keys.extend([None] * extra)
        self._free.extend(range(n + extra - 1, n - 1, -1))

    def put(self, key: Hashable, x: np.ndarray, version: str, stray: bool) -> int:
        """Add (or replace) a candidate row, unscored until the next :meth:`score`."""
        if key in self.row:
            r = self.row[key]
        else:
            if not self._free:
                self._grow()
            r = self._free.pop()
            self.row[key] = r
            self.keys[r] = key
        if version not in self.versions:
            self.versions.append(version)
        self.x[r] = x
        if not stray:
            self.ends[r] = key[1:3]
        self.stray[r] = stray
        self.live[r] = True
        self.hidden[r] = False
        self.scored[r] = False
        self.version[r] = self.versions.index(version)
        return r

    def drop(self, key: Hashable) -> None:
        """Remove a candidate."""
        r = self.row.pop(key, None)
        if r is not None:
            self.live[r] = False
            self.keys[r] = None
            self._free.append(r)

    def features(self, key: Hashable) -> np.ndarray | None:
        """The features of a candidate (None: not a candidate)."""
        r = self.row.get(key)
        return None if r is None else self.x[r].copy()

    def probability(self, key: Hashable) -> float:
        """P(same animal) of a scored candidate."""
        return float(self.p[self.row[key]])

    def hide(self, keys, hidden: bool = True) -> None:
        """Hide candidates (decided already) or show them again."""
        for key in keys:
            r = self.row.get(key)
            if r is not None:
                self.hidden[r] = hidden

    def score(self, models: dict, everything: bool = False) -> None:
        """Score unscored rows (or all rows) with each version's learner.

        Args:
            models: version -> an object with ``probability(X, stray)`` (``Learner``).
            everything: score every row again (after a refit).
        """
        for code, version in enumerate(self.versions):
            mask = self.live & (self.version == code)
            if not everything:
                mask &= ~self.scored
            if mask.any() and version in models:
                self.p[mask] = models[version].probability(self.x[mask], self.stray[mask])
                self.scored[mask] = True

    def top(self, k: int | None, skip=()) -> list[tuple[Hashable, float, float]]:
        """The best ``k`` shown candidates: (key, score, P(same animal)), best first."""
        open_rows = np.flatnonzero(self.live & ~self.hidden & self.scored)
        if skip:
            gone = {self.row[key] for key in skip if key in self.row}
            open_rows = open_rows[~np.isin(open_rows, list(gone))]
        score = np.where(self.stray[open_rows], 1.0 - self.p[open_rows], self.p[open_rows])
        if k is not None and k < len(open_rows):
            part = np.argpartition(-score, k - 1)[:k]
            open_rows, score = open_rows[part], score[part]
        order = np.lexsort((open_rows, -score))
        return [(self.keys[r], float(score[i]), float(self.p[r])) for i, r in
                ((i, open_rows[i]) for i in order)]  # fmt: skip

    def set_ranks(self, columns: tuple[int, int, int, int, int]) -> None:
        """Fill the pair rows' rank features from the candidates themselves.

        The pair model reads where each side stands among the other's neighbours (0: its
        nearest) by best detection cosine, overall and across day/night. The candidates of a deer
        are its nearest deer by mean and by single sightings, so its partners with a higher best
        cosine are among them: the rank among its candidates is its rank in the herd.

        Args:
            columns: feature columns (best cosine, best day-night cosine, has day-night,
                log rank overall, log rank across day/night).
        """
        best, cross_best, has_cross, rank_any, rank_cross = columns
        rows = np.flatnonzero(self.live & ~self.stray)
        if not len(rows):
            return
        pairs = self.ends[rows]
        for value_col, rank_col, only in (
            (best, rank_any, None),
            (cross_best, rank_cross, has_cross),
        ):
            values = self.x[rows, value_col]
            valid = np.ones(len(rows), bool) if only is None else self.x[rows, only] > 0
            deer = np.concatenate([pairs[:, 0], pairs[:, 1]])
            vals = np.where(
                np.concatenate([valid, valid]), np.concatenate([values, values]), -np.inf
            )
            order = np.lexsort((-vals, deer))
            sorted_deer, sorted_vals = deer[order], vals[order]
            start = np.searchsorted(sorted_deer, sorted_deer, side="left")
            # rank = partners of the same deer with a strictly higher value
            first_equal = np.empty(len(order), dtype=np.int64)
            first_equal[0] = 0
            same = (sorted_deer[1:] == sorted_deer[:-1]) & (sorted_vals[1:] == sorted_vals[:-1])
            idx = np.arange(1, len(order))
            first_equal[1:] = np.where(same, 0, idx)
            first_equal = np.maximum.accumulate(first_equal)
            rank = np.empty(len(order), dtype=np.int64)
            rank[order] = first_equal - start
            both = np.maximum(rank[: len(rows)], rank[len(rows) :])
            new = np.where(valid, np.log1p(both), 0.0)
            moved = self.x[rows, rank_col] != new
            self.x[rows, rank_col] = new
            self.scored[rows[moved]] = False  # only rows whose rank moved are scored again

    def shown(self) -> int:
        """How many scored candidates are not hidden."""
        return int((self.live & ~self.hidden & self.scored).sum())
