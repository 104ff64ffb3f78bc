"""read_capture: one capture file → the packets table, through the chosen backend."""
from __future__ import annotations

import os
import sys
import warnings

import pandas as pd

from .. import _io
from .._io import open_bytes
from ..errors import CaptureError, CaptureWarning
from ._frames import index_frames
from ._table import decode_frames
from .linktypes import linktype_name

__all__ = ["read_capture", "open_bytes"]

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

    ``df.attrs`` carries ``path``, ``format``, ``compression``, ``interfaces`` and ``notes`` (salvage
    notes). For compressed or streamed input ``payload_off`` counts in the decompressed stream; the
    bytes of a stream (stdin, a pipe, a file object) are held while the table lives, so that
    ``df.probekit.payloads()`` works (one copy of the decompressed capture in memory).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if backend != "fast":
        return _read_other(source, backend, strict, decapsulate)
    with _io.open_capture_bytes(source, retain=True) as ob:
        buf = ob.buf
        try:
            idx = index_frames(buf, ob.name)
        except CaptureError as e:
            raise _explain(e, ob) from None
        stop = _stop_of(idx, ob)
        if stop is not None:
            if strict:
                raise stop
            note = f"salvaged {len(idx)} whole record(s); stopped: {stop}"
            idx.notes.append(note)
            warnings.warn(note, CaptureWarning, stacklevel=2)
        for note in ob.notes:
            idx.notes.append(note)
            warnings.warn(f"{ob.name}: {note}", CaptureWarning, stacklevel=2)
        bar = _progress_bar(buf.shape[0], len(idx), progress)
        try:
            df = decode_frames(buf, idx, bar, decapsulate=decapsulate)
        finally:
            if bar is not None:
                bar.close()
        ref = ob.ref
    df.attrs.update(
        path=ref,
        format=idx.format,
        compression=ob.compression,
        interfaces=[dict(linktype=i.linktype, linktype_name=linktype_name(i.linktype), snaplen=i.snaplen,
                         units_per_s=i.units_per_s, tsoffset_s=i.tsoffset_s, name=i.name, section=i.section)
                    for i in idx.interfaces],
        notes=list(idx.notes),
    )
    return df


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


def _read_other(source, backend, strict, decapsulate=True):
    """The reference backends read a file by name: a stream is spooled to a temporary file first."""
    with _io.spooled_path(source) as path:
        if backend == "dpkt":
            from ._dpkt import read_dpkt
            df = read_dpkt(path, strict=strict, decapsulate=decapsulate)
        else:
            from ._pyshark import read_pyshark
            df = read_pyshark(path)
    if not isinstance(source, (str, os.PathLike)):
        df.attrs["path"] = _io.source_name(source)
    return df


def _progress_bar(nbytes: int, nframes: int, progress):
    if progress is None:
        progress = nbytes > PROGRESS_BYTES and sys.stderr.isatty()
    if not progress:
        return None
    from tqdm import tqdm
    return tqdm(total=nframes, unit="pkt", unit_scale=True, desc="decoding", leave=False)
