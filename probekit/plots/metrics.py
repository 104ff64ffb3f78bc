"""Per-period loss and RTT (no-data periods drawn apart from 0 %), and a SmokePing-style latency plot."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ._style import NO_DATA, STATUS_COLORS, axes, plt, seconds

__all__ = ["plot_loss_rtt", "plot_smokeping"]


def plot_loss_rtt(periods: pd.DataFrame, title: str = "", fig=None):
    """Loss % bars and median RTT per period for one stream's periods table; ``no_probes`` periods are
    hatched grey bands labelled 'no data', ``no_reply`` periods red bars at 100 % with no RTT point."""
    if fig is None:
        fig, (a, b) = plt.subplots(2, 1, figsize=(9, 4.6), sharex=True, layout="constrained")
    else:
        a, b = fig.subplots(2, 1, sharex=True)
    if periods.empty:
        a.text(0.5, 0.5, "no periods", ha="center", transform=a.transAxes)
        return fig
    t0 = int(periods["period_start_ns"].min())
    x = seconds(periods["period_start_ns"], t0)
    w = float(periods["period_s"].iloc[0])
    status = periods["status"].astype(str).to_numpy()
    loss = periods["loss_pct"].to_numpy()
    colors = [STATUS_COLORS[s] for s in status]
    a.bar(x, np.nan_to_num(loss), width=w, align="edge", color=colors, edgecolor="white")
    for xi, s in zip(x, status):
        if s == "no_probes":
            for ax in (a, b):
                ax.axvspan(xi, xi + w, color=NO_DATA, alpha=0.35, hatch="//", lw=0)
            a.text(xi + w / 2, 50, "no data", ha="center", va="center", rotation=90, fontsize=7, color="#555")
    a.set(ylabel="loss %", ylim=(0, 105), title=title or "Packet loss per period (grey: no probes = no data)")
    rtt = periods["rtt_median_us"].to_numpy() / 1e3
    b.plot(x + w / 2, rtt, "o-", ms=3, color="#1f77b4", label="median")
    b.fill_between(x + w / 2, periods["rtt_min_us"] / 1e3, periods["rtt_p95_us"] / 1e3, color="#1f77b4",
                   alpha=0.15, label="min–p95")
    b.set(ylabel="RTT (ms)", xlabel=f"seconds from {pd.Timestamp(t0, unit='ns', tz='UTC'):%Y-%m-%d %H:%M:%S} UTC")
    b.legend(fontsize=8, loc="upper right")
    return fig


def plot_smokeping(probes: pd.DataFrame, period_s: int = 30, ax=None, title: str = ""):
    """SmokePing's view for one stream: per period, the RTT distribution as grey 'smoke' (deciles) and
    the median as a line whose colour gives the loss; periods without probes are left empty."""
    ax = axes(ax, (9, 3.4))
    p = probes[probes["outcome"] != "unknown"]
    if p.empty:
        ax.text(0.5, 0.5, "no probes", ha="center", transform=ax.transAxes)
        return ax
    step = period_s * 1_000_000_000
    t0 = int(p["ts_ns"].min()) // step * step
    p = p.assign(period=(p["ts_ns"] - t0) // step)
    cmap = plt.get_cmap("RdYlGn_r")
    for k, g in p.groupby("period"):
        rtt = g["rtt_us"].dropna().to_numpy() / 1e3
        x0 = k * period_s
        lost = 100.0 * (1 - g["outcome"].isin(["answered", "refused"]).mean())
        if rtt.size:
            qs = np.percentile(rtt, np.arange(10, 100, 10))
            for lo, hi in zip(qs[:4], qs[::-1][:4]):
                ax.fill_between([x0, x0 + period_s], lo, hi, color="#555", alpha=0.12, lw=0)
            ax.hlines(np.median(rtt), x0, x0 + period_s, color=cmap(min(lost, 20) / 20), lw=2.5)
        else:
            ax.axvspan(x0, x0 + period_s, color="#d62728", alpha=0.15, lw=0)
            ax.text(x0 + period_s / 2, 0.5, "100 % loss", transform=ax.get_xaxis_transform(), ha="center",
                    rotation=90, fontsize=7, color="#d62728")
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, 20))
    plt.colorbar(sm, ax=ax, label="loss % (≥20 red)")
    ax.set(xlabel="seconds from the first period", ylabel="RTT (ms)",
           title=title or "Latency (SmokePing style: median coloured by loss, smoke = deciles)")
    return ax
