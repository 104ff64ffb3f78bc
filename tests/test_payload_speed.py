"""The compiled payload tests equal the implementation before issue 16 (tests/reference_payload.py) on
every shipped capture, on the real corpus and on synthetic payload families, value for value (floats
exactly, not approximately); the kernel equals its own plain-Python run; pieces carry the state."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import probekit
import reference_payload as R
from conftest import REAL, real_captures, require_real_captures
from probekit.analysis import payload as P
from probekit.schema import (
    PAYLOAD_TESTS,
    PAYLOAD_VERDICTS,
    SOURCE_STREAM_KEYS,
    check_table,
)

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "captures").rglob("*") if p.suffix in (".pcap", ".pcapng"))
REF_KEYS = ["protocol", "destination", "port", "source"]


def same_values(a: pd.Series, b: pd.Series) -> bool:
    """Equal element by element; NaN/None/NA equal each other; floats compared exactly."""
    x, y = a.astype(object).tolist(), b.astype(object).tolist()
    if len(x) != len(y):
        return False
    for u, v in zip(x, y):
        if pd.isna(u) and pd.isna(v):
            continue
        if u != v:
            return False
    return True


def assert_tests_equal(new: pd.DataFrame, ref: pd.DataFrame):
    assert list(new.columns) == list(ref.columns) and new.index.equals(ref.index)
    for c in ref.columns:
        assert same_values(new[c], ref[c]), c


def assert_verdicts_equal(new: pd.DataFrame, ref: pd.DataFrame):
    assert len(new) == len(ref)
    key = lambda d: pd.Series(["|".join("NA" if pd.isna(x) else str(x) for x in t)
                               for t in d[REF_KEYS].astype(object).itertuples(index=False)],
                              index=d.index)
    a = new.assign(_k=key(new)).sort_values("_k").reset_index(drop=True)
    b = ref.assign(_k=key(ref)).sort_values("_k").reset_index(drop=True)
    assert a["_k"].tolist() == b["_k"].tolist()
    for c in ref.columns:
        if c in REF_KEYS:
            continue
        assert same_values(a[c], b[c]), (c, a[c].tolist()[:4], b[c].tolist()[:4])


def compare_capture(path: Path):
    import warnings
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", probekit.CaptureWarning)
            df = probekit.read_capture(path)
    except probekit.CaptureError:
        return 0   # the corpus holds deliberately broken files (the reader's tests cover them)
    pr = df.probekit.probes()
    ref_pl = R.request_payloads(df, pr)
    pb = P.request_payload_buffer(df, pr)
    assert pb.to_series().tolist() == ref_pl.tolist() == P.request_payloads(df, pr).tolist()
    if pr.empty:
        return 0
    new = P.payload_tests(pb, pr["ts_ns"])
    check_table(new, PAYLOAD_TESTS)
    assert_tests_equal(new, R.payload_tests(ref_pl, pr["ts_ns"]))
    v = P.payload_verdicts(pr, pb)
    check_table(v, PAYLOAD_VERDICTS)
    assert_verdicts_equal(v, R.payload_verdicts(pr, ref_pl))
    assert_verdicts_equal(P.payload_verdicts(pr, ref_pl), R.payload_verdicts(pr, ref_pl))  # a Series works too
    return len(pr)


@pytest.mark.parametrize("rel", SHIPPED)
def test_equal_to_reference_on_shipped_captures(rel):
    assert compare_capture(ROOT / rel) > 0      # every shipped capture has probes (the UDP tracers' too)


def test_equal_to_reference_on_the_real_corpus():
    require_real_captures()
    probes = sum(compare_capture(REAL / rel) for rel in real_captures())
    assert probes > 100, "the corpus has probes to judge (pings, SYNs)"


def _families(r):
    ts = lambda b: (1_767_225_600).to_bytes(8, "little") + (123_456).to_bytes(8, "little") + b
    return {
        "random48": [r.integers(0, 256, 48, dtype=np.uint8).tobytes() for _ in range(500)],
        "constant": [bytes(48)] * 300 + [b"\x07" * 48] * 20,
        "incrementing": [bytes(range(i % 200, i % 200 + 48)) for i in range(300)],
        "repeated": [r.integers(0, 256, 48, dtype=np.uint8).tobytes()] * 300,
        "biased": [r.integers(0, 128, 48, dtype=np.uint8).tobytes() for _ in range(300)],
        "windows": [b"abcdefghijklmnopqrstuvwabcdefghi"] * 60 + [b"a"] * 5,
        "iputils": [ts(bytes(range(16, 56)))] * 40,
        "mixed lengths": [r.integers(0, 256, int(n), dtype=np.uint8).tobytes() for n in r.integers(0, 300, 400)],
        "jumbo": [r.integers(0, 256, 8472, dtype=np.uint8).tobytes() for _ in range(30)],
        "empty": [b""] * 10,
        "ties": [bytes(20)] * 5 + [b"\x01" * 20] * 5,
    }


@pytest.mark.parametrize("family", list(_families(np.random.default_rng(0))))
def test_equal_to_reference_on_payload_families(family):
    payloads = pd.Series(_families(np.random.default_rng(5))[family], dtype=object)
    n = len(payloads)
    ts = pd.Series(1_767_225_600 * 10**9 + np.arange(n) * 10**9)
    assert_tests_equal(P.payload_tests(payloads, ts), R.payload_tests(payloads, ts))
    probes = pd.DataFrame({"protocol": "icmp", "destination": "192.0.2.10", "port": pd.NA,
                           "source": np.where(np.arange(n) % 3 == 0, "a", "b"), "ts_ns": ts})
    assert_verdicts_equal(P.payload_verdicts(probes, payloads), R.payload_verdicts(probes, payloads))
    e = P.ent(b"".join(payloads))
    assert e == R.ent(b"".join(payloads))


def test_pieces_carry_the_stream_state(monkeypatch):
    """Rows scanned in pieces of 7 (streams split between pieces) give exactly the one-pass numbers."""
    df = probekit.read_capture(ROOT / "captures" / "lossy+size-change.pcapng")
    pr = df.probekit.probes()
    pb = P.request_payload_buffer(df, pr)
    whole = P.payload_verdicts(pr, pb)
    monkeypatch.setattr(P, "PIECE_ROWS", 7)
    assert P.payload_verdicts(pr, pb).equals(whole)


def test_kernel_equals_its_plain_python_run(monkeypatch):
    df = probekit.read_capture(ROOT / "captures" / "port-closed.pcap")
    pr = df.probekit.probes().iloc[:150]
    pb = P.request_payload_buffer(df, pr)
    compiled = P.payload_verdicts(pr, pb)
    monkeypatch.setattr(P, "_scan", P._scan.py_func)
    monkeypatch.setattr(P, "_pairwise", P._pairwise.py_func)
    monkeypatch.setattr(P, "_pairwise_block", P._pairwise_block.py_func)
    with np.errstate(over="ignore"):   # the hashes wrap around by design
        assert P.payload_verdicts(pr, pb).equals(compiled)


def test_pairwise_sum_is_numpys():
    r = np.random.default_rng(2)
    for n in (1, 7, 8, 100, 128, 129, 200, 256):
        for _ in range(50):
            a = r.random(n) * r.choice([1e-6, 1.0, 1e6], n)
            assert P._pairwise(a, 0, n) == np.add.reduce(a)


def test_payload_buffer_equals_payloads_row_by_row():
    for rel in SHIPPED[:3]:
        df = probekit.read_capture(ROOT / rel)
        data, offsets = df.probekit.payload_buffer()
        rows = df.probekit.payloads().tolist()
        raw = data.tobytes()
        assert [raw[a:b] for a, b in zip(offsets[:-1], offsets[1:])] == rows


def test_verdict_keys_follow_the_vocabulary():
    df = probekit.read_capture(ROOT / "captures" / "healthy.pcap")
    v = P.payload_verdicts(df.probekit.probes(), P.request_payload_buffer(df, df.probekit.probes()))
    assert list(v.columns[:4]) == list(SOURCE_STREAM_KEYS)
    assert str(v["port"].dtype) == "UInt16" and v["protocol"].dtype == "category"


@pytest.mark.parametrize("by", [list(SOURCE_STREAM_KEYS), REF_KEYS, ["protocol", "destination", "port"], ["source"]])
def test_stream_numbers_follow_groupby(by):
    """The packed-code stream numbers are groupby(observed, dropna=False).ngroup() (NaN keys last)."""
    for rel in SHIPPED:
        pr = probekit.read_capture(ROOT / rel).probekit.probes()
        if pr.empty:
            continue
        gid, keys = P._group_ids(pr, by)
        want = pr[by].groupby(by, observed=True, dropna=False, sort=True).ngroup().to_numpy()
        assert (gid == want).all(), rel
        assert len(keys) == gid.max() + 1
