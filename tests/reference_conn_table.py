"""The connection table around the compiled state machine as probekit had it before issue #15
(probekit/analysis/connections.py and probekit/capture/checksums.py at b77021f), kept verbatim as the
plain reference tests/test_conn_table.py holds the faster version equal to, byte for byte. It calls the
file-order state machine of e67a59b (tests/reference_conn_kernel.py), so today's table, key-by-key kernel
and all, is compared with the one before. Not used by probekit itself."""
from __future__ import annotations

import ipaddress

import numpy as np
import pandas as pd

import reference_conn_kernel as K
from probekit._io import open_bytes
from probekit._jit import njit
from probekit.analysis.connections import _addr_hash, _empty, _is_local, _port_sets, _port_table, community_ids
from probekit.capture.payloads import payload_files

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


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser (uint64 arrays)."""
    x = x.astype(np.uint64)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


_B62 = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", np.uint8)


def _uids(parts: list[np.ndarray]) -> np.ndarray:
    """Deterministic Zeek-style uids ('C' + 17 base62 digits) from the connection's identity."""
    h1 = np.zeros(len(parts[0]), np.uint64)
    h2 = np.full(len(parts[0]), 0x9E3779B97F4A7C15, np.uint64)
    with np.errstate(over="ignore"):
        for p in parts:
            h1 = _mix(h1 ^ p.astype(np.uint64))
            h2 = _mix(h2 + p.astype(np.uint64) * np.uint64(0x100000001B3))
    digits = np.empty((len(h1), 18), np.uint8)
    digits[:, 0] = ord("C")
    for j, (h, nd) in enumerate(((h1, 11), (h2, 6))):
        for k in range(nd):
            digits[:, 1 + (0 if j == 0 else 11) + k] = _B62[(h % np.uint64(62)).astype(np.int64)]
            h = h // np.uint64(62)
    return digits


_STATE_CATS = [s for s in K.STATES if s != "RSTOS0?"]


def _int_col(packets, name, rows, na=0) -> np.ndarray:
    """Column ``name`` at ``rows`` as int64 (``na`` where missing), without a full-column NA fill."""
    a = packets[name].array
    data, mask = getattr(a, "_data", None), getattr(a, "_mask", None)
    if data is None or mask is None:
        return packets[name].to_numpy("int64", na_value=na)[rows]
    out = np.asarray(data[rows], dtype=np.int64)
    if out is data or np.shares_memory(out, data):
        out = out.copy()
    m = mask[rows]
    if m.any():
        out[m] = na
    return out


def _present(packets, name) -> np.ndarray:
    m = getattr(packets[name].array, "_mask", None)
    return ~m if m is not None else packets[name].notna().to_numpy()


def _null_str(n: int) -> pd.Series:
    import pyarrow as pa
    return pd.Series(pa.nulls(n, pa.string()), dtype=pd.StringDtype("pyarrow", na_value=np.nan))


def _str_column(m: np.ndarray) -> pd.Series:
    """A 'str' column from a zero-padded byte matrix, through Arrow buffers (no Python strings)."""
    import pyarrow as pa
    nz = m != 0
    off = np.zeros(len(m) + 1, np.int32)
    np.cumsum(nz.sum(1), out=off[1:])
    arr = pa.StringArray.from_buffers(len(m), pa.py_buffer(off), pa.py_buffer(np.ascontiguousarray(m[nz]).tobytes()))
    return pd.Series(arr, dtype=pd.StringDtype("pyarrow", na_value=np.nan))


def _arrow_str(offsets: np.ndarray, data: np.ndarray) -> pd.Series:
    import pyarrow as pa
    arr = pa.StringArray.from_buffers(len(offsets) - 1, pa.py_buffer(offsets), pa.py_buffer(data.tobytes()))
    return pd.Series(arr, dtype=pd.StringDtype("pyarrow", na_value=np.nan))


def _l3_is(packets, kind: str) -> np.ndarray:
    """l3 == kind, from the categorical's codes (no per-row string work)."""
    c = packets["l3"].array
    i = pd.Index(c.categories).get_indexer([kind])[0]
    return c.codes == i if i >= 0 else np.zeros(len(c), bool)


