"""Compiled inner loops of the reader: record walks and the L2-L4 decoder.

Written in the subset of Python that numba compiles; without numba (or with NUMBA_DISABLE_JIT=1)
the same functions run as plain Python, slowly but identically. Integers are widened with
``np.int64`` before shifting so that uint8 arithmetic never wraps in either mode.
"""
from __future__ import annotations

import numpy as np

from .._jit import njit
from .linktypes import (L2_ETHER, L2_IPNET, L2_IPV4, L2_IPV6, L2_LOOP, L2_NULL, L2_RAW, L2_SLL,
                        L2_SLL2)

# Walk stop reasons (shared with the Python drivers).
STOP_END = 0            # clean end of file
STOP_SHORT_HEADER = 1   # fewer bytes left than a record/block header
STOP_SHORT_DATA = 2     # record/block header promises more bytes than the file has
STOP_BAD_LENGTH = 3     # block length not a multiple of 4 / too small / trailer mismatch
STOP_NEEDS_PYTHON = 4   # pcapng: SHB or IDB, handled by the Python driver
STOP_BAD_CAPLEN = 5     # packet length inconsistent with its block
STOP_HUGE_RECORD = 6    # pcap record caplen beyond any sane snap length

MAX_RECORD = 1 << 24    # 16 MiB: larger pcap records are taken as corruption, not data

# Bits of the per-frame "present" word: which optional column groups the decoder filled.
P_VLAN = 1
P_IP = 2            # src, dst, ip_proto, ip_len, ip_hdr_len, ttl
P_IPID = 4          # ip_id
P_IPV4FLAGS = 8     # ip_df (IPv4 only)
P_FRAG = 16         # ip_mf, frag_offset
P_ICMP = 32         # icmp_type, icmp_code
P_ICMPID = 64       # icmp_id, icmp_seq
P_PORTS = 128       # sport, dport
P_TCP = 256         # tcp_flags, seq, ack, win, hdr_len
P_PAYLOAD = 512     # payload_len
P_PAYOFF = 1024     # payload_off, payload_caplen

# l3 codes (index into schema.L3_KINDS)
L3_IPV4 = 0
L3_IPV6 = 1
L3_ARP = 2
L3_OTHER = 3
L3_NONE = 4


@njit(cache=True, nogil=True)
def _rd16(b, o, be):
    if be:
        return (np.int64(b[o]) << 8) | np.int64(b[o + 1])
    return (np.int64(b[o + 1]) << 8) | np.int64(b[o])


@njit(cache=True, nogil=True)
def _rd32(b, o, be):
    if be:
        return ((np.int64(b[o]) << 24) | (np.int64(b[o + 1]) << 16)
                | (np.int64(b[o + 2]) << 8) | np.int64(b[o + 3]))
    return ((np.int64(b[o + 3]) << 24) | (np.int64(b[o + 2]) << 16)
            | (np.int64(b[o + 1]) << 8) | np.int64(b[o]))


@njit(cache=True, nogil=True)
def _be16(b, o):
    return (np.int64(b[o]) << 8) | np.int64(b[o + 1])


@njit(cache=True, nogil=True)
def _be32(b, o):
    return ((np.int64(b[o]) << 24) | (np.int64(b[o + 1]) << 16)
            | (np.int64(b[o + 2]) << 8) | np.int64(b[o + 3]))


@njit(cache=True, nogil=True)
def _be64(b, o):
    return (np.uint64(_be32(b, o)) << np.uint64(32)) | np.uint64(_be32(b, o + 4))


# ----------------------------------------------------------------------------------------- pcap
# Record-header layouts of classic pcap (libpcap sf-pcap.c): the usual 16-byte header, or the 24-byte
# "patched" header of magic 0xa1b2cd34 (Alexey Kuznetsov's patch: + ifindex, protocol, pkt_type, pad).
# Length order (``swap``): 0 caplen then len (2.4); 1 len then caplen (before 2.3, and DG/UX 543.0);
# 2 "maybe" (2.3: swapped only where the first field exceeds the second).
LEN_NOT_SWAPPED = 0
LEN_SWAPPED = 1
LEN_MAYBE_SWAPPED = 2


@njit(cache=True, nogil=True)
def _pcap_lengths(buf, off, be, swap):
    a = _rd32(buf, off + 8, be)
    b = _rd32(buf, off + 12, be)
    if swap == LEN_SWAPPED or (swap == LEN_MAYBE_SWAPPED and a > b):
        return b, a
    return a, b


