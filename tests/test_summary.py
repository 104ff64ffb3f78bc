"""The session's summary (findings, headline, per-stream facts) equals the plain pandas version it
replaced (tests/reference_summary.py), on captures that exercise its findings."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import probekit
import reference_summary as R
from probekit import session

CAPTURES = Path(__file__).resolve().parents[1] / "captures"


def _same(a, b) -> bool:
    """Equal values, NaN equal to NaN, types kept (an int is not a float here)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("name", ["target-down.pcap", "lossy+size-change.pcapng"])
def test_summary_equals_reference(name):
    cap = probekit.open_capture(CAPTURES / name)
    got, want = cap.summary(), R.capture_summary(cap)
    assert want["streams"] and want["anomalies"]                    # there is something to compare
    assert _same(got, want), (got, want)


def test_stream_stats_equal_pandas_on_mixed_outcomes():
    """Loss, median RTT, sources and the outcomes' words per stream equal pandas' on a table with
    outcomes missing, unjudged probes, a stream with no judged probe and one never answered."""
    pr = probekit.open_capture(CAPTURES / "port-closed.pcap").probes.copy()
    rng = np.random.default_rng(3)
    cats = list(pr["outcome"].cat.categories)
    codes = rng.integers(-1, len(cats), len(pr))
    pr["outcome"] = pd.Categorical.from_codes(codes, dtype=pr["outcome"].dtype)
    pr["rtt_us"] = np.where(rng.random(len(pr)) < 0.3, np.nan, rng.random(len(pr)) * 1e4)
    half = len(pr) // 2
    pr.loc[pr.index[:5], "outcome"] = "unknown"
    pr.loc[pr.index[half:], "port"] = 7                            # a second stream
    pr.loc[pr.index[half:], "outcome"] = "lost"                    # never answered
    got = session._stream_stats(pr)
    g = pr.groupby(list(session.STREAM_KEYS), observed=True, dropna=False, sort=True)
    assert len(got) == g.ngroups >= 2 and any(math.isnan(r[4]) for r in got) and any(not math.isnan(r[4]) for r in got)
    for (_, sub), (k, sources, n, loss, rtt, words) in zip(g, got):
        judged = sub[sub["outcome"] != "unknown"]
        ok = judged["outcome"].isin(["answered", "refused"])
        assert k == tuple(sub[c].iloc[0] for c in session.STREAM_KEYS) and n == len(sub)
        assert sources == sub["source"].nunique()
        assert _same(loss, float(100 * (1 - ok.mean())) if len(judged) else float("nan"))
        assert _same(rtt, float(judged["rtt_us"].median()) if ok.any() else float("nan"))
        assert words == ", ".join(f"{a} {b}" for a, b in sub["outcome"].value_counts().items() if b)


def test_stream_counts_kernel_equals_plain_python():
    """The summary's one-pass kernel (outcome counts, distinct sources, the judged RTTs stream by stream)
    equals its plain-Python run, and numpy's bincount / stable sort it replaced."""
    rng = np.random.default_rng(11)
    m, n, k, ns = 5000, 7, 11, 5
    gid = rng.integers(0, n, m).astype(np.int64)
    oc = rng.integers(-1, k - 1, m).astype(np.int32)
    src = rng.integers(-1, ns, m).astype(np.int32)
    rtt = np.where(rng.random(m) < 0.2, np.nan, rng.random(m))
    uk = 4
    kern = session._stream_counts
    got = kern(gid, n, oc, k, src, ns, True, rtt, uk)
    plain = getattr(kern, "py_func", kern)(gid, n, oc, k, src, ns, True, rtt, uk)
    for a, b in zip(got, plain):
        assert np.array_equal(a, b, equal_nan=True)
    per, sources, vals, bounds = got
    assert np.array_equal(per, np.bincount(gid * k + np.where(oc < 0, k - 1, oc), minlength=n * k).reshape(n, k))
    has = src >= 0
    assert np.array_equal(sources, (np.bincount(gid[has] * ns + src[has], minlength=n * ns).reshape(n, ns) > 0).sum(1))
    w = (oc != uk) & ~np.isnan(rtt)
    order = np.argsort(gid[w], kind="stable")
    assert np.array_equal(vals, rtt[w][order]) and np.array_equal(bounds, np.searchsorted(gid[w][order], np.arange(n + 1)))
    assert not kern(gid, n, oc, k, src, ns, False, rtt, uk)[1].any()        # no bitmap: counted by the caller
