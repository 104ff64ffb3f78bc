"""CloudWatch's PacketLoss/RTT over the capture's, per probe, with the periods where they disagree marked."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ._style import NO_DATA, plt, seconds

__all__ = ["plot_cloudwatch_audit"]

_CAPTURE, _CW, _BAD = "#1f77b4", "#ff7f0e", "#d62728"


def plot_cloudwatch_audit(audit: pd.DataFrame, title: str = "", fig=None):
    """Two panels for one probe's audit rows (schema.AUDIT): loss % and RTT per period, the capture's as
    blue steps and CloudWatch's as orange markers; each disagreeing period is shaded red and named
    by its finding, a period without probes is grey. Returns the Figure."""
    if fig is None:
        fig, (a, b) = plt.subplots(2, 1, figsize=(9, 4.8), sharex=True, layout="constrained")
    else:
        a, b = fig.subplots(2, 1, sharex=True)
    if audit.empty:
        a.text(0.5, 0.5, "no periods to audit", ha="center", transform=a.transAxes)
        return fig
    audit = audit.sort_values("period_start_ns")
    t0 = int(audit["period_start_ns"].min())
    x = seconds(audit["period_start_ns"], t0)
    w = float(audit["period_s"].iloc[0])
    mid = x + w / 2
    a.step(np.append(x, x[-1] + w), np.append(audit["loss_pct"].to_numpy(float), np.nan), where="post", color=_CAPTURE,
           lw=2, label="capture")
    a.plot(mid, audit["cw_loss_pct"].to_numpy(float), "D", ms=5, color=_CW, label="CloudWatch PacketLoss")
    b.plot(mid, audit["rtt_mean_us"].to_numpy(float) / 1e3, "o-", ms=3, color=_CAPTURE, label="capture (mean)")
    b.plot(mid, audit["cw_rtt_us"].to_numpy(float) / 1e3, "D", ms=5, color=_CW, label="CloudWatch RTT")
    for xi, f, stopped in zip(x, audit["finding"].astype(str), audit["probing_stopped"]):
        if stopped:
            for ax in (a, b):
                ax.axvspan(xi, xi + w, color=NO_DATA, alpha=0.35, lw=0)
        if f != "agrees":
            for ax in (a, b):
                ax.axvspan(xi, xi + w, color=_BAD, alpha=0.15, lw=0)
            a.text(xi + w / 2, 50, f.replace("_", " "), ha="center", va="center", rotation=90, fontsize=6,
                   color=_BAD)
    r = audit.iloc[0]
    name = (f"{r['protocol']} {r['destination']}" + ("" if pd.isna(r["port"]) else f":{int(r['port'])}")
            if r["protocol"] else f"probe {r['probe_id']}")
    n_bad = int((~audit["agrees"]).sum())
    a.set(ylabel="loss %", ylim=(-3, 105),
          title=title or f"{name}: CloudWatch vs capture ({n_bad} of {len(audit)} periods disagree, red)")
    a.legend(fontsize=8, loc="center left")
    b.set(ylabel="RTT (ms)", xlabel=f"seconds from {pd.Timestamp(t0, unit='ns', tz='UTC'):%Y-%m-%d %H:%M:%S} UTC")
    b.legend(fontsize=8, loc="center left")
    return fig
