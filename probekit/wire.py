"""Probe packets as bytes, many at a time.

One packet of each layout (kind × IP version × size × link type) is built with dpkt as a template;
the fields that vary per packet (addresses, identifiers, ports, sequence numbers, payload) are then
written into an (n, frame_len) array with numpy and every checksum (IPv4 header, ICMP, ICMPv6, TCP
with its pseudo-header) is computed over the whole array at once. ``build_one`` builds the same
packet with dpkt alone; tests check the two agree byte for byte.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import dpkt
import numpy as np

__all__ = ["Kind", "Layout", "build_frames", "build_one", "checksum16"]


class Kind:
    ICMP_REQUEST = 0
    ICMP_REPLY = 1
    SYN = 2          # prober -> target, carries (size - 20) payload bytes
    SYN_ACK = 3      # target -> prober, ack = ISN + 1, MSS option as a Linux target answers a bare SYN
    RST = 4          # prober -> target, seq = ISN + 1
    RST_ACK = 5      # closed port: seq 0, ack = ISN + 1 + payload
    NAMES = ("icmp_request", "icmp_reply", "syn", "syn_ack", "rst", "rst_ack")


LINK_ETHERNET = 1
LINK_SLL2 = 276
MSS_OPTION = b"\x02\x04\x05\xb4"  # MSS 1460
SYNACK_WINDOW = 64240
SYN_WINDOW = 65535
ETHERTYPE = {4: 0x0800, 6: 0x86DD}


@dataclass(frozen=True)
class Layout:
    kind: int
    family: int          # 4 or 6
    size: int            # probe size (ICMP message / TCP segment of the request)
    link: int            # LINK_ETHERNET or LINK_SLL2

    @property
    def l2_len(self) -> int:
        return 14 if self.link == LINK_ETHERNET else 20

    @property
    def ip_len(self) -> int:
        return 20 if self.family == 4 else 40

    @property
    def l4_len(self) -> int:
        """Bytes after the IP header."""
        k = self.kind
        if k in (Kind.ICMP_REQUEST, Kind.ICMP_REPLY, Kind.SYN):
            return self.size
        if k == Kind.SYN_ACK:
            return 24
        return 20

    @property
    def frame_len(self) -> int:
        return self.l2_len + self.ip_len + self.l4_len


def checksum16(block: np.ndarray, extra: np.ndarray | int = 0) -> np.ndarray:
    """Internet checksum of each row of a uint8 (n, m) array, plus a pre-summed pseudo-header."""
    if block.shape[1] % 2:
        block = np.concatenate([block, np.zeros((block.shape[0], 1), np.uint8)], axis=1)
    words = (block[:, 0::2].astype(np.uint64) << np.uint64(8)) | block[:, 1::2]
    s = words.sum(axis=1, dtype=np.uint64) + np.asarray(extra, dtype=np.uint64)
    for _ in range(3):
        s = (s & np.uint64(0xFFFF)) + (s >> np.uint64(16))
    return (~s.astype(np.uint16)) & np.uint16(0xFFFF)


def _put(block, off, values, width):
    v = np.asarray(values, dtype=np.uint64)
    for i in range(width):
        block[:, off + i] = ((v >> np.uint64(8 * (width - 1 - i))) & np.uint64(0xFF)).astype(np.uint8)


def _addr_sum(addr: np.ndarray) -> np.ndarray:
    """Sum of the 16-bit words of each address row (for pseudo-headers)."""
    return ((addr[:, 0::2].astype(np.uint64) << np.uint64(8)) | addr[:, 1::2]).sum(axis=1, dtype=np.uint64)


def _template(lay: Layout) -> bytes:
    """One packet of this layout built with dpkt (fields that vary are zero)."""
    plen = lay.size - (8 if lay.kind in (Kind.ICMP_REQUEST, Kind.ICMP_REPLY) else 20)
    k = lay.kind
    if k in (Kind.ICMP_REQUEST, Kind.ICMP_REPLY):
        echo = dpkt.icmp.ICMP.Echo(id=0, seq=0, data=b"\0" * plen)
        if lay.family == 4:
            l4 = dpkt.icmp.ICMP(type=8 if k == Kind.ICMP_REQUEST else 0, code=0, data=echo)
        else:
            l4 = dpkt.icmp6.ICMP6(type=128 if k == Kind.ICMP_REQUEST else 129, code=0, data=bytes(echo))
        proto = 1 if lay.family == 4 else 58
    else:
        flags, data, opts, win = {
            Kind.SYN: (dpkt.tcp.TH_SYN, b"\0" * plen, b"", SYN_WINDOW),
            Kind.SYN_ACK: (dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK, b"", MSS_OPTION, SYNACK_WINDOW),
            Kind.RST: (dpkt.tcp.TH_RST, b"", b"", 0),
            Kind.RST_ACK: (dpkt.tcp.TH_RST | dpkt.tcp.TH_ACK, b"", b"", 0),
        }[k]
        l4 = dpkt.tcp.TCP(sport=0, dport=0, seq=0, ack=0, flags=flags, win=win, opts=opts, data=data)
        l4.off = 5 + len(opts) // 4
        proto = 6
    l4b = bytes(l4)
    if lay.family == 4:
        ip = dpkt.ip.IP(p=proto, ttl=64, id=0, df=1, src=b"\0" * 4, dst=b"\0" * 4, data=l4b)
        ip.len = 20 + len(l4b)
    else:
        ip = dpkt.ip6.IP6(nxt=proto, hlim=64, src=b"\0" * 16, dst=b"\0" * 16, data=l4b)
        ip.plen = len(l4b)
        ip.extension_hdrs = {}
    ipb = ip.pack_hdr() + l4b
    if lay.link == LINK_ETHERNET:
        l2 = dpkt.ethernet.Ethernet(dst=b"\0" * 6, src=b"\0" * 6, type=ETHERTYPE[lay.family]).pack_hdr()
    else:
        l2 = struct.pack(">HHIHBB8s", ETHERTYPE[lay.family], 0, 0, 1, 0, 6, b"\0" * 8)
    frame = l2 + ipb
    assert len(frame) == lay.frame_len, (lay, len(frame))
    return frame


def build_frames(lay: Layout, *, src: np.ndarray, dst: np.ndarray, ip_id: np.ndarray, ttl: np.ndarray,
                 mac_src: np.ndarray, mac_dst: np.ndarray, ifindex: np.ndarray | None = None,
                 outgoing: np.ndarray | None = None, icmp_id=None, icmp_seq=None, payload=None,
                 sport=None, dport=None, seq=None, ack=None) -> np.ndarray:
    """(n, frame_len) uint8 frames of one layout. Address arrays are (n, 4|16) uint8, MACs (n, 6)."""
    n = src.shape[0]
    block = np.empty((n, lay.frame_len), np.uint8)
    block[:] = np.frombuffer(_template(lay), np.uint8)
    if lay.link == LINK_ETHERNET:
        block[:, 0:6] = mac_dst
        block[:, 6:12] = mac_src
    else:
        if ifindex is None or outgoing is None:
            raise ValueError("SLL2 frames need ifindex and outgoing")
        _put(block, 4, ifindex, 4)
        block[:, 10] = np.where(outgoing, 4, 0)     # PACKET_OUTGOING / PACKET_HOST
        block[:, 12:18] = mac_src
    o = lay.l2_len
    if lay.family == 4:
        _put(block, o + 4, ip_id, 2)
        block[:, o + 8] = ttl
        block[:, o + 12:o + 16] = src
        block[:, o + 16:o + 20] = dst
        block[:, o + 10:o + 12] = 0
        _put(block, o + 10, checksum16(block[:, o:o + 20]), 2)
    else:
        block[:, o + 7] = ttl
        block[:, o + 8:o + 24] = src
        block[:, o + 24:o + 40] = dst
    q = o + lay.ip_len
    l4n = lay.l4_len
    if lay.kind in (Kind.ICMP_REQUEST, Kind.ICMP_REPLY):
        _put(block, q + 4, icmp_id, 2)
        _put(block, q + 6, icmp_seq, 2)
        block[:, q + 8:q + l4n] = payload
        block[:, q + 2:q + 4] = 0
        extra = 0 if lay.family == 4 else _addr_sum(src) + _addr_sum(dst) + np.uint64(l4n) + np.uint64(58)
        _put(block, q + 2, checksum16(block[:, q:q + l4n], extra), 2)
    else:
        _put(block, q, sport, 2)
        _put(block, q + 2, dport, 2)
        _put(block, q + 4, seq, 4)
        _put(block, q + 8, ack, 4)
        if lay.kind == Kind.SYN:
            block[:, q + 20:q + l4n] = payload
        block[:, q + 16:q + 18] = 0
        extra = _addr_sum(src) + _addr_sum(dst) + np.uint64(6) + np.uint64(l4n)
        _put(block, q + 16, checksum16(block[:, q:q + l4n], extra), 2)
    return block


def build_one(lay: Layout, *, src: bytes, dst: bytes, ip_id: int, ttl: int, mac_src: bytes, mac_dst: bytes,
              ifindex: int = 0, outgoing: bool = True, icmp_id: int = 0, icmp_seq: int = 0, payload: bytes = b"",
              sport: int = 0, dport: int = 0, seq: int = 0, ack: int = 0) -> bytes:
    """The same packet as ``build_frames`` builds, made by dpkt objects alone (the reference)."""
    k = lay.kind
    if k in (Kind.ICMP_REQUEST, Kind.ICMP_REPLY):
        echo = dpkt.icmp.ICMP.Echo(id=icmp_id, seq=icmp_seq, data=payload)
        if lay.family == 4:
            l4 = dpkt.icmp.ICMP(type=8 if k == Kind.ICMP_REQUEST else 0, code=0, data=echo)
        else:
            l4 = dpkt.icmp6.ICMP6(type=128 if k == Kind.ICMP_REQUEST else 129, code=0, data=echo)
        proto = 1 if lay.family == 4 else 58
    else:
        flags, opts, win = {Kind.SYN: (dpkt.tcp.TH_SYN, b"", SYN_WINDOW),
                            Kind.SYN_ACK: (dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK, MSS_OPTION, SYNACK_WINDOW),
                            Kind.RST: (dpkt.tcp.TH_RST, b"", 0),
                            Kind.RST_ACK: (dpkt.tcp.TH_RST | dpkt.tcp.TH_ACK, b"", 0)}[k]
        l4 = dpkt.tcp.TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags, win=win, opts=opts,
                          data=payload if k == Kind.SYN else b"")
        l4.off = 5 + len(opts) // 4
        proto = 6
    if lay.family == 4:
        ip = dpkt.ip.IP(p=proto, ttl=ttl, id=ip_id, df=1, src=src, dst=dst, data=l4)
    else:
        ip = dpkt.ip6.IP6(nxt=proto, hlim=ttl, src=src, dst=dst, data=l4)
        ip.extension_hdrs = {}
        ip.plen = len(bytes(l4))
    ipb = bytes(ip)
    if lay.link == LINK_ETHERNET:
        return bytes(dpkt.ethernet.Ethernet(dst=mac_dst, src=mac_src, type=ETHERTYPE[lay.family])) + ipb
    return struct.pack(">HHIHBB8s", ETHERTYPE[lay.family], 0, ifindex, 1, 4 if outgoing else 0, 6,
                       mac_src + b"\0\0") + ipb
