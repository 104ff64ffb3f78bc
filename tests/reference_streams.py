"""The pandas streams implementation that probekit.analysis.streams replaced (groupby aggregations,
per-stream Python, two vectorised look-ups per frame), with the UDP rules added the plain way (a
Python walk over each destination's ports for the tracer runs): the reference the compiled version is
tested against (tests/test_streams.py). Not used by probekit itself.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from probekit.analysis.connections import LIKELY_SERVER_PORTS
from probekit.analysis.streams import _evidence, _frame_rows, _l3_is, _norm_key, _obj, _port_array, _typed, stream_key
from probekit.schema import (
    OTHER_TRAFFIC,
    SOURCE_STREAM_KEYS,
    STREAM_COLUMNS,
    STREAM_KEYS,
    STREAM_KINDS,
)

__all__ = ["other_traffic", "select_probe_streams", "stream_key", "streams"]

_SS = list(SOURCE_STREAM_KEYS)
_PROTO = {"icmp": 1, "icmpv6": 58, "tcp": 6, "udp": 17}
_NS = 1_000_000_000


def _is(s: pd.Series, value: str) -> np.ndarray:
    """s == value, by category code when categorical."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        i = s.cat.categories.get_indexer([value])[0]
        return s.cat.codes.to_numpy() == i if i >= 0 else np.zeros(len(s), bool)
    return (s.astype(object) == value).to_numpy()


def _ports(s: pd.Series) -> np.ndarray:
    """Ports as int64 with -1 for <NA>."""
    try:
        return s.to_numpy("int64", na_value=-1)
    except (TypeError, ValueError):
        return s.to_numpy("float64", na_value=-1).astype(np.int64)


def _codes_in(s: pd.Series, cats: pd.Index) -> np.ndarray:
    """Positions of s's values in ``cats`` (-1 where absent), by mapping categories, not values."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        m = cats.get_indexer(s.cat.categories)
        c = s.cat.codes.to_numpy()
        return np.where(c >= 0, m[np.maximum(c, 0)] if len(m) else -1, -1).astype(np.int64)
    return cats.get_indexer(s.astype(object)).astype(np.int64)


def _connection_data(packets: pd.DataFrame, probes: pd.DataFrame) -> np.ndarray:
    """True for each TCP probe whose connection carried data after the SYN: a segment with payload, in
    either direction, on the probe's 4-tuple, later than the SYN and before the next SYN of that tuple."""
    out = np.zeros(len(probes), bool)
    tcp = _is(probes["protocol"], "tcp")
    if not tcp.any() or packets.empty:
        return out
    cats = packets["src"].cat.categories
    pr = probes[tcp]
    a = _codes_in(pr["source"], cats)
    b = _codes_in(pr["destination"], cats)
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


def _udp_data(packets, probes) -> np.ndarray:
    out = np.zeros(len(probes), bool)
    udp = np.flatnonzero((probes["protocol"].astype(str) == "udp").to_numpy())
    proto_of = packets.set_index("frame")["ip_proto"] if udp.size else None
    for i in udp:
        rf = probes["reply_frame"].iloc[i]
        if not pd.isna(rf):
            out[i] = proto_of.get(int(rf)) == 17
    return out


def tracer_ports(packets, probes, tracer_min_ports=3):
    """Per probe (stream port, ports covered): per destination, its UDP probes' distinct ports in runs of
    consecutive values; a run of at least tracer_min_ports ports sent with more than one TTL is one
    stream at its lowest port. The ports are the requests' own (``dst_port`` when the table has it)."""
    port = _ports(probes["dst_port"] if "dst_port" in probes.columns else probes["port"])
    span = (port >= 0).astype(np.int64)
    udp = [int(i) for i in np.flatnonzero((probes["protocol"].astype(str) == "udp").to_numpy() & (port >= 0))]
    if not udp:
        return port, span
    ttl_of = packets.set_index("frame")["ttl"].astype("float64")
    by_dst = {}
    for i in udp:
        by_dst.setdefault(str(probes["destination"].iloc[i]), []).append(i)
    rf = probes["request_frame"].to_numpy("int64")
    for rows in by_dst.values():
        ports = sorted({int(port[i]) for i in rows})
        runs, cur = [], [ports[0]]
        for p in ports[1:]:
            if p == cur[-1] + 1:
                cur.append(p)
            else:
                runs.append(cur)
                cur = [p]
        runs.append(cur)
        for run in runs:
            members = [i for i in rows if run[0] <= port[i] <= run[-1]]
            ttls = {ttl_of.get(int(rf[i])) for i in members} - {None}
            ttls = {t for t in ttls if t == t}
            if len(run) >= tracer_min_ports and len(ttls) > 1:
                for i in members:
                    port[i], span[i] = run[0], len(run)
    return port, span


