"""Per-period loss and RTT, the CloudWatch view done honestly (schema.PERIODS).

A period with no probes has no data (status ``no_probes``, NaN metrics, never 0 % loss); a period whose
probes all went unanswered is 100 % loss (``no_reply``) with NaN RTT, never 0 ms (the rules:
probekit.protocol.period_status and loss_pct). Vectorised: the group ids, outcome masks and RTTs are
the table's shared values (analysis._groups: made once for both period tables and the per-source
analyses), counts by bincount, the RTT order statistics in one compiled pass (analysis._groups.cell_stats).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .._jit import njit
from ..protocol import ANSWERED, loss_pct, period_status
from ..schema import PERIOD_STATUS, SOURCE_STREAM_KEYS, STREAM_KEYS
from ._groups import cell_stats, column_array, floats_of, groups_of, table_cached

__all__ = ["period_metrics"]

_DEPRECATED = {"STREAM": ("SOURCE_STREAM_KEYS", SOURCE_STREAM_KEYS), "PROBE_LEVEL": ("STREAM_KEYS", STREAM_KEYS)}
_NS = 1_000_000_000
_STATUS = pd.CategoricalDtype(list(PERIOD_STATUS))


def __getattr__(name):
    """``STREAM`` and ``PROBE_LEVEL``: deprecated names of probekit.schema's SOURCE_STREAM_KEYS and
    STREAM_KEYS (removed in the release after 0.2)."""
    if name in _DEPRECATED:
        import warnings
        new, value = _DEPRECATED[name]
        warnings.warn(f"probekit.analysis.metrics.{name} is deprecated; use probekit.schema.{new}",
                      DeprecationWarning, stacklevel=2)
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def outcome_codes(probes: pd.DataFrame, names) -> np.ndarray:
    """Is each probe's outcome one of ``names``? (vectorised over the categorical's codes; made once per
    table and read-only)"""
    names = tuple(names)

    def make():
        arr = column_array(probes, "outcome")
        cats = list(arr.categories)
        want = np.zeros(len(cats) + 1, np.bool_)   # a look-up by code; the last entry for <NA> (code -1)
        want[[cats.index(n) for n in names if n in cats]] = True
        out = want[arr.codes]
        out.flags.writeable = False
        return out
    return table_cached(probes, ("outcome", names), ("outcome",), make)


def period_metrics(probes: pd.DataFrame, period_s: int = 30, by=SOURCE_STREAM_KEYS, start_ns: int | None = None,
                   end_ns: int | None = None) -> pd.DataFrame:
    """One row per stream and period (schema.PERIODS), every period of the span present (``no_probes``
    where empty).

    by: SOURCE_STREAM_KEYS (per source, the default) or STREAM_KEYS (sources together, as CloudWatch).
    The span runs from the period holding the first probe of any stream to the one holding the last
    (or ``start_ns``/``end_ns``), so a stream that stops shows ``no_probes`` rather than vanishing.
    Probes whose outcome is ``unknown`` (the capture ended too soon to judge them) are not counted.
    """
    if period_s <= 0:
        raise ValueError("period_s must be positive")
    by = list(by)
    unknown = outcome_codes(probes, ["unknown"])
    ts = np.asarray(column_array(probes, "ts_ns"), np.int64)
    step = int(period_s * _NS)
    seen, t_min, t_max = _judged_span(ts, unknown)
    if seen:
        lo = (t_min if start_ns is None else start_ns) // step * step
        hi = (t_max if end_ns is None else end_ns) // step * step
    else:
        lo, hi = 0, -step
    n_per = max((hi - lo) // step + 1, 0)
    g = groups_of(probes, by)
    n = ts.size
    cell_ok, rtt_ok = np.empty(n, np.int64), np.empty(n, np.float64)
    sent, answered, late, m = _period_counts(g.gid, ts, unknown, outcome_codes(probes, ANSWERED),
                                             outcome_codes(probes, ["late"]), floats_of(probes, "rtt_us"),
                                             lo, hi, step, n_per, g.n, cell_ok, rtt_ok)
    st = cell_stats(cell_ok[:m], rtt_ok[:m], g.n * n_per, (0.5, 0.95))
    # a group none of whose probes is judged within the span has no row (as if grouped after dropping them)
    present = sent.reshape(g.n, n_per).sum(axis=1) > 0 if n_per else np.zeros(g.n, bool)
    if not present.all():
        cells = np.repeat(present, n_per)
        sent, answered, late = sent[cells], answered[cells], late[cells]
        st = {k: v[cells] for k, v in st.items()}
    n_groups = int(present.sum())
    n_cells = n_groups * n_per
    first = g.first[present]   # any row of a group has its keys
    out = g.keys(probes, by, np.repeat(first, n_per))
    out["period_start_ns"] = np.tile(np.arange(lo, hi + step, step, dtype=np.int64), n_groups) if n_cells else \
        np.zeros(0, np.int64)
    out["period_s"] = np.full(n_cells, period_s, np.int32)
    out["sent"] = sent.astype(np.int64)
    out["answered"] = answered.astype(np.int64)
    out["late"] = late.astype(np.int64)
    out["loss_pct"] = loss_pct(sent, answered) if n_cells else np.zeros(0)
    out["rtt_mean_us"] = st["mean"]
    out["rtt_median_us"] = st[0.5]
    out["rtt_p95_us"] = st[0.95]
    out["rtt_min_us"] = st["min"]
    out["rtt_max_us"] = st["max"]
    out["status"] = pd.Categorical.from_codes(period_status(sent, answered, codes=True).reshape(-1).astype(np.int8),
                                              dtype=_STATUS, validate=False)
    return pd.DataFrame(out, copy=False)


@njit(nogil=True)
def _judged_span(ts, unknown):
    """Whether any probe is judged (its outcome known), and the first and last such probe's time."""
    seen, lo, hi = False, np.int64(0), np.int64(0)
    for i in range(ts.size):
        if not unknown[i]:
            t = ts[i]
            if not seen:
                seen, lo, hi = True, t, t
            else:
                lo = min(lo, t)
                hi = max(hi, t)
    return seen, lo, hi


@njit(nogil=True)
def _period_counts(gid, ts, unknown, ok, late, rtt, lo, hi, step, n_per, n_groups, cell_ok, rtt_ok):
    """Per cell (group × period from ``lo``): probes judged, answered and late; the cells and RTTs of the
    answered ones into ``cell_ok``/``rtt_ok`` (their count returned). Probes not judged or in periods
    outside ``lo..hi`` are not counted."""
    n_cells = n_groups * n_per
    sent = np.zeros(n_cells, np.int64)
    answered = np.zeros(n_cells, np.int64)
    n_late = np.zeros(n_cells, np.int64)
    m = 0
    for i in range(ts.size):
        if unknown[i]:
            continue
        p = ts[i] // step * step
        if p < lo or p > hi:
            continue
        c = gid[i] * n_per + (p - lo) // step
        sent[c] += 1
        if ok[i]:
            answered[c] += 1
            cell_ok[m] = c
            rtt_ok[m] = rtt[i]
            m += 1
        if late[i]:
            n_late[c] += 1
    return sent, answered, n_late, m
