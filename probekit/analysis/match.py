"""Probe matching: the packets table → the probes table (schema.PROBES), one row per probe.

ICMP/ICMPv6 echo requests meet their replies by (addresses, identifier, sequence number); TCP SYNs meet
SYN/ACKs by 4-tuple and ack = ISN + 1, RST/ACKs by 4-tuple and ack = ISN + 1 (+ SYN data), and the
prober's RST by 4-tuple and seq = ISN + 1 (the rules are in probekit.protocol). Requests with the same
identity within ``resend_window_s`` are one probe sent again; a reply is given to the latest request
with its identity before it.

How: every request, reply and reset becomes an event with an identity (protocol, addresses, ident,
port, seq); a compiled hash join gives each identity an integer (:func:`probekit.analysis._groups.factorize_rows`), one compiled
sweep over the events in time order forms the probes and hands each reply to its probe
(:func:`_sweep`), and a third kernel picks each probe's first reply and reset (:func:`_first_per_group`).
The plain pandas implementation this replaced is kept as the test reference (tests/reference_match.py).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .._jit import njit
from ..protocol import (
    ECHO_REPLY,
    ICMP_ECHO_REPLY,
    ICMP_ECHO_REQUEST,
    ICMPV6_ECHO_REPLY,
    ICMPV6_ECHO_REQUEST,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    PORT_UNREACHABLE,
    PROBE_PROTOCOLS,
    RST_ACK,
    SYN_ACK,
    UDP_NO_REQUEST,
    UDP_REPLY,
    classify_outcome,
    is_bare_rst,
    is_port_unreachable,
    is_rst_ack,
    is_syn,
    is_syn_ack,
    reset_isn,
    rst_ack_accepts,
    syn_ack_isn,
    syn_data_len,
    udp_flow_roles,
    udp_request_seq,
)
from ..schema import ORPHANS, OUTCOMES, PROBE_COLUMNS, QUOTED_COLUMNS
from ._groups import factorize_rows as _factorize
from ._groups import factorize_words as _factorize_words

__all__ = ["match_probes", "detect_vantage"]

INITIAL_TTLS = (32, 64, 128, 255)
_NS = 1_000_000_000
_NO_PORT = 65536
_RESET_WINDOW_NS = 60 * _NS
_REQ, _EXACT, _LOOSE, _RESET = 0, 1, 2, 3   # event types, in the order they sort at equal times


def match_probes(packets: pd.DataFrame, timeout_s: float = 1.0, vantage: str = "auto",
                 resend_window_s: float = 30.0, reply_window_s: float = 120.0, keep_orphans: bool = False):
    """One row per probe (request), with its outcome and RTT.

    timeout_s: a reply later than this makes the probe ``late`` (lost for the metrics).
    vantage: 'prober' or 'target' (where the capture was taken) or 'auto' (decided from the TTLs: the
    capturing host's own packets leave with an initial TTL such as 64).
    resend_window_s: requests with one identity this close together are one probe sent again.
    reply_window_s: a reply later than this after every request of its identity is an orphan.
    keep_orphans: also return the replies that found no request (schema.ORPHANS), as a second table
    (the scale path matches them against the next file's unjudged probes).
    ``df.attrs``: vantage, timeout_s, capture_end_ns, orphan_replies (replies with no request in the
    capture, e.g. a capture started late).
    """
    if vantage not in ("auto", "prober", "target"):
        raise ValueError("vantage must be 'auto', 'prober' or 'target'")
    ev = _events(packets)
    ts_all = packets["ts_ns"]
    end_ns = int(ts_all.max()) if len(packets) and ts_all.notna().any() else 0
    if vantage == "auto":
        vantage = _vantage_from_ttls(ev["ttl"][ev["etype"] == _REQ], ev["ttl"][(ev["etype"] == _EXACT)
                                                                              | (ev["etype"] == _LOOSE)])
    m = _join(ev, int(resend_window_s * _NS), int(reply_window_s * _NS))
    probes, orphan_idx = _probe_columns(ev, m)
    delay = probes["reply_delay_ns"]
    outcome = classify_outcome(probes["reply_kind"], delay, timeout_s * _NS,
                               unjudged=probes["ts_ns"] + timeout_s * _NS > end_ns, codes=True)
    rtt_ok = (outcome == OUTCOMES.index("answered")) | (outcome == OUTCOMES.index("refused"))
    cats = packets["src"].cat.categories
    order = _time_order(probes["ts_ns"], probes["frame"])
    n = order.size

    def take(a):
        return a[order]

    def nullable(a, dtype):
        return _masked(take(a), dtype)

    out = pd.DataFrame({
        "ts_ns": take(probes["ts_ns"]),
        "protocol": pd.Categorical.from_codes(take(probes["protocol"]), categories=list(PROBE_PROTOCOLS)),
        "source": pd.Categorical.from_codes(take(probes["a"]), categories=cats),
        "destination": pd.Categorical.from_codes(take(probes["b"]), categories=cats),
        "port": _masked(np.where(take(probes["port"]) == _NO_PORT, -1, take(probes["port"])), "UInt16"),
        "size": _masked(take(probes["size"]), "Int32"),
        "ident": pd.array(take(probes["ident"]).astype(np.uint32), dtype="UInt32"),
        "seq": pd.array(take(probes["seq"]).astype(np.uint32), dtype="UInt32"),
        "outcome": pd.Categorical.from_codes(take(outcome).astype(np.int8), categories=list(OUTCOMES)),
        "rtt_us": np.where(take(rtt_ok), take(delay) / 1e3, np.nan),
        "reply_delay_us": take(delay) / 1e3,
        "request_frame": take(probes["frame"]),
        "reply_frame": nullable(probes["reply_frame"], "Int64"),
        "reset_frame": nullable(probes["reset_frame"], "Int64"),
        "reset_after_us": take(probes["reset_after_us"]),
        "retransmits": take(probes["retransmits"]).astype(np.int32),
        "extra_replies": take(probes["extra_replies"]).astype(np.int32),
    }, index=pd.RangeIndex(n))
    for c in ("source", "destination"):
        out[c] = out[c].cat.remove_unused_categories()
    assert tuple(out.columns) == PROBE_COLUMNS
    out.attrs.update(vantage=vantage, timeout_s=timeout_s, capture_end_ns=end_ns,
                     orphan_replies=int(orphan_idx.size), path=packets.attrs.get("path"))
    if keep_orphans:
        return out, _orphans(ev, orphan_idx, cats)
    return out


def detect_vantage(req: pd.DataFrame, rep: pd.DataFrame) -> str:
    """'prober' when requests leave with an initial TTL and replies arrive with less; 'target' the other
    way round; 'prober' when it cannot tell. ``req``/``rep``: anything with a ``ttl`` column."""
    def ttl(d):
        t = d.get("ttl") if hasattr(d, "get") else None
        return np.zeros(0) if t is None else np.asarray(pd.Series(t).to_numpy("float64", na_value=np.nan))
    return _vantage_from_ttls(ttl(req), ttl(rep))


def _vantage_from_ttls(req_ttl: np.ndarray, rep_ttl: np.ndarray) -> str:
    def initial_share(t):
        t = t[~np.isnan(t)]
        return float(np.isin(t, INITIAL_TTLS).mean()) if t.size else np.nan
    a, b = initial_share(req_ttl), initial_share(rep_ttl)
    if not np.isnan(a) and not np.isnan(b) and b > a:
        return "target"
    return "prober"


# ------------------------------------------------------------------------------------------ events
def _events(p: pd.DataFrame) -> dict:
    """Requests, replies and resets of the packets table as one set of event columns (numpy), in the
    order: ICMP, ICMPv6 echo requests, SYNs, UDP requests | echo replies, SYN/ACKs, UDP replies, port
    unreachables from the destination | RST/ACKs | bare RSTs (each in frame order). Which packet is which
    is decided by probekit.protocol; a kernel lays the fields out."""
    has_ts = p["ts_ns"].notna().to_numpy()
    proto = p["ip_proto"].to_numpy("int16", na_value=-1)
    typ = p["icmp_type"].to_numpy("int16", na_value=-1)
    # an echo header cut by the snap length keeps its id but not its seq: not a matchable request
    icmp_ok = p["icmp_id"].notna().to_numpy() & p["icmp_seq"].notna().to_numpy() & has_ts
    flags = p["tcp_flags"].to_numpy("int32", na_value=0)
    tcp_ok = (proto == IPPROTO_TCP) & p["tcp_flags"].notna().to_numpy() & has_ts
    v4, v6 = (proto == IPPROTO_ICMP) & icmp_ok, (proto == IPPROTO_ICMPV6) & icmp_ok
    src, dst = p["src"].cat.codes.to_numpy(np.int64), p["dst"].cat.codes.to_numpy(np.int64)
    sport, dport = _raw(p["sport"], 0), _raw(p["dport"], 0)
    udp = _udp_events(p, proto, typ, has_ts, src, dst, sport, dport)
    classes = [  # (mask, event type, protocol code, outward (a = src), reply kind); order = _CLASS_*
        (v4 & (typ == ICMP_ECHO_REQUEST), _REQ, 0, True, -1),
        (v6 & (typ == ICMPV6_ECHO_REQUEST), _REQ, 1, True, -1),
        (tcp_ok & is_syn(flags), _REQ, 2, True, -1),
        (udp["request"], _REQ, 3, True, -1),
        (v4 & (typ == ICMP_ECHO_REPLY), _EXACT, 0, False, ECHO_REPLY),
        (v6 & (typ == ICMPV6_ECHO_REPLY), _EXACT, 1, False, ECHO_REPLY),
        (tcp_ok & is_syn_ack(flags), _EXACT, 2, False, SYN_ACK),
        (udp["reply"], _EXACT, 3, False, UDP_REPLY),
        (udp["refusal"], _EXACT, 3, False, PORT_UNREACHABLE),
        (tcp_ok & is_rst_ack(flags), _LOOSE, 2, False, RST_ACK),
        (tcp_ok & is_bare_rst(flags), _RESET, 2, True, -1),
    ]
    cls = np.full(len(p), -1, np.int8)
    for i, c in enumerate(classes):   # the classes exclude one another
        cls[c[0]] = i
    meta = np.array([c[1:] for c in classes], dtype=np.int64)
    rows, keys, ts, frame, kind, etype, ack = _layout(
        cls, meta, _raw(p["ts_ns"], -1), p["frame"].to_numpy(np.int64), src, dst, _raw(p["icmp_id"], 0),
        _raw(p["icmp_seq"], 0), sport, dport, _raw(p["tcp_seq"], 0), _raw(p["tcp_ack"], 0), udp["keys"])
    # the ISN each TCP reply or reset refers to (protocol rules): SYN/ACK, RST/ACK ack - 1; RST seq - 1
    tcp_reply = (keys[:, 0] == 2) & ((etype == _EXACT) | (etype == _LOOSE))
    keys[tcp_reply, 5] = syn_ack_isn(ack[tcp_reply])
    reset = etype == _RESET
    keys[reset, 5] = reset_isn(keys[reset, 5])
    ip_len = p["ip_len"].to_numpy("float64", na_value=np.nan)[rows]
    hdr = p["ip_hdr_len"].to_numpy("float64", na_value=np.nan)[rows]
    return {"row": rows, "etype": etype, "keys": keys, "kind": kind, "ts": ts, "frame": frame, "ack": ack,
            "protocol": keys[:, 0], "a": keys[:, 1], "b": keys[:, 2], "port": keys[:, 3], "ident": keys[:, 4],
            "seq": keys[:, 5], "ttl": p["ttl"].to_numpy("float64", na_value=np.nan)[rows], "size": ip_len - hdr}


def _udp_events(p: pd.DataFrame, proto, typ, has_ts, src, dst, sport, dport) -> dict:
    """UDP requests, UDP replies and the destinations' port unreachables (protocol.udp_flow_roles,
    protocol.is_port_unreachable) as row masks, and the identity of each such row in row order
    (``keys``: a, b, port, ident, seq): a request's seq is protocol.udp_request_seq; a reply or refusal
    takes the seq of the latest request on its 4-tuple at or before it (UDP_NO_REQUEST when none)."""
    n = len(p)
    udp_ok = (proto == IPPROTO_UDP) & has_ts & p["sport"].notna().to_numpy() & p["dport"].notna().to_numpy()
    request, reply, refusal = np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool)
    r = np.flatnonzero(udp_ok)
    if r.size:
        outward = udp_flow_roles(src[r], dst[r], sport[r].astype(np.int64), dport[r].astype(np.int64))
        request[r[outward]] = True
        reply[r[~outward]] = True
    e = np.zeros(0, np.int64)
    qa = qb = qp = qi = np.zeros(0, np.int64)
    if QUOTED_COLUMNS[0] in p.columns and all(c in p.columns for c in QUOTED_COLUMNS):
        code = p["icmp_code"].to_numpy("int16", na_value=-1)
        e = np.flatnonzero(is_port_unreachable(proto, typ, code) & has_ts)
        if e.size:
            cats = p["src"].cat.categories
            qproto = _sparse_take(p["quoted_proto"], e)
            qs, qd = (_sparse_take(p[c], e) for c in ("quoted_sport", "quoted_dport"))
            qa = _address_codes(p["quoted_src"], e, cats)
            qb = _address_codes(p["quoted_dst"], e, cats)
            # the target itself says the port is closed: the reporter is the quoted destination
            ok = (qproto == IPPROTO_UDP) & ~np.isnan(qs) & ~np.isnan(qd) & (qa >= 0) & (qb >= 0) & (qb == src[e])
            e, qa, qb = e[ok], qa[ok], qb[ok]
            qp, qi = qd[ok].astype(np.int64), qs[ok].astype(np.int64)
            refusal[e] = True
    out = request[r] if r.size else np.zeros(0, bool)       # the UDP rows only, never the whole table
    rows = np.concatenate([r, e])
    a = np.concatenate([np.where(out, src[r], dst[r]), qa])
    b = np.concatenate([np.where(out, dst[r], src[r]), qb])
    port = np.concatenate([np.where(out, dport[r], sport[r]).astype(np.int64), qp])
    ident = np.concatenate([np.where(out, sport[r], dport[r]).astype(np.int64), qi])
    order = np.argsort(rows, kind="stable")
    rows, a, b, port, ident = rows[order], a[order], b[order], port[order], ident[order]
    is_req = request[rows]
    v4 = np.array([":" not in str(c) for c in p["src"].cat.categories], bool) if rows.size else np.zeros(0, bool)
    ip_id = _sparse_take(p["ip_id"], rows)
    own = udp_request_seq(ip_id, v4[src[rows]] if v4.size else np.zeros(rows.size, bool))
    seq = _latest_request_seq(a, b, port, ident, _raw(p["ts_ns"], -1)[rows], is_req, own)
    keys = np.stack([a, b, port, ident & 0xFFFF, seq]).T.copy() if rows.size else np.zeros((0, 5), np.int64)
    return {"request": request, "reply": reply, "refusal": refusal, "keys": keys}


def _latest_request_seq(a, b, port, ident, ts, is_req, own) -> np.ndarray:
    """For each UDP event (sorted by row), its own seq for a request, else the seq of the latest request
    with the same (a, b, port, ident) at or before it (requests first at equal times; UDP_NO_REQUEST)."""
    m = a.size
    if m == 0:
        return np.zeros(0, np.int64)
    pair = pd.factorize((a << 31) | b)[0].astype(np.int64)      # category codes: under 2^31 addresses
    key = (pair << 32) | ((port & 0xFFFF) << 16) | (ident & 0xFFFF)
    order = np.lexsort((~is_req, ts, key))
    k = key[order]
    start = np.ones(m, bool)
    start[1:] = k[1:] != k[:-1]
    group_start = np.maximum.accumulate(np.where(start, np.arange(m), 0))
    last = np.maximum.accumulate(np.where(is_req[order], np.arange(m), -1))
    found = last >= group_start
    seq_sorted = np.where(found, own[order][np.maximum(last, 0)], UDP_NO_REQUEST)
    out = np.empty(m, np.int64)
    out[order] = seq_sorted
    return np.where(is_req, own, out)


def _sparse_take(s: pd.Series, rows: np.ndarray) -> np.ndarray:
    """A sparse (or nullable) numeric column's values at ``rows`` as float64, NaN where absent."""
    if not rows.size:
        return np.zeros(0)
    a = s.array.take(rows)
    return a.to_numpy("float64", na_value=np.nan) if hasattr(a, "_mask") else np.asarray(a, dtype=np.float64)


def _address_codes(s: pd.Series, rows: np.ndarray, cats: pd.Index) -> np.ndarray:
    """Codes in the packets' address categories of a (sparse) text column at ``rows``; -1 when absent."""
    v = np.asarray(s.array.take(rows), dtype=object)
    v = np.where(pd.isna(v), "", v.astype(str))
    return cats.get_indexer(pd.Index(v, dtype=object)).astype(np.int64)


def _raw(s: pd.Series, na: int) -> np.ndarray:
    """An integer column's values without a copy (the values under <NA> are arbitrary: callers only
    read the rows whose class says the field is there); ``na`` where <NA> when there is no buffer."""
    data = getattr(s.array, "_data", None)
    if isinstance(data, np.ndarray) and data.dtype.kind in "iu":
        return data
    return s.to_numpy("int64", na_value=na)


def _join(ev: dict, resend_ns: int, reply_ns: int) -> dict:
    """Identities → integers (hash join), then the sweep; returns per-event probe ids and the probes."""
    etype = ev["etype"]
    k = ev["keys"]
    use_full, use_four = etype != _LOOSE, (etype == _REQ) | (etype == _LOOSE)
    if k.shape[0] and max(int(k[:, 1].max()), int(k[:, 2].max())) < 1 << 20:
        # protocol 2 bits | a 20 | b 20 | port 17 ; ident 16 | seq 32
        w1 = (k[:, 0] << 57) | (k[:, 1] << 37) | (k[:, 2] << 17) | k[:, 3]
        w2 = (k[:, 4] << 32) | k[:, 5]
        key, n_keys = _factorize_words(w1, w2, use_full)
        key4, n_keys4 = _factorize_words(w1, k[:, 4], use_four)
    else:  # pragma: no cover - over a million addresses
        key, n_keys = _factorize(k, use_full, 6)
        key4, n_keys4 = _factorize(k, use_four, 5)
    order = np.argsort(ev["ts"], kind="stable")   # at equal times: requests, exact replies, RST/ACKs, RSTs
    pid, first_req, n_probes = _sweep(order, etype, key, key4, ev["ts"], n_keys, n_keys4, resend_ns, reply_ns,
                                      _RESET_WINDOW_NS)
    return {"pid": pid, "first": first_req[:n_probes], "n": int(n_probes)}


def _probe_columns(ev: dict, m: dict):
    """Per probe: identity, first request, first reply (and how many more), the prober's reset."""
    etype, pid, first, n = ev["etype"], m["pid"].copy(), m["first"], m["n"]
    is_req = etype == _REQ
    retransmits = np.bincount(pid[is_req], minlength=n) - 1 if n else np.zeros(0, np.int64)
    seq0, size0, ts0 = ev["seq"][first], ev["size"][first], ev["ts"][first]
    loose = np.flatnonzero((etype == _LOOSE) & (pid >= 0))
    if loose.size:  # RST/ACK: same 4-tuple, and its ack must acknowledge the SYN (and maybe its data)
        cand = pid[loose]
        ok = rst_ack_accepts(ev["ack"][loose], seq0[cand], syn_data_len(size0[cand]))
        pid[loose[~ok]] = -1
    is_reply = (etype == _EXACT) | (etype == _LOOSE)
    orphan_idx = np.flatnonzero(is_reply & (pid < 0))
    rep = np.flatnonzero(is_reply & (pid >= 0))
    has, r, count = _firsts(rep, ev, pid, n)
    reply_ts = np.where(has, ev["ts"][r], -1)
    delay = np.where(has, (reply_ts - ts0).astype(np.float64), np.nan)
    reply_frame = np.where(has, ev["frame"][r], -1)
    reply_kind = np.where(has, ev["kind"][r], -1)
    # the prober's RST answers the SYN/ACK: the first RST at or after the first reply
    rs = np.flatnonzero((etype == _RESET) & (pid >= 0))
    rs = rs[has[pid[rs]]]
    rs = rs[ev["ts"][rs] >= reply_ts[pid[rs]]]
    rhas, rr, _ = _firsts(rs, ev, pid, n)
    reset_frame = np.where(rhas, ev["frame"][rr], -1)
    reset_after = np.where(rhas, (ev["ts"][rr] - reply_ts) / 1e3, np.nan)
    probes = {
        "ts_ns": ts0, "frame": ev["frame"][first], "protocol": ev["protocol"][first], "a": ev["a"][first],
        "b": ev["b"][first], "port": ev["port"][first], "ident": ev["ident"][first], "seq": seq0,
        "size": np.where(np.isnan(size0), -1, np.nan_to_num(size0)).astype(np.int64),
        "retransmits": retransmits, "reply_delay_ns": delay, "reply_frame": reply_frame, "reply_kind": reply_kind,
        "extra_replies": np.maximum(count - 1, 0), "reset_frame": reset_frame, "reset_after_us": reset_after,
    }
    return probes, orphan_idx


def _firsts(sel: np.ndarray, ev: dict, pid: np.ndarray, n: int):
    """For the events ``sel`` grouped by probe: whether each probe has one, the event index of its
    earliest (by time, frame; 0 where none) and how many it has."""
    best, count = _first_per_group(pid[sel], ev["ts"][sel], ev["frame"][sel], n)
    has = best >= 0
    row = sel[np.maximum(best, 0)] if sel.size else np.zeros(n, np.int64)
    return has, np.where(has, row, 0), count


def _orphans(ev: dict, idx: np.ndarray, cats) -> pd.DataFrame:
    names = np.asarray(cats, dtype=object)
    port = ev["port"][idx]
    return pd.DataFrame({
        "protocol": pd.array(np.asarray(PROBE_PROTOCOLS, dtype=object)[ev["protocol"][idx]], dtype="str"),
        "source": pd.array(names[ev["a"][idx]], dtype="str"),
        "destination": pd.array(names[ev["b"][idx]], dtype="str"),
        "ident": ev["ident"][idx], "port": _masked(np.where(port == _NO_PORT, -1, port), "Int64"),
        "seq": ev["seq"][idx], "ts_ns": ev["ts"][idx], "frame": ev["frame"][idx], "kind": ev["kind"][idx],
        "ack_raw": np.where(ev["etype"][idx] == _LOOSE, ev["ack"][idx], np.nan).astype("float64"),
    }, columns=[c.name for c in ORPHANS])


def _masked(a: np.ndarray, dtype: str):
    """A nullable array from int64 values with -1 for <NA>."""
    return pd.arrays.IntegerArray(np.where(a >= 0, a, 0).astype(dtype.lower()), a < 0)


def _time_order(ts: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """Indices sorting the probes by (time, request frame)."""
    if ts.size < 2:
        return np.arange(ts.size)
    dts, dfr = np.diff(ts), np.diff(frame)
    if np.all((dts > 0) | ((dts == 0) & (dfr > 0))):
        return np.arange(ts.size)
    return np.lexsort((frame, ts))


# ----------------------------------------------------------------------------------------- kernels
@njit(nogil=True)
def _layout(cls, meta, ts, frame, src, dst, icmp_id, icmp_seq, sport, dport, tseq, tack, ukeys):
    """Gather the events (packets with class ``cls`` >= 0) class by class, each in frame order, with
    their identity (protocol, a = prober side, b = target side, port, ident, seq) as rows of ``keys``.
    ``meta[class]`` = (event type, protocol code, outward, reply kind); ``ukeys``: (a, b, port, ident,
    seq) of the UDP classes' rows in row order (their identity needs the quoted header or a look-back)."""
    n_cls = meta.shape[0]
    counts = np.zeros(n_cls + 1, np.int64)
    for i in range(cls.size):
        if cls[i] >= 0:
            counts[cls[i] + 1] += 1
    for c in range(n_cls):
        counts[c + 1] += counts[c]
    m = counts[n_cls]
    pos = counts[:n_cls].copy()
    rows = np.empty(m, np.int64)
    keys = np.empty((m, 6), np.int64)
    ets, fr, kind, etype, ack = (np.empty(m, np.int64), np.empty(m, np.int64), np.empty(m, np.int64),
                                 np.empty(m, np.int64), np.empty(m, np.int64))
    u = 0
    for i in range(cls.size):
        c = cls[i]
        if c < 0:
            continue
        j = pos[c]
        pos[c] += 1
        rows[j] = i
        et, pcode, outward, kd = meta[c, 0], meta[c, 1], meta[c, 2], meta[c, 3]
        a, b = (src[i], dst[i]) if outward else (dst[i], src[i])
        keys[j, 0] = pcode
        keys[j, 1] = a
        keys[j, 2] = b
        if pcode < 2:
            keys[j, 3] = 65536
            keys[j, 4] = icmp_id[i] & 0xFFFF
            keys[j, 5] = icmp_seq[i] & 0xFFFF
        elif pcode == 3:        # UDP: the identity worked out beforehand, one row after the other
            for f in range(5):
                keys[j, f + 1] = ukeys[u, f]
            u += 1
        else:
            keys[j, 3] = dport[i] if outward else sport[i]
            keys[j, 4] = (sport[i] if outward else dport[i]) & 0xFFFF
            keys[j, 5] = tseq[i] & 0xFFFFFFFF
        ets[j] = ts[i]
        fr[j] = frame[i]
        kind[j] = kd
        etype[j] = et
        ack[j] = tack[i]
    return rows, keys, ets, fr, kind, etype, ack


@njit(nogil=True)
def _sweep(order, etype, key, key4, ts, n_keys, n_keys4, resend_ns, reply_ns, reset_ns):
    """One pass over the events in time order. A request opens a probe unless the last request with
    its identity was at most ``resend_ns`` before (then it is that probe sent again); a reply or reset
    goes to the latest probe of its identity (RST/ACKs: of its 4-tuple) if that began at most the
    window before it. Returns (probe id per event or -1, first event of each probe, probes)."""
    cur = np.full(n_keys, -1, np.int64)
    last = np.zeros(n_keys, np.int64)
    cur4 = np.full(n_keys4, -1, np.int64)
    m = order.size
    pid = np.full(m, -1, np.int64)
    first = np.empty(m, np.int64)
    start = np.empty(m, np.int64)
    n = 0
    for e in order:
        t = ts[e]
        et = etype[e]
        if et == 0:
            k = key[e]
            p = cur[k]
            if p < 0 or t - last[k] > resend_ns:
                p = n
                n += 1
                first[p] = e
                start[p] = t
                cur[k] = p
                cur4[key4[e]] = p
            pid[e] = p
            last[k] = t
        elif et == 2:
            p = cur4[key4[e]]
            if p >= 0 and t - start[p] <= reply_ns:
                pid[e] = p
        else:
            p = cur[key[e]]
            if p >= 0 and t - start[p] <= (reply_ns if et == 1 else reset_ns):
                pid[e] = p
    return pid, first, n


@njit(nogil=True)
def _first_per_group(group, ts, frame, n_groups):
    """Per group: the index of its earliest member by (time, frame), -1 for none, and the member count."""
    best = np.full(n_groups, -1, np.int64)
    count = np.zeros(n_groups, np.int64)
    for i in range(group.size):
        g = group[i]
        count[g] += 1
        b = best[g]
        if b < 0 or ts[i] < ts[b] or (ts[i] == ts[b] and frame[i] < frame[b]):
            best[g] = i
    return best, count
