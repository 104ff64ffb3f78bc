"""Hand-built L3/L2 frames for format tests (dpkt and struct, independent of probekit's writers):
fixed addresses, a known 48-byte payload, ICMP echo, TCP, ICMPv6 and Ethernet with optional VLAN tags."""
from __future__ import annotations

import socket
import struct

import dpkt

__all__ = ["A4", "A6", "B4", "B6", "PAYLOAD", "ether", "icmp4", "icmp6", "tcp4"]

A4, B4 = socket.inet_aton("192.0.2.10"), socket.inet_aton("198.51.100.7")
A6, B6 = socket.inet_pton(socket.AF_INET6, "fd00::a"), socket.inet_pton(socket.AF_INET6, "fd00:1::7")
PAYLOAD = bytes(range(48))


def icmp4(payload=PAYLOAD, ident=0x1234, seq=7, opts=b"") -> bytes:
    icmp = dpkt.icmp.ICMP(type=8, code=0, data=dpkt.icmp.ICMP.Echo(id=ident, seq=seq, data=payload))
    ip = dpkt.ip.IP(src=A4, dst=B4, p=1, ttl=61, id=999, df=1, data=icmp, opts=opts)
    ip.hl = 5 + len(opts) // 4
    return bytes(ip)


def tcp4(flags=dpkt.tcp.TH_SYN, payload=b"X" * 36, opts=b"") -> bytes:
    tcp = dpkt.tcp.TCP(sport=40001, dport=8080, seq=0xDEADBEEF, ack=0, flags=flags, win=512, opts=opts,
                       data=payload)
    tcp.off = 5 + len(opts) // 4
    return bytes(dpkt.ip.IP(src=A4, dst=B4, p=6, data=tcp))


def icmp6(payload=PAYLOAD, ext=b"", first_nh=58) -> bytes:
    icmp = bytes(dpkt.icmp6.ICMP6(type=128, code=0, data=struct.pack(">HH", 0x4321, 9) + payload))
    body = ext + icmp
    return struct.pack(">IHBB16s16s", 0x60000000, len(body), first_nh, 64, A6, B6) + body


def ether(l3: bytes, et=0x0800, tags=()) -> bytes:
    hdr = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02"
    for tpid, vid in tags:
        hdr += struct.pack(">HH", tpid, vid)
    return hdr + struct.pack(">H", et) + l3
