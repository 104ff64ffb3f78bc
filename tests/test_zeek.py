"""Connections as Zeek logs them: every field we produce against Zeek's own conn.log baselines, the
kernel against its plain-Python run, bad input, and the conn.log writer read back by a Zeek log reader."""
from __future__ import annotations

import ipaddress
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import dpkt
import numpy as np
import pandas as pd
import pytest

import probekit
from conftest import ORACLE, REAL, require_real_captures
from helpers import capwriter as W
from helpers.frames import A4, B4, ether
from probekit.analysis.connections import (
    BARE_LIKELY_SERVER_PORTS,
    connections,
    probe_connections,
)
from probekit.schema import CONNECTIONS, check_table

ROOT = Path(__file__).resolve().parents[1]
HTTP = frozenset({"80/tcp", "81/tcp", "631/tcp", "1080/tcp", "3128/tcp", "8000/tcp", "8080/tcp", "8888/tcp"})


def zeek_log(path: Path) -> list[dict]:
    fields, rows = None, []
    for line in path.read_text().splitlines():
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
        elif line and not line.startswith("#") and fields:
            rows.append(dict(zip(fields, line.split("\t"))))
    return rows


# (baseline, trace, the btest's options as connections() arguments), read from each btest's
# TEST-EXEC line in zeek/testing/btest: -C is check_checksums=False; -b with @load base/protocols/http
# is the bare ports plus HTTP's; core.history-flip redefines Site::local_nets.
CASES = [
    ("opt.basic/conn.log", "wikipedia.pcap", {}),
    ("scripts.base.frameworks.logging.field-extension/conn.log", "wikipedia.pcap", {"bare": True}),
    ("core.tcp.missing-syn/conn.log", "tcp/missing-syn.pcap",
     {"check_checksums": False, "bare": True, "likely_server_ports": BARE_LIKELY_SERVER_PORTS | HTTP}),
    ("core.history-flip/conn.log", "tcp/missing-syn.pcap",
     {"check_checksums": False, "bare": True, "likely_server_ports": BARE_LIKELY_SERVER_PORTS | HTTP,
      "local_nets": (ipaddress.ip_network("125.190.109.0/24"),)}),
    ("core.vlan-mpls/conn.log", "mixed-vlan-mpls.pcap",
     {"check_checksums": False, "bare": True, "likely_server_ports": BARE_LIKELY_SERVER_PORTS | HTTP}),
    ("core.q-in-q/conn.log", "q-in-q.pcap", {"bare": True}),
    ("scripts.policy.protocols.conn.vlan-logging/conn.log", "q-in-q.pcap", {"bare": True}),
    ("core.pcapng-pktsrc/conn.log", "pcapng-multi-interface.pcapng", {"check_checksums": False}),
]
FIELDS = ["proto", "duration", "orig_bytes", "resp_bytes", "conn_state", "local_orig", "local_resp",
          "missed_bytes", "history", "orig_pkts", "orig_ip_bytes", "resp_pkts", "resp_ip_bytes", "ip_proto"]


def _equal(field: str, want: str, got) -> bool:
    if field == "duration":
        return (want == "-" and math.isnan(got)) or (want != "-" and abs(float(want) - got) <= 1e-6)
    if want == "-":
        return got is None or got is pd.NA or (isinstance(got, float) and math.isnan(got))
    if field in ("local_orig", "local_resp"):
        return want == ("T" if got else "F")
    return str(got) == want


@pytest.mark.parametrize("log,trace,opts", CASES, ids=[c[0].split("/")[0] for c in CASES])
def test_every_connection_equals_zeeks_conn_log(log, trace, opts):
    require_real_captures()
    expected = zeek_log(ORACLE / "zeek" / log)
    assert expected
    got = connections(probekit.read_capture(REAL / "zeek" / trace), **opts)
    check_table(got, CONNECTIONS)
    assert len(got) == len(expected)
    for r in expected:
        g = got[(got["orig_h"].astype(str) == r["id.orig_h"]) & (got["orig_p"] == int(r["id.orig_p"]))
                & (got["resp_h"].astype(str) == r["id.resp_h"]) & (got["resp_p"] == int(r["id.resp_p"]))
                & (got["proto"] == r["proto"])]
        assert len(g) == 1, r
        g = g.iloc[0]
        for f in FIELDS:
            if f in r:
                col = "duration_s" if f == "duration" else f
                assert _equal(f, r[f], g[col]), (f, r[f], g[col], r)


