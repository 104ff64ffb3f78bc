"""The connection state machine of Zeek, compiled: one pass over the packets grouped by connection key
(each key's packets in file order; ``group_by_key`` makes the order), one connection's working state at
a time.

Every function here follows a named function of Zeek's source (src/packet_analysis/protocol/tcp/
TCPSessionAdapter.cc, src/analyzer/protocol/tcp/TCP_Endpoint.cc and TCP_Reassembler.cc, src/session/
Session.cc, src/packet_analysis/protocol/{udp,icmp}/*.cc); docs/design.md ("Connections as Zeek logs
them") maps them. Endpoints are kept by their *physical* side of the 4-tuple (0 = the key's first
endpoint), and a connection's ``orig_side`` says which of them is the originator, so Zeek's FlipRoles
is one assignment. Times are integer nanoseconds.

Why by key: every timer Zeek runs on a connection is the connection's own and is evaluated at its next
packet, and at most one connection per key is active, so a key's packets alone decide its connections.
The working state is then a few cache lines (not one slot per key: 56 k keys × 744 B on the 1 M-packet
benchmark), a connection's history letters are one contiguous run (no per-packet event list to sort),
and conn_state, sizes, packets and IP bytes are worked out by role as the connection ends. The pass is
compiled without numba's reference counting (``_nrt=False``: nothing in it allocates); with it, every
array an inlined helper takes was an atomic increment and decrement per call, 60 % of the time.

Compile time: numba's own inlining (``inline="always"``) copies a helper's IR into every call site
before type inference, and the pass's cold compile grew with every copy (49 s CPU on a loaded machine,
most of CI's first connection test). Only what runs on every packet with one call site is inlined
(``_tcp_process``, ``_expired``, ``_is_reuse``), plus the helpers that cost time as calls: ``_sd``,
``_is_hs`` and ``_set_state`` (called from 15 places in the state machine; as a call the pass was 30 %
slower). The others are plain compiled functions without reference counting (``_nrt=False``), which
LLVM inlines where it pays. The ends of a connection are one call site of ``_retire``. Cold compile
of ``conn_kernel`` 49 → 22 s CPU, the pass as fast as before (docs/notes/connspeed2.md).
"""
from __future__ import annotations

import numpy as np

from .._jit import njit

# TCP endpoint states (TCP_Endpoint.h)
INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET = 0, 1, 2, 3, 4, 5, 6
FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
TOO_LARGE_SEQ_DELTA = 1048576
# history masks (TCP_Endpoint.h HIST_*); the responder's are shifted by 16
H_SYN, H_FIN, H_RST, H_FINRST, H_DATA, H_ACK, H_MULTI = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40
# proto kinds
K_TCP, K_UDP, K_ICMP = 0, 1, 2
NBLK = 8          # out-of-order blocks kept per endpoint (the reassembler's block list, bounded)
INF = np.int64(1) << np.int64(62)
M32 = np.int64(0xFFFFFFFF)
# timer parameters, in this order, in the `params` array (ns)
P_ATTEMPT, P_RESET, P_CLOSE, P_LINGER, P_TCP_INACT, P_UDP_INACT, P_ICMP_INACT, P_SYN_TIMEOUT, P_SESSION, \
    P_LONG_INACT, P_MAX_ABOVE_HOLE, P_EXCESSIVE = range(12)
# optional, after those twelve: dns_session_timeout (ns, 0 = no DNS analyzer), then the UDP ports the DNS
# analyzer is registered for (DNS::ports; a connection whose responder port is one gets its ExpireTimer)
P_DNS_TIMEOUT, P_DNS_PORTS = 12, 13
DNS_SLACK = np.int64(1_000_000_000)  # DNS_Analyzer::ExpireTimer's "- 1.0"
# conn-level int64 fields (column index in `ci`); the first NCO are what conn_kernel returns per
# connection: its facts, then (C_STATE on) what _retire works out by role when it ends (the conn_state
# code, an index into STATES; sizes, packets and IP bytes of originator and responder); the rest live
# only while the connection is active
(C_START, C_LAST, C_ORIGSIDE, C_FIRSTPKT, C_MISSED, C_SYNS, C_SYNACKS, C_ISN, C_SYNTS, C_SYNPAY, C_SYNACKTS,
 C_RSTSIDE, C_RSTTS, C_RSTACK, C_STATE, C_OSIZE, C_RSIZE, C_OPKTS, C_RPKTS, C_OIPB, C_RIPB,
 C_KEY, C_LASTPKT, C_KIND, C_HLEN, C_HFIRST, C_HSEEN, C_PARTIAL, C_FPS, C_ACTIVE, C_INACT, C_DELETE, C_ATTEMPT,
 C_CH0, C_CH1, C_CH2, C_ESTAB, C_HADMARK, C_DNS, C_HBASE) = range(40)
NFACTS = C_STATE  # the facts _retire copies as they are
NCO = C_RIPB + 1
NCI = 40
# endpoint-level int64 fields (ei[conn, side, field])
(E_STATE, E_PREV, E_START, E_LAST, E_ACK, E_SWRAP, E_AWRAP, E_CLOSED, E_FINCNT, E_RSTCNT, E_FINSEQ, E_HSYN,
 E_HFIN, E_HRST, E_CHKC, E_CHKT, E_RXC, E_RXT, E_W0C, E_W0T, E_GAPC, E_GAPT, E_REASM, E_TRIM, E_SKIP,
 E_NBLK, E_PKTS, E_IPB, E_LEN, E_SLOT) = range(30)
NEI = 30


