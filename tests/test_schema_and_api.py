"""The public surface: names pinned, schema documented (dependencies: tests/test_packaging.py)."""
from __future__ import annotations

from pathlib import Path

import probekit
from probekit.schema import PACKET_COLUMNS, PACKETS, check_packets, empty_packets, markdown

ROOT = Path(__file__).resolve().parents[1]

PUBLIC = {
    "read_capture", "open_capture", "read_captures", "convert", "dataset_probes", "Capture", "dissect", "match_probes",
    "period_metrics", "audit_cloudwatch",
    "read_cloudwatch_csv", "read_cloudwatch", "inter_arrivals", "timing_summary", "find_gaps", "source_shares", "balance_test",
    "alternation", "source_rate", "source_quality", "size_changes", "request_payloads", "payload_tests",
    "payload_verdicts", "ent", "tcp_connections", "fingerprint", "STREAM", "PROBE_LEVEL", "STREAM_KEYS",
    "SOURCE_STREAM_KEYS", "Monitor", "Probe",
    "SpecError", "PROBES", "PERIODS", "CaptureError", "CaptureWarning", "BackendError", "ProbekitError", "PACKETS",
    "PACKET_COLUMNS", "__version__",
}


def test_public_names_are_pinned():
    assert set(probekit.__all__) == PUBLIC
    for name in PUBLIC:
        assert hasattr(probekit, name), name


def test_docs_list_the_schemas_verbatim():
    from probekit.schema import PERIODS, PROBES
    for name, cols in (("packets", PACKETS), ("probes", PROBES), ("periods", PERIODS)):
        doc = (ROOT / "docs" / f"{name}-table.md").read_text()
        assert markdown(cols) in doc, f"regenerate with `python -m probekit.schema {name}`"


def test_empty_table_follows_schema():
    df = empty_packets()
    check_packets(df)
    assert tuple(df.columns) == PACKET_COLUMNS
