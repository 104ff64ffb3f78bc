"""CloudWatch's own numbers, read from the files an analyst has (schema.CLOUDWATCH), told apart by content.

- ``aws networkmonitor get-monitor`` / ``list-monitors`` output (JSON): the monitor's aggregationPeriod and
  its probes (probeId → destination, destinationPort, protocol, packetSize, addressFamily);
- ``aws cloudwatch get-metric-data`` output (JSON: MetricDataResults with Id, Label, Timestamps, Values,
  StatusCode; several pages concatenated in one file, or in several files);
- ``aws cloudwatch get-metric-statistics`` output (JSON: Label, Datapoints with Timestamp, Average, ...,
  Unit);
- the CloudWatch console's "Download as .csv" of a graph (a time column, one column per metric line);
- probekit 0.1's own CSV (timestamp, probe, metric, value), read for one more release.

A file may hold several JSON documents one after another (what ``probekit cloudwatch fetch`` writes:
the get-monitor output, then every get-metric-data page). GetMetricData returns no dimensions, so the
probe id, the metric and the statistic are taken from each series' Label and Id (``probekit cloudwatch
fetch`` writes labels that carry them; for exports of your own, label the queries e.g. with the dynamic
label ``${PROP('Dim.Probe')} ${PROP('MetricName')}``); get-metric-statistics names neither, so its probe
id comes from the file name (``probe-0123abcd.RTT.json``). Everything here reads files; the audit in
``probekit.analysis.cloudwatch`` only takes tables.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ProbekitError
from ..schema import CLOUDWATCH, CLOUDWATCH_METRICS, PROBE_RESOLUTION, typed

__all__ = ["read_cloudwatch", "read_monitors", "read_json_documents", "parse_label", "read_cloudwatch_csv"]

_METRIC_RE = re.compile(r"(?<![A-Za-z])(PacketLoss|RTT|HealthIndicator)(?![A-Za-z])")
_PROBE_RE = re.compile(r"(?<![A-Za-z0-9])(probe-[0-9A-Za-z]+)")
_STAT_RE = re.compile(r"(?<![A-Za-z0-9])(Average|Maximum|Minimum|Sum|SampleCount|p\d{1,2}(?:\.\d+)?)(?![A-Za-z0-9])")
_MONITOR_RE = re.compile(r"Monitor\s*[=:]\s*([A-Za-z0-9_-]+)")
_UNITS = {"PacketLoss": "Percent", "RTT": "Microseconds", "HealthIndicator": None}
_STATS = ("Average", "Maximum", "Minimum", "Sum", "SampleCount")


# ----------------------------------------------------------------------------------- JSON documents
def read_json_documents(path) -> list:
    """Every JSON document in ``path``, in order (one, or several written back to back). A damaged or
    cut document raises ProbekitError naming the file, the byte offset and the problem."""
    path = Path(path)
    text = path.read_bytes().decode("utf-8-sig", errors="replace")
    dec = json.JSONDecoder()
    docs, i, n = [], 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            break
        try:
            doc, j = dec.raw_decode(text, i)
        except json.JSONDecodeError as e:
            what = f"the file ends inside it (truncated JSON; {e.msg})" if _open_at_end(text, i) else e.msg
            raise ProbekitError(f"{path}: byte {len(text[:e.pos].encode())}: invalid JSON in document "
                                f"{len(docs) + 1}: {what}") from None
        docs.append(doc)
        i = j
    if not docs:
        raise ProbekitError(f"{path}: empty file: no JSON document")
    return docs


def _open_at_end(text: str, i: int) -> bool:
    """Whether the JSON text from ``i`` on ends with a string, object or array still open (a cut file)."""
    depth, in_str, esc = 0, False, False
    for ch in text[i:]:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
    return in_str or depth > 0


def _flatten(docs):
    for d in docs:
        if isinstance(d, list):
            yield from _flatten(d)
        else:
            yield d


def _kind(doc) -> str:
    if not isinstance(doc, dict):
        return "other"
    if "MetricDataResults" in doc:
        return "get-metric-data"
    if "Datapoints" in doc:
        return "get-metric-statistics"
    if "monitorName" in doc and ("probes" in doc or "aggregationPeriod" in doc):
        return "get-monitor"
    if isinstance(doc.get("monitors"), list):
        return "list-monitors"
    return "other"


# ----------------------------------------------------------------------------------- monitors
_PROTO = {("ICMP", "IPV4"): "icmp", ("ICMP", "IPV6"): "icmpv6", ("TCP", "IPV4"): "tcp", ("TCP", "IPV6"): "tcp"}


def _monitor_of(doc, path) -> dict:
    name = doc.get("monitorName")
    if not isinstance(name, str):
        raise ProbekitError(f"{path}: get-monitor output without a monitorName")
    probes = {}
    for p in doc.get("probes") or []:
        pid = p.get("probeId")
        proto = str(p.get("protocol", "")).upper()
        fam = str(p.get("addressFamily") or ("IPV6" if ":" in str(p.get("destination", "")) else "IPV4")).upper()
        if proto not in ("ICMP", "TCP"):
            raise ProbekitError(f"{path}: probe {pid}: protocol {p.get('protocol')!r} is not TCP or ICMP")
        probes[pid] = dict(destination=str(p.get("destination")), protocol=_PROTO[proto, fam],
                           port=int(p["destinationPort"]) if proto == "TCP" and p.get("destinationPort") is not None
                           else None, size=p.get("packetSize"), state=p.get("state"))
    period = doc.get("aggregationPeriod")
    return dict(name=name, period_s=int(period) if period is not None else None, probes=probes,
                has_probes="probes" in doc)


def read_monitors(paths) -> dict:
    """Monitor descriptions (get-monitor / list-monitors output) from one or more files, by name."""
    out: dict = {}
    for path in _paths(paths):
        found = 0
        for doc in _flatten(read_json_documents(path)):
            k = _kind(doc)
            if k == "get-monitor":
                m = _monitor_of(doc, path)
                old = out.get(m["name"])
                if old and not m["has_probes"]:
                    m["probes"] = old["probes"]
                out[m["name"]] = m
                found += 1
            elif k == "list-monitors":
                for s in doc["monitors"]:
                    m = _monitor_of(s, path)
                    out.setdefault(m["name"], m)
                    found += 1
        if not found:
            raise ProbekitError(f"{path}: no monitor description in it (expected the output of "
                                "`aws networkmonitor get-monitor` or `list-monitors`)")
    return out


def _paths(paths) -> list[Path]:
    if paths is None:
        return []
    if isinstance(paths, (str, Path)):
        return [Path(paths)]
    return [Path(p) for p in paths]


# ----------------------------------------------------------------------------------- labels and times
def parse_label(*texts) -> dict:
    """Probe id, metric, statistic and monitor named in a series' label (or Id, or a file name)."""
    found: dict = {}
    for t in texts:
        if not t:
            continue
        t = str(t)
        for key, rx in (("probe_id", _PROBE_RE), ("metric", _METRIC_RE), ("statistic", _STAT_RE),
                        ("monitor", _MONITOR_RE)):
            if key not in found and (m := rx.search(t)):
                found[key] = m.group(1)
        if "metric" not in found:  # query Ids are lower-case letters first: packetloss, rtt
            low = t.lower()
            for name in CLOUDWATCH_METRICS:
                if re.search(r"(?<![a-z])" + name.lower() + r"(?![a-z])", low):
                    found["metric"] = name
                    break
    return found