def connections(packets: pd.DataFrame, *, check_checksums: bool = True, likely_server_ports=LIKELY_SERVER_PORTS,
                bare: bool = False, local_nets=PRIVATE_ADDRESS_SPACE, timeouts_s: dict | None = None,
                community_id: bool = False) -> pd.DataFrame:
    """One row per TCP, UDP and ICMP connection as Zeek logs it (schema.CONNECTIONS), in order of the
    connection's first packet.

    check_checksums: drop what Zeek drops (bad IPv4 header checksum, IPv4 total length 0) and record
    a bad L4 checksum as 'C' (False is ``zeek -C``). likely_server_ports: "80/tcp"-style strings (ints
    mean TCP and UDP). bare: ``zeek -b`` (no protocol analyzers: only the tunnel ports are likely server
    ports, no per-port inactivity timeouts). local_nets: for local_orig/local_resp (empty: <NA>).
    timeouts_s: overrides of TIMEOUTS_S. community_id: add the Community ID column."""
    if bare and likely_server_ports is LIKELY_SERVER_PORTS:
        likely_server_ports = BARE_LIKELY_SERVER_PORTS
    to = dict(TIMEOUTS_S, **(timeouts_s or {}))
    allr = slice(None)
    proto = _int_col(packets, "ip_proto", allr, -1)
    ipv4, ipv6 = _l3_is(packets, "ipv4"), _l3_is(packets, "ipv6")
    ts_ok = _present(packets, "ts_ns")
    frag = (_int_col(packets, "frag_offset", allr, 0) > 0) | (_int_col(packets, "ip_mf", allr, 0) > 0)
    ip_len = _int_col(packets, "ip_len", allr, -1)
    is_tcp = (proto == 6) & _present(packets, "tcp_flags")
    is_udp = (proto == 17) & _present(packets, "sport")
    is_icmp = ((proto == 1) & ipv4 | (proto == 58) & ipv6) & _present(packets, "icmp_type")
    keep = ts_ok & ~frag & (ipv4 | ipv6) & (is_tcp | is_udp | is_icmp)
    offload = ipv4 & (ip_len == 0)
    if check_checksums:
        ip_ok, l4_ok = K_checksums(packets, np.flatnonzero(keep))
        keep &= ip_ok & ~offload  # IP.cc: bad header checksum, or total length 0 with checksums on: dropped
    else:
        l4_ok = np.ones(len(packets), bool)
    rows = np.flatnonzero(keep)
    if not rows.size:
        return _empty()

    def col(name, na=0):
        return _int_col(packets, name, rows, na)
    l4_ok = l4_ok[rows]
    kind = np.where(is_tcp[rows], K.K_TCP, np.where(is_udp[rows], K.K_UDP, K.K_ICMP)).astype(np.int64)
    src, dst = packets["src"].array, packets["dst"].array
    cats = pd.Index(src.categories).union(pd.Index(dst.categories))
    sa = cats.get_indexer(src.categories).astype(np.int64)[src.codes[rows]]
    da = cats.get_indexer(dst.categories).astype(np.int64)[dst.codes[rows]]
    sport = col("sport")
    dport = col("dport")
    pr = proto[rows]
    icmp = kind == K.K_ICMP
    one_way = np.zeros(len(rows), bool)
    if icmp.any():
        it = col("icmp_type") & 0xFF
        ic = col("icmp_code")
        v6 = pr == 58
        table4 = np.full(256, -1, np.int64)
        table6 = np.full(256, -1, np.int64)
        for x, y in _TWO_WAY_ICMP4.items():
            table4[x] = y
        for x, y in _TWO_WAY_ICMP6.items():
            table6[x] = y
        cp = np.where(v6, table6[it], table4[it])
        one_way = icmp & (cp < 0)
        sport = np.where(icmp, it, sport)
        dport = np.where(icmp, np.where(cp < 0, ic, cp), dport)
    ep_s = sa * 65536 + sport
    ep_d = da * 65536 + dport
    side = ((ep_s > ep_d) & ~one_way).astype(np.int64)
    lo = np.where(side == 0, ep_s, ep_d)
    hi = np.where(side == 0, ep_d, ep_s)
    pk = (pr & 0xFF) * 2 + one_way
    if len(cats) < (1 << 13):  # the 5-tuple fits one int64: hash-factorise it
        key = pd.factorize((pk << 58) | (lo << 29) | hi)[0].astype(np.int64)
    else:
        key = pd.DataFrame({"a": pk, "b": lo, "c": hi}).groupby(["a", "b", "c"], sort=False).ngroup()
        key = key.to_numpy(np.int64)
    tcp_lsp, udp_lsp = _port_sets(likely_server_ports)
    is_t, is_u = kind == K.K_TCP, kind == K.K_UDP
    tt, ut = _port_table(tcp_lsp), _port_table(udp_lsp)
    sp16, dp16 = sport & 0xFFFF, dport & 0xFFFF
    src_lsp = (is_t & tt[sp16]) | (is_u & ut[sp16])
    dst_lsp = (is_t & tt[dp16]) | (is_u & ut[dp16])
    bcast_code = cats.get_indexer(["255.255.255.255"])[0]
    bcast = (da == bcast_code) if bcast_code >= 0 else np.zeros(len(rows), bool)
    long_ports = np.array([] if bare else _LONG_INACTIVITY_PORTS, np.int64)
    lt = _port_table(long_ports)
    src_long = is_t & lt[sp16]
    dst_long = is_t & lt[dp16]
    off = offload[rows]
    # TCP.cc / UDP.cc / ICMP.cc: total length 0 -> use what was captured
    length = np.where(off, col("payload_caplen"), col("payload_len"))
    ipl = np.where(off, 0, col("ip_len"))
    # TCPAnalyzer::ExtractTCP_Header refused the header (payload_len unset): the kernel takes length -1
    length = np.where(is_t & packets["payload_len"].isna().to_numpy()[rows] & ~off, -1, length)
    ns = 1_000_000_000
    params = np.array([to["tcp_attempt_delay"], to["tcp_reset_delay"], to["tcp_close_delay"],
                       to["tcp_connection_linger"], to["tcp_inactivity_timeout"], to["udp_inactivity_timeout"],
                       to["icmp_inactivity_timeout"], to["tcp_SYN_timeout"], to["tcp_session_timer"],
                       0.0 if bare else to["port_inactivity_timeout"], 0, 0], np.float64)
    params = (params * ns).astype(np.int64)
    params[K.P_MAX_ABOVE_HOLE] = 16384
    params[K.P_EXCESSIVE] = 10 * 1024 * 1024
    if not bare:  # the DNS analyzer's ExpireTimer: dns_session_timeout, then DNS::ports
        params = np.concatenate([params, [int(to["dns_session_timeout"] * ns), 53, 137, 5353, 5355]]).astype(np.int64)
    ts = col("ts_ns")
    ci, ei, conn_of, ev_c, ev_ch = K.conn_kernel(
        ts, kind, key, side, col("tcp_flags"), col("tcp_seq"), col("tcp_ack"), col("tcp_win", 1), length, ipl,
        l4_ok, sport, dport, src_lsp, dst_lsp, bcast, src_long, dst_long, int(key.max()) + 1, params)
    state, size, pkts, ipb = K.conn_finish(ci, ei)
    hist = K.history_buffers(len(ci), ev_c, ev_ch)
    parents = _tunnel_parents(packets, rows, conn_of, len(ci))
    return _table(col("frame"), ci, state, size, pkts, ipb, hist, side, sa, da, sport, dport, cats, kind, pr,
                  local_nets, community_id, parents)


