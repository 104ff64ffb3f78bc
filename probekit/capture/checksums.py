"""IP header and L4 (TCP, UDP, ICMP, ICMPv6) checksums of a packets table's frames, verified against the
capture file's bytes: the one place analyses get header bytes from (they never open files).

``checksums_ok(packets)`` returns two boolean arrays in row order: the IPv4 header checksum verifies,
and the L4 checksum verifies. Where a checksum cannot be checked (not IPv4 for the header; the segment
not wholly captured, no L4 header, UDP over IPv4 with checksum 0) the answer is True, as Zeek skips
the test then (IP.cc, TCP.cc ValidateChecksum, UDP.cc, ICMP.cc).

One compiled pass per capture file: where the IP header and the L4 segment start is worked out per row
from the stored columns' buffers (a nullable column is passed as its values and its mask, no copy), so
no per-column array is built around the sums.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .._io import open_bytes
from .._jit import njit
from .payloads import payload_files

__all__ = ["checksums_ok", "column_array", "raw_column", "l3_code"]

_COLUMNS = ("ip_proto", "tcp_hdr_len", "payload_off", "ip_hdr_len", "ip_len", "payload_caplen", "frag_offset",
            "ip_mf")


def column_array(packets: pd.DataFrame, name: str):
    """Column ``name``'s stored array (numpy or pandas extension array), for reading only. Not through
    ``packets[name]``: each Series pandas makes deep-copies the table's attrs (its notes and interfaces),
    which costs more than the compiled passes over a million rows."""
    get = getattr(packets, "_get_column_array", None)
    if get is not None:
        loc = packets.columns.get_loc(name)
        if isinstance(loc, int):
            return get(loc)
    return packets[name].array


def raw_column(packets: pd.DataFrame, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(values, missing) of column ``name``: a nullable column's own buffers (no copy; a value under
    the mask is meaningless), any other column's values with a mask of its missing entries."""
    a = column_array(packets, name)
    data, mask = getattr(a, "_data", None), getattr(a, "_mask", None)
    if isinstance(data, np.ndarray) and isinstance(mask, np.ndarray):
        return data, mask
    s = pd.Series(a, copy=False)
    missing = s.isna().to_numpy(bool)
    if s.dtype.kind in "biu":
        return s.to_numpy(), missing
    return s.to_numpy("int64", na_value=0), missing


def l3_code(packets: pd.DataFrame, kind: str) -> int:
    """The code of ``kind`` in the l3 categorical (-2 when absent: matches no row, not even a missing one)."""
    i = pd.Index(column_array(packets, "l3").categories).get_indexer([kind])[0]
    return int(i) if i >= 0 else -2


_U8, _U32, _ONE, _TWO = np.uint64(8), np.uint64(0xFFFFFFFF), np.uint64(1), np.uint64(2)


@njit(cache=True, inline="always")
def _sum16(buf, words, o, n, s):
    """s + the big-endian 16-bit words of buf[o:o+n] (an odd last byte padded), as RFC 1071 adds them,
    folded to 16 bits. Computed over little-endian 64-bit words and byte-swapped at the end (the
    one's-complement sum does not depend on byte order, RFC 1071 §2(B)); ``words[p]`` is the 8 bytes
    at buf[p] (one unaligned load, see _words); unsigned indices, so the compiled loads carry no
    negative-index test."""
    if n < 0:  # a total length shorter than the IP header: as the byte loop had it (n % 2 == 1 in Python)
        if n % 2 == 1:
            s += np.int64(buf[o + n - 1]) << 8
        return _fold(s)
    uo, m = np.uint64(o), np.uint64(n)
    k = np.uint64(0)
    le = np.uint64(0)
    while k + _U8 <= m:
        w = words[uo + k]
        le += (w & _U32) + (w >> np.uint64(32))
        k += _U8
    while k + _ONE < m:
        le += np.uint64(buf[uo + k]) | (np.uint64(buf[uo + k + _ONE]) << np.uint64(8))
        k += _TWO
    if k < m:
        le += np.uint64(buf[uo + k])
    x = _fold(np.int64(le))
    return _fold(s + (((x & 0xFF) << 8) | (x >> 8)))


