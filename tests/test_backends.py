"""The three backends agree: fast (compiled) against dpkt objects everywhere, against tshark (pyshark)
on the shipped captures and on clean real ones."""
from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import probekit
from helpers.corpus import REAL, REFUSED, SHARED, real_captures
from helpers.tables import table_diffs
from probekit.schema import check_packets

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(p.name for p in (ROOT / "captures").iterdir() if p.suffix in (".pcap", ".pcapng"))

# Where tshark's per-frame view differs from probekit's on purpose (see test_corpus for the reasons):
# malformed or cut headers, and the frames tshark invents for pcapng custom blocks.
PYSHARK_CLEAN = ["zeek/icmp/5-pings.pcap", "zeek/icmp/icmp6-ping.pcap", "zeek/linux_dlt_sll2.pcap",
                 "zeek/wikipedia.pcap", "zeek/tcp/rst-inject-rae.pcap", "zeek/nmap-vsn.pcap",
                 "zeek/vlan-qinqinq.pcap", "zeek/mixed-vlan-mpls.pcap", "gopacket/test_loopback.pcap",
                 "tcpdump/e1000g.pcap", "tcpdump/802.1ad_QinQ.pcap", "tcpdump/LINKTYPE_IPV6.pcap",
                 "tcpdump/tcp-handshake-nano.pcap", "pcapng-test-generator/output_be/basic/test001.pcapng",
                 "pcapng-test-generator/output_le/basic/test008.pcapng", "zeek/pcapng-multi-interface.pcapng",
                 "tcpdump/quic_handshake_truncated.pcap", "dpkt/dns_icmp.pcap"]
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed (./kit test installs it)")


def _paths():
    return [ROOT / "captures" / n for n in SHIPPED] + [REAL / r for r in real_captures() if r not in REFUSED]


