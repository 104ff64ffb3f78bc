"""backend="dpkt": the reference decoder. Frames are located by probekit's container walk (dpkt's own
pcapng reader handles neither mixed-endian sections nor per-interface link types); every header is
decoded by dpkt objects, one packet at a time, and mapped onto the same schema."""
from __future__ import annotations

import socket
import struct

import dpkt
import numpy as np
import pandas as pd

from ..protocol import ICMP_ID_SEQ_TYPES, ICMPV6_ID_SEQ_TYPES
from ..schema import L3_KINDS, PACKETS
from ._frames import index_frames
from .linktypes import (L2_ETHER, L2_IPNET, L2_IPV4, L2_IPV6, L2_LOOP, L2_NULL, L2_RAW, L2_SLL, L2_SLL2,
                        decoder_kind)
from .reader import open_bytes

_ICMP_ECHO = ICMP_ID_SEQ_TYPES
_ICMP6_ECHO = ICMPV6_ID_SEQ_TYPES
_QINQ = {0x8100, 0x88A8, 0x9100}
_V6_EXT = {0, 43, 44, 51, 60, 135, 139, 140}


def read_dpkt(path: str, strict: bool = False):
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
        row = _decode(raw[off:off + cap], decoder_kind(itf.linktype), int(idx.wirelen[i]))
        if row.get("payload_off") is not None:
            row["payload_off"] += off
        row.update(frame=i + 1, iface=int(idx.iface[i]), linktype=itf.linktype,
                   ts_ns=None if idx.has_ts is not None and not idx.has_ts[i] else int(idx.ts_ns[i]),
                   caplen=cap, wirelen=int(idx.wirelen[i]))
        row["truncated"] = row.get("truncated", False) or cap < int(idx.wirelen[i])
        rows.append(row)
    return _to_table(rows), idx


def _link(frame: bytes, kind: int):
    """(ethertype-ish, l3 offset, vlan) using dpkt's link-layer classes."""
    if kind == L2_ETHER:
        # dpkt's Ethernet stops after two VLAN tags; walk the stack with its tag and label classes
        if len(frame) < 14:
            raise dpkt.NeedData
        et = int.from_bytes(frame[12:14], "big")
        hl, vlan = 14, None
        while et in _QINQ:
            if len(frame) < hl + 4:
                raise dpkt.NeedData
            tag = dpkt.ethernet.VLANtag8021Q(frame[hl:hl + 4])
            vlan = tag.id if vlan is None else vlan
            et, hl = tag.type, hl + 4
        if et in (0x8847, 0x8848):
            while True:
                if len(frame) < hl + 4:
                    raise dpkt.NeedData
                lbl = dpkt.ethernet.MPLSlabel(frame[hl:hl + 4])
                hl += 4
                if lbl.s:
                    break
            v = frame[hl] >> 4 if len(frame) > hl else 0
            return {4: 0x0800, 6: 0x86DD}.get(v, -2), hl, vlan
        return et, hl, vlan
    if kind == L2_SLL:
        sll = dpkt.sll.SLL(frame)
        return sll.ethtype, 16, None
    if kind == L2_SLL2:
        sll2 = dpkt.sll2.SLL2(frame)
        return sll2.ethtype, 20, None
    if kind in (L2_NULL, L2_LOOP):
        # dpkt's Loopback reads the family in this host's byte order and then parses the payload
        # itself; the writer's byte order is what matters, so it is read here
        if len(frame) < 4:
            raise dpkt.NeedData
        if kind == L2_LOOP or (frame[0] == 0 and frame[1] == 0):
            fam = int.from_bytes(frame[:4], "big")
        else:
            fam = int.from_bytes(frame[:4], "little")
        return {2: 0x0800, 24: 0x86DD, 28: 0x86DD, 30: 0x86DD, 10: 0x86DD}.get(fam, -2), 4, None
    if kind in (L2_RAW, L2_IPV4, L2_IPV6):
        v = frame[0] >> 4
        return {4: 0x0800, 6: 0x86DD}.get(v, -3), 0, None
    if kind == L2_IPNET:
        if len(frame) < 24:
            raise dpkt.NeedData
        return {2: 0x0800, 26: 0x86DD}.get(frame[1], -2), 24, None
    return None, 0, None


