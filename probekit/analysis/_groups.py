"""Vectorised group-by over the probes table: group ids in the order pandas' ``groupby`` (and a sort by
the key columns) gives them, per-group order statistics, and the key columns of each group with their
dtypes kept. Shared by metrics, timing, sources and sizes; a compiled hash join (:func:`factorize_rows`)
also serves probe matching."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .._jit import njit

__all__ = ["Groups", "group_by", "factorize_rows", "cell_stats", "within_group_order"]


class Groups:
    """``gid[i]``: the group of row i (0..n-1, in sorted key order); ``first[g]``: a row of group g;
    ``size[g]``: its rows."""

    def __init__(self, gid: np.ndarray, first: np.ndarray, n: int):
        self.gid, self.first, self.n = gid, first, n
        self.size = np.bincount(gid, minlength=n) if gid.size else np.zeros(n, np.int64)

    def keys(self, probes: pd.DataFrame, by, rows: np.ndarray | None = None) -> pd.DataFrame:
        """The key columns of each group (or of ``rows``) as a table, dtypes as in ``probes``."""
        take = self.first if rows is None else rows
        return probes[list(by)].iloc[take].reset_index(drop=True)


def _key_codes(col: pd.Series) -> np.ndarray:
    """Integer codes sorting like ``sort_values`` (categoricals by code, numbers by value, <NA> last)."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        c = col.cat.codes.to_numpy(np.int64)
        return np.where(c < 0, len(col.cat.categories), c)
    arr = col.array
    data, mask = getattr(arr, "_data", None), getattr(arr, "_mask", None)
    if isinstance(data, np.ndarray) and data.dtype.kind in "iu" and isinstance(mask, np.ndarray):
        v = data.astype(np.int64)
        hi = int(v[~mask].max()) + 1 if (~mask).any() else 0
        v[mask] = hi
        return v
    v = col.to_numpy("float64", na_value=np.nan)
    hi = np.nanmax(v) + 1 if v.size and not np.all(np.isnan(v)) else 0
    return np.where(np.isnan(v), hi, v).astype(np.int64)


def group_by(probes: pd.DataFrame, by) -> Groups:
    """Groups of ``probes`` by the columns ``by`` (rows with <NA> keys form their own groups, as with
    ``groupby(dropna=False)``), numbered in sorted key order."""
    by = list(by)
    n = len(probes)
    if n == 0:
        return Groups(np.zeros(0, np.int64), np.zeros(0, np.int64), 0)
    if not by:
        return Groups(np.zeros(n, np.int64), np.zeros(1, np.int64), 1)
    cols = [_key_codes(probes[c]) for c in by]
    bits = [max(int(c.max()), 1).bit_length() for c in cols]
    if sum(bits) <= 62:
        packed = np.zeros(n, np.int64)
        for c, b in zip(cols, bits):
            packed = (packed << b) | c
        ids, count = factorize_rows(packed.reshape(-1, 1), np.ones(n, np.bool_), 1)
        firsts = _first_rows(ids, count)
        rank = np.empty(count, np.int64)
        rank[np.argsort(packed[firsts], kind="stable")] = np.arange(count)
    else:  # pragma: no cover - keys too wide to pack (more than ~2^20 addresses)
        mat = np.ascontiguousarray(np.stack(cols, 1))
        ids, count = factorize_rows(mat, np.ones(n, np.bool_), mat.shape[1])
        firsts = _first_rows(ids, count)
        rank = np.empty(count, np.int64)
        rank[np.lexsort(tuple(mat[firsts, j] for j in range(mat.shape[1] - 1, -1, -1)))] = np.arange(count)
    gid = rank[ids]
    first = np.empty(count, np.int64)
    first[rank] = firsts
    return Groups(gid, first, int(count))


def _first_rows(ids: np.ndarray, count: int) -> np.ndarray:
    first = np.full(count, ids.size, np.int64)
    _min_index(ids, first)
    return first


@njit(nogil=True)
def _min_index(ids, first):
    for i in range(ids.size - 1, -1, -1):
        first[ids[i]] = i


def within_group_order(gid: np.ndarray, *sort_keys: np.ndarray) -> np.ndarray:
    """Row order by group, then by ``sort_keys`` (first key most significant), stable."""
    return np.lexsort(tuple(reversed(sort_keys)) + (gid,))


@njit(nogil=True)
def factorize_rows(keys, use, ncols):
    """The rows of ``keys`` (an (n, k) int64 array) where ``use`` → dense integers in first-seen order
    (-1 elsewhere): an open-addressing hash join on the first ``ncols`` columns. Returns (ids, count)."""
    n = keys.shape[0]
    size = 16
    while size < 2 * n:
        size *= 2
    table = np.full(size, -1, np.int64)
    ids = np.full(n, -1, np.int64)
    nid = 0
    for i in range(n):
        if not use[i]:
            continue
        h = np.uint64(0x9E3779B97F4A7C15)
        for j in range(ncols):
            h = (h ^ np.uint64(keys[i, j] & 0x7FFFFFFFFFFFFFFF)) * np.uint64(0xFF51AFD7ED558CCD)
            h ^= h >> np.uint64(29)
        slot = np.int64(h & np.uint64(size - 1))
        while True:
            r = table[slot]
            if r < 0:
                table[slot] = i
                ids[i] = nid
                nid += 1
                break
            same = True
            for j in range(ncols):
                if keys[r, j] != keys[i, j]:
                    same = False
                    break
            if same:
                ids[i] = ids[r]
                break
            slot = (slot + 1) & (size - 1)
    return ids, nid