def _to_ns(values, path, what) -> np.ndarray:
    s = pd.Series(values)
    try:
        if pd.api.types.is_numeric_dtype(s):
            return (s.astype("float64") * 1e9).round().astype("int64").to_numpy()
        t = pd.to_datetime(s, utc=True, format="mixed")
    except (ValueError, TypeError) as e:
        raise ProbekitError(f"{path}: {what}: not a timestamp ({e})") from None
    return t.dt.as_unit("ns").astype("int64").to_numpy()


# ----------------------------------------------------------------------------------- readers
def _rows(path, ts_ns, values, meta: dict) -> pd.DataFrame:
    n = len(ts_ns)
    d = {"period_start_ns": np.asarray(ts_ns, dtype=np.int64), "value": np.asarray(values, dtype=np.float64)}
    for k in ("monitor", "probe_id", "metric", "statistic", "unit", "status_code", "resolved"):
        d[k] = [meta.get(k)] * n  # type: ignore[assignment]
    d["source_file"] = [str(path)] * n  # type: ignore[assignment]
    return pd.DataFrame(d)


def _metric_data(doc, path, notes) -> list[pd.DataFrame]:
    out = []
    for r in doc.get("MetricDataResults") or []:
        label, rid = r.get("Label"), r.get("Id")
        meta = parse_label(label, rid)
        if "metric" not in meta:
            raise ProbekitError(f"{path}: series {rid!r} (label {label!r}) names none of Network Monitor's metrics "
                                f"({', '.join(CLOUDWATCH_METRICS)}): not an AWS/NetworkMonitor export")
        ts, vals = r.get("Timestamps") or [], r.get("Values") or []
        if len(ts) != len(vals):
            raise ProbekitError(f"{path}: series {rid!r}: {len(ts)} timestamps but {len(vals)} values")
        meta.setdefault("statistic", "Average")
        meta["unit"] = _UNITS[meta["metric"]]
        meta["status_code"] = r.get("StatusCode")
        if r.get("StatusCode") not in (None, "Complete", "PartialData"):
            msgs = "; ".join(f"{m.get('Code')}: {m.get('Value')}" for m in r.get("Messages") or [])
            notes.append(f"{path}: series {rid!r} has StatusCode {r.get('StatusCode')}" + (f" ({msgs})" if msgs else ""))
        out.append(_rows(path, _to_ns(ts, path, f"series {rid!r}"), vals, meta))
    return out


