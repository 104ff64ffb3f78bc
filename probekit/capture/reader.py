"""read_capture: one capture file → the packets table, through the chosen backend."""
from __future__ import annotations

import os
import sys
import warnings

import numpy as np
import pandas as pd

from .. import _io
from .._io import open_bytes
from ..errors import CaptureError, CaptureWarning
from . import _kernels as K
from ._frames import (
    PCAP_HEADER,
    PCAPNG_SHB,
    SHB_INSANE_MAX,
    FrameIndex,
    Interface,
    _index_pcapng,
    index_frames,
    pcap_header,
    pcap_records,
    pcap_stop_error,
    sniff_format,
)
from ._table import decode_frames
from .linktypes import linktype_name

__all__ = ["iter_packet_chunks", "open_bytes", "read_capture"]

BACKENDS = ("fast", "dpkt", "pyshark")
PROGRESS_BYTES = 50 * 1024 * 1024


def read_capture(source, *, backend: str = "fast", strict: bool = False, progress: bool | None = None,
                 decapsulate: bool = True) -> pd.DataFrame:
    """Read a pcap or pcapng capture into the packets table (see ``probekit.schema.PACKETS``).

    source: a path (a regular file or a named pipe) or a binary file object (``sys.stdin.buffer``, an
    open file, a socket's ``makefile("rb")``, ``io.BytesIO``). gzip (also multi-member), bzip2, xz,
    zstd and lz4-frame compression is recognised by content and undone on the fly; streams are read
    front to back without seeking.
    backend: ``"fast"`` (compiled record walk and decoder, the default), ``"dpkt"`` (dpkt objects, the
    reference) or ``"pyshark"`` (real tshark dissection; slow, for cross-checks).
    strict: a capture cut short or corrupt part-way (also in its compressed layer) raises CaptureError
    instead of returning every whole record before the damage with a CaptureWarning.
    progress: show a tqdm bar; default: only for captures over 50 MB when stderr is a terminal.
    decapsulate: open tunnels (VXLAN, GENEVE, GRE/ERSPAN, IP-in-IP, 6in4, Teredo, GTP-U; see
    ``probekit.capture.encaps``) so that the L3/L4 columns describe the innermost IP packet; False
    keeps the outermost headers.

    ``df.attrs`` carries ``path``, ``format``, ``compression``, ``backend``, ``interfaces`` and ``notes``
    (salvage notes), set here alone, the same for every backend. For compressed or streamed input
    ``payload_off`` counts in the decompressed stream; the
    bytes of a stream (stdin, a pipe, a file object) are held while the table lives, so that
    ``df.probekit.payloads()`` works (one copy of the decompressed capture in memory).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    with _io.open_capture_bytes(source, retain=True) as ob:
        if backend != "fast":
            df, idx = _read_other(ob, backend, strict, decapsulate)
            _salvage(idx, _stop_of(idx, ob), ob, strict)
        else:
            buf = ob.buf
            try:
                idx = index_frames(buf, ob.name)
            except CaptureError as e:
                raise _explain(e, ob) from None
            _salvage(idx, _stop_of(idx, ob), ob, strict)
            bar = _progress_bar(buf.shape[0], len(idx), progress)
            try:
                df = decode_frames(buf, idx, bar, decapsulate=decapsulate)
            finally:
                if bar is not None:
                    bar.close()
        ref = ob.ref
    _set_attrs(df, idx, ref, ob.compression, backend)
    return df


def _salvage(idx, stop: CaptureError | None, ob, strict: bool) -> None:
    """A capture cut short: raise (strict) or note and warn that the whole records before it were kept;
    the compressed layer's notes join them. The same for every backend."""
    if stop is not None:
        if strict:
            raise stop
        note = f"salvaged {len(idx)} whole record(s); stopped: {stop}"
        idx.notes.append(note)
        warnings.warn(note, CaptureWarning, stacklevel=3)
    for note in ob.notes:
        idx.notes.append(note)
        warnings.warn(f"{ob.name}: {note}", CaptureWarning, stacklevel=3)


def _set_attrs(df: pd.DataFrame, idx, ref, compression, backend: str) -> None:
    """``df.attrs``, set here alone, the same for every backend."""
    df.attrs.update(
        path=ref,
        format=idx.format,
        compression=compression,
        backend=backend,
        interfaces=[dict(linktype=i.linktype, linktype_name=linktype_name(i.linktype), snaplen=i.snaplen,
                         units_per_s=i.units_per_s, tsoffset_s=i.tsoffset_s, name=i.name, section=i.section)
                    for i in idx.interfaces],
        notes=list(idx.notes),
    )


