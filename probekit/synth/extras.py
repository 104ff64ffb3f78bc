"""Frames the probe renderer (synth.write) does not make: probe datagrams crossing in fragments, ICMP/ICMPv6
errors quoting a probe, and the ordinary background traffic of the ``background`` scenario.

``render_all`` renders a simulation with ``synth.write.render`` and then transforms the rows the simulator
marked (``packets['xform']``): a fragmented row becomes its IPv4/IPv6 fragments (the datagram completes at
the row's time: earlier fragments precede it by a serialisation gap, so an RTT taken from the last
fragment of the reply equals the truth's), an error row becomes an ICMP error from the reporter (its
template frame's link and IP header) quoting the matching ``quoted`` row's IP packet (as much as fits in
576 bytes for ICMP, 1280 for ICMPv6, as RFC 1812 and RFC 4443 ask). All of it is vectorised per layout
group; the background's few hundred frames per run are built one by one with dpkt.
"""
from __future__ import annotations

import struct

import numpy as np
import pandas as pd

from ..wire import LINK_ETHERNET, checksum16
from .simulate import XFORM_ERROR, XFORM_FRAGMENT, XFORM_NONE, XFORM_QUOTED, Simulation
from .write import ETH_MIN, Rendered, render

__all__ = ["FRAG_GAP_NS", "fragment_block", "render_all"]

FRAG_GAP_NS = 12_000          # one 1500-byte frame at 1 Gb/s
QUOTE_MAX = {4: 576 - 20 - 8, 6: 1280 - 40 - 8}


def _put(block, off, values, width):
    v = np.asarray(values, dtype=np.uint64)
    for i in range(width):
        block[:, off + i] = ((v >> np.uint64(8 * (width - 1 - i))) & np.uint64(0xFF)).astype(np.uint8)


def _get(block, off, width) -> np.ndarray:
    v = np.zeros(block.shape[0], np.uint64)
    for i in range(width):
        v = (v << np.uint64(8)) | block[:, off + i].astype(np.uint64)
    return v


def _ip_total(block: np.ndarray, l2: int, family: int) -> int:
    """IP packet bytes of the first frame of a block, from its header."""
    if family == 4:
        return int(_get(block, l2 + 2, 2)[0])
    return int(_get(block, l2 + 4, 2)[0]) + 40


def _addr_sum(addr: np.ndarray) -> np.ndarray:
    return ((addr[:, 0::2].astype(np.uint64) << np.uint64(8)) | addr[:, 1::2]).sum(axis=1, dtype=np.uint64)


