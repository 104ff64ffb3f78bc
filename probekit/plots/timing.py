"""Inter-arrival histogram and CDF per source; timeline of probes per source."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ._style import axes, color, label, plt, seconds

__all__ = ["plot_inter_arrival", "plot_timeline"]


def plot_inter_arrival(ia: pd.DataFrame, by: str = "source", bins: int = 60, fig=None):
    """Histogram and CDF of ``ia_s`` (from analysis.timing.inter_arrivals) per ``by`` value; returns the Figure."""
    if fig is None:
        fig, (h, c) = plt.subplots(1, 2, figsize=(10, 3.4), layout="constrained")
    else:
        h, c = fig.subplots(1, 2)
    data = ia.dropna(subset=["ia_s"])
    if data.empty:
        h.text(0.5, 0.5, "no inter-arrivals (fewer than two probes per group)", ha="center", transform=h.transAxes)
        return fig
    lo, hi = np.percentile(data["ia_s"], [0.5, 99.5])
    edges = np.linspace(lo, hi if hi > lo else lo + 1e-3, bins + 1)
    for i, (key, g) in enumerate(data.groupby(by, observed=True)):
        x = np.sort(g["ia_s"].to_numpy())
        h.hist(x, bins=edges, histtype="step", color=color(i), label=f"{key} (n={x.size})")
        c.plot(x, np.arange(1, x.size + 1) / x.size, color=color(i), drawstyle="steps-post", label=str(key))
    h.set(xlabel="inter-arrival (s)", ylabel="probes", title="Inter-arrival histogram")
    c.set(xlabel="inter-arrival (s)", ylabel="fraction ≤ x", title="Inter-arrival CDF", ylim=(0, 1.01))
    h.legend(fontsize=8)
    return fig


def plot_timeline(probes: pd.DataFrame, by=("protocol", "source"), ax=None, t0_ns: int | None = None):
    """One row of ticks per ``by`` group (protocol and source by default), one tick per probe, coloured
    by outcome: gaps where probing stopped show as empty stretches."""
    ax = axes(ax)
    if probes.empty:
        ax.text(0.5, 0.5, "no probes", ha="center", transform=ax.transAxes)
        return ax
    t0 = int(probes["ts_ns"].min()) if t0_ns is None else t0_ns
    outcome_color = {"answered": "#2ca02c", "refused": "#9467bd", "late": "#ff7f0e", "lost": "#d62728",
                     "unknown": "#7f7f7f"}
    by = [by] if isinstance(by, str) else list(by)
    groups = list(probes.groupby(by, observed=True))
    for row, (_key, g) in enumerate(groups):
        for outcome, gg in g.groupby("outcome", observed=True):
            ax.eventplot(seconds(gg["ts_ns"], t0), lineoffsets=row, linelengths=0.8, linewidths=0.6,
                         colors=outcome_color[str(outcome)])
    ax.set_yticks(range(len(groups)), [label(k) for k, _ in groups])
    ax.set(xlabel="seconds from the first probe", title="Probes per " + " and ".join(by) +
           " (green answered, red lost, orange late, purple refused)")
    return ax