def _explain(e: CaptureError, ob) -> CaptureError:
    """A container error of compressed input: say that offsets count in the decompressed stream and
    what went wrong in the compressed layer, if anything."""
    if ob.compression is None:
        return e
    if ob.buf.shape[0] == 0 and ob.problem is not None:
        return CaptureError(e.path, None, f"{ob.problem.reason}: no capture bytes could be decompressed")
    reason = e.reason + ob.offset_note
    if ob.problem is not None:
        reason += f"; {ob.problem.reason}"
    return CaptureError(e.path, e.offset, reason)


def _stop_of(idx, ob) -> CaptureError | None:
    """What ended the read early: the container walk's stop, or the compressed layer's problem when the
    decompressed bytes happen to end on a record boundary."""
    if idx.stop is not None:
        return _explain(idx.stop, ob)
    if ob.problem is not None:
        return CaptureError(ob.name, ob.problem.offset, f"{ob.problem.reason}; the decompressed data ends on a "
                                                        f"record boundary after {len(idx)} whole record(s)"
                                                        + ob.offset_note)
    return None


def _read_other(ob, backend, strict, decapsulate=True):
    """(table, frame index) from a reference backend, which reads a plain file by name: other input
    (compressed, a stream) is written decompressed to a temporary file first, so that offsets count in
    the decompressed stream as the fast reader's do."""
    import tempfile

    def run(path):
        if backend == "dpkt":
            from ._dpkt import read_dpkt
            return read_dpkt(path, strict=strict, decapsulate=decapsulate)
        from ._pyshark import read_pyshark
        return read_pyshark(path, decapsulate=decapsulate)
    if ob.kind == "file" and ob.compression is None:
        return run(ob.name)
    with tempfile.NamedTemporaryFile(prefix="probekit-", suffix=".cap") as tmp:
        tmp.write(memoryview(ob.buf))
        tmp.flush()
        return run(tmp.name)


def _progress_bar(nbytes: int, nframes: int, progress):
    if progress is None:
        progress = nbytes > PROGRESS_BYTES and sys.stderr.isatty()
    if not progress:
        return None
    from tqdm import tqdm
    return tqdm(total=nframes, unit="pkt", unit_scale=True, desc="decoding", leave=False)


# ------------------------------------------------------------------------------------------ chunks
def iter_packet_chunks(source, packets_per_chunk: int = 1_000_000, *, strict: bool = False,
                       read_bytes: int = 16 << 20):
    """Read a capture as a sequence of packets tables in bounded memory (huge captures, pipes).

    Each table has at most ``packets_per_chunk`` rows (pcap: exactly that many except the last;
    pcapng: chunks also end where an interface or section block starts) and the columns of
    ``read_capture``, with ``frame`` counting from 1 across the whole capture and ``payload_off`` the
    byte offset in the whole (decompressed) stream — file-absolute for a plain file, so
    ``chunk.probekit.payloads()`` works on every chunk. Memory: the bytes of one chunk's records plus
    one read (``read_bytes``), never the whole capture; the stream is read front to back, never seeked.
    A cut or corrupt capture ends with a CaptureWarning after the last whole record (CaptureError with
    ``strict``), as in read_capture. Each table's ``attrs['chunk']`` is its 0-based index.
    """
    if packets_per_chunk < 1:
        raise ValueError("packets_per_chunk must be at least 1")
    walker = _ChunkWalker(source, packets_per_chunk, strict, read_bytes)
    yield from walker.run()


