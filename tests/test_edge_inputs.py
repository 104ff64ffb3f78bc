"""Every analysis on degenerate captures: empty, no probes, one source, IPv6 only, a single packet,
jumbo probes. A clear 'nothing to analyse' result, never an exception or a wrong 0."""
from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

import probekit
from helpers import capwriter as W
from helpers.frames import ether, icmp4
from probekit import plots
from probekit.synth import default_monitor, synth

ROOT = Path(__file__).resolve().parents[1]


def _cases(tmp: Path) -> dict[str, Path]:
    out = {}
    (tmp / "empty.pcap").write_bytes(W.pcap([]))
    out["empty"] = tmp / "empty.pcap"
    out["no-probes"] = tmp / "noprobes.pcap"
    # DNS-ish UDP only: packets but no probe
    import dpkt
    udp = dpkt.udp.UDP(sport=5353, dport=53, data=b"x" * 20)
    ip = bytes(dpkt.ip.IP(src=b"\xc0\x00\x02\x01", dst=b"\xc0\x00\x02\x02", p=17, data=udp))
    out["no-probes"].write_bytes(W.pcap([(1, 0, ether(ip)), (2, 0, ether(ip))]))
    (tmp / "single.pcap").write_bytes(W.pcap([(1_700_000_000, 0, ether(icmp4()))]))
    out["single-packet"] = tmp / "single.pcap"
    synth("healthy", tmp / "one.pcap", seed=1, duration_s=20, monitor=default_monitor(sources=1))
    out["one-source"] = tmp / "one.pcap"
    synth("healthy", tmp / "v6.pcapng", seed=1, duration_s=20, monitor=default_monitor(family=6))
    out["ipv6-only"] = tmp / "v6.pcapng"
    synth("healthy", tmp / "jumbo.pcap", seed=1, duration_s=10, monitor=default_monitor(size=8500))
    out["jumbo"] = tmp / "jumbo.pcap"
    return out


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    return _cases(tmp_path_factory.mktemp("edge"))


@pytest.mark.parametrize("case", ["empty", "no-probes", "single-packet", "one-source", "ipv6-only", "jumbo"])
def test_every_analysis_accepts(cases, case):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no pandas/numpy warnings either (empty means, divisions by zero)
        cap = probekit.open_capture(cases[case])
        p = cap.probes
        per = cap.periods
        t = cap.timing
        cap.gaps, cap.shares, cap.alternation, cap.source_quality, cap.size_changes()
        bal = cap.balance
        v = cap.payload_verdicts
        conns = cap.connections
        fp = cap.fingerprints
        s = cap.summary()
    if case in ("empty", "no-probes"):
        assert p.empty and per.empty and t.empty and v.empty and fp.empty
        assert cap.not_applicable("probes") and s["streams"] == []
    if case == "single-packet":
        assert len(p) == 1 and p["outcome"].iloc[0] == "unknown" and np.isnan(p["rtt_us"].iloc[0])
        assert per.empty, "an unjudgeable probe makes no period"
        assert cap.not_applicable("timing")
    if case == "one-source":
        assert bal["balanced"].isna().all() and bal["p_value"].isna().all()
        assert cap.not_applicable("sources")
    if case == "ipv6-only":
        assert set(p["protocol"].astype(str)) == {"icmpv6", "tcp"} and (per["loss_pct"] >= 0).all()
    if case == "jumbo":
        assert (p["size"] == 8500).all() and (v["length"] >= 8480).all()
        assert set(v["verdict"]) == {"random"}
    # no loss figure is ever a 0 standing in for "nothing"
    assert per.loc[per["sent"] == 0, "loss_pct"].isna().all()
    assert conns.empty or conns["conn_state"].notna().all()


@pytest.mark.parametrize("case", ["empty", "no-probes"])
def test_plots_say_there_is_nothing(cases, case):
    cap = probekit.open_capture(cases[case])
    for ax in (plots.plot_timeline(cap.probes), plots.plot_smokeping(cap.probes), plots.plot_shares(cap.shares),
               plots.plot_byte_histogram(cap.payloads), plots.plot_rst_delay(cap.connections)):
        assert ax.texts, "an empty figure explains itself"
    fig = plots.plot_loss_rtt(cap.probe_periods)
    assert fig.axes[0].texts
