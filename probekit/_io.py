"""Capture bytes from wherever they are: a path, a named pipe, stdin or a file object, plain or
compressed (gzip incl. multi-member, bzip2, xz, zstd, lz4 frame), recognised by content, never by name.

Foundation layer: knows nothing about pcap or pcapng. What it gives the reader:

- :func:`open_capture_bytes` — the whole (decompressed) byte stream as a read-only ``uint8`` array:
  a memory map of a plain regular file (no copy), otherwise the stream read front to back in chunks
  (never a seek) and decompressed into a growable anonymous memory map (``mremap`` grows it without
  copying). Problems of the compressed layer (corrupt data, a stream cut short) come back as a
  :class:`StreamProblem` beside the bytes decoded before them, so the container walk can salvage
  every whole record.
- :func:`iter_stream_chunks` — the same byte stream as a sequence of chunks, in bounded memory, for
  chunked readers of huge captures.
- :class:`StreamName` — the name of a source that cannot be opened again (stdin, a pipe, a file
  object): a ``str`` (so it prints, compares and serialises as the name) that also holds the bytes,
  so that payload slicing of a table read from a pipe still works while the table lives.
- :func:`capture_bytes` — the bytes again for payload slicing: the held bytes of a stream, the memory
  map of a plain file (the reader's own, kept for files up to ``KEEP_MAPPED_BYTES``: mapping a file
  again costs its page faults again), or a fresh decompression of a compressed file (only up to the
  last byte asked for).
"""
from __future__ import annotations

import bz2
import io
import lzma
import mmap
import os
import stat
import sys
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from .errors import CaptureError

__all__ = ["open_bytes", "COMPRESSIONS", "READ_CHUNK", "OpenedBytes", "StreamEnd", "StreamName", "StreamProblem", "capture_bytes",
           "iter_stream_chunks", "open_capture_bytes", "sniff_compression", "source_name"]

READ_CHUNK = 1 << 20            # raw bytes per read() of a stream
OUT_CHUNK = 8 << 20             # at most this many decompressed bytes per decompress() call
ZSTD_FEED = 1 << 16             # zstd's decompressobj has no max_length: feed it small pieces
COMPRESSED_READ = 1 << 16       # compressed bytes per feed: output before a corrupt spot is delivered

# magic numbers, as the formats' specifications give them
COMPRESSIONS = {
    "gzip": b"\x1f\x8b",                 # RFC 1952
    "bzip2": b"BZh",                     # bzip2 stream header
    "xz": b"\xfd7zXZ\x00",               # xz file format 1.0.4, stream header
    "zstd": b"\x28\xb5\x2f\xfd",         # RFC 8878 frame magic 0xFD2FB528 (little endian)
    "lz4": b"\x04\x22\x4d\x18",          # LZ4 frame format, magic 0x184D2204 (little endian)
}
SNIFF_BYTES = 6


def sniff_compression(head: bytes) -> str | None:
    """The compression whose magic ``head`` starts with, or None (plain or unknown bytes)."""
    for kind, magic in COMPRESSIONS.items():
        if head.startswith(magic):
            if kind == "bzip2" and not (len(head) > 3 and 0x31 <= head[3] <= 0x39):  # BZh1..BZh9
                continue
            return kind
    return None


class StreamName(str):
    """The name of a capture source that cannot be re-opened (``<stdin>``, a pipe, a file object),
    carrying the source's (decompressed) bytes in ``.buffer`` for payload slicing.

    It is a ``str`` so tables keep a plain, printable, JSON- and Parquet-safe ``attrs['path']``; copies
    of a table share the one buffer (``copy.deepcopy`` returns the same object); pickling drops the
    bytes (an unpickled table can no longer slice payloads of a pipe)."""

    buffer: np.ndarray | None
    base: int = 0        # stream offset of buffer[0] (a chunk of a stream holds only its own bytes)

    def __new__(cls, name: str, buffer: np.ndarray | None = None):
        s = super().__new__(cls, name)
        s.buffer = buffer
        return s

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def __reduce__(self):
        return (StreamName, (str(self),))


