"""Connections exactly as Zeek's conn.log has them — TCP, UDP and ICMP — from the packets table, with a
compiled state machine (``_conn_kernel``), plus what a probe analyst asks of a TCP connection (who
reset, how long after the SYN/ACK, the SYN's payload, handshake RTT, re-sent SYNs and SYN/ACKs).

Zeek's rules followed (docs/design.md, "Connections as Zeek logs them"): connection lifetime by its
timers and ``IsReuse``; the flip heuristics (likely server ports, SYN/SYN-ACK reversal, ``^h``);
history letters with scaled C/G/T/W; content gaps and ``missed_bytes``; ``Size()`` byte counts;
IPv4 header and L4 checksums (``check_checksums=False`` is ``zeek -C``); offload super-frames.
``tunnel_parents`` from the packets table's tunnel columns when its reader decapsulated (the parent's
uid is made from the encapsulation's kind, outer addresses and id: the outer UDP connection itself is
not a row, as the packets table holds the inner packet). Out of scope: application-layer letters
(``X``) and ``service`` (Zeek's protocol analyzers), IP fragment reassembly (fragments are skipped),
the reassembler's deferred close while data is pending.
"""
from __future__ import annotations

import hashlib
import ipaddress

import numpy as np
import pandas as pd

from .._jit import njit, prefetch
from ..capture.checksums import (
    checksums_ok,
    column_array,
    l3_code,
    one_file_words,
    raw_column,
    verify_columns,
    verify_row,
)
from ..schema import CONNECTIONS
from . import _conn_kernel as K

__all__ = [
    "BARE_LIKELY_SERVER_PORTS",
    "LIKELY_SERVER_PORTS",
    "PRIVATE_ADDRESS_SPACE",
    "TIMEOUTS_S",
    "community_ids",
    "connection_kinds",
    "connections",
    "probe_connections",
    "tcp_connections",
]

# Ports Zeek's default scripts register as server ports (Analyzer::register_for_ports and
# PacketAnalyzer::register_for_ports add them to likely_server_ports; scripts/base/protocols/*/main.zeek
# and scripts/base/packet-protocols/*/main.zeek).
_PACKET_PROTOCOL_PORTS = ("5072/udp", "6081/udp", "4754/udp", "2152/udp", "2123/udp", "3544/udp", "4789/udp")
BARE_LIKELY_SERVER_PORTS = frozenset(_PACKET_PROTOCOL_PORTS)
"""zeek -b: only the packet-protocol (tunnel) ports, loaded by init-bare.zeek."""
LIKELY_SERVER_PORTS = frozenset(_PACKET_PROTOCOL_PORTS + (
    "135/tcp",                                        # dce-rpc
    "67/udp", "4011/udp",                             # dhcp (68/udp is a client port)
    "20000/tcp", "20000/udp",                         # dnp3
    "53/udp", "53/tcp", "137/udp", "5353/udp", "5355/udp",  # dns
    "79/tcp",                                         # finger
    "21/tcp", "2811/tcp",                             # ftp
    "80/tcp", "81/tcp", "631/tcp", "1080/tcp", "3128/tcp", "8000/tcp", "8080/tcp", "8888/tcp",  # http
    "143/tcp",                                        # imap
    "6666/tcp", "6667/tcp", "6668/tcp", "6669/tcp",   # irc
    "88/tcp", "88/udp",                               # krb
    "389/tcp", "3268/tcp", "389/udp",                 # ldap
    "502/tcp", "1883/tcp", "1434/tcp", "3306/tcp",    # modbus, mqtt, mysql
    "123/udp", "5432/tcp", "443/udp", "1812/udp",     # ntp, postgresql, quic, radius
    "3389/tcp", "3389/udp", "6379/tcp", "5060/udp",   # rdp, rdpeudp, redis, sip
    "139/tcp", "445/tcp", "25/tcp", "587/tcp",        # smb, smtp
    "161/udp", "162/udp", "1080/tcp", "22/tcp",       # snmp, socks, ssh
    "443/tcp", "465/tcp", "563/tcp", "585/tcp", "614/tcp", "636/tcp", "989/tcp", "990/tcp", "992/tcp",
    "993/tcp", "995/tcp", "5223/tcp",                 # ssl
    "514/udp", "514/tcp", "5222/tcp", "5269/tcp",     # syslog, xmpp
))
"""Zeek's default likely_server_ports (zeek without -b)."""
DNS_PORTS = (53, 137, 5353, 5355)
"""DNS::ports, the UDP ones (base/protocols/dns/main.zeek): the DNS analyzer's connections expire by its timer."""
_LONG_INACTIVITY_PORTS = (21, 22, 23, 513)  # Conn::port_inactivity_timeouts (base/protocols/conn/inactivity.zeek)

TIMEOUTS_S = dict(tcp_attempt_delay=5.0, tcp_reset_delay=5.0, tcp_close_delay=5.0, tcp_connection_linger=5.0,
                  tcp_inactivity_timeout=300.0, udp_inactivity_timeout=60.0, icmp_inactivity_timeout=60.0,
                  tcp_SYN_timeout=5.0, tcp_session_timer=6.0, port_inactivity_timeout=3600.0,
                  dns_session_timeout=10.0)
"""Zeek's timer defaults (scripts/base/init-bare.zeek; the last from base/protocols/conn/inactivity.zeek)."""

PRIVATE_ADDRESS_SPACE = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "2002::/24", "10.0.0.0/8", "2002:a00::/24", "100.64.0.0/10", "2002:6440::/26", "127.0.0.0/8",
    "2002:7f00::/24", "169.254.0.0/16", "2002:a9fe::/32", "172.16.0.0/12", "2002:ac10::/28", "192.0.0.0/24",
    "2002:c000::/40", "192.0.2.0/24", "2002:c000:200::/40", "192.168.0.0/16", "2002:c0a8::/32", "198.18.0.0/15",
    "2002:c612::/31", "198.51.100.0/24", "2002:c633:6400::/40", "203.0.113.0/24", "2002:cb00:7100::/40",
    "224.0.0.0/24", "2002:e000::/40", "239.0.0.0/8", "2002:ef00::/24", "240.0.0.0/4", "2002:f000::/20",
    "255.255.255.255/32", "2002:ffff:ffff::/48", "::/128", "::1/128", "64:ff9b:1::/48", "100::/64", "2001::/23",
    "2001:2::/48", "2001:db8::/32", "fc00::/7", "fe80::/10", "fec0::/10"))
"""Site::private_address_space, which Zeek's Site::local_nets includes by default."""

_TWO_WAY_ICMP4 = {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 10: 9, 9: 10, 17: 18, 18: 17}
_TWO_WAY_ICMP6 = {128: 129, 129: 128, 133: 134, 134: 133, 135: 136, 136: 135, 130: 131, 131: 130,
                  139: 140, 140: 139, 144: 145, 145: 144}


def _port_sets(ports) -> tuple[np.ndarray, np.ndarray]:
    tcp, udp = [], []
    for p in ports:
        if isinstance(p, str):
            num, _, proto = p.partition("/")
            (tcp if proto == "tcp" else udp if proto == "udp" else []).append(int(num))
        else:
            tcp.append(int(p))
            udp.append(int(p))
    return np.array(sorted(set(tcp)), np.int64), np.array(sorted(set(udp)), np.int64)


