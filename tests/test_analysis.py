"""Analyses I against the ground truth of every shipped capture and against real captures' oracles."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

import probekit
from helpers.corpus import ORACLE, REAL, require_real_captures
from helpers.oracle import epoch_to_ns, load_tshark
from probekit import plots
from probekit.schema import PERIODS, PROBES, check_table
from probekit.synth import read_truth, synth
from probekit.synth.shipped import SHIPPED

ROOT = Path(__file__).resolve().parents[1]
CAPTURES = ROOT / "captures"
_NS = 10**9


def _pair(name):
    df = probekit.read_capture(CAPTURES / name)
    return df, df.probekit.probes(), read_truth(CAPTURES / name)


def _join(probes, truth, unit):
    """Probe rows joined to truth rows by source and send time (at the capture's resolution)."""
    t = truth.assign(key=truth["send_ns"] // unit * unit, source=truth["source"].astype(str))
    p = probes.assign(key=probes["ts_ns"], source=probes["source"].astype(str))
    return p.merge(t, on=["source", "key"], how="outer", suffixes=("", "_truth"), indicator=True)


@pytest.mark.parametrize("name", sorted(n for n in SHIPPED if "target-side" not in n))
def test_matching_equals_truth_probe_for_probe(name):
    df, probes, truth = _pair(name)
    check_table(probes, PROBES)
    assert probes.attrs["vantage"] == "prober" and probes.attrs["orphan_replies"] == 0
    unit = 1000 if name.endswith(".pcap") else 1
    j = _join(probes, truth, unit)
    assert (j["_merge"] == "both").all(), j[j["_merge"] != "both"].head()
    # the capture cannot judge a probe sent less than the timeout before it ends: 'unknown'
    unknown = j["outcome"] == "unknown"
    assert (j.loc[unknown, "ts_ns"] > probes.attrs["capture_end_ns"] - probes.attrs["timeout_s"] * _NS).all()
    known = j[~unknown]
    assert (known["outcome"].astype(str) == known["outcome_truth"]).all()
    ans = known[known["answered"]]
    # RTT from µs timestamps: both ends truncated, so within 1 µs of the truth
    assert np.abs(ans["rtt_us"] - ans["rtt_us_truth"]).max() <= (1.0 if unit == 1000 else 0.001)
    assert known.loc[~known["answered"], "rtt_us"].isna().all(), "no reply never gives an RTT"
    assert (known["size"] == known["size_truth"]).all()
    tcp_ok = known[(known["protocol"] == "tcp") & (known["outcome"] == "answered")]
    assert tcp_ok["reset_frame"].notna().all() and np.allclose(tcp_ok["reset_after_us"], 80, atol=1)


def test_target_side_capture():
    df, probes, truth = _pair("healthy-ipv6-target-side.pcap")
    assert probes.attrs["vantage"] == "target"
    reached = truth[~truth["lost_leg"].isin(["request", "target_down"])]
    assert len(probes) == len(reached)
    # at the target, 'RTT' is the target's own turnaround (40 µs in this scenario)
    assert np.allclose(probes["rtt_us"].dropna(), 40, atol=1)
    tcp = probes[(probes["protocol"] == "tcp") & probes["reset_frame"].notna()]
    # the prober's RST comes back one network RTT (+ its 80 µs) after the SYN/ACK left
    assert (tcp["reset_after_us"] > 5000).all()


def _truth_periods(truth, period_s, by):
    t = truth.assign(period_start_ns=truth["send_ns"] // (period_s * _NS) * period_s * _NS)
    g = t.groupby(by + ["period_start_ns"])
    return g.agg(sent=("answered", "size"), answered=("answered", "sum")).reset_index()


@pytest.mark.parametrize("name", ["healthy.pcap", "target-down.pcap", "lossy.pcapng", "eni-failure.pcap",
                                  "tcp-stops-after-activation.pcap", "port-closed.pcap"])
@pytest.mark.parametrize("period_s", [30, 60])
def test_period_metrics_equal_truth(name, period_s):
    df, probes, truth = _pair(name)
    known = probes[probes["outcome"] != "unknown"]
    per = probekit.period_metrics(probes, period_s)
    check_table(per, PERIODS)
    # truth restricted to the probes the capture could judge
    unit = 1000 if name.endswith(".pcap") else 1
    judged = truth[(truth["send_ns"] // unit * unit).isin(known["ts_ns"])]
    exp = _truth_periods(judged.assign(protocol=judged["protocol"]), period_s, ["protocol", "source"])
    got = per[per["sent"] > 0].assign(protocol=lambda d: d["protocol"].astype(str), source=lambda d: d["source"].astype(str))
    m = got.merge(exp, on=["protocol", "source", "period_start_ns"], suffixes=("", "_t"), how="outer")
    assert len(m) == len(got) == len(exp)
    assert (m["sent"] == m["sent_t"]).all() and (m["answered"] == m["answered_t"]).all()
    # honesty: the status follows the counts, and no reply never means 0 % or 0 ms
    assert (per.loc[per["status"] == "no_reply", "loss_pct"] == 100).all()
    assert per.loc[per["status"] == "no_reply", ["rtt_mean_us", "rtt_median_us"]].isna().all().all()
    assert per.loc[per["status"] == "no_probes", ["loss_pct", "rtt_mean_us"]].isna().all().all()
    assert (per.loc[per["status"] == "no_probes", "sent"] == 0).all()


def test_stopped_tcp_probes_are_no_data_periods_and_gaps():
    df, probes, truth = _pair("tcp-stops-after-activation.pcap")
    per = probekit.period_metrics(probes, 30)
    tcp = per[per["protocol"] == "tcp"]
    rel = (tcp["period_start_ns"] - tcp["period_start_ns"].min()) // _NS
    assert set(rel[tcp["status"] == "no_probes"]) == {60, 90, 120, 150, 240, 270}
    gaps = probekit.find_gaps(probes, span_ns=df.probekit.span_ns())
    assert set(gaps["protocol"].astype(str)) == {"tcp"}
    t0 = truth["send_ns"].min()
    inner = gaps[gaps["kind"] == "gap"]
    assert len(inner) == 2  # one per source
    assert np.allclose((inner["start_ns"] - t0) / _NS, 60, atol=1.0) and np.allclose((inner["end_ns"] - t0) / _NS, 180, atol=1.0)
    assert (gaps[gaps["kind"] == "trailing"]["length_s"] > 55).all()


def test_timing_numbers():
    df, probes, truth = _pair("healthy.pcap")
    s = probekit.timing_summary(probes, span_ns=df.probekit.span_ns())
    # 2 probes/s per probe round-robin over 2 ENIs: each stream (per source) every 1 s
    assert np.allclose(s["rate_per_s"], 1.0, rtol=0.01) and np.allclose(s["dominant_period_s"], 1.0, rtol=0.01)
    # send jitter is uniform ±2 ms on both ends: inter-arrival std = 2/sqrt(3)*sqrt(2) ms = 1.63 ms
    assert np.allclose(s["ia_std_ms"], 2 / np.sqrt(3) * np.sqrt(2), rtol=0.15)
    assert (s["ia_mad_ms"] < s["ia_std_ms"]).all() and (s["gaps"] == 0).all() and (s["bursts"] == 0).all()
    ia = probekit.inter_arrivals(probes)
    assert ia["ia_s"].isna().sum() == len(s)


def test_per_eni_distribution():
    _, probes, truth = _pair("healthy.pcap")
    bt = probekit.balance_test(probes)
    assert bt["balanced"].all() and (bt["p_value"] > 0.01).all()
    alt = probekit.alternation(probes)
    assert alt["round_robin"].all()
    sh = probekit.source_shares(probes)
    exp = truth.groupby(["protocol", "source"]).size()
    for r in sh.itertuples():
        assert r.probes == exp[(str(r.protocol), str(r.source))]
    _, probes, truth = _pair("eni-failure.pcap")
    bt = probekit.balance_test(probes)
    assert not bt["balanced"].any() and (bt["p_value"] < 1e-6).all()
    assert not probekit.alternation(probes)["round_robin"].any()
    q = probekit.source_quality(probes)
    assert set(q["source"].astype(str)) == {"198.51.100.10", "198.51.100.11"}
    rate = probekit.source_rate(probes, 30)
    late = rate[(rate["source"].astype(str) == "198.51.100.11") & (rate["period_start_ns"] >= truth["send_ns"].min() + 180 * _NS)]
    assert (late["probes"] == 0).all()
    # the report's summary names the imbalance, and only where there is one
    assert sum("not balanced" in a for a in probekit.open_capture(CAPTURES / "eni-failure.pcap").summary()["anomalies"]) == 2
    assert probekit.open_capture(CAPTURES / "healthy.pcap").summary()["anomalies"] == []


def test_size_change_points():
    _, probes, truth = _pair("size-change.pcap")
    cfg = truth["send_ns"].min() + 60 * _NS
    ch = probekit.size_changes(probes, configured_at_ns=cfg)
    assert len(ch) == 2 and (ch["from_size"] == 56).all() and (ch["to_size"] == 120).all()
    first_new = truth[truth["size"] == 120].groupby("protocol")["send_ns"].min()
    for r in ch.itertuples():
        assert abs(r.ts_ns - first_new[str(r.protocol)]) < 1000
    assert np.allclose(ch["delay_s"], 60, atol=0.2)


def test_audit_flags_the_zero_percent_lie(tmp_path):
    """What the investigation saw: CloudWatch said 0 % loss / 0 ms for TCP while the target was down."""
    df, probes, truth = _pair("target-down.pcap")
    ours = probekit.period_metrics(probes, 60, by=probekit.STREAM_KEYS)
    rows = []
    for r in ours.itertuples():
        ts = pd.Timestamp(r.period_start_ns, unit="ns", tz="UTC").isoformat()
        probe = f"{r.protocol}:{r.destination}" + (f":{r.port}" if r.protocol == "tcp" else "")
        if r.protocol == "tcp":
            rows += [(ts, probe, "PacketLoss", 0.0), (ts, probe, "RTT", 0.0 if r.status == "no_reply" else r.rtt_mean_us)]
        else:
            rows += [(ts, probe, "PacketLoss", r.loss_pct), (ts, probe, "RTT", r.rtt_mean_us)]
    csv = tmp_path / "cw.csv"
    pd.DataFrame(rows, columns=["timestamp", "probe", "metric", "value"]).to_csv(csv, index=False)
    audit = probekit.audit_cloudwatch(probes, probekit.read_cloudwatch_csv(csv), period_s=60)
    tcp_down = audit[(audit["protocol"] == "tcp") & (audit["status"] == "no_reply")]
    assert len(tcp_down) >= 2 and (tcp_down["finding"] == "zero_loss_but_no_replies").all()
    icmp = audit[audit["protocol"] == "icmp"]
    assert icmp["agrees"].all()
    assert (audit.loc[audit["status"] == "ok", "agrees"]).all()


def test_real_five_pings_against_tshark():
    require_real_captures()
    rel = "zeek/icmp/5-pings.pcap"
    probes = probekit.read_capture(REAL / rel).probekit.probes()
    _, ts = load_tshark(ORACLE, rel)
    t = ts.assign(ns=ts["frame.time_epoch"].map(epoch_to_ns), typ=ts["icmp.type"].astype(int))
    req, rep = t[t["typ"] == 8].reset_index(), t[t["typ"] == 0].reset_index()
    assert len(probes) == len(req) == 5 and (probes["outcome"] == "answered").all()
    assert np.allclose(probes["rtt_us"].to_numpy(), (rep["ns"] - req["ns"]).to_numpy() / 1e3)


def test_real_unanswered_pings_against_tshark():
    require_real_captures()
    rel = "dpkt/dns_icmp.pcap"
    probes = probekit.read_capture(REAL / rel).probekit.probes(timeout_s=2.0)
    probes = probes[probes["protocol"] == "icmp"]     # the file's DNS queries are UDP probes beside them
    _, ts = load_tshark(ORACLE, rel)
    icmp = ts[ts["icmp.type"] != ""]
    key = lambda d: set(zip(d["ip.src"], d["ip.dst"], d["icmp.ident"], d["icmp.seq"]))
    reqs = icmp[icmp["icmp.type"] == "8"]
    reps = icmp[icmp["icmp.type"] == "0"]
    answered = key(reqs) & set(zip(reps["ip.dst"], reps["ip.src"], reps["icmp.ident"], reps["icmp.seq"]))
    assert len(probes) == len(reqs)
    assert (probes["outcome"].isin(["answered"])).sum() == len(answered)
    assert (probes["outcome"].isin(["lost", "unknown"])).sum() == len(reqs) - len(answered) > 0


@pytest.mark.parametrize("rel,outcomes", [
    ("zeek/tcp/syn-synack.pcap", {"answered": 1}),
    ("zeek/tcp/syn.pcap", {"unknown": 1}),
    ("zeek/tcp/syn-then-rst.pcap", None),
    ("tcpdump/tcp-handshake-nano.pcap", {"answered": 1}),
])
def test_real_tcp_handshakes(rel, outcomes):
    require_real_captures()
    df = probekit.read_capture(REAL / rel)
    probes = df.probekit.probes()
    syns = int(((df["tcp_flags"] & 0x12) == 0x02).fillna(False).sum())
    assert len(probes) + int(probes["retransmits"].sum()) == syns
    if outcomes:
        assert probes["outcome"].astype(str).value_counts().to_dict() == outcomes


def test_real_nmap_scan_refused_and_answered():
    require_real_captures()
    df = probekit.read_capture(REAL / "zeek/nmap-vsn.pcap")
    probes = df.probekit.probes()
    probes = probes[probes["protocol"] == "tcp"]      # nmap's DNS lookups are UDP probes beside them
    rstack = int(((df["tcp_flags"] & 0x16) == 0x14).fillna(False).sum())
    synack = int(((df["tcp_flags"] & 0x12) == 0x12).fillna(False).sum())
    counts = probes["outcome"].astype(str).value_counts()
    assert 0 < counts.get("refused", 0) <= rstack and 0 < counts.get("answered", 0) <= synack


def test_empty_inputs_give_empty_tables():
    empty = probekit.schema.empty_packets()
    probes = probekit.match_probes(empty)
    assert len(probes) == 0 and tuple(probes.columns) == probekit.schema.PROBE_COLUMNS
    assert len(probekit.period_metrics(probes)) == 0
    assert len(probekit.timing_summary(probes)) == 0 and len(probekit.find_gaps(probes)) == 0


def test_no_probes_period_is_drawn_apart_from_zero_loss():
    _, probes, _ = _pair("tcp-stops-after-activation.pcap")
    per = probekit.period_metrics(probes[probes["protocol"] == "tcp"], 30, by=probekit.STREAM_KEYS)
    fig = plots.plot_loss_rtt(per)
    ax = fig.axes[0]
    hatched = [p for p in ax.patches if p.get_hatch() == "//"]
    assert len(hatched) == (per["status"] == "no_probes").sum() > 0
    assert sum(t.get_text() == "no data" for t in ax.texts) == len(hatched)


def test_every_plot_draws_its_table():
    """Each figure holds what its table says: one mark per row, per group, per period (counted in the
    artists), with its labels and title."""
    from matplotlib.collections import EventCollection
    from matplotlib.patches import Rectangle
    df, probes, truth = _pair("size-change.pcap")

    ia = probekit.inter_arrivals(probes)
    fig = plots.plot_inter_arrival(ia)
    h, c = fig.axes
    per_source = ia.dropna(subset=["ia_s"]).groupby("source", observed=True).size()
    assert len(h.patches) == len(c.lines) == len(per_source) > 1
    assert sorted(t.get_text() for t in h.get_legend().get_texts()) == sorted(
        f"{k} (n={n})" for k, n in per_source.items())
    assert sorted(len(ln.get_ydata()) for ln in c.lines) == sorted(per_source.tolist())
    assert all(ln.get_ydata()[-1] == 1.0 for ln in c.lines)
    assert (h.get_title(), c.get_title()) == ("Inter-arrival histogram", "Inter-arrival CDF")

    ax = plots.plot_timeline(probes)
    events = [a for a in ax.collections if isinstance(a, EventCollection)]
    groups = probes.groupby(["protocol", "source"], observed=True)
    assert sum(len(e.get_positions()) for e in events) == len(probes)
    assert len(ax.get_yticklabels()) == groups.ngroups == 4
    assert ax.get_title().startswith("Probes per protocol and source")

    ax = plots.plot_smokeping(probes)
    kept = probes[probes["outcome"] != "unknown"]
    step = 30 * 10**9
    periods = ((kept["ts_ns"] - kept["ts_ns"].min() // step * step) // step)
    with_rtt = periods[kept["rtt_us"].notna()].nunique()
    medians = [a for a in ax.collections if type(a).__name__ == "LineCollection"]
    assert len(medians) == with_rtt > 0 and ax.get_ylabel() == "RTT (ms)"

    shares = probekit.source_shares(probes)
    ax = plots.plot_shares(shares)
    bars = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(bars) == len(shares) and np.isclose(sum(b.get_width() for b in bars), shares.groupby(
        ["protocol", "destination", "port"], observed=True, dropna=False).ngroups)
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == sorted(shares["source"].astype(str).unique())

    changes = probekit.size_changes(probes)
    ax = plots.plot_sizes(probes, changes)
    points = [ln for ln in ax.lines if ln.get_linestyle() == "None"]
    assert sum(len(ln.get_xdata()) for ln in points) == len(probes)
    assert len(ax.texts) == len(changes) > 0
    assert {t.get_text() for t in ax.texts} == {f"{a}→{b}" for a, b in zip(changes["from_size"], changes["to_size"])}
    assert ax.get_ylabel() == "probe size (bytes)"

    per = probekit.period_metrics(probes, 30, by=probekit.STREAM_KEYS)
    one = per[(per["protocol"] == "icmp")]
    fig = plots.plot_loss_rtt(one)
    loss_ax, rtt_ax = fig.axes
    bars = [p for p in loss_ax.patches if isinstance(p, Rectangle) and p.get_hatch() is None]
    assert len(bars) == len(one) > 0
    assert np.allclose([b.get_height() for b in bars], np.nan_to_num(one["loss_pct"].to_numpy(float)))
    (median,) = [ln for ln in rtt_ax.lines if ln.get_label() == "median"]
    assert np.allclose(median.get_ydata(), one["rtt_median_us"].to_numpy(float) / 1e3, equal_nan=True)
    assert loss_ax.get_ylabel() == "loss %" and rtt_ax.get_ylabel() == "RTT (ms)"


def test_cli_metrics_and_timing_json():
    p = subprocess.run([sys.executable, "-m", "probekit", "metrics", str(CAPTURES / "target-down.pcap"), "--json",
                        "--period", "60"], capture_output=True, text=True, check=True)
    rows = json.loads(p.stdout)
    assert {r["status"] for r in rows} >= {"ok", "no_reply"}
    assert all(r["loss_pct"] == 100 and r["rtt_mean_us"] is None for r in rows if r["status"] == "no_reply")
    p = subprocess.run([sys.executable, "-m", "probekit", "timing", str(CAPTURES / "tcp-stops-after-activation.pcap"),
                        "--json"], capture_output=True, text=True, check=True)
    out = json.loads(p.stdout)
    assert len(out["streams"]) == 4 and {g["kind"] for g in out["gaps"]} == {"gap", "trailing"}


def test_reordered_replies_still_match_their_requests(tmp_path):
    """RTT jitter far above the probe interval: replies arrive in another order than the requests."""
    cap = tmp_path / "r.pcapng"
    truth = synth("lossy", cap, seed=5, duration_s=60, rtt_median_ms=400.0, rtt_jitter_ms=300.0, rate_per_s=20)
    probes = probekit.read_capture(cap).probekit.probes()
    j = _join(probes, truth, 1)
    assert (j["_merge"] == "both").all()
    known = j[j["outcome"] != "unknown"]
    assert (known["outcome"].astype(str) == known["outcome_truth"]).all()
    assert (known["outcome"] == "late").sum() > 5
    order = probes.dropna(subset=["reply_frame"]).sort_values("ts_ns")["reply_frame"].to_numpy()
    assert (np.diff(order.astype(np.int64)) < 0).any(), "replies really were reordered"
