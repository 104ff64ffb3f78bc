"""TCP connections in Zeek's terms: ``conn_state`` and ``history`` exactly as Zeek's TCP analyzer and
conn.log define them, plus what a probe analyst asks: who reset, how long after the SYN/ACK, the SYN's
payload, handshake RTT, re-sent SYNs and SYN/ACKs, and an ACK+RST from the target.

The endpoint state machine follows Zeek's TCPSessionAdapter (states INACTIVE, SYN_SENT, SYN_ACK_SENT,
PARTIAL, ESTABLISHED, CLOSED, RESET; history letters S h A D F R C T W Q I ^, upper case for the
originator) and conn.zeek's conn_state(). Not modelled: content gaps ('G'), which need Zeek's stream
reassembly, and the scaled repetition of letters past their first occurrence for C/T/W counts of 10+.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .._jit import njit
from ..capture.reader import open_bytes

__all__ = ["tcp_connections", "LIKELY_SERVER_PORTS"]

INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET = range(7)
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
TOO_LARGE_SEQ_DELTA = 1048576
# Zeek's likely_server_ports: the ports its protocol analyzers register (base scripts), abridged.
LIKELY_SERVER_PORTS = frozenset({21, 22, 23, 25, 53, 80, 88, 110, 111, 135, 137, 138, 139, 143, 161, 179, 389, 443,
                                 445, 465, 502, 514, 587, 636, 993, 995, 1080, 1194, 1433, 1723, 1812, 3128, 3306,
                                 3389, 5060, 5222, 5353, 5355, 5432, 6379, 6667, 8000, 8080, 8443, 8888, 9200})
_HIST = {"SYN": 1, "ACK": 2, "DATA": 4, "FIN": 8, "RST": 16, "MULTI": 32, "FINRST": 64, "CORRUPT": 128,
         "RXMIT": 256, "ZEROWIN": 512}
_RSTOS0 = re.compile(r"\^?S[^HAFGIQ]*R.*")


def _seq_delta(a: int, b: int) -> int:
    d = (a - b) & 0xFFFFFFFF
    return d - (1 << 32) if d >= 1 << 31 else d


@dataclass
class _Endpoint:
    is_orig: bool
    state: int = INACTIVE
    prev_state: int = INACTIVE
    start_seq: int = 0
    last_seq: int = 0
    ack_seq: int = 0
    hist_last_syn: int = -1
    hist_last_fin: int = -1
    hist_last_rst: int = -1
    did_close: bool = False
    data_bytes: int = 0

    def set_state(self, s: int) -> None:
        if s != self.state:
            self.prev_state = self.state
            self.state = s


@dataclass
class _Conn:
    orig_h: str
    orig_p: int
    resp_h: str
    resp_p: int
    first_ns: int
    first_frame: int
    history: list = field(default_factory=list)
    hist_seen: int = 0
    orig: _Endpoint = field(default_factory=lambda: _Endpoint(True))
    resp: _Endpoint = field(default_factory=lambda: _Endpoint(False))
    flipped: bool = False
    orig_pkts: int = 0
    resp_pkts: int = 0
    # probe-analysis extras
    isn: int | None = None
    syn_ns: int | None = None
    syn_payload: int | None = None
    syns: int = 0
    synack_ns: int | None = None
    synacks: int = 0
    rst_from: str | None = None
    rst_ns: int | None = None
    rst_ack_from_resp: bool = False
    last_ns: int = 0

    def check_history(self, is_orig: bool, kind: str, code: str) -> bool:
        """Zeek's CheckHistory: record ``code`` the first time a packet of ``kind`` is seen from this
        side; True if one was seen before."""
        mask = _HIST[kind] << (0 if is_orig else 16)
        if self.hist_seen & mask:
            return True
        self.hist_seen |= mask
        self.history.append(code if is_orig else code.lower())
        return False

    def add_history(self, is_orig: bool, code: str) -> None:
        self.history.append(code if is_orig else code.lower())

    def flip(self) -> None:
        self.orig, self.resp = self.resp, self.orig
        self.orig.is_orig, self.resp.is_orig = True, False
        self.orig_h, self.orig_p, self.resp_h, self.resp_p = self.resp_h, self.resp_p, self.orig_h, self.orig_p
        self.orig_pkts, self.resp_pkts = self.resp_pkts, self.orig_pkts
        self.hist_seen = ((self.hist_seen & 0xFFFF) << 16) | ((self.hist_seen >> 16) & 0xFFFF)
        self.history.append("^")
        self.flipped = not self.flipped


def _conn_state(c: _Conn) -> str:
    """conn.zeek's conn_state() for TCP."""
    os_, rs = c.orig.state, c.resp.state
    o_inactive = os_ in (INACTIVE, PARTIAL)
    r_inactive = rs in (INACTIVE, PARTIAL)
    hist = "".join(c.history)
    if rs == RESET:
        if os_ in (SYN_SENT, SYN_ACK_SENT) or (os_ == RESET and c.orig.data_bytes == 0 and c.resp.data_bytes == 0):
            return "REJ"
        return "RSTRH" if o_inactive else "RSTR"
    if os_ == RESET:
        if r_inactive:
            return "RSTOS0" if _RSTOS0.fullmatch(hist) else "OTH"
        return "RSTO"
    if rs == CLOSED and os_ == CLOSED:
        return "SF"
    if os_ == CLOSED:
        return "SH" if r_inactive else "S2"
    if rs == CLOSED:
        return "SHR" if o_inactive else "S3"
    if os_ == SYN_SENT and rs == INACTIVE:
        return "S0"
    if os_ == ESTABLISHED and rs == ESTABLISHED:
        return "S1"
    return "OTH"


