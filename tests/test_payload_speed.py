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
    # the verdicts' one pass over the bytes also gives every per-payload test (what a session shows)
    v2, scan = P.payload_verdicts_and_scan(pr, pb)
    assert v2.equals(v)
    pd.testing.assert_frame_equal(scan.tests(), new)
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
        "timestamp layouts": [_stamp(i, r) for i in range(8) for _ in range(6)],
        "near timestamps": [_stamp(i, r, off_s=86_400 + d) for i in range(8) for d in (-1, 0, 1, 2)],
    }


_T0 = 1_767_225_600 + 7      # a frame time of the families below is within a few seconds of this


def _stamp(i: int, r, off_s: int = 0) -> bytes:
    """A payload starting with layout i of reference_payload._TS_LAYOUTS near the families' frame times,
    ``off_s`` seconds away (beyond a day: no timestamp)."""
    dt, size, unit, _ = R._TS_LAYOUTS[i]
    frac = int(r.integers(0, 1_000_000 if unit == 1e-6 else 1_000_000_000))
    head = np.array([_T0 + off_s, frac], dtype=dt).tobytes()
    return head + r.integers(0, 256, int(r.integers(0, 40)), dtype=np.uint8).tobytes()


@pytest.mark.parametrize("family", list(_families(np.random.default_rng(0))))
def test_equal_to_reference_on_payload_families(family):
    payloads = pd.Series(_families(np.random.default_rng(5))[family], dtype=object)
    n = len(payloads)
    ts = pd.Series(1_767_225_600 * 10**9 + np.arange(n) * 10**9)
    assert_tests_equal(P.payload_tests(payloads, ts), R.payload_tests(payloads, ts))
    probes = pd.DataFrame({"protocol": "icmp", "destination": "192.0.2.10", "port": pd.NA,
                           "source": np.where(np.arange(n) % 3 == 0, "a", "b"), "ts_ns": ts})
    # streams interleaved: the scan's rows come back to the payloads' order
    pd.testing.assert_frame_equal(P.payload_verdicts_and_scan(probes, payloads)[1].tests(), P.payload_tests(payloads, ts))
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
    for name in ("_inside", "_inside_float", "_fmix", "_popcount", "_segment_sums", "_distinct_sorted", "_stream_stats",
                 "_nan_means", "_nist_args", "_kth", "stable_group_order"):
        monkeypatch.setattr(P, name, getattr(P, name).py_func)
    monkeypatch.setattr(P, "_ctz", P._ctz_plain)      # the compiled one is LLVM's cttz (no Python body)
    with np.errstate(over="ignore"):   # the hashes wrap around by design
        assert P.payload_verdicts(pr, pb).equals(compiled)


def test_pairwise_sum_is_numpys():
    r = np.random.default_rng(2)
    for n in (0, 1, 7, 8, 100, 128, 129, 200, 256, 257, 1000, 1023, 4096, 10_001, 100_003):
        for _ in range(50 if n <= 256 else 5):
            a = r.random(n) * r.choice([1e-6, 1.0, 1e6], n)
            assert P._pairwise(a, 0, n) == np.add.reduce(a), n
            lo = int(r.integers(0, 50))
            b = np.concatenate([r.random(lo), a])
            assert P._pairwise(b, lo, n) == np.add.reduce(a), n


def _segments(r, n_groups: int, most: int):
    sizes = r.integers(1, most, n_groups)
    bounds = np.zeros(n_groups + 1, np.int64)
    np.cumsum(sizes, out=bounds[1:])
    return bounds, np.repeat(np.arange(n_groups), sizes)


def test_segment_sums_and_means_are_numpys_and_pandas():
    """Per-segment sums equal np.add.reduce of each slice; per-segment means equal pandas' Series.mean
    (NaN skipped; an all-NaN segment gives NaN)."""
    r = np.random.default_rng(3)
    bounds, _ = _segments(r, 60, 700)
    x = r.random(bounds[-1]) * r.choice([1e-3, 1.0, 1e3], bounds[-1])
    x[r.random(x.size) < 0.1] = np.nan
    x[bounds[5]:bounds[6]] = np.nan
    sums = P._segment_sums(np.nan_to_num(x), bounds)
    means = P._nan_means(x, bounds)
    for i in range(60):
        seg = x[bounds[i]:bounds[i + 1]]
        assert sums[i] == np.add.reduce(np.nan_to_num(seg))
        want = pd.Series(seg).mean()
        assert (np.isnan(means[i]) and np.isnan(want)) or means[i] == want, i


