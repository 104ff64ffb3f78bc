"""Payload randomness of probe requests: entropy, the ``ent`` test set, NIST SP 800-22 monobit and runs,
duplicates, embedded timestamps and known fills, and a verdict per stream with its evidence.

The request bytes come from the capture in one compiled gather (``probekit.capture.payloads``, by row
positions: the packets table is not taken). Every test runs in one compiled pass over them (:func:`_scan`),
rows in stream order: per payload its byte counts, entropy (only the byte values present are visited, each
term added where numpy's pairwise sum of the 256 terms adds it), ones and bit transitions, fill pattern,
timestamp layout and a 128-bit hash; per stream the byte counts, the sum of neighbour products and
Monte-Carlo π over the stream's bytes back to back. The per-stream numbers are compiled passes over the
streams' row ranges (medians, modal fill, pass counts, distinct hashes, pandas' means) or numpy over all
streams at once (ent's formulas, the chi-square of a 2-D table); Python visits a stream only to word its
verdict. Rows are taken in pieces of at most ``PIECE_ROWS`` with the per-stream state carried from piece to
piece, so a huge capture is judged in bounded memory with exactly the numbers of one pass: a piece is whole
streams, or part of a stream longer than a piece, cut where numpy's pairwise sum of its entropies splits it
(its other numbers are exact counts: lengths, fills, NIST passes, a set of distinct hashes).
``payload_verdicts`` keeps nothing per payload past its piece (a few int64 per probe for the stream order);
``payload_verdicts_and_scan`` also keeps the per-payload numbers (what a session shows as payload tests). The
floating-point formulas are the ones the tests hold this module to (``tests/reference_payload.py``, the
implementation before issue 16): the same operations in the same order, so the results are identical,
not merely close.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special, stats

from .._jit import ctz, ctz_plain, njit
from ..capture.payloads import payload_buffer
from ..schema import PAYLOAD_TESTS, PAYLOAD_VERDICTS, SOURCE_STREAM_KEYS
from ._groups import column_array, groups_of, stable_group_order

__all__ = [
    "ENT_MIN_BYTES",
    "PayloadBuffer",
    "PayloadScan",
    "ent",
    "payload_tests",
    "payload_verdicts",
    "payload_verdicts_and_scan",
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
    one place that knows where payload bytes live (probekit.capture.payloads), for the request rows
    only: the packets table is not taken."""
    rows = probes["request_frame"].to_numpy("int64") - 1
    if not len(rows):
        return PayloadBuffer(np.zeros(0, np.uint8), np.zeros(1, np.int64), probes.index)
    data, offsets = payload_buffer(packets, rows)
    return PayloadBuffer(data, offsets, probes.index)


def request_payloads(packets: pd.DataFrame, probes: pd.DataFrame) -> pd.Series:
    """Captured payload bytes of each probe's request (indexed like ``probes``), one bytes object each."""
    if not len(probes):
        return pd.Series([], index=probes.index, dtype=object, name="payload")
    return request_payload_buffer(packets, probes).to_series()


# ---------------------------------------------------------------------------------- the kernel
_WIN = np.frombuffer(WINDOWS_FILL, np.uint8).copy()
# fill codes: 0 none, 1 + v constant byte v, then these
_F_INC, _F_IPUTILS, _F_WIN = 257, 258, 259
_FILL_NAMES = np.array([None] + ["zeros"] + [f"constant 0x{v:02x}" for v in range(1, 256)]
                       + ["incrementing", "iputils (timeval + 0x10, 0x11, ...)", "windows alphabet"], dtype=object)
_TS_LAYOUTS = [("<i8", 8, 1e-6, "timeval64-le"), ("<i8", 8, 1e-9, "timespec64-le"), ("<u4", 4, 1e-6, "timeval32-le"),
               (">i8", 8, 1e-6, "timeval64-be"), (">i8", 8, 1e-9, "timespec64-be"), (">u4", 4, 1e-6, "timeval32-be"),
               ("<u4", 4, 1e-9, "timespec32-le"), (">u4", 4, 1e-9, "timespec32-be")]
_TS_NAMES = np.array([None] + [x[3] for x in _TS_LAYOUTS], dtype=object)
_TS_SIZE = np.array([x[1] for x in _TS_LAYOUTS], np.int64)                 # 8: signed 64-bit, 4: unsigned 32-bit
_TS_BIG = np.array([x[0][0] == ">" for x in _TS_LAYOUTS], np.bool_)
_TS_UNIT = np.array([x[2] for x in _TS_LAYOUTS], np.float64)
_TS_LIM = np.array([1e6 if x[2] == 1e-6 else 1e9 for x in _TS_LAYOUTS], np.float64)
# per-stream state columns (the byte sum and sum of squares come from the stream's byte counts)
_SUV, _FIRST, _LAST, _N, _PI_IN, _PI_M, _PLEN, _PACC = range(8)
_NSTATE = 8
_M1 = 0xFF51AFD7ED558CCD
_M2 = 0xC4CEB9FE1A85EC53


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
    """``np.add.reduce`` of a contiguous float64 run of any length, in numpy's order: blocks of <= 128
    with eight accumulators, longer runs split in two (at n // 2 rounded down to a multiple of 8) as
    numpy's recursion does. Not recursive here (numba's cache cannot reload recursion): a stack of
    frames (start, length, stage, left half's sum)."""
    if n <= 128:
        return _pairwise_block(a, lo, n)
    s_lo = np.empty(64, np.int64)
    s_n = np.empty(64, np.int64)
    s_stage = np.zeros(64, np.int64)
    s_left = np.zeros(64, np.float64)
    s_lo[0] = lo
    s_n[0] = n
    sp = 1
    ret = 0.0
    have = False        # ret holds the sum of the top frame's current half
    while True:
        f = sp - 1
        if have:
            if s_stage[f] == 1:         # left half done: keep it, do the right half
                s_left[f] = ret
                s_stage[f] = 2
                h = s_n[f] // 2
                h -= h % 8
                s_lo[sp] = s_lo[f] + h
                s_n[sp] = s_n[f] - h
                s_stage[sp] = 0
                sp += 1
                have = False
            else:                       # both halves done
                ret = s_left[f] + ret
                sp -= 1
                if sp == 0:
                    return ret
            continue
        m = s_n[f]
        if m <= 128:
            ret = _pairwise_block(a, s_lo[f], m)
            sp -= 1
            if sp == 0:
                return ret
            have = True
            continue
        h = m // 2
        h -= h % 8
        s_stage[f] = 1
        s_lo[sp] = s_lo[f]
        s_n[sp] = h
        s_stage[sp] = 0
        sp += 1


