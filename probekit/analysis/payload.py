"""Payload randomness of probe requests: entropy, the ``ent`` test set, NIST SP 800-22 monobit and runs,
duplicates, embedded timestamps and known fills, and a verdict per stream with its evidence.

Every test runs in one compiled pass over the payload bytes (:func:`_scan`): per payload its byte counts,
entropy, ones and bit transitions, fill pattern, first 16 bytes and a 128-bit hash; per stream the byte
counts, sums for the serial correlation and Monte-Carlo π over the stream's bytes back to back. Rows are
taken in pieces of at most ``PIECE_ROWS`` with the per-stream state carried from piece to piece, so a huge
capture is judged in bounded memory with exactly the numbers of one pass. The floating-point formulas are
the ones the tests hold this module to (``tests/reference_payload.py``, the implementation before issue
16): the same operations in the same order, so the results are identical, not merely close.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special, stats

from .._jit import njit
from ..capture.payloads import payload_buffer
from ..schema import PAYLOAD_TESTS, PAYLOAD_VERDICTS, SOURCE_STREAM_KEYS

__all__ = [
    "ENT_MIN_BYTES",
    "PayloadBuffer",
    "ent",
    "payload_tests",
    "payload_verdicts",
    "request_payload_buffer",
    "request_payloads",
]

ENT_MIN_BYTES = 1280          # 256 cells × 5 expected per cell: below this the chi-square is not valid
WINDOWS_FILL = b"abcdefghijklmnopqrstuvwabcdefghi"
TS_WINDOW_S = 86_400          # a decoded timestamp within a day of the frame time counts as one
ALPHA = 0.01
PIECE_ROWS = 1 << 20          # payloads per compiled pass (bounds the per-row scratch arrays)


# ------------------------------------------------------------------------------------ the bytes
@dataclass(frozen=True)
class PayloadBuffer:
    """Payloads back to back: row i is ``data[offsets[i]:offsets[i + 1]]`` (``index`` labels the rows)."""
    data: np.ndarray
    offsets: np.ndarray
    index: pd.Index

    def __len__(self) -> int:
        return int(self.offsets.shape[0]) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @classmethod
    def from_series(cls, payloads: pd.Series) -> PayloadBuffer:
        blobs = payloads.tolist()
        lengths = np.fromiter(map(len, blobs), np.int64, len(blobs))
        offsets = np.zeros(len(blobs) + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return cls(np.frombuffer(b"".join(blobs), np.uint8), offsets, payloads.index)

    def to_series(self, name: str = "payload") -> pd.Series:
        raw = self.data.tobytes()
        o = self.offsets.tolist()
        return pd.Series([raw[a:b] for a, b in zip(o[:-1], o[1:])], index=self.index, dtype=object, name=name)

    def piece(self, rows: np.ndarray):
        """(data, offsets, positions) of ``rows`` for the scan kernel: this buffer, read in place."""
        return self.data, self.offsets, rows


def _as_payloads(payloads) -> PayloadBuffer:
    if isinstance(payloads, pd.Series):
        return PayloadBuffer.from_series(payloads)
    if isinstance(payloads, (list, tuple)):
        return PayloadBuffer.from_series(pd.Series(list(payloads), dtype=object))
    return payloads  # a PayloadBuffer, or a lazy source with __len__, lengths and piece(rows)


def request_payload_buffer(packets: pd.DataFrame, probes: pd.DataFrame) -> PayloadBuffer:
    """Captured payload bytes of each probe's request, back to back (rows like ``probes``), through the
    packets table's accessor (the one place that knows where payload bytes live)."""
    rows = probes["request_frame"].to_numpy("int64") - 1
    sub = packets.iloc[rows]
    sub.attrs = packets.attrs
    if not len(rows):
        return PayloadBuffer(np.zeros(0, np.uint8), np.zeros(1, np.int64), probes.index)
    data, offsets = payload_buffer(sub)
    return PayloadBuffer(data, offsets, probes.index)


def request_payloads(packets: pd.DataFrame, probes: pd.DataFrame) -> pd.Series:
    """Captured payload bytes of each probe's request (indexed like ``probes``), one bytes object each."""
    if not len(probes):
        return pd.Series([], index=probes.index, dtype=object, name="payload")
    return request_payload_buffer(packets, probes).to_series()


