"""Packet-size changes on the wire: when, from what to what, and how long after the configuration.
Vectorised: one group-by and sort, run lengths of equal sizes, and the state (the size in force) as a
forward fill of the qualifying change points."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..schema import STREAM_KEYS
from ._groups import floats_of, time_order_of

__all__ = ["size_changes"]


def size_changes(probes: pd.DataFrame, by=STREAM_KEYS, configured_at_ns: int | None = None,
                 min_run: int = 3) -> pd.DataFrame:
    """Change points of the probe size per stream, sources together (schema.SIZE_CHANGES).

    A change is where the size differs from the one in force and then holds for ``min_run`` probes
    (or to the end of the stream, if fewer remain), so one odd packet is not a change. ``last_old_ns``
    is the probe before the change; with ``configured_at_ns`` (when the configuration was changed),
    ``delay_s`` says how long the wire took to follow.
    """
    by = list(by)
    g, t = time_order_of(probes, by)
    gs, ts = t.gs, t.ts
    size = floats_of(probes, "size")[t.order]
    m = size.size
    idx = np.arange(m)
    start, end = t.start, t.end
    # forward run of equal sizes: where the run holding i ends
    brk = np.ones(m, bool)
    if m > 1:
        brk[:-1] = (gs[1:] != gs[:-1]) | (size[1:] != size[:-1])   # NaN != NaN: NaNs never run
    run_end = np.empty(m, np.int64)
    if m:
        ends = np.flatnonzero(brk)
        run_end = ends[np.searchsorted(ends, idx)] + 1
    need = np.minimum(min_run, end[gs] - idx) if m else np.zeros(0, np.int64)
    qualifies = ~np.isnan(size) & (run_end - idx >= need) & (idx > start[gs] if m else np.zeros(0, bool))
    # the size in force before i: that of the latest qualifying point before it, else the first probe's
    mark = np.where(qualifies, idx, -1)
    if m:
        mark[start[g.size > 0]] = start[g.size > 0]
    last = np.maximum.accumulate(mark) if m else mark
    before = np.empty(m, np.float64)
    if m:
        before[1:] = size[last[:-1]]
        before[0] = np.nan
    change = np.flatnonzero(qualifies & (size != before) & ~np.isnan(before))
    out = g.keys(probes, by, g.first[gs[change]])
    out["ts_ns"] = ts[change]
    out["from_size"] = before[change].astype(np.int64)
    out["to_size"] = size[change].astype(np.int64)
    out["last_old_ns"] = ts[change - 1] if change.size else np.zeros(0, np.int64)
    out["delay_s"] = (ts[change] - configured_at_ns) / 1e9 if configured_at_ns is not None else \
        np.full(change.size, np.nan)
    return pd.DataFrame(out, copy=False)