def _metric_statistics(doc, path) -> list[pd.DataFrame]:
    meta = parse_label(doc.get("Label"), Path(path).name)
    if "metric" not in meta:
        raise ProbekitError(f"{path}: get-metric-statistics output for {doc.get('Label')!r}, not one of Network "
                            f"Monitor's metrics ({', '.join(CLOUDWATCH_METRICS)})")
    dps = doc.get("Datapoints") or []
    if not dps:
        return []
    dp = pd.DataFrame(dps)
    ts = _to_ns(dp["Timestamp"], path, "Datapoints")
    out = []
    for stat in _STATS:
        if stat in dp:
            m = dict(meta, statistic=stat)
            m["unit"] = str(dp["Unit"].iloc[0]) if "Unit" in dp and stat != "SampleCount" else \
                ("Count" if stat == "SampleCount" else _UNITS[meta["metric"]])
            out.append(_rows(path, ts, dp[stat].to_numpy(dtype="float64"), m))
    for stat in sorted({k for e in dp.get("ExtendedStatistics", pd.Series(dtype=object)).dropna() for k in e}):
        vals = dp["ExtendedStatistics"].map(lambda e, s=stat: (e or {}).get(s, np.nan))
        out.append(_rows(path, ts, vals.to_numpy(dtype="float64"), dict(meta, statistic=stat, unit=_UNITS[meta["metric"]])))
    return out


def _read_json(path, notes) -> tuple[list[pd.DataFrame], dict]:
    frames, monitors = [], {}
    docs = list(_flatten(read_json_documents(path)))
    pages = [d for d in docs if _kind(d) == "get-metric-data"]
    for i, doc in enumerate(docs, 1):
        k = _kind(doc)
        if k == "get-metric-data":
            frames += _metric_data(doc, path, notes)
        elif k == "get-metric-statistics":
            frames += _metric_statistics(doc, path)
        elif k == "get-monitor":
            m = _monitor_of(doc, path)
            monitors[m["name"]] = m
        elif k == "list-monitors":
            for s in doc["monitors"]:
                m = _monitor_of(s, path)
                monitors.setdefault(m["name"], m)
        else:
            keys = ", ".join(list(doc)[:6]) if isinstance(doc, dict) else type(doc).__name__
            raise ProbekitError(f"{path}: document {i} is not CloudWatch or Network Monitor output (it has {keys}); "
                                "expected get-metric-data, get-metric-statistics, get-monitor or list-monitors")
    if pages and pages[-1].get("NextToken"):
        notes.append(f"{path}: the last get-metric-data page carries a NextToken: later pages were not saved, so "
                     "the export is incomplete (fetch again, or append the next pages to the file)")
    return frames, monitors


