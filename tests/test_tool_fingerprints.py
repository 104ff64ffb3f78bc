"""Every real tool recorded in the lab (captures/tools/, made by probekit.live.tools) is recognised as
itself, and no other tool's recording is given its label."""
from __future__ import annotations

import json
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
}
# UDP tracers (traceroute's default mode, mtr -u, scamper trace) send UDP probes: the probes table has
# ICMP echo and TCP SYN probes only this round, so they have no stream to fingerprint yet.
UDP_ONLY = {"mtr-udp", "scamper-trace", "traceroute-udp"}


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
    assert names == set(EXPECTED) | UDP_ONLY
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
