"""Inter-arrival timing of probes: rate, jitter, dominant period, bursts and gaps (where probing stopped).

Vectorised over the probes table: the groups, their time order, the inter-arrivals and their medians
are made once per table and shared by inter_arrivals, timing_summary and find_gaps (analysis._groups.
table_cached); per-group statistics in one compiled pass each. Only the spectrum of each group's probe
train (:func:`dominant_period_s`, an FFT: most of timing_summary's cost) is computed group by group.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .._jit import njit
from ..schema import GAP_KINDS, SOURCE_STREAM_KEYS
from ._groups import cell_stats, table_cached, time_order_of

__all__ = ["inter_arrivals", "timing_summary", "find_gaps", "dominant_period_s"]
_NS = 1_000_000_000
_GAP_KINDS = pd.CategoricalDtype(list(GAP_KINDS))


def _sorted(probes: pd.DataFrame, by):
    """Groups, the row order by (group, time), and per sorted row: group, time, inter-arrival (ns, NaN
    for a group's first probe). Made once per table (read-only arrays: inter_arrivals, timing_summary
    and find_gaps of a session share them)."""
    by = tuple(by)

    def make():
        g, t = time_order_of(probes, by)
        gs, tss = t.gs, t.ts
        ia = np.full(tss.size, np.nan)
        if tss.size > 1:
            ia[1:] = tss[1:] - tss[:-1]
            ia[t.start[g.size > 0]] = np.nan   # each group's first probe
        ia.flags.writeable = False
        return g, t.order, gs, tss, ia
    return table_cached(probes, ("inter_arrivals", by), by + ("ts_ns",), make)


def _median_ia(probes: pd.DataFrame, by, sorted_) -> np.ndarray:
    """Median inter-arrival per group (ns), made once per table."""
    g, _, gs, _, ia = sorted_

    def make():
        med = cell_stats(gs, ia, g.n, (0.5,))[0.5]
        med.flags.writeable = False
        return med
    return table_cached(probes, ("ia_median", tuple(by)), tuple(by) + ("ts_ns",), make)


def inter_arrivals(probes: pd.DataFrame, by=SOURCE_STREAM_KEYS) -> pd.DataFrame:
    """Each probe with ``ia_s``: seconds since the previous probe of its group (NaN for the first);
    schema.INTER_ARRIVALS, sorted by group and time."""
    by = list(by)
    g, order, gs, tss, ia = _sorted(probes, by)
    out = g.keys(probes, by, order)
    out["ts_ns"] = tss.copy()
    out["ia_s"] = ia / _NS
    return pd.DataFrame(out, copy=False)


def dominant_period_s(ts_ns: np.ndarray, max_bins: int = 1 << 18) -> float:
    """The strongest period of an event train, from the spectrum of its binned counts (NaN if < 8 events)."""
    ts = np.asarray(ts_ns, dtype=np.int64)
    if ts.size > 1 and not bool(np.all(ts[1:] >= ts[:-1])):
        ts = np.sort(ts)
    if ts.size < 8:
        return float("nan")
    return _dominant_period(ts, float(np.median(np.diff(ts))), max_bins)


def _dominant_period(ts: np.ndarray, med: float, max_bins: int = 1 << 18) -> float:
    """:func:`dominant_period_s` of sorted times (8 or more) whose inter-arrivals' median is ``med`` (ns)."""
    span = float(ts[-1] - ts[0])
    if med <= 0 or span <= 0:
        return float("nan")
    width = max(med / 16.0, span / max_bins)
    counts = np.bincount(((ts - ts[0]) / width).astype(np.int64))
    x = counts - counts.mean()
    n = 1 << int(np.ceil(np.log2(max(x.size, 2)) + 1))
    power = np.abs(np.fft.rfft(x, n)) ** 2
    # the frequencies are k × step (np.fft.rfftfreq's rule, without its array)
    step = 1.0 / (n * (width / _NS))
    lo = _first_at_least(step, 1.0 / (span / _NS), power.size)  # at least one whole cycle in the capture
    if lo + 2 >= power.size:
        return float("nan")
    k = lo + int(np.argmax(power[lo:]))
    # refine the peak with a parabola through its neighbours
    if 0 < k < power.size - 1:
        a, b, c = power[k - 1], power[k], power[k + 1]
        d = 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) != 0 else 0.0
        f = k * step + d * step
    else:
        f = k * step
    return float(1.0 / f) if f > 0 else float("nan")