def _read_csv(path, notes) -> list[pd.DataFrame]:
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ProbekitError(f"{path}: not a readable CSV ({str(e).splitlines()[0]})") from None
    cols = [str(c) for c in df.columns]
    if {"timestamp", "metric", "value"} <= set(cols):  # probekit 0.1's own format
        return [_legacy(df, path)]
    if len(cols) < 2:
        raise ProbekitError(f"{path}: one column only: not a CloudWatch console export")
    lines = {c: parse_label(c) for c in cols[1:]}
    ours = {c: m for c, m in lines.items() if "metric" in m}
    if not ours:
        raise ProbekitError(f"{path}: a CSV of another console graph? none of its columns ({', '.join(cols[1:4])}"
                            f"{', ...' if len(cols) > 4 else ''}) is a Network Monitor metric "
                            f"({', '.join(CLOUDWATCH_METRICS)})")
    others = [c for c in lines if c not in ours]
    if others:
        notes.append(f"{path}: columns not from Network Monitor ignored: {', '.join(others)}")
    tcol = df.columns[0]
    raw = df[tcol].astype(str)
    if not raw.str.contains(r"(?:Z|[+-]\d\d:?\d\d)\s*$", regex=True).all():
        notes.append(f"{path}: the console's time column has no time zone; read as UTC (set the console's time "
                     "zone to UTC before downloading)")
    ts = _to_ns(raw, path, f"column {tcol!r}")
    out = []
    for c, m in ours.items():
        v = pd.to_numeric(df[df.columns[cols.index(c)]], errors="coerce").to_numpy(dtype="float64")
        keep = ~np.isnan(v)
        meta = dict(m, unit=_UNITS[m["metric"]])
        meta.setdefault("statistic", "Average")
        out.append(_rows(path, ts[keep], v[keep], meta))
    return out


def _legacy(df, path) -> pd.DataFrame:
    ts = _to_ns(df["timestamp"], path, "timestamp")
    d = pd.DataFrame({"period_start_ns": ts, "value": df["value"].astype("float64").to_numpy()})
    metric = df["metric"].astype(str).str.lower().map({m.lower(): m for m in CLOUDWATCH_METRICS})
    if metric.isna().any():
        bad = sorted(set(df.loc[metric.isna(), "metric"].astype(str)))[:3]
        raise ProbekitError(f"{path}: metric(s) {', '.join(bad)} are not Network Monitor's")
    d["metric"] = metric.to_numpy()
    if "probe" in df:
        parts = df["probe"].astype(str).str.split(":", n=1, expand=True)
        proto = parts[0]
        rest = parts[1].str.rsplit(":", n=1, expand=True) if parts.shape[1] > 1 else None
        if rest is None:
            raise ProbekitError(f"{path}: column probe must read protocol:destination[:port]")
        is_tcp = (proto == "tcp").to_numpy()
        d["protocol"] = proto.to_numpy()
        d["destination"] = np.where(is_tcp, rest[0], parts[1])
        port = rest[1] if rest.shape[1] > 1 else pd.Series([None] * len(df))
        d["port"] = pd.array([int(p) if t and p is not None else pd.NA for t, p in zip(is_tcp, port)], dtype="UInt16")
    else:
        for c in ("protocol", "destination"):
            if c not in df:
                raise ProbekitError(f"{path}: CloudWatch CSV lacks column {c} (or probe)")
            d[c] = df[c].astype(str).to_numpy()
        d["port"] = df["port"].astype("UInt16") if "port" in df else pd.array([pd.NA] * len(df), dtype="UInt16")
    d["statistic"] = "Average"
    d["unit"] = d["metric"].map(_UNITS)
    d["resolved"] = "export"
    d["source_file"] = str(path)
    return d


def read_cloudwatch(paths, monitor=None) -> pd.DataFrame:
    """One CloudWatch table (schema.CLOUDWATCH) from exports in any of the formats above, told apart by
    content; ``monitor``: file(s) with the monitor description, used to resolve each probe id to its
    destination, protocol and port (a file from ``probekit cloudwatch fetch`` carries its own).

    ``attrs["notes"]`` lists what the reader had to assume or found incomplete; ``attrs["monitors"]`` the
    monitor descriptions seen. An export for another monitor than the description's is an error.
    """
    notes: list[str] = []
    frames, monitors = [], read_monitors(monitor) if monitor is not None else {}
    files = _paths(paths)
    if not files:
        raise ProbekitError("no CloudWatch export given")
    for path in files:
        head = path.read_bytes()[:4096].lstrip(b"\xef\xbb\xbf").lstrip()
        if head[:1] in (b"{", b"["):
            f, m = _read_json(path, notes)
            frames += f
            for k, v in m.items():
                monitors.setdefault(k, v)
        else:
            frames += _read_csv(path, notes)
    if frames:
        cw = pd.concat([f for f in frames if len(f)] or frames[:1], ignore_index=True)
    else:
        cw = pd.DataFrame({c.name: [] for c in CLOUDWATCH})
    cw = _resolve(cw, monitors, files, notes)
    cw = _typed(cw)
    cw = cw.drop_duplicates(["monitor", "probe_id", "protocol", "destination", "port", "metric", "statistic",
                             "period_start_ns"], keep="first")
    cw = cw.sort_values(["probe_id", "protocol", "metric", "statistic", "period_start_ns"], na_position="last",
                        kind="stable").reset_index(drop=True)
    cw.attrs["notes"] = notes
    cw.attrs["monitors"] = monitors
    return cw