def _group_median(gid: np.ndarray, values: np.ndarray, ngroups: int) -> np.ndarray:
    """Median of ``values`` per group (NaNs ignored; NaN for a group without values)."""
    med = pd.Series(values).groupby(gid).median()
    return med.reindex(np.arange(ngroups)).to_numpy("float64")


def _group_nunique(gid: np.ndarray, values: np.ndarray, ngroups: int) -> np.ndarray:
    """Distinct non-NaN integer values per group (payload lengths fit 17 bits)."""
    ok = ~np.isnan(values)
    u = np.unique(gid[ok].astype(np.int64) * 131072 + values[ok].astype(np.int64))
    return np.bincount(u // 131072, minlength=ngroups)


def _source_streams(packets: pd.DataFrame, probes: pd.DataFrame, tolerance: float, tracer_min_ports=3) -> pd.DataFrame:
    """Per source stream: counts, schedule, data, payload — numpy over the probes sorted by stream and time."""
    addrs = _address_index(packets, probes)
    protos = pd.Index(list(_PROTO) + sorted(set(_obj(probes["protocol"].drop_duplicates())) - set(_PROTO)))
    pc = _codes_in(probes["protocol"], protos)
    sc = _codes_in(probes["source"], addrs)
    dc = _codes_in(probes["destination"], addrs)
    port, span = tracer_ports(packets, probes, tracer_min_ports)
    ts = probes["ts_ns"].to_numpy("int64")
    rows = _frame_rows(packets, probes["request_frame"].to_numpy("int64"))
    plen_all = packets["payload_len"].to_numpy("float64", na_value=np.nan)
    plen = np.where(rows >= 0, plen_all[np.maximum(rows, 0)], np.nan) if len(rows) else np.zeros(0)
    data = _connection_data(packets, probes) | _udp_data(packets, probes)
    key = _packed(pc, sc, dc, port, len(addrs)) if len(protos) <= 15 else \
        pd.MultiIndex.from_arrays([pc, sc, dc, port]).factorize()[0]
    order = np.lexsort((ts, key))
    k, t = key[order], ts[order]
    new = np.ones(len(k), bool)
    new[1:] = k[1:] != k[:-1]
    gid = np.cumsum(new) - 1
    ng = int(gid[-1]) + 1
    first = np.flatnonzero(new)
    cnt = np.bincount(gid, minlength=ng)
    last = first + cnt - 1
    gap = np.full(len(k), np.nan)
    gap[1:] = np.where(~new[1:], np.diff(t) / _NS, np.nan)
    med = _group_median(gid, gap, ng)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = gap / med[gid]
        near = np.abs(ratio - np.maximum(np.round(ratio), 1)) <= tolerance   # within 20 % of a whole period
    has_gap = ~np.isnan(gap) & (med[gid] > 0)
    gaps = np.bincount(gid, weights=has_gap, minlength=ng)
    nears = np.bincount(gid, weights=has_gap & near, minlength=ng)
    o = order[first]
    a = np.asarray(addrs.astype(object), dtype=object)
    ss = pd.DataFrame({
        "protocol": np.asarray(protos.astype(object), dtype=object)[pc[o]], "source": a[sc[o]],
        "destination": a[dc[o]], "port": port[o], "ports": span[o], "requests": cnt, "first_ns": t[first], "last_ns": t[last],
        "gap_median_s": med, "gaps": gaps.astype(np.int64), "near": nears.astype(np.int64),
        "data": np.bincount(gid, weights=data[order], minlength=ng).astype(np.int64),
        "payload_len_median": _group_median(gid, plen[order], ng),
        "payload_lengths": _group_nunique(gid, plen[order], ng)})
    with np.errstate(invalid="ignore", divide="ignore"):
        ss["on_schedule_pct"] = np.where(ss["gaps"] > 0, 100.0 * ss["near"] / ss["gaps"], np.nan)
    return ss


def _address_index(packets: pd.DataFrame, probes: pd.DataFrame) -> pd.Index:
    """The packets' address categories, plus any probe address they lack."""
    cats = packets["src"].cat.categories if len(packets) else pd.Index([])
    extra = []
    for c in ("source", "destination"):
        v = probes[c].cat.categories if isinstance(probes[c].dtype, pd.CategoricalDtype) else pd.Index(probes[c].unique())
        extra += list(np.asarray(v.astype(object))[cats.get_indexer(v) < 0])
    return cats.append(pd.Index(sorted(set(extra)), dtype=cats.dtype)) if extra else cats


def streams(packets: pd.DataFrame, probes: pd.DataFrame, fingerprints: pd.DataFrame | None = None,
            overrides: dict | None = None, *, min_requests: int = 10, on_schedule_pct: float = 80.0,
            tolerance: float = 0.2, client_data_pct: float = 50.0, probe_data_pct: float = 10.0,
            scan_min_targets: int = 8, scan_max_per_target: int = 2, tracer_min_ports: int = 3) -> pd.DataFrame:
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
    ss = _source_streams(packets, probes, tolerance, tracer_min_ports)
    # a scanner's fan-out: targets each source sent only one or two requests to
    few = ss["requests"] <= scan_max_per_target
    fan = ss[few].groupby("source").size()
    ss["source_targets"] = ss["source"].map(fan).fillna(0).astype("int64")
    is_tcp = (ss["protocol"] == "tcp").to_numpy()
    is_udp = (ss["protocol"] == "udp").to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        data_pct = np.where(is_tcp | is_udp, 100.0 * ss["data"] / ss["requests"], np.nan)
    ss["data_pct"] = data_pct
    service_ports = {int(p.split("/")[0]) for p in LIKELY_SERVER_PORTS if p.endswith("/udp")}
    service = is_udp & ss["port"].isin(service_ports).to_numpy() & (ss["ports"] == 1).to_numpy()
    scan = few.to_numpy() & (ss["source_targets"].to_numpy() >= scan_min_targets)
    client = ((is_tcp | is_udp) & (np.nan_to_num(data_pct, nan=0.0) >= client_data_pct)) | service
    sched = ss["on_schedule_pct"].to_numpy("float64")
    enough = ss["requests"].to_numpy() >= min_requests
    regular = np.nan_to_num(sched, nan=0.0) >= on_schedule_pct
    quiet = ~(is_tcp | is_udp) | (np.nan_to_num(data_pct, nan=0.0) <= probe_data_pct)
    probe = enough & regular & quiet
    kind = np.select([scan, client, probe], ["scan", "client", "probe"], "other")
    rule = np.select([scan, service, client, probe], ["scan", "service", "client", "probe"],
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
    out = g.agg(ports=("ports", "max"), sources=("source", "size"), source_list=("source", lambda s: ",".join(sorted(s))),
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
        out["data_pct"] = np.where(out["protocol"].isin(["tcp", "udp"]), 100.0 * out["data"] / out["requests"], np.nan)
    out["evidence"] = [_evidence(r, min_requests, on_schedule_pct, client_data_pct, scan_min_targets,
                                 scan_max_per_target) for r in out.itertuples(index=False)]
    out["port"] = _port_array(out["port"])
    order = {k: i for i, k in enumerate(STREAM_KINDS)}
    out = out.assign(_k=out["kind"].map(order)).sort_values(["_k", "requests", "protocol", "destination"],
                                                             ascending=[True, False, True, True], kind="stable")
    return _typed(out[list(STREAM_COLUMNS)].reset_index(drop=True))


def _stream_sources(streams: pd.DataFrame, kinds) -> pd.DataFrame:
    """(protocol, source, destination, port, kind) for every source of the chosen kinds' rows (per stream
    row), one row per port a tracer stream covers."""
    s = streams[streams["kind"].isin(list(kinds))] if kinds is not None else streams
    rows = []
    has_ports = "ports" in s.columns
    for r in s.itertuples(index=False):                     # per stream row, not per packet
        port = -1 if pd.isna(r.port) else int(r.port)
        n = int(r.ports) if has_ports and port >= 0 and not pd.isna(r.ports) else 1
        for src in str(r.source_list).split(","):
            for p in range(port, port + max(n, 1)):
                rows.append((str(r.protocol), src, str(r.destination), p, str(r.kind)))
    return pd.DataFrame(rows, columns=[*_SS, "kind"])


def _packed(proto, src, dst, port, n_addr: int) -> np.ndarray:
    """One int64 per (protocol code < 16, source code, destination code, port); exact for up to a million
    addresses (the address pair needs 40 bits, the port 17, the protocol 4)."""
    n = np.int64(max(n_addr, 1) + 1)
    pair = (np.asarray(src, np.int64) + 1) * n + (np.asarray(dst, np.int64) + 1)
    if n > 1_000_001:  # pragma: no cover
        from probekit.errors import ProbekitError
        raise ProbekitError(f"{n - 1:,} distinct addresses: the stream keys are packed for up to a million")
    return (pair * 65537 + (np.asarray(port, np.int64) + 1)) * 16 + (np.asarray(proto, np.int64) & 15)


def select_probe_streams(probes: pd.DataFrame, streams: pd.DataFrame, kinds=("probe",), keys=None,
                         exclude=None) -> pd.DataFrame:
    """The rows of ``probes`` in streams of the given ``kinds`` (default: the probe streams), plus the
    streams named in ``keys`` and minus those in ``exclude`` (keys as for ``streams(overrides=...)``).
    ``kinds=None`` keeps every kind (the --all-streams view)."""
    sel = _stream_sources(streams, kinds)
    addrs = pd.Index(sorted(set(sel["source"]) | set(sel["destination"])), dtype=object)
    protos = pd.Index(list(_PROTO) + sorted(set(sel["protocol"]) - set(_PROTO)), dtype=object)
    pc = _codes_in(probes["protocol"], protos)
    sc = _codes_in(probes["source"], addrs)
    dc = _codes_in(probes["destination"], addrs)
    port = _ports(probes["port"])
    pk = _packed(pc, sc, dc, port, len(addrs))
    want = _packed(protos.get_indexer(sel["protocol"]), addrs.get_indexer(sel["source"]),
                   addrs.get_indexer(sel["destination"]), sel["port"].to_numpy(np.int64), len(addrs))
    keep = np.isin(pk, want) & (pc >= 0) & (sc >= 0) & (dc >= 0) if len(sel) else np.zeros(len(probes), bool)
    keep = np.array(keep, copy=True) if kinds is not None else np.ones(len(probes), bool)

    def named(ks):
        m = np.zeros(len(probes), bool)
        for key in ks or ():                                 # per named key
            k = _norm_key(key)
            hit = _is(probes["protocol"], k[0]) & (port == k[-1]) & _is(probes["destination"], k[-2])
            if len(k) == 4:
                hit &= _is(probes["source"], k[1])
            m |= hit
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


_FALLBACK = ("arp", "dns", "ntp", "udp", "icmp", "tcp", "ip", "non-ip")
PACKET_KINDS = STREAM_KINDS + _FALLBACK


def packet_kind_codes(packets: pd.DataFrame, streams: pd.DataFrame) -> np.ndarray:
    """Index into PACKET_KINDS of every frame (see packet_kinds)."""
    n = len(packets)
    kind = np.full(n, -1, np.int8)
    if n == 0:
        return kind
    cats = packets["src"].cat.categories
    src = packets["src"].cat.codes.to_numpy("int64")
    dst = packets["dst"].cat.codes.to_numpy("int64")
    proto = packets["ip_proto"].to_numpy("int64", na_value=-1)
    sport, dport = _ports(packets["sport"]), _ports(packets["dport"])
    typ = packets["icmp_type"].to_numpy("int64", na_value=-1)
    nc = len(cats)
    if len(streams):
        t = _stream_sources(streams, None)
        a = cats.get_indexer(t["source"])
        b = cats.get_indexer(t["destination"])
        ok = (a >= 0) & (b >= 0)
        num = t["protocol"].map(_PROTO).fillna(0).to_numpy(np.int64)
        num = np.select([num == 1, num == 6, num == 17, num == 58], [1, 2, 3, 4], 15)
        lk = _packed(num, a, b, t["port"].to_numpy(np.int64), nc)[ok]
        lv = np.array([STREAM_KINDS.index(k) for k in t["kind"]], np.int64)[ok]
        srt = np.argsort(lk, kind="stable")
        lk, lv = lk[srt], lv[srt]
        is_icmp = np.isin(proto, (1, 58))
        req_ok = np.where(is_icmp, typ == np.where(proto == 1, 8, 128), True) & (proto >= 0)
        rep_ok = np.where(is_icmp, typ == np.where(proto == 1, 0, 129), True) & (proto >= 0)
        small = np.full(n, 14, np.int64)
        for num_, code_ in ((1, 1), (6, 2), (17, 3), (58, 4)):
            small[proto == num_] = code_
        for x, y, port, good in ((src, dst, np.where(is_icmp, -1, dport), req_ok),
                                 (dst, src, np.where(is_icmp, -1, sport), rep_ok)):
            q = _packed(small, x, y, port, nc)
            i = np.minimum(np.searchsorted(lk, q), max(len(lk) - 1, 0))
            found = (lk[i] == q) if len(lk) else np.zeros(len(q), bool)
            m = (kind < 0) & good & found & (x >= 0) & (y >= 0)
            kind[m] = lv[i[m]].astype(np.int8)
    rest = np.flatnonzero(kind < 0)
    if not rest.size:
        return kind
    pr_, sp_, dp_ = proto[rest], sport[rest], dport[rest]
    udp = pr_ == 17
    dns = udp & ((sp_ == 53) | (dp_ == 53) | (sp_ == 5353) | (dp_ == 5353))
    ntp = udp & ((sp_ == 123) | (dp_ == 123))
    off = len(STREAM_KINDS)
    fallback = np.select([_l3_is(packets, "arp")[rest], dns, ntp, udp, np.isin(pr_, (1, 58)), pr_ == 6,
                          _l3_is(packets, "ipv4", "ipv6")[rest]], list(range(off, off + 7)), off + 7)
    kind[rest] = fallback.astype(np.int8)
    return kind


def packet_kinds(packets: pd.DataFrame, streams: pd.DataFrame) -> pd.Series:
    """The kind of every frame: the kind of the source stream it belongs to (its requests and the answers
    to them, by addresses, protocol and port), else what it is (arp, dns, ntp, udp, icmp, tcp, ip, non-ip)."""
    codes = packet_kind_codes(packets, streams)
    return pd.Series(pd.Categorical.from_codes(codes, categories=list(PACKET_KINDS)), index=packets.index, name="kind")


def other_traffic(packets: pd.DataFrame, streams: pd.DataFrame, top: int = 3) -> pd.DataFrame:
    """Everything that is not a probe stream, summarised per kind: talkers, frames, bytes, span
    (schema.OTHER_TRAFFIC)."""
    codes = packet_kind_codes(packets, streams)
    m = codes != STREAM_KINDS.index("probe")
    names = [c.name for c in OTHER_TRAFFIC]
    if not m.any():
        return _typed_other(pd.DataFrame({c: [] for c in names}))
    k = codes[m].astype(np.int64)
    src = packets["src"].cat.codes.to_numpy("int64")[m]
    dst = packets["dst"].cat.codes.to_numpy("int64")[m]
    p = pd.DataFrame({"k": k, "src": src, "dst": dst, "wirelen": packets["wirelen"].to_numpy("int64")[m],
                      "ts_ns": packets["ts_ns"][m].reset_index(drop=True)})
    g = p.groupby("k", sort=True)
    out = g.agg(packets=("wirelen", "size"), bytes=("wirelen", "sum"), first_ns=("ts_ns", "min"),
                last_ns=("ts_ns", "max")).reset_index()
    both = pd.DataFrame({"k": np.concatenate([k, k]), "a": np.concatenate([src, dst])})
    out["talkers"] = out["k"].map(both[both["a"] >= 0].groupby("k")["a"].nunique()).fillna(0).astype("int64")
    pairs = p[p["src"] >= 0].groupby(["k", "src", "dst"]).size().rename("n").reset_index()
    pairs = pairs.sort_values(["k", "n", "src", "dst"], ascending=[True, False, True, True]).groupby("k").head(top)
    a = np.asarray(packets["src"].cat.categories.astype(object), dtype=object)
    text = [f"{a[s_]} > {a[d_] if d_ >= 0 else '?'} ({n_})" for s_, d_, n_ in
            zip(pairs["src"].tolist(), pairs["dst"].tolist(), pairs["n"].tolist())]   # at most top per kind
    pairs = pairs.assign(t=text)
    out["top_talkers"] = out["k"].map(pairs.groupby("k")["t"].agg(", ".join)).fillna("")
    out["kind"] = np.asarray(PACKET_KINDS, dtype=object)[out["k"].to_numpy()]
    out = out.sort_values(["k", "bytes"], ascending=[True, False])
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
