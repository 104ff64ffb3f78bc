"""Per-ENI distribution: shares, a chi-square balance test, the alternation pattern, per-source rate
over time, and per-source loss and RTT. Vectorised over the probes table: the group ids and time order
are the table's shared values (analysis._groups.groups_of, time_order_of: made once for all of these),
counts by bincount, RTT order statistics and the alternation's runs in one compiled pass each."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .._jit import njit
from ..protocol import ANSWERED, loss_pct
from ..schema import STREAM_KEYS
from ._groups import cell_stats, column_array, floats_of, groups_of, parent_of, time_order_of
from .metrics import outcome_codes

__all__ = ["source_shares", "balance_test", "alternation", "source_rate", "source_quality"]
_NS = 1_000_000_000


def _per_source(probes: pd.DataFrame, by):
    """Groups by ``by`` + source, and each one's parent group by ``by`` (from the same codes: one pass
    over the rows)."""
    inner = groups_of(probes, by + ["source"])
    outer, parent = parent_of(probes, by + ["source"], len(by))
    return inner, outer, parent


def source_shares(probes: pd.DataFrame, by=STREAM_KEYS) -> pd.DataFrame:
    """Probes per source within each stream (``by``), and each source's share of them
    (schema.SOURCE_SHARES)."""
    by = list(by)
    inner, outer, parent = _per_source(probes, by)
    total = np.bincount(parent, weights=inner.size, minlength=outer.n)
    out = inner.keys(probes, by + ["source"])
    out["probes"] = inner.size.astype(np.int64)
    out["share"] = inner.size / total[parent] if inner.n else np.zeros(0)
    return pd.DataFrame(out, copy=False)


def balance_test(probes: pd.DataFrame, by=STREAM_KEYS, alpha: float = 0.01) -> pd.DataFrame:
    """Chi-square goodness-of-fit of the per-source counts against an even split, per stream
    (schema.BALANCE). ``balanced`` is p >= alpha; with one source the test does not apply (<NA>)."""
    from scipy.stats import chi2 as _chi2
    by = list(by)
    inner, outer, parent = _per_source(probes, by)
    counts = inner.size.astype(np.float64)
    k = np.bincount(parent, minlength=outer.n)
    total = np.bincount(parent, weights=counts, minlength=outer.n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / k
        stat = np.bincount(parent, weights=(counts - mean[parent]) ** 2 / mean[parent], minlength=outer.n) \
            if inner.n else np.zeros(0)
    applies = k >= 2
    chi2 = np.where(applies, stat, np.nan)
    p = np.where(applies, _chi2.sf(np.where(applies, stat, 0), np.maximum(k - 1, 1)), np.nan)
    out = outer.keys(probes, by)
    out["sources"] = k.astype(np.int64)
    out["probes"] = total.astype(np.int64)
    out["chi2"] = chi2
    out["p_value"] = p
    out["balanced"] = pd.arrays.BooleanArray(p >= alpha, ~applies)
    return pd.DataFrame(out, copy=False)


def alternation(probes: pd.DataFrame, by=STREAM_KEYS) -> pd.DataFrame:
    """How sources take turns within each stream (schema.ALTERNATION): run lengths of consecutive
    probes from the same source; ``round_robin`` is True when every run has length 1 and the sources
    keep one cyclic order."""
    by = list(by)
    _, _, parent = _per_source(probes, by)
    g, t = time_order_of(probes, by)
    s = column_array(probes, "source").codes.astype(np.int64)[t.order]
    k = np.bincount(parent, minlength=g.n)   # distinct sources per group
    runs, longest, ones, broken = _runs(s, t.start, t.end, k)
    out = g.keys(probes, by)
    out["sources"] = k.astype(np.int64)
    out["runs"] = runs.astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["mean_run"] = g.size / runs
        out["longest_run"] = longest
        out["share_runs_of_1"] = ones / runs
    out["round_robin"] = (k > 1) & (longest == 1) & (broken == 0)
    return pd.DataFrame(out, copy=False)


@njit(nogil=True)
def _runs(s, start, end, k):
    """Per group (rows ``start[g]:end[g]`` of the time-sorted sources ``s``): runs of one source, the
    longest, how many have length 1, and how many probes break the cyclic order (a source other than
    the one ``k[g]`` probes before)."""
    n = start.size
    runs = np.zeros(n, np.int64)
    longest = np.zeros(n, np.int64)
    ones = np.zeros(n, np.int64)
    broken = np.zeros(n, np.int64)
    for g in range(n):
        b, e, kk = start[g], end[g], k[g]
        length = 0
        for i in range(b, e):
            if i == b or s[i] != s[i - 1]:
                if length:
                    runs[g] += 1
                    longest[g] = max(longest[g], length)
                    ones[g] += length == 1
                length = 0
            length += 1
            if i - b >= kk and s[i] != s[i - kk]:
                broken[g] += 1
        if length:
            runs[g] += 1
            longest[g] = max(longest[g], length)
            ones[g] += length == 1
    return runs, longest, ones, broken


def source_rate(probes: pd.DataFrame, period_s: int = 30, by=STREAM_KEYS) -> pd.DataFrame:
    """Probes per source per period (schema.SOURCE_RATE; periods aligned like CloudWatch's), every
    period from the first probe's to the last's present for every source, 0 where it sent none."""
    by = list(by)
    step = int(period_s * _NS)
    inner = groups_of(probes, by + ["source"])
    ts = np.asarray(column_array(probes, "ts_ns"), np.int64)
    pstart = ts // step * step
    lo, hi = (int(pstart.min()), int(pstart.max())) if ts.size else (0, -step)
    n_per = (hi - lo) // step + 1
    cell = inner.gid * n_per + (pstart - lo) // step
    counts = np.bincount(cell, minlength=inner.n * n_per)
    out = inner.keys(probes, by + ["source"], np.repeat(inner.first, n_per))
    out["period_start_ns"] = np.tile(np.arange(lo, hi + step, step, dtype=np.int64), inner.n)
    out["probes"] = counts.astype(np.int64)
    out["rate_per_s"] = counts / period_s
    return pd.DataFrame(out, copy=False)


def source_quality(probes: pd.DataFrame, by=STREAM_KEYS) -> pd.DataFrame:
    """Per stream and source (schema.SOURCE_QUALITY): sent, answered, RTT statistics (µs) and loss %
    over the whole capture; probes the capture could not judge (outcome unknown) are not counted."""
    by = list(by)
    judged = ~outcome_codes(probes, ["unknown"])
    rows = None if judged.all() else np.flatnonzero(judged)
    inner = groups_of(probes, by + ["source"])
    ok, rtt = outcome_codes(probes, ANSWERED), floats_of(probes, "rtt_us")
    if rows is not None:
        inner, ok, rtt = inner.subset(rows), ok[rows], rtt[rows]
    answered = np.bincount(inner.gid[ok], minlength=inner.n)
    st = cell_stats(inner.gid, rtt, inner.n, (0.5, 0.95))
    out = inner.keys(probes, by + ["source"], inner.first if rows is None else rows[inner.first])
    out["sent"] = inner.size.astype(np.int64)
    out["answered"] = answered.astype(np.int64)
    out["rtt_median_us"] = st[0.5]
    out["rtt_mean_us"] = st["mean"]
    out["rtt_p95_us"] = st[0.95]
    out["loss_pct"] = loss_pct(inner.size, answered) if inner.n else np.zeros(0)
    return pd.DataFrame(out, copy=False)
