"""Simulated packets → frames (probekit.wire) → a pcap or pcapng file, all vectorised."""
from __future__ import annotations

import struct

import numpy as np
import pandas as pd

from .._jit import njit
from ..wire import LINK_ETHERNET, LINK_SLL2, Layout, build_frames
from .simulate import Simulation

__all__ = ["render", "encapsulate", "ENCAPS", "write_pcap", "write_pcapng", "Rendered"]

GATEWAY_PROBER = bytes.fromhex("020000000001")
GATEWAY_TARGET = bytes.fromhex("020000000002")
TARGET_MAC = bytes.fromhex("020000000201")
ETH_MIN = 60   # bytes, without the FCS


class Rendered:
    """Frames of a simulation: lengths, interface per packet, and row blocks grouped by layout."""

    def __init__(self, n, frame_len, iface, groups, iface_names, link):
        self.n = n
        self.frame_len = frame_len          # int64 (n,)
        self.iface = iface                  # int32 (n,), index into iface_names
        self.groups = groups                # list of (row indices, (k, L) uint8 block)
        self.iface_names = iface_names
        self.link = link


def render(sim: Simulation, link: int = LINK_ETHERNET, vantage: str = "prober") -> Rendered:
    pk = sim.packets
    n = pk["t_ns"].size
    at_prober = vantage == "prober"
    fam = pk["family"]
    addr = np.zeros((len(sim.addresses), 16), np.uint8)
    for i, a in enumerate(sim.addresses):
        addr[i, :len(a)] = np.frombuffer(a, np.uint8)
    # the prober-side address of each packet names its ENI
    eni_addr = np.where(pk["from_prober"], pk["src"], pk["dst"])
    eni, enis = pd.factorize(eni_addr, sort=True)
    eni_mac = np.zeros((max(len(enis), 1), 6), np.uint8)
    eni_mac[:, :5] = np.frombuffer(bytes.fromhex("0200000001"), np.uint8)
    eni_mac[:, 5] = np.arange(1, max(len(enis), 1) + 1)
    gw = np.frombuffer(GATEWAY_PROBER if at_prober else GATEWAY_TARGET, np.uint8)
    if at_prober:
        local_mac = eni_mac[eni] if n else np.zeros((0, 6), np.uint8)
        local_out = pk["from_prober"].astype(bool)
    else:
        local_mac = np.broadcast_to(np.frombuffer(TARGET_MAC, np.uint8), (n, 6))
        local_out = ~pk["from_prober"].astype(bool)
    mac_src = np.where(local_out[:, None], local_mac, gw[None, :])
    mac_dst = np.where(local_out[:, None], gw[None, :], local_mac)
    if link == LINK_SLL2:
        iface = np.zeros(n, np.int32)
        names = ["any"]
        ifindex = (eni + 2) if at_prober else np.full(n, 2)
    else:
        iface = eni.astype(np.int32) if at_prober else np.zeros(n, np.int32)
        names = [f"eni{i}" for i in range(len(enis))] if at_prober else ["eth0"]
        ifindex = np.zeros(n, np.int64)
    frame_len = np.zeros(n, np.int64)
    groups = []
    # one group per layout (kind, family, size); factorize a packed key rather than sorting rows
    key = (pk["kind"].astype(np.int64) << 40) | (fam.astype(np.int64) << 32) | pk["size"].astype(np.int64)
    inv, uniq = pd.factorize(key, sort=True)
    order = np.argsort(inv, kind="stable")
    bounds = np.searchsorted(inv[order], np.arange(len(uniq) + 1))
    for g, k in enumerate(uniq):
        kind, family, size = int(k) >> 40, (int(k) >> 32) & 0xFF, int(k) & 0xFFFFFFFF
        rows = order[bounds[g]:bounds[g + 1]]
        lay = Layout(int(kind), int(family), int(size), link)
        alen = 4 if family == 4 else 16
        plen = int(pk["payload_len"][rows].max())
        payload = None
        if plen:
            payload = sim.payload_pool[pk["payload_off"][rows][:, None] + np.arange(plen)]
        block = build_frames(
            lay, src=addr[pk["src"][rows], :alen], dst=addr[pk["dst"][rows], :alen],
            ip_id=_ip_ids(pk, rows), ttl=pk["ttl"][rows], mac_src=mac_src[rows], mac_dst=mac_dst[rows],
            ifindex=ifindex[rows], outgoing=local_out[rows], icmp_id=pk["icmp_id"][rows],
            icmp_seq=pk["icmp_seq"][rows], payload=payload, sport=pk["sport"][rows], dport=pk["dport"][rows],
            seq=pk["tcp_seq"][rows], ack=pk["tcp_ack"][rows])
        frame_len[rows] = lay.frame_len
        if link == LINK_ETHERNET and lay.frame_len < ETH_MIN:
            # frames that crossed the wire to the capturing host arrive padded to Ethernet's minimum;
            # the host's own outgoing frames are captured before the NIC pads them
            block = np.pad(block, ((0, 0), (0, ETH_MIN - lay.frame_len)))
            frame_len[rows] = np.where(local_out[rows], lay.frame_len, ETH_MIN)
        groups.append((rows, block))
    return Rendered(n, frame_len, iface, groups, names, link)


