"""The generator: spec validation, wire format, determinism, scenarios against their truth, and the
shipped captures as tshark and the reader see them."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import probekit
from probekit.spec import Monitor, Probe, SpecError
from probekit.synth import default_monitor, read_truth, synth
from probekit.synth.shipped import SHIPPED, regenerate
from probekit.wire import LINK_ETHERNET, LINK_SLL2, Kind, Layout, build_frames, build_one

ROOT = Path(__file__).resolve().parents[1]
CAPTURES = ROOT / "captures"


@pytest.mark.parametrize("make,field", [
    (lambda: Probe("icmp", size=40), "size"),
    (lambda: Probe("icmp", size=8501), "size"),
    (lambda: Probe("tcp"), "port"),
    (lambda: Probe("tcp", port=70000), "port"),
    (lambda: Probe("icmp", port=80), "port"),
    (lambda: Probe("udp"), "protocol"),
    (lambda: Probe("icmp", "192.0.2.1", sources=("fd00::1",)), "sources"),
    (lambda: Probe("icmp", "not-an-ip"), "destination"),
    (lambda: Monitor((Probe("icmp"),), period_s=45), "period_s"),
    (lambda: Monitor(()), "probes"),
])
def test_spec_errors_name_the_field(make, field):
    with pytest.raises(SpecError) as ei:
        make()
    assert ei.value.field == field and str(ei.value).startswith(f"{field}=")


@pytest.mark.parametrize("kind", range(6))
@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("link", [LINK_ETHERNET, LINK_SLL2])
def test_vectorised_frames_equal_dpkt_built_ones(kind, family, link):
    lay = Layout(kind, family, 120, link)
    rng = np.random.default_rng(kind * 10 + family)
    n, alen = 5, (4 if family == 4 else 16)
    f = dict(src=rng.integers(0, 256, (n, alen), dtype=np.uint8), dst=rng.integers(0, 256, (n, alen), dtype=np.uint8),
             ip_id=rng.integers(0, 65536, n), ttl=rng.integers(1, 256, n),
             mac_src=rng.integers(0, 256, (n, 6), dtype=np.uint8), mac_dst=rng.integers(0, 256, (n, 6), dtype=np.uint8),
             ifindex=rng.integers(1, 9, n), outgoing=rng.random(n) < 0.5, icmp_id=rng.integers(0, 65536, n),
             icmp_seq=rng.integers(0, 65536, n), sport=rng.integers(1, 65536, n), dport=rng.integers(1, 65536, n),
             seq=rng.integers(0, 2**32, n), ack=rng.integers(0, 2**32, n))
    plen = 112 if kind in (Kind.ICMP_REQUEST, Kind.ICMP_REPLY) else 100
    f["payload"] = rng.integers(0, 256, (n, plen), dtype=np.uint8)
    block = build_frames(lay, **f)
    for i in range(n):
        one = build_one(lay, src=f["src"][i].tobytes(), dst=f["dst"][i].tobytes(), ip_id=int(f["ip_id"][i]),
                        ttl=int(f["ttl"][i]), mac_src=f["mac_src"][i].tobytes(), mac_dst=f["mac_dst"][i].tobytes(),
                        ifindex=int(f["ifindex"][i]), outgoing=bool(f["outgoing"][i]), icmp_id=int(f["icmp_id"][i]),
                        icmp_seq=int(f["icmp_seq"][i]), payload=f["payload"][i].tobytes(), sport=int(f["sport"][i]),
                        dport=int(f["dport"][i]), seq=int(f["seq"][i]), ack=int(f["ack"][i]))
        assert block[i].tobytes() == one, (Kind.NAMES[kind], family, link, i)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    a, b, c = tmp_path / "a.pcapng", tmp_path / "b.pcapng", tmp_path / "c.pcapng"
    for p, seed in ((a, 3), (b, 3), (c, 4)):
        synth("lossy+size-change", p, seed=seed, duration_s=90)
    assert a.read_bytes() == b.read_bytes()
    assert Path(str(a) + ".truth.csv").read_bytes() == Path(str(b) + ".truth.csv").read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_shipped_captures_regenerate_byte_for_byte(tmp_path):
    regenerate(tmp_path)
    for name in SHIPPED:
        for suffix in ("", ".truth.csv"):
            assert (tmp_path / (name + suffix)).read_bytes() == (CAPTURES / (name + suffix)).read_bytes(), name
    total = sum(p.stat().st_size for p in CAPTURES.iterdir())
    assert total <= 5 * 2**20, f"captures/ holds {total} bytes"


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_capture_reads_back_as_its_truth(name):
    path = CAPTURES / name
    df = probekit.read_capture(path)
    truth = read_truth(path)
    assert not df["malformed"].any() and not df["truncated"].any()
    vantage = truth.attrs["meta"]["conditions"]["vantage"]
    # requests: one per probe at the prober; at the target only those that arrived
    req = df[(df["icmp_type"].isin([8, 128])) | ((df["tcp_flags"] == 0x002).fillna(False))]
    expected = truth if vantage == "prober" else truth[~truth["lost_leg"].isin(["request", "target_down"])]
    assert len(req) == len(expected)
    # sizes on the wire: ICMP message / TCP segment = the probe size
    l4 = (req["ip_len"] - req["ip_hdr_len"]).astype(int).to_numpy()
    assert sorted(l4) == sorted(expected["size"].astype(int))
    if vantage == "prober":  # send times to the microsecond (pcap) or nanosecond (pcapng)
        unit = 1000 if name.endswith(".pcap") else 1
        assert np.array_equal(np.sort(req["ts_ns"].to_numpy(np.int64)),
                              np.sort(truth["send_ns"].to_numpy(np.int64) // unit * unit))
    # replies seen: every probe whose reply reached the capture point
    rep = df[(df["icmp_type"].isin([0, 129])) | ((df["tcp_flags"] & 0x012) == 0x012).fillna(False)
             | ((df["tcp_flags"] == 0x014).fillna(False))]
    if vantage == "prober":
        assert len(rep) == truth["replies"].sum()
    else:  # the target answers every request it got, and re-sends a SYN/ACK whose RST never came
        resent = ((expected["protocol"] == "tcp") & expected["outcome"].isin(["late", "lost"])).sum()
        assert len(rep) == len(expected) + resent
    # every probe payload is fresh: no two requests carry the same bytes
    pay = req.probekit.payloads()
    assert pay.map(len).tolist() == (req["payload_len"]).astype(int).tolist()
    assert pay.nunique() == len(pay)


needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed (./kit test installs it)")


@needs_tshark
@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_tshark_sees_no_malformed_packet_or_bad_checksum(name):
    # The SYN's random payload on port 80 would otherwise be handed to Wireshark's HTTP dissector, which
    # reports random bytes as a malformed HTTP request: that is about HTTP, not about our packets.
    p = subprocess.run(["tshark", "-r", str(CAPTURES / name), "--disable-protocol", "http",
                        "-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE", "-q", "-z", "expert,note"],
                       capture_output=True, text=True, check=True)
    out = p.stdout
    assert "Malformed" not in out and "Bad checksum" not in out and "Checksum" not in out, out
    count = subprocess.run(["tshark", "-r", str(CAPTURES / name), "-T", "fields", "-e", "frame.number"],
                           capture_output=True, text=True, check=True).stdout.split()
    assert len(count) == len(probekit.read_capture(CAPTURES / name))


@settings(max_examples=25, deadline=None)
@given(size=st.integers(56, 1500), rate=st.floats(0.5, 20), duration=st.floats(5, 40),
       sources=st.integers(1, 4), protocol=st.sampled_from(["icmp", "tcp", "both"]), seed=st.integers(0, 2**16))
def test_counts_sizes_and_round_robin_follow_the_spec(size, rate, duration, sources, protocol, seed):
    mon = default_monitor(protocol=protocol, size=size, sources=sources)
    truth = synth("healthy", monitor=mon, seed=seed, duration_s=duration, rate_per_s=rate, loss=0.0)
    per_stream = int(np.floor(duration * rate))
    assert len(truth) == per_stream * len(mon.probes)
    assert (truth["size"] == size).all() and truth["answered"].all()
    for _, g in truth.groupby("stream"):
        counts = g["source"].value_counts()
        assert len(counts) == min(sources, per_stream) and counts.max() - counts.min() <= 1
        gaps = np.diff(np.sort(g["send_ns"].to_numpy())) / 1e9
        assert abs(np.median(gaps) - 1 / rate) < 0.005


def test_scenarios_shape_the_truth():
    t = synth("target-down", seed=1, duration_s=240)
    after = t[t["send_ns"] - t["send_ns"].min() > 121e9]
    assert not after["answered"].any() and (after["lost_leg"] == "target_down").all()
    assert after["rtt_us"].isna().all(), "no reply means no RTT, never 0"
    t = synth("tcp-stops-after-activation", seed=1, duration_s=300, tcp_activations_s=(0.0, 200.0))
    tcp_t = (t.loc[t["protocol"] == "tcp", "send_ns"] - t["send_ns"].min()) / 1e9
    assert tcp_t.between(0, 60.01).sum() + tcp_t.between(199.99, 260.01).sum() == len(tcp_t)
    assert (t["protocol"] == "icmp").sum() == 600
    t = synth("port-closed", seed=1, duration_s=60)
    assert set(t.loc[t["protocol"] == "tcp", "outcome"]) <= {"refused", "lost"}
    t = synth("size-change", seed=1, duration_s=300, size_change_at_s=60, size_apply_delay_s=60, new_size=200)
    rel = (t["send_ns"] - t["send_ns"].min()) / 1e9
    assert (t.loc[rel < 59.9, "size"] == 56).all() and (t.loc[rel > 120.1, "size"] == 200).all()
    assert (t.loc[(rel > 60.1) & (rel < 119.9), "size_configured"] == 200).all()
    assert (t.loc[(rel > 60.1) & (rel < 119.9), "size"] == 56).all()
    t = synth("eni-failure", seed=1, duration_s=300, eni_failure_at_s=100)
    late = t[(t["send_ns"] - t["send_ns"].min()) / 1e9 > 100.1]
    assert set(late["source"]) == {"198.51.100.10"}


def test_lossy_loses_about_what_it_says():
    t = synth("lossy", seed=11, duration_s=600, loss=0.1, rtt_jitter_ms=0.0)
    icmp = t[t["protocol"] == "icmp"]
    p_lost = 1 - 0.9 * 0.9
    n = len(icmp)
    lost = (~icmp["answered"]).sum()
    sd = np.sqrt(n * p_lost * (1 - p_lost))
    assert abs(lost - n * p_lost) < 4 * sd
    assert pd.api.types.is_float_dtype(t["rtt_us"])
