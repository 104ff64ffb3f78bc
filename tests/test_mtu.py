"""MTU: probe size against outcome. The path scenarios (black hole, fragmenting, frag-needed) are in
tests/test_scenarios_forensics.py, where their truth is known; here the shipped captures."""
from __future__ import annotations

import numpy as np

import probekit
from conftest import ROOT
from probekit.analysis.mtu import path_mtu, size_outcomes
from probekit.plots.mtu import plot_mtu
from probekit.schema import MTU, MTU_SIZES, check_table


def test_size_change_that_fits_the_path():
    df = probekit.read_capture(ROOT / "captures" / "size-change.pcap")
    probes = probekit.match_probes(df)
    s = size_outcomes(probes, packets=df)
    check_table(s, MTU_SIZES)
    assert sorted(set(s["size"].astype(int))) == [56, 120]
    assert set(s["verdict"].astype(str)) == {"pass"} and (s["fragmented"] == 0).all()
    # the new size starts where the wire followed the configuration
    new = s[s["size"] == 120]
    assert (new["first_ns"] > s.loc[s["size"] == 56, "last_ns"].max()).all()
    m = path_mtu(probes, packets=df)
    check_table(m, MTU)
    assert set(m["path"].astype(str)) == {"fits"} and m["mtu"].isna().all()
    assert list(m["largest_pass"]) == [120, 120] and list(m["mtu_low"]) == [140, 140]
    ax = plot_mtu(probes, m)
    assert ax.get_ylabel() == "probe size (bytes)" and len(ax.collections) >= 1


def test_target_down_is_not_an_mtu_problem():
    df = probekit.read_capture(ROOT / "captures" / "target-down.pcap")
    m = path_mtu(probekit.match_probes(df), packets=df)
    # one size, answered before the target went down: it fits; the loss is not about size
    assert set(m["path"].astype(str)) == {"fits"} and m["smallest_fail"].isna().all()


def test_empty():
    df = probekit.read_capture(ROOT / "captures" / "healthy.pcap")
    probes = probekit.match_probes(df).iloc[:0]
    check_table(size_outcomes(probes), MTU_SIZES)
    check_table(path_mtu(probes), MTU)
    assert path_mtu(probes).empty
    plot_mtu(probes)


