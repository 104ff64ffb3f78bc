"""Vectorised group-by over the probes table: group ids in the order pandas' ``groupby`` (and a sort by
the key columns) gives them, per-group order statistics, and the key columns of each group with their
dtypes kept. Shared by metrics, timing, sources and sizes; a compiled hash join (:func:`factorize_rows`)
also serves probe matching.

A session asks a dozen analyses of one probes table, most by the same keys: :func:`table_cached` keeps
what they share (group ids, the time order of each group, a column as floats, an outcome mask) per
table, keyed on the table's identity and checked against the stored buffers of the columns it was
made from. The cache holds a view of each such column, so pandas (copy-on-write) copies a column
written in place instead of changing the buffers under it: a changed column has other buffers and the
value is made again. Values in it are read-only; outputs copy what they take from it.
"""
from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._jit import njit
from ..capture.checksums import column_array

__all__ = ["Groups", "group_by", "take_column", "factorize_rows", "cell_stats", "within_group_order", "group_time_order",
           "table_cached", "groups_of", "cached_groups", "time_order_of", "floats_of", "column_array",
           "stable_group_order"]

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
        return {c: take_column(column_array(probes, c), take) for c in by}

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


    def coarsen(self, keep: Sequence[int]) -> Groups:
        """The groups by the key columns at positions ``keep`` (in that order) of these groups' columns:
        what :func:`group_by` gives by those columns, from the packed codes (each group's digits,
        re-packed), with one gather of the row ids. Needs the codes."""
        if self.code is None:
            raise ValueError("no packed group codes")
        radix = np.asarray(self.radix, np.int64)
        digits, rest = [], self.code
        for r in radix[::-1]:   # the last column is the least significant digit
            digits.append(rest % r)
            rest = rest // r
        digits = digits[::-1]
        new_radix = tuple(int(radix[j]) for j in keep)
        packed = np.zeros(self.n, np.int64)
        for j, r in zip(keep, new_radix):
            packed = packed * r + digits[j]
        code, inv = np.unique(packed, return_inverse=True)
        inv = inv.reshape(-1)
        n = int(code.size)
        first = np.full(n, np.iinfo(np.int64).max, np.int64)
        np.minimum.at(first, inv, self.first)
        size = np.bincount(inv, weights=self.size, minlength=n).astype(np.int64) if self.n else np.zeros(0, np.int64)
        return Groups(inv[self.gid], first, n, size, code, new_radix)

    def subset(self, rows: np.ndarray) -> Groups:
        """The groups of the table's ``rows`` (ascending positions): what :func:`group_by` gives on
        ``probes.iloc[rows]``, from these ids (groups without a row there drop out, the rest keep their
        order and codes)."""
        gid = self.gid[rows]
        size = np.bincount(gid, minlength=self.n) if gid.size else np.zeros(self.n, np.int64)
        present = size > 0
        new = np.cumsum(present) - 1
        n = int(present.sum())
        first = np.full(self.n, rows.size, np.int64)
        if gid.size:
            _min_index(gid, first)
        code = self.code[present] if self.code is not None else None
        return Groups(new[gid], first[present], n, size[present], code, self.radix if code is not None else ())

def take_column(col, rows: np.ndarray):
    """``col``'s values (a Series or a stored array) at ``rows`` as an array of its dtype, without building
    a frame (a categorical reuses its category dictionary; a nullable column takes its data and mask)."""
    arr = col.array if isinstance(col, pd.Series) else col
    if isinstance(arr, np.ndarray):
        return arr[rows]
    if isinstance(arr, pd.Categorical):
        return pd.Categorical.from_codes(arr.codes[rows], dtype=arr.dtype, validate=False)
    data, mask = getattr(arr, "_data", None), getattr(arr, "_mask", None)
    if isinstance(data, np.ndarray) and isinstance(mask, np.ndarray):
        return type(arr)(data[rows], mask[rows])
    return arr.take(rows)


def _key_codes(arr) -> tuple[np.ndarray, int]:
    """Dense integer codes sorting like ``sort_values`` (categoricals by code, numbers by value, <NA>
    last), and how many values they can take, of a column's stored array."""
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
    v = pd.Series(arr, copy=False).to_numpy("float64", na_value=np.nan)
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
    cols, radix = zip(*(_key_codes(column_array(probes, c)) for c in by))
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


