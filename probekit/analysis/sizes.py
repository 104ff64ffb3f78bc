"""Packet-size changes on the wire: when, from what to what, and how long after the configuration.
The groups and their time order come from the table's shared values (analysis._groups); the runs of
equal sizes and the size in force are one compiled pass over each stream's probes."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .._jit import njit
from ..schema import STREAM_KEYS
from ._groups import floats_of, time_order_of

__all__ = ["size_changes"]


@njit(nogil=True)
def _changes(size, start, end, min_run):
    """The change points of each group's time-sorted sizes (rows ``start[g]:end[g]``) and the size in
    force before each: run by run of equal sizes (a NaN is a run of its own), a probe after the group's
    first qualifies when its run holds for ``min_run`` probes from it, or to the group's end; the size
    in force is the latest qualifying probe's (at first, the first probe's)."""
    at = np.empty(size.size, np.int64)
    was = np.empty(size.size, np.float64)
    n = 0
    for g in range(start.size):
        b, e = start[g], end[g]
        last = b
        rs = b
        while rs < e:
            x = size[rs]
            re = rs + 1
            if not np.isnan(x):
                while re < e and size[re] == x:
                    re += 1
            for i in range(max(rs, b + 1), re):
                if np.isnan(x) or re - i < min(min_run, e - i):
                    continue
                before = size[last]
                if x != before and not np.isnan(before):
                    at[n] = i
                    was[n] = before
                    n += 1
                last = i
            rs = re
    return at[:n], was[:n]


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
    change, before = _changes(size, t.start, t.end, min_run)
    out = g.keys(probes, by, g.first[gs[change]])
    out["ts_ns"] = ts[change]
    out["from_size"] = before.astype(np.int64)
    out["to_size"] = size[change].astype(np.int64)
    out["last_old_ns"] = ts[change - 1] if change.size else np.zeros(0, np.int64)
    out["delay_s"] = (ts[change] - configured_at_ns) / 1e9 if configured_at_ns is not None else \
        np.full(change.size, np.nan)
    return pd.DataFrame(out, copy=False)
