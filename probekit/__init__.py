"""probekit: read, generate and analyse network-monitor probe captures.

The public API is this module's ``__all__`` (pinned by tests/test_public_api.py).
"""
from .analysis.fingerprint import fingerprint
from .analysis.match import match_probes
from .analysis.payload import ent, payload_tests, payload_verdicts, request_payloads
from .analysis.metrics import audit_cloudwatch, period_metrics, read_cloudwatch_csv
from .analysis.sizes import size_changes
from .analysis.tcp import tcp_connections
from .analysis.sources import alternation, balance_test, source_quality, source_rate, source_shares
from .analysis.timing import find_gaps, inter_arrivals, timing_summary
from .capture import read_capture
from .capture._pyshark import dissect
from .scale import convert, dataset_probes, read_captures
from .session import Capture, open_capture
from .spec import Monitor, Probe, SpecError
from .errors import BackendError, CaptureError, CaptureWarning, ProbekitError
from .schema import PACKETS, PACKET_COLUMNS, PERIODS, PROBES, SOURCE_STREAM_KEYS, STREAM_KEYS
from . import accessor as _accessor  # noqa: F401 - registers df.probekit

__version__ = "0.1.0"

_DEPRECATED = {"STREAM": ("SOURCE_STREAM_KEYS", SOURCE_STREAM_KEYS), "PROBE_LEVEL": ("STREAM_KEYS", STREAM_KEYS)}


def __getattr__(name):
    """Deprecated names (removed in the release after 0.2): STREAM → SOURCE_STREAM_KEYS,
    PROBE_LEVEL → STREAM_KEYS."""
    if name in _DEPRECATED:
        import warnings
        new, value = _DEPRECATED[name]
        warnings.warn(f"probekit.{name} is deprecated; use probekit.{new}", DeprecationWarning, stacklevel=2)
        return value
    raise AttributeError(f"module 'probekit' has no attribute {name!r}")

__all__ = [
    "read_capture",
    "open_capture",
    "read_captures",
    "convert",
    "dataset_probes",
    "Capture",
    "dissect",
    "match_probes",
    "period_metrics",
    "audit_cloudwatch",
    "read_cloudwatch_csv",
    "inter_arrivals",
    "timing_summary",
    "find_gaps",
    "source_shares",
    "balance_test",
    "alternation",
    "source_rate",
    "source_quality",
    "size_changes",
    "request_payloads",
    "payload_tests",
    "payload_verdicts",
    "ent",
    "tcp_connections",
    "fingerprint",
    "STREAM",
    "PROBE_LEVEL",
    "STREAM_KEYS",
    "SOURCE_STREAM_KEYS",
    "Monitor",
    "Probe",
    "SpecError",
    "PROBES",
    "PERIODS",
    "CaptureError",
    "CaptureWarning",
    "BackendError",
    "ProbekitError",
    "PACKETS",
    "PACKET_COLUMNS",
    "__version__",
]