def _first_at_least(step: float, target: float, size: int) -> int:
    """``np.searchsorted(np.arange(size) * step, target)``: the first k whose k × step >= target (size
    if none), without the array."""
    if not np.isfinite(target / step):
        return size if target > 0 else 0
    k = min(max(int(np.ceil(target / step)), 0), size)
    while k > 0 and (k - 1) * step >= target:
        k -= 1
    while k < size and k * step < target:
        k += 1
    return k


def find_gaps(probes: pd.DataFrame, by=SOURCE_STREAM_KEYS, factor: float = 5.0, min_gap_s: float = 0.0,
              span_ns: tuple[int, int] | None = None) -> pd.DataFrame:
    """Stretches without probes (schema.GAPS): between two probes of a group more than ``factor`` × its
    median inter-arrival (and at least ``min_gap_s``) apart; also before its first and after its last
    probe when ``span_ns`` (capture start, end) is given — a stream that stopped for good shows as a
    ``trailing`` gap. Groups with fewer than two probes have none."""
    return _gaps(probes, list(by), factor, min_gap_s, span_ns)[0]


def _gaps(probes, by, factor, min_gap_s, span_ns, sorted_=None, med=None):
    if sorted_ is None:
        sorted_ = _sorted(probes, by)
    g, order, gs, tss, ia = sorted_
    if med is None:   # median inter-arrival per group, ns
        med = _median_ia(probes, by, sorted_)
    limit = np.maximum(factor * med, min_gap_s * _NS)
    has2 = g.size >= 2
    inner = np.flatnonzero(ia > limit[gs] if ia.size else np.zeros(0, bool))   # index of the probe after
    start, end, grp, seqno, kind = [tss[inner - 1]], [tss[inner]], [gs[inner]], [inner], [np.zeros(inner.size, np.int8)]
    if span_ns is not None and g.n:
        first = np.searchsorted(gs, np.arange(g.n), "left")
        last = np.searchsorted(gs, np.arange(g.n), "right") - 1
        t0, t1 = tss[first], tss[last]
        lead = np.flatnonzero(has2 & (t0 - span_ns[0] > limit))
        trail = np.flatnonzero(has2 & (span_ns[1] - t1 > limit))
        start += [np.full(lead.size, span_ns[0], np.int64), t1[trail]]
        end += [t0[lead], np.full(trail.size, span_ns[1], np.int64)]
        grp += [lead, trail]
        seqno += [np.full(lead.size, tss.size), np.full(trail.size, tss.size + 1)]
        kind += [np.ones(lead.size, np.int8), np.full(trail.size, 2, np.int8)]
    start, end, grp, seqno, kind = (np.concatenate(x) for x in (start, end, grp, seqno, kind))
    o = np.lexsort((seqno, start, grp))
    start, end, grp, kind = start[o].astype(np.int64), end[o].astype(np.int64), grp[o], kind[o]
    out = g.keys(probes, by, g.first[grp])
    out["start_ns"] = start
    out["end_ns"] = end
    out["length_s"] = (end - start) / _NS
    out["kind"] = pd.Categorical.from_codes(kind, dtype=_GAP_KINDS, validate=False)
    return pd.DataFrame(out, copy=False), grp


