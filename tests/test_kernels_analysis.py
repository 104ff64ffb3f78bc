"""The compiled/vectorised matching and analyses equal their plain references: the pandas
implementations they replaced (tests/reference_match.py, tests/reference_analyses.py), on every shipped
capture and the real corpus; and the kernels compiled equal the same kernels run as plain Python
(NUMBA_DISABLE_JIT=1 in a subprocess)."""
from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import probekit
import reference_analyses as R
import reference_match
from conftest import REAL, real_captures, require_real_captures
from helpers.tables import table_diffs
from probekit.analysis import match, metrics, sizes, sources, timing
from probekit.errors import CaptureError
from probekit.schema import SOURCE_STREAM_KEYS, STREAM_KEYS

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "captures").glob("*.pcap*") if "truth" not in p.name)


def assert_same(a: pd.DataFrame, b: pd.DataFrame, label: str = "", float_atol: float = 1e-9) -> None:
    """Same columns and rows; floats within ``float_atol`` (sums taken in another order differ in the
    last bits), everything else exactly (categories by value)."""
    a, b = a.reset_index(drop=True), b.reset_index(drop=True)
    assert list(a.columns) == list(b.columns) and len(a) == len(b), (label, list(a.columns), list(b.columns), len(a), len(b))
    for c in a.columns:
        x, y = a[c], b[c]
        if pd.api.types.is_float_dtype(x.dtype) or pd.api.types.is_float_dtype(y.dtype):
            xv, yv = x.to_numpy("float64", na_value=np.nan), y.to_numpy("float64", na_value=np.nan)
            assert np.allclose(xv, yv, rtol=1e-9, atol=float_atol, equal_nan=True), (label, c)
        else:
            assert x.astype(object).where(x.notna(), None).tolist() == \
                y.astype(object).where(y.notna(), None).tolist(), (label, c)