TUNNEL_COLUMNS = ("tunnel", "outer_src", "outer_dst", "tunnel_id")


def _tunnel_parents(packets, rows, conn_of, nc) -> pd.Series:
    """conn.zeek's tunnel_parents: the set of encapsulating connections' uids seen over the connection's
    lifetime. The packets table (when its reader decapsulates) names the encapsulation by kind, outer
    addresses and tunnel id; its uid is made from those as our uids are from a connection's identity."""
    if not all(c in packets.columns for c in TUNNEL_COLUMNS):
        return _null_str(nc)
    t = packets.iloc[rows][list(TUNNEL_COLUMNS)]
    kind = t["tunnel"]
    m = (kind.notna() & (kind.astype(object) != "none")).to_numpy(bool) & (conn_of != -1)
    if not m.any():
        return _null_str(nc)
    c = np.where(conn_of < 0, -1 - conn_of, conn_of)[m]
    t = t[m]
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
    return pd.Series(out, dtype=pd.StringDtype("pyarrow", na_value=np.nan))


# ---- probekit/capture/checksums.py at b77021f
@njit(cache=True)
def _sum16(buf, o, n, s):
    for k in range(0, n - 1, 2):
        s += (np.int64(buf[o + k]) << 8) | np.int64(buf[o + k + 1])
    if n % 2 == 1:
        s += np.int64(buf[o + n - 1]) << 8
    return s


@njit(cache=True)
def _fold(s):
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


