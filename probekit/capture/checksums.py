"""IP header and L4 (TCP, UDP, ICMP, ICMPv6) checksums of a packets table's frames, verified against the
capture file's bytes: the one place analyses get header bytes from (they never open files).

``checksums_ok(packets)`` returns two boolean arrays in row order: the IPv4 header checksum verifies,
and the L4 checksum verifies. Where a checksum cannot be checked (not IPv4 for the header; the segment
not wholly captured, no L4 header, UDP over IPv4 with checksum 0) the answer is True, as Zeek skips
the test then (IP.cc, TCP.cc ValidateChecksum, UDP.cc, ICMP.cc).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .._io import open_bytes
from .._jit import njit
from .payloads import payload_files

__all__ = ["checksums_ok"]


@njit(cache=True)
def _sum16(buf, o, n, s):
    for k in range(0, n - 1, 2):
        s += (np.int64(buf[o + k]) << 8) | np.int64(buf[o + k + 1])
    if n % 2 == 1:
        s += np.int64(buf[o + n - 1]) << 8
    return s


@njit(cache=True)
def _fold(s):
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


@njit(cache=True)
def _verify(buf, ip_off, ip_hdr_len, is_v6, proto, l4_off, l4_len, whole, ip_ok, l4_ok):
    size = buf.shape[0]
    for i in range(ip_off.shape[0]):
        a = ip_off[i]
        if a < 0:
            continue
        if not is_v6[i] and a + ip_hdr_len[i] <= size:
            ip_ok[i] = _fold(_sum16(buf, a, ip_hdr_len[i], np.int64(0))) == 0xFFFF
        if not whole[i] or l4_off[i] < 0 or l4_off[i] + l4_len[i] > size:
            continue
        o, n, p = l4_off[i], l4_len[i], proto[i]
        s = np.int64(0)
        if p == 1:  # ICMPv4: no pseudo-header
            l4_ok[i] = _fold(_sum16(buf, o, n, s)) == 0xFFFF
            continue
        if p == 17 and not is_v6[i] and n >= 8 and buf[o + 6] == 0 and buf[o + 7] == 0:
            continue  # UDP over IPv4 without a checksum
        if is_v6[i]:
            s = _sum16(buf, a + 8, 32, s)
        else:
            s = _sum16(buf, a + 12, 8, s)
        s += p + n
        l4_ok[i] = _fold(_sum16(buf, o, n, s)) == 0xFFFF


def checksums_ok(packets: pd.DataFrame, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(IPv4 header checksum ok, L4 checksum ok) per row of ``packets``; True where not checkable.
    ``rows``: verify only these row positions (the others stay True)."""
    n = len(packets)
    ip_ok = np.ones(n, bool)
    l4_ok = np.ones(n, bool)
    if not n or not (packets.attrs.get("path") or packets.attrs.get("paths")):
        return ip_ok, l4_ok
    sel = np.arange(n) if rows is None else np.asarray(rows, np.int64)

    def col(name, na):
        a = packets[name].array
        data, mask = getattr(a, "_data", None), getattr(a, "_mask", None)
        if data is None or mask is None:
            return packets[name].to_numpy("int64", na_value=na)[sel]
        out = np.array(data[sel], dtype=np.int64)
        out[mask[sel]] = na
        return out
    proto = col("ip_proto", -1)
    l3c = packets["l3"].array
    cats = pd.Index(l3c.categories)
    codes = l3c.codes[sel]
    i4, i6 = cats.get_indexer(["ipv4"])[0], cats.get_indexer(["ipv6"])[0]
    is_v6 = (codes == i6) if i6 >= 0 else np.zeros(len(sel), bool)
    ipv = ((codes == i4) if i4 >= 0 else np.zeros(len(sel), bool)) | is_v6
    hdr = np.where(proto == 6, col("tcp_hdr_len", -1), 8)
    poff = col("payload_off", -1)
    iphl = col("ip_hdr_len", 0)
    iplen = col("ip_len", 0)
    pcap = col("payload_caplen", -1)
    frag = col("frag_offset", 0) > 0
    mf = col("ip_mf", 0) > 0
    l4 = np.isin(proto, (1, 6, 17, 58)) & (hdr > 0) & (poff >= 0) & ~frag & ~mf
    l4_off = np.where(l4, poff - hdr, -1)
    ip_off = np.where(ipv & (poff >= 0) & (hdr > 0), poff - hdr - iphl, -1)
    l4_len = iplen - iphl
    whole = l4 & (iplen > 0) & (pcap >= 0) & (pcap >= l4_len - hdr)
    a = np.ones(len(sel), bool)
    b = np.ones(len(sel), bool)
    pos = np.full(n, -1, np.int64)
    pos[sel] = np.arange(len(sel))
    for path, frows in payload_files(packets):
        r = pos[frows]
        r = r[r >= 0]
        if not r.size:
            continue
        with open_bytes(path) as buf:
            x, y = a[r], b[r]
            _verify(buf, ip_off[r], iphl[r], is_v6[r], proto[r], l4_off[r], l4_len[r], whole[r], x, y)
            a[r], b[r] = x, y
    ip_ok[sel], l4_ok[sel] = a, b
    return ip_ok, l4_ok
