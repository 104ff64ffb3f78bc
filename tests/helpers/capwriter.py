"""Hand-rolled capture files for format tests: every field packed explicitly with struct, independent
of probekit's own writers, so the reader is checked against bytes whose meaning is known."""
from __future__ import annotations

import struct


def pcap(frames, linktype=1, *, big=False, nano=False, snaplen=65535, version=(2, 4)) -> bytes:
    """frames: iterable of (ts_sec, ts_frac, data[, wirelen])."""
    e = ">" if big else "<"
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(e + "IHHiIII", magic, version[0], version[1], 0, 0, snaplen, linktype)]
    for f in frames:
        sec, frac, data = f[:3]
        wl = f[3] if len(f) > 3 else len(data)
        out.append(struct.pack(e + "IIII", sec, frac, len(data), wl) + data)
    return b"".join(out)


def _opt(e, code, value: bytes) -> bytes:
    pad = (-len(value)) % 4
    return struct.pack(e + "HH", code, len(value)) + value + b"\0" * pad


def _block(e, btype, body: bytes) -> bytes:
    body += b"\0" * ((-len(body)) % 4)
    n = len(body) + 12
    return struct.pack(e + "II", btype, n) + body + struct.pack(e + "I", n)


def shb(big=False, options=b"") -> bytes:
    e = ">" if big else "<"
    return _block(e, 0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1) + options)


def idb(linktype, big=False, snaplen=0, tsresol=None, tsoffset=None, name=None) -> bytes:
    e = ">" if big else "<"
    opts = b""
    if name is not None:
        opts += _opt(e, 2, name.encode())
    if tsresol is not None:
        opts += _opt(e, 9, bytes([tsresol]))
    if tsoffset is not None:
        opts += _opt(e, 14, struct.pack(e + "q", tsoffset))
    if opts:
        opts += struct.pack(e + "HH", 0, 0)
    return _block(e, 1, struct.pack(e + "HHI", linktype, 0, snaplen) + opts)


def epb(iface, ts_units, data, big=False, wirelen=None, comment=None) -> bytes:
    e = ">" if big else "<"
    opts = b""
    if comment:
        opts = _opt(e, 1, comment.encode()) + struct.pack(e + "HH", 0, 0)
    body = struct.pack(e + "IIIII", iface, ts_units >> 32, ts_units & 0xFFFFFFFF, len(data),
                       len(data) if wirelen is None else wirelen)
    return _block(e, 6, body + data + b"\0" * ((-len(data)) % 4) + opts)


def opb(iface, ts_units, data, big=False) -> bytes:
    """Obsolete Packet Block (type 2): 16-bit interface id, 16-bit drops count."""
    e = ">" if big else "<"
    body = struct.pack(e + "HHIIII", iface, 0, ts_units >> 32, ts_units & 0xFFFFFFFF, len(data), len(data))
    return _block(e, 2, body + data)


def spb(data, big=False, wirelen=None) -> bytes:
    e = ">" if big else "<"
    return _block(e, 3, struct.pack(e + "I", len(data) if wirelen is None else wirelen) + data)


def isb(iface, big=False) -> bytes:
    e = ">" if big else "<"
    return _block(e, 5, struct.pack(e + "III", iface, 0, 0))