@njit(cache=True, inline="always")
def _sd(a, b):
    """seq_delta: a - b as a signed 32-bit difference."""
    d = (a - b) & M32
    if d >= np.int64(1) << np.int64(31):
        d -= np.int64(1) << np.int64(32)
    return d


@njit(cache=True, _nrt=False)
def _add_history(ci, hb, c, code):
    """Session::AddHistory: the letter goes to the connection's run of ``hb`` (from C_HBASE; a
    connection's letters are contiguous, as one connection is worked on at a time)."""
    n = ci[c, C_HLEN]
    if n == 0:
        ci[c, C_HFIRST] = code
    hb[ci[c, C_HBASE] + n] = code
    ci[c, C_HLEN] = n + 1


@njit(cache=True, _nrt=False)
def _flip(ci, c, hb):
    """Connection::FlipRoles + TCPSessionAdapter::FlipRoles: swap roles, record '^'."""
    ci[c, C_ORIGSIDE] = 1 - ci[c, C_ORIGSIDE]
    f = ci[c, C_FPS]
    ci[c, C_FPS] = (2 if f & 1 else 0) | (1 if f & 2 else 0)
    ci[c, C_PARTIAL] = 0
    _add_history(ci, hb, c, 94)  # '^'


@njit(cache=True, _nrt=False)
def _check_history(ci, ei, c, e, mask, code, hb):
    """TCP_Endpoint::CheckHistory: the flip heuristic (history exactly 'H', then A or D), then
    Session::CheckHistory (record the letter the first time). Returns whether it was seen before."""
    if (code == 65 or code == 68) and ci[c, C_HLEN] == 1 and ci[c, C_HFIRST] == 72:
        _flip(ci, c, hb)
        # ReplaceHistory("^h"): the run restarts as "^h"
        hb[ci[c, C_HBASE]] = 94
        hb[ci[c, C_HBASE] + 1] = 104
        ci[c, C_HLEN] = 2
        ci[c, C_HFIRST] = 94
        ci[c, C_HADMARK] = 1
        ci[c, C_FPS] |= 1  # SetFirstPacketSeen(true)
    if e != ci[c, C_ORIGSIDE]:
        mask <<= 16
        code += 32
    if ci[c, C_HSEEN] & mask:
        return True
    ci[c, C_HSEEN] |= mask
    _add_history(ci, hb, c, code)
    return False


@njit(cache=True, _nrt=False)
def _add_ep_history(ci, c, e, code, hb):
    """TCP_Endpoint::AddHistory."""
    if e != ci[c, C_ORIGSIDE]:
        code += 32
    _add_history(ci, hb, c, code)


@njit(cache=True, _nrt=False)
def _scaled(ci, ei, c, e, code, fc, ft, hb):
    """Session::ScaledHistoryEntry: the letter at the 1st, 10th, 100th ... occurrence."""
    ei[c, e, fc] += 1
    if ei[c, e, fc] == ei[c, e, ft]:
        if e != ci[c, C_ORIGSIDE]:
            code += 32
        _add_history(ci, hb, c, code)
        new = (ei[c, e, ft] * 10) & M32
        if new <= ei[c, e, ft]:
            ei[c, e, fc] = 0
        else:
            ei[c, e, ft] = new
    return


@njit(cache=True, inline="always")
def _is_hs(s):
    return s == INACTIVE or s == SYN_SENT or s == SYN_ACK_SENT


@njit(cache=True, inline="always")
def _set_state(ci, ei, c, e, s, params):
    """TCP_Endpoint::SetState: leaving the handshake switches to tcp_inactivity_timeout."""
    cur = ei[c, e, E_STATE]
    if s != cur:
        if not _is_hs(s) and _is_hs(cur) and _is_hs(ei[c, 1 - e, E_STATE]):
            ci[c, C_INACT] = params[P_TCP_INACT]
        ei[c, e, E_PREV] = cur
        ei[c, e, E_STATE] = s


@njit(cache=True, _nrt=False)
def _rel(ei, c, e, cur, last, wraps):
    """get_relative_seq -> (rel, underflow)."""
    d = _sd(cur, last)
    if d < 0:
        if wraps and cur > last:
            wraps -= 1
    elif d > 0:
        if cur < last:
            wraps += 1
    if wraps == 0:
        d = _sd(cur, ei[c, e, E_START] & M32)
        return d, d < 0
    return (wraps << 32) + cur - ei[c, e, E_START], False


@njit(cache=True, _nrt=False)
def _size(ei, c, e):
    """TCP_Endpoint::Size: payload bytes from the sequence numbers."""
    p = 1 - e
    ack64 = (ei[c, e, E_AWRAP] << 32) + ei[c, e, E_ACK]
    start = ei[c, e, E_START]
    if ei[c, e, E_PREV] == SYN_SENT and ei[c, e, E_STATE] == RESET and ei[c, p, E_STATE] == INACTIVE and \
            not (ack64 == start or ack64 == start + 1):
        return 0
    last64 = (ei[c, e, E_SWRAP] << 32) + ei[c, e, E_LAST]
    size = (max(ack64, last64)) - start
    if size != 0:
        size -= 1
    if ei[c, e, E_FINCNT] > 0 and size != 0:
        size -= 1
    return size


@njit(cache=True, _nrt=False)
def _is_clean(ei, c, e):
    s = ei[c, e, E_STATE]
    return s == ESTABLISHED or (s == CLOSED and ei[c, e, E_PREV] == ESTABLISHED)


@njit(cache=True, _nrt=False)
def _gap(ci, ei, c, e, length, hb):
    """TCP_Reassembler::Gap: 'G' (scaled) and missed_bytes, for cleanly established connections."""
    if _is_clean(ei, c, e) and _is_clean(ei, c, 1 - e):
        _scaled(ci, ei, c, e, 71, E_GAPC, E_GAPT, hb)
        ci[c, C_MISSED] += length
    return


