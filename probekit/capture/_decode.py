"""The compiled per-frame decoder: link layer → (tunnels →) network → transport, and the header an
ICMP/ICMPv6 error quotes.

Written in the subset of Python that numba compiles (``probekit._jit.njit``); with NUMBA_DISABLE_JIT=1
or without numba the same functions run as plain Python, slowly but identically. Integers are
widened with ``np.int64`` before shifting so that uint8 arithmetic never wraps in either mode.

The kernel writes one column per frame into a few stacked arrays; the row of each field is a named
constant below (R8_*, R16_*, R32_*, R64_*, RA_*), the one place ``_table.py`` reads them from.
"""
from __future__ import annotations

import numpy as np

from .._jit import njit
from ..schema import TUNNEL_KINDS
from .encaps import (
    GENEVE_CLASS_AWS,
    GWLB_FLOW_COOKIE,
    MAX_DEPTH,
    UDP_AYIYA,
    UDP_GENEVE,
    UDP_GRE,
    UDP_GTPC,
    UDP_GTPU,
    UDP_TEREDO,
    UDP_VXLAN,
)
from .linktypes import (
    L2_80211,
    L2_ARCNET,
    L2_ARCNET_LINUX,
    L2_CHDLC,
    L2_ETHER,
    L2_FDDI,
    L2_FRELAY,
    L2_IPNET,
    L2_IPOIB,
    L2_IPV4,
    L2_IPV6,
    L2_LOOP,
    L2_NFLOG,
    L2_NULL,
    L2_PKTAP,
    L2_PPI,
    L2_PPP,
    L2_RADIOTAP,
    L2_RAW,
    L2_SLL,
    L2_SLL2,
)

T_NONE = TUNNEL_KINDS.index("none")
T_VXLAN = TUNNEL_KINDS.index("vxlan")
T_GENEVE = TUNNEL_KINDS.index("geneve")
T_GRE = TUNNEL_KINDS.index("gre")
T_ERSPAN = TUNNEL_KINDS.index("erspan")
T_IPIP = TUNNEL_KINDS.index("ipip")
T_6IN4 = TUNNEL_KINDS.index("6in4")
T_IP6IP6 = TUNNEL_KINDS.index("ip6ip6")
T_TEREDO = TUNNEL_KINDS.index("teredo")
T_GTPU = TUNNEL_KINDS.index("gtpu")
T_AYIYA = TUNNEL_KINDS.index("ayiya")

# internal link kind: "the payload's ethertype is known" (tunnel payloads, GRE protocol types)
K_ETYPE = 100

# ------------------------------------------------------------------------ output rows (one place)
R8_L3, R8_PROTO, R8_TTL, R8_ICMP_TYPE, R8_ICMP_CODE, R8_TCP_HDR_LEN, R8_FLAGS, R8_TUNNEL, R8_DEPTH, \
    R8_OUTER_TTL, R8_OUTER_L3, R8_Q_PROTO = range(12)
N8 = 12
R16_VLAN, R16_IP_HDR_LEN, R16_FRAG, R16_ICMP_ID, R16_ICMP_SEQ, R16_SPORT, R16_DPORT, R16_TCP_FLAGS, \
    R16_TCP_WIN, R16_Q_SPORT, R16_Q_DPORT, R16_Q_ICMP_ID, R16_Q_ICMP_SEQ = range(13)
N16 = 13
R32_IP_LEN, R32_IP_ID, R32_TCP_SEQ, R32_TCP_ACK, R32_PRESENT, R32_PAYLOAD_LEN, R32_PAYLOAD_CAPLEN, \
    R32_TUNNEL_ID, R32_Q_TCP_SEQ, R32_MTU, R32_GWLB_COOKIE = range(11)
N32 = 11
R64_PAYLOAD_OFF = 0
N64 = 1
# address rows: (hi, lo) 64-bit halves; IPv4 in lo (the hi half of an IPv4 address is never written
# nor read: the row's family says which halves count)
RA_SRC, RA_DST, RA_OUTER_SRC, RA_OUTER_DST, RA_Q_SRC, RA_Q_DST = 0, 2, 4, 6, 8, 10
NA = 12
# what _ipv4/_ipv6 write (their ``ra`` argument): the row's own IP fields (RA_SRC), a quoted header's
# (RA_Q_SRC), the outermost header of a tunnel (RA_OUTER_SRC: addresses and TTL only), or nothing
# (W_NONE: a tunnel header between the outermost and the innermost)
W_NONE = -1

# Bits of the R8_FLAGS byte
F_TRUNC = 1
F_MALFORMED = 2
F_DF = 4
F_MF = 8
F_OFFLOAD = 16

# Bits of the per-frame "present" word: which optional columns the decoder filled.
P_VLAN = 1 << 0
P_SRC = 1 << 1
P_IPID = 1 << 2
P_IPV4FLAGS = 1 << 3    # ip_df
P_FRAG = 1 << 4         # ip_mf, frag_offset
P_ICMP = 1 << 5         # icmp_type, icmp_code
P_ICMPID = 1 << 6       # icmp_id
P_PORTS = 1 << 7        # sport, dport
P_TCP = 1 << 8          # tcp_seq
P_PAYLOAD = 1 << 9      # payload_len
P_PAYOFF = 1 << 10      # payload_off, payload_caplen
P_DST = 1 << 11
P_PROTO = 1 << 12       # ip_proto
P_IPLEN = 1 << 13       # ip_len
P_IPHL = 1 << 14        # ip_hdr_len
P_TTL = 1 << 15         # ttl
P_TID = 1 << 16         # tunnel_id
P_OUTER = 1 << 17       # outer_src, outer_dst, outer_ttl
P_QSRC = 1 << 18
P_QDST = 1 << 19
P_QPROTO = 1 << 20
P_QPORTS = 1 << 21
P_QICMPID = 1 << 22
P_QSEQ = 1 << 23
P_MTU = 1 << 24
P_QV6 = 1 << 25         # the quoted header is IPv6
P_TACK = 1 << 26        # tcp_ack
P_TFLAGS = 1 << 27      # tcp_flags, tcp_hdr_len
P_TWIN = 1 << 28        # tcp_win
P_ICMPSEQ = 1 << 29     # icmp_seq
P_GWLB = 1 << 30        # gwlb_flow_cookie
P_IP = P_SRC | P_DST | P_PROTO | P_IPLEN | P_IPHL | P_TTL
KEEP_ACROSS_TUNNEL = P_VLAN | P_TID | P_OUTER | P_GWLB   # what an inner layer does not reset

# l3 codes (index into schema.L3_KINDS)
L3_IPV4 = 0
L3_IPV6 = 1
L3_ARP = 2
L3_OTHER = 3
L3_NONE = 4
L3_ENCRYPTED = 5


@njit(nogil=True)
def _be16(b, o):
    return (np.int64(b[o]) << 8) | np.int64(b[o + 1])


@njit(nogil=True)
def _le32(b, o):
    return ((np.int64(b[o + 3]) << 24) | (np.int64(b[o + 2]) << 16)
            | (np.int64(b[o + 1]) << 8) | np.int64(b[o]))


@njit(nogil=True)
def _be32(b, o):
    return ((np.int64(b[o]) << 24) | (np.int64(b[o + 1]) << 16)
            | (np.int64(b[o + 2]) << 8) | np.int64(b[o + 3]))


@njit(nogil=True)
def _be64(b, o):
    return (np.uint64(_be32(b, o)) << np.uint64(32)) | np.uint64(_be32(b, o + 4))


@njit(nogil=True)
def _ver_et(b, p, end):
    """ethertype chosen by an IP version nibble; -2 when it is neither 4 nor 6, -1 when cut."""
    if p >= end:
        return -1
    v = np.int64(b[p]) >> 4
    if v == 4:
        return 0x0800
    if v == 6:
        return 0x86DD
    return -2


# ----------------------------------------------------------------------------------- link layer
ET_NONE = -1        # nothing decodable (cut, or unknown link type)
ET_OTHER = -2       # a known link layer carrying something else
ET_ENCRYPTED = -3   # the link layer hides its payload (MACsec with encryption, 802.11 protected)
MAX_LINK_STEPS = 64


