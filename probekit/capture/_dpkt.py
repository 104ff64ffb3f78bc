"""backend="dpkt": the reference decoder. Frames are located by probekit's container walk (dpkt's own
pcapng reader handles neither mixed-endian sections nor per-interface link types); headers are decoded
one packet at a time in plain Python — dpkt objects where dpkt has a class that accepts the bytes
(link layers, VLAN tags, MPLS labels, UDP, TCP, ICMP echo), byte slices where it has none or refuses
partial headers (cut IP headers, VXLAN, GENEVE, ERSPAN, GTP-U, Teredo, quoted headers) — and mapped
onto the same schema. It is written apart from the compiled decoder so the two check each other."""
from __future__ import annotations

import socket
import struct

import dpkt
import numpy as np
import pandas as pd

from .._io import open_bytes
from ..protocol import ICMP_ID_SEQ_TYPES, ICMPV6_ID_SEQ_TYPES
from ..schema import CODED, L3_KINDS, PACKETS, SPARSE, SPARSE_TEXT, TUNNEL_KINDS, coded, sparse_at
from ._frames import index_frames
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
    UDP_TUNNEL_PORTS,
    UDP_VXLAN,
    aruba_gre,
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
    decoder_kind,
)

_ICMP_ECHO = ICMP_ID_SEQ_TYPES
_ICMP6_ECHO = ICMPV6_ID_SEQ_TYPES
_QINQ = {0x8100, 0x88A8, 0x9100}
_V6_EXT = {0, 43, 44, 51, 60, 135, 139, 140}
_ICMP_ERRORS = {3, 4, 5, 11, 12}
_ICMP6_ERRORS = {1, 2, 3, 4}


def read_dpkt(path: str, strict: bool = False, decapsulate: bool = True):
    """(packets table, frame index) through dpkt; read_capture sets ``attrs`` and the salvage note."""
    with open_bytes(path) as buf:
        idx = index_frames(buf, path)
        if idx.stop is not None and strict:
            raise idx.stop
        raw = bytes(buf)
    rows = []
    for i in range(len(idx)):
        itf = idx.interfaces[int(idx.iface[i])]
        off = int(idx.data_off[i])
        cap = int(idx.caplen[i])
        row = decode_frame(raw[off:off + cap], decoder_kind(itf.linktype), int(idx.wirelen[i]), decapsulate)
        if row.get("payload_off") is not None:
            row["payload_off"] += off
        row.update(frame=i + 1, iface=int(idx.iface[i]), linktype=itf.linktype,
                   ts_ns=None if idx.has_ts is not None and not idx.has_ts[i] else int(idx.ts_ns[i]),
                   caplen=cap, wirelen=int(idx.wirelen[i]))
        row["truncated"] = row.get("truncated", False) or cap < int(idx.wirelen[i])
        rows.append(row)
    return _to_table(rows), idx


K_ETYPE = -1   # "the payload's ethertype is known" (tunnel payloads)
_IP_FIELDS = ("src", "dst", "ip_proto", "ip_len", "ip_hdr_len", "ttl", "ip_id", "ip_df", "ip_mf", "frag_offset")


def _ver(b: bytes, at: int = 0) -> int:
    """ethertype by the IP version nibble: -1 when cut, -2 when neither 4 nor 6."""
    if len(b) <= at:
        return -1
    return {4: 0x0800, 6: 0x86DD}.get(b[at] >> 4, -2)


def _llc(f: bytes, p: int):
    """802.2 LLC at p; SNAP gives its ethertype: (ethertype, p, truncated)."""
    if len(f) < p + 3:
        return -1, p, True
    if f[p:p + 3] == b"\xaa\xaa\x03":
        if len(f) < p + 8:
            return -1, p, True
        return int.from_bytes(f[p + 6:p + 8], "big"), p + 8, False
    return -2, p, False


def _ether(f: bytes, p: int):
    if len(f) < p + 14:
        return -1, p, True
    et = int.from_bytes(f[p + 12:p + 14], "big")
    if et <= 1500:
        return _llc(f, p + 14)
    return et, p + 14, False


def _wlan(f: bytes, p: int):
    if len(f) < p + 24:
        return -1, p, True
    fc0, fc1 = f[p], f[p + 1]
    if (fc0 >> 2) & 3 != 2:
        return -2, p, False
    sub = fc0 >> 4
    h = 30 if fc1 & 3 == 3 else 24
    amsdu = False
    if sub & 8:
        if len(f) < p + h + 1:
            return -1, p, True
        amsdu = bool(f[p + h] & 0x80)       # QoS control: an A-MSDU, the row is its first subframe
        h += 2 + (4 if fc1 & 0x80 else 0)
    if sub & 4:
        return -2, p, False
    if fc1 & 0x40:
        return -3, p, False
    if amsdu:
        if len(f) < p + h + 14:
            return -1, p, True
        h += 14
    return _llc(f, p + h)


