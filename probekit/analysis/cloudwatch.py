"""The CloudWatch audit: CloudWatch's PacketLoss/RTT per probe and period beside the capture's (schema.AUDIT).

Table → table: it takes the probes table (and optionally the packets table, for ICMP errors) and a
CloudWatch table (schema.CLOUDWATCH, see ``probekit.capture.cloudwatch.read_cloudwatch``).

Rules, stated once:
- Periods are aligned as CloudWatch aligns them: to multiples of the aggregation period since the epoch
  (a datapoint's timestamp is its period's start); off-grid timestamps are floored and reported.
- Only periods inside the capture's span are audited (outside it the capture saw nothing).
- PacketLoss agrees when ``|cw - capture| <= max(loss_tolerance_pct, 100 / sent)``: the stated tolerance,
  or one probe's share of the period (a probe at a period's edge may be counted on either side).
- RTT agrees when ``|cw - capture mean| <= max(rtt_tolerance_pct % of the capture's, rtt_tolerance_us)``;
  not compared for a capture taken at the target (there the RTT is the target's turnaround).
- "Zero" loss is loss within that tolerance of 0; a zero RTT is below ``zero_rtt_us``.
- The clock skew between the capture host and CloudWatch is estimated from the data (the shift of the
  capture's clock that best lines its per-period loss up with CloudWatch's) and reported in
  ``attrs["clock_skew"]``; it is applied only when asked (``clock_skew_s``), never silently.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..schema import AUDIT, AUDIT_FINDINGS, AUDIT_SUMMARY, PERIOD_STATUS, STREAM_KEYS, typed
from .metrics import period_metrics

__all__ = ["audit_cloudwatch", "estimate_clock_skew", "audit_summary", "TOLERANCES"]

_NS = 1_000_000_000
TOLERANCES = dict(loss_tolerance_pct=1.0, rtt_tolerance_pct=20.0, rtt_tolerance_us=1000.0, zero_rtt_us=1.0)
"""Defaults of the audit's tolerances (see the module docstring for how each is used)."""
_ICMP_ERRORS_V4 = (3, 4, 5, 11, 12)
_ICMP_ERRORS_V6 = (1, 2, 3, 4)
_TO_US = {"Microseconds": 1.0, "Milliseconds": 1e3, "Seconds": 1e6, None: 1.0}


def _key(protocol, destination, port) -> np.ndarray:
    """'protocol|destination|port' strings (port empty for ICMP), one per row."""
    port = pd.Series(port).astype(object).map(lambda v: "" if v is None or pd.isna(v) else str(int(v)))
    return (pd.Series(protocol).astype(object).map(str).to_numpy(object) + "|"
            + pd.Series(destination).astype(object).map(str).to_numpy(object) + "|" + port.to_numpy(object))


def _period_of(cloudwatch: pd.DataFrame, period_s: int | None) -> int:
    known = cloudwatch["period_s"].dropna().astype(int).unique() if len(cloudwatch) else []
    if period_s is None:
        return int(known[0]) if len(known) == 1 else 30 if not len(known) else int(min(known))
    if len(known) == 1 and int(known[0]) != period_s:
        from ..errors import ProbekitError
        raise ProbekitError(f"period {period_s} s, but CloudWatch's datapoints are {int(known[0])} s apart (the "
                            f"monitor's aggregationPeriod): audit at {int(known[0])} s")
    return int(period_s)


