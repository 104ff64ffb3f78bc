"""Payload plots: byte histogram against uniform, entropy per probe over time, payload byte raster."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ._style import axes, color, plt, seconds

__all__ = ["plot_byte_histogram", "plot_entropy", "plot_payload_raster"]


def _all_bytes(payloads) -> np.ndarray:
    """Every payload's bytes back to back (uint8): a payload buffer's own data (no copy), or the bytes
    objects of a Series (or list) joined."""
    if hasattr(payloads, "offsets") and hasattr(payloads, "data"):   # a PayloadBuffer: rows are contiguous
        o = payloads.offsets
        return payloads.data[int(o[0]):int(o[-1])] if len(o) else payloads.data[:0]
    blobs = payloads.tolist() if hasattr(payloads, "tolist") else list(payloads)
    return np.frombuffer(b"".join(blobs), np.uint8)


def _first_rows(payloads, max_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """(bytes, offsets) of the first ``max_rows`` payloads (empty ones included), without making a bytes
    object per payload of a buffer."""
    if hasattr(payloads, "offsets") and hasattr(payloads, "data"):
        o = np.asarray(payloads.offsets[:max(max_rows, 0) + 1], np.int64)
        return payloads.data[int(o[0]):int(o[-1])] if len(o) else payloads.data[:0], o - (o[0] if len(o) else 0)
    blobs = (payloads.tolist() if hasattr(payloads, "tolist") else list(payloads))[:max(max_rows, 0)]
    o = np.zeros(len(blobs) + 1, np.int64)
    np.cumsum(np.fromiter(map(len, blobs), np.int64, len(blobs)), out=o[1:])
    return np.frombuffer(b"".join(blobs), np.uint8), o


def plot_byte_histogram(payloads, ax=None, title: str = ""):
    """Counts of each byte value over all payloads, with the uniform expectation and its ±2σ band.
    ``payloads``: the session's ``payload_buffer`` (one bincount over its bytes) or a Series of bytes."""
    ax = axes(ax, (8, 3))
    data = _all_bytes(payloads)
    if not data.size:
        ax.text(0.5, 0.5, "no payload bytes", ha="center", transform=ax.transAxes)
        return ax
    counts = np.bincount(data, minlength=256)
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


def plot_payload_raster(payloads, max_rows: int = 400, ax=None, title: str = ""):
    """Probes × byte position as an image: random payloads look like noise, fills and counters like
    stripes, timestamps like a slowly changing band at the start. ``payloads``: the session's
    ``payload_buffer`` or a Series of bytes; its first ``max_rows`` payloads are drawn (empty ones
    skipped)."""
    ax = axes(ax, (8, 4))
    data, o = _first_rows(payloads, max_rows)
    lengths = np.diff(o)
    kept = np.flatnonzero(lengths > 0)
    if not kept.size:
        ax.text(0.5, 0.5, "no payload bytes", ha="center", transform=ax.transAxes)
        return ax
    n = lengths[kept]
    img = np.full((kept.size, int(n.max())), np.nan)
    row = np.repeat(np.arange(kept.size), n)
    col = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    img[row, col] = data[(np.repeat(o[kept], n) + col)]
    im = ax.imshow(img, aspect="auto", interpolation="nearest", cmap="viridis", vmin=0, vmax=255)
    plt.colorbar(im, ax=ax, label="byte value")
    ax.set(xlabel="byte position", ylabel="probe", title=title or "Payload bytes (one row per probe)")
    return ax