def _process(c: _Conn, is_orig: bool, flags: int, seq: int, ack: int, win: int, length: int) -> None:
    ep = c.orig if is_orig else c.resp
    peer = c.resp if is_orig else c.orig
    syn, fin, rst, ackf = bool(flags & SYN), bool(flags & FIN), bool(flags & RST), bool(flags & ACK)
    seg_len = length + (1 if syn else 0) + (1 if fin else 0) - (length if rst else 0)
    last = (seq + seg_len) & 0xFFFFFFFF
    # init_endpoint
    if ep.state == INACTIVE:
        if syn:
            ep.start_seq = ep.ack_seq = seq
            ep.last_seq = last
        else:  # partial: number as though a SYN was seen, without marking this packet a duplicate
            ep.start_seq = ep.ack_seq = (seq - 1) & 0xFFFFFFFF
            ep.last_seq = seq
    elif ep.state in (SYN_SENT, SYN_ACK_SENT, ESTABLISHED, PARTIAL):
        if syn and seq != ep.start_seq:
            ep.start_seq = ep.ack_seq = seq
            ep.last_seq = last
    elif ep.state == RESET and syn and ep.prev_state == INACTIVE:
        ep.start_seq = ep.ack_seq = seq
        ep.last_seq = last
    rel_seq = _seq_delta(seq, ep.start_seq)
    # update_history
    bits = int(syn) + int(fin) + int(rst)
    if bits > 1:
        if fin and rst:
            c.check_history(is_orig, "FINRST", "I")
        else:
            c.check_history(is_orig, "MULTI", "Q")
    elif bits == 1:
        if syn:
            code = "H" if ackf else "S"
            if c.check_history(is_orig, "SYN", code) and rel_seq != ep.hist_last_syn:
                c.add_history(is_orig, code)
            ep.hist_last_syn = rel_seq
        if fin:
            if c.check_history(is_orig, "FIN", "F") and rel_seq + length != ep.hist_last_fin:
                c.add_history(is_orig, "F")
            ep.hist_last_fin = rel_seq + length
        if rst:
            if c.check_history(is_orig, "RST", "R") and rel_seq != ep.hist_last_rst:
                c.add_history(is_orig, "R")
            ep.hist_last_rst = rel_seq
    else:
        if length:
            c.check_history(is_orig, "DATA", "D")
        elif ackf:
            c.check_history(is_orig, "ACK", "A")
    # update_window: a zero window (not on a RST, nor after the peer closed) is 'W'
    if win == 0 and not rst and peer.state != CLOSED and ep.state != RESET:
        c.check_history(is_orig, "ZEROWIN", "W")
    # ack handling
    if ackf:
        if peer.state == INACTIVE:
            peer.start_seq = peer.ack_seq = peer.last_seq = (ack - 1) & 0xFFFFFFFF
        elif not rst and _seq_delta(ack, peer.ack_seq) > 0 and not (ack == 0 and _seq_delta(ack, peer.ack_seq) > TOO_LARGE_SEQ_DELTA):
            peer.ack_seq = ack
    # update_last_seq
    delta_last = _seq_delta(last, ep.last_seq)
    if (syn or rst) and (delta_last > TOO_LARGE_SEQ_DELTA or delta_last < -TOO_LARGE_SEQ_DELTA):
        pass
    elif fin and ep.last_seq == (ep.start_seq + 1) & 0xFFFFFFFF:
        ep.last_seq = last
    elif ep.state == RESET:
        pass
    elif delta_last > 0:
        ep.last_seq = last
    elif delta_last <= 0 and length > 0:
        c.check_history(is_orig, "RXMIT", "T")
    if length > 0 and not rst:
        ep.data_bytes += length
    _state_machine(c, ep, peer, is_orig, syn, fin, rst, ackf, seq, ack, length)