ENCAPS = ("vxlan", "geneve", "gre")
MIRROR_SOURCE = bytes([10, 0, 0, 5])        # the mirrored ENI's address (outer source)
MIRROR_TARGET = bytes([10, 0, 9, 9])        # the mirror target (outer destination)
MIRROR_MAC_SRC = bytes.fromhex("0a0000000001")
MIRROR_MAC_DST = bytes.fromhex("0a0000000009")
MIRROR_VNI = 42                             # the Traffic Mirroring session's VNI (GRE: the key)


def _ipv4_checksum(h: bytes) -> int:
    s = sum(struct.unpack(f">{len(h) // 2}H", h))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def encapsulate(r: Rendered, kind: str, vni: int = MIRROR_VNI) -> Rendered:
    """Every Ethernet frame of ``r`` inside Ethernet/IPv4 and a VXLAN (UDP 4789, as VPC Traffic Mirroring
    delivers it), GENEVE (UDP 6081, protocol 0x6558) or GRE (transparent Ethernet bridging, key = vni)
    header, from the mirror source to the mirror target. UDP checksums are 0 (allowed over IPv4)."""
    if kind not in ENCAPS:
        raise ValueError(f"encap must be one of {', '.join(ENCAPS)}, not {kind!r}")
    if r.link != LINK_ETHERNET:
        raise ValueError("only Ethernet frames can be mirrored")
    groups = []
    for rows, block in r.groups:
        # the frames of one layout differ in length only by Ethernet padding: one header per length
        lens = r.frame_len[rows]
        for inner in np.unique(lens):
            sel = lens == inner
            hdr = _mirror_header(kind, int(inner), vni)
            out = np.zeros((int(sel.sum()), hdr.size + block.shape[1]), np.uint8)
            out[:, :hdr.size] = hdr
            out[:, hdr.size:] = block[sel]
            groups.append((rows[sel], out))
    extra = _mirror_header(kind, 0, vni).size
    return Rendered(r.n, r.frame_len + extra, r.iface, groups, r.iface_names, r.link)


def _mirror_header(kind: str, inner: int, vni: int) -> np.ndarray:
    """Outer Ethernet + IPv4 + tunnel header for an inner frame of ``inner`` bytes."""
    if kind == "gre":
        tun = struct.pack(">HHI", 0x2000, 0x6558, vni)
        proto = 47
    else:
        shim = (struct.pack(">BBHI", 0x08, 0, 0, vni << 8) if kind == "vxlan"
                else struct.pack(">BBHI", 0, 0, 0x6558, vni << 8))
        tun = struct.pack(">HHHH", 49152, 4789 if kind == "vxlan" else 6081, 8 + len(shim) + inner, 0) + shim
        proto = 17
    ip = bytearray(struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(tun) + inner, 0, 0x4000, 64, proto, 0,
                               MIRROR_SOURCE, MIRROR_TARGET))
    ip[10:12] = struct.pack(">H", _ipv4_checksum(bytes(ip)))
    return np.frombuffer(MIRROR_MAC_DST + MIRROR_MAC_SRC + b"\x08\x00" + bytes(ip) + tun, np.uint8)


