"""File bytes: a capture file as a read-only uint8 array, memory-mapped where the file allows it.

The one place probekit opens a capture's bytes (the reader, its reference backends and the payload
slicer all come here), so that what is no file is reported the same way everywhere.
"""
from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from .errors import CaptureError

__all__ = ["open_bytes"]


@contextmanager
def open_bytes(path: str) -> Iterator[np.ndarray]:
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
