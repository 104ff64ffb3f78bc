"""Probe matching: the packets table → the probes table (schema.PROBES), one row per probe.

ICMP/ICMPv6 echo requests meet their replies by (addresses, identifier, sequence number); TCP SYNs meet
SYN/ACKs by 4-tuple and ack = ISN + 1, RST/ACKs by 4-tuple and ack = ISN + 1 (+ SYN data), and the
prober's RST by 4-tuple and seq = ISN + 1 (the rules are in probekit.protocol). Requests with the same
identity and the same IP TTL / hop limit within ``resend_window_s`` are one probe sent again (a kernel
retransmission keeps the TTL; a request re-sent with another TTL is a new TTL-limited probe, as
tcptraceroute sends its one SYN); UDP datagrams are never re-sends of one another. A reply is given to
the latest request with its identity before it.

A probe carries its stream's key: ``port`` is the destination port, except for a tracer's UDP probes to
rising ports (traceroute, mtr -u), whose ``port`` is the lowest port of the run
(:func:`probekit.analysis.streams.tracer_ports`, the streams table's rule); ``dst_port`` is always the
request's own destination port. Every analysis that groups by (protocol, [source,] destination, port)
thus sees a tracer as one stream.

How: one compiled pass classes the ICMP and TCP packets (:func:`_classify`: the protocol module's
rules looked up per type / flags value, the TCP ISNs worked out on the way); every request, reply and
reset becomes an event with an identity (protocol, addresses, ident, port, seq), laid out in time
order by one compiled pass over the packets (:func:`_layout`: the identity
packed in two words, the places from one scan of the times, sorted only when they go back); one
compiled sweep over the events hashes each identity as it meets it, forms the probes and hands each
reply to its probe (:func:`_sweep`: the events partitioned by identity hash first, so that each
bucket's tables stay in cache), a second kernel picks each probe's first reply and reset
(:func:`_attach`) and a third writes the probes table's columns (:func:`_probe_rows`). The kernels
allocate nothing and call no numpy function (numpy's arrays come from the caller; each numpy
implementation a kernel uses is compiled again for a cold cache).
The plain pandas implementation this replaced is kept as the test reference (tests/reference_match.py).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .._jit import njit
from ..capture.checksums import column_array, raw_column
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
    rst_ack_accepts,
    syn_data_len,
    udp_flow_roles,
    udp_request_seq,
)
from ..schema import ORPHANS, OUTCOMES, PROBE_COLUMNS, QUOTED_COLUMNS
from ._groups import factorize_rows as _factorize
from .streams import tracer_ports

__all__ = ["match_probes", "detect_vantage"]

INITIAL_TTLS = (32, 64, 128, 255)
_NS = 1_000_000_000
_NO_PORT = 65536
_RESET_WINDOW_NS = 60 * _NS
_BUCKET_EVENTS = 1 << 16   # events per bucket of the sweep: its hash tables stay in cache
_TIE_RUN = 64              # more events at one time than this: the events are sorted (see _layout)
_LAID_OUT, _UNSORTED, _TOO_WIDE = 0, 1, 2   # what _layout returns
_REQ, _EXACT, _LOOSE, _RESET = 0, 1, 2, 3   # event types, in the order they sort at equal times
# What a request re-sent as the same probe shares with that probe's requests besides its identity: its
# resend code, the IP TTL / hop limit (0-255, _TTL_UNKNOWN without one). A kernel retransmission keeps
# the TTL; a request re-sent with another TTL (tcptraceroute's one SYN, rising TTLs) is a new
# TTL-limited probe. UDP has no retransmission (each datagram an application sends is a probe): a UDP
# request's code is _NEVER_RESENT (Paris-style probes on one 4-tuple, ``seq`` 0 over IPv6, included).
# Events carry type | code << 2 (``etk``).
_TTL_UNKNOWN, _NEVER_RESENT = 256, 512
_ADDR_MASK = (1 << 20) - 1   # an address code in the identity's first word (see _pack_keys)
_UDP_REQUESTS, _SYN_ACKS, _RST_ACKS, _RESETS = 3, 6, 9, 10   # classes in _events' list


def match_probes(packets: pd.DataFrame, timeout_s: float = 1.0, vantage: str = "auto",
                 resend_window_s: float = 30.0, reply_window_s: float = 120.0, keep_orphans: bool = False):
    """One row per probe (request), with its outcome and RTT.

    timeout_s: a reply later than this makes the probe ``late`` (lost for the metrics).
    vantage: 'prober' or 'target' (where the capture was taken) or 'auto' (decided from the TTLs: the
    capturing host's own packets leave with an initial TTL such as 64).
    resend_window_s: requests with one identity and one TTL this close together are one probe sent again
    (UDP: never).
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
        vantage = _vantage_from_counts(*ev["ttl_counts"])
    m = _join(ev, int(resend_window_s * _NS), int(reply_window_s * _NS))
    probes, orphan_idx = _probe_columns(ev, m)
    outcome = classify_outcome(probes["reply_kind"], probes["reply_delay_ns"], timeout_s * _NS,
                               unjudged=probes["ts_ns"] + timeout_s * _NS > end_ns, codes=True)
    rtt_ok = (outcome == OUTCOMES.index("answered")) | (outcome == OUTCOMES.index("refused"))
    cats = column_array(packets, "src").categories
    moved = _time_order(probes["ts_ns"], probes["frame"])
    if moved is not None:   # the probes by (time, request frame): only the rows out of that order move
        rows, src = moved
        for a in (*probes.values(), outcome, rtt_ok):
            a[rows] = a[src]

    def take(a):
        return a if moved is None else _moved(a, moved)

    def masked(name):
        return pd.arrays.IntegerArray(probes[name], probes[name + "_na"])

    n = probes["ts_ns"].size
    delay_us = probes["reply_delay_us"]
    dst_port = masked("port")
    out = pd.DataFrame({
        "ts_ns": probes["ts_ns"],
        "protocol": _categorical(probes["protocol"], _PROTOCOLS),
        "source": _used_categories(probes["a"], cats),
        "destination": _used_categories(probes["b"], cats),
        "port": dst_port,
        "dst_port": dst_port.copy(),
        "size": masked("size"),
        "ident": pd.arrays.IntegerArray(probes["ident"], np.zeros(n, np.bool_)),
        "seq": pd.arrays.IntegerArray(probes["seq"], np.zeros(n, np.bool_)),
        "outcome": _categorical(outcome, _OUTCOMES),
        "rtt_us": np.where(rtt_ok, delay_us, np.nan),
        "reply_delay_us": delay_us,
        "request_frame": probes["frame"],
        "reply_frame": masked("reply_frame"),
        "reset_frame": masked("reset_frame"),
        "reset_after_us": probes["reset_after_us"],
        "retransmits": probes["retransmits"],
        "extra_replies": probes["extra_replies"],
    }, index=pd.RangeIndex(n), copy=False)
    assert tuple(out.columns) == PROBE_COLUMNS
    _stream_ports(out, lambda: take(_ttl_at(ev, ev["row"][m["first"]])))
    out.attrs.update(vantage=vantage, timeout_s=timeout_s, capture_end_ns=end_ns,
                     orphan_replies=int(orphan_idx.size), path=packets.attrs.get("path"))
    if keep_orphans:
        return out, _orphans(ev, orphan_idx, cats)
    return out


def _stream_ports(out: pd.DataFrame, ttl) -> None:
    """``port`` := the stream's port (streams.tracer_ports on ``dst_port`` and the requests' TTLs, ``ttl()``
    in the table's row order): a tracer's UDP probes to rising ports take the run's lowest port; nothing
    changes without UDP probes."""
    if not (out["protocol"].cat.codes.to_numpy() == _UDP_CODE).any():
        return
    port, span = tracer_ports(out, ttl())
    if (span > 1).any():
        out["port"] = pd.arrays.IntegerArray(np.maximum(port, 0).astype(np.uint16), port < 0)


def detect_vantage(req: pd.DataFrame, rep: pd.DataFrame) -> str:
    """'prober' when requests leave with an initial TTL and replies arrive with less; 'target' the other
    way round; 'prober' when it cannot tell. ``req``/``rep``: anything with a ``ttl`` column."""
    def ttl(d):
        t = d.get("ttl") if hasattr(d, "get") else None
        return np.zeros(0) if t is None else np.asarray(pd.Series(t).to_numpy("float64", na_value=np.nan))
    return _vantage_from_ttls(ttl(req), ttl(rep))


def _vantage_from_ttls(req_ttl: np.ndarray, rep_ttl: np.ndarray) -> str:
    def counts(t):
        t = t[~np.isnan(t)]
        return t.size, int(np.isin(t, INITIAL_TTLS).sum())
    return _vantage_from_counts(*counts(req_ttl), *counts(rep_ttl))


def _vantage_from_counts(req_known: int, req_initial: int, rep_known: int, rep_initial: int) -> str:
    """The rule of :func:`detect_vantage` from how many requests and replies have a TTL and how many of
    those are an initial TTL: 'target' when the replies' share of initial TTLs is the larger."""
    if req_known and rep_known and rep_initial / rep_known > req_initial / req_known:
        return "target"
    return "prober"


_INITIAL = np.zeros(256, np.bool_)
_INITIAL[list(INITIAL_TTLS)] = True


# ------------------------------------------------------------------------------------------ events
# ICMP/ICMPv6 event class by (0 for ICMP, 256 for ICMPv6) + type (-1: no event; classes as in _events)
_ICMP_CLASSES = np.full(512, -1, np.int8)
_ICMP_CLASSES[[ICMP_ECHO_REQUEST, 256 + ICMPV6_ECHO_REQUEST, ICMP_ECHO_REPLY, 256 + ICMPV6_ECHO_REPLY]] = [0, 1, 4, 5]
_TCP_CLASSES: dict = {}


def _tcp_classes(dtype) -> np.ndarray:
    """TCP event class (SYN 2, SYN/ACK _SYN_ACKS, RST/ACK _RST_ACKS, bare RST _RESETS, else -1) of every
    value a flags column of ``dtype`` can hold: probekit.protocol's rules evaluated once per value, so a
    packet's class is one look-up of its flags."""
    dtype = np.dtype(dtype)
    if dtype not in _TCP_CLASSES:
        if dtype.kind not in "u" or dtype.itemsize > 2:
            raise TypeError(f"tcp_flags is {dtype}, not an unsigned integer of at most 16 bits")
        f = np.arange(1 << (8 * dtype.itemsize), dtype=np.int64)
        out = np.full(f.size, -1, np.int8)
        for c, rule in ((2, is_syn), (_SYN_ACKS, is_syn_ack), (_RST_ACKS, is_rst_ack), (_RESETS, is_bare_rst)):
            hit = rule(f)
            assert not (hit & (out >= 0)).any(), "the TCP classes exclude one another"
            out[hit] = c
        out.flags.writeable = False
        _TCP_CLASSES[dtype] = out
    return _TCP_CLASSES[dtype]


def _events(p: pd.DataFrame) -> dict:
    """Requests, replies and resets of the packets table as one set of event columns (numpy), in time
    order; at equal times in the order of the classes: ICMP, ICMPv6 echo requests, SYNs, UDP requests |
    echo replies, SYN/ACKs, UDP replies, port unreachables from the destination | RST/ACKs | bare RSTs
    (each in frame order; ``cls`` is each event's class). Which packet is which is decided by
    probekit.protocol, on the rows of each protocol only; a kernel lays the fields out at their places."""
    def col(name):   # the stored column (``p[name]`` deep-copies the table's attrs each time)
        return pd.Series(column_array(p, name), copy=False)
    ts_raw, ts_na = raw_column(p, "ts_ns")
    has_ts = ~ts_na   # (the UDP events' rows)
    proto_raw, proto_na = raw_column(p, "ip_proto")
    typ_raw, typ_na = raw_column(p, "icmp_type")
    flags_raw, flags_na = raw_column(p, "tcp_flags")
    src, dst = (column_array(p, c).codes for c in ("src", "dst"))   # (int8/16/32: read as int64 where used)
    sport, dport = _raw(col("sport"), 0), _raw(col("dport"), 0)
    udp = _udp_events(p, proto_raw, proto_na, typ_raw, typ_na, has_ts, src, dst, sport, dport)
    classes = [  # (event type, protocol code, outward (a = src), reply kind)
        (_REQ, 0, True, -1),                    # ICMP echo requests
        (_REQ, 1, True, -1),                    # ICMPv6 echo requests
        (_REQ, 2, True, -1),                    # SYNs
        (_REQ, 3, True, -1),                    # _UDP_REQUESTS
        (_EXACT, 0, False, ECHO_REPLY),
        (_EXACT, 1, False, ECHO_REPLY),
        (_EXACT, 2, False, SYN_ACK),            # _SYN_ACKS
        (_EXACT, 3, False, UDP_REPLY),
        (_EXACT, 3, False, PORT_UNREACHABLE),
        (_LOOSE, 2, False, RST_ACK),            # _RST_ACKS
        (_RESET, 2, True, -1),                  # _RESETS
    ]
    assert classes[_UDP_REQUESTS][:2] == (_REQ, 3) and classes[_SYN_ACKS][:2] == (_EXACT, 2)
    assert classes[_RST_ACKS][:2] == (_LOOSE, 2) and classes[_RESETS][:2] == (_RESET, 2)
    # the classes exclude one another; ICMP by (v4?, type), TCP by its flags through the protocol rules
    # evaluated once per possible flags value (_tcp_classes), UDP by its own rows. One compiled pass over
    # the rows classes the ICMP and TCP packets and works out the TCP events' seq in their identity: the
    # ISN it refers to (protocol.syn_ack_isn, protocol.reset_isn; in row order of the TCP events): a
    # SYN's own seq; SYN/ACK, RST/ACK ack - 1; RST seq - 1
    tseq_raw, tack_raw = _raw(col("tcp_seq"), 0), _raw(col("tcp_ack"), 0)
    cls = np.empty(len(p), np.int8)
    sizes = np.zeros(len(classes), np.int64)
    tseq = np.empty(len(p), np.int64)
    n_tcp = _classify(ts_na, proto_raw, proto_na, typ_raw, typ_na, raw_column(p, "icmp_id")[1],
                      raw_column(p, "icmp_seq")[1], flags_raw, flags_na, tseq_raw, tack_raw, _ICMP_CLASSES,
                      _tcp_classes(flags_raw.dtype), cls, sizes, tseq)
    tseq = tseq[:n_tcp]
    for i, rows in ((_UDP_REQUESTS, udp["request"]), (7, udp["reply"]), (8, udp["refusal"])):
        cls[rows] = i
        sizes[i] += rows.size
    m = int(sizes.sum())
    # per class: event type, protocol code, outward, reply kind, resend code (-1: the TTL; UDP never)
    meta = np.array([(*c, _NEVER_RESENT if i == _UDP_REQUESTS else -1) for i, c in enumerate(classes)],
                    dtype=np.int64)
    ev: dict = {k: np.empty(m, np.int64) for k in ("row", "ts", "frame", "etk", "f1", "f2", "g2")}
    ev["cls"], ev["etype"] = np.empty(m, np.int8), np.empty(m, np.int8)
    frame = np.asarray(column_array(p, "frame"), dtype=np.int64)
    ttl, ttl_na = raw_column(p, "ttl")
    counts = np.zeros(4, np.int64)
    place = np.empty(len(p), np.int64)
    args = (meta, ts_raw, frame, src, dst, _raw(col("icmp_id"), 0), _raw(col("icmp_seq"), 0), sport, dport, tseq,
            udp["keys"], ttl, ttl_na, _INITIAL, ev["row"], ev["cls"], ev["ts"], ev["frame"], ev["etype"], ev["etk"],
            ev["f1"], ev["f2"], ev["g2"], counts)
    keys = np.empty((0, 6), np.int64)
    done = _layout(cls, place, False, _TIE_RUN, *args, keys)
    if done == _UNSORTED:   # times out of row order (or many at one time): the places by sorting
        rows = np.flatnonzero(cls >= 0)
        place[rows[np.lexsort((rows, cls[rows], ts_raw[rows]))]] = np.arange(m)
        done = _layout(cls, place, True, _TIE_RUN, *args, keys)
    if done == _TOO_WIDE:   # pragma: no cover - over a million addresses: the identities kept unpacked
        keys = np.empty((m, 6), np.int64)
        counts[:] = 0
        _layout(cls, place, True, _TIE_RUN, *args, keys)
    ev.update(keys=keys, meta=meta, tcp_ack=tack_raw, ttl=(ttl, ttl_na), size=(raw_column(p, "ip_len"),
              raw_column(p, "ip_hdr_len")), ttl_counts=tuple(int(c) for c in counts))
    return ev


def _identity(ev: dict, idx: np.ndarray) -> tuple[np.ndarray, ...]:
    """(protocol, a, b, port, ident, seq) of the events at ``idx``: unpacked from their two words
    (see _pack_keys), or taken from ``keys`` when the addresses did not fit in them."""
    if ev["keys"].shape[0]:  # pragma: no cover - over a million addresses
        k = ev["keys"][idx]
        return tuple(k[:, i] for i in range(6))
    f1, f2 = ev["f1"][idx], ev["f2"][idx]
    return (f1 >> 57, (f1 >> 37) & _ADDR_MASK, (f1 >> 17) & _ADDR_MASK, f1 & 0x1FFFF, f2 >> 32, f2 & 0xFFFFFFFF)


def _ttl_at(ev: dict, rows: np.ndarray) -> np.ndarray:
    """The packets' TTL / hop limit at ``rows`` as float64, NaN where they have none."""
    ttl, na = ev["ttl"]
    out = ttl[rows].astype(np.float64)
    out[na[rows]] = np.nan
    return out


def _udp_events(p: pd.DataFrame, proto, proto_na, typ, typ_na, has_ts, src, dst, sport, dport) -> dict:
    """UDP requests, UDP replies and the destinations' port unreachables (protocol.udp_flow_roles,
    protocol.is_port_unreachable) as row numbers, and the identity of each such row in row order
    (``keys``: a, b, port, ident, seq): a request's seq is protocol.udp_request_seq; a reply or refusal
    takes the seq of the latest request on its 4-tuple at or before it (UDP_NO_REQUEST when none).
    ``proto``/``typ``: the IP protocol and ICMP type columns' values (meaningless where ``*_na``)."""
    def col(name):
        return pd.Series(column_array(p, name), copy=False)
    udp_ok = (proto == IPPROTO_UDP) & ~proto_na & has_ts & ~raw_column(p, "sport")[1] & ~raw_column(p, "dport")[1]
    r = np.flatnonzero(udp_ok)
    out = udp_flow_roles(src[r], dst[r], sport[r].astype(np.int64), dport[r].astype(np.int64)) if r.size \
        else np.zeros(0, bool)                                  # the UDP rows only, never the whole table
    e = np.zeros(0, np.int64)
    qa = qb = qp = qi = np.zeros(0, np.int64)
    if QUOTED_COLUMNS[0] in p.columns and all(c in p.columns for c in QUOTED_COLUMNS):
        cand = np.flatnonzero(((typ == 3) | (typ == 1)) & ~typ_na & has_ts)   # destination unreachable's types only
        pc = proto[cand].astype(np.int16)
        pc[proto_na[cand]] = -1
        e = cand[is_port_unreachable(pc, typ[cand].astype(np.int16), _raw(col("icmp_code"), -1)[cand])]
        if e.size:
            cats = column_array(p, "src").categories
            qproto = _sparse_take(col("quoted_proto"), e)
            qs, qd = (_sparse_take(col(c), e) for c in ("quoted_sport", "quoted_dport"))
            qa = _address_codes(col("quoted_src"), e, cats)
            qb = _address_codes(col("quoted_dst"), e, cats)
            # the target itself says the port is closed: the reporter is the quoted destination
            ok = (qproto == IPPROTO_UDP) & ~np.isnan(qs) & ~np.isnan(qd) & (qa >= 0) & (qb >= 0) & (qb == src[e])
            e, qa, qb = e[ok], qa[ok], qb[ok]
            qp, qi = qd[ok].astype(np.int64), qs[ok].astype(np.int64)
    if not r.size and not e.size:
        none = np.zeros(0, np.int64)
        return {"request": none, "reply": none, "refusal": e, "keys": np.zeros((0, 5), np.int64)}
    rows = np.concatenate([r, e])
    a = np.concatenate([np.where(out, src[r], dst[r]), qa])
    b = np.concatenate([np.where(out, dst[r], src[r]), qb])
    port = np.concatenate([np.where(out, dport[r], sport[r]).astype(np.int64), qp])
    ident = np.concatenate([np.where(out, sport[r], dport[r]).astype(np.int64), qi])
    order = np.argsort(rows, kind="stable")
    is_req = np.concatenate([out, np.zeros(e.size, bool)])[order]
    rows, a, b, port, ident = rows[order], a[order], b[order], port[order], ident[order]
    v4 = np.array([":" not in str(c) for c in column_array(p, "src").categories], bool) if rows.size \
        else np.zeros(0, bool)
    ip_id = _sparse_take(col("ip_id"), rows)
    own = udp_request_seq(ip_id, v4[src[rows]] if v4.size else np.zeros(rows.size, bool))
    seq = _latest_request_seq(a, b, port, ident, raw_column(p, "ts_ns")[0][rows], is_req, own)
    keys = np.stack([a, b, port, ident & 0xFFFF, seq]).T.copy() if rows.size else np.zeros((0, 5), np.int64)
    return {"request": r[out], "reply": r[~out], "refusal": e, "keys": keys}


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
    """The sweep over the events in time order, identities hashed on the way; returns per-event probe
    ids and each probe's first request."""
    k = ev["keys"]
    f1, f2, g2 = ev["f1"], ev["f2"], ev["g2"]   # the identity in two words; its 4-tuple part is (f1, ident)
    if k.shape[0]:  # pragma: no cover - over a million addresses: number the identities first
        f1, _ = _factorize(k, np.ones(k.shape[0], np.bool_), 5)   # the 4-tuple
        f2, _ = _factorize(k, np.ones(k.shape[0], np.bool_), 6)
        g2 = np.zeros(k.shape[0], np.int64)
    m = f1.size
    proto = ev["f1"] >> 57 if not k.shape[0] else k[:, 0].copy()
    # the events are in time order (at equal times: requests, exact replies, RST/ACKs, RSTs)
    pid, first, n_probes = _sweep_events(np.arange(m), ev["etk"], proto, f1, f2, g2, ev["ts"], resend_ns, reply_ns,
                                        _RESET_WINDOW_NS, _BUCKET_EVENTS)
    return {"pid": pid, "first": first, "n": n_probes}


def _sweep_events(order, etk, proto, f1, f2, g2, ts, resend_ns: int, reply_ns: int, reset_ns: int,
                 bucket_events: int) -> tuple[np.ndarray, np.ndarray, int]:
    """:func:`_sweep` with its work arrays (numpy's): per event its probe id (-1: none), the first
    event of each probe, the number of probes."""
    m = order.size
    nb = 1
    while nb * bucket_events < m:
        nb *= 2
    size = 16
    while size < 2 * m:
        size *= 2
    # bucket numbers, then probe numbers, and places in time order fit in 32 bits (half the memory to touch)
    wide = np.int64 if m >= 1 << 31 else np.int32
    bk, owner = np.empty(m, wide), np.empty(m, wide)
    pid, first = np.empty(m, np.int64), np.empty(m, np.int64)
    n = _sweep(order, etk, proto, f1, f2, g2, ts, resend_ns, reply_ns, reset_ns, bk, np.empty((m, 5), np.int64),
               owner, pid, first, np.empty(nb + 1, np.int64), np.empty(nb, np.int64),
               np.empty(size, np.int32), np.empty(size, np.int32), np.empty((m, 6), np.int64),
               np.empty((m, 4), np.int64))
    return pid, first[:n], int(n)


def _probe_columns(ev: dict, m: dict):
    """Per probe: identity, first request, first reply (and how many more), the prober's reset, as the
    probes table's columns (values and <NA> masks apart); and the orphan replies' events."""
    etype, pid, first, n = ev["etype"], m["pid"], m["first"], m["n"]   # (pid: rejected RST/ACKs set to -1 here)
    loose = np.flatnonzero(etype == _LOOSE)
    loose = loose[pid[loose] >= 0]
    if loose.size:  # RST/ACK: same 4-tuple, and its ack must acknowledge the SYN (and maybe its data)
        req = first[pid[loose]]
        (ip_len, len_na), (hdr, hdr_na) = ev["size"]
        rows = ev["row"][req]
        size = np.where(len_na[rows] | hdr_na[rows], np.nan, ip_len[rows].astype(np.float64) - hdr[rows])
        ok = rst_ack_accepts(ev["tcp_ack"][ev["row"][loose]], _identity(ev, req)[5], syn_data_len(size))
        pid[loose[~ok]] = -1
    requests, r, count, rr = (np.empty(n, np.int64) for _ in range(4))
    _attach(etype, pid, ev["ts"], ev["frame"], requests, r, count, rr)
    orphan_idx = np.flatnonzero(((etype == _EXACT) | (etype == _LOOSE)) & (pid < 0))
    orphan_idx = orphan_idx[np.lexsort((ev["row"][orphan_idx], ev["cls"][orphan_idx]))]   # by class, frame
    out = {k: np.empty(n, np.int64) for k in ("ts_ns", "frame", "a", "b", "reply_kind", "reply_frame",
                                               "reset_frame")}
    out.update({k: np.empty(n, np.float64) for k in ("reply_delay_ns", "reply_delay_us", "reset_after_us")})
    out.update({k: np.empty(n, np.bool_) for k in ("port_na", "size_na", "reply_frame_na", "reset_frame_na")})
    out.update(protocol=np.empty(n, np.int8), port=np.empty(n, np.uint16), size=np.empty(n, np.int32),
               ident=np.empty(n, np.uint32), seq=np.empty(n, np.uint32), retransmits=np.empty(n, np.int32),
               extra_replies=np.empty(n, np.int32))
    (ip_len, len_na), (hdr, hdr_na) = ev["size"]
    _probe_rows(first, requests, r, count, rr, ev["row"], ev["cls"], ev["meta"], ev["ts"], ev["frame"], ev["f1"],
                ev["f2"], ev["keys"], ip_len, len_na, hdr, hdr_na, out["ts_ns"], out["frame"], out["protocol"],
                out["a"], out["b"], out["port"], out["port_na"], out["size"], out["size_na"], out["ident"],
                out["seq"], out["reply_kind"], out["reply_delay_ns"], out["reply_delay_us"], out["reply_frame"],
                out["reply_frame_na"], out["reset_frame"], out["reset_frame_na"], out["reset_after_us"],
                out["retransmits"], out["extra_replies"])
    return out, orphan_idx


def _orphans(ev: dict, idx: np.ndarray, cats) -> pd.DataFrame:
    names = np.asarray(cats, dtype=object)
    protocol, a, b, port, ident, seq = _identity(ev, idx)
    etype = ev["etype"][idx]
    return pd.DataFrame({
        "protocol": pd.array(np.asarray(PROBE_PROTOCOLS, dtype=object)[protocol], dtype="str"),
        "source": pd.array(names[a], dtype="str"),
        "destination": pd.array(names[b], dtype="str"),
        "ident": ident, "port": _masked(np.where(port == _NO_PORT, -1, port), np.int64),
        "seq": seq, "ts_ns": ev["ts"][idx], "frame": ev["frame"][idx], "kind": ev["meta"][ev["cls"][idx], 3],
        "ack_raw": np.where(etype == _LOOSE, ev["tcp_ack"][ev["row"][idx]], np.nan).astype("float64"),
    }, columns=[c.name for c in ORPHANS])


def _masked(a: np.ndarray, dtype):
    """A nullable array from int64 values with -1 for <NA>."""
    na = a < 0
    return pd.arrays.IntegerArray(np.where(na, 0, a).astype(dtype), na)


_PROTOCOLS = pd.CategoricalDtype(list(PROBE_PROTOCOLS))
_UDP_CODE = list(PROBE_PROTOCOLS).index("udp")
_OUTCOMES = pd.CategoricalDtype(list(OUTCOMES))


def _categorical(codes: np.ndarray, dtype: pd.CategoricalDtype) -> pd.Categorical:
    """A categorical from codes already known to be valid (no re-validation, no re-coding)."""
    return pd.Categorical.from_codes(codes.astype(np.int8 if len(dtype.categories) < 127 else np.int32, copy=False),
                                     dtype=dtype, validate=False)


def _used_categories(codes: np.ndarray, cats: pd.Index) -> pd.Categorical:
    """Codes into the packets table's address categories → a categorical of the used ones only (what
    ``remove_unused_categories`` gives), re-coded through a lookup table (in the codes' final dtype)
    instead of a factorization."""
    valid = codes >= 0 if codes.size and codes.min() < 0 else None   # no address: NaN
    present = codes if valid is None else codes[valid]
    used = np.zeros(len(cats), np.bool_)
    used[present] = True
    n_used = int(used.sum())
    new = (np.cumsum(used) - 1).astype(np.int8 if n_used < 127 else np.int32)
    recoded = new[codes] if valid is None else np.where(valid, new[np.maximum(codes, 0)], new.dtype.type(-1))
    return _categorical(recoded, pd.CategoricalDtype(cats[used]))


def _time_order(ts: np.ndarray, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """How the probes sort by (time, request frame), as (rows, src): the sorted table's ``rows`` hold the
    values at ``src`` and every other row stays (``a[order]`` of ``order = np.lexsort((frame, ts))`` is
    ``a`` with ``a[rows] = a[src]``); None when they already are in that order. The probes come in the
    events' time order, ties by class: when the times never go back only the runs of one time whose
    frames are out of order are sorted (a few rows), not the whole table."""
    if ts.size < 2:
        return None
    dts, dfr = np.diff(ts), np.diff(frame)
    bad = np.flatnonzero(~((dts > 0) | ((dts == 0) & (dfr > 0))))
    if not bad.size:
        return None
    if (dts[bad] < 0).any():
        order = np.lexsort((frame, ts))
        rows = np.flatnonzero(order != np.arange(ts.size))
        return rows, order[rows]
    # each bad pair (i, i + 1) is inside a run of one time: the runs' rows, then each run by frame
    starts = np.flatnonzero(dts != 0) + 1
    run = np.unique(np.searchsorted(starts, bad, "right"))          # run k spans [b[k], b[k + 1])
    bounds = np.concatenate([[0], starts, [ts.size]])
    lo, hi = bounds[run], bounds[run + 1]
    rows = np.concatenate([np.arange(a, b) for a, b in zip(lo.tolist(), hi.tolist())])
    src = rows[np.lexsort((frame[rows], ts[rows]))]
    keep = src != rows
    return rows[keep], src[keep]


def _moved(a: np.ndarray, moved: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """A fresh array in the probes' row order (:func:`_time_order`) of ``a`` given in the matcher's."""
    rows, src = moved
    out = a.copy()
    out[rows] = a[src]
    return out


# ----------------------------------------------------------------------------------------- kernels
@njit(nogil=True)
def _classify(ts_na, proto, proto_na, typ, typ_na, id_na, seq_na, flags, flags_na, tcp_seq, tcp_ack, icmp_classes,
              tcp_classes, cls, counts, tseq):
    """The event class of each row (-1: none; the UDP classes are the caller's): an ICMP/ICMPv6 packet
    with a time, a type, an echo identifier and sequence number (an echo header cut by the snap length
    keeps its id but not its seq: not a matchable request) by ``icmp_classes[(0 or 256) + type]``;
    a TCP packet with a time and flags by ``tcp_classes[flags]``. Counts the events of each class into
    ``counts`` and writes each TCP event's seq in its identity into ``tseq`` (in row order; the count
    is returned): its seq (mod 2^32), for a SYN/ACK or RST/ACK ack - 1 (protocol.syn_ack_isn), for a
    bare RST seq - 1 (protocol.reset_isn), both mod 2^32."""
    n_tcp = 0
    for i in range(cls.size):
        c = -1
        if not (ts_na[i] or proto_na[i]):
            pr = proto[i]
            if pr in (IPPROTO_ICMP, IPPROTO_ICMPV6):
                if not (typ_na[i] or id_na[i] or seq_na[i]):
                    t = np.int64(typ[i])
                    if 0 <= t <= 255:
                        c = icmp_classes[(0 if pr == IPPROTO_ICMP else 256) + t]
            elif pr == IPPROTO_TCP and not flags_na[i]:
                c = tcp_classes[flags[i]]
                if c >= 0:
                    s = np.int64(tcp_seq[i]) & 0xFFFFFFFF
                    if c in (_SYN_ACKS, _RST_ACKS):
                        s = (np.int64(tcp_ack[i]) - 1) & 0xFFFFFFFF
                    elif c == _RESETS:
                        s = (s - 1) & 0xFFFFFFFF
                    tseq[n_tcp] = s
                    n_tcp += 1
        cls[i] = c
        if c >= 0:
            counts[c] += 1
    return n_tcp


@njit(nogil=True)
def _layout(cls, place, placed, tie_run, meta, ts, frame, src, dst, icmp_id, icmp_seq, sport, dport, tseq, ukeys,
            ttl, ttl_na, initial, rows, ecls, ets, fr, etype, etk, f1, f2, g2, counts, keys):
    """Lay the events (packets with class ``cls`` >= 0) out at their ``place``s (time order): row,
    class, time, frame, type, ``etk`` = type | resend code << 2 (the TTL, _TTL_UNKNOWN without one, or
    the class's own code) and the identity (protocol, a = prober side, b = target side, port, ident,
    seq) packed as _pack_keys packs it (``f1``, ``f2``; ``g2`` = ident). ``meta[class]`` = (event
    type, protocol code, outward, reply kind, resend code or -1); ``tseq``: the TCP events' seq in
    their identity, ``ukeys``: (a, b, port, ident, seq) of the UDP events, each in row order. Counts
    the requests and the replies with a TTL and those with an ``initial`` one (``counts``). With
    ``keys`` of one row per event the identities are written there too (any address codes); without,
    an address code that does not fit in its 20 bits returns _TOO_WIDE. The outputs come from the caller.

    The places: given (``placed``), or worked out first in one pass when the events' times never go
    back in row order (a capture's usual order), each run of events at one time ranked among itself by
    class then row; when a time goes back or more than ``tie_run`` events share one, _UNSORTED is
    returned at once (the caller sorts them and calls again with ``placed``). _LAID_OUT when done."""
    if not placed:
        n = cls.size
        j = 0
        i = 0
        have = False
        last = 0
        while i < n:
            if cls[i] < 0:
                i += 1
                continue
            t = ts[i]
            if have and t < last:
                return _UNSORTED
            have = True
            last = t
            k = i + 1          # the run of events at time t (rows of no event between them included)
            run = 1
            while k < n and (cls[k] < 0 or ts[k] == t):
                if cls[k] >= 0:
                    run += 1
                k += 1
            if run == 1:
                place[i] = j
            elif run > tie_run:
                return _UNSORTED
            else:
                for r in range(i, k):
                    if cls[r] < 0:
                        continue
                    rank = 0
                    for q in range(i, k):
                        if cls[q] >= 0 and (cls[q] < cls[r] or (cls[q] == cls[r] and q < r)):
                            rank += 1
                    place[r] = j + rank
            j += run
            i = k
    wide = keys.shape[0] > 0
    u = 0
    t = 0
    for i in range(cls.size):
        c = cls[i]
        if c < 0:
            continue
        j = place[i]
        rows[j] = i
        ecls[j] = c
        et, pcode, outward, code = meta[c, 0], meta[c, 1], meta[c, 2], meta[c, 4]
        a, b = (np.int64(src[i]), np.int64(dst[i])) if outward else (np.int64(dst[i]), np.int64(src[i]))
        if pcode < 2:
            port, ident, seq = np.int64(65536), np.int64(icmp_id[i] & 0xFFFF), np.int64(icmp_seq[i] & 0xFFFF)
        elif pcode == 3:        # UDP: the identity worked out beforehand, one row after the other
            a, b, port, ident, seq = ukeys[u, 0], ukeys[u, 1], ukeys[u, 2], ukeys[u, 3], ukeys[u, 4]
            u += 1
        else:
            port = np.int64(dport[i] if outward else sport[i])
            ident = np.int64((sport[i] if outward else dport[i]) & 0xFFFF)
            seq = tseq[t]
            t += 1
        if wide:
            keys[j, 0] = pcode
            keys[j, 1] = a
            keys[j, 2] = b
            keys[j, 3] = port
            keys[j, 4] = ident
            keys[j, 5] = seq
        elif a < 0 or b < 0 or a > 0xFFFFF or b > 0xFFFFF:
            return _TOO_WIDE
        f1[j] = (pcode << 57) | (a << 37) | (b << 17) | port
        f2[j] = (ident << 32) | seq
        g2[j] = ident
        ets[j] = ts[i]
        fr[j] = frame[i]
        etype[j] = et
        if ttl_na[i]:
            etk[j] = et | ((code if code >= 0 else 256) << 2)
        else:
            etk[j] = et | ((code if code >= 0 else np.int64(ttl[i])) << 2)
            if et < 3:
                k = 0 if et == 0 else 2
                counts[k] += 1
                if 0 <= ttl[i] < initial.size and initial[ttl[i]]:
                    counts[k + 1] += 1
    return _LAID_OUT


@njit(nogil=True)
def _pack_keys(keys):
    """Identities (protocol, a, b, port, ident, seq; a and b < 2^20) as two words:
    protocol 2 bits | a 20 | b 20 | port 17, and ident 16 | seq 32 (as _layout packs them)."""
    m = keys.shape[0]
    w1 = np.empty(m, np.int64)
    w2 = np.empty(m, np.int64)
    for i in range(m):
        w1[i] = (keys[i, 0] << 57) | (keys[i, 1] << 37) | (keys[i, 2] << 17) | keys[i, 3]
        w2[i] = (keys[i, 4] << 32) | keys[i, 5]
    return w1, w2


@njit(nogil=True)
def _hash(a, b):
    h = (np.uint64(a & 0x7FFFFFFFFFFFFFFF) * np.uint64(0x9E3779B97F4A7C15)) ^ \
        (np.uint64(b & 0x7FFFFFFFFFFFFFFF) * np.uint64(0xFF51AFD7ED558CCD))
    return h ^ (h >> np.uint64(31))


@njit(nogil=True)
def _slot(a, b, mask):
    return np.int64(_hash(a, b) & np.uint64(mask))


@njit(nogil=True)
def _find(slots, words, a, b, mask):
    """Open addressing over ``slots[:mask + 1]``: the slot holding the key (a, b), or the empty slot
    where it would go. ``slots[s]``: 1 + the key's row in ``words`` (its two words first), 0 for empty."""
    s = _slot(a, b, mask)
    while True:
        r = slots[s] - 1
        if r < 0 or (words[r, 0] == a and words[r, 1] == b):
            return s
        s = (s + 1) & mask


@njit(nogil=True)
def _sweep(order, etk, proto, f1, f2, g2, ts, resend_ns, reply_ns, reset_ns, bk, rec, owner, pid, first,
           bstart, fill, slots, slots4, words, words4):
    """One pass over the events in time order (``etk``: event type | resend code << 2). A request opens
    a probe unless the last request with its identity (f1, f2) was at most ``resend_ns`` before and the
    probe's requests have its resend code (the TTL; UDP: never) — then it is that probe sent again; a reply or
    reset goes to the latest probe of its identity (RST/ACKs: of its 4-tuple, (f1, g2): f1 holds the
    target side of the identity, g2 the prober's port or ICMP identifier) if that began at most the
    window before it. Fills ``pid`` (probe id per event or -1) and ``first`` (first event of each
    probe) and returns the number of probes, numbered in time order.

    How: the events are first partitioned by a hash of their identity (time order kept within a
    bucket) and each bucket is swept on its own with hash tables small enough to stay in cache (one
    sweep over a table of every identity waits on memory at each event). In a protocol with
    RST/ACK-like events (matched by 4-tuple) the hash is the 4-tuple's, which all the identities under
    it share; other protocols spread by the whole identity (an ICMP stream has one 4-tuple). The
    probes are numbered afterwards by their first request's place in time order. The large work
    arrays come from the caller (numpy allocates them in huge pages; a first touch of fresh small pages
    costs more than the sweep): ``bk`` (m,), ``rec`` (m, 5), ``owner``, ``pid``, ``first`` (m,; ``bk`` and
    ``owner`` may be int32 when m < 2^31), and so
    do the tables (the largest bucket's share of them is touched): ``bstart`` (nb + 1,), ``fill``
    (nb,) for nb buckets (a power of two; each gets about m / nb events), ``slots``,
    ``slots4`` (int32, at least 16 and 2m), ``words`` (m, 6), ``words4`` (m, 4). No allocation, no
    numpy call in here: each would be compiled anew for a cold cache, and they were most of its time."""
    m = order.size
    nb = fill.size
    # 1. bucket of each event, in time order
    by4 = 0   # bit p: protocol p has loose replies (matched by 4-tuple)
    for e in range(m):
        if etk[e] & 3 == 2:
            by4 |= 1 << proto[e]
    for b in range(nb + 1):
        bstart[b] = 0
    for i in range(m):
        e = order[i]
        b = np.int64((_hash(f1[e], g2[e] if (by4 >> proto[e]) & 1 else f2[e]) >> np.uint64(40)) & np.uint64(nb - 1))
        bk[i] = b
        bstart[b + 1] += 1
    for b in range(nb):
        bstart[b + 1] += bstart[b]
    # 2. the events as records in bucket order: ((place in time order × 4 + type) << 10 | resend code,
    #    time, f1, f2, g2)
    for b in range(nb):
        fill[b] = bstart[b]
    for i in range(m):
        e = order[i]
        j = fill[bk[i]]
        fill[bk[i]] += 1
        x = etk[e]
        rec[j, 0] = ((4 * i + (x & 3)) << 10) | (x >> 2)
        rec[j, 1] = ts[e]
        rec[j, 2] = f1[e]
        rec[j, 3] = f2[e]
        rec[j, 4] = g2[e]
    # slots: identity → 1 + its row in words (f1, f2, current probe, last request, probe start, its
    # code); slots4: 4-tuple → 1 + its row in words4 (g1, g2, current probe, probe start)
    for i in range(m):
        owner[i] = -1                        # per place in time order: the probe's first request's place
    # 3. each bucket in time order
    for b in range(nb):
        lo, hi = bstart[b], bstart[b + 1]
        if lo == hi:
            continue
        n_req = 0
        for j in range(lo, hi):
            if (rec[j, 0] >> 10) & 3 == 0:
                n_req += 1
        sz = 16
        while sz < 2 * n_req:
            sz *= 2
        mask = sz - 1
        for k in range(sz):
            slots[k] = 0
            slots4[k] = 0
        n_keys = 0
        n_keys4 = 0
        for j in range(lo, hi):
            x = rec[j, 0]
            i, et, code, t = x >> 12, (x >> 10) & 3, x & 1023, rec[j, 1]
            a, b2, c = rec[j, 2], rec[j, 3], rec[j, 4]
            if et == 0:
                s = _find(slots, words, a, b2, mask)
                r = slots[s] - 1
                if r < 0:
                    r = n_keys
                    n_keys += 1
                    slots[s] = r + 1
                    words[r, 0] = a
                    words[r, 1] = b2
                    words[r, 2] = -1
                p = words[r, 2]
                if p < 0 or t - words[r, 3] > resend_ns or code != words[r, 5] or code == 512:
                    p = i
                    words[r, 2] = p
                    words[r, 4] = t
                    words[r, 5] = code
                    s4 = _find(slots4, words4, a, c, mask)
                    r4 = slots4[s4] - 1
                    if r4 < 0:
                        r4 = n_keys4
                        n_keys4 += 1
                        slots4[s4] = r4 + 1
                        words4[r4, 0] = a
                        words4[r4, 1] = c
                    words4[r4, 2] = p
                    words4[r4, 3] = t
                owner[i] = p
                words[r, 3] = t
            elif et == 2:
                r4 = slots4[_find(slots4, words4, a, c, mask)] - 1
                if r4 >= 0 and t - words4[r4, 3] <= reply_ns:
                    owner[i] = words4[r4, 2]
            else:
                r = slots[_find(slots, words, a, b2, mask)] - 1
                if r >= 0 and t - words[r, 4] <= (reply_ns if et == 1 else reset_ns):
                    owner[i] = words[r, 2]
    # 4. probes numbered by their first request's place in time order
    number = bk   # reused: the probe number at its first request's place
    n = 0
    for i in range(m):
        if owner[i] == i:
            number[i] = n
            first[n] = order[i]
            n += 1
    for i in range(m):
        pid[order[i]] = number[owner[i]] if owner[i] >= 0 else -1
    return n


@njit(nogil=True)
def _attach(etype, pid, ts, frame, requests, reply, count, reset):
    """Per probe: its requests, its earliest reply (by time, frame; event index, -1 for none) and how
    many replies it has, and the earliest of its resets at or after that reply (-1 for none), into the
    caller's arrays (one entry per probe)."""
    for p in range(requests.size):
        requests[p] = 0
        reply[p] = -1
        count[p] = 0
        reset[p] = -1
    m = etype.size
    for e in range(m):
        p = pid[e]
        if p < 0:
            continue
        et = etype[e]
        if et == 0:
            requests[p] += 1
        elif et == 1 or et == 2:
            count[p] += 1
            b = reply[p]
            if b < 0 or ts[e] < ts[b] or (ts[e] == ts[b] and frame[e] < frame[b]):
                reply[p] = e
    for e in range(m):
        p = pid[e]
        if p < 0 or etype[e] != 3:
            continue
        r = reply[p]
        if r < 0 or ts[e] < ts[r]:
            continue
        b = reset[p]
        if b < 0 or ts[e] < ts[b] or (ts[e] == ts[b] and frame[e] < frame[b]):
            reset[p] = e



@njit(nogil=True)
def _probe_rows(first, requests, reply, count, reset, row, ecls, meta, ts, frame, f1, f2, keys, ip_len, ip_len_na,
                hdr, hdr_na, ts0, frame0, protocol, a, b, port, port_na, size, size_na, ident, seq, reply_kind,
                delay_ns, delay_us, reply_frame, reply_na, reset_frame, reset_na, reset_after_us, retransmits,
                extra_replies):
    """The probes table's columns (values and <NA> masks apart) in one pass over the probes: the first
    request's time, frame, identity (unpacked from ``f1``/``f2``, or ``keys`` when it has a row per
    event) and IP payload size (<NA> without one or when negative); the first reply's kind, delay (ns,
    µs; NaN without), frame; the reset's frame and its time after the reply (µs); the requests less one
    and the replies beyond the first."""
    wide = keys.shape[0] > 0
    for p in range(first.size):
        e = first[p]
        t0 = ts[e]
        ts0[p] = t0
        frame0[p] = frame[e]
        if wide:
            pc, aa, bb, pt, idn, sq = keys[e, 0], keys[e, 1], keys[e, 2], keys[e, 3], keys[e, 4], keys[e, 5]
        else:
            w1, w2 = f1[e], f2[e]
            pc, aa, bb, pt = w1 >> 57, (w1 >> 37) & 0xFFFFF, (w1 >> 17) & 0xFFFFF, w1 & 0x1FFFF
            idn, sq = w2 >> 32, w2 & 0xFFFFFFFF
        protocol[p] = pc
        a[p] = aa
        b[p] = bb
        port_na[p] = pt == 65536
        port[p] = 0 if pt == 65536 else pt
        ident[p] = idn
        seq[p] = sq
        i = row[e]
        sz = np.int64(-1) if ip_len_na[i] or hdr_na[i] else np.int64(ip_len[i]) - np.int64(hdr[i])
        size_na[p] = sz < 0
        size[p] = 0 if sz < 0 else sz
        retransmits[p] = requests[p] - 1
        extra_replies[p] = count[p] - 1 if count[p] > 1 else 0
        r = reply[p]
        if r >= 0:
            reply_kind[p] = meta[ecls[r], 3]
            d = np.float64(ts[r] - t0)
            delay_ns[p] = d
            delay_us[p] = d / 1e3
            fr = frame[r]
            reply_na[p] = fr < 0
            reply_frame[p] = 0 if fr < 0 else fr
        else:
            reply_kind[p] = -1
            delay_ns[p] = np.nan
            delay_us[p] = np.nan
            reply_na[p] = True
            reply_frame[p] = 0
        q = reset[p]
        if q >= 0:
            fq = frame[q]
            reset_na[p] = fq < 0
            reset_frame[p] = 0 if fq < 0 else fq
            reset_after_us[p] = np.float64(ts[q] - ts[r]) / 1e3
        else:
            reset_na[p] = True
            reset_frame[p] = 0
            reset_after_us[p] = np.nan