# ---------------------------------------------------------------------------------- the kernel
_POP = np.array([bin(i).count("1") for i in range(256)], np.int64)
_WIN = np.frombuffer(WINDOWS_FILL, np.uint8).copy()
# fill codes: 0 none, 1 + v constant byte v, then these
_F_INC, _F_IPUTILS, _F_WIN = 257, 258, 259
_FILL_NAMES = np.array([None] + ["zeros"] + [f"constant 0x{v:02x}" for v in range(1, 256)]
                       + ["incrementing", "iputils (timeval + 0x10, 0x11, ...)", "windows alphabet"], dtype=object)
# per-stream state columns
_S, _SUU, _SUV, _FIRST, _LAST, _N, _PI_IN, _PI_M, _PLEN = range(9)
_NSTATE = 9


@njit(nogil=True)
def _pairwise_block(a, lo, n):  # pragma: no cover - compiled
    """numpy's pairwise summation of a contiguous float64 run of n <= 128 (eight accumulators)."""
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[lo + i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    stop = n - (n % 8)
    while i < stop:
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@njit(nogil=True)
def _pairwise(a, lo, n):  # pragma: no cover - compiled
    """``np.add.reduce`` of a contiguous float64 run of n <= 256, in numpy's order (one split at
    n > 128, as numpy's recursion does; not recursive here: numba's cache cannot reload recursion)."""
    if n > 128:
        n2 = n // 2
        n2 -= n2 % 8
        return _pairwise_block(a, lo, n2) + _pairwise_block(a, lo + n2, n - n2)
    return _pairwise_block(a, lo, n)


@njit(nogil=True)
def _scan(data, offsets, rows, gid, tab, tab_off, pop, win, do_groups,
          ent_h, ones, trans, fill, head, h1, h2, gcounts, gstate, gpart):  # pragma: no cover - compiled
    """One pass over the payloads ``rows`` (positions into ``offsets``), in the order given.

    Per row k: entropy (bits/byte, numpy's formula and summation order), ones, bit transitions, fill
    code, first 16 bytes, two 64-bit hashes. With ``do_groups``, also the per-stream state of stream
    ``gid[k]``: byte counts, sum, sum of squares, sum of products of neighbours, first/last byte, bytes,
    Monte-Carlo points inside the circle and points, and the pending bytes of the next point."""
    counts = np.zeros(256, np.int64)
    terms = np.zeros(256, np.float64)
    m1 = np.uint64(0x100000001B3)
    m2 = np.uint64(0x9E3779B97F4A7C15)
    for k in range(rows.shape[0]):
        r = rows[k]
        lo = offsets[r]
        L = offsets[r + 1] - lo
        a = np.uint64(0xCBF29CE484222325)
        b = np.uint64(0x84222325CBF29CE4) ^ np.uint64(L)
        for j in range(16):
            head[k, j] = data[lo + j] if j < L else 0
        if L == 0:
            ent_h[k] = np.nan
            ones[k] = 0
            trans[k] = 0
            fill[k] = 0
            h1[k] = a
            h2[k] = b
            continue
        first = np.int64(data[lo])
        const = True
        inc = L > 1
        ip = L > 17 and data[lo + 16] == 16
        w = True
        n1 = 0
        tr = 0
        prev = -1
        g = gid[k]
        # this stream's state in locals for the row (stored back below)
        s_sum = gstate[g, 0]
        s_uu = gstate[g, 1]
        s_uv = gstate[g, 2]
        s_first = gstate[g, 3]
        s_last = gstate[g, 4]
        s_n = gstate[g, 5]
        s_in = gstate[g, 6]
        s_m = gstate[g, 7]
        s_plen = gstate[g, 8]
        for j in range(L):
            iv = np.int64(data[lo + j])
            counts[iv] += 1
            n1 += pop[iv]
            tr += pop[(iv ^ (iv >> 1)) & 0x7F]
            if prev >= 0:
                tr += (prev & 1) ^ (iv >> 7)
                if (iv - prev) & 255 != 1:
                    inc = False
                    if j >= 17:
                        ip = False
            prev = iv
            if iv != first:
                const = False
            if iv != win[j & 31]:
                w = False
            a = (a ^ np.uint64(iv)) * m1
            b = (b + np.uint64(iv + 1)) * m2
            b ^= b >> np.uint64(29)
            if do_groups:
                if s_last >= 0:
                    s_uv += s_last * iv
                else:
                    s_first = iv
                s_last = iv
                s_sum += iv
                s_uu += iv * iv
                s_n += 1
                gcounts[g, iv] += 1
                gpart[g, s_plen] = iv
                s_plen += 1
                if s_plen == 6:
                    x = (np.float64(gpart[g, 0]) * 65536 + np.float64(gpart[g, 1]) * 256
                         + np.float64(gpart[g, 2])) / 16777215.0
                    y = (np.float64(gpart[g, 3]) * 65536 + np.float64(gpart[g, 4]) * 256
                         + np.float64(iv)) / 16777215.0
                    if x * x + y * y <= 1.0:
                        s_in += 1
                    s_m += 1
                    s_plen = 0
        if do_groups:
            gstate[g, 0] = s_sum
            gstate[g, 1] = s_uu
            gstate[g, 2] = s_uv
            gstate[g, 3] = s_first
            gstate[g, 4] = s_last
            gstate[g, 5] = s_n
            gstate[g, 6] = s_in
            gstate[g, 7] = s_m
            gstate[g, 8] = s_plen
        # numpy's pairwise sum of the 256 terms c/L·log2(c/L) in byte-value order (branch-free)
        base = tab_off[k]
        for v in range(256):
            terms[v] = tab[base + counts[v]]
        for j in range(L):          # clear only what this row set
            counts[data[lo + j]] = 0
        ent_h[k] = -_pairwise(terms, 0, 256)
        ones[k] = n1
        trans[k] = tr
        code = 0
        if const:
            code = 1 + first
        if inc and not const:
            code = 257
        elif ip and code == 0:
            code = 258
        if w:
            code = 259
        fill[k] = code
        h1[k] = a
        h2[k] = b


def _entropy_tables(lengths: np.ndarray):
    """p·log2(p) for p = c / L, c = 0..L, per distinct length (numpy's elementwise values), and each
    row's offset into them."""
    uniq, inv = _unique_lengths(lengths)
    tabs, starts, at = [], [], 0
    with np.errstate(divide="ignore", invalid="ignore"):
        for L in uniq.tolist():
            if L == 0:
                t = np.zeros(1)
            else:
                p = np.arange(L + 1, dtype=np.int32) / np.int64(L)
                t = np.where(p > 0, p * np.log2(p), 0.0)
            starts.append(at)
            tabs.append(t)
            at += t.size
    return np.concatenate(tabs) if tabs else np.zeros(1), np.asarray(starts, np.int64)[inv]


def _unique_lengths(lengths: np.ndarray):
    """Distinct lengths (sorted) and each row's index into them (np.unique's, by counting)."""
    if not lengths.size:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    present = np.bincount(lengths) > 0
    uniq = np.flatnonzero(present)
    rank = np.cumsum(present) - 1
    return uniq, rank[lengths]


class _Groups:
    """Per-stream state carried across pieces."""

    def __init__(self, n_groups: int):
        self.counts = np.zeros((max(n_groups, 1), 256), np.int64)
        self.state = np.zeros((max(n_groups, 1), _NSTATE), np.int64)
        self.state[:, _FIRST] = -1
        self.state[:, _LAST] = -1
        self.part = np.zeros((max(n_groups, 1), 6), np.int64)


def _scan_rows(payloads, order: np.ndarray, gid_sorted: np.ndarray | None, groups: _Groups | None):
    """Run the kernel over ``order`` (row positions) in pieces; per-row results in row positions."""
    n = len(payloads)
    lengths = payloads.lengths
    out = dict(ent_h=np.full(n, np.nan), ones=np.zeros(n, np.int64), trans=np.zeros(n, np.int64),
               fill=np.zeros(n, np.int64), head=np.zeros((n, 16), np.uint8), h1=np.zeros(n, np.uint64),
               h2=np.zeros(n, np.uint64))
    dummy = _Groups(1)
    g = groups or dummy
    for lo in range(0, order.size, PIECE_ROWS):
        rows = order[lo:lo + PIECE_ROWS]
        m = rows.size
        data, offsets, pos = payloads.piece(rows)
        tab, tab_off = _entropy_tables(lengths[rows])
        part = {k: (np.zeros((m, 16), np.uint8) if k == "head" else np.zeros(m, v.dtype)) for k, v in out.items()}
        gid = gid_sorted[lo:lo + PIECE_ROWS] if gid_sorted is not None else np.zeros(m, np.int64)
        _scan(data, offsets, np.ascontiguousarray(pos, np.int64), np.ascontiguousarray(gid, np.int64), tab, tab_off,
              _POP, _WIN, groups is not None, part["ent_h"], part["ones"], part["trans"], part["fill"],
              part["head"], part["h1"], part["h2"], g.counts, g.state, g.part)
        for k, v in part.items():
            out[k][rows] = v
    return out


def _tests_table(lengths: np.ndarray, raw: dict, frame_s: np.ndarray, index) -> pd.DataFrame:
    """The per-payload table (schema.PAYLOAD_TESTS) from the kernel's per-row results, with the
    reference's floating-point formulas elementwise."""
    n = lengths.size
    h = raw["ent_h"]
    uniq, inv = _unique_lengths(lengths)
    div = np.array([math.log2(min(int(L), 256)) if L > 1 else 1.0 for L in uniq.tolist()] or [1.0])[inv]
    norm = h / div if n else np.zeros(0)
    mono = np.full(n, np.nan)
    runs = np.full(n, np.nan)
    t = np.flatnonzero(lengths * 8 >= 100)
    if t.size:
        nb = lengths[t] * 8
        ones = raw["ones"][t].astype(np.float64)
        mono[t] = special.erfc(np.abs(2 * ones - nb) / np.sqrt(nb) / math.sqrt(2))
        pi = ones / nb
        v = 1 + raw["trans"][t]
        with np.errstate(divide="ignore", invalid="ignore"):
            rr = special.erfc(np.abs(v - 2 * nb * pi * (1 - pi)) / (2 * np.sqrt(2 * nb) * pi * (1 - pi)))
        runs[t] = np.where(np.abs(pi - 0.5) >= 2 / np.sqrt(nb), 0.0, rr)
    ts_code = np.zeros(n, np.int64)
    head = raw["head"]
    for i, (dt, size, unit, _name) in enumerate(_TS_LAYOUTS):
        rows = np.flatnonzero((lengths >= 2 * size) & (ts_code == 0))
        if not rows.size:
            continue
        both = np.ascontiguousarray(head[rows, :2 * size]).view(dt)
        sec, frac = both[:, 0].astype(np.float64), both[:, 1].astype(np.float64)
        ok = (frac >= 0) & (frac < (1e6 if unit == 1e-6 else 1e9)) & (np.abs(sec + frac * unit - frame_s[rows])
                                                                     <= TS_WINDOW_S)
        ts_code[rows[ok]] = i + 1
    empty = lengths == 0
    out = pd.DataFrame({
        "length": lengths.astype(np.int64),
        "entropy_bits": np.where(empty, np.nan, h),
        "entropy_norm": np.where(empty, np.nan, norm),
        "monobit_p": mono, "runs_p": runs,
        "timestamp": pd.Series(_TS_NAMES[ts_code], index=index, dtype=object),
        "fill": pd.Series(_FILL_NAMES[np.where(empty, 0, raw["fill"])], index=index, dtype=object),
    }, index=index)
    assert tuple(out.columns) == tuple(c.name for c in PAYLOAD_TESTS)
    return out


_TS_LAYOUTS = [("<i8", 8, 1e-6, "timeval64-le"), ("<i8", 8, 1e-9, "timespec64-le"), ("<u4", 4, 1e-6, "timeval32-le"),
               (">i8", 8, 1e-6, "timeval64-be"), (">i8", 8, 1e-9, "timespec64-be"), (">u4", 4, 1e-6, "timeval32-be"),
               ("<u4", 4, 1e-9, "timespec32-le"), (">u4", 4, 1e-9, "timespec32-be")]
_TS_NAMES = np.array([None] + [x[3] for x in _TS_LAYOUTS], dtype=object)


def payload_tests(payloads, ts_ns) -> pd.DataFrame:
    """Per payload (schema.PAYLOAD_TESTS): length, entropy (bits/byte) and normalised by
    log2(min(n, 256)), NIST monobit and runs p-values (payloads of >= 100 bits), an embedded timestamp
    layout and a known fill, if any. ``payloads``: a Series of bytes or a :class:`PayloadBuffer`."""
    pb = _as_payloads(payloads)
    n = len(pb)
    frame_s = np.asarray(ts_ns.to_numpy("int64") if isinstance(ts_ns, pd.Series) else ts_ns, np.int64) / 1e9
    raw = _scan_rows(pb, np.arange(n, dtype=np.int64), None, None)
    return _tests_table(pb.lengths, raw, frame_s, pb.index)


def _entropy(counts: np.ndarray, n: int) -> float:
    p = counts[counts > 0] / n
    return float(-(p * np.log2(p)).sum()) if n else float("nan")


def ent(data: bytes) -> dict:
    """The ``ent`` program's tests on a byte string: entropy (bits/byte), chi-square against uniform
    bytes with its p-value (None below ENT_MIN_BYTES, with the reason), arithmetic mean, Monte Carlo π
    from 24-bit coordinate pairs, and the serial correlation coefficient."""
    a = np.frombuffer(data, np.uint8)
    g = _Groups(1)
    offsets = np.array([0, a.size], np.int64)
    pb = PayloadBuffer(a, offsets, pd.RangeIndex(1))
    _scan_rows(pb, np.zeros(1, np.int64), np.zeros(1, np.int64), g)
    return _ent_of(g.counts[0], g.state[0])


def _ent_of(counts: np.ndarray, st: np.ndarray) -> dict:
    """ent's results from one stream's state (the reference's formulas on the exact integer sums)."""
    n = int(st[_N])
    out = {"bytes": n}
    if n == 0:
        return out | {"entropy_bits": None, "chi2": None, "chi2_p": None, "mean": None, "pi": None,
                      "serial_correlation": None, "note": "no bytes"}
    out["entropy_bits"] = _entropy(counts, n)
    if n >= ENT_MIN_BYTES:
        chi2, p = stats.chisquare(counts)
        out["chi2"], out["chi2_p"], out["note"] = float(chi2), float(p), None
    else:
        out["chi2"] = out["chi2_p"] = None
        out["note"] = f"chi-square needs >= {ENT_MIN_BYTES} bytes (5 expected per byte value), have {n}"
    out["mean"] = float(np.float64(st[_S]) / n)
    m = int(st[_PI_M])
    out["pi"] = float(4.0 * (np.float64(st[_PI_IN]) / m)) if m else None
    if n > 1:
        su = np.float64(st[_S])
        suv = np.float64(st[_SUV] + st[_LAST] * st[_FIRST])   # the wrap-around pair, as np.roll
        num = n * suv - su ** 2
        den = n * np.float64(st[_SUU]) - su ** 2
        out["serial_correlation"] = float(num / den) if den else None
    else:
        out["serial_correlation"] = None
    return out


# --------------------------------------------------------------------------------- per stream
def _group_ids(probes: pd.DataFrame, by: list[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """Stream number of each probe, numbered in the order ``groupby(by, observed=True, dropna=False)``
    iterates (category order, <NA> last), and the streams' keys. From the category codes directly
    when the keys are categoricals and ports (fast); through pandas' groupby otherwise."""
    keys = probes[list(by)]
    packed = _packed_key(keys)
    if packed is None:
        gid = keys.groupby(list(by), observed=True, dropna=False, sort=True).ngroup().to_numpy(np.int64)
    else:
        gid = pd.factorize(packed, sort=True)[0].astype(np.int64)
    first = np.full(int(gid.max()) + 1 if gid.size else 0, -1, np.int64)
    first[gid[::-1]] = np.arange(gid.size - 1, -1, -1)
    return gid, keys.iloc[first].reset_index(drop=True)


def _packed_key(keys: pd.DataFrame) -> np.ndarray | None:
    """One int64 per row whose order is the groupby order of the key columns, or None."""
    packed = np.zeros(len(keys), np.int64)
    room = 1
    for c in keys.columns:
        col = keys[c]
        if isinstance(col.dtype, pd.CategoricalDtype):
            size = len(col.cat.categories) + 1
            k = col.cat.codes.to_numpy(np.int64)
            k = np.where(k < 0, size - 1, k)
        elif str(col.dtype) in ("UInt16", "uint16", "UInt8", "uint8"):
            size = 65537
            k = col.to_numpy("int64", na_value=65536)
        else:
            return None
        room *= size
        if room >= 1 << 62:
            return None
        packed = packed * size + k
    return packed


def _sorted_order(gid: np.ndarray, n_groups: int) -> np.ndarray:
    """Stable argsort of stream numbers (radix sort on a narrow type when there are few streams)."""
    narrow = np.uint16 if n_groups < 1 << 16 else np.int64
    return np.argsort(gid.astype(narrow), kind="stable")


def _typed_keys(keys: pd.DataFrame, probes: pd.DataFrame) -> pd.DataFrame:
    out = {}
    for c in keys.columns:
        col = keys[c]
        if c == "port":
            out[c] = col.astype("UInt16")
        elif c in ("protocol", "source", "destination"):
            if isinstance(probes[c].dtype, pd.CategoricalDtype):
                out[c] = pd.Categorical(col, categories=probes[c].cat.categories)
            else:
                out[c] = col.astype(str).astype("category")
        else:
            out[c] = col
    return pd.DataFrame(out)


def payload_verdicts(probes: pd.DataFrame, payloads, by=SOURCE_STREAM_KEYS, alpha: float = ALPHA) -> pd.DataFrame:
    """Per stream (schema.PAYLOAD_VERDICTS): a verdict — random, repeated-random, patterned, constant,
    timestamped, empty — with the evidence (ent results on all its bytes, pass rates of the per-payload
    NIST tests, duplicates). ``payloads``: a Series of bytes, a :class:`PayloadBuffer` or a lazy source
    (the chunked driver's), rows like ``probes``."""
    by = list(by)
    pb = _as_payloads(payloads)
    n_all = len(probes)
    cols = [c.name for c in PAYLOAD_VERDICTS if c.name not in SOURCE_STREAM_KEYS or c.name in by]
    if n_all == 0:
        return _typed_keys(pd.DataFrame({c: [] for c in by}), probes).join(
            pd.DataFrame({c.name: pd.Series([], dtype=c.dtype) for c in PAYLOAD_VERDICTS
                          if c.name not in SOURCE_STREAM_KEYS}))[cols]
    gid, keys = _group_ids(probes, by)
    order = _sorted_order(gid, len(keys))
    groups = _Groups(len(keys))
    raw = _scan_rows(pb, order, gid[order], groups)
    lengths = pb.lengths
    tests = _tests_table(lengths, raw, probes["ts_ns"].to_numpy("int64") / 1e9, pd.RangeIndex(n_all))
    bounds = np.searchsorted(gid[order], np.arange(len(keys) + 1))
    distinct = _distinct(gid, raw["h1"], raw["h2"], len(keys))
    fill_code = np.where(lengths == 0, 0, raw["fill"])
    has_ts = tests["timestamp"].notna().to_numpy()
    eb = tests["entropy_bits"].to_numpy()[order]
    en = tests["entropy_norm"].to_numpy()[order]
    mono = tests["monobit_p"].to_numpy()[order]
    runs = tests["runs_p"].to_numpy()[order]
    lens = lengths[order]
    fills_sorted = fill_code[order]
    ts_sorted = has_ts[order]
    rows = []
    for i in range(len(keys)):      # per stream, not per probe: the evidence is text per stream
        a, b = bounds[i], bounds[i + 1]
        e = _ent_of(groups.counts[i], groups.state[i])
        n = int(b - a)
        d = int(distinct[i])
        dup_share = 1 - d / n
        ts_share = float(np.float64(ts_sorted[a:b].sum()) / n)
        fc = fills_sorted[a:b]
        fc = fc[fc > 0]
        fill = _mode_name(fc)
        m = mono[a:b]
        tested = ~np.isnan(m)
        nt = int(tested.sum())
        mono_pass = float(np.float64((m[tested] >= alpha).sum()) / nt) if nt else np.nan
        r = runs[a:b]
        r = r[~np.isnan(r)]
        runs_pass = (float(np.float64((r >= alpha).sum()) / r.size) if r.size else np.nan) if nt else np.nan
        hmean = pd.Series(eb[a:b]).mean()
        hnorm = pd.Series(en[a:b]).mean()
        verdict, why = _verdict(n, e, dup_share, ts_share, fill, fc.size / n, mono_pass, runs_pass, hnorm, alpha)
        rows.append((n, int(np.median(lens[a:b])), d, dup_share, ts_share, fill, hmean, hnorm, mono_pass, runs_pass,
                     e["entropy_bits"], e["chi2"], e["chi2_p"], e["mean"], e["pi"], e["serial_correlation"],
                     e.get("note"), verdict, why))
    stats_cols = [c.name for c in PAYLOAD_VERDICTS if c.name not in SOURCE_STREAM_KEYS]
    body = pd.DataFrame(rows, columns=stats_cols)
    out = pd.concat([_typed_keys(keys, probes), body], axis=1)
    for c in PAYLOAD_VERDICTS:
        if c.name in out.columns and c.name not in SOURCE_STREAM_KEYS:
            out[c.name] = out[c.name].astype(c.dtype)
    return out[cols]


def _distinct(gid, h1, h2, n_groups: int) -> np.ndarray:
    """Distinct payloads per stream, by a 128-bit hash of length and bytes (two 64-bit hashes)."""
    t = pd.DataFrame({"g": gid, "a": h1, "b": h2}).drop_duplicates()   # h2 is seeded with the length
    return np.bincount(t["g"].to_numpy(), minlength=n_groups)


_FILL_ORDER = np.argsort(np.array(["" if x is None else x for x in _FILL_NAMES], dtype=object), kind="stable")
_FILL_RANK = np.empty(_FILL_ORDER.size, np.int64)
_FILL_RANK[_FILL_ORDER] = np.arange(_FILL_ORDER.size)


def _mode_name(codes: np.ndarray):
    """Series.mode().iloc[0] of the fill names: the most frequent, ties to the first in sorted order."""
    if not codes.size:
        return None
    c = np.bincount(codes, minlength=_FILL_NAMES.size)
    best = np.flatnonzero(c == c.max())
    return _FILL_NAMES[best[np.argmin(_FILL_RANK[best])]]


def _verdict(n, e, dup_share, ts_share, fill, fill_share, mono_pass, runs_pass, hnorm, alpha):
    if n == 0 or not e.get("bytes"):
        return "empty", "no payload bytes"
    if ts_share >= 0.9:
        return "timestamped", f"{ts_share:.0%} of payloads start with a timestamp near the frame time"
    if fill is not None and fill_share >= 0.9:
        kind = "constant" if fill.startswith(("zeros", "constant")) else "patterned"
        return kind, f"{fill_share:.0%} of payloads are a known fill: {fill}"
    if dup_share >= 0.5 and hnorm >= 0.85:
        return "repeated-random", (f"high entropy ({hnorm:.2f} of the maximum) but {dup_share:.0%} of payloads "
                                   "repeat an earlier one")
    # per-payload tests at level alpha: expect a pass rate near 1 - alpha; allow binomial slack
    lo = 1 - alpha - 3 * math.sqrt(alpha * (1 - alpha) / n)
    chi_ok = e["chi2_p"] is None or e["chi2_p"] >= alpha / 10
    if dup_share < 0.01 and mono_pass >= lo and runs_pass >= lo and chi_ok and hnorm >= 0.85:
        chi = "chi-square n/a" if e["chi2_p"] is None else f"chi-square p={e['chi2_p']:.3g}"
        return "random", (f"fresh payloads ({dup_share:.1%} repeats), monobit pass {mono_pass:.1%}, runs pass "
                          f"{runs_pass:.1%}, {chi}, entropy {hnorm:.2f} of the maximum")
    return "patterned", (f"fails randomness: monobit pass {mono_pass:.1%}, runs pass {runs_pass:.1%}, "
                         f"entropy {hnorm:.2f} of the maximum, {dup_share:.0%} repeats")
