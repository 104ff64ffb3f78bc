"""Tunnels: every encapsulation in probekit.capture.encaps, built by scapy (an encoder independent of
probekit), read back with the inner packet's fields in the L3/L4 columns and the outer layer in the
tunnel columns; the compiled decoder equals the dpkt reference on every frame; a tunnel header that
lies about its length gives a flagged row, never an exception."""
from __future__ import annotations

import random
import struct
import warnings

import numpy as np
import pandas as pd
import pytest
from scapy.contrib.erspan import ERSPAN_I, ERSPAN_II, ERSPAN_III, ERSPAN_PlatformSpecific
from scapy.contrib.geneve import GENEVE
from scapy.contrib.gtp import GTP_U_Header, GTPPDUSessionContainer
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import GRE, Ether
from scapy.layers.vxlan import VXLAN
from scapy.packet import Raw

import probekit
from helpers.capwriter import pcap
from helpers.tables import table_diffs
from probekit.capture.encaps import ENCAPS
from probekit.schema import TUNNEL_KINDS, check_packets

O4 = dict(src="203.0.113.7", dst="198.51.100.9", ttl=61)
O6 = dict(src="2001:db8::7", dst="2001:db8::9", hlim=59)
PAY = bytes(range(48))
ICMP4 = IP(src="10.0.0.1", dst="10.0.0.2", ttl=64) / ICMP(id=0x1234, seq=7) / PAY
SYN = IP(src="10.0.0.1", dst="10.0.0.3", ttl=63) / TCP(sport=40001, dport=443, flags="S", seq=123456) / PAY[:36]
ICMP6 = IPv6(src="2001:db8:1::1", dst="2001:db8:1::2", hlim=64) / ICMPv6EchoRequest(id=0x4321, seq=9, data=PAY)
INNER_ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def _eth(pkt):
    return Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:0b") / pkt