@njit(nogil=True)
def _ia_moments(ia, start, end, med_s, burst_factor):
    """Per group (rows ``start[g]:end[g]`` of the time-sorted inter-arrivals ``ia``, ns; NaN skipped):
    count, mean (s), variance (s², n - 1), mean absolute deviation from the mean (ms), and bursts
    (inter-arrivals under ``burst_factor`` × the median ``med_s``). Sums in row order, each value
    divided as the vectorised formulas do (seconds first), so the results are theirs."""
    n = start.size
    count = np.zeros(n, np.int64)
    mean = np.full(n, np.nan)
    var = np.full(n, np.nan)
    mad = np.full(n, np.nan)
    bursts = np.zeros(n, np.int64)
    for g in range(n):
        b, e = start[g], end[g]
        total = 0.0
        c = 0
        for i in range(b, e):
            x = ia[i]
            if not np.isnan(x):
                total += x
                c += 1
        count[g] = c
        if c == 0:
            continue
        m = total / c / 1e9
        mean[g] = m
        sq, ab = 0.0, 0.0
        lim = burst_factor * med_s[g]
        for i in range(b, e):
            x = ia[i]
            if not np.isnan(x):
                d = x / 1e9 - m
                sq += d * d
                ab += abs(d)
                if x / 1e9 < lim:
                    bursts[g] += 1
        var[g] = sq / (c - 1) if c > 1 else np.nan
        mad[g] = ab / c * 1e3
    return count, mean, var, mad, bursts


def timing_summary(probes: pd.DataFrame, by=SOURCE_STREAM_KEYS, gap_factor: float = 5.0, burst_factor: float = 0.25,
                   span_ns: tuple[int, int] | None = None) -> pd.DataFrame:
    """Per group (schema.TIMING_SUMMARY): probes, rate, inter-arrival median/mean, jitter as
    ``ia_std_ms`` (standard deviation) and ``ia_mad_ms`` (mean absolute deviation from the mean),
    dominant period, bursts (inter-arrivals under ``burst_factor`` × median) and gaps (over
    ``gap_factor`` × median, see find_gaps)."""
    by = list(by)
    sorted_ = _sorted(probes, by)
    g, order, gs, tss, ia = sorted_
    med_ns = _median_ia(probes, by, sorted_)   # the median serves the gaps and the summary
    gaps, gap_grp = _gaps(probes, by, gap_factor, 0.0, span_ns, sorted_, med=med_ns)
    n = g.size
    end = np.cumsum(n)
    first, last = end - n, end - 1
    med = med_ns / _NS
    # the groups' median inter-arrival is np.median's (dominant_period_s) when the inter-arrivals are whole
    # numbers below 2^52: the middle value, or half the sum of the two (exact either way)
    exact_med = not ia.size or bool(np.nanmax(ia, initial=0.0) < 2.0 ** 52)
    count, mean, var, mad, bursts = _ia_moments(ia, first, end, med, burst_factor)
    with np.errstate(invalid="ignore", divide="ignore"):
        span = (tss[last] - tss[first]) / _NS if g.n else np.zeros(0)
        rate = np.where(span > 0, (n - 1) / np.where(span > 0, span, 1), np.nan)
    std = np.where(count > 1, np.sqrt(var) * 1e3, np.nan)
    ngaps = np.bincount(gap_grp, minlength=g.n)
    longest = np.zeros(g.n)
    if gap_grp.size:
        np.maximum.at(longest, gap_grp, gaps["length_s"].to_numpy())
    dom = np.array([_dominant_period(tss[first[k]:last[k] + 1], float(med_ns[k])) if n[k] >= 8 and exact_med
                    else dominant_period_s(tss[first[k]:last[k] + 1]) for k in range(g.n)], dtype=np.float64)
    out = g.keys(probes, by)
    out["probes"] = n.astype(np.int64)
    out["rate_per_s"] = rate.astype(np.float64)
    out["ia_median_s"] = med
    out["ia_mean_s"] = mean
    out["ia_std_ms"] = std
    out["ia_mad_ms"] = mad
    out["dominant_period_s"] = dom
    out["bursts"] = bursts.astype(np.int64)
    out["gaps"] = ngaps.astype(np.int64)
    out["longest_gap_s"] = longest
    return pd.DataFrame(out, copy=False)
