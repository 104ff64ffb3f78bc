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

from collections import namedtuple

import numpy as np
import pandas as pd

from .._jit import njit
from ..capture.checksums import raw_column
from ..schema import (
    OTHER_TRAFFIC,
    SOURCE_STREAM_KEYS,
    STREAM_COLUMNS,
    STREAM_KINDS,
    STREAMS,
)
from ._groups import cached_groups, stable_group_order
from ._groups import factorize_rows as _factorize
from .connections import LIKELY_SERVER_PORTS

__all__ = ["other_traffic", "select_probe_streams", "stream_key", "stream_ports", "streams", "tracer_ports"]

_SS = list(SOURCE_STREAM_KEYS)
_PROTO = {"icmp": 1, "icmpv6": 58, "tcp": 6, "udp": 17}
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
    """Row positions of frame numbers (-1 for a frame not in the table)."""
    return _frame_locator(packets)(frames)


def _frame_locator(packets: pd.DataFrame):
    """A function: frame numbers → row positions in ``packets`` (-1 where absent). The packets table is one
    row per frame, 1-based, in order: a subtraction; frames ascending with gaps (the chunked walk's slim
    table): a binary search; else a hash of the frames (``Index.get_indexer``)."""
    fr = packets["frame"].to_numpy("int64")
    if len(fr) and fr[0] == 1 and fr[-1] == len(fr):
        return lambda frames: frames - 1
    if fr.size < 2 or bool(np.all(fr[1:] > fr[:-1])):
        def search(frames):
            frames = np.asarray(frames, np.int64)
            if frames.size < 2 or bool(np.all(frames[1:] >= frames[:-1])):
                out = np.empty(frames.size, np.int64)
                _merge_rows(fr, frames, out)        # both ascending: one merge
                return out
            i = np.searchsorted(fr, frames)
            if not fr.size:
                return np.full(i.size, -1, np.int64)
            hit = fr[np.minimum(i, fr.size - 1)] == frames
            return np.where(hit, i, -1).astype(np.int64)
        return search
    index = pd.Index(fr)
    return index.get_indexer


@njit(nogil=True)
def _merge_rows(fr, frames, out):  # pragma: no cover - compiled
    """out[i] = the position of frames[i] in ``fr`` (-1 if absent); ``fr`` strictly ascending, ``frames``
    ascending: one merge of the two."""
    j = 0
    m = fr.size
    for i in range(frames.size):
        f = frames[i]
        while j < m and fr[j] < f:
            j += 1
        out[i] = j if j < m and fr[j] == f else -1


def _obj(s: pd.Series) -> np.ndarray:
    """Text values as an object array (None for missing); fast for categoricals (one take)."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        cats = np.asarray(s.cat.categories.astype(object), dtype=object)
        c = s.cat.codes.to_numpy()
        out = cats[np.maximum(c, 0)] if len(cats) else np.full(len(c), None, dtype=object)
        if (c < 0).any():
            out = out.copy()
            out[c < 0] = None
        return out
    return s.astype(object).to_numpy()


def _present(s: pd.Series) -> list:
    """The distinct values of ``s`` (None for missing): of a categorical, the categories its codes use
    (a count over the codes, no hash of the rows)."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        c = s.cat.codes.to_numpy()
        cats = np.asarray(s.cat.categories.astype(object), dtype=object)
        used = np.bincount(c[c >= 0].astype(np.int64), minlength=len(cats)) > 0 if (c < 0).any() else \
            np.bincount(c.astype(np.int64), minlength=len(cats)) > 0
        return cats[used].tolist() + ([None] if (c < 0).any() else [])
    return _obj(s.drop_duplicates()).tolist()


def _is(s: pd.Series, value: str) -> np.ndarray:
    """s == value, by category code when categorical."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        i = _positions(s.cat.categories, [value])[0]
        return s.cat.codes.to_numpy() == i if i >= 0 else np.zeros(len(s), bool)
    return (s.astype(object) == value).to_numpy()


def _positions(index: pd.Index, values) -> np.ndarray:
    """index.get_indexer(values) (-1 where absent); a dict look-up for a small index (get_indexer on
    Arrow-backed text costs milliseconds even for a handful of values)."""
    if len(index) <= 4096:
        where = {v: i for i, v in enumerate(index.tolist())}
        return np.array([where.get(v, -1) for v in list(values)], dtype=np.int64)
    return index.get_indexer(values).astype(np.int64)


def _int_na(s: pd.Series, na: int) -> np.ndarray:
    """An integer column as int64 with ``na`` for <NA>, from the masked array's buffers."""
    arr = s.array
    data, mask = getattr(arr, "_data", None), getattr(arr, "_mask", None)
    if isinstance(data, np.ndarray) and data.dtype.kind in "iu" and isinstance(mask, np.ndarray):
        out = data.astype(np.int64)
        if mask.any():
            out[mask] = na
        return out
    return s.to_numpy("float64", na_value=na).astype(np.int64)


def _l3_is(packets: pd.DataFrame, *names: str, rows: np.ndarray | None = None) -> np.ndarray:
    """Whether each frame's l3 is one of ``names`` (of the frames at ``rows`` only, if given)."""
    l3 = packets["l3"]
    if isinstance(l3.dtype, pd.CategoricalDtype):
        idx = [i for i in l3.cat.categories.get_indexer(list(names)) if i >= 0]
        codes = l3.cat.codes.to_numpy()
        return np.isin(codes if rows is None else codes[rows], idx)
    v = l3.astype(object).to_numpy()
    return np.isin(v if rows is None else v[rows], names)


def _port_array(ports) -> pd.arrays.IntegerArray:
    """int64 ports with -1 for none → UInt16 with <NA>."""
    v = np.asarray(ports, dtype=np.int64)
    return pd.arrays.IntegerArray(np.where(v >= 0, v, 0).astype(np.uint16), v < 0)


def _ports(s: pd.Series) -> np.ndarray:
    """Ports as int64 with -1 for <NA>."""
    return _int_na(s, -1)