# ------------------------------------------------------------------ what analyses of one table share
_MAX_TABLES = 4
"""Tables whose shared values are kept at a time (the most recently used); a table's values also go
when the table does."""


class _Entry:
    __slots__ = ("columns", "lock", "ref", "values")

    def __init__(self, ref):
        self.ref = ref
        self.columns: dict[str, tuple[tuple, pd.Series]] = {}   # name -> (buffers, a view held)
        self.values: dict[tuple, tuple[tuple, Any]] = {}      # key -> (buffers of its columns, value)
        self.lock = threading.Lock()


_tables: OrderedDict[int, _Entry] = OrderedDict()
_tables_lock = threading.Lock()


def _buffers(arr) -> tuple:
    """Where a stored column's values live (and its dtype): equal while nothing was written to it."""
    if isinstance(arr, pd.Categorical):
        bufs: tuple = (arr.codes,)
    elif isinstance(getattr(arr, "_data", None), np.ndarray) and isinstance(getattr(arr, "_mask", None), np.ndarray):
        bufs = (arr._data, arr._mask)
    else:
        bufs = (np.asarray(arr),)
    return (arr.dtype, len(arr)) + tuple((b.__array_interface__["data"][0], b.strides) for b in bufs)


def _entry(table: pd.DataFrame) -> _Entry:
    key = id(table)
    with _tables_lock:
        e = _tables.get(key)
        if e is not None and e.ref() is table:
            _tables.move_to_end(key)
            return e

        def gone(ref, key=key):
            with _tables_lock:
                if key in _tables and _tables[key].ref is ref:
                    del _tables[key]

        e = _Entry(weakref.ref(table, gone))
        _tables[key] = e
        while len(_tables) > _MAX_TABLES:
            _tables.popitem(last=False)
        return e


def table_cached(table: pd.DataFrame, key: tuple, columns: Sequence[str], make: Callable[[], Any]) -> Any:
    """``make()``, made once per table and ``key`` while the table's ``columns`` (those it reads) are
    unchanged. Arrays in the value should be made read-only by ``make`` (they are shared)."""
    e = _entry(table)
    bufs = []
    with e.lock:
        for c in columns:
            b = _buffers(column_array(table, c))
            held = e.columns.get(c)
            if held is None or held[0] != b:
                e.columns[c] = (b, table[c])   # a view: from now on pandas copies this column before writing it
            bufs.append(b)
        hit = e.values.get(key)
    fp = tuple(bufs)
    if hit is not None and hit[0] == fp:
        return hit[1]
    value = make()
    with e.lock:
        e.values[key] = (fp, value)
    return value


def _frozen(*arrays):
    for a in arrays:
        if isinstance(a, np.ndarray):
            a.flags.writeable = False
    return arrays


def groups_of(probes: pd.DataFrame, by) -> Groups:
    """:func:`group_by` of ``probes`` by ``by``, made once per table (read-only arrays). From the groups
    by more (or the same) columns when the table has them (:meth:`Groups.coarsen`: work per group, not
    per row, but one gather of the ids)."""
    by = tuple(by)

    def make():
        finer = _finer(probes, by)
        g = finer[0].coarsen([finer[1].index(c) for c in by]) if finer is not None else group_by(probes, by)
        _frozen(g.gid, g.first, g.size, g.code)
        return g
    return table_cached(probes, ("groups", by), by, make)


def cached_groups(table: pd.DataFrame, by) -> Groups | None:
    """The groups :func:`groups_of` made of ``table`` by ``by``, if it made them and those columns are
    unchanged since; None else (nothing is made, and the table gets no cache entry)."""
    by = tuple(by)
    with _tables_lock:
        e = _tables.get(id(table))
    if e is None or e.ref() is not table:
        return None
    with e.lock:
        hit = e.values.get(("groups", by))
    if hit is None:
        return None
    now = tuple(_buffers(column_array(table, c)) for c in by)
    return hit[1] if hit[0] == now else None