def test_community_id_equals_zeeks():
    require_real_captures()
    line = (ORACLE / "zeek" / "scripts.policy.protocols.conn.community-id-logging-flipped" / "conn.log.cut").read_text()
    oh, op, rh, rp, _, _, cid = next(ln for ln in line.splitlines() if not ln.startswith("#")).split("\t")
    c = connections(probekit.read_capture(REAL / "zeek" / "tcp/handshake-reorder.pcap"), community_id=True)
    assert c[["orig_h", "orig_p", "resp_h", "resp_p"]].astype(str).iloc[0].tolist() == [oh, op, rh, rp]
    assert c["community_id"].iloc[0] == cid


def test_icmp_rows_as_zeek():
    """ICMP 'ports' are type and counterpart type; conn_state is OTH; bytes are the payload after the
    8-byte header (ICMPSessionAdapter::UpdateLength)."""
    require_real_captures()
    df = probekit.read_capture(REAL / "zeek" / "icmp/5-pings.pcap")
    c = connections(df)
    assert c["proto"].astype(str).tolist() == ["icmp"]
    r = c.iloc[0]
    echo = df[df["icmp_type"] == 8]
    assert (r.orig_p, r.resp_p, str(r.conn_state), r.history) == (8, 0, "OTH", "")
    assert r.orig_pkts == len(echo) and r.orig_bytes == int(echo["payload_len"].sum())
    assert r.orig_ip_bytes == int(echo["ip_len"].sum())


# ------------------------------------------------------------------------------------ synthetic
def _tcp(t, src, dst, sport, dport, flags, seq, ack=0, data=b"", win=8192):
    tcp = dpkt.tcp.TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags, win=win, data=data)
    ip = dpkt.ip.IP(src=src, dst=dst, p=6, ttl=64, data=tcp)
    ip.len = len(ip)
    return (int(t), round((t % 1) * 1e6), ether(bytes(ip)))


S, SA, A, R, RA, F, PA = (dpkt.tcp.TH_SYN, dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK, dpkt.tcp.TH_ACK, dpkt.tcp.TH_RST,
                          dpkt.tcp.TH_RST | dpkt.tcp.TH_ACK, dpkt.tcp.TH_FIN | dpkt.tcp.TH_ACK,
                          dpkt.tcp.TH_PUSH | dpkt.tcp.TH_ACK)


def _bad_input_frames():
    t0 = 1_700_000_000.0
    fr = []
    # a 4-tuple reused 10,000 times: SYN -> RST/ACK, new ISN each time (a closed port retried)
    for i in range(10_000):
        fr += [_tcp(t0 + i * 0.01, A4, B4, 40000, 81, S, 1000 + i * 7919),
               _tcp(t0 + i * 0.01 + 0.0001, B4, A4, 81, 40000, RA, 0, 1001 + i * 7919)]
    t1 = t0 + 200
    # half a handshake at the capture's start: SYN/ACK then ACK, data (the SYN was missed)
    fr += [_tcp(t1, B4, A4, 80, 41000, SA, 5000, 9001), _tcp(t1 + 0.01, A4, B4, 41000, 80, A, 9001, 5001),
           _tcp(t1 + 0.02, A4, B4, 41000, 80, PA, 9001, 5001, b"GET / HTTP/1.0\r\n\r\n")]
    # absurd sequence jumps inside an established connection, and a RST flood
    fr += [_tcp(t1 + 1, A4, B4, 42000, 22, S, 100), _tcp(t1 + 1.001, B4, A4, 22, 42000, SA, 700, 101),
           _tcp(t1 + 1.002, A4, B4, 42000, 22, A, 101, 701)]
    for k in range(50):
        fr.append(_tcp(t1 + 1.01 + k * 0.001, A4, B4, 42000, 22, PA, (101 + k * 1_500_000_000) & 0xFFFFFFFF, 701,
                       b"x" * 10))
    for k in range(3000):
        fr.append(_tcp(t1 + 2 + k * 1e-5, B4, A4, 22, 42000, R, (700 + k * 977) & 0xFFFFFFFF))
    # a SYN with no answer, repeated after the attempt timer (5 s): S0 and S0, not one connection
    fr += [_tcp(t1 + 10, A4, B4, 43000, 8080, S, 1), _tcp(t1 + 16, A4, B4, 43000, 8080, S, 1)]
    return fr


