"""Every table-returning public function returns exactly its declared table (probekit.schema.TABLES):
the declared columns in order, with their dtypes, on an empty capture and on real shipped ones.

Adding a table: declare it in probekit/schema.py, add one entry to schema.TABLES, and one entry to
PRODUCERS below (table name → a function of (packets, probes) returning the table)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import probekit
from probekit import schema
from probekit.analysis import cloudwatch as _cwa
from probekit.analysis import connections as _conn
from probekit.analysis import datagrams as _dg
from probekit.analysis import errors_icmp as _err
from probekit.analysis import mtu as _mtu
from probekit.analysis import payload as _pay
from probekit.analysis import streams as _streams
from probekit.schema import SOURCE_STREAM_KEYS, STREAM_KEYS, check_table, empty_packets
from probekit.synth import read_truth

ROOT = Path(__file__).resolve().parents[1]
CAPTURES = ROOT / "captures"


def _span(df):
    return df.probekit.span_ns() if len(df) and df["ts_ns"].notna().any() else None


PRODUCERS = {
    "packets": lambda df, pr: df,
    "probes": lambda df, pr: pr,
    "periods": lambda df, pr: probekit.period_metrics(pr, 30),
    "periods/stream": lambda df, pr: probekit.period_metrics(pr, 60, by=STREAM_KEYS),
    "inter_arrivals": lambda df, pr: probekit.inter_arrivals(pr),
    "timing_summary": lambda df, pr: probekit.timing_summary(pr, span_ns=_span(df)),
    "timing_summary/stream": lambda df, pr: probekit.timing_summary(pr, by=STREAM_KEYS),
    "gaps": lambda df, pr: probekit.find_gaps(pr, span_ns=_span(df)),
    "source_shares": lambda df, pr: probekit.source_shares(pr),
    "balance": lambda df, pr: probekit.balance_test(pr),
    "alternation": lambda df, pr: probekit.alternation(pr),
    "source_rate": lambda df, pr: probekit.source_rate(pr, 30),
    "source_quality": lambda df, pr: probekit.source_quality(pr),
    "size_changes": lambda df, pr: probekit.size_changes(pr, configured_at_ns=0),
    "orphans": lambda df, pr: probekit.match_probes(df, keep_orphans=True)[1],
    "connections": lambda df, pr: _conn.connections(df),
    "payload_tests": lambda df, pr: probekit.payload_tests(_pay.request_payload_buffer(df, pr), pr["ts_ns"]),
    "payload_verdicts": lambda df, pr: probekit.payload_verdicts(pr, _pay.request_payload_buffer(df, pr)),
    "fingerprints": lambda df, pr: probekit.fingerprint(df, pr),
    "streams": lambda df, pr: _streams.streams(df, pr),
    "other_traffic": lambda df, pr: _streams.other_traffic(df, _streams.streams(df, pr)),
    "datagrams": lambda df, pr: _dg.datagrams(df),
    "icmp_errors": lambda df, pr: _err.icmp_errors(df, pr),
    "probe_errors": lambda df, pr: _err.attribute_errors(df, pr),
    "mtu_sizes": lambda df, pr: _mtu.size_outcomes(pr, packets=df),
    "mtu": lambda df, pr: _mtu.path_mtu(pr, packets=df),
    "cloudwatch": lambda df, pr: _cloudwatch(),
    "audit": lambda df, pr: probekit.audit_cloudwatch(pr, _cloudwatch(), packets=df),
    "audit_summary": lambda df, pr: _cwa.audit_summary(probekit.audit_cloudwatch(pr, _cloudwatch(), packets=df)),
}
# tables that may be empty on a real capture without fragments, errors, other traffic or a CloudWatch match
MAY_BE_EMPTY = {"orphans", "size_changes", "gaps", "datagrams", "icmp_errors", "probe_errors", "other_traffic",
                "audit", "audit_summary"}


def _cloudwatch():
    """The shipped target-down capture's CloudWatch export (AWS's get-metric-data format)."""
    return probekit.read_cloudwatch(CAPTURES / "target-down.pcap.cloudwatch.json",
                                    monitor=CAPTURES / "target-down.pcap.monitor.json")
INPUTS = ["empty", "healthy.pcap", "size-change.pcap", "lossy+size-change.pcapng", "tcp-stops-after-activation.pcap",
          "eni-failure.pcap", "port-closed.pcap"]


def _inputs(name):
    df = empty_packets() if name == "empty" else probekit.read_capture(CAPTURES / name)
    return df, probekit.match_probes(df)


_cache: dict = {}


@pytest.mark.parametrize("producer", sorted(PRODUCERS))
@pytest.mark.parametrize("capture", INPUTS)
def test_function_returns_its_declared_table(producer, capture):
    if capture not in _cache:
        _cache[capture] = _inputs(capture)
    df, pr = _cache[capture]
    out = PRODUCERS[producer](df, pr)
    check_table(out, schema.TABLES[producer.split("/")[0]][0])
    if capture != "empty" and producer not in MAY_BE_EMPTY:
        assert len(out) > 0, "a real capture gives rows"


def test_every_registered_table_has_a_producer():
    assert {p.split("/")[0] for p in PRODUCERS} | {"truth"} == set(schema.TABLES)


@pytest.mark.parametrize("name", ["healthy.pcap", "lossy.pcapng"])
def test_truth_sidecar_is_its_declared_table(name):
    check_table(read_truth(CAPTURES / name), schema.TRUTH)


def test_source_keys_follow_by():
    df, pr = _inputs("healthy.pcap")
    assert "source" not in probekit.period_metrics(pr, 30, by=STREAM_KEYS).columns
    assert "source" in probekit.timing_summary(pr, by=SOURCE_STREAM_KEYS).columns
    with pytest.raises(AssertionError, match="missing"):
        check_table(probekit.timing_summary(pr).drop(columns="probes"), schema.TIMING_SUMMARY)


def test_docs_tables_md_is_generated_from_the_schema():
    assert (ROOT / "docs" / "tables.md").read_text() == schema.tables_markdown(), \
        "regenerate: python -m probekit.schema --all > docs/tables.md"


@pytest.mark.parametrize("backend", ["fast", "dpkt"])
def test_read_capture_sets_the_same_attrs_for_every_backend(tmp_path, backend):
    """A cut file: every backend's table carries the one salvage note, set by read_capture alone."""
    import warnings
    data = (CAPTURES / "healthy.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:5000])
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        df = probekit.read_capture(cut, backend=backend)
    ref = probekit.read_capture(CAPTURES / "healthy.pcap", backend="fast")
    assert set(df.attrs) == set(ref.attrs) == {"path", "format", "compression", "backend", "interfaces", "notes"}
    assert df.attrs["backend"] == backend and len(df.attrs["notes"]) == 1 and "salvaged" in df.attrs["notes"][0]
    assert sum("salvaged" in str(x.message) for x in w) == 1
    assert df.attrs["interfaces"] == ref.attrs["interfaces"]


@pytest.mark.parametrize("distinct", [1, 2, 3, 500])
def test_factorize_sorted_equals_numpy_unique(distinct):
    """The one/two-value shortcut and the hash path give np.unique's sorted uniques and inverse."""
    from probekit.schema import factorize_sorted
    rng = np.random.default_rng(distinct)
    pool = rng.choice(2**32, size=distinct, replace=False).astype(np.uint32)
    for keys in (pool[rng.integers(0, distinct, 5000)], pool[rng.integers(0, distinct, 3)]):
        uniq, inv = factorize_sorted(keys)
        u, i = np.unique(keys, return_inverse=True)
        assert np.array_equal(uniq, u) and np.array_equal(inv, i) and uniq.dtype == keys.dtype


@pytest.mark.parametrize("rows", [[], [0, 1, 2, 3, 4, 5, 6, 7], [1, 3, 5, 7], [0, 1, 2, 6, 7]])
def test_sparse_at_holds_the_values_at_their_rows(rows):
    """A block index where runs are long, an integer index where they are short; same values either way."""
    from probekit.schema import SPARSE, SPARSE_COUNT, sparse_at
    rows = np.array(rows, dtype=np.int64)
    for dtype, vals in ((SPARSE, rows * 1.5 + 1), (SPARSE_COUNT, rows % 3 + 1)):
        a = sparse_at(vals, rows, 8, dtype)
        assert str(a.dtype) == dtype
        dense = np.full(8, a.fill_value, dtype=object)
        dense[rows] = vals
        assert [x if x == x else None for x in a.to_numpy(dtype=object)] == [x if x == x else None for x in dense]
        runs = 0 if not len(rows) else 1 + int(np.count_nonzero(np.diff(rows) != 1))
        assert a.nbytes <= a.sp_values.nbytes + min(8 * runs, 4 * len(rows))
