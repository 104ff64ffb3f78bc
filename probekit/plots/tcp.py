"""TCP plots: a ladder (sequence) diagram of one connection, the distribution of the prober's RST delay."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..schema import TCP_FLAGS
from ._style import axes

__all__ = ["plot_ladder", "plot_rst_delay"]


def _flag_text(f: int) -> str:
    return "/".join(n for n, b in TCP_FLAGS.items() if f & b) or "-"


def plot_ladder(packets: pd.DataFrame, orig: tuple[str, int], resp: tuple[str, int], ax=None):
    """Sequence diagram of the packets between two endpoints: arrows from the sender's line to the
    receiver's, labelled with flags and payload length, time going down."""
    ax = axes(ax, (6, 4))
    (oh, op), (rh, rp) = orig, resp
    src, dst = packets["src"].astype(str), packets["dst"].astype(str)
    m = (((src == oh) & (packets["sport"] == op) & (dst == rh) & (packets["dport"] == rp))
         | ((src == rh) & (packets["sport"] == rp) & (dst == oh) & (packets["dport"] == op))).fillna(False)
    seg = packets[m.to_numpy()]
    if seg.empty:
        ax.text(0.5, 0.5, "no packets between these endpoints", ha="center", transform=ax.transAxes)
        return ax
    t0 = int(seg["ts_ns"].iloc[0])
    ax.vlines([0, 1], 0, 1, colors="k", lw=1, transform=ax.get_xaxis_transform())
    ys = (seg["ts_ns"].to_numpy("int64") - t0) / 1e3
    for y, s, f, n in zip(ys, src[m.to_numpy()], seg["tcp_flags"].fillna(0).astype(int), seg["payload_len"].fillna(0)):
        x0, x1 = (0, 1) if s == oh else (1, 0)
        ax.annotate("", xy=(x1, y), xytext=(x0, y), arrowprops=dict(arrowstyle="->", color="#1f77b4"))
        ax.text(0.5, y, f"{_flag_text(int(f))} len={int(n)}  +{y:.0f} µs", ha="center", va="bottom", fontsize=8)
    ax.set_xticks([0, 1], [f"{oh}:{op}", f"{rh}:{rp}"])
    ax.set_ylim(max(ys.max() * 1.1, 1), -max(ys.max() * 0.05, 1))
    ax.set(ylabel="µs after the first packet", title="TCP ladder")
    return ax


def plot_rst_delay(conns: pd.DataFrame, ax=None):
    """Histogram of the time from SYN/ACK to the RST (µs), split by who reset."""
    ax = axes(ax, (6, 3))
    d = conns.dropna(subset=["reset_after_synack_us"])
    if d.empty:
        ax.text(0.5, 0.5, "no RST after a SYN/ACK", ha="center", transform=ax.transAxes)
        return ax
    bins = np.linspace(0, np.percentile(d["reset_after_synack_us"], 99) * 1.05 + 1, 50)
    for who, g in d.groupby("reset_by"):
        ax.hist(g["reset_after_synack_us"], bins=bins, alpha=0.7, label=f"reset by {who} (n={len(g)})")
    ax.set(xlabel="µs from SYN/ACK to RST", ylabel="connections", title="Reset delay after the SYN/ACK")
    ax.legend(fontsize=8)
    return ax
