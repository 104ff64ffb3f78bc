"""Fingerprints from per-stream aggregates equal the implementation before issue 16
(tests/reference_fingerprint.py): the same tool and the same evidence text for every stream of every
shipped capture, the real corpus and captures of other tools."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import probekit
import reference_fingerprint as RF
from conftest import REAL, real_captures, require_real_captures
from helpers import capwriter as W
from probekit.analysis import payload as P
from probekit.analysis.fingerprint import fingerprint, request_columns, request_floats, stream_features
from probekit.schema import FINGERPRINTS, check_table
from test_payload_speed import SHIPPED, assert_verdicts_equal
from test_payload_tcp import _icmp_frames, _syn_frames

ROOT = Path(__file__).resolve().parents[1]


def _reference_fingerprint(df, pr):
    """The old fingerprint with its one bug fixed: it zipped the probes' groupby (categorical order of
    the addresses) with the verdict table's groupby (its keys had become strings: text order), so where
    the two orders differ (9.9.9.9 sorts before 192.168.0.100 as an address, after it as text; e.g.
    tcpdump/tfo-5c1fa7f9ae91.pcap) a stream got its neighbour's verdict. Here the verdict table's keys
    get the probes' categories back, which makes both orders the same; nothing else changes."""
    orig = RF.payload_verdicts

    def typed(probes, payloads, by):
        v = orig(probes, payloads, by=by)
        for c in ("protocol", "source", "destination"):
            if isinstance(probes[c].dtype, pd.CategoricalDtype):
                v[c] = pd.Categorical(v[c], categories=probes[c].cat.categories)
        return v
    RF.payload_verdicts = typed
    try:
        return RF.fingerprint(df, pr)
    finally:
        RF.payload_verdicts = orig


def compare(df: pd.DataFrame) -> int:
    pr = df.probekit.probes()
    new = fingerprint(df, pr)
    check_table(new, FINGERPRINTS)
    ref = _reference_fingerprint(df, pr)
    if pr.empty:
        assert new.empty and ref.empty
        return 0
    assert_verdicts_equal(new, ref)
    # what a session passes: its verdicts and balance, computed once
    v = P.payload_verdicts(pr, P.request_payload_buffer(df, pr))
    assert fingerprint(df, pr, verdicts=v, balance=probekit.balance_test(pr)).equals(new)
    # the compiled per-stream features, from the request columns or their float arrays, equal a groupby
    want = RF.stream_features(pr, request_columns(df, pr)).astype("float64")
    for req in (request_columns(df, pr), request_floats(df, pr)):
        feats = stream_features(pr, req)[0][list(RF.FEATURES)].astype("float64")
        pd.testing.assert_frame_equal(feats, want, check_exact=True)
    return len(new)