@pytest.fixture(scope="module")
def bad_capture(tmp_path_factory):
    p = tmp_path_factory.mktemp("zeek") / "bad.pcap"
    p.write_bytes(W.pcap(_bad_input_frames()))
    return p


def test_bad_input_right_states(bad_capture):
    c = connections(probekit.read_capture(bad_capture))
    check_table(c, CONNECTIONS)
    rej = c[c["orig_p"] == 40000]
    # IsReuse: once the responder reset, a SYN with a new ISN is a new connection
    assert len(rej) == 10_000 and (rej["conn_state"] == "REJ").all() and (rej["history"] == "Sr").all()
    half = c[c["orig_p"] == 41000].iloc[0]
    # port 80 is a likely server port, so the SYN/ACK's sender is the responder from the start ('^');
    # the ACK after a SYN/ACK establishes the originator (UpdateInactiveState): S1
    assert (half.resp_p, half.history, str(half.conn_state)) == (80, "^hAD", "S1")
    jump = c[c["orig_p"] == 42000]
    assert len(jump) == 1 and str(jump["conn_state"].iloc[0]) == "RSTR"
    assert jump["history"].iloc[0].startswith("ShAD")
    att = c[c["orig_p"] == 43000]
    # the SYN at +16 s repeats the ISN, but the attempt timer removed the first connection at +15 s
    assert att["conn_state"].astype(str).tolist() == ["S0", "S0"]


def test_scaled_letters(tmp_path):
    """Retransmissions: 'T' at the 1st, 10th and 100th (TCP_Endpoint::DidRxmit, ScaledHistoryEntry)."""
    t0 = 1_700_000_000.0
    fr = [_tcp(t0, A4, B4, 45000, 80, S, 100), _tcp(t0 + 0.001, B4, A4, 80, 45000, SA, 700, 101),
          _tcp(t0 + 0.002, A4, B4, 45000, 80, A, 101, 701), _tcp(t0 + 0.003, A4, B4, 45000, 80, PA, 101, 701, b"abc")]
    fr += [_tcp(t0 + 0.01 + k * 0.001, A4, B4, 45000, 80, PA, 101, 701, b"abc") for k in range(120)]
    p = tmp_path / "rx.pcap"
    p.write_bytes(W.pcap(fr))
    c = connections(probekit.read_capture(p))
    assert c["history"].iloc[0] == "ShADTTT"


def test_content_gap(tmp_path):
    """The responder acknowledges bytes never seen: 'G' and missed_bytes (TCP_Reassembler::Gap)."""
    t0 = 1_700_000_000.0
    fr = [_tcp(t0, A4, B4, 46000, 80, S, 100), _tcp(t0 + 0.001, B4, A4, 80, 46000, SA, 700, 101),
          _tcp(t0 + 0.002, A4, B4, 46000, 80, A, 101, 701), _tcp(t0 + 0.003, A4, B4, 46000, 80, PA, 101, 701, b"a" * 10),
          _tcp(t0 + 0.005, A4, B4, 46000, 80, PA, 151, 701, b"b" * 10),
          _tcp(t0 + 0.006, B4, A4, 80, 46000, A, 701, 161)]
    p = tmp_path / "gap.pcap"
    p.write_bytes(W.pcap(fr))
    c = connections(probekit.read_capture(p)).iloc[0]
    assert c.history == "ShADaG" and c.missed_bytes == 40 and c.orig_bytes == 60


def test_kernel_equals_plain_python(bad_capture):
    code = ("import sys, probekit; from probekit.analysis.connections import connections; "
            "c = connections(probekit.read_capture(sys.argv[1])); c.to_pickle(sys.argv[2])")
    outs = []
    for jit in ("0", "1"):
        out = bad_capture.with_suffix(f".{jit}.pkl")
        env = dict(os.environ, NUMBA_DISABLE_JIT=jit, PYTHONPATH=str(ROOT))
        for cap in (bad_capture, ROOT / "captures" / "port-closed.pcap"):
            subprocess.run([sys.executable, "-c", code, str(cap), str(out) + cap.name], env=env, check=True)
        outs.append([pd.read_pickle(str(out) + cap.name) for cap in (bad_capture, ROOT / "captures" / "port-closed.pcap")])
    for a, b in zip(*outs):
        pd.testing.assert_frame_equal(a, b)


