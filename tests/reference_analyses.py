"""The pandas/per-group-loop analyses that probekit.analysis.{metrics,timing,sources,sizes} replaced,
kept verbatim as the references their vectorised versions are tested against
(tests/test_kernels_analysis.py). Not used by probekit itself."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from probekit.schema import PERIOD_STATUS, PERIODS

STREAM = ("protocol", "source", "destination", "port")
PROBE_LEVEL = ("protocol", "destination", "port")
_NS = 1_000_000_000


def period_metrics(probes: pd.DataFrame, period_s: int = 30, by=STREAM, start_ns: int | None = None,
                   end_ns: int | None = None) -> pd.DataFrame:
    """One row per stream and period, every period of the span present (``no_probes`` where empty).

    The span runs from the period holding the first probe of any stream to the one holding the last
    (or ``start_ns``/``end_ns``), so a stream that stops shows ``no_probes`` rather than vanishing.
    Probes whose outcome is ``unknown`` (the capture ended too soon to judge them) are not counted.
    """
    if period_s <= 0:
        raise ValueError("period_s must be positive")
    by = list(by)
    p = probes[probes["outcome"] != "unknown"]
    cols = by + ["period_start_ns", "period_s", "sent", "answered", "late", "loss_pct", "rtt_mean_us",
                 "rtt_median_us", "rtt_p95_us", "rtt_min_us", "rtt_max_us", "status"]
    if p.empty:
        return _typed(pd.DataFrame({c: [] for c in cols}), probes, by)
    step = period_s * _NS
    lo = (int(p["ts_ns"].min()) if start_ns is None else start_ns) // step * step
    hi = (int(p["ts_ns"].max()) if end_ns is None else end_ns) // step * step
    starts = np.arange(lo, hi + step, step, dtype=np.int64)
    p = p.assign(period_start_ns=(p["ts_ns"].to_numpy() // step) * step,
                 ok=p["outcome"].isin(["answered", "refused"]).to_numpy(),
                 is_late=(p["outcome"] == "late").to_numpy())
    p = p[(p["period_start_ns"] >= lo) & (p["period_start_ns"] <= hi)]
    keys = p[by].drop_duplicates()
    grid = keys.merge(pd.DataFrame({"period_start_ns": starts}), how="cross")
    g = p.groupby(by + ["period_start_ns"], observed=True, dropna=False)
    agg = g.agg(sent=("ok", "size"), answered=("ok", "sum"), late=("is_late", "sum")).reset_index()
    rtt = p[p["ok"]].groupby(by + ["period_start_ns"], observed=True, dropna=False)["rtt_us"]
    stats = rtt.agg(rtt_mean_us="mean", rtt_median_us="median", rtt_min_us="min", rtt_max_us="max").reset_index()
    p95 = rtt.quantile(0.95).rename("rtt_p95_us").reset_index()
    out = grid.merge(agg, on=by + ["period_start_ns"], how="left").merge(stats, on=by + ["period_start_ns"], how="left")
    out = out.merge(p95, on=by + ["period_start_ns"], how="left")
    for c in ("sent", "answered", "late"):
        out[c] = out[c].fillna(0).astype("int64")
    out["period_s"] = np.int32(period_s)
    sent = out["sent"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        out["loss_pct"] = np.where(sent > 0, 100.0 * (sent - out["answered"]) / sent, np.nan)
    out["status"] = np.select([sent == 0, out["answered"] == 0, out["answered"] < sent],
                              ["no_probes", "no_reply", "loss"], "ok")
    out = out[cols].sort_values(by + ["period_start_ns"], kind="stable").reset_index(drop=True)
    return _typed(out, probes, by)


def _typed(out: pd.DataFrame, probes: pd.DataFrame, by) -> pd.DataFrame:
    for c in by:
        if c in ("protocol", "source", "destination"):
            out[c] = pd.Categorical(out[c], categories=probes[c].cat.categories)
        elif c == "port":
            out[c] = out[c].astype("UInt16")
    out["status"] = pd.Categorical(out["status"], categories=list(PERIOD_STATUS))
    types = {c.name: c.dtype for c in PERIODS}
    for c in out.columns:
        if c not in by and c != "status":
            out[c] = out[c].astype(types[c])
    return out




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


def source_shares(probes: pd.DataFrame, by=PROBE_LEVEL) -> pd.DataFrame:
    """Probes per source within each probe (``by``), and each source's share of them."""
    by = list(by)
    c = probes.groupby(by + ["source"], observed=True, dropna=False).size().rename("probes").reset_index()
    c["share"] = c["probes"] / c.groupby(by, observed=True, dropna=False)["probes"].transform("sum")
    return c


