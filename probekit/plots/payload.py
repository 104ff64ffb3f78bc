"""Payload plots: byte histogram against uniform, entropy per probe over time, payload byte raster."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ._style import axes, color, plt, seconds

__all__ = ["plot_byte_histogram", "plot_entropy", "plot_payload_raster"]


def plot_byte_histogram(payloads: pd.Series, ax=None, title: str = ""):
    """Counts of each byte value over all payloads, with the uniform expectation and its ±2σ band."""
    ax = axes(ax, (8, 3))
    data = b"".join(payloads.tolist())
    if not data:
        ax.text(0.5, 0.5, "no payload bytes", ha="center", transform=ax.transAxes)
        return ax
    counts = np.bincount(np.frombuffer(data, np.uint8), minlength=256)
    exp = len(data) / 256
    sd = np.sqrt(exp * (1 - 1 / 256))
    ax.bar(np.arange(256), counts, width=1.0, color="#1f77b4")
    ax.axhline(exp, color="k", lw=1, label="uniform")
    ax.axhspan(exp - 2 * sd, exp + 2 * sd, color="k", alpha=0.1, label="±2σ")
    ax.set(xlim=(-1, 256), xlabel="byte value", ylabel="count", title=title or f"Payload bytes ({len(data)} bytes)")
    ax.legend(fontsize=8)
    return ax


def plot_entropy(probes: pd.DataFrame, tests: pd.DataFrame, by: str = "source", ax=None):
    """Normalised entropy of each probe's payload over time (1 = the most its length allows)."""
    ax = axes(ax)
    if probes.empty:
        ax.text(0.5, 0.5, "no probes", ha="center", transform=ax.transAxes)
        return ax
    t0 = int(probes["ts_ns"].min())
    for i, (key, g) in enumerate(probes.groupby(by, observed=True)):
        ax.plot(seconds(g["ts_ns"], t0), tests.loc[g.index, "entropy_norm"], ".", ms=2, color=color(i), label=str(key))
    ax.set(ylim=(0, 1.05), xlabel="seconds from the first probe", ylabel="entropy / max for its length",
           title="Payload entropy per probe")
    ax.legend(fontsize=8)
    return ax


def plot_payload_raster(payloads: pd.Series, max_rows: int = 400, ax=None, title: str = ""):
    """Probes × byte position as an image: random payloads look like noise, fills and counters like
    stripes, timestamps like a slowly changing band at the start."""
    ax = axes(ax, (8, 4))
    rows = [p for p in payloads.tolist()[:max_rows] if p]
    if not rows:
        ax.text(0.5, 0.5, "no payload bytes", ha="center", transform=ax.transAxes)
        return ax
    width = max(len(r) for r in rows)
    img = np.full((len(rows), width), np.nan)
    for i, r in enumerate(rows):
        img[i, :len(r)] = np.frombuffer(r, np.uint8)
    im = ax.imshow(img, aspect="auto", interpolation="nearest", cmap="viridis", vmin=0, vmax=255)
    plt.colorbar(im, ax=ax, label="byte value")
    ax.set(xlabel="byte position", ylabel="probe", title=title or "Payload bytes (one row per probe)")
    return ax
