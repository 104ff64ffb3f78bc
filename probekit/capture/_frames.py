"""Container formats: classic pcap and pcapng → a frame index (where each frame's bytes are, when,
on which interface). Knows nothing about protocols; the decoder takes it from here."""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from ..errors import CaptureError
from . import _kernels as K

__all__ = ["FrameIndex", "Interface", "PcapHeader", "index_frames", "sniff_format", "pcap_header", "pcap_records"]

PCAP_MAGICS = {  # first four bytes → (byte order, ns per timestamp fraction unit, record header bytes)
    b"\xd4\xc3\xb2\xa1": ("<", 1000, 16),  # µs, little endian
    b"\xa1\xb2\xc3\xd4": (">", 1000, 16),  # µs, big endian
    b"\x4d\x3c\xb2\xa1": ("<", 1, 16),     # ns, little endian
    b"\xa1\xb2\x3c\x4d": (">", 1, 16),     # ns, big endian
    b"\x34\xcd\xb2\xa1": ("<", 1000, 24),  # "modified" pcap (0xa1b2cd34, Kuznetsov's patch), little endian
    b"\xa1\xb2\xcd\x34": (">", 1000, 24),  # the same, big endian
}
PCAP_HEADER = 24
DLT_EN10MB = 1
PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
SHB_INSANE_MAX = 1 << 20   # libpcap's BT_SHB_INSANE_MAX
MAX_DEC_RESOL = 19         # 10^-19 s still fits an unsigned 64-bit count per second
MAX_BIN_RESOL = 63


@dataclass
class Interface:
    linktype: int
    snaplen: int
    units_per_s: int = 1_000_000    # if_tsresol as units per second (pcapng default 10^-6)
    tsoffset_s: int = 0
    name: str | None = None
    section: int = 0


@dataclass
class FrameIndex:
    """Where each frame is. Arrays are parallel, one entry per frame in file order."""
    format: str                  # "pcap" or "pcapng"
    data_off: np.ndarray         # int64, byte offset of the frame's first byte in the file
    caplen: np.ndarray           # uint32
    wirelen: np.ndarray          # uint32
    ts_ns: np.ndarray            # int64
    has_ts: np.ndarray | None    # bool or None (all present)
    iface: np.ndarray            # int32, index into interfaces
    interfaces: list[Interface]
    notes: list[str] = field(default_factory=list)      # salvage notes (warnings)
    stop: CaptureError | None = None                    # what ended a salvaged read early

    def __len__(self) -> int:
        return int(self.data_off.shape[0])


def sniff_format(head: bytes) -> str | None:
    if head[:4] in PCAP_MAGICS:
        return "pcap"
    if head[:4] == PCAPNG_SHB:
        return "pcapng"
    return None


def index_frames(buf: np.ndarray, path: str) -> FrameIndex:
    """Index every whole frame of the capture in ``buf`` (the file's bytes)."""
    n = buf.shape[0]
    if n == 0:
        raise CaptureError(path, 0, "empty file (0 bytes): not a pcap or pcapng capture")
    head = bytes(buf[:4])
    fmt = sniff_format(head)
    if fmt == "pcap":
        return _index_pcap(buf, path)
    if fmt == "pcapng":
        return _index_pcapng(buf, path)
    if n < 4:
        raise CaptureError(path, 0, f"file too short ({n} bytes) to be a pcap or pcapng capture")
    raise CaptureError(path, 0, f"not a pcap or pcapng capture (first bytes {head.hex(' ')}; "
                                "pcap starts a1b2c3d4/a1b23c4d/a1b2cd34 in either byte order, pcapng 0a0d0d0a)")


# --------------------------------------------------------------------------------------- pcap
@dataclass
class PcapHeader:
    """A classic pcap file header, read as libpcap's sf-pcap.c reads it."""
    be: bool
    frac_ns: int          # ns per unit of the record's fraction field (1000 for µs, 1 for ns)
    hdrsize: int          # record header bytes: 16, or 24 for the modified (0xa1b2cd34) format
    swap: int             # K.LEN_NOT_SWAPPED / LEN_SWAPPED / LEN_MAYBE_SWAPPED
    version: tuple
    linktype: int
    snaplen: int


