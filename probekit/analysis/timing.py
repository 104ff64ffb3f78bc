"""Inter-arrival timing of probes: rate, jitter, dominant period, bursts and gaps (where probing stopped)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .metrics import STREAM

__all__ = ["inter_arrivals", "timing_summary", "find_gaps", "dominant_period_s"]
_NS = 1_000_000_000


def inter_arrivals(probes: pd.DataFrame, by=STREAM) -> pd.DataFrame:
    """Each probe with ``ia_s``: seconds since the previous probe of its group (NaN for the first)."""
    by = list(by)
    p = probes.sort_values(by + ["ts_ns"], kind="stable")
    ia = p.groupby(by, observed=True, dropna=False)["ts_ns"].diff() / _NS
    return p.assign(ia_s=ia.astype("float64"))[by + ["ts_ns", "ia_s"]].reset_index(drop=True)


def dominant_period_s(ts_ns: np.ndarray, max_bins: int = 1 << 18) -> float:
    """The strongest period of an event train, from the spectrum of its binned counts (NaN if < 8 events)."""
    ts = np.sort(np.asarray(ts_ns, dtype=np.int64))
    if ts.size < 8:
        return float("nan")
    ia = np.diff(ts)
    med = float(np.median(ia))
    span = float(ts[-1] - ts[0])
    if med <= 0 or span <= 0:
        return float("nan")
    width = max(med / 16.0, span / max_bins)
    counts = np.bincount(((ts - ts[0]) / width).astype(np.int64))
    x = counts - counts.mean()
    n = 1 << int(np.ceil(np.log2(max(x.size, 2)) + 1))
    power = np.abs(np.fft.rfft(x, n)) ** 2
    freqs = np.fft.rfftfreq(n, d=width / _NS)
    lo = np.searchsorted(freqs, 1.0 / (span / _NS))  # at least one whole cycle in the capture
    if lo + 2 >= power.size:
        return float("nan")
    k = lo + int(np.argmax(power[lo:]))
    # refine the peak with a parabola through its neighbours
    if 0 < k < power.size - 1:
        a, b, c = power[k - 1], power[k], power[k + 1]
        d = 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) != 0 else 0.0
        f = freqs[k] + d * (freqs[1] - freqs[0])
    else:
        f = freqs[k]
    return float(1.0 / f) if f > 0 else float("nan")


def find_gaps(probes: pd.DataFrame, by=STREAM, factor: float = 5.0, min_gap_s: float = 0.0,
              span_ns: tuple[int, int] | None = None) -> pd.DataFrame:
    """Stretches without probes: between two probes of a group more than ``factor`` × its median
    inter-arrival (and at least ``min_gap_s``) apart; also before its first and after its last probe
    when ``span_ns`` (capture start, end) is given — a stream that stopped for good shows as a
    ``trailing`` gap. Columns: group keys, start_ns, end_ns, length_s, kind (gap, leading, trailing)."""
    by = list(by)
    rows = []
    if span_ns is None and len(probes):
        span_ns = None
    for key, g in probes.sort_values("ts_ns").groupby(by, observed=True, dropna=False):
        ts = g["ts_ns"].to_numpy(np.int64)
        if ts.size < 2:
            continue
        ia = np.diff(ts)
        limit = max(factor * float(np.median(ia)), min_gap_s * _NS)
        key = key if isinstance(key, tuple) else (key,)
        for i in np.flatnonzero(ia > limit):
            rows.append((*key, int(ts[i]), int(ts[i + 1]), ia[i] / _NS, "gap"))
        if span_ns is not None:
            if ts[0] - span_ns[0] > limit:
                rows.append((*key, int(span_ns[0]), int(ts[0]), (ts[0] - span_ns[0]) / _NS, "leading"))
            if span_ns[1] - ts[-1] > limit:
                rows.append((*key, int(ts[-1]), int(span_ns[1]), (span_ns[1] - ts[-1]) / _NS, "trailing"))
    out = pd.DataFrame(rows, columns=by + ["start_ns", "end_ns", "length_s", "kind"])
    return out.sort_values(by + ["start_ns"], kind="stable").reset_index(drop=True)


def timing_summary(probes: pd.DataFrame, by=STREAM, gap_factor: float = 5.0, burst_factor: float = 0.25,
                   span_ns: tuple[int, int] | None = None) -> pd.DataFrame:
    """Per group: probes, rate, inter-arrival median/mean, jitter as ``ia_std_ms`` (standard deviation)
    and ``ia_mad_ms`` (mean absolute deviation from the mean), dominant period, bursts (inter-arrivals
    under ``burst_factor`` × median) and gaps (over ``gap_factor`` × median)."""
    by = list(by)
    gaps = find_gaps(probes, by, gap_factor, span_ns=span_ns)
    rows = []
    for key, g in probes.groupby(by, observed=True, dropna=False):
        ts = np.sort(g["ts_ns"].to_numpy(np.int64))
        key = key if isinstance(key, tuple) else (key,)
        ia = np.diff(ts) / _NS
        n = ts.size
        if ia.size:
            med = float(np.median(ia))
            mean = float(ia.mean())
            rate = (n - 1) / ((ts[-1] - ts[0]) / _NS) if ts[-1] > ts[0] else np.nan
            std = float(ia.std(ddof=1)) * 1e3 if ia.size > 1 else np.nan
            mad = float(np.abs(ia - mean).mean()) * 1e3
            bursts = int((ia < burst_factor * med).sum())
        else:
            med = mean = rate = std = mad = np.nan
            bursts = 0
        sel = np.ones(len(gaps), bool)
        for c, v in zip(by, key):
            sel &= (gaps[c].astype(object) == v).to_numpy() if not pd.isna(v) else gaps[c].isna().to_numpy()
        gk = gaps[sel]
        rows.append((*key, n, rate, med, mean, std, mad, dominant_period_s(ts), bursts, len(gk),
                     float(gk["length_s"].max()) if len(gk) else 0.0))
    cols = by + ["probes", "rate_per_s", "ia_median_s", "ia_mean_s", "ia_std_ms", "ia_mad_ms",
                 "dominant_period_s", "bursts", "gaps", "longest_gap_s"]
    return pd.DataFrame(rows, columns=cols)