def _finer(probes: pd.DataFrame, by: tuple) -> tuple[Groups, tuple] | None:
    """Cached groups of ``probes`` by columns that include ``by``, made while ``by``'s columns were as
    they are (its other columns do not matter: merging groups over them forgets them)."""
    e = _entry(probes)
    now = {c: _buffers(column_array(probes, c)) for c in by}
    with e.lock:
        items = list(e.values.items())
    for key, (fp, value) in items:
        if key[0] != "groups" or not set(by) <= set(key[1]) or value.code is None:
            continue
        cols = key[1]
        if all(fp[cols.index(c)] == now[c] for c in by):
            return value, cols
    return None


def parent_of(probes: pd.DataFrame, by, levels: int) -> tuple[Groups, np.ndarray]:
    """The groups by the first ``levels`` of ``by`` and each group's parent (:meth:`Groups.parent`) of
    the cached groups by ``by``, made once per table."""
    by = tuple(by)

    def make():
        inner = groups_of(probes, by)
        if inner.code is None:  # pragma: no cover - keys too wide to pack
            outer = groups_of(probes, by[:levels])
            parent = outer.gid[inner.first] if inner.n else np.zeros(0, np.int64)
        else:
            outer, parent = inner.parent(levels)
            _frozen(outer.gid, outer.first, outer.size, outer.code)
        _frozen(parent)
        return outer, parent
    return table_cached(probes, ("parent", by, levels), by, make)


class TimeOrder:
    """Rows by group, then time (stable): ``order``; per sorted row its group ``gs`` and time ``ts``;
    ``start[g]``/``end[g]``: group g's slice of the sorted rows."""

    def __init__(self, g: Groups, ts: np.ndarray):
        self.order = group_time_order(g, ts)
        self.gs, self.ts = g.gid[self.order], ts[self.order]
        self.end = np.cumsum(g.size)
        self.start = self.end - g.size
        _frozen(self.order, self.gs, self.ts, self.start, self.end)


def time_order_of(probes: pd.DataFrame, by) -> tuple[Groups, TimeOrder]:
    """The groups by ``by`` and their rows in time order, made once per table."""
    by = tuple(by)

    def make():
        g = groups_of(probes, by)
        return g, TimeOrder(g, np.asarray(column_array(probes, "ts_ns"), np.int64))
    return table_cached(probes, ("time_order", by), by + ("ts_ns",), make)


def floats_of(probes: pd.DataFrame, name: str) -> np.ndarray:
    """Column ``name`` as float64, <NA> as NaN (read-only), made once per table."""
    def make():
        arr = column_array(probes, name)
        data, mask = getattr(arr, "_data", None), getattr(arr, "_mask", None)
        if isinstance(data, np.ndarray) and isinstance(mask, np.ndarray):
            v = data.astype(np.float64)
            v[mask] = np.nan
        else:
            v = pd.Series(arr, copy=False).to_numpy("float64", na_value=np.nan).copy()
        return _frozen(v)[0]
    return table_cached(probes, ("floats", name), (name,), make)


def _first_rows(ids: np.ndarray, count: int) -> np.ndarray:
    first = np.full(count, ids.size, np.int64)
    _min_index(ids, first)
    return first


@njit(nogil=True)
def _min_index(ids, first):
    for i in range(ids.size - 1, -1, -1):
        first[ids[i]] = i


@njit(nogil=True)
def stable_group_order(gid, n_groups):  # pragma: no cover - compiled
    """The rows by group number (0..n_groups-1), row order within: ``np.argsort(gid, kind="stable")`` by a
    counting sort, O(n)."""
    start = np.zeros(n_groups + 1, np.int64)
    for i in range(gid.size):
        start[gid[i] + 1] += 1
    for g in range(n_groups):
        start[g + 1] += start[g]
    order = np.empty(gid.size, np.int64)
    for i in range(gid.size):
        g = gid[i]
        order[start[g]] = i
        start[g] += 1
    return order


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
    cell, values = np.ascontiguousarray(cell, np.int64), np.ascontiguousarray(values, np.float64)
    if q.size:
        n = values.size
        count, total, vmin, vmax, quant = _cell_stats(cell, values, int(n_cells), q, np.empty(n, np.uint64),
                                                      np.empty(n, np.uint64), np.empty(n, np.uint64))
    else:
        count, total, vmin, vmax, quant = _cell_moments(cell, values, int(n_cells), q)
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