def _link(frame: bytes, kind: int, et0: int):
    """(ethertype, l3 offset, vlan, truncated, malformed): ethertype -1 none, -2 other, -3 encrypted."""
    f = frame
    n = len(f)
    trunc = bad = False
    p = 0
    et = -1
    if kind == K_ETYPE:
        et, trunc = et0, et0 == -1
    elif kind == L2_ETHER:
        et, p, trunc = _ether(f, 0)
    elif kind == L2_SLL:
        if n < 16:
            return -1, 0, None, True, False
        et, p = dpkt.sll.SLL(f).ethtype, 16
    elif kind == L2_SLL2:
        if n < 20:
            return -1, 0, None, True, False
        et, p = dpkt.sll2.SLL2(f).ethtype, 20
    elif kind in (L2_NULL, L2_LOOP):
        # dpkt's Loopback reads the family in this host's byte order; the writer's order matters
        if n < 4:
            return -1, 0, None, True, False
        if kind == L2_LOOP or (f[0] == 0 and f[1] == 0):
            fam = int.from_bytes(f[:4], "big")
        else:
            fam = int.from_bytes(f[:4], "little")
        et, p = {2: 0x0800, 24: 0x86DD, 28: 0x86DD, 30: 0x86DD, 10: 0x86DD}.get(fam, -2), 4
    elif kind in (L2_RAW, L2_IPV4, L2_IPV6):
        et = _ver(f)
        if et == -1:
            return -1, 0, None, True, False
        if et == -2:
            return -2, 0, None, False, True
    elif kind == L2_IPNET:
        if n < 24:
            return -1, 0, None, True, False
        et, p = {2: 0x0800, 26: 0x86DD}.get(f[1], -2), 24
    elif kind == L2_PPP:
        et, p = _ppp(f, 0)
        trunc = et == -1
    elif kind == L2_CHDLC:
        if n < 4:
            return -1, 0, None, True, False
        et, p = int.from_bytes(f[2:4], "big"), 4
    elif kind == L2_FRELAY:
        a = 0
        while a < n and a < 4 and not f[a] & 1:
            a += 1
        a = max(a + 1, 2)
        if n < a + 2:
            return -1, 0, None, True, False
        if f[a] != 0x03:
            et, p = int.from_bytes(f[a:a + 2], "big"), a + 2
        else:
            o = a + 1
            if f[o] == 0 and o + 1 < n:
                o += 1
            nl = f[o]
            if nl == 0xCC:
                et, p = 0x0800, o + 1
            elif nl == 0x8E:
                et, p = 0x86DD, o + 1
            elif nl == 0x80:
                if o + 6 <= n:
                    et, p = int.from_bytes(f[o + 4:o + 6], "big"), o + 6
                else:
                    trunc = True
            else:
                et = -2
    elif kind == L2_FDDI:
        if n < 13:
            return -1, 0, None, True, False
        et, p, trunc = _llc(f, 13)
    elif kind in (L2_ARCNET, L2_ARCNET_LINUX):
        tpos = 2 if kind == L2_ARCNET else 4
        if n < tpos + 1:
            return -1, 0, None, True, False
        at = f[tpos]
        if at in (240, 241, 0x80):
            h = tpos + 1
        elif kind == L2_ARCNET:
            h = 10 if n >= 4 and f[3] == 0xFF else 6
        else:
            h = 8
        if n < h:
            return -1, 0, None, True, False
        p = h
        et = 0x0800 if at in (212, 240) else 0x86DD if at == 0xC4 else 0x0806 if at in (213, 241, 214) else -2
    elif kind == L2_80211:
        et, p, trunc = _wlan(f, 0)
    elif kind == L2_RADIOTAP:
        if n < 4:
            return -1, 0, None, True, False
        et, p, trunc = _wlan(f, int.from_bytes(f[2:4], "little"))
    elif kind == L2_PPI:
        if n < 8:
            return -1, 0, None, True, False
        dlt = int.from_bytes(f[4:8], "little")
        p = int.from_bytes(f[2:4], "little")
        if dlt == 105:
            et, p, trunc = _wlan(f, p)
        elif dlt == 1:
            et, p, trunc = _ether(f, p)
    elif kind == L2_IPOIB:
        if n < 44:
            return -1, 0, None, True, False
        et, p = int.from_bytes(f[40:42], "big"), 44
    elif kind == L2_PKTAP:
        if n < 8:
            return -1, 0, None, True, False
        dlt, p = int.from_bytes(f[4:8], "little"), int.from_bytes(f[0:4], "little")
        if dlt == 1:
            et, p, trunc = _ether(f, p)
    elif kind == L2_NFLOG:
        if n < 4:
            return -1, 0, None, True, False
        fam, p = f[0], 4
        while True:
            if n < p + 4:
                trunc = True
                break
            tl, tt = int.from_bytes(f[p:p + 2], "little"), int.from_bytes(f[p + 2:p + 4], "little")
            if tl < 4:
                bad = True
                break
            if tt == 9:
                p += 4
                et = {2: 0x0800, 10: 0x86DD}.get(fam) or _ver(f, p)
                break
            p += (tl + 3) & ~3
    else:
        return -1, 0, None, False, False
    vlan = None
    steps = 0
    while et >= 0 and steps < 64:
        steps += 1
        if et in _QINQ:   # dpkt's Ethernet stops after two tags: walk the stack with its tag class
            if n < p + 4:
                return -1, p, vlan, True, bad
            tag = dpkt.ethernet.VLANtag8021Q(f[p:p + 4])
            vlan = tag.id if vlan is None else vlan
            et, p = tag.type, p + 4
        elif et == 0x88E7:
            if n < p + 18:
                return -1, p, vlan, True, bad
            et, p = int.from_bytes(f[p + 16:p + 18], "big"), p + 18
        elif et == 0x8909:
            if n < p + 8:
                return -1, p, vlan, True, bad
            et, p = int.from_bytes(f[p + 6:p + 8], "big"), p + 8
        elif et == 0x8926:
            if n < p + 6:
                return -1, p, vlan, True, bad
            et, p = int.from_bytes(f[p + 4:p + 6], "big"), p + 6
        elif et == 0x8903:
            et, p, t = _ether(f, p + 2)
            trunc |= t
        elif et == 0x88E5:
            if n < p + 6:
                return -1, p, vlan, True, bad
            h = 14 if f[p] & 0x20 else 6
            if f[p] & 0x0C:
                et = -3
                break
            if n < p + h + 2:
                return -1, p, vlan, True, bad
            et, p = int.from_bytes(f[p + h:p + h + 2], "big"), p + h + 2
        elif et == 0x8864:
            if n < p + 6:
                return -1, p, vlan, True, bad
            et, p = _ppp(f, p + 6)
            trunc |= et == -1
        elif et == 0x894F:
            if n < p + 8:
                return -1, p, vlan, True, bad
            nl, nxt = (f[p + 1] & 0x3F) * 4, f[p + 3]
            if nl < 8:
                et, bad = -2, True
                break
            p += nl
            if nxt == 3:
                et, p, t = _ether(f, p)
                trunc |= t
            else:
                et = {1: 0x0800, 2: 0x86DD, 4: 0x894F, 5: 0x8847}.get(nxt, -2)
        elif et in (0x8847, 0x8848):
            et = -1
            while n >= p + 4:
                lbl = dpkt.ethernet.MPLSlabel(f[p:p + 4])
                p += 4
                if lbl.s:
                    if p >= n:
                        break
                    v = f[p] >> 4
                    if v == 0:
                        et, p, t = _ether(f, p + 4)
                        trunc |= t
                    else:
                        et = {4: 0x0800, 6: 0x86DD}.get(v, -2)
                    break
            if et == -1:
                trunc = True
        else:
            break
    return et, p, vlan, trunc, bad