def _codes_in(s: pd.Series, cats: pd.Index) -> np.ndarray:
    """Positions of s's values in ``cats`` (-1 where absent), by mapping categories, not values."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        m = _positions(cats, s.cat.categories)
        c = s.cat.codes.to_numpy()
        if m.size and (c >= 0).all():
            return m[c]
        return np.where(c >= 0, m[np.maximum(c, 0)] if len(m) else -1, -1).astype(np.int64)
    return cats.get_indexer(s.astype(object)).astype(np.int64)


def _connection_data(packets: pd.DataFrame, probes: pd.DataFrame) -> np.ndarray:
    """True for each TCP probe whose connection carried data after the SYN: a segment with payload, in
    either direction, on the probe's 4-tuple, at or after the SYN, before the next SYN of that tuple
    (the latest SYN of the 4-tuple before it: a compiled hash join and one sweep in time order)."""
    out = np.zeros(len(probes), bool)
    tcp = _is(probes["protocol"], "tcp")
    if not tcp.any() or packets.empty:
        return out
    proto, no_proto = raw_column(packets, "ip_proto")      # the columns' own buffers: no int64 copies
    plen, no_plen = raw_column(packets, "payload_len")
    flags, no_flags = raw_column(packets, "tcp_flags")
    _, no_ts = raw_column(packets, "ts_ns")
    data = (proto == 6) & ~no_proto & (plen > 0) & ~no_plen & (((flags & 0x02) == 0) | no_flags) & ~no_ts
    d = np.flatnonzero(data)
    if not d.size:
        return out
    cats = packets["src"].cat.categories
    sel = np.flatnonzero(tcp)
    a = _codes_in(probes["source"], cats)[sel]
    b = _codes_in(probes["destination"], cats)[sel]
    ps, pp = _ports(probes["ident"])[sel], _ports(probes["port"])[sel]
    ds, dd = packets["src"].cat.codes.to_numpy(np.int64)[d], packets["dst"].cat.codes.to_numpy(np.int64)[d]
    dsp = packets["sport"].array.take(d).to_numpy("int64", na_value=-1)
    ddp = packets["dport"].array.take(d).to_numpy("int64", na_value=-1)
    dts = packets["ts_ns"].array.take(d).to_numpy("int64")
    keys = np.concatenate([np.stack([a, b, ps, pp]).T, np.stack([ds, dd, dsp, ddp]).T,
                           np.stack([dd, ds, ddp, dsp]).T]) + 1
    use = (keys[:, 0] > 0) & (keys[:, 1] > 0)
    kid, n_keys = _factorize(keys, use, 4)
    ts = np.concatenate([probes["ts_ns"].to_numpy("int64")[sel], dts, dts])
    is_data = np.concatenate([np.zeros(sel.size, np.int8), np.ones(2 * d.size, np.int8)])
    order = np.lexsort((is_data, ts))                   # at equal times the SYN first
    out[sel[_carried(order, kid, sel.size, n_keys)]] = True
    return out


@njit(nogil=True)
def _carried(order, kid, n_probes, n_keys):  # pragma: no cover - compiled
    """Probes (index < n_probes) that a later data segment of their 4-tuple goes to: each segment
    marks the latest probe of its key before it."""
    last = np.full(max(n_keys, 1), -1, np.int64)
    hit = np.zeros(n_probes, np.bool_)
    for e in order:
        k = kid[e]
        if k < 0:
            continue
        if e < n_probes:
            last[k] = e
        elif last[k] >= 0:
            hit[last[k]] = True
    return np.flatnonzero(hit)


def _udp_data(packets: pd.DataFrame, probes: pd.DataFrame) -> np.ndarray:
    """True for each UDP probe answered by a UDP datagram (an application on the target answered it:
    a DNS or NTP reply), not by an ICMP error."""
    out = np.zeros(len(probes), bool)
    udp = _is(probes["protocol"], "udp")
    if not udp.any():
        return out
    rf = probes["reply_frame"].to_numpy("int64", na_value=-1)
    sel = np.flatnonzero(udp & (rf >= 0))
    if sel.size:
        rows = _frame_rows(packets, rf[sel])
        ok = rows >= 0
        proto = packets["ip_proto"].array.take(rows[ok]).to_numpy("int64", na_value=-1)
        out[sel[ok]] = proto == 17
    return out


def _request_ttl(packets: pd.DataFrame, probes: pd.DataFrame, sel: np.ndarray) -> np.ndarray:
    """TTL / hop limit of the request of the probes ``sel`` (NaN when unknown)."""
    rows = _frame_rows(packets, probes["request_frame"].to_numpy("int64")[sel]) if sel.size else np.zeros(0, np.int64)
    ok = rows >= 0
    out = np.full(sel.size, np.nan)
    if ok.any():
        out[ok] = packets["ttl"].array.take(rows[ok]).to_numpy("float64", na_value=np.nan)
    return out


def stream_ports(packets: pd.DataFrame, probes: pd.DataFrame, tracer_min_ports: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """The port of each probe's stream (int64, -1 for ICMP) and how many consecutive ports that stream
    covers from it (1; 0 for ICMP): :func:`tracer_ports` with the requests' TTLs from ``packets``."""
    return _full_ports(probes, _tracer_runs(probes, lambda sel: _request_ttl(packets, probes, sel), tracer_min_ports))


