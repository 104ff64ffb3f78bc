"""Frame index + file bytes → the packets table (schema.PACKETS), through the compiled decoder."""
from __future__ import annotations

import socket

import numpy as np
import pandas as pd

from ..errors import CaptureError
from ..schema import (
    L3_KINDS,
    PACKET_COLUMNS,
    SPARSE,
    SPARSE_COUNT,
    SPARSE_FLAG,
    SPARSE_TEXT,
    TUNNEL_KINDS,
    coded,
    factorize_sorted,
    sparse_at,
)
from . import _decode as D
from ._frames import FrameIndex
from .linktypes import decoder_kind

CHUNK = 1 << 20
SPARSE_BITS = (D.P_TID | D.P_OUTER | D.P_GWLB | D.P_QSRC | D.P_QDST | D.P_QPROTO | D.P_QPORTS | D.P_QICMPID | D.P_QSEQ
               | D.P_MTU)


def decode_frames(buf: np.ndarray, idx: FrameIndex, progress=None, decapsulate: bool = True) -> pd.DataFrame:
    n = len(idx)
    lt_of_iface = np.array([i.linktype for i in idx.interfaces] or [0], dtype=np.uint16)
    kind_of_iface = np.array([decoder_kind(i.linktype) for i in idx.interfaces] or [0], dtype=np.int8)
    linktype = lt_of_iface[idx.iface] if n else np.zeros(0, np.uint16)
    kind = kind_of_iface[idx.iface] if n else np.zeros(0, np.int8)
    if n and int(idx.iface.max()) > 0xFFFF:
        raise CaptureError(idx.path if hasattr(idx, "path") else None, None,
                           f"interface id {int(idx.iface.max())} beyond 65535 (the table's iface is uint16)")

    out8 = np.zeros((D.N8, n), np.uint8)
    out16 = np.zeros((D.N16, n), np.uint16)
    out32 = np.zeros((D.N32, n), np.uint32)
    out64 = np.zeros((D.N64, n), np.int64)
    addr = np.zeros((D.NA, n), np.uint64)
    for lo in range(0, n, CHUNK):
        hi = min(n, lo + CHUNK)
        D.decode(buf, idx.data_off[lo:hi], idx.caplen[lo:hi], idx.wirelen[lo:hi], kind[lo:hi], bool(decapsulate),
                 out8[:, lo:hi], out16[:, lo:hi], out32[:, lo:hi], out64[:, lo:hi], addr[:, lo:hi])
        if progress is not None:
            progress.update(hi - lo)
    return packets_table(n, out8, out16, out32, out64, addr, idx.iface, linktype, idx.ts_ns,
                         None if idx.has_ts is None else ~idx.has_ts, idx.caplen, idx.wirelen)