@njit(nogil=True)
def _le16(b, o):
    return (np.int64(b[o + 1]) << 8) | np.int64(b[o])


@njit(nogil=True)
def _llc(buf, p, end):
    """802.2 LLC at p: SNAP (AA AA 03, OUI, type) gives its ethertype. Returns (ethertype, p, flags)."""
    if p + 3 > end:
        return ET_NONE, p, F_TRUNC
    if buf[p] == 0xAA and buf[p + 1] == 0xAA and buf[p + 2] == 0x03:
        if p + 8 > end:
            return ET_NONE, p, F_TRUNC
        return _be16(buf, p + 6), p + 8, 0
    return ET_OTHER, p, 0


@njit(nogil=True)
def _ether(buf, p, end):
    """An Ethernet II / 802.3 header at p. Returns (ethertype, p after it, flags)."""
    if p + 14 > end:
        return ET_NONE, p, F_TRUNC
    et = _be16(buf, p + 12)
    if et <= 1500:          # 802.3 length field: LLC follows
        return _llc(buf, p + 14, end)
    return et, p + 14, 0


@njit(nogil=True)
def _wlan(buf, p, end):
    """IEEE 802.11 MAC header at p (data frames): (ethertype, p, flags)."""
    if p + 24 > end:
        return ET_NONE, p, F_TRUNC
    fc0 = np.int64(buf[p])
    fc1 = np.int64(buf[p + 1])
    if ((fc0 >> 2) & 3) != 2:             # management / control frames
        return ET_OTHER, p, 0
    sub = fc0 >> 4
    h = 24
    if (fc1 & 3) == 3:                    # to-DS and from-DS: 4 addresses
        h = 30
    amsdu = False
    if sub & 8:                           # QoS data
        if p + h + 1 > end:
            return ET_NONE, p, F_TRUNC
        amsdu = (np.int64(buf[p + h]) & 0x80) != 0      # QoS control: A-MSDU present
        h += 2
        if fc1 & 0x80:                    # +HTC
            h += 4
    if sub & 4:                           # null data: no payload
        return ET_OTHER, p, 0
    if fc1 & 0x40:                        # protected frame
        return ET_ENCRYPTED, p, 0
    if amsdu:
        # an A-MSDU (802.11-2020 9.3.2.2.2): subframes of DA, SA, length (14 bytes) and an LLC/SNAP
        # packet; the row is the first subframe's packet (one row per frame), as tshark's first values
        # and the first packet Zeek's IEEE802_11Analyzer hands on
        if p + h + 14 > end:
            return ET_NONE, p, F_TRUNC
        h += 14
    return _llc(buf, p + h, end)


@njit(nogil=True)
def _link(buf, p, end, k, et0, i, out16, present):
    """Find the network layer. Returns (ethertype or ET_*, offset, flags, want, present)."""
    fl = 0
    et = ET_NONE
    want = 0
    if k == K_ETYPE:
        et = et0
        if et == ET_NONE:
            fl |= F_TRUNC
    elif k == L2_ETHER:
        et, p, fl = _ether(buf, p, end)
    elif k == L2_SLL:
        if p + 16 <= end:
            et = _be16(buf, p + 14)
            p += 16
        else:
            fl |= F_TRUNC
    elif k == L2_SLL2:
        if p + 20 <= end:
            et = _be16(buf, p)
            p += 20
        else:
            fl |= F_TRUNC
    elif k == L2_NULL or k == L2_LOOP:
        if p + 4 <= end:
            if k == L2_LOOP or (buf[p] == 0 and buf[p + 1] == 0):
                fam = _be32(buf, p)
            else:
                fam = _le32(buf, p)
            p += 4
            if fam == 2:
                et = 0x0800
            elif fam == 24 or fam == 28 or fam == 30 or fam == 10:
                et = 0x86DD
            else:
                et = ET_OTHER
        else:
            fl |= F_TRUNC
    elif k == L2_RAW or k == L2_IPV4 or k == L2_IPV6:
        if k == L2_IPV4:
            want = 4
        elif k == L2_IPV6:
            want = 6
        et = _ver_et(buf, p, end)
        if et == ET_NONE:
            fl |= F_TRUNC
        elif et == ET_OTHER:
            fl |= F_MALFORMED
    elif k == L2_IPNET:
        if p + 24 <= end:
            fam = np.int64(buf[p + 1])
            p += 24
            if fam == 2:
                et = 0x0800
            elif fam == 26:
                et = 0x86DD
            else:
                et = ET_OTHER
        else:
            fl |= F_TRUNC
    elif k == L2_PPP:
        et, p = _ppp_proto(buf, p, end)
        if et == ET_NONE:
            fl |= F_TRUNC
    elif k == L2_CHDLC:
        if p + 4 <= end:
            et = _be16(buf, p + 2)
            p += 4
        else:
            fl |= F_TRUNC
    elif k == L2_FRELAY:
        a = p       # Q.922 address: 2 to 4 bytes, the last with its EA bit set
        while a < end and a < p + 4 and (np.int64(buf[a]) & 1) == 0:
            a += 1
        a += 1
        if a < p + 2:
            a = p + 2
        if a + 2 > end:
            fl |= F_TRUNC
        elif buf[a] != 0x03:               # Cisco encapsulation: an ethertype after the address
            et = _be16(buf, a)
            p = a + 2
        else:
            o = a + 1
            if buf[o] == 0 and o + 1 < end:   # a pad byte before the NLPID
                o += 1
            nl = np.int64(buf[o])
            if nl == 0xCC:
                et = 0x0800
                p = o + 1
            elif nl == 0x8E:
                et = 0x86DD
                p = o + 1
            elif nl == 0x80:
                if o + 6 <= end:
                    et = _be16(buf, o + 4)
                    p = o + 6
                else:
                    fl |= F_TRUNC
            else:
                et = ET_OTHER
    elif k == L2_FDDI:
        if p + 13 <= end:
            et, p, fl = _llc(buf, p + 13, end)
        else:
            fl |= F_TRUNC
    elif k == L2_ARCNET or k == L2_ARCNET_LINUX:
        tpos = 2 if k == L2_ARCNET else 4
        if p + tpos + 1 > end:
            fl |= F_TRUNC
        else:
            at = np.int64(buf[p + tpos])
            old = at == 240 or at == 241 or at == 0x80
            if old:
                h = tpos + 1
            elif k == L2_ARCNET:
                h = 6
                if p + 4 <= end and buf[p + 3] == 0xFF:
                    h = 10
            else:
                h = 8
            if p + h > end:
                fl |= F_TRUNC
            else:
                p += h
                if at == 212 or at == 240:
                    et = 0x0800
                elif at == 0xC4:
                    et = 0x86DD
                elif at == 213 or at == 241 or at == 214:
                    et = 0x0806
                else:
                    et = ET_OTHER
    elif k == L2_80211:
        et, p, fl = _wlan(buf, p, end)
    elif k == L2_RADIOTAP:
        if p + 4 <= end:
            p += _le16(buf, p + 2)
            et, p, fl = _wlan(buf, p, end)
        else:
            fl |= F_TRUNC
    elif k == L2_PPI:
        if p + 8 <= end:
            dlt = _le32(buf, p + 4)
            p += _le16(buf, p + 2)
            if dlt == 105:
                et, p, fl = _wlan(buf, p, end)
            elif dlt == 1:
                et, p, fl = _ether(buf, p, end)
        else:
            fl |= F_TRUNC
    elif k == L2_IPOIB:
        if p + 44 <= end:                  # 40-byte pseudo-header (hardware addresses), type, reserved
            et = _be16(buf, p + 40)
            p += 44
        else:
            fl |= F_TRUNC
    elif k == L2_PKTAP:
        if p + 8 <= end:
            dlt = _le32(buf, p + 4)
            p += _le32(buf, p)
            if dlt == 1:
                et, p, fl = _ether(buf, p, end)
        else:
            fl |= F_TRUNC
    elif k == L2_NFLOG:
        if p + 4 <= end:
            fam = np.int64(buf[p])
            p += 4
            while True:
                if p + 4 > end:
                    fl |= F_TRUNC
                    break
                tl = _le16(buf, p)
                if tl < 4:
                    fl |= F_MALFORMED
                    break
                if _le16(buf, p + 2) == 9:      # NFULA_PAYLOAD: the packet
                    p += 4
                    if fam == 2:
                        et = 0x0800
                    elif fam == 10:
                        et = 0x86DD
                    else:
                        et = _ver_et(buf, p, end)
                    break
                p += (tl + 3) & ~3
        else:
            fl |= F_TRUNC
    # tags, label stacks and shims between the link header and the network layer
    steps = 0
    while et >= 0 and steps < MAX_LINK_STEPS:
        steps += 1
        if et == 0x8100 or et == 0x88A8 or et == 0x9100:       # 802.1Q, 802.1ad, old QinQ
            if p + 4 > end:
                fl |= F_TRUNC
                et = ET_NONE
                break
            if (present & P_VLAN) == 0:
                out16[R16_VLAN, i] = _be16(buf, p) & 0x0FFF
                present |= P_VLAN
            et = _be16(buf, p + 2)
            p += 4
        elif et == 0x88E7:                                      # PBB 802.1ah: I-tag + C-DA + C-SA
            if p + 18 > end:
                fl |= F_TRUNC
                et = ET_NONE
                break
            et = _be16(buf, p + 16)
            p += 18
        elif et == 0x8909:                                      # Cisco MetaData (SGT)
            if p + 8 > end:
                fl |= F_TRUNC
                et = ET_NONE
                break
            et = _be16(buf, p + 6)
            p += 8
        elif et == 0x8926:                                      # VN-Tag
            if p + 6 > end:
                fl |= F_TRUNC
                et = ET_NONE
                break
            et = _be16(buf, p + 4)
            p += 6
        elif et == 0x8903:                                      # Cisco FabricPath: FTag/TTL, then the frame
            et, p, f2 = _ether(buf, p + 2, end)
            fl |= f2
        elif et == 0x88E5:                                      # MACsec SecTAG
            if p + 6 > end:
                fl |= F_TRUNC
                et = ET_NONE
                break
            tci = np.int64(buf[p])
            h = 14 if tci & 0x20 else 6
            if tci & 0x0C:                    # E (encrypted) or C (changed text)
                et = ET_ENCRYPTED
                break
            if p + h + 2 > end:
                fl |= F_TRUNC
                et = ET_NONE
                break
            et = _be16(buf, p + h)
            p += h + 2
        elif et == 0x8864:                                      # PPPoE session
            if p + 6 > end:
                fl |= F_TRUNC
                et = ET_NONE
                break
            et, p = _ppp_proto(buf, p + 6, end)
            if et == ET_NONE:
                fl |= F_TRUNC
        elif et == 0x894F:                                      # NSH
            if p + 8 > end:
                fl |= F_TRUNC
                et = ET_NONE
                break
            nl = (np.int64(buf[p + 1]) & 0x3F) * 4
            nxt = np.int64(buf[p + 3])
            if nl < 8:
                fl |= F_MALFORMED
                et = ET_OTHER
                break
            p += nl
            if nxt == 1:
                et = 0x0800
            elif nxt == 2:
                et = 0x86DD
            elif nxt == 3:
                et, p, f2 = _ether(buf, p, end)
                fl |= f2
            elif nxt == 4:
                et = 0x894F
            elif nxt == 5:
                et = 0x8847
            else:
                et = ET_OTHER
        elif et == 0x8847 or et == 0x8848:                      # MPLS label stack
            et = ET_NONE
            while p + 4 <= end:
                bos = np.int64(buf[p + 2]) & 1
                p += 4
                if bos == 1:
                    if p >= end:
                        break
                    v = np.int64(buf[p]) >> 4
                    if v == 4:
                        et = 0x0800
                    elif v == 6:
                        et = 0x86DD
                    elif v == 0:                                # pseudowire control word, then Ethernet
                        et, p, f2 = _ether(buf, p + 4, end)
                        fl |= f2
                    else:
                        et = ET_OTHER
                    break
            if et == ET_NONE:
                fl |= F_TRUNC
        else:
            break
    return et, p, fl, want, present