_H2_SEED = 0x9E3779B97F4A7C15
_B62 = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", np.uint8)
_B62_PAIRS = np.ascontiguousarray(np.stack([np.tile(_B62, 62), np.repeat(_B62, 62)], axis=1))
"""Row v (< 62^2): v's two base62 digits, lowest first (_uid_write)."""
_STATE_CATS = [s for s in K.STATES if s != "RSTOS0?"]
_STATE_OTH, _STATE_RSTOS0 = _STATE_CATS.index("OTH"), _STATE_CATS.index("RSTOS0")
_PREFETCH = 48  # rows ahead whose header bytes _select_verified prefetches
_KERNEL_BLOCK = 1 << 15  # packets the state machine takes at a time (its inputs: ~1.5 MB, in L2)
_MAXBLOCK = 8192  # addresses below this: the 5-tuple packs into one int64


def _counterparts(two_way: dict[int, int]) -> np.ndarray:
    t = np.full(256, -1, np.int64)
    for x, y in two_way.items():
        t[x] = y
    return t


_ICMP4_CP, _ICMP6_CP = _counterparts(_TWO_WAY_ICMP4), _counterparts(_TWO_WAY_ICMP6)


@njit(cache=True, inline="always")
def _mix(x):
    """splitmix64 finaliser (uint64)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@njit(cache=True, inline="always")
def _uid_step(h1, h2, p):
    """One identity part into the uid's two hash lanes."""
    return _mix(h1 ^ p), _mix(h2 + p * np.uint64(0x100000001B3))


_P3, _P6 = np.uint64(62 ** 3), np.uint64(62 ** 6)
_Q2 = np.uint64(62 * 62)


