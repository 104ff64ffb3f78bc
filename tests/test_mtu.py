"""MTU: probe size against outcome. The path scenarios (black hole, fragmenting, frag-needed) are in
tests/test_scenarios_forensics.py, where their truth is known; here the shipped captures."""
from __future__ import annotations

from conftest import ROOT

import probekit
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