@njit(nogil=True)
def _segment_sums(a, bounds):  # pragma: no cover - compiled
    """``np.add.reduce(a[bounds[i]:bounds[i + 1]])`` for every i (numpy's pairwise order)."""
    out = np.zeros(bounds.shape[0] - 1, np.float64)
    for i in range(out.shape[0]):
        out[i] = _pairwise(a, bounds[i], bounds[i + 1] - bounds[i])
    return out


@njit(nogil=True)
def _fmix(h):  # pragma: no cover - compiled
    """MurmurHash3's 64-bit finaliser."""
    h ^= h >> np.uint64(33)
    h *= np.uint64(_M1)
    h ^= h >> np.uint64(33)
    h *= np.uint64(_M2)
    h ^= h >> np.uint64(33)
    return h


_ctz, _ctz_plain = ctz, ctz_plain      # the lowest set bit's index: LLVM's cttz, or Python integers


@njit(nogil=True)
def _popcount(x):  # pragma: no cover - compiled
    """Set bits of an unsigned 64-bit word (the bit-parallel count; LLVM makes it one instruction)."""
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return np.int64((x * np.uint64(0x0101010101010101)) >> np.uint64(56))


@njit(nogil=True)
def _inside(xi, yi):  # pragma: no cover - compiled
    """ent's Monte-Carlo test: is the point of two 24-bit coordinates inside the unit circle (1 or 0), in
    ent's floats: ``(xi / D)² + (yi / D)² <= 1.0``, D = 2²⁴ - 1. Decided in integers unless the point is
    within 16 of the circle in ``d = xi² + yi² - D²`` (exact in int64): the floats' result is the
    exact one there, as their relative error (at most about 6e-16) is below |d| / D² >= 1 / D² (3.6e-15)
    for any nonzero d. Only the points with |d| <= 16 take the floats (:func:`_inside_float`)."""
    d = xi * xi + yi * yi - 281474943156225        # D² = 16777215²
    if abs(d) <= 16:
        return _inside_float(xi, yi)
    return np.int64(d < 0)


@njit(nogil=True)
def _inside_float(xi, yi):  # pragma: no cover - compiled
    """ent's Monte-Carlo test in its floats: is the point of two 24-bit coordinates inside the unit circle."""
    x = np.float64(xi) / 16777215.0
    y = np.float64(yi) / 16777215.0
    return 1 if x * x + y * y <= 1.0 else 0