def _resolve(cw, monitors, files, notes) -> pd.DataFrame:
    for c in CLOUDWATCH:
        if c.name not in cw:
            cw[c.name] = None
    if not len(cw):
        return cw
    named = sorted({m for m in cw["monitor"].dropna().unique()})
    if monitors and named:
        foreign = [m for m in named if m not in monitors]
        if foreign:
            raise ProbekitError(f"{files[0]}: the export is for monitor {', '.join(foreign)} but the monitor "
                                f"description is for {', '.join(sorted(monitors))}: an export for another monitor?")
    probes = {pid: (name, p) for name, m in monitors.items() for pid, p in m["probes"].items()}
    todo = cw["resolved"].isna()
    ids = cw["probe_id"]
    if monitors and not probes:
        notes.append("the monitor description lists no probes (list-monitors output?): probe ids stay unresolved; "
                     "give `aws networkmonitor get-monitor` output")
    if probes:
        known = ids.isin(list(probes))
        if todo.any() and not (known & todo).any() and ids[todo].notna().any():
            shown = ", ".join(sorted(ids[todo].dropna().unique())[:4])
            raise ProbekitError(f"{files[0]}: none of the export's probe ids ({shown}) "
                                f"is in the description of monitor {', '.join(sorted(monitors))}: an export for "
                                "another monitor?")
        hit = todo & known
        for col in ("destination", "protocol", "port", "size"):
            cw.loc[hit, col] = ids[hit].map(lambda i, c=col: probes[i][1][c])
        cw.loc[hit, "monitor"] = ids[hit].map(lambda i: probes[i][0])
        cw.loc[hit, "resolved"] = "monitor"
        missing = todo & ids.notna() & ~known
        cw.loc[missing, "resolved"] = "not_in_monitor"
        if missing.any():
            notes.append(f"probe id(s) {', '.join(sorted(ids[missing].unique()))} are not in the description of "
                         f"monitor {', '.join(sorted(monitors))}: their periods cannot be lined up")
        nameless = todo & ids.isna()
        if nameless.any() and len(probes) == 1:
            pid, (name, p) = next(iter(probes.items()))
            for col in ("destination", "protocol", "port", "size"):
                cw.loc[nameless, col] = p[col]
            cw.loc[nameless, ["probe_id", "monitor", "resolved"]] = [pid, name, "guessed"]
            notes.append(f"the export does not name its probe; the monitor has one ({pid}), assumed to be it")
    cw.loc[cw["resolved"].isna(), "resolved"] = "unresolved"
    if (cw["resolved"] == "unresolved").any():
        notes.append("probe ids not resolved to destination/protocol/port: give the monitor description "
                     "(`aws networkmonitor get-monitor --monitor-name M` output, option --monitor)")
    per = {name: m["period_s"] for name, m in monitors.items() if m.get("period_s")}
    if per:
        cw["period_s"] = cw["monitor"].map(per)
        if len(set(per.values())) == 1:
            cw["period_s"] = cw["period_s"].fillna(next(iter(per.values())))
    spacing = _spacing_s(cw)
    if spacing:
        cw["period_s"] = cw["period_s"].fillna(spacing)
    return cw


def _spacing_s(cw) -> int | None:
    """The smallest step between a series' timestamps, in s (30 or 60 for Network Monitor)."""
    steps = []
    for _, g in cw.groupby(["probe_id", "protocol", "destination", "metric", "statistic"], dropna=False, sort=False):
        t = np.unique(g["period_start_ns"].to_numpy())
        if len(t) > 1:
            steps.append(int(np.diff(t).min()))
    return round(min(steps) / 1e9) if steps else None


def _typed(cw) -> pd.DataFrame:
    return typed(cw, CLOUDWATCH, categories={"metric": CLOUDWATCH_METRICS, "resolved": PROBE_RESOLUTION})


def read_cloudwatch_csv(path):
    """Deprecated (0.2): use :func:`read_cloudwatch`, which reads every CloudWatch export format (this name
    reads them too)."""
    import warnings
    warnings.warn("read_cloudwatch_csv is deprecated: use probekit.read_cloudwatch", DeprecationWarning, stacklevel=2)
    return read_cloudwatch(path)
