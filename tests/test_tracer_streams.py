"""A tracer's UDP probes to rising ports (traceroute, mtr -u; scamper's one 4-tuple) are one stream in
every table, not one per destination port: the probes carry the stream's key (``port`` = the run's lowest
port, ``dst_port`` = each request's own), so per-period metrics, timing and the per-source analyses
group them as one, in the session (probe streams or ``all_streams=True``), in the chunked walk and in
the CLI's ``--all-streams`` output; and the one row counts what the per-port rows would sum to.

The recordings are real runs of the tools in the lab (captures/tools/, probekit.live.tools); their
``*.tool.json`` holds what the tool reported (destination, source)."""
from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import probekit
from probekit.analysis import metrics, sources, timing
from probekit.schema import SOURCE_STREAM_KEYS, STREAM_KEYS

TOOLS = Path(__file__).resolve().parents[1] / "captures" / "tools"
UDP_TRACERS = ("traceroute-udp", "mtr-udp", "scamper-trace")


def _open(name: str, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return probekit.open_capture(TOOLS / f"{name}.pcap", cloudwatch=False, **kw)


def _info(name: str) -> dict:
    return json.loads((TOOLS / f"{name}.tool.json").read_text())


def _keys(df: pd.DataFrame, by) -> set:
    return {tuple(str(v) for v in r) for r in df[list(by)].drop_duplicates().itertuples(index=False)}


def _per_port(probes: pd.DataFrame) -> pd.DataFrame:
    """The probes keyed by each request's own destination port: the per-port view of before."""
    return probes.assign(port=probes["dst_port"])


@pytest.mark.parametrize("name", UDP_TRACERS)
@pytest.mark.parametrize("all_streams", [False, True])
def test_a_tracer_is_one_stream_in_every_table(name, all_streams):
    info = _info(name)
    cap = _open(name, all_streams=all_streams)
    p = cap.probes
    assert len(p) and set(p["protocol"].astype(str)) == {"udp"}
    assert set(p["source"].astype(str)) == {info["source"]} and set(p["destination"].astype(str)) == {info["destination"]}
    st = cap.streams
    assert len(st) == 1
    base, span = int(st["port"].iloc[0]), int(st["ports"].iloc[0])
    own = p["dst_port"].to_numpy("int64")
    assert set(p["port"].astype("int64")) == {base} == {int(own.min())}
    assert set(own) == set(range(base, base + span))           # every port of the run, each its own request port
    one = {("udp", info["destination"], str(base))}
    one_src = {("udp", info["source"], info["destination"], str(base))}
    assert _keys(cap.periods, SOURCE_STREAM_KEYS) == one_src
    assert _keys(cap.probe_periods, STREAM_KEYS) == one
    assert _keys(cap.timing, STREAM_KEYS) == one
    for t in (cap.shares, cap.balance, cap.alternation, cap.source_quality):
        assert _keys(t, STREAM_KEYS) == one
    assert _keys(cap.source_rate, STREAM_KEYS) == one
    assert _keys(cap.period_errors, SOURCE_STREAM_KEYS) <= one_src
    # the one row counts what the per-port rows sum to
    for by in (SOURCE_STREAM_KEYS, STREAM_KEYS):
        one_row = metrics.period_metrics(p, 30, by=by)
        ports = metrics.period_metrics(_per_port(p), 30, by=by)
        assert len(one_row) < len(ports) or name == "scamper-trace"   # one 4-tuple: one port anyway
        for c in ("sent", "answered", "late"):
            got = one_row.groupby("period_start_ns")[c].sum()
            want = ports.groupby("period_start_ns")[c].sum()
            assert got.to_dict() == want.reindex(got.index, fill_value=0).to_dict(), c
    assert int(cap.timing["probes"].sum()) == len(p) == \
        int(timing.timing_summary(_per_port(p), span_ns=cap.span_ns)["probes"].sum())
    assert int(cap.balance["probes"].iloc[0]) == len(p)
    q = sources.source_quality(_per_port(p))
    assert int(cap.source_quality["sent"].iloc[0]) == int(q["sent"].sum())
    assert int(cap.source_quality["answered"].iloc[0]) == int(q["answered"].sum())
    # the errors the probes drew stay with the probes they quote (by their own port)
    e = cap.icmp_errors
    hit = e[e["request_frame"].notna()]
    assert len(hit)
    by_frame = p.set_index("request_frame")
    assert (hit["port"].astype("int64").to_numpy() ==
            by_frame.loc[hit["request_frame"].astype("int64"), "dst_port"].astype("int64").to_numpy()).all()


@pytest.mark.parametrize("name", UDP_TRACERS)
def test_the_chunked_walk_keys_the_tracer_as_the_session_does(name):
    mem, walk = _open(name), _open(name, chunked=True, chunk_packets=3)
    assert len(walk.probes) == len(mem.probes)
    assert (walk.probes["port"].to_numpy("int64") == mem.probes["port"].to_numpy("int64")).all()
    assert (walk.probes["dst_port"].to_numpy("int64") == mem.probes["dst_port"].to_numpy("int64")).all()
    assert _keys(walk.periods, SOURCE_STREAM_KEYS) == _keys(mem.periods, SOURCE_STREAM_KEYS)
    assert _keys(walk.timing, STREAM_KEYS) == _keys(mem.timing, STREAM_KEYS)


@pytest.mark.parametrize("name", ["traceroute-udp", "mtr-udp"])
def test_cli_all_streams_prints_one_stream(name):
    info = _info(name)
    out = {}
    for cmd in ("metrics", "timing"):
        r = subprocess.run([sys.executable, "-m", "probekit", cmd, str(TOOLS / f"{name}.pcap"), "--all-streams",
                            "--json"], capture_output=True, text=True, check=True)
        got = json.loads(r.stdout)
        out[cmd] = pd.DataFrame(got["streams"] if cmd == "timing" else got)
    ports = {int(v) for v in out["metrics"]["port"]}
    assert len(ports) == 1 and set(out["metrics"]["destination"]) == {info["destination"]}
    assert {int(v) for v in out["timing"]["port"]} == ports
    p = _open(name, all_streams=True).probes
    assert int(out["metrics"]["sent"].sum()) == int((p["outcome"].astype(str) != "unknown").sum())
    assert int(np.asarray(out["timing"]["probes"]).sum()) == len(p)


# ------------------------------------------------------------------ re-sent requests: TTL and UDP rules
_P6, _T6 = "2001:db8::10", "2001:db8:1::7"
_HOPS6 = ("2001:db8:0:1::1", "2001:db8:0:2::1", "2001:db8:0:3::1")


def _ip6(src: str, dst: str, hlim: int, nxt: int, l4) -> bytes:
    import socket

    import dpkt
    ip = dpkt.ip6.IP6(src=socket.inet_pton(socket.AF_INET6, src), dst=socket.inet_pton(socket.AF_INET6, dst),
                      hlim=hlim, nxt=nxt, data=l4)
    ip.plen = len(bytes(l4))
    return bytes(ip)


def _udp6(hlim: int) -> bytes:
    import dpkt
    return _ip6(_P6, _T6, hlim, 17, dpkt.udp.UDP(sport=40000, dport=33435, data=b"\0" * 12, ulen=20))


def _icmp6_error(src: str, typ: int, code: int, quoted: bytes) -> bytes:
    import dpkt
    return _ip6(src, _P6, 64, 58, dpkt.icmp6.ICMP6(type=typ, code=code, data=b"\0" * 4 + quoted))


def _tcp4(ttl: int, flags: int, sport=40001, dport=8080, seq=0xDEADBEEF, ack=0, outward=True) -> bytes:
    import socket

    import dpkt
    a, b = socket.inet_aton("198.51.100.10"), socket.inet_aton("192.0.2.10")
    tcp = dpkt.tcp.TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags, win=512)
    return bytes(dpkt.ip.IP(src=a if outward else b, dst=b if outward else a, p=6, ttl=ttl, data=tcp))


