"""Shared look: one colour per source, time axes in seconds from the capture start."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg") if matplotlib.get_backend().lower() in ("", "agg") else None
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
NO_DATA = "#bdbdbd"
STATUS_COLORS = {"ok": "#2ca02c", "loss": "#ff7f0e", "no_reply": "#d62728", "no_probes": NO_DATA}


def axes(ax=None, figsize=(9, 3.2)):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def seconds(ts_ns, t0_ns) -> np.ndarray:
    return (np.asarray(ts_ns, dtype=np.int64) - int(t0_ns)) / 1e9


def label(key) -> str:
    if isinstance(key, tuple):
        return " ".join(str(k) for k in key if k is not None and str(k) not in ("<NA>", "nan"))
    return str(key)
