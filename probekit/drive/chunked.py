"""Huge single captures in bounded memory: the reader walks the file in chunks, probes are matched on a
sliding window (each chunk plus the packets of the last few minutes), and every analysis is accumulated
with the numbers of the in-memory path.

- ``chunk_source(path, chunk_packets)`` yields packets tables of at most ``chunk_packets`` rows with
  absolute frame numbers and payload offsets (the one function a streaming reader can replace).
- ``chunked_probes`` matches each window with ``match_probes`` and keeps a probe once nothing later can
  change it: its request is more than ``max(reply_window_s, timeout_s, 60 s) + 1 s`` before the
  window's last packet (no reply, SYN/ACK or RST can still come). The packets of the last
  ``resend_window_s + 1 s`` before that point are carried into the next window, so a probe whose
  reply or RST falls in the next chunk meets it there, and a re-sent request meets its first one.
- Fragmented datagrams are reassembled in each window before matching (``datagrams.reassembled_packets``),
  as the in-memory session matches them; the carry holds the fragments a chunk's end cuts.
- With ``keep_probes`` (the default) ``chunked_analyses`` keeps, besides every request and its header
  columns, a few rows per chunk: the ICMP/ICMPv6 error frames and the IP fragments (``rare_packets``), and
  of the TCP segments with data only the first of each run in one direction of one connection with no
  SYN between (all that ``streams.streams`` asks of them). At the end it attributes the errors
  (``errors_icmp.attribute_errors``, ``with_error_outcomes``: ``all_probes``, ``icmp_errors``),
  classifies the streams (``streams.streams`` on the request rows and those segments), keeps the probe
  streams (``select_probe_streams``: ``probes``) and computes every analysis on them, per-period metrics
  with the errors each period drew included — the in-memory session's tables.
- ``chunked_other_traffic`` counts what is not a probe stream in a second walk (a frame's kind needs the
  final streams).
- ``keep_probes=False`` keeps per-period metrics of every request stream period by period (complete
  periods are aggregated and dropped as the walk goes): memory for one chunk, the window and one row per
  stream and period, whatever the file's size (``probekit metrics --bounded``); no stream selection and
  no ICMP-error outcomes there.

Limits (the in-memory path is the reference): a request identity re-sent without a pause of more
than ``resend_window_s`` for longer than the window (nping re-sending one SYN for minutes) is split
into one probe per window; records far out of time order (more than the carry) are matched as the
window sees them; ``vantage='auto'`` is decided on the first window. Memory grows with the requests
(about 95 bytes each for the probes table, 33 for their header columns, 12 for where their payload is;
the payload verdicts keep per-stream counts and the distinct payloads of the stream being judged) and
with the TCP connections that carry data (one row per run of segments).
"""
from __future__ import annotations

import ipaddress
import os
import shutil
import tempfile
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pandas.core.arrays.masked import BaseMaskedArray

from ..analysis import datagrams as _dg
from ..analysis import errors_icmp as _err
from ..analysis import fingerprint as _fp
from ..analysis import match, metrics, payload, sizes, sources, timing
from ..analysis import mtu as _mtu
from ..analysis import streams as _streams
from ..capture._frames import FrameIndex, index_frames, sniff_format
from ..capture._table import decode_frames
from ..capture.linktypes import linktype_name
from ..capture.reader import open_bytes
from ..errors import CaptureError
from ..protocol import PROBE_PROTOCOLS
from ..schema import (
    PERIOD_STATUS,
    PERIODS,
    PROBE_COLUMNS,
    SOURCE_STREAM_KEYS,
    STREAM_KEYS,
)
from . import CHUNKED_FILE_BYTES

__all__ = [
    "CHUNKED_FILE_BYTES",
    "CHUNK_PACKETS",
    "ChunkedResult",
    "chunk_source",
    "chunked_analyses",
    "chunked_other_traffic",
    "chunked_probes",
]

CHUNK_PACKETS = 1_000_000
"""Packets per chunk by default (about 125 MB of packets table; the walk's memory grows with it)."""
WINDOW_BYTES = 128 << 20
OTHER_CHUNK_PACKETS = 500_000
"""Packets per chunk of the other-traffic walk at most (a frame's kind does not depend on the chunk)."""
_NS = 1_000_000_000
_REQ_COLS = ("ip_id", "tcp_win", "sport", "ttl", "tcp_hdr_len", "payload_off", "payload_caplen", "payload_len",
             "tcp_flags", "ip_proto", "dport")
_ERR_KEYS = np.array([p * 1000 + t for p, t in _err.ERROR_TYPES], np.int64)
_SLIM = ("frame", "ts_ns", "src", "dst", "ip_proto", "sport", "dport", "tcp_flags", "payload_len", "ttl", "l3")
"""The packets-table columns stream selection reads (``streams.streams``): request rows and data segments."""


# ----------------------------------------------------------------------------------- chunks
def chunk_source(path, chunk_packets: int = CHUNK_PACKETS, window_bytes: int = WINDOW_BYTES):
    """Packets tables of at most ``chunk_packets`` frames, in file order, frame numbers and payload
    offsets absolute (as ``read_capture`` gives them). Classic pcap is read window by window with
    ordinary reads (memory: one window); pcapng through one memory map of the file."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        head = f.read(4)
    if sniff_format(head) == "pcap":
        yield from _pcap_chunks(path, chunk_packets, window_bytes)
    else:
        yield from _mapped_chunks(path, chunk_packets)


def _attrs(path, idx: FrameIndex, notes) -> dict:
    return dict(path=path, format=idx.format, notes=list(notes),
                interfaces=[dict(linktype=i.linktype, linktype_name=linktype_name(i.linktype), snaplen=i.snaplen,
                                 units_per_s=i.units_per_s, tsoffset_s=i.tsoffset_s, name=i.name, section=i.section)
                            for i in idx.interfaces])


def _slice(idx: FrameIndex, lo: int, hi: int) -> FrameIndex:
    return FrameIndex(idx.format, idx.data_off[lo:hi], idx.caplen[lo:hi], idx.wirelen[lo:hi], idx.ts_ns[lo:hi],
                      None if idx.has_ts is None else idx.has_ts[lo:hi], idx.iface[lo:hi], idx.interfaces)


def _decode(buf, idx, lo, hi, frame_base: int, shift: int, attrs: dict) -> pd.DataFrame:
    df = decode_frames(buf, _slice(idx, lo, hi))
    df["frame"] += frame_base + lo
    if shift:
        df["payload_off"] = df["payload_off"] + shift
    df.attrs.update(attrs)
    return df


def _mapped_chunks(path, chunk_packets):
    with open_bytes(path) as buf:
        idx = index_frames(buf, path)
        notes = list(idx.notes)
        if idx.stop is not None:
            notes.append(f"salvaged {len(idx)} whole record(s); stopped: {idx.stop}")
        attrs = _attrs(path, idx, notes)
        for lo in range(0, max(len(idx), 1), chunk_packets):
            yield _decode(buf, idx, lo, min(len(idx), lo + chunk_packets), 0, 0, attrs)


def _pcap_chunks(path, chunk_packets, window_bytes):
    """A classic pcap as windows of bytes: the file header, then whole records from the window's start;
    the record cut by the window's end starts the next window."""
    size = os.path.getsize(path)
    frames = 0
    with open(path, "rb") as f:
        header = f.read(24)
        pos = 24
        attrs = None
        while True:
            f.seek(pos)
            room = bytearray(24 + min(window_bytes, max(size - pos, 0)))   # header + window, read in place
            room[:24] = header
            got = f.readinto(memoryview(room)[24:])
            eof = pos + got >= size
            buf = np.frombuffer(room, np.uint8)[:24 + got]
            idx = index_frames(buf, path)
            n = len(idx)
            stop = idx.stop
            notes = []
            if stop is not None and eof:
                offset = None if stop.offset is None else stop.offset - 24 + pos
                stop = CaptureError(path, offset, stop.reason.replace(f"after {n} whole",
                                                                      f"after {frames + n} whole"))
                notes.append(f"salvaged {frames + n} whole record(s); stopped: {stop}")
            huge = stop is not None and "over" in stop.reason and "captured bytes" in stop.reason
            if attrs is None:
                attrs = _attrs(path, idx, notes)
            elif notes:
                attrs = {**attrs, "notes": attrs["notes"] + notes}
            if n == 0 and not eof and not huge:
                window_bytes *= 2          # one record longer than the window
                continue
            for lo in range(0, n, chunk_packets):
                yield _decode(buf, idx, lo, min(n, lo + chunk_packets), frames, pos - 24, attrs)
            if n == 0 and frames == 0:
                yield _decode(buf, idx, 0, 0, 0, 0, attrs)
            frames += n
            if eof or huge or n == 0:
                return
            pos += int(idx.data_off[-1] + idx.caplen[-1]) - 24