@njit(cache=True)
def _verify(buf, ip_off, ip_hdr_len, is_v6, proto, l4_off, l4_len, whole, ip_ok, l4_ok):
    size = buf.shape[0]
    for i in range(ip_off.shape[0]):
        a = ip_off[i]
        if a < 0:
            continue
        if not is_v6[i] and a + ip_hdr_len[i] <= size:
            ip_ok[i] = _fold(_sum16(buf, a, ip_hdr_len[i], np.int64(0))) == 0xFFFF
        if not whole[i] or l4_off[i] < 0 or l4_off[i] + l4_len[i] > size:
            continue
        o, n, p = l4_off[i], l4_len[i], proto[i]
        s = np.int64(0)
        if p == 1:  # ICMPv4: no pseudo-header
            l4_ok[i] = _fold(_sum16(buf, o, n, s)) == 0xFFFF
            continue
        if p == 17 and not is_v6[i] and n >= 8 and buf[o + 6] == 0 and buf[o + 7] == 0:
            continue  # UDP over IPv4 without a checksum
        if is_v6[i]:
            s = _sum16(buf, a + 8, 32, s)
        else:
            s = _sum16(buf, a + 12, 8, s)
        s += p + n
        l4_ok[i] = _fold(_sum16(buf, o, n, s)) == 0xFFFF