def _capture(tmp_path, name, frames) -> pd.DataFrame:
    from helpers.capwriter import pcap
    path = tmp_path / name
    path.write_bytes(pcap([(1_800_000_000 + int(t), int(round((t % 1) * 1e6)), f) for t, f in frames],
                          linktype=101))   # raw IP
    return probekit.read_capture(path)


def test_paris_udp_over_ipv6_is_a_probe_per_datagram(tmp_path):
    """Paris-style UDP probes over IPv6 keep one 4-tuple and carry no IP id (``seq`` 0): each datagram is
    still its own probe (UDP has no retransmission), and each hop's time exceeded goes to the probe it
    answers; the last one is refused by the destination's port unreachable. The same hop limit sent
    twice is two probes too."""
    from probekit.analysis.errors_icmp import attribute_errors, with_error_outcomes
    frames, t = [], 0.0
    for hop, limit in enumerate((1, 2, 2, 3, 4)):
        frames.append((t, _udp6(limit)))
        who = _HOPS6[limit - 1] if limit <= 3 else _T6
        typ, code = (3, 0) if limit <= 3 else (1, 4)
        frames.append((t + 0.001 * (hop + 1), _icmp6_error(who, typ, code, _udp6(1))))
        t += 0.05
    df = _capture(tmp_path, "paris6.pcap", frames)
    p = probekit.match_probes(df)
    assert len(p) == 5 and (p["retransmits"] == 0).all() and set(p["seq"]) == {0}
    w = with_error_outcomes(p, attribute_errors(df, p))
    assert w["outcome"].astype(str).tolist() == ["ttl_exceeded"] * 4 + ["refused"]
    assert w["reporter"].astype(str).tolist()[:4] == [_HOPS6[0], _HOPS6[1], _HOPS6[1], _HOPS6[2]]
    assert (w["rtt_us"].iloc[-1] > 0) and w["reply_frame"].iloc[-1] == 10


