"""The one registry of encapsulations (tunnels) the decoder opens, like the link-type registry.

Each entry names the tunnel category written to the packets table's ``tunnel`` column
(``probekit.schema.TUNNEL_KINDS``), how the decoder recognises it and what ``tunnel_id`` holds.
The compiled decoder (``_decode.py``) switches on the ``code`` values and the port numbers defined
here; the dpkt reference backend reads the same table.

Decapsulation happens only when the encapsulation header is whole and consistent with the outer
length; a cut header flags the row ``truncated``, one that claims more bytes than its packet holds
flags it ``malformed`` — the row then describes the outer packet (no exception, nothing invented).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..schema import TUNNEL_KINDS

__all__ = ["Encap", "ENCAPS", "MAX_DEPTH", "UDP_VXLAN", "UDP_GENEVE", "UDP_GTPU", "UDP_GTPC", "UDP_TEREDO", "UDP_AYIYA",
           "UDP_GRE", "UDP_TUNNEL_PORTS", "GENEVE_CLASS_AWS", "GWLB_FLOW_COOKIE", "aruba_gre"]

MAX_DEPTH = 8          # nested encapsulations opened per frame, at most

UDP_VXLAN = 4789       # RFC 7348, destination port
UDP_GENEVE = 6081      # RFC 8926, destination port
UDP_GTPU = 2152        # 3GPP TS 29.281, either port
UDP_GTPC = 2123        # GTPv1-C: Zeek's gtpv1_ports decapsulate a G-PDU on it too
UDP_TEREDO = 3544      # RFC 4380, either port
UDP_AYIYA = 5072       # AYIYA (draft-massar-v6ops-ayiya), either port
UDP_GRE = 4754         # RFC 8086 GRE-in-UDP, either port
# The UDP ports of Zeek's packet analyzers (scripts/base/packet-protocols/*/main.zeek register_for_ports):
# a datagram to or from one is opened by that port's analyzer alone. Any other datagram is tried with
# Zeek's protocol detection, AYIYA's (payload bytes 1-2 are 0x52 0x11) and then Teredo's (DetectProtocol:
# an IPv6 header with a 2001:0::/32 address, or the indications before one).
UDP_TUNNEL_PORTS = (UDP_VXLAN, UDP_GENEVE, UDP_GTPU, UDP_GTPC, UDP_TEREDO, UDP_AYIYA, UDP_GRE)

# AWS Gateway Load Balancer's GENEVE options (option class 0x0108, Amazon): type 1 the GWLB endpoint
# (VPC endpoint) id, 64 bits; type 2 the attachment id, 64 bits; type 3 the flow cookie, 32 bits
# ("Integrate your custom logic or appliance with AWS Gateway Load Balancer", AWS networking blog).
GENEVE_CLASS_AWS = 0x0108
GWLB_FLOW_COOKIE = 3


def aruba_gre(ptype: int) -> bool:
    """GRE protocol types of Aruba access-point tunnels (an 802.11 frame follows), as Zeek's GRE.cc
    tests them: 0x8200-style types with the low nibble 0, 0x8300-0x8370, and 0x9000."""
    return ((ptype & 0x8200) == 0x8200 and ptype & 0x0F == 0) or \
        ((ptype & 0x8300) == 0x8300 and ptype & 0x0F == 0 and ptype <= 0x8370) or ptype == 0x9000


@dataclass(frozen=True)
class Encap:
    name: str           # value of the ``tunnel`` column
    code: int           # index into schema.TUNNEL_KINDS (what the kernel writes)
    match: str          # how the decoder recognises it
    tunnel_id: str      # what ``tunnel_id`` holds for it
    doc: str


def _code(name: str) -> int:
    return TUNNEL_KINDS.index(name)


ENCAPS: dict[str, Encap] = {e.name: e for e in (
    Encap("vxlan", _code("vxlan"), f"UDP destination port {UDP_VXLAN}", "VNI (24 bits)",
          "RFC 7348: 8-byte header, then an Ethernet frame (AWS VPC Traffic Mirroring)"),
    Encap("geneve", _code("geneve"), f"UDP destination port {UDP_GENEVE}, version 0", "VNI (24 bits)",
          "RFC 8926: 8 bytes + options (length field x 4 bytes, skipped), then the protocol type "
          "(0x6558 Ethernet, 0x0800/0x86DD IP, ...) (AWS Gateway Load Balancer: its flow-cookie option, "
          "class 0x0108 type 3, goes to gwlb_flow_cookie)"),
    Encap("gre", _code("gre"), f"IP protocol 47, or UDP port {UDP_GRE} (RFC 8086 GRE-in-UDP, either port); "
          "version 0 or 1", "GRE key (version 0), call id (version 1)",
          "RFC 2784/2890/1701: checksum, routing (SREs walked), key and sequence fields by their bits; "
          "transparent Ethernet bridging (0x6558), IPv4, IPv6, MPLS or any ethertype; Aruba's protocol "
          "types (aruba_gre: 0x8200-0x8370, 0x9000) carry an 802.11 frame; version 1 (PPTP) carries PPP"),
    Encap("erspan", _code("erspan"), "GRE protocol 0x88BE (type I without, type II with the sequence bit) "
          "or 0x22EB (type III)", "ERSPAN session id (10 bits; <NA> for type I)",
          "Cisco ERSPAN: type I none, type II 8 bytes, type III 12 (+8 platform-specific with the O bit) "
          "before the mirrored Ethernet frame (type III frame type 2: an IP packet)"),
    Encap("ipip", _code("ipip"), "IP protocol 4 (IPv4 inside IPv4 or IPv6)", "none",
          "RFC 2003 IP-in-IP, RFC 2473 IPv4-in-IPv6"),
    Encap("6in4", _code("6in4"), "IP protocol 41 inside IPv4", "none", "RFC 4213 IPv6-in-IPv4 (6in4, 6to4, ISATAP)"),
    Encap("ip6ip6", _code("ip6ip6"), "IP protocol 41 inside IPv6", "none", "RFC 2473 IPv6-in-IPv6"),
    Encap("teredo", _code("teredo"), f"UDP port {UDP_TEREDO} (either), or any UDP datagram Zeek's Teredo "
          "detection accepts; payload an IPv6 header", "none",
          "RFC 4380: optional authentication indicator (0x0001, with client id, auth value, nonce, "
          "confirmation) and origin indicator (0x0000, 8 bytes) before the IPv6 packet; a bubble (next "
          "header 59, no payload) is opened too and gives an IPv6 row without L4"),
    Encap("gtpu", _code("gtpu"), f"UDP port {UDP_GTPU} or {UDP_GTPC} (either), GTPv1 G-PDU (type 255)",
          "TEID (32 bits)",
          "3GPP TS 29.281: 8 bytes, +4 when E/S/PN is set, then the extension header chain (length x 4 "
          "bytes each), then an IPv4 or IPv6 packet; signalling messages are not decapsulated"),
    Encap("ayiya", _code("ayiya"), f"UDP port {UDP_AYIYA} (either), or payload bytes 1-2 0x52 0x11 (Zeek's "
          "detection)", "none",
          "AYIYA (Zeek's AYIYA.cc): 8 bytes + identity (2^(byte 0 >> 4) bytes) + signature ((byte 1 >> 4) "
          "x 4 bytes); opcode 1 (forward) with next header 4 or 41 carries an IP packet, other opcodes "
          "none"),
)}

assert sorted(e.code for e in ENCAPS.values()) == list(range(1, len(TUNNEL_KINDS)))