def test_distinct_counts_equal_pandas():
    r = np.random.default_rng(4)
    bounds, gid = _segments(r, 40, 300)
    pool = r.integers(0, 2**63, (50, 2), dtype=np.int64).astype(np.uint64)
    pick = np.where(r.random(gid.size) < 0.5, r.integers(0, 50, gid.size), -1)
    h = r.integers(0, 2**63, (gid.size, 2), dtype=np.int64).astype(np.uint64)
    h[pick >= 0] = pool[pick[pick >= 0]]
    h[:, 0][r.random(gid.size) < 0.05] = pool[0, 0]          # same first hash, other second hash
    got = P._distinct_sorted(gid, h[:, 0].copy(), h[:, 1].copy(), bounds)
    want = pd.DataFrame({"g": gid, "a": h[:, 0], "b": h[:, 1]}).drop_duplicates().groupby("g").size()
    assert got.tolist() == want.reindex(range(40), fill_value=0).tolist()


def test_stream_stats_equal_pandas():
    """Median length, timestamps, the modal fill (ties: first name in sorted order) and NIST pass counts per
    stream, against pandas on the same rows."""
    r = np.random.default_rng(6)
    bounds, gid = _segments(r, 50, 80)
    n = gid.size
    lens = r.integers(0, 60, n)
    fill = np.where(r.random(n) < 0.5, r.choice([0, 1, 2, 257, 258, 259], n), 0)
    ts = (r.random(n) < 0.3).astype(np.int64)
    mono = np.where(r.random(n) < 0.2, np.nan, r.random(n) * 0.05)
    runs = np.where(np.isnan(mono), np.nan, r.random(n) * 0.05)
    med, n_ts, mode, n_fill, n_mono, ok_mono, n_runs, ok_runs = P._stream_stats(
        bounds, lens, fill, ts, mono, runs, 0.01, P._FILL_RANK, P._FILL_NAMES.size)
    names = pd.Series(P._FILL_NAMES[fill], dtype=object)
    for i in range(50):
        sl = slice(bounds[i], bounds[i + 1])
        assert med[i] == int(np.median(lens[sl])) and n_ts[i] == ts[sl].sum()
        f = names[sl].dropna()
        assert n_fill[i] == len(f) and P._FILL_NAMES[mode[i]] == (f.mode().iloc[0] if len(f) else None)
        m = pd.Series(mono[sl]).dropna()
        assert n_mono[i] == len(m) and ok_mono[i] == (m >= 0.01).sum()
        u = pd.Series(runs[sl]).dropna()
        assert n_runs[i] == len(u) and ok_runs[i] == (u >= 0.01).sum()


def test_ent_of_many_streams_equals_ent_of_each():
    """The per-stream ent results computed for all streams at once (chi-square over a 2-D table) are
    those of the reference's ent on each stream's bytes."""
    r = np.random.default_rng(8)
    blobs = [r.integers(0, int(r.integers(2, 257)), int(n), dtype=np.uint8).tobytes()
             for n in r.integers(0, 5000, 30)] + [b"", b"\x05", bytes(2000)]
    g = P._Groups(len(blobs))
    pb = P.PayloadBuffer.from_series(pd.Series(blobs, dtype=object))
    P._scan_rows(pb, np.arange(len(blobs)), np.zeros(len(blobs)), np.arange(len(blobs)), g)
    assert P._ent_rows(g.counts, g.state) == [R.ent(b) for b in blobs]


def test_payload_buffer_of_rows_equals_buffer_of_taken_rows():
    """payload_buffer(df, rows) gives the bytes of df.iloc[rows] (any order, repeats), for one capture and
    for a table of several captures."""
    r = np.random.default_rng(9)
    tables = [probekit.read_capture(ROOT / rel) for rel in SHIPPED[:2]]
    from probekit.capture.payloads import payload_buffer
    for df in tables + [probekit.read_captures([str(ROOT / rel) for rel in SHIPPED[:3]], workers=1, progress=False)]:
        rows = r.integers(0, len(df), 500)
        sub = df.iloc[rows]
        sub.attrs = df.attrs
        got = payload_buffer(df, rows)
        want = payload_buffer(sub)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
        raw = got[0].tobytes()
        assert [raw[a:b] for a, b in zip(got[1][:-1], got[1][1:])] == sub.probekit.payloads().tolist()


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