def test_cli_mtu_and_streams(tmp_path, capsys):
    import json

    from probekit.cli import main
    from probekit.synth import synth
    path = tmp_path / "pmtu.pcap"
    synth("pmtu+background", path, seed=4)
    assert main(["mtu", str(path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    # without the decoder's quoted columns the errors are counted, not attributed: still 'frag_needed'
    assert {r["path"] for r in rows} == {"frag_needed"} and {r["smallest_fail"] for r in rows} == {1472}
    assert all("203.0.113.1" in r["reporters"] for r in rows)
    assert main(["streams", str(path), "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert sorted(r["protocol"] for r in st if r["kind"] == "probe") == ["icmp", "tcp"]
    assert {"client", "scan"} <= {r["kind"] for r in st}
    assert main(["streams", str(path), "--other", "--csv"]) == 0
    assert capsys.readouterr().out.startswith("kind,talkers,top_talkers,packets,bytes")
    assert main(["mtu", str(tmp_path / "missing.pcap")]) == 1


# ---------------------------------------------------------------- the numpy grouping equals the pandas one
def _same_size_outcomes(probes, packets=None, datagrams=None):
    import pandas as pd

    import reference_mtu as R
    new = size_outcomes(probes, packets=packets, datagrams=datagrams)
    pd.testing.assert_frame_equal(new, R.size_outcomes(probes, packets=packets, datagrams=datagrams))
    return len(new)


def test_size_outcomes_equal_reference_on_shipped_captures():
    import warnings
    rows = 0
    for p in sorted((ROOT / "captures").rglob("*.pcap*")):
        if p.suffix not in (".pcap", ".pcapng"):
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", probekit.CaptureWarning)
            cap = probekit.open_capture(p, cloudwatch=False)
            rows += _same_size_outcomes(cap.probes, cap.packets, cap.datagrams)
            rows += _same_size_outcomes(cap.all_probes)
    assert rows > 40


def test_size_outcomes_equal_reference_on_the_path_scenarios(tmp_path):
    # black hole, fragments and frag-needed: lost sizes, fragmented probes and the errors' named MTU
    from probekit.synth import default_monitor, synth
    from quoted_oracle import add_quoted
    kinds = set()
    for name in ("mtu-blackhole", "fragmenting-path", "pmtu"):
        path = tmp_path / f"{name}.pcap"
        synth(name, path, seed=2, monitor=default_monitor(family=4))
        df = add_quoted(probekit.read_capture(path), path)
        cap = probekit.Capture.from_packets(df, path, cloudwatch=False, all_streams=True)
        _same_size_outcomes(cap.probes, cap.packets, cap.datagrams)
        kinds |= set(path_mtu(cap.probes, packets=cap.packets, datagrams=cap.datagrams)["path"].astype(str))
    assert {"black_hole", "fragments", "frag_needed"} <= kinds


def test_size_outcomes_equal_reference_on_the_real_corpus():
    import warnings

    from conftest import REAL, real_captures, require_real_captures
    require_real_captures()
    n = 0
    for rel in real_captures():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", probekit.CaptureWarning)
                cap = probekit.open_capture(REAL / rel, cloudwatch=False)
                probes = cap.all_probes
        except probekit.CaptureError:
            continue
        n += _same_size_outcomes(probes, cap.packets, cap.datagrams)
    assert n > 0


def _random_probes(rng, n: int, sizes: int, categorical: bool = True):
    """A probes-like table: protocols, destinations (some <NA>), ports (some <NA>), sizes (some <NA>), every
    outcome, errors' MTUs, times out of order; categorical columns or plain text."""
    import pandas as pd

    from probekit.schema import OUTCOMES
    lo = -1 if categorical else 0      # (plain text without missing values: _text_rank sorts the texts)
    proto = pd.Categorical.from_codes(rng.integers(lo, 3, n), categories=["icmp", "tcp", "icmpv6"])
    dst = pd.Categorical.from_codes(rng.integers(lo, 4, n), categories=["192.0.2.9", "2001:db8::1", "10.0.0.1", "b"])
    df = pd.DataFrame({
        "protocol": proto, "destination": dst,
        "port": pd.array(np.where(rng.random(n) < 0.2, None, rng.choice([80, 443, 0, 65535], n)), dtype="UInt16"),
        "size": pd.array(np.where(rng.random(n) < 0.05, None, rng.integers(0, sizes, n) * 8 + 56), dtype="Int32"),
        "outcome": pd.Categorical(rng.choice(list(OUTCOMES), n), categories=list(OUTCOMES)),
        "mtu": pd.array(np.where(rng.random(n) < 0.7, None, rng.choice([1280, 1400, 1500], n)), dtype="UInt32"),
        "ts_ns": rng.integers(0, 10**12, n),
        "request_frame": np.arange(n), "reply_frame": pd.array(np.arange(n) + n, dtype="Int64"),
    })
    if not categorical:
        for c in ("protocol", "destination", "outcome"):
            df[c] = df[c].astype(object)
    return df


def test_size_outcomes_equal_reference_on_random_tables(monkeypatch):
    """The compiled grouping (mtu._size_groups) against the pandas reference: <NA> keys, every outcome,
    unordered times, plain-text columns, and more groups than the kernel's first table (the retry)."""
    import pandas as pd

    import reference_mtu as R
    from probekit.analysis import mtu
    rng = np.random.default_rng(11)
    for n, sizes, categorical in ((3000, 5, True), (3000, 5, False), (20000, 2000, True), (1, 1, True), (0, 1, True)):
        df = _random_probes(rng, n, sizes, categorical)
        new = size_outcomes(df)
        pd.testing.assert_frame_equal(new, R.size_outcomes(df))
        if n > 10000:
            assert len(new) > mtu._NO_TABLE // 2    # past the first table: the kernel ran again
    # the kernel run as plain Python gives the same table
    kernel = getattr(mtu._size_groups, "py_func", None)
    if kernel is not None:
        df = _random_probes(rng, 2000, 5)
        want = size_outcomes(df)
        monkeypatch.setattr(mtu, "_size_groups", kernel)
        with np.errstate(over="ignore"):   # the hash's uint64 products wrap, as compiled
            pd.testing.assert_frame_equal(size_outcomes(df), want)


def test_any_in_is_in_any():
    import pandas as pd

    from probekit.analysis.mtu import _any_in, _in
    cats = pd.Categorical.from_codes([0, 1, -1, 1], categories=["lost", "frag_needed", "unused"])
    for s in (pd.Series(cats), pd.Series(cats).astype(object), pd.Series(cats[:1]), pd.Series(cats[2:3])):
        for values in (("frag_needed",), ("unused",), ("nan",), ("lost", "nan"), ()):
            assert _any_in(s, values) == bool(_in(s, values).any()), (list(s), values)
