"""probekit: read, generate and analyse network-monitor probe captures.

The public API is this module's ``__all__`` (pinned by tests/test_public_api.py).
"""
from .capture import read_capture
from .errors import BackendError, CaptureError, CaptureWarning, ProbekitError
from .schema import PACKETS, PACKET_COLUMNS
from . import accessor as _accessor  # registers df.probekit

__version__ = "0.1.0"

__all__ = [
    "read_capture",
    "CaptureError",
    "CaptureWarning",
    "BackendError",
    "ProbekitError",
    "PACKETS",
    "PACKET_COLUMNS",
    "__version__",
]