def test_probe_connections_joins_by_request_frame():
    df = probekit.read_capture(ROOT / "captures" / "port-closed.pcap")
    probes = df.probekit.probes()
    j = probe_connections(probes, connections(df))
    tcp = probes[probes["protocol"] == "tcp"]
    jt = j[j["request_frame"].isin(tcp["request_frame"])]
    assert len(jt) == len(tcp) and jt["uid"].notna().all()
    assert (jt["conn_state"].astype(str) == "REJ").mean() > 0.9  # a closed port: rejected (some probes lost)
    icmp = j[~j["request_frame"].isin(tcp["request_frame"])]
    assert len(icmp) == (probes["protocol"] != "tcp").sum() and icmp["uid"].notna().all()


@pytest.mark.parametrize("fmt", ["--zeek-tsv", "--zeek-json"])
def test_conn_log_read_by_a_zeek_log_reader(tmp_path, fmt):
    from parsezeeklogs import ParseZeekLogs
    cap = ROOT / "captures" / "port-closed.pcap"
    out = tmp_path / ("conn.log" if fmt == "--zeek-tsv" else "conn.json")
    subprocess.run([sys.executable, "-m", "probekit", "conn", str(cap), fmt, "-o", str(out)], check=True,
                   env=dict(os.environ, PYTHONPATH=str(ROOT)))
    want = connections(probekit.read_capture(cap))
    if fmt == "--zeek-tsv":
        rows = [json.loads(r) for r in ParseZeekLogs(str(out), output_format="json")]
        assert out.read_text().splitlines()[-1].startswith("#close")
    else:
        rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == len(want)
    for r, (_, w) in zip(rows, want.iterrows()):
        assert r["uid"] == w.uid and r["id.orig_h"] == str(w.orig_h) and int(r["id.resp_p"]) == w.resp_p
        assert r["conn_state"] == str(w.conn_state) and (r.get("history") or "") == w.history
        assert int(r["orig_pkts"]) == w.orig_pkts and int(r["resp_ip_bytes"]) == w.resp_ip_bytes
        assert abs(float(r["ts"]) - w.ts_ns / 1e9) < 1e-6


@pytest.mark.parametrize("name", ["icmp", "icmp6"])
def test_icmp_connections_and_community_ids_equal_zeeks(name):
    """bifs.community_id.run-pcaps lists every connection of the trace with its Community ID: the ICMP
    'ports' (type, counterpart type or code for one-way messages) and the hash must both agree."""
    require_real_captures()
    import re
    exp = set()
    for ln in (ORACLE / "zeek" / "bifs.community_id.run-pcaps" / f"{name}.pcap.out").read_text().splitlines():
        m = re.match(r"\[orig_h=([^,]+), orig_p=(\d+)/\w+, resp_h=([^,]+), resp_p=(\d+)/\w+, proto=(\d+).*\], (\S+)", ln)
        if m:
            exp.add(m.groups())
    assert exp
    c = connections(probekit.read_capture(REAL / "zeek" / "communityid" / f"{name}.pcap"), community_id=True)
    got = {(str(r.orig_h), str(r.orig_p), str(r.resp_h), str(r.resp_p), str(r.ip_proto), r.community_id)
           for r in c.itertuples()}
    assert got == exp


def test_tunnel_parents_from_the_tunnel_columns():
    """With the reader's tunnel columns (branch decode), each inner connection names its encapsulation;
    without them the field is unset, as Zeek's for untunnelled traffic."""
    df = probekit.read_capture(ROOT / "captures" / "port-closed.pcap")
    plain = connections(df)
    assert plain["tunnel_parents"].isna().all()
    t = df.copy()
    half = np.arange(len(t)) < len(t) // 2
    t["tunnel"] = pd.Series(np.where(half, "vxlan", None), dtype="object")
    t["outer_src"] = "10.9.0.1"
    t["outer_dst"] = "10.9.0.2"
    t["tunnel_id"] = pd.array(np.where(half, 42, 43), dtype="UInt32")
    t["tunnel_depth"] = 1
    t["outer_ttl"] = 64
    t.attrs = df.attrs
    c = connections(t)
    tp = c["tunnel_parents"]
    assert tp.notna().any() and tp.isna().any()
    assert tp.dropna().nunique() == 1 and tp.dropna().iloc[0].startswith("C")
    pd.testing.assert_frame_equal(c.drop(columns="tunnel_parents"), plain.drop(columns="tunnel_parents"))


