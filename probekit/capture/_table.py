"""Frame index + file bytes → the packets table (schema.PACKETS), through the compiled decoder."""
from __future__ import annotations

import socket

import numpy as np
import pandas as pd

from ..schema import L3_KINDS, PACKET_COLUMNS
from . import _kernels as K
from ._frames import FrameIndex
from .linktypes import decoder_kind

CHUNK = 1 << 20


def decode_frames(buf: np.ndarray, idx: FrameIndex, progress=None) -> pd.DataFrame:
    n = len(idx)
    lt_of_iface = np.array([i.linktype for i in idx.interfaces] or [0], dtype=np.uint16)
    kind_of_iface = np.array([decoder_kind(i.linktype) for i in idx.interfaces] or [0], dtype=np.int8)
    linktype = lt_of_iface[idx.iface] if n else np.zeros(0, np.uint16)
    kind = kind_of_iface[idx.iface] if n else np.zeros(0, np.int8)

    out8 = np.zeros((7, n), np.uint8)
    out16 = np.zeros((9, n), np.uint16)
    out32 = np.zeros((7, n), np.uint32)
    out64 = np.zeros((1, n), np.int64)
    addr = np.zeros((4, n), np.uint64)
    for lo in range(0, n, CHUNK):
        hi = min(n, lo + CHUNK)
        K.decode(buf, idx.data_off[lo:hi], idx.caplen[lo:hi], idx.wirelen[lo:hi], kind[lo:hi],
                 out8[:, lo:hi], out16[:, lo:hi], out32[:, lo:hi], out64[:, lo:hi], addr[:, lo:hi])
        if progress is not None:
            progress.update(hi - lo)

    present = out32[4]
    flags = out8[6]

    def m(values, bit):
        return pd.arrays.IntegerArray(values, (present & bit) == 0)

    src, dst = _addresses(out8[0], present, addr)
    ts_mask = np.zeros(n, bool) if idx.has_ts is None else ~idx.has_ts
    cols = {
        "frame": np.arange(1, n + 1, dtype=np.int64),
        "iface": idx.iface.astype(np.int32, copy=False),
        "linktype": linktype,
        "ts_ns": pd.arrays.IntegerArray(idx.ts_ns, ts_mask),
        "caplen": idx.caplen,
        "wirelen": idx.wirelen,
        "l3": pd.Categorical.from_codes(out8[0].astype(np.int8), categories=list(L3_KINDS)),
        "vlan": m(out16[0], K.P_VLAN),
        "src": src,
        "dst": dst,
        "ip_proto": m(out8[1], K.P_IP),
        "ip_len": m(out32[0], K.P_IP),
        "ip_hdr_len": m(out16[1], K.P_IP),
        "ttl": m(out8[2], K.P_IP),
        "ip_id": m(out32[1], K.P_IPID),
        "ip_df": pd.arrays.BooleanArray((flags & 4) != 0, (present & K.P_IPV4FLAGS) == 0),
        "ip_mf": pd.arrays.BooleanArray((flags & 8) != 0, (present & K.P_FRAG) == 0),
        "frag_offset": m(out16[2], K.P_FRAG),
        "icmp_type": m(out8[3], K.P_ICMP),
        "icmp_code": m(out8[4], K.P_ICMP),
        "icmp_id": m(out16[3], K.P_ICMPID),
        "icmp_seq": m(out16[4], K.P_ICMPID),
        "sport": m(out16[5], K.P_PORTS),
        "dport": m(out16[6], K.P_PORTS),
        "tcp_flags": m(out16[7], K.P_TCP),
        "tcp_seq": m(out32[2], K.P_TCP),
        "tcp_ack": m(out32[3], K.P_TCP),
        "tcp_win": m(out16[8], K.P_TCP),
        "tcp_hdr_len": m(out8[5], K.P_TCP),
        "payload_len": m(out32[5].view(np.int32), K.P_PAYLOAD),
        "payload_off": m(out64[0], K.P_PAYOFF),
        "payload_caplen": m(out32[6].view(np.int32), K.P_PAYOFF),
        "truncated": (flags & 1) != 0,
        "malformed": (flags & 2) != 0,
    }
    df = pd.DataFrame(cols, copy=False)
    assert tuple(df.columns) == PACKET_COLUMNS
    return df


def _addresses(l3: np.ndarray, present: np.ndarray, addr: np.ndarray):
    """src/dst as categoricals over one shared, sorted category list (IPv4 first, then IPv6)."""
    n = l3.shape[0]
    has = (present & K.P_IP) != 0
    v4 = np.flatnonzero(has & (l3 == K.L3_IPV4))
    v6 = np.flatnonzero(has & (l3 == K.L3_IPV6))
    codes = np.full((2, n), -1, np.int64)
    cats: list[str] = []
    if v4.size:
        keys = np.concatenate([addr[1, v4], addr[3, v4]]).astype(np.uint32)
        uniq, inv = _factorize_sorted(keys)
        cats.extend(socket.inet_ntoa(int(u).to_bytes(4, "big")) for u in uniq)
        codes[0, v4] = inv[:v4.size]
        codes[1, v4] = inv[v4.size:]
    if v6.size:
        pairs = np.empty((2 * v6.size, 2), np.uint64)
        pairs[:v6.size, 0] = addr[0, v6]
        pairs[:v6.size, 1] = addr[1, v6]
        pairs[v6.size:, 0] = addr[2, v6]
        pairs[v6.size:, 1] = addr[3, v6]
        uniq, inv = np.unique(pairs, axis=0, return_inverse=True)
        inv = inv.reshape(-1)
        base = len(cats)
        cats.extend(socket.inet_ntop(socket.AF_INET6, int(h).to_bytes(8, "big") + int(lo_).to_bytes(8, "big"))
                    for h, lo_ in uniq)
        codes[0, v6] = inv[:v6.size] + base
        codes[1, v6] = inv[v6.size:] + base
    dtype = pd.CategoricalDtype(cats)
    return (pd.Categorical.from_codes(codes[0], dtype=dtype),
            pd.Categorical.from_codes(codes[1], dtype=dtype))


def _factorize_sorted(keys: np.ndarray):
    codes, uniques = pd.factorize(keys, sort=True)
    return np.asarray(uniques), codes