@njit(cache=True, nogil=True)
def pcap_count(buf, start, be, hdrsize=16, swap=0, limit=-1):
    """Count whole records from ``start`` (at most ``limit`` if >= 0); return (count, stop_offset,
    stop_reason). A record that does not fit the buffer stops the walk (STOP_SHORT_*), so a chunked
    caller reads more and walks again from stop_offset."""
    n = buf.shape[0]
    off = start
    count = 0
    while True:
        if count == limit:
            return count, off, STOP_END
        if off == n:
            return count, off, STOP_END
        if off + hdrsize > n:
            return count, off, STOP_SHORT_HEADER
        cap, _wire = _pcap_lengths(buf, off, be, swap)
        if cap > MAX_RECORD:
            return count, off, STOP_HUGE_RECORD
        if off + hdrsize + cap > n:
            return count, off, STOP_SHORT_DATA
        count += 1
        off += hdrsize + cap


@njit(cache=True, nogil=True)
def pcap_fill(buf, start, be, count, data_off, ts_sec, ts_frac, caplen, wirelen, hdrsize=16, swap=0):
    off = start
    for i in range(count):
        ts_sec[i] = _rd32(buf, off, be)
        ts_frac[i] = _rd32(buf, off + 4, be)
        cap, wire = _pcap_lengths(buf, off, be, swap)
        caplen[i] = cap
        wirelen[i] = wire
        data_off[i] = off + hdrsize
        off += hdrsize + cap


# --------------------------------------------------------------------------------------- pcapng
@njit(cache=True, nogil=True)
def pcapng_walk(buf, start, be, snap0, fill, base, data_off, ts_raw, caplen, wirelen, iface,
                has_ts):
    """Walk packet blocks (EPB, SPB, obsolete PB) from ``start`` until a block Python must handle
    (SHB, IDB), the end, or an error. Other blocks are skipped. With ``fill`` false it only
    counts; with ``fill`` true it writes rows ``base``.. of the output arrays.

    Returns (count, stop_offset, stop_reason, detail).
    """
    n = buf.shape[0]
    off = start
    count = 0
    while True:
        if off == n:
            return count, off, STOP_END, 0
        if off + 12 > n:
            return count, off, STOP_SHORT_HEADER, n - off
        btype = _rd32(buf, off, be)
        blen = _rd32(buf, off + 4, be)
        if btype == 0x0A0D0D0A or btype == 1:
            return count, off, STOP_NEEDS_PYTHON, btype
        if blen % 4 != 0 or blen < 12:
            return count, off, STOP_BAD_LENGTH, blen
        if off + blen > n:
            return count, off, STOP_SHORT_DATA, blen
        if _rd32(buf, off + blen - 4, be) != blen:
            return count, off, STOP_BAD_LENGTH, -1
        if btype == 6 or btype == 2:  # EPB / obsolete PB
            if blen < 32:
                return count, off, STOP_BAD_CAPLEN, blen
            cap = _rd32(buf, off + 20, be)
            if cap > blen - 32:
                return count, off, STOP_BAD_CAPLEN, cap
            if fill:
                j = base + count
                if btype == 6:
                    iface[j] = _rd32(buf, off + 8, be)
                else:
                    iface[j] = _rd16(buf, off + 8, be)
                ts_raw[j] = (np.uint64(_rd32(buf, off + 12, be)) << np.uint64(32)) | np.uint64(
                    _rd32(buf, off + 16, be))
                caplen[j] = cap
                wirelen[j] = _rd32(buf, off + 24, be)
                data_off[j] = off + 28
                has_ts[j] = True
            count += 1
        elif btype == 3:  # SPB
            if blen < 16:
                return count, off, STOP_BAD_CAPLEN, blen
            wl = _rd32(buf, off + 8, be)
            cap = blen - 16
            if wl < cap:
                cap = wl
            if snap0 > 0 and snap0 < cap:
                cap = snap0
            if fill:
                j = base + count
                iface[j] = 0
                ts_raw[j] = 0
                caplen[j] = cap
                wirelen[j] = wl
                data_off[j] = off + 12
                has_ts[j] = False
            count += 1
        off += blen


