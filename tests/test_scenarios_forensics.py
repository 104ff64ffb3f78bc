"""The forensics scenarios: background, unreachable, admin-prohibited, mtu-blackhole, fragmenting-path, pmtu —
deterministic, with truth, read back through streams, error attribution, reassembly and the MTU analysis.
ICMP errors' quoted headers come from real tshark (quoted_oracle) until the decoder has them."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import probekit
from probekit.analysis.datagrams import datagrams, reassembled_packets
from probekit.analysis.errors_icmp import attribute_errors, with_error_outcomes
from probekit.analysis.mtu import path_mtu
from probekit.analysis.streams import other_traffic, select_probe_streams, streams
from probekit.spec import SpecError
from probekit.synth import SCENARIOS, default_monitor, read_truth, scenario, synth
from probekit.synth.simulate import FIREWALL, ROUTER, TRUTH_COLUMNS, TRUTH_ERROR_COLUMNS
from quoted_oracle import add_quoted
from test_datagrams import tshark_reassembled

NEW = ("background", "unreachable", "admin-prohibited", "mtu-blackhole", "fragmenting-path", "pmtu")


def _make(tmp_path, name, seed=2, **kw):
    path = tmp_path / f"{name.replace('+', '_')}-{kw.get('family', 4)}.pcap"
    fam = kw.pop("family", 4)
    truth = synth(name, path, seed=seed, monitor=default_monitor(family=fam), **kw)
    return path, truth


def _joined(probes, truth):
    """Probes matched to their truth rows by source and send time (the pcap keeps microseconds)."""
    p = probes.assign(_k=probes["source"].astype(str) + "@" + (probes["ts_ns"] // 1000).astype(str))
    t = truth.assign(_k=truth["source"].astype(str) + "@" + (truth["send_ns"] // 1000).astype(str))
    m = p.merge(t, on="_k", how="outer", suffixes=("", "_truth"), indicator=True)
    return m


@pytest.mark.parametrize("name", NEW)
def test_scenarios_are_deterministic_and_documented(tmp_path, name):
    assert name in SCENARIOS
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, ta = _make(tmp_path / "a", name)
    b, tb = _make(tmp_path / "b", name)
    assert a.read_bytes() == b.read_bytes()
    pd.testing.assert_frame_equal(ta, tb)
    truth = read_truth(a)
    extra = list(TRUTH_ERROR_COLUMNS) if name != "background" else []
    assert list(truth.columns) == list(TRUTH_COLUMNS) + extra


def test_background_probes_are_the_healthy_probes(tmp_path):
    bg, _ = _make(tmp_path, "background")
    plain, _ = _make(tmp_path, "healthy")
    df, ref = probekit.read_capture(bg), probekit.read_capture(plain)
    assert len(df) > len(ref) + 500
    probes = probekit.match_probes(df)
    st = streams(df, probes)
    pr = st[st["kind"] == "probe"]
    assert sorted(zip(pr["protocol"].astype(str), pr["source_list"])) == [
        ("icmp", "198.51.100.10,198.51.100.11"), ("tcp", "198.51.100.10,198.51.100.11")]
    kinds = {(src, str(r.port)): str(r.kind) for r in st.itertuples() for src in r.source_list.split(",")}
    assert kinds[("203.0.113.12", "80")] == "client"          # a browser on the monitored port
    assert kinds[("203.0.113.10", "443")] == kinds[("203.0.113.11", "443")] == "client"
    assert kinds[("203.0.113.66", "80")] == "scan"            # the scanner's SYN to the monitored port
    assert kinds[("203.0.113.50", "22")] == "client"          # the analyst's ssh session carries data
    # the target's own DNS lookups (answered) and NTP polls (every 64 s, answered) are UDP requests for the
    # matcher and client streams here: service ports, UDP replies — never probes
    udp = st[st["protocol"] == "udp"]
    assert sorted(int(p) for p in udp["port"]) == [53, 123] and set(udp["kind"]) == {"client"}
    assert (udp["data_pct"] == 100).all()
    ot = other_traffic(df, st)
    assert set(ot["kind"].astype(str)) == {"client", "scan", "arp"}
    for by in (("protocol", "source", "destination", "port"), ("protocol", "destination", "port")):
        pd.testing.assert_frame_equal(probekit.period_metrics(select_probe_streams(probes, st), 30, by=by),
                                      probekit.period_metrics(probekit.match_probes(ref), 30, by=by))


@pytest.mark.parametrize("other", ["target-down", "lossy", "eni-failure", "pmtu"])
def test_background_composes(tmp_path, other):
    mixed, _ = _make(tmp_path, f"background+{other}")
    alone, _ = _make(tmp_path, other)
    df = probekit.read_capture(mixed)
    probes = probekit.match_probes(df)
    sel = select_probe_streams(probes, streams(df, probes))
    ref = probekit.match_probes(probekit.read_capture(alone))
    pd.testing.assert_frame_equal(probekit.period_metrics(sel, 30), probekit.period_metrics(ref, 30))


@pytest.mark.parametrize("name,family", [("unreachable", 4), ("unreachable", 6), ("admin-prohibited", 4),
                                         ("admin-prohibited", 6), ("pmtu", 4), ("pmtu", 6)])
def test_error_outcomes_match_the_truth(tmp_path, name, family):
    path, _ = _make(tmp_path, name, family=family)
    truth = read_truth(path)
    df = add_quoted(probekit.read_capture(path), path)
    probes = probekit.match_probes(df)
    errors = attribute_errors(df, probes)
    w = with_error_outcomes(probes, errors)
    m = _joined(w, truth)
    assert (m["_merge"] == "both").all()
    judged = m["outcome"].astype(str) != "unknown"       # the capture ended before the timeout ran out
    assert judged.mean() > 0.99
    assert (m.loc[judged, "outcome"].astype(str) == m.loc[judged, "outcome_truth"].astype(str)).all()
    e = m[m["reporter_truth"].fillna("") != ""]
    assert len(e) > 100
    assert (e["error_code"].astype(str) == e["error_code_truth"].astype(str)).all()
    assert (e["reporter"].astype(str) == e["reporter_truth"].astype(str)).all()
    router = (FIREWALL if name == "admin-prohibited" else ROUTER)[family]
    assert set(e["reporter"].astype(str)) == {router}
    if name == "pmtu":
        assert set(e["outcome"].astype(str)) == {"frag_needed" if family == 4 else "packet_too_big"}
        assert (e["mtu"].astype("Int64") == e["mtu_truth"].astype("Int64")).all() and set(e["mtu"]) == {1400}
    else:
        assert set(e["outcome"].astype(str)) == {"unreachable"}
        want = {"unreachable": {4: "host", 6: "address"}, "admin-prohibited": {4: "admin_prohibited",
                                                                               6: "admin_prohibited"}}
        assert set(e["error_code"].astype(str)) == {want[name][family]}
    assert m.loc[m["reporter_truth"].fillna("") == "", "reporter"].isna().all()


@pytest.mark.parametrize("family", [4, 6])
def test_mtu_paths(tmp_path, family):
    hdr = 20 if family == 4 else 40
    got = {}
    for name in ("mtu-blackhole", "pmtu", "fragmenting-path"):
        path, _ = _make(tmp_path, name, family=family)
        df = add_quoted(probekit.read_capture(path), path)
        d = datagrams(df)
        probes = probekit.match_probes(reassembled_packets(df, d))
        w = with_error_outcomes(probes, attribute_errors(df, probes))
        got[name] = path_mtu(w, packets=df, datagrams=d).set_index("protocol")
    bh = got["mtu-blackhole"]
    assert set(bh["path"].astype(str)) == {"black_hole"} and bh["mtu"].isna().all()
    assert set(bh["largest_pass"]) == {56} and set(bh["smallest_fail"]) == {1472}
    assert set(bh["mtu_low"]) == {56 + hdr} and set(bh["mtu_high"]) == {1472 + hdr}   # 1400 lies between
    pm = got["pmtu"]
    assert set(pm["path"].astype(str)) == {"frag_needed" if family == 4 else "packet_too_big"}
    assert set(pm["mtu"]) == {1400} and set(pm["reporters"]) == {ROUTER[family]}
    fr = got["fragmenting-path"]
    # the largest fragment: 1500 for IPv4; IPv6 fragment data is a multiple of 8 after 48 header bytes: 1496
    assert set(fr["path"].astype(str)) == {"fragments"} and set(fr["mtu"]) == {1500 if family == 4 else 1496}
    assert set(fr["largest_pass"]) == {8500}


@pytest.mark.parametrize("family", [4, 6])
def test_fragmenting_path_matches_once_with_the_last_fragments_rtt(tmp_path, family):
    path, _ = _make(tmp_path, "fragmenting-path", family=family, loss=0.03)   # some reply fragments lost
    truth = read_truth(path)
    df = probekit.read_capture(path)
    d = datagrams(df)
    ours = {(int(r.last_frame), int(r.payload_len), int(r.fragments + r.dropped)) for r in d[d["complete"]].itertuples()}
    assert ours == tshark_reassembled(path)
    assert len(ours) > 500
    probes = probekit.match_probes(reassembled_packets(df, d))
    m = _joined(probes, truth)
    assert (m["_merge"] == "both").all() and len(m) == len(truth)
    judged = m["outcome"].astype(str) != "unknown"       # the capture ended before the timeout ran out
    assert judged.mean() > 0.99
    assert (m.loc[judged, "outcome"].astype(str) == m.loc[judged, "outcome_truth"].astype(str)).all()
    big = m[m["size_truth"] == 8500]
    assert len(big) > 500 and (big["size"] == 8500).all()
    ans = m[m["outcome"] == "answered"]
    assert np.allclose(ans["rtt_us"], ans["rtt_us_truth"], atol=1.0)     # microsecond pcap
    # replies that lost one fragment: the datagram is incomplete and the probe lost
    lost = big[(big["outcome_truth"] == "lost") & (big["lost_leg"] == "reply")
               & big["protocol"].astype(str).isin(["icmp", "icmpv6"])]
    broken = d[d["reason"].isin(["incomplete", "timeout"])]
    assert len(lost) >= 1 and len(broken) >= len(lost)
    assert set(broken["src"].astype(str)) == {str(truth["destination"].iloc[0])}    # the replies'
    assert (lost["outcome"] == "lost").all()
    # without reassembly the matcher sees the first fragments only: sizes are wrong
    raw = probekit.match_probes(df)
    assert not (raw["size"] == 8500).any()


def test_bad_knobs_are_named():
    with pytest.raises(SpecError, match="oversize"):
        scenario("pmtu", oversize="shrink")
    with pytest.raises(SpecError, match="path_mtu"):
        scenario("healthy", path_mtu=500)
    with pytest.raises(SpecError, match="router_error"):
        scenario("unreachable", router_error="gone")