def _read(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return probekit.read_capture(path)
        except CaptureError:
            return None


def check_all(path) -> None:
    df = _read(path)
    if df is None:
        return
    old = reference_match.match_probes(df)
    new = match.match_probes(df)
    assert table_diffs(old, new) == [] and old.attrs == new.attrs, path
    assert [str(old[c].dtype) for c in old] == [str(new[c].dtype) for c in new]
    if len(old):  # the reference kept no orphans when nothing was matched (fixed)
        o_old, o_new = reference_match.match_probes(df, keep_orphans=True)[1], match.match_probes(df, keep_orphans=True)[1]
        assert table_diffs(o_old.reset_index(drop=True).astype(o_new.dtypes.to_dict()), o_new) == []
    pr = new
    span = df.probekit.span_ns() if len(df) and df["ts_ns"].notna().any() else None
    # every period of the span is a row: a capture whose clock jumps years (zeek/mixed-vlan-mpls.pcap) has
    # millions, which the pandas reference takes minutes to build; compare the period tables up to a day
    short = len(pr) == 0 or int(pr["ts_ns"].max() - pr["ts_ns"].min()) <= 86_400 * 10**9
    for by in (SOURCE_STREAM_KEYS, STREAM_KEYS):
        for period_s in (30, 60) if short else ():
            assert_same(R.period_metrics(pr, period_s, by=by), metrics.period_metrics(pr, period_s, by=by), "periods")
        a, b = R.inter_arrivals(pr, by), timing.inter_arrivals(pr, by)
        # the reference took differences of epoch ns in float64 (±256 ns); the new ones are exact
        assert_same(a, b, "inter_arrivals", float_atol=1e-6)
        for sp in (None, span):
            key = [*by, "start_ns"]
            a, b = R.find_gaps(pr, by, span_ns=sp), timing.find_gaps(pr, by, span_ns=sp)
            # the reference sorted addresses as text, the new one in address order
            srt = lambda d: d.assign(**{k: d[k].astype(str) for k in by}).sort_values(key, kind="stable")
            assert_same(srt(a), srt(b.assign(kind=b["kind"].astype(str))), "gaps")
            assert_same(R.timing_summary(pr, by, span_ns=sp), timing.timing_summary(pr, by, span_ns=sp), "timing")
    for by in (STREAM_KEYS, ["protocol", "destination"]):
        for name in ("source_shares", "alternation", "source_quality"):
            assert_same(getattr(R, name)(pr, by), getattr(sources, name)(pr, by), name)
        a = R.balance_test(pr, by)
        assert_same(a.assign(balanced=a["balanced"].astype("boolean")), sources.balance_test(pr, by), "balance")
        assert_same(R.size_changes(pr, by, configured_at_ns=10**18),
                    sizes.size_changes(pr, by, configured_at_ns=10**18), "sizes")
        # the reference filled only periods some stream had; the new table has every period of the span
        if not short:
            continue
        a, b = R.source_rate(pr, 30, by), sources.source_rate(pr, 30, by)
        m = b.merge(a, on=[*by, "source", "period_start_ns"], how="left", suffixes=("", "_ref"), indicator=True)
        assert (m["_merge"] == "both").sum() == len(a)
        assert ((m["probes_ref"] == m["probes"]) | (m["probes_ref"].isna() & (m["probes"] == 0))).all()


@pytest.mark.parametrize("rel", SHIPPED)
def test_shipped_capture_equals_reference(rel):
    check_all(ROOT / rel)


@pytest.mark.parametrize("rel", real_captures() or ["(corpus missing)"])
def test_real_capture_equals_reference(rel):
    require_real_captures()
    check_all(REAL / rel)


def test_size_change_rule_on_edge_sequences():
    """An odd packet (the 120 at 2) or a short run (56, 56 at 9) is no change; three in a row is; a change
    fewer than min_run before the end holds to the end (the 90)."""
    sizes_seq = [56, 56, 120, 56, 56, 56, 120, 120, 120, 56, 56, 90]
    pr = pd.DataFrame({"protocol": pd.Categorical(["icmp"] * 12), "destination": pd.Categorical(["d"] * 12),
                       "port": pd.array([pd.NA] * 12, dtype="UInt16"), "ts_ns": np.arange(12) * 10**9,
                       "size": pd.array(sizes_seq, dtype="Int32")})
    assert_same(R.size_changes(pr), sizes.size_changes(pr), "sizes")
    got = sizes.size_changes(pr)
    assert got["ts_ns"].tolist() == [6 * 10**9, 11 * 10**9] and got["last_old_ns"].tolist() == [5 * 10**9, 10 * 10**9]
    assert list(zip(got["from_size"], got["to_size"])) == [(56, 120), (120, 90)]


_PLAIN = r"""
import sys, pandas as pd, probekit
from probekit.analysis import match
from probekit.schema import STREAM_KEYS
df = probekit.read_capture(sys.argv[1])
pr = match.match_probes(df)
pr.to_pickle(sys.argv[2] + ".probes")
probekit.period_metrics(pr, 30).to_pickle(sys.argv[2] + ".periods")
probekit.timing_summary(pr, by=STREAM_KEYS).to_pickle(sys.argv[2] + ".timing")
"""


@pytest.mark.parametrize("rel", ["captures/lossy+size-change.pcapng", "captures/port-closed.pcap"])
def test_kernels_compiled_equal_plain_python(rel, tmp_path):
    outs = {}
    for mode in ("0", "1"):
        env = {**os.environ, "NUMBA_DISABLE_JIT": mode, "PYTHONPATH": str(ROOT)}
        base = str(tmp_path / f"jit{mode}")
        subprocess.run([sys.executable, "-W", "ignore", "-c", _PLAIN, str(ROOT / rel), base], env=env, check=True)
        outs[mode] = [pd.read_pickle(base + s) for s in (".probes", ".periods", ".timing")]
    for a, b in zip(outs["0"], outs["1"]):
        assert table_diffs(a, b) == []


# ------------------------------------------------------------------ the kernels on their own
def _sweep_plain(order, etype, key, key4, rk, ts, resend_ns, reply_ns, reset_ns):
    """The sweep as first written (one table of every identity, dicts): the reference of the bucketed one.
    ``rk``: the resend code (TTL; 512: never re-sent) a re-sent request must share with its probe's."""
    cur, last, cur4, start, first, kept = {}, {}, {}, [], [], {}
    pid = np.full(order.size, -1, np.int64)
    for e in order:
        t, et = int(ts[e]), int(etype[e])
        if et == 0:
            k = key[e]
            p = cur.get(k, -1)
            if p < 0 or t - last[k] > resend_ns or kept[k] != rk[e] or rk[e] == 512:
                p = len(start)
                start.append(t)
                first.append(e)
                cur[k] = p
                kept[k] = rk[e]
                cur4[key4[e]] = p
            pid[e] = p
            last[k] = t
        else:
            p = (cur4 if et == 2 else cur).get(key4[e] if et == 2 else key[e], -1)
            if p >= 0 and t - start[p] <= (reply_ns if et == 1 else reset_ns if et == 3 else reply_ns):
                pid[e] = p
    return pid, np.asarray(first, np.int64), len(start)


def _random_events(rng, m):
    """Events of a few identities (so that requests repeat, replies come late and 4-tuples are shared),
    two protocols, times with ties."""
    etype = rng.integers(0, 4, m)
    proto = rng.integers(0, 3, m)
    etype[(proto < 2) & (etype == 2)] = 1   # loose replies only in protocol 2 (as TCP's RST/ACKs)
    keys = np.zeros((m, 6), np.int64)
    keys[:, 0] = proto
    keys[:, 1] = rng.integers(0, 3, m)
    keys[:, 2] = rng.integers(0, 2, m)
    keys[:, 3] = np.where(proto < 2, 65536, 80)
    keys[:, 4] = rng.integers(0, 4, m)
    keys[:, 5] = rng.integers(0, 5, m)
    ts = np.sort(rng.integers(0, m * 3, m))[rng.permutation(m)] * 1000   # not in event order
    return etype, proto, keys, ts


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("bucket_events", [1, 5, 64, 1 << 16])
def test_bucketed_sweep_equals_plain_sweep(seed, bucket_events):
    rng = np.random.default_rng(seed)
    m = 3000
    etype, proto, keys, ts = _random_events(rng, m)
    order = np.argsort(ts, kind="stable")
    f1, f2 = match._pack_keys(keys)
    key = [tuple(r) for r in keys.tolist()]
    key4 = [r[:5] for r in key]
    windows = (1_500_000, 3_000_000, 2_000_000)   # resend, reply, reset (ns): some repeats, some orphans
    # resend codes: mostly one TTL, some another, some unknown (256), some never re-sent (512: UDP)
    rk = rng.choice(np.array([64, 1, 256, 512]), m, p=[0.75, 0.1, 0.1, 0.05])
    want_pid, want_first, want_n = _sweep_plain(order, etype, key, key4, rk, ts, *windows)
    pid, first, n = match._sweep_events(order, etype | (rk << 2), proto, f1, f2, np.ascontiguousarray(keys[:, 4]),
                                        ts, *windows, bucket_events)
    assert n == want_n and (pid == want_pid).all() and (first == want_first).all()
    assert 0 < (pid >= 0).sum() < m and n < (etype == 0).sum()   # resends and orphans both happened
    # and some requests of one identity within the window became probes of their own by their TTL
    _, _, n_one_ttl = _sweep_plain(order, etype, key, key4, np.full(m, 64), ts, *windows)
    assert n > n_one_ttl


def test_attach_equals_plain_python():
    rng = np.random.default_rng(7)
    m, n = 4000, 300
    etype, pid = rng.integers(0, 4, m), rng.integers(-1, n, m)
    ts, frame = rng.integers(0, 50, m), rng.permutation(m)
    requests, reply, count, reset = (np.full(n, 99, np.int64) for _ in range(4))   # the kernel sets every entry
    match._attach(etype, pid, ts, frame, requests, reply, count, reset)
    for p in range(n):
        mine = [e for e in range(m) if pid[e] == p]
        reps = [e for e in mine if etype[e] in (1, 2)]
        best = min(reps, key=lambda e: (ts[e], frame[e])) if reps else -1
        rsts = [e for e in mine if etype[e] == 3 and best >= 0 and ts[e] >= ts[best]]
        assert requests[p] == sum(etype[e] == 0 for e in mine) and count[p] == len(reps) and reply[p] == best
        assert reset[p] == (min(rsts, key=lambda e: (ts[e], frame[e])) if rsts else -1)


def test_bucketed_matching_equals_reference(monkeypatch):
    """The whole matcher with buckets of a few events (the shipped captures fit in one)."""
    monkeypatch.setattr(match, "_BUCKET_EVENTS", 3)
    for rel in ("captures/lossy+size-change.pcapng", "captures/port-closed.pcap", "captures/eni-failure.pcap"):
        df = _read(ROOT / rel)
        old, new = reference_match.match_probes(df), match.match_probes(df)
        assert len(new) and table_diffs(old, new) == [] and old.attrs == new.attrs, rel


@pytest.mark.parametrize("tie_run", [64, 1])
def test_matching_at_tied_times_equals_reference(monkeypatch, tie_run):
    """Times cut to 100 ms / 1 ms put requests, their replies and resets at one time: the layout ranks
    each such run by class (tie_run 64) or the events are sorted (tie_run 1), as the reference orders them."""
    monkeypatch.setattr(match, "_TIE_RUN", tie_run)
    for rel, unit in (("captures/port-closed.pcap", 10**8), ("captures/lossy+size-change.pcapng", 10**6)):
        df = _read(ROOT / rel)
        df["ts_ns"] = df["ts_ns"] // unit * unit
        assert df["ts_ns"].duplicated().sum() > len(df) // 6   # many ties
        ev = match._events(df)   # laid out by (time, class, row), as a stable sort by time of the classes
        assert (np.lexsort((ev["row"], ev["cls"], ev["ts"])) == np.arange(ev["ts"].size)).all(), rel
        old, new = reference_match.match_probes(df), match.match_probes(df)
        assert len(new) and table_diffs(old, new) == [] and old.attrs == new.attrs, rel


def test_group_by_equals_pandas_groupby():
    from probekit.analysis._groups import group_by
    rng = np.random.default_rng(3)
    n = 5000
    pr = pd.DataFrame({
        "protocol": pd.Categorical.from_codes(rng.integers(-1, 3, n), categories=["icmp", "icmpv6", "tcp"]),
        "source": pd.Categorical.from_codes(rng.integers(0, 4, n), categories=list("abcde")),
        "port": pd.array(np.where(rng.random(n) < 0.2, None, rng.choice([80, 443, 65535, 7], n)), dtype="UInt16"),
        "size": pd.array(np.where(rng.random(n) < 0.1, None, rng.integers(-5, 10**7, n)), dtype="Int32"),
        "x": rng.choice([0.5, 2.0, np.nan], n),
    })
    for by in (["protocol"], ["port"], ["protocol", "source", "port"], ["size"], ["x", "protocol"], ["source", "size"]):
        g = group_by(pr, by)
        want = pr.groupby(by, observed=True, dropna=False, sort=True).ngroup().to_numpy()
        assert g.n == want.max() + 1 and (g.gid == want).all(), by
        assert (g.gid[g.first] == np.arange(g.n)).all() and (g.size == np.bincount(want)).all()
        if g.code is not None and len(by) > 1:
            up, parent = g.parent(1)
            want_up = pr.groupby(by[:1], observed=True, dropna=False, sort=True).ngroup().to_numpy()
            assert (up.gid == want_up).all() and (parent[g.gid] == want_up).all()
            assert (up.size == np.bincount(want_up)).all()


def test_cell_stats_equal_numpy():
    from probekit.analysis._groups import cell_stats
    rng = np.random.default_rng(5)
    n, cells = 20000, 37
    cell = rng.integers(0, cells, n)
    v = np.where(rng.random(n) < 0.1, np.nan, rng.gamma(2.0, 3.0, n).round(1))   # ties
    v[cell == 4] = np.nan   # a cell with no value
    st = cell_stats(cell, v, cells, (0.0, 0.5, 0.95, 1.0))
    for c in range(cells):
        x = v[(cell == c) & ~np.isnan(v)]
        if not x.size:
            assert st["count"][c] == 0 and np.isnan(st[0.5][c]) and np.isnan(st["mean"][c])
            continue
        assert st["count"][c] == x.size and st["min"][c] == x.min() and st["max"][c] == x.max()
        assert np.isclose(st["sum"][c], x.sum(), rtol=1e-12)
        for q in (0.0, 0.5, 0.95, 1.0):
            assert st[q][c] == np.quantile(x, q), (c, q)