# ------------------------------------------------ rules found with benchmarks/zeek_btest.py (issue #15)
DNS_PORTS = (53, 137, 5353, 5355)  # scripts/base/protocols/dns/main.zeek: DNS::ports (the UDP ones)


def test_truncated_tcp_header_makes_a_connection_but_is_not_processed():
    """TCPAnalyzer::DeliverPacket (src/packet_analysis/protocol/tcp/TCP.cc): InitConnKey needs only the
    20-byte fixed header, so a SYN whose options are cut by the snaplen makes a connection; then
    ExtractTCP_Header refuses it ("truncated_header": th_off*4 > captured bytes) and returns before
    ValidateChecksum, Process and ConnSize. The SYN/ACK that follows is then a reuse
    (TCPSessionAdapter::IsReuse: SYN+ACK while the originator is INACTIVE, its ISN not the responder's
    start), a new connection from the SYN/ACK's sender, which the ACK flips ('^h').
    Oracle: core.tcp.truncated-header/out prints c$id at every tcp_packet event (one per processed
    packet): the first, the SYN/ACK's, before the flip, every other one after it."""
    require_real_captures()
    df = probekit.read_capture(REAL / "zeek" / "tcp" / "truncated-header.pcap")
    assert df["payload_len"].isna().iloc[0] and df["tcp_flags"].iloc[0] & 0x02  # the cut SYN
    c = connections(df, bare=True)
    events = [re.search(r"orig_h=([^,]+), orig_p=(\d+)", ln).groups()
              for ln in (ORACLE / "zeek" / "core.tcp.truncated-header" / "out").read_text().splitlines()
              if "orig_h=" in ln]
    assert len(c) == 2
    first, second = c.iloc[0], c.iloc[1]
    syn = df.iloc[0]
    assert (str(first.orig_h), first.orig_p) == (str(syn.src), syn.sport)
    assert (first.orig_pkts, first.resp_pkts, first.history, str(first.conn_state)) == (0, 0, "", "OTH")
    assert second.ts_ns == df["ts_ns"].iloc[1]  # made by the SYN/ACK
    assert second.orig_pkts + second.resp_pkts == len(events) == len(df) - 1
    assert events[0] == (str(df.iloc[1].src), str(df.iloc[1].sport))  # SYN/ACK's sender, before '^'
    assert set(events[1:]) == {(str(second.orig_h), str(second.orig_p))}
    assert second.history.startswith("^h")


def _udp(t, src, dst, sport, dport, data=b"q" * 30):
    udp = dpkt.udp.UDP(sport=sport, dport=dport, data=data)
    udp.ulen = len(udp)
    ip = dpkt.ip.IP(src=src, dst=dst, p=17, ttl=64, data=udp)
    ip.len = len(ip)
    return (int(t), round((t % 1) * 1e6), ether(bytes(ip)))