@njit(cache=True, _nrt=False)
def _deliver(ei, blo, bhi, c, e):
    """Deliver buffered blocks that the contiguous point now reaches."""
    s = ei[c, e, E_SLOT]
    moved = True
    while moved:
        moved = False
        n = ei[c, e, E_NBLK]
        for k in range(n):
            if blo[s, k] <= ei[c, e, E_REASM]:
                ei[c, e, E_REASM] = max(ei[c, e, E_REASM], bhi[s, k])
                blo[s, k] = blo[s, n - 1]
                bhi[s, k] = bhi[s, n - 1]
                ei[c, e, E_NBLK] = n - 1
                moved = True
                break


@njit(cache=True, _nrt=False)
def _data_sent(ei, blo, bhi, c, e, seq, length, params):
    """TCP_Reassembler::DataSent / NewBlock / BlockInserted, with a bounded block list."""
    if ei[c, e, E_SKIP]:
        return
    s = ei[c, e, E_SLOT]
    ack = (ei[c, e, E_AWRAP] << 32) + ei[c, e, E_ACK] - ei[c, e, E_START]
    upper = seq + length
    if seq < ack:
        if upper <= ack:
            return
        seq = ack
    if upper <= ei[c, e, E_TRIM]:
        return
    seq = max(seq, ei[c, e, E_TRIM])
    if seq <= ei[c, e, E_REASM]:
        ei[c, e, E_REASM] = max(ei[c, e, E_REASM], upper)
        _deliver(ei, blo, bhi, c, e)
    else:
        n = ei[c, e, E_NBLK]
        merged = False
        for k in range(n):
            if seq <= bhi[s, k] and upper >= blo[s, k]:
                blo[s, k] = min(blo[s, k], seq)
                bhi[s, k] = max(bhi[s, k], upper)
                merged = True
                break
        if not merged:
            if n < NBLK:
                blo[s, n] = seq
                bhi[s, n] = upper
                ei[c, e, E_NBLK] = n + 1
            else:  # bounded: widen the highest block (a documented approximation)
                j = 0
                for k in range(n):
                    if bhi[s, k] > bhi[s, j]:
                        j = k
                blo[s, j] = min(blo[s, j], seq)
                bhi[s, j] = max(bhi[s, j], upper)
    # above_hole_data_without_any_acks / excessive_data_without_further_acks: stop reassembling
    pending = 0
    for k in range(ei[c, e, E_NBLK]):
        pending += bhi[s, k] - blo[s, k]
    ack64 = (ei[c, e, E_AWRAP] << 32) + ei[c, e, E_ACK]
    no_data_acked = ack64 == ei[c, e, E_START] or ack64 == ei[c, e, E_START] + 1
    if (no_data_acked and pending > params[P_MAX_ABOVE_HOLE]) or pending > params[P_EXCESSIVE]:
        ei[c, e, E_NBLK] = 0
        ei[c, e, E_SKIP] = 1


@njit(cache=True, _nrt=False)
def _ack_received(ci, ei, blo, bhi, c, e, seq, hb):
    """TCP_Reassembler::AckReceived -> TrimToSeq -> Undelivered: content gaps."""
    s = ei[c, e, E_SLOT]
    if ei[c, e, E_FINCNT] > 0 and seq >= ei[c, e, E_FINSEQ]:
        seq = ei[c, e, E_FINSEQ] - 1
    if seq <= ei[c, e, E_TRIM]:
        return
    if seq > ei[c, e, E_REASM]:
        if not (seq <= 2 and ci[c, C_PARTIAL]):
            if not ei[c, e, E_SKIP]:
                while True:  # buffered blocks below the ack: gap before each, then deliver it
                    n = ei[c, e, E_NBLK]
                    j = -1
                    for k in range(n):
                        if blo[s, k] < seq and blo[s, k] >= ei[c, e, E_REASM] and \
                                (j < 0 or blo[s, k] < blo[s, j]):
                            j = k
                    if j < 0:
                        break
                    gl = blo[s, j] - ei[c, e, E_REASM]
                    if gl > 0:
                        _gap(ci, ei, c, e, gl, hb)
                    ei[c, e, E_REASM] = blo[s, j]
                    _deliver(ei, blo, bhi, c, e)
                if seq > ei[c, e, E_REASM]:
                    _gap(ci, ei, c, e, seq - ei[c, e, E_REASM], hb)
            ei[c, e, E_REASM] = max(ei[c, e, E_REASM], seq)
    ei[c, e, E_TRIM] = seq
    # drop blocks wholly below the trim point
    k = 0
    while k < ei[c, e, E_NBLK]:
        if bhi[s, k] <= seq:
            n = ei[c, e, E_NBLK]
            blo[s, k] = blo[s, n - 1]
            bhi[s, k] = bhi[s, n - 1]
            ei[c, e, E_NBLK] = n - 1
        else:
            k += 1
    return


@njit(cache=True, _nrt=False)
def _conn_closed(ci, ei, c, e, gen_event, params):
    """TCPSessionAdapter::ConnectionClosed (timers only; data-pending deferral not modelled)."""
    p = 1 - e
    if ei[c, e, E_CLOSED]:
        return
    ei[c, e, E_CLOSED] = 1
    complete = ei[c, e, E_STATE] == RESET or ei[c, p, E_CLOSED] or ei[c, p, E_STATE] == INACTIVE
    if complete:
        if ei[c, e, E_PREV] != INACTIVE or ei[c, p, E_STATE] != INACTIVE:
            if gen_event:
                ci[c, C_ACTIVE] = 0  # ConnectionFinished
        # CancelTimers, then the ConnDeleteTimer at LastTime + tcp_close_delay
        ci[c, C_ATTEMPT] = INF
        ci[c, C_CH0] = INF
        ci[c, C_CH1] = INF
        ci[c, C_CH2] = INF
        ci[c, C_DELETE] = ci[c, C_LAST] + params[P_CLOSE]
    elif ei[c, e, E_PREV] != INACTIVE:
        base = ci[c, C_LAST] + params[P_SESSION]
        if ci[c, C_CH1] == INF:
            ci[c, C_CH1] = base
        else:
            ci[c, C_CH2] = base