def test_a_syn_re_sent_with_another_ttl_is_a_new_probe(tmp_path):
    """tcptraceroute's rule written small: one SYN (one source port, one ISN) with TTL 1 (time exceeded
    from the router), then TTL 2 (SYN/ACK): two probes. A kernel retransmission keeps the TTL: another
    SYN sent again with its TTL 64, then answered, is one probe with one retransmit."""
    import socket

    import dpkt
    r = socket.inet_aton("198.51.100.1")
    syn, sa = dpkt.tcp.TH_SYN, dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK

    def exceeded(quoted: bytes) -> bytes:
        icmp = dpkt.icmp.ICMP(type=11, code=0, data=dpkt.icmp.ICMP.TimeExceed(data=dpkt.ip.IP(quoted)))
        return bytes(dpkt.ip.IP(src=r, dst=socket.inet_aton("198.51.100.10"), p=1, ttl=64, data=icmp))

    answer = _tcp4(63, sa, sport=8080, dport=40001, seq=7, ack=0xDEADBEEF + 1, outward=False)
    frames = [(0.0, _tcp4(1, syn)), (0.001, exceeded(_tcp4(1, syn))), (0.01, _tcp4(2, syn)), (0.011, answer),
              (5.0, _tcp4(64, syn, sport=40002)), (5.5, _tcp4(64, syn, sport=40002)),
              (5.501, _tcp4(63, sa, sport=8080, dport=40002, seq=9, ack=0xDEADBEEF + 1, outward=False))]
    df = _capture(tmp_path, "ttl-resend.pcap", frames)
    p = probekit.match_probes(df)
    assert p["request_frame"].tolist() == [1, 3, 5] and p["retransmits"].tolist() == [0, 0, 1]
    from probekit.analysis.errors_icmp import attribute_errors, with_error_outcomes
    w = with_error_outcomes(p, attribute_errors(df, p))
    assert w["outcome"].astype(str).tolist() == ["ttl_exceeded", "answered", "answered"]
    assert w["reply_frame"].tolist()[1:] == [4, 7] and str(w["reporter"].iloc[0]) == "198.51.100.1"
