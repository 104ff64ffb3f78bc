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
    """CloudWatch metrics exported as CSV: columns timestamp, metric (PacketLoss or RTT), value, and the
    probe (``probe`` as 'protocol:destination[:port]', or columns protocol/destination/port).
    Timestamps are ISO 8601 or epoch seconds; RTT in µs (as Network Monitor publishes it)."""
    df = pd.read_csv(path)
    need = {"timestamp", "metric", "value"}
    missing = need - set(df.columns)
    if missing:
        from ..errors import ProbekitError
        raise ProbekitError(f"{path}: CloudWatch CSV lacks column(s) {', '.join(sorted(missing))}")
    ts = df["timestamp"]
    if pd.api.types.is_numeric_dtype(ts):
        df["period_start_ns"] = (ts.astype("float64") * 1e9).round().astype("int64")
    else:
        df["period_start_ns"] = pd.to_datetime(ts, utc=True).dt.as_unit("ns").astype("int64")
    if "probe" in df.columns:
        parts = df["probe"].astype(str).str.split(":", n=1, expand=True)
        df["protocol"] = parts[0]
        rest = parts[1].str.rsplit(":", n=1, expand=True)
        is_tcp = df["protocol"] == "tcp"
        df["destination"] = np.where(is_tcp, rest[0], parts[1])
        df["port"] = pd.array(np.where(is_tcp, rest[1] if rest.shape[1] > 1 else None, None), dtype="Int64")
    df["port"] = df["port"].astype("UInt16") if "port" in df else pd.array([pd.NA] * len(df), dtype="UInt16")
    return df[["period_start_ns", "protocol", "destination", "port", "metric", "value"]]


def audit_cloudwatch(probes: pd.DataFrame, cloudwatch: pd.DataFrame, period_s: int = 30,
                     loss_tolerance_pct: float = 0.5, rtt_tolerance_pct: float = 20.0) -> pd.DataFrame:
    """Line CloudWatch's PacketLoss/RTT up with the capture's periods (per probe, sources together)
    and flag every disagreement. ``finding`` names the kind; the worst is CloudWatch reporting 0 % loss
    (or an RTT) for a period in which the capture shows no reply or no probe at all."""
    ours = period_metrics(probes, period_s, by=PROBE_LEVEL)
    ours = ours.assign(protocol=ours["protocol"].astype(str), destination=ours["destination"].astype(str))
    cw = cloudwatch.copy()
    cw["metric"] = cw["metric"].str.lower().map({"packetloss": "cw_loss_pct", "rtt": "cw_rtt_us"})
    wide = cw.pivot_table(index=["period_start_ns", "protocol", "destination", "port"], columns="metric",
                          values="value", aggfunc="first", dropna=False).reset_index()
    for c in ("cw_loss_pct", "cw_rtt_us"):
        if c not in wide:
            wide[c] = np.nan
    wide["port"] = wide["port"].astype("UInt16")
    m = wide.merge(ours, on=["period_start_ns", "protocol", "destination", "port"], how="outer")
    m["status"] = m["status"].astype(object).fillna("no_probes")
    findings = []
    for r in m.itertuples(index=False):
        findings.append(_finding(r, loss_tolerance_pct, rtt_tolerance_pct))
    m["finding"] = findings
    m["agrees"] = m["finding"] == "agrees"
    keep = ["period_start_ns", "protocol", "destination", "port", "cw_loss_pct", "cw_rtt_us", "sent", "answered",
            "loss_pct", "rtt_median_us", "rtt_mean_us", "status", "finding", "agrees"]
    return m[keep].sort_values(["protocol", "destination", "port", "period_start_ns"]).reset_index(drop=True)


def _finding(r, loss_tol, rtt_tol) -> str:
    has_cw_loss = not pd.isna(r.cw_loss_pct)
    has_cw_rtt = not pd.isna(r.cw_rtt_us)
    if not has_cw_loss and not has_cw_rtt:
        return "agrees" if r.status == "no_probes" else "cloudwatch_missing"
    if r.status == "no_probes":
        if has_cw_loss and r.cw_loss_pct == 0:
            return "zero_loss_but_no_probes"
        return "cloudwatch_data_but_no_probes"
    if r.status == "no_reply":
        if has_cw_loss and r.cw_loss_pct < 100 - loss_tol:
            return "zero_loss_but_no_replies" if r.cw_loss_pct == 0 else "loss_understated"
        if has_cw_rtt:
            return "rtt_reported_without_replies"
        return "agrees"
    if has_cw_loss and abs(r.cw_loss_pct - r.loss_pct) > loss_tol:
        return "loss_differs"
    if has_cw_rtt and r.rtt_mean_us and abs(r.cw_rtt_us - r.rtt_mean_us) > rtt_tol / 100 * r.rtt_mean_us:
        return "rtt_differs"
    return "agrees"