# --------------------------------------------------------------------------------- matching
def _concat(a: pd.DataFrame | None, b: pd.DataFrame) -> pd.DataFrame:
    """Two packets tables as one, src/dst on one sorted category list (IPv4, then IPv6)."""
    if a is None or a.empty:
        return b
    if b.empty:
        return a
    cats = _sorted_addresses(set(a["src"].cat.categories) | set(b["src"].cat.categories))
    dtype = pd.CategoricalDtype(cats)
    parts = []
    for t in (a, b):
        t = t.copy()
        t["src"] = t["src"].astype(dtype)
        t["dst"] = t["dst"].astype(dtype)
        parts.append(t)
    out = pd.concat(parts, ignore_index=True)
    out.attrs = b.attrs
    return out


def _concat_many(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """Several packets tables as one (file order), src/dst on one sorted category list."""
    cats = set()
    for t in tables:
        cats |= set(t["src"].cat.categories) | set(t["dst"].cat.categories)
    dtype = pd.CategoricalDtype(_sorted_addresses(cats))
    parts = [t.assign(src=t["src"].astype(dtype), dst=t["dst"].astype(dtype)) for t in tables]
    out = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].reset_index(drop=True)
    out.attrs = tables[-1].attrs
    return out


def _sorted_addresses(addrs) -> list[str]:
    v4 = sorted((x for x in addrs if ":" not in x), key=lambda s: ipaddress.IPv4Address(s).packed)
    v6 = sorted((x for x in addrs if ":" in x), key=lambda s: ipaddress.IPv6Address(s).packed)
    return v4 + v6


class _Columns:
    """Batches of one table kept column by column (each column of each batch its own array) and joined one
    column at a time at the end: memory for the table and one column, never two copies of the table. The
    address columns (``categorical``) are joined on the sorted list of the addresses the batches use."""

    def __init__(self, categorical=()):
        self.categorical = tuple(categorical)
        self.cols: dict[str, list] = {}
        self.attrs: list[dict] = []
        self.rows = 0

    def __len__(self):
        return len(self.attrs)

    def add(self, df: pd.DataFrame) -> None:
        if not self.cols:
            self.cols = {c: [] for c in df.columns}
        for c in df.columns:      # a copy per column: a batch's 2-D blocks are freed with the batch
            self.cols[c].append(df[c].array.copy())
        self.attrs.append(dict(df.attrs))
        self.rows += len(df)

    def table(self, order: np.ndarray | None = None) -> pd.DataFrame:
        """The batches as one table (rows taken in ``order``), emptying this accumulator."""
        out = {}
        for c in list(self.cols):
            arrs = self.cols.pop(c)
            if c in self.categorical:
                cats = _sorted_addresses(set().union(*(set(a.categories) for a in arrs)))
                index = pd.Index(cats, dtype=object)
                codes = []
                while arrs:
                    a = arrs.pop(0)
                    m = index.get_indexer(a.categories.astype(object)).astype(np.int64)
                    k = a.codes.astype(np.int64)
                    codes.append(np.where(k >= 0, m[np.maximum(k, 0)], -1))
                k = np.concatenate(codes)
                del codes
                col = pd.Categorical.from_codes(k if order is None else k[order], categories=cats)
                col = col.remove_unused_categories()
            else:
                joined = arrs[0]._concat_same_type(arrs) if hasattr(arrs[0], "_concat_same_type") \
                    else np.concatenate(arrs)
                del arrs
                col = joined if order is None else joined.take(order)
            out[c] = col
            release_free_memory()     # the column's parts, before the next one is joined
        t = pd.DataFrame(out, copy=False)
        first = self.attrs[0] if self.attrs else {}
        t.attrs = dict(first) if all(a == first for a in self.attrs) else {}   # as pd.concat keeps them
        self.attrs = []
        return t


class _Spill:
    """Columns of a table written to a temporary folder batch by batch as the walk goes (the requests'
    header columns and payload offsets: 54 bytes a request that only the payload verdicts, the fingerprints
    and stream selection read, each a few columns at a time), read back column by column and row set by
    row set through a memory map opened for the read (the pages go with it). Nullable-integer columns
    are kept as their values and mask. ``finish(order)``: the row order the readers see (the probes'
    order); the folder is removed when the last view of it goes."""

    def __init__(self, columns):
        self.columns = tuple(columns)
        self.dir = tempfile.mkdtemp(prefix="probekit-spill-")
        self._finalizer = weakref.finalize(self, shutil.rmtree, self.dir, ignore_errors=True)
        self.files: dict[tuple[str, str], Any] = {}
        self.kinds: dict[str, tuple] = {}
        self.rows = 0
        self.order: np.ndarray | None = None

    def add(self, df: pd.DataFrame) -> None:
        for c in self.columns:
            a = df[c].array
            if isinstance(a, BaseMaskedArray):
                parts = {"v": a._data, "m": a._mask}
                kind = (type(a), a._data.dtype, a._data.dtype)
            elif isinstance(a, pd.Categorical):      # codes, on the first batch's categories
                if c in self.kinds and self.kinds[c][1] != a.dtype:
                    raise ValueError(f"spilled column {c!r}: batches on different categories")
                parts = {"v": a.codes}
                kind = (pd.Categorical, a.dtype, a.codes.dtype)
            else:
                parts = {"v": np.asarray(a)}
                kind = (None, parts["v"].dtype, parts["v"].dtype)
            if c not in self.kinds:
                self.kinds[c] = kind
            for k, arr in parts.items():
                if (c, k) not in self.files:
                    self.files[c, k] = open(os.path.join(self.dir, f"{c}.{k}"), "wb")
                self.files[c, k].write(np.ascontiguousarray(arr).tobytes())
        self.rows += len(df)

    def finish(self, order: np.ndarray | None) -> _SpillView:
        for f in self.files.values():
            f.close()
        self.order = order
        return _SpillView(self, None)

    def read(self, c: str, idx: np.ndarray | None):
        """Column ``c`` at the (file-order) rows ``idx`` (all: None) as the array the table held."""
        cls, dtype, stored = self.kinds[c]
        got = {}
        for k, dt in (("v", stored), ("m", np.dtype(bool))):
            if (c, k) not in self.files:
                continue
            name = os.path.join(self.dir, f"{c}.{k}")
            if idx is None:
                got[k] = np.fromfile(name, dt)
            elif not self.rows or not len(idx):
                got[k] = np.zeros(len(idx), dt)
            else:
                mm = np.memmap(name, dt, "r", shape=(self.rows,))
                got[k] = mm[idx]
                del mm
        if cls is pd.Categorical:
            return pd.Categorical.from_codes(got["v"], dtype=dtype)
        return got["v"] if cls is None else cls(got["v"], got["m"])


