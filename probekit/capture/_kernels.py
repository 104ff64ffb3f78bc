"""Compiled inner loops of the reader: the pcap/pcapng record walks (the decoder is in _decode.py).

Written in the subset of Python that numba compiles; without numba (or with NUMBA_DISABLE_JIT=1)
the same functions run as plain Python, slowly but identically. Integers are widened with
``np.int64`` before shifting so that uint8 arithmetic never wraps in either mode.
"""
from __future__ import annotations

import numpy as np

try:  # pragma: no cover - exercised by whichever mode the machine has
    from numba import njit
except ImportError:  # pragma: no cover
    def njit(*args, **kwargs):
        if args and callable(args[0]):
            return args[0]
        return lambda f: f

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
@njit(cache=True, nogil=True)
def pcap_count(buf, start, be):
    """Count whole records from ``start``; return (count, stop_offset, stop_reason)."""
    n = buf.shape[0]
    off = start
    count = 0
    while True:
        if off == n:
            return count, off, STOP_END
        if off + 16 > n:
            return count, off, STOP_SHORT_HEADER
        cap = _rd32(buf, off + 8, be)
        if cap > MAX_RECORD:
            return count, off, STOP_HUGE_RECORD
        if off + 16 + cap > n:
            return count, off, STOP_SHORT_DATA
        count += 1
        off += 16 + cap


@njit(cache=True, nogil=True)
def pcap_fill(buf, start, be, count, data_off, ts_sec, ts_frac, caplen, wirelen):
    off = start
    for i in range(count):
        ts_sec[i] = _rd32(buf, off, be)
        ts_frac[i] = _rd32(buf, off + 4, be)
        cap = _rd32(buf, off + 8, be)
        caplen[i] = cap
        wirelen[i] = _rd32(buf, off + 12, be)
        data_off[i] = off + 16
        off += 16 + cap


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
