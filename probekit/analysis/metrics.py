"""Per-period loss and RTT, the CloudWatch view done honestly (schema.PERIODS).

A period with no probes has no data (status ``no_probes``, NaN metrics, never 0 % loss); a period whose
probes all went unanswered is 100 % loss (``no_reply``) with NaN RTT, never 0 ms (the rules:
probekit.protocol.period_status and loss_pct). Vectorised: one group-by, counts by bincount, the RTT
order statistics in one compiled pass (analysis._groups.cell_stats).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..protocol import ANSWERED, loss_pct, period_status
from ..schema import PERIOD_STATUS, SOURCE_STREAM_KEYS, STREAM_KEYS
from ._groups import cell_stats, group_by

__all__ = ["period_metrics", "audit_cloudwatch", "read_cloudwatch_csv"]

_DEPRECATED = {"STREAM": ("SOURCE_STREAM_KEYS", SOURCE_STREAM_KEYS), "PROBE_LEVEL": ("STREAM_KEYS", STREAM_KEYS)}
_NS = 1_000_000_000


def __getattr__(name):
    """``STREAM`` and ``PROBE_LEVEL``: deprecated names of probekit.schema's SOURCE_STREAM_KEYS and
    STREAM_KEYS (removed in the release after 0.2)."""
    if name in _DEPRECATED:
        import warnings
        new, value = _DEPRECATED[name]
        warnings.warn(f"probekit.analysis.metrics.{name} is deprecated; use probekit.schema.{new}",
                      DeprecationWarning, stacklevel=2)
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def outcome_codes(probes: pd.DataFrame, names) -> np.ndarray:
    """Is each probe's outcome one of ``names``? (vectorised over the categorical's codes)"""
    cats = list(probes["outcome"].cat.categories)
    want = [cats.index(n) for n in names if n in cats]
    return np.isin(probes["outcome"].cat.codes.to_numpy(), want)


def period_metrics(probes: pd.DataFrame, period_s: int = 30, by=SOURCE_STREAM_KEYS, start_ns: int | None = None,
                   end_ns: int | None = None) -> pd.DataFrame:
    """One row per stream and period (schema.PERIODS), every period of the span present (``no_probes``
    where empty).

    by: SOURCE_STREAM_KEYS (per source, the default) or STREAM_KEYS (sources together, as CloudWatch).
    The span runs from the period holding the first probe of any stream to the one holding the last
    (or ``start_ns``/``end_ns``), so a stream that stops shows ``no_probes`` rather than vanishing.
    Probes whose outcome is ``unknown`` (the capture ended too soon to judge them) are not counted.
    """
    if period_s <= 0:
        raise ValueError("period_s must be positive")
    by = list(by)
    judged = ~outcome_codes(probes, ["unknown"])
    ts = probes["ts_ns"].to_numpy(np.int64)
    step = int(period_s * _NS)
    if judged.any():
        lo = (int(ts[judged].min()) if start_ns is None else start_ns) // step * step
        hi = (int(ts[judged].max()) if end_ns is None else end_ns) // step * step
    else:
        lo, hi = 0, -step
    pstart = ts // step * step
    rows = np.flatnonzero(judged & (pstart >= lo) & (pstart <= hi))
    sub = probes.iloc[rows] if rows.size < len(probes) else probes
    g = group_by(sub[by], by)
    n_per = max((hi - lo) // step + 1, 0)
    cell = g.gid * n_per + (pstart[rows] - lo) // step
    n_cells = g.n * n_per
    ok = outcome_codes(sub, ANSWERED)
    sent = np.bincount(cell, minlength=n_cells)
    answered = np.bincount(cell[ok], minlength=n_cells)
    late = np.bincount(cell[outcome_codes(sub, ["late"])], minlength=n_cells)
    st = cell_stats(cell[ok], sub["rtt_us"].to_numpy("float64", na_value=np.nan)[ok], n_cells, (0.5, 0.95))
    out = sub[by].iloc[np.repeat(g.first, n_per)].reset_index(drop=True)
    out["period_start_ns"] = np.tile(np.arange(lo, hi + step, step, dtype=np.int64), g.n) if n_cells else \
        np.zeros(0, np.int64)
    out["period_s"] = np.full(n_cells, period_s, np.int32)
    out["sent"] = sent.astype(np.int64)
    out["answered"] = answered.astype(np.int64)
    out["late"] = late.astype(np.int64)
    out["loss_pct"] = loss_pct(sent, answered) if n_cells else np.zeros(0)
    out["rtt_mean_us"] = st["mean"]
    out["rtt_median_us"] = st[0.5]
    out["rtt_p95_us"] = st[0.95]
    out["rtt_min_us"] = st["min"]
    out["rtt_max_us"] = st["max"]
    out["status"] = pd.Categorical.from_codes(period_status(sent, answered, codes=True).reshape(-1).astype(np.int8),
                                              categories=list(PERIOD_STATUS))
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
    ours = period_metrics(probes, period_s, by=STREAM_KEYS)
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
