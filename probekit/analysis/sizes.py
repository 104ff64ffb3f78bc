"""Packet-size changes on the wire: when, from what to what, and how long after the configuration."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .metrics import PROBE_LEVEL

__all__ = ["size_changes"]


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