# ------------------------------------------------------------------------------------- tunnels
@njit(nogil=True)
def _gre_etype(buf, h, end, ptype):
    """(kind, ethertype, offset, kind code) for the payload of a GRE / GENEVE protocol type."""
    if ptype == 0x6558:
        return L2_ETHER, -1, h
    return K_ETYPE, ptype, h


@njit(nogil=True)
def _aruba(ptype):
    """Zeek's GRE analyzer (GRE.cc): the protocol types of Aruba's access-point tunnels, whose payload is
    an 802.11 frame (gre_link_type = DLT_IEEE802_11)."""
    return ((((ptype & 0x8200) == 0x8200) and (ptype & 0x0F) == 0)
            or (((ptype & 0x8300) == 0x8300) and (ptype & 0x0F) == 0 and ptype <= 0x8370)
            or ptype == 0x9000)


@njit(nogil=True)
def _gre(buf, q, end, lim):
    """A GRE header at q (IP protocol 47, or UDP port 4754, RFC 8086): the _tunnel tuple."""
    if q + 4 > end:
        return T_GRE, 0, 0, 0, 0, False, F_TRUNC if q + 4 <= lim else F_MALFORMED
    fw = _be16(buf, q)
    ver = fw & 7
    ptype = _be16(buf, q + 2)
    h = q + 4
    tid = 0
    has = False
    if ver == 0:
        if fw & 0xC000:
            h += 4
        if fw & 0x2000:
            if h + 4 > end or h + 4 > lim:
                return T_GRE, 0, 0, 0, 0, False, F_TRUNC if h + 4 <= lim else F_MALFORMED
            tid = _be32(buf, h)
            has = True
            h += 4
        if fw & 0x1000:
            h += 4
        if fw & 0x4000:     # RFC 1701 source route entries, until one of length 0
            while True:
                if h + 4 > end or h + 4 > lim:
                    return T_GRE, 0, 0, 0, 0, False, F_TRUNC if h + 4 <= lim else F_MALFORMED
                sl = np.int64(buf[h + 3])
                h += 4 + sl
                if sl == 0:
                    break
    elif ver == 1:      # enhanced GRE (PPTP): payload length + call id always, seq, ack
        if (fw & 0x2000) == 0:
            return T_NONE, 0, 0, 0, 0, False, 0
        if h + 4 > end or h + 4 > lim:
            return T_GRE, 0, 0, 0, 0, False, F_TRUNC if h + 4 <= lim else F_MALFORMED
        tid = _be16(buf, h + 2)
        has = True
        h += 4
        if fw & 0x1000:
            h += 4
        if fw & 0x0080:
            h += 4
    else:
        return T_NONE, 0, 0, 0, 0, False, 0
    if h > lim:
        return T_GRE, 0, 0, 0, 0, False, F_MALFORMED
    if h > end:
        return T_GRE, 0, 0, 0, 0, False, F_TRUNC
    if ptype == 0x88BE or ptype == 0x22EB:
        if ptype == 0x88BE and (fw & 0x1000) == 0:      # type I: no ERSPAN header
            return T_ERSPAN, h, L2_ETHER, -1, 0, False, 0
        eh = 8 if ptype == 0x88BE else 12
        if h + eh > lim:
            return T_ERSPAN, 0, 0, 0, 0, False, F_MALFORMED
        if h + eh > end:
            return T_ERSPAN, 0, 0, 0, 0, False, F_TRUNC
        sid = _be16(buf, h + 2) & 0x3FF
        ik = L2_ETHER
        iet = -1
        if ptype == 0x22EB:
            ft = (np.int64(buf[h + 10]) >> 2) & 0x1F
            if np.int64(buf[h + 11]) & 1:
                eh += 8
                if h + eh > lim:
                    return T_ERSPAN, 0, 0, 0, 0, False, F_MALFORMED
                if h + eh > end:
                    return T_ERSPAN, 0, 0, 0, 0, False, F_TRUNC
            if ft == 2:
                ik = K_ETYPE
                iet = _ver_et(buf, h + eh, end)
        return T_ERSPAN, h + eh, ik, iet, sid, True, 0
    if ver == 1:
        iet, h = _ppp_proto(buf, h, end)
        return T_GRE, h, K_ETYPE, iet, tid, has, 0
    if _aruba(ptype):
        return T_GRE, h, L2_80211, -1, tid, has, 0
    ik, iet, h = _gre_etype(buf, h, end, ptype)
    return T_GRE, h, ik, iet, tid, has, 0