# -------------------------------------------------------------------------------------- decoder
@njit(cache=True, nogil=True)
def decode(buf, data_off, caplen, wirelen, kind, out8, out16, out32, out64, addr):
    """Decode link, network and transport headers of every frame.

    out8 rows:  0 l3, 1 ip_proto, 2 ttl, 3 icmp_type, 4 icmp_code, 5 tcp_hdr_len, 6 bool flags
                (1 truncated, 2 malformed, 4 ip_df, 8 ip_mf)
    out16 rows: 0 vlan, 1 ip_hdr_len, 2 frag_offset, 3 icmp_id, 4 icmp_seq, 5 sport, 6 dport,
                7 tcp_flags, 8 tcp_win
    out32 rows: 0 ip_len, 1 ip_id, 2 tcp_seq, 3 tcp_ack, 4 present bits, 5 payload_len (int32
                bit pattern), 6 payload_caplen
    out64 rows: 0 payload_off
    addr rows:  0 src_hi, 1 src_lo, 2 dst_hi, 3 dst_lo (IPv4 in src_lo/dst_lo)
    """
    for i in range(data_off.shape[0]):
        off = data_off[i]
        end = off + np.int64(caplen[i])
        wire_end = off + np.int64(wirelen[i])
        k = kind[i]
        flags = 0
        present = 0
        l3 = L3_NONE
        if caplen[i] < wirelen[i]:
            flags |= 1
        p = off
        et = -1       # ethertype, or 0x0800/0x86dd chosen by family / nibble
        want = 0      # link type's declared IP version (raw IPV4/IPV6), 0 = any
        if k == L2_ETHER:
            if p + 14 <= end:
                et = _be16(buf, p + 12)
                p += 14
            else:
                flags |= 1
        elif k == L2_SLL:
            if p + 16 <= end:
                et = _be16(buf, p + 14)
                p += 16
            else:
                flags |= 1
        elif k == L2_SLL2:
            if p + 20 <= end:
                et = _be16(buf, p)
                p += 20
            else:
                flags |= 1
        elif k == L2_NULL or k == L2_LOOP:
            if p + 4 <= end:
                if k == L2_LOOP or (buf[p] == 0 and buf[p + 1] == 0):
                    fam = _be32(buf, p)
                else:
                    fam = _rd32(buf, p, False)
                p += 4
                if fam == 2:
                    et = 0x0800
                elif fam == 24 or fam == 28 or fam == 30 or fam == 10:
                    et = 0x86DD
                else:
                    l3 = L3_OTHER
            else:
                flags |= 1
        elif k == L2_RAW or k == L2_IPV4 or k == L2_IPV6:
            if k == L2_IPV4:
                want = 4
            elif k == L2_IPV6:
                want = 6
            if p < end:
                v = np.int64(buf[p]) >> 4
                if v == 4:
                    et = 0x0800
                elif v == 6:
                    et = 0x86DD
                else:
                    l3 = L3_OTHER
                    flags |= 2
            else:
                flags |= 1
        elif k == L2_IPNET:
            if p + 24 <= end:
                fam = np.int64(buf[p + 1])
                p += 24
                if fam == 2:
                    et = 0x0800
                elif fam == 26:
                    et = 0x86DD
                else:
                    l3 = L3_OTHER
            else:
                flags |= 1
        # VLAN tags (802.1Q, 802.1ad, old QinQ 0x9100) and MPLS label stacks
        if et == 0x8100 or et == 0x88A8 or et == 0x9100:
            first = True
            while et == 0x8100 or et == 0x88A8 or et == 0x9100:
                if p + 4 > end:
                    flags |= 1
                    et = -1
                    break
                if first:
                    out16[0, i] = _be16(buf, p) & 0x0FFF
                    present |= P_VLAN
                    first = False
                et = _be16(buf, p + 2)
                p += 4
        if et == 0x8847 or et == 0x8848:
            et = -1
            while p + 4 <= end:
                bos = np.int64(buf[p + 2]) & 1
                p += 4
                if bos == 1:
                    if p < end:
                        v = np.int64(buf[p]) >> 4
                        if v == 4:
                            et = 0x0800
                        elif v == 6:
                            et = 0x86DD
                        else:
                            l3 = L3_OTHER
                    break
            if et == -1 and l3 == L3_NONE:
                flags |= 1
        if et == 0x0806 or et == 0x8035:
            l3 = L3_ARP
        elif et != -1 and et != 0x0800 and et != 0x86DD:
            l3 = L3_OTHER
        # ------------------------------------------------------------ network layer
        q = -1          # start of the L4 header, -1 when none is to be decoded
        l4len = 0       # L4 bytes per the IP header
        proto = -1
        if et == 0x0800:
            l3 = L3_IPV4
            if want == 6:
                flags |= 2
            if p + 20 > end:
                flags |= 1
            elif (np.int64(buf[p]) >> 4) != 4:
                flags |= 2
            else:
                ihl = (np.int64(buf[p]) & 15) * 4
                tot = _be16(buf, p + 2)
                ff = _be16(buf, p + 6)
                out32[0, i] = tot
                out32[1, i] = _be16(buf, p + 4)
                out16[1, i] = ihl
                out16[2, i] = (ff & 0x1FFF) * 8
                out8[1, i] = buf[p + 9]
                out8[2, i] = buf[p + 8]
                addr[0, i] = 0
                addr[1, i] = np.uint64(_be32(buf, p + 12))
                addr[2, i] = 0
                addr[3, i] = np.uint64(_be32(buf, p + 16))
                present |= P_IP | P_IPID | P_IPV4FLAGS | P_FRAG
                if ff & 0x4000:
                    flags |= 4
                if ff & 0x2000:
                    flags |= 8
                proto = np.int64(buf[p + 9])
                if ihl < 20 or tot < ihl:
                    flags |= 2
                elif p + tot > wire_end:
                    flags |= 2
                    if p + ihl <= end and (ff & 0x1FFF) == 0:
                        q = p + ihl
                        l4len = wire_end - q
                elif p + ihl > end:
                    flags |= 1
                elif (ff & 0x1FFF) == 0:
                    q = p + ihl
                    l4len = tot - ihl
        elif et == 0x86DD:
            l3 = L3_IPV6
            if want == 4:
                flags |= 2
            if p + 40 > end:
                flags |= 1
            elif (np.int64(buf[p]) >> 4) != 6:
                flags |= 2
            else:
                plen = _be16(buf, p + 4)
                nh = np.int64(buf[p + 6])
                out32[0, i] = 40 + plen
                out8[2, i] = buf[p + 7]
                addr[0, i] = _be64(buf, p + 8)
                addr[1, i] = _be64(buf, p + 16)
                addr[2, i] = _be64(buf, p + 24)
                addr[3, i] = _be64(buf, p + 32)
                present |= P_IP
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
                        out16[2, i] = fo & 0xFFF8
                        if fo & 1:
                            flags |= 8
                        out32[1, i] = _be32(buf, r + 4)
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
                out16[1, i] = r - p
                out8[1, i] = nh
                proto = nh
                if cut:
                    flags |= 1
                    proto = -1
                elif r - p - 40 > plen:
                    flags |= 2
                elif p + 40 + plen > wire_end:
                    flags |= 2
                    if first_frag and r <= end:
                        q = r
                        l4len = wire_end - q
                elif first_frag and r <= end:
                    q = r
                    l4len = plen - (r - p - 40)
                elif r > end:
                    flags |= 1
        # ---------------------------------------------------------- transport layer
        if q >= 0:
            avail = end - q
            hl = -1
            if proto == 6:
                if avail >= 4:
                    out16[5, i] = _be16(buf, q)
                    out16[6, i] = _be16(buf, q + 2)
                    present |= P_PORTS
                if avail >= 20:
                    doff = (np.int64(buf[q + 12]) >> 4) * 4
                    out32[2, i] = _be32(buf, q + 4)
                    out32[3, i] = _be32(buf, q + 8)
                    out16[7, i] = _be16(buf, q + 12) & 0x0FFF
                    out16[8, i] = _be16(buf, q + 14)
                    out8[5, i] = doff
                    present |= P_TCP
                    if doff < 20 or doff > l4len:
                        flags |= 2
                    elif doff > avail:
                        flags |= 1
                    else:
                        hl = doff
                else:
                    flags |= 1
            elif proto == 17:
                if avail >= 4:
                    out16[5, i] = _be16(buf, q)
                    out16[6, i] = _be16(buf, q + 2)
                    present |= P_PORTS
                if avail >= 8:
                    if l4len < 8:
                        flags |= 2
                    else:
                        hl = 8
                else:
                    flags |= 1
            elif proto == 1 or proto == 58:
                if avail >= 2:
                    t = np.int64(buf[q])
                    out8[3, i] = t
                    out8[4, i] = buf[q + 1]
                    present |= P_ICMP
                    if avail >= 8:
                        if l4len < 8:
                            flags |= 2
                        else:
                            hl = 8
                            if proto == 1:
                                echo = (t == 0 or t == 8 or t == 13 or t == 14 or t == 15
                                        or t == 16 or t == 17 or t == 18)
                            else:
                                echo = t == 128 or t == 129
                            if echo:
                                out16[3, i] = _be16(buf, q + 4)
                                out16[4, i] = _be16(buf, q + 6)
                                present |= P_ICMPID
                    else:
                        flags |= 1
                else:
                    flags |= 1
            if hl >= 0:
                plen_l4 = l4len - hl
                out32[5, i] = plen_l4
                present |= P_PAYLOAD
                have = end - (q + hl)
                if have > plen_l4:
                    have = plen_l4
                if have < 0:
                    have = 0
                out64[0, i] = q + hl
                out32[6, i] = have
                present |= P_PAYOFF
        out8[0, i] = l3
        out8[6, i] = flags
        out32[4, i] = present