@pytest.mark.parametrize("path", _paths(), ids=lambda p: p.name if "captures" in p.parts[-2:] else str(p.relative_to(REAL)))
def test_fast_equals_dpkt(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", probekit.CaptureWarning)
        fast = probekit.read_capture(path)
        ref = probekit.read_capture(path, backend="dpkt")
    check_packets(ref)
    assert table_diffs(fast, ref) == []
    assert list(fast["src"].cat.categories) == list(ref["src"].cat.categories)


@needs_tshark
@pytest.mark.parametrize("path", [ROOT / "captures" / n for n in ("healthy.pcap", "lossy.pcapng",
                                                                  "healthy-ipv6-target-side.pcap")]
                         + [REAL / r for r in PYSHARK_CLEAN], ids=lambda p: p.name)
def test_fast_equals_pyshark(path):
    if "captures-real" in str(path) and not REAL.is_dir():
        pytest.skip("corpus absent")
    fast = probekit.read_capture(path)
    ts = probekit.read_capture(path, backend="pyshark")
    check_packets(ts)
    # tshark reports "malformed" by its own expert rules (e.g. a truncated QUIC payload); compare the rest
    assert table_diffs(fast, ts, skip=("malformed",)) == []


@needs_tshark
def test_pyshark_backend_inside_a_running_event_loop():
    """As in a Jupyter kernel, whose loop is already running when a cell calls read_capture."""
    async def cell():
        return probekit.read_capture(ROOT / "captures" / "port-closed.pcap", backend="pyshark")
    df = asyncio.run(cell())
    assert len(df) == len(probekit.read_capture(ROOT / "captures" / "port-closed.pcap"))


def test_pyshark_backend_without_tshark_names_the_fix(tmp_path):
    code = ("import probekit\n"
            "try:\n    probekit.read_capture('captures/healthy.pcap', backend='pyshark')\n"
            "except probekit.BackendError as e:\n    print('BackendError:', e)\n")
    env = dict(os.environ, PATH=str(tmp_path), PROBEKIT_TSHARK="")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert "BackendError: tshark is not installed" in p.stdout and "apt-get install tshark" in p.stdout, p.stderr


# Tunnel captures of captures-wild on which tshark's layers and probekit's decoder describe the same
# innermost packet (elsewhere they differ on purpose: offload super-frames tshark stops at, WCCP and other
# GRE payloads probekit does not open; see test_corpus_wild).
WILD_TUNNELS = ["arkime__arkime/tests/pcap/vxlan.pcap", "arkime__arkime/tests/pcap/gre-erspan-vxlan.pcap",
                "arkime__arkime/tests/pcap/6-4-gre-ppp-udp-4-dns.pcap", "arkime__arkime/tests/pcap/gtp-u.pcap",
                "arkime__arkime/tests/pcap/tcpdump-geneve.pcap", "the-tcpdump-group__libpcap/tests/filter/geneve.pcap",
                "the-tcpdump-group__tcpdump/tests/erspan-type-i-4.pcap",
                "the-tcpdump-group__tcpdump/tests/erspan-type-ii-3.pcap",
                "the-tcpdump-group__tcpdump/tests/erspan-type-iii-ft-0.pcap",
                "the-tcpdump-group__tcpdump/tests/gso-ipv6-vxlan-ipv4.pcap",
                "the-tcpdump-group__tcpdump/tests/gso-ipv4-geneve-ipv6.pcap",
                "zeek__zeek/testing/btest/Traces/tunnels/4in4.pcap", "zeek__zeek/testing/btest/Traces/tunnels/4in6.pcap",
                "zeek__zeek/testing/btest/Traces/tunnels/6in4.pcap", "zeek__zeek/testing/btest/Traces/tunnels/6in6in6.pcap",
                "zeek__zeek/testing/btest/Traces/tunnels/geneve-arp.pcap",
                "zeek__zeek/testing/btest/Traces/tunnels/ayiya-large-identity.pcap",
                "zeek__zeek/testing/btest/Traces/tunnels/vxlan-encapsulated-igmp-v2.pcap",
                "zeek__zeek/testing/btest/Traces/tunnels/geneve-ipv6.pcap",
                "zeek__zeek/testing/btest/Traces/tunnels/gre-erspan3-dot1q.pcap",
                "zeek__zeek/testing/btest/Traces/tunnels/gtp/gtp7_ipv6.pcap",
                "zeek__zeek/testing/btest/Traces/erspanII.pcap"]


@needs_tshark
@pytest.mark.parametrize("path", [ROOT / "captures" / "healthy-vxlan-mirror.pcap"]
                         + [SHARED / "captures-wild" / r for r in WILD_TUNNELS], ids=lambda p: p.name)
def test_fast_equals_pyshark_on_tunnels(path):
    """tshark dissects the encapsulations; the pyshark backend takes the innermost packet's layers for the
    L3/L4 columns and the outermost IP layer and tunnel header for the outer ones, as the fast decoder does."""
    if not path.exists():
        pytest.skip("corpus absent")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", probekit.CaptureWarning)
        fast = probekit.read_capture(path)
        ts = probekit.read_capture(path, backend="pyshark")
    check_packets(ts)
    assert (ts["tunnel"] != "none").any() and ts["outer_src"].notna().any()
    assert table_diffs(fast, ts, skip=("malformed",)) == []


@needs_tshark
def test_pyshark_keeps_the_outer_headers_when_told_not_to_decapsulate():
    path = ROOT / "captures" / "healthy-vxlan-mirror.pcap"
    fast = probekit.read_capture(path, decapsulate=False)
    ts = probekit.read_capture(path, backend="pyshark", decapsulate=False)
    assert (ts["tunnel"] == "none").all() and (ts["dport"] == 4789).all()
    assert table_diffs(fast, ts, skip=("malformed",)) == []


@needs_tshark
def test_pyshark_read_survives_tshark_reaped_elsewhere():
    """Another part of the process reaping children (os.waitpid(-1), as a SIGCHLD handler or another event
    loop's watcher does) takes tshark's exit status from asyncio, which then reports returncode 255 and
    pyshark calls tshark crashed. Every frame was read: the table is whole, equal to the fast reader's.
    Who reaps first is a race with asyncio's own watcher, so the read is repeated (on a small real
    recording) until the reaper has taken a child; every read, reaped or not, must be whole."""
    import threading
    import time
    path = ROOT / "captures" / "tools" / "inetutils-ping.pcap"
    fast = probekit.read_capture(path)
    reaped: list[int] = []
    for _attempt in range(12):
        stop = threading.Event()

        def reaper():
            while not stop.is_set():
                try:
                    pid, _ = os.waitpid(-1, os.WNOHANG)
                    if pid:
                        reaped.append(pid)
                except ChildProcessError:
                    pass
                time.sleep(0.0002)

        t = threading.Thread(target=reaper, daemon=True)
        t.start()
        try:
            ts = probekit.read_capture(path, backend="pyshark")
        finally:
            stop.set()
            t.join()
        assert table_diffs(fast, ts) == []
        if reaped:
            break
    assert reaped, "in 12 reads the reaper never took a child first: the condition was not made"