@njit(nogil=True)
def _ayiya(buf, u, end, lim):
    """An AYIYA header at u (AYIYA.cc): 8 bytes, the identity (2^(b0>>4) bytes) and the signature
    ((b1>>4) x 4 bytes), then, for opcode 1 (forward) and next header 4 or 41, an IP packet; other
    opcodes and an empty forward carry no packet. The _tunnel tuple."""
    if u + 8 > lim:
        return T_AYIYA, 0, 0, 0, 0, False, F_MALFORMED
    if u + 8 > end:
        return T_AYIYA, 0, 0, 0, 0, False, F_TRUNC
    h = u + 8 + (np.int64(1) << (np.int64(buf[u]) >> 4)) + (np.int64(buf[u + 1]) >> 4) * 4
    if h > lim:
        return T_AYIYA, 0, 0, 0, 0, False, F_MALFORMED
    if h > end:
        return T_AYIYA, 0, 0, 0, 0, False, F_TRUNC
    nh = np.int64(buf[u + 3])
    if (np.int64(buf[u + 2]) & 0x0F) != 1 or h >= lim or (nh != 4 and nh != 41):
        return T_NONE, 0, 0, 0, 0, False, 0
    iet = _ver_et(buf, h, end)
    if iet == -2:
        return T_NONE, 0, 0, 0, 0, False, 0
    if iet == -1:
        return T_AYIYA, 0, 0, 0, 0, False, F_TRUNC
    return T_AYIYA, h, K_ETYPE, iet, 0, False, 0


@njit(nogil=True)
def _not_nl(buf, a, b):
    """No newline byte in buf[a:b]: what '.' of a Zeek regular expression (no (?s:) matches."""
    for j in range(a, b):  # noqa: SIM110 - compiled: a loop, not all() over a generator
        if buf[j] == 0x0A:
            return False
    return True


@njit(nogil=True)
def _teredo_detect(buf, d, n):
    """Zeek's TeredoAnalyzer::DetectProtocol on the n bytes of UDP payload at d: an IPv6 header (40
    bytes) with a Teredo address (2001:0000::/32) as its source or destination, or an authentication
    and/or origin indication followed by an IPv6 header."""
    if n < 40:
        return False
    b0 = np.int64(buf[d])
    b1 = np.int64(buf[d + 1])
    if (b0 >> 4) != 6 and (b0 != 0 or (b1 != 0 and b1 != 1)):
        return False
    if (b0 >> 4) == 6:      # the old DPD signature's pattern, anchored at the start
        for at in (8, 24):
            if (buf[d + at] == 0x20 and buf[d + at + 1] == 0x01 and buf[d + at + 2] == 0
                    and buf[d + at + 3] == 0 and _not_nl(buf, d + 1, d + at)
                    and _not_nl(buf, d + at + 4, d + 40)):
                return True
    val = b1
    if val == 1:
        cl = np.int64(buf[d + 2])
        al = np.int64(buf[d + 3])
        if n < 13 + cl + al:
            return False
        d += 13 + cl + al
        n -= 13 + cl + al
        if n < 40:
            return False
        val = _be16(buf, d)
    if val == 0:
        if n < 8:
            return False
        d += 8
        n -= 8
        if n < 40:
            return False
        if (np.int64(buf[d]) >> 4) == 6:
            return True
    return False


@njit(nogil=True)
def _teredo(buf, u, end, lim):
    """A Teredo packet at u (RFC 4380; Teredo.cc's DoParse): an authentication indication (0x0001, then
    the client id, the authentication value, nonce and confirmation), an origin indication (0x0000, 8
    bytes), then an IPv6 packet that fits the UDP datagram (a bubble, next header 59 and no payload, may
    have bytes after it). The _tunnel tuple; T_NONE when it is none."""
    h = u
    if h + 2 <= end and h + 2 <= lim and _be16(buf, h) == 1:     # authentication indicator
        if h + 4 > end or h + 4 > lim:
            return T_NONE, 0, 0, 0, 0, False, 0
        h += 4 + np.int64(buf[h + 2]) + np.int64(buf[h + 3]) + 9
    if h + 2 <= end and h + 2 <= lim and _be16(buf, h) == 0:     # origin indicator
        h += 8
    if h + 40 > end or h + 40 > lim or (np.int64(buf[h]) >> 4) != 6:
        return T_NONE, 0, 0, 0, 0, False, 0
    if h + 40 + _be16(buf, h + 4) > lim:     # the IPv6 packet must fit the UDP datagram
        return T_NONE, 0, 0, 0, 0, False, 0
    return T_TEREDO, h, K_ETYPE, 0x86DD, 0, False, 0


@njit(nogil=True, inline="always")
def _tunnel(buf, q, end, l4len, proto, sport, dport, outer_v6):
    """Recognise an encapsulation at the L4 header ``q`` (l4len bytes per the IP header).

    Returns (tunnel code, inner offset, inner kind, inner ethertype, tunnel id, has id, bad flags).
    tunnel code T_NONE: not an encapsulation. bad != 0: recognised but cut (F_TRUNC) or lying
    (F_MALFORMED): not opened.

    UDP as Zeek's UDPAnalyzer forwards it: a packet analyzer registered for the port (VXLAN, GENEVE,
    GTPv1, Teredo, AYIYA, GRE; the destination port first, else the source port: Zeek takes the
    responder's port, which is the tunnel port whichever side sent), otherwise the protocol detection of
    AYIYA, then Teredo, on the payload of any UDP datagram.
    """
    lim = q + l4len     # end of the L4 bytes per the IP header
    if proto == 4:
        return T_IPIP, q, K_ETYPE, 0x0800, 0, False, 0
    if proto == 41:
        return (T_IP6IP6 if outer_v6 else T_6IN4), q, K_ETYPE, 0x86DD, 0, False, 0
    if proto == 47:
        return _gre(buf, q, end, lim)
    if proto != 17:
        return T_NONE, 0, 0, 0, 0, False, 0
    u = q + 8
    port = dport if _is_tunnel_port(dport) else sport
    if port == UDP_VXLAN:
        if u + 8 > lim:
            return T_VXLAN, 0, 0, 0, 0, False, F_MALFORMED
        if u + 8 > end:
            return T_VXLAN, 0, 0, 0, 0, False, F_TRUNC
        return T_VXLAN, u + 8, L2_ETHER, -1, _be32(buf, u + 4) >> 8, True, 0
    if port == UDP_GENEVE:
        if u + 8 > lim:
            return T_GENEVE, 0, 0, 0, 0, False, F_MALFORMED
        if u + 8 > end:
            return T_GENEVE, 0, 0, 0, 0, False, F_TRUNC
        if (np.int64(buf[u]) >> 6) != 0:
            return T_NONE, 0, 0, 0, 0, False, 0
        h = u + 8 + (np.int64(buf[u]) & 0x3F) * 4
        if h > lim:
            return T_GENEVE, 0, 0, 0, 0, False, F_MALFORMED
        if h > end:
            return T_GENEVE, 0, 0, 0, 0, False, F_TRUNC
        ik, iet, h = _gre_etype(buf, h, end, _be16(buf, u + 2))
        return T_GENEVE, h, ik, iet, _be32(buf, u + 4) >> 8, True, 0
    if port == UDP_GTPU or port == UDP_GTPC:
        if u + 8 > end or u + 8 > lim:
            return T_NONE, 0, 0, 0, 0, False, 0
        fl = np.int64(buf[u])
        if (fl >> 5) != 1 or (fl & 0x10) == 0 or buf[u + 1] != 255:
            return T_NONE, 0, 0, 0, 0, False, 0
        teid = _be32(buf, u + 4)
        h = u + 8
        if fl & 7:
            if h + 4 > lim:
                return T_GTPU, 0, 0, 0, 0, False, F_MALFORMED
            if h + 4 > end:
                return T_GTPU, 0, 0, 0, 0, False, F_TRUNC
            nxt = np.int64(buf[h + 3])
            h += 4
            if fl & 4:
                while nxt != 0:
                    if h + 1 > lim:
                        return T_GTPU, 0, 0, 0, 0, False, F_MALFORMED
                    if h + 1 > end:
                        return T_GTPU, 0, 0, 0, 0, False, F_TRUNC
                    el = np.int64(buf[h]) * 4
                    if el == 0 or h + el > lim:
                        return T_GTPU, 0, 0, 0, 0, False, F_MALFORMED
                    if h + el > end:
                        return T_GTPU, 0, 0, 0, 0, False, F_TRUNC
                    nxt = np.int64(buf[h + el - 1])
                    h += el
        iet = _ver_et(buf, h, end)
        if iet == -1:
            return T_GTPU, 0, 0, 0, 0, False, F_TRUNC if h < lim else F_MALFORMED
        return T_GTPU, h, K_ETYPE, iet, teid, True, 0
    if port == UDP_TEREDO:
        return _teredo(buf, u, end, lim)
    if port == UDP_AYIYA:
        return _ayiya(buf, u, end, lim)
    if port == UDP_GRE:
        return _gre(buf, u, end, lim)
    # no port: protocol detection (AYIYA's, then Teredo's) on the captured payload
    n = (lim if lim < end else end) - u
    if n >= 3 and buf[u + 1] == 0x52 and buf[u + 2] == 0x11:
        t, h, ik, iet, tid, has, bad = _ayiya(buf, u, end, lim)
        if bad == 0:        # a guess that fails is no AYIYA, not a bad one
            return t, h, ik, iet, tid, has, bad
        return T_NONE, 0, 0, 0, 0, False, 0
    if _teredo_detect(buf, u, n):
        return _teredo(buf, u, end, lim)
    return T_NONE, 0, 0, 0, 0, False, 0