@njit(nogil=True)
def _scan(data, offsets, pos, gid, frame_s, tab, tab_off, win,
          ts_size, ts_big, ts_unit, ts_lim, do_groups,
          ent_h, ones, trans, fill, ts, h1, h2, gcounts, gstate):  # pragma: no cover - compiled
    """One pass over the payloads ``pos`` (positions into ``offsets``), in the order given; row k's
    results go to index k of the outputs.

    Per row: entropy (bits/byte, numpy's formula and summation order), ones, bit transitions, fill
    code, embedded timestamp layout (1 + index into _TS_LAYOUTS, 0 none), a 128-bit hash of length and
    bytes. With ``do_groups``, the state of stream ``gid[k]`` too: byte counts, sum of products of
    neighbours, first/last byte, bytes, Monte-Carlo points inside the circle and points, and the pending
    bytes of the next point. The entropy visits only the byte values present (a bitmap of them, in
    ascending order), adding each term to the accumulator numpy's pairwise sum of the 256 terms would add
    it to: the absent values' terms are 0.0 and adding 0.0 changes no sum, so the result is numpy's."""
    counts = np.zeros(256, np.int64)
    gflat = gcounts.reshape(-1)
    bm = np.zeros(4, np.uint64)
    one = np.uint64(1)
    acc = np.zeros(16, np.float64)
    sa = np.uint64(0x9E3779B97F4A7C15)
    sb = np.uint64(0x6A09E667F3BCC909)
    m1 = np.uint64(_M1)
    m2 = np.uint64(_M2)
    u8 = np.uint64(8)
    s29 = np.uint64(29)
    s32 = np.uint64(32)
    low32 = np.uint64(0xFFFFFFFF)
    for k in range(pos.shape[0]):
        p = pos[k]
        lo = offsets[p]
        L = offsets[p + 1] - lo
        a = sa ^ np.uint64(L)
        b = sb + np.uint64(L)
        if L == 0:
            ent_h[k] = np.nan
            ones[k] = 0
            trans[k] = 0
            fill[k] = 0
            ts[k] = 0
            h1[k] = _fmix(a)
            h2[k] = _fmix(b)
            continue
        first = np.int64(data[lo])
        # known fills, decided on the first bytes for almost every payload: stop once none can hold
        inc_bad = L < 2
        ip_bad = not (L > 17 and data[lo + 16] == 16)
        const_bad = False
        win_bad = first != win[0]
        j = 1
        while j < L and not (inc_bad and ip_bad and const_bad and win_bad):
            iv = np.int64(data[lo + j])
            bad = ((iv - np.int64(data[lo + j - 1])) & 255) != 1
            inc_bad |= bad
            if j >= 17:
                ip_bad |= bad
            const_bad |= iv != first
            win_bad |= iv != win[j & 31]
            j += 1
        # eight bytes at a time: counts, the values present (a 256-bit map in four words), products of
        # neighbours, the hashes (the word little-endian, the last one zero-padded), ones and bit
        # transitions (the word big-endian: the bits in the order NIST reads them)
        uv = -first * first      # the loop adds first * first for the first byte: taken back here
        prev = first
        n1 = 0
        tr = 0
        last = np.uint64(first >> 7)   # the first bit has no transition before it
        le0 = be0 = le1 = be1 = np.uint64(0)
        q = 0
        while q < L:
            m = min(8, L - q)
            le = np.uint64(0)
            be = np.uint64(0)
            if m == 8:
                for j in range(8):
                    x = data[lo + q + j]
                    iv = np.int64(x)
                    counts[iv] += 1
                    bm[iv >> 6] |= one << np.uint64(iv & 63)
                    uv += prev * iv
                    prev = iv
                    u = np.uint64(x)
                    le |= u << (u8 * np.uint64(j))
                    be = (be << u8) | u
            else:
                for j in range(m):
                    x = data[lo + q + j]
                    iv = np.int64(x)
                    counts[iv] += 1
                    bm[iv >> 6] |= one << np.uint64(iv & 63)
                    uv += prev * iv
                    prev = iv
                    u = np.uint64(x)
                    le |= u << (u8 * np.uint64(j))
                    be = (be << u8) | u
            a = (a ^ le) * m1
            a ^= a >> s32
            b = (b + le) * m2
            b ^= b >> s29
            nbits = u8 * np.uint64(m)
            n1 += _popcount(le)
            tr += _popcount((be ^ (be >> one)) & ((one << (nbits - one)) - one)) + np.int64(last ^ (be >> (nbits - one)))
            last = be & one
            if q == 0:
                le0, be0 = le, be       # the first two words again for the timestamp test (full when L >= 8, 16)
            elif q == 8:
                le1, be1 = le, be
            q += 8
        h1[k] = _fmix(a)
        h2[k] = _fmix(b)
        # the byte values present, ascending: entropy terms, stream counts
        g = gid[k]
        base = tab_off[k]
        gb = g * 256
        for i in range(16):
            acc[i] = 0.0
        for i in range(4):
            w = bm[i]
            bm[i] = 0
            off = (i >> 1) * 8          # values 0-127: accumulators 0-7, 128-255: 8-15 (by v & 7)
            vb = i * 64
            while w:
                v = vb + _ctz(w)
                w &= w - one
                c = counts[v]
                counts[v] = 0
                acc[off + (v & 7)] += tab[base + c]
                if do_groups:
                    gflat[gb + v] += c
        s0 = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
        s1 = ((acc[8] + acc[9]) + (acc[10] + acc[11])) + ((acc[12] + acc[13]) + (acc[14] + acc[15]))
        ent_h[k] = -(s0 + s1)
        ones[k] = n1
        trans[k] = tr
        code = 0
        if not const_bad:
            code = 1 + first
        elif not inc_bad:
            code = _F_INC
        elif not ip_bad:
            code = _F_IPUTILS
        if not win_bad:
            code = _F_WIN
        fill[k] = code
        # an embedded timeval/timespec at the start, within a day of the frame time (first layout wins)
        code = 0
        near = False
        if L >= 8:              # cheap test first: some layout's seconds within a day (+ 2 s) of the frame time
            fk = frame_s[k]
            near = (abs(np.float64(np.int64(np.uint64(le0))) - fk) <= TS_WINDOW_S + 2
                    or abs(np.float64(np.int64(np.uint64(be0))) - fk) <= TS_WINDOW_S + 2
                    or abs(np.float64(np.uint64(le0) & low32) - fk) <= TS_WINDOW_S + 2
                    or abs(np.float64(np.uint64(be0) >> s32) - fk) <= TS_WINDOW_S + 2)
        if near:
            for i in range(ts_size.shape[0]):
                size = ts_size[i]
                if 2 * size > L:
                    continue
                if size == 8:
                    sec = np.float64(np.int64(np.uint64(be0 if ts_big[i] else le0)))   # signed, as '<i8'
                    frac = np.float64(np.int64(np.uint64(be1 if ts_big[i] else le1)))
                elif ts_big[i]:
                    sec = np.float64(be0 >> s32)
                    frac = np.float64(be0 & low32)
                else:
                    sec = np.float64(le0 & low32)
                    frac = np.float64(le0 >> s32)
                if frac >= 0 and frac < ts_lim[i] and abs(sec + frac * ts_unit[i] - frame_s[k]) <= TS_WINDOW_S:
                    code = i + 1
                    break
        ts[k] = code
        if do_groups:
            s_uv = gstate[g, _SUV] + uv
            if gstate[g, _LAST] >= 0:
                s_uv += gstate[g, _LAST] * first
            else:
                gstate[g, _FIRST] = first
            gstate[g, _SUV] = s_uv
            gstate[g, _LAST] = prev
            gstate[g, _N] += L
            # Monte-Carlo π: the stream's bytes back to back, six to a point (two 24-bit coordinates)
            s_in = gstate[g, _PI_IN]
            s_m = gstate[g, _PI_M]
            s_plen = gstate[g, _PLEN]
            s_acc = gstate[g, _PACC]
            j = 0
            while s_plen and j < L:                 # finish the point the previous payload began
                s_acc = (s_acc << 8) | np.int64(data[lo + j])
                s_plen += 1
                j += 1
                if s_plen == 6:
                    s_in += _inside(s_acc >> 24, s_acc & 0xFFFFFF)
                    s_m += 1
                    s_plen = 0
                    s_acc = 0
            while j + 6 <= L:
                d = lo + j
                s_in += _inside((np.int64(data[d]) << 16) | (np.int64(data[d + 1]) << 8) | np.int64(data[d + 2]),
                                (np.int64(data[d + 3]) << 16) | (np.int64(data[d + 4]) << 8) | np.int64(data[d + 5]))
                s_m += 1
                j += 6
            while j < L:                            # the start of a point the next payload finishes
                s_acc = (s_acc << 8) | np.int64(data[lo + j])
                s_plen += 1
                j += 1
            gstate[g, _PI_IN] = s_in
            gstate[g, _PI_M] = s_m
            gstate[g, _PLEN] = s_plen
            gstate[g, _PACC] = s_acc


@njit(nogil=True)
def _distinct_sorted(gid, h1, h2, bounds):  # pragma: no cover - compiled
    """Distinct (h1, h2) pairs in each stream; rows sorted by stream, stream i is rows
    ``bounds[i]:bounds[i + 1]``. One open-addressing table, sized for the largest stream, reused."""
    n_groups = bounds.shape[0] - 1
    out = np.zeros(n_groups, np.int64)
    big = 0
    for i in range(n_groups):
        big = max(big, bounds[i + 1] - bounds[i])
    size = 2
    while size < 2 * big:
        size *= 2
    mask = np.uint64(size - 1)
    # one slot = (stream + 1, h1, h2) side by side: a probe touches one cache line, not three arrays
    tab = np.zeros(3 * size, np.uint64)
    for i in range(n_groups):
        d = 0
        tag = np.uint64(i + 1)
        for r in range(bounds[i], bounds[i + 1]):
            x = h1[r]
            y = h2[r]
            s = np.int64(x & mask)
            while True:
                q = 3 * s
                if tab[q] != tag:
                    tab[q] = tag
                    tab[q + 1] = x
                    tab[q + 2] = y
                    d += 1
                    break
                if tab[q + 1] == x and tab[q + 2] == y:
                    break
                s = (s + 1) & (size - 1)
        out[i] = d
    return out


@njit(nogil=True)
def _kth(hist, k):  # pragma: no cover - compiled
    """The k-th smallest (from 0) of the values a histogram counts: its bin."""
    seen = 0
    for v in range(hist.shape[0]):
        seen += hist[v]
        if seen > k:
            return v
    return hist.shape[0] - 1


