"""Container formats, link types and header variants, on hand-made files whose contents are known."""
from __future__ import annotations

import struct
from pathlib import Path

import dpkt
import pandas as pd
import pytest

import probekit
from helpers import capwriter as W
from helpers.frames import PAYLOAD, ether, icmp4, icmp6, tcp4
from probekit.schema import check_packets


def read(tmp_path, data: bytes, name="t.pcap", **kw) -> pd.DataFrame:
    p = tmp_path / name
    p.write_bytes(data)
    df = probekit.read_capture(p, **kw)
    check_packets(df)
    return df


FRAMES = [(1_700_000_000, 1, ether(icmp4())), (1_700_000_000, 999_999, ether(tcp4())),
          (1_700_000_001, 0, ether(icmp6(), et=0x86DD))]


@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize("nano", [False, True])
def test_pcap_byte_orders_and_precisions(tmp_path, big, nano):
    df = read(tmp_path, W.pcap(FRAMES, big=big, nano=nano))
    unit = 1 if nano else 1000
    assert df["ts_ns"].tolist() == [s * 10**9 + f * unit for s, f, _ in FRAMES]
    assert df["l3"].tolist() == ["ipv4", "ipv4", "ipv6"]
    assert df["src"].astype(str).tolist() == ["192.0.2.10", "192.0.2.10", "fd00::a"]
    assert df["icmp_id"].tolist()[::2] == [0x1234, 0x4321] and df["icmp_seq"].tolist()[::2] == [7, 9]
    assert df.loc[1, "tcp_flags"] == 0x002 and df.loc[1, "tcp_seq"] == 0xDEADBEEF and df.loc[1, "tcp_win"] == 512
    assert df["payload_len"].tolist() == [48, 36, 48]
    assert df.probekit.payloads().tolist() == [PAYLOAD, b"X" * 36, PAYLOAD]


def test_snaplen_truncated_records(tmp_path):
    frame = ether(icmp4())
    df = read(tmp_path, W.pcap([(1, 0, frame[:60], len(frame))], snaplen=60))
    r = df.iloc[0]
    assert (r.caplen, r.wirelen, bool(r.truncated)) == (60, len(frame), True)
    assert r.payload_len == 48 and r.payload_caplen == 60 - 14 - 20 - 8
    assert df.probekit.payloads()[0] == PAYLOAD[:18]


def test_pcapng_sections_interfaces_resolutions(tmp_path):
    f4, f6 = ether(icmp4()), icmp6()
    data = b"".join([
        W.shb(), W.idb(1, tsresol=9, name="eth0"), W.idb(101, tsresol=3),
        W.epb(0, 1_700_000_000_123_456_789, f4, comment="first"), W.isb(0),
        W.epb(1, 1_700_000_000_123, f6),
        W.shb(big=True), W.idb(101, big=True, tsresol=0x80 | 20, tsoffset=1_600_000_000),
        W.epb(0, (5 << 20) + (1 << 19), f6, big=True), W.opb(0, 3 << 20, f6, big=True), W.spb(f6, big=True),
    ])
    df = read(tmp_path, data, "t.pcapng")
    assert df["iface"].tolist() == [0, 1, 2, 2, 2]
    assert df["linktype"].tolist() == [1, 101, 101, 101, 101]
    assert df["ts_ns"].tolist()[:4] == [1_700_000_000_123_456_789, 1_700_000_000_123_000_000,
                                        1_600_000_005_500_000_000, 1_600_000_003_000_000_000]
    assert pd.isna(df["ts_ns"].iloc[4]), "simple packet blocks carry no timestamp"
    assert df["l3"].tolist() == ["ipv4"] + ["ipv6"] * 4
    assert [i["name"] for i in df.attrs["interfaces"]] == ["eth0", None, None]
    assert [i["section"] for i in df.attrs["interfaces"]] == [0, 0, 1]


def test_pcapng_binary_resolution_is_exact(tmp_path):
    raw = (1_700_000_000 << 30) + 1  # 2^-30 s units: raw·10^9 overflows 64 bits; 1 unit is 0.93 ns, floors to 0
    data = W.shb() + W.idb(101, tsresol=0x80 | 30) + W.epb(0, raw, icmp6())
    df = read(tmp_path, data, "t.pcapng")
    assert df["ts_ns"].iloc[0] == (raw * 10**9) >> 30 == 1_700_000_000 * 10**9


