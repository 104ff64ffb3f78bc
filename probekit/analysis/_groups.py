"""Vectorised group-by over the probes table: group ids in the order pandas' ``groupby`` (and a sort by
the key columns) gives them, per-group order statistics, and the key columns of each group with their
dtypes kept. Shared by metrics, timing, sources and sizes; a compiled hash join (:func:`factorize_rows`)
also serves probe matching."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .._jit import njit

__all__ = ["Groups", "group_by", "take_column", "factorize_rows", "cell_stats", "within_group_order", "group_time_order"]


class Groups:
    """``gid[i]``: the group of row i (0..n-1, in sorted key order); ``first[g]``: a row of group g;
    ``size[g]``: its rows. ``code[g]``: the group's key as one integer (mixed radix over the key
    columns' dense codes, ``radix``), which orders the groups and gives coarser groupings by a prefix of
    the keys without another pass over the rows (:meth:`parent`)."""

    def __init__(self, gid: np.ndarray, first: np.ndarray, n: int, size: np.ndarray | None = None,
                 code: np.ndarray | None = None, radix: tuple[int, ...] = ()):
        self.gid, self.first, self.n = gid, first, n
        if size is None:
            size = np.bincount(gid, minlength=n) if gid.size else np.zeros(n, np.int64)
        self.size, self.code, self.radix = size, code, radix

    def keys(self, probes: pd.DataFrame, by, rows: np.ndarray | None = None) -> dict:
        """The key columns of each group (or of ``rows``), as arrays of ``probes``' dtypes (categoricals
        keep their category dictionaries): a dict to build the output table from in one go."""
        take = self.first if rows is None else rows
        return {c: take_column(probes[c], take) for c in by}

    def parent(self, levels: int) -> tuple[Groups, np.ndarray]:
        """The groups by the first ``levels`` key columns, and each of these groups' parent group.
        Needs the mixed-radix codes (None when the keys were too wide to pack)."""
        if self.code is None:
            raise ValueError("no packed group codes")
        div = int(np.prod(self.radix[levels:], dtype=np.int64)) if self.n else 1
        up = self.code // div
        new = np.ones(self.n, np.bool_)
        new[1:] = up[1:] != up[:-1]           # codes are sorted: equal prefixes are neighbours
        of = np.cumsum(new) - 1
        n = int(of[-1]) + 1 if self.n else 0
        size = np.bincount(of, weights=self.size, minlength=n).astype(np.int64) if self.n else np.zeros(0, np.int64)
        g = Groups(of[self.gid], self.first[new], n, size, up[new], self.radix[:levels])
        return g, of


def take_column(col: pd.Series, rows: np.ndarray):
    """``col``'s values at ``rows`` as an array of its dtype, without building a frame (a categorical
    reuses its category dictionary; a nullable column takes its data and mask)."""
    arr = col.array
    if isinstance(arr, pd.Categorical):
        return pd.Categorical.from_codes(arr.codes[rows], dtype=arr.dtype, validate=False)
    data, mask = getattr(arr, "_data", None), getattr(arr, "_mask", None)
    if isinstance(data, np.ndarray) and isinstance(mask, np.ndarray):
        return type(arr)(data[rows], mask[rows])
    return arr.take(rows)


def _key_codes(col: pd.Series) -> tuple[np.ndarray, int]:
    """Dense integer codes sorting like ``sort_values`` (categoricals by code, numbers by value, <NA>
    last), and how many values they can take."""
    arr = col.array
    if isinstance(arr, pd.Categorical):
        c = arr.codes
        k = len(arr.categories)
        if c.size and c.min() < 0:
            return np.where(c < 0, k, c).astype(np.int64), k + 1
        return c.astype(np.int64), max(k, 1)
    data, mask = getattr(arr, "_data", None), getattr(arr, "_mask", None)
    if isinstance(data, np.ndarray) and data.dtype.kind in "iu" and isinstance(mask, np.ndarray) and data.size:
        codes, k = _dense_codes(data, mask, 4 * data.size + 65536)
        if k >= 0:
            return codes, k + 1
    v = col.to_numpy("float64", na_value=np.nan)
    _, inv = np.unique(v, return_inverse=True)   # sorted, NaN last
    return inv.reshape(-1).astype(np.int64), max(int(inv.max()) + 1 if inv.size else 1, 1)


@njit(nogil=True)
def _dense_codes(data, mask, max_span):
    """Nullable integers → dense codes in value order (0..k-1; <NA> → k) through a look-up table over
    the value range; k = -1 when the range is wider than ``max_span`` (the caller falls back)."""
    n = data.size
    lo, hi, seen = 0, 0, False
    for i in range(n):
        if not mask[i]:
            v = np.int64(data[i])
            if not seen:
                lo, hi, seen = v, v, True
            elif v < lo:
                lo = v
            elif v > hi:
                hi = v
    codes = np.empty(n, np.int64)
    if not seen:
        codes[:] = 0
        return codes, 0
    if hi - lo > max_span:
        return codes, -1
    rank = np.zeros(hi - lo + 1, np.int64)
    for i in range(n):
        if not mask[i]:
            rank[np.int64(data[i]) - lo] = 1
    k = 0
    for j in range(rank.size):
        u = rank[j]
        rank[j] = k
        k += u
    for i in range(n):
        codes[i] = k if mask[i] else rank[np.int64(data[i]) - lo]
    return codes, k


@njit(nogil=True)
def _direct_groups(packed, total):
    """Group ids for keys 0..total-1 counted directly: ids in key order, each group's first row and size."""
    counts = np.zeros(total, np.int64)
    for i in range(packed.size):
        counts[packed[i]] += 1
    rank = np.full(total, -1, np.int64)
    n = 0
    for j in range(total):
        if counts[j]:
            rank[j] = n
            n += 1
    code = np.empty(n, np.int64)
    size = np.empty(n, np.int64)
    for j in range(total):
        if counts[j]:
            code[rank[j]] = j
            size[rank[j]] = counts[j]
    gid = np.empty(packed.size, np.int64)
    first = np.full(n, -1, np.int64)
    for i in range(packed.size):
        g = rank[packed[i]]
        gid[i] = g
        if first[g] < 0:
            first[g] = i
    return gid, first, size, code