def _words(buf: np.ndarray) -> np.ndarray:
    """A read-only uint64 view whose element p is the 8 bytes at buf[p], little-endian (a stride of one
    byte: each element overlaps the next seven; p runs to len(buf) - 8). No copy."""
    n = len(buf)
    if n < 8 or buf.strides[0] != 1:
        return np.zeros(0, np.uint64) if n < 8 else _words(np.ascontiguousarray(buf))
    base = buf[:n - n % 8].view(np.uint64)
    return np.lib.stride_tricks.as_strided(base, shape=(n - 7,), strides=(1,), writeable=False)


@njit(cache=True, inline="always")
def _fold(s):
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


# no reference counting (nothing here allocates): each inlined _sum16(buf, words, ...) would otherwise be an
# atomic increment and decrement of buf's count, per packet
@njit(cache=True, _nrt=False)
def _verify(buf, words, rows, l3, v4, v6, proto, proto_m, thl, thl_m, poff, poff_m, iphl, iphl_m, iplen, iplen_m,
            pcap, pcap_m, frag, frag_m, mf, mf_m, ip_ok, l4_ok):
    """ip_ok[r], l4_ok[r] for each r in rows (left as they are where not checkable)."""
    size = buf.shape[0]
    for j in range(rows.shape[0]):
        i = np.uint64(rows[j])
        p = -1 if proto_m[i] else np.int64(proto[i])
        if p == 6:
            hdr = -1 if thl_m[i] else np.int64(thl[i])
        else:
            hdr = 8
        po = -1 if poff_m[i] else np.int64(poff[i])
        if po < 0 or hdr <= 0:
            continue
        code = l3[i]
        is_v6 = code == v6
        hl = 0 if iphl_m[i] else np.int64(iphl[i])
        a = po - hdr - hl
        if (code != v4 and not is_v6) or a < 0:
            continue
        if not is_v6 and a + hl <= size:
            ip_ok[i] = _fold(_sum16(buf, words, a, hl, np.int64(0))) == 0xFFFF
        if p != 1 and p != 6 and p != 17 and p != 58:
            continue
        if (not frag_m[i] and frag[i] > 0) or (not mf_m[i] and mf[i] != 0):
            continue
        tot = 0 if iplen_m[i] else np.int64(iplen[i])
        pc = -1 if pcap_m[i] else np.int64(pcap[i])
        n = tot - hl
        if tot <= 0 or pc < 0 or pc < n - hdr:
            continue
        o = po - hdr
        if o < 0 or o + n > size:
            continue
        s = np.int64(0)
        if p == 1:  # ICMPv4: no pseudo-header
            l4_ok[i] = _fold(_sum16(buf, words, o, n, s)) == 0xFFFF
            continue
        if p == 17 and not is_v6 and n >= 8 and buf[o + 6] == 0 and buf[o + 7] == 0:
            continue  # UDP over IPv4 without a checksum
        if is_v6:
            s = _sum16(buf, words, a + 8, 32, s)
        else:
            s = _sum16(buf, words, a + 12, 8, s)
        s += p + n
        l4_ok[i] = _fold(_sum16(buf, words, o, n, s)) == 0xFFFF


def checksums_ok(packets: pd.DataFrame, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(IPv4 header checksum ok, L4 checksum ok) per row of ``packets``; True where not checkable.
    ``rows``: verify only these row positions (the others stay True)."""
    n = len(packets)
    ip_ok = np.ones(n, bool)
    l4_ok = np.ones(n, bool)
    if not n or not (packets.attrs.get("path") or packets.attrs.get("paths")):
        return ip_ok, l4_ok
    sel = np.arange(n) if rows is None else np.asarray(rows, np.int64)
    if not sel.size:
        return ip_ok, l4_ok
    cols = [x for name in _COLUMNS for x in raw_column(packets, name)]
    l3 = column_array(packets, "l3").codes
    v4, v6 = l3_code(packets, "ipv4"), l3_code(packets, "ipv6")
    files = list(payload_files(packets))
    for path, frows in files:
        if len(files) == 1:
            r = sel
        else:
            mine = np.zeros(n, bool)
            mine[frows] = True
            r = sel[mine[sel]]
        if not r.size:
            continue
        with open_bytes(path) as buf:
            _verify(buf, _words(buf), r, l3, v4, v6, *cols, ip_ok, l4_ok)
    return ip_ok, l4_ok
