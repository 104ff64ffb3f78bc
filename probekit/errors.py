"""probekit's exceptions and warnings: every one names the file, the byte offset and the problem."""
from __future__ import annotations

import os

__all__ = ["ProbekitError", "CaptureError", "CaptureWarning", "BackendError"]


class ProbekitError(Exception):
    """Base class of every error probekit raises on purpose."""


class CaptureError(ProbekitError):
    """A capture file cannot be read (or, with ``strict=True``, not read whole).

    Attributes: ``path``, ``offset`` (byte offset in the file, or None when it is not about a
    position) and ``reason`` (what is wrong, in words).
    """

    def __init__(self, path: str | os.PathLike | None, offset: int | None, reason: str):
        self.path = None if path is None else os.fspath(path)
        self.offset = offset
        self.reason = reason
        super().__init__(self._message())

    def _message(self) -> str:
        where = self.path if self.path is not None else "<capture>"
        if self.offset is not None:
            where += f": byte offset {self.offset}"
        return f"{where}: {self.reason}"


class CaptureWarning(UserWarning):
    """Something in a capture was salvaged or skipped; the message says file, offset and what."""


class BackendError(ProbekitError):
    """A reader backend cannot run (for example tshark is not installed); the message names the fix."""