def _decode(frame: bytes, kind: int, wirelen: int) -> dict:
    row: dict = {"l3": "none", "truncated": False, "malformed": False}
    try:
        et, hl, vlan = _link(frame, kind)
    except (dpkt.NeedData, dpkt.UnpackError, IndexError):
        row["truncated"] = True
        return row
    row["vlan"] = vlan
    if et is None:
        return row
    if et == -2:
        row["l3"] = "other"
        return row
    if et == -3:
        row.update(l3="other", malformed=True)
        return row
    want = {L2_IPV4: 0x0800, L2_IPV6: 0x86DD}.get(kind)
    if want is not None and et != want:
        row["malformed"] = True
    l3b = frame[hl:]
    if et in (0x0806, 0x8035):
        row["l3"] = "arp"
        return row
    if et not in (0x0800, 0x86DD):
        row["l3"] = "other"
        return row
    wire_l3 = wirelen - hl
    if et == 0x0800:
        row["l3"] = "ipv4"
        if len(l3b) < 20:
            row["truncated"] = True
            return row
        if l3b[0] >> 4 != 4:
            row["malformed"] = True
            return row
        try:
            ip = dpkt.ip.IP(l3b)
        except (dpkt.NeedData, dpkt.UnpackError):
            ip = None
        if ip is None:  # options cut off or lengths inconsistent: the fixed 20-byte header only
            v_hl, _tos, tot, ipid, ff, ttl, proto, _sum, src, dst = struct.unpack(">BBHHHBBH4s4s", l3b[:20])
            ihl = (v_hl & 15) * 4
            row.update(src=socket.inet_ntoa(src), dst=socket.inet_ntoa(dst), ip_proto=proto, ip_len=tot,
                       ip_hdr_len=ihl, ttl=ttl, ip_id=ipid, ip_df=bool(ff & 0x4000), ip_mf=bool(ff & 0x2000),
                       frag_offset=(ff & 0x1FFF) * 8)
            if ihl < 20 or tot < ihl or tot > wire_l3:
                row["malformed"] = True
            else:
                row["truncated"] = True
            return row
        ihl = ip.hl * 4
        row.update(src=socket.inet_ntoa(ip.src), dst=socket.inet_ntoa(ip.dst), ip_proto=ip.p, ip_len=ip.len,
                   ip_hdr_len=ihl, ttl=ip.ttl, ip_id=ip.id, ip_df=bool(ip.df), ip_mf=bool(ip.mf),
                   frag_offset=ip.offset * 8)
        if ihl < 20 or ip.len < ihl:
            row["malformed"] = True
            return row
        l4len = ip.len - ihl
        if ip.len > wire_l3:
            row["malformed"] = True
            l4len = wire_l3 - ihl
        if ip.offset:
            return row
        return _l4(row, ip.p, l3b[ihl:], l4len, hl + ihl)
    row["l3"] = "ipv6"
    if len(l3b) < 40:
        row["truncated"] = True
        return row
    if l3b[0] >> 4 != 6:
        row["malformed"] = True
        return row
    try:
        ip6 = dpkt.ip6.IP6(l3b)
    except (dpkt.NeedData, dpkt.UnpackError):
        ip6 = None
    _vfc, plen, nxt, hlim, src, dst = struct.unpack(">IHBB16s16s", l3b[:40])
    row.update(src=socket.inet_ntop(socket.AF_INET6, src), dst=socket.inet_ntop(socket.AF_INET6, dst),
               ip_len=40 + plen, ttl=hlim)
    # walk the extension headers from dpkt's parsed list, in wire order
    nh = nxt
    pos = 40
    first = True
    exts = getattr(ip6, "all_extension_headers", None) if ip6 is not None else None
    for ext in exts or []:
        if nh not in _V6_EXT:
            break
        if isinstance(ext, dpkt.ip6.IP6FragmentHeader):
            row.update(ip_id=ext.id, ip_mf=bool(ext.m_flag), frag_offset=ext.frag_off * 8)
            first = ext.frag_off == 0
        pos += len(ext)
        nh = ext.nxt
        if not first:
            break
    if ip6 is None or (nh in _V6_EXT and first):
        row.update(ip_proto=nh, ip_hdr_len=pos)
        row["truncated"] = True
        return row
    row.update(ip_proto=nh, ip_hdr_len=pos)
    if pos - 40 > plen:
        row["malformed"] = True
        return row
    l4len = plen - (pos - 40)
    if 40 + plen > wire_l3:
        row["malformed"] = True
        l4len = wire_l3 - pos
    if not first:
        return row
    return _l4(row, nh, l3b[pos:], l4len, hl + pos)


def _l4(row: dict, proto: int, b: bytes, l4len: int, l4off: int) -> dict:
    hl = None
    if proto == 6:
        if len(b) >= 4:
            row.update(sport=int.from_bytes(b[0:2], "big"), dport=int.from_bytes(b[2:4], "big"))
        if len(b) >= 20:
            tcp = dpkt.tcp.TCP(b[:20])  # fixed header through dpkt; options need the full header
            doff = tcp.off * 4
            row.update(tcp_seq=tcp.seq, tcp_ack=tcp.ack, tcp_flags=tcp._off_flags & 0x0FFF,
                       tcp_win=tcp.win, tcp_hdr_len=doff)
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
            if len(b) >= 8:
                if l4len < 8:
                    row["malformed"] = True
                else:
                    hl = 8
                    echo = _ICMP_ECHO if proto == 1 else _ICMP6_ECHO
                    if b[0] in echo:
                        e = dpkt.icmp.ICMP.Echo(b[4:8])
                        row.update(icmp_id=e.id, icmp_seq=e.seq)
            else:
                row["truncated"] = True
        else:
            row["truncated"] = True
    if hl is not None:
        plen = l4len - hl
        row.update(payload_len=plen, payload_off=l4off + hl,
                   payload_caplen=max(0, min(plen, len(b) - hl)))
    return row


def _to_table(rows: list[dict]) -> pd.DataFrame:
    cols = {}
    for c in PACKETS:
        vals = [r.get(c.name) for r in rows]
        if c.name == "l3":
            cols[c.name] = pd.Categorical(vals, categories=list(L3_KINDS))
        elif c.dtype == "category":
            cols[c.name] = vals
        elif c.dtype in ("bool",):
            cols[c.name] = np.array([bool(v) for v in vals], dtype=bool)
        else:
            cols[c.name] = pd.array(vals, dtype=c.dtype)
    df = pd.DataFrame(cols)
    return _address_categories(df)


def _address_categories(df: pd.DataFrame) -> pd.DataFrame:
    """Same category order as the fast backend: IPv4 sorted numerically, then IPv6 sorted by bytes."""
    vals = set(df["src"].dropna()) | set(df["dst"].dropna())
    v4 = sorted((v for v in vals if ":" not in v), key=lambda a: socket.inet_aton(a))
    v6 = sorted((v for v in vals if ":" in v), key=lambda a: socket.inet_pton(socket.AF_INET6, a))
    dtype = pd.CategoricalDtype(v4 + v6)
    df["src"] = df["src"].astype(dtype)
    df["dst"] = df["dst"].astype(dtype)
    return df
