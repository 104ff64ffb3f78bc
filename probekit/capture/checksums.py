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

from contextlib import contextmanager

import numpy as np
import pandas as pd

from .._io import open_bytes
from .._jit import njit
from .payloads import payload_files

__all__ = ["checksums_ok", "column_array", "raw_column", "l3_code", "one_file_words", "verify_columns", "verify_row"]

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


_U8, _U32, _ONE = np.uint64(8), np.uint64(0xFFFFFFFF), np.uint64(1)
_M16 = np.uint64(0xFFFF)


@njit(cache=True, inline="always")
def _le_sum(buf, words, o, n):
    """buf[o:o+n] (n >= 0) summed as little-endian 16-bit words (an odd last byte the low byte of a word),
    not folded: the whole 8-byte words at words[o + 8k], then the last 1..7 bytes as one word with the
    bytes past them masked off (by bytes when that word would run past the buffer), instead of a loop
    of byte pairs and an odd byte. Each word adds its two 32-bit halves: no overflow before 2^31 words.
    Congruent modulo 0xFFFF to the big-endian sum byte-swapped, and 0 only when every byte is."""
    k, end = np.uint64(o), np.uint64(o) + np.uint64(n)
    s = np.uint64(0)
    while k + _U8 <= end:
        w = words[k]
        s += (w & _U32) + (w >> np.uint64(32))
        k += _U8
    r = end - k
    if r:
        if k < np.uint64(words.shape[0]):
            w = words[k] & ((_ONE << (r * _U8)) - _ONE)
        else:
            w = np.uint64(0)
            for q in range(r):
                w |= np.uint64(buf[k + np.uint64(q)]) << (np.uint64(q) * _U8)
        s += (w & _U32) + (w >> np.uint64(32))
    return s


@njit(cache=True, inline="always")
def _fold64(s):
    """s folded to 16 bits with end-around carries, as _fold does, in four fixed steps (any uint64: after
    the first below 2^33, then 2^18, 2^16 + 2, 2^16): 0 only for 0."""
    s = (s & _U32) + (s >> np.uint64(32))
    s = (s & _M16) + (s >> np.uint64(16))
    s = (s & _M16) + (s >> np.uint64(16))
    return (s & _M16) + (s >> np.uint64(16))


@njit(cache=True, inline="always")
def _sum16(buf, words, o, n, s):
    """s + the big-endian 16-bit words of buf[o:o+n] (an odd last byte padded), as RFC 1071 adds them,
    folded to 16 bits. Computed over little-endian words (_le_sum) and byte-swapped at the end (the
    one's-complement sum does not depend on byte order, RFC 1071 §2(B)); ``words[p]`` is the 8 bytes
    at buf[p] (one unaligned load, see _words); unsigned indices, so the compiled loads carry no
    negative-index test."""
    if n < 0:  # a total length shorter than the IP header: as the byte loop had it (n % 2 == 1 in Python)
        if n % 2 == 1:
            s += np.int64(buf[o + n - 1]) << 8
        return _fold(s)
    x = np.int64(_fold64(_le_sum(buf, words, o, n)))
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


@njit(cache=True, inline="always")
def verify_row(buf, words, size, i, l3, v4, v6, proto, proto_m, thl, thl_m, poff, poff_m, iphl, iphl_m, iplen,
                iplen_m, pcap, pcap_m, frag, frag_m, mf, mf_m):
    """Row i's checks: bit 0 the IPv4 header checksum verifies, bit 1 the L4 checksum (a bit is also set
    where that checksum cannot be checked). Inlined into the passes that call it (_verify here, and a
    pass of an analysis that selects its rows as it verifies them)."""
    ip = 1
    p = -1 if proto_m[i] else np.int64(proto[i])
    if p == 6:
        hdr = -1 if thl_m[i] else np.int64(thl[i])
    else:
        hdr = 8
    po = -1 if poff_m[i] else np.int64(poff[i])
    if po < 0 or hdr <= 0:
        return 3
    code = l3[i]
    is_v6 = code == v6
    hl = 0 if iphl_m[i] else np.int64(iphl[i])
    a = po - hdr - hl
    if (code != v4 and not is_v6) or a < 0:
        return 3
    # IPv4: the pseudo-header's addresses are the header's bytes 12-19, one word shared by both sums
    # (the header of 20 bytes: its first 12 bytes, then that word; others by _le_sum)
    ph = np.uint64(0)
    shared = not is_v6 and hl == 20 and a + 20 <= size
    if shared:
        ua = np.uint64(a)
        ph = words[ua + np.uint64(12)]
        ph = (ph & _U32) + (ph >> np.uint64(32))
        w = words[ua]
        ip = 1 if _fold64((w & _U32) + (w >> np.uint64(32)) + (words[ua + _U8] & _U32) + ph) == _M16 else 0
    elif not is_v6 and a + hl <= size:
        ip = 1 if _fold64(_le_sum(buf, words, a, hl)) == _M16 else 0
    if p != 1 and p != 6 and p != 17 and p != 58:
        return ip | 2
    if (not frag_m[i] and frag[i] > 0) or (not mf_m[i] and mf[i] != 0):
        return ip | 2
    tot = 0 if iplen_m[i] else np.int64(iplen[i])
    pc = -1 if pcap_m[i] else np.int64(pcap[i])
    n = tot - hl
    if tot <= 0 or pc < 0 or pc < n - hdr:
        return ip | 2
    o = po - hdr
    if o < 0 or o + n > size:
        return ip | 2
    if n < 0:  # a total length shorter than the IP header: _sum16's byte rule, as before
        return ip | (2 if _l4_short(buf, words, a, o, n, p, is_v6) else 0)
    if p == 17 and not is_v6 and n >= 8 and buf[o + 6] == 0 and buf[o + 7] == 0:
        return ip | 2  # UDP over IPv4 without a checksum
    # ICMPv4 has no pseudo-header; the others: its addresses, the segment and (protocol + length) in
    # one little-endian sum, folded once ((p + n) << 8 is that big-endian 16-bit quantity
    # byte-swapped, modulo 0xFFFF). Where the addresses' word is at hand (shared) ICMPv4 has it
    # too and does not add it (a select, not a branch on the protocol).
    if not shared and p != 1:
        ph = _le_sum(buf, words, a + 8, 32) if is_v6 else _le_sum(buf, words, a + 12, 8)
    ph += np.uint64(p + n) << _U8
    seg = _le_sum(buf, words, o, n)
    return ip | (2 if _fold64(seg + (np.uint64(0) if p == 1 else ph)) == _M16 else 0)