def _port_parts(probes: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(values, missing) of the requests' own ports (``dst_port``; ``port`` in a table without it): a
    nullable column's buffers (no copy), else int64 values with -1 for missing."""
    return _int_parts(probes["dst_port"] if "dst_port" in probes.columns else probes["port"])


def _int_parts(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(values, missing) of an integer column: a nullable column's buffers, else int64 with -1 for missing
    (and no mask)."""
    data, mask = getattr(s.array, "_data", None), getattr(s.array, "_mask", None)
    if isinstance(data, np.ndarray) and data.dtype.kind in "iu" and isinstance(mask, np.ndarray):
        return data, mask
    v = _int_na(s, -1)
    return v, np.zeros(v.size, bool)          # -1 already marks the missing ones


def _tracer_runs(probes: pd.DataFrame, ttl_of, tracer_min_ports: int) -> tuple:
    """The rule of :func:`tracer_ports` as what it changes: (the port parts (:func:`_port_parts`), the rows
    of tracer runs (ascending), each one's stream port and span). ``ttl_of(rows)``: the TTLs of those rows."""
    data, mask = _port_parts(probes)
    none = np.zeros(0, np.int64)
    udp = _is(probes["protocol"], "udp")
    if int(np.count_nonzero(udp)) < tracer_min_ports:
        return data, mask, none, none, none
    sel = np.flatnonzero(udp & ~mask & (data >= 0) if data.dtype.kind == "i" else udp & ~mask)
    if sel.size < tracer_min_ports:
        return data, mask, none, none, none
    p = data[sel].astype(np.int64)
    dest = probes["destination"]
    d = (dest.cat.codes.to_numpy(np.int64)[sel] if isinstance(dest.dtype, pd.CategoricalDtype)
         else pd.factorize(dest.astype(object))[0].astype(np.int64)[sel])
    inv, u = pd.factorize(d * 65536 + p, sort=True)   # (destination, port) pairs in order: a hash, few sorted
    inv = inv.astype(np.int64)
    ud, up = u // 65536, u % 65536
    new = np.ones(u.size, bool)
    new[1:] = (ud[1:] != ud[:-1]) | (up[1:] != up[:-1] + 1)
    run_of_u = np.cumsum(new) - 1
    run = run_of_u[inv]
    n_runs = int(run_of_u[-1]) + 1
    n_ports = np.bincount(run_of_u, minlength=n_runs)
    base = up[new]
    t = np.asarray(ttl_of(sel), np.float64)
    lo, hi = np.full(n_runs, np.inf), np.full(n_runs, -np.inf)
    np.minimum.at(lo, run, np.where(np.isnan(t), np.inf, t))
    np.maximum.at(hi, run, np.where(np.isnan(t), -np.inf, t))
    tracer = (n_ports >= tracer_min_ports) & (hi > lo)
    hit = tracer[run]
    return data, mask, sel[hit], base[run[hit]].astype(np.int64), n_ports[run[hit]].astype(np.int64)


def _full_ports(probes: pd.DataFrame, runs: tuple) -> tuple[np.ndarray, np.ndarray]:
    """(stream port, span) of every row from :func:`_tracer_runs`."""
    data, mask, rows, base, n = runs
    port = data.astype(np.int64)
    port[mask] = -1
    span = (port >= 0).astype(np.int64)
    port[rows] = base
    span[rows] = n
    return port, span


def _ports_at(runs: tuple, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(stream port, span) of the rows ``at`` only, from :func:`_tracer_runs`."""
    data, mask, rows, base, n = runs
    port = data[at].astype(np.int64)
    port[mask[at]] = -1
    span = (port >= 0).astype(np.int64)
    if rows.size and at.size:
        i = np.minimum(np.searchsorted(rows, at), rows.size - 1)
        hit = rows[i] == at
        port[hit] = base[i[hit]]
        span[hit] = n[i[hit]]
    return port, span


def tracer_ports(probes: pd.DataFrame, ttl: np.ndarray, tracer_min_ports: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """The stream port of each probe and the ports its stream covers, given each request's TTL (``ttl``,
    NaN when unknown). A tracer's UDP probes (traceroute, mtr -u) go to a new destination port each,
    33434, 33435, ...: the UDP probes to one destination whose distinct ports run consecutively, at least
    ``tracer_min_ports`` of them, sent with more than one TTL (rising TTLs: a tracer, not a port scan),
    are one stream keyed by the run's lowest port. Every other probe keeps its port (span 1; ICMP -1, 0).
    The ports are the requests' own (``dst_port``; ``port`` in a table without it)."""
    t = np.asarray(ttl, np.float64)
    return _full_ports(probes, _tracer_runs(probes, lambda sel: t[sel], tracer_min_ports))


@njit(nogil=True)
def _group_stats(order, bounds, ts, plen, data, tolerance):  # pragma: no cover - compiled
    """Per group (``order`` sorted by group, time within): first and last time, median gap, gaps and
    gaps on schedule (within ``tolerance`` of a whole multiple of the median, at least one), requests
    with data, median payload length and distinct payload lengths (NaN lengths ignored; lengths are
    IP payload sizes, under 2^17)."""
    G = bounds.size - 1
    first, last = np.zeros(G, np.int64), np.zeros(G, np.int64)
    med, plmed = np.full(G, np.nan), np.full(G, np.nan)
    gaps, near, ndata, nlen = (np.zeros(G, np.int64), np.zeros(G, np.int64), np.zeros(G, np.int64),
                               np.zeros(G, np.int64))
    seen = np.zeros(1 << 17, np.int64)
    most = 1                                # the largest group: the scratch arrays' size, not the rows'
    for g in range(G):
        most = max(most, bounds[g + 1] - bounds[g])
    gp = np.empty(most)
    pl = np.empty(min(most, seen.size))
    for g in range(G):
        lo, hi = bounds[g], bounds[g + 1]
        first[g] = ts[order[lo]]
        last[g] = ts[order[hi - 1]]
        k = hi - lo
        if k > 1:
            prev = ts[order[lo]]
            for i in range(lo + 1, hi):
                t = ts[order[i]]
                gp[i - lo - 1] = (t - prev) / 1e9
                prev = t
            m = np.median(gp[:k - 1])
            med[g] = m
            if m > 0:
                gaps[g] = k - 1
                c = 0
                for j in range(k - 1):
                    r = gp[j] / m
                    w = max(np.round(r), 1.0)
                    if abs(r - w) <= tolerance:
                        c += 1
                near[g] = c
        # payload lengths: counted per distinct value (lengths are small integers), the median read
        # off the counts in order; a value outside 0..2^17 (never an IP payload length) falls back to a sort
        n = 0
        d = 0
        odd = False
        for i in range(lo, hi):
            e = order[i]
            if data[e]:
                ndata[g] += 1
            v = plen[e]
            if np.isnan(v):
                continue
            n += 1
            x = int(v)
            if x != v or x < 0 or x >= seen.size:
                odd = True
                continue
            if seen[x] == 0:
                pl[d] = x
                d += 1
            seen[x] += 1
        if odd:
            tmp = np.empty(n)
            j = 0
            for i in range(lo, hi):
                if not np.isnan(plen[order[i]]):
                    tmp[j] = plen[order[i]]
                    j += 1
            tmp = np.sort(tmp)
            plmed[g] = (tmp[(n - 1) // 2] + tmp[n // 2]) / 2
            u = 1
            for j in range(1, n):
                if tmp[j] != tmp[j - 1]:
                    u += 1
            nlen[g] = u
        elif n:
            vals = np.sort(pl[:d])
            lo_i, hi_i = (n - 1) // 2, n // 2
            c = 0
            va, vb = np.nan, np.nan
            for v in vals:
                c2 = c + seen[int(v)]
                if np.isnan(va) and lo_i < c2:
                    va = v
                if hi_i < c2:
                    vb = v
                    break
                c = c2
            plmed[g] = (va + vb) / 2
            nlen[g] = d
        for j in range(d):                  # reset only what this group set
            seen[int(pl[j])] = 0
    return first, last, med, gaps, near, ndata, plmed, nlen


def _source_streams(packets: pd.DataFrame, probes: pd.DataFrame, tolerance: float, tracer_min_ports: int) -> dict:
    """Per source stream: counts, schedule, data, payload (a compiled pass over the probes grouped by
    stream, in time order). Returns numpy columns; ``port`` is the stream port (stream_ports).

    Memory: per request row it holds one int64 key (built in place from the columns' own codes), then the
    group ids and the order, then the order, the payload lengths and the data flags (about 17 bytes a row
    at the peak); every other value is made per group, from each group's first row."""
    addrs = _address_index(packets, probes)
    protos = _proto_index(probes["protocol"])
    pcodes, pmap = _code_map(probes["protocol"], protos)
    scodes, smap = _code_map(probes["source"], addrs)
    dcodes, dmap = _code_map(probes["destination"], addrs)
    runs = _tracer_runs(probes, lambda sel: _request_ttl(packets, probes, sel), tracer_min_ports)
    ts = probes["ts_ns"].to_numpy("int64")
    n = ts.size
    cached = cached_groups(probes, SOURCE_STREAM_KEYS)
    if cached is not None and _port_is_stream_port(probes, runs):
        gid, ng = cached.gid, cached.n                      # the table's groups (the fingerprints made them)
    elif len(protos) <= 15:
        gid, ng = _key_groups(_stream_key(pcodes, pmap, scodes, smap, dcodes, dmap, runs, len(addrs)))
    else:  # pragma: no cover - more than 15 protocols
        port, _ = _full_ports(probes, runs)
        key = pd.MultiIndex.from_arrays([pmap[pcodes], smap[scodes], dmap[dcodes], port]).factorize()[0]
        gid, uniq = pd.factorize(key, sort=True)
        gid, ng = gid.astype(np.int64), len(uniq)
    if n > 1 and not bool(np.all(ts[1:] >= ts[:-1])):
        order = np.lexsort((ts, gid))
    else:
        order = stable_group_order(gid, ng)                 # the probes table is in time order
    cnt = np.bincount(gid, minlength=ng)
    del gid
    bounds = np.concatenate([[0], np.cumsum(cnt)]).astype(np.int64)
    data = _connection_data(packets, probes) | _udp_data(packets, probes)
    plen = _request_payload_len(packets, probes)
    first, last, med, gaps, near, ndata, plmed, nlen = _group_stats(order, bounds, ts, plen, data, tolerance)
    o = order[bounds[:-1]]
    del order, plen, data
    pc, sc, dc = pmap[pcodes[o]], smap[scodes[o]], dmap[dcodes[o]]
    port, span = _ports_at(runs, o)
    a = np.asarray(addrs.astype(object), dtype=object)
    with np.errstate(invalid="ignore", divide="ignore"):
        sched = np.where(gaps > 0, 100.0 * near / np.maximum(gaps, 1), np.nan)
    return {"protocol": np.asarray(protos.astype(object), dtype=object)[pc], "pcode": pc, "scode": sc,
            "dcode": dc, "source": a[sc], "destination": a[dc], "port": port, "ports": span,
            "requests": cnt, "first_ns": first, "last_ns": last, "gap_median_s": med, "gaps": gaps, "near": near,
            "data": ndata, "payload_len_median": plmed, "payload_lengths": nlen, "on_schedule_pct": sched}


def _port_is_stream_port(probes: pd.DataFrame, runs: tuple) -> bool:
    """Whether the table's ``port`` is every row's stream port (:func:`_tracer_runs`; the matcher keys its
    probes so): then the groups by (protocol, source, destination, port) are the source streams."""
    data, mask, rows, base, _ = runs
    pdat, pmask = _int_parts(probes["port"])
    if pdat.size != data.size or not np.array_equal(mask, pmask):
        return False
    if rows.size and not bool((pdat[rows].astype(np.int64) == base).all()):
        return False
    same = (data == pdat) | mask
    same[rows] = True
    return bool(same.all())


def _proto_index(s: pd.Series) -> pd.Index:
    """The protocols in code order: the four known ones, then any other present (sorted), None last when
    a protocol is missing."""
    if isinstance(s.dtype, pd.CategoricalDtype) and set(s.cat.categories.tolist()) <= set(_PROTO):
        return pd.Index(list(_PROTO) + ([None] if (s.cat.codes.to_numpy() < 0).any() else []))
    return pd.Index(list(_PROTO) + sorted(set(_present(s)) - set(_PROTO)))


def _code_map(s: pd.Series, index: pd.Index) -> tuple[np.ndarray, np.ndarray]:
    """(codes, map) with ``map[codes]`` = :func:`_codes_in` (s's positions in ``index``, -1 where absent):
    a categorical's own codes (no copy) and its categories' positions, -1 last (for the code -1)."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        return s.array.codes, np.append(_positions(index, s.cat.categories), -1).astype(np.int64)   # a view
    return _codes_in(s, index), np.append(np.arange(len(index)), -1).astype(np.int64)


def _stream_key(pcodes, pmap, scodes, smap, dcodes, dmap, runs: tuple, n_addr: int) -> np.ndarray:
    """:func:`_packed` of every row's (protocol, source, destination, stream port), built in place in one
    int64 array (the temporaries are the narrow codes' width)."""
    n = np.int64(max(n_addr, 1) + 1)
    if n > 1_000_001:  # pragma: no cover
        from ..errors import ProbekitError
        raise ProbekitError(f"{n - 1:,} distinct addresses: the stream keys are packed for up to a million")
    data, mask, rows, base, _ = runs
    s1, d1, p15 = smap + 1, (dmap + 1).astype(np.int32), (pmap & 15).astype(np.int8)
    key = np.empty(data.size, np.int64)
    for lo in range(0, data.size, _BLOCK):          # a block at a time: the index casts stay block-sized
        hi = min(lo + _BLOCK, data.size)
        k = key[lo:hi]
        np.take(s1, scodes[lo:hi], out=k)
        k *= n
        k += np.take(d1, dcodes[lo:hi])
        k *= 65537
        p1 = data[lo:hi].astype(np.int64)
        p1 += 1
        p1[mask[lo:hi]] = 0
        k += p1
        k *= 16
        k += np.take(p15, pcodes[lo:hi])
    if rows.size:                                   # the tracer rows' stream port: their key again
        key[rows] = _packed(np.take(pmap, pcodes[rows]), np.take(smap, scodes[rows]), np.take(dmap, dcodes[rows]),
                            base, n_addr)
    return key


def _key_groups(key: np.ndarray) -> tuple[np.ndarray, int]:
    """Group ids of ``key`` in key order (``pd.factorize(key, sort=True)``), with a small hash table (the
    keys are few) and the keys freed before the ids are ranked. ``key`` is consumed."""
    gid, uniq = pd.factorize(key, size_hint=min(key.size, 1 << 12))
    del key
    ng = len(uniq)
    rank = np.empty(ng, np.int64)
    rank[np.argsort(uniq, kind="stable")] = np.arange(ng)
    return rank[gid], ng


def _request_payload_len(packets: pd.DataFrame, probes: pd.DataFrame) -> np.ndarray:
    """Each request's IP payload length (float64, NaN when unknown), a block of rows at a time (the row
    positions of a block only)."""
    rf = probes["request_frame"].to_numpy("int64")
    plen = np.full(rf.size, np.nan)
    if not rf.size:
        return plen
    rows_of = _frame_locator(packets)
    col = packets["payload_len"].array
    data, mask = getattr(col, "_data", None), getattr(col, "_mask", None)
    raw = isinstance(data, np.ndarray) and data.dtype.kind in "iu" and isinstance(mask, np.ndarray)
    for lo in range(0, rf.size, _BLOCK):
        rows = rows_of(rf[lo:lo + _BLOCK])
        ok = rows >= 0
        if not ok.all():
            rows = rows[ok]
        if raw:                                 # the masked column's buffers: values, NaN where missing
            v = data[rows].astype(np.float64)
            v[mask[rows]] = np.nan
        else:
            v = col.take(rows).to_numpy("float64", na_value=np.nan)
        if rows.size == ok.size:
            plen[lo:lo + _BLOCK] = v
        else:
            plen[lo:lo + _BLOCK][ok] = v
    return plen


_BLOCK = 1 << 18
"""Rows per block where a per-row temporary is made a block at a time."""


def _address_index(packets: pd.DataFrame, probes: pd.DataFrame) -> pd.Index:
    """The packets' address categories, plus any probe address they lack."""
    cats = packets["src"].cat.categories if len(packets) else pd.Index([])
    extra = []
    for c in ("source", "destination"):
        v = probes[c].cat.categories if isinstance(probes[c].dtype, pd.CategoricalDtype) else pd.Index(probes[c].unique())
        extra += list(np.asarray(v.astype(object))[_positions(cats, v) < 0])
    return cats.append(pd.Index(sorted(set(extra)), dtype=cats.dtype)) if extra else cats


_SERVICE_UDP = frozenset(int(p.split("/")[0]) for p in LIKELY_SERVER_PORTS if p.endswith("/udp"))
"""UDP ports Zeek registers an application analyzer for (connections.LIKELY_SERVER_PORTS): DNS, NTP,
DHCP, SNMP, syslog, ... — a request there is an application's, not a tracer's."""


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
    3. client: TCP, and at least ``client_data_pct`` % of its connections carried data; UDP to a service
       port (Zeek's likely server ports: DNS, NTP, ...) or with ``client_data_pct`` % of its requests
       answered by a UDP datagram.
    4. probe: at least ``min_requests`` requests, ``on_schedule_pct`` % of the gaps on schedule (a whole
       multiple of the median gap, within ``tolerance`` of it), and (TCP, UDP) at most ``probe_data_pct``
       % of the connections / requests carried data.
    5. other.
    A tracer's UDP probes to rising ports are one stream keyed by the lowest (``stream_ports``,
    ``tracer_min_ports``; column ``ports``). ``fingerprints`` (probekit.fingerprint's table) adds the tool
    label as evidence; it does not decide.
    """
    if probes.empty:
        return _typed(pd.DataFrame({c: [] for c in STREAM_COLUMNS}))
    ss = _source_streams(packets, probes, tolerance, tracer_min_ports)
    n = ss["requests"].size
    # a scanner's fan-out: targets each source sent only one or two requests to
    few = ss["requests"] <= scan_max_per_target
    fan = np.bincount(ss["scode"][few], minlength=int(ss["scode"].max()) + 1)
    ss["source_targets"] = fan[ss["scode"]].astype(np.int64)
    is_tcp, is_udp = ss["protocol"] == "tcp", ss["protocol"] == "udp"
    with np.errstate(invalid="ignore", divide="ignore"):
        data_pct = np.where(is_tcp | is_udp, 100.0 * ss["data"] / ss["requests"], np.nan)
    ss["data_pct"] = data_pct
    dp = np.nan_to_num(data_pct, nan=0.0)
    service = is_udp & np.isin(ss["port"], np.fromiter(_SERVICE_UDP, np.int64)) & (ss["ports"] == 1)
    scan = few & (ss["source_targets"] >= scan_min_targets)
    client = ((is_tcp | is_udp) & (dp >= client_data_pct)) | service
    enough = ss["requests"] >= min_requests
    regular = np.nan_to_num(ss["on_schedule_pct"], nan=0.0) >= on_schedule_pct
    quiet = ~(is_tcp | is_udp) | (dp <= probe_data_pct)
    probe = enough & regular & quiet
    kind = np.select([scan, client, probe], ["scan", "client", "probe"], "other").astype(object)
    rule = np.select([scan, service, client, probe], ["scan", "service", "client", "probe"],
                     np.where(~enough, "few", np.where(~regular, "irregular", "some_data"))).astype(object)
    decided = np.full(n, "rule", dtype=object)
    if overrides:
        ov = {}
        for key, val in overrides.items():
            if val not in STREAM_KINDS:
                raise ValueError(f"override kind {val!r}: choose from {', '.join(STREAM_KINDS)}")
            ov[_norm_key(key)] = val
        ports = ss["port"].tolist()
        for i in range(n):      # per source stream, not per packet
            p3 = (ss["protocol"][i], ss["destination"][i], ports[i])
            v = ov.get((p3[0], ss["source"][i], *p3[1:]), ov.get(p3))
            if v is not None:
                kind[i], rule[i], decided[i] = v, "user", "user"
    ss["kind"], ss["rule"], ss["decided_by"] = kind, rule, decided
    ss["tool"] = np.full(n, None, dtype=object)
    if fingerprints is not None and len(fingerprints):
        f = fingerprints
        fk = {(str(a), str(b), str(c), int(d)): str(t) for a, b, c, d, t in
              zip(f["protocol"].astype(str), f["source"].astype(str), f["destination"].astype(str),
                  _ports(f["port"]).tolist(), f["tool"].astype(str))}
        ss["tool"] = np.array([fk.get(k) for k in zip(ss["protocol"], ss["source"], ss["destination"],
                                                      ss["port"].tolist())] + [None], dtype=object)[:-1]
    return _fold(ss, min_requests, on_schedule_pct, client_data_pct, scan_min_targets, scan_max_per_target)


def _fold(ss: dict, min_requests, on_schedule_pct, client_data_pct, scan_min_targets,
          scan_max_per_target) -> pd.DataFrame:
    """The source streams of one kind to one target (protocol, destination, port) as one row: sums,
    extremes and medians over the sources (numpy over the rows sorted by target, kind and source)."""
    kc = np.array([STREAM_KINDS.index(k) for k in ss["kind"]], np.int64) if ss["kind"].size else np.zeros(0, np.int64)
    src_rank = pd.factorize(ss["source"], sort=True)[0]
    dst_rank = pd.factorize(ss["destination"], sort=True)[0]
    proto_rank = pd.factorize(ss["protocol"], sort=True)[0]
    o = np.lexsort((src_rank, kc, ss["port"], dst_rank, proto_rank))
    col = {k: v[o] for k, v in ss.items() if not k.startswith("_")}
    kc = kc[o]
    n = o.size
    new = np.ones(n, bool)
    if n > 1:
        new[1:] = ((col["pcode"][1:] != col["pcode"][:-1]) | (col["dcode"][1:] != col["dcode"][:-1])
                   | (col["port"][1:] != col["port"][:-1]) | (kc[1:] != kc[:-1]))
    starts = np.flatnonzero(new)
    size = np.diff(np.append(starts, n))
    gid = np.repeat(np.arange(starts.size), size)

    def red(f, name):
        return f.reduceat(col[name], starts) if n else np.zeros(0)

    multi = np.flatnonzero(size > 1)

    def med(name):     # median over the sources (NaN ignored): the value itself for one source
        out = col[name][starts].astype(np.float64)
        for g in multi:                                       # per target with several sources (few)
            v = col[name][starts[g]:starts[g] + size[g]]
            v = v[~np.isnan(v)]
            out[g] = np.median(v) if v.size else np.nan
        return out

    def joined(name, sep, uniq=False, skip_none=False):
        out = np.asarray(col[name][starts], dtype=object).copy()
        for g in multi:
            v = col[name][starts[g]:starts[g] + size[g]]
            v = [str(x) for x in v if not (skip_none and not isinstance(x, str))]
            out[g] = sep.join(sorted(set(v) if uniq else v)) or None
        return out

    tool = joined("tool", "/", uniq=True, skip_none=True)
    tool = np.array([t if isinstance(t, str) and t else None for t in tool] + [None], dtype=object)[:-1]
    out = {
        "protocol": col["protocol"][starts], "destination": col["destination"][starts], "port": col["port"][starts],
        "ports": red(np.maximum, "ports"), "kind": np.asarray(STREAM_KINDS, dtype=object)[kc[starts]],
        "sources": size, "source_list": joined("source", ","), "requests": red(np.add, "requests"),
        "first_ns": red(np.minimum, "first_ns"), "last_ns": red(np.maximum, "last_ns"),
        "gap_median_s": med("gap_median_s"), "gaps": red(np.add, "gaps"), "near": red(np.add, "near"),
        "per_target_max": red(np.maximum, "requests"), "source_targets": red(np.maximum, "source_targets"),
        "data": red(np.add, "data"), "payload_len_median": med("payload_len_median"),
        "payload_lengths": red(np.maximum, "payload_lengths"), "tool": tool,
        "decided_by": np.where(np.bincount(gid, weights=col["decided_by"] == "user", minlength=starts.size) > 0,
                               "user", "rule"),
        "rules": joined("rule", ",", uniq=True)}
    span = (out["last_ns"] - out["first_ns"]) / _NS
    with np.errstate(invalid="ignore", divide="ignore"):
        out["rate_per_s"] = np.where(span > 0, (out["requests"] - 1) / span, np.nan)
        out["on_schedule_pct"] = np.where(out["gaps"] > 0, 100.0 * out["near"] / out["gaps"], np.nan)
        proto = np.asarray(out["protocol"], dtype=object)
        out["data_pct"] = np.where((proto == "tcp") | (proto == "udp"), 100.0 * out["data"] / out["requests"], np.nan)
    rows = zip(*(out[f].tolist() for f in _Row._fields))   # Python values, as itertuples gives them
    out["evidence"] = np.array([_evidence(_Row(*r), min_requests, on_schedule_pct, client_data_pct,
                                          scan_min_targets, scan_max_per_target) for r in rows] + [None],
                               dtype=object)[:-1]                                      # per row (few)
    # kind order, most requests first, then protocol and destination (a stable sort, as sort_values)
    o = np.lexsort((pd.factorize(out["destination"], sort=True)[0], pd.factorize(proto, sort=True)[0],
                    -out["requests"], kc[starts]))
    return _typed_columns({c: out[c][o] for c in STREAM_COLUMNS}, kc[starts][o])


_Row = namedtuple("_Row", ["requests", "sources", "port", "ports", "on_schedule_pct", "gap_median_s", "protocol",
                           "data_pct", "payload_len_median", "tool", "source_targets", "rules"])
"""The fields of a streams row that :func:`_evidence` reads."""


def _typed_columns(col: dict, kind_codes: np.ndarray) -> pd.DataFrame:
    """The streams table (schema.STREAMS' dtypes) from numpy columns, built once: what :func:`_typed` makes
    of them, without a pandas conversion per column of a few rows."""
    types = {c.name: c.dtype for c in STREAMS}
    cols: dict = {}
    for c in STREAM_COLUMNS:
        v = col[c]
        if c == "kind":
            cols[c] = pd.Categorical.from_codes(kind_codes.astype(np.int8), categories=list(STREAM_KINDS))
        elif c == "decided_by":
            cols[c] = pd.Categorical.from_codes((v == "user").astype(np.int8), categories=["rule", "user"])
        elif c == "port":
            cols[c] = _port_array(v)
        elif c in ("tool", "source_list", "evidence"):
            cols[c] = pd.Series(np.asarray(v, dtype=object), dtype=object)     # not inferred as text
        elif types[c] == "category":
            cols[c] = pd.Categorical(np.asarray(v, dtype=object).astype(str))
        else:
            cols[c] = np.asarray(v).astype(types[c])
    return pd.DataFrame(cols)


def _evidence(r, min_requests, on_schedule_pct, client_data_pct, scan_min_targets, scan_max_per_target) -> str:
    who = f"{r.requests} request(s) from {r.sources} source(s)"
    ports = f", ports {r.port}-{r.port + r.ports - 1} (a tracer's rising ports)" if r.ports > 1 else ""
    sched = ("" if pd.isna(r.on_schedule_pct) else
             f", every {r.gap_median_s:.3g} s per source, {r.on_schedule_pct:.0f} % of gaps on schedule")
    what = "of requests drew a UDP reply" if r.protocol == "udp" else "of connections carried data"
    data = "" if pd.isna(r.data_pct) else f", {r.data_pct:.0f} % {what}"
    pay = "" if pd.isna(r.payload_len_median) else f", {r.payload_len_median:.0f}-byte request payload"
    tool = f", fingerprint {r.tool}" if isinstance(r.tool, str) and r.tool else ""
    why = {
        "user": "set by the user (override)",
        "scan": (f"scan: at most {scan_max_per_target} request(s) here, and the source sent that few to "
                 f"{r.source_targets} targets (>= {scan_min_targets})"),
        "client": f"client: >= {client_data_pct:.0f} % {what}",
        "service": f"client: UDP to port {r.port}, a service port (an application's requests, not a tracer's)",
        "probe": f"probe: >= {min_requests} requests on a fixed schedule (>= {on_schedule_pct:.0f} % of gaps)",
        "few": f"other: fewer than {min_requests} requests",
        "irregular": f"other: under {on_schedule_pct:.0f} % of gaps on schedule",
        "some_data": "other: regular, but some " + ("requests drew UDP replies" if r.protocol == "udp"
                                                    else "connections carried data"),
    }
    reasons = "; ".join(why[x] for x in r.rules.split(","))
    return f"{reasons} — {who}{ports}{sched}{data}{pay}{tool}"


def _typed(out: pd.DataFrame) -> pd.DataFrame:
    types = {c.name: c.dtype for c in STREAMS}
    cols: dict = {}
    for c in STREAM_COLUMNS:          # each column converted once, the table built once (no copy, no setitem)
        s = out[c]
        if c == "kind":
            cols[c] = pd.Categorical(s, categories=list(STREAM_KINDS))
        elif c == "decided_by":
            cols[c] = pd.Categorical(s, categories=["rule", "user"])
        elif c == "tool":
            cols[c] = s.astype(object).where(s.notna(), None) if len(out) else s.astype(object)
        elif types[c] == "category":
            cols[c] = s.astype(str).astype("category") if len(out) else pd.Categorical([])
        else:
            cols[c] = s.astype(types[c])
    return pd.DataFrame(cols, index=out.index)


def _stream_sources(streams: pd.DataFrame, kinds) -> pd.DataFrame:
    """(protocol, source, destination, port, kind) for every source of the chosen kinds' rows (per stream
    row), one row per port a tracer stream covers."""
    s = streams[streams["kind"].isin(list(kinds))] if kinds is not None else streams
    rows = []
    m = len(s)
    spans = s["ports"].tolist() if "ports" in s.columns else [None] * m
    for proto, dst, port, span, srcs, kind in zip(s["protocol"].tolist(), s["destination"].tolist(),
                                                  s["port"].tolist(), spans, s["source_list"].tolist(),
                                                  s["kind"].tolist()):   # per stream row (column lists)
        port = -1 if pd.isna(port) else int(port)
        n = int(span) if span is not None and port >= 0 and not pd.isna(span) else 1
        for src in str(srcs).split(","):
            for p in range(port, port + max(n, 1)):
                rows.append((str(proto), src, str(dst), p, str(kind)))
    return pd.DataFrame(rows, columns=[*_SS, "kind"])


def _packed(proto, src, dst, port, n_addr: int) -> np.ndarray:
    """One int64 per (protocol code < 16, source code, destination code, port); exact for up to a million
    addresses (the address pair needs 40 bits, the port 17, the protocol 4)."""
    n = np.int64(max(n_addr, 1) + 1)
    pair = (np.asarray(src, np.int64) + 1) * n + (np.asarray(dst, np.int64) + 1)
    if n > 1_000_001:  # pragma: no cover
        from ..errors import ProbekitError
        raise ProbekitError(f"{n - 1:,} distinct addresses: the stream keys are packed for up to a million")
    return (pair * 65537 + (np.asarray(port, np.int64) + 1)) * 16 + (np.asarray(proto, np.int64) & 15)


def select_probe_streams(probes: pd.DataFrame, streams: pd.DataFrame, kinds=("probe",), keys=None,
                         exclude=None) -> pd.DataFrame:
    """The rows of ``probes`` in streams of the given ``kinds`` (default: the probe streams), plus the
    streams named in ``keys`` and minus those in ``exclude`` (keys as for ``streams(overrides=...)``).
    ``kinds=None`` keeps every kind (the --all-streams view)."""
    keep = _in_streams(probes, _stream_sources(streams, kinds)) if kinds is not None else np.ones(len(probes), bool)
    port = None

    def named(ks):
        m = np.zeros(len(probes), bool)
        nonlocal port
        for key in ks or ():                                 # per named key
            k = _norm_key(key)
            port = _ports(probes["port"]) if port is None else port
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
            out[c] = _drop_unused(out[c])
    return out


def _in_streams(probes: pd.DataFrame, sel: pd.DataFrame) -> np.ndarray:
    """Which rows of ``probes`` are in the source streams ``sel`` (protocol, source, destination, port; port
    -1 for none): per group of the table's groups by those columns when made already (one look-up a group,
    one gather of the ids), else per row (the keys packed in place)."""
    n = len(probes)
    if not len(sel) or not n:
        return np.zeros(n, bool)
    addrs = pd.Index(sorted(set(sel["source"]) | set(sel["destination"])), dtype=object)
    protos = pd.Index(list(_PROTO) + sorted(set(sel["protocol"]) - set(_PROTO)), dtype=object)
    want = _packed(protos.get_indexer(sel["protocol"]), addrs.get_indexer(sel["source"]),
                   addrs.get_indexer(sel["destination"]), sel["port"].to_numpy(np.int64), len(addrs))
    w = np.unique(want)                                       # few keys: a binary search per key
    pcodes, pmap = _code_map(probes["protocol"], protos)
    scodes, smap = _code_map(probes["source"], addrs)
    dcodes, dmap = _code_map(probes["destination"], addrs)
    data, mask = _int_parts(probes["port"])
    g = cached_groups(probes, SOURCE_STREAM_KEYS)
    if g is not None:                                         # the groups' first rows stand for their rows
        at = g.first
        pc, sc, dc = pmap[pcodes[at]], smap[scodes[at]], dmap[dcodes[at]]
        port = data[at].astype(np.int64)
        port[mask[at]] = -1
        pk = _packed(pc, sc, dc, port, len(addrs))
        i = np.minimum(np.searchsorted(w, pk), w.size - 1)
        return np.take((w[i] == pk) & (pc >= 0) & (sc >= 0) & (dc >= 0), g.gid)
    none = np.zeros(0, np.int64)
    pk = _stream_key(pcodes, pmap, scodes, smap, dcodes, dmap, (data, mask, none, none, none), len(addrs))
    i = np.searchsorted(w, pk)
    np.minimum(i, w.size - 1, out=i)
    keep = w[i] == pk
    del i, pk
    for codes, m in ((pcodes, pmap), (scodes, smap), (dcodes, dmap)):
        keep &= np.take(m >= 0, codes)
    return keep


def _drop_unused(s: pd.Series) -> pd.Series:
    """``s.cat.remove_unused_categories()`` by a count over the codes (no sort of the rows)."""
    codes = s.cat.codes.to_numpy()
    cats = s.cat.categories
    ok = codes >= 0
    used = np.bincount(codes[ok].astype(np.int64), minlength=len(cats)) > 0
    if used.all():
        return s
    new = np.cumsum(used, dtype=np.int64) - 1
    codes = np.where(ok, new[np.maximum(codes, 0)], -1).astype(codes.dtype)
    cat = pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(cats[used], ordered=s.cat.ordered))
    return pd.Series(cat, index=s.index, name=s.name)


# ---------------------------------------------------------------------------------- other traffic


_FALLBACK = ("arp", "dns", "ntp", "udp", "icmp", "tcp", "ip", "non-ip")
PACKET_KINDS = STREAM_KINDS + _FALLBACK


@njit(nogil=True)
def _frame_kinds(kind, proto, no_proto, src, dst, sport, no_sport, dport, no_dport, typ, no_typ, lk, lv,
                 nc):  # pragma: no cover - compiled
    """For every frame: the kind of the stream whose request (outward) or answer (inward) it is, looked
    up by (protocol, addresses, port) packed as :func:`_packed` packs them in the sorted ``lk``. The
    columns are their own buffers (``no_*``: missing)."""
    n = np.int64(max(nc, 1) + 1)
    for i in range(kind.size):
        if no_proto[i] or src[i] < 0 or dst[i] < 0 or lk.size == 0:
            continue
        pr = np.int64(proto[i])
        small = 1 if pr == 1 else 2 if pr == 6 else 3 if pr == 17 else 4 if pr == 58 else 14
        icmp = pr == 1 or pr == 58
        for side in range(2):
            if icmp:
                want = (8 if pr == 1 else 128) if side == 0 else (0 if pr == 1 else 129)
                if no_typ[i] or np.int64(typ[i]) != want:
                    continue
                port = np.int64(-1)
            elif no_sport[i] or no_dport[i]:
                port = np.int64(-1)
            else:
                port = np.int64(dport[i]) if side == 0 else np.int64(sport[i])
            x, y = (np.int64(src[i]), np.int64(dst[i])) if side == 0 else (np.int64(dst[i]), np.int64(src[i]))
            q = (((x + 1) * n + (y + 1)) * 65537 + (port + 1)) * 16 + small
            lo, hi = 0, lk.size                          # binary search in the sorted keys
            while lo < hi:
                mid = (lo + hi) >> 1
                if lk[mid] < q:
                    lo = mid + 1
                else:
                    hi = mid
            if lo < lk.size and lk[lo] == q:
                kind[i] = lv[lo]
                break


def packet_kind_codes(packets: pd.DataFrame, streams: pd.DataFrame) -> np.ndarray:
    """Index into PACKET_KINDS of every frame (see packet_kinds)."""
    n = len(packets)
    kind = np.full(n, -1, np.int8)
    if n == 0:
        return kind
    cats = packets["src"].cat.categories
    src = packets["src"].cat.codes.to_numpy()
    dst = packets["dst"].cat.codes.to_numpy()
    proto, no_proto = raw_column(packets, "ip_proto")        # the columns' own buffers: no copies
    sport, no_sport = raw_column(packets, "sport")
    dport, no_dport = raw_column(packets, "dport")
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
        typ, no_typ = raw_column(packets, "icmp_type")
        _frame_kinds(kind, proto, no_proto, src, dst, sport, no_sport, dport, no_dport, typ, no_typ, lk[srt],
                     lv[srt], nc)
    rest = np.flatnonzero(kind < 0)
    if not rest.size:
        return kind
    pr_ = np.where(no_proto[rest], -1, proto[rest].astype(np.int64))
    sp_ = np.where(no_sport[rest], -1, sport[rest].astype(np.int64))
    dp_ = np.where(no_dport[rest], -1, dport[rest].astype(np.int64))
    udp = pr_ == 17
    dns = udp & ((sp_ == 53) | (dp_ == 53) | (sp_ == 5353) | (dp_ == 5353))
    ntp = udp & ((sp_ == 123) | (dp_ == 123))
    off = len(STREAM_KINDS)
    fallback = np.select([_l3_is(packets, "arp", rows=rest), dns, ntp, udp, np.isin(pr_, (1, 58)), pr_ == 6,
                          _l3_is(packets, "ipv4", "ipv6", rows=rest)], list(range(off, off + 7)), off + 7)
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
    cols: dict = {}
    for c in OTHER_TRAFFIC:           # each column converted once, the table built once (no setitem)
        s = out[c.name]
        if c.dtype == "category":
            cols[c.name] = s.astype(str).astype("category") if len(out) else pd.Categorical([])
        elif c.dtype == "Int64":
            cols[c.name] = s.astype("Int64")
        else:
            cols[c.name] = s.astype(c.dtype)
    return pd.DataFrame(cols, index=out.index)
