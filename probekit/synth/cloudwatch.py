"""Synthetic CloudWatch exports of a synthetic capture, in AWS's own formats (for the shipped examples and tests).

From a capture's truth (one row per probe) this writes what an analyst would download for the same
monitor: ``aws networkmonitor get-monitor`` output, ``aws cloudwatch get-metric-data`` output (two pages
back to back, the first ``PartialData`` with a ``NextToken``, as the CLI prints them with
``--no-paginate`` and a second call) and the console's "Download as .csv" of the graph. The numbers are
the truth's per-period loss and mean RTT, except for the behaviour the investigation observed: **a TCP
probe's period with no reply at all (or with no probe at all) is published as 0 % PacketLoss and 0 µs
RTT**. That is a model of the observed defect for testing the audit, not of CloudWatch's arithmetic.
Identifiers (account 111122223333, subnet and VPC ids) are documentation placeholders.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["probe_id", "cloudwatch_periods", "get_monitor_output", "get_metric_data_output", "console_csv",
           "write_cloudwatch_exports", "EXPORT_SUFFIXES"]

EXPORT_SUFFIXES = {"monitor": ".monitor.json", "metric_data": ".cloudwatch.json", "console": ".cloudwatch-console.csv"}
"""Names of the exports beside a capture (``target-down.pcap.cloudwatch.json`` ...); sessions find them there."""
_ACCOUNT, _REGION = "111122223333", "us-east-1"
_NS = 1_000_000_000


def probe_id(monitor: str, protocol: str, destination: str, port) -> str:
    """A stable Network-Monitor-like probe id ('probe-' and 26 lower-case base-36 characters)."""
    h = int.from_bytes(hashlib.sha256(f"{monitor}|{protocol}|{destination}|{port}".encode()).digest()[:17], "big")
    chars = "0123456789abcdefghijklmnopqrstuvwxyz"
    s = ""
    for _ in range(26):
        h, r = divmod(h, 36)
        s += chars[r]
    return "probe-" + s


def _iso(ns: int) -> str:
    return pd.Timestamp(int(ns), unit="ns", tz="UTC").strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _probes_of(truth: pd.DataFrame, monitor: str) -> pd.DataFrame:
    keys = truth[["protocol", "destination", "port", "size_configured"]].drop_duplicates(["protocol", "destination",
                                                                                          "port"])
    keys = keys.assign(probe_id=[probe_id(monitor, r.protocol, r.destination, "" if pd.isna(r.port) else int(r.port))
                                 for r in keys.itertuples()])
    return keys.reset_index(drop=True)


def cloudwatch_periods(truth: pd.DataFrame, monitor: str, period_s: int = 30) -> pd.DataFrame:
    """What CloudWatch published per probe and period (probe_id, period_start_ns, loss_pct, rtt_us) over the
    truth's span, with the observed TCP behaviour (0 % and 0 µs for a period with no reply or no probe)."""
    step = period_s * _NS
    probes = _probes_of(truth, monitor)
    t = truth.drop(columns=["probe_id"], errors="ignore").merge(
        probes[["protocol", "destination", "port", "probe_id"]], on=["protocol", "destination", "port"],
                    how="left")
    t["period_start_ns"] = t["send_ns"] // step * step
    lo, hi = int(t["period_start_ns"].min()), int(t["period_start_ns"].max())
    grid = probes[["probe_id", "protocol"]].merge(pd.DataFrame({"period_start_ns": np.arange(lo, hi + step, step)}),
                                                  how="cross")
    agg = t.groupby(["probe_id", "period_start_ns"]).agg(sent=("answered", "size"), answered=("answered", "sum"))
    rtt = t[t["answered"]].groupby(["probe_id", "period_start_ns"])["rtt_us"].mean().rename("rtt_us")
    out = grid.merge(agg.reset_index(), how="left").merge(rtt.reset_index(), how="left")
    sent = out["sent"].fillna(0).to_numpy()
    out["loss_pct"] = np.where(sent > 0, 100.0 * (sent - out["answered"].fillna(0)) / np.maximum(sent, 1), np.nan)
    lie = (out["protocol"] == "tcp").to_numpy() & (out["answered"].fillna(0).to_numpy() == 0)
    out.loc[lie, "loss_pct"] = 0.0
    out.loc[lie, "rtt_us"] = 0.0
    out["loss_pct"] = out["loss_pct"].round(3)
    out["rtt_us"] = out["rtt_us"].round(1)
    return out[["probe_id", "period_start_ns", "loss_pct", "rtt_us"]]