def _ip_ids(pk, rows) -> np.ndarray:
    """IPv4 identification: a fixed hash of (probe, packet-in-probe), so it looks random yet needs no
    extra draws and does not depend on how packets are grouped."""
    h = (pk["probe"][rows].astype(np.uint64) * np.uint64(0x9E3779B1) + pk["seq_in_probe"][rows].astype(np.uint64)
         * np.uint64(0x85EBCA77) + np.uint64(0x2545F491)) & np.uint64(0xFFFFFFFF)
    return ((h ^ (h >> np.uint64(16))) & np.uint64(0xFFFF)).astype(np.int64)


@njit(cache=True)
def _scatter(out, starts, block, ncols):
    for i in range(starts.shape[0]):
        s = starts[i]
        for j in range(ncols[i]):
            out[s + j] = block[i, j]


def write_pcap(path, t_ns: np.ndarray, r: Rendered, snaplen: int = 262144, nano: bool = False) -> int:
    """Write classic pcap (little endian); returns the byte count."""
    n = r.n
    cap = np.minimum(r.frame_len, snaplen)
    rec = 16 + cap
    off = 24 + np.concatenate([[0], np.cumsum(rec)[:-1]]).astype(np.int64) if n else np.zeros(0, np.int64)
    total = 24 + int(rec.sum())
    out = np.zeros(total, np.uint8)
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out[:24] = np.frombuffer(struct.pack("<IHHiIII", magic, 2, 4, 0, 0, snaplen, r.link), np.uint8)
    hdr = np.empty((n, 4), "<u4")
    hdr[:, 0] = t_ns // 10**9
    hdr[:, 1] = (t_ns % 10**9) // (1 if nano else 1000)
    hdr[:, 2] = cap
    hdr[:, 3] = r.frame_len
    _scatter(out, off, hdr.view(np.uint8).reshape(n, 16), np.full(n, 16, np.int64))
    for rows, block in r.groups:
        _scatter(out, off[rows] + 16, block, cap[rows])
    with open(path, "wb") as f:
        f.write(out.tobytes())
    return total


def write_pcapng(path, t_ns: np.ndarray, r: Rendered, snaplen: int = 262144, nano: bool = True) -> int:
    """Write pcapng: one section, one IDB per interface (if_tsresol 10^-9 when nano), EPBs."""
    n = r.n
    blocks = [_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) +
                   _opt(4, b"probekit synth") + b"\0\0\0\0")]
    for name in r.iface_names:
        opts = _opt(2, name.encode())
        if nano:
            opts += _opt(9, bytes([9]))
        blocks.append(_block(1, struct.pack("<HHI", r.link, 0, snaplen) + opts + b"\0\0\0\0"))
    head = b"".join(blocks)
    cap = np.minimum(r.frame_len, snaplen)
    pad = (-cap) % 4
    blen = 32 + cap + pad
    off = len(head) + np.concatenate([[0], np.cumsum(blen)[:-1]]).astype(np.int64) if n else np.zeros(0, np.int64)
    total = len(head) + int(blen.sum())
    out = np.zeros(total, np.uint8)
    out[:len(head)] = np.frombuffer(head, np.uint8)
    units = t_ns if nano else t_ns // 1000
    hdr = np.empty((n, 7), "<u4")
    hdr[:, 0] = 6
    hdr[:, 1] = blen
    hdr[:, 2] = r.iface
    hdr[:, 3] = (units >> 32) & 0xFFFFFFFF
    hdr[:, 4] = units & 0xFFFFFFFF
    hdr[:, 5] = cap
    hdr[:, 6] = r.frame_len
    _scatter(out, off, hdr.view(np.uint8).reshape(n, 28), np.full(n, 28, np.int64))
    trailer = blen.astype("<u4").reshape(n, 1).view(np.uint8).reshape(n, 4)
    _scatter(out, off + blen - 4, trailer, np.full(n, 4, np.int64))
    for rows, block in r.groups:
        _scatter(out, off[rows] + 28, block, cap[rows])
    with open(path, "wb") as f:
        f.write(out.tobytes())
    return total


def _opt(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * ((-len(value)) % 4)


def _block(btype: int, body: bytes) -> bytes:
    n = len(body) + 12
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)