@dataclass
class StreamProblem:
    """What ended a compressed stream early: ``reason`` in words, ``compressed_offset`` (raw byte
    offset where it was noticed) and ``offset`` (bytes of decompressed data delivered before it)."""
    reason: str
    compressed_offset: int
    offset: int
    harmless: bool = False      # only trailing bytes were ignored; every record is there


@dataclass
class OpenedBytes:
    """A capture source's bytes and how they were got."""
    buf: np.ndarray                     # uint8, the whole (decompressed) stream
    name: str                           # for messages: the path, or <stdin> / the file object's name
    ref: str                            # what a table's attrs['path'] holds: the path, or a StreamName
    compression: str | None             # None for plain bytes
    kind: str                           # "file", "pipe", "stdin", "fileobj"
    problem: StreamProblem | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def offset_note(self) -> str:
        """What byte offsets in messages count: empty for plain input."""
        if self.compression is None:
            return ""
        return f" (byte offsets count in the decompressed {self.compression} stream)"


# ------------------------------------------------------------------------------------- sources
def source_name(source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    stdin = getattr(sys, "stdin", None)
    if stdin is not None and source is getattr(stdin, "buffer", None):
        return "<stdin>"
    name = getattr(source, "name", None)
    if isinstance(name, str) and name:
        return "<stdin>" if name == "<stdin>" else name
    return f"<{type(source).__name__}>"


def _open_path(path: str):
    """(open binary file, kind) for a path; CaptureError for what cannot be read."""
    if os.path.isdir(path):
        raise CaptureError(path, None, "is a directory, not a capture file")
    try:
        f = open(path, "rb", buffering=0)
    except FileNotFoundError:
        raise CaptureError(path, None, "no such file") from None
    except PermissionError:
        raise CaptureError(path, None, "permission denied") from None
    except OSError as e:
        raise CaptureError(path, None, f"cannot open: {e.strerror or e}") from None
    mode = os.fstat(f.fileno()).st_mode
    return f, ("file" if stat.S_ISREG(mode) else "pipe")


def _read_fn(f, name):
    """A read(n) for a file object that turns OS errors into CaptureError."""
    read = getattr(f, "read1", None) or f.read

    def rd(n):
        try:
            b = read(n)
        except OSError as e:
            raise CaptureError(name, None, f"cannot read: {e.strerror or e}") from None
        if b is None:  # non-blocking stream with nothing ready: wait by reading again, blocking
            b = f.read(n)
        if not isinstance(b, (bytes, bytearray, memoryview)):
            raise CaptureError(name, None, f"file object returned {type(b).__name__}, not bytes: open it in "
                                           "binary mode ('rb')")
        return bytes(b)
    return rd


class _Head:
    """Reads the first bytes of a stream to sniff it, then hands them back before the rest."""

    def __init__(self, rd):
        self._rd = rd
        self._pending = b""
        while len(self._pending) < SNIFF_BYTES:
            b = rd(SNIFF_BYTES - len(self._pending))
            if not b:
                break
            self._pending += b
        self.head = self._pending

    def read(self, n):
        if self._pending:
            b, self._pending = self._pending, b""
            return b
        return self._rd(n)


# -------------------------------------------------------------------------------- decompression
class _Corrupt(Exception):
    pass


_CORRUPT = (zlib.error, OSError, EOFError, lzma.LZMAError, RuntimeError, ValueError)


class _Decompressor:
    """One compressed stream of one or more members/frames (``cat a.gz b.gz``, ``tcpdump -z``) →
    decompressed chunks of at most OUT_CHUNK bytes each."""

    def __init__(self, kind: str):
        self.kind = kind
        self.magic = COMPRESSIONS[kind]
        self.members = 0            # finished members
        self.fed = 0                # compressed bytes fed so far
        self.consumed = 0           # compressed bytes of finished members
        self.d = None               # the current member's decompressor
        self.member_fed = 0
        self.trailing: bytes | None = None  # bytes after the last member that start no other member

    def _new(self):
        k = self.kind
        if k == "gzip":
            return zlib.decompressobj(31)     # gzip wrapper only; checks CRC-32 and ISIZE
        if k == "bzip2":
            return bz2.BZ2Decompressor()
        if k == "xz":
            return lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
        if k == "zstd":
            import zstandard
            return zstandard.ZstdDecompressor().decompressobj()
        import lz4.frame
        return lz4.frame.LZ4FrameDecompressor()

    def feed(self, data: bytes):
        """Yield the decompressed chunks of ``data``; raise _Corrupt on bad data."""
        self.fed += len(data)
        while data:
            if self.trailing is not None:
                self.trailing += data
                return
            if self.d is None:
                m = self.magic[:len(data)]
                if self.members and data[:len(m)] != m:
                    self.trailing = data
                    return
                self.d = self._new()
                self.member_fed = 0
            try:
                rest = yield from self._member(data)
            except _CORRUPT as e:
                raise _Corrupt(str(e) or type(e).__name__) from None
            except Exception as e:  # zstandard.ZstdError, lz4's errors
                if type(e).__module__.split(".")[0] in ("zstandard", "lz4", "_lz4"):
                    raise _Corrupt(str(e) or type(e).__name__) from None
                raise
            if rest is None:        # the member goes on in the next input
                self.member_fed += len(data)
                return
            self.member_fed += len(data) - len(rest)
            self.members += 1
            self.consumed = self.fed - len(rest)
            self.d = None
            data = rest

    def _member(self, data):
        """Feed ``data`` to the current member; return the bytes after its end, or None if it goes on."""
        d = self.d
        if self.kind == "gzip":
            while True:
                out = d.decompress(data, OUT_CHUNK)
                if out:
                    yield out
                if d.eof:
                    return d.unused_data or b""
                data = d.unconsumed_tail
                if not data and len(out) < OUT_CHUNK:
                    return None
        if self.kind == "zstd":   # no max_length: small pieces bound each output
            for i in range(0, len(data), ZSTD_FEED):
                out = d.decompress(data[i:i + ZSTD_FEED])
                if out:
                    yield out
                if d.eof:
                    return (d.unused_data or b"") + data[i + ZSTD_FEED:]
            return None
        out = d.decompress(data, OUT_CHUNK)   # bz2, lzma, lz4: max_length / needs_input protocol
        if out:
            yield out
        while not d.eof and not d.needs_input:
            out = d.decompress(b"", OUT_CHUNK)
            if out:
                yield out
        return (d.unused_data or b"") if d.eof else None

    def finish(self) -> str | None:
        """After the last input: what is wrong with the stream's end, or None."""
        what = {"gzip": "member", "zstd": "frame", "lz4": "frame"}.get(self.kind, "stream")
        if self.d is not None and self.member_fed:
            return (f"the {self.kind} data is cut short: {what} {self.members + 1} has no end (the compressed "
                    f"data stops at byte {self.fed}, before its end-of-{what} marker)")
        if self.members == 0:
            return f"the {self.kind} data holds no complete {what}"
        return None


def _decompressed_chunks(read, kind: str, problems: list):
    """Yield the decompressed chunks of the raw stream ``read``; append StreamProblems to ``problems``
    when it ends badly (``harmless`` ones only ignore trailing bytes)."""
    dec = _Decompressor(kind)
    raw_off = 0
    out_off = 0
    while True:
        data = read(COMPRESSED_READ)
        if not data:
            break
        try:
            for out in dec.feed(data):
                out_off += len(out)
                yield out
        except _Corrupt as e:
            why = f"the {kind} data is corrupt ({e}) within compressed bytes {raw_off}-{raw_off + len(data)}, " \
                  f"after {out_off} decompressed bytes"
            if "check" in str(e):   # zlib's CRC-32/ISIZE (or xz's, zstd's) check of a whole member failed
                why += " (a checksum over the whole member failed: the records read may be damaged too)"
            problems.append(StreamProblem(why, raw_off, out_off))
            return
        raw_off += len(data)
    why = dec.finish()
    if why is not None:
        problems.append(StreamProblem(why + f", after {out_off} decompressed bytes", raw_off, out_off))
    elif dec.trailing is not None and dec.trailing.strip(b"\0"):
        problems.append(StreamProblem(
            f"{len(dec.trailing)} bytes after the last {kind} member (from compressed byte {dec.consumed}) are "
            f"not {kind} data: ignored", dec.consumed, out_off, harmless=True))


# ---------------------------------------------------------------------------------- buffers
class _Grow:
    """An anonymous memory map that grows by mremap (no copy of what it holds)."""

    def __init__(self, size=1 << 16):
        # private: a shared anonymous map is a fixed-size shmem object, and growing it by mremap would
        # leave the new pages without backing (SIGBUS)
        self.mm = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        self.n = 0

    def room(self, k):
        need = self.n + k
        if need > len(self.mm):
            new = len(self.mm)
            while new < need:
                new *= 2
            self.mm.resize(new)

    def write(self, b):
        k = len(b)
        if not k:
            return
        self.room(k)
        self.mm[self.n:self.n + k] = b
        self.n += k

    def array(self) -> np.ndarray:
        if self.n == 0:
            self.mm.close()
            return np.zeros(0, np.uint8)
        return np.frombuffer(self.mm, np.uint8, count=self.n)


# ------------------------------------------------------------------------------------ opening
@contextmanager
def open_capture_bytes(source, *, retain: bool = False):
    """The whole byte stream of ``source`` (path, pipe path, or binary file object), decompressed if it
    is compressed, as an :class:`OpenedBytes`. ``retain``: a stream's bytes are kept for the table's
    lifetime (its ``ref`` is a :class:`StreamName` holding them); plain files are always re-openable."""
    name = source_name(source)
    if isinstance(source, (str, os.PathLike)):
        f, kind = _open_path(name)
        own = True
    else:
        if not hasattr(source, "read"):
            raise TypeError(f"a capture source is a path or a binary file object, not {type(source).__name__}")
        f, kind, own = source, ("stdin" if name == "<stdin>" else "fileobj"), False
    try:
        rd = _read_fn(f, name)
        if kind == "file":
            size = os.fstat(f.fileno()).st_size
            head = os.pread(f.fileno(), SNIFF_BYTES, 0) if size else b""
            comp = sniff_compression(head)
            if comp is None:
                # a read maps the file anew (reading is opening), and keeps the map for the table's
                # analyses (capture_bytes)
                with _mmap_file(f, size, keep=True) as arr:
                    yield OpenedBytes(arr, name, name, None, kind)
                return
            src = _Head(rd)
        else:
            src = _Head(rd)
            comp = sniff_compression(src.head)
        grow = _Grow()
        problems: list[StreamProblem] = []
        if comp is None:
            _copy_plain(src, grow, f)
        else:
            for out in _decompressed_chunks(src.read, comp, problems):
                grow.write(out)
        arr = grow.array()
        ref = name if kind == "file" else StreamName(name, arr if retain else None)
        ob = OpenedBytes(arr, name, ref, comp, kind)
        for p in problems:
            if p.harmless:
                ob.notes.append(p.reason)
            else:
                ob.problem = p
        yield ob
    finally:
        if own:
            f.close()


def _copy_plain(src: _Head, grow: _Grow, f=None) -> None:
    """Copy a plain stream into the buffer: straight into the map with readinto where the file object
    has it (one copy, no bytes objects), else chunk by chunk."""
    grow.write(src.read(SNIFF_BYTES))   # the sniffed head first
    readinto = getattr(f, "readinto", None)
    if readinto is not None:
        try:
            while True:
                grow.room(READ_CHUNK)
                with memoryview(grow.mm) as mv:
                    got = readinto(mv[grow.n:grow.n + READ_CHUNK])
                if not got:
                    return
                grow.n += got
        except (io.UnsupportedOperation, AttributeError, TypeError):
            pass
        except OSError as e:
            raise CaptureError(source_name(f), grow.n, f"cannot read: {e.strerror or e}") from None
    while True:
        b = src.read(READ_CHUNK)
        if not b:
            return
        grow.write(b)


KEEP_MAPPED_BYTES = 1 << 30
"""Plain files up to this size (in all) stay mapped once the reader or :func:`capture_bytes` mapped
them, for the analyses that come back to their bytes (checksums, payloads): mapping a file again costs
its page faults again (about 6 ms per 100 MB here), each time. Larger files are mapped per use, as
before. ``kept_maps.clear()`` lets them go."""
KEEP_MAPPED_FILES = 2
"""At most this many files stay mapped (the least recently used goes first)."""


class _KeptMaps:
    """The memory maps of the last few plain files mapped (by the reader or capture_bytes), by the
    file's identity: device, inode, size and modification time from the open file (a file replaced or
    grown is another file; the map is shared, so it shows a file rewritten in place as it is now; a
    path that no longer opens raises before any lookup). A file deleted since is let go at the next
    ``put``, so its disk space is not held. Thread-safe. A map dropped from here closes when the last
    array over it is freed."""

    def __init__(self):
        import threading
        from collections import OrderedDict
        self._lock = threading.Lock()
        self._maps: OrderedDict = OrderedDict()

    @staticmethod
    def key(f):
        st = os.fstat(f.fileno())
        return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns

    def get(self, key):
        with self._lock:
            hit = self._maps.get(key)
            if hit is None:
                return None
            self._maps.move_to_end(key)
            return hit[0]

    def put(self, key, arr, path: str) -> bool:
        """Keep ``arr`` (True) unless it is larger than KEEP_MAPPED_BYTES or not as long as the file was
        when ``key`` was taken (it grew meanwhile); older maps go to make room, and maps of files no
        longer at their path."""
        if arr.nbytes > KEEP_MAPPED_BYTES or arr.nbytes != key[2]:
            return False
        with self._lock:
            for k in [k for k, (_, p) in self._maps.items() if not _same_file(p, k)]:
                del self._maps[k]
            self._maps[key] = arr, path
            self._maps.move_to_end(key)
            while len(self._maps) > KEEP_MAPPED_FILES or \
                    sum(a.nbytes for a, _ in self._maps.values()) > KEEP_MAPPED_BYTES:
                self._maps.popitem(last=False)
        return True

    def clear(self) -> None:
        with self._lock:
            self._maps.clear()


def _same_file(path: str, key) -> bool:
    """Whether ``path`` still names the file of ``key`` (device and inode)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == key[:2]


kept_maps = _KeptMaps()


@contextmanager
def _mmap_file(f, size, keep: bool = False, reuse: bool = False):
    """A read-only memory map of the open file ``f`` as a uint8 array, closed after the ``with``; with
    ``keep`` it is kept (kept_maps, files up to KEEP_MAPPED_BYTES) instead, and with ``reuse`` a kept
    map of the same file is used instead of a new one."""
    if size == 0:
        yield np.zeros(0, np.uint8)
        return
    key = _KeptMaps.key(f) if keep or reuse else None
    if reuse:
        arr = kept_maps.get(key)
        if arr is not None:
            yield arr
            return
    try:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):  # special files: read them whole
        yield np.frombuffer(f.read(), np.uint8)
        return
    arr = np.frombuffer(mm, np.uint8)
    name = getattr(f, "name", None)
    if keep and kept_maps.put(key, arr, os.path.abspath(name) if isinstance(name, str) else ""):
        yield arr
        return
    try:
        yield arr
    finally:
        del arr
        try:
            mm.close()
        except BufferError:  # a caller still holds a view; the map closes when it is freed
            pass


class StreamEnd:
    """Filled in by :func:`iter_stream_chunks` when the stream is done."""
    offset: int = 0
    problem: StreamProblem | None = None
    notes: tuple = ()
    compression: str | None = None
    name: str = ""


def iter_stream_chunks(source, chunk_bytes: int = 16 << 20, end: StreamEnd | None = None):
    """Yield (absolute offset, bytes) chunks of about ``chunk_bytes`` of the (decompressed) stream, read
    front to back without seeking, in bounded memory; fill ``end`` (a StreamEnd) as it goes."""
    end = end if end is not None else StreamEnd()
    name = source_name(source)
    end.name = name
    if isinstance(source, (str, os.PathLike)):
        f, _kind = _open_path(name)
        own = True
    else:
        f, own = source, False
    try:
        src = _Head(_read_fn(f, name))
        comp = sniff_compression(src.head)
        end.compression = comp
        problems: list[StreamProblem] = []
        if comp is None:
            gen = iter(lambda: src.read(READ_CHUNK), b"")
        else:
            gen = _decompressed_chunks(src.read, comp, problems)
        off = 0
        pend, size = [], 0
        for b in gen:
            pend.append(b)
            size += len(b)
            if size >= chunk_bytes:
                data = b"".join(pend)
                pend, size = [], 0
                yield off, data
                off += len(data)
        if pend:
            data = b"".join(pend)
            yield off, data
            off += len(data)
        end.offset = off
        end.problem = next((p for p in problems if not p.harmless), None)
        end.notes = tuple(p.reason for p in problems if p.harmless)
    finally:
        if own:
            f.close()


@contextmanager
def capture_bytes(ref, upto: int | None = None):
    """The bytes a table's ``attrs['path']`` refers to, for payload slicing: a StreamName's held bytes,
    a plain file's memory map, or a compressed file decompressed again (only up to ``upto`` bytes)."""
    if isinstance(ref, StreamName):
        if ref.buffer is None:
            raise CaptureError(str(ref), None, "this table was read from a stream whose bytes are no longer "
                                               "held (the table went through pickle or Parquet): read the "
                                               "capture from a file to slice payloads")
        yield ref.buffer if not ref.base else _Shifted(ref.buffer, ref.base)
        return
    name = os.fspath(ref)
    f, kind = _open_path(name)
    with f:
        size = os.fstat(f.fileno()).st_size if kind == "file" else 0
        head = os.pread(f.fileno(), SNIFF_BYTES, 0) if size else b""
        comp = sniff_compression(head) if kind == "file" else None
        if kind == "file" and comp is None:
            with _mmap_file(f, size, keep=True, reuse=True) as arr:  # the reader's map when kept
                yield arr
            return
        if kind != "file":
            raise CaptureError(name, None, "is a pipe: its bytes cannot be read again for payloads (read "
                                           "the table with read_capture from the pipe in this process)")
        grow = _Grow()
        problems: list[StreamProblem] = []
        for out in _decompressed_chunks(_Head(_read_fn(f, name)).read, comp, problems):
            grow.write(out)
            if upto is not None and grow.n >= upto:
                break
        yield grow.array()


class _Shifted:
    """A buffer holding stream bytes from offset ``base`` on, sliced with stream offsets."""

    def __init__(self, buf: np.ndarray, base: int):
        self.buf, self.base = buf, base

    def __getitem__(self, sl: slice):
        return self.buf[sl.start - self.base:sl.stop - self.base]


@contextmanager
def open_bytes(path: str):
    """The (decompressed) bytes of the capture ``path`` names (a table's ``attrs['path']``), as a read-only
    uint8 array: memory-mapped for a plain file; CaptureError for what is no file."""
    with capture_bytes(path) as buf:
        yield buf
