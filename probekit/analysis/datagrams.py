"""IPv4 and IPv6 fragments reassembled into datagrams (schema.DATAGRAMS), one row per datagram.

The packets table keeps one row per frame; this is the datagram view beside it. Fragments are the rows
with the more-fragments flag or a non-zero offset. They are grouped by the reassembly key (IPv4: source,
destination, protocol, identification — RFC 791; IPv6: source, destination, identification — RFC 8200),
sorted by arrival, and walked by one compiled kernel that keeps each datagram's byte ranges: out-of-order
fragments fill holes, duplicates are dropped, a datagram completes when the bytes 0..end of the last
fragment are all there, and fragments that come after the timeout start a new datagram. The same kernel
picks each datagram's offset-0 fragment and its first frame, so the table is assembled with array
operations only (a plain reference of the rules is tests/reference_datagrams.py).

A fragment's share of the datagram is its bytes after the fragment header. For IPv4 that is everything
after the IP header. For IPv6 (RFC 8200 §4.5) the unfragmentable part (the fixed header and the extension
headers before the Fragment header) is repeated in every fragment, and the fragmentable part — which may
start with more extension headers (destination options, routing, ...) before the upper-layer header — is
what is cut: the offset-0 fragment's bytes are read from the capture to find where its Fragment header
ends, and the upper-layer protocol (``ip_proto``) is the one the extension-header chain of the
reassembled payload leads to (the decoder's ``ip_hdr_len`` of an offset-0 fragment counts those later
headers too, which is right for its L4 columns but not for the fragment's length).

Overlap policy (``overlap=``):
- ``"rfc"`` (default): what a modern host does, so that "was the probe received" means what the target
  saw. IPv6 follows RFC 5722: any overlap discards the datagram; an exact duplicate is dropped and the
  datagram kept (RFC 8200 §4.5 allows it). IPv4 follows Linux since 4.19 (``inet_frag_queue_insert``,
  the FragmentSmack fix): a fragment lying inside bytes already received is a duplicate and dropped
  (first wins), a fragment that partly overlaps discards the datagram. An IPv6 offset-0 fragment whose
  upper-layer header does not fit in it is discarded (RFC 8200 §4.5 "should be discarded"; Linux's
  ``ipv6frag_thdr_truncated``: the extension headers through the Fragment header and the ones after it,
  then 20 bytes for TCP, 8 for UDP and ICMPv6, 1 for anything else, must lie within the fragment).
  Lengths as Linux's ``ip_frag_queue`` / ``ip6_frag_queue`` / ``ip_frag_reasm``: a fragment that ends
  where it starts (no data, or an IPv4 non-last one trimmed to a multiple of 8 down to nothing) discards
  the datagram; an IPv6 fragment ending past 65,535 bytes or non-last and not a multiple of 8 is
  discarded alone (RFC 8200 §4.5); an IPv4 datagram whose header and payload pass 65,535 bytes is
  refused when it completes (``bad_length``).
- ``"first"``: the analyst's view of everything that arrived: overlaps are kept, the bytes that arrived
  first win (as BSD and Windows do for most overlap shapes), and a disagreement is named (``conflict``);
  fragments with no data or past 65,535 bytes are dropped alone.
Either way a bad chain is a row with a ``reason`` and a ``note``, never an exception.

Timeout: ``timeout_s`` from the first fragment; by default the Linux defaults, 30 s for IPv4
(net.ipv4.ipfrag_time) and 60 s for IPv6 (net.ipv6.ip6frag_time, RFC 8200's 60 s).
"""
from __future__ import annotations

import ipaddress

import numpy as np
import pandas as pd

from .._io import capture_bytes
from .._jit import njit
from ..capture._frames import index_frames
from ..capture.payloads import payload_buffer, payload_files
from ..schema import DATAGRAM_COLUMNS, DATAGRAM_REASONS, DATAGRAMS, typed

__all__ = ["datagram_fragments", "datagram_payloads", "datagrams", "fragment_headers", "fragment_rows",
           "matcher_view", "reassembled_packets"]

_NS = 1_000_000_000
R_COMPLETE, R_CONFLICT, R_INCOMPLETE, R_TIMEOUT, R_OVERLAP, R_TAILS, R_BEYOND, R_BADLEN = range(8)
MAX_END = 65535
EXT6 = (0, 43, 44, 51, 60, 135, 139, 140)      # extension headers the decoder walks (capture/_decode.py)


def _flag(col: pd.Series) -> np.ndarray:
    """A nullable column's rows that are set (true or non-zero; <NA> is not), from its values and mask."""
    a = col.array
    data, mask = getattr(a, "_data", None), getattr(a, "_mask", None)
    if data is None or mask is None:
        return col.to_numpy("int64", na_value=0) != 0
    return (data != 0) & ~mask


def fragment_rows(packets: pd.DataFrame) -> np.ndarray:
    """Row positions of the fragments: IPv4/IPv6 rows with more-fragments set or a non-zero offset. Two
    flag columns are read over the table; the other conditions only at the rows those flag."""
    cand = np.flatnonzero(_flag(packets["ip_mf"]) | _flag(packets["frag_offset"]))
    if not cand.size:
        return cand
    l3 = packets["l3"]
    ip = np.isin(l3.cat.codes.to_numpy()[cand], [i for i in l3.cat.categories.get_indexer(["ipv4", "ipv6"]) if i >= 0]) \
        if isinstance(l3.dtype, pd.CategoricalDtype) else np.isin(l3.astype(object).to_numpy()[cand], ("ipv4", "ipv6"))
    ok = ip & packets["ts_ns"].notna().to_numpy()[cand] & packets["ip_id"].notna().to_numpy()[cand]
    return cand[ok]


def _col(packets: pd.DataFrame, name: str, rows: np.ndarray, dtype="int64", na=0) -> np.ndarray:
    """One column at ``rows`` as numpy (no take of the whole table)."""
    a = packets[name].array
    data, mask = getattr(a, "_data", None), getattr(a, "_mask", None)
    if data is None or mask is None:
        return packets[name].to_numpy(dtype, na_value=na)[rows]
    out = data[rows].astype(dtype)
    out[mask[rows]] = na
    return out


