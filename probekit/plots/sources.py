"""Per-source share bars."""
from __future__ import annotations

import pandas as pd

from ._style import axes, color, label

__all__ = ["plot_shares"]


def plot_shares(shares: pd.DataFrame, by=("protocol", "destination", "port"), ax=None):
    """Stacked share bars per probe (from analysis.sources.source_shares), a dashed line at an even split."""
    ax = axes(ax, (7, 2.8))
    if shares.empty:
        ax.text(0.5, 0.5, "no probes", ha="center", transform=ax.transAxes)
        return ax
    by = list(by)
    srcs = list(shares["source"].astype(str).unique())
    for row, (_key, g) in enumerate(shares.groupby(by, observed=True, dropna=False)):
        left = 0.0
        for _, r in g.iterrows():
            i = srcs.index(str(r["source"]))
            ax.barh(row, r["share"], left=left, color=color(i), edgecolor="white",
                    label=str(r["source"]) if row == 0 else None)
            ax.text(left + r["share"] / 2, row, f"{r['share']:.1%}\n({r['probes']})", ha="center", va="center",
                    fontsize=7, color="white")
            left += r["share"]
        n = len(g)
        for k in range(1, n):
            ax.vlines(k / n, row - 0.45, row + 0.45, colors="k", linestyles="dashed", lw=0.8)
    keys = [label(k) for k, _ in shares.groupby(by, observed=True, dropna=False)]
    ax.set_yticks(range(len(keys)), keys)
    ax.set(xlim=(0, 1), xlabel="share of probes", title="Probes per source (dashed: even split)")
    ax.legend(fontsize=8, loc="upper right", bbox_to_anchor=(1, 1.35), ncol=4)
    return ax
