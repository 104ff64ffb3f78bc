"""The one link-type registry: LINKTYPE_ value → name and how the decoder finds the network layer.

Add a link type here and every backend and the decoder know it. ``kind`` is one of the L2_* codes
the compiled decoder switches on; ``None`` kind means "give the frame a row with what is known".
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
)}


def linktype_name(value: int) -> str:
    lt = LINKTYPES.get(int(value))
    return lt.name if lt else f"LINKTYPE_{int(value)}"


def decoder_kind(value: int) -> int:
    lt = LINKTYPES.get(int(value))
    return lt.kind if lt else L2_UNKNOWN
