"""Probe outcome by size over time: which sizes the path carries, and when that changed."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ._style import NO_DATA, axes, seconds

__all__ = ["OUTCOME_STYLE", "plot_mtu"]

OUTCOME_STYLE = {  # outcome -> (colour, marker, legend text)
    "answered": ("#2ca02c", "o", "answered"),
    "refused": ("#98df8a", "o", "refused (RST)"),
    "late": ("#ff7f0e", "v", "late"),
    "lost": ("#000000", "x", "lost, no error (black hole?)"),
    "frag_needed": ("#d62728", "s", "fragmentation needed"),
    "packet_too_big": ("#d62728", "s", "packet too big"),
    "unreachable": ("#9467bd", "D", "unreachable"),
    "ttl_exceeded": ("#8c564b", "^", "TTL exceeded"),
    "param_problem": ("#e377c2", "^", "parameter problem"),
    "unknown": (NO_DATA, ".", "unknown (capture ended)"),
}


def plot_mtu(probes: pd.DataFrame, mtu: pd.DataFrame | None = None, ax=None):
    """Each probe at (time, size), marked by its outcome; the MTU table's path MTU, when known, as a
    dashed line at the largest probe size it carries (MTU - IP header)."""
    ax = axes(ax)
    if probes.empty or probes["size"].isna().all():
        ax.text(0.5, 0.5, "no probes with a size", ha="center", transform=ax.transAxes)
        return ax
    t0 = int(probes["ts_ns"].min())
    outcome = probes["outcome"].astype(str).to_numpy()
    x = seconds(probes["ts_ns"], t0)
    y = probes["size"].to_numpy("float64", na_value=np.nan)
    for name, (col, mk, text) in OUTCOME_STYLE.items():
        m = outcome == name
        if m.any():
            ax.scatter(x[m], y[m], s=10, c=col, marker=mk, label=f"{text} ({int(m.sum())})", linewidths=0.8)
    if mtu is not None and len(mtu):
        for r in mtu.itertuples(index=False):
            if pd.isna(r.mtu):
                continue
            hdr = 40 if ":" in str(r.destination) else 20
            ax.axhline(int(r.mtu) - hdr, color="#d62728", ls="--", lw=0.8)
            ax.annotate(f"MTU {int(r.mtu)} ({r.path}) {r.protocol}", (x.min(), int(r.mtu) - hdr), fontsize=7,
                        xytext=(2, 2), textcoords="offset points", color="#d62728")
    ax.set(xlabel="seconds from the first probe", ylabel="probe size (bytes)", title="Outcome by probe size")
    ax.legend(fontsize=7, loc="best")
    return ax