def decode_frame(frame: bytes, kind: int, wirelen: int, decapsulate: bool = True) -> dict:
    """One frame's row (payload_off relative to the frame)."""
    row: dict = {"l3": "none", "truncated": False, "malformed": False, "offload": False, "tunnel": "none",
                 "tunnel_depth": 0}
    _layer(row, frame, kind, -1, wirelen, 0, decapsulate)
    return row


def _layer(row: dict, frame: bytes, kind: int, et0: int, wire: int, base: int, decap: bool) -> None:
    et, hl, vlan, trunc, bad = _link(frame, kind, et0)
    if row.get("vlan") is None and vlan is not None:
        row["vlan"] = vlan
    row["truncated"] |= trunc
    row["malformed"] |= bad
    if et == -1:
        row["l3"] = "none"
        return
    if et == -3:
        row["l3"] = "encrypted"
        return
    if et in (0x0806, 0x8035):
        row["l3"] = "arp"
        return
    if et not in (0x0800, 0x86DD):
        row["l3"] = "other"
        return
    want = {L2_IPV4: 0x0800, L2_IPV6: 0x86DD}.get(kind)
    if want is not None and et != want:
        row["malformed"] = True
    l3b = frame[hl:]
    wire_l3 = wire - hl
    if et == 0x0800 and l3b and l3b[0] >> 4 == 6:   # IPv6 under the IPv4 ethertype, as tshark decodes it
        et = 0x86DD
        row["malformed"] = True
    if et == 0x0800:
        row["l3"] = "ipv4"
        got = _ipv4(row, l3b, wire_l3, quoted=False)
    else:
        row["l3"] = "ipv6"
        got = _ipv6(row, l3b, wire_l3, quoted=False)
    if got is None:
        return
    proto, l4at, l4len = got
    if decap and row["tunnel_depth"] < MAX_DEPTH and proto in (4, 41, 47, 17):
        t = _tunnel(l3b, l4at, l4len, proto, row["l3"] == "ipv6")
        if t is not None:
            name, inner_at, ik, iet, tid, bad = t
            if bad:
                row["truncated" if bad == "truncated" else "malformed"] = True
            else:
                if row["tunnel_depth"] == 0:
                    row.update(tunnel=name, outer_src=row.get("src"), outer_dst=row.get("dst"),
                               outer_ttl=row.get("ttl"), tunnel_id=tid)
                    if name == "geneve":
                        row["gwlb_flow_cookie"] = gwlb_cookie(l3b[l4at + 8:inner_at])
                row["tunnel_depth"] += 1
                for f in _IP_FIELDS:
                    row.pop(f, None)
                row["offload"] = False
                lim = l4at + l4len
                inner = l3b[inner_at:min(len(l3b), lim)]
                _layer(row, inner, ik, iet, lim - inner_at, base + hl + inner_at, decap)
                return
    _l4(row, proto, l3b[l4at:], l4len, base + hl + l4at)