# no reference counting (nothing here allocates): each inlined sum over (buf, words) would otherwise be an
# atomic increment and decrement of their counts, per packet
@njit(cache=True, _nrt=False)
def _verify(buf, words, rows, l3, v4, v6, proto, proto_m, thl, thl_m, poff, poff_m, iphl, iphl_m, iplen, iplen_m,
            pcap, pcap_m, frag, frag_m, mf, mf_m, ip_ok, l4_ok):
    """ip_ok[r], l4_ok[r] for each r in rows (True where not checkable)."""
    size = buf.shape[0]
    for j in range(rows.shape[0]):
        i = np.uint64(rows[j])
        r = verify_row(buf, words, size, i, l3, v4, v6, proto, proto_m, thl, thl_m, poff, poff_m, iphl, iphl_m,
                        iplen, iplen_m, pcap, pcap_m, frag, frag_m, mf, mf_m)
        ip_ok[i] = r & 1
        l4_ok[i] = r >> 1


@njit(cache=True, _nrt=False)
def _l4_short(buf, words, a, o, n, p, is_v6):
    """The L4 check of a segment of negative length (n < 0), exactly as the big-endian sums had it."""
    s = np.int64(0)
    if p == 1:
        return _fold(_sum16(buf, words, o, n, s)) == 0xFFFF
    if p == 17 and not is_v6 and n >= 8 and buf[o + 6] == 0 and buf[o + 7] == 0:
        return True
    if is_v6:
        s = _sum16(buf, words, a + 8, 32, s)
    else:
        s = _sum16(buf, words, a + 12, 8, s)
    s += p + n
    return _fold(_sum16(buf, words, o, n, s)) == 0xFFFF


def verify_columns(packets: pd.DataFrame) -> list:
    """The column buffers verify_row takes after its row (l3 codes, v4, v6, then (values, missing) of
    each of _COLUMNS), for a compiled pass of an analysis that verifies rows as it selects them."""
    return [column_array(packets, "l3").codes, l3_code(packets, "ipv4"), l3_code(packets, "ipv6")] + \
        [x for name in _COLUMNS for x in raw_column(packets, name)]


@contextmanager
def one_file_words(packets: pd.DataFrame):
    """(buf, words) of the capture file all of ``packets`` come from, open for the ``with`` (for
    verify_row); None when the table names no file, or several (use checksums_ok)."""
    if not (packets.attrs.get("path") or packets.attrs.get("paths")):
        yield None
        return
    path = _the_one_file(packets)
    if path is None:
        yield None
        return
    with open_bytes(path) as buf:
        yield buf, _words(buf)


def _the_one_file(packets: pd.DataFrame):
    """The file all rows come from (payload_files' answer when it names one file for every row), without
    making payload_files' row positions (an array as long as the table); None otherwise."""
    if "capture" in packets.columns and packets.attrs.get("paths"):
        codes = column_array(packets, "capture").codes
        if not len(codes) or codes.min() < 0 or codes.min() != codes.max():
            return None
        name = column_array(packets, "capture").categories[codes[0]]
        return packets.attrs["paths"][name]
    return packets.attrs.get("path") or None


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
    cols = verify_columns(packets)
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
            _verify(buf, _words(buf), r, *cols, ip_ok, l4_ok)
    return ip_ok, l4_ok
