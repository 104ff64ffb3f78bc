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
    judged = ~outcome_codes(probes, ["unknown"])
    ts = np.asarray(column_array(probes, "ts_ns"), np.int64)
    step = int(period_s * _NS)
    if judged.any():
        lo = (int(ts[judged].min()) if start_ns is None else start_ns) // step * step
        hi = (int(ts[judged].max()) if end_ns is None else end_ns) // step * step
    else:
        lo, hi = 0, -step
    pstart = ts // step * step
    keep = judged & (pstart >= lo) & (pstart <= hi)
    rows = None if keep.all() else np.flatnonzero(keep)
    g = groups_of(probes, by) if rows is None else groups_of(probes, by).subset(rows)
    n_per = max((hi - lo) // step + 1, 0)
    cell = g.gid * n_per + ((pstart if rows is None else pstart[rows]) - lo) // step
    n_cells = g.n * n_per
    ok, late_ = outcome_codes(probes, ANSWERED), outcome_codes(probes, ["late"])
    rtt = floats_of(probes, "rtt_us")
    if rows is not None:
        ok, late_, rtt = ok[rows], late_[rows], rtt[rows]
    sent = np.bincount(cell, minlength=n_cells)
    answered = np.bincount(cell[ok], minlength=n_cells)
    late = np.bincount(cell[late_], minlength=n_cells)
    st = cell_stats(cell[ok], rtt[ok], n_cells, (0.5, 0.95))
    first = g.first if rows is None else rows[g.first]
    out = g.keys(probes, by, np.repeat(first, n_per))
    out["period_start_ns"] = np.tile(np.arange(lo, hi + step, step, dtype=np.int64), g.n) if n_cells else \
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