def group_by(probes: pd.DataFrame, by) -> Groups:
    """Groups of ``probes`` by the columns ``by`` (rows with <NA> keys form their own groups, as with
    ``groupby(dropna=False)``), numbered in sorted key order. The key columns become dense codes, one
    integer per row (mixed radix); few possible keys are counted directly (bincount), more are hashed."""
    by = list(by)
    n = len(probes)
    if n == 0:
        return Groups(np.zeros(0, np.int64), np.zeros(0, np.int64), 0, code=np.zeros(0, np.int64),
                      radix=(1,) * len(by))
    if not by:
        return Groups(np.zeros(n, np.int64), np.zeros(1, np.int64), 1, code=np.zeros(1, np.int64))
    cols, radix = zip(*(_key_codes(probes[c]) for c in by))
    if float(np.prod(np.asarray(radix, dtype=np.float64))) < 2.0 ** 62:
        packed = cols[0]
        for c, r in zip(cols[1:], radix[1:]):
            packed = packed * r + c
        total = int(np.prod(radix, dtype=np.int64))
        if total <= 4 * n + 65536:   # every possible key has a counter
            gid, first, size, code = _direct_groups(packed, total)
            return Groups(gid, first, int(size.size), size, code, tuple(radix))
        ids, count = factorize_rows(packed.reshape(-1, 1), np.ones(n, np.bool_), 1)
        firsts = _first_rows(ids, count)
        srt = np.argsort(packed[firsts], kind="stable")
        rank = np.empty(count, np.int64)
        rank[srt] = np.arange(count)
        return Groups(rank[ids], firsts[srt], int(count), code=packed[firsts][srt], radix=tuple(radix))
    # pragma: no cover - keys too wide to pack
    mat = np.ascontiguousarray(np.stack(cols, 1))
    ids, count = factorize_rows(mat, np.ones(n, np.bool_), mat.shape[1])
    firsts = _first_rows(ids, count)
    rank = np.empty(count, np.int64)
    rank[np.lexsort(tuple(mat[firsts, j] for j in range(mat.shape[1] - 1, -1, -1)))] = np.arange(count)
    first = np.empty(count, np.int64)
    first[rank] = firsts
    return Groups(rank[ids], first, int(count))


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


def group_time_order(g: Groups, ts: np.ndarray) -> np.ndarray:
    """Row order by group, then time, stable (``np.lexsort((ts, g.gid))``). The probes table comes
    sorted by time, so a stable sort of the group ids alone gives that order: a radix sort of narrow
    integers instead of a two-key sort."""
    if ts.size > 1 and not bool(np.all(ts[1:] >= ts[:-1])):
        return np.lexsort((ts, g.gid))
    narrow = np.uint8 if g.n <= 1 << 8 else np.uint16 if g.n <= 1 << 16 else np.int64
    return np.argsort(g.gid.astype(narrow), kind="stable")


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
    """Counting sort of the values by cell, then the order statistics each quantile needs selected in
    each cell's slice (partition, not a full sort): O(n)."""
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
    kth = np.empty(2 * qs.size, np.int64)
    for c in range(n_cells):
        m = count[c]
        if m == 0:
            continue
        s = v[start[c]:start[c + 1]]
        acc, lo_v, hi_v = 0.0, s[0], s[0]
        for x in s:
            acc += x
            lo_v = min(lo_v, x)
            hi_v = max(hi_v, x)
        total[c] = acc
        vmin[c] = lo_v
        vmax[c] = hi_v
        for j in range(qs.size):
            lo = int(np.floor(qs[j] * (m - 1)))
            kth[2 * j] = lo
            kth[2 * j + 1] = min(lo + 1, m - 1)
        s = np.partition(s, kth)
        for j in range(qs.size):
            p = qs[j] * (m - 1)
            lo = int(np.floor(p))
            hi = min(lo + 1, m - 1)
            t = p - lo
            a, b = s[lo], s[hi]
            # numpy's lerp: exact at both ends
            quant[c, j] = b - (b - a) * (1.0 - t) if t >= 0.5 else a + (b - a) * t
    return count, total, vmin, vmax, quant