def balance_test(probes: pd.DataFrame, by=PROBE_LEVEL, alpha: float = 0.01) -> pd.DataFrame:
    """Chi-square goodness-of-fit of the per-source counts against an even split, per probe.
    ``balanced`` is p >= alpha; with one source the test does not apply (NaN)."""
    rows = []
    by = list(by)
    for key, g in source_shares(probes, by).groupby(by, observed=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        counts = g["probes"].to_numpy()
        if counts.size < 2:
            rows.append((*key, counts.size, int(counts.sum()), np.nan, np.nan, pd.NA))
            continue
        chi2, p = stats.chisquare(counts)
        rows.append((*key, counts.size, int(counts.sum()), float(chi2), float(p), bool(p >= alpha)))
    out = pd.DataFrame(rows, columns=by + ["sources", "probes", "chi2", "p_value", "balanced"])
    out["balanced"] = out["balanced"].astype("boolean")
    return out


def alternation(probes: pd.DataFrame, by=PROBE_LEVEL) -> pd.DataFrame:
    """How sources take turns within each probe: run lengths of consecutive probes from the same
    source; ``round_robin`` is True when every run has length 1 and the sources keep one cyclic order."""
    rows = []
    by = list(by)
    for key, g in probes.sort_values("ts_ns", kind="stable").groupby(by, observed=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        s = g["source"].cat.codes.to_numpy()
        if s.size == 0:
            continue
        change = np.flatnonzero(np.diff(s) != 0)
        bounds = np.concatenate([[0], change + 1, [s.size]])
        runs = np.diff(bounds)
        k = len(np.unique(s))
        cyclic = k > 1 and bool(np.all(runs == 1)) and (s.size <= k or bool(np.all(s[k:] == s[:-k])))
        rows.append((*key, k, runs.size, float(runs.mean()), int(runs.max()), float((runs == 1).mean()), cyclic))
    return pd.DataFrame(rows, columns=by + ["sources", "runs", "mean_run", "longest_run", "share_runs_of_1",
                                            "round_robin"])


def source_rate(probes: pd.DataFrame, period_s: int = 30, by=PROBE_LEVEL) -> pd.DataFrame:
    """Probes per source per period (periods aligned like CloudWatch's), zero-filled over the span."""
    by = list(by)
    step = period_s * 1_000_000_000
    p = probes.assign(period_start_ns=probes["ts_ns"] // step * step)
    c = p.groupby(by + ["source", "period_start_ns"], observed=True, dropna=False).size().rename("probes")
    out = c.unstack("period_start_ns", fill_value=0).stack().rename("probes").reset_index()
    out["rate_per_s"] = out["probes"] / period_s
    return out


def source_quality(probes: pd.DataFrame, by=PROBE_LEVEL) -> pd.DataFrame:
    """Per probe and source: sent, answered, loss % and RTT statistics (µs) over the whole capture."""
    by = list(by)
    p = probes[probes["outcome"] != "unknown"].assign(ok=lambda d: d["outcome"].isin(["answered", "refused"]))
    g = p.groupby(by + ["source"], observed=True, dropna=False)
    out = g.agg(sent=("ok", "size"), answered=("ok", "sum"), rtt_median_us=("rtt_us", "median"),
                rtt_mean_us=("rtt_us", "mean"), rtt_p95_us=("rtt_us", lambda r: r.quantile(0.95))).reset_index()
    out["loss_pct"] = np.where(out["sent"] > 0, 100.0 * (out["sent"] - out["answered"]) / out["sent"], np.nan)
    return out


def size_changes(probes: pd.DataFrame, by=PROBE_LEVEL, configured_at_ns: int | None = None,
                 min_run: int = 3) -> pd.DataFrame:
    """Change points of the probe size per probe (sources together).

    A change is where the size differs from the one before it and then holds for at least ``min_run``
    probes (so one odd packet is not a change). ``last_old_ns`` is the last probe at the old size;
    with ``configured_at_ns`` (when the configuration was changed), ``delay_s`` says how long the wire
    took to follow.
    """
    by = list(by)
    rows = []
    for key, g in probes.sort_values("ts_ns", kind="stable").groupby(by, observed=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        size = g["size"].to_numpy("float64", na_value=np.nan)
        ts = g["ts_ns"].to_numpy(np.int64)
        if size.size < 2:
            continue
        current = size[0]
        i = 1
        while i < size.size:
            if size[i] != current and not np.isnan(size[i]):
                run = size[i:i + min_run]
                if (run.size == min_run and np.all(run == size[i])) or (i + run.size == size.size and np.all(run == size[i])):
                    delay = (ts[i] - configured_at_ns) / 1e9 if configured_at_ns is not None else np.nan
                    rows.append((*key, int(ts[i]), int(current), int(size[i]), int(ts[i - 1]), delay))
                    current = size[i]
            i += 1
    return pd.DataFrame(rows, columns=by + ["ts_ns", "from_size", "to_size", "last_old_ns", "delay_s"])