@njit(nogil=True)
def _stream_stats(bounds, lens, fill, ts, mono, runs, alpha, fill_rank, n_codes):  # pragma: no cover
    """Per stream (rows sorted by stream): median length (np.median truncated), payloads with a
    timestamp, the most frequent fill code (ties: the lowest rank; 0 none) and how many have one,
    payloads monobit-tested and passing, runs-tested and passing."""
    n_groups = bounds.shape[0] - 1
    med = np.zeros(n_groups, np.int64)
    n_ts = np.zeros(n_groups, np.int64)
    mode = np.zeros(n_groups, np.int64)
    n_fill = np.zeros(n_groups, np.int64)
    n_mono = np.zeros(n_groups, np.int64)
    ok_mono = np.zeros(n_groups, np.int64)
    n_runs = np.zeros(n_groups, np.int64)
    ok_runs = np.zeros(n_groups, np.int64)
    tally = np.zeros(n_codes, np.int64)
    for i in range(n_groups):
        a, b = bounds[i], bounds[i + 1]
        m = b - a
        lo_len = hi_len = lens[a] if m else 0
        for r in range(a, b):
            lo_len = min(lo_len, lens[r])
            hi_len = max(hi_len, lens[r])
        if m and hi_len - lo_len <= 4 * m:      # few distinct lengths for the rows: count them
            hist = np.zeros(hi_len - lo_len + 1, np.int64)
            for r in range(a, b):
                hist[lens[r] - lo_len] += 1
            lo_mid = _kth(hist, m // 2 - 1 if m % 2 == 0 else m // 2) + lo_len
            hi_mid = _kth(hist, m // 2) + lo_len
        else:
            srt = np.sort(lens[a:b])
            lo_mid = srt[m // 2 - 1 if m % 2 == 0 else m // 2]
            hi_mid = srt[m // 2]
        if m % 2:
            med[i] = hi_mid
        else:
            med[i] = np.int64((np.float64(lo_mid) + np.float64(hi_mid)) / 2.0)
        best = 0
        for r in range(a, b):
            n_ts[i] += ts[r]
            c = fill[r]
            if c > 0:
                n_fill[i] += 1
                tally[c] += 1
                if best == 0 or tally[c] > tally[best] or (tally[c] == tally[best] and fill_rank[c] < fill_rank[best]):
                    best = c
            if not np.isnan(mono[r]):
                n_mono[i] += 1
                ok_mono[i] += mono[r] >= alpha
            if not np.isnan(runs[r]):
                n_runs[i] += 1
                ok_runs[i] += runs[r] >= alpha
        mode[i] = best
        for r in range(a, b):
            tally[fill[r]] = 0
    return med, n_ts, mode, n_fill, n_mono, ok_mono, n_runs, ok_runs


@njit(nogil=True)
def _nan_means(x, bounds):  # pragma: no cover - compiled
    """pandas' Series.mean of every segment: NaN counted out, the rest summed in numpy's pairwise order
    (NaN as 0.0, as pandas fills it), divided by the count; NaN when none."""
    filled = np.empty(x.shape[0], np.float64)     # plain loops (array expressions compile slowly)
    for r in range(x.shape[0]):
        filled[r] = 0.0 if np.isnan(x[r]) else x[r]
    out = np.empty(bounds.shape[0] - 1, np.float64)
    for i in range(out.shape[0]):
        out[i] = np.nan
        a, b = bounds[i], bounds[i + 1]
        cnt = 0
        for r in range(a, b):
            cnt += not np.isnan(x[r])
        if cnt:
            out[i] = _pairwise(filled, a, b - a) / np.float64(cnt)
    return out


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


def _scan_rows(payloads, order: np.ndarray, frame_s: np.ndarray, gid_sorted: np.ndarray | None,
               groups: _Groups | None) -> dict:
    """Run the kernel over ``order`` (row positions) in pieces; per-row results in the order of
    ``order`` (``frame_s`` and ``gid_sorted`` are in that order too)."""
    n = order.size
    lengths = payloads.lengths
    out = dict(ent_h=np.full(n, np.nan), ones=np.zeros(n, np.int64), trans=np.zeros(n, np.int64),
               fill=np.zeros(n, np.int64), ts=np.zeros(n, np.int64), h1=np.zeros(n, np.uint64),
               h2=np.zeros(n, np.uint64))
    g = groups or _Groups(1)
    frame_s = np.ascontiguousarray(frame_s, np.float64)
    for lo in range(0, n, PIECE_ROWS):
        hi = min(n, lo + PIECE_ROWS)
        rows = order[lo:hi]
        data, offsets, pos = payloads.piece(rows)
        tab, tab_off = _entropy_tables(lengths[rows])
        gid = gid_sorted[lo:hi] if gid_sorted is not None else np.zeros(hi - lo, np.int64)
        _scan(data, offsets, np.ascontiguousarray(pos, np.int64), np.ascontiguousarray(gid, np.int64),
              frame_s[lo:hi], tab, tab_off, _WIN,
              _TS_SIZE, _TS_BIG, _TS_UNIT, _TS_LIM, groups is not None,
              *(v[lo:hi] for v in out.values()), g.counts, g.state)
    return out


def _nist(lengths: np.ndarray, ones: np.ndarray, trans: np.ndarray):
    """NIST SP 800-22 monobit and runs p-values of payloads of >= 100 bits (NaN for shorter ones), from
    each payload's ones and bit transitions: the reference's formulas, once per distinct (length, ones,
    transitions) (:func:`_nist_args`: numpy's elementwise operations in the reference's order, scipy's
    erfc on them), then taken for every payload — the same inputs give the same value, so these are
    the elementwise results."""
    if not lengths.size:
        return np.full(0, np.nan), np.full(0, np.nan)
    xm, xr, inv = _nist_args(np.ascontiguousarray(lengths, np.int64), np.ascontiguousarray(ones, np.int64),
                             np.ascontiguousarray(trans, np.int64), math.sqrt(2))
    mono = np.append(special.erfc(xm), np.nan)      # index -1: a payload under 100 bits
    with np.errstate(invalid="ignore"):
        runs = np.append(np.where(np.isnan(xr), 0.0, special.erfc(xr)), np.nan)
    return mono[inv], runs[inv]


@njit(nogil=True)
def _nist_args(lengths, ones, trans, sqrt2):  # pragma: no cover - compiled
    """The distinct (length, ones, transitions) of payloads of >= 100 bits: each one's monobit and runs
    erfc arguments (runs NaN where the reference gives 0.0: the ones' share too far from 1/2), and per
    payload the index of its triple (-1 under 100 bits). The arguments are numpy's elementwise
    operations in the reference's order (int64 to float64 where numpy converts). Plain loops only (no
    array expressions: they compile slowly)."""
    n = lengths.shape[0]
    inv = np.empty(n, np.int64)
    kl = np.empty(n, np.int64)      # the distinct triples, first seen first (at most one a payload)
    ko = np.empty(n, np.int64)
    kt = np.empty(n, np.int64)
    cap = 256
    slots = np.empty(cap, np.int64)
    for i in range(cap):
        slots[i] = -1
    nu = 0
    k1 = np.uint64(0x9E3779B97F4A7C15)
    k2 = np.uint64(0xC2B2AE3D27D4EB4F)
    for r in range(n):
        L = lengths[r]
        inv[r] = -1
        if L * 8 < 100:
            continue
        o = ones[r]
        t = trans[r]
        if 2 * nu >= cap:                   # keep the table at most half full
            cap *= 2
            slots = np.empty(cap, np.int64)
            for i in range(cap):
                slots[i] = -1
            for i in range(nu):
                s = np.int64(_fmix(np.uint64(kl[i]) * k1 + np.uint64(ko[i]) * k2 + np.uint64(kt[i]))
                             & np.uint64(cap - 1))
                while slots[s] >= 0:
                    s = (s + 1) & (cap - 1)
                slots[s] = i
        s = np.int64(_fmix(np.uint64(L) * k1 + np.uint64(o) * k2 + np.uint64(t)) & np.uint64(cap - 1))
        while True:
            i = slots[s]
            if i < 0:
                kl[nu] = L
                ko[nu] = o
                kt[nu] = t
                slots[s] = nu
                i = nu
                nu += 1
                break
            if kl[i] == L and ko[i] == o and kt[i] == t:
                break
            s = (s + 1) & (cap - 1)
        inv[r] = i
    xm = np.empty(nu, np.float64)
    xr = np.empty(nu, np.float64)
    for i in range(nu):
        nb = kl[i] * 8
        o = np.float64(ko[i])
        fnb = np.float64(nb)
        snb = math.sqrt(fnb)
        xm[i] = abs(2 * o - fnb) / snb / sqrt2
        pi = o / fnb
        if abs(pi - 0.5) >= 2 / snb:
            xr[i] = np.nan
        else:
            xr[i] = abs(np.float64(1 + kt[i]) - np.float64(2 * nb) * pi * (1 - pi)) / (
                2 * math.sqrt(np.float64(2 * nb)) * pi * (1 - pi))
    return xm, xr, inv


def _normalised(lengths: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Entropy over log2(min(n, 256)) (over 1 for payloads of 0 or 1 byte)."""
    uniq, inv = _unique_lengths(lengths)
    div = np.array([math.log2(min(int(L), 256)) if L > 1 else 1.0 for L in uniq.tolist()] or [1.0])[inv]
    return h / div if lengths.size else np.zeros(0)


def payload_tests(payloads, ts_ns) -> pd.DataFrame:
    """Per payload (schema.PAYLOAD_TESTS): length, entropy (bits/byte) and normalised by
    log2(min(n, 256)), NIST monobit and runs p-values (payloads of >= 100 bits), an embedded timestamp
    layout and a known fill, if any. ``payloads``: a Series of bytes or a :class:`PayloadBuffer`."""
    pb = _as_payloads(payloads)
    n = len(pb)
    frame_s = np.asarray(ts_ns.to_numpy("int64") if isinstance(ts_ns, pd.Series) else ts_ns, np.int64) / 1e9
    raw = _scan_rows(pb, np.arange(n, dtype=np.int64), frame_s, None, None)
    lengths = pb.lengths
    mono, runs = _nist(lengths, raw["ones"], raw["trans"])
    return _tests_table(lengths, raw, _normalised(lengths, raw["ent_h"]), mono, runs, pb.index)


def _tests_table(lengths, raw: dict, norm, mono, runs, index) -> pd.DataFrame:
    out = pd.DataFrame({
        "length": lengths.astype(np.int64),
        "entropy_bits": raw["ent_h"],
        "entropy_norm": norm,
        "monobit_p": mono, "runs_p": runs,
        "timestamp": pd.Series(_TS_NAMES[raw["ts"]], index=index, dtype=object),
        "fill": pd.Series(_FILL_NAMES[raw["fill"]], index=index, dtype=object),
    }, index=index)
    assert tuple(out.columns) == tuple(c.name for c in PAYLOAD_TESTS)
    return out


@dataclass(frozen=True)
class PayloadScan:
    """The per-payload numbers :func:`payload_verdicts` computed (rows in stream order, ``order`` the
    row positions they came from): every column of :func:`payload_tests`, without a second pass over
    the bytes (``tests()``)."""
    order: np.ndarray
    lengths: np.ndarray
    raw: dict
    norm: np.ndarray
    mono: np.ndarray
    runs: np.ndarray
    index: pd.Index
    gid: np.ndarray         # each payload's stream number (the verdicts' row), in the payloads' order

    def tests(self, rows: np.ndarray | None = None, index: pd.Index | None = None) -> pd.DataFrame:
        """:func:`payload_tests` of the same payloads and frame times (rows in the payloads' order), or of
        the payloads ``rows`` only (labelled ``index``)."""
        inv = np.empty_like(self.order)
        inv[self.order] = np.arange(self.order.size)
        if rows is not None:
            inv = inv[rows]
        raw = {k: self.raw[k][inv] for k in ("ent_h", "ts", "fill")}
        return _tests_table(self.lengths[inv], raw, self.norm[inv], self.mono[inv], self.runs[inv],
                            self.index if rows is None else index)


def ent(data: bytes) -> dict:
    """The ``ent`` program's tests on a byte string: entropy (bits/byte), chi-square against uniform
    bytes with its p-value (None below ENT_MIN_BYTES, with the reason), arithmetic mean, Monte Carlo π
    from 24-bit coordinate pairs, and the serial correlation coefficient."""
    a = np.frombuffer(data, np.uint8)
    g = _Groups(1)
    pb = PayloadBuffer(a, np.array([0, a.size], np.int64), pd.RangeIndex(1))
    _scan_rows(pb, np.zeros(1, np.int64), np.zeros(1), np.zeros(1, np.int64), g)
    return _ent_rows(g.counts, g.state)[0]


def _ent_rows(counts: np.ndarray, st: np.ndarray) -> list[dict]:
    """ent's results of each stream from its state (the reference's formulas on the exact integer sums,
    all streams at once; scalar powers as numpy's scalar ``**``, i.e. C's pow, not x·x)."""
    n = st[:, _N].copy()
    G = n.size
    v = np.arange(256, dtype=np.int64)
    s = counts @ v                       # exact: integers
    suu = counts @ (v * v)
    nz = counts > 0
    rep = np.repeat(n, nz.sum(axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = counts[nz] / rep
        terms = p * np.log2(p)
    bounds = np.zeros(G + 1, np.int64)
    np.cumsum(nz.sum(axis=1), out=bounds[1:])
    ent_bits = -_segment_sums(np.ascontiguousarray(terms, np.float64), bounds)
    chi2 = np.full(G, np.nan)
    chi2_p = np.full(G, np.nan)
    big = np.flatnonzero(n >= ENT_MIN_BYTES)
    if big.size:
        r = stats.chisquare(counts[big], axis=1)
        chi2[big], chi2_p[big] = r.statistic, r.pvalue
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = s.astype(np.float64) / n
        m = st[:, _PI_M]
        pi = 4.0 * (st[:, _PI_IN].astype(np.float64) / m)
        su = s.astype(np.float64)
        su2 = np.fromiter(map(math.pow, su.tolist(), itertools.repeat(2.0)), np.float64, G)
        suv = (st[:, _SUV] + st[:, _LAST] * st[:, _FIRST]).astype(np.float64)   # the wrap-around pair, as np.roll
        num = n * suv - su2
        den = n * suu.astype(np.float64) - su2
        sc = num / den
    out = []
    for i in range(G):
        ni = int(n[i])
        if ni == 0:
            out.append({"bytes": 0, "entropy_bits": None, "chi2": None, "chi2_p": None, "mean": None, "pi": None,
                        "serial_correlation": None, "note": "no bytes"})
            continue
        e = {"bytes": ni, "entropy_bits": float(ent_bits[i])}
        if ni >= ENT_MIN_BYTES:
            e["chi2"], e["chi2_p"], e["note"] = float(chi2[i]), float(chi2_p[i]), None
        else:
            e["chi2"] = e["chi2_p"] = None
            e["note"] = f"chi-square needs >= {ENT_MIN_BYTES} bytes (5 expected per byte value), have {ni}"
        e["mean"] = float(mean[i])
        e["pi"] = float(pi[i]) if m[i] else None
        e["serial_correlation"] = float(sc[i]) if ni > 1 and den[i] else None
        out.append(e)
    return out


# --------------------------------------------------------------------------------- per stream
def _group_ids(probes: pd.DataFrame, by: list[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """Stream number of each probe, numbered in the order ``groupby(by, observed=True, dropna=False)``
    iterates (category order, <NA> last), and the streams' keys. From the category codes directly
    when the keys are categoricals and ports (fast); through pandas' groupby otherwise."""
    if len(probes) and all(_groupable(probes, c) for c in by):     # the table's shared groups (made once)
        g = groups_of(probes, tuple(by))
        return np.asarray(g.gid, np.int64), pd.DataFrame(g.keys(probes, by))
    keys = probes[list(by)]
    packed = _packed_key(keys)
    if packed is None:
        gid = keys.groupby(list(by), observed=True, dropna=False, sort=True).ngroup().to_numpy(np.int64)
    else:
        gid = pd.factorize(packed, sort=True)[0].astype(np.int64)
    first = np.full(int(gid.max()) + 1 if gid.size else 0, -1, np.int64)
    first[gid[::-1]] = np.arange(gid.size - 1, -1, -1)
    return gid, keys.iloc[first].reset_index(drop=True)


def _groupable(probes: pd.DataFrame, c: str) -> bool:
    """Whether ``_groups.groups_of`` groups by column ``c``: a categorical or a nullable integer."""
    a = column_array(probes, c)
    return isinstance(a, pd.Categorical) or (isinstance(getattr(a, "_data", None), np.ndarray)
                                             and a._data.dtype.kind in "iu"
                                             and isinstance(getattr(a, "_mask", None), np.ndarray))


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
    """Stable argsort of stream numbers 0..n_groups-1: a counting sort (``_groups.stable_group_order``)."""
    return stable_group_order(np.ascontiguousarray(gid, np.int64), int(n_groups))


def _typed_keys(keys: pd.DataFrame, probes: pd.DataFrame) -> pd.DataFrame:
    out = {}
    for c in keys.columns:
        col = keys[c]
        if c == "port":
            out[c] = col.astype("UInt16")
        elif c in ("protocol", "source", "destination"):
            if isinstance(probes[c].dtype, pd.CategoricalDtype):
                out[c] = col.array if col.dtype == probes[c].dtype else \
                    pd.Categorical(col, categories=probes[c].cat.categories)     # the same dtype: as it is
            else:
                out[c] = col.astype(str).astype("category")
        else:
            out[c] = col
    return pd.DataFrame(out)


def payload_verdicts(probes: pd.DataFrame, payloads, by=SOURCE_STREAM_KEYS, alpha: float = ALPHA) -> pd.DataFrame:
    """Per stream (schema.PAYLOAD_VERDICTS): see :func:`payload_verdicts_and_scan`; nothing per payload is
    kept past its piece (memory for the streams, not the payloads)."""
    return _verdicts_of(probes, payloads, by, alpha, keep_scan=False)[0]


def payload_verdicts_and_scan(probes: pd.DataFrame, payloads, by=SOURCE_STREAM_KEYS,
                              alpha: float = ALPHA) -> tuple[pd.DataFrame, PayloadScan | None]:
    """Per stream (schema.PAYLOAD_VERDICTS): a verdict — random, repeated-random, patterned, constant,
    timestamped, empty — with the evidence (ent results on all its bytes, pass rates of the per-payload
    NIST tests, duplicates). ``payloads``: a Series of bytes, a :class:`PayloadBuffer` or a lazy source
    (the chunked driver's), rows like ``probes``. Also the per-payload numbers (:class:`PayloadScan`)."""
    return _verdicts_of(probes, payloads, by, alpha, keep_scan=True)


def _verdicts_of(probes: pd.DataFrame, payloads, by, alpha: float, keep_scan: bool):
    """The rows are visited stream by stream (a stable sort by stream number), in pieces of at most
    ``PIECE_ROWS`` payloads: a piece is whole streams, or one part of a longer stream. Every per-payload
    number is made by the kernel for one piece; every per-stream number by a compiled pass over the
    piece's streams, or — for a stream longer than a piece — from running counts carried from piece to
    piece (lengths, fills, NIST passes, a growing set of distinct hashes; the means' sums are numpy's
    pairwise tree, the stream cut at the tree's own nodes). Without ``keep_scan`` nothing per payload
    outlives its piece: memory for the piece, the streams and the largest stream's distinct payloads."""
    by = list(by)
    pb = _as_payloads(payloads)
    n_all = len(probes)
    cols = [c.name for c in PAYLOAD_VERDICTS if c.name not in SOURCE_STREAM_KEYS or c.name in by]
    if n_all == 0:
        return _typed_keys(pd.DataFrame({c: [] for c in by}), probes).join(
            pd.DataFrame({c.name: pd.Series([], dtype=c.dtype) for c in PAYLOAD_VERDICTS
                          if c.name not in SOURCE_STREAM_KEYS}))[cols], None
    gid, keys = _group_ids(probes, by)
    G = len(keys)
    order = _sorted_order(gid, G)
    bounds = np.zeros(G + 1, np.int64)
    np.cumsum(np.bincount(gid, minlength=G), out=bounds[1:])
    if not keep_scan:
        del gid
    ts_ns = probes["ts_ns"].to_numpy("int64")
    lengths = pb.lengths
    acc = _StreamStats(G, float(alpha))
    groups = _Groups(G)
    parts: list[dict] | None = [] if keep_scan else None

    def scan(lo: int, hi: int, gid_piece: np.ndarray):
        rows = order[lo:hi]
        raw = _scan_rows(pb, rows, ts_ns[rows] / 1e9, gid_piece, groups)
        lens = np.ascontiguousarray(lengths[rows])
        mono, runs = _nist(lens, raw["ones"], raw["trans"])
        norm = _normalised(lens, raw["ent_h"])
        if parts is not None:
            parts.append(dict(raw=raw, lens=lens, mono=mono, runs=runs, norm=norm))
        return raw, lens, mono, runs, norm

    cap = max(PIECE_ROWS, 128)      # numpy's pairwise sum splits only runs longer than 128
    i = 0
    while i < G:
        j = i
        while j < G and bounds[j + 1] - bounds[j] <= cap and bounds[j + 1] - bounds[i] <= cap:
            j += 1
        if j > i:                   # whole streams i..j-1
            local = bounds[i:j + 1] - bounds[i]
            acc.whole(i, local, *scan(int(bounds[i]), int(bounds[j]), np.repeat(np.arange(i, j), np.diff(local))))
            i = j
            continue
        big = _BigStream(int(bounds[i + 1] - bounds[i]), float(alpha))   # one stream longer than a piece
        acc.big(i, big, _tree_sums(0, big.n, cap, lambda lo, m, i=i, big=big: big.add(
            *scan(int(bounds[i]) + lo, int(bounds[i]) + lo + m, np.full(m, i, np.int64)))))
        i += 1
    n = np.diff(bounds)
    with np.errstate(divide="ignore", invalid="ignore"):
        dup_share = 1 - acc.distinct / n
        ts_share = acc.n_ts.astype(np.float64) / n
        mono_pass = np.where(acc.n_mono > 0, acc.ok_mono.astype(np.float64) / acc.n_mono, np.nan)
        runs_pass = np.where((acc.n_mono > 0) & (acc.n_runs > 0), acc.ok_runs.astype(np.float64) / acc.n_runs, np.nan)
        fill_share = acc.n_fill / n
    hmean, hnorm = acc.hmean, acc.hnorm
    fill = _FILL_NAMES[acc.mode]
    ents = _ent_rows(groups.counts[:G], groups.state[:G])
    words = [_verdict(int(n[i]), ents[i], dup_share[i], ts_share[i], fill[i], fill_share[i], mono_pass[i],
                      runs_pass[i], hnorm[i], alpha) for i in range(G)]
    pick = lambda k: [e[k] for e in ents]
    body = pd.DataFrame({
        "probes": n, "length": acc.med, "distinct": acc.distinct, "duplicate_share": dup_share,
        "timestamp_share": ts_share,
        "fill": pd.Series(fill, dtype=object), "entropy_mean": hmean, "entropy_norm_mean": hnorm,
        "monobit_pass": mono_pass, "runs_pass": runs_pass,
        "ent_entropy": pick("entropy_bits"), "ent_chi2": pick("chi2"), "ent_chi2_p": pick("chi2_p"),
        "ent_mean": pick("mean"), "ent_pi": pick("pi"), "ent_serial_corr": pick("serial_correlation"),
        "ent_note": pd.Series(pick("note"), dtype=object),
        "verdict": [w[0] for w in words], "evidence": [w[1] for w in words]})
    assert tuple(body.columns) == tuple(c.name for c in PAYLOAD_VERDICTS if c.name not in SOURCE_STREAM_KEYS)
    out = pd.concat([_typed_keys(keys, probes), body], axis=1)
    for c in PAYLOAD_VERDICTS:
        if c.name in out.columns and c.name not in SOURCE_STREAM_KEYS:
            out[c.name] = out[c.name].astype(c.dtype)
    if parts is None:
        return out[cols], None
    cat = lambda f: f(parts[0]) if len(parts) == 1 else np.concatenate([f(q) for q in parts])   # one piece: as is
    raw = {k: cat(lambda q, k=k: q["raw"][k]) for k in parts[0]["raw"]}
    scan_ = PayloadScan(order, cat(lambda q: q["lens"]), raw, cat(lambda q: q["norm"]), cat(lambda q: q["mono"]),
                        cat(lambda q: q["runs"]), getattr(pb, "index", pd.RangeIndex(n_all)), gid)
    return out[cols], scan_


def _tree_sums(lo: int, m: int, cap: int, leaf):
    """The pairwise sums of rows ``lo:lo + m`` of a stream as numpy adds them up: a run longer than ``cap``
    (> 128) is split at half, rounded down to a multiple of 8, and its halves' sums added; ``leaf(lo, m)``
    gives a shorter run's sums (numpy's own pairwise sum of it), leaves in row order."""
    if m <= cap:
        return leaf(lo, m)
    h = m // 2
    h -= h % 8
    a = _tree_sums(lo, h, cap, leaf)
    b = _tree_sums(lo + h, m - h, cap, leaf)
    return a[0] + b[0], a[1] + b[1]


class _StreamStats:
    """The per-stream numbers of the verdicts (int64/float64 arrays, one entry a stream)."""

    def __init__(self, G: int, alpha: float):
        self.alpha = alpha
        z = lambda: np.zeros(G, np.int64)
        self.med, self.n_ts, self.mode, self.n_fill = z(), z(), z(), z()
        self.n_mono, self.ok_mono, self.n_runs, self.ok_runs, self.distinct = z(), z(), z(), z(), z()
        self.hmean = np.full(G, np.nan)
        self.hnorm = np.full(G, np.nan)

    def whole(self, i, local, raw, lens, mono, runs, norm):
        """Streams i, i + 1, ... whose every payload is in this piece (``local``: their row bounds in it)."""
        j = i + local.size - 1
        got = _stream_stats(local, lens, raw["fill"], (raw["ts"] > 0).astype(np.int64), mono, runs, self.alpha,
                            _FILL_RANK, _FILL_NAMES.size)
        for name, v in zip(("med", "n_ts", "mode", "n_fill", "n_mono", "ok_mono", "n_runs", "ok_runs"), got):
            getattr(self, name)[i:j] = v
        gid = np.repeat(np.arange(local.size - 1), np.diff(local))
        self.distinct[i:j] = _distinct_sorted(gid, raw["h1"], raw["h2"], local)
        self.hmean[i:j] = _nan_means(raw["ent_h"], local)
        self.hnorm[i:j] = _nan_means(norm, local)

    def big(self, i, b: _BigStream, sums):
        """Stream i from its running counts (``sums``: its entropies' and normalised entropies' pairwise sums)."""
        cum = np.cumsum(b.hist)
        m = b.n
        at = lambda r: int(np.searchsorted(cum, r, side="right"))      # the r-th smallest length (from 0)
        self.med[i] = at(m // 2) if m % 2 else np.int64((np.float64(at(m // 2 - 1)) + np.float64(at(m // 2))) / 2.0)
        self.n_ts[i] = b.n_ts
        t = b.tally.copy()
        t[0] = 0
        self.n_fill[i] = int(t.sum())
        if t.max() > 0:             # the most frequent fill, ties: the lowest rank (as _stream_stats)
            cands = np.flatnonzero(t == t.max())
            self.mode[i] = cands[np.argmin(_FILL_RANK[cands])]
        self.n_mono[i], self.ok_mono[i], self.n_runs[i], self.ok_runs[i] = b.n_mono, b.ok_mono, b.n_runs, b.ok_runs
        self.distinct[i] = b.seen.distinct
        self.hmean[i] = sums[0] / np.float64(b.cnt_h) if b.cnt_h else np.nan
        self.hnorm[i] = sums[1] / np.float64(b.cnt_hn) if b.cnt_hn else np.nan


class _BigStream:
    """Running counts of one stream scanned in several pieces."""

    def __init__(self, n: int, alpha: float):
        self.n = n
        self.alpha = alpha
        self.hist = np.zeros(1, np.int64)
        self.tally = np.zeros(_FILL_NAMES.size, np.int64)
        self.n_ts = self.n_mono = self.ok_mono = self.n_runs = self.ok_runs = self.cnt_h = self.cnt_hn = 0
        self.seen = _HashSet()

    def add(self, raw, lens, mono, runs, norm):
        """Count one piece in; its entropies' and normalised entropies' pairwise sums (NaN as 0.0)."""
        h = np.bincount(lens)
        if h.size > self.hist.size:
            h[:self.hist.size] += self.hist
            self.hist = h
        else:
            self.hist[:h.size] += h
        self.tally += np.bincount(raw["fill"], minlength=self.tally.size)
        self.n_ts += int((raw["ts"] > 0).sum())
        for name, p in (("mono", mono), ("runs", runs)):
            ok = ~np.isnan(p)
            setattr(self, "n_" + name, getattr(self, "n_" + name) + int(ok.sum()))
            setattr(self, "ok_" + name, getattr(self, "ok_" + name) + int((p[ok] >= self.alpha).sum()))
        self.seen.add(raw["h1"], raw["h2"])
        e, u = raw["ent_h"], norm
        self.cnt_h += int((~np.isnan(e)).sum())
        self.cnt_hn += int((~np.isnan(u)).sum())
        return (_pairwise(np.where(np.isnan(e), 0.0, e), 0, e.size),
                _pairwise(np.where(np.isnan(u), 0.0, u), 0, u.size))


class _HashSet:
    """Distinct (h1, h2) pairs of one stream, added piece by piece: an open-addressing table of pairs
    ((0, 0) marks a free slot; the pair (0, 0) itself is counted apart), doubled at 3/4 full."""

    def __init__(self):
        self.tab = np.zeros(2 * 1024, np.uint64)
        self.count = 0
        self.zero = False

    def add(self, h1: np.ndarray, h2: np.ndarray) -> None:
        z = (h1 == 0) & (h2 == 0)
        if z.any():
            self.zero = True
            h1, h2 = h1[~z], h2[~z]
        h1, h2 = np.ascontiguousarray(h1, np.uint64), np.ascontiguousarray(h2, np.uint64)
        pos = 0
        while True:
            self.count, pos = _distinct_add(h1, h2, pos, self.tab, self.count, self.tab.size // 2 * 3 // 4)
            if pos == h1.size:
                return
            old = self.tab
            self.tab = np.zeros(2 * old.size, np.uint64)
            used = (old[0::2] != 0) | (old[1::2] != 0)
            a, b = np.ascontiguousarray(old[0::2][used]), np.ascontiguousarray(old[1::2][used])
            del old, used
            self.count, _ = _distinct_add(a, b, 0, self.tab, 0, self.tab.size)

    @property
    def distinct(self) -> int:
        return self.count + self.zero


@njit(nogil=True)
def _distinct_add(h1, h2, start, tab, count, limit):  # pragma: no cover - compiled
    """Insert the pairs ``start:`` into ``tab`` (slot s is ``tab[2s], tab[2s + 1]``, free when both are
    0) until ``count`` distinct pairs reach ``limit``; (distinct pairs, where it stopped)."""
    mask = np.uint64(tab.shape[0] // 2 - 1)
    k = start
    while k < h1.shape[0]:
        if count >= limit:
            return count, k
        x = h1[k]
        y = h2[k]
        s = x & mask
        while True:
            q = 2 * np.int64(s)
            if tab[q] == 0 and tab[q + 1] == 0:
                tab[q] = x
                tab[q + 1] = y
                count += 1
                break
            if tab[q] == x and tab[q + 1] == y:
                break
            s = (s + np.uint64(1)) & mask
        k += 1
    return count, k


_FILL_ORDER = np.argsort(np.array(["" if x is None else x for x in _FILL_NAMES], dtype=object), kind="stable")
_FILL_RANK = np.empty(_FILL_ORDER.size, np.int64)
_FILL_RANK[_FILL_ORDER] = np.arange(_FILL_ORDER.size)


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
