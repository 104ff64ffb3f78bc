"""Probe size over time with its change points."""
from __future__ import annotations

import pandas as pd

from ._style import axes, color, label, seconds

__all__ = ["plot_sizes"]


def plot_sizes(probes: pd.DataFrame, changes: pd.DataFrame | None = None, by=("protocol", "destination", "port"),
               configured_at_ns: int | None = None, ax=None):
    """Size of each probe over time per probe stream; change points (analysis.sizes.size_changes) marked,
    and the configuration change, when known, as a dashed line."""
    ax = axes(ax)
    if probes.empty:
        ax.text(0.5, 0.5, "no probes", ha="center", transform=ax.transAxes)
        return ax
    by = list(by)
    t0 = int(probes["ts_ns"].min())
    for i, (key, g) in enumerate(probes.groupby(by, observed=True, dropna=False)):
        ax.plot(seconds(g["ts_ns"], t0), g["size"].astype(float), ".", ms=2, color=color(i), label=label(key))
    if changes is not None:
        for _, r in changes.iterrows():
            x = (r["ts_ns"] - t0) / 1e9
            ax.axvline(x, color="k", lw=0.8)
            ax.annotate(f"{r['from_size']}→{r['to_size']}", (x, r["to_size"]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
    if configured_at_ns is not None:
        ax.axvline((configured_at_ns - t0) / 1e9, color="k", ls="--", lw=0.8, label="configuration changed")
    ax.set(xlabel="seconds from the first probe", ylabel="probe size (bytes)", title="Probe size on the wire")
    ax.legend(fontsize=8)
    return ax