def fragment_block(block: np.ndarray, l2: int, family: int, mtu: int, ids: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """Fragments of equal-layout frames (k, L): [(offset in the IP payload, (k, l2 + header + data) block)].
    IPv4: the header copied with MF/offset set, DF cleared and the checksum redone; IPv6: a Fragment header
    (RFC 8200 4.5) after the fixed header, identification ``ids``."""
    iph = 20 if family == 4 else 40
    payload = block[:, l2 + iph:]
    total = payload.shape[1]
    chunk = ((mtu - 20) if family == 4 else (mtu - 48)) & ~7
    out = []
    for off in range(0, total, chunk):
        n = min(chunk, total - off)
        more = off + n < total
        if family == 4:
            f = np.empty((block.shape[0], l2 + 20 + n), np.uint8)
            f[:, :l2 + 20] = block[:, :l2 + 20]
            _put(f, l2 + 2, 20 + n, 2)
            _put(f, l2 + 6, (0x2000 if more else 0) | (off // 8), 2)
            f[:, l2 + 10:l2 + 12] = 0
            _put(f, l2 + 10, checksum16(f[:, l2:l2 + 20]), 2)
            f[:, l2 + 20:] = payload[:, off:off + n]
        else:
            f = np.empty((block.shape[0], l2 + 48 + n), np.uint8)
            f[:, :l2 + 40] = block[:, :l2 + 40]
            _put(f, l2 + 4, 8 + n, 2)
            nh = block[:, l2 + 6].copy()
            f[:, l2 + 6] = 44
            f[:, l2 + 40] = nh
            f[:, l2 + 41] = 0
            _put(f, l2 + 42, off | (1 if more else 0), 2)
            _put(f, l2 + 44, ids, 4)
            f[:, l2 + 48:] = payload[:, off:off + n]
        out.append((off, f))
    return out


def _error_block(template: np.ndarray, quoted: np.ndarray, l2: int, family: int, typ, code, mtu) -> np.ndarray:
    """ICMP/ICMPv6 errors: the template's link and IP header, then type/code/checksum, the MTU word where the
    type has one (frag-needed: RFC 1191; packet too big: RFC 4443), and the quoted IP packet."""
    iph = 20 if family == 4 else 40
    k, q = quoted.shape
    f = np.zeros((k, l2 + iph + 8 + q), np.uint8)
    f[:, :l2 + iph] = template[:, :l2 + iph]
    o = l2 + iph
    f[:, o] = typ
    f[:, o + 1] = code
    if family == 4:
        _put(f, l2 + 2, iph + 8 + q, 2)
        f[:, l2 + 6:l2 + 8] = 0          # no DF on the error
        f[:, l2 + 10:l2 + 12] = 0
        _put(f, l2 + 10, checksum16(f[:, l2:l2 + 20]), 2)
        big = (np.asarray(typ) == 3) & (np.asarray(code) == 4)
        _put(f, o + 6, np.where(big, mtu, 0), 2)
    else:
        _put(f, l2 + 4, 8 + q, 2)
        _put(f, o + 4, np.where(np.asarray(typ) == 2, mtu, 0), 4)
    f[:, o + 8:] = quoted
    extra = 0 if family == 4 else (_addr_sum(f[:, l2 + 8:l2 + 24]) + _addr_sum(f[:, l2 + 24:l2 + 40])
                                   + np.uint64(8 + q) + np.uint64(58))
    _put(f, o + 2, checksum16(f[:, o:], extra), 2)
    return f


def render_all(sim: Simulation, link: int = LINK_ETHERNET, vantage: str = "prober", **kw):
    """``(t_ns, Rendered)``: every frame of the simulation in time order, fragments, ICMP errors and the
    background included. Without any of them this is ``synth.write.render`` and the simulation's times."""
    pk = sim.packets
    xf = pk.get("xform")
    bg = getattr(sim, "background", None)
    r = render(sim, link, vantage, **kw)
    if (xf is None or not (xf != XFORM_NONE).any()) and not bg:
        return pk["t_ns"], r
    xf = np.zeros(r.n, np.int64) if xf is None else xf
    l2 = 14 if link == LINK_ETHERNET else 20
    at_prober = vantage == "prober"
    incoming = (pk["from_prober"].astype(bool) != at_prober)
    parts = []       # (t (k,), frame_len (k,), iface (k,), block (k, L))

    def add(t, block, iface, pad_mask):
        lens = np.full(len(t), block.shape[1], np.int64)
        if link == LINK_ETHERNET and block.shape[1] < ETH_MIN and pad_mask.any():
            block = np.pad(block, ((0, 0), (0, ETH_MIN - block.shape[1])))
            lens = np.where(pad_mask, ETH_MIN, lens)
        parts.append((np.asarray(t, np.int64), lens, np.asarray(iface, np.int32), block))

    q_rows = np.flatnonzero(xf == XFORM_QUOTED)
    e_rows = np.flatnonzero(xf == XFORM_ERROR)
    q_of_e = pd.Index(pk["probe"][q_rows]).get_indexer(pk["probe"][e_rows]) if len(e_rows) else np.zeros(0, int)
    quoted: dict[int, np.ndarray] = {}     # error position -> quoted IP bytes
    templates = []
    for rows, block in r.groups:
        x = xf[rows]
        keep = x == XFORM_NONE
        if keep.any():
            fl = r.frame_len[rows[keep]]
            add(pk["t_ns"][rows[keep]], block[keep], r.iface[rows[keep]], np.zeros(int(keep.sum()), bool))
            parts[-1] = (parts[-1][0], fl, parts[-1][2], parts[-1][3])
        fam = int(pk["family"][rows[0]])
        iph = 20 if fam == 4 else 40
        fr = x == XFORM_FRAGMENT
        if fr.any():
            rr = rows[fr]
            ip_len = _ip_total(block[fr][:1], l2, fam)
            if ip_len <= int(pk["frag_mtu"][rr[0]]):       # fits after all: leave it whole
                add(pk["t_ns"][rr], block[fr], r.iface[rr], incoming[rr])
            else:
                ids = ((pk["probe"][rr].astype(np.uint64) * np.uint64(2654435761)
                        + pk["seq_in_probe"][rr].astype(np.uint64)) & np.uint64(0xFFFFFFFF))
                frags = fragment_block(block[fr], l2, fam, int(pk["frag_mtu"][rr[0]]), ids)
                nf = len(frags)
                drop = pk["drop_frag"][rr]
                for j, (_, fb) in enumerate(frags):
                    ok = ~((drop == -2) & (j == nf // 2)) & ~(drop == j)
                    if ok.any():
                        t = pk["t_ns"][rr] - (nf - 1 - j) * FRAG_GAP_NS
                        add(t[ok], fb[ok], r.iface[rr][ok], incoming[rr][ok])
        qm = x == XFORM_QUOTED
        if qm.any():
            pos = np.searchsorted(q_rows, rows[qm])
            qlen = min(block.shape[1] - l2, QUOTE_MAX[fam])
            ip_total = _ip_total(block[qm][:1], l2, fam)
            qlen = min(qlen, ip_total)
            for p, b in zip(pos.tolist(), block[qm][:, l2:l2 + qlen]):    # per error row, bytes only
                quoted[p] = b
            del iph
        em = x == XFORM_ERROR
        if em.any():
            templates.append((rows[em], block[em], fam))
    for rows, block, fam in templates:
        epos = np.searchsorted(e_rows, rows)
        qs = [quoted.get(int(q_of_e[p])) for p in epos.tolist()]
        lens = np.array([len(q) if q is not None else -1 for q in qs])
        for L in np.unique(lens[lens >= 0]).tolist():          # one block per quoted length
            m = lens == L
            qb = np.stack([qs[i] for i in np.flatnonzero(m)])
            rr = rows[m]
            f = _error_block(block[m], qb, l2, fam, pk["err_type"][rr], pk["err_code"][rr], pk["err_mtu"][rr])
            add(pk["t_ns"][rr], f, r.iface[rr], incoming[rr])
    if bg:
        for t, frame in _background_frames(bg, link):
            add(np.array([t]), np.frombuffer(frame, np.uint8)[None, :].copy(), np.zeros(1, np.int32),
                np.array([True]))
    t_all = np.concatenate([p[0] for p in parts])
    order = np.argsort(t_all, kind="stable")
    pos = np.empty_like(order)
    pos[order] = np.arange(order.size)
    groups, start = [], 0
    lens = np.zeros(t_all.size, np.int64)
    iface = np.zeros(t_all.size, np.int32)
    for t, fl, ifc, block in parts:
        rows = pos[start:start + len(t)]
        lens[rows] = fl
        iface[rows] = ifc
        groups.append((rows, block))
        start += len(t)
    return t_all[order], Rendered(t_all.size, lens, iface, groups, r.iface_names, r.link)


# ------------------------------------------------------------------------------------ background
def _background_frames(bg: list[dict], link: int):
    """(t_ns, frame bytes) of every background packet description (see simulate._background)."""
    import dpkt
    for d in bg:
        if d["proto"] == "arp":
            arp = dpkt.arp.ARP(op=d["op"], sha=d["sha"], spa=d["spa"], tha=d["tha"], tpa=d["tpa"])
            body, etype, dst_mac = bytes(arp), 0x0806, (b"\xff" * 6 if d["op"] == 1 else d["tha"])
            src_mac = d["sha"]
        else:
            if d["proto"] == "tcp":
                l4 = dpkt.tcp.TCP(sport=d["sport"], dport=d["dport"], seq=d["seq"], ack=d["ack"], flags=d["flags"],
                                  win=64240, data=d["payload"])
                num = 6
            else:
                l4 = dpkt.udp.UDP(sport=d["sport"], dport=d["dport"], data=d["payload"])
                l4.ulen = 8 + len(d["payload"])
                num = 17
            src, dst = d["src"], d["dst"]
            if d["family"] == 4:
                ip = dpkt.ip.IP(p=num, ttl=d["ttl"], id=d["ip_id"], src=src, dst=dst, data=l4)
                ip.len = 20 + len(bytes(l4))
                etype = 0x0800
            else:
                ip = dpkt.ip6.IP6(nxt=num, hlim=d["ttl"], src=src, dst=dst, data=l4)
                ip.plen = len(bytes(l4))
                ip.extension_hdrs = {}
                etype = 0x86DD
            body = bytes(ip)
            src_mac, dst_mac = d["mac_src"], d["mac_dst"]
        if link == LINK_ETHERNET:
            frame = dst_mac + src_mac + struct.pack(">H", etype) + body
        else:
            frame = struct.pack(">HHIHBB8s", etype, 0, 2, 1, 0 if d.get("incoming", True) else 4, 6,
                                src_mac + b"\0\0") + body
        yield d["t_ns"], frame
