"""Payload bytes of packets-table rows: the one place that knows where they live (the capture file a
table's ``attrs`` names, memory-mapped, decompressed or held from a stream). ``df.probekit.payloads()``
and every analysis that reads payload bytes come here."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .._io import capture_bytes
from .._jit import njit
from ..errors import ProbekitError

__all__ = ["payload_files", "payloads", "payload_buffer"]


def payload_files(df: pd.DataFrame):
    """(capture file path, row positions) for each file the table's rows come from."""
    if "capture" in df.columns and df.attrs.get("paths"):
        codes = df["capture"].cat.codes.to_numpy()
        for i, name in enumerate(df["capture"].cat.categories):
            rows = np.flatnonzero(codes == i)
            if rows.size:
                yield df.attrs["paths"][name], rows
        return
    path = df.attrs.get("path")
    if not path:
        raise ProbekitError("this table has no attrs['path']: payloads come from the capture file; "
                            "read it with probekit.read_capture or read_captures")
    yield path, np.arange(len(df))


def payloads(df: pd.DataFrame) -> pd.Series:
    """Captured L4 payload bytes of every row (b"" where none), sliced from the capture on demand: the
    table itself never holds packet bytes. A plain file is memory-mapped again; a compressed file is
    decompressed again up to the last payload asked for (the time of one decompression); a table read
    from a stream (stdin, a pipe, a file object) slices the bytes it holds."""
    off = df["payload_off"].to_numpy(dtype="int64", na_value=-1)
    length = df["payload_caplen"].to_numpy(dtype="int64", na_value=0)
    out = [b""] * len(df)
    for path, rows in payload_files(df):
        has = rows[(off[rows] >= 0) & (length[rows] > 0)]
        if not has.size:
            continue
        with capture_bytes(path, upto=int((off[has] + length[has]).max())) as buf:
            for r in has.tolist():
                out[r] = bytes(buf[off[r]:off[r] + length[r]])
    return pd.Series(out, index=df.index, name="payload", dtype=object)


def payload_buffer(df: pd.DataFrame, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The same bytes as :func:`payloads`, back to back without a Python object per row: ``(data,
    offsets)`` with ``data`` uint8 and ``offsets`` int64 of len(rows) + 1 entries (row i's payload is
    ``data[offsets[i]:offsets[i + 1]]``), gathered in one compiled pass per file straight from its memory
    map (a compressed file or a stream: from its bytes, as :func:`payloads`). ``rows``: row positions of
    ``df`` to take, in that order (all rows by default), without taking the table itself."""
    if rows is not None:
        rows = np.asarray(rows, np.int64)
    off = _column_at(df["payload_off"], rows, -1)
    length = _column_at(df["payload_caplen"], rows, 0)
    length = np.where((off >= 0) & (length > 0), length, 0)
    offsets = np.zeros(length.size + 1, np.int64)
    np.cumsum(length, out=offsets[1:])
    data = np.empty(int(offsets[-1]), np.uint8)
    if data.size:
        for path, at in _files_of(df, rows):
            has = at[length[at] > 0]
            if not has.size:
                continue
            with capture_bytes(path, upto=int((off[has] + length[has]).max())) as buf:
                _gather(buf, off[has], length[has], offsets[has], data)
    return data, offsets


def _column_at(col: pd.Series, rows: np.ndarray | None, na: int) -> np.ndarray:
    """``col`` at the row positions ``rows`` (all if None) as int64, ``na`` for <NA>: a nullable column is
    taken from its values and mask before converting (only the rows asked for are converted)."""
    a = col.array
    data, mask = getattr(a, "_data", None), getattr(a, "_mask", None)
    if rows is None or not isinstance(data, np.ndarray) or not isinstance(mask, np.ndarray):
        out = col.to_numpy(dtype="int64", na_value=na)
        return out if rows is None else out[rows]
    out = data[rows].astype(np.int64)
    out[mask[rows]] = na
    return out


def _files_of(df: pd.DataFrame, rows: np.ndarray | None):
    """:func:`payload_files` of the rows ``rows`` (positions into ``rows``; all of ``df`` if None)."""
    if rows is None:
        yield from payload_files(df)
        return
    if "capture" in df.columns and df.attrs.get("paths"):
        codes = df["capture"].cat.codes.to_numpy()[rows]
        for i, name in enumerate(df["capture"].cat.categories):
            at = np.flatnonzero(codes == i)
            if at.size:
                yield df.attrs["paths"][name], at
        return
    for path, _all in payload_files(df):   # one file: every row
        yield path, np.arange(rows.size)


@njit(nogil=True)
def _gather(buf, src_off, length, dst_off, out):  # pragma: no cover - compiled
    for i in range(src_off.shape[0]):
        n = length[i]
        s = src_off[i]
        d = dst_off[i]
        if s + n > buf.shape[0]:  # never for a table read from this file; keeps a stale table memory-safe
            n = max(0, buf.shape[0] - s)
        j = 0
        while j + 8 <= n:               # eight bytes a step (about 2x one a step; a slice copy is faster
            for t in range(8):          # still but takes seconds more to compile cold)
                out[d + j + t] = buf[s + j + t]
            j += 8
        while j < n:
            out[d + j] = buf[s + j]
            j += 1
