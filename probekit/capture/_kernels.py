"""Compiled inner loops of the reader: the pcap/pcapng record walks (the decoder is in _decode.py).

Written in the subset of Python that numba compiles; without numba (or with NUMBA_DISABLE_JIT=1)
the same functions run as plain Python, slowly but identically. Integers are widened with
``np.int64`` before shifting so that uint8 arithmetic never wraps in either mode.
"""
from __future__ import annotations

import numpy as np

from .._jit import njit

# Walk stop reasons (shared with the Python drivers).
STOP_END = 0            # clean end of file
STOP_SHORT_HEADER = 1   # fewer bytes left than a record/block header
STOP_SHORT_DATA = 2     # record/block header promises more bytes than the file has
STOP_BAD_LENGTH = 3     # block length not a multiple of 4 / too small / trailer mismatch
STOP_NEEDS_PYTHON = 4   # pcapng: SHB or IDB, handled by the Python driver
STOP_BAD_CAPLEN = 5     # packet length inconsistent with its block
STOP_HUGE_RECORD = 6    # pcap record caplen beyond any sane snap length

MAX_RECORD = 1 << 24    # 16 MiB: larger pcap records are taken as corruption, not data


@njit(cache=True, nogil=True)
def _rd16(b, o, be):
    if be:
        return (np.int64(b[o]) << 8) | np.int64(b[o + 1])
    return (np.int64(b[o + 1]) << 8) | np.int64(b[o])


@njit(cache=True, nogil=True)
def _rd32(b, o, be):
    if be:
        return ((np.int64(b[o]) << 24) | (np.int64(b[o + 1]) << 16)
                | (np.int64(b[o + 2]) << 8) | np.int64(b[o + 3]))
    return ((np.int64(b[o + 3]) << 24) | (np.int64(b[o + 2]) << 16)
            | (np.int64(b[o + 1]) << 8) | np.int64(b[o]))


@njit(cache=True, nogil=True)
def _be16(b, o):
    return (np.int64(b[o]) << 8) | np.int64(b[o + 1])


@njit(cache=True, nogil=True)
def _be32(b, o):
    return ((np.int64(b[o]) << 24) | (np.int64(b[o + 1]) << 16)
            | (np.int64(b[o + 2]) << 8) | np.int64(b[o + 3]))


@njit(cache=True, nogil=True)
def _be64(b, o):
    return (np.uint64(_be32(b, o)) << np.uint64(32)) | np.uint64(_be32(b, o + 4))


# ----------------------------------------------------------------------------------------- pcap
# Record-header layouts of classic pcap (libpcap sf-pcap.c): the usual 16-byte header, or the 24-byte
# "patched" header of magic 0xa1b2cd34 (Alexey Kuznetsov's patch: + ifindex, protocol, pkt_type, pad).
# Length order (``swap``): 0 caplen then len (2.4); 1 len then caplen (before 2.3, and DG/UX 543.0);
# 2 "maybe" (2.3: swapped only where the first field exceeds the second).
LEN_NOT_SWAPPED = 0
LEN_SWAPPED = 1
LEN_MAYBE_SWAPPED = 2


@njit(cache=True, nogil=True)
def _pcap_lengths(buf, off, be, swap):
    a = _rd32(buf, off + 8, be)
    b = _rd32(buf, off + 12, be)
    if swap == LEN_SWAPPED or (swap == LEN_MAYBE_SWAPPED and a > b):
        return b, a
    return a, b


@njit(cache=True, nogil=True)
def pcap_count(buf, start, be, hdrsize=16, swap=0, limit=-1):
    """Count whole records from ``start`` (at most ``limit`` if >= 0); return (count, stop_offset,
    stop_reason). A record that does not fit the buffer stops the walk (STOP_SHORT_*), so a chunked
    caller reads more and walks again from stop_offset."""
    n = buf.shape[0]
    off = start
    count = 0
    while True:
        if count == limit:
            return count, off, STOP_END
        if off == n:
            return count, off, STOP_END
        if off + hdrsize > n:
            return count, off, STOP_SHORT_HEADER
        cap, _wire = _pcap_lengths(buf, off, be, swap)
        if cap > MAX_RECORD:
            return count, off, STOP_HUGE_RECORD
        if off + hdrsize + cap > n:
            return count, off, STOP_SHORT_DATA
        count += 1
        off += hdrsize + cap