_RADIX_BITS = 11
"""Buckets of the first radix pass of :func:`_cell_stats`: 2,048 counters (16 KB) per cell."""


@njit(nogil=True)
def _from_key(k, box):
    """The float64 of an order-keeping key (``box``: a 1-element uint64 array). A float's key is its bits
    with the sign bit set if positive, all bits flipped if negative (IEEE 754's total order as
    unsigned integers; -0.0 is taken as 0.0)."""
    box[0] = k ^ np.uint64(0x8000000000000000) if k >> np.uint64(63) else ~k
    return box.view(np.float64)[0]


@njit(nogil=True)
def _select(a, lo, hi, k):
    """Put the k-th smallest of a[lo:hi] at a[k] (lo <= k < hi), smaller ones before it and larger after:
    quickselect with a median-of-three pivot and Hoare's partition (it stops on keys equal to the pivot,
    so ties split evenly); past a budget of rounds the rest is sorted (introselect's guarantee)."""
    budget = 64
    while hi - lo > 16:
        budget -= 1
        if budget < 0:
            a[lo:hi] = np.sort(a[lo:hi])
            return
        mid = (lo + hi - 1) >> 1
        x, y, z = a[lo], a[mid], a[hi - 1]
        if x > y:
            x, y = y, x
        if y > z:
            y = z
            if x > y:
                y = x
        i, j = lo, hi - 1
        while True:
            while a[i] < y:
                i += 1
            while a[j] > y:
                j -= 1
            if i >= j:
                break
            a[i], a[j] = a[j], a[i]
            i += 1
            j -= 1
        if k <= j:        # a[lo:j+1] <= y <= a[j+1:hi]
            hi = j + 1
        else:
            lo = j + 1
    for i in range(lo + 1, hi):   # insertion sort of the few left
        x = a[i]
        j = i - 1
        while j >= lo and a[j] > x:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = x


@njit(nogil=True)
def _radix_select(a, hi, r, hist):
    """The r-th smallest of a[:hi] (uint64 keys; a is overwritten): rounds of a radix pass over the
    highest bits in which the keys still differ, keeping only the bucket that holds rank r, until one
    value is left or few keys (then quickselect)."""
    nb = hist.size
    while hi > 64:
        kmin, kmax = a[0], a[0]
        for i in range(hi):
            kmin = min(kmin, a[i])
            kmax = max(kmax, a[i])
        if kmin == kmax:
            return kmin
        diff = kmin ^ kmax
        top = 0
        while diff >> np.uint64(top + 1):
            top += 1
        shift = np.uint64(max(top + 1 - _RADIX_BITS, 0))
        base = kmin >> shift
        hist[:] = 0
        for i in range(hi):
            hist[np.int64((a[i] >> shift) - base)] += 1
        below, j = 0, 0
        while below + hist[j] <= r:
            below += hist[j]
            j += 1
        w = 0
        for i in range(hi):
            if np.int64((a[i] >> shift) - base) == j:
                a[w] = a[i]
                w += 1
        hi, r = w, r - below
        if nb == 0:   # pragma: no cover - keeps the loop's types simple
            break
    _select(a, 0, hi, r)
    return a[r]