def _cw_wide(cloudwatch: pd.DataFrame, step_ns: int) -> tuple[pd.DataFrame, int]:
    """One row per probe and period: cw_loss_pct, cw_rtt_us (Average preferred), the series' StatusCode."""
    cw = cloudwatch[cloudwatch["metric"].isin(["PacketLoss", "RTT"])].copy()
    if cw.empty:
        return pd.DataFrame(columns=["key", "period_start_ns", "cw_loss_pct", "cw_rtt_us", "cw_status_code",
                                     "probe_id", "resolved", "protocol", "destination", "port"]), 0
    # one statistic per metric: Average where present
    has_avg = cw.groupby(["probe_id", "metric"], dropna=False, observed=True)["statistic"].transform(
        lambda s: (s == "Average").any())
    cw = cw[(cw["statistic"] == "Average") | ~has_avg]
    aligned = cw["period_start_ns"].to_numpy() // step_ns * step_ns
    off = int((aligned != cw["period_start_ns"].to_numpy()).sum())
    cw["period_start_ns"] = aligned
    rtt = cw["metric"] == "RTT"
    cw.loc[rtt, "value"] = cw.loc[rtt, "value"] * cw.loc[rtt, "unit"].map(lambda u: _TO_US.get(u, 1.0)).astype(float)
    cw["key"] = np.where(cw["protocol"].notna(), _key(cw["protocol"], cw["destination"], cw["port"]),
                         "id|" + cw["probe_id"].astype(object).map(str))
    ident = cw.drop_duplicates("key")[["key", "probe_id", "resolved", "protocol", "destination", "port"]]
    val = cw.pivot_table(index=["key", "period_start_ns"], columns="metric", values="value", aggfunc="first",
                         observed=True)
    val = val.rename(columns={"PacketLoss": "cw_loss_pct", "RTT": "cw_rtt_us"}).reset_index()
    for c in ("cw_loss_pct", "cw_rtt_us"):
        if c not in val:
            val[c] = np.nan
    code = cw.groupby(["key", "period_start_ns"])["status_code"].first().rename("cw_status_code").reset_index()
    wide = val.merge(code, on=["key", "period_start_ns"], how="left").merge(ident, on="key", how="left")
    wide.columns.name = None
    return wide, off


def _guess(cw: pd.DataFrame, probes: pd.DataFrame, notes: list) -> pd.DataFrame:
    """Unresolved probe ids: one probe id and one capture stream are taken to be the same (said so)."""
    un = cw["resolved"] == "unresolved"
    if not un.any():
        return cw
    ids = cw.loc[un, "probe_id"].dropna().unique()
    streams = probes[list(STREAM_KEYS)].drop_duplicates()
    if len(ids) <= 1 and len(streams) == 1 and not (cw["resolved"] == "monitor").any():
        s = streams.iloc[0]
        cw = cw.copy()
        cw.loc[un, "protocol"] = str(s["protocol"])
        cw.loc[un, "destination"] = str(s["destination"])
        cw.loc[un, "port"] = s["port"]
        cw.loc[un, "resolved"] = "guessed"
        notes.append(f"GUESSED: no monitor description; CloudWatch's probe {ids[0] if len(ids) else '(unnamed)'} is "
                     f"assumed to be the capture's only stream {s['protocol']} {s['destination']}"
                     + ("" if pd.isna(s["port"]) else f":{int(s['port'])}"))
    return cw