def gwlb_cookie(geneve: bytes) -> int | None:
    """The AWS GWLB flow cookie (option class 0x0108, type 3, 4 bytes) of a GENEVE header with its
    options, or None (RFC 8926 3.5: class, type, 3 reserved bits + 5-bit length in words, data)."""
    opts = geneve[8:8 + (geneve[0] & 0x3F) * 4]
    o = 0
    while o + 4 <= len(opts):
        cls, typ, ln = int.from_bytes(opts[o:o + 2], "big"), opts[o + 2], (opts[o + 3] & 0x1F) * 4
        if o + 4 + ln > len(opts):
            return None
        if cls == GENEVE_CLASS_AWS and typ == GWLB_FLOW_COOKIE and ln == 4:
            return int.from_bytes(opts[o + 4:o + 8], "big")
        o += 4 + ln
    return None


def _ipv4(row: dict, b: bytes, wire: int, quoted: bool):
    """Fields of an IPv4 header whose bytes were captured; (proto, l4 offset, l4 length) when the L4
    header is to be decoded, else None. ``quoted``: the header inside an ICMP error (quoted_* keys)."""
    pre = "quoted_" if quoted else ""
    if not b:
        row["truncated"] |= not quoted
        return None
    if b[0] >> 4 != 4:
        if not quoted:
            row["malformed"] = True
        return None
    ihl = (b[0] & 15) * 4
    n = len(b)
    tot = int.from_bytes(b[2:4], "big") if n >= 4 else 0
    ff = int.from_bytes(b[6:8], "big") if n >= 8 else 0
    if not quoted:
        row["ip_hdr_len"] = ihl
        if n >= 4:
            row["ip_len"] = tot
        if n >= 6:
            row["ip_id"] = int.from_bytes(b[4:6], "big")
        if n >= 8:
            row.update(ip_df=bool(ff & 0x4000), ip_mf=bool(ff & 0x2000), frag_offset=(ff & 0x1FFF) * 8)
        if n >= 9:
            row["ttl"] = b[8]
    if n >= 10:
        row[pre + ("proto" if quoted else "ip_proto")] = b[9]
    if n >= 16:
        row[pre + "src"] = socket.inet_ntoa(b[12:16])
    if n >= 20:
        row[pre + "dst"] = socket.inet_ntoa(b[16:20])
    if n < 20:
        row["truncated"] |= not quoted
        return None
    if ihl < 20 or (tot < ihl and tot != 0):
        row["malformed"] |= not quoted
        return None
    if n < ihl:
        row["truncated"] |= not quoted
        return None
    if ff & 0x1FFF:
        return None
    if tot == 0 or tot > wire:
        if not quoted:
            row["offload"] = True
        return b[9], ihl, n - ihl
    return b[9], ihl, tot - ihl


