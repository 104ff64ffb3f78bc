"""probekit: read, generate and analyse network-monitor probe captures.

The public API is this module's ``__all__`` (pinned by tests/test_schema_and_api.py). It is loaded
lazily: ``import probekit`` imports nothing heavy, and each public name imports its own module on first
use (``probekit.read_capture`` loads the reader only; ``probekit.match_probes`` the matcher), so that the
command line starts at once and a script pays only for what it uses.
"""
from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module (relative to this package) that defines it
_PUBLIC: dict[str, str] = {
    "read_capture": ".capture.reader",
    "open_capture": ".session",
    "read_captures": ".scale",
    "convert": ".scale",
    "dataset_probes": ".scale",
    "Capture": ".session",
    "dissect": ".capture._pyshark",
    "match_probes": ".analysis.match",
    "period_metrics": ".analysis.metrics",
    "audit_cloudwatch": ".analysis.cloudwatch",
    "read_cloudwatch_csv": ".capture.cloudwatch",
    "read_cloudwatch": ".capture.cloudwatch",
    "inter_arrivals": ".analysis.timing",
    "timing_summary": ".analysis.timing",
    "find_gaps": ".analysis.timing",
    "source_shares": ".analysis.sources",
    "balance_test": ".analysis.sources",
    "alternation": ".analysis.sources",
    "source_rate": ".analysis.sources",
    "source_quality": ".analysis.sources",
    "size_changes": ".analysis.sizes",
    "request_payloads": ".analysis.payload",
    "payload_tests": ".analysis.payload",
    "payload_verdicts": ".analysis.payload",
    "ent": ".analysis.payload",
    "tcp_connections": ".analysis.tcp",
    "fingerprint": ".analysis.fingerprint",
    "STREAM": ".analysis.metrics",
    "PROBE_LEVEL": ".analysis.metrics",
    "STREAM_KEYS": ".schema",
    "SOURCE_STREAM_KEYS": ".schema",
    "Monitor": ".spec",
    "Probe": ".spec",
    "SpecError": ".spec",
    "PROBES": ".schema",
    "PERIODS": ".schema",
    "CaptureError": ".errors",
    "CaptureWarning": ".errors",
    "BackendError": ".errors",
    "ProbekitError": ".errors",
    "PACKETS": ".schema",
    "PACKET_COLUMNS": ".schema",
}

__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name: str) -> Any:
    """Import the module of a public name on first use and keep the name here (PEP 562). A subpackage or
    module (``probekit.schema``, ``probekit.plots``) is imported on first use too, as it was eagerly before."""
    module = _PUBLIC.get(name)
    if module is None:
        if not name.startswith("__") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
            return importlib.import_module(f".{name}", __name__)
        raise AttributeError(f"module 'probekit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    if module not in (".errors", ".schema", ".spec"):
        # a table-returning name: make sure df.probekit (the pandas accessor) is registered
        importlib.import_module(".accessor", __name__)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from .analysis.cloudwatch import audit_cloudwatch
    from .analysis.fingerprint import fingerprint
    from .analysis.match import match_probes
    from .analysis.metrics import PROBE_LEVEL, STREAM, period_metrics
    from .analysis.payload import ent, payload_tests, payload_verdicts, request_payloads
    from .analysis.sizes import size_changes
    from .analysis.sources import alternation, balance_test, source_quality, source_rate, source_shares
    from .analysis.tcp import tcp_connections
    from .analysis.timing import find_gaps, inter_arrivals, timing_summary
    from .capture._pyshark import dissect
    from .capture.cloudwatch import read_cloudwatch, read_cloudwatch_csv
    from .capture.reader import read_capture
    from .errors import BackendError, CaptureError, CaptureWarning, ProbekitError
    from .scale import convert, dataset_probes, read_captures
    from .schema import PACKET_COLUMNS, PACKETS, PERIODS, PROBES, SOURCE_STREAM_KEYS, STREAM_KEYS
    from .session import Capture, open_capture
    from .spec import Monitor, Probe, SpecError