@njit(nogil=True)
def _cell_stats(cell, values, n_cells, qs, keys, scratch, tmp):
    """count, sum, min and max per cell in one pass over the rows (sums in row order), then the values
    as order-keeping integer keys (:func:`_from_key` says how) counting-sorted by cell into ``keys``; in
    each cell's slice the order statistics each quantile needs: one radix pass counts the keys per
    bucket of their highest differing bits, which gives each wanted rank's bucket; only those buckets'
    keys are gathered (into ``scratch``) and selected among (:func:`_radix_select`, on ``tmp``). O(n) with
    few unpredictable branches. ``keys``, ``scratch``, ``tmp``: n uint64 each, allocated by numpy (its
    large allocations get huge pages; page faults would cost more than the passes)."""
    count, total, vmin, vmax, _ = _cell_moments(cell, values, n_cells, qs)
    quant = np.full((n_cells, qs.size), np.nan)
    if qs.size == 0:
        return count, total, vmin, vmax, quant
    pos = np.zeros(n_cells, np.int64)
    for c in range(1, n_cells):
        pos[c] = pos[c - 1] + count[c - 1]
    start = pos.copy()
    bits = values.view(np.int64)
    sign = np.int64(-0x8000000000000000)
    for i in range(cell.size):
        if not np.isnan(values[i]):
            b = bits[i]
            if b == sign:          # -0.0 as 0.0
                b = 0
            c = cell[i]
            keys[pos[c]] = np.uint64(b ^ ((b >> np.int64(63)) | sign))
            pos[c] += 1
    nb = 1 << _RADIX_BITS
    hist = np.zeros(nb, np.int64)
    hist2 = np.zeros(nb, np.int64)
    offs = np.zeros(nb, np.int64)
    fill = np.zeros(nb, np.int64)
    want = np.zeros(nb, np.bool_)
    box = np.empty(1, np.uint64)
    ranks = np.empty(2 * qs.size, np.int64)
    got = np.empty(2 * qs.size, np.float64)
    for c in range(n_cells):
        m = count[c]
        if m == 0:
            continue
        b, e = start[c], start[c] + m
        for j in range(qs.size):
            lo = int(np.floor(qs[j] * (m - 1)))
            ranks[2 * j] = lo
            ranks[2 * j + 1] = min(lo + 1, m - 1)
        if vmin[c] == vmax[c]:        # one value: every order statistic is it
            for t in range(ranks.size):
                got[t] = vmin[c]
        elif m <= 64:                 # few: sort them
            srt = np.sort(keys[b:e])
            for t in range(ranks.size):
                got[t] = _from_key(srt[ranks[t]], box)
        else:
            kmin, kmax = keys[b], keys[b]
            for i in range(b, e):
                kmin = min(kmin, keys[i])
                kmax = max(kmax, keys[i])
            diff = kmin ^ kmax
            top = 0
            while diff >> np.uint64(top + 1):
                top += 1
            shift = np.uint64(max(top + 1 - _RADIX_BITS, 0))
            base = kmin >> shift
            hist[:] = 0
            for i in range(b, e):
                hist[np.int64((keys[i] >> shift) - base)] += 1
            want[:] = False
            for t in range(ranks.size):   # the bucket of each rank
                r, below, j = ranks[t], 0, 0
                while below + hist[j] <= r:
                    below += hist[j]
                    j += 1
                want[j] = True
            o = 0
            for j in range(nb):           # the wanted buckets' places in the scratch, in bucket order
                offs[j] = o
                fill[j] = o
                if want[j]:
                    o += hist[j]
            for i in range(b, e):
                k = keys[i]
                j = np.int64((k >> shift) - base)
                if want[j]:
                    scratch[fill[j]] = k
                    fill[j] += 1
            for t in range(ranks.size):
                r, below, j = ranks[t], 0, 0
                while below + hist[j] <= r:
                    below += hist[j]
                    j += 1
                # rank r is the (r - below)-th smallest key of bucket j: scratch[offs[j]:offs[j] + hist[j]]
                lo_s, cnt = offs[j], hist[j]
                if cnt <= 64:
                    _select(scratch, lo_s, lo_s + cnt, lo_s + r - below)
                    got[t] = _from_key(scratch[lo_s + r - below], box)
                else:             # a crowded bucket: refine it on a copy (another rank may need it too)
                    tmp[:cnt] = scratch[lo_s:lo_s + cnt]
                    got[t] = _from_key(_radix_select(tmp, cnt, r - below, hist2), box)
        for j in range(qs.size):
            p = qs[j] * (m - 1)
            lo = int(np.floor(p))
            t = p - lo
            a, bb = got[2 * j], got[2 * j + 1]
            # numpy's lerp: exact at both ends
            quant[c, j] = bb - (bb - a) * (1.0 - t) if t >= 0.5 else a + (bb - a) * t
    return count, total, vmin, vmax, quant