def _ipv6(row: dict, b: bytes, wire: int, quoted: bool):
    pre = "quoted_" if quoted else ""
    if not b:
        row["truncated"] |= not quoted
        return None
    if b[0] >> 4 != 6:
        if not quoted:
            row["malformed"] = True
        return None
    n = len(b)
    plen = int.from_bytes(b[4:6], "big") if n >= 6 else 0
    if not quoted:
        if n >= 6:
            row["ip_len"] = 40 + plen
        if n >= 8:
            row["ttl"] = b[7]
    if n >= 24:
        row[pre + "src"] = socket.inet_ntop(socket.AF_INET6, b[8:24])
    proto_key = "quoted_proto" if quoted else "ip_proto"
    if n < 40:
        if n >= 7:
            row[proto_key] = b[6]
        row["truncated"] |= not quoted
        return None
    row[pre + "dst"] = socket.inet_ntop(socket.AF_INET6, b[24:40])
    nh = b[6]
    if plen == 0 and nh != 59 and n > 40:   # jumbogram / BIG TCP: the captured length
        plen = n - 40
        if not quoted:
            row["offload"] = True
    pos = 40
    first = True
    cut = False
    while nh in _V6_EXT:   # the extension chain, in wire order
        if pos + 8 > n:
            cut = True
            break
        if nh == 44:
            fo = int.from_bytes(b[pos + 2:pos + 4], "big")
            if not quoted:
                row.update(ip_id=int.from_bytes(b[pos + 4:pos + 8], "big"), ip_mf=bool(fo & 1),
                           frag_offset=fo & 0xFFF8)
            first = (fo & 0xFFF8) == 0
            nh2, pos = b[pos], pos + 8
        elif nh == 51:
            nh2, pos = b[pos], pos + (b[pos + 1] + 2) * 4
        else:
            nh2, pos = b[pos], pos + (b[pos + 1] + 1) * 8
        nh = nh2
        if not first:
            break
    row[proto_key] = nh
    if not quoted:
        row["ip_hdr_len"] = pos
    if cut:
        row["truncated"] |= not quoted
        return None
    if pos - 40 > plen:
        row["malformed"] |= not quoted
        return None
    if 40 + plen > wire:
        row["malformed"] |= not quoted
        if first and pos <= n:
            return nh, pos, wire - pos
        return None
    if first and pos <= n:
        return nh, pos, plen - (pos - 40)
    if pos > n:
        row["truncated"] |= not quoted
    return None


def _need(b: bytes, at: int, lim: int, name: str):
    """None when b holds `at` bytes within lim; else the tunnel's bad reason."""
    if at > lim:
        return (name, 0, 0, 0, None, "malformed")
    if at > len(b):
        return (name, 0, 0, 0, None, "truncated")
    return None


def _tunnel(b: bytes, q: int, l4len: int, proto: int, outer_v6: bool):
    """(name, inner offset, inner kind, inner ethertype, id, bad) or None (not an encapsulation)."""
    lim = q + l4len
    if proto == 4:
        return "ipip", q, K_ETYPE, 0x0800, None, None
    if proto == 41:
        return ("ip6ip6" if outer_v6 else "6in4"), q, K_ETYPE, 0x86DD, None, None
    if proto == 47:
        return _gre(b, q, lim)
    # UDP
    if len(b) < q + 8 or l4len < 8:
        return None
    udp = dpkt.udp.UDP(b[q:q + 8])
    u = q + 8
    port = udp.dport if udp.dport in UDP_TUNNEL_PORTS else udp.sport
    if port == UDP_VXLAN:
        bad = _need(b, u + 8, lim, "vxlan")
        if bad:
            return bad
        return "vxlan", u + 8, L2_ETHER, -1, int.from_bytes(b[u + 4:u + 7], "big"), None
    if port == UDP_GENEVE:
        bad = _need(b, u + 8, lim, "geneve")
        if bad:
            return bad
        if b[u] >> 6:
            return None
        h = u + 8 + (b[u] & 0x3F) * 4
        bad = _need(b, h, lim, "geneve")
        if bad:
            return bad
        ptype = int.from_bytes(b[u + 2:u + 4], "big")
        vni = int.from_bytes(b[u + 4:u + 7], "big")
        if ptype == 0x6558:
            return "geneve", h, L2_ETHER, -1, vni, None
        return "geneve", h, K_ETYPE, ptype, vni, None
    if port in (UDP_GTPU, UDP_GTPC):
        if len(b) < u + 8 or lim < u + 8:
            return None
        fl, mtype, _ln, teid = struct.unpack(">BBHI", b[u:u + 8])
        if fl >> 5 != 1 or not fl & 0x10 or mtype != 255:
            return None
        h = u + 8
        if fl & 7:
            bad = _need(b, h + 4, lim, "gtpu")
            if bad:
                return bad
            nxt = b[h + 3]
            h += 4
            if fl & 4:
                while nxt:
                    bad = _need(b, h + 1, lim, "gtpu")
                    if bad:
                        return bad
                    el = b[h] * 4
                    if el == 0:
                        return ("gtpu", 0, 0, 0, None, "malformed")
                    bad = _need(b, h + el, lim, "gtpu")
                    if bad:
                        return bad
                    nxt = b[h + el - 1]
                    h += el
        iet = _ver(b, h)
        if iet == -1:
            return ("gtpu", 0, 0, 0, None, "truncated" if h < lim else "malformed")
        return "gtpu", h, K_ETYPE, iet, teid, None
    if port == UDP_TEREDO:
        return _teredo(b, u, lim)
    if port == UDP_AYIYA:
        return _ayiya(b, u, lim)
    if port == UDP_GRE:
        return _gre(b, u, lim)
    n = min(len(b), lim) - u          # no tunnel port: Zeek's detections, AYIYA's then Teredo's
    if n >= 3 and b[u + 1] == 0x52 and b[u + 2] == 0x11:
        t = _ayiya(b, u, lim)
        return t if t is None or t[5] is None else None
    if teredo_detect(b[u:u + n]):
        return _teredo(b, u, lim)
    return None