def pcap_header(head: bytes, path) -> PcapHeader:
    """Parse the 24-byte pcap file header as libpcap does (pcap_check_header): versions 2.0 to 2.4 and
    DG/UX's 543.0; caplen and len in the pre-2.3 order for versions before 2.3 and for 543.0, and for
    2.3 only where the first field exceeds the second (some 2.3 writers kept the old order)."""
    order, frac_ns, hdrsize = PCAP_MAGICS[head[:4]]
    if len(head) < PCAP_HEADER:
        raise CaptureError(path, 0, f"truncated pcap file header: needs {PCAP_HEADER} bytes, the file has "
                                    f"{len(head)}")
    major, minor, _zone, _sigfigs, snaplen, lt_field = struct.unpack(order + "HHiIII", head[4:24])
    if not ((major == 2 and minor <= 4) or (major, minor) == (543, 0)):
        raise CaptureError(path, 4, f"unsupported pcap file version {major}.{minor} (libpcap reads 2.0 to 2.4 "
                                    "and 543.0)")
    if lt_field & 0x03FF0000:
        raise CaptureError(path, 20, f"link-type field has reserved bits set (0x{lt_field:08x}); "
                                     "the file header is corrupt")
    if major == 543 or minor < 3:
        swap = K.LEN_SWAPPED
    elif minor == 3:
        swap = K.LEN_MAYBE_SWAPPED
    else:
        swap = K.LEN_NOT_SWAPPED
    linktype = lt_field & 0xFFFF
    if hdrsize == 24 and linktype == DLT_EN10MB:
        snaplen = min(snaplen + 14, 2**31 - 1)   # libpcap: may be a cooked capture with a faked header
    return PcapHeader(order == ">", frac_ns, hdrsize, swap, (major, minor), linktype, snaplen)


