"""Capture files → the packets table. Container formats, the link-type registry, the decoder and the
reference backends live here; nothing in this package knows about probes or analyses."""
from .reader import iter_packet_chunks, read_capture

__all__ = ["iter_packet_chunks", "read_capture"]