@njit(cache=True, inline="always")
def _b62_3(out, j, at, v, t2):
    """out[j, at:at + 3] := the three lowest base62 digits of v (< 62^3), lowest first: two from the pair
    table, one from its first column."""
    q = v % _Q2
    out[j, at], out[j, at + 1] = t2[q, 0], t2[q, 1]
    out[j, at + 2] = t2[v // _Q2, 0]


@njit(cache=True, inline="always")
def _uid_write(out, j, h1, h2, t2):
    """Row j of ``out`` := 'C' + the 11 lowest base62 digits of h1 + the 6 lowest of h2, lowest first
    (digit k of h is (h // 62^k) % 62). ``t2`` (3844, 2): the two digits of each value below 62^2
    (_B62_PAIRS). Split at 62^6 and 62^3 into independent parts, so the divisions (by constants:
    multiplications) are short chains side by side instead of one of seventeen."""
    out[j, 0] = 67
    lo, hi = h1 % _P6, h1 // _P6
    _b62_3(out, j, 1, lo % _P3, t2)
    _b62_3(out, j, 4, lo // _P3, t2)
    q = hi % _Q2
    out[j, 7], out[j, 8] = t2[q, 0], t2[q, 1]
    hi = hi // _Q2
    q = hi % _Q2
    out[j, 9], out[j, 10] = t2[q, 0], t2[q, 1]
    out[j, 11] = t2[(hi // _Q2) % np.uint64(62), 0]
    lo = h2 % _P6
    _b62_3(out, j, 12, lo % _P3, t2)
    _b62_3(out, j, 15, lo // _P3, t2)


@njit(cache=True)
def _uid_matrix(parts, t2):
    out = np.empty((parts.shape[1], 18), np.uint8)
    for i in range(parts.shape[1]):
        h1, h2 = np.uint64(0), np.uint64(_H2_SEED)
        for k in range(parts.shape[0]):
            h1, h2 = _uid_step(h1, h2, parts[k, i])
        _uid_write(out, i, h1, h2, t2)
    return out


def _uids(parts: list[np.ndarray]) -> np.ndarray:
    """Deterministic Zeek-style uids ('C' + 17 base62 digits) from the connection's identity: an
    (n, 18) uint8 matrix."""
    return _uid_matrix(np.stack([np.asarray(p).astype(np.uint64) for p in parts]), _B62_PAIRS)


def _addr_hash(cats) -> np.ndarray:
    return np.array([int.from_bytes(hashlib.blake2b(str(a).encode(), digest_size=8).digest(), "little")
                     for a in cats], np.uint64)


def _is_local(cats, nets) -> np.ndarray:
    out = np.zeros(len(cats), bool)
    for i, a in enumerate(cats):
        try:
            ip = ipaddress.ip_address(str(a))
        except ValueError:
            continue
        out[i] = any(ip.version == n.version and ip in n for n in nets)
    return out


def _port_table(ports: np.ndarray) -> np.ndarray:
    t = np.zeros(65536, bool)
    t[ports[(ports >= 0) & (ports < 65536)]] = True
    return t


def _str_array(arr) -> pd.api.extensions.ExtensionArray:
    """A 'str' column (pandas' Arrow-backed strings, NaN for missing) around an Arrow large_string array."""
    return pd.arrays.ArrowStringArray(arr, dtype=pd.StringDtype("pyarrow", na_value=np.nan))


def _null_str(n: int):
    import pyarrow as pa
    return _str_array(pa.nulls(n, pa.large_string()))


def _arrow_str(offsets: np.ndarray, data: np.ndarray):
    """A 'str' column from string offsets (len + 1) and their bytes, without a Python string per row."""
    import pyarrow as pa
    off = np.ascontiguousarray(offsets, np.int64)
    return _str_array(pa.LargeStringArray.from_buffers(len(off) - 1, pa.py_buffer(off),
                                                       pa.py_buffer(np.ascontiguousarray(data))))


def _cat(codes: np.ndarray, categories) -> pd.Categorical:
    """A categorical from codes the compiled passes made (in range by construction: not re-validated)."""
    return pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(categories), validate=False)


def _empty() -> pd.DataFrame:
    return pd.DataFrame({c.name: pd.Series([], dtype=c.dtype) for c in CONNECTIONS if c.name != "community_id"})


@njit(cache=True, _nrt=False)
def _select(l3, v4, v6, proto, proto_m, ts_m, frag, frag_m, mf, mf_m, iplen, iplen_m, flags_m, sport_m, itype_m,
            keep, offload):
    """Which packets are a connection's (timed, IPv4/6, not a fragment, TCP with flags, UDP with ports,
    ICMP/ICMPv6 with a type) and which are offload super-frames (IPv4 total length 0)."""
    for ii in range(l3.shape[0]):
        i = np.uint64(ii)
        c = l3[i]
        is4, is6 = c == v4, c == v6
        offload[i] = is4 and not iplen_m[i] and iplen[i] == 0
        k = False
        if not ts_m[i] and (is4 or is6) and (frag_m[i] or frag[i] <= 0) and (mf_m[i] or mf[i] == 0):
            p = -1 if proto_m[i] else np.int64(proto[i])
            if p == 6:
                k = not flags_m[i]
            elif p == 17:
                k = not sport_m[i]
            elif (p == 1 and is4) or (p == 58 and is6):
                k = not itype_m[i]
        keep[i] = k


@njit(cache=True, _nrt=False)
def _select_verified(buf, words, ts_m, flags_m, sport_m, itype_m, l3, v4, v6, proto, proto_m, thl, thl_m, poff,
                     poff_m, iphl, iphl_m, iplen, iplen_m, pcap, pcap_m, frag, frag_m, mf, mf_m, rows, l4_ok,
                     tproto, sport, sport_m2, dport, dport_m, itype, itype_m2, icode, icode_m, cp4, cp6, src, src_map,
                     dst, dst_map, bcast_code, kind, sp_out, dp_out, side_out, key, lo_out, hi_out, bcast):
    """_select, the checksums of each selected packet (checksums.verify_row), _kept and _tuple_row in one
    pass over the columns they share: ``rows`` := the packets of a connection that are neither an offload
    super-frame nor of a bad IPv4 header checksum, in file order, ``l4_ok`` := their L4 checksums, and
    the 5-tuple's parts (after ``l4_ok``: a _Tuple's ``args``) of each (all as long as the packets; the
    count is returned)."""
    size = buf.shape[0]
    n = l3.shape[0]
    k = 0
    for ii in range(n):
        i = np.uint64(ii)
        # the headers _PREFETCH rows on (the 64 bytes before that packet's payload, which hold an IPv4
        # header and its L4 header, and the payload's first line; an IPv6 header with TCP options
        # starts earlier, only its speed suffers): the bytes are the file's, walked in order but a
        # page at a time, which the processor's own prefetchers do not run ahead across (the pass was
        # a sixth faster so)
        if ii + _PREFETCH < n:
            q = np.int64(poff[i + np.uint64(_PREFETCH)])
            prefetch(buf, q - 64)
            prefetch(buf, q)
        c = l3[i]
        is4, is6 = c == v4, c == v6
        if ts_m[i] or not (is4 or is6) or (not frag_m[i] and frag[i] > 0) or (not mf_m[i] and mf[i] != 0):
            continue
        if is4 and not iplen_m[i] and iplen[i] == 0:
            continue  # an offload super-frame: dropped with checksums on
        p = -1 if proto_m[i] else np.int64(proto[i])
        if p == 6:
            want = not flags_m[i]
        elif p == 17:
            want = not sport_m[i]
        else:
            want = ((p == 1 and is4) or (p == 58 and is6)) and not itype_m[i]
        if not want:
            continue
        r = verify_row(buf, words, size, i, l3, v4, v6, proto, proto_m, thl, thl_m, poff, poff_m, iphl, iphl_m,
                        iplen, iplen_m, pcap, pcap_m, frag, frag_m, mf, mf_m)
        if r & 1:
            rows[k] = ii
            l4_ok[k] = r >> 1
            _tuple_row(i, np.uint64(k), tproto, sport, sport_m2, dport, dport_m, itype, itype_m2, icode, icode_m, cp4,
                       cp6, src, src_map, dst, dst_map, bcast_code, kind, sp_out, dp_out, side_out, key, lo_out,
                       hi_out, bcast)
            k += 1
    return k


@njit(cache=True, _nrt=False)
def _kept(rows, ip_ok, offload):
    """Drops (in place) the rows whose IPv4 header checksum fails or that are offload super-frames;
    returns how many are left at the front."""
    k = 0
    for jj in range(rows.shape[0]):
        r = rows[jj]
        i = np.uint64(r)
        if ip_ok[i] and not offload[i]:
            rows[k] = r
            k += 1
    return k


# the bool matrix _run_kernel fills in the state machine's order, a block at a time
(B_L4, B_SLSP, B_DLSP, B_BCAST, B_SLONG, B_DLONG) = range(6)


# Gathering in the state machine's order is two compiled loops (one by ``srows`` into the packets
# table's columns, one by ``order`` into the _Tuple's), each writing all its outputs: the loads are
# random, so one pass over the positions serves them all (5 one-column passes took a third longer).
@njit(cache=True, inline="always")
def _sized(x, m, alt, alt_m, offload, i, use_alt, any_off, tcp_cut):
    """x[i] (0 where missing), or where the packet is an offload super-frame (IPv4 total length 0;
    ``any_off``: offload is not empty): ``alt`` (TCP.cc / UDP.cc / ICMP.cc use what was captured) when
    ``use_alt``, else 0. ``tcp_cut``: a TCP packet whose x is missing gets -1, as the state machine
    takes a TCP header TCPAnalyzer::ExtractTCP_Header refused (the decoder left payload_len unset)."""
    if any_off and offload[i]:
        return (0 if alt_m[i] else np.int64(alt[i])) if use_alt else 0
    if m[i]:
        return -1 if tcp_cut else 0
    return np.int64(x[i])


@njit(cache=True, _nrt=False)
def _take_packets(srows, kind, ts, ts_m, fl, fl_m, sq, sq_m, ak, ak_m, wn, wn_m, pl, pl_m, pc, pc_m, il, il_m, offload,
                  o_ts, o_fl, o_sq, o_ak, o_wn, o_len, o_ipl):
    """The packets table's numbers at ``srows`` (kind: the packets' kinds, already in this order), their
    missing values as the state machine expects them (window 1, the rest 0; sizes by _sized)."""
    any_off = offload.shape[0] > 0
    for jj in range(srows.shape[0]):
        j, i = np.uint64(jj), np.uint64(srows[jj])
        o_ts[j] = 0 if ts_m[i] else np.int64(ts[i])
        o_fl[j] = 0 if fl_m[i] else np.int64(fl[i])
        o_sq[j] = 0 if sq_m[i] else np.int64(sq[i])
        o_ak[j] = 0 if ak_m[i] else np.int64(ak[i])
        o_wn[j] = 1 if wn_m[i] else np.int64(wn[i])
        o_len[j] = _sized(pl, pl_m, pc, pc_m, offload, i, True, any_off, kind[j] == K.K_TCP)
        o_ipl[j] = _sized(il, il_m, il, il_m, offload, i, False, any_off, False)


@njit(cache=True, _nrt=False)
def _take_tuples(order, kind, side, sport, dport, l4_ok, bcast, tcp_tab, udp_tab, long_tab, o_kind, o_side, o_sport,
                 o_dport, o_l4, o_bcast, slsp, dlsp, slong, dlong):
    """The _Tuple's parts and the L4 verdicts at ``order``, and from the ports: likely server ports
    (TCP/UDP) and Conn::port_inactivity_timeouts ports (TCP) at either end."""
    for jj in range(order.shape[0]):
        j, q = np.uint64(jj), np.uint64(order[jj])
        kd = kind[q]
        a, b = sport[q], dport[q]
        o_kind[j], o_side[j], o_sport[j], o_dport[j] = kd, side[q], a, b
        o_l4[j], o_bcast[j] = l4_ok[q], bcast[q]
        ua, ub = np.uint64(a & 0xFFFF), np.uint64(b & 0xFFFF)
        is_t, is_u = kd == K.K_TCP, kd == K.K_UDP
        slsp[j] = (is_t and tcp_tab[ua]) or (is_u and udp_tab[ua])
        dlsp[j] = (is_t and tcp_tab[ub]) or (is_u and udp_tab[ub])
        slong[j] = is_t and long_tab[ua]
        dlong[j] = is_t and long_tab[ub]


@njit(cache=True, inline="always")
def _tuple_row(i, j, proto, sport, sport_m, dport, dport_m, itype, itype_m, icode, icode_m, cp4, cp6, src, src_map,
               dst, dst_map, bcast_code, kind, sp_out, dp_out, side_out, key, lo_out, hi_out, bcast):
    """Row i's 5-tuple into position j of the _Tuple arrays: kind, the 'ports' (TCP/UDP's own; ICMP's the
    type and its counterpart, one-way types the code), the canonical endpoint order
    (IPBasedConnKey::InitTuple; one-way ICMP keeps its direction), the key packed into one int64 (or,
    when lo_out is not empty, its protocol part with the endpoints apart), and whether the packet goes
    to 255.255.255.255."""
    p = np.int64(proto[i])
    kd = K.K_TCP if p == 6 else (K.K_UDP if p == 17 else K.K_ICMP)
    kind[j] = kd
    ow = False
    if kd == K.K_ICMP:
        it = (0 if itype_m[i] else np.int64(itype[i])) & 0xFF
        cp = cp6[it] if p == 58 else cp4[it]
        ow = cp < 0
        spv = it
        dpv = ((0 if icode_m[i] else np.int64(icode[i])) if ow else cp) & 0xFFFF
    else:
        spv = (0 if sport_m[i] else np.int64(sport[i])) & 0xFFFF
        dpv = (0 if dport_m[i] else np.int64(dport[i])) & 0xFFFF
    sp_out[j] = spv
    dp_out[j] = dpv
    sa = src_map[src[i]]
    da = dst_map[dst[i]]
    ep_s = sa * 65536 + spv
    ep_d = da * 65536 + dpv
    side = 1 if ep_s > ep_d and not ow else 0
    side_out[j] = side
    if side == 0:
        lo, hi = ep_s, ep_d
    else:
        lo, hi = ep_d, ep_s
    pk = (p & 0xFF) * 2 + (1 if ow else 0)
    if lo_out.shape[0] == 0:
        key[j] = (pk << 58) | (lo << 29) | hi
    else:
        key[j], lo_out[j], hi_out[j] = pk, lo, hi
    bcast[j] = bcast_code >= 0 and da == bcast_code


@njit(cache=True, _nrt=False)
def _tuples(rows, proto, sport, sport_m, dport, dport_m, itype, itype_m, icode, icode_m, cp4, cp6, src, src_map,
            dst, dst_map, bcast_code, kind, sp_out, dp_out, side_out, key, lo_out, hi_out, bcast):
    """_tuple_row for each of ``rows`` (the selection made apart from the checksums)."""
    for jj in range(rows.shape[0]):
        _tuple_row(np.uint64(rows[jj]), np.uint64(jj), proto, sport, sport_m, dport, dport_m, itype, itype_m, icode,
                   icode_m, cp4, cp6, src, src_map, dst, dst_map, bcast_code, kind, sp_out, dp_out, side_out, key,
                   lo_out, hi_out, bcast)


class _Tuple:
    """The 5-tuple's parts of the selected rows, in file order (also read by _finish at each connection's
    first packet): kind, the 'ports', the canonical side, the key (packed into one int64 when the
    addresses allow; else ``key`` is the protocol part and ``lo``/``hi`` the endpoints, to be grouped),
    and whether the packet goes to 255.255.255.255 (_tuple_row). Made with room for ``m`` rows (numpy's
    memory: untouched room costs nothing), cut to the rows selected by ``cut``; ``args``: what
    _tuple_row reads and writes after the row's two positions."""

    def __init__(self, raw, packets, m: int):
        src, dst = column_array(packets, "src"), column_array(packets, "dst")
        self.cats = cats = pd.Index(src.categories).union(pd.Index(dst.categories))
        self.src_map = cats.get_indexer(src.categories).astype(np.int64)
        self.dst_map = cats.get_indexer(dst.categories).astype(np.int64)
        pack = len(cats) < _MAXBLOCK  # fewer addresses: the 5-tuple fits one int64
        self.kind, self.side = np.empty(m, np.int8), np.empty(m, np.int8)
        self.sport, self.dport = np.empty(m, np.uint16), np.empty(m, np.uint16)
        self.key, self.bcast = np.empty(m, np.int64), np.empty(m, bool)
        self.lo, self.hi = (np.zeros(0, np.int64),) * 2 if pack else (np.empty(m, np.int64), np.empty(m, np.int64))
        self.args = (raw["ip_proto"][0], *raw["sport"], *raw["dport"], *raw["icmp_type"], *raw["icmp_code"],
                     _ICMP4_CP, _ICMP6_CP, src.codes, self.src_map, dst.codes, self.dst_map,
                     int(cats.get_indexer(["255.255.255.255"])[0]), self.kind, self.sport, self.dport, self.side,
                     self.key, self.lo, self.hi, self.bcast)

    def cut(self, k: int) -> None:
        for name in ("kind", "side", "sport", "dport", "key", "bcast") + (("lo", "hi") if self.lo.size else ()):
            setattr(self, name, getattr(self, name)[:k])
        del self.args


def _reusable(a, n: int, dtype) -> bool:
    """Whether ``a`` can hold n values of ``dtype`` in place (a buffer of this call no longer needed:
    reusing it spares the page faults of fresh memory, which in a session cost more than the passes)."""
    return isinstance(a, np.ndarray) and a.dtype == dtype and a.shape == (n,) and a.flags.c_contiguous and \
        a.flags.writeable


def _run_kernel(raw, srows, order, skey, t, l4_ok, offload, likely_server_ports, bare, params, ci, hoff, hb,
                conn_of) -> int:
    """The state machine over the packets grouped by key (``order``: positions in ``rows`` grouped by
    key, ``srows`` = rows[order], ``skey`` their key codes), a block of _KERNEL_BLOCK at a time
    (K.conn_block, the working state carried on): each block's inputs are gathered into the same
    buffers, which stay in cache and are no fresh memory, then run. The inputs: narrow arrays, the
    numbers with their missing values filled as the kernel expects (window 1, the rest 0), and a bool
    matrix with B_* rows (L4 checksum, likely-server-port and long-inactivity flags, broadcast).
    Returns the number of connections (``ci``, ``hoff``, ``hb``, ``conn_of`` as K.conn_kernel fills
    them)."""
    m = len(srows)
    size = max(1, min(m, _KERNEL_BLOCK))
    x = {name: np.empty(size, dt) for name, dt in (("ts", np.int64), ("flags", np.uint16), ("seq", np.uint32),
                                                   ("ack", np.uint32), ("win", np.int32), ("len", np.int32),
                                                   ("ipl", np.int32), ("kind", np.int8), ("side", np.int8),
                                                   ("sport", np.uint16), ("dport", np.uint16))}
    b = np.empty((B_DLONG + 1, size), bool)
    tcp_lsp, udp_lsp = _port_sets(likely_server_ports)
    long_ports = np.array([] if bare else _LONG_INACTIVITY_PORTS, np.int64)
    tables = _port_table(tcp_lsp), _port_table(udp_lsp), _port_table(long_ports)
    work = K.working_state()
    nc = 0
    for j0 in range(0, m, size):
        j1 = min(j0 + size, m)
        k = j1 - j0
        xs = {name: a[:k] for name, a in x.items()}
        bs = [b[r, :k] for r in range(B_DLONG + 1)]
        blk_order = order[j0:j1]
        _take_tuples(blk_order, t.kind, t.side, t.sport, t.dport, l4_ok, t.bcast, *tables, xs["kind"], xs["side"],
                     xs["sport"], xs["dport"], bs[B_L4], bs[B_BCAST], bs[B_SLSP], bs[B_DLSP], bs[B_SLONG],
                     bs[B_DLONG])
        _take_packets(srows[j0:j1], xs["kind"], *raw["ts_ns"], *raw["tcp_flags"], *raw["tcp_seq"], *raw["tcp_ack"],
                      *raw["tcp_win"], *raw["payload_len"], *raw["payload_caplen"], *raw["ip_len"], offload,
                      xs["ts"], xs["flags"], xs["seq"], xs["ack"], xs["win"], xs["len"], xs["ipl"])
        nc = K.conn_block(blk_order, xs["ts"], xs["kind"], skey, j0, xs["side"], xs["flags"], xs["seq"], xs["ack"],
                          xs["win"], xs["len"], xs["ipl"], bs[B_L4], xs["sport"], xs["dport"], bs[B_SLSP],
                          bs[B_DLSP], bs[B_BCAST], bs[B_SLONG], bs[B_DLONG], params, ci, hoff, hb, conn_of, *work,
                          j1 == m)
        if nc < 0:
            raise RuntimeError("conn_block: more connections than packets")  # cannot happen: one row per packet
    return nc


@njit(cache=True, _nrt=False)
def _factorize(x, start, nk, slots, codes):
    """codes := x's codes in order of first appearance (pandas.factorize's), by an open-addressing hash
    table: ``slots`` (size, 2) of (key, code), code -1 where free, a power-of-two size, already holding
    the ``nk`` codes of x[:start]. Returns the number of distinct keys, or -1 - i when the table got
    half full at x[i] (move it to a larger one, _rehash, and go on from i)."""
    size = slots.shape[0]
    bits = 0
    while (1 << bits) < size:
        bits += 1
    mask = np.uint64(size - 1)
    shift = np.uint64(64 - bits)
    limit = size // 2
    for ii in range(start, x.shape[0]):
        i = np.uint64(ii)
        k = x[i]
        h = ((np.uint64(k) * np.uint64(0x9E3779B97F4A7C15)) >> shift) & mask
        while True:
            c = slots[h, 1]
            if c < 0:
                if nk == limit:
                    return -1 - ii
                slots[h, 0] = k
                slots[h, 1] = nk
                codes[i] = nk
                nk += 1
                break
            if slots[h, 0] == k:
                codes[i] = c
                break
            h = (h + np.uint64(1)) & mask
    return nk


@njit(cache=True, _nrt=False)
def _rehash(old, slots):
    """The (key, code) entries of ``old`` into the empty table ``slots`` (as _factorize places them)."""
    size = slots.shape[0]
    bits = 0
    while (1 << bits) < size:
        bits += 1
    mask = np.uint64(size - 1)
    shift = np.uint64(64 - bits)
    for q in range(old.shape[0]):
        if old[q, 1] < 0:
            continue
        k = old[q, 0]
        h = ((np.uint64(k) * np.uint64(0x9E3779B97F4A7C15)) >> shift) & mask
        while slots[h, 1] >= 0:
            h = (h + np.uint64(1)) & mask
        slots[h, 0] = k
        slots[h, 1] = old[q, 1]


def _key_codes(key: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """pandas.factorize(key)[0] of an int64 array, into ``out`` when given (which may be ``key`` itself:
    each key is read before its code is written there). The table starts small and grows fourfold when
    half full, keeping the codes made so far (a table sized for the distinct keys, not the packets,
    stays in cache); memory from numpy."""
    codes = np.empty(len(key), np.int64) if out is None else out
    size = 1 << 16
    slots = np.empty((size, 2), np.int64)
    slots[:, 1] = -1
    start = nk = 0
    while True:
        r = _factorize(key, start, nk, slots, codes)
        if r >= 0:
            return codes
        start, nk = -1 - r, size // 2
        size *= 4
        old, slots = slots, np.empty((size, 2), np.int64)
        slots[:, 1] = -1
        _rehash(old, slots)


@njit(cache=True, inline="always")
def _rstos0(hdata, a, b):
    """conn.zeek conn_state(): ``/\\^?S[^HAFGIQ]*R.*/ == history`` on hdata[a:b]."""
    k = a
    if k < b and hdata[k] == 94:  # '^'
        k += 1
    if k >= b or hdata[k] != 83:  # 'S'
        return False
    for q in range(k + 1, b):
        ch = hdata[q]
        if ch == 82:  # 'R'
            return True
        if ch == 72 or ch == 65 or ch == 70 or ch == 71 or ch == 73 or ch == 81:  # H A F G I Q
            return False
    return False


# rows of the int64, float64 and bool matrices _finish fills, and its narrow columns
(F_TS, F_OA, F_RA, F_OB, F_RB, F_MISSED, F_OPK, F_OIPB, F_RPK, F_RIPB, F_FRAME, F_ISN) = range(12)
(D_DUR, D_HS, D_RAFTER) = range(3)
(M_NODUR, M_NOISN, M_NOSYNPAY, M_RACK) = range(4)
(N_OP, N_RP) = range(2)
(S_PROTO, S_STATE, S_RBY) = range(3)


_FINISH_BLOCK = 2048  # connections whose rows _finish copies at a time (2048 × NCO int64: in L2)


@njit(cache=True, _nrt=False)
def _finish(ci, hoff, hdata, kind, sport, dport, side, rows, src, src_map, dst, dst_map, proto, frame, ahash,
            order, t2, blk, ints, floats, flags, ports, small, ipp, synpay, syns, synacks, uid, hoff_out, hdata_out):
    """Every column of the table from the state machine's connection arrays, by the originator's role:
    ``order`` gives each row's connection in the kernel's order (its row of ``ci``, its history run in
    hoff/hdata); the history strings are copied into ``hoff_out``/``hdata_out`` in that order unless
    those are empty (``order`` is the identity). ``blk`` (B, NCO): the rows of the next B connections
    are copied into it in a loop of their own first (its loads are independent, so many are in
    flight; in the long loop below each would wait), a block at a time, so the copy stays in cache."""
    nc = order.shape[0]
    if hoff_out.shape[0]:
        hoff_out[0] = 0
        for j in range(nc):
            c = order[j]
            a0 = hoff_out[j]
            n = hoff[c + 1] - hoff[c]
            hoff_out[j + 1] = a0 + n
            h = hoff[c]
            for q in range(n):
                hdata_out[a0 + q] = hdata[h + q]
    nb = blk.shape[0]
    for j in range(nc):
        c = order[j]
        q = j % nb
        if q == 0:
            for jj in range(j, min(j + nb, nc)):
                cc = np.uint64(order[jj])
                for fi in range(ci.shape[1]):
                    blk[jj - j, fi] = ci[cc, fi]
        cr = blk[q]
        f = cr[K.C_FIRSTPKT]
        o = cr[K.C_ORIGSIDE]
        r = rows[f]
        sa, da = src_map[src[r]], dst_map[dst[r]]
        sp, dp = np.int64(sport[f]), np.int64(dport[f])
        # endpoint of side 0 / 1 from the first packet, then by role
        if side[f] == 0:
            s0a, s1a, s0p, s1p = sa, da, sp, dp
        else:
            s0a, s1a, s0p, s1p = da, sa, dp, sp
        if o == 0:
            xa, ya, xp, yp = s0a, s1a, s0p, s1p
        else:
            xa, ya, xp, yp = s1a, s0a, s1p, s0p
        start = cr[K.C_START]
        d = cr[K.C_LAST] - start
        has_dur = d > 0
        ints[F_TS, j], ints[F_OA, j], ints[F_RA, j] = start, xa, ya
        ports[N_OP, j], ports[N_RP, j] = xp, yp
        kd = np.int64(kind[f])
        small[S_PROTO, j] = kd
        floats[D_DUR, j] = d / 1e9 if has_dur else np.nan
        ints[F_OB, j] = cr[K.C_OSIZE] if has_dur else 0
        ints[F_RB, j] = cr[K.C_RSIZE] if has_dur else 0
        flags[M_NODUR, j] = not has_dur
        # kernel codes: 12 is "RSTOS0 or OTH" (decided on the history), 13 OTH
        s = cr[K.C_STATE]
        if s == 12 and _rstos0(hdata, hoff[c], hoff[c + 1]):
            s = _STATE_RSTOS0
        elif s >= 12:
            s = _STATE_OTH
        small[S_STATE, j] = s
        ints[F_MISSED, j] = cr[K.C_MISSED]
        ints[F_OPK, j], ints[F_OIPB, j] = cr[K.C_OPKTS], cr[K.C_OIPB]
        ints[F_RPK, j], ints[F_RIPB, j] = cr[K.C_RPKTS], cr[K.C_RIPB]
        p = np.int64(proto[r])
        ipp[j] = p
        ints[F_FRAME, j] = frame[r]
        is_tcp = kd == K.K_TCP
        v = cr[K.C_ISN]
        no = not (is_tcp and v >= 0)
        flags[M_NOISN, j] = no
        ints[F_ISN, j] = 0 if no else v
        v = cr[K.C_SYNPAY]
        no = not (is_tcp and v >= 0)
        flags[M_NOSYNPAY, j] = no
        synpay[j] = 0 if no else v
        syns[j], synacks[j] = cr[K.C_SYNS], cr[K.C_SYNACKS]
        synts, synackts, rstts = cr[K.C_SYNTS], cr[K.C_SYNACKTS], cr[K.C_RSTTS]
        floats[D_HS, j] = (synackts - synts) / 1e3 if synts >= 0 and synackts >= 0 else np.nan
        floats[D_RAFTER, j] = (rstts - synackts) / 1e3 if rstts >= 0 and synackts >= 0 else np.nan
        rs = cr[K.C_RSTSIDE]
        small[S_RBY, j] = -1 if rs < 0 else (0 if rs == o else 1)
        flags[M_RACK, j] = rs >= 0 and rs != o and cr[K.C_RSTACK] == 1
        h1, h2 = _uid_step(np.uint64(0), np.uint64(_H2_SEED), np.uint64(start))
        h1, h2 = _uid_step(h1, h2, np.uint64(p))
        h1, h2 = _uid_step(h1, h2, np.uint64(xp))
        h1, h2 = _uid_step(h1, h2, np.uint64(yp))
        h1, h2 = _uid_step(h1, h2, ahash[xa])
        h1, h2 = _uid_step(h1, h2, ahash[ya])
        _uid_write(uid, j, h1, h2, t2)


def _selected(packets, raw, check_checksums):
    """(rows, l4_ok, offload, t): the packets of a connection (in file order) that the state machine
    sees, the L4 checksum of each (aligned with rows), which of all packets are offload super-frames
    (empty: none of ``rows`` is), and their 5-tuples (a _Tuple). With checksums on (IP.cc), a bad IPv4
    header checksum or a total length 0 drops the packet; a table from one capture file is selected,
    verified and its 5-tuples made in one pass (_select_verified)."""
    n = len(packets)
    if check_checksums:
        with one_file_words(packets) as bw:
            if bw is not None:
                t = _Tuple(raw, packets, n)
                rows, l4_ok = np.empty(n, np.int64), np.empty(n, bool)
                k = _select_verified(*bw, raw["ts_ns"][1], raw["tcp_flags"][1], raw["sport"][1], raw["icmp_type"][1],
                                     *verify_columns(packets), rows, l4_ok, *t.args)
                t.cut(k)
                return rows[:k], l4_ok[:k], np.zeros(0, bool), t
    l3 = column_array(packets, "l3").codes
    v4, v6 = l3_code(packets, "ipv4"), l3_code(packets, "ipv6")
    keep, offload = np.empty(n, bool), np.empty(n, bool)
    _select(l3, v4, v6, *raw["ip_proto"], raw["ts_ns"][1], *raw["frag_offset"], *raw["ip_mf"], *raw["ip_len"],
            raw["tcp_flags"][1], raw["sport"][1], raw["icmp_type"][1], keep, offload)
    rows = np.flatnonzero(keep)
    if not check_checksums:
        l4_ok = np.ones(len(rows), bool)
    else:
        ip_ok, l4_all = checksums_ok(packets, rows)
        rows = rows[:_kept(rows, ip_ok, offload)]
        l4_ok = l4_all[rows]
    t = _Tuple(raw, packets, len(rows))
    _tuples(rows, *t.args)
    t.cut(len(rows))
    return rows, l4_ok, offload, t


def connections(packets: pd.DataFrame, *, check_checksums: bool = True, likely_server_ports=LIKELY_SERVER_PORTS,
                bare: bool = False, local_nets=PRIVATE_ADDRESS_SPACE, timeouts_s: dict | None = None,
                community_id: bool = False, dns: bool | None = None) -> pd.DataFrame:
    """One row per TCP, UDP and ICMP connection as Zeek logs it (schema.CONNECTIONS), in order of the
    connection's first packet.

    check_checksums: drop what Zeek drops (bad IPv4 header checksum, IPv4 total length 0) and record
    a bad L4 checksum as 'C' (False is ``zeek -C``). likely_server_ports: "80/tcp"-style strings (ints
    mean TCP and UDP). bare: ``zeek -b`` (no protocol analyzers: only the tunnel ports are likely server
    ports, no per-port inactivity timeouts). local_nets: for local_orig/local_resp (empty: <NA>).
    timeouts_s: overrides of TIMEOUTS_S. community_id: add the Community ID column (computed only then).
    dns: whether Zeek's DNS analyzer is loaded (its ExpireTimer ends idle DNS connections after
    ``dns_session_timeout``); default: unless ``bare`` (``zeek -b`` loads it only with base/protocols/dns)."""
    if bare and likely_server_ports is LIKELY_SERVER_PORTS:
        likely_server_ports = BARE_LIKELY_SERVER_PORTS
    to = dict(TIMEOUTS_S, **(timeouts_s or {}))
    n = len(packets)
    if not n:
        return _empty()
    # the stored buffers (values, missing) of every column used: no per-column conversion
    raw = {name: raw_column(packets, name) for name in _PACKET_COLUMNS}
    rows, l4_ok, offload, t = _selected(packets, raw, check_checksums)
    if not rows.size:
        return _empty()
    cats, src_map, dst_map = t.cats, t.src_map, t.dst_map
    if not t.lo.size:
        key = _key_codes(t.key, out=t.key)  # in place: the packed keys are not needed after
    else:
        key = pd.DataFrame({"a": t.key, "b": t.lo, "c": t.hi}).groupby(["a", "b", "c"], sort=False).ngroup()
        key = key.to_numpy(np.int64)
    ns = 1_000_000_000
    params = np.array([to["tcp_attempt_delay"], to["tcp_reset_delay"], to["tcp_close_delay"],
                       to["tcp_connection_linger"], to["tcp_inactivity_timeout"], to["udp_inactivity_timeout"],
                       to["icmp_inactivity_timeout"], to["tcp_SYN_timeout"], to["tcp_session_timer"],
                       0.0 if bare else to["port_inactivity_timeout"], 0, 0], np.float64)
    params = (params * ns).astype(np.int64)
    params[K.P_MAX_ABOVE_HOLE] = 16384
    params[K.P_EXCESSIVE] = 10 * 1024 * 1024
    if (not bare) if dns is None else dns:  # base/protocols/dns is loaded: its analyzer's ExpireTimer on DNS::ports
        params = np.concatenate([params, [int(to["dns_session_timeout"] * ns)], DNS_PORTS]).astype(np.int64)
    m = len(rows)
    order, skey, srows = np.empty(m, np.int64), np.empty(m, np.int64), np.empty(m, np.int64)
    K.group_by_key(key, int(key.max()) + 1, order, skey, rows, srows)
    # outputs from numpy (at most one connection per packet: untouched capacity costs no memory);
    # each packet's connection only when some packet came through a tunnel (for tunnel_parents)
    tunnelled = _tunnelled(packets, rows) if all(c in packets.columns for c in TUNNEL_COLUMNS) else None
    ci, hoff, hb = np.empty((m, K.NCO), np.int64), np.empty(m + 1, np.int64), np.empty(6 * m + 16, np.uint8)
    conn_of = np.empty(m if tunnelled is not None else 0, np.int64)
    nc = _run_kernel(raw, srows, order, skey, t, l4_ok, offload, likely_server_ports, bare, params, ci, hoff, hb,
                     conn_of)
    ci, hoff = ci[:nc], hoff[:nc + 1]
    hist = hoff, hb[:hoff[nc]]
    parents = None if tunnelled is None else _tunnel_parents(packets, rows, tunnelled, conn_of, nc)
    return _table(packets, rows, raw, t, ci, hist, cats, src_map, dst_map, local_nets,
                  community_id, parents, scratch=srows)  # srows: not needed after the kernel


_PACKET_COLUMNS = ("ts_ns", "frame", "ip_proto", "frag_offset", "ip_mf", "ip_len", "tcp_flags", "sport", "dport",
                   "icmp_type", "icmp_code", "tcp_seq", "tcp_ack", "tcp_win", "payload_len", "payload_caplen")
TUNNEL_COLUMNS = ("tunnel", "outer_src", "outer_dst", "tunnel_id")


def _tunnelled(packets, rows) -> np.ndarray | None:
    """Which of ``rows`` came through a tunnel (the kind set and not 'none'); None when none did. A
    categorical kind is read by its codes: a capture without tunnels costs one pass over int8 codes."""
    kind = column_array(packets, "tunnel")
    if isinstance(kind, pd.Categorical):
        none = pd.Index(kind.categories).get_indexer(["none"])[0]
        codes = kind.codes
        if not _any_other(codes, none):
            return None
        codes = codes[rows]
        return (codes >= 0) & (codes != none)
    k = pd.Series(kind, copy=False).iloc[rows]
    m = (k.notna() & (k.astype(object) != "none")).to_numpy(bool)
    return m if m.any() else None


@njit(cache=True, _nrt=False)
def _any_other(codes, none):
    """Any code set (>= 0) and not ``none``. A block at a time without a branch per code (the inner
    loop vectorises), the answer looked at after each block."""
    n = codes.shape[0]
    for a in range(0, n, 4096):
        hit = 0
        for i in range(a, min(a + 4096, n)):
            c = codes[i]
            hit |= (c >= 0) & (c != none)
        if hit:
            return True
    return False


def _tunnel_parents(packets, rows, m, conn_of, nc):
    """conn.zeek's tunnel_parents: the set of encapsulating connections' uids seen over the connection's
    lifetime (None: no connection has one). The packets table (when its reader decapsulates) names the
    encapsulation by kind, outer addresses and tunnel id; its uid is made from those as our uids are
    from a connection's identity. ``m``: which of ``rows`` came through a tunnel (_tunnelled);
    ``conn_of``: each one's connection (the kernel's)."""
    m = m & (conn_of != -1)  # a packet of a connection, counted or not (-2 - c: seen, not counted)
    if not m.any():
        return None
    c = np.where(conn_of < 0, -2 - conn_of, conn_of)[m]
    t = packets.iloc[rows[m]][list(TUNNEL_COLUMNS)]
    parts = []
    for name in TUNNEL_COLUMNS:
        v = t[name].astype(str).to_numpy(dtype=object)
        u, inv = np.unique(v, return_inverse=True)
        parts.append(_addr_hash(u)[inv])
    pid = _uids(parts).view("S18").ravel().astype(str)
    d = pd.DataFrame({"c": c, "p": pid}).drop_duplicates().sort_values(["c", "p"])
    joined = d.groupby("c")["p"].agg(",".join)
    out = np.full(nc, None, dtype=object)
    out[joined.index.to_numpy()] = joined.to_numpy()
    return pd.Series(out, dtype=pd.StringDtype("pyarrow", na_value=np.nan)).array


@njit(cache=True, _nrt=False)
def _creation_order(ci, at, rows, ts, frame, out):
    """out := the connections in order of their first packet (the order they were made in, reading the
    file in order; the state machine makes them key by key), by a scatter into ``at`` (one int32 a
    packet, all -1). Returns whether that is also the order by (first packet's time, its frame): the
    first packets' times and frames are read from the columns (a connection's start is its first
    packet's ts), in file order, not from ``ci`` in output order."""
    m = at.shape[0]
    for c in range(ci.shape[0]):
        at[ci[c, K.C_FIRSTPKT]] = c
    k = 0
    ok = True
    pt, pf = np.int64(0), np.int64(0)
    for i in range(m):
        if at[i] >= 0:
            out[k] = at[i]
            r = np.uint64(rows[i])
            t, f = np.int64(ts[r]), np.int64(frame[r])
            if k and (t < pt or (t == pt and f < pf)):
                ok = False
            pt, pf = t, f
            k += 1
    return ok


def _output_order(ci, rows, ts, frame, scratch=None) -> np.ndarray:
    """Connections by (first packet's time, its frame), ties in order of creation: usually the order of
    their first packets, unless the file's timestamps go back. ``scratch``: an int64 array of len(rows)
    no longer needed (memory already faulted in), for the scatter."""
    out = np.empty(len(ci), np.int64)
    m = len(rows)
    if _reusable(scratch, m, np.int64):
        at = scratch.view(np.int32)[:m]
        at.fill(-1)
    else:
        at = np.full(m, -1, np.int32)  # memory from numpy
    if _creation_order(ci, at, rows, ts, frame, out):
        return out
    first = ci[:, K.C_FIRSTPKT]
    return np.lexsort((first, frame[rows[first]], ci[:, K.C_START])).astype(np.int64)


def _table(packets, rows, raw, t, ci, hist, cats, src_map, dst_map, local_nets,
           community_id, parents, scratch=None) -> pd.DataFrame:
    frame = raw["frame"][0]
    nc = len(ci)
    order = _output_order(ci, rows, raw["ts_ns"][0], frame, scratch)
    hoff, hdata = hist
    hoff_out, hdata_out = np.empty(nc + 1, np.int64), np.empty(len(hdata), np.uint8)
    ints, floats = np.empty((F_ISN + 1, nc), np.int64), np.empty((D_RAFTER + 1, nc), np.float64)
    flags, ports, small = np.empty((M_RACK + 1, nc), bool), np.empty((N_RP + 1, nc), np.uint16), \
        np.empty((S_RBY + 1, nc), np.int8)
    ipp, synpay = np.empty(nc, np.uint8), np.empty(nc, np.int32)
    syns, synacks, uid = np.empty(nc, np.int32), np.empty(nc, np.int32), np.empty((nc, 18), np.uint8)
    _finish(ci, hoff, hdata, t.kind, t.sport, t.dport, t.side, rows, column_array(packets, "src").codes, src_map,
            column_array(packets, "dst").codes, dst_map, raw["ip_proto"][0], frame, _addr_hash(cats),
            order, _B62_PAIRS, np.empty((_FINISH_BLOCK, ci.shape[1]), np.int64), ints, floats, flags, ports, small, ipp,
            synpay, syns, synacks, uid, hoff_out, hdata_out)
    hoff, hdata = hoff_out, hdata_out
    catv = pd.Index(cats)
    oa, ra = ints[F_OA], ints[F_RA]
    # each column its own buffers: a value set in one must not show in another
    if local_nets:
        local = _is_local(cats, local_nets)
        lo_ = pd.arrays.BooleanArray(local[oa], np.zeros(nc, bool))
        lr_ = pd.arrays.BooleanArray(local[ra], np.zeros(nc, bool))
    else:
        lo_ = pd.arrays.BooleanArray(np.zeros(nc, bool), np.ones(nc, bool))
        lr_ = pd.arrays.BooleanArray(np.zeros(nc, bool), np.ones(nc, bool))
    if parents is None:
        tp = _null_str(nc)
    else:
        tp = parents.take(order)
    out = pd.DataFrame({
        "ts_ns": ints[F_TS],
        "uid": _arrow_str(np.arange(0, 18 * (nc + 1), 18, dtype=np.int64), uid),
        "orig_h": _cat(oa, catv),
        "orig_p": ports[N_OP],
        "resp_h": _cat(ra, catv),
        "resp_p": ports[N_RP],
        "proto": _cat(small[S_PROTO], ["tcp", "udp", "icmp"]),
        "duration_s": floats[D_DUR],
        "orig_bytes": pd.arrays.IntegerArray(ints[F_OB], flags[M_NODUR]),
        "resp_bytes": pd.arrays.IntegerArray(ints[F_RB], flags[M_NODUR].copy()),
        "conn_state": _cat(small[S_STATE], _STATE_CATS),
        "local_orig": lo_,
        "local_resp": lr_,
        "missed_bytes": ints[F_MISSED],
        "history": _arrow_str(hoff, hdata),
        "orig_pkts": ints[F_OPK],
        "orig_ip_bytes": ints[F_OIPB],
        "resp_pkts": ints[F_RPK],
        "resp_ip_bytes": ints[F_RIPB],
        "tunnel_parents": tp,
        "ip_proto": ipp,
        "first_frame": ints[F_FRAME],
        "isn": pd.arrays.IntegerArray(ints[F_ISN], flags[M_NOISN]),
        "syn_payload": pd.arrays.IntegerArray(synpay, flags[M_NOSYNPAY]),
        "syns": syns,
        "synacks": synacks,
        "handshake_rtt_us": floats[D_HS],
        "reset_by": _cat(small[S_RBY], ["orig", "resp"]),
        "reset_after_synack_us": floats[D_RAFTER],
        "reset_ack_from_responder": flags[M_RACK],
    }, copy=False)
    if community_id:
        out.insert(out.columns.get_loc("ip_proto") + 1, "community_id", community_ids(out))
    return out


def community_ids(conns: pd.DataFrame) -> pd.Series:
    """Community ID v1 (seed 0, base64) of each connection, by the maintained ``communityid`` package,
    as Zeek's policy/protocols/conn/community-id-logging computes it from the conn_id."""
    import communityid
    cid = communityid.CommunityID()
    out = []
    for oh, op, rh, rp, pr in zip(conns["orig_h"].astype(str), conns["orig_p"], conns["resp_h"].astype(str),
                                  conns["resp_p"], conns["ip_proto"]):
        pr, op, rp = int(pr), int(op), int(rp)
        if pr in (1, 58):
            two = _TWO_WAY_ICMP6 if pr == 58 else _TWO_WAY_ICMP4
            code = 0 if op in two else rp
            make = communityid.FlowTuple.make_icmp6 if pr == 58 else communityid.FlowTuple.make_icmp
            tpl = make(oh, rh, op, code)
        else:
            tpl = communityid.FlowTuple(pr, oh, rh, op, rp)
        out.append(cid.calc(tpl))
    return pd.Series(out, index=conns.index, name="community_id", dtype="str")


_KIND_COLUMNS = ("conn_state", "history", "reset_by")


def connection_kinds(conns: pd.DataFrame) -> pd.DataFrame:
    """The TCP connections counted by (conn_state, history, reset_by): what ``groupby(those,
    observed=True, dropna=False).size()`` gives (groups in sorted order, categories in their order,
    a missing value after the others), counted over integer codes instead of grouping the rows."""
    proto = conns["proto"]
    if isinstance(proto.dtype, pd.CategoricalDtype):
        tcp = (proto == "tcp").to_numpy(bool, na_value=False)
    else:
        tcp = (proto.astype(str) == "tcp").to_numpy()
    key = np.zeros(int(tcp.sum()), np.int64)
    parts = []
    for name in _KIND_COLUMNS:
        col = conns[name]
        if isinstance(col.dtype, pd.CategoricalDtype):
            codes, uniques = col.cat.codes.to_numpy(np.int64), col.cat.categories
        else:  # the whole column's (no copy of its strings), sorted: the groups' order
            codes, uniques = pd.factorize(col, sort=True, use_na_sentinel=True)
        codes = np.asarray(codes, np.int64)[tcp]
        width = len(uniques) + 1
        codes = np.where(codes < 0, width - 1, codes)  # missing: after every value
        key = key * width + codes
        parts.append((name, col.dtype, uniques, width))
    if len(key) and int(key.max()) < 4 * len(key) + 1024:
        counts = np.bincount(key)
        groups = np.flatnonzero(counts)
        counts = counts[groups]
    else:
        groups, counts = np.unique(key, return_counts=True)
    out = {}
    for name, dtype, uniques, width in reversed(parts):
        codes = groups % width
        groups = groups // width
        codes = np.where(codes == width - 1, -1, codes)
        if isinstance(dtype, pd.CategoricalDtype):
            out[name] = pd.Categorical.from_codes(codes, dtype=dtype)
        else:
            out[name] = pd.Series(uniques, dtype=dtype).array.take(codes, allow_fill=True)
    frame = pd.DataFrame({name: out[name] for name in _KIND_COLUMNS})
    frame["connections"] = counts.astype(np.int64)
    return frame


def tcp_connections(packets: pd.DataFrame, check_checksums: bool = True, likely_server_ports=LIKELY_SERVER_PORTS,
                    **kw) -> pd.DataFrame:
    """The TCP rows of :func:`connections` (the name probekit had before UDP and ICMP)."""
    c = connections(packets, check_checksums=check_checksums, likely_server_ports=likely_server_ports, **kw)
    return c[c["proto"] == "tcp"].reset_index(drop=True)


def probe_connections(probes: pd.DataFrame, conns: pd.DataFrame) -> pd.DataFrame:
    """Each probe's Zeek connection, keyed by ``request_frame``: uid, conn_state, history, reset_by.

    A TCP probe is the connection with its source, source port (``ident``), destination, port and ISN
    (``seq``); an ICMP probe is the echo connection of its source and destination that was open at the
    probe's time (Zeek's ICMP connection spans every echo between two hosts until 60 s of silence)."""
    cols = ["request_frame", "uid", "conn_state", "history", "reset_by"]
    if probes.empty or conns.empty:
        return pd.DataFrame({c: pd.Series([], dtype="int64" if c == "request_frame" else "object") for c in cols})
    pr = probes.assign(_src=probes["source"].astype(str), _dst=probes["destination"].astype(str))
    cn = conns.assign(_src=conns["orig_h"].astype(str), _dst=conns["resp_h"].astype(str))
    tcp = pr[pr["protocol"] == "tcp"]
    t = tcp[["request_frame", "_src", "_dst", "ident", "port", "seq"]].astype(
        {"ident": "int64", "port": "int64", "seq": "int64"}).merge(
        cn[cn["proto"] == "tcp"].astype({"orig_p": "int64", "resp_p": "int64"}).dropna(subset=["isn"]).astype(
            {"isn": "int64"}),
        left_on=["_src", "_dst", "ident", "port", "seq"], right_on=["_src", "_dst", "orig_p", "resp_p", "isn"],
        how="left").drop_duplicates("request_frame")
    icmp = pr[pr["protocol"].isin(["icmp", "icmpv6"])][["request_frame", "ts_ns", "_src", "_dst"]].sort_values("ts_ns")
    ic = cn[cn["proto"] == "icmp"][["ts_ns", "_src", "_dst", "uid", "conn_state", "history", "reset_by",
                                    "duration_s"]].sort_values("ts_ns")
    i = pd.merge_asof(icmp.astype({"ts_ns": "int64"}), ic.astype({"ts_ns": "int64"}), on="ts_ns",
                      by=["_src", "_dst"], direction="backward")
    out = pd.concat([t[cols], i[cols]], ignore_index=True)
    return out.sort_values("request_frame").reset_index(drop=True)
