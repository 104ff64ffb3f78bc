"""Which request streams are probes: the streams table (schema.STREAMS), the "other traffic" summary
(schema.OTHER_TRAFFIC) and the filter that keeps the probe streams of a probes table.

The matcher (analysis.match) calls every SYN and every echo request a probe: a browser's connections,
a scanner's SYNs and the analyst's own ping land in the probes table beside the monitor's. This module
decides, per *source stream* (protocol, source, destination, port), what kind of traffic it is, from
evidence a reader can check (how many requests, whether they keep a schedule, whether the connections
carried data, how many targets the source touched once or twice), then folds the source streams of
one kind to one target into one row. The rules, in order, are documented in docs/streams.md; every
threshold is a parameter, and ``overrides`` replaces the verdict for named streams.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..schema import (
    OTHER_TRAFFIC,
    SOURCE_STREAM_KEYS,
    STREAM_COLUMNS,
    STREAM_KEYS,
    STREAM_KINDS,
    STREAMS,
)

__all__ = ["other_traffic", "select_probe_streams", "stream_key", "streams"]

_SS = list(SOURCE_STREAM_KEYS)
_NS = 1_000_000_000


def stream_key(text: str) -> tuple:
    """'tcp:192.0.2.10:80' → ('tcp', '192.0.2.10', 80); 'icmp:192.0.2.10' → ('icmp', '192.0.2.10', None);
    'tcp:198.51.100.10>192.0.2.10:80' names one source stream (protocol, source, destination, port).
    IPv6 addresses in brackets: 'tcp:[2001:db8::1]:80'."""
    proto, _, rest = text.partition(":")
    source = None
    if ">" in rest:
        source, _, rest = rest.partition(">")
        source = source.strip("[]")
    port = None
    if rest.startswith("["):
        addr, _, tail = rest[1:].partition("]")
        if tail.startswith(":"):
            port = int(tail[1:])
    elif proto in ("tcp", "udp") and rest.count(":") == 1:
        addr, _, p = rest.partition(":")
        port = int(p)
    else:
        addr = rest
    return (proto, addr, port) if source is None else (proto, source, addr, port)


def _norm_key(key) -> tuple:
    if isinstance(key, str):
        key = stream_key(key)
    key = tuple(key)
    if len(key) not in (3, 4):
        raise ValueError(f"a stream key is (protocol, destination, port) or (protocol, source, destination, "
                         f"port), not {key!r}")
    port = key[-1]
    port = -1 if port is None or pd.isna(port) else int(port)
    return tuple(str(k) for k in key[:-1]) + (port,)


def _frame_rows(packets: pd.DataFrame, frames: np.ndarray) -> np.ndarray:
    """Row positions of frame numbers (the packets table is one row per frame, 1-based, in order)."""
    fr = packets["frame"].to_numpy("int64")
    if len(fr) and fr[0] == 1 and fr[-1] == len(fr):
        return frames - 1
    return pd.Index(fr).get_indexer(frames)


def _port_array(ports) -> pd.arrays.IntegerArray:
    """int64 ports with -1 for none → UInt16 with <NA>."""
    v = np.asarray(ports, dtype=np.int64)
    return pd.arrays.IntegerArray(np.where(v >= 0, v, 0).astype(np.uint16), v < 0)


def _ports(s: pd.Series) -> np.ndarray:
    return s.to_numpy("float64", na_value=-1).astype(np.int64)


def _connection_data(packets: pd.DataFrame, probes: pd.DataFrame) -> np.ndarray:
    """True for each TCP probe whose connection carried data after the SYN: a segment with payload, in
    either direction, on the probe's 4-tuple, later than the SYN and before the next SYN of that tuple."""
    out = np.zeros(len(probes), bool)
    tcp = (probes["protocol"].astype(str) == "tcp").to_numpy()
    if not tcp.any() or packets.empty:
        return out
    cats = packets["src"].cat.categories
    pr = probes[tcp]
    a = cats.get_indexer(pr["source"].astype(str))
    b = cats.get_indexer(pr["destination"].astype(str))
    psport = pr["ident"].to_numpy("int64")
    pdport = _ports(pr["port"])
    flags = packets["tcp_flags"].to_numpy("int64", na_value=0)
    data = ((packets["ip_proto"].to_numpy("int64", na_value=-1) == 6)
            & (packets["payload_len"].to_numpy("int64", na_value=0) > 0) & ((flags & 0x02) == 0)
            & packets["ts_ns"].notna().to_numpy())
    if not data.any():
        return out
    d = packets[data]
    ds, dd = d["src"].cat.codes.to_numpy("int64"), d["dst"].cat.codes.to_numpy("int64")
    dsp, ddp = _ports(d["sport"]), _ports(d["dport"])
    dts = d["ts_ns"].to_numpy("int64")
    n = max(len(cats), 1)
    # factorize (address pair) over every array at once so that pair << 32 | ports fits 63 bits
    pairs = np.concatenate([a * n + b, ds * n + dd, dd * n + ds])
    pc = pd.factorize(pairs)[0].astype(np.int64)
    k_probe = (pc[:len(a)] << 32) | (psport << 16) | pdport
    k_fwd = (pc[len(a):len(a) + len(ds)] << 32) | (dsp << 16) | ddp
    k_rev = (pc[len(a) + len(ds):] << 32) | (ddp << 16) | dsp
    left = pd.DataFrame({"ts_ns": pr["ts_ns"].to_numpy("int64"), "key": k_probe, "i": np.flatnonzero(tcp)})
    left = left.sort_values("ts_ns", kind="stable")
    for k in (k_fwd, k_rev):
        ev = pd.DataFrame({"ts_ns": dts, "key": k}).sort_values("ts_ns", kind="stable")
        m = pd.merge_asof(ev, left, on="ts_ns", by="key", direction="backward")
        hit = m["i"].dropna().to_numpy("int64")
        out[hit] = True
    return out