@njit(nogil=True)
def _gwlb_cookie(buf, u):
    """The AWS GWLB flow cookie among the options of the GENEVE header at u (whose options _tunnel has
    checked to lie within the packet), or -1. Options: class (16 bits), type, 3 reserved bits and a
    5-bit length in 4-byte words, then the data (RFC 8926 3.5)."""
    o = u + 8
    stop = o + (np.int64(buf[u]) & 0x3F) * 4
    while o + 4 <= stop:
        ln = (np.int64(buf[o + 3]) & 0x1F) * 4
        if o + 4 + ln > stop:
            return -1
        if _be16(buf, o) == GENEVE_CLASS_AWS and buf[o + 2] == GWLB_FLOW_COOKIE and ln == 4:
            return _be32(buf, o + 4)
        o += 4 + ln
    return -1


@njit(nogil=True)
def _ppp_proto(buf, h, end):
    """PPP (RFC 1661/1662): optional 0xFF03 address/control, 1- or 2-byte protocol → ethertype."""
    if h + 2 <= end and buf[h] == 0xFF and buf[h + 1] == 0x03:
        h += 2
    if h >= end:
        return -1, h
    if np.int64(buf[h]) & 1:
        pr = np.int64(buf[h])
        h += 1
    else:
        if h + 2 > end:
            return -1, h
        pr = _be16(buf, h)
        h += 2
    if pr == 0x21:
        return 0x0800, h
    if pr == 0x57:
        return 0x86DD, h
    if pr == 0x281:
        return 0x8847, h
    if pr == 0x283:
        return 0x8848, h
    return -2, h


# ------------------------------------------------------------------------------ network layer
@njit(nogil=True)
def _ipv4_hdr(buf, p, end, wire_end):
    """The IPv4 header at p, read only. Returns (n, ihl, tot, ipid, ff, ttl, proto_field, src, dst, q,
    l4len, proto, fl, offload): n = the header's captured bytes (0: none, or not version 4; then only
    fl counts), each field valid where n covers its bytes; q, l4len, proto and fl as _ipv4 returns
    them; offload: a segmentation-offload super-frame (see _ipv4).

    Its one array argument is ``buf``: numba's reference counts of an array argument are pruned in a
    helper with one array, not in one with several (each call of such a helper, or of an
    ``inline="always"`` one, costs two atomic operations per array, most of the decoder's time on some
    machines). The decoder's hot path calls this and writes the fields itself (_ipv4 does the same for
    the other callers)."""
    if p >= end:
        return 0, 0, 0, 0, 0, 0, 0, 0, 0, -1, 0, -1, F_TRUNC, False
    if (np.int64(buf[p]) >> 4) != 4:
        return 0, 0, 0, 0, 0, 0, 0, 0, 0, -1, 0, -1, F_MALFORMED, False
    n = end - p
    ihl = (np.int64(buf[p]) & 15) * 4
    tot = _be16(buf, p + 2) if n >= 4 else 0
    ipid = _be16(buf, p + 4) if n >= 6 else 0
    ff = _be16(buf, p + 6) if n >= 8 else 0
    ttl = np.int64(buf[p + 8]) if n >= 9 else 0
    proto = np.int64(buf[p + 9]) if n >= 10 else -1
    src = _be32(buf, p + 12) if n >= 16 else 0
    dst = _be32(buf, p + 16) if n >= 20 else 0
    if n < 20:
        return n, ihl, tot, ipid, ff, ttl, proto, src, dst, -1, 0, -1, F_TRUNC, False
    if ihl < 20 or (tot < ihl and tot != 0):
        return n, ihl, tot, ipid, ff, ttl, proto, src, dst, -1, 0, proto, F_MALFORMED, False
    if p + ihl > end:
        return n, ihl, tot, ipid, ff, ttl, proto, src, dst, -1, 0, proto, F_TRUNC, False
    if (ff & 0x1FFF) != 0:
        return n, ihl, tot, ipid, ff, ttl, proto, src, dst, -1, 0, proto, 0, False
    q = p + ihl
    if tot == 0 or p + tot > wire_end:
        # segmentation-offload super-frame: the length field is 0 or beyond the frame; take the
        # captured length, as Zeek does (a quoted header only keeps what is there)
        return n, ihl, tot, ipid, ff, ttl, proto, src, dst, q, end - q, proto, 0, True
    return n, ihl, tot, ipid, ff, ttl, proto, src, dst, q, tot - ihl, proto, 0, False


@njit(nogil=True, inline="always")
def _ipv4(buf, p, end, wire_end, i, out8, out16, out32, addr, ra, present, flags):
    """IPv4 header at p: every field whose bytes were captured, into the rows ``ra`` names (see W_NONE).
    Returns (q, l4len, proto, present, flags); q = -1 when no L4 header is to be decoded. (The
    decoder's main call site writes the same fields itself, from _ipv4_hdr: keep the two alike.)"""
    n, ihl, tot, ipid, ff, ttl, pf, src, dst, q, l4len, proto, fl, offload = _ipv4_hdr(buf, p, end, wire_end)
    if n > 0:
        if ra == RA_SRC:
            out16[R16_IP_HDR_LEN, i] = ihl
            present |= P_IPHL
            if n >= 4:
                out32[R32_IP_LEN, i] = tot
                present |= P_IPLEN
            if n >= 6:
                out32[R32_IP_ID, i] = ipid
                present |= P_IPID
            if n >= 8:
                out16[R16_FRAG, i] = (ff & 0x1FFF) * 8
                present |= P_IPV4FLAGS | P_FRAG
                if ff & 0x4000:
                    flags |= F_DF
                if ff & 0x2000:
                    flags |= F_MF
            if n >= 9:
                out8[R8_TTL, i] = ttl
                present |= P_TTL
            if n >= 10:
                out8[R8_PROTO, i] = pf
                present |= P_PROTO
            if offload:
                flags |= F_OFFLOAD
        elif ra == RA_OUTER_SRC:
            if n >= 9:
                out8[R8_OUTER_TTL, i] = ttl
        elif ra == RA_Q_SRC:
            if n >= 10:
                out8[R8_Q_PROTO, i] = pf
                present |= P_QPROTO
        if ra >= 0:
            if n >= 16:
                addr[ra + 1, i] = np.uint64(src)
                if ra == RA_SRC:
                    present |= P_SRC
                elif ra == RA_Q_SRC:
                    present |= P_QSRC
            if n >= 20:
                addr[ra + 3, i] = np.uint64(dst)
                if ra == RA_SRC:
                    present |= P_DST
                elif ra == RA_Q_SRC:
                    present |= P_QDST
    return q, l4len, proto, present, flags | fl


