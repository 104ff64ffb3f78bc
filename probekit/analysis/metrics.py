"""Per-period loss and RTT, the CloudWatch view done honestly (schema.PERIODS).

A period with no probes has no data (status ``no_probes``, NaN metrics, never 0 % loss); a period whose
probes all went unanswered is 100 % loss (``no_reply``) with NaN RTT, never 0 ms.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..schema import PERIOD_STATUS, PERIODS

__all__ = ["period_metrics", "STREAM", "PROBE_LEVEL", "audit_cloudwatch", "read_cloudwatch_csv"]

STREAM = ("protocol", "source", "destination", "port")
"""One stream per prober address: the per-ENI view."""
PROBE_LEVEL = ("protocol", "destination", "port")
"""One stream per Network Monitor probe (sources together): what CloudWatch publishes."""
_NS = 1_000_000_000


def period_metrics(probes: pd.DataFrame, period_s: int = 30, by=STREAM, start_ns: int | None = None,
                   end_ns: int | None = None) -> pd.DataFrame:
    """One row per stream and period, every period of the span present (``no_probes`` where empty).

    The span runs from the period holding the first probe of any stream to the one holding the last
    (or ``start_ns``/``end_ns``), so a stream that stops shows ``no_probes`` rather than vanishing.
    Probes whose outcome is ``unknown`` (the capture ended too soon to judge them) are not counted.
    """
    if period_s <= 0:
        raise ValueError("period_s must be positive")
    by = list(by)
    p = probes[probes["outcome"] != "unknown"]
    cols = by + ["period_start_ns", "period_s", "sent", "answered", "late", "loss_pct", "rtt_mean_us",
                 "rtt_median_us", "rtt_p95_us", "rtt_min_us", "rtt_max_us", "status"]
    if p.empty:
        return _typed(pd.DataFrame({c: [] for c in cols}), probes, by)
    step = period_s * _NS
    lo = (int(p["ts_ns"].min()) if start_ns is None else start_ns) // step * step
    hi = (int(p["ts_ns"].max()) if end_ns is None else end_ns) // step * step
    starts = np.arange(lo, hi + step, step, dtype=np.int64)
    p = p.assign(period_start_ns=(p["ts_ns"].to_numpy() // step) * step,
                 ok=p["outcome"].isin(["answered", "refused"]).to_numpy(),
                 is_late=(p["outcome"] == "late").to_numpy())
    p = p[(p["period_start_ns"] >= lo) & (p["period_start_ns"] <= hi)]
    keys = p[by].drop_duplicates()
    grid = keys.merge(pd.DataFrame({"period_start_ns": starts}), how="cross")
    g = p.groupby(by + ["period_start_ns"], observed=True, dropna=False)
    agg = g.agg(sent=("ok", "size"), answered=("ok", "sum"), late=("is_late", "sum")).reset_index()
    rtt = p[p["ok"]].groupby(by + ["period_start_ns"], observed=True, dropna=False)["rtt_us"]
    stats = rtt.agg(rtt_mean_us="mean", rtt_median_us="median", rtt_min_us="min", rtt_max_us="max").reset_index()
    p95 = rtt.quantile(0.95).rename("rtt_p95_us").reset_index()
    out = grid.merge(agg, on=by + ["period_start_ns"], how="left").merge(stats, on=by + ["period_start_ns"], how="left")
    out = out.merge(p95, on=by + ["period_start_ns"], how="left")
    for c in ("sent", "answered", "late"):
        out[c] = out[c].fillna(0).astype("int64")
    out["period_s"] = np.int32(period_s)
    sent = out["sent"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        out["loss_pct"] = np.where(sent > 0, 100.0 * (sent - out["answered"]) / sent, np.nan)
    out["status"] = np.select([sent == 0, out["answered"] == 0, out["answered"] < sent],
                              ["no_probes", "no_reply", "loss"], "ok")
    out = out[cols].sort_values(by + ["period_start_ns"], kind="stable").reset_index(drop=True)
    return _typed(out, probes, by)


def _typed(out: pd.DataFrame, probes: pd.DataFrame, by) -> pd.DataFrame:
    for c in by:
        if c in ("protocol", "source", "destination"):
            out[c] = pd.Categorical(out[c], categories=probes[c].cat.categories)
        elif c == "port":
            out[c] = out[c].astype("UInt16")
    out["status"] = pd.Categorical(out["status"], categories=list(PERIOD_STATUS))
    types = {c.name: c.dtype for c in PERIODS}
    for c in out.columns:
        if c not in by and c != "status":
            out[c] = out[c].astype(types[c])
    return out


# ------------------------------------------------------------------------------ CloudWatch audit
def read_cloudwatch_csv(path) -> pd.DataFrame:
    """Deprecated (0.2): use ``probekit.capture.cloudwatch.read_cloudwatch``, which reads every CloudWatch
    export format (this name reads them too)."""
    import warnings
    warnings.warn("read_cloudwatch_csv is deprecated: use probekit.read_cloudwatch", DeprecationWarning, stacklevel=2)
    from ..capture.cloudwatch import read_cloudwatch  # the one exception to "analysis opens no file", for one release
    return read_cloudwatch(path)


def audit_cloudwatch(probes: pd.DataFrame, cloudwatch: pd.DataFrame, period_s: int = 30,
                     loss_tolerance_pct: float = 0.5, rtt_tolerance_pct: float = 20.0) -> pd.DataFrame:
    """Deprecated (0.2): use ``probekit.analysis.cloudwatch.audit_cloudwatch`` (schema.AUDIT)."""
    import warnings
    warnings.warn("probekit.analysis.metrics.audit_cloudwatch is deprecated: use probekit.audit_cloudwatch "
                  "(probekit.analysis.cloudwatch)", DeprecationWarning, stacklevel=2)
    from .cloudwatch import audit_cloudwatch as audit
    return audit(probes, cloudwatch, period_s=period_s, loss_tolerance_pct=loss_tolerance_pct,
                 rtt_tolerance_pct=rtt_tolerance_pct)
