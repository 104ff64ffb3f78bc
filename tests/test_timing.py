"""timing_summary's dominant period per group is dominant_period_s of the group's times, bit for bit
(the summary hands it the median it already has)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import probekit
from probekit.analysis import timing
from probekit.schema import SOURCE_STREAM_KEYS

CAPTURES = Path(__file__).resolve().parents[1] / "captures"


def test_summary_dominant_period_is_dominant_period_s_of_each_group():
    pr = probekit.match_probes(probekit.read_capture(CAPTURES / "eni-failure.pcap"))
    rng = np.random.default_rng(5)
    by = list(SOURCE_STREAM_KEYS)
    codes = pr.groupby(by, observed=True, dropna=False, sort=True).ngroup().to_numpy()
    pr = pr.drop(pr.index[codes == 0][:1]).reset_index(drop=True)     # one group of an odd count
    codes = pr.groupby(by, observed=True, dropna=False, sort=True).ngroup().to_numpy()
    assert np.bincount(codes).min() >= 9 and len(set(np.bincount(codes) % 2)) == 2   # odd and even counts
    for huge in (False, True):
        q = pr.copy()
        # jittered trains, with ties (a median of two middle values) and, once, a gap beyond 2^52 ns
        ts = np.cumsum(rng.choice([0, 10**9, 10**9 + 7, 2 * 10**9 + 3], len(q))).astype(np.int64)
        if huge:
            ts[len(q) // 2:] += 2**53
        q["ts_ns"] = pd.array(ts, dtype="Int64")
        got = timing.timing_summary(q, by)
        want = [timing.dominant_period_s(q["ts_ns"].to_numpy("int64")[codes == k]) for k in range(codes.max() + 1)]
        assert np.array_equal(got["dominant_period_s"].to_numpy(), np.asarray(want), equal_nan=True)
        assert np.isfinite(want).all()