def _is_v6(packets: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    l3 = packets["l3"]
    if isinstance(l3.dtype, pd.CategoricalDtype):
        code = l3.cat.categories.get_indexer(["ipv6"])[0]
        return l3.cat.codes.to_numpy()[rows] == code if code >= 0 else np.zeros(len(rows), bool)
    return l3.astype(object).to_numpy()[rows] == "ipv6"


# ------------------------------------------------------------------------------ the fragments' bytes
@njit
def _find_ip(buf, f_off, f_len, v6, addr, ip_len, ip_id, frag, out):
    """IP header offset of each frame's fragment (-1: not found): the first place in the frame's bytes
    where a header of its version, total/payload length, addresses (``addr``: 32 bytes, an IPv4 address
    in the first 4 of each half) and, for IPv4, identification and offset stand."""
    size = buf.shape[0]
    for i in range(f_off.shape[0]):
        out[i] = -1
        a0 = f_off[i]
        if a0 < 0:
            continue
        e = min(a0 + f_len[i], size)
        hl = 40 if v6[i] else 20
        for p in range(a0, e - hl + 1):
            b0 = np.int64(buf[p]) >> 4
            if v6[i]:
                if b0 != 6 or ((np.int64(buf[p + 4]) << 8) | np.int64(buf[p + 5])) != ip_len[i] - 40:
                    continue
                ok = True
                for k in range(32):
                    if buf[p + 8 + k] != addr[i, k]:
                        ok = False
                        break
            else:
                if b0 != 4 or ((np.int64(buf[p + 2]) << 8) | np.int64(buf[p + 3])) != ip_len[i] \
                        or ((np.int64(buf[p + 4]) << 8) | np.int64(buf[p + 5])) != ip_id[i] \
                        or (((np.int64(buf[p + 6]) << 8) | np.int64(buf[p + 7])) & 0x1FFF) * 8 != frag[i]:
                    continue
                ok = True
                for k in range(4):
                    if buf[p + 12 + k] != addr[i, k] or buf[p + 16 + k] != addr[i, 16 + k]:
                        ok = False
                        break
            if ok:
                out[i] = p
                break


def _addresses(packets: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    """(len(rows), 32) bytes: source then destination address, 16 bytes each (IPv4 in the first 4)."""
    out = np.zeros((len(rows), 32), np.uint8)
    for half, name in enumerate(("src", "dst")):
        col = packets[name]
        codes = col.cat.codes.to_numpy()[rows]
        cats = col.cat.categories
        for c in np.unique(codes).tolist():
            if c < 0:
                continue
            try:
                packed = ipaddress.ip_address(str(cats[c])).packed
            except ValueError:
                continue
            out[codes == c, half * 16:half * 16 + len(packed)] = np.frombuffer(packed, np.uint8)
    return out


def _locate(packets: pd.DataFrame, rows: np.ndarray, v6: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(file offset of the IP header, file offset where the frame's captured bytes end, clipped to the IP
    packet) of each fragment row; -1 where the table has no file behind it or the header is not found.
    A row whose L4 header the decoder found is located from it (payload_off − L4 header − ip_hdr_len, as
    capture/checksums.py does); any other by the frame index of its file and the header's fields."""
    n = len(rows)
    ip_off = np.full(n, -1, np.int64)
    cap_end = np.full(n, -1, np.int64)
    if not n or not (packets.attrs.get("path") or packets.attrs.get("paths")):
        return ip_off, cap_end
    poff = _col(packets, "payload_off", rows, "int64", -1)
    pcap = _col(packets, "payload_caplen", rows, "int64", -1)
    proto = _col(packets, "ip_proto", rows, "int64", -1)
    hdr = np.where(proto == 6, _col(packets, "tcp_hdr_len", rows, "int64", -1),
                   np.where(np.isin(proto, (1, 17, 58)), 8, -1))
    iphl = _col(packets, "ip_hdr_len", rows)
    iplen = _col(packets, "ip_len", rows)
    known = (poff >= 0) & (hdr > 0) & (pcap >= 0)
    ip_off[known] = (poff - hdr - iphl)[known]
    cap_end[known] = (poff + pcap)[known]
    rest = np.flatnonzero(~known)
    if not rest.size:
        return ip_off, cap_end
    view = pd.DataFrame({"frame": _col(packets, "frame", rows[rest])})
    if "capture" in packets.columns:
        view["capture"] = packets["capture"].to_numpy()[rows[rest]]
    view.attrs = dict(packets.attrs)
    addr = _addresses(packets, rows[rest])
    ipid = _col(packets, "ip_id", rows[rest])
    frag = _col(packets, "frag_offset", rows[rest])
    try:
        for path, sub in payload_files(view):
            with capture_bytes(path) as buf:
                idx = index_frames(buf, str(path))
                fr = view["frame"].to_numpy()[sub] - 1
                ok = (fr >= 0) & (fr < len(idx))
                f_off = np.where(ok, idx.data_off[np.clip(fr, 0, max(len(idx) - 1, 0))], -1).astype(np.int64)
                f_len = np.where(ok, idx.caplen[np.clip(fr, 0, max(len(idx) - 1, 0))], 0).astype(np.int64)
                found = np.empty(len(sub), np.int64)
                r = rest[sub]
                _find_ip(np.asarray(buf), f_off, f_len, v6[r], addr[sub], iplen[r], ipid[sub], frag[sub], found)
                ip_off[r] = found
                cap_end[r] = np.where(found >= 0, np.minimum(f_off + f_len, found + iplen[r]), -1)
    except Exception:          # the file changed or went away: the bytes cannot be located, say nothing
        pass
    return ip_off, cap_end


def _gather(packets: pd.DataFrame, off: np.ndarray, length: np.ndarray, rows: np.ndarray):
    """The file's bytes [off, off + length) of each row (length 0 where off < 0): ``(data, offsets)`` as
    capture.payloads.payload_buffer gives them."""
    ok = (off >= 0) & (length > 0)
    view = pd.DataFrame({"payload_off": pd.array(np.where(ok, off, -1), dtype="Int64"),
                         "payload_caplen": pd.array(np.where(ok, length, 0), dtype="Int32")})
    if "capture" in packets.columns:
        view["capture"] = packets["capture"].to_numpy()[rows]
    view.attrs = dict(packets.attrs)
    return payload_buffer(view)


@njit
def _ext_len(data, r, nh):
    if nh == 44:
        return 8
    if nh == 51:
        return (np.int64(data[r + 1]) + 2) * 4
    return (np.int64(data[r + 1]) + 1) * 8


@njit
def _v6_first(data, offs, ip_len, unf, fnh, upper, thdr_cut):
    """Per IPv6 offset-0 fragment, its IP packet's captured bytes ``data[offs[i]:offs[i + 1]]``:
    unf: bytes from the IPv6 header through the Fragment header (-1: not in the captured bytes); fnh: its
    next header;
    upper: the upper-layer protocol after the extension headers that follow (the decoder's list EXT6),
    -1 where the chain runs past the captured bytes; thdr_cut: Linux's ipv6frag_thdr_truncated (the
    walk over hop-by-hop, routing, fragment, AH and destination options from the fixed header, then 20
    bytes for TCP, 8 for UDP/ICMPv6, 1 otherwise, past the packet's end; a walk that cannot read a header
    or meets No Next Header says no)."""
    for i in range(offs.shape[0] - 1):
        a = offs[i]
        n = offs[i + 1] - a
        unf[i] = -1
        fnh[i] = -1
        upper[i] = -1
        thdr_cut[i] = False
        if n < 40 or (np.int64(data[a]) >> 4) != 6:
            continue
        nh = np.int64(data[a + 6])
        r = 40
        while nh == 0 or nh == 43 or nh == 51 or nh == 60 or nh == 135 or nh == 139 or nh == 140:
            if r + 2 > n:
                break
            h = _ext_len(data, a + r, nh)
            nh = np.int64(data[a + r])
            r += h
        if nh != 44 or r + 8 > n:
            continue
        unf[i] = r + 8
        fnh[i] = np.int64(data[a + r])
        # the fragmentable part: extension headers, then the upper-layer header (what the decoder walks)
        q = r
        nq = 44
        while nq == 0 or nq == 43 or nq == 44 or nq == 51 or nq == 60 or nq == 135 or nq == 139 or nq == 140:
            if q + 2 > n:
                nq = -1
                break
            h = _ext_len(data, a + q, nq)
            nq = np.int64(data[a + q])
            q += h
        if q > n:
            nq = -1
        upper[i] = nq
        # Linux: ipv6_skip_exthdr from the fixed header (0, 43, 44, 51, 60; 59 stops it), then the size
        lim = ip_len[i]
        nl = np.int64(data[a + 6])
        o = 40
        walked = True
        while nl == 0 or nl == 43 or nl == 44 or nl == 51 or nl == 60 or nl == 59:
            if nl == 59 or o + 2 > lim or o + 2 > n:
                walked = False
                break
            if nl == 44:
                if o + 4 > n:
                    walked = False
                    break
                if ((np.int64(data[a + o + 2]) << 8) | np.int64(data[a + o + 3])) & 0xFFF8:
                    walked = False          # a non-first fragment header (frag_off & IP6_OFFSET)
                    break
            h = _ext_len(data, a + o, nl)
            nl = np.int64(data[a + o])
            o += h
        if walked:
            need = 20 if nl == 6 else (8 if nl == 17 or nl == 58 else 1)
            if o + need > lim:
                thdr_cut[i] = True


def fragment_headers(packets: pd.DataFrame, rows: np.ndarray):
    """For fragment rows: (bytes before the fragment's data — the IPv4 header, or the IPv6 header through
    its Fragment header —, the upper-layer protocol of an IPv6 offset-0 fragment after the extension
    headers of the fragmentable part (-1: unknown; the decoder's ``ip_proto`` for the rest), whether an
    IPv6 offset-0 fragment lacks its upper-layer header (RFC 8200 §4.5, Linux's ipv6frag_thdr_truncated),
    and the Fragment header's next header of an IPv6 offset-0 fragment (-1 elsewhere)).
    Only IPv6 offset-0 fragments need their bytes read; without the capture file the decoder's
    ``ip_hdr_len`` stands."""
    hdr = _col(packets, "ip_hdr_len", rows)
    upper = _col(packets, "ip_proto", rows, "int64", -1)
    cut = np.zeros(len(rows), bool)
    nxt = np.full(len(rows), -1, np.int64)
    v6 = _is_v6(packets, rows)
    first6 = np.flatnonzero(v6 & (_col(packets, "frag_offset", rows) == 0))
    if not first6.size:
        return hdr, upper, cut, nxt
    r = rows[first6]
    ip_off, cap_end = _locate(packets, r, np.ones(len(r), bool))
    try:
        data, offs = _gather(packets, ip_off, cap_end - ip_off, r)
    except Exception:          # no file behind the table
        return hdr, upper, cut, nxt
    unf = np.empty(len(r), np.int64)
    fnh = np.empty(len(r), np.int64)
    up = np.empty(len(r), np.int64)
    tc = np.empty(len(r), np.bool_)
    _v6_first(data, offs, _col(packets, "ip_len", r), unf, fnh, up, tc)
    hdr[first6] = np.where(unf >= 0, unf, hdr[first6])
    upper[first6] = np.where(unf >= 0, up, upper[first6])
    cut[first6] = tc
    nxt[first6] = fnh
    return hdr, upper, cut, nxt


# ------------------------------------------------------------------------------------- the kernel
@njit
def _reassemble(grp, ts, start, end, last, v6, cut, hdr, frame, timeout_ns, policy, capture_end_ns):
    """Walk fragments sorted by (key, arrival). Returns per fragment: datagram, used, overlapping, end
    kept; per datagram: first and last fragment index, end (-1 unknown), bytes received, reason, used,
    dropped, bad (a fragment discarded for its length), clipped, header-cut (an IPv6 offset-0 fragment
    discarded: no upper-layer header in it), the offset-0 fragment (a used one, else any; -1 none) and
    the smallest frame number."""
    n = grp.shape[0]
    dg = np.full(n, -1, np.int64)
    used = np.zeros(n, np.int8)
    ovl = np.zeros(n, np.int8)
    eff = end.copy()
    d_first = np.zeros(n, np.int64)
    d_last = np.zeros(n, np.int64)
    d_total = np.full(n, -1, np.int64)
    d_recv = np.zeros(n, np.int64)
    d_reason = np.full(n, -1, np.int8)
    d_used = np.zeros(n, np.int32)
    d_drop = np.zeros(n, np.int32)
    d_bad = np.zeros(n, np.int8)
    d_clip = np.zeros(n, np.int8)
    d_cut = np.zeros(n, np.int8)
    d_hdr0 = np.full(n, -1, np.int64)
    acc_s = np.zeros(n, np.int64)
    acc_e = np.zeros(n, np.int64)
    nacc = 0
    cur = -1
    state = 0            # 0: closed (or none), 1: open
    for i in range(n):
        newdg = cur < 0 or state != 1 or grp[i] != grp[i - 1] or ts[i] - ts[d_first[cur]] > timeout_ns[i]
        if newdg:
            if cur >= 0 and state == 1:
                f = d_first[cur]
                d_reason[cur] = R_TIMEOUT if capture_end_ns - ts[f] > timeout_ns[f] else R_INCOMPLETE
                if d_bad[cur]:
                    d_reason[cur] = R_BADLEN
            cur += 1
            d_first[cur] = i
            nacc = 0
            state = 1
        dg[i] = cur
        d_last[cur] = i
        if cut[i] and policy == 0:     # RFC 8200 4.5: the first fragment lacks the upper-layer header
            d_cut[cur] = 1
            d_drop[cur] += 1
            continue
        s = start[i]
        e = end[i]
        ln = e - s
        if ln > 0 and not last[i] and ln % 8 != 0:
            if v6[i]:
                ln = -1              # RFC 8200: discard the fragment
            elif policy == 0:
                e = s + (ln & ~7)    # Linux trims a non-last IPv4 fragment to a multiple of 8
                ln = e - s
        if ln == 0 and policy == 0:  # Linux ip_frag_queue / ip6_frag_queue: end == offset discards the queue
            d_bad[cur] = 1
            d_reason[cur] = R_BADLEN
            d_drop[cur] += 1
            state = 0
            continue
        if ln <= 0 or (e > MAX_END and (v6[i] or policy != 0)):
            d_bad[cur] = 1           # IPv6: past 65535 the fragment is discarded (RFC 8200 4.5)
            d_drop[cur] += 1
            continue
        total = d_total[cur]
        if last[i]:
            if total >= 0 and total != e:
                d_reason[cur] = R_TAILS
                d_drop[cur] += 1
                state = 0
                continue
            beyond = False
            for j in range(nacc):
                if acc_e[j] > e:
                    beyond = True
            if beyond:
                if policy == 0:
                    d_reason[cur] = R_BEYOND
                    d_drop[cur] += 1
                    state = 0
                    continue
                d_clip[cur] = 1
                for j in range(nacc):
                    acc_e[j] = min(acc_e[j], e)
            d_total[cur] = e
            total = e
        elif total >= 0 and e > total:
            if policy == 0:
                d_reason[cur] = R_BEYOND
                d_drop[cur] += 1
                state = 0
                continue
            d_clip[cur] = 1
            e = total
            if e <= s:
                d_drop[cur] += 1
                continue
        kind = 0             # 1 exact duplicate, 2 inside received bytes, 3 partial overlap
        for j in range(nacc):
            if s < acc_e[j] and acc_s[j] < e:
                if s == acc_s[j] and e == acc_e[j]:
                    k = 1
                elif s >= acc_s[j] and e <= acc_e[j]:
                    k = 2
                else:
                    k = 3
                kind = max(kind, k)
        if kind > 0:
            ovl[i] = 1
        if policy == 0:
            if kind == 1 or (kind == 2 and not v6[i]):
                d_drop[cur] += 1
                continue
            if kind >= 2:
                d_reason[cur] = R_OVERLAP
                d_drop[cur] += 1
                state = 0
                continue
        elif kind == 1 or kind == 2:
            d_drop[cur] += 1
            continue
        # accept: insert keeping acc sorted by start, then the union length
        j = nacc
        while j > 0 and acc_s[j - 1] > s:
            acc_s[j] = acc_s[j - 1]
            acc_e[j] = acc_e[j - 1]
            j -= 1
        acc_s[j] = s
        acc_e[j] = e
        nacc += 1
        used[i] = 1
        eff[i] = e
        d_used[cur] += 1
        recv = 0
        hi = -1
        for j in range(nacc):
            a = acc_s[j]
            b = acc_e[j]
            if a > hi:
                recv += b - a
                hi = b
            elif b > hi:
                recv += b - hi
                hi = b
        d_recv[cur] = recv
        if s == 0 and d_hdr0[cur] < 0:
            d_hdr0[cur] = hdr[i]
        if total >= 0 and recv == total:
            d_reason[cur] = R_COMPLETE
            if policy == 0 and not v6[i] and d_hdr0[cur] + total > MAX_END:
                d_reason[cur] = R_BADLEN     # Linux ip_frag_reasm: header + payload past 65535 (oversize)
                d_bad[cur] = 1
            state = 0
    if cur >= 0 and state == 1:
        f = d_first[cur]
        d_reason[cur] = R_TIMEOUT if capture_end_ns - ts[f] > timeout_ns[f] else R_INCOMPLETE
        if d_bad[cur]:
            d_reason[cur] = R_BADLEN
    m = cur + 1
    # the offset-0 fragment (the first used one, else the first) and the smallest frame of each datagram
    z_used = np.full(m, -1, np.int64)
    z_any = np.full(m, -1, np.int64)
    d_minf = np.full(m, np.iinfo(np.int64).max, np.int64)
    for i in range(n):
        d = dg[i]
        if frame[i] < d_minf[d]:
            d_minf[d] = frame[i]
        if start[i] == 0:
            if z_any[d] < 0:
                z_any[d] = i
            if used[i] and z_used[d] < 0:
                z_used[d] = i
    d_zero = np.where(z_used >= 0, z_used, z_any)
    return (dg, used, ovl, eff, d_first[:m], d_last[:m], d_total[:m], d_recv[:m], d_reason[:m], d_used[:m],
            d_drop[:m], d_bad[:m], d_clip[:m], d_cut[:m], d_zero, d_minf)


def _inputs(packets: pd.DataFrame, timeout_s):
    rows = fragment_rows(packets)
    v6 = _is_v6(packets, rows)
    src = packets["src"].cat.codes.to_numpy("int64")[rows]
    dst = packets["dst"].cat.codes.to_numpy("int64")[rows]
    proto = np.where(v6, 0, _col(packets, "ip_proto", rows))
    ipid = _col(packets, "ip_id", rows)
    n = np.int64(len(packets["src"].cat.categories) + 1)
    pair = pd.factorize((src + 1) * n + (dst + 1))[0].astype(np.int64) if len(rows) else np.zeros(0, np.int64)
    key = (((pair * 2 + v6) * 256 + proto) << 32) | ipid          # RFC 791 / RFC 8200 reassembly key
    ts = _col(packets, "ts_ns", rows)
    frame = _col(packets, "frame", rows)
    start = _col(packets, "frag_offset", rows)
    hdr, upper, cut, nxt = fragment_headers(packets, rows)
    length = _col(packets, "ip_len", rows) - hdr
    last = ~_col(packets, "ip_mf", rows, "bool", False)
    if timeout_s is None:
        tmo = np.where(v6, 60 * _NS, 30 * _NS).astype(np.int64)
    else:
        tmo = np.full(len(rows), int(timeout_s * _NS), np.int64)
    order = np.lexsort((frame, ts, key))
    return (rows[order], key[order], ts[order], start[order], (start + length)[order], last[order], v6[order],
            tmo[order], frame[order], cut[order], upper[order], hdr[order], nxt[order])


def _run(packets: pd.DataFrame, timeout_s, overlap: str):
    if overlap not in ("rfc", "first"):
        raise ValueError("overlap must be 'rfc' (RFC 5722 / Linux) or 'first' (first bytes win)")
    rows, key, ts, start, end, last, v6, tmo, frame, cut, upper, hdr, nxt = _inputs(packets, timeout_s)
    cap_end = int(packets["ts_ns"].max()) if len(packets) and packets["ts_ns"].notna().any() else 0
    res = _reassemble(key, ts, start, end, last, v6, cut, hdr, frame, tmo, 0 if overlap == "rfc" else 1, cap_end)
    # datagram numbers in order of first arrival (the kernel numbers them in key order)
    nd = len(res[4])
    new = np.empty(nd, np.int64)
    new[np.argsort(res[15], kind="stable")] = np.arange(nd)
    frags = {"frame": frame, "row": rows, "datagram": new[res[0]] if nd else res[0], "start": start,
             "end": res[3], "last": last, "used": res[1].astype(bool), "overlaps": res[2].astype(bool),
             "ts_ns": ts, "v6": v6, "cut": cut, "upper": upper, "hdr": hdr, "nxt": nxt}
    return frags, res, new


def datagram_fragments(packets: pd.DataFrame, timeout_s: float | None = None, overlap: str = "rfc") -> pd.DataFrame:
    """One row per fragment: frame, row (position in ``packets``), datagram, byte range [start, end) in
    the datagram's IP payload, last (no more-fragments flag), used, overlaps (an earlier fragment of its
    datagram covers some of its bytes), ts_ns; in the kernel's order (key, arrival)."""
    frags, _, _ = _run(packets, timeout_s, overlap)
    return pd.DataFrame({k: frags[k] for k in ("frame", "row", "datagram", "start", "end", "last", "used",
                                               "overlaps", "ts_ns", "v6")})


def datagrams(packets: pd.DataFrame, timeout_s: float | None = None, overlap: str = "rfc") -> pd.DataFrame:
    """Every fragmented datagram of the capture, reassembled (schema.DATAGRAMS); see the module doc for
    the overlap policy and the timeout."""
    if overlap in ("rfc", "first") and not len(fragment_rows(packets)):
        return _empty(packets)          # no fragment: the empty table, cast once
    frags, res, new = _run(packets, timeout_s, overlap)
    (_, _, _, _, d_first, d_last, d_total, d_recv, d_reason, d_used, d_drop, d_bad, d_clip, d_cut, d_zero,
     _) = res
    nd = len(d_first)
    if nd == 0:
        return _typed(pd.DataFrame({c: [] for c in DATAGRAM_COLUMNS}), packets)
    inv = np.empty(nd, np.int64)               # kernel datagram of each output row
    inv[new] = np.arange(nd)
    fi, la, z = d_first[inv], d_last[inv], d_zero[inv]
    has0 = z >= 0
    z0 = np.maximum(z, 0)
    rr, frame, ts = frags["row"], frags["frame"], frags["ts_ns"]
    proto = np.where(has0, frags["upper"][z0], -1)
    reason = d_reason[inv].astype(np.int64)
    out = pd.DataFrame({
        "datagram": np.arange(nd), "l3": frags["v6"][fi].astype(np.int8),
        "src": packets["src"].cat.codes.to_numpy()[rr[fi]], "dst": packets["dst"].cat.codes.to_numpy()[rr[fi]],
        "ip_proto": np.where(proto >= 0, proto, np.nan), "ip_id": _col(packets, "ip_id", rr[fi]),
        "first_frame": frame[fi], "offset0_frame": np.where(has0, frame[z0], -1),
        "last_frame": frame[la], "first_ts_ns": ts[fi], "last_ts_ns": ts[la],
        "fragments": d_used[inv], "dropped": d_drop[inv], "payload_len": d_total[inv],
        "received_len": d_recv[inv], "reason_code": reason, "bad": d_bad[inv], "clipped": d_clip[inv],
        "cut": d_cut[inv], "zi": np.where(has0, z0, -1)})
    frags_df = None
    odd = (reason != R_COMPLETE) | (out["clipped"].to_numpy() > 0) | frags["overlaps"].any()
    if np.any(odd):               # notes, conflicts and chain walks need the per-fragment table (rare)
        frags_df = pd.DataFrame({k: frags[k] for k in ("frame", "row", "datagram", "start", "end", "last", "used",
                                                       "overlaps", "ts_ns", "v6", "hdr")})
    if overlap == "first" and frags["overlaps"].any():
        _mark_conflicts(packets, frags_df, out)
    out["complete"] = out["reason_code"].isin([R_COMPLETE, R_CONFLICT]).to_numpy()
    _chain_protocols(packets, frags, out, overlap)
    out["reason"] = pd.Categorical.from_codes(out["reason_code"].to_numpy(), categories=list(DATAGRAM_REASONS))
    out["note"] = _notes(out, frags_df, packets, overlap) if frags_df is not None else [""] * nd
    cats = packets["src"].cat.categories
    out["l3"] = pd.Categorical.from_codes(out["l3"].to_numpy(), categories=["ipv4", "ipv6"])
    out["src"] = pd.Categorical.from_codes(out["src"].to_numpy(), categories=cats)
    out["dst"] = pd.Categorical.from_codes(out["dst"].to_numpy(), categories=cats)
    return _typed(out, packets)


def _walk6(data: bytes, nh: int) -> int:
    """The upper-layer protocol a fragmentable part leads to (its extension headers walked as the decoder
    walks them, EXT6); -1 when the chain runs past the bytes."""
    r = 0
    while nh in EXT6:
        if r + 2 > len(data):
            return -1
        h = 8 if nh == 44 else (data[r + 1] + 2) * 4 if nh == 51 else (data[r + 1] + 1) * 8
        nh = data[r]
        r += h
    return nh if r <= len(data) else -1


def _chain_protocols(packets: pd.DataFrame, frags: dict, out: pd.DataFrame, overlap: str) -> None:
    """IPv6 datagrams whose extension headers run past their offset-0 fragment: the upper-layer protocol
    from the chain walked in the reassembled payload (only complete ones: the bytes must all be there)."""
    need = np.flatnonzero(out["complete"].to_numpy() & (out["l3"].to_numpy() == 1) & np.isnan(out["ip_proto"].to_numpy())
                          & (out["offset0_frame"].to_numpy() >= 0))
    if not need.size:
        return
    payload = _assemble(packets, frags, out, need)
    for d in need.tolist():
        data = payload.get(d)
        nh = int(frags["nxt"][int(out.at[d, "zi"])])
        if data is not None and nh >= 0:
            p = _walk6(data, nh)
            if p >= 0:
                out.at[d, "ip_proto"] = p


def _notes(out: pd.DataFrame, frags: pd.DataFrame, packets: pd.DataFrame, overlap: str) -> list:
    notes = [""] * len(out)
    bad = np.flatnonzero((out["reason"].to_numpy() != "complete") | (out["clipped"].to_numpy() > 0))
    if not bad.size:
        return notes
    dgn = frags["datagram"].to_numpy()
    sel = np.flatnonzero(np.isin(dgn, bad))
    sel = sel[np.argsort(dgn[sel], kind="stable")]          # kernel order within each datagram
    cuts = np.flatnonzero(np.diff(dgn[sel])) + 1
    cols = {c: frags[c].to_numpy() for c in ("frame", "start", "end", "used", "overlaps", "last", "v6", "hdr")}
    groups = {int(dgn[g[0]]): g for g in np.split(sel, cuts) if g.size}
    reason = out["reason"].astype(str).to_numpy()
    for d in bad.tolist():          # only the datagrams that went wrong (bad input is rare)
        r = out.iloc[d]
        why = reason[d]
        gi = groups.get(d)
        f = {c: v[gi] for c, v in cols.items()} if gi is not None else None
        frames = ", ".join(str(x) for x in f["frame"].tolist()) if f is not None else ""
        have = f"{int(r['received_len'])} of {'?' if r['payload_len'] < 0 else int(r['payload_len'])} bytes"
        if why in ("complete", "conflict") and r["clipped"]:
            notes[d] = (f"a fragment reached past the end the last fragment set ({int(r['payload_len'])} "
                        f"bytes): clipped (overlap='first'); frames {frames}")
        elif why in ("incomplete", "timeout"):
            holes = _holes(f, int(r["payload_len"]))
            when = "the capture ended" if why == "incomplete" else "the reassembly timeout ran out"
            notes[d] = f"fragments missing ({holes}) when {when}: {have} from frame(s) {frames}"
        elif why == "overlap" and f is not None:
            o = np.flatnonzero(f["overlaps"] | ~f["used"])
            ex = o[-1] if o.size else len(gi) - 1
            agree = _agreement(packets, frags.iloc[gi])
            notes[d] = (f"frame {int(f['frame'][ex])} (bytes {int(f['start'][ex])}-{int(f['end'][ex])}) overlaps "
                        f"bytes already received{agree}: datagram discarded ("
                        f"{'RFC 5722' if r['l3'] in (1, 'ipv6') else 'Linux'} policy; overlap='first' keeps it); "
                        f"frames {frames}")
        elif why == "conflict":
            notes[d] = f"overlapping fragments disagree; the bytes that arrived first were kept; frames {frames}"
        elif why == "multiple_tails":
            notes[d] = f"two last fragments with different ends; datagram discarded; frames {frames}"
        elif why == "beyond_end":
            notes[d] = f"a fragment reaches past the end the last fragment set; datagram discarded; frames {frames}"
        elif why == "bad_length" and f is not None:
            g = frags.iloc[gi]
            notes[d] = _bad_length_note(g, r, overlap, have, frames)
        if r["cut"] and f is not None:
            z = np.flatnonzero((f["start"] == 0) & ~f["used"])
            zf = int(f["frame"][z[0]]) if z.size else int(f["frame"][0])
            notes[d] = (f"frame {zf}: the offset-0 fragment does not hold the upper-layer header after its "
                        f"extension headers, discarded (RFC 8200 4.5; Linux ipv6frag_thdr_truncated); "
                        + notes[d]).rstrip("; ")
    return notes


def _bad_length_note(g: pd.DataFrame, r: pd.Series, overlap: str, have: str, frames: str) -> str:
    """The note of a ``bad_length`` datagram (``g``: its fragments in kernel order, ``r``: its row)."""
    v6 = r["l3"] in (1, "ipv6")
    span = g["end"].to_numpy() - g["start"].to_numpy()
    used = g["used"].to_numpy()
    if overlap == "rfc" and not v6 and r["payload_len"] >= 0 and r["received_len"] == r["payload_len"]:
        z = g[used & (g["start"].to_numpy() == 0)]
        h = int(z["hdr"].iloc[0]) if len(z) else 20
        return (f"the reassembled datagram would be {h + int(r['payload_len'])} bytes with its {h}-byte header, "
                f"past 65535: discarded (Linux ip_frag_reasm); frames {frames}")
    empty = ~used & (span >= 0) & (span < 8) & ((span == 0) | (~g["last"].to_numpy() & ~g["v6"].to_numpy()))
    if overlap == "rfc" and empty.any():
        ex = g[empty].iloc[-1]
        return (f"frame {int(ex['frame'])} (bytes {int(ex['start'])}-{int(ex['end'])}) carries no data (a non-last "
                f"IPv4 fragment is trimmed to a multiple of 8): datagram discarded (Linux ip_frag_queue / "
                f"ip6_frag_queue: a fragment that ends where it starts kills the queue); frames {frames}")
    ex = g[~g["used"]].iloc[-1] if (~g["used"]).any() else g.iloc[-1]
    return (f"frame {int(ex['frame'])}: fragment bytes {int(ex['start'])}-{int(ex['end'])} "
            f"discarded (no data, a negative length, past 65535, or an IPv6 non-last fragment "
            f"not a multiple of 8) and the datagram never completed ({have}); frames {frames}")


def _holes(f: dict | None, total: int) -> str:
    if f is None:
        return "all"
    iv = sorted(zip(f["start"][f["used"]].tolist(), f["end"][f["used"]].tolist()))
    holes, hi = [], 0
    for a, b in iv:
        if a > hi:
            holes.append(f"{hi}-{a}")
        hi = max(hi, b)
    holes.append(f"{hi}-{total}" if total >= 0 else f"{hi}-end (the last fragment never came)")
    if total >= 0 and hi >= total:
        holes.pop()
    return "bytes " + ", ".join(holes) if holes else "none"


# ------------------------------------------------------------------------------------ payload bytes
def _fragment_data(packets: pd.DataFrame, rows: np.ndarray, hdr: np.ndarray | None = None) -> list:
    """Captured bytes of each fragment's data (its share of the datagram's IP payload: what follows the
    IPv4 header or the IPv6 Fragment header), or None where the capture file cannot be read, the header is
    not found or the snap length cut the data. ``hdr``: the bytes before the data (fragment_headers)."""
    rows = np.asarray(rows, np.int64)
    if hdr is None:
        hdr = fragment_headers(packets, rows)[0]
    ip_off, cap_end = _locate(packets, rows, _is_v6(packets, rows))
    length = _col(packets, "ip_len", rows) - hdr
    start = np.where(ip_off >= 0, ip_off + hdr, -1)
    whole = (ip_off >= 0) & (length > 0) & (cap_end - start >= length)
    try:
        data, offs = _gather(packets, np.where(whole, start, -1), np.where(whole, length, 0), rows)
    except Exception:          # no file behind the table
        return [None] * len(rows)
    return [data[offs[i]:offs[i + 1]].tobytes() if whole[i] else None for i in range(len(rows))]


def _agreement(packets: pd.DataFrame, g: pd.DataFrame) -> str:
    data = _fragment_data(packets, g["row"].to_numpy(), g["hdr"].to_numpy())
    known = [(int(s), b) for s, b in zip(g["start"].tolist(), data) if b is not None]
    for i in range(len(known)):
        for j in range(i + 1, len(known)):
            (s1, b1), (s2, b2) = known[i], known[j]
            lo, hi = max(s1, s2), min(s1 + len(b1), s2 + len(b2))
            if lo < hi and b1[lo - s1:hi - s1] != b2[lo - s2:hi - s2]:
                return f" with different bytes at {lo}-{hi}"
    return ""


def _mark_conflicts(packets: pd.DataFrame, frags: pd.DataFrame, out: pd.DataFrame) -> None:
    d_ovl = frags.loc[frags["overlaps"], "datagram"].unique()
    for d in d_ovl.tolist():            # only datagrams with overlapping fragments
        g = frags[frags["datagram"] == d]
        if _agreement(packets, g) and out.at[d, "reason_code"] == R_COMPLETE:
            out.at[d, "reason_code"] = R_CONFLICT


def _assemble(packets: pd.DataFrame, frags: dict, out: pd.DataFrame, which: np.ndarray) -> dict:
    """{datagram: reassembled IP payload} for the complete datagrams ``which`` whose used fragments' data
    all lie in the capture file (the bytes that arrived first win)."""
    which = np.asarray(which, np.int64)
    want = np.zeros(len(out), bool)
    want[which] = out["complete"].to_numpy()[which]
    sel = np.flatnonzero(frags["used"] & want[frags["datagram"]])
    if not sel.size:
        return {}
    data = _fragment_data(packets, frags["row"][sel], frags["hdr"][sel])
    total = out["payload_len"].to_numpy("int64", na_value=-1)
    bufs: dict = {}
    for k, i in enumerate(sel.tolist()):      # kernel order: by datagram, then arrival
        d = int(frags["datagram"][i])
        if d not in bufs:
            bufs[d] = [bytearray(int(total[d])), np.zeros(int(total[d]), bool), True]
        buf, have, ok = bufs[d]
        s, e, b = int(frags["start"][i]), int(frags["end"][i]), data[k]
        if not ok or b is None or len(b) < e - s:
            bufs[d][2] = False
            continue
        new = ~have[s:e]
        if new.all():
            buf[s:e] = b[:e - s]
        elif new.any():
            seg = np.frombuffer(b[:e - s], np.uint8)
            arr = np.frombuffer(bytes(buf[s:e]), np.uint8).copy()
            arr[new] = seg[new]
            buf[s:e] = arr.tobytes()
        have[s:e] = True
    return {d: bytes(b) for d, (b, have, ok) in bufs.items() if ok and have.all()}


def datagram_payloads(packets: pd.DataFrame, timeout_s: float | None = None, overlap: str = "rfc") -> pd.Series:
    """The reassembled IP payload of every complete datagram (indexed by datagram number), the bytes
    that arrived first winning; None where a datagram is incomplete or a fragment's bytes cannot be
    read from the capture file or were cut by the snap length."""
    frags, _, _ = _run(packets, timeout_s, overlap)
    d = datagrams(packets, timeout_s, overlap)
    out = pd.Series([None] * len(d), index=d["datagram"].to_numpy(), dtype=object, name="payload")
    if d.empty:
        return out
    for k, v in _assemble(packets, frags, d, np.arange(len(d))).items():
        out.at[k] = v
    return out


# ---------------------------------------------------------------------------- the matcher's view
def reassembled_packets(packets: pd.DataFrame, datagrams_table: pd.DataFrame | None = None) -> pd.DataFrame:
    """The packets table with each fragmented datagram as one row, for matching: the offset-0 fragment's
    row (it carries the L4 header) stands for the datagram, with ``ts_ns`` the time the datagram became
    whole, ``ip_len``/``payload_len`` of the whole datagram (IPv6: the header through the Fragment header,
    then the fragmentable part; the payload after the extension headers and the L4 header) and
    ``ip_mf``/``frag_offset`` cleared; the other fragments are dropped, and so are incomplete datagrams (a
    probe whose reply lost a fragment finds no reply; a request that never became whole was never
    received). Frame numbers are kept."""
    d = datagrams(packets) if datagrams_table is None else datagrams_table
    rows = fragment_rows(packets)
    if not len(rows):
        return packets
    keep = np.ones(len(packets), bool)
    keep[rows] = False
    good = d[d["complete"] & d["offset0_frame"].notna()]
    pos = pd.Index(packets["frame"].to_numpy()).get_indexer(good["offset0_frame"].to_numpy("int64"))
    keep[pos] = True
    idx = np.flatnonzero(keep)
    out = packets.take(idx)
    out.index = pd.RangeIndex(len(out))
    at = np.searchsorted(idx, pos)                  # the datagrams' rows in ``out``
    total = good["payload_len"].to_numpy("int64")
    hdr = fragment_headers(packets, pos)[0]          # the bytes before each offset-0 fragment's data
    iplen0 = _col(packets, "ip_len", pos)
    ts = out["ts_ns"].to_numpy("int64", na_value=0).copy()
    ts[at] = good["last_ts_ns"].to_numpy("int64")
    out["ts_ns"] = pd.arrays.IntegerArray(ts, out["ts_ns"].isna().to_numpy())
    iplen = out["ip_len"].to_numpy("int64", na_value=0).copy()
    iplen[at] = hdr + total
    out["ip_len"] = pd.arrays.IntegerArray(iplen.astype(np.uint32), out["ip_len"].isna().to_numpy())
    plen = out["payload_len"].to_numpy("float64", na_value=np.nan).copy()
    plen[at] = plen[at] + (total - (iplen0 - hdr))
    out["payload_len"] = pd.arrays.IntegerArray(np.nan_to_num(plen).astype(np.int32), np.isnan(plen))
    mf = out["ip_mf"].to_numpy("bool", na_value=False).copy()
    mf[at] = False
    out["ip_mf"] = pd.arrays.BooleanArray(mf, out["ip_mf"].isna().to_numpy())
    out.attrs = dict(packets.attrs)
    return out


def _patched(col: pd.Series, rows: np.ndarray, values: np.ndarray | None = None,
             na: np.ndarray | None = None) -> pd.api.extensions.ExtensionArray:
    """A copy of a nullable column's values and mask with ``values`` (and ``na``) set at ``rows``."""
    a = col.array
    data, mask = a._data.copy(), a._mask.copy()
    if values is not None:
        data[rows] = values
        mask[rows] = False
    if na is not None:
        mask[rows[na]] = True
    return type(a)(data, mask)


def matcher_view(packets: pd.DataFrame, datagrams_table: pd.DataFrame | None = None) -> pd.DataFrame:
    """What the matcher reads of :func:`reassembled_packets`, patched in place of copied: the packets
    table itself when there is no fragment; else the table's rows in their places, where each complete
    datagram's offset-0 fragment gets the datagram's ``ts_ns``, ``ip_len``, ``payload_len`` and a cleared
    ``ip_mf`` (as reassembled_packets gives them), and every other fragment row — the ones
    reassembled_packets drops — a ``ts_ns`` of <NA>: the matcher takes no packet without a time (every
    event class of match._events requires one), so it finds the same requests, replies and resets in
    the same order. Only those four columns are new arrays; the others are the table's own."""
    rows = fragment_rows(packets)
    if not len(rows):
        return packets
    d = datagrams(packets) if datagrams_table is None else datagrams_table
    good = d[d["complete"] & d["offset0_frame"].notna()]
    pos = pd.Index(packets["frame"].to_numpy()).get_indexer(good["offset0_frame"].to_numpy("int64"))
    hide = np.zeros(len(packets), bool)        # the fragment rows that stand for no datagram
    hide[rows] = True
    hide[pos] = False
    total = good["payload_len"].to_numpy("int64")
    hdr = fragment_headers(packets, pos)[0]
    iplen0 = _col(packets, "ip_len", pos)
    plen = packets["payload_len"].to_numpy("float64", na_value=np.nan)[pos] + (total - (iplen0 - hdr))
    out = packets.copy(deep=False)
    ts = _patched(packets["ts_ns"], pos, good["last_ts_ns"].to_numpy("int64"))
    ts._mask[hide] = True          # the matcher takes no row without a time
    out["ts_ns"] = ts
    out["ip_len"] = _patched(packets["ip_len"], pos, (hdr + total).astype(np.uint32))
    out["payload_len"] = _patched(packets["payload_len"], pos, np.nan_to_num(plen).astype(np.int32), np.isnan(plen))
    out["ip_mf"] = _patched(packets["ip_mf"], pos, np.zeros(pos.size, bool))
    out.attrs = dict(packets.attrs)
    return out


_EMPTY: list = []


def _empty(packets: pd.DataFrame) -> pd.DataFrame:
    """``_typed`` of the table without rows: a copy of one cast made once, with the packets' address
    categories (tests/test_datagrams.py holds it equal to the cast)."""
    if not _EMPTY:
        _EMPTY.append(_typed(pd.DataFrame({c: [] for c in DATAGRAM_COLUMNS}), packets.iloc[:0][[]]))
    out = _EMPTY[0].copy()
    cats = packets["src"].cat.categories if "src" in packets else []
    for c in ("src", "dst"):
        out[c] = pd.Series(pd.Categorical(pd.Series([], dtype=object), categories=list(cats)), index=out.index)
    return out


def _typed(out: pd.DataFrame, packets: pd.DataFrame) -> pd.DataFrame:
    cats = packets["src"].cat.categories if "src" in packets else []
    return typed(out.reset_index(drop=True), DATAGRAMS,
                 categories={"l3": ("ipv4", "ipv6"), "src": cats, "dst": cats, "reason": DATAGRAM_REASONS},
                 negative_na=("payload_len", "offset0_frame"))
