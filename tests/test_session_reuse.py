"""What a session reuses instead of computing again (issue 16) equals what the analysis functions give
when called on their own: the per-payload tests from the verdicts' pass over the bytes, the probe streams'
fingerprints from the streams' fingerprints of every request, the matcher's view of a capture with
fragments. On every shipped capture, and with all_streams=True / a probe selection smaller than every
request."""
from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pytest

import probekit
from probekit.analysis import fingerprint as F
from probekit.analysis import payload as P

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "captures").rglob("*") if p.suffix in (".pcap", ".pcapng"))


def _open(path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", probekit.CaptureWarning)
        cap = probekit.open_capture(path, cloudwatch=False, **kw)
        _ = cap.streams          # the streams step keeps the payload work of every request
        return cap


@pytest.mark.parametrize("rel", SHIPPED)
@pytest.mark.parametrize("all_streams", [False, True])
def test_reused_tables_equal_the_functions(rel, all_streams):
    cap = _open(ROOT / rel, all_streams=all_streams)
    pr, df = cap.probes, cap.packets
    if pr.empty:
        return
    buf = P.request_payload_buffer(df, pr)
    pd.testing.assert_frame_equal(cap.payload_tests, P.payload_tests(buf, pr["ts_ns"]))
    verdicts = P.payload_verdicts(pr, buf)
    pd.testing.assert_frame_equal(cap.payload_verdicts, verdicts)
    want = F.fingerprint(df, pr, verdicts=verdicts, balance=probekit.balance_test(pr))
    pd.testing.assert_frame_equal(cap.fingerprints, want)
    assert cap.payload_buffer.to_series().tolist() == buf.to_series().tolist()


def test_reuse_happens_when_the_probes_are_every_request():
    cap = _open(ROOT / "captures" / "healthy.pcap")
    assert cap._payload_of_all() is not None        # the shipped Network Monitor capture: every request is a probe
    mixed = [r for r in SHIPPED if len(_open(ROOT / r).probes) < len(_open(ROOT / r).all_probes)]
    assert mixed, "some shipped capture has requests that are not probes (the reuse must not apply there)"
    cap = _open(ROOT / mixed[0])
    assert cap._payload_of_all() is None
    # the probe streams are whole source streams of every request: their rows are reused
    assert cap._probe_rows() is not None and cap._verdicts_of_subset() is not None


def test_streams_taken_in_part_are_judged_again():
    cap = _open(ROOT / "captures" / "lab" / "lab-mixed.pcap")
    part = cap.all_probes.iloc[::2].reset_index(drop=True)      # every stream loses half its probes
    cap.__dict__["probes"] = part
    assert cap._probe_rows() is not None and cap._verdicts_of_subset() is None
    buf = P.request_payload_buffer(cap.packets, part)
    pd.testing.assert_frame_equal(cap.payload_verdicts, P.payload_verdicts(part, buf))
    pd.testing.assert_frame_equal(cap.payload_tests, P.payload_tests(buf, part["ts_ns"]))
