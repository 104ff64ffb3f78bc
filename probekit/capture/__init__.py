"""Capture files → the packets table. Container formats, the link-type registry, the decoder and the
reference backends live here; nothing in this package knows about probes or analyses."""
from .reader import read_capture

__all__ = ["read_capture"]