def test_empty_pcapng_and_pcap(tmp_path):
    assert len(read(tmp_path, W.shb() + W.idb(1), "e.pcapng")) == 0
    assert len(read(tmp_path, W.pcap([]), "e.pcap")) == 0


@pytest.mark.parametrize("linktype,frame,l3", [
    (0, struct.pack("<I", 2) + icmp4(), "ipv4"),          # NULL, little-endian writer
    (0, struct.pack(">I", 2) + icmp4(), "ipv4"),          # NULL, big-endian writer
    (0, struct.pack("<I", 30) + icmp6(), "ipv6"),         # NULL, AF_INET6 (macOS/FreeBSD value)
    (108, struct.pack(">I", 24) + icmp6(), "ipv6"),       # LOOP
    (12, icmp4(), "ipv4"), (14, icmp6(), "ipv6"), (101, icmp4(), "ipv4"),
    (228, icmp4(), "ipv4"), (229, icmp6(), "ipv6"),
    (113, struct.pack(">HHH8sH", 0, 1, 6, b"\2" * 8, 0x0800) + icmp4(), "ipv4"),                  # SLL
    (276, struct.pack(">HHIHBB8s", 0x86DD, 0, 3, 1, 0, 6, b"\2" * 8) + icmp6(), "ipv6"),         # SLL2
    (226, bytes([2, 2]) + b"\0" * 22 + icmp4(), "ipv4"),                                         # IPNET
    (1, ether(icmp4(), tags=[(0x8100, 5)]), "ipv4"),
    (1, ether(icmp4(), tags=[(0x88A8, 100), (0x8100, 5)]), "ipv4"),
    (1, ether(icmp6(), et=0x86DD, tags=[(0x8100, 30), (0x8100, 20), (0x8100, 10)]), "ipv6"),
    (1, ether(struct.pack(">I", (16 << 12) | 0x100 | 64) + icmp4(), et=0x8847), "ipv4"),         # MPLS
])
def test_link_types(tmp_path, linktype, frame, l3):
    df = read(tmp_path, W.pcap([(1, 0, frame)], linktype=linktype))
    r = df.iloc[0]
    assert r.l3 == l3 and r.linktype == linktype and not r.malformed and not r.truncated
    assert r.icmp_type in (8, 128) and r.payload_len == 48
    assert df.probekit.payloads()[0] == PAYLOAD


@pytest.mark.parametrize("tags,vlan", [((), None), (((0x8100, 5),), 5), (((0x88A8, 100), (0x8100, 5)), 100),
                                       (((0x9100, 7), (0x8100, 5)), 7)])
def test_vlan_is_the_outermost_tag(tmp_path, tags, vlan):
    r = read(tmp_path, W.pcap([(1, 0, ether(icmp4(), tags=tags))])).iloc[0]
    assert (None if pd.isna(r.vlan) else int(r.vlan)) == vlan and r.icmp_seq == 7


def test_unknown_link_type_still_gets_a_row(tmp_path):
    df = read(tmp_path, W.pcap([(5, 0, b"\x01\x02\x03")], linktype=147))
    r = df.iloc[0]
    assert len(df) == 1 and r.l3 == "none" and r.ts_ns == 5 * 10**9 and r.caplen == 3
    assert pd.isna(r.src) and pd.isna(r.ip_proto)


def test_ipv4_options_and_tcp_options(tmp_path):
    opts = b"\x01\x01\x01\x00"  # NOP NOP NOP EOL: 4 option bytes, IHL 6
    topts = b"\x02\x04\x05\xb4\x01\x03\x03\x07\x00\x00\x00\x00"  # MSS, NOP, WS, pad: 12 bytes
    df = read(tmp_path, W.pcap([(1, 0, ether(icmp4(opts=opts))),
                                (2, 0, ether(tcp4(payload=b"hello", opts=topts)))]))
    assert df["ip_hdr_len"].tolist() == [24, 20]
    assert df.loc[1, "tcp_hdr_len"] == 32 and df.loc[1, "payload_len"] == 5
    assert df.probekit.payloads().tolist() == [PAYLOAD, b"hello"]