def _long_streams(r):
    """Three streams of a few thousand payloads each: fresh random ones (the distinct set grows), a mix of
    every family with empty payloads (NaN entropies), repeats and tied fills, and a short one."""
    fam = _families(r)
    mixed = [b for k in fam for b in fam[k]]
    r.shuffle(mixed)
    fresh = [r.integers(0, 256, int(n), dtype=np.uint8).tobytes() for n in r.integers(40, 64, 1500)]
    blobs = fresh + mixed + fresh[:50]
    src = ["fresh"] * len(fresh) + ["mixed"] * len(mixed) + ["short"] * 50
    order = np.argsort(r.random(len(blobs)), kind="stable")      # the streams interleaved in time
    n = len(blobs)
    probes = pd.DataFrame({"protocol": "icmp", "destination": "192.0.2.10", "port": pd.NA,
                           "source": np.asarray(src, dtype=object)[order],
                           "ts_ns": 1_767_225_600 * 10**9 + np.arange(n) * 10**7})
    return probes, pd.Series([blobs[i] for i in order], dtype=object)


@pytest.mark.parametrize("piece", [100, 1000])
def test_streams_longer_than_a_piece_equal_one_pass(monkeypatch, piece):
    """A stream cut into pieces (running counts, the distinct set growing, the means' pairwise tree cut at
    its nodes) gives exactly the one-pass verdicts, the reference's, and the same per-payload scan."""
    probes, payloads = _long_streams(np.random.default_rng(11))
    whole, whole_scan = P.payload_verdicts_and_scan(probes, payloads)
    monkeypatch.setattr(P, "PIECE_ROWS", piece)
    cut = P.payload_verdicts(probes, payloads)
    assert cut.equals(whole)
    v, scan = P.payload_verdicts_and_scan(probes, payloads)
    assert v.equals(whole)
    pd.testing.assert_frame_equal(scan.tests(), whole_scan.tests())
    if piece == 100:
        assert_verdicts_equal(cut, R.payload_verdicts(probes, payloads))


def test_distinct_set_grows_and_counts_the_zero_pair():
    r = np.random.default_rng(12)
    pool = r.integers(0, 2**63, (3000, 2), dtype=np.int64).astype(np.uint64)
    pool[7] = 0                                   # the pair (0, 0) marks a free slot: counted apart
    pool[8, 1] = 0                                # a pair with one half 0 is an ordinary pair
    for kernel in (P._distinct_add, P._distinct_add.py_func):
        s = P._HashSet()
        seen = []
        for _ in range(6):
            h = pool[r.integers(0, 3000, 700)]
            s.add(h[:, 0].copy(), h[:, 1].copy()) if kernel is P._distinct_add else _add_plain(s, h)
            seen.append(h)
            want = len(pd.DataFrame(np.concatenate(seen)).drop_duplicates())
            assert s.distinct == want
        assert s.tab.size > 2 * 1024                 # it grew


def _add_plain(s, h):
    real = P._distinct_add
    try:
        P._distinct_add = real.py_func
        s.add(h[:, 0].copy(), h[:, 1].copy())
    finally:
        P._distinct_add = real


def test_bit_helpers_equal_plain_python():
    """The scan's lowest-set-bit (LLVM's cttz when compiled) and popcount equal Python's integers."""
    r = np.random.default_rng(13)
    words = [1 << i for i in range(64)] + [int(x) for x in r.integers(1, 2**63, 300, dtype=np.int64)]
    words += [w | (1 << 63) for w in words[64:100]] + [2**64 - 1]
    for w in words:
        low = (w & -w).bit_length() - 1
        assert P._ctz(np.uint64(w)) == P._ctz_plain(np.uint64(w)) == low, hex(w)
        assert P._popcount(np.uint64(w)) == bin(w).count("1"), hex(w)
    assert P._popcount(np.uint64(0)) == 0


def test_monte_carlo_point_in_integers_equals_ents_floats():
    """_inside decides in integers away from the circle: the same answer as ent's floats on every point
    within 40 of the circle (in y, for 20 000 x including both ends) and on random points."""
    D = 16777215
    xs = np.unique(np.r_[0, 1, 2, D - 1, D, np.random.default_rng(3).integers(0, D + 1, 20_000)])
    for kernel, plain in ((P._inside, P._inside_float), (P._inside.py_func, P._inside_float.py_func)):
        for xi in xs.tolist()[:: 1 if kernel is P._inside else 50]:
            y0 = int(np.sqrt(float(D * D - xi * xi)))
            for yi in range(max(0, y0 - 40), min(D, y0 + 40) + 1):
                assert kernel(np.int64(xi), np.int64(yi)) == plain(np.int64(xi), np.int64(yi)), (xi, yi)
    r = np.random.default_rng(4).integers(0, D + 1, (50_000, 2))
    for xi, yi in r.tolist():
        assert P._inside(np.int64(xi), np.int64(yi)) == P._inside_float(np.int64(xi), np.int64(yi))