def packets_table(n, out8, out16, out32, out64, addr, iface, linktype, ts_ns, ts_missing, caplen, wirelen
                  ) -> pd.DataFrame:
    """The decoder's rows → schema.PACKETS columns (zero-copy masked arrays where possible)."""
    present = out32[D.R32_PRESENT]
    flags = out8[D.R8_FLAGS]

    def m(values, bit):
        return pd.arrays.IntegerArray(values, (present & bit) == 0)

    # the rows that fill any sparse column (none in a plain capture): one scan of the table, then
    # each sparse column looks at those rows only
    any_rows = np.flatnonzero(present & SPARSE_BITS)
    sub = present[any_rows]

    def rows_with(bit):
        m = (sub & bit) != 0
        return any_rows if m.all() else any_rows[m]

    def at(values, rows):
        return values if rows.size == n else values[rows]

    def sparse(values, bit):
        rows = rows_with(bit)
        return sparse_at(at(values, rows), rows, n, SPARSE)

    def flag(bit):
        rows = np.flatnonzero(flags & bit)
        return sparse_at(np.ones(rows.size, bool), rows, n, SPARSE_FLAG)

    def dictionary(values, bit, name):
        rows = rows_with(bit)
        return coded(at(values, rows), rows, n, name)

    l3 = out8[D.R8_L3]
    src, dst = _addresses(l3, present & D.P_SRC, present & D.P_DST, addr, D.RA_SRC)
    outer_rows = rows_with(D.P_OUTER)     # the tunnelled frames: tunnel_depth > 0 exactly there
    osrc, odst = _outer_addresses(out8[D.R8_OUTER_L3], outer_rows, addr, n)
    qsrc, qdst = _quoted_addresses(present, addr, n, rows_with)
    ts_mask = np.zeros(n, bool) if ts_missing is None else ts_missing
    cols = {
        "frame": np.arange(1, n + 1, dtype=np.int64),
        "iface": iface.astype(np.uint16, copy=False),
        "linktype": linktype,
        "ts_ns": pd.arrays.IntegerArray(ts_ns, ts_mask),
        "caplen": caplen,
        "wirelen": wirelen,
        "l3": pd.Categorical.from_codes(l3.astype(np.int8), categories=list(L3_KINDS)),
        "vlan": m(out16[D.R16_VLAN], D.P_VLAN),
        "src": src,
        "dst": dst,
        "ip_proto": m(out8[D.R8_PROTO], D.P_PROTO),
        "ip_len": m(out32[D.R32_IP_LEN], D.P_IPLEN),
        "ip_hdr_len": m(out16[D.R16_IP_HDR_LEN], D.P_IPHL),
        "ttl": m(out8[D.R8_TTL], D.P_TTL),
        "ip_id": m(out32[D.R32_IP_ID], D.P_IPID),
        "ip_df": pd.arrays.BooleanArray((flags & D.F_DF) != 0, (present & D.P_IPV4FLAGS) == 0),
        "ip_mf": pd.arrays.BooleanArray((flags & D.F_MF) != 0, (present & D.P_FRAG) == 0),
        "frag_offset": m(out16[D.R16_FRAG], D.P_FRAG),
        "icmp_type": m(out8[D.R8_ICMP_TYPE], D.P_ICMP),
        "icmp_code": m(out8[D.R8_ICMP_CODE], D.P_ICMP),
        "icmp_id": m(out16[D.R16_ICMP_ID], D.P_ICMPID),
        "icmp_seq": m(out16[D.R16_ICMP_SEQ], D.P_ICMPSEQ),
        "sport": m(out16[D.R16_SPORT], D.P_PORTS),
        "dport": m(out16[D.R16_DPORT], D.P_PORTS),
        "tcp_flags": m(out16[D.R16_TCP_FLAGS], D.P_TFLAGS),
        "tcp_seq": m(out32[D.R32_TCP_SEQ], D.P_TCP),
        "tcp_ack": m(out32[D.R32_TCP_ACK], D.P_TACK),
        "tcp_win": m(out16[D.R16_TCP_WIN], D.P_TWIN),
        "tcp_hdr_len": m(out8[D.R8_TCP_HDR_LEN], D.P_TFLAGS),
        "payload_len": m(out32[D.R32_PAYLOAD_LEN].view(np.int32), D.P_PAYLOAD),
        "payload_off": m(out64[D.R64_PAYLOAD_OFF], D.P_PAYOFF),
        "payload_caplen": m(out32[D.R32_PAYLOAD_CAPLEN].view(np.int32), D.P_PAYOFF),
        "truncated": (flags & D.F_TRUNC) != 0,
        "malformed": flag(D.F_MALFORMED),
        "offload": flag(D.F_OFFLOAD),
        "tunnel": pd.Categorical.from_codes(out8[D.R8_TUNNEL].astype(np.int8), categories=list(TUNNEL_KINDS)),
        "tunnel_depth": sparse_at(at(out8[D.R8_DEPTH], outer_rows), outer_rows, n, SPARSE_COUNT),
        "outer_src": osrc,
        "outer_dst": odst,
        "tunnel_id": dictionary(out32[D.R32_TUNNEL_ID], D.P_TID, "tunnel_id"),
        "outer_ttl": dictionary(out8[D.R8_OUTER_TTL], D.P_OUTER, "outer_ttl"),
        "gwlb_flow_cookie": sparse(out32[D.R32_GWLB_COOKIE], D.P_GWLB),
        "quoted_src": qsrc,
        "quoted_dst": qdst,
        "quoted_proto": sparse(out8[D.R8_Q_PROTO], D.P_QPROTO),
        "quoted_sport": sparse(out16[D.R16_Q_SPORT], D.P_QPORTS),
        "quoted_dport": sparse(out16[D.R16_Q_DPORT], D.P_QPORTS),
        "quoted_icmp_id": sparse(out16[D.R16_Q_ICMP_ID], D.P_QICMPID),
        "quoted_icmp_seq": sparse(out16[D.R16_Q_ICMP_SEQ], D.P_QICMPID),
        "quoted_tcp_seq": sparse(out32[D.R32_Q_TCP_SEQ], D.P_QSEQ),
        "icmp_mtu": sparse(out32[D.R32_MTU], D.P_MTU),
    }
    df = pd.DataFrame(cols, copy=False)
    assert tuple(df.columns) == PACKET_COLUMNS
    return df