def cell_stats(cell: np.ndarray, values: np.ndarray, n_cells: int, qs=()) -> dict:
    """Per cell (integer group 0..n_cells-1): count, sum, mean, min, max of ``values`` (NaNs ignored)
    and the quantiles ``qs`` (linear interpolation); NaN where a cell has no value."""
    q = np.asarray(qs, dtype=np.float64)
    stats = _cell_stats if q.size else _cell_moments
    count, total, vmin, vmax, quant = stats(np.asarray(cell, np.int64), np.asarray(values, np.float64),
                                                  int(n_cells), q)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    out = {"count": count, "sum": total, "mean": mean, "min": vmin, "max": vmax}
    for j, qq in enumerate(q):
        out[float(qq)] = quant[:, j]  # type: ignore[index]
    return out


@njit(nogil=True)
def _cell_moments(cell, values, n_cells, qs):
    """count, sum, min, max per cell in one pass (no order statistics asked: no sort)."""
    count = np.zeros(n_cells, np.int64)
    total = np.zeros(n_cells, np.float64)
    vmin = np.full(n_cells, np.nan)
    vmax = np.full(n_cells, np.nan)
    for i in range(cell.size):
        x = values[i]
        if np.isnan(x):
            continue
        c = cell[i]
        if count[c] == 0 or x < vmin[c]:
            vmin[c] = x
        if count[c] == 0 or x > vmax[c]:
            vmax[c] = x
        count[c] += 1
        total[c] += x
    return count, total, vmin, vmax, np.full((n_cells, 0), np.nan)


@njit(nogil=True)
def _cell_stats(cell, values, n_cells, qs):
    """Counting sort of the values by cell, then each cell's slice sorted: O(n log(n / cells))."""
    count = np.zeros(n_cells, np.int64)
    for i in range(cell.size):
        if not np.isnan(values[i]):
            count[cell[i]] += 1
    start = np.zeros(n_cells + 1, np.int64)
    for c in range(n_cells):
        start[c + 1] = start[c] + count[c]
    pos = start[:n_cells].copy()
    v = np.empty(start[n_cells], np.float64)
    for i in range(cell.size):
        x = values[i]
        if not np.isnan(x):
            v[pos[cell[i]]] = x
            pos[cell[i]] += 1
    total = np.zeros(n_cells, np.float64)
    vmin = np.full(n_cells, np.nan)
    vmax = np.full(n_cells, np.nan)
    quant = np.full((n_cells, qs.size), np.nan)
    for c in range(n_cells):
        m = count[c]
        if m == 0:
            continue
        s = np.sort(v[start[c]:start[c + 1]])
        acc = 0.0
        for x in s:
            acc += x
        total[c] = acc
        vmin[c] = s[0]
        vmax[c] = s[m - 1]
        for j in range(qs.size):
            p = qs[j] * (m - 1)
            lo = int(np.floor(p))
            hi = min(lo + 1, m - 1)
            t = p - lo
            a, b = s[lo], s[hi]
            # numpy's lerp: exact at both ends
            quant[c, j] = b - (b - a) * (1.0 - t) if t >= 0.5 else a + (b - a) * t
    return count, total, vmin, vmax, quant


@njit(nogil=True)
def factorize_words(w1, w2, use):
    """:func:`factorize_rows` for identities packed into two int64 words: the table holds the words
    themselves beside the id (one cache line per probe of the table, no second look-up)."""
    n = w1.size
    m = 0
    for i in range(n):
        if use[i]:
            m += 1
    size = 16
    while size < 2 * m:
        size *= 2
    table = np.empty((size, 3), np.int64)
    table[:, 2] = -1
    ids = np.full(n, -1, np.int64)
    nid = 0
    for i in range(n):
        if not use[i]:
            continue
        a, b = w1[i], w2[i]
        h = (np.uint64(a & 0x7FFFFFFFFFFFFFFF) * np.uint64(0x9E3779B97F4A7C15)) ^ \
            (np.uint64(b & 0x7FFFFFFFFFFFFFFF) * np.uint64(0xFF51AFD7ED558CCD))
        h ^= h >> np.uint64(31)
        slot = np.int64(h & np.uint64(size - 1))
        while True:
            if table[slot, 2] < 0:
                table[slot, 0] = a
                table[slot, 1] = b
                table[slot, 2] = nid
                ids[i] = nid
                nid += 1
                break
            if table[slot, 0] == a and table[slot, 1] == b:
                ids[i] = table[slot, 2]
                break
            slot = (slot + 1) & (size - 1)
    return ids, nid