def _icmp_errors(packets: pd.DataFrame, sources, step_ns: int) -> pd.Series:
    t = packets["icmp_type"]
    v4 = (packets["ip_proto"] == 1) & t.isin(_ICMP_ERRORS_V4)
    v6 = (packets["ip_proto"] == 58) & t.isin(_ICMP_ERRORS_V6)
    err = packets[(v4 | v6).fillna(False).astype(bool) & packets["dst"].astype(str).isin(list(sources))]
    ts = err["ts_ns"].dropna().astype("int64").to_numpy()
    return pd.Series(ts // step_ns * step_ns).value_counts()


def audit_cloudwatch(probes: pd.DataFrame, cloudwatch: pd.DataFrame, period_s: int | None = None,
                     packets: pd.DataFrame | None = None, loss_tolerance_pct: float = TOLERANCES["loss_tolerance_pct"],
                     rtt_tolerance_pct: float = TOLERANCES["rtt_tolerance_pct"],
                     rtt_tolerance_us: float = TOLERANCES["rtt_tolerance_us"], zero_rtt_us: float = TOLERANCES["zero_rtt_us"],
                     clock_skew_s: float = 0.0, span_ns: tuple[int, int] | None = None) -> pd.DataFrame:
    """Each CloudWatch period beside the capture's, per probe (sources together), with its ``finding``
    (schema.AUDIT_FINDINGS). ``period_s`` defaults to the export's period; ``clock_skew_s`` shifts the
    capture's clock (CloudWatch time = capture time + skew) when you choose to correct it;
    ``span_ns`` bounds the audited periods (default: the packets' span, else the probes').

    ``attrs``: ``notes`` (the reader's and the audit's: what was guessed, dropped, off the grid),
    ``clock_skew`` (estimate_clock_skew's result), ``tolerances``, ``period_s``.
    """
    notes = list(cloudwatch.attrs.get("notes", []))
    period_s = _period_of(cloudwatch, period_s)
    step = period_s * _NS
    p = probes
    if clock_skew_s:
        p = probes.assign(ts_ns=probes["ts_ns"] + int(round(clock_skew_s * _NS)))
    cw = _guess(cloudwatch, p, notes)
    wide, off = _cw_wide(cw, step)
    if off:
        notes.append(f"{off} CloudWatch timestamp(s) were not on the {period_s} s grid and were floored to their "
                     "period's start")
    if span_ns is None:
        ts = packets["ts_ns"].dropna() if packets is not None and len(packets) else p["ts_ns"]
        span_ns = (int(ts.min()), int(ts.max())) if len(ts) else None
    elif clock_skew_s:
        span_ns = (span_ns[0] + int(clock_skew_s * _NS), span_ns[1] + int(clock_skew_s * _NS))
    if span_ns is not None:
        lo, hi = span_ns[0] // step * step, span_ns[1] // step * step
        outside = (wide["period_start_ns"] < lo) | (wide["period_start_ns"] > hi)
        if outside.any():
            notes.append(f"{int(outside.sum())} CloudWatch period(s) outside the capture's span were not audited")
            wide = wide[~outside]
    ours = period_metrics(p, period_s, by=STREAM_KEYS, start_ns=span_ns[0] if span_ns else None,
                          end_ns=span_ns[1] if span_ns else None)
    ours = ours.assign(protocol=ours["protocol"].astype(str), destination=ours["destination"].astype(str))
    ours["key"] = _key(ours["protocol"], ours["destination"], ours["port"])
    if not len(ours) and span_ns is not None:
        ours = ours.assign(key=pd.Series(dtype=object))
    # every resolved CloudWatch stream gets every period of the span (a silent stream is a finding)
    periods = np.unique(np.concatenate([ours["period_start_ns"].to_numpy(np.int64),
                                        wide["period_start_ns"].to_numpy(np.int64)]))
    keys = pd.DataFrame({"key": pd.unique(np.concatenate([ours["key"].to_numpy(object), wide["key"].to_numpy(object)]))})
    grid = keys.merge(pd.DataFrame({"period_start_ns": periods}), how="cross")
    m = grid.merge(wide, on=["key", "period_start_ns"], how="left", suffixes=("", "_cw"))
    m = m.merge(ours.drop(columns=["protocol", "destination", "port"]), on=["key", "period_start_ns"], how="left")
    ident = pd.concat([ours[["key", "protocol", "destination", "port"]].drop_duplicates("key"),
                       wide[["key", "protocol", "destination", "port", "probe_id", "resolved"]].drop_duplicates("key")])
    ident = ident.drop_duplicates("key", keep="last").set_index("key")
    pid = wide.drop_duplicates("key").set_index("key")
    for c in ("protocol", "destination", "port"):
        m[c] = m["key"].map(ident[c])
    m["probe_id"] = m["key"].map(pid["probe_id"]) if len(pid) else None
    m["resolved"] = m["key"].map(pid["resolved"]) if len(pid) else None
    m["protocol"] = m["protocol"].where(~m["key"].str.startswith("id|"), None)
    for c in ("sent", "answered"):
        m[c] = m[c].fillna(0).astype("int64")
    m["status"] = m["status"].astype(object).fillna("no_probes")
    m["probing_stopped"] = m["sent"].to_numpy() == 0
    if packets is not None:
        errs = _icmp_errors(packets, set(probes["source"].astype(str)), step)
        m["icmp_errors"] = pd.array(m["period_start_ns"].map(errs).fillna(0).astype("int64"), dtype="Int64")
    else:
        m["icmp_errors"] = pd.array([pd.NA] * len(m), dtype="Int64")
    vantage = probes.attrs.get("vantage")
    m = _findings(m, loss_tolerance_pct, rtt_tolerance_pct, rtt_tolerance_us, zero_rtt_us, compare_rtt=vantage != "target")
    if vantage == "target":
        notes.append("the capture was taken at the target: its RTT is the target's turnaround, so RTT is not compared")
    m["period_s"] = np.int32(period_s)
    out = m.sort_values(["protocol", "destination", "port", "probe_id", "period_start_ns"], na_position="last",
                        kind="stable").reset_index(drop=True)
    out = _typed(out)
    out.attrs["notes"] = notes
    out.attrs["tolerances"] = dict(loss_tolerance_pct=loss_tolerance_pct, rtt_tolerance_pct=rtt_tolerance_pct,
                                   rtt_tolerance_us=rtt_tolerance_us, zero_rtt_us=zero_rtt_us)
    out.attrs["period_s"] = period_s
    out.attrs["clock_skew"] = estimate_clock_skew(p, cw, period_s, loss_tolerance_pct=loss_tolerance_pct)
    out.attrs["clock_skew"]["applied_s"] = clock_skew_s
    return out


def _findings(m: pd.DataFrame, loss_tol, rtt_tol_pct, rtt_tol_us, zero_rtt_us, compare_rtt: bool) -> pd.DataFrame:
    cw_loss, cw_rtt = m["cw_loss_pct"].to_numpy(float), m["cw_rtt_us"].to_numpy(float)
    loss, rtt = m["loss_pct"].to_numpy(float), m["rtt_mean_us"].to_numpy(float)
    sent = m["sent"].to_numpy()
    has_loss, has_rtt, has_cw = ~np.isnan(cw_loss), ~np.isnan(cw_rtt), ~(np.isnan(cw_loss) & np.isnan(cw_rtt))
    with np.errstate(divide="ignore", invalid="ignore"):
        tol = np.maximum(loss_tol, np.where(sent > 0, 100.0 / sent, 0.0))
        rtt_allow = np.maximum(rtt_tol_pct / 100 * rtt, rtt_tol_us)
    status = m["status"].to_numpy(object)
    no_reply = status == "no_reply"
    probes = sent > 0
    resolved = m["resolved"].astype(object).to_numpy()
    conds = {
        "probe_not_in_monitor": resolved == "not_in_monitor",
        "unresolved_probe": resolved == "unresolved",
        "zero_loss_but_no_replies": no_reply & has_loss & (cw_loss <= tol),
        "zero_rtt_without_reply": no_reply & has_rtt & (cw_rtt < zero_rtt_us),
        "metric_without_probes": ~probes & has_cw,
        "probes_without_metric": probes & ~has_cw,
        "loss_differs": probes & has_loss & (np.abs(cw_loss - loss) > tol),
        "rtt_differs": probes & has_rtt & compare_rtt & ((no_reply & (cw_rtt >= zero_rtt_us))
                                                          | (~no_reply & (np.abs(cw_rtt - rtt) > rtt_allow))),
    }
    finding = np.select(list(conds.values()), list(conds), "agrees")
    m["finding"] = finding
    m["agrees"] = finding == "agrees"
    m["detail"] = [_detail(*a) for a in zip(finding, cw_loss, cw_rtt, loss, rtt, sent, m["answered"], tol, rtt_allow,
                                            m["probe_id"].astype(object), status)]
    return m


def _fmt(x, unit="", scale=1.0, digits=1) -> str:
    return "none" if np.isnan(x) else f"{x / scale:.{digits}f}{unit}"


def _detail(f, cw_loss, cw_rtt, loss, rtt, sent, answered, tol, rtt_allow, pid, status) -> str:
    cw = f"CloudWatch {_fmt(cw_loss, ' %')} loss, RTT {_fmt(cw_rtt, ' ms', 1e3, 2)}"
    cap = f"capture {answered}/{sent} answered" + (f", loss {_fmt(loss, ' %')}, RTT {_fmt(rtt, ' ms', 1e3, 2)}"
                                                   if sent else "")
    if f == "zero_loss_but_no_replies":
        return f"{cw} while none of the {sent} probes was answered (zero: within {tol:.1f} % of 0)"
    if f == "zero_rtt_without_reply":
        return f"{cw}: an RTT of 0 while none of the {sent} probes was answered"
    if f == "metric_without_probes":
        return f"{cw}, but the capture shows no probe of this stream in the period"
    if f == "probes_without_metric":
        return f"no CloudWatch datapoint; {cap}"
    if f == "loss_differs":
        return f"{cw}; {cap} (tolerance {tol:.1f} %-points)"
    if f == "rtt_differs":
        return f"{cw}; {cap} (tolerance {rtt_allow / 1e3:.2f} ms)" if status != "no_reply" else \
            f"{cw}: an RTT while none of the {sent} probes was answered"
    if f == "probe_not_in_monitor":
        return f"probe {pid} is not in the monitor description: cannot be lined up with a capture stream"
    if f == "unresolved_probe":
        return f"probe {pid} could not be resolved to destination/protocol/port (give the monitor description)"
    if np.isnan(cw_loss) and np.isnan(cw_rtt):
        return "no probes and no CloudWatch datapoint"
    return f"{cw}; {cap}"


def _typed(m: pd.DataFrame) -> pd.DataFrame:
    return typed(m, AUDIT, categories={"status": PERIOD_STATUS, "finding": AUDIT_FINDINGS})


# ----------------------------------------------------------------------------------- clock skew
def estimate_clock_skew(probes: pd.DataFrame, cloudwatch: pd.DataFrame, period_s: int, max_skew_s: int | None = None,
                        step_s: float = 1.0, loss_tolerance_pct: float = TOLERANCES["loss_tolerance_pct"]) -> dict:
    """The shift of the capture's clock (CloudWatch time = capture time + skew) that best lines the
    capture's per-period loss up with CloudWatch's PacketLoss, searched over ±``max_skew_s`` (default:
    one period less a step) in ``step_s`` steps. A period costs the loss difference beyond the audit's
    tolerance (max(``loss_tolerance_pct``, one probe's share)); a stream CloudWatch gets wrong at every
    shift (median difference over 10 %-points) is left out, as it says nothing about the clocks.

    Returns ``skew_s`` (the best shift nearest 0), ``low_s``/``high_s`` (every shift as good as the best),
    ``determinable`` (False when the data cannot tell: no loss changes, or every shift fits), ``periods``
    (CloudWatch periods compared) and ``note``.
    """
    max_skew_s = period_s - step_s if max_skew_s is None else max_skew_s  # type: ignore[assignment]
    cw = cloudwatch[(cloudwatch["metric"] == "PacketLoss") & cloudwatch["protocol"].notna()]
    if "statistic" in cw:
        cw = cw[cw["statistic"].isin(["Average"]) | ~cw["statistic"].isin(["Average"]).any()]
    judged = probes[probes["outcome"] != "unknown"]
    empty = dict(skew_s=0.0, low_s=float("nan"), high_s=float("nan"), determinable=False, periods=0)
    if cw.empty or judged.empty:
        return dict(empty, note="nothing to compare (no resolved PacketLoss datapoints or no judged probes)")
    step = period_s * _NS
    ck = _key(cw["protocol"], cw["destination"], cw["port"])
    pk = _key(judged["protocol"], judged["destination"], judged["port"])
    keys, code_p = np.unique(np.concatenate([ck, pk]), return_inverse=True)
    code_c, code_p = code_p[:len(ck)], code_p[len(ck):]
    ts = judged["ts_ns"].to_numpy(np.int64)
    ok = judged["outcome"].isin(["answered", "refused"]).to_numpy()
    cw_t = cw["period_start_ns"].to_numpy(np.int64) // step
    cw_v = cw["value"].to_numpy(float)
    base = int(min(ts.min(), cw_t.min() * step) // step) - 2
    span = int(max(ts.max(), cw_t.max() * step) // step) - base + 3
    shifts = np.arange(-max_skew_s, max_skew_s + step_s / 2, step_s)
    at = code_c * span + (cw_t - base)
    diff = np.empty((len(shifts), len(at)))
    for i, s in enumerate(shifts):
        idx = code_p * span + (ts + int(round(s * _NS))) // step - base
        sent = np.bincount(idx, minlength=len(keys) * span)[at]
        ans = np.bincount(idx, weights=ok, minlength=len(keys) * span)[at]
        with np.errstate(invalid="ignore", divide="ignore"):
            loss = np.where(sent > 0, 100.0 * (sent - ans) / np.maximum(sent, 1), np.nan)
        d = np.abs(loss - cw_v)
        d[d <= np.maximum(loss_tolerance_pct, 100.0 / np.maximum(sent, 1))] = 0.0  # within tolerance: a match
        diff[i] = np.where(np.isnan(loss), 100.0, d)
    # a stream CloudWatch gets wrong at every shift (the TCP 0 % case) says nothing about the clocks
    keep = np.zeros(len(at), dtype=bool)
    for k in np.unique(code_c):
        sel = code_c == k
        if np.median(diff[:, sel], axis=1).min() <= 10.0:
            keep |= sel
    if not keep.any():
        return dict(empty, note="not determinable: CloudWatch's PacketLoss matches the capture's for no stream at "
                                "any shift")
    costs = diff[:, keep].sum(axis=1)
    used = int(keep.sum())
    best = costs.min()
    good = shifts[costs <= best + 1e-6]
    skew = float(good[np.argmin(np.abs(good))])
    determinable = len(good) < len(shifts) and float(np.ptp(costs)) > 1e-6
    low, high = float(good.min()), float(good.max())
    if not determinable:
        note = (f"not determinable: every shift within ±{max_skew_s:g} s fits equally (no loss change to line up)")
    else:
        note = (f"CloudWatch time = capture time {skew:+g} s lines the periods up best (shifts from {low:+g} to "
                f"{high:+g} s fit as well; searched ±{max_skew_s:g} s in {step_s:g} s steps); not applied unless asked")
    return dict(skew_s=skew, low_s=low, high_s=high, determinable=bool(determinable), periods=used, note=note)


# ----------------------------------------------------------------------------------- summary
def audit_summary(audit: pd.DataFrame) -> pd.DataFrame:
    """One row per probe and finding other than agrees (schema.AUDIT_SUMMARY), worst finding first."""
    bad = audit[~audit["agrees"]]
    cols = [c.name for c in AUDIT_SUMMARY]
    if bad.empty:
        return _typed_summary(pd.DataFrame({c: [] for c in cols}))
    g = bad.assign(port=bad["port"].astype("Int64").astype(object).where(bad["port"].notna(), None)).groupby(
        ["protocol", "destination", "port", "probe_id", "finding"], dropna=False, observed=True)
    s = g.agg(periods=("period_start_ns", "size"), first_period_start_ns=("period_start_ns", "min"),
              last_period_start_ns=("period_start_ns", "max"), cw_loss_pct=("cw_loss_pct", "mean"),
              cw_rtt_us=("cw_rtt_us", "mean"), sent=("sent", "sum"), answered=("answered", "sum")).reset_index()
    s["rank"] = s["finding"].map({f: i for i, f in enumerate(AUDIT_FINDINGS)}).astype(int)
    s = s.sort_values(["rank", "first_period_start_ns"], kind="stable").drop(columns="rank")
    return _typed_summary(s[cols].reset_index(drop=True))


def _typed_summary(s: pd.DataFrame) -> pd.DataFrame:
    return typed(s, AUDIT_SUMMARY, categories={"finding": AUDIT_FINDINGS})
