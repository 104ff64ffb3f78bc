"""The one link-type registry: LINKTYPE_ value → name and how the decoder finds the network layer.

Add a link type here and every backend and the decoder know it. ``kind`` is one of the L2_* codes
the compiled decoder switches on; ``None`` kind means "give the frame a row with what is known".

Within Ethernet (and wherever an ethertype is found) the decoder also walks 802.1Q/802.1ad/QinQ tags,
MPLS label stacks (with Ethernet pseudowires after a control word), PBB 802.1ah I-tags (0x88E7),
VN-Tag (0x8926), Cisco FabricPath (0x8903), NSH (0x894F), PPPoE sessions (0x8864), MACsec SecTAGs
(0x88E5; an encrypted payload gives l3 ``encrypted``), Cisco MetaData (0x8909) and 802.2 LLC/SNAP.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LinkType", "LINKTYPES", "linktype_name", "decoder_kind"]

# Decoder kinds (small ints the compiled kernel switches on).
L2_UNKNOWN = 0
L2_ETHER = 1      # 14-byte Ethernet II, then 802.1Q/802.1ad/QinQ tags, MPLS
L2_SLL = 2        # Linux cooked v1, 16 bytes, protocol at 14
L2_SLL2 = 3       # Linux cooked v2, 20 bytes, protocol at 0
L2_NULL = 4       # BSD loopback: 4-byte address family in the writer's byte order
L2_LOOP = 5       # OpenBSD loopback: 4-byte address family, network byte order
L2_RAW = 6        # raw IP, version nibble decides
L2_IPV4 = 7       # raw IPv4 (LINKTYPE_IPV4)
L2_IPV6 = 8       # raw IPv6 (LINKTYPE_IPV6)
L2_IPNET = 9      # Solaris ipnet, 24-byte header, family at byte 1
L2_PPP = 10       # PPP (RFC 1661), optional FF 03 address/control, 1- or 2-byte protocol
L2_CHDLC = 11     # Cisco HDLC: address, control, 2-byte ethertype
L2_FRELAY = 12    # frame relay (RFC 2427): 2-byte Q.922 address, control 03, NLPID (CC, 8E, 80 = SNAP)
L2_FDDI = 13      # FDDI: frame control + 2 MAC addresses (13 bytes), then 802.2 LLC/SNAP
L2_ARCNET = 14    # ARCnet (BSD): 3-byte header, 6 (10 for exceptions) for RFC 1201 types
L2_ARCNET_LINUX = 15  # ARCnet (Linux): 5-byte header, 8 for RFC 1201 types
L2_80211 = 16     # IEEE 802.11 MAC header (data frames), LLC/SNAP; protected frames are encrypted
L2_RADIOTAP = 17  # radiotap header (length at bytes 2-3, little endian), then 802.11
L2_PPI = 18       # PPI header (length at 2-3, DLT at 4-7, little endian), then that link type
L2_NFLOG = 19     # Linux NFLOG: 4-byte header, TLVs (host-order length), the packet in TLV 9
L2_IPOIB = 20     # IP over InfiniBand: 40-byte pseudo-header (hardware addresses), 2-byte type, 2 reserved
L2_PKTAP = 21     # Apple PKTAP: header length (LE32) and DLT (LE32) first, then that link type


@dataclass(frozen=True)
class LinkType:
    value: int
    name: str
    kind: int
    doc: str


LINKTYPES: dict[int, LinkType] = {lt.value: lt for lt in (
    LinkType(0, "NULL", L2_NULL, "BSD loopback (4-byte host-order AF_ value)"),
    LinkType(1, "ETHERNET", L2_ETHER, "Ethernet II with 802.1Q/802.1ad/QinQ tags and MPLS"),
    LinkType(12, "RAW(12)", L2_RAW, "raw IP under the platform DLT_RAW value 12"),
    LinkType(14, "RAW(14)", L2_RAW, "raw IP under the platform DLT_RAW value 14 (OpenBSD)"),
    LinkType(101, "RAW", L2_RAW, "raw IPv4 or IPv6, by the version nibble"),
    LinkType(108, "LOOP", L2_LOOP, "OpenBSD loopback (4-byte network-order AF_ value)"),
    LinkType(113, "LINUX_SLL", L2_SLL, "Linux cooked capture v1 (tcpdump -i any before libpcap 1.10)"),
    LinkType(226, "IPNET", L2_IPNET, "Solaris ipnet"),
    LinkType(228, "IPV4", L2_IPV4, "raw IPv4"),
    LinkType(229, "IPV6", L2_IPV6, "raw IPv6"),
    LinkType(276, "LINUX_SLL2", L2_SLL2, "Linux cooked capture v2 (tcpdump -i any, libpcap >= 1.10)"),
    LinkType(7, "ARCNET_BSD", L2_ARCNET, "ARCnet, BSD header (RFC 1051/1201)"),
    LinkType(9, "PPP", L2_PPP, "PPP (RFC 1661), with or without the HDLC address/control bytes"),
    LinkType(10, "FDDI", L2_FDDI, "FDDI with 802.2 LLC/SNAP"),
    LinkType(50, "PPP_HDLC", L2_PPP, "PPP in HDLC-like framing (RFC 1662)"),
    LinkType(104, "C_HDLC", L2_CHDLC, "Cisco HDLC"),
    LinkType(105, "IEEE802_11", L2_80211, "IEEE 802.11 wireless LAN"),
    LinkType(107, "FRELAY", L2_FRELAY, "frame relay (RFC 2427 multiprotocol encapsulation)"),
    LinkType(127, "IEEE802_11_RADIOTAP", L2_RADIOTAP, "radiotap + 802.11"),
    LinkType(129, "ARCNET_LINUX", L2_ARCNET_LINUX, "ARCnet, Linux header"),
    LinkType(192, "PPI", L2_PPI, "Per-Packet Information header + 802.11 (or the DLT it names)"),
    LinkType(239, "NFLOG", L2_NFLOG, "Linux netfilter NFLOG"),
    LinkType(242, "IPOIB", L2_IPOIB, "IP over InfiniBand (RFC 4391)"),
    LinkType(258, "PKTAP", L2_PKTAP, "Apple PKTAP (macOS tcpdump -k), Ethernet inside"),
)}


def linktype_name(value: int) -> str:
    lt = LINKTYPES.get(int(value))
    return lt.name if lt else f"LINKTYPE_{int(value)}"


def decoder_kind(value: int) -> int:
    lt = LINKTYPES.get(int(value))
    return lt.kind if lt else L2_UNKNOWN