class _SpillView:
    """Rows of a :class:`_Spill` (all, or a subset in the probes' order): what the steps after the walk read
    of the request columns instead of a DataFrame (``_req_frame``, ``_req_column``, ``_req_take``)."""

    def __init__(self, spill: _Spill, rows: np.ndarray | None):
        self.spill = spill
        self.rows = rows          # positions in the probes' order; None: every row

    def __len__(self):
        return self.spill.rows if self.rows is None else len(self.rows)

    @property
    def columns(self):
        return self.spill.columns

    def take(self, rows: np.ndarray) -> _SpillView:
        rows = np.asarray(rows, np.int64)
        return _SpillView(self.spill, rows if self.rows is None else self.rows[rows])

    def column(self, c: str, rows: np.ndarray | None = None):
        idx = self.rows if rows is None else (np.asarray(rows, np.int64) if self.rows is None else self.rows[rows])
        order = self.spill.order
        if order is not None:
            idx = order if idx is None else order[idx]
        return self.spill.read(c, idx)

    def frame(self, columns, rows: np.ndarray | None = None) -> pd.DataFrame:
        return pd.DataFrame({c: self.column(c, rows) for c in columns}, copy=False)


class _Parked(_SpillView):
    """A probes table parked in a temporary file (``_park``): ``frame(columns, rows)`` reads back a table of
    those columns (all: None) and rows (all: None) with the table's attrs."""

    def __init__(self, spill: _Spill, attrs: dict):
        super().__init__(spill, None)
        self.attrs = attrs

    def frame(self, columns=None, rows: np.ndarray | None = None) -> pd.DataFrame:
        t = super().frame(self.columns if columns is None else columns, rows)
        t.attrs = dict(self.attrs)
        return t


def _park(table: pd.DataFrame) -> _Parked:
    """``table`` written to a temporary file, column by column (``_Spill``)."""
    spill = _Spill(table.columns)
    spill.add(table)
    spill.finish(None)
    return _Parked(spill, dict(table.attrs))


def _probe_frame(probes, columns=None, rows: np.ndarray | None = None) -> pd.DataFrame:
    """The columns (all: None) and rows (all: None, else renumbered) of a probes table or a parked one."""
    if isinstance(probes, _Parked):
        return probes.frame(columns, rows)
    t = probes if columns is None else probes[list(columns)]
    return t if rows is None else t.iloc[rows].reset_index(drop=True)


_BALANCE_READS = ("ts_ns", "protocol", "source", "destination", "port")
_STREAMS_READS = ("ts_ns", "protocol", "source", "destination", "port", "dst_port", "ident", "request_frame",
                  "reply_frame")
"""The probes' columns ``sources.balance_test`` and ``streams.streams`` read (``_narrow``)."""
narrow_fallbacks = 0
"""Times ``_narrow`` had to give a step the whole table (a column it reads is not in its list: same result,
more memory; the tests hold it at 0 on the shipped captures)."""


def _narrow(step, parked: _Parked, columns):
    """``step(table)`` on a frame of ``columns`` of the parked table; on a KeyError (the step reads another
    column: its list here is out of date) on the whole table — the same result, the memory of the whole."""
    global narrow_fallbacks
    try:
        return step(parked.frame(columns))
    except KeyError:
        narrow_fallbacks += 1
        return step(parked.frame())


def _req_column(req, c: str, rows: np.ndarray | None = None):
    """A request column (the array) of a DataFrame or a spilled view, at ``rows`` (None: all)."""
    if isinstance(req, pd.DataFrame):
        a = req[c].array
        return a if rows is None else a.take(rows)
    return req.column(c, rows)


def _req_frame(req, columns, rows: np.ndarray | None = None) -> pd.DataFrame:
    """The request columns ``columns`` (rows ``rows``, renumbered) of a DataFrame or a spilled view."""
    if isinstance(req, pd.DataFrame):
        t = req[list(columns)]
        return t if rows is None else t.iloc[rows].reset_index(drop=True)
    return req.frame(columns, rows)


def _req_take(req, rows: np.ndarray):
    """The rows ``rows`` of the request columns (a DataFrame renumbered, or a spilled view of them)."""
    if isinstance(req, pd.DataFrame):
        return req.iloc[rows].reset_index(drop=True)
    return req.take(rows)


_malloc_trim: Any = None      # glibc's malloc_trim once looked up; False where there is none


def release_free_memory() -> None:
    """Give the C heap's free pages back to the system (glibc's ``malloc_trim``; nothing elsewhere).

    Arrays under glibc's mmap threshold (which grows to 32 MB as large blocks are freed) live on the heap,
    and freed heap pages stay in the process: after the walk and after each analysis of millions of probes
    the RSS kept up to twice the live memory. The walk calls this between its steps."""
    global _malloc_trim
    if _malloc_trim is None:
        try:
            import ctypes
            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


def _identity(order: np.ndarray) -> bool:
    return bool(order.size < 2 or (np.diff(order) == 1).all())


def _iter_final_probes(chunks, timeout_s, vantage, resend_window_s, reply_window_s):
    """(probes, request columns, window packets) per window: the probes no later packet can change."""
    hold_ns = int((max(reply_window_s, timeout_s, 60.0) + 1.0) * _NS)
    carry_ns = int((resend_window_s + 1.0) * _NS)
    carry = None
    lower = None   # probes before this were kept from an earlier window
    decided = None
    chunks = iter(chunks)
    nxt = next(chunks, None)
    while nxt is not None:
        window = _concat(carry, nxt)
        chunk = nxt
        nxt = next(chunks, None)
        last = nxt is None
        ts = window["ts_ns"].to_numpy("int64", na_value=np.iinfo(np.int64).min)
        end = int(ts.max()) if ts.size else 0
        # fragmented datagrams reassembled for matching, as the in-memory session does (the carry holds the
        # fragments of a datagram cut by the chunk's end)
        view = _dg.reassembled_packets(window) if len(_dg.fragment_rows(window)) else window
        probes = match.match_probes(view, timeout_s=timeout_s, vantage=decided or vantage,
                                    resend_window_s=resend_window_s, reply_window_s=reply_window_s)
        decided = decided or probes.attrs.get("vantage")
        t0 = probes["ts_ns"].to_numpy("int64")
        upper = None if last else end - hold_ns
        keep = np.ones(len(probes), bool)
        if lower is not None:
            keep &= t0 >= lower
        if upper is not None:
            keep &= t0 < upper
        kept = probes[keep]
        rows = np.searchsorted(window["frame"].to_numpy("int64"), kept["request_frame"].to_numpy("int64"))
        req = pd.DataFrame({c: window[c].array.take(rows) for c in _REQ_COLS})
        yield kept, req, probes.attrs, window.attrs, upper, chunk
        if upper is not None:
            lower = upper
            carry = window[ts >= upper - carry_ns].reset_index(drop=True)