def _state_machine(c, ep, peer, is_orig, syn, fin, rst, ackf, seq, ack, length) -> None:
    st = ep.state
    if st == INACTIVE:
        if syn:
            if is_orig:
                ep.set_state(SYN_ACK_SENT if ackf else SYN_SENT)
            else:
                if not ackf and peer.state == SYN_ACK_SENT and seq == ep.start_seq:
                    c.flip()  # SYN / SYN-ACK reversal: flip the endpoints and establish
                    peer.set_state(ESTABLISHED)
                if peer.state == SYN_SENT:
                    peer.set_state(ESTABLISHED)
                ep.set_state(ESTABLISHED)
        if fin:
            ep.set_state(CLOSED)
        if rst:
            ep.set_state(RESET)
        if ep.state == INACTIVE:
            if not is_orig and length == 0 and c.orig.state == SYN_SENT:
                pass
            elif ackf and peer.state == ESTABLISHED:
                ep.set_state(ESTABLISHED)
            else:
                ep.set_state(PARTIAL)
    elif st in (SYN_SENT, SYN_ACK_SENT):
        if fin:
            ep.set_state(CLOSED)
        if rst:
            ep.set_state(RESET)
    elif st in (ESTABLISHED, PARTIAL):
        if syn and st == PARTIAL and peer.state == INACTIVE and not ackf:
            ep.set_state(SYN_SENT)
        if fin and not rst:
            ep.set_state(CLOSED)
            if peer.state == RESET and peer.prev_state == CLOSED:
                peer.set_state(CLOSED)
        if rst:
            ep.set_state(RESET)
    elif st == CLOSED:
        if rst and peer.state != CLOSED:
            ep.set_state(RESET)


@njit(cache=True)
def _tcp_checksums_ok(buf, l4_off, l4_len, ip_off, is_v6, out):
    for i in range(l4_off.shape[0]):
        o = l4_off[i]
        n = l4_len[i]
        s = np.int64(0)
        if is_v6[i]:
            a = ip_off[i] + 8
            for k in range(0, 32, 2):
                s += (np.int64(buf[a + k]) << 8) | np.int64(buf[a + k + 1])
        else:
            a = ip_off[i] + 12
            for k in range(0, 8, 2):
                s += (np.int64(buf[a + k]) << 8) | np.int64(buf[a + k + 1])
        s += 6 + n
        for k in range(0, n - 1, 2):
            s += (np.int64(buf[o + k]) << 8) | np.int64(buf[o + k + 1])
        if n % 2 == 1:
            s += np.int64(buf[o + n - 1]) << 8
        while s >> 16:
            s = (s & 0xFFFF) + (s >> 16)
        out[i] = s == 0xFFFF


def _checksums(packets: pd.DataFrame, tcp: pd.DataFrame) -> np.ndarray:
    """True where the TCP checksum verifies; True too where it cannot be checked (segment not whole)."""
    ok = np.ones(len(tcp), bool)
    whole = (tcp["payload_caplen"] == tcp["payload_len"]).fillna(False).to_numpy() & tcp["payload_off"].notna().to_numpy()
    if not whole.any() or not (packets.attrs.get("path") or packets.attrs.get("paths")):
        return ok
    t = tcp.copy()
    t.attrs = packets.attrs
    for path, rows in t.probekit.files():
        rows = rows[whole[rows]]
        if not rows.size:
            continue
        sel = t.iloc[rows]
        hdr = sel["tcp_hdr_len"].to_numpy("int64")
        l4_off = sel["payload_off"].to_numpy("int64") - hdr
        l4_len = hdr + sel["payload_len"].to_numpy("int64")
        ip_off = l4_off - sel["ip_hdr_len"].to_numpy("int64")
        is_v6 = (sel["l3"] == "ipv6").to_numpy()
        out = np.ones(len(sel), bool)
        with open_bytes(path) as buf:
            _tcp_checksums_ok(buf, l4_off, l4_len, ip_off, is_v6, out)
        ok[rows] = out
    return ok