def get_monitor_output(truth: pd.DataFrame, monitor: str, period_s: int = 30) -> dict:
    """``aws networkmonitor get-monitor --monitor-name MONITOR`` output (GetMonitorOutput's shape)."""
    created = _iso(int(truth["send_ns"].min()) - 3600 * _NS)
    probes = []
    for r in _probes_of(truth, monitor).itertuples():
        p = {"probeId": r.probe_id,
             "probeArn": f"arn:aws:networkmonitor:{_REGION}:{_ACCOUNT}:probe/{r.probe_id}",
             "sourceArn": f"arn:aws:ec2:{_REGION}:{_ACCOUNT}:subnet/subnet-0123456789abcdef0",
             "destination": r.destination}
        if r.protocol == "tcp":
            p["destinationPort"] = int(r.port)
        p.update({"protocol": "TCP" if r.protocol == "tcp" else "ICMP", "packetSize": int(r.size_configured),
                  "addressFamily": "IPV6" if ":" in r.destination else "IPV4", "vpcId": "vpc-0123456789abcdef0",
                  "state": "ACTIVE", "createdAt": created, "modifiedAt": created, "tags": {}})
        probes.append(p)
    return {"monitorArn": f"arn:aws:networkmonitor:{_REGION}:{_ACCOUNT}:monitor/{monitor}", "monitorName": monitor,
            "state": "ACTIVE", "aggregationPeriod": int(period_s), "tags": {}, "probes": probes,
            "createdAt": created, "modifiedAt": created}


def _series(per: pd.DataFrame, monitor: str):
    """(Id, Label, timestamps newest first, values) per probe and metric, as fetch labels them."""
    for i, (pid, g) in enumerate(per.groupby("probe_id", sort=True)):
        g = g.sort_values("period_start_ns", ascending=False)  # GetMetricData's default: TimestampDescending
        for metric, col in (("PacketLoss", "loss_pct"), ("RTT", "rtt_us")):
            h = g[g[col].notna()]
            yield (f"m{i}_{metric.lower()}", f"{metric} Average Monitor={monitor} Probe={pid}",
                   [_iso(t) for t in h["period_start_ns"]], [float(v) for v in h[col]])


def get_metric_data_output(truth: pd.DataFrame, monitor: str, period_s: int = 30, pages: int = 2) -> list[dict]:
    """``aws cloudwatch get-metric-data`` output (GetMetricDataOutput's shape) for PacketLoss and RTT
    (Average) of every probe, split into ``pages`` pages: every page but the last has StatusCode
    PartialData and a NextToken."""
    series = list(_series(cloudwatch_periods(truth, monitor, period_s), monitor))
    out = []
    for k in range(pages):
        results = []
        for sid, label, ts, vals in series:
            cut = [round(len(ts) * j / pages) for j in range(pages + 1)]
            results.append({"Id": sid, "Label": label, "Timestamps": ts[cut[k]:cut[k + 1]],
                            "Values": vals[cut[k]:cut[k + 1]],
                            "StatusCode": "PartialData" if k < pages - 1 else "Complete"})
        page = {"MetricDataResults": results, "Messages": []}
        if k < pages - 1:
            page["NextToken"] = hashlib.sha256(f"{monitor}|page{k + 1}".encode()).hexdigest()  # type: ignore[assignment]
        out.append(page)
    return out


def console_csv(truth: pd.DataFrame, monitor: str, period_s: int = 30) -> str:
    """The console's "Download as .csv" of a graph of every probe's PacketLoss and RTT: a time column,
    then one column per line, labelled '<probe id> <metric>' (the dynamic label
    ``${PROP('Dim.Probe')} ${PROP('MetricName')}``), oldest first; a period without a datapoint is empty."""
    per = cloudwatch_periods(truth, monitor, period_s)
    cols = {}
    for pid, g in per.groupby("probe_id", sort=True):
        g = g.set_index("period_start_ns")
        cols[f"{pid} PacketLoss"] = g["loss_pct"]
        cols[f"{pid} RTT"] = g["rtt_us"]
    wide = pd.DataFrame(cols).sort_index()
    wide.index = [pd.Timestamp(int(t), unit="ns", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ") for t in wide.index]
    wide.index.name = "Time"
    return wide.to_csv(lineterminator="\n", float_format="%.10g")


def write_cloudwatch_exports(truth: pd.DataFrame, capture, monitor: str, period_s: int = 30) -> list[Path]:
    """Write the three exports beside ``capture`` (names in EXPORT_SUFFIXES); returns their paths."""
    capture = Path(capture)
    paths = {k: capture.with_name(capture.name + s) for k, s in EXPORT_SUFFIXES.items()}
    paths["monitor"].write_text(json.dumps(get_monitor_output(truth, monitor, period_s), indent=4) + "\n")
    pages = get_metric_data_output(truth, monitor, period_s)
    paths["metric_data"].write_text("".join(json.dumps(p, indent=4) + "\n" for p in pages))
    paths["console"].write_text(console_csv(truth, monitor, period_s))
    return list(paths.values())