def _teredo(b: bytes, u: int, lim: int):
    """Teredo (RFC 4380, Zeek's DoParse): indications, then an IPv6 packet that fits the datagram."""
    h = u
    bl = min(len(b), lim)
    if h + 2 <= bl and b[h:h + 2] == b"\x00\x01":
        if h + 4 > bl:
            return None
        h += 4 + b[h + 2] + b[h + 3] + 9
    if h + 2 <= bl and b[h:h + 2] == b"\x00\x00":
        h += 8
    if h + 40 > bl or b[h] >> 4 != 6 or h + 40 + int.from_bytes(b[h + 4:h + 6], "big") > lim:
        return None
    return "teredo", h, K_ETYPE, 0x86DD, None, None


def _ayiya(b: bytes, u: int, lim: int):
    """AYIYA (Zeek's AYIYA.cc): identity and signature sized by the first two bytes; opcode 1 (forward)
    and next header 4 or 41 carry an IP packet."""
    bad = _need(b, u + 8, lim, "ayiya")
    if bad:
        return bad
    h = u + 8 + (1 << (b[u] >> 4)) + (b[u + 1] >> 4) * 4
    bad = _need(b, h, lim, "ayiya")
    if bad:
        return bad
    if b[u + 2] & 0x0F != 1 or h >= lim or b[u + 3] not in (4, 41):
        return None
    iet = _ver(b, h)
    if iet == -2:
        return None
    if iet == -1:
        return ("ayiya", 0, 0, 0, None, "truncated")
    return "ayiya", h, K_ETYPE, iet, None, None


def teredo_detect(d: bytes) -> bool:
    """Zeek's TeredoAnalyzer::DetectProtocol on a UDP payload: its old DPD signature (an IPv6 header
    with a 2001:0::/32 source or destination; '.' matches any byte but a newline), or an authentication
    and/or origin indication before an IPv6 header."""
    n = len(d)
    if n < 40 or (d[0] >> 4 != 6 and (d[0] != 0 or d[1] not in (0, 1))):
        return False
    if d[0] >> 4 == 6:
        for at in (8, 24):
            if d[at:at + 4] == b"\x20\x01\x00\x00" and 0x0A not in d[1:at] and 0x0A not in d[at + 4:40]:
                return True
    val = d[1]
    if val == 1:
        skip = 13 + d[2] + d[3]
        if n < skip:
            return False
        d, n = d[skip:], n - skip
        if n < 40:
            return False
        val = int.from_bytes(d[0:2], "big")
    if val == 0:
        return n >= 48 and d[8] >> 4 == 6
    return False


