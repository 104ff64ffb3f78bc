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