def checksums_ok(packets: pd.DataFrame, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(IPv4 header checksum ok, L4 checksum ok) per row of ``packets``; True where not checkable.
    ``rows``: verify only these row positions (the others stay True)."""
    n = len(packets)
    ip_ok = np.ones(n, bool)
    l4_ok = np.ones(n, bool)
    if not n or not (packets.attrs.get("path") or packets.attrs.get("paths")):
        return ip_ok, l4_ok
    sel = np.arange(n) if rows is None else np.asarray(rows, np.int64)

    def col(name, na):
        a = packets[name].array
        data, mask = getattr(a, "_data", None), getattr(a, "_mask", None)
        if data is None or mask is None:
            return packets[name].to_numpy("int64", na_value=na)[sel]
        out = np.array(data[sel], dtype=np.int64)
        out[mask[sel]] = na
        return out
    proto = col("ip_proto", -1)
    l3c = packets["l3"].array
    cats = pd.Index(l3c.categories)
    codes = l3c.codes[sel]
    i4, i6 = cats.get_indexer(["ipv4"])[0], cats.get_indexer(["ipv6"])[0]
    is_v6 = (codes == i6) if i6 >= 0 else np.zeros(len(sel), bool)
    ipv = ((codes == i4) if i4 >= 0 else np.zeros(len(sel), bool)) | is_v6
    hdr = np.where(proto == 6, col("tcp_hdr_len", -1), 8)
    poff = col("payload_off", -1)
    iphl = col("ip_hdr_len", 0)
    iplen = col("ip_len", 0)
    pcap = col("payload_caplen", -1)
    frag = col("frag_offset", 0) > 0
    mf = col("ip_mf", 0) > 0
    l4 = np.isin(proto, (1, 6, 17, 58)) & (hdr > 0) & (poff >= 0) & ~frag & ~mf
    l4_off = np.where(l4, poff - hdr, -1)
    ip_off = np.where(ipv & (poff >= 0) & (hdr > 0), poff - hdr - iphl, -1)
    l4_len = iplen - iphl
    whole = l4 & (iplen > 0) & (pcap >= 0) & (pcap >= l4_len - hdr)
    a = np.ones(len(sel), bool)
    b = np.ones(len(sel), bool)
    pos = np.full(n, -1, np.int64)
    pos[sel] = np.arange(len(sel))
    for path, frows in payload_files(packets):
        r = pos[frows]
        r = r[r >= 0]
        if not r.size:
            continue
        with open_bytes(path) as buf:
            x, y = a[r], b[r]
            _verify(buf, ip_off[r], iphl[r], is_v6[r], proto[r], l4_off[r], l4_len[r], whole[r], x, y)
            a[r], b[r] = x, y
    ip_ok[sel], l4_ok[sel] = a, b
    return ip_ok, l4_ok


def K_checksums(packets, rows):
    return checksums_ok(packets, rows)


def _table(frames, ci, state, size, pkts, ipb, hist, side, sa, da, sport, dport, cats, kind, pr, local_nets,
           community_id, parents) -> pd.DataFrame:
    C = K
    first = ci[:, C.C_FIRSTPKT]
    fside = side[first]
    o = ci[:, C.C_ORIGSIDE]
    # endpoint of side 0 / 1 from the first packet, then by role
    s0a = np.where(fside == 0, sa[first], da[first])
    s1a = np.where(fside == 0, da[first], sa[first])
    s0p = np.where(fside == 0, sport[first], dport[first])
    s1p = np.where(fside == 0, dport[first], sport[first])
    oa, ra = np.where(o == 0, s0a, s1a), np.where(o == 0, s1a, s0a)
    op, rp = np.where(o == 0, s0p, s1p), np.where(o == 0, s1p, s0p)
    start, last = ci[:, C.C_START], ci[:, C.C_LAST]
    dur_ns = last - start
    has_dur = dur_ns > 0
    # kernel codes: 12 is "RSTOS0 or OTH" (decided on the history), 13 OTH; categories: _STATE_CATS
    cand = np.flatnonzero(state == 12)
    state = np.where(state >= 12, 12, state)
    if cand.size:  # conn_state(): /\^?S[^HAFGIQ]*R.*/ == history
        off, data = hist
        hs = [bytes(data[off[i]:off[i + 1]]).decode() for i in cand]
        rst = pd.Series(hs, dtype=object).str.fullmatch(r"\^?S[^HAFGIQ]*R.*").to_numpy(bool)
        state[cand[rst]] = 8
    ip_proto = pr[first]
    ahash = _addr_hash(cats)
    uid = _uids([start, ip_proto, op, rp, ahash[oa], ahash[ra]])
    is_tcp = kind[first] == K.K_TCP
    rst_side = ci[:, C.C_RSTSIDE]
    reset_by = np.where(rst_side < 0, -1, np.where(rst_side == o, 0, 1))
    synts, synackts, rstts = ci[:, C.C_SYNTS], ci[:, C.C_SYNACKTS], ci[:, C.C_RSTTS]
    catv = pd.Index(cats)
    local = _is_local(cats, local_nets) if local_nets else None
    n = len(ci)

    def opt(mask, vals, dtype):
        return pd.Series(np.where(mask, vals, 0)).astype(dtype).mask(~mask)
    out = pd.DataFrame({
        "ts_ns": start,
        "uid": _str_column(uid),
        "orig_h": pd.Categorical.from_codes(oa, categories=catv),
        "orig_p": op.astype("uint16"),
        "resp_h": pd.Categorical.from_codes(ra, categories=catv),
        "resp_p": rp.astype("uint16"),
        "proto": pd.Categorical.from_codes(kind[first], categories=["tcp", "udp", "icmp"]),
        "duration_s": np.where(has_dur, dur_ns / 1e9, np.nan),
        "orig_bytes": opt(has_dur, size[:, 0], "Int64"),
        "resp_bytes": opt(has_dur, size[:, 1], "Int64"),
        "conn_state": pd.Categorical.from_codes(state, categories=_STATE_CATS),
        "local_orig": pd.array(local[oa], dtype="boolean") if local is not None else pd.array([pd.NA] * n, dtype="boolean"),
        "local_resp": pd.array(local[ra], dtype="boolean") if local is not None else pd.array([pd.NA] * n, dtype="boolean"),
        "missed_bytes": ci[:, C.C_MISSED],
        "history": _arrow_str(*hist),
        "orig_pkts": pkts[:, 0],
        "orig_ip_bytes": ipb[:, 0],
        "resp_pkts": pkts[:, 1],
        "resp_ip_bytes": ipb[:, 1],
        "tunnel_parents": parents,
        "ip_proto": ip_proto.astype("uint8"),
        "first_frame": frames[first],
        "isn": opt(is_tcp & (ci[:, C.C_ISN] >= 0), ci[:, C.C_ISN], "Int64"),
        "syn_payload": opt(is_tcp & (ci[:, C.C_SYNPAY] >= 0), ci[:, C.C_SYNPAY], "Int32"),
        "syns": ci[:, C.C_SYNS].astype("int32"),
        "synacks": ci[:, C.C_SYNACKS].astype("int32"),
        "handshake_rtt_us": np.where((synts >= 0) & (synackts >= 0), (synackts - synts) / 1e3, np.nan),
        "reset_by": pd.Categorical.from_codes(reset_by, categories=["orig", "resp"]),
        "reset_after_synack_us": np.where((rstts >= 0) & (synackts >= 0), (rstts - synackts) / 1e3, np.nan),
        "reset_ack_from_responder": (rst_side >= 0) & (rst_side != o) & (ci[:, C.C_RSTACK] == 1),
    })
    out = out.sort_values(["ts_ns", "first_frame"], kind="stable").reset_index(drop=True)
    if community_id:
        out.insert(out.columns.get_loc("ip_proto") + 1, "community_id", community_ids(out))
    return out


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
