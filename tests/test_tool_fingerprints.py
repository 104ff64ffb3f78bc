"""Every real tool recorded in the lab (captures/tools/, made by probekit.live.tools) is recognised as
itself, and no other tool's recording is given its label."""
from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pytest

import probekit
from probekit.analysis.signatures import TOOL_LABELS

TOOLS = Path(__file__).resolve().parents[1] / "captures" / "tools"

# Which label each recorded tool must get: the tool we ran is the truth. Tools that are identical on
# the wire share a label (fping's three users; check_ping runs iputils ping; connect() clients).
EXPECTED = {
    "blackbox-icmp": "blackbox-exporter", "blackbox-tcp": "tcp-connect", "busybox-ping": "busybox-ping",
    "check_icmp": "check_icmp", "check_ping": "iputils-ping", "check_tcp": "tcp-connect", "fping": "fping",
    "fping-smokeping": "fping", "fping-zabbix": "fping", "hping3": "hping3", "inetutils-ping": "inetutils-ping",
    "iputils-ping": "iputils-ping", "masscan": "masscan", "mtr-icmp": "mtr", "mtr-tcp": "mtr", "nmap-syn": "nmap",
    "nping-icmp": "nping", "nping-tcp": "nping", "oping": "oping", "scamper-ping": "scamper",
    "tcptraceroute": "tcptraceroute", "traceroute-icmp": "traceroute", "zmap": "zmap",
    # UDP tracers: traceroute's default mode, mtr -u, scamper trace (udp-paris)
    "mtr-udp": "mtr", "scamper-trace": "scamper", "traceroute-udp": "traceroute",
}
# Tracers whose own report lists hops: each hop's probes (those sent with that TTL) must have the
# outcome the report implies. tcptraceroute re-sends one SYN (one source port, one ISN) with rising
# TTLs, each TTL twice (-q 2): one probe per TTL (a request re-sent with another TTL is a new probe),
# sent twice (a re-send with the same TTL is the same probe's), each request answered.
TRACERS = {"traceroute-udp": "udp", "mtr-udp": "udp", "scamper-trace": "udp", "traceroute-icmp": "icmp",
           "mtr-icmp": "icmp", "mtr-tcp": "tcp", "tcptraceroute": "tcp"}   # recording -> its probes' protocol
RESENDS = {"tcptraceroute": 2}   # requests per probe the tool sends (-q 2 of one SYN); the others: 1