@njit(cache=True, nogil=True)
def pcap_walk(buf, start, be, hdrsize, swap, limit, frac_ns, data_off, ts_ns, caplen, wirelen):
    """pcap_count and the fill of each record's fields in one walk over the record headers: rows 0.. of the arrays (each at least
    as long as the number of records the walk can find: (bytes after start) // hdrsize, or ``limit``),
    ts_ns = ts_sec * 10^9 + ts_frac * frac_ns. Returns (count, stop_offset, stop_reason) as pcap_count.
    The header fields are read here byte by byte, with no call that takes ``buf``: numba's reference
    counting of the array then prunes away (a call per record costs two atomic operations)."""
    n = buf.shape[0]
    off = start
    count = 0
    while True:
        if count == limit:
            return count, off, STOP_END
        if off == n:
            return count, off, STOP_END
        if off + hdrsize > n:
            return count, off, STOP_SHORT_HEADER
        if be:
            sec = ((np.int64(buf[off]) << 24) | (np.int64(buf[off + 1]) << 16)
                   | (np.int64(buf[off + 2]) << 8) | np.int64(buf[off + 3]))
            frac = ((np.int64(buf[off + 4]) << 24) | (np.int64(buf[off + 5]) << 16)
                    | (np.int64(buf[off + 6]) << 8) | np.int64(buf[off + 7]))
            a = ((np.int64(buf[off + 8]) << 24) | (np.int64(buf[off + 9]) << 16)
                 | (np.int64(buf[off + 10]) << 8) | np.int64(buf[off + 11]))
            b = ((np.int64(buf[off + 12]) << 24) | (np.int64(buf[off + 13]) << 16)
                 | (np.int64(buf[off + 14]) << 8) | np.int64(buf[off + 15]))
        else:
            sec = ((np.int64(buf[off + 3]) << 24) | (np.int64(buf[off + 2]) << 16)
                   | (np.int64(buf[off + 1]) << 8) | np.int64(buf[off]))
            frac = ((np.int64(buf[off + 7]) << 24) | (np.int64(buf[off + 6]) << 16)
                    | (np.int64(buf[off + 5]) << 8) | np.int64(buf[off + 4]))
            a = ((np.int64(buf[off + 11]) << 24) | (np.int64(buf[off + 10]) << 16)
                 | (np.int64(buf[off + 9]) << 8) | np.int64(buf[off + 8]))
            b = ((np.int64(buf[off + 15]) << 24) | (np.int64(buf[off + 14]) << 16)
                 | (np.int64(buf[off + 13]) << 8) | np.int64(buf[off + 12]))
        if swap == LEN_SWAPPED or (swap == LEN_MAYBE_SWAPPED and a > b):
            cap = b
            wire = a
        else:
            cap = a
            wire = b
        if cap > MAX_RECORD:
            return count, off, STOP_HUGE_RECORD
        if off + hdrsize + cap > n:
            return count, off, STOP_SHORT_DATA
        data_off[count] = off + hdrsize
        ts_ns[count] = sec * 1_000_000_000 + frac * frac_ns
        caplen[count] = cap
        wirelen[count] = wire
        count += 1
        off += hdrsize + cap


# --------------------------------------------------------------------------------------- pcapng
@njit(cache=True, nogil=True)
def pcapng_walk(buf, start, be, snap0, fill, base, data_off, ts_raw, caplen, wirelen, iface,
                has_ts):
    """Walk packet blocks (EPB, SPB, obsolete PB) from ``start`` until a block Python must handle
    (SHB, IDB), the end, or an error. Other blocks are skipped. With ``fill`` false it only
    counts; with ``fill`` true it writes rows ``base``.. of the output arrays.

    Returns (count, stop_offset, stop_reason, detail).
    """
    n = buf.shape[0]
    off = start
    count = 0
    while True:
        if off == n:
            return count, off, STOP_END, 0
        if off + 12 > n:
            return count, off, STOP_SHORT_HEADER, n - off
        btype = _rd32(buf, off, be)
        blen = _rd32(buf, off + 4, be)
        if btype == 0x0A0D0D0A or btype == 1:
            return count, off, STOP_NEEDS_PYTHON, btype
        if blen % 4 != 0 or blen < 12:
            return count, off, STOP_BAD_LENGTH, blen
        if off + blen > n:
            return count, off, STOP_SHORT_DATA, blen
        if _rd32(buf, off + blen - 4, be) != blen:
            return count, off, STOP_BAD_LENGTH, -1
        if btype == 6 or btype == 2:  # EPB / obsolete PB
            if blen < 32:
                return count, off, STOP_BAD_CAPLEN, blen
            cap = _rd32(buf, off + 20, be)
            if cap > blen - 32:
                return count, off, STOP_BAD_CAPLEN, cap
            if fill:
                j = base + count
                if btype == 6:
                    iface[j] = _rd32(buf, off + 8, be)
                else:
                    iface[j] = _rd16(buf, off + 8, be)
                ts_raw[j] = (np.uint64(_rd32(buf, off + 12, be)) << np.uint64(32)) | np.uint64(
                    _rd32(buf, off + 16, be))
                caplen[j] = cap
                wirelen[j] = _rd32(buf, off + 24, be)
                data_off[j] = off + 28
                has_ts[j] = True
            count += 1
        elif btype == 3:  # SPB
            if blen < 16:
                return count, off, STOP_BAD_CAPLEN, blen
            wl = _rd32(buf, off + 8, be)
            cap = blen - 16
            if wl < cap:
                cap = wl
            if snap0 > 0 and snap0 < cap:
                cap = snap0
            if fill:
                j = base + count
                iface[j] = 0
                ts_raw[j] = 0
                caplen[j] = cap
                wirelen[j] = wl
                data_off[j] = off + 12
                has_ts[j] = False
            count += 1
        off += blen
