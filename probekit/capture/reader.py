"""read_capture: one capture file → the packets table, through the chosen backend."""
from __future__ import annotations

import mmap
import os
import sys
import warnings
from contextlib import contextmanager

import numpy as np
import pandas as pd

from ..errors import CaptureError, CaptureWarning
from ._frames import index_frames
from ._table import decode_frames
from .linktypes import linktype_name

__all__ = ["read_capture", "open_bytes"]

BACKENDS = ("fast", "dpkt", "pyshark")
PROGRESS_BYTES = 50 * 1024 * 1024


def read_capture(path, *, backend: str = "fast", strict: bool = False, progress: bool | None = None
                 ) -> pd.DataFrame:
    """Read a pcap or pcapng file into the packets table (see ``probekit.schema.PACKETS``).

    backend: ``"fast"`` (compiled record walk and decoder, the default), ``"dpkt"`` (dpkt objects, the
    reference) or ``"pyshark"`` (real tshark dissection; slow, for cross-checks).
    strict: a file cut short or corrupt part-way raises CaptureError instead of returning every whole
    record before the damage with a CaptureWarning.
    progress: show a tqdm bar; default: only for files over 50 MB when stderr is a terminal.

    ``df.attrs`` carries ``path``, ``format``, ``backend``, ``interfaces`` and ``notes`` (salvage
    notes), set here alone, the same for every backend.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    path = os.fspath(path)
    if backend == "dpkt":
        from ._dpkt import read_dpkt
        df, idx = read_dpkt(path, strict=strict)
        _salvage_note(idx, strict)
    elif backend == "pyshark":
        from ._pyshark import read_pyshark
        df, idx = read_pyshark(path)
        _salvage_note(idx, strict)
    else:
        with open_bytes(path) as buf:
            idx = index_frames(buf, path)
            _salvage_note(idx, strict)
            bar = _progress_bar(buf.shape[0], len(idx), progress)
            try:
                df = decode_frames(buf, idx, bar)
            finally:
                if bar is not None:
                    bar.close()
    df.attrs.update(
        path=path,
        format=idx.format,
        backend=backend,
        interfaces=[dict(linktype=i.linktype, linktype_name=linktype_name(i.linktype), snaplen=i.snaplen,
                         units_per_s=i.units_per_s, tsoffset_s=i.tsoffset_s, name=i.name, section=i.section)
                    for i in idx.interfaces],
        notes=list(idx.notes),
    )
    return df


def _salvage_note(idx, strict: bool) -> None:
    """A file cut short: raise (strict) or note and warn that the whole records before it were kept."""
    if idx.stop is not None:
        if strict:
            raise idx.stop
        note = f"salvaged {len(idx)} whole record(s); stopped: {idx.stop}"
        idx.notes.append(note)
        warnings.warn(note, CaptureWarning, stacklevel=3)


@contextmanager
def open_bytes(path: str):
    """The file's bytes as a read-only uint8 array (memory-mapped); CaptureError for what is no file."""
    if os.path.isdir(path):
        raise CaptureError(path, None, "is a directory, not a capture file")
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise CaptureError(path, None, "no such file") from None
    except PermissionError:
        raise CaptureError(path, None, "permission denied") from None
    except OSError as e:
        raise CaptureError(path, None, f"cannot open: {e.strerror or e}") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            yield np.zeros(0, np.uint8)
            return
        try:
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):  # pipes, special files: read them whole
            yield np.frombuffer(f.read(), np.uint8)
            return
        try:
            arr = np.frombuffer(mm, np.uint8)
            yield arr
        finally:
            del arr
            try:
                mm.close()
            except BufferError:  # a caller still holds a view; the map closes when it is freed
                pass


def _progress_bar(nbytes: int, nframes: int, progress):
    if progress is None:
        progress = nbytes > PROGRESS_BYTES and sys.stderr.isatty()
    if not progress:
        return None
    from tqdm import tqdm
    return tqdm(total=nframes, unit="pkt", unit_scale=True, desc="decoding", leave=False)