def pcap_records(buf, start: int, h: PcapHeader, limit: int = -1):
    """Walk whole records of ``buf`` from ``start``: (data_off, ts_ns, caplen, wirelen, stop_off, reason).

    One walk (K.pcap_walk) into arrays sized for the most records the bytes can hold (every record has
    at least its header), then shrunk to the records found."""
    room = max(0, (buf.shape[0] - start) // h.hdrsize)
    if limit >= 0:
        room = min(room, limit)
    data_off = np.empty(room, np.int64)
    ts_ns = np.empty(room, np.int64)
    caplen = np.empty(room, np.uint32)
    wirelen = np.empty(room, np.uint32)
    count, stop_off, reason = K.pcap_walk(buf, start, h.be, h.hdrsize, h.swap, limit, h.frac_ns, data_off, ts_ns,
                                          caplen, wirelen)
    out = (data_off, ts_ns, caplen, wirelen)
    for a in out:      # shrink in place (realloc: the unused tail is given back, nothing is copied)
        a.resize(count, refcheck=False)
    return data_off, ts_ns, caplen, wirelen, stop_off, reason


def _index_pcap(buf, path) -> FrameIndex:
    h = pcap_header(bytes(buf[:PCAP_HEADER]), path)
    data_off, ts_ns, caplen, wirelen, stop_off, reason = pcap_records(buf, PCAP_HEADER, h)
    count = len(data_off)
    idx = FrameIndex("pcap", data_off, caplen, wirelen, ts_ns, None,
                     np.zeros(count, np.int32), [Interface(h.linktype, h.snaplen, 10**9 // h.frac_ns)])
    if reason != K.STOP_END:
        idx.stop = pcap_stop_error(buf, path, stop_off, reason, h, count)
    return idx


def pcap_stop_error(buf, path, off, reason, h: PcapHeader, count, base: int = 0) -> CaptureError:
    """Why the record walk stopped at ``off`` of ``buf`` (``base``: buf's offset in the stream)."""
    n = buf.shape[0]
    after = f"after {count} whole record{'s' if count != 1 else ''}"
    hs = h.hdrsize
    if reason == K.STOP_SHORT_HEADER:
        return CaptureError(path, base + off, f"file ends inside a record header ({n - off} of {hs} bytes) "
                                              f"{after}")
    a, b = struct.unpack((">" if h.be else "<") + "II", bytes(buf[off + 8:off + 16]))
    cap = b if h.swap == K.LEN_SWAPPED or (h.swap == K.LEN_MAYBE_SWAPPED and a > b) else a
    if reason == K.STOP_HUGE_RECORD:
        return CaptureError(path, base + off, f"record claims {cap} captured bytes (over {K.MAX_RECORD}); "
                                              f"the file is corrupt from here, {after}")
    return CaptureError(path, base + off, f"file ends inside a record: header promises {cap} bytes, "
                                          f"{n - off - hs} remain, {after}")


# ------------------------------------------------------------------------------------- pcapng
def _index_pcapng(buf, path) -> FrameIndex:
    n = buf.shape[0]
    interfaces: list[Interface] = []
    segments = []          # (start, be, snap0, iface_base, count)
    total = 0
    off = 0
    be = False
    section = -1
    section_base = 0       # index of the current section's first interface in `interfaces`
    stop: CaptureError | None = None
    while off < n:
        if off + 12 > n and section == -1:
            raise CaptureError(path, off, f"truncated pcapng file: the section header block needs "
                                          f"at least 28 bytes, the file has {n - off}")
        btype_raw = bytes(buf[off:off + 4])
        if n - off < 12 and section >= 0:  # too short for any block header: salvage what came before
            err = _pcapng_stop_error(buf, path, off, K.STOP_SHORT_HEADER, n - off, be, total)
            if not interfaces:
                raise err
            stop = err
            break
        if btype_raw == PCAPNG_SHB:
            try:
                be = _read_shb(buf, path, off)
            except CaptureError as e:
                if section == -1:
                    raise
                stop = e
                break
            blen = _u32(buf, off + 4, be)
            section += 1
            section_base = len(interfaces)
            off += blen
            continue
        if section == -1:
            raise CaptureError(path, off, "not a pcapng file: it must start with a section header block")
        btype = _u32(buf, off, be)
        if btype == 1:
            try:
                interfaces.append(_read_idb(buf, path, off, be, section))
            except CaptureError as e:
                if not interfaces:
                    raise
                stop = e
                break
            off += _u32(buf, off + 4, be)
            continue
        snap0 = interfaces[section_base].snaplen if len(interfaces) > section_base else 0
        count, stop_off, reason, detail = K.pcapng_walk(  # counting pass: the output arrays are unused
            buf, off, be, snap0, False, 0, np.empty(0, np.int64), np.empty(0, np.uint64), np.empty(0, np.uint32),
            np.empty(0, np.uint32), np.empty(0, np.int32), np.empty(0, np.bool_))
        if count:
            if len(interfaces) == section_base:
                raise CaptureError(path, off, "the capture has a packet block before any interface "
                                              "description block")
            segments.append((off, be, snap0, section_base, count, len(interfaces) - section_base))
            total += count
        off = stop_off
        if reason == K.STOP_END or reason == K.STOP_NEEDS_PYTHON:
            continue
        err = _pcapng_stop_error(buf, path, stop_off, reason, detail, be, total)
        if not interfaces:  # broken before any interface: not a readable capture at all
            raise err
        stop = err
        break
    data_off = np.empty(total, np.int64)
    ts_raw = np.empty(total, np.uint64)
    caplen = np.empty(total, np.uint32)
    wirelen = np.empty(total, np.uint32)
    iface = np.empty(total, np.int32)
    has_ts = np.empty(total, np.bool_)
    base = 0
    for start, sbe, snap0, ibase, count, nif in segments:
        K.pcapng_walk(buf, start, sbe, snap0, True, base, data_off, ts_raw, caplen, wirelen, iface, has_ts)
        # as libpcap: a packet may name only an interface whose IDB came before it in its section
        local = iface[base:base + count]
        bad = np.flatnonzero((local < 0) | (local >= nif))
        if bad.size:
            j = base + int(bad[0])
            raise CaptureError(path, int(data_off[j]) - 28, f"packet block names interface {int(iface[j])}, "
                                                             f"but its section has {nif} interface(s) before it")
        local += ibase
        base += count
    ts_ns = _scale_timestamps(ts_raw, iface, interfaces)
    idx = FrameIndex("pcapng", data_off, caplen, wirelen, ts_ns,
                     None if has_ts.all() else has_ts, iface, interfaces)
    idx.stop = stop
    if not interfaces:
        idx.notes.append("no interface description block: the capture holds no packets")
    return idx


def _u32(buf, off, be) -> int:
    return struct.unpack(">I" if be else "<I", bytes(buf[off:off + 4]))[0]


def _read_shb(buf, path, off) -> bool:
    n = buf.shape[0]
    if off + 28 > n:
        raise CaptureError(path, off, f"truncated pcapng file: the section header block needs 28 bytes, "
                                      f"{n - off} remain")
    magic = bytes(buf[off + 8:off + 12])
    if magic == b"\x1a\x2b\x3c\x4d":
        be = True
    elif magic == b"\x4d\x3c\x2b\x1a":
        be = False
    else:
        raise CaptureError(path, off + 8, f"section header block has a bad byte-order magic {magic.hex()}")
    blen = _u32(buf, off + 4, be)
    if blen < 28 or blen > SHB_INSANE_MAX:
        raise CaptureError(path, off + 4, f"section header block has an invalid length {blen} "
                                          f"(28 to {SHB_INSANE_MAX} allowed)")
    if blen % 4:
        raise CaptureError(path, off + 4, f"block length {blen} is not a multiple of 4")
    major, minor = struct.unpack(">HH" if be else "<HH", bytes(buf[off + 12:off + 16]))
    if (major, minor) not in ((1, 0), (1, 2)):
        raise CaptureError(path, off + 12, f"unsupported pcapng version {major}.{minor} (1.0 expected)")
    if off + blen > n:
        raise CaptureError(path, off, f"file ends inside the section header block ({blen} bytes "
                                      f"promised, {n - off} remain)")
    trailer = _u32(buf, off + blen - 4, be)
    if trailer != blen:
        raise CaptureError(path, off + blen - 4, f"block total length in header {blen} and trailer "
                                                 f"{trailer} don't match")
    _options(buf, path, off + 24, off + blen - 4, be, "section header block")
    return be


def _read_idb(buf, path, off, be, section) -> Interface:
    n = buf.shape[0]
    if off + 12 > n:
        raise CaptureError(path, off, "file ends inside an interface description block header")
    blen = _u32(buf, off + 4, be)
    if blen < 12:
        raise CaptureError(path, off + 4, f"block has a length of {blen} < 12")
    if blen % 4:
        raise CaptureError(path, off + 4, f"block has a length of {blen} that is not a multiple of 4")
    if blen < 20:
        raise CaptureError(path, off + 4, f"interface description block has a length of {blen} < 20")
    if off + blen > n:
        raise CaptureError(path, off, f"file ends inside an interface description block ({blen} bytes "
                                      f"promised, {n - off} remain)")
    trailer = _u32(buf, off + blen - 4, be)
    if trailer != blen:
        raise CaptureError(path, off + blen - 4, f"block total length in header {blen} and trailer "
                                                 f"{trailer} don't match")
    linktype, _res, snaplen = struct.unpack(">HHI" if be else "<HHI", bytes(buf[off + 8:off + 16]))
    iface = Interface(linktype, snaplen, section=section)
    seen = set()
    for code, ooff, val in _options(buf, path, off + 16, off + blen - 4, be, "interface description block"):
        if code in (9, 14):
            if code in seen:
                name = "if_tsresol" if code == 9 else "if_tsoffset"
                raise CaptureError(path, ooff, f"interface description block has more than one {name} option")
            seen.add(code)
        if code == 9:
            if len(val) != 1:
                raise CaptureError(path, ooff, f"if_tsresol option has length {len(val)}, 1 expected")
            r = val[0]
            if r & 0x80:
                if (r & 0x7F) > MAX_BIN_RESOL:
                    raise CaptureError(path, ooff, f"if_tsresol resolution 2^-{r & 0x7F} is too high "
                                                   f"(at most 2^-{MAX_BIN_RESOL})")
                iface.units_per_s = 1 << (r & 0x7F)
            else:
                if r > MAX_DEC_RESOL:
                    raise CaptureError(path, ooff, f"if_tsresol resolution 10^-{r} is too high "
                                                   f"(at most 10^-{MAX_DEC_RESOL})")
                iface.units_per_s = 10 ** r
        elif code == 14:
            if len(val) != 8:
                raise CaptureError(path, ooff, f"if_tsoffset option has length {len(val)}, 8 expected")
            iface.tsoffset_s = struct.unpack(">q" if be else "<q", val)[0]
        elif code == 2:
            iface.name = val.split(b"\0", 1)[0].decode("utf-8", "replace")
    return iface


def _options(buf, path, start, end, be, what):
    """Yield (code, offset, value) of a block's options; check lengths like libpcap does."""
    off = start
    fmt = ">HH" if be else "<HH"
    while off + 4 <= end:
        code, length = struct.unpack(fmt, bytes(buf[off:off + 4]))
        if code == 0:
            if length != 0:
                raise CaptureError(path, off, f"{what} has an opt_endofopt option with length {length} != 0")
            return
        if off + 4 + length > end:
            raise CaptureError(path, off, f"{what} option {code} of length {length} runs past the end "
                                          "of its block")
        yield code, off, bytes(buf[off + 4:off + 4 + length])
        off += 4 + ((length + 3) & ~3)


def _pcapng_stop_error(buf, path, off, reason, detail, be, total) -> CaptureError:
    n = buf.shape[0]
    after = f"after {total} whole packet{'s' if total != 1 else ''}"
    if reason == K.STOP_SHORT_HEADER:
        return CaptureError(path, off, f"file ends inside a block header ({n - off} of 12 bytes), {after}")
    if reason == K.STOP_SHORT_DATA:
        return CaptureError(path, off, f"file ends inside a block: it promises {detail} bytes, "
                                       f"{n - off} remain, {after}")
    if reason == K.STOP_BAD_LENGTH:
        if detail == -1:
            blen = _u32(buf, off + 4, be)
            trailer = _u32(buf, off + blen - 4, be)
            return CaptureError(path, off, f"block total length in header {blen} and trailer {trailer} "
                                           f"don't match, {after}")
        if detail < 12:
            return CaptureError(path, off, f"block has a length of {detail} < 12, {after}")
        return CaptureError(path, off, f"block has a length of {detail} that is not a multiple of 4, {after}")
    return CaptureError(path, off, f"packet block's captured length {detail} does not fit the block, {after}")


def _scale_timestamps(ts_raw: np.ndarray, iface: np.ndarray, interfaces: list[Interface]) -> np.ndarray:
    """Raw pcapng timestamps (units of each interface's if_tsresol) → exact int64 ns since the epoch."""
    out = np.zeros(ts_raw.shape[0], np.int64)
    if not interfaces or ts_raw.shape[0] == 0:
        return out
    groups: dict[tuple, list[int]] = {}
    for i, itf in enumerate(interfaces):
        groups.setdefault((itf.units_per_s, itf.tsoffset_s), []).append(i)
    for (units, offset_s), members in groups.items():
        sel = np.isin(iface, members) if len(groups) > 1 else slice(None)
        raw = ts_raw[sel]
        if units <= 10**9 and 10**9 % units == 0:
            ns = raw.astype(np.int64) * (10**9 // units)
        elif units % 10**9 == 0 and units // 10**9 < 2**63:
            ns = (raw // np.uint64(units // 10**9)).astype(np.int64)
        else:  # binary or odd resolutions: exact integer arithmetic, one Python int per packet
            ns = np.array([(int(v) * 10**9) // units for v in raw], dtype=np.int64)
        out[sel] = ns + offset_s * 10**9
    return out