def _read(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", probekit.CaptureWarning)
        return probekit.read_capture(path)


@pytest.mark.parametrize("rel", SHIPPED)
def test_equal_to_reference_on_shipped_captures(rel):
    # every shipped capture has a stream to fingerprint (the UDP tracers' too, since UDP probes are matched)
    assert compare(_read(ROOT / rel)) > 0


def test_equal_to_reference_on_the_real_corpus():
    require_real_captures()
    streams = 0
    for rel in real_captures():
        try:
            df = _read(REAL / rel)
        except probekit.CaptureError:
            continue
        streams += compare(df)
    assert streams > 10


@pytest.mark.parametrize("frames", [
    lambda r: _icmp_frames([bytes(48)] * 30),
    lambda r: _icmp_frames([b"abcdefghijklmnopqrstuvwabcdefghi"] * 30),
    lambda r: _icmp_frames([r.integers(0, 256, 48, dtype=np.uint8).tobytes()] * 30, same_ipid=True),
    lambda r: _icmp_frames([r.integers(0, 256, 48, dtype=np.uint8).tobytes() for _ in range(30)]),
    lambda r: _syn_frames([b"X" * 36] * 30, 512, lambda i: 2000 + i, lambda i: 1000 * i),
    lambda r: _syn_frames([b"X" * 36] * 30, 512, lambda i: (65530 + i) % 65536, lambda i: 1000 * i),  # port wraps
    lambda r: _syn_frames([r.integers(0, 256, 36, dtype=np.uint8).tobytes()] * 30, 1480, lambda i: 5555,
                          lambda i: 777),
    lambda r: _syn_frames([b""] * 30, 1024, lambda i: 3000 + 7 * i, lambda i: 99 * i),
    lambda r: _syn_frames([r.integers(0, 256, 36, dtype=np.uint8).tobytes() for _ in range(30)],
                          (1024, 2048)[0], lambda i: 3000 + i, lambda i: 5 * i),
], ids=["fping", "windows", "nping-icmp", "random-icmp", "hping3", "hping3-wrap", "nping-tcp", "connect",
        "random-tcp"])
def test_equal_to_reference_on_other_tools(tmp_path, frames):
    p = tmp_path / "t.pcap"
    p.write_bytes(W.pcap(frames(np.random.default_rng(1))))
    assert compare(probekit.read_capture(p)) == 1


def test_each_stream_gets_its_own_verdict():
    """The old implementation's misalignment (see _reference_fingerprint) is gone: on the capture where it
    showed, the SYN without payload is called so, and the 2-byte one gets its own verdict."""
    require_real_captures()
    df = probekit.read_capture(REAL / "tcpdump" / "tfo-5c1fa7f9ae91.pcap")
    pr = df.probekit.probes()
    f = fingerprint(df, pr).set_index("source")
    v = P.payload_verdicts(pr, P.request_payload_buffer(df, pr)).set_index("source")
    assert v.loc["9.9.9.9", "length"] == 0 and f.loc["9.9.9.9", "evidence"].startswith("SYN without payload")
    assert f.loc["192.168.0.100", "evidence"].startswith(f"payload verdict {v.loc['192.168.0.100', 'verdict']}")


_KERNELS = ("_stream_pass", "_val", "_tally", "_from_counts")


def _features_table(pr, req):
    return stream_features(pr, req)[0][list(RF.FEATURES)].astype("float64")


def _odd_values(df):
    """Probes and request columns with values the group pass cannot count (a fraction, a size over 65535,
    <NA>s): those streams' values are sorted instead."""
    pr = df.probekit.probes().copy()
    req = request_columns(df, pr)
    win = req["tcp_win"].astype("float64")
    win.iloc[::5] += 0.5
    req["tcp_win"] = win
    size = pr["size"].copy()
    size.iloc[1::7] = 70_000
    size.iloc[2::11] = pd.NA
    pr["size"] = size
    ttl = req["ttl"].astype("float64")
    ttl.iloc[3::4] = np.nan
    ttl.iloc[::9] = -1.0
    req["ttl"] = ttl
    return pr, req


@pytest.mark.parametrize("rel", ["captures/port-closed.pcap", "captures/lossy+size-change.pcapng"])
def test_group_pass_equals_its_plain_python_run(monkeypatch, rel):
    """The compiled group pass and its helpers equal their plain-Python run, on a shipped capture and on
    values that take the sorting path."""
    df = _read(ROOT / rel)
    cases = [(df.probekit.probes(), None), _odd_values(df)]
    cases[0] = (cases[0][0], request_columns(df, cases[0][0]))
    compiled = [_features_table(pr, req) for pr, req in cases]
    import probekit.analysis.fingerprint as F
    for name in _KERNELS:
        monkeypatch.setattr(F, name, getattr(F, name).py_func)
    for (pr, req), want in zip(cases, compiled):
        pd.testing.assert_frame_equal(_features_table(pr, req), want, check_exact=True)


def test_values_that_are_not_header_integers_equal_a_groupby():
    """Fractions, sizes over 65535 and negative TTLs are sorted per stream, NaN skipped: the same numbers
    as the pandas groupby."""
    df = _read(ROOT / "captures" / "lossy+size-change.pcapng")
    pr, req = _odd_values(df)
    want = RF.stream_features(pr, req).astype("float64")
    pd.testing.assert_frame_equal(_features_table(pr, req), want, check_exact=True)