@njit(nogil=True, inline="always")
def _ipv6(buf, p, end, wire_end, i, out8, out16, out32, addr, ra, present, flags):
    """IPv6 header and extension chain at p; same contract as _ipv4."""
    q = -1
    l4len = 0
    proto = -1
    if p >= end:
        return q, l4len, proto, present, flags | F_TRUNC
    if (np.int64(buf[p]) >> 4) != 6:
        return q, l4len, proto, present, flags | F_MALFORMED
    plen = 0
    if p + 6 <= end:
        plen = _be16(buf, p + 4)
        if ra == RA_SRC:
            out32[R32_IP_LEN, i] = 40 + plen
            present |= P_IPLEN
    nh = -1
    if p + 7 <= end:
        nh = np.int64(buf[p + 6])
    if p + 8 <= end:
        if ra == RA_SRC:
            out8[R8_TTL, i] = buf[p + 7]
            present |= P_TTL
        elif ra == RA_OUTER_SRC:
            out8[R8_OUTER_TTL, i] = buf[p + 7]
    if p + 24 <= end and ra >= 0:
        addr[ra, i] = _be64(buf, p + 8)
        addr[ra + 1, i] = _be64(buf, p + 16)
        if ra == RA_SRC:
            present |= P_SRC
        elif ra == RA_Q_SRC:
            present |= P_QSRC
    if p + 40 > end:
        if nh >= 0:
            if ra == RA_SRC:
                out8[R8_PROTO, i] = nh
                present |= P_PROTO
            elif ra == RA_Q_SRC:
                out8[R8_Q_PROTO, i] = nh
                present |= P_QPROTO
        return q, l4len, proto, present, flags | F_TRUNC
    if ra >= 0:
        addr[ra + 2, i] = _be64(buf, p + 24)
        addr[ra + 3, i] = _be64(buf, p + 32)
        if ra == RA_SRC:
            present |= P_DST
        elif ra == RA_Q_SRC:
            present |= P_QDST
    if plen == 0 and nh != 59 and p + 40 < end:
        # payload length 0 with bytes after the header: a jumbogram or a BIG TCP / GSO super-frame;
        # take the captured length, as for IPv4 (the row says offload)
        plen = end - p - 40
        if ra == RA_SRC:
            flags |= F_OFFLOAD
    r = p + 40
    first_frag = True
    cut = False
    while nh == 0 or nh == 43 or nh == 44 or nh == 51 or nh == 60 or nh == 135 \
            or nh == 139 or nh == 140:
        if r + 8 > end:
            cut = True
            break
        if nh == 44:
            fo = _be16(buf, r + 2)
            if ra == RA_SRC:
                out16[R16_FRAG, i] = fo & 0xFFF8
                if fo & 1:
                    flags |= F_MF
                out32[R32_IP_ID, i] = _be32(buf, r + 4)
                present |= P_IPID | P_FRAG
            if (fo & 0xFFF8) != 0:
                first_frag = False
            nh2 = np.int64(buf[r])
            r += 8
        elif nh == 51:
            nh2 = np.int64(buf[r])
            r += (np.int64(buf[r + 1]) + 2) * 4
        else:
            nh2 = np.int64(buf[r])
            r += (np.int64(buf[r + 1]) + 1) * 8
        nh = nh2
        if not first_frag:
            break
    if ra == RA_SRC:
        out16[R16_IP_HDR_LEN, i] = r - p
        out8[R8_PROTO, i] = nh
        present |= P_IPHL | P_PROTO
    elif ra == RA_Q_SRC:
        out8[R8_Q_PROTO, i] = nh
        present |= P_QPROTO
    proto = nh
    if cut:
        return q, l4len, -1, present, flags | F_TRUNC
    if r - p - 40 > plen:
        return q, l4len, proto, present, flags | F_MALFORMED
    if p + 40 + plen > wire_end:
        if ra != RA_Q_SRC:     # the row's header or a tunnel's (not a quoted one)
            flags |= F_MALFORMED
        if first_frag and r <= end:
            q = r
            l4len = wire_end - q
        return q, l4len, proto, present, flags
    if first_frag and r <= end:
        q = r
        l4len = plen - (r - p - 40)
    elif r > end:
        flags |= F_TRUNC
    return q, l4len, proto, present, flags


# ---------------------------------------------------------------------------- quoted headers
@njit(nogil=True)
def _quoted(buf, s, end, i, out8, out16, out32, addr, present):
    """The IP header (and the first 8 bytes of its L4 header) an ICMP/ICMPv6 error quotes at s."""
    et = _ver_et(buf, s, end)
    if et == 0x0800:
        q, l4len, proto, present, _f = _ipv4(buf, s, end, end, i, out8, out16, out32, addr, RA_Q_SRC,
                                             present, 0)
    elif et == 0x86DD:
        present |= P_QV6
        q, l4len, proto, present, _f = _ipv6(buf, s, end, end, i, out8, out16, out32, addr, RA_Q_SRC,
                                             present, 0)
    else:
        return present
    if q < 0:
        return present
    if (proto == 6 or proto == 17) and q + 4 <= end:
        out16[R16_Q_SPORT, i] = _be16(buf, q)
        out16[R16_Q_DPORT, i] = _be16(buf, q + 2)
        present |= P_QPORTS
        if proto == 6 and q + 8 <= end:
            out32[R32_Q_TCP_SEQ, i] = _be32(buf, q + 4)
            present |= P_QSEQ
    elif (proto == 1 or proto == 58) and q + 8 <= end:
        t = np.int64(buf[q])
        if _is_echo(proto, t):
            out16[R16_Q_ICMP_ID, i] = _be16(buf, q + 4)
            out16[R16_Q_ICMP_SEQ, i] = _be16(buf, q + 6)
            present |= P_QICMPID
    return present


@njit(nogil=True)
def _is_echo(proto, t):
    if proto == 1:
        return t == 0 or t == 8 or t == 13 or t == 14 or t == 15 or t == 16 or t == 17 or t == 18
    return t == 128 or t == 129


@njit(nogil=True)
def _is_error(proto, t):
    if proto == 1:
        return t == 3 or t == 4 or t == 5 or t == 11 or t == 12
    return t >= 1 and t <= 4


_PORT_LO = min(UDP_VXLAN, UDP_GENEVE, UDP_GTPU, UDP_TEREDO, UDP_AYIYA, UDP_GRE, UDP_GTPC)
_PORT_HI = max(UDP_VXLAN, UDP_GENEVE, UDP_GTPU, UDP_TEREDO, UDP_AYIYA, UDP_GRE, UDP_GTPC)


@njit(nogil=True)
def _is_tunnel_port(port):
    """A UDP port of encaps.UDP_TUNNEL_PORTS (one range test first: most ports lie outside 2123-6081)."""
    if port < _PORT_LO or port > _PORT_HI:
        return False
    return (port == UDP_VXLAN or port == UDP_GENEVE or port == UDP_GTPU or port == UDP_TEREDO
            or port == UDP_AYIYA or port == UDP_GRE or port == UDP_GTPC)