@njit(cache=True, inline="always")
def _expired(ci, ei, c, now, params):
    """The session and analyzer timers (Session::InactivityTimer, TCPSessionAdapter::ExpireTimer,
    AttemptTimer, ConnDeleteTimer) that fire in (previous packet, now]: True if one removes ``c``."""
    if ci[c, C_LAST] + ci[c, C_INACT] <= now:
        return True
    if ci[c, C_KIND] != K_TCP:
        if ci[c, C_DNS]:  # DNS_Analyzer::ExpireTimer: every dns_session_timeout from the start,
            per = params[P_DNS_TIMEOUT]  # removing once the connection has been idle timeout - 1 s
            idle = ci[c, C_LAST] - ci[c, C_START] + per - DNS_SLACK
            k = max(np.int64(1), (idle + per - 1) // per)
            if ci[c, C_START] + k * per <= now:
                return True
        return False
    if ci[c, C_DELETE] <= now:
        return True
    o = ci[c, C_ORIGSIDE]
    r = 1 - o
    lo = ci[c, C_LASTPKT]
    if ci[c, C_ATTEMPT] <= now:
        if ci[c, C_ACTIVE] and (ei[c, o, E_STATE] == SYN_SENT or ei[c, o, E_STATE] == SYN_ACK_SENT) and \
                ei[c, r, E_STATE] == INACTIVE:
            return True
        ci[c, C_ATTEMPT] = INF
    if ci[c, C_ACTIVE]:
        so, sr = ei[c, o, E_STATE], ei[c, r, E_STATE]
        dco, dcr = ei[c, o, E_CLOSED], ei[c, r, E_CLOSED]
        cond = ((dco or dcr) and ((dco and dcr) or so == RESET or sr == RESET or so == INACTIVE or sr == INACTIVE)) \
            or (so == INACTIVE and sr == INACTIVE)
        if cond:
            m = max(lo, ci[c, C_LAST] + params[P_LINGER])
            per = params[P_SESSION]
            for f in (C_CH0, C_CH1, C_CH2):
                b = ci[c, f]
                if b == INF:
                    continue
                if m >= b:
                    t = b + ((m - b) // per + 1) * per
                else:
                    t = b
                if t <= now:
                    return True
    return False


@njit(cache=True, inline="always")
def _is_reuse(ci, ei, c, flags, seq):
    """TCPSessionAdapter::IsReuse."""
    if not flags & SYN:
        return False
    o = ci[c, C_ORIGSIDE]
    r = 1 - o
    co = o
    if flags & ACK:
        if ei[c, o, E_STATE] != INACTIVE:
            return False
        co = r
    if not (ei[c, o, E_CLOSED] or ei[c, r, E_CLOSED]):
        if seq == (ei[c, co, E_START] & M32):
            return False
        if not flags & ACK and ei[c, co, E_STATE] == SYN_ACK_SENT and ei[c, r, E_STATE] == INACTIVE and \
                seq == (ei[c, r, E_START] & M32):
            return False
    return True


@njit(cache=True, inline="always")
def _tcp_process(ci, ei, blo, bhi, c, e, ts, flags, seq, ack, win, length, params, hb):
    """TCPSessionAdapter::Process and UpdateStateMachine for one segment from endpoint side ``e``."""
    p = 1 - e
    is_orig = e == ci[c, C_ORIGSIDE]  # Zeek's (possibly stale, after a flip) is_orig argument
    fsyn, ffin, frst, fack = (flags & SYN) != 0, (flags & FIN) != 0, (flags & RST) != 0, (flags & ACK) != 0
    # SetPartialStatus
    if is_orig:
        if not ci[c, C_FPS] & 1:
            ci[c, C_PARTIAL] = 1 if (not fsyn or fack) else 0
    else:
        if not ci[c, C_FPS] & 2 and not ci[c, C_PARTIAL]:
            ci[c, C_PARTIAL] = 1 if not fsyn else 0
    seg = length + (1 if fsyn else 0) + (1 if ffin else 0) - (length if frst else 0)
    last = (seq + seg) & M32
    # init_endpoint
    st = ei[c, e, E_STATE]
    if st == INACTIVE:
        if fsyn:
            ei[c, e, E_ACK] = seq
            ei[c, e, E_START] = seq
            ei[c, e, E_LAST] = last
        else:
            ei[c, e, E_ACK] = (seq - 1) & M32
            ei[c, e, E_START] = (seq - 1) & M32
            ei[c, e, E_LAST] = seq
    elif st == SYN_SENT or st == SYN_ACK_SENT:
        if fsyn and seq != (ei[c, e, E_START] & M32):
            ei[c, e, E_START] = seq
            ei[c, e, E_ACK] = seq
            ei[c, e, E_LAST] = last
    elif st == ESTABLISHED or st == PARTIAL:
        if fsyn:
            ei[c, e, E_START] = seq
            ei[c, e, E_ACK] = seq
            ei[c, e, E_LAST] = last
    elif st == RESET:
        if fsyn and ei[c, e, E_PREV] == INACTIVE:
            ei[c, e, E_START] = seq
            ei[c, e, E_ACK] = seq
            ei[c, e, E_LAST] = last
    rel_seq, underflow = _rel(ei, c, e, seq, ei[c, e, E_LAST], ei[c, e, E_SWRAP])
    # update_history
    bits = (1 if fsyn else 0) + (1 if ffin else 0) + (1 if frst else 0)
    if bits > 1:
        if ffin and frst:
            _check_history(ci, ei, c, e, H_FINRST, 73, hb)
        else:
            _check_history(ci, ei, c, e, H_MULTI, 81, hb)
    elif bits == 1:
        if fsyn:
            code = 72 if fack else 83
            seen = _check_history(ci, ei, c, e, H_SYN, code, hb)
            if seen and rel_seq != ei[c, e, E_HSYN]:
                _add_ep_history(ci, c, e, code, hb)
            ei[c, e, E_HSYN] = rel_seq
        if ffin:
            seen = _check_history(ci, ei, c, e, H_FIN, 70, hb)
            if seen and rel_seq + length != ei[c, e, E_HFIN]:
                _add_ep_history(ci, c, e, 70, hb)
            ei[c, e, E_HFIN] = rel_seq + length
        if frst:
            seen = _check_history(ci, ei, c, e, H_RST, 82, hb)
            if seen and rel_seq != ei[c, e, E_HRST]:
                _add_ep_history(ci, c, e, 82, hb)
            ei[c, e, E_HRST] = rel_seq
    else:
        if length:
            _check_history(ci, ei, c, e, H_DATA, 68, hb)
        elif fack:
            _check_history(ci, ei, c, e, H_ACK, 65, hb)
    # update_window: zero window
    if win == 0 and not frst and ei[c, p, E_STATE] != CLOSED and ei[c, e, E_STATE] != RESET:
        _scaled(ci, ei, c, e, 87, E_W0C, E_W0T, hb)
    if not (ei[c, 0, E_CLOSED] and ei[c, 1, E_CLOSED]):
        ci[c, C_LAST] = ts
    if ffin:
        ei[c, e, E_FINCNT] += 1
        ei[c, e, E_FINSEQ] = rel_seq + seg
    if frst:
        ei[c, e, E_RSTCNT] += 1
    rel_ack = np.int64(0)
    if fack:
        if ei[c, p, E_STATE] == INACTIVE:
            rel_ack = np.int64(1)
            v = (ack - 1) & M32
            ei[c, p, E_START] = v
            ei[c, p, E_ACK] = v
            ei[c, p, E_LAST] = v
        else:
            rel_ack, aunder = _rel(ei, c, p, ack, ei[c, p, E_ACK], ei[c, p, E_AWRAP])
            if aunder:
                rel_ack = np.int64(0)
            elif not frst:  # update_ack_seq
                da = _sd(ack, ei[c, p, E_ACK])
                if ack == 0 and da > TOO_LARGE_SEQ_DELTA:
                    pass
                elif da > 0:
                    if ack < ei[c, p, E_ACK]:
                        ei[c, p, E_AWRAP] += 1
                    ei[c, p, E_ACK] = ack
    # update_last_seq
    dl = _sd(last, ei[c, e, E_LAST])
    if (fsyn or frst) and (dl > TOO_LARGE_SEQ_DELTA or dl < -TOO_LARGE_SEQ_DELTA):
        pass
    elif ffin and ei[c, e, E_LAST] == ((ei[c, e, E_START] + 1) & M32):
        if last < ei[c, e, E_LAST]:
            ei[c, e, E_SWRAP] += 1
        ei[c, e, E_LAST] = last
    elif ei[c, e, E_STATE] == RESET:
        pass
    elif dl > 0:
        if last < ei[c, e, E_LAST]:
            ei[c, e, E_SWRAP] += 1
        ei[c, e, E_LAST] = last
    elif dl <= 0 and length > 0:
        _scaled(ci, ei, c, e, 84, E_RXC, E_RXT, hb)  # DidRxmit: 'T'
    # UpdateStateMachine
    do_close = False
    gen_event = False
    st = ei[c, e, E_STATE]
    ps = ei[c, p, E_STATE]
    if st == INACTIVE:
        if fsyn:
            if is_orig:
                _set_state(ci, ei, c, e, SYN_ACK_SENT if fack else SYN_SENT, params)
                if params[P_ATTEMPT]:
                    ci[c, C_ATTEMPT] = ts + params[P_ATTEMPT]
            else:
                if not fack and ei[c, p, E_STATE] == SYN_ACK_SENT and seq == (ei[c, e, E_START] & M32):
                    ci[c, C_PARTIAL] = 0
                    _flip(ci, c, hb)
                    _set_state(ci, ei, c, p, ESTABLISHED, params)
                    ci[c, C_FPS] |= 1
                if ei[c, p, E_STATE] == SYN_SENT:
                    _set_state(ci, ei, c, p, ESTABLISHED, params)
                _set_state(ci, ei, c, e, ESTABLISHED, params)
                if ei[c, p, E_STATE] != PARTIAL:
                    ci[c, C_ESTAB] = 1  # connection_established
        if ffin:
            _set_state(ci, ei, c, e, CLOSED, params)
            do_close = True
            gen_event = True
        if frst:
            _set_state(ci, ei, c, e, RESET, params)
            is_reject = False
            if is_orig:
                if ei[c, p, E_STATE] == ESTABLISHED:
                    is_reject = True
            elif ei[c, p, E_STATE] == SYN_SENT or ei[c, p, E_STATE] == SYN_ACK_SENT:
                is_reject = True
            do_close = True
            gen_event = not is_reject
        if ei[c, e, E_STATE] == INACTIVE:
            o = ci[c, C_ORIGSIDE]
            if not is_orig and length == 0 and ei[c, o, E_STATE] == SYN_SENT:
                pass
            elif fack and ei[c, p, E_STATE] == ESTABLISHED:
                _set_state(ci, ei, c, e, ESTABLISHED, params)
                ci[c, C_PARTIAL] = 0
                ci[c, C_FPS] |= 1 if is_orig else 2
            else:
                _set_state(ci, ei, c, e, PARTIAL, params)
    elif st == SYN_SENT or st == SYN_ACK_SENT:
        if ffin:
            _set_state(ci, ei, c, e, CLOSED, params)
            do_close = True
            gen_event = True
        if frst:
            _set_state(ci, ei, c, e, RESET, params)
            ci[c, C_ACTIVE] = 0  # ConnectionReset
            do_close = True
    elif st == ESTABLISHED or st == PARTIAL:
        if fsyn and st == PARTIAL and ps == INACTIVE and not fack:
            _set_state(ci, ei, c, e, SYN_SENT, params)
        if ffin and not frst:
            _set_state(ci, ei, c, e, CLOSED, params)
            if ei[c, p, E_STATE] == RESET and ei[c, p, E_PREV] == CLOSED:
                _set_state(ci, ei, c, p, CLOSED, params)
            do_close = True
            gen_event = True
        if frst:
            pst, ppv = ei[c, p, E_STATE], ei[c, p, E_PREV]
            _set_state(ci, ei, c, e, RESET, params)
            do_close = True
            if pst != RESET or ppv != ESTABLISHED:
                ci[c, C_ACTIVE] = 0
    elif st == CLOSED:
        if frst and ei[c, p, E_STATE] != CLOSED:
            _set_state(ci, ei, c, e, RESET, params)
            if not ei[c, e, E_CLOSED]:
                do_close = True
    if fack:
        _ack_received(ci, ei, blo, bhi, c, p, rel_ack, hb)
    rel_data = rel_seq + 1 if fsyn else rel_seq
    if length > 0 and not frst and not underflow:
        _data_sent(ei, blo, bhi, c, e, rel_data, length, params)
    # CheckPIA_FirstPacket
    ci[c, C_FPS] |= 1 if is_orig else 2
    if do_close:
        _conn_closed(ci, ei, c, e, gen_event, params)
    return


@njit(cache=True, _nrt=False)
def _new_conn(ci, ei, n, key, ts, kind, i, params):
    for f in range(NCI):
        ci[n, f] = 0
    for s in range(2):
        for f in range(NEI):
            ei[n, s, f] = 0
        for f in (E_CHKT, E_RXT, E_W0T, E_GAPT):
            ei[n, s, f] = 1
        ei[n, s, E_REASM] = 1
        ei[n, s, E_TRIM] = 1
        ei[n, s, E_LEN] = -1
        ei[n, s, E_SLOT] = s  # the endpoint's row of the block lists
    ci[n, C_KEY] = key
    ci[n, C_START] = ts
    ci[n, C_LAST] = ts
    ci[n, C_LASTPKT] = ts
    ci[n, C_KIND] = kind
    ci[n, C_FIRSTPKT] = i
    ci[n, C_ACTIVE] = 1
    ci[n, C_INACT] = params[P_ICMP_INACT] if kind == K_ICMP else params[P_UDP_INACT]
    ci[n, C_DELETE] = INF
    ci[n, C_ATTEMPT] = INF
    ci[n, C_CH0] = ts + params[P_SYN_TIMEOUT] if kind == K_TCP else INF
    ci[n, C_CH1] = INF
    ci[n, C_CH2] = INF
    ci[n, C_ISN] = -1
    ci[n, C_SYNTS] = -1
    ci[n, C_SYNPAY] = -1
    ci[n, C_SYNACKTS] = -1
    ci[n, C_RSTSIDE] = -1
    ci[n, C_RSTTS] = -1


@njit(cache=True, _nrt=False)
def _retire(ci, ei, c, co, cid):
    """A connection ends (replaced in its slot, or the trace ends): keep its facts, and by role its
    conn_state (conn.zeek conn_state(); TCP from the endpoint states, code 12 "RSTOS0 or OTH" is decided
    on the history afterwards), sizes (TCP_Endpoint::Size, from the full endpoint state; UDP/ICMP the
    payload bytes), packets and IP bytes."""
    for f in range(NFACTS):
        co[cid, f] = ci[c, f]
    o = ci[c, C_ORIGSIDE]
    r = 1 - o
    co[cid, C_OPKTS], co[cid, C_RPKTS] = ei[c, o, E_PKTS], ei[c, r, E_PKTS]
    co[cid, C_OIPB], co[cid, C_RIPB] = ei[c, o, E_IPB], ei[c, r, E_IPB]
    if ci[c, C_KIND] == K_TCP:
        so, sr = ei[c, o, E_STATE], ei[c, r, E_STATE]
        zo, zr = _size(ei, c, o), _size(ei, c, r)
        oi = so == INACTIVE or so == PARTIAL
        ri = sr == INACTIVE or sr == PARTIAL
        if sr == RESET:
            if so == SYN_SENT or so == SYN_ACK_SENT or (so == RESET and zo == 0 and zr == 0):
                s = 3   # REJ
            elif oi:
                s = 9   # RSTRH
            else:
                s = 7   # RSTR
        elif so == RESET:
            s = 12 if ri else 6   # RSTOS0-or-OTH (decided on the history), RSTO
        elif sr == CLOSED and so == CLOSED:
            s = 2   # SF
        elif so == CLOSED:
            s = 10 if ri else 4   # SH, S2
        elif sr == CLOSED:
            s = 11 if oi else 5   # SHR, S3
        elif so == SYN_SENT and sr == INACTIVE:
            s = 0   # S0
        elif so == ESTABLISHED and sr == ESTABLISHED:
            s = 1   # S1
        else:
            s = 13  # OTH
    else:
        lo, lr = ei[c, o, E_LEN], ei[c, r, E_LEN]
        zo, zr = max(lo, 0), max(lr, 0)
        if ci[c, C_KIND] == K_UDP:
            if lo >= 0:
                s = 2 if lr >= 0 else 0   # SF, S0
            else:
                s = 11 if lr >= 0 else 13  # SHR, OTH
        else:
            s = 13
    co[cid, C_STATE] = s
    co[cid, C_OSIZE], co[cid, C_RSIZE] = zo, zr


@njit(cache=True)
def conn_kernel(pkt, ts, kind, key, side, flags, seq, ack, win, length, ip_len, l4_ok, sport, dport, src_lsp,
                dst_lsp, resp_bcast, src_long, dst_long, params, co, hoff, hb, conn_of):
    """The packets **grouped by key** (the 5-tuple's code: each key's packets together, in file order
    within a key; ``pkt`` is each one's index in file order), one key after the other. Every timer is
    the connection's own and is evaluated at its next packet (docs/design.md), and at most one
    connection per key is active, so a key's packets alone decide its connections: the working state
    is one connection's, in a few cache lines, and its history letters are one contiguous run.

    Fills, in order of creation within this pass: ``co`` (cap, NCO) each connection's C_* fields
    below NCO, ``hoff`` (cap + 1) its run of history letters in ``hb`` (capacity 6 × packets + 16),
    and, unless ``conn_of`` is empty, ``conn_of[pkt[j]]``: the packet's connection (-2 - index: seen
    but not counted). Returns the number of connections, or -1 when more than ``co`` holds (call again
    with more room: at most one connection per packet)."""
    ci, ei, blo, bhi, state = working_state()
    return _conn_pass(pkt, ts, kind, key, 0, side, flags, seq, ack, win, length, ip_len, l4_ok, sport, dport,
                      src_lsp, dst_lsp, resp_bcast, src_long, dst_long, params, co, hoff, hb, conn_of, ci, ei, blo,
                      bhi, state, True)


@njit(cache=True)
def working_state():
    """(ci, ei, blo, bhi, state): the working state of the one active connection (its fields, its
    endpoints', its endpoints' out-of-order blocks) and of the pass (connections made, the active
    one's index or -1, history letters written): what conn_block carries from one block to the next."""
    state = np.zeros(3, np.int64)
    state[1] = -1
    return (np.zeros((1, NCI), np.int64), np.zeros((1, 2, NEI), np.int64), np.zeros((2, NBLK), np.int64),
            np.zeros((2, NBLK), np.int64), state)


@njit(cache=True)
def conn_block(pkt, ts, kind, key, k0, side, flags, seq, ack, win, length, ip_len, l4_ok, sport, dport, src_lsp,
               dst_lsp, resp_bcast, src_long, dst_long, params, co, hoff, hb, conn_of, ci, ei, blo, bhi, state,
               last):
    """conn_kernel over the packets in blocks, in order: this block's inputs (its positions k0.. of the
    whole pass; ``key`` is the whole pass's keys, the one before a block decides whether the active
    connection's key ended), the working state from working_state() carried on, ``last`` for the
    final block (the active connection ends there). Returns the connections made so far, or -1 as
    conn_kernel. The same connections as one conn_kernel call, for any blocks (tested): the inputs need
    only be gathered a block at a time, into buffers that stay in cache."""
    return _conn_pass(pkt, ts, kind, key, k0, side, flags, seq, ack, win, length, ip_len, l4_ok, sport, dport,
                      src_lsp, dst_lsp, resp_bcast, src_long, dst_long, params, co, hoff, hb, conn_of, ci, ei, blo,
                      bhi, state, last)


# compiled without numba's reference counting (nothing in it allocates): every array an inlined helper
# takes would otherwise be an atomic increment and decrement, most of the pass's time
@njit(cache=True, _nrt=False)
def _conn_pass(pkt, ts, kind, key, k0, side, flags, seq, ack, win, length, ip_len, l4_ok, sport, dport, src_lsp,
               dst_lsp, resp_bcast, src_long, dst_long, params, co, hoff, hb, conn_of, ci, ei, blo, bhi, state, last):
    """conn_kernel's pass over one block (positions k0.. of the whole pass; ``key`` the whole pass's), on
    its working arrays and ``state`` (connections made, the active one or -1, history letters so far)."""
    n = ts.shape[0]
    cap = co.shape[0]
    want_of = conn_of.shape[0] > 0
    c = 0
    nc = state[0]
    cid = state[1]
    hpos = state[2]
    if k0 == 0:
        hoff[0] = 0
    for j in range(n):
        i = pkt[j]
        now = np.int64(ts[j])
        e = np.int64(side[j])
        kd = np.int64(kind[j])
        g = k0 + j
        # the active connection ends: the previous key's last, expired, or a TCP connection reused
        if cid >= 0 and ((g > 0 and key[g] != key[g - 1]) or _expired(ci, ei, c, now, params) or
                         (kd == K_TCP and _is_reuse(ci, ei, c, np.int64(flags[j]), np.int64(seq[j])))):
            _retire(ci, ei, c, co, cid)
            hpos += ci[c, C_HLEN]
            hoff[cid + 1] = hpos
            cid = -1
        if cid < 0:
            if nc == cap:
                return -1
            cid = nc
            nc += 1
            _new_conn(ci, ei, c, key[g], now, kd, i, params)
            ci[c, C_HBASE] = hpos
            ci[c, C_ORIGSIDE] = e
            flip = False
            if kd == K_TCP:
                f = np.int64(flags[j])
                if not f & SYN or f & ACK:  # TCPAnalyzer::WantConnection
                    if src_lsp[j]:
                        if dst_lsp[j]:
                            flip = not (f & SYN) and np.int64(sport[j]) < np.int64(dport[j])
                        else:
                            flip = True
            elif kd == K_UDP:  # UDPAnalyzer::WantConnection
                flip = src_lsp[j] and not dst_lsp[j]
            if flip and not resp_bcast[j]:
                _flip(ci, c, hb)
            if kd == K_UDP and params.shape[0] > P_DNS_PORTS and params[P_DNS_TIMEOUT] > 0:
                rport = np.int64(sport[j] if ci[c, C_ORIGSIDE] != e else dport[j])  # the responder's port
                for q in range(P_DNS_PORTS, params.shape[0]):
                    if params[q] == rport:
                        ci[c, C_DNS] = 1
        if want_of:
            conn_of[i] = cid
        ci[c, C_LASTPKT] = now
        if kd == K_TCP:
            ln = np.int64(length[j])
            if ln < 0:  # TCPAnalyzer::ExtractTCP_Header refused the header (data offset < 20, or
                if want_of:  # past the data): the connection exists, the packet is not processed
                    conn_of[i] = -2 - cid
                continue
            if not l4_ok[j]:
                _scaled(ci, ei, c, e, 67, E_CHKC, E_CHKT, hb)  # ChecksumError: 'C'
                if want_of:
                    conn_of[i] = -2 - cid  # seen, but not counted
                continue
            f = np.int64(flags[j])
            sq = np.int64(seq[j])
            # probe extras (by physical side)
            if f & SYN and not f & ACK:
                ci[c, C_SYNS] += 1
                if ci[c, C_ISN] < 0:
                    ci[c, C_ISN] = sq
                    ci[c, C_SYNTS] = now
                    ci[c, C_SYNPAY] = ln
            elif f & SYN and f & ACK:
                ci[c, C_SYNACKS] += 1
                if ci[c, C_SYNACKTS] < 0:
                    ci[c, C_SYNACKTS] = now
            if f & RST and ci[c, C_RSTSIDE] < 0:
                ci[c, C_RSTSIDE] = e
                ci[c, C_RSTTS] = now
                ci[c, C_RSTACK] = 1 if f & ACK else 0
            ci[c, C_ESTAB] = 0
            _tcp_process(ci, ei, blo, bhi, c, e, now, f, sq, np.int64(ack[j]), np.int64(win[j]), ln, params, hb)
            if ci[c, C_ESTAB] and params[P_LONG_INACT] > 0:  # Conn::port_inactivity_timeouts
                o = ci[c, C_ORIGSIDE]
                # the responder's port is the packet's source port when the sender is not the originator
                r_long = src_long[j] if o != e else dst_long[j]
                o_long = dst_long[j] if o != e else src_long[j]
                rlsp = src_lsp[j] if o != e else dst_lsp[j]
                olsp = dst_lsp[j] if o != e else src_lsp[j]
                svc_long = r_long
                if ei[c, o, E_STATE] == INACTIVE and not rlsp and olsp:
                    svc_long = o_long
                if svc_long:
                    ci[c, C_INACT] = params[P_LONG_INACT]
            ei[c, e, E_PKTS] += 1
            ei[c, e, E_IPB] += np.int64(ip_len[j])
        else:
            # a bad checksum: UDPAnalyzer::DeliverPacket returns before ForwardPacket, the ConnSize child
            # never sees the datagram (UDP adds 'C'); ICMP likewise
            if not l4_ok[j]:
                if kd == K_UDP:
                    _scaled(ci, ei, c, e, 67, E_CHKC, E_CHKT, hb)
                if want_of:
                    conn_of[i] = -2 - cid
                continue
            ci[c, C_LAST] = now
            if kd == K_UDP:
                _check_history(ci, ei, c, e, H_DATA, 68, hb)
            ei[c, e, E_PKTS] += 1
            ei[c, e, E_IPB] += np.int64(ip_len[j])
            if ei[c, e, E_LEN] < 0:
                ei[c, e, E_LEN] = np.int64(length[j])
            else:
                ei[c, e, E_LEN] += np.int64(length[j])
    if last and cid >= 0:
        _retire(ci, ei, c, co, cid)
        hpos += ci[c, C_HLEN]
        hoff[cid + 1] = hpos
        cid = -1
    state[0], state[1], state[2] = nc, cid, hpos
    return nc


@njit(cache=True)
def group_by_key(key, nkeys, order, skey, rows, srows):
    """order := the positions 0..n-1 grouped by key (a counting sort: stable, so file order within a
    key), the order conn_kernel takes its packets in; skey := key[order] (written in sequence, from
    the counts); unless ``srows`` is empty, srows := rows[order] (in the same scatter)."""
    start = np.zeros(nkeys + 1, np.int64)
    for j in range(key.shape[0]):
        start[key[j] + 1] += 1
    for k in range(nkeys):
        start[k + 1] += start[k]
        for q in range(start[k], start[k + 1]):
            skey[q] = k
    if srows.shape[0]:
        for j in range(key.shape[0]):
            k = key[j]
            p = start[k]
            order[p] = j
            srows[p] = rows[j]
            start[k] = p + 1
    else:
        for j in range(key.shape[0]):
            k = key[j]
            order[start[k]] = j
            start[k] += 1


STATES = ("S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH", "SHR", "RSTOS0?", "OTH")
