"""Per-ENI distribution: shares, a chi-square balance test, the alternation pattern, per-source rate
over time, and per-source loss and RTT."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .metrics import PROBE_LEVEL

__all__ = ["source_shares", "balance_test", "alternation", "source_rate", "source_quality"]


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
