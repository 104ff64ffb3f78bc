"""The pandas probe matching that probekit.analysis.match replaced, kept verbatim as the reference its
compiled kernels are tested against (tests/test_kernels_analysis.py). Not used by probekit itself.

ICMP/ICMPv6 echo requests meet their replies by (addresses, identifier, sequence number); TCP SYNs meet
SYN/ACKs by 4-tuple and ack = ISN + 1, RST/ACKs by 4-tuple and ack = ISN + 1 (+ SYN data), and the
prober's RST by 4-tuple and seq = ISN + 1. Requests with the same identity within ``resend_window_s``
are one probe sent again; a reply is given to the latest request with its identity before it.

Since issue 13 (written here the plain way, as the matcher has them): a request re-sent with another
IP TTL is a new probe and a UDP request is never a re-send; ``port`` is the stream's port (a tracer's
UDP probes to rising ports: the lowest of the run, by tests/reference_streams.py's plain walk) and
``dst_port`` the request's own.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

import reference_streams
from probekit.schema import OUTCOMES, PROBE_COLUMNS

__all__ = ["match_probes", "detect_vantage"]

INITIAL_TTLS = (32, 64, 128, 255)
_NS = 1_000_000_000


def match_probes(packets: pd.DataFrame, timeout_s: float = 1.0, vantage: str = "auto",
                 resend_window_s: float = 30.0, reply_window_s: float = 120.0, keep_orphans: bool = False):
    """One row per probe (request), with its outcome and RTT.

    timeout_s: a reply later than this makes the probe ``late`` (lost for the metrics).
    vantage: 'prober' or 'target' (where the capture was taken) or 'auto' (decided from the TTLs: the
    capturing host's own packets leave with an initial TTL such as 64).
    resend_window_s: requests with one identity this close together are one probe sent again.
    reply_window_s: a reply later than this after every request of its identity is an orphan.
    keep_orphans: also return the replies that found no request, as a second table (the scale path
    matches them against the next file's unjudged probes).
    ``df.attrs``: vantage, timeout_s, capture_end_ns, orphan_replies (replies with no request in the
    capture, e.g. a capture started late).
    """
    if vantage not in ("auto", "prober", "target"):
        raise ValueError("vantage must be 'auto', 'prober' or 'target'")
    req, rep, rst = _icmp_sides(packets)
    treq, trep, trst = _tcp_sides(packets)
    ureq, urep = _udp_sides(packets)
    req = pd.concat([req, treq, ureq], ignore_index=True)
    rep = pd.concat([rep, trep, urep], ignore_index=True)
    rst = trst
    end_ns = int(packets["ts_ns"].max()) if len(packets) and packets["ts_ns"].notna().any() else 0
    if vantage == "auto":
        vantage = detect_vantage(req, rep)
    probes = _dedupe(req, int(resend_window_s * _NS))
    probes = _attach_replies(probes, rep, int(reply_window_s * _NS))
    probes = _attach_resets(probes, rst)
    late = probes["reply_delay_ns"] > timeout_s * _NS
    got = probes["reply_delay_ns"].notna()
    refused = probes["reply_kind"].isin([RST_ACK, PORT_UNREACHABLE])
    outcome = np.select([got & ~late & refused, got & ~late, got & late,
                         ~got & (probes["ts_ns"] + timeout_s * _NS > end_ns)],
                        ["refused", "answered", "late", "unknown"], "lost")
    cats = packets["src"].cat.categories
    rtt = probes["reply_delay_ns"].where(got & ~late) / 1e3
    out = pd.DataFrame({
        "ts_ns": probes["ts_ns"].astype("int64"),
        "protocol": pd.Categorical.from_codes(probes["protocol"].astype(int), categories=["icmp", "icmpv6", "tcp", "udp"]),
        "source": pd.Categorical.from_codes(probes["a"].astype(int), categories=cats),
        "destination": pd.Categorical.from_codes(probes["b"].astype(int), categories=cats),
        "port": probes["port"].astype("UInt16"),
        "dst_port": probes["port"].astype("UInt16"),
        "size": probes["size"].astype("Int32"),
        "ident": probes["ident"].astype("UInt32"),
        "seq": probes["seq"].astype("UInt32"),
        "outcome": pd.Categorical(outcome, categories=list(OUTCOMES)),
        "rtt_us": rtt.astype("float64"),
        "reply_delay_us": (probes["reply_delay_ns"] / 1e3).astype("float64"),
        "request_frame": probes["frame"].astype("int64"),
        "reply_frame": probes["reply_frame"].astype("Int64"),
        "reset_frame": probes["reset_frame"].astype("Int64"),
        "reset_after_us": probes["reset_after_us"].astype("float64"),
        "retransmits": probes["retransmits"].astype("int32"),
        "extra_replies": probes["extra_replies"].astype("int32"),
    })
    out = _drop_unused(out).sort_values(["ts_ns", "request_frame"], kind="stable").reset_index(drop=True)
    port, span = reference_streams.tracer_ports(packets, out)
    out["port"] = pd.array([p if p >= 0 else pd.NA for p in port], dtype="UInt16")
    assert tuple(out.columns) == PROBE_COLUMNS
    out.attrs.update(vantage=vantage, timeout_s=timeout_s, capture_end_ns=end_ns,
                     orphan_replies=int(probes.attrs.get("orphans", 0)), path=packets.attrs.get("path"))
    if keep_orphans:
        orphans = probes.attrs.get("orphan_rows")
        cats = packets["src"].cat.categories
        if orphans is None or orphans.empty:
            orphans = pd.DataFrame(columns=["protocol", "source", "destination", "ident", "port", "seq", "ts_ns",
                                            "frame", "kind", "ack_raw"])
        else:
            orphans = pd.DataFrame({
                "protocol": np.array(["icmp", "icmpv6", "tcp", "udp"])[orphans["protocol"].to_numpy(int)],
                "source": np.asarray(cats)[orphans["a"].to_numpy(int)],
                "destination": np.asarray(cats)[orphans["b"].to_numpy(int)],
                "ident": orphans["ident"].to_numpy("int64"), "port": orphans["port"].astype("Int64"),
                "seq": orphans["seq"].to_numpy("int64"), "ts_ns": orphans["ts_ns"].to_numpy("int64"),
                "frame": orphans["frame"].to_numpy("int64"), "kind": orphans["kind"].to_numpy("int64"),
                "ack_raw": orphans["ack_raw"].to_numpy("float64") if "ack_raw" in orphans else np.nan})
        return out, orphans
    return out


def detect_vantage(req: pd.DataFrame, rep: pd.DataFrame) -> str:
    """'prober' when requests leave with an initial TTL and replies arrive with less; 'target' the other
    way round; 'prober' when it cannot tell."""
    def initial_share(ttl):
        ttl = ttl.dropna()
        return float(ttl.isin(INITIAL_TTLS).mean()) if len(ttl) else np.nan
    a, b = initial_share(req.get("ttl", pd.Series(dtype=float))), initial_share(rep.get("ttl", pd.Series(dtype=float)))
    if not np.isnan(a) and not np.isnan(b) and b > a:
        return "target"
    return "prober"


# ---------------------------------------------------------------------------------------- sides
def _base(p: pd.DataFrame, m: np.ndarray) -> pd.DataFrame:
    sub = p.loc[m]
    return pd.DataFrame({
        "ts_ns": sub["ts_ns"].to_numpy("int64", na_value=-1),
        "frame": sub["frame"].to_numpy("int64"),
        "src": sub["src"].cat.codes.to_numpy("int64"),
        "dst": sub["dst"].cat.codes.to_numpy("int64"),
        "ttl": sub["ttl"].to_numpy("float64", na_value=np.nan),
        "size": (sub["ip_len"] - sub["ip_hdr_len"]).to_numpy("float64", na_value=np.nan),
    })


def _icmp_sides(p: pd.DataFrame):
    proto = p["ip_proto"].to_numpy("int64", na_value=-1)
    typ = p["icmp_type"].to_numpy("int64", na_value=-1)
    # an echo cut after its id (no seq captured) is no request: the rule the matcher follows since the
    # decoder keeps partial headers
    has_id = p["icmp_id"].notna().to_numpy() & p["icmp_seq"].notna().to_numpy() & p["ts_ns"].notna().to_numpy()
    v4, v6 = proto == 1, proto == 58
    sides = []
    for req_t, rep_t, name, fam in ((8, 0, 0, v4), (128, 129, 1, v6)):
        for t, is_req in ((req_t, True), (rep_t, False)):
            m = fam & (typ == t) & has_id
            d = _base(p, m)
            d["protocol"] = name
            d["ident"] = p.loc[m, "icmp_id"].to_numpy("int64")
            d["seq"] = p.loc[m, "icmp_seq"].to_numpy("int64")
            d["port"] = pd.array([pd.NA] * int(m.sum()), dtype="Int64")
            if is_req:
                d["a"], d["b"] = d["src"], d["dst"]
            else:
                d["a"], d["b"] = d["dst"], d["src"]
                d["kind"] = ECHO_REPLY
            sides.append((is_req, d))
    req = pd.concat([d for r, d in sides if r], ignore_index=True)
    rep = pd.concat([d for r, d in sides if not r], ignore_index=True)
    return req, rep, None


def _tcp_sides(p: pd.DataFrame):
    proto = p["ip_proto"].to_numpy("int64", na_value=-1)
    flags = p["tcp_flags"].to_numpy("int64", na_value=-1)
    ok = (proto == 6) & (flags >= 0) & p["ts_ns"].notna().to_numpy()
    syn = ok & ((flags & 0x12) == 0x02) & ((flags & 0x04) == 0)
    synack = ok & ((flags & 0x12) == 0x12) & ((flags & 0x04) == 0)
    rstack = ok & ((flags & 0x16) == 0x14)
    rst = ok & ((flags & 0x16) == 0x04)
    seq = p["tcp_seq"].to_numpy("int64", na_value=0)
    ack = p["tcp_ack"].to_numpy("int64", na_value=0)
    sport = p["sport"].to_numpy("int64", na_value=0)
    dport = p["dport"].to_numpy("int64", na_value=0)

    def side(m, outward: bool, seqv):
        d = _base(p, m)
        d["protocol"] = 2
        if outward:
            d["a"], d["b"], d["ident"], d["port"] = d["src"], d["dst"], sport[m], dport[m]
        else:
            d["a"], d["b"], d["ident"], d["port"] = d["dst"], d["src"], dport[m], sport[m]
        d["port"] = d["port"].astype("Int64")
        d["seq"] = seqv[m] % 2**32
        return d

    req = side(syn, True, seq)
    sa = side(synack, False, ack - 1)
    sa["kind"] = SYN_ACK
    ra = side(rstack, False, ack - 1)
    ra["kind"] = RST_ACK
    ra["ack_raw"] = ack[rstack]
    rs = side(rst, True, seq - 1)
    return req, pd.concat([sa, ra], ignore_index=True), rs


def _udp_sides(p: pd.DataFrame):
    """UDP requests (the datagrams of the side that sent a 4-tuple's first datagram), replies (the other
    side's), and ICMP/ICMPv6 port unreachables sent by the quoted destination itself. A request's seq is
    its IPv4 id (0 for IPv6); a reply's is that of the latest request on its 4-tuple at or before it."""
    proto = p["ip_proto"].to_numpy("int64", na_value=-1)
    ok = (proto == 17) & p["sport"].notna().to_numpy() & p["dport"].notna().to_numpy() & p["ts_ns"].notna().to_numpy()
    u = _base(p, ok)
    u["sport"] = p.loc[ok, "sport"].to_numpy("int64")
    u["dport"] = p.loc[ok, "dport"].to_numpy("int64")
    u["ip_id"] = p.loc[ok, "ip_id"].to_numpy("float64", na_value=np.nan)
    cats = p["src"].cat.categories
    ends = pd.DataFrame({"x": list(zip(u["src"], u["sport"])), "y": list(zip(u["dst"], u["dport"]))})
    flow = [tuple(sorted(t)) for t in zip(ends["x"], ends["y"])]
    first_x = pd.Series(ends["x"].to_numpy(object)).groupby(pd.Series(flow).astype(str).to_numpy()).transform("first")
    outward = np.array([a == b for a, b in zip(ends["x"], first_x)], bool)
    u["protocol"] = 3
    u["a"] = np.where(outward, u["src"], u["dst"])
    u["b"] = np.where(outward, u["dst"], u["src"])
    u["port"] = np.where(outward, u["dport"], u["sport"])
    u["ident"] = np.where(outward, u["sport"], u["dport"])
    v4 = np.array([":" not in str(c) for c in cats])[u["src"].to_numpy(int)] if len(u) else np.zeros(0, bool)
    u["seq"] = np.where(v4 & ~np.isnan(u["ip_id"]), np.nan_to_num(u["ip_id"]), 0).astype(np.int64)
    req = u[outward].reset_index(drop=True)
    rep = u[~outward].reset_index(drop=True).assign(kind=UDP_REPLY)
    parts = [rep]
    if all(c in p.columns for c in ("quoted_src", "quoted_dst", "quoted_proto", "quoted_sport", "quoted_dport")):
        typ = p["icmp_type"].to_numpy("int64", na_value=-1)
        code = p["icmp_code"].to_numpy("int64", na_value=-1)
        pu = (((proto == 1) & (typ == 3) & (code == 3)) | ((proto == 58) & (typ == 1) & (code == 4))) \
            & p["ts_ns"].notna().to_numpy()
        e = _base(p, pu)
        sub = p.loc[pu]
        qs = sub["quoted_src"].astype(object).to_numpy()
        qd = sub["quoted_dst"].astype(object).to_numpy()
        e["a"] = [cats.get_loc(x) if isinstance(x, str) and x in cats else -1 for x in qs]
        e["b"] = [cats.get_loc(x) if isinstance(x, str) and x in cats else -1 for x in qd]
        e["qp"] = sub["quoted_proto"].astype("float64").to_numpy()
        e["port"] = sub["quoted_dport"].astype("float64").to_numpy()
        e["ident"] = sub["quoted_sport"].astype("float64").to_numpy()
        e = e[(e["qp"] == 17) & e["port"].notna() & e["ident"].notna() & (e["a"] >= 0) & (e["b"] >= 0)
              & (e["b"] == e["src"])].copy()
        e["port"] = e["port"].astype("int64")
        e["ident"] = e["ident"].astype("int64")
        e["protocol"] = 3
        parts.append(e.drop(columns=["qp"]).assign(kind=PORT_UNREACHABLE))
    rep = pd.concat(parts, ignore_index=True)
    four = ["a", "b", "port", "ident"]
    if len(rep):
        rep = rep.astype({c: "int64" for c in [*four, "ts_ns", "frame", "src", "dst"]})
        r = rep.assign(_i=np.arange(len(rep))).sort_values("ts_ns", kind="stable")
        q = req[[*four, "ts_ns", "seq"]].astype("int64").sort_values("ts_ns", kind="stable").rename(columns={"seq": "rseq"})
        m = pd.merge_asof(r, q, on="ts_ns", by=four, direction="backward") if len(q) else r.assign(rseq=np.nan)
        seq = np.full(len(rep), 0xFFFFFFFF, np.int64)
        seq[m["_i"].to_numpy()] = m["rseq"].fillna(0xFFFFFFFF).to_numpy("int64")
        rep["seq"] = seq
    for d in (req, rep):
        d["port"] = d["port"].astype("Int64")
    keep = ["ts_ns", "frame", "src", "dst", "ttl", "size", "protocol", "a", "b", "port", "ident", "seq"]
    return req[keep], rep[[*keep, "kind"]] if len(rep) else rep.reindex(columns=[*keep, "kind"])


# ------------------------------------------------------------------------------------ matching
_KEY = ["protocol", "a", "b", "ident", "port", "seq"]


ECHO_REPLY, SYN_ACK, RST_ACK, UDP_REPLY, PORT_UNREACHABLE = 0, 1, 2, 3, 4   # reply kinds


def _key_codes(*frames, cols=_KEY) -> list[np.ndarray]:
    """One integer per distinct identity, shared by every frame given. Packs the fields into int64s
    (addresses are category codes, ports 16 bits, sequence numbers 32) and factorizes those."""
    def col(name):
        parts = [f[name] for f in frames]
        if name == "port":
            return np.concatenate([p.to_numpy("float64", na_value=np.nan) for p in parts])
        return np.concatenate([np.asarray(p, dtype=np.int64) for p in parts])
    proto, a, b = col("protocol"), col("a"), col("b")
    port = col("port")
    port = np.where(np.isnan(port), 65536, port).astype(np.int64)
    if a.size and max(a.max(), b.max()) >= 1 << 20:  # pragma: no cover - over a million addresses
        pair = pd.MultiIndex.from_arrays([proto, a, b, port]).factorize()[0]
    else:
        pair = pd.factorize((proto << 57) | (a << 37) | (b << 17) | port)[0].astype(np.int64)
    ident = col("ident") & 0xFFFF
    if "seq" in cols:
        low = (ident << 32) | (col("seq") & 0xFFFFFFFF)
        if pair.size and pair.max() >= 1 << 15:
            codes = pd.MultiIndex.from_arrays([pair, low]).factorize()[0]
        else:
            codes = (pair << 48) | low
    else:
        codes = (pair << 16) | ident
    out, i = [], 0
    for f in frames:
        out.append(codes[i:i + len(f)])
        i += len(f)
    return out


def _dedupe(req: pd.DataFrame, window_ns: int) -> pd.DataFrame:
    if req.empty:
        return req.assign(key=np.zeros(0, np.int64), retransmits=np.zeros(0, np.int64))
    (key,) = _key_codes(req)
    req = req.assign(key=key).sort_values(["key", "ts_ns", "frame"], kind="stable").reset_index(drop=True)
    new = np.ones(len(req), bool)
    new[1:] = (req["key"].to_numpy()[1:] != req["key"].to_numpy()[:-1]) | (np.diff(req["ts_ns"].to_numpy()) > window_ns)
    # another TTL: a new TTL-limited probe (a retransmission keeps it); UDP: every datagram a probe
    ttl = req["ttl"].fillna(-1).to_numpy()
    new[1:] |= ttl[1:] != ttl[:-1]
    new |= (req["protocol"] == 3).to_numpy()
    probe_id = np.cumsum(new) - 1
    first = req.loc[new].copy()
    first["retransmits"] = np.bincount(probe_id) - 1
    first["probe_id"] = np.arange(len(first))
    return first.reset_index(drop=True)


def _asof(events: pd.DataFrame, probes: pd.DataFrame, by: str, tolerance_ns: int) -> np.ndarray:
    """Index of the latest probe with the same ``by`` value at or before each event (-1 if none)."""
    if events.empty or probes.empty:
        return np.full(len(events), -1)
    e = events[["ts_ns", by]].assign(_i=np.arange(len(events))).sort_values("ts_ns", kind="stable")
    p = probes[["ts_ns", by, "probe_id"]].sort_values("ts_ns", kind="stable")
    m = pd.merge_asof(e, p, on="ts_ns", by=by, direction="backward", tolerance=tolerance_ns)
    out = np.full(len(events), -1)
    out[m["_i"].to_numpy()] = m["probe_id"].fillna(-1).to_numpy("int64")
    return out


def _attach_replies(probes: pd.DataFrame, rep: pd.DataFrame, window: int) -> pd.DataFrame:
    probes = probes.copy()
    n = len(probes)
    probes["reply_delay_ns"] = np.nan
    probes["reply_frame"] = pd.array([pd.NA] * n, dtype="Int64")
    probes["reply_kind"] = -1
    probes["extra_replies"] = 0
    probes["reply_ts_ns"] = -1
    probes.attrs["orphans"] = 0
    if n == 0 or rep.empty:
        probes.attrs["orphans"] = len(rep)
        return probes
    exact = rep[rep["kind"] != RST_ACK]
    loose = rep[rep["kind"] == RST_ACK]
    pk, ek = _key_codes(probes, exact)
    probes["key"] = pk
    hit = _asof(exact.assign(key=ek), probes, "key", window)
    # RST/ACK: same 4-tuple, ack = ISN + 1 or ISN + 1 + the SYN's payload
    four = ["protocol", "a", "b", "ident", "port"]
    pk4, lk4 = _key_codes(probes, loose, cols=four)
    hit_l = _asof(loose.assign(key4=lk4), probes.assign(key4=pk4), "key4", window)
    if len(loose):
        ok = hit_l >= 0
        isn = np.where(ok, probes["seq"].to_numpy("int64")[np.maximum(hit_l, 0)], -1)
        seg = probes["size"].to_numpy("float64")[np.maximum(hit_l, 0)]
        data = np.where(np.isnan(seg), 0, seg - 20).astype(np.int64)
        ackv = loose["ack_raw"].to_numpy("int64")
        valid = ok & (((ackv - isn - 1) % 2**32 == 0) | ((ackv - isn - 1 - data) % 2**32 == 0))
        hit_l = np.where(valid, hit_l, -1)
    allrep = pd.concat([exact.assign(pid=hit), loose.assign(pid=hit_l)], ignore_index=True)
    probes.attrs["orphans"] = int((allrep["pid"] < 0).sum())
    probes.attrs["orphan_rows"] = allrep[allrep["pid"] < 0]
    matched = allrep[allrep["pid"] >= 0].sort_values(["pid", "ts_ns", "frame"], kind="stable")
    firsts = matched.drop_duplicates("pid", keep="first")
    pid = firsts["pid"].to_numpy("int64")
    t0 = probes["ts_ns"].to_numpy("int64")
    delay = np.full(n, np.nan)
    delay[pid] = firsts["ts_ns"].to_numpy("int64") - t0[pid]
    probes["reply_delay_ns"] = delay
    frame = np.full(n, -1)
    frame[pid] = firsts["frame"].to_numpy()
    probes["reply_frame"] = pd.array(np.where(frame >= 0, frame, 0), dtype="Int64")
    probes.loc[frame < 0, "reply_frame"] = pd.NA
    kind = np.full(n, -1, dtype=np.int64)
    kind[pid] = firsts["kind"].to_numpy()
    probes["reply_kind"] = kind
    probes["extra_replies"] = np.bincount(matched["pid"].to_numpy("int64"), minlength=n) - (frame >= 0)
    probes["reply_ts_ns"] = np.where(frame >= 0, t0 + np.nan_to_num(delay).astype(np.int64), -1)
    return probes


def _attach_resets(probes: pd.DataFrame, rst: pd.DataFrame) -> pd.DataFrame:
    probes = probes.copy()
    n = len(probes)
    probes["reset_frame"] = pd.array([pd.NA] * n, dtype="Int64")
    probes["reset_after_us"] = np.nan
    if n == 0 or rst is None or rst.empty:
        return probes
    pk, rk = _key_codes(probes, rst)
    hit = _asof(rst.assign(key=rk), probes.assign(key=pk), "key", 60 * _NS)
    rs = rst.assign(pid=hit)
    rs = rs[rs["pid"] >= 0]
    reply_t = probes["reply_ts_ns"].to_numpy("int64")
    # the prober's RST answers the SYN/ACK: the first RST at or after the first reply
    rs = rs[rs["ts_ns"].to_numpy() >= reply_t[rs["pid"].to_numpy()]]
    rs = rs[reply_t[rs["pid"].to_numpy()] >= 0].sort_values(["pid", "ts_ns"], kind="stable").drop_duplicates("pid")
    pid = rs["pid"].to_numpy("int64")
    frame = np.full(n, -1)
    frame[pid] = rs["frame"].to_numpy()
    after = np.full(n, np.nan)
    after[pid] = (rs["ts_ns"].to_numpy("int64") - reply_t[pid]) / 1e3
    probes["reset_frame"] = pd.array(np.where(frame >= 0, frame, 0), dtype="Int64")
    probes.loc[frame < 0, "reset_frame"] = pd.NA
    probes["reset_after_us"] = after
    return probes


def _drop_unused(df: pd.DataFrame) -> pd.DataFrame:
    for c in ("source", "destination"):
        df[c] = df[c].cat.remove_unused_categories()
    return df