def _geneve_option(cls: int, typ: int, data: bytes) -> bytes:
    """One GENEVE option (RFC 8926 3.5): class, type, 3 reserved bits and the length in 4-byte words."""
    return struct.pack(">HBB", cls, typ, len(data) // 4) + data


def _gwlb_options(endpoint: int, attachment: int, cookie: int) -> bytes:
    """AWS Gateway Load Balancer's three options, class 0x0108: endpoint id, attachment id, flow cookie."""
    return (_geneve_option(0x0108, 1, endpoint.to_bytes(8, "big")) + _geneve_option(0x0108, 2, attachment.to_bytes(8, "big"))
            + _geneve_option(0x0108, 3, cookie.to_bytes(4, "big")))


def _ayiya(nh: int, id_code: int = 4, sig_words: int = 5) -> bytes:
    """An AYIYA forward header (Zeek's AYIYA.cc layout): identity length code and type, signature length
    (4-byte words) and hash method (0x52: 20 bytes, SHA-1), authentication method and opcode (0x11:
    forward), next header, epoch time, then the identity and the signature."""
    return (bytes([id_code << 4 | 1, sig_words << 4 | 2, 0x11, nh]) + b"\x5a\x00\x00\x01"
            + b"\x20" * (1 << id_code) + b"\x33" * (4 * sig_words))


LLC_IP = b"\xaa\xaa\x03\x00\x00\x00\x08\x00"
ADDRS = b"\x02\x00\x00\x00\x00\x0a" + b"\x02\x00\x00\x00\x00\x0b" + b"\x02\x00\x00\x00\x00\x0c"


def _wlan_qos(pkt, amsdu: bool = False) -> bytes:
    """An 802.11 QoS data frame from the DS (Aruba's tunnels carry these) before an LLC/SNAP IPv4 packet."""
    return b"\x88\x02\x00\x00" + ADDRS + b"\x00\x00" + (b"\x80\x00" if amsdu else b"\x00\x00") + \
        (b"" if amsdu else LLC_IP + bytes(pkt))


def _wlan_amsdu(pkts) -> bytes:
    """An A-MSDU: subframes of DA, SA, length and an LLC/SNAP packet, each but the last padded to 4."""
    out = _wlan_qos(None, amsdu=True)
    for j, p in enumerate(pkts):
        body = LLC_IP + bytes(p)
        sub = ADDRS[:12] + len(body).to_bytes(2, "big") + body
        out += sub + (b"\0" * (-len(sub) % 4) if j < len(pkts) - 1 else b"")
    return out


# an IPv6 packet from a Teredo address (2001:0::/32): what Zeek's Teredo detection finds on any UDP port
TEREDO6 = IPv6(src="2001:0:4137:9e50:8000:f12a:b9c8:2815", dst="2001:db8:1::2", hlim=64) / \
    ICMPv6EchoRequest(id=0x4321, seq=9, data=PAY)

# name -> (frame, tunnel, tunnel_id, depth, inner packet, outer addresses, outer ttl)
CASES = {
    "vxlan": (_eth(IP(**O4) / UDP(sport=49152, dport=4789) / VXLAN(vni=0x00ABCD) / INNER_ETH / ICMP4),
              "vxlan", 0xABCD, 1, ICMP4, O4),
    "vxlan-syn": (_eth(IP(**O4) / UDP(sport=49153, dport=4789) / VXLAN(vni=5) / INNER_ETH / SYN),
                  "vxlan", 5, 1, SYN, O4),
    "vxlan-over-ipv6": (_eth(IPv6(**O6) / UDP(sport=5000, dport=4789) / VXLAN(vni=9) / INNER_ETH / ICMP6),
                        "vxlan", 9, 1, ICMP6, O6),
    "geneve-options": (_eth(IP(**O4) / UDP(sport=5001, dport=6081) / GENEVE(vni=77, proto=0x6558, optionlen=3)
                            / (b"\x01\x08\x01\x02" + b"\xaa" * 8) / INNER_ETH / ICMP4),
                       "geneve", 77, 1, ICMP4, O4),
    "geneve-ip": (_eth(IP(**O4) / UDP(sport=5002, dport=6081) / GENEVE(vni=78, proto=0x0800) / SYN),
                  "geneve", 78, 1, SYN, O4),
    "geneve-gwlb": (_eth(IP(**O4) / UDP(sport=5003, dport=6081) / GENEVE(vni=0, proto=0x0800, optionlen=8)
                         / _gwlb_options(0x0123456789ABCDEF, 0x1122334455667788, 0xDEADBEEF) / ICMP4),
                    "geneve", 0, 1, ICMP4, O4),
    "gre-ip": (_eth(IP(**O4) / GRE() / ICMP4), "gre", None, 1, ICMP4, O4),
    "gre-key-seq-csum": (_eth(IP(**O4) / GRE(chksum_present=1, key_present=1, key=0xDEADBEEF, seqnum_present=1,
                                             sequence_number=5) / SYN), "gre", 0xDEADBEEF, 1, SYN, O4),
    "gre-ipv6": (_eth(IP(**O4) / GRE(key_present=1, key=3) / ICMP6), "gre", 3, 1, ICMP6, O4),
    "gre-teb": (_eth(IP(**O4) / GRE(proto=0x6558, key_present=1, key=11) / INNER_ETH / ICMP4),
                "gre", 11, 1, ICMP4, O4),
    "erspan-i": (_eth(IP(**O4) / GRE(proto=0x88BE) / ERSPAN_I() / INNER_ETH / ICMP4), "erspan", None, 1, ICMP4, O4),
    "erspan-ii": (_eth(IP(**O4) / GRE(proto=0x88BE, seqnum_present=1, sequence_number=1) / ERSPAN_II(session_id=33)
                       / INNER_ETH / SYN), "erspan", 33, 1, SYN, O4),
    "erspan-iii": (_eth(IP(**O4) / GRE(proto=0x22EB, seqnum_present=1) / ERSPAN_III(session_id=1000, o=1)
                        / ERSPAN_PlatformSpecific() / INNER_ETH / ICMP4), "erspan", 1000, 1, ICMP4, O4),
    "ipip": (_eth(IP(proto=4, **O4) / ICMP4), "ipip", None, 1, ICMP4, O4),
    "ipv4-in-ipv6": (_eth(IPv6(nh=4, **O6) / SYN), "ipip", None, 1, SYN, O6),
    "6in4": (_eth(IP(proto=41, **O4) / ICMP6), "6in4", None, 1, ICMP6, O4),
    "ip6ip6": (_eth(IPv6(nh=41, **O6) / ICMP6), "ip6ip6", None, 1, ICMP6, O6),
    "teredo-origin": (_eth(IP(**O4) / UDP(sport=3544, dport=40000) / (b"\x00\x00" + b"\x9c\x3f" + b"\xcb\x00\x71\x08")
                           / ICMP6), "teredo", None, 1, ICMP6, O4),
    "teredo-auth-origin": (_eth(IP(**O4) / UDP(sport=40000, dport=3544)
                                / (b"\x00\x01\x02\x03" + b"ab" + b"xyz" + b"\x11" * 8 + b"\x00")
                                / (b"\x00\x00" + b"\x9c\x3f" + b"\xcb\x00\x71\x08") / ICMP6),
                           "teredo", None, 1, ICMP6, O4),
    "gtpu": (_eth(IP(**O4) / UDP(sport=2152, dport=2152) / GTP_U_Header(teid=0x01020304) / ICMP4),
             "gtpu", 0x01020304, 1, ICMP4, O4),
    "gtpu-ext": (_eth(IP(**O4) / UDP(sport=2152, dport=2152) / GTP_U_Header(teid=99, E=1, next_ex=0x85)
                      / GTPPDUSessionContainer(type=1, QFI=5) / ICMP6), "gtpu", 99, 1, ICMP6, O4),
    "gre-in-udp": (_eth(IP(**O4) / UDP(sport=50343, dport=4754) / GRE(key_present=1, key=21) / SYN),
                   "gre", 21, 1, SYN, O4),
    "erspan-ii-in-udp": (_eth(IP(**O4) / UDP(sport=4754, dport=4754) / GRE(proto=0x88BE, seqnum_present=1)
                              / ERSPAN_II(session_id=44) / INNER_ETH / ICMP4), "erspan", 44, 1, ICMP4, O4),
    "gre-aruba-amsdu": (_eth(IP(**O4) / GRE(proto=0x8210) / _wlan_amsdu([ICMP4, SYN])), "gre", None, 1, ICMP4, O4),
    "gre-aruba": (_eth(IP(**O4) / GRE(proto=0x8300) / _wlan_qos(SYN)), "gre", None, 1, SYN, O4),
    "ayiya": (_eth(IP(**O4) / UDP(sport=53859, dport=5072) / _ayiya(41) / ICMP6), "ayiya", None, 1, ICMP6, O4),
    "ayiya-ipv4-from-5072": (_eth(IP(**O4) / UDP(sport=5072, dport=40000) / _ayiya(4, id_code=8) / SYN),
                             "ayiya", None, 1, SYN, O4),
    "ayiya-detected": (_eth(IP(**O4) / UDP(sport=40000, dport=40001) / _ayiya(41) / ICMP6), "ayiya", None, 1, ICMP6, O4),
    "teredo-detected": (_eth(IP(**O4) / UDP(sport=3797, dport=32900) / TEREDO6), "teredo", None, 1, TEREDO6, O4),
    "teredo-detected-origin": (_eth(IP(**O4) / UDP(sport=3797, dport=32900) / (b"\x00\x00" + b"\x9c\x3f"
                                                                              + b"\xcb\x00\x71\x08") / ICMP6),
                               "teredo", None, 1, ICMP6, O4),
    "gtpu-on-2123": (_eth(IP(**O4) / UDP(sport=2123, dport=2123) / GTP_U_Header(teid=7) / ICMP4), "gtpu", 7, 1, ICMP4, O4),
    "gre-in-vxlan": (_eth(IP(**O4) / UDP(sport=49152, dport=4789) / VXLAN(vni=1) / INNER_ETH
                          / IP(src="192.0.2.1", dst="192.0.2.2") / GRE(key_present=1, key=2) / SYN),
                     "vxlan", 1, 2, SYN, O4),
}


def _write(tmp_path, frames, name="t.pcap"):
    p = tmp_path / name
    p.write_bytes(pcap([(1_700_000_000 + i, 0) + tuple(f) for i, f in enumerate(frames)]))
    return p


def _read_both(p, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", probekit.CaptureWarning)
        fast = probekit.read_capture(p, **kw)
        ref = probekit.read_capture(p, backend="dpkt", **kw)
    check_packets(fast)
    check_packets(ref)
    assert table_diffs(fast, ref) == []
    return fast


def test_registry_names_every_category():
    assert set(ENCAPS) == set(TUNNEL_KINDS) - {"none"}
    assert all(TUNNEL_KINDS[e.code] == e.name for e in ENCAPS.values())


@pytest.mark.parametrize("case", sorted(CASES))
def test_innermost_packet_in_the_l3_l4_columns(tmp_path, case):
    frame, tunnel, tid, depth, inner, outer = CASES[case]
    df = _read_both(_write(tmp_path, [(bytes(frame),)]))
    r = df.iloc[0]
    v6 = IPv6 in inner and inner.__class__ is IPv6
    assert r.l3 == ("ipv6" if v6 else "ipv4")
    assert (r.src, r.dst) == (inner.src, inner.dst)
    assert int(r.ttl) == (inner.hlim if v6 else inner.ttl)
    assert r.tunnel == tunnel and int(r.tunnel_depth) == depth
    assert (r.outer_src, r.outer_dst) == (outer["src"], outer["dst"])
    assert int(r.outer_ttl) == outer.get("ttl", outer.get("hlim"))
    assert (np.isnan(r.tunnel_id) if tid is None else int(r.tunnel_id) == tid)
    assert not r.truncated and not r.malformed
    if TCP in inner:
        t = inner[TCP]
        assert (int(r.sport), int(r.dport), int(r.tcp_seq), int(r.tcp_flags)) == (t.sport, t.dport, t.seq, 0x02)
        want = bytes(t.payload)
    elif ICMP in inner:
        assert (int(r.icmp_type), int(r.icmp_id), int(r.icmp_seq)) == (8, 0x1234, 7)
        want = bytes(inner[ICMP].payload)
    else:
        assert (int(r.icmp_type), int(r.icmp_id), int(r.icmp_seq)) == (128, 0x4321, 9)
        want = PAY
    assert int(r.payload_len) == len(want)
    assert df.probekit.payloads()[0] == want


@pytest.mark.parametrize("case", ["vxlan", "gre-key-seq-csum", "6in4", "gtpu-ext", "gre-in-vxlan"])
def test_decapsulate_false_keeps_the_outer_headers(tmp_path, case):
    frame, *_rest, outer = CASES[case]
    df = _read_both(_write(tmp_path, [(bytes(frame),)]), decapsulate=False)
    r = df.iloc[0]
    assert (r.src, r.dst) == (outer["src"], outer["dst"])
    assert r.tunnel == "none" and int(r.tunnel_depth) == 0 and r.outer_src != r.outer_src


def test_udp_to_a_tunnel_port_that_is_no_tunnel_stays_udp(tmp_path):
    frames = [_eth(IP(**O4) / UDP(sport=2152, dport=2152) / GTP_U_Header(gtp_type=1, teid=0) / b"\0\0"),  # echo
              _eth(IP(**O4) / UDP(sport=3544, dport=40000) / b"not an IPv6 packet at all, just text....."),
              _eth(IP(**O4) / UDP(sport=1, dport=6081) / (b"\xc0" + b"\0" * 7)),       # GENEVE version 3
              _eth(IP(**O4) / UDP(sport=53859, dport=5072) / _ayiya(41)[:2] / b"\x10" / _ayiya(41)[3:]
                   / ICMP6),                                                            # AYIYA opcode 0
              _eth(IP(**O4) / UDP(sport=53, dport=40000) / b"\x12\x52\x11\x00garbage"),    # looks like AYIYA
              _eth(IP(**O4) / UDP(sport=53, dport=40000) / (b"\xf0\x52\x11\x29" + b"\0" * 60)),  # identity 2^15
              _eth(IP(**O4) / UDP(sport=53, dport=40000) / (b"\x00\x00" + b"\x01" * 60)),  # not Teredo
              _eth(IP(**O4) / UDP(sport=5, dport=40000) / bytes(TEREDO6)[:40].replace(b"\x80\x00", b"\x0a\x00"))]
    df = _read_both(_write(tmp_path, [(bytes(f),) for f in frames]))
    assert (df["tunnel"] == "none").all() and (df["src"] == O4["src"]).all()
    assert not df["malformed"].any()


def test_teredo_bubble_is_opened_to_an_ipv6_row_without_l4(tmp_path):
    """A Teredo bubble (RFC 4380 2.8: IPv6, next header 59, no payload), on the Teredo port or found by
    Zeek's detection (Teredo.cc), with bytes after it too (Zeek's Teredo_bubble_with_payload)."""
    bubble = IPv6(src="2001:0:4137:9e50:8000:f12a:b9c8:2815", dst="fe80::8000:ffff:ffff:fffd", nh=59, plen=0)
    frames = [_eth(IP(**O4) / UDP(sport=3544, dport=40000) / bubble),
              _eth(IP(**O4) / UDP(sport=40000, dport=40001) / bubble),
              _eth(IP(**O4) / UDP(sport=40000, dport=40001) / bubble / b"trailing")]
    df = _read_both(_write(tmp_path, [(bytes(f),) for f in frames]))
    assert (df["tunnel"] == "teredo").all() and (df["l3"] == "ipv6").all()
    assert (df["ip_proto"] == 59).all() and df["sport"].isna().all() and df["payload_len"].isna().all()
    assert (df["src"] == bubble.src).all()


def test_aruba_gre_types_are_zeeks():
    """The compiled decoder's Aruba test and the registry's (the dpkt/pyshark backends') agree on every
    GRE protocol type, and take the ones Zeek's iptunnel/main.zeek registers to 802.11."""
    from probekit.capture._decode import _aruba
    from probekit.capture.encaps import aruba_gre
    assert all(bool(_aruba(t)) == aruba_gre(t) for t in range(0x10000))
    assert all(aruba_gre(t) for t in range(0x8200, 0x8371, 0x10))
    assert not any(aruba_gre(t) for t in (0x0800, 0x86DD, 0x6558, 0x88BE, 0x22EB, 0x8847, 0x880B, 0x8201))


def _cut(frame: bytes, keep: int):
    return frame[:keep], len(frame)


LIARS = {
    # GENEVE option length 63 words: beyond the UDP datagram
    "geneve-optlen": (bytes(_eth(IP(**O4) / UDP(sport=5, dport=6081) / (b"\x3f" + b"\0\x65\x58" + b"\0\0\x01\0")
                                 / (b"\0" * 20))), "malformed"),
    # GRE with key and sequence bits, the packet ends after the base header
    "gre-key-missing": (bytes(_eth(IP(proto=47, **O4) / b"\x30\x00\x08\x00")), "malformed"),
    # GTP-U extension header of length 0
    "gtpu-ext-len0": (bytes(_eth(IP(**O4) / UDP(sport=2152, dport=2152)
                                 / (b"\x34\xff\x00\x08" + b"\0\0\0\1" + b"\0\0\0\x85" + b"\x00\x00\x00\x00"))),
                      "malformed"),
    # VXLAN header shorter than 8 bytes within the UDP length
    "vxlan-short": (bytes(_eth(IP(**O4) / UDP(sport=5, dport=4789) / b"\x08\0\0")), "malformed"),
    # AYIYA on its port whose identity and signature pass the end of the datagram
    "ayiya-identity": (bytes(_eth(IP(**O4) / UDP(sport=5, dport=5072) / (b"\x81\x52\x11\x29" + b"\0" * 40))),
                       "malformed"),
    # GRE-in-UDP with the key bit, the datagram ends after the base header
    "gre-in-udp-key-missing": (bytes(_eth(IP(**O4) / UDP(sport=5, dport=4754) / b"\x20\x00\x08\x00")), "malformed"),
    # ERSPAN II header promised by the sequence bit, packet ends inside it
    "erspan-short": (bytes(_eth(IP(**O4) / GRE(proto=0x88BE, seqnum_present=1) / b"\x10\x00")), "malformed"),
}


@pytest.mark.parametrize("case", sorted(LIARS))
def test_a_tunnel_header_that_lies_about_its_length_is_flagged(tmp_path, case):
    frame, flag = LIARS[case]
    df = _read_both(_write(tmp_path, [(frame,)]))
    r = df.iloc[0]
    assert bool(r[flag]), r
    assert r.tunnel == "none" and (r.src, r.dst) == (O4["src"], O4["dst"])   # the row is the outer packet


@pytest.mark.parametrize("case", ["vxlan", "geneve-options", "erspan-iii", "gtpu-ext", "teredo-auth-origin", "ayiya",
                                  "gre-in-udp", "gre-aruba-amsdu"])
def test_a_tunnel_cut_by_the_snap_length_keeps_what_was_captured(tmp_path, case):
    frame = bytes(CASES[case][0])
    frames = [_cut(frame, k) for k in range(14, len(frame))]
    df = _read_both(_write(tmp_path, frames))
    assert df["truncated"].all()
    assert (df["src"].notna() | df["outer_src"].notna()).iloc[16:].all()   # the outer source is captured


def test_mutated_tunnel_frames_fast_equals_dpkt(tmp_path):
    """Random byte flips in every case's frame: the compiled decoder and the reference agree, no exception."""
    rng = random.Random(12)
    frames = []
    for case in sorted(CASES):
        base = bytearray(bytes(CASES[case][0]))
        for _ in range(150):
            b = bytearray(base)
            for _ in range(rng.randint(1, 4)):
                b[rng.randrange(14, len(b))] = rng.randrange(256)
            keep = rng.randint(14, len(b)) if rng.random() < 0.3 else len(b)
            frames.append((bytes(b[:keep]), len(b)))
    df = _read_both(_write(tmp_path, frames))
    assert len(df) == len(frames) and (df["tunnel"] != "none").sum() > len(frames) // 3


def test_compiled_decoder_equals_its_plain_python_run_on_tunnels(tmp_path):
    """The decoder compiled by numba and the same functions as plain Python (NUMBA_DISABLE_JIT=1) agree
    on every tunnel case, cut at every length, and on mutated frames."""
    import os
    import subprocess
    import sys
    from pathlib import Path
    rng = random.Random(5)
    frames = []
    for case in sorted(CASES):
        f = bytes(CASES[case][0])
        frames += [(f,)] + [_cut(f, k) for k in range(14, len(f), 3)]
        for _ in range(20):
            b = bytearray(f)
            b[rng.randrange(14, len(b))] = rng.randrange(256)
            frames.append((bytes(b),))
    p = _write(tmp_path, frames)
    code = ("import sys, probekit\n"
            "from probekit.schema import packets_for_storage\n"
            "packets_for_storage(probekit.read_capture(sys.argv[1])).to_pickle(sys.argv[2])\n")
    root = Path(__file__).resolve().parents[1]
    for jit in ("0", "1"):
        subprocess.run([sys.executable, "-c", code, str(p), str(tmp_path / f"{jit}.pkl")], cwd=root, check=True,
                       env=dict(os.environ, NUMBA_DISABLE_JIT=jit, PYTHONPATH=str(root)))
    a, b = pd.read_pickle(tmp_path / "0.pkl"), pd.read_pickle(tmp_path / "1.pkl")
    assert len(a) == len(frames) and a.equals(b)


def test_shipped_traffic_mirroring_capture_gives_the_probes_of_its_truth(tmp_path):
    """captures/healthy-vxlan-mirror.pcap (VXLAN, as VPC Traffic Mirroring delivers it): every frame is
    decapsulated, and the probes matched in it are those of the same scenario written unmirrored, and
    those of its truth (send times, outcomes, RTTs)."""
    from pathlib import Path

    from probekit.synth import read_truth, synth
    from probekit.synth.shipped import SHIPPED
    root = Path(__file__).resolve().parents[1]
    path = root / "captures" / "healthy-vxlan-mirror.pcap"
    scen, seed, kw = SHIPPED[path.name]
    plain = tmp_path / "plain.pcap"
    synth(scen, plain, seed=seed, **{k: v for k, v in kw.items() if k != "encap"})
    df = probekit.read_capture(path)
    assert (df["tunnel"] == "vxlan").all() and (df["tunnel_id"] == 42).all()
    assert (df["outer_src"] == "10.0.0.5").all() and (df["outer_dst"] == "10.0.9.9").all()
    a = probekit.open_capture(path).probes
    b = probekit.open_capture(plain).probes
    assert len(a) > 0
    pd_cols = [c for c in a.columns if c not in ("request_frame", "reply_frame", "reset_frame")]
    assert a[pd_cols].reset_index(drop=True).equals(b[pd_cols].reset_index(drop=True))
    truth = read_truth(path)
    assert len(a) == len(truth)
    assert np.array_equal(np.sort(a["ts_ns"].to_numpy(np.int64)), np.sort(truth["send_ns"].to_numpy(np.int64)
                                                                            // 1000 * 1000))
    assert (a["outcome"] == "answered").sum() == int(truth["answered"].sum())


def _mirrored(tmp_path, src):
    """``src`` as VPC Traffic Mirroring delivers it: each frame inside Ethernet / IPv4 / UDP 4789 / VXLAN
    (VNI 42), written by scapy; returns the new file's path."""
    import dpkt
    frames = []
    with open(src, "rb") as f:
        for ts, buf in dpkt.pcap.Reader(f):
            frame = _eth(IP(src="10.0.0.5", dst="10.0.9.9", ttl=64) / UDP(sport=49152, dport=4789) / VXLAN(vni=42)
                         / Raw(buf))
            sec, frac = int(ts), round((ts - int(ts)) * 1e6)
            frames.append((sec, frac, bytes(frame)))
    p = tmp_path / "mirrored.pcap"
    p.write_bytes(pcap(frames))
    return p


OUTER = ("tunnel", "tunnel_depth", "outer_src", "outer_dst", "tunnel_id", "outer_ttl")


def test_a_mirrored_capture_costs_one_byte_a_row_more_than_the_plain_one(tmp_path):
    """The outer columns are dictionary-coded (one byte a row, filled or not) or sparse with a block index
    (a column filled on every row costs its values only): mirrored <= plain + 1 byte per packet, both
    within issue 16's 120 bytes per packet, and the inner columns are the plain capture's."""
    from pathlib import Path
    src = Path(__file__).resolve().parents[1] / "captures" / "healthy.pcap"
    plain = probekit.read_capture(src)
    mirrored = probekit.read_capture(_mirrored(tmp_path, src))
    check_packets(mirrored)
    assert (mirrored["tunnel"] == "vxlan").all() and (mirrored["tunnel_id"].astype("UInt32") == 42).all()
    assert (mirrored["outer_ttl"].astype("UInt8") == 64).all() and (mirrored["tunnel_depth"] == 1).all()
    n = len(plain)
    a, b = plain.memory_usage(deep=True, index=False), mirrored.memory_usage(deep=True, index=False)
    for c in ("tunnel", "outer_src", "outer_dst", "tunnel_id", "outer_ttl"):   # codes + a few categories
        assert a[c] <= n + 1024 and b[c] <= n + 1024, c
    assert a["tunnel_depth"] < 64 and n <= b["tunnel_depth"] < n + 64          # 0 implicit; one block of 1s
    assert b.sum() <= a.sum() + n + 1024
    assert a.sum() / n <= 120 and b.sum() / n <= 120
    same = [c for c in plain.columns if c not in OUTER + ("caplen", "wirelen", "payload_off")]
    assert table_diffs(plain[same], mirrored[same]) == []
    assert ((mirrored["payload_off"] - plain["payload_off"]).dropna() == 50 * np.arange(1, len(plain) + 1)[
        plain["payload_off"].notna().to_numpy()]).all()


def test_mixed_tunnel_columns_survive_parquet(tmp_path):
    """packets_for_storage / packets_from_storage: every dtype and value back, on frames of every tunnel
    kind mixed with plain ones (sparse index kinds and dictionaries rebuilt)."""

    from probekit.schema import packets_for_storage, packets_from_storage
    frames = [(bytes(CASES[c][0]),) for c in sorted(CASES)] + [(bytes(_eth(ICMP4)),)] * 5
    df = probekit.read_capture(_write(tmp_path, frames))
    assert (df["tunnel"] != "none").sum() == len(CASES) and df["tunnel_id"].notna().any()
    packets_for_storage(df).to_parquet(tmp_path / "t.parquet")
    back = packets_from_storage(pd.read_parquet(tmp_path / "t.parquet"))
    check_packets(back)
    assert table_diffs(df, back) == []
    assert list(back["tunnel_id"].cat.categories) == sorted({int(v) for v in df["tunnel_id"].dropna()})


def _gwlb(cookie_opts: bytes, inner, sport=40000, outer=O4):
    return _eth(IP(**outer) / UDP(sport=sport, dport=6081) / GENEVE(vni=0, proto=0x0800, optionlen=len(cookie_opts) // 4)
                / cookie_opts / inner)


def test_gwlb_flow_cookie_groups_the_two_directions_of_a_flow(tmp_path):
    """AWS Gateway Load Balancer's flow cookie (GENEVE option class 0x0108 type 3) is kept in
    gwlb_flow_cookie, whatever the other options around it; frames without it, another class's type 3, a
    type 3 of the wrong length and VXLAN frames have none."""
    req = IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(type=8, id=1, seq=1)
    rep = IP(src="10.0.0.2", dst="10.0.0.1") / ICMP(type=0, id=1, seq=1)
    other = IP(src="10.0.0.1", dst="10.0.0.9") / TCP(sport=1234, dport=80, flags="S")
    gcp = _geneve_option(0x0146, 3, b"\0\0\0\x07")             # another vendor's type 3
    frames = [_gwlb(_gwlb_options(7, 8, 0xC0FFEE01), req),
              _gwlb(_gwlb_options(7, 8, 0xC0FFEE01), rep, sport=40001),
              _gwlb(gcp + _gwlb_options(7, 8, 0xC0FFEE02), other),
              _gwlb(_geneve_option(0x0108, 3, b"\0" * 8), req),       # wrong length: not the cookie
              _gwlb(gcp, req),
              _gwlb(b"", req),
              _eth(IP(**O4) / UDP(sport=1, dport=4789) / VXLAN(vni=5) / INNER_ETH / req)]
    df = _read_both(_write(tmp_path, [(bytes(f),) for f in frames]))
    assert (df["tunnel"] == pd.Series(["geneve"] * 6 + ["vxlan"])).all()
    got = [None if c != c else int(c) for c in df["gwlb_flow_cookie"]]
    assert got == [0xC0FFEE01, 0xC0FFEE01, 0xC0FFEE02, None, None, None, None]
    flows = df.groupby("gwlb_flow_cookie")["src"].agg(lambda s: sorted(set(s)))
    assert flows[0xC0FFEE01] == ["10.0.0.1", "10.0.0.2"]                 # both directions, one flow


@pytest.mark.skipif(__import__("shutil").which("tshark") is None, reason="tshark is not installed")
def test_gwlb_flow_cookie_equals_tsharks_option(tmp_path):
    frames = [_gwlb(_geneve_option(0x0146, 1, b"\0" * 4) + _gwlb_options(7, 8, 0xC0FFEE00 + i), ICMP4)
              for i in range(3)]
    p = _write(tmp_path, [(bytes(f),) for f in frames])
    fast = probekit.read_capture(p)
    ts = probekit.read_capture(p, backend="pyshark")
    assert table_diffs(fast, ts, skip=("malformed",)) == []
    assert [int(c) for c in ts["gwlb_flow_cookie"]] == [0xC0FFEE00, 0xC0FFEE01, 0xC0FFEE02]


# tshark dissects these as the decoder opens them (its GRE-in-UDP on 4754, AYIYA on 5072, the Aruba GRE
# types to 802.11); it has no Teredo or AYIYA detection on other ports by default and shows an A-MSDU
# as one wlan_aggregate layer, so those cases are held to the dpkt reference only
PYSHARK_AGREES = ["gre-in-udp", "erspan-ii-in-udp", "ayiya", "ayiya-ipv4-from-5072", "gre-aruba"]


@pytest.mark.skipif(__import__("shutil").which("tshark") is None, reason="tshark is not installed")
def test_pyshark_opens_the_udp_tunnels_and_aruba_gre_as_the_decoder_does(tmp_path):
    p = _write(tmp_path, [(bytes(CASES[c][0]),) for c in PYSHARK_AGREES])
    fast = probekit.read_capture(p)
    ts = probekit.read_capture(p, backend="pyshark")
    assert list(ts["tunnel"].astype(str)) == [CASES[c][1] for c in PYSHARK_AGREES]
    assert table_diffs(fast, ts, skip=("malformed",)) == []
