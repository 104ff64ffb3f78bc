"""The real lab captures shipped in captures/lab: read back, analysed, and agreeing with the prober that
sent them. No root needed: these are files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import probekit
from probekit.synth import read_truth

LAB = Path(__file__).resolve().parents[1] / "captures" / "lab"


@pytest.mark.parametrize("name", ["lab-healthy", "lab-target-down", "lab-port-closed"])
def test_lab_capture_agrees_with_its_prober(name):
    df = probekit.read_capture(LAB / f"{name}.pcap")
    assert set(df["linktype"]) == {276}, "tcpdump -i any writes Linux SLL2"
    probes = df.probekit.probes()
    res = read_truth(LAB / f"{name}.results.csv").sort_values("send_ns")
    p = probes.assign(source=probes["source"].astype(str), protocol=probes["protocol"].astype(str)).sort_values("ts_ns")
    j = pd.merge_asof(res, p[["ts_ns", "source", "protocol", "outcome", "rtt_us"]], left_on="send_ns",
                      right_on="ts_ns", by=["source", "protocol"], direction="nearest", tolerance=100_000_000,
                      suffixes=("", "_cap"))
    assert j["outcome_cap"].notna().all()
    judged = j["outcome_cap"] != "unknown"
    assert (j.loc[judged, "outcome"] == j.loc[judged, "outcome_cap"].astype(str)).all()
    both = j["rtt_us"].notna() & j["rtt_us_cap"].notna()
    diff = np.abs(j.loc[both, "rtt_us"] - j.loc[both, "rtt_us_cap"])
    assert (diff < 1000).mean() >= 0.98 and diff.median() < 200


def test_the_investigation_in_real_captures():
    healthy = probekit.open_capture(LAB / "lab-healthy.pcap")
    assert (healthy.fingerprints["tool"] == "cwnm-like").all() and healthy.balance["balanced"].all()
    tcp_conns = healthy.connections[healthy.connections["proto"] == "tcp"]
    assert set(tcp_conns["history"]) == {"SThR"}, "SYN -> SYN/ACK -> RST, the kernel's RST suppressed"
    down = probekit.open_capture(LAB / "lab-target-down.pcap")
    tcp = down.probe_periods[down.probe_periods["protocol"] == "tcp"]
    assert (tcp["status"] == "no_reply").sum() >= 2
    assert tcp.loc[tcp["status"] == "no_reply", "loss_pct"].eq(100).all()
    assert tcp.loc[tcp["status"] == "no_reply", "rtt_mean_us"].isna().all()
    closed = probekit.open_capture(LAB / "lab-port-closed.pcap")
    assert (closed.connections.query("proto == 'tcp'")["conn_state"] == "REJ").all()