def test_dns_session_timeout_splits_udp_dns(tmp_path):
    """DNS_Analyzer::ExpireTimer (src/analyzer/protocol/dns/DNS.cc): a UDP connection with the DNS
    analyzer (responder port in DNS::ports) gets a timer every dns_session_timeout (10 s,
    init-bare.zeek) from its start; it removes the connection when the connection has been idle for
    at least the timeout less one second, else it re-arms. So the same ports 10.5 s later are a new
    connection when the last packet was at +0.5 s (idle 9.5 s at the +10 s timer), and the same one
    when it was at +1.5 s (idle 8.5 s: re-armed to +20 s). Without the DNS analyzer (zeek -b) only
    the 60 s udp_inactivity_timeout applies."""
    t0 = 1_700_000_000.0
    fr = []
    for sport, reply in ((41000, 0.5), (42000, 1.5)):
        fr += [_udp(t0, A4, B4, sport, 53), _udp(t0 + reply, B4, A4, 53, sport, b"r" * 50),
               _udp(t0 + 10.5, A4, B4, sport, 53), _udp(t0 + 10.6, B4, A4, 53, sport, b"r" * 50)]
    fr.sort(key=lambda f: f[0] + f[1] / 1e6)
    p = tmp_path / "dns.pcap"
    p.write_bytes(W.pcap(fr))
    df = probekit.read_capture(p)
    c = connections(df)
    split, kept = c[c["orig_p"] == 41000], c[c["orig_p"] == 42000]
    assert split["history"].tolist() == ["Dd", "Dd"] and split["orig_pkts"].tolist() == [1, 1]
    assert len(kept) == 1 and kept.iloc[0].orig_pkts == 2 and kept.iloc[0].resp_pkts == 2
    assert abs(split.iloc[0].duration_s - 0.5) < 1e-6
    bare = connections(df, bare=True)
    assert len(bare) == 2 and (bare["orig_pkts"] == 2).all()


def test_bad_udp_checksum_marks_c_and_is_not_counted(tmp_path):
    """UDPAnalyzer::DeliverPacket (src/packet_analysis/protocol/udp/UDP.cc): a datagram whose checksum is
    bad gets HandleBadChecksum ('C' in the history) and returns before ForwardPacket, so the ConnSize
    child analyzer never counts it (no packet, no IP bytes), nor does it set the last time; with -C
    (check_checksums=False) it is an ordinary datagram."""
    t0 = 1_700_000_000.0
    bad = _udp(t0, A4, B4, 40000, 9999)
    ip = dpkt.ip.IP(bytes(bad[2])[14:])
    ip.data.sum ^= 0x5555                     # a wrong checksum, not 0 (0 means "none" in IPv4)
    fr = [(bad[0], bad[1], bytes(bad[2])[:14] + bytes(ip)), _udp(t0 + 0.5, B4, A4, 9999, 40000, b"r" * 50)]
    p = tmp_path / "badsum.pcap"
    p.write_bytes(W.pcap(fr))
    df = probekit.read_capture(p)
    c = connections(df)
    assert len(c) == 1
    r = c.iloc[0]
    assert r.history == "Cd" and r.orig_pkts == 0 and r.orig_ip_bytes == 0
    assert r.resp_pkts == 1 and r.resp_ip_bytes == 78
    unchecked = connections(df, check_checksums=False).iloc[0]
    assert unchecked.history == "Dd" and unchecked.orig_pkts == 1 and unchecked.orig_ip_bytes == 58


_RUN = """
import sys, probekit
from probekit.analysis.connections import connections
connections(probekit.read_capture(sys.argv[1]), bare=sys.argv[3] == "bare").to_pickle(sys.argv[2])
"""


def test_kernel_equals_plain_python_on_the_new_rules(tmp_path):
    """The truncated-header and DNS-timer paths, compiled and as plain Python (NUMBA_DISABLE_JIT=1)."""
    require_real_captures()
    t0 = 1_700_000_000.0
    fr = []
    for k, sport in enumerate(range(41000, 41040)):
        dt = 0.25 * k
        fr += [_udp(t0 + k * 0.01, A4, B4, sport, 53), _udp(t0 + k * 0.01 + dt, B4, A4, 53, sport),
               _udp(t0 + 10.5 + k * 0.01, A4, B4, sport, 53)]
    fr.sort(key=lambda f: f[0] + f[1] / 1e6)
    dns = tmp_path / "dns.pcap"
    dns.write_bytes(W.pcap(fr))
    for cap, mode in ((REAL / "zeek" / "tcp" / "truncated-header.pcap", "bare"), (dns, "full")):
        outs = []
        for jit in ("0", "1"):
            out = tmp_path / f"{cap.stem}.{jit}.pkl"
            subprocess.run([sys.executable, "-c", _RUN, str(cap), str(out), mode], check=True,
                           env=dict(os.environ, NUMBA_DISABLE_JIT=jit, PYTHONPATH=str(ROOT)))
            outs.append(pd.read_pickle(out))
        pd.testing.assert_frame_equal(*outs)
        if cap == dns:
            assert 40 < len(outs[0]) < 80  # some split by the DNS timer, some not