@njit(nogil=True, inline="always")
def _may_detect(buf, d, n):
    """Whether AYIYA's or Teredo's protocol detection takes the n bytes of UDP payload at d (n counted to
    the frame's end: a superset of what _tunnel, bounded by the UDP length, opens). The whole Teredo test
    and not a looser first look: a random first byte passes a look at the version nibble one time in 16
    (QUIC short headers one in 4), and each such datagram would be decoded twice."""
    if n < 3:
        return False
    b0 = np.int64(buf[d])
    b1 = np.int64(buf[d + 1])
    if b1 == 0x52 and buf[d + 2] == 0x11:
        return True
    if n < 40 or ((b0 >> 4) != 6 and (b0 != 0 or b1 > 1)):     # Teredo's own first look, inline
        return False
    return _teredo_detect(buf, d, n)


@njit(nogil=True)
def _carrier(buf, p, end, v6):
    """Whether the IP header at p may carry a tunnel: protocol 4, 41 or 47 right after it, or UDP to or
    from a tunnel port (a cheap look, a superset of what _tunnel opens; IPv6 extension headers: no)."""
    if v6:
        if p + 40 > end:
            return False
        nh = np.int64(buf[p + 6])
        u = p + 40
    else:
        if p + 20 > end:
            return False
        nh = np.int64(buf[p + 9])
        u = p + (np.int64(buf[p]) & 15) * 4
    if nh == 4 or nh == 41 or nh == 47:
        return True
    if nh != 17 or u + 4 > end:
        return False
    if _is_tunnel_port(_be16(buf, u)) or _is_tunnel_port(_be16(buf, u + 2)):
        return True
    return _may_detect(buf, u + 8, end - u - 8)


@njit(nogil=True)
def _carrier_look(buf, p, end, v6):
    """_carrier's cheap part: 1 yes, 0 no, 2 "UDP on no tunnel port: ask _may_detect(buf, d, n)", as
    (verdict, d, n). No call that takes ``buf`` (_may_detect calls _teredo_detect): numba's reference
    counting of ``buf`` then prunes away here (see _ipv4_hdr)."""
    if v6:
        if p + 40 > end:
            return 0, 0, 0
        nh = np.int64(buf[p + 6])
        u = p + 40
    else:
        if p + 20 > end:
            return 0, 0, 0
        nh = np.int64(buf[p + 9])
        u = p + (np.int64(buf[p]) & 15) * 4
    if nh == 4 or nh == 41 or nh == 47:
        return 1, 0, 0
    if nh != 17 or u + 4 > end:
        return 0, 0, 0
    sport = (np.int64(buf[u]) << 8) | np.int64(buf[u + 1])
    dport = (np.int64(buf[u + 2]) << 8) | np.int64(buf[u + 3])
    if _is_tunnel_port(sport) or _is_tunnel_port(dport):
        return 1, 0, 0
    return 2, u + 8, end - u - 8


@njit(nogil=True)
def _open(buf, q, end, l4len, proto, outer_v6):
    """_tunnel for the L4 header at q (q < 0: none), with the UDP header checked first."""
    if q < 0 or (proto != 4 and proto != 41 and proto != 47 and proto != 17):
        return T_NONE, 0, 0, 0, 0, False, 0
    sport = -1
    dport = -1
    if proto == 17:
        if q + 8 > end or l4len < 8:
            return T_NONE, 0, 0, 0, 0, False, 0
        sport = _be16(buf, q)
        dport = _be16(buf, q + 2)
    return _tunnel(buf, q, end, l4len, proto, sport, dport, outer_v6)


@njit(nogil=True)
def _open_look(buf, q, end, l4len, proto, outer_v6):
    """_open's common answers (no tunnel, IP-in-IP, VXLAN) without a call that takes ``buf`` (see
    _carrier_look): (known, then _open's result); known False: ask _open."""
    if q < 0 or (proto != 4 and proto != 41 and proto != 47 and proto != 17):
        return True, T_NONE, 0, 0, 0, 0, False, 0
    if proto == 4:
        return True, T_IPIP, q, K_ETYPE, 0x0800, 0, False, 0
    if proto == 41:
        return True, (T_IP6IP6 if outer_v6 else T_6IN4), q, K_ETYPE, 0x86DD, 0, False, 0
    if proto == 47:
        return False, T_NONE, 0, 0, 0, 0, False, 0
    if q + 8 > end or l4len < 8:
        return True, T_NONE, 0, 0, 0, 0, False, 0
    sport = (np.int64(buf[q]) << 8) | np.int64(buf[q + 1])
    dport = (np.int64(buf[q + 2]) << 8) | np.int64(buf[q + 3])
    port = dport if _is_tunnel_port(dport) else sport
    if port != UDP_VXLAN:
        return False, T_NONE, 0, 0, 0, 0, False, 0
    lim = q + l4len
    u = q + 8
    if u + 8 > lim:
        return True, T_VXLAN, 0, 0, 0, 0, False, F_MALFORMED
    if u + 8 > end:
        return True, T_VXLAN, 0, 0, 0, 0, False, F_TRUNC
    vni = (np.int64(buf[u + 4]) << 16) | (np.int64(buf[u + 5]) << 8) | np.int64(buf[u + 6])
    return True, T_VXLAN, u + 8, L2_ETHER, -1, vni, True, 0