def test_ipv6_extension_headers_and_fragments(tmp_path):
    hop = bytes([60, 0]) + b"\x01\x04\0\0\0\0"           # hop-by-hop -> destination options
    dst = bytes([44, 0]) + b"\x01\x04\0\0\0\0"           # destination options -> fragment
    frag_first = struct.pack(">BBHI", 58, 0, 0 | 1, 0xABCDEF01)        # offset 0, M=1
    frag_later = struct.pack(">BBHI", 58, 0, (2 << 3), 0xABCDEF01)     # offset 16 bytes, M=0
    df = read(tmp_path, W.pcap([(1, 0, icmp6(ext=hop + dst + frag_first, first_nh=0)),
                                (2, 0, icmp6(ext=frag_later, first_nh=44))], linktype=101))
    a, b = df.iloc[0], df.iloc[1]
    assert (a.ip_proto, a.ip_hdr_len, a.ip_id, bool(a.ip_mf), a.frag_offset) == (58, 64, 0xABCDEF01, True, 0)
    assert a.icmp_type == 128 and a.payload_len == 48
    assert (b.ip_proto, b.frag_offset, bool(b.ip_mf)) == (58, 16, False)
    assert pd.isna(b.icmp_type), "a later fragment has no ICMPv6 header"


def test_ipv4_fragments(tmp_path):
    ip = dpkt.ip.IP(icmp4())
    ip.df, ip.mf, ip.offset = 0, 1, 0
    first = bytes(ip)
    ip.mf, ip.offset = 0, 3  # 3 units of 8 = 24 bytes, no MF
    later = bytes(ip)
    df = read(tmp_path, W.pcap([(1, 0, first), (2, 0, later)], linktype=101))
    assert df["ip_mf"].tolist() == [True, False] and df["frag_offset"].tolist() == [0, 24]
    assert df["icmp_type"].iloc[0] == 8 and pd.isna(df["icmp_type"].iloc[1])


def test_ethernet_padding_does_not_count_as_payload(tmp_path):
    frame = ether(tcp4(flags=dpkt.tcp.TH_RST, payload=b""))
    df = read(tmp_path, W.pcap([(1, 0, frame + b"\0" * (60 - len(frame)))]))
    assert df.loc[0, "payload_len"] == 0 and df.loc[0, "wirelen"] == 60


def test_out_of_order_and_far_future_timestamps(tmp_path):
    frames = [(4_000_000_000, 5, ether(icmp4())), (2_147_483_648, 0, ether(icmp4())), (0, 0, ether(icmp4()))]
    df = read(tmp_path, W.pcap(frames))
    assert df["ts_ns"].tolist() == [4_000_000_000_000_005_000, 2_147_483_648 * 10**9, 0]


def test_kernels_give_the_same_table_as_plain_python(tmp_path):
    """The compiled kernels and the same functions run as plain Python (NUMBA_DISABLE_JIT=1) agree."""
    import os
    import subprocess
    import sys
    root = Path(__file__).resolve().parents[1]
    caps = [root / "captures" / "lossy.pcapng", root / "captures" / "port-closed.pcap"]
    code = ("import sys, probekit\n"
            "from probekit.schema import packets_for_storage\n"
            "for p in sys.argv[1:]:\n"
            "    df = probekit.read_capture(p)\n"
            "    packets_for_storage(df).to_parquet(p.replace('/', '_') + '.parquet')\n")
    for jit in ("0", "1"):
        d = tmp_path / jit
        d.mkdir()
        subprocess.run([sys.executable, "-c", code, *map(str, caps)], cwd=d, check=True,
                       env=dict(os.environ, NUMBA_DISABLE_JIT=jit))
    for p in caps:
        name = str(p).replace("/", "_") + ".parquet"
        a, b = pd.read_parquet(tmp_path / "0" / name), pd.read_parquet(tmp_path / "1" / name)
        assert a.equals(b), p.name
