"""What the analyses of one probes table share (analysis._groups.table_cached) and the radix-select
order statistics (analysis._groups.cell_stats): the cache gives what a fresh computation gives, also
after the table is written in place or a column is replaced; the quantiles equal numpy's on data made
to be hard for them (ties, one value, a value most rows share, negatives and -0.0, tiny and large cells),
compiled and as plain Python."""
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
from probekit.analysis import _groups, metrics, sizes, sources, timing
from probekit.schema import SOURCE_STREAM_KEYS, STREAM_KEYS
from test_kernels_analysis import assert_same

ROOT = Path(__file__).resolve().parents[1]


def _probes(rel="captures/lossy+size-change.pcapng"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return probekit.match_probes(probekit.read_capture(ROOT / rel))


def _all(pr):
    return [metrics.period_metrics(pr, 30), metrics.period_metrics(pr, 60, by=STREAM_KEYS),
            timing.inter_arrivals(pr), timing.timing_summary(pr), timing.find_gaps(pr),
            sources.source_shares(pr), sources.balance_test(pr), sources.alternation(pr),
            sources.source_quality(pr), sources.source_rate(pr), sizes.size_changes(pr)]


def test_cached_values_are_those_of_a_fresh_table():
    pr = _probes()
    first = _all(pr)
    again = _all(pr)                       # cache hits
    fresh = _all(pr.copy())                # other buffers: made again
    for a, b, c in zip(first, again, fresh):
        pd.testing.assert_frame_equal(a, b)
        pd.testing.assert_frame_equal(a, c)


def test_writing_the_table_in_place_is_seen():
    pr = _probes()
    assert pr["source"].nunique() >= 2 and len(pr) > 20
    before = sources.source_shares(pr)
    g_before = _groups.groups_of(pr, SOURCE_STREAM_KEYS)
    other = pr["source"].cat.categories[0]
    pr.loc[pr.index[:10], "source"] = other           # in place: pandas copies the column the cache holds
    pr.loc[pr.index[:5], "ts_ns"] = pr["ts_ns"].iloc[0]
    pr.loc[pr.index[10:20], "rtt_us"] = 1.0
    after = sources.source_shares(pr)
    assert not before.equals(after)
    assert _groups.groups_of(pr, SOURCE_STREAM_KEYS) is not g_before
    for name in ("source_shares", "alternation", "source_quality"):
        assert_same(getattr(R, name)(pr), getattr(sources, name)(pr), name)
    assert_same(R.period_metrics(pr, 30), metrics.period_metrics(pr, 30), "periods")
    assert_same(R.inter_arrivals(pr), timing.inter_arrivals(pr), "inter_arrivals", float_atol=1e-6)


def test_replacing_a_column_is_seen():
    pr = _probes()
    sources.source_quality(pr)
    metrics.period_metrics(pr, 30)
    pr["outcome"] = pr["outcome"].where(np.arange(len(pr)) % 3 != 0, "unknown")   # a third unjudged
    pr["size"] = pr["size"].where(np.arange(len(pr)) % 7 != 0, 99)
    assert_same(R.source_quality(pr), sources.source_quality(pr), "quality")
    assert_same(R.period_metrics(pr, 30), metrics.period_metrics(pr, 30), "periods")
    assert_same(R.size_changes(pr), sizes.size_changes(pr), "sizes")


def test_outputs_do_not_share_the_cache():
    pr = _probes()
    ia = timing.inter_arrivals(pr)
    ia.loc[ia.index[0], "ts_ns"] = -1                 # writable, and the cache is not changed by it
    assert timing.inter_arrivals(pr)["ts_ns"].iloc[0] != -1


def test_subset_equals_group_by_of_the_rows():
    rng = np.random.default_rng(11)
    n = 3000
    pr = pd.DataFrame({
        "protocol": pd.Categorical.from_codes(rng.integers(0, 3, n), categories=["icmp", "tcp", "udp"]),
        "source": pd.Categorical.from_codes(rng.integers(0, 5, n), categories=list("abcde")),
        "port": pd.array(np.where(rng.random(n) < 0.2, None, rng.choice([80, 443, 7], n)), dtype="UInt16"),
    })
    g = _groups.group_by(pr, ["protocol", "source", "port"])
    for keep in (rng.random(n) < 0.5, pr["source"].to_numpy() != "a", np.zeros(n, bool)):
        rows = np.flatnonzero(keep)
        want = _groups.group_by(pr.iloc[rows], ["protocol", "source", "port"])
        got = g.subset(rows)
        assert got.n == want.n and (got.gid == want.gid).all() and (got.first == want.first).all()
        assert (got.size == want.size).all()
        # the codes stay the whole table's (a mixed radix over its key codes): coarser groups still come out right
        if got.n:
            up, parent = got.parent(1)
            want_up = pr.iloc[rows].groupby("protocol", observed=True, sort=True).ngroup().to_numpy()
            assert (up.gid == want_up).all() and (parent[got.gid] == want_up).all()


def _hard_cells(rng):
    """(cell, values, n_cells) sets that stress the radix select."""
    out = []
    n = 20000
    cell = rng.integers(0, 7, n)
    out.append((cell, rng.gamma(2.0, 3.0, n).round(1), 7))                              # ties
    out.append((cell, np.full(n, 5.0), 7))                                              # one value
    out.append((cell, np.where(rng.random(n) < 0.99, 1e7, rng.normal(1e7, 1e4, n)), 7))  # most rows share one
    v = rng.normal(0, 1, n)
    v[rng.random(n) < 0.1] = -0.0
    v[rng.random(n) < 0.1] = 0.0
    out.append((cell, v, 7))                                                            # negatives, ±0
    out.append((rng.integers(0, 900, n), rng.exponential(1e4, n), 900))                 # tiny cells
    out.append((np.zeros(n, np.int64), np.concatenate([rng.random(n - 3), [1e300, -1e300, 1e-300]]), 1))
    big = rng.integers(0, 2, n)
    vals = rng.integers(0, 3, n).astype(float) * 1e6 + rng.integers(0, 2, n)            # few values, far apart
    out.append((big, vals, 2))
    for _, v, _ in out:
        v[rng.random(v.size) < 0.05] = np.nan
    return out


QS = (0.0, 0.05, 0.5, 0.95, 0.99, 1.0)


def test_radix_select_equals_numpy_quantile():
    rng = np.random.default_rng(2)
    for cell, v, k in _hard_cells(rng):
        st = _groups.cell_stats(cell, v, k, QS)
        for c in range(k):
            x = v[(cell == c) & ~np.isnan(v)]
            if not x.size:
                assert st["count"][c] == 0 and np.isnan(st[0.5][c])
                continue
            assert st["count"][c] == x.size and st["min"][c] == x.min() and st["max"][c] == x.max()
            for q in QS:
                assert st[q][c] == np.quantile(x, q), (c, q)


_PLAIN = r"""
import sys, numpy as np
from probekit.analysis._groups import cell_stats
rng = np.random.default_rng(4)
n = 4000
cell = rng.integers(0, 5, n)
v = np.where(rng.random(n) < 0.7, 250.0, rng.gamma(2.0, 3.0, n).round(2))
v[rng.random(n) < 0.05] = np.nan
st = cell_stats(cell, v, 5, (0.5, 0.95))
np.save(sys.argv[1], np.stack([st[k] for k in ("count", "sum", "min", "max", 0.5, 0.95)]))
"""


@pytest.mark.parametrize("jit", ["0", "1"])
def test_cell_stats_compiled_equal_plain_python(jit, tmp_path):
    out = tmp_path / f"st{jit}.npy"
    env = {**os.environ, "NUMBA_DISABLE_JIT": jit, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", _PLAIN, str(out)], env=env, check=True)
    got = np.load(out)
    rng = np.random.default_rng(4)
    n = 4000
    cell = rng.integers(0, 5, n)
    v = np.where(rng.random(n) < 0.7, 250.0, rng.gamma(2.0, 3.0, n).round(2))
    v[rng.random(n) < 0.05] = np.nan
    for c in range(5):
        x = v[(cell == c) & ~np.isnan(v)]
        assert got[0, c] == x.size and got[2, c] == x.min() and got[3, c] == x.max()
        assert np.isclose(got[1, c], x.sum(), rtol=1e-12)
        assert got[4, c] == np.quantile(x, 0.5) and got[5, c] == np.quantile(x, 0.95)


_ANALYSES = r"""
import sys, warnings, pandas as pd, probekit
from probekit.analysis import sources, sizes
warnings.simplefilter("ignore")
pr = probekit.match_probes(probekit.read_capture(sys.argv[1]))
for name, t in [("alternation", sources.alternation(pr)), ("quality", sources.source_quality(pr)),
                ("sizes", sizes.size_changes(pr)), ("periods", probekit.period_metrics(pr, 30))]:
    t.to_pickle(sys.argv[2] + "." + name)
"""


@pytest.mark.parametrize("rel", ["captures/lossy+size-change.pcapng", "captures/eni-failure.pcap"])
def test_source_kernels_compiled_equal_plain_python(rel, tmp_path):
    outs = {}
    for jit in ("0", "1"):
        env = {**os.environ, "NUMBA_DISABLE_JIT": jit, "PYTHONPATH": str(ROOT)}
        base = str(tmp_path / f"jit{jit}")
        subprocess.run([sys.executable, "-c", _ANALYSES, str(ROOT / rel), base], env=env, check=True)
        outs[jit] = [pd.read_pickle(f"{base}.{n}") for n in ("alternation", "quality", "sizes", "periods")]
    assert len(outs["0"][0])
    for a, b in zip(outs["0"], outs["1"]):
        pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize("seed", range(3))
def test_size_changes_equal_reference_on_random_sequences(seed):
    """Sizes that flip between a few values with odd packets, <NA> and ties in time, several streams."""
    rng = np.random.default_rng(seed)
    n = 3000
    regime = np.repeat(rng.choice([56, 120, 1400], 60), n // 60)
    size = np.where(rng.random(n) < 0.1, rng.choice([56, 120, 1400], n), regime).astype(object)
    size[rng.random(n) < 0.03] = None
    pr = pd.DataFrame({"protocol": pd.Categorical(rng.choice(["icmp", "tcp"], n)),
                       "destination": pd.Categorical(rng.choice(["a", "b", "c"], n)),
                       "port": pd.array(rng.choice([80, 443], n), dtype="UInt16"),
                       "ts_ns": np.sort(rng.integers(0, n // 2, n)) * 10**6,
                       "size": pd.array(size, dtype="Int32")})
    for min_run in (1, 2, 3, 5):
        want = R.size_changes(pr, min_run=min_run, configured_at_ns=10**8)
        got = sizes.size_changes(pr, min_run=min_run, configured_at_ns=10**8)
        assert len(got) > 5, min_run
        assert_same(want, got, f"min_run={min_run}")


def test_first_frequency_at_least_equals_searchsorted():
    rng = np.random.default_rng(9)
    for t in range(5000):
        step, size = 10 ** rng.uniform(-12, 3), int(rng.integers(1, 3000))
        target = step * (int(rng.integers(0, size + 2)) if t % 3 == 0 else rng.uniform(-2, size + 3))
        assert timing._first_at_least(step, target, size) == np.searchsorted(np.arange(size) * step, target)


def test_dominant_period_equals_reference():
    rng = np.random.default_rng(1)
    for t in range(60):
        m, period = int(rng.integers(5, 3000)), rng.uniform(1e6, 1e10)
        ts = np.cumsum(rng.normal(period, period * rng.uniform(0, 0.5), m)).astype(np.int64)
        if t % 3 == 0:
            ts = np.sort(rng.integers(0, 10**12, m))
        a, b = R.dominant_period_s(ts), timing.dominant_period_s(ts)
        assert a == b or (np.isnan(a) and np.isnan(b)), t


def test_periods_drop_a_stream_with_no_judged_probe_in_the_span():
    """A source whose every probe is unjudged has no rows; periods outside start_ns..end_ns are not counted."""
    pr = _probes("captures/eni-failure.pcap")
    src = pr["source"].cat.categories[0]
    assert pr["source"].nunique() >= 2
    q = pr.copy()
    q["outcome"] = q["outcome"].where(q["source"] != src, "unknown")
    got = metrics.period_metrics(q, 30)
    assert len(got) and src not in set(got["source"].astype(str))
    assert_same(R.period_metrics(q, 30), got, "periods")
    mid = int(pr["ts_ns"].median())
    for kw in ({"start_ns": mid}, {"end_ns": mid}, {"start_ns": mid, "end_ns": mid + 60 * 10**9}):
        assert_same(R.period_metrics(pr, 30, **kw), metrics.period_metrics(pr, 30, **kw), str(kw))


def test_coarser_groups_from_finer_equal_group_by():
    rng = np.random.default_rng(12)
    n = 4000
    pr = pd.DataFrame({
        "protocol": pd.Categorical.from_codes(rng.integers(-1, 3, n), categories=["icmp", "tcp", "udp"]),
        "source": pd.Categorical.from_codes(rng.integers(0, 5, n), categories=list("abcde")),
        "destination": pd.Categorical.from_codes(rng.integers(0, 2, n), categories=["x", "y"]),
        "port": pd.array(np.where(rng.random(n) < 0.2, None, rng.choice([80, 443, 7], n)), dtype="UInt16"),
    })
    fine = _groups.group_by(pr, ["protocol", "source", "destination", "port"])
    for keep in ([0, 2, 3], [0, 2, 3, 1], [1], [3, 0], [0, 1, 2, 3]):
        by = [["protocol", "source", "destination", "port"][j] for j in keep]
        want, got = _groups.group_by(pr, by), fine.coarsen(keep)
        assert got.n == want.n and (got.gid == want.gid).all() and (got.first == want.first).all(), by
        assert (got.size == want.size).all() and (got.code == want.code).all() and got.radix == want.radix
    # through the cache: the finer table's groups serve the coarser keys, and agree with group_by
    q = pr.copy()
    _groups.groups_of(q, ["protocol", "source", "destination", "port"])
    for by in (["protocol", "destination", "port"], ["protocol", "destination", "port", "source"]):
        got, want = _groups.groups_of(q, by), _groups.group_by(q, by)
        assert (got.gid == want.gid).all() and (got.first == want.first).all()
    q.loc[q.index[:50], "port"] = 9    # a key column changed: not from the stale finer groups
    got, want = _groups.groups_of(q, ["port", "protocol"]), _groups.group_by(q, ["port", "protocol"])
    assert (got.gid == want.gid).all() and got.n == want.n


def test_period_of_each_probe_is_the_exact_floor():
    """_period_counts counts each judged probe in its period from lo (floor division), also for times on
    and next to period boundaries, before the span and far after it (not counted)."""
    step = 30 * 10**9
    lo = 1_767_225_600 * 10**9 // step * step
    base = np.array([0, 1, step - 1, step, step + 1, 2 * step - 1, 7 * step, 10**15, 10**15 + 1])
    rng = np.random.default_rng(6)
    ts = np.concatenate([lo + base, lo - base[1:4], lo + rng.integers(0, 40 * step, 5000)]).astype(np.int64)
    n = ts.size
    hi = lo + 39 * step
    n_per = (hi - lo) // step + 1
    gid = rng.integers(0, 3, n)
    no = np.zeros(n, bool)
    sent, _, _, _ = metrics._period_counts(gid, ts, no, no, no, np.zeros(n), lo, hi, step, n_per, 3,
                                           np.empty(n, np.int64), np.empty(n))
    q = (ts - lo) // step
    keep = (q >= 0) & (q < n_per)
    want = np.bincount(gid[keep] * n_per + q[keep], minlength=3 * n_per)
    assert (sent == want).all() and sent.sum() < n