def _gre(b: bytes, q: int, lim: int):
    """A GRE header at q (IP protocol 47, or UDP port 4754): the _tunnel tuple."""
    if len(b) < q + 4:
        return ("gre", 0, 0, 0, None, "truncated" if q + 4 <= lim else "malformed")
    fw, ptype = struct.unpack(">HH", b[q:q + 4])
    ver, h, tid = fw & 7, q + 4, None
    if ver == 0:
        if fw & (dpkt.gre.GRE_CP | dpkt.gre.GRE_RP):
            h += 4
        if fw & dpkt.gre.GRE_KP:
            bad = _need(b, h + 4, lim, "gre")
            if bad:
                return bad
            tid = int.from_bytes(b[h:h + 4], "big")
            h += 4
        if fw & dpkt.gre.GRE_SP:
            h += 4
        if fw & dpkt.gre.GRE_RP:
            while True:
                bad = _need(b, h + 4, lim, "gre")
                if bad:
                    return bad
                sl = b[h + 3]
                h += 4 + sl
                if sl == 0:
                    break
    elif ver == 1:
        if not fw & dpkt.gre.GRE_KP:
            return None
        bad = _need(b, h + 4, lim, "gre")
        if bad:
            return bad
        tid = int.from_bytes(b[h + 2:h + 4], "big")
        h += 4 + (4 if fw & dpkt.gre.GRE_SP else 0) + (4 if fw & dpkt.gre.GRE_AP else 0)
    else:
        return None
    bad = _need(b, h, lim, "gre")
    if bad:
        return bad
    if ptype in (0x88BE, 0x22EB):
        if ptype == 0x88BE and not fw & dpkt.gre.GRE_SP:
            return "erspan", h, L2_ETHER, -1, None, None
        eh = 8 if ptype == 0x88BE else 12
        bad = _need(b, h + eh, lim, "erspan")
        if bad:
            return bad
        sid = int.from_bytes(b[h + 2:h + 4], "big") & 0x3FF
        ik, iet = L2_ETHER, -1
        if ptype == 0x22EB:
            ft = (b[h + 10] >> 2) & 0x1F
            if b[h + 11] & 1:
                eh += 8
                bad = _need(b, h + eh, lim, "erspan")
                if bad:
                    return bad
            if ft == 2:
                ik, iet = K_ETYPE, _ver(b, h + eh)
        return "erspan", h + eh, ik, iet, sid, None
    if ver == 1:
        iet, h = _ppp(b, h)
        return "gre", h, K_ETYPE, iet, tid, None
    if aruba_gre(ptype):
        return "gre", h, L2_80211, -1, tid, None
    if ptype == 0x6558:
        return "gre", h, L2_ETHER, -1, tid, None
    return "gre", h, K_ETYPE, ptype, tid, None


def _ppp(b: bytes, h: int):
    """PPP: optional FF 03, a 1- or 2-byte protocol → (ethertype, offset)."""
    if b[h:h + 2] == b"\xff\x03":
        h += 2
    if h >= len(b):
        return -1, h
    if b[h] & 1:
        pr, h = b[h], h + 1
    else:
        if h + 2 > len(b):
            return -1, h
        pr, h = int.from_bytes(b[h:h + 2], "big"), h + 2
    return {0x21: 0x0800, 0x57: 0x86DD, 0x281: 0x8847, 0x283: 0x8848}.get(pr, -2), h


def _l4(row: dict, proto: int, b: bytes, l4len: int, l4off: int) -> dict:
    hl = None
    if proto == 6:
        if len(b) >= 4:
            row.update(sport=int.from_bytes(b[0:2], "big"), dport=int.from_bytes(b[2:4], "big"))
        # every field whose bytes were captured
        if len(b) >= 8:
            row["tcp_seq"] = int.from_bytes(b[4:8], "big")
        if len(b) >= 12:
            row["tcp_ack"] = int.from_bytes(b[8:12], "big")
        if len(b) >= 14:
            row.update(tcp_flags=int.from_bytes(b[12:14], "big") & 0x0FFF, tcp_hdr_len=(b[12] >> 4) * 4)
        if len(b) >= 16:
            row["tcp_win"] = int.from_bytes(b[14:16], "big")
        if len(b) >= 20:
            doff = (b[12] >> 4) * 4
            if doff >= 20:  # dpkt refuses a data offset < 5
                tcp = dpkt.tcp.TCP(b[:20])
                assert (tcp.seq, tcp.ack, tcp._off_flags & 0x0FFF, tcp.win) == (
                    row["tcp_seq"], row["tcp_ack"], row["tcp_flags"], row["tcp_win"])
            if doff < 20 or doff > l4len:
                row["malformed"] = True
            elif doff > len(b):
                row["truncated"] = True
            else:
                dpkt.tcp.TCP(b[:doff])  # options parse through dpkt too
                hl = doff
        else:
            row["truncated"] = True
    elif proto == 17:
        if len(b) >= 4:
            row.update(sport=int.from_bytes(b[0:2], "big"), dport=int.from_bytes(b[2:4], "big"))
        if len(b) >= 8:
            udp = dpkt.udp.UDP(b[:8])
            row.update(sport=udp.sport, dport=udp.dport)
            if l4len < 8:
                row["malformed"] = True
            else:
                hl = 8
        else:
            row["truncated"] = True
    elif proto in (1, 58):
        if len(b) >= 2:
            row.update(icmp_type=b[0], icmp_code=b[1])
            have = min(len(b), l4len)
            if b[0] in (_ICMP_ECHO if proto == 1 else _ICMP6_ECHO):
                if have >= 6:
                    row["icmp_id"] = int.from_bytes(b[4:6], "big")
                if have >= 8:
                    e = dpkt.icmp.ICMP.Echo(b[4:8])
                    row.update(icmp_id=e.id, icmp_seq=e.seq)
            if len(b) >= 8:
                if l4len < 8:
                    row["malformed"] = True
                else:
                    hl = 8
                    if b[0] in (_ICMP_ERRORS if proto == 1 else _ICMP6_ERRORS):
                        if proto == 1 and b[0] == 3 and b[1] == 4:
                            row["icmp_mtu"] = int.from_bytes(b[6:8], "big")
                        elif proto == 58 and b[0] == 2:
                            row["icmp_mtu"] = int.from_bytes(b[4:8], "big")
                        _quoted(row, b[8:max(8, min(len(b), l4len))])
            else:
                row["truncated"] = True
        else:
            row["truncated"] = True
    if hl is not None:
        plen = l4len - hl
        row.update(payload_len=plen, payload_off=l4off + hl,
                   payload_caplen=max(0, min(plen, len(b) - hl)))
    return row