def _unify(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate probe batches: addresses on the sorted list of those used, rows in the in-memory order."""
    parts = [p for p in parts if len(p)] or parts[:1]
    addrs = set()
    for p in parts:
        addrs |= set(p["source"].cat.categories) | set(p["destination"].cat.categories)
    dtype = pd.CategoricalDtype(_sorted_addresses(addrs))
    fixed = [p.assign(source=p["source"].astype(dtype), destination=p["destination"].astype(dtype)) for p in parts]
    out = pd.concat(fixed, ignore_index=True)
    for c in ("source", "destination"):
        out[c] = out[c].cat.remove_unused_categories()
    return out


def chunked_probes(path, *, chunk_packets: int = CHUNK_PACKETS, timeout_s: float = 1.0, vantage: str = "auto",
                   resend_window_s: float = 30.0, reply_window_s: float = 120.0) -> pd.DataFrame:
    """The probes table of a capture walked in chunks: ``match_probes(read_capture(path))``'s rows."""
    return chunked_analyses(path, chunk_packets=chunk_packets, timeout_s=timeout_s, vantage=vantage,
                            resend_window_s=resend_window_s, reply_window_s=reply_window_s,
                            analyses=()).probes


# ---------------------------------------------------------------------------------- periods
class _Periods:
    """Per-period metrics accumulated as the walk goes: a period is aggregated once no later probe can
    fall into it (its end is before the kept probes' lower bound), then only its rows are kept."""

    def __init__(self, period_s: int, by):
        self.period_s = period_s
        self.step = period_s * _NS
        self.by = list(by)
        self.rows: list[pd.DataFrame] = []
        self.pending: list[pd.DataFrame] = []
        self.lo = None
        self.hi = None

    def add(self, probes: pd.DataFrame, complete_before_ns: int | None):
        p = probes[probes["outcome"] != "unknown"]
        if len(p):
            t = p["ts_ns"].to_numpy()
            self.lo = int(t.min()) if self.lo is None else min(self.lo, int(t.min()))  # type: ignore[assignment]
            self.hi = int(t.max()) if self.hi is None else max(self.hi, int(t.max()))  # type: ignore[assignment]
            self.pending.append(p)
        if complete_before_ns is None:
            self._flush(None)
        else:
            self._flush(complete_before_ns // self.step * self.step)

    def _flush(self, boundary):
        if not self.pending:
            return
        p = pd.concat(self.pending, ignore_index=True) if len(self.pending) > 1 else self.pending[0]
        if boundary is None:
            done, rest = p, p.iloc[:0]
        else:
            m = p["ts_ns"].to_numpy() < boundary
            done, rest = p[m], p[~m]
        self.pending = [rest] if len(rest) else []
        if len(done):
            per = metrics.period_metrics(done, self.period_s, by=self.by)
            self.rows.append(per[per["sent"] > 0].astype({c: object for c in self.by if c != "port"}))

    def table(self, categories: dict) -> pd.DataFrame:
        """Every stream × every period of the span, as ``period_metrics`` of the whole probes table."""
        by = self.by
        cols = [c.name for c in PERIODS if (c.name not in SOURCE_STREAM_KEYS or c.name in by)
                and (not c.optional or c.name in SOURCE_STREAM_KEYS)]
        if not self.rows:
            empty = pd.DataFrame({c: [] for c in cols})
            return _period_types(empty, by, categories)
        got = pd.concat(self.rows, ignore_index=True)
        starts = np.arange(self.lo // self.step * self.step, self.hi // self.step * self.step + self.step,
                           self.step, dtype=np.int64)
        keys = got[by].drop_duplicates()
        grid = keys.merge(pd.DataFrame({"period_start_ns": starts}), how="cross")
        out = grid.merge(got, on=by + ["period_start_ns"], how="left")
        for c in ("sent", "answered", "late"):
            out[c] = out[c].fillna(0).astype("int64")
        out["period_s"] = np.int32(self.period_s)
        out["status"] = out["status"].astype(object).where(out["sent"] > 0, "no_probes")
        out = _period_types(out[cols], by, categories)
        return out.sort_values(by + ["period_start_ns"], kind="stable").reset_index(drop=True)


def _period_types(out: pd.DataFrame, by, categories: dict) -> pd.DataFrame:
    types = {c.name: c.dtype for c in PERIODS}
    for c in out.columns:
        if c in ("protocol", "source", "destination"):
            out[c] = pd.Categorical(out[c], categories=categories[c])
        elif c == "status":
            out[c] = pd.Categorical(out[c], categories=list(PERIOD_STATUS))
        else:
            out[c] = out[c].astype(types[c])
    return out


# --------------------------------------------------------------------------------- analyses
class _LazyPayloads:
    """Request payload bytes of the kept probes, read through the packets accessor piece by piece. Where
    each payload is (``off``: int64, -1 for none; ``caplen``) is held as arrays, or read from the spilled
    request columns for the rows asked (``spilled``: a ``_SpillView`` with ``payload_off``/``payload_caplen``;
    then nothing per probe is held between the reads)."""

    def __init__(self, path: str, off: np.ndarray | None = None, caplen: np.ndarray | None = None, *,
                 spilled: _SpillView | None = None):
        self.path = path
        self.spilled = spilled
        self._off = off                                 # int64, -1: no payload
        self._caplen = None if caplen is None else caplen.astype(np.int32, copy=False)
        try:
            with open(path, "rb") as f:
                self.plain = sniff_format(f.read(4)) in ("pcap", "pcapng")    # not compressed
        except (OSError, CaptureError):
            self.plain = False

    def where(self, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(file offset, -1 for none; captured payload bytes) of ``rows`` (None: every request)."""
        if self.spilled is None:
            assert self._off is not None and self._caplen is not None
            return (self._off, self._caplen) if rows is None else (self._off[rows], self._caplen[rows])
        off = self.spilled.column("payload_off", rows).to_numpy("int64", na_value=-1)
        cap = self.spilled.column("payload_caplen", rows).to_numpy("int32", na_value=0)
        return off, cap

    @property
    def off(self) -> np.ndarray:
        return self.where()[0]

    @property
    def caplen(self) -> np.ndarray:
        return self.where()[1]

    def __len__(self):
        return len(self.spilled) if self.spilled is not None else self._off.size

    @property
    def lengths(self):
        """Payload bytes of each request (int64, made on each use: 12 bytes a request are kept, not 20)."""
        off, cap = self.where()
        return np.where(off >= 0, cap, 0).astype(np.int64)

    def piece(self, rows):
        """(data, offsets, positions) of the payloads of ``rows``: a plain capture file is read with ordinary
        reads, window by window in file order (a memory map of it would count every page the rows touch —
        for rows of a stream spread over the file, the whole file — in the process's memory)."""
        off, cap = self.where(np.asarray(rows, np.int64))
        if self.plain:
            ln = np.where(off >= 0, cap, 0).astype(np.int64)
            offsets = np.zeros(ln.size + 1, np.int64)
            np.cumsum(ln, out=offsets[1:])
            data = np.zeros(int(offsets[-1]), np.uint8)
            _read_into(self.path, off, ln, offsets, data)
            return data, offsets, np.arange(len(rows), dtype=np.int64)
        from ..capture.payloads import payload_buffer
        t = pd.DataFrame({"payload_off": pd.array(np.where(off >= 0, off, 0), dtype="Int64"),
                          "payload_caplen": pd.array(np.where(off >= 0, cap, 0).astype(np.int32), dtype="Int32")})
        t.loc[off < 0, "payload_off"] = pd.NA
        t.attrs["path"] = self.path
        data, offsets = payload_buffer(t)
        return data, offsets, np.arange(len(rows), dtype=np.int64)

    def subset(self, rows: np.ndarray) -> _LazyPayloads:
        """The payloads of these rows only."""
        if self.spilled is not None:
            return _LazyPayloads(self.path, spilled=self.spilled.take(rows))
        off, cap = self.where(rows)
        return _LazyPayloads(self.path, off, cap)

    def request_rows(self, rows: np.ndarray, ts_ns: np.ndarray) -> pd.DataFrame:
        """A packets table of these requests' rows: what ``fingerprint_from(packets=)`` reads of them (where
        their payload bytes are, their time)."""
        off, cap = self.where(np.asarray(rows, np.int64))
        t = pd.DataFrame({"payload_off": off, "payload_caplen": cap, "ts_ns": ts_ns})
        t.attrs["path"] = self.path
        return t


READ_WINDOW = 2 << 20
"""Bytes of the capture file read at a time for payloads (``_read_into``)."""


def _read_into(path: str, off: np.ndarray, ln: np.ndarray, offsets: np.ndarray, data: np.ndarray) -> None:
    """Payload i (``ln[i]`` bytes at file offset ``off[i]``) into ``data[offsets[i]:]``: the payloads in file
    order, a window of about ``READ_WINDOW`` bytes read at a time, gathered by numpy (a payload past the
    file's end is left zero, as the packets accessor leaves a stale table's)."""
    has = np.flatnonzero(ln > 0)
    if not has.size:
        return
    has = has[np.argsort(off[has], kind="stable")]
    starts = off[has]
    ends = starts + ln[has]
    with open(path, "rb") as f:
        i = 0
        while i < has.size:
            w0 = int(starts[i])
            j = max(int(np.searchsorted(starts, w0 + READ_WINDOW, "left")), i + 1)
            buf = bytearray(int(ends[i:j].max()) - w0)
            f.seek(w0)
            got = f.readinto(buf)
            win = np.frombuffer(buf, np.uint8)[:got]
            r = has[i:j]
            L = ln[r]
            rep = np.repeat(np.arange(r.size), L)
            within = np.arange(rep.size) - np.repeat(np.cumsum(L) - L, L)
            src = (starts[i:j] - w0)[rep] + within
            ok = src < got
            data[(offsets[r][rep] + within)[ok]] = win[src[ok]]
            i = j


def _verdicts(probes: pd.DataFrame, payloads, by=SOURCE_STREAM_KEYS) -> pd.DataFrame:
    """``payload.payload_verdicts(probes, payloads, by)`` on the columns a verdict reads (not a copy). The
    verdicts keep nothing per payload past one piece of ``payload.PIECE_ROWS`` payloads (per-stream running
    counts; the distinct payloads of the stream being judged): memory for the streams, not the probes."""
    return payload.payload_verdicts(probes[[*by, "ts_ns"]], payloads, by=by)


FINGERPRINT_ROWS = 1_000_000
"""Fingerprints are made for about this many probes at a time (``_fingerprints``)."""


def _fingerprints(probes: pd.DataFrame, req: pd.DataFrame, verdicts, balance, payloads) -> pd.DataFrame:
    """``_fingerprints_of`` a few (protocol, source, destination) groups at a time, about ``FINGERPRINT_ROWS``
    probes (one group at least): ``fingerprint_from`` makes several float64 columns of every probe it is
    given, and a stream — a tracer's run of ports too — never leaves its group. The groups are consecutive
    in the fingerprints' order (the first three of its keys), so the parts are concatenated as they come."""
    key = None
    if len(probes) > FINGERPRINT_ROWS and hasattr(payloads, "subset"):
        key = payload._packed_key(_probe_frame(probes, ["protocol", "source", "destination"]))
    if key is None:
        return _fingerprints_of(_probe_frame(probes), _req_frame(req, _fp.REQUEST_COLUMNS), verdicts, balance,
                                payloads)
    order = np.argsort(key, kind="stable")
    ks = key[order]
    del key
    bounds = np.r_[np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]]), len(order)]
    del ks
    parts, lo = [], 0
    while lo < len(bounds) - 1:
        hi = lo + 1
        while hi < len(bounds) - 1 and bounds[hi + 1] - bounds[lo] <= FINGERPRINT_ROWS:
            hi += 1
        rows = np.sort(order[bounds[lo]:bounds[hi]])
        parts.append(_fingerprints_of(_probe_frame(probes, None, rows),
                                      _req_frame(req, _fp.REQUEST_COLUMNS, rows), verdicts, balance,
                                      payloads.subset(rows)))
        lo = hi
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def _fingerprints_of(probes: pd.DataFrame, req: pd.DataFrame, verdicts, balance, payloads) -> pd.DataFrame:
    """``fingerprint_from`` given the request rows it reads of a packets table, as the in-memory session's
    ``fingerprint(packets, ...)``: each stream's first request (its payload's layout) — and every request
    when a tracer's UDP ports make one stream (its verdict is made again over the merged stream). The probes
    are renumbered (``request_frame``: the row of that small table, + 1); it reads frame numbers only as
    row positions of the packets table, and the renumbered column never leaves this function."""
    if not hasattr(payloads, "request_rows") or not len(probes):
        return _fp.fingerprint_from(probes, req, verdicts=verdicts, balance=balance)
    n = len(probes)
    _, span = _streams.tracer_ports(probes, req["ttl"].to_numpy("float64", na_value=np.nan))
    if (span > 1).any():
        rows = np.arange(n)
        frame = rows + 1
    else:   # the first row of each (finest) stream: the first of every stream fingerprint_from groups
        rows = np.flatnonzero(~probes.duplicated(list(SOURCE_STREAM_KEYS)).to_numpy())
        frame = np.ones(n, np.int64)
        frame[rows] = np.arange(1, rows.size + 1)
    packets = payloads.request_rows(rows, probes["ts_ns"].to_numpy("int64")[rows])
    renumbered = probes.copy(deep=False)
    renumbered["request_frame"] = frame.astype(probes["request_frame"].dtype)
    return _fp.fingerprint_from(renumbered, req, verdicts=verdicts, balance=balance, packets=packets)


@dataclass
class ChunkedResult:
    """What the chunked walk computed (tables as the in-memory ``Capture`` properties name them)."""
    probes: pd.DataFrame | None
    tables: dict
    packets: int
    chunks: int
    span_ns: tuple[int, int]
    attrs: dict
    payload_probes: int = 0
    """Kept probes whose request carries payload bytes."""

    def __getattr__(self, name):
        try:
            return self.tables[name]
        except KeyError:
            raise AttributeError(name) from None


ALL_ANALYSES = ("periods", "probe_periods", "timing", "gaps", "shares", "balance", "alternation",
                "source_quality", "source_rate", "size_changes", "payload_verdicts", "fingerprints", "mtu")
STREAM_TABLES = ("all_probes", "icmp_errors", "streams", "rare_packets", "datagrams")
"""What the walk also gives when it keeps the probes: every request with its ICMP-error outcome, the errors,
the streams table, the packets-table rows of ICMP errors and fragments, and the reassembled datagrams."""


# ------------------------------------------------------------------- per-chunk rows kept for the end
def _rare_rows(chunk: pd.DataFrame) -> pd.DataFrame:
    """The chunk's ICMP/ICMPv6 error frames and IP fragments (few): what error attribution, the path MTU
    and reassembly read."""
    proto = chunk["ip_proto"].to_numpy("int64", na_value=-1)
    typ = chunk["icmp_type"].to_numpy("int64", na_value=-1)
    keep = np.isin(proto * 1000 + typ, _ERR_KEYS)
    keep[_dg.fragment_rows(chunk)] = True
    return chunk[keep]


def _data_segments(chunk: pd.DataFrame) -> pd.DataFrame:
    """The chunk's TCP segments with payload and no SYN (what tells a client connection from a probe),
    as the slim columns; of a run of segments in one direction of one connection with no SYN of that
    connection between them only the first is kept (the later ones can only repeat what it says)."""
    proto = chunk["ip_proto"].to_numpy("int64", na_value=-1)
    flags = chunk["tcp_flags"].to_numpy("int64", na_value=0)
    plen = chunk["payload_len"].to_numpy("int64", na_value=0)
    ts_ok = chunk["ts_ns"].notna().to_numpy()
    tcp = (proto == 6) & ts_ok
    data = tcp & (plen > 0) & ((flags & 0x02) == 0)
    if not data.any():
        return chunk.loc[data, list(_SLIM)]
    rows = np.flatnonzero(tcp & (data | ((flags & 0x02) != 0)))
    s = chunk["src"].cat.codes.to_numpy("int64")[rows]
    d = chunk["dst"].cat.codes.to_numpy("int64")[rows]
    sp = chunk["sport"].to_numpy("int64", na_value=-1)[rows]
    dp = chunk["dport"].to_numpy("int64", na_value=-1)[rows]
    fwd = (s < d) | ((s == d) & (sp <= dp))
    a, b = np.where(fwd, s, d), np.where(fwd, d, s)
    pa, pb = np.where(fwd, sp, dp), np.where(fwd, dp, sp)
    conn = pd.MultiIndex.from_arrays([a, b, pa, pb]).factorize()[0]
    ts = chunk["ts_ns"].to_numpy("int64", na_value=0)[rows]
    is_data = data[rows]
    order = np.lexsort((is_data, ts, conn))           # a SYN first at equal times: it separates
    c, dd, dr = conn[order], is_data[order], fwd[order]
    same = np.zeros(len(order), bool)
    same[1:] = (c[1:] == c[:-1]) & dd[1:] & dd[:-1] & (dr[1:] == dr[:-1])
    keep = np.sort(rows[order][dd & ~same])
    return chunk.iloc[keep][list(_SLIM)]


def _slim_packets(probes: pd.DataFrame, req: pd.DataFrame, segments: list[pd.DataFrame]) -> pd.DataFrame:
    """A packets table of the request frames (their own header fields) and the kept data segments, in
    frame order, addresses on one sorted category list: what ``streams.streams`` reads of the packets."""
    addrs = set(probes["source"].cat.categories) | set(probes["destination"].cat.categories)
    for t in segments:
        addrs |= set(t["src"].cat.categories) | set(t["dst"].cat.categories)
    dtype = pd.CategoricalDtype(_sorted_addresses(addrs))
    v6 = np.array([":" in a for a in dtype.categories], bool)
    dst = probes["destination"].astype(dtype)
    codes = dst.cat.codes.to_numpy()
    l3 = pd.Categorical.from_codes(np.where(codes >= 0, v6[np.maximum(codes, 0)], False).astype(np.int8),
                                   categories=["ipv4", "ipv6"])
    reqs = pd.DataFrame({
        "frame": probes["request_frame"].to_numpy("int64"), "ts_ns": probes["ts_ns"].array,
        "src": probes["source"].astype(dtype).array, "dst": dst.array,
        **{c: _req_column(req, c) for c in ("ip_proto", "sport", "dport", "tcp_flags", "payload_len", "ttl")},
        "l3": l3})
    segs = [t.assign(src=t["src"].astype(dtype), dst=t["dst"].astype(dtype), l3=t["l3"].astype(object))
            for t in segments if len(t)]
    if segs:
        out = pd.concat([reqs.assign(l3=reqs["l3"].astype(object)), *segs], ignore_index=True)
        out["l3"] = out["l3"].astype("category")
        out = out.sort_values("frame", kind="stable").drop_duplicates("frame")
    else:
        out = reqs.sort_values("frame", kind="stable")
    return out.reset_index(drop=True)


def chunked_analyses(path, *, chunk_packets: int = CHUNK_PACKETS, period_s: int = 30, timeout_s: float = 1.0,
                     vantage: str = "auto", resend_window_s: float = 30.0, reply_window_s: float = 120.0,
                     analyses=ALL_ANALYSES, keep_probes: bool = True, window_bytes: int = WINDOW_BYTES,
                     all_streams: bool = False, stream_overrides: dict | None = None) -> ChunkedResult:
    """Walk ``path`` in chunks and compute ``analyses`` (names of ``Capture`` properties) with the
    in-memory session's numbers.

    With ``keep_probes`` (the default) the walk keeps every request, the rows of ICMP errors and fragments
    and the first data segment of each run of a TCP connection; at the end the ICMP errors are attributed
    (``errors_icmp.attribute_errors`` / ``with_error_outcomes``), the streams are classified
    (``streams.streams``) and ``probes`` is the probe streams' rows (every request with ``all_streams``),
    as ``Capture.probes`` — and every analysis is computed on it (``STREAM_TABLES`` are in ``tables`` too).
    ``keep_probes=False`` keeps only the per-period metrics of every request stream, period by period
    (bounded memory for any file size; no stream selection, no ICMP-error outcomes)."""
    path = os.fspath(path)
    analyses = tuple(analyses)
    need_probes = keep_probes or any(a not in ("periods", "probe_periods") for a in analyses)
    per = {}
    if not need_probes:
        if "periods" in analyses:
            per["periods"] = _Periods(period_s, SOURCE_STREAM_KEYS)
        if "probe_periods" in analyses:
            per["probe_periods"] = _Periods(period_s, STREAM_KEYS)
    kept_probes = _Columns(("source", "destination"))
    kept_req = _Spill(_REQ_COLS)
    rare: list[pd.DataFrame] = []
    segments: list[pd.DataFrame] = []
    n_packets, first_ns, last_ns, n_chunks = 0, None, None, 0
    used: dict[str, set] = {"source": set(), "destination": set()}
    addresses: set = set()      # every address of the capture (the packets table's categories)
    attrs: dict = {}
    pattrs: dict = {}

    def counted(chunks):
        nonlocal n_packets, first_ns, last_ns, n_chunks
        for c in chunks:
            n_packets += len(c)
            n_chunks += 1
            if need_probes:
                addresses.update(c["src"].cat.categories)
            ts = c["ts_ns"].dropna()
            if len(ts):
                first_ns = int(ts.min()) if first_ns is None else min(first_ns, int(ts.min()))
                last_ns = int(ts.max()) if last_ns is None else max(last_ns, int(ts.max()))
            yield c

    for kept, req, p_attrs, c_attrs, upper, chunk in _iter_final_probes(
            counted(chunk_source(path, chunk_packets, window_bytes)), timeout_s, vantage, resend_window_s,
            reply_window_s):
        pattrs = pattrs or dict(p_attrs)
        attrs = dict(c_attrs)
        for c in used:
            used[c] |= set(kept[c].cat.remove_unused_categories().cat.categories)
        for acc in per.values():
            acc.add(kept, upper)
        if need_probes:
            if len(kept) or not len(kept_probes):
                kept_probes.add(kept)
                kept_req.add(req)         # to the spill file: read back column by column after the walk
            r = _rare_rows(chunk)
            if len(r):
                rare.append(r)
            d = _data_segments(chunk)
            if len(d):
                segments.append(d)
    if n_chunks:
        del kept, req, chunk          # the last window's probes and chunk (a chunk of packets) go now
    release_free_memory()
    # the in-memory probes table's categories: the addresses used in each column, in address order
    cats = {"protocol": list(PROBE_PROTOCOLS), "source": _sorted_addresses(used["source"]),
            "destination": _sorted_addresses(used["destination"])}
    tables: dict = {}
    probes = None
    span = (first_ns or 0, last_ns or 0)
    for name, acc in per.items():
        tables[name] = acc.table(cats)
    if need_probes and len(kept_probes):
        # the in-memory order: by time, then request frame (the batches come in time order: mostly as they are)
        ts0 = np.concatenate([np.asarray(a, np.int64) for a in kept_probes.cols["ts_ns"]])
        fr0 = np.concatenate([np.asarray(a, np.int64) for a in kept_probes.cols["request_frame"]])
        order = np.lexsort((fr0, ts0))
        del ts0, fr0
        order = None if _identity(order) else order
        probes = kept_probes.table(order)
        req = kept_req.finish(order)
        del order
        release_free_memory()
        assert tuple(probes.columns) == PROBE_COLUMNS
        probes.attrs.update(vantage=pattrs.get("vantage"), timeout_s=timeout_s, capture_end_ns=span[1], path=path)
        rare_rows = _concat_many(rare) if rare else _empty_packets(path)
        dtype = pd.CategoricalDtype(_sorted_addresses(addresses))
        rare_rows = rare_rows.assign(src=rare_rows["src"].astype(object).astype(dtype),
                                     dst=rare_rows["dst"].astype(object).astype(dtype))
        rare_rows.attrs.update(attrs)
        box = [probes]
        del probes                  # _select_streams lets go of the table without error outcomes
        probes, req, lazy, found = _select_streams(box, req, rare_rows, segments, path, all_streams,
                                                   stream_overrides, timeout_s)
        known = found.pop("_known")
        shared = found.pop("_shared")
        n_payload = int((lazy.lengths > 0).sum())
        # both probe tables parked while the analyses run on the few columns they read (when the probes are
        # every request they share all_probes' columns: parked once, read back once, shared again)
        p_attrs = dict(probes.attrs)
        parked_all = _park(found.pop("all_probes"))
        parked = parked_all if shared else _park(probes)
        del probes
        tables.update(found)
        release_free_memory()
        box = [req, lazy]
        del req, lazy                 # _on_probes lets go of them once the payload tables are made
        tables.update(_on_probes(parked, box, period_s, span, analyses, known,
                                 mtu_from=(tables["rare_packets"], tables["datagrams"])))
        release_free_memory()
        tables["all_probes"] = parked_all.frame()
        if shared:
            probes = tables["all_probes"].copy(deep=False)
        else:
            probes = parked.frame()
        probes.attrs = p_attrs
        del parked, parked_all
    else:
        n_payload = 0
    return ChunkedResult(probes, tables, n_packets, n_chunks, span, attrs, n_payload)


def _empty_packets(path) -> pd.DataFrame:
    """An empty packets table (the reader's columns), for a capture without ICMP errors or fragments."""
    return next(iter(chunk_source(path, 1, window_bytes=1 << 16))).iloc[:0]


def _select_streams(box, req, rare_rows, segments, path, all_streams, overrides, timeout_s):
    """ICMP errors attributed to every request (``box``: [the probes table]), the streams classified, the
    probe streams' rows kept: the in-memory session's ``all_probes``, ``icmp_errors``, ``streams`` and
    ``probes``."""
    probes = box.pop()
    attrs = dict(probes.attrs)
    errors = _err.attribute_errors(rare_rows, probes)
    # with_error_outcomes on the two columns it reads (it copies its table): the other columns are shared
    merged = _err.with_error_outcomes(probes[["outcome", "request_frame"]], errors)
    all_probes = probes.assign(**{c: merged[c] for c in merged.columns if c != "request_frame"})
    del merged, probes
    all_probes.attrs.update(attrs)
    icmp_errors = _err.icmp_errors(rare_rows, all_probes)
    if isinstance(req, pd.DataFrame):
        lazy = _LazyPayloads(path, req["payload_off"].to_numpy("int64", na_value=-1),
                             req["payload_caplen"].to_numpy("int32", na_value=0))
        req = req.drop(columns=["payload_off"])   # the payloads know where their bytes are: one copy
    else:                                         # spilled: read back for the rows each step asks
        lazy = _LazyPayloads(path, spilled=req)
    # the table parked in a temporary file while the steps below read it: each step gets the columns (and, for
    # the fingerprints, the rows of a few groups) it reads, made for it (what the analyses cache per table —
    # group ids, time orders — goes with that frame); the whole table is read back for the selection
    parked = _park(all_probes)
    del all_probes
    release_free_memory()
    known = {"payload_verdicts": _verdicts(parked.frame([*SOURCE_STREAM_KEYS, "ts_ns"]), lazy, by=SOURCE_STREAM_KEYS),
             "balance": _narrow(sources.balance_test, parked, _BALANCE_READS)}
    release_free_memory()
    fp = _fingerprints(parked, req, known["payload_verdicts"], known["balance"], lazy)
    release_free_memory()
    slim = _slim_packets(parked.frame(["request_frame", "ts_ns", "source", "destination"]), req, segments)
    slim.attrs.update(rare_rows.attrs)
    def classify(t, slim=slim):
        return _streams.streams(slim, t, fp, overrides=overrides or None)
    st = _narrow(classify, parked, _STREAMS_READS)
    del slim, classify
    release_free_memory()
    all_probes = parked.frame()
    del parked
    shared = True           # the probes share every column of all_probes
    if all_streams:
        chosen = all_probes
    else:
        kinds = ("probe",) if (st["kind"].astype(str) == "probe").any() else ("probe", "other")
        chosen = _streams.select_probe_streams(all_probes, st, kinds=kinds).reset_index(drop=True)
        every = len(chosen) == len(all_probes) and chosen.dtypes.equals(all_probes.dtypes)
        if every:
            chosen = all_probes.copy(deep=False)  # every row, in order: share the columns, not a second copy
        chosen.attrs = {**all_probes.attrs, "stream_kinds": kinds}
        if every:       # the probes are every request: the streams' fingerprints are theirs (as in memory)
            known["fingerprints"] = fp
        else:
            known = {}
            shared = False
    if len(chosen) != len(all_probes):
        # the chosen rows keep their order: find them by request frame (one probe per request frame)
        rows = np.flatnonzero(np.isin(all_probes["request_frame"].to_numpy("int64"),
                                      chosen["request_frame"].to_numpy("int64")))
        req = _req_take(req, rows)
        lazy = lazy.subset(rows)
    dg = _dg.datagrams(rare_rows)
    return chosen, req, lazy, {"all_probes": all_probes, "icmp_errors": icmp_errors, "streams": st,
                               "rare_packets": rare_rows, "datagrams": dg, "_known": known, "_shared": shared}


# ------------------------------------------------------------------------------ other traffic
def chunked_other_traffic(path, streams: pd.DataFrame, *, chunk_packets: int = CHUNK_PACKETS,
                          window_bytes: int = WINDOW_BYTES, top: int = 3) -> pd.DataFrame:
    """``streams.other_traffic`` of the whole capture from a second walk (the streams must be final before
    a packet's kind is known): each chunk's frames get their kind (``streams.packet_kinds``) and every
    frame that is not a probe stream's is counted per kind — frames, bytes, first and last time, the
    addresses taking part and the frames per address pair (memory: the distinct addresses and pairs)."""
    from ..schema import OTHER_TRAFFIC
    kinds = list(_streams.PACKET_KINDS)
    probe = kinds.index("probe")
    n_k = len(kinds)
    count = np.zeros(n_k, np.int64)
    nbytes = np.zeros(n_k, np.int64)
    first = np.full(n_k, np.iinfo(np.int64).max, np.int64)
    last = np.full(n_k, np.iinfo(np.int64).min, np.int64)
    talkers: list[set] = [set() for _ in kinds]
    pairs: dict = {}
    # a frame's kind is its own (packet_kinds): small chunks cost nothing here and bound the walk's memory
    for chunk in chunk_source(path, min(chunk_packets, OTHER_CHUNK_PACKETS), min(window_bytes, 64 << 20)):
        k = _streams.packet_kinds(chunk, streams).cat.codes.to_numpy("int64")
        m = k != probe
        if not m.any():
            continue
        k = k[m]
        count += np.bincount(k, minlength=n_k)
        nbytes += np.bincount(k, weights=chunk["wirelen"].to_numpy("int64")[m], minlength=n_k).astype(np.int64)
        ts = chunk["ts_ns"].to_numpy("float64", na_value=np.nan)[m]
        ok = ~np.isnan(ts)
        t = chunk["ts_ns"].to_numpy("int64", na_value=0)[m]
        np.minimum.at(first, k[ok], t[ok])
        np.maximum.at(last, k[ok], t[ok])
        cats = np.asarray(chunk["src"].cat.categories.astype(object), dtype=object)
        src = chunk["src"].cat.codes.to_numpy("int64")[m]
        dst = chunk["dst"].cat.codes.to_numpy("int64")[m]
        for a in (src, dst):
            u = np.unique(k[a >= 0] * (len(cats) + 1) + a[a >= 0])
            for kk, aa in zip((u // (len(cats) + 1)).tolist(), (u % (len(cats) + 1)).tolist()):
                talkers[kk].add(cats[aa])
        sel = src >= 0
        g = pd.DataFrame({"k": k[sel], "s": src[sel], "d": dst[sel]}).value_counts()
        for (kk, ss, dd), n in g.items():           # per address pair and kind, not per packet
            key = (kk, cats[ss], cats[dd] if dd >= 0 else None)
            pairs[key] = pairs.get(key, 0) + int(n)
    seen = [i for i in range(n_k) if i != probe and count[i]]
    rank = {a: i for i, a in enumerate(_sorted_addresses({x for x in set().union(*talkers) if x is not None}))}
    tops = []
    for i in seen:
        ps = [(n, rank.get(s, -1), -1 if d is None else rank.get(d, -1), s, d) for (kk, s, d), n in pairs.items() if kk == i]
        ps.sort(key=lambda r: (-r[0], r[1], r[2]))
        tops.append(", ".join(f"{s} > {d if d is not None else '?'} ({n})" for n, _, _, s, d in ps[:top]))
    none = first == np.iinfo(np.int64).max
    out = pd.DataFrame({
        "kind": [kinds[i] for i in seen], "talkers": [len(talkers[i]) for i in seen], "top_talkers": tops,
        "packets": count[seen], "bytes": nbytes[seen],
        "first_ns": pd.array([None if none[i] else int(first[i]) for i in seen], dtype="Int64"),
        "last_ns": pd.array([None if none[i] else int(last[i]) for i in seen], dtype="Int64")})
    for c in OTHER_TRAFFIC:
        if c.dtype == "category":
            out[c.name] = out[c.name].astype(str).astype("category") if len(out) else pd.Categorical([])
        elif c.dtype == "object":
            out[c.name] = out[c.name].astype(object)
        else:
            out[c.name] = out[c.name].astype(c.dtype)
    return out[[c.name for c in OTHER_TRAFFIC]]


def _on_probes(probes, box, period_s, span, analyses, known, mtu_from=None) -> dict:
    """The analyses of ``probes`` (a table, or a parked one: then each analysis reads a frame of the columns
    the analyses read, ``_ANALYSIS_READS``); ``box``: [request columns, payloads], emptied once the payload
    verdicts and the fingerprints are made (54 bytes a probe that the other analyses do not read)."""
    frames = _Frames(probes)
    want = set(analyses)
    first = [a for a in ("balance", "payload_verdicts", "fingerprints") if a in want] + \
        (["balance"] if "fingerprints" in want and "balance" not in want else [])
    out = probe_tables(frames, box[0], box[1], period_s, span, first, known=known)
    box.clear()
    frames.drop()
    release_free_memory()
    if "mtu" in analyses and mtu_from is not None:    # the kept ICMP-error and fragment rows as its packets
        rare, dg = mtu_from                            # first, alone: its temporaries are ~100 bytes a probe
        out["mtu"] = frames.run(lambda t: _mtu.path_mtu(t, packets=rare, datagrams=dg), _MTU_READS)
        release_free_memory()
    known = {**(known or {}), **out}
    out = probe_tables(frames, None, None, period_s, span, analyses, known=known)
    release_free_memory()
    if "periods" in analyses:
        out["periods"] = frames.run(lambda t: _err.periods_with_errors(metrics.period_metrics(t, period_s), t, period_s))
    if "probe_periods" in analyses:
        out["probe_periods"] = frames.run(lambda t: _err.periods_with_errors(
            metrics.period_metrics(t, period_s, by=STREAM_KEYS), t, period_s))
    return out


_ANALYSIS_READS = ("ts_ns", "protocol", "source", "destination", "port", "outcome", "rtt_us", "size", "reporter")
"""The probes' columns the per-probe analyses read (timing, gaps, sources, sizes, periods with their errors'
reporters, the balance test and the payload verdicts' keys): 29 bytes a probe of the table's 98."""
_MTU_READS = ("ts_ns", "protocol", "source", "destination", "port", "outcome", "size", "mtu", "request_frame",
              "reply_frame")
"""The probes' columns ``mtu.path_mtu`` reads (a frame of its own, made for it)."""


class _Frames:
    """The frames the analyses of one probes table run on: the table itself, or for a parked table one frame
    of ``_ANALYSIS_READS`` made once (the analyses' caches — group ids, orders — go with it) and, only if an
    analysis reads another column (``narrow_fallbacks``), the whole table."""

    def __init__(self, probes):
        self.probes = probes
        self._narrow: pd.DataFrame | None = None

    @property
    def parked(self) -> bool:
        return isinstance(self.probes, _Parked)

    def drop(self) -> None:
        """Let go of the shared frame (made again on the next use)."""
        self._narrow = None

    def __len__(self):
        return len(self.probes)

    def run(self, step, columns=None):
        """``step(frame)``; ``columns``: a frame of these columns, made for this step only."""
        global narrow_fallbacks
        if not self.parked:
            return step(self.probes)
        if columns is None and self._narrow is None:
            self._narrow = self.probes.frame(_ANALYSIS_READS)
        try:
            return step(self._narrow if columns is None else self.probes.frame(columns))
        except (KeyError, AttributeError):
            narrow_fallbacks += 1
            return step(self.probes.frame())


def probe_tables(probes, req, payloads, period_s, span, analyses, known: dict | None = None) -> dict:
    """The analyses of a probes table, as the in-memory session computes them: the one implementation the
    chunked and Dask drivers share. ``req``: the requests' header columns (fingerprint.request_columns);
    ``payloads``: their payload bytes (anything payload_verdicts takes); ``known``: tables of these very
    probes already computed ('balance', 'payload_verdicts', 'fingerprints'), used as they are."""
    out = dict(known or {})
    want = set(analyses)
    frames = probes if isinstance(probes, _Frames) else _Frames(probes)
    run = frames.run
    if "timing" in want:
        out["timing"] = run(lambda t: timing.timing_summary(t, span_ns=span))
    if "gaps" in want:
        out["gaps"] = run(lambda t: timing.find_gaps(t, span_ns=span))
    if "shares" in want:
        out["shares"] = run(sources.source_shares)
    if want & {"balance", "fingerprints"} and "balance" not in out:
        out["balance"] = run(sources.balance_test)
    if "alternation" in want:
        out["alternation"] = run(sources.alternation)
    if "source_quality" in want:
        out["source_quality"] = run(sources.source_quality)
    if "source_rate" in want:
        out["source_rate"] = run(lambda t: sources.source_rate(t, period_s))
    if "size_changes" in want:
        out["size_changes"] = run(sizes.size_changes)
    if want & {"payload_verdicts", "fingerprints"} and "payload_verdicts" not in out:
        out["payload_verdicts"] = run(lambda t: _verdicts(t, payloads))
    if "fingerprints" in want and "fingerprints" not in out:
        out["fingerprints"] = _fingerprints(frames.probes, req, out["payload_verdicts"], out["balance"], payloads)
    return {k: v for k, v in out.items() if k in want}