def tcp_connections(packets: pd.DataFrame, check_checksums: bool = True,
                    likely_server_ports=LIKELY_SERVER_PORTS) -> pd.DataFrame:
    """One row per TCP connection, in order of first packet, with Zeek's conn_state and history.

    A SYN (without ACK) that arrives after both ends closed or reset, or with a new ISN after one end
    reset, starts a new connection on the same 4-tuple (what Zeek calls connection reuse), so repeated
    probes from one source port stay separate.

    check_checksums: a segment whose TCP checksum fails is only recorded as 'C' (as Zeek does; ``False``
    is zeek -C). likely_server_ports: ports that make the first packet's sender the responder when a
    connection starts without a SYN (Zeek's likely_server_ports; empty as in zeek -b)."""
    m = (packets["ip_proto"] == 6).fillna(False) & packets["tcp_flags"].notna() & packets["ts_ns"].notna()
    tcp = packets[m.to_numpy()]
    ok = _checksums(packets, tcp) if check_checksums else np.ones(len(tcp), bool)
    cols = [tcp[c].to_numpy() for c in ("frame", "ts_ns")] + [tcp[c].astype(str).to_numpy() for c in ("src", "dst")]
    ints = [tcp[c].to_numpy("int64", na_value=0) for c in ("sport", "dport", "tcp_flags", "tcp_seq", "tcp_ack",
                                                           "tcp_win", "payload_len")]
    conns: dict = {}
    done: list[_Conn] = []
    for i in range(len(tcp)):
        frame, ts, src, dst = int(cols[0][i]), int(cols[1][i]), cols[2][i], cols[3][i]
        sport, dport, flags, seq, ack, win, length = (int(a[i]) for a in ints)
        key = (src, sport, dst, dport) if (src, sport) <= (dst, dport) else (dst, dport, src, sport)
        c = conns.get(key)
        if c is not None and flags & SYN and not flags & ACK:
            from_orig = (src, sport) == (c.orig_h, c.orig_p)
            ep = c.orig if from_orig else c.resp
            ends_over = c.orig.state in (CLOSED, RESET) and c.resp.state in (CLOSED, RESET, INACTIVE, PARTIAL)
            reset_new_isn = (c.orig.state == RESET or c.resp.state == RESET) and seq != ep.start_seq
            if ends_over or reset_new_isn:
                done.append(c)
                c = None
        if c is None:
            c = _Conn(src, sport, dst, dport, ts, frame)
            conns[key] = c
            if not (flags & SYN) or (flags & ACK):  # partial: guess the responder by its port
                if sport in likely_server_ports:
                    if dport not in likely_server_ports or (not flags & SYN and sport < dport):
                        c.flip()
        is_orig = (src, sport) == (c.orig_h, c.orig_p)
        c.last_ns = ts
        if not ok[i]:
            c.check_history(is_orig, "CORRUPT", "C")
            continue
        if is_orig:
            c.orig_pkts += 1
        else:
            c.resp_pkts += 1
        _extras(c, is_orig, flags, seq, ts, length)
        _process(c, is_orig, flags, seq, ack, win, length)
    done.extend(conns.values())
    done.sort(key=lambda c: c.first_frame)
    rows = []
    for c in done:
        rows.append(dict(
            first_ns=c.first_ns, first_frame=c.first_frame, orig_h=c.orig_h, orig_p=c.orig_p, resp_h=c.resp_h,
            resp_p=c.resp_p, conn_state=_conn_state(c), history="".join(c.history), orig_pkts=c.orig_pkts,
            resp_pkts=c.resp_pkts, isn=c.isn, syn_payload=c.syn_payload, syns=c.syns, synacks=c.synacks,
            handshake_rtt_us=(c.synack_ns - c.syn_ns) / 1e3 if c.synack_ns is not None and c.syn_ns is not None else np.nan,
            reset_by=c.rst_from,
            rst_after_synack_us=(c.rst_ns - c.synack_ns) / 1e3 if c.rst_ns is not None and c.synack_ns is not None else np.nan,
            rst_ack_from_responder=c.rst_ack_from_resp, duration_s=(c.last_ns - c.first_ns) / 1e9))
    out = pd.DataFrame(rows, columns=["first_ns", "first_frame", "orig_h", "orig_p", "resp_h", "resp_p", "conn_state",
                                      "history", "orig_pkts", "resp_pkts", "isn", "syn_payload", "syns", "synacks",
                                      "handshake_rtt_us", "reset_by", "rst_after_synack_us", "rst_ack_from_responder",
                                      "duration_s"])
    for c in ("isn", "syn_payload"):
        out[c] = out[c].astype("Int64")
    out["conn_state"] = out["conn_state"].astype("category")
    return out


def _extras(c: _Conn, is_orig: bool, flags: int, seq: int, ts: int, length: int) -> None:
    """What Zeek's log does not say but a probe analyst asks."""
    syn, ackf, rst = flags & SYN, flags & ACK, flags & RST
    if syn and not ackf:
        c.syns += 1
        if c.isn is None:
            c.isn, c.syn_ns, c.syn_payload = seq, ts, length
    elif syn and ackf:
        c.synacks += 1
        if c.synack_ns is None:
            c.synack_ns = ts
    if rst and c.rst_from is None:
        c.rst_from = "orig" if is_orig else "resp"
        c.rst_ns = ts
        if ackf and not is_orig:
            c.rst_ack_from_resp = True