class _ChunkWalker:
    """The window of bytes not yet turned into rows, walked with the same kernels and checks as
    read_capture; offsets are carried over to the whole stream."""

    def __init__(self, source, limit, strict, read_bytes):
        self.limit = limit
        self.strict = strict
        self.end = _io.StreamEnd()
        self.chunks = _io.iter_stream_chunks(source, read_bytes, self.end)
        self.name = _io.source_name(source)
        self.plain_file = isinstance(source, (str, os.PathLike))
        self.W = b""          # the window
        self.B = 0            # stream offset of W[0]
        self.eof = False
        self.frames = 0       # rows yielded so far
        self.nchunk = 0
        self.interfaces: list[Interface] = []   # every interface so far, numbered over the whole capture

    # --- the window
    def more(self) -> bool:
        """Append the next read to the window; False at the end of the stream."""
        if not self.eof:
            for _off, data in self.chunks:
                self.W = self.W + data if self.W else data
                return True
            self.eof = True
        return False

    def need(self, n) -> bool:
        while len(self.W) < n:
            if not self.more():
                return False
        return True

    def consume(self, k):
        self.W = self.W[k:]
        self.B += k

    # --- shared
    def _ob(self, buf=None):
        return _io.OpenedBytes(np.frombuffer(self.W, np.uint8) if buf is None else buf, self.name, self.name,
                               self.end.compression, "stream", self.end.problem)

    def _explain(self, err: CaptureError) -> CaptureError:
        if self.end.compression is not None:
            while self.more():    # the compressed layer's verdict comes at its end
                pass
            err = _explain(err, self._ob())
        return err

    def _stop(self, err: CaptureError):
        """The capture ends early: raise (strict, or nothing read yet) or warn after the whole records."""
        err = self._explain(err)
        if self.strict or not self.interfaces:
            raise err
        warnings.warn(f"salvaged {self.frames} whole record(s); stopped: {err}", CaptureWarning, stacklevel=4)

    def _boundary_problem(self):
        """The decompressed data ended on a record boundary, but the compressed layer ended badly."""
        if self.end.problem is not None:
            self._stop(CaptureError(self.name, self.B, f"{self.end.problem.reason}; the decompressed data ends on a "
                                                       f"record boundary after {self.frames} whole record(s) (byte "
                                                       f"offsets count in the decompressed {self.end.compression} "
                                                       "stream)"))

    def _table(self, df, fmt, window: bytes, shift: int, iface_base: int = 0):
        """Give a decoded table its place in the whole capture: frame numbers, stream offsets, interfaces."""
        n = len(df)
        df["frame"] = np.arange(self.frames + 1, self.frames + n + 1, dtype=np.int64)
        if shift:
            df["payload_off"] = df["payload_off"] + shift
        if iface_base:
            df["iface"] = df["iface"] + np.int32(iface_base)
        if self.plain_file and self.end.compression is None:
            ref = self.name                       # file offsets: slice the file itself
        else:
            ref = _io.StreamName(self.name, np.frombuffer(window, np.uint8))
            ref.base = shift
        df.attrs.update(path=ref, format=fmt, compression=self.end.compression, chunk=self.nchunk, notes=[],
                        interfaces=[{"linktype": i.linktype, "linktype_name": linktype_name(i.linktype),
                                     "snaplen": i.snaplen, "units_per_s": i.units_per_s,
                                     "tsoffset_s": i.tsoffset_s, "name": i.name, "section": i.section}
                                    for i in self.interfaces])
        self.frames += n
        self.nchunk += 1
        return df

    def run(self):
        self.need(4)
        if len(self.W) < 4 or sniff_format(self.W[:4]) is None:
            buf = np.frombuffer(self.W, np.uint8)
            ob = self._ob(buf)
            if buf.shape[0] == 0 and ob.problem is not None:
                raise _explain(CaptureError(self.name, 0, "empty"), ob)
            try:
                index_frames(buf, self.name)      # the same CaptureError as read_capture's
            except CaptureError as e:
                raise self._explain(e) from None
            return
        if sniff_format(self.W[:4]) == "pcap":
            yield from self._run_pcap()
        else:
            yield from self._run_pcapng()
        for note in self.end.notes:
            warnings.warn(f"{self.name}: {note}", CaptureWarning, stacklevel=3)

    # --- pcap
    def _run_pcap(self):
        self.need(PCAP_HEADER)
        try:
            h = pcap_header(self.W[:PCAP_HEADER], self.name)
        except CaptureError as e:
            raise self._explain(e) from None
        self.interfaces = [Interface(h.linktype, h.snaplen, 10**9 // h.frac_ns)]
        pos = PCAP_HEADER
        while True:
            buf = np.frombuffer(self.W, np.uint8)
            count, stop_off, reason = K.pcap_count(buf, pos, h.be, h.hdrsize, h.swap, self.limit)
            wants_more = reason in (K.STOP_SHORT_HEADER, K.STOP_SHORT_DATA) or (
                reason == K.STOP_END and stop_off == len(self.W))
            if count < self.limit and wants_more and self.more():
                continue
            if count:
                data_off, ts_ns, caplen, wirelen, _s, _r = pcap_records(buf, pos, h, count)
                idx = FrameIndex("pcap", data_off, caplen, wirelen, ts_ns, None, np.zeros(count, np.int32),
                                 self.interfaces)
                yield self._table(decode_frames(buf, idx), "pcap", self.W[:stop_off], self.B)
            self.consume(stop_off)
            pos = 0
            if count == self.limit:
                continue
            if not self.W:
                self._boundary_problem()
                return
            self._stop(pcap_stop_error(np.frombuffer(self.W, np.uint8), self.name, 0, reason, h, self.frames,
                                       base=self.B))
            return

    # --- pcapng
    def _run_pcapng(self):
        """Packet blocks between section and interface blocks are indexed by read_capture's own pcapng walk
        on [the section's SHB and IDBs] + [the blocks], so every check is the same; offsets are shifted."""
        prefix = b""            # the current section's SHB and IDBs
        section_first = 0       # global number of the current section's first interface
        section = -1
        be = False
        while True:
            if not self.need(12):
                if self.W or section == -1:
                    yield from self._region(prefix, len(self.W), section_first)
                else:
                    self._boundary_problem()
                return
            is_shb = self.W[:4] == PCAPNG_SHB
            if is_shb or (section >= 0 and _u32(self.W, 0, be) == 1):
                bbe = (self.W[8:12] == b"\x1a\x2b\x3c\x4d") if is_shb else be
                blen = _u32(self.W, 4, bbe)
                if blen < 12 or blen > SHB_INSANE_MAX or not self.need(blen):
                    # bad or cut: read_capture's walk says exactly what and where
                    yield from self._region(prefix, len(self.W), section_first)
                    return
                new_prefix = self.W[:blen] if is_shb else prefix + self.W[:blen]
                at = 0 if is_shb else len(prefix)
                try:
                    idx = _index_pcapng(np.frombuffer(new_prefix, np.uint8), self.name)
                    err = idx.stop
                except CaptureError as e:
                    err = e
                if err is not None:
                    self._stop(self._shifted(err, at))
                    return
                if is_shb:
                    section += 1
                    section_first = len(self.interfaces)
                    be = bbe
                prefix = new_prefix
                self.interfaces[section_first:] = [Interface(i.linktype, i.snaplen, i.units_per_s, i.tsoffset_s,
                                                             i.name, section) for i in idx.interfaces]
                self.consume(blen)
                continue
            if section == -1:
                raise self._explain(CaptureError(self.name, self.B, "not a pcapng file: it must start with a "
                                                                    "section header block"))
            buf = np.frombuffer(self.W, np.uint8)
            snap0 = self.interfaces[section_first].snaplen if len(self.interfaces) > section_first else 0
            e32 = np.empty(0, np.uint32)
            count, stop_off, reason, _d = K.pcapng_walk(buf, 0, be, snap0, False, 0, np.empty(0, np.int64),
                                                         np.empty(0, np.uint64), e32, e32, np.empty(0, np.int32),
                                                         np.empty(0, np.bool_))
            wants_more = reason in (K.STOP_SHORT_HEADER, K.STOP_SHORT_DATA) or (
                reason == K.STOP_END and stop_off == len(self.W))
            if count < self.limit and wants_more and self.more():
                continue
            short = reason in (K.STOP_SHORT_HEADER, K.STOP_SHORT_DATA)
            broken = reason not in (K.STOP_END, K.STOP_NEEDS_PYTHON) and not (short and not self.eof)
            if broken:      # cut at the end, or corrupt: the walk over all of it reports it
                yield from self._region(prefix, len(self.W), section_first)
                return
            if stop_off:
                ok = yield from self._region(prefix, stop_off, section_first)
                if not ok:
                    return
            self.consume(stop_off)

    def _shifted(self, err: CaptureError, at: int) -> CaptureError:
        """An error of the synthetic buffer [prefix][W...] (W starting at ``at``) in stream offsets."""
        off = None if err.offset is None else self.B + err.offset - at
        return CaptureError(err.path, off, err.reason)

    def _region(self, prefix, end, section_first):
        """Index and decode W[:end] after the section's prefix; yield its tables (at most limit rows each).
        Returns False when the capture stopped there."""
        synth = prefix + self.W[:end]
        buf = np.frombuffer(synth, np.uint8)
        try:
            idx = _index_pcapng(buf, self.name)
        except CaptureError as e:
            err = self._shifted(e, len(prefix))
            if self.interfaces and not e.reason.startswith(_FATAL_PCAPNG):
                # raised only because this section has no interface yet: read_capture, which knows the
                # earlier sections' interfaces, salvages there
                self._stop(err)
                return False
            raise self._explain(err) from None   # what read_capture raises rather than salvages
        n = len(idx)
        n = len(idx)
        if n:
            df = decode_frames(buf, idx)
            shift = self.B - len(prefix)
            for lo in range(0, n, self.limit):
                part = df.iloc[lo:lo + self.limit].reset_index(drop=True)
                yield self._table(part, "pcapng", synth, shift, iface_base=section_first)
        if idx.stop is not None:
            e = idx.stop  # type: ignore[misc]
            self._stop(self._shifted(CaptureError(e.path, e.offset, _recount(e.reason, self.frames - n)),
                                     len(prefix)))
            return False
        return True


_FATAL_PCAPNG = ("packet block names interface", "the capture has a packet block before any interface")


def _recount(reason: str, before: int) -> str:
    """'after N whole packets' of one region → counted over the whole capture."""
    import re
    def fix(m):
        n = int(m.group(1)) + before
        return f"after {n} whole {m.group(2)}{'s' if n != 1 else ''}"
    return re.sub(r"after (\d+) whole (packet|record)s?", fix, reason)


def _u32(b: bytes, off: int, be: bool) -> int:
    return int.from_bytes(b[off:off + 4], "big" if be else "little")