def _labels(name: str) -> set[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = probekit.read_capture(TOOLS / f"{name}.pcap")
    info = json.loads((TOOLS / f"{name}.tool.json").read_text())
    probes = probekit.match_probes(df)
    fp = probekit.fingerprint(df, probes)
    return set(fp.loc[fp["source"].astype(str) == info["source"], "tool"])


def test_every_recording_is_known():
    names = {p.name.removesuffix(".tool.json") for p in TOOLS.glob("*.tool.json")}
    assert names == set(EXPECTED)
    for n in names:
        info = json.loads((TOOLS / f"{n}.tool.json").read_text())
        assert info["exit_status"] == 0 and info["output"], f"{n}: the tool's own report is missing"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_tool_is_recognised(name):
    assert _labels(name) == {EXPECTED[name]}
    assert EXPECTED[name] in TOOL_LABELS


def test_no_other_tool_gets_the_label():
    seen = {n: _labels(n) for n in EXPECTED}
    for label in set(EXPECTED.values()):
        owners = {n for n, got in seen.items() if label in got}
        assert owners == {n for n, want in EXPECTED.items() if want == label}, label


def test_shipped_network_monitor_captures_are_cwnm_like():
    for name in ("healthy.pcap", "lab/lab-healthy.pcap"):
        df = probekit.read_capture(TOOLS.parent / name)
        fp = probekit.fingerprint(df, probekit.match_probes(df))
        assert set(fp["tool"]) == {"cwnm-like"}, fp


def _hops(info: dict) -> list[tuple[int, str, int]]:
    """(hop = TTL, address, probes the tool counted as answered) from the tool's own report: traceroute
    and scamper print one time per answer, mtr prints Snt and Loss%."""
    hops = []
    for line in info["output"].splitlines():
        m = re.match(r"\s*(\d+)\.\|--\s+(\S+)\s+([\d.]+)%\s+(\d+)", line)          # mtr -r
        if m:
            sent, loss = int(m[4]), float(m[3])
            hops.append((int(m[1]), m[2], round(sent * (100 - loss) / 100)))
            continue
        m = re.match(r"\s*(\d+)\s+(\d+\.\d+\.\d+\.\d+)\s+(.*)$", line)            # traceroute, scamper
        if m:
            hops.append((int(m[1]), m[2], len(re.findall(r"[\d.]+ ms", m[3]))))
    return hops


@pytest.mark.parametrize("name", sorted(TRACERS))
def test_tracer_probes_have_the_outcomes_of_the_tools_report(name):
    """Per hop of the tool's report: its probes (sent with TTL = hop) drew time exceeded from the hop's
    router, or, at the destination, were answered (echo reply, SYN/ACK) or refused (UDP: the
    destination's own port unreachable), as many as the tool counted: one answer per request (errors
    quoting the probe, replies to it), one probe per request but for tcptraceroute's same-TTL re-sends."""
    from probekit.analysis.errors_icmp import attribute_errors, with_error_outcomes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = probekit.read_capture(TOOLS / f"{name}.pcap")
    info = json.loads((TOOLS / f"{name}.tool.json").read_text())
    probes = probekit.match_probes(df)
    errors = attribute_errors(df, probes)
    w = with_error_outcomes(probes, errors)
    n_err = errors.set_index("request_frame")["errors"].reindex(w["request_frame"]).fillna(0).to_numpy("int64")
    resends = RESENDS.get(name, 1)
    assert (w["retransmits"] == resends - 1).all(), w[["retransmits"]]
    by_frame = df.set_index("frame")
    ttl = by_frame.loc[w["request_frame"], "ttl"].to_numpy("int64")
    replier = by_frame["src"].astype(str).reindex(w["reply_frame"].astype("float64").fillna(-1)).to_numpy(object)
    hops = _hops(info)
    assert hops and hops[-1][1] == info["destination"], info["output"]
    proto = TRACERS[name]
    assert set(w["protocol"].astype(str)) == {proto}
    final = {"udp": "refused", "icmp": "answered", "tcp": "answered"}[proto]
    for hop, addr, answered in hops:
        at = ttl == hop
        mine = w[at]
        if addr == info["destination"]:
            hit = (mine["outcome"].astype(str) == final).to_numpy() & (replier[at] == addr)
            assert (mine.loc[hit, "rtt_us"] > 0).all()
            answers = (1 + mine["extra_replies"].to_numpy("int64"))[hit]
        else:
            hit = (mine["outcome"].astype(str) == "ttl_exceeded").to_numpy() & \
                (mine["reporter"].astype(str) == addr).to_numpy()
            answers = n_err[at][hit]
        assert int(hit.sum()) * resends == int(answers.sum()) == answered, \
            (name, hop, addr, mine[["outcome", "reporter", "retransmits", "extra_replies"]])
    if proto == "udp":   # the tracer's rising ports are one stream, of the tool's source
        from probekit.analysis.streams import streams
        st = streams(df, probes, probekit.fingerprint(df, probes))
        assert len(st) == 1 and st["source_list"].iloc[0] == info["source"]
        assert int(st["requests"].iloc[0]) == len(probes) and st["tool"].iloc[0] == EXPECTED[name]
        assert int(st["ports"].iloc[0]) == probes["dst_port"].nunique()
        assert set(probes["port"]) == {int(st["port"].iloc[0])} == {int(probes["dst_port"].min())}