# -------------------------------------------------------------------------------------- decoder
@njit(cache=True, nogil=True)
def decode(buf, data_off, caplen, wirelen, kind, decap, out8, out16, out32, out64, addr):
    """Decode link, (tunnel,) network and transport headers of every frame into the R*_ rows."""
    for i in range(data_off.shape[0]):
        off = data_off[i]
        end = off + np.int64(caplen[i])
        wire_end = off + np.int64(wirelen[i])
        k = np.int64(kind[i])
        et0 = -1
        flags = 0
        present = 0
        if caplen[i] < wirelen[i]:
            flags |= F_TRUNC
        p = off
        depth = 0
        l3 = L3_NONE
        q = -1
        l4len = 0
        proto = -1
        while True:
            # Ethernet straight to IP (the plain frame and the VXLAN / GENEVE inner frame) without the
            # general link walk, which gives the same for it
            et = _be16(buf, p + 12) if k == L2_ETHER and p + 14 <= end else ET_NONE
            if et == 0x0800 or et == 0x86DD:
                p += 14
                want = 0
            else:
                et, p, fl, want, present = _link(buf, p, end, k, et0, i, out16, present)
                flags |= fl
            q = -1
            l4len = 0
            proto = -1
            if et == 0x0800 and p < end and (np.int64(buf[p]) >> 4) == 6:
                et = 0x86DD      # an IPv6 header under the IPv4 ethertype: decoded as IPv6 (as tshark)
                flags |= F_MALFORMED
            ra = RA_SRC
            f0 = flags
            pr0 = present
            if et == 0x0800 or et == 0x86DD:
                v6 = et == 0x86DD
                l3 = L3_IPV6 if v6 else L3_IPV4
                if want == (4 if v6 else 6):
                    flags |= F_MALFORMED
                # a header that may carry a tunnel is decoded into the outer rows only (or nowhere,
                # between the outermost and the innermost); the row gets the innermost packet's fields
                if decap and depth < MAX_DEPTH:
                    # _carrier(buf, p, end, v6), with _may_detect only where the cheap look cannot tell
                    cv, cd, cn = _carrier_look(buf, p, end, v6)
                    if cv == 1 or (cv == 2 and _may_detect(buf, cd, cn)):
                        ra = RA_OUTER_SRC if depth == 0 else W_NONE
                if v6:
                    q, l4len, proto, present, flags = _ipv6(buf, p, end, wire_end, i, out8, out16, out32,
                                                            addr, ra, present, flags)
                else:
                    # _ipv4, written out here: no array argument but buf (see _ipv4_hdr)
                    n4, ihl, tot, ipid, ff, ttl, pf, src, dst, q, l4len, proto, fl, offload = _ipv4_hdr(
                        buf, p, end, wire_end)
                    if n4 > 0:
                        if ra == RA_SRC:
                            out16[R16_IP_HDR_LEN, i] = ihl
                            present |= P_IPHL
                            if n4 >= 4:
                                out32[R32_IP_LEN, i] = tot
                                present |= P_IPLEN
                            if n4 >= 6:
                                out32[R32_IP_ID, i] = ipid
                                present |= P_IPID
                            if n4 >= 8:
                                out16[R16_FRAG, i] = (ff & 0x1FFF) * 8
                                present |= P_IPV4FLAGS | P_FRAG
                                if ff & 0x4000:
                                    flags |= F_DF
                                if ff & 0x2000:
                                    flags |= F_MF
                            if n4 >= 9:
                                out8[R8_TTL, i] = ttl
                                present |= P_TTL
                            if n4 >= 10:
                                out8[R8_PROTO, i] = pf
                                present |= P_PROTO
                            if n4 >= 16:
                                addr[RA_SRC + 1, i] = np.uint64(src)
                                present |= P_SRC
                            if n4 >= 20:
                                addr[RA_SRC + 3, i] = np.uint64(dst)
                                present |= P_DST
                            if offload:
                                flags |= F_OFFLOAD
                        elif ra == RA_OUTER_SRC:
                            if n4 >= 9:
                                out8[R8_OUTER_TTL, i] = ttl
                            if n4 >= 16:
                                addr[RA_OUTER_SRC + 1, i] = np.uint64(src)
                            if n4 >= 20:
                                addr[RA_OUTER_SRC + 3, i] = np.uint64(dst)
                    flags |= fl
            elif et == 0x0806 or et == 0x8035:
                l3 = L3_ARP
            elif et == ET_NONE:
                l3 = L3_NONE
            elif et == ET_ENCRYPTED:
                l3 = L3_ENCRYPTED
            else:
                l3 = L3_OTHER
            if ra == RA_SRC and (not decap or depth >= MAX_DEPTH):
                break
            # _carrier's no is exact when the L4 header follows the fixed header (IPv4, IPv6 without
            # extension headers): nothing to open, and UDP skips the tunnel detection a second time
            if ra == RA_SRC and (l3 == L3_IPV4 or (l3 == L3_IPV6 and q == p + 40)):
                break
            known, t, inner, ik, iet, tid, has, bad = _open_look(buf, q, end, l4len, proto, l3 == L3_IPV6)
            if not known:
                t, inner, ik, iet, tid, has, bad = _open(buf, q, end, l4len, proto, l3 == L3_IPV6)
            if t == T_NONE or bad != 0:
                if ra != RA_SRC:
                    # not a tunnel after all (or one not opened): the header is the row's, decode it
                    # into the row (rare: a tunnel port without a tunnel, a cut tunnel header)
                    if l3 == L3_IPV6:
                        q, l4len, proto, present, flags = _ipv6(buf, p, end, wire_end, i, out8, out16,
                                                                out32, addr, RA_SRC, pr0, f0)
                    else:
                        q, l4len, proto, present, flags = _ipv4(buf, p, end, wire_end, i, out8, out16,
                                                                out32, addr, RA_SRC, pr0, f0)
                flags |= bad
                break
            if depth == 0:
                out8[R8_TUNNEL, i] = t
                out8[R8_OUTER_L3, i] = l3
                if ra == RA_SRC:   # found after a full decode (IPv6 extension headers before the L4)
                    out8[R8_OUTER_TTL, i] = out8[R8_TTL, i]
                    for a in range(4):
                        addr[RA_OUTER_SRC + a, i] = addr[RA_SRC + a, i]
                present |= P_OUTER
                if has:
                    out32[R32_TUNNEL_ID, i] = tid
                    present |= P_TID
                if t == T_GENEVE:
                    cookie = _gwlb_cookie(buf, q + 8)
                    if cookie >= 0:
                        out32[R32_GWLB_COOKIE, i] = cookie
                        present |= P_GWLB
            depth += 1
            lim = q + l4len
            if lim < end:
                end = lim
            wire_end = lim
            present &= KEEP_ACROSS_TUNNEL
            flags &= ~(F_DF | F_MF | F_OFFLOAD)
            p = inner
            k = ik
            et0 = iet
            l3 = L3_NONE
        out8[R8_DEPTH, i] = depth
        # ---------------------------------------------------------- transport layer
        if q >= 0:
            avail = end - q
            hl = -1
            if proto == 6:
                if avail >= 4:
                    out16[R16_SPORT, i] = _be16(buf, q)
                    out16[R16_DPORT, i] = _be16(buf, q + 2)
                    present |= P_PORTS
                # every field whose bytes were captured
                if avail >= 8:
                    out32[R32_TCP_SEQ, i] = _be32(buf, q + 4)
                    present |= P_TCP
                if avail >= 12:
                    out32[R32_TCP_ACK, i] = _be32(buf, q + 8)
                    present |= P_TACK
                if avail >= 14:
                    out16[R16_TCP_FLAGS, i] = _be16(buf, q + 12) & 0x0FFF
                    out8[R8_TCP_HDR_LEN, i] = (np.int64(buf[q + 12]) >> 4) * 4
                    present |= P_TFLAGS
                if avail >= 16:
                    out16[R16_TCP_WIN, i] = _be16(buf, q + 14)
                    present |= P_TWIN
                if avail >= 20:
                    doff = (np.int64(buf[q + 12]) >> 4) * 4
                    if doff < 20 or doff > l4len:
                        flags |= F_MALFORMED
                    elif doff > avail:
                        flags |= F_TRUNC
                    else:
                        hl = doff
                else:
                    flags |= F_TRUNC
            elif proto == 17:
                if avail >= 4:
                    out16[R16_SPORT, i] = _be16(buf, q)
                    out16[R16_DPORT, i] = _be16(buf, q + 2)
                    present |= P_PORTS
                if avail >= 8:
                    if l4len < 8:
                        flags |= F_MALFORMED
                    else:
                        hl = 8
                else:
                    flags |= F_TRUNC
            elif proto == 1 or proto == 58:
                if avail >= 2:
                    ty = np.int64(buf[q])
                    out8[R8_ICMP_TYPE, i] = ty
                    out8[R8_ICMP_CODE, i] = buf[q + 1]
                    present |= P_ICMP
                    have_icmp = avail if avail < l4len else l4len
                    if _is_echo(proto, ty):
                        if have_icmp >= 6:
                            out16[R16_ICMP_ID, i] = _be16(buf, q + 4)
                            present |= P_ICMPID
                        if have_icmp >= 8:
                            out16[R16_ICMP_SEQ, i] = _be16(buf, q + 6)
                            present |= P_ICMPSEQ
                    if avail >= 8:
                        if l4len < 8:
                            flags |= F_MALFORMED
                        else:
                            hl = 8
                            if _is_error(proto, ty):
                                code = np.int64(buf[q + 1])
                                if proto == 1 and ty == 3 and code == 4:
                                    out32[R32_MTU, i] = _be16(buf, q + 6)
                                    present |= P_MTU
                                elif proto == 58 and ty == 2:
                                    out32[R32_MTU, i] = _be32(buf, q + 4)
                                    present |= P_MTU
                                qend = q + l4len
                                if qend > end:
                                    qend = end
                                present = _quoted(buf, q + 8, qend, i, out8, out16, out32, addr,
                                                  present)
                    else:
                        flags |= F_TRUNC
                else:
                    flags |= F_TRUNC
            if hl >= 0:
                plen_l4 = l4len - hl
                out32[R32_PAYLOAD_LEN, i] = plen_l4
                present |= P_PAYLOAD
                have = end - (q + hl)
                if have > plen_l4:
                    have = plen_l4
                if have < 0:
                    have = 0
                out64[R64_PAYLOAD_OFF, i] = q + hl
                out32[R32_PAYLOAD_CAPLEN, i] = have
                present |= P_PAYOFF
        out8[R8_L3, i] = l3
        out8[R8_FLAGS, i] = flags
        out32[R32_PRESENT, i] = present