def _quoted_addresses(present: np.ndarray, addr: np.ndarray, n: int, rows_with):
    """quoted_src/quoted_dst as sparse text columns (the quoted header's family from its P_QV6 bit)."""
    out = []
    for bit, row in ((D.P_QSRC, D.RA_Q_SRC), (D.P_QDST, D.RA_Q_DST)):
        rows = rows_with(bit)
        v6 = (present[rows] & D.P_QV6) != 0
        hi, lo = addr[row, rows], addr[row + 1, rows]
        texts = [socket.inet_ntop(socket.AF_INET6, int(h).to_bytes(8, "big") + int(x).to_bytes(8, "big")) if f
                 else socket.inet_ntoa(int(x).to_bytes(4, "big")) for h, x, f in zip(hi, lo, v6)]
        out.append(sparse_at(np.array(texts, dtype=object), rows, n, SPARSE_TEXT))
    return out


def _outer_addresses(l3: np.ndarray, rows: np.ndarray, addr: np.ndarray, n: int):
    """outer_src/outer_dst: categoricals over the tunnelled rows' outer addresses (<NA> elsewhere)."""
    if rows.size == n:
        if n and (l3 == D.L3_IPV4).all():
            s, d = addr[D.RA_OUTER_SRC + 1], addr[D.RA_OUTER_DST + 1]
            s0, d0 = int(s[0]), int(d[0])
            if (s == s0).all() and (d == d0).all():     # one mirror session: two addresses, no factorize
                uniq = sorted({s0, d0})
                dtype = pd.CategoricalDtype([socket.inet_ntoa(u.to_bytes(4, "big")) for u in uniq])
                return [pd.Categorical.from_codes(np.full(n, uniq.index(x), np.int8), dtype=dtype) for x in (s0, d0)]
        ok = np.ones(n, bool)
        return _addresses(l3, ok, ok, addr, D.RA_OUTER_SRC)
    sub_l3 = l3[rows]
    ok = np.ones(rows.size, bool)
    s, d = _addresses(sub_l3, ok, ok, addr[:, rows], D.RA_OUTER_SRC)
    out = []
    for c in (s, d):
        codes = np.full(n, -1, c.codes.dtype)
        codes[rows] = c.codes
        out.append(pd.Categorical.from_codes(codes, dtype=c.dtype))
    return out


def _addresses(l3: np.ndarray, has_src: np.ndarray, has_dst: np.ndarray, addr: np.ndarray, base: int):
    """src/dst (rows base.. of addr) as categoricals over one shared, sorted category list (IPv4 first,
    then IPv6); l3 holds each row's family (L3_IPV4/L3_IPV6)."""
    n = l3.shape[0]
    cats: list[str] = []
    is4 = l3 == D.L3_IPV4
    hs, hd = has_src != 0, has_dst != 0
    if n and is4.all() and hs.all() and hd.all():
        # the common case (every frame IPv4 with both addresses): no gathers, no scatters
        keys = np.concatenate([addr[base + 1], addr[base + 3]]).astype(np.uint32)
        uniq, inv = factorize_sorted(keys)
        cats.extend(socket.inet_ntoa(int(u).to_bytes(4, "big")) for u in uniq)
        dtype = pd.CategoricalDtype(cats)
        return (pd.Categorical.from_codes(inv[:n], dtype=dtype), pd.Categorical.from_codes(inv[n:], dtype=dtype))
    codes = np.full((2, n), -1, np.int32)
    is6 = l3 == D.L3_IPV6
    s4, d4 = np.flatnonzero(is4 & hs), np.flatnonzero(is4 & hd)
    s6, d6 = np.flatnonzero(is6 & hs), np.flatnonzero(is6 & hd)
    if s4.size or d4.size:
        keys = np.concatenate([addr[base + 1, s4], addr[base + 3, d4]]).astype(np.uint32)
        uniq, inv = factorize_sorted(keys)
        cats.extend(socket.inet_ntoa(int(u).to_bytes(4, "big")) for u in uniq)
        codes[0, s4] = inv[:s4.size]
        codes[1, d4] = inv[s4.size:]
    if s6.size or d6.size:
        pairs = np.empty((s6.size + d6.size, 2), np.uint64)
        pairs[:s6.size, 0] = addr[base, s6]
        pairs[:s6.size, 1] = addr[base + 1, s6]
        pairs[s6.size:, 0] = addr[base + 2, d6]
        pairs[s6.size:, 1] = addr[base + 3, d6]
        uniq, inv = np.unique(pairs, axis=0, return_inverse=True)
        inv = inv.reshape(-1)
        first = len(cats)
        cats.extend(socket.inet_ntop(socket.AF_INET6, int(h).to_bytes(8, "big") + int(lo_).to_bytes(8, "big"))
                    for h, lo_ in uniq)
        codes[0, s6] = inv[:s6.size] + first
        codes[1, d6] = inv[s6.size:] + first
    dtype = pd.CategoricalDtype(cats)
    return (pd.Categorical.from_codes(codes[0], dtype=dtype),
            pd.Categorical.from_codes(codes[1], dtype=dtype))