def _quoted(row: dict, b: bytes) -> None:
    """The header an ICMP/ICMPv6 error quotes: addresses, protocol, ports / echo id+seq / TCP seq."""
    et = _ver(b)
    if et == 0x0800:
        got = _ipv4(row, b, len(b), quoted=True)
    elif et == 0x86DD:
        got = _ipv6(row, b, len(b), quoted=True)
    else:
        return
    if got is None:
        return
    proto, at, _l4len = got
    s = b[at:]
    if proto in (6, 17) and len(s) >= 4:
        row.update(quoted_sport=int.from_bytes(s[0:2], "big"), quoted_dport=int.from_bytes(s[2:4], "big"))
        if proto == 6 and len(s) >= 8:
            row["quoted_tcp_seq"] = int.from_bytes(s[4:8], "big")
    elif proto in (1, 58) and len(s) >= 8 and s[0] in (_ICMP_ECHO if proto == 1 else _ICMP6_ECHO):
        row.update(quoted_icmp_id=int.from_bytes(s[4:6], "big"), quoted_icmp_seq=int.from_bytes(s[6:8], "big"))


def _to_table(rows: list[dict]) -> pd.DataFrame:
    cols = {}
    defaults = {"tunnel": "none", "tunnel_depth": 0, "offload": False}
    n = len(rows)
    for c in PACKETS:
        d = defaults.get(c.name)
        vals = [r.get(c.name, d) for r in rows]
        if c.dtype.startswith("Sparse[") and c.dtype not in (SPARSE, SPARSE_TEXT):   # flags, tunnel_depth
            dt = pd.api.types.pandas_dtype(c.dtype)
            v = np.array([dt.fill_value if x is None else x for x in vals], dtype=dt.subtype)
            at = np.flatnonzero(v != dt.fill_value)
            cols[c.name] = sparse_at(v[at], at, n, c.dtype)
        elif c.name in CODED:
            at = np.array([i for i, x in enumerate(vals) if x is not None], dtype=np.int64)
            cols[c.name] = coded(np.array([vals[i] for i in at], dtype=np.int64), at, n, c.name)
        elif c.name == "l3":
            cols[c.name] = pd.Categorical(vals, categories=list(L3_KINDS))
        elif c.name == "tunnel":
            cols[c.name] = pd.Categorical(vals, categories=list(TUNNEL_KINDS))
        elif c.dtype == SPARSE:
            cols[c.name] = pd.arrays.SparseArray(np.array([np.nan if v is None else float(v) for v in vals],
                                                          dtype=np.float64), fill_value=np.nan)
        elif c.dtype == SPARSE_TEXT:
            cols[c.name] = pd.arrays.SparseArray(np.array([np.nan if v is None else v for v in vals], dtype=object),
                                                 fill_value=np.nan, dtype=pd.SparseDtype(object, np.nan))
        elif c.dtype == "category":
            cols[c.name] = vals
        elif c.dtype in ("bool",):
            cols[c.name] = np.array([bool(v) for v in vals], dtype=bool)
        else:
            cols[c.name] = pd.array(vals, dtype=c.dtype)
    df = pd.DataFrame(cols)
    df = _address_categories(df, "src", "dst")
    return _address_categories(df, "outer_src", "outer_dst")


def _address_categories(df: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    """Same category order as the fast backend: IPv4 sorted numerically, then IPv6 sorted by bytes."""
    vals = set(df[a].dropna()) | set(df[b].dropna())
    v4 = sorted((v for v in vals if ":" not in v), key=lambda a: socket.inet_aton(a))
    v6 = sorted((v for v in vals if ":" in v), key=lambda a: socket.inet_pton(socket.AF_INET6, a))
    dtype = pd.CategoricalDtype(v4 + v6)
    df[a] = df[a].astype(dtype)
    df[b] = df[b].astype(dtype)
    return df