def _source_streams(packets: pd.DataFrame, probes: pd.DataFrame, tolerance: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per source stream: counts, schedule, data, payload; and the per-probe frame with the stream id."""
    p = pd.DataFrame({
        "protocol": probes["protocol"].astype(str).to_numpy(), "source": probes["source"].astype(str).to_numpy(),
        "destination": probes["destination"].astype(str).to_numpy(), "port": _ports(probes["port"]),
        "ts_ns": probes["ts_ns"].to_numpy("int64")})
    rows = _frame_rows(packets, probes["request_frame"].to_numpy("int64"))
    plen = packets["payload_len"].to_numpy("float64", na_value=np.nan)
    p["payload_len"] = np.where(rows >= 0, plen[np.maximum(rows, 0)], np.nan) if len(rows) else np.zeros(0)
    p["data"] = _connection_data(packets, probes)
    p["ss"] = p.groupby(_SS, sort=True).ngroup()
    p = p.sort_values(["ss", "ts_ns"], kind="stable").reset_index(drop=True)
    ss_id = p["ss"].to_numpy()
    ts = p["ts_ns"].to_numpy()
    same = np.zeros(len(p), bool)
    same[1:] = ss_id[1:] == ss_id[:-1]
    gap = np.where(same, np.diff(ts, prepend=0), np.nan) / _NS
    p["gap_s"] = gap
    med = p.groupby("ss")["gap_s"].transform("median").to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = gap / med
        k = np.maximum(np.round(ratio), 1)
        near = np.abs(ratio - k) <= tolerance      # within 20 % of one period, at any multiple
    has_gap = ~np.isnan(gap) & (med > 0)
    p["near"] = np.where(has_gap, near, False)
    p["has_gap"] = has_gap
    g = p.groupby("ss", sort=True)
    ss = g.agg(protocol=("protocol", "first"), source=("source", "first"), destination=("destination", "first"),
               port=("port", "first"), requests=("ts_ns", "size"), first_ns=("ts_ns", "min"),
               last_ns=("ts_ns", "max"), gap_median_s=("gap_s", "median"), gaps=("has_gap", "sum"),
               near=("near", "sum"), data=("data", "sum"), payload_len_median=("payload_len", "median"),
               payload_lengths=("payload_len", "nunique"))
    with np.errstate(invalid="ignore", divide="ignore"):
        ss["on_schedule_pct"] = np.where(ss["gaps"] > 0, 100.0 * ss["near"] / ss["gaps"], np.nan)
    return ss.reset_index(), p


def streams(packets: pd.DataFrame, probes: pd.DataFrame, fingerprints: pd.DataFrame | None = None,
            overrides: dict | None = None, *, min_requests: int = 10, on_schedule_pct: float = 80.0,
            tolerance: float = 0.2, client_data_pct: float = 50.0, probe_data_pct: float = 10.0,
            scan_min_targets: int = 8, scan_max_per_target: int = 2) -> pd.DataFrame:
    """The streams table: one row per (protocol, destination, port, kind) with its sources and evidence.

    Rules, first match wins, per source stream (docs/streams.md):
    1. ``overrides`` names it: {key: kind}, key 'tcp:192.0.2.10:80' / ('tcp', '192.0.2.10', 80) for every
       source, or 'tcp:198.51.100.10>192.0.2.10:80' / a 4-tuple for one source.
    2. scan: at most ``scan_max_per_target`` requests, from a source that sent that few to at least
       ``scan_min_targets`` targets.
    3. client: TCP, and at least ``client_data_pct`` % of its connections carried data.
    4. probe: at least ``min_requests`` requests, ``on_schedule_pct`` % of the gaps on schedule (a whole
       multiple of the median gap, within ``tolerance`` of it), and (TCP) at most ``probe_data_pct`` %
       of the connections carried data.
    5. other.
    ``fingerprints`` (probekit.fingerprint's table) adds the tool label as evidence; it does not decide.
    """
    if probes.empty:
        return _typed(pd.DataFrame({c: [] for c in STREAM_COLUMNS}))
    ss, _ = _source_streams(packets, probes, tolerance)
    # a scanner's fan-out: targets each source sent only one or two requests to
    few = ss["requests"] <= scan_max_per_target
    fan = ss[few].groupby("source").size()
    ss["source_targets"] = ss["source"].map(fan).fillna(0).astype("int64")
    with np.errstate(invalid="ignore", divide="ignore"):
        data_pct = np.where(ss["protocol"] == "tcp", 100.0 * ss["data"] / ss["requests"], np.nan)
    ss["data_pct"] = data_pct
    is_tcp = (ss["protocol"] == "tcp").to_numpy()
    scan = few.to_numpy() & (ss["source_targets"].to_numpy() >= scan_min_targets)
    client = is_tcp & (np.nan_to_num(data_pct, nan=0.0) >= client_data_pct)
    sched = ss["on_schedule_pct"].to_numpy("float64")
    enough = ss["requests"].to_numpy() >= min_requests
    regular = np.nan_to_num(sched, nan=0.0) >= on_schedule_pct
    quiet = ~is_tcp | (np.nan_to_num(data_pct, nan=0.0) <= probe_data_pct)
    probe = enough & regular & quiet
    kind = np.select([scan, client, probe], ["scan", "client", "probe"], "other")
    rule = np.select([scan, client, probe], ["scan", "client", "probe"],
                     np.where(~enough, "few", np.where(~regular, "irregular", "some_data")))
    decided = np.full(len(ss), "rule", dtype=object)
    if overrides:
        k3 = list(zip(ss["protocol"], ss["destination"], ss["port"]))
        k4 = list(zip(ss["protocol"], ss["source"], ss["destination"], ss["port"]))
        ov = {}
        for key, val in overrides.items():
            if val not in STREAM_KINDS:
                raise ValueError(f"override kind {val!r}: choose from {', '.join(STREAM_KINDS)}")
            ov[_norm_key(key)] = val
        for i in range(len(ss)):      # per source stream, not per packet
            v = ov.get(k4[i], ov.get(k3[i]))
            if v is not None:
                kind[i], rule[i], decided[i] = v, "user", "user"
    ss["kind"], ss["rule"], ss["decided_by"] = kind, rule, decided
    tools = None
    if fingerprints is not None and len(fingerprints):
        f = fingerprints.assign(protocol=fingerprints["protocol"].astype(str),
                                source=fingerprints["source"].astype(str),
                                destination=fingerprints["destination"].astype(str),
                                port=_ports(fingerprints["port"]))
        tools = f.set_index(_SS)["tool"].astype(str)
        tools = tools[~tools.index.duplicated()]
    ss["tool"] = (pd.Series(list(zip(*(ss[c] for c in _SS))), index=ss.index).map(tools)
                  if tools is not None else None)
    return _fold(ss, min_requests, on_schedule_pct, client_data_pct, scan_min_targets, scan_max_per_target)


def _fold(ss: pd.DataFrame, min_requests, on_schedule_pct, client_data_pct, scan_min_targets,
          scan_max_per_target) -> pd.DataFrame:
    keys = list(STREAM_KEYS) + ["kind"]
    ss = ss.sort_values(keys + ["source"], kind="stable")
    ss["gap_weight"] = ss["gap_median_s"] * ss["requests"]
    ss["pl_weight"] = ss["payload_len_median"] * ss["requests"]
    g = ss.groupby(keys, sort=False)
    out = g.agg(sources=("source", "size"), source_list=("source", lambda s: ",".join(sorted(s))),
                requests=("requests", "sum"), first_ns=("first_ns", "min"), last_ns=("last_ns", "max"),
                gap_median_s=("gap_median_s", "median"), gaps=("gaps", "sum"), near=("near", "sum"),
                per_target_max=("requests", "max"), source_targets=("source_targets", "max"),
                data=("data", "sum"), payload_len_median=("payload_len_median", "median"),
                payload_lengths=("payload_lengths", "max"),
                tool=("tool", lambda s: "/".join(sorted({str(x) for x in s if isinstance(x, str)})) or None),
                decided_by=("decided_by", lambda s: "user" if (s == "user").any() else "rule"),
                rules=("rule", lambda s: ",".join(sorted(set(s))))).reset_index()
    span = (out["last_ns"] - out["first_ns"]) / _NS
    with np.errstate(invalid="ignore", divide="ignore"):
        out["rate_per_s"] = np.where(span > 0, (out["requests"] - 1) / span, np.nan)
        out["on_schedule_pct"] = np.where(out["gaps"] > 0, 100.0 * out["near"] / out["gaps"], np.nan)
        out["data_pct"] = np.where(out["protocol"] == "tcp", 100.0 * out["data"] / out["requests"], np.nan)
    out["evidence"] = [_evidence(r, min_requests, on_schedule_pct, client_data_pct, scan_min_targets,
                                 scan_max_per_target) for r in out.itertuples(index=False)]
    out["port"] = _port_array(out["port"])
    order = {k: i for i, k in enumerate(STREAM_KINDS)}
    out = out.assign(_k=out["kind"].map(order)).sort_values(["_k", "requests", "protocol", "destination"],
                                                             ascending=[True, False, True, True], kind="stable")
    return _typed(out[list(STREAM_COLUMNS)].reset_index(drop=True))


def _evidence(r, min_requests, on_schedule_pct, client_data_pct, scan_min_targets, scan_max_per_target) -> str:
    who = f"{r.requests} request(s) from {r.sources} source(s)"
    sched = ("" if pd.isna(r.on_schedule_pct) else
             f", every {r.gap_median_s:.3g} s per source, {r.on_schedule_pct:.0f} % of gaps on schedule")
    data = "" if pd.isna(r.data_pct) else f", {r.data_pct:.0f} % of connections carried data"
    pay = "" if pd.isna(r.payload_len_median) else f", {r.payload_len_median:.0f}-byte request payload"
    tool = f", fingerprint {r.tool}" if isinstance(r.tool, str) and r.tool else ""
    why = {
        "user": "set by the user (override)",
        "scan": (f"scan: at most {scan_max_per_target} request(s) here, and the source sent that few to "
                 f"{r.source_targets} targets (>= {scan_min_targets})"),
        "client": f"client: >= {client_data_pct:.0f} % of connections carried data",
        "probe": f"probe: >= {min_requests} requests on a fixed schedule (>= {on_schedule_pct:.0f} % of gaps)",
        "few": f"other: fewer than {min_requests} requests",
        "irregular": f"other: under {on_schedule_pct:.0f} % of gaps on schedule",
        "some_data": "other: regular, but some connections carried data",
    }
    reasons = "; ".join(why[x] for x in r.rules.split(","))
    return f"{reasons} — {who}{sched}{data}{pay}{tool}"


def _typed(out: pd.DataFrame) -> pd.DataFrame:
    types = {c.name: c.dtype for c in STREAMS}
    out = out.copy()
    for c in STREAM_COLUMNS:
        if c == "kind":
            out[c] = pd.Categorical(out[c], categories=list(STREAM_KINDS))
        elif c == "decided_by":
            out[c] = pd.Categorical(out[c], categories=["rule", "user"])
        elif c == "tool":
            out[c] = out[c].astype(object).where(out[c].notna(), None) if len(out) else out[c].astype(object)
        elif types[c] == "category":
            out[c] = out[c].astype(str).astype("category") if len(out) else pd.Categorical([])
        else:
            out[c] = out[c].astype(types[c])
    return out


def _selected_keys(streams: pd.DataFrame, kinds, keys) -> pd.DataFrame:
    s = streams[streams["kind"].isin(list(kinds))]
    rows = []
    for r in s.itertuples(index=False):                     # per stream row, not per packet
        port = -1 if pd.isna(r.port) else int(r.port)
        for src in str(r.source_list).split(","):
            rows.append((str(r.protocol), src, str(r.destination), port))
    sel = pd.DataFrame(rows, columns=_SS)
    return sel


def select_probe_streams(probes: pd.DataFrame, streams: pd.DataFrame, kinds=("probe",), keys=None,
                         exclude=None) -> pd.DataFrame:
    """The rows of ``probes`` in streams of the given ``kinds`` (default: the probe streams), plus the
    streams named in ``keys`` and minus those in ``exclude`` (keys as for ``streams(overrides=...)``).
    ``kinds=None`` keeps every kind (the --all-streams view)."""
    if kinds is None:
        kinds = STREAM_KINDS
    p = pd.DataFrame({"protocol": probes["protocol"].astype(str).to_numpy(),
                      "source": probes["source"].astype(str).to_numpy(),
                      "destination": probes["destination"].astype(str).to_numpy(),
                      "port": _ports(probes["port"])})
    sel = _selected_keys(streams, kinds, keys)
    keep = p.merge(sel.drop_duplicates().assign(_in=True), on=_SS, how="left")["_in"].fillna(False).to_numpy(bool).copy()

    def named(ks):
        m = np.zeros(len(p), bool)
        for key in ks or ():
            k = _norm_key(key)
            if len(k) == 3:
                m |= (p["protocol"] == k[0]).to_numpy() & (p["destination"] == k[1]).to_numpy() & (p["port"] == k[2]).to_numpy()
            else:
                m |= ((p["protocol"] == k[0]).to_numpy() & (p["source"] == k[1]).to_numpy()
                      & (p["destination"] == k[2]).to_numpy() & (p["port"] == k[3]).to_numpy())
        return m
    keep |= named(keys)
    keep &= ~named(exclude)
    out = probes[keep].reset_index(drop=True)
    out.attrs = dict(probes.attrs)
    for c in ("source", "destination"):
        if isinstance(out[c].dtype, pd.CategoricalDtype):
            out[c] = out[c].cat.remove_unused_categories()
    return out


# ---------------------------------------------------------------------------------- other traffic
_ECHO_REQ = {1: 8, 58: 128}
_ECHO_REP = {1: 0, 58: 129}
_PROTO = {"icmp": 1, "icmpv6": 58, "tcp": 6, "udp": 17}


def packet_kinds(packets: pd.DataFrame, streams: pd.DataFrame) -> pd.Series:
    """The kind of every frame: the kind of the source stream it belongs to (its requests and the answers
    to them, by addresses, protocol and port), else what it is (arp, dns, ntp, udp, icmp, tcp, ip, non-ip)."""
    n = len(packets)
    kind = np.full(n, "", dtype=object)
    if n == 0:
        return pd.Series(kind, index=packets.index, name="kind")
    cats = packets["src"].cat.categories
    src = packets["src"].cat.codes.to_numpy("int64")
    dst = packets["dst"].cat.codes.to_numpy("int64")
    proto = packets["ip_proto"].to_numpy("int64", na_value=-1)
    sport, dport = _ports(packets["sport"]), _ports(packets["dport"])
    typ = packets["icmp_type"].to_numpy("int64", na_value=-1)
    nc = max(len(cats), 1)
    if len(streams):
        rows = []
        for r in streams.itertuples(index=False):           # per stream row
            port = -1 if pd.isna(r.port) else int(r.port)
            for s in str(r.source_list).split(","):
                rows.append((_PROTO.get(str(r.protocol), -2), s, str(r.destination), port, str(r.kind)))
        t = pd.DataFrame(rows, columns=["proto", "source", "destination", "port", "kind"])
        t["a"] = cats.get_indexer(t["source"])
        t["b"] = cats.get_indexer(t["destination"])
        t = t[(t["a"] >= 0) & (t["b"] >= 0)]
        is_icmp = np.isin(proto, (1, 58))
        fwd_port = np.where(is_icmp, -1, dport)
        rev_port = np.where(is_icmp, -1, sport)
        req_ok = np.where(is_icmp, typ == np.vectorize(_ECHO_REQ.get, otypes=[np.int64])(np.where(is_icmp, proto, 1)), True)
        rep_ok = np.where(is_icmp, typ == np.vectorize(_ECHO_REP.get, otypes=[np.int64])(np.where(is_icmp, proto, 1)), True)
        tk = ((t["proto"].to_numpy(np.int64) << 56) ^ ((t["a"].to_numpy(np.int64) * nc + t["b"].to_numpy(np.int64)) << 17)
              ^ (t["port"].to_numpy(np.int64) + 1))
        lut = pd.Series(t["kind"].to_numpy(), index=tk)
        lut = lut[~lut.index.duplicated()]
        for a, b, port, ok in ((src, dst, fwd_port, req_ok), (dst, src, rev_port, rep_ok)):
            k = (proto << 56) ^ ((a * nc + b) << 17) ^ (port + 1)
            hit = lut.reindex(k).to_numpy()
            m = (kind == "") & ok & pd.notna(hit) & (proto >= 0)
            kind[m] = hit[m]
    rest = kind == ""
    l3 = packets["l3"].astype(str).to_numpy()
    udp = proto == 17
    dns = udp & ((sport == 53) | (dport == 53) | (sport == 5353) | (dport == 5353))
    ntp = udp & ((sport == 123) | (dport == 123))
    fallback = np.select([l3 == "arp", dns, ntp, udp, np.isin(proto, (1, 58)), proto == 6,
                          np.isin(l3, ("ipv4", "ipv6"))],
                         ["arp", "dns", "ntp", "udp", "icmp", "tcp", "ip"], "non-ip")
    kind[rest] = fallback[rest]
    return pd.Series(kind, index=packets.index, name="kind")


def other_traffic(packets: pd.DataFrame, streams: pd.DataFrame, top: int = 3) -> pd.DataFrame:
    """Everything that is not a probe stream, summarised per kind: talkers, frames, bytes, span
    (schema.OTHER_TRAFFIC)."""
    kinds = packet_kinds(packets, streams)
    m = (kinds != "probe").to_numpy()
    names = [c.name for c in OTHER_TRAFFIC]
    if not m.any():
        return _typed_other(pd.DataFrame({c: [] for c in names}))
    p = pd.DataFrame({"kind": kinds[m].to_numpy(), "src": packets["src"].astype(str).to_numpy()[m],
                      "dst": packets["dst"].astype(str).to_numpy()[m],
                      "wirelen": packets["wirelen"].to_numpy("int64")[m],
                      "ts_ns": packets["ts_ns"][m].reset_index(drop=True)})
    g = p.groupby("kind", sort=True)
    out = g.agg(packets=("wirelen", "size"), bytes=("wirelen", "sum"), first_ns=("ts_ns", "min"),
                last_ns=("ts_ns", "max")).reset_index()
    addrs = pd.concat([p[["kind", "src"]].rename(columns={"src": "a"}), p[["kind", "dst"]].rename(columns={"dst": "a"})])
    addrs = addrs[(addrs["a"] != "nan") & (addrs["a"] != "<NA>")]
    out["talkers"] = out["kind"].map(addrs.groupby("kind")["a"].nunique()).fillna(0).astype("int64")
    pairs = p[(p["src"] != "nan") & (p["src"] != "<NA>")].groupby(["kind", "src", "dst"]).size().rename("n").reset_index()
    pairs = pairs.sort_values(["kind", "n", "src", "dst"], ascending=[True, False, True, True])
    tops = pairs.groupby("kind").head(top)
    text = tops.assign(t=tops["src"] + " > " + tops["dst"] + " (" + tops["n"].astype(str) + ")")
    out["top_talkers"] = out["kind"].map(text.groupby("kind")["t"].agg(", ".join)).fillna("")
    order = {k: i for i, k in enumerate(STREAM_KINDS)}
    out = out.assign(_o=out["kind"].map(order).fillna(9)).sort_values(["_o", "bytes"], ascending=[True, False])
    return _typed_other(out[names].reset_index(drop=True))


def _typed_other(out: pd.DataFrame) -> pd.DataFrame:
    for c in OTHER_TRAFFIC:
        if c.dtype == "category":
            out[c.name] = out[c.name].astype(str).astype("category") if len(out) else pd.Categorical([])
        elif c.dtype == "Int64":
            out[c.name] = out[c.name].astype("Int64")
        else:
            out[c.name] = out[c.name].astype(c.dtype)
    return out
