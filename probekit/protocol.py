"""Protocol constants and the domain rules of probing, written once.

Foundation layer: imports nothing from probekit but ``schema`` and ``errors``, and nothing heavy (numpy
only), so the live prober, the capture backends, probe matching, the per-period metrics and the Dask
path all decide the same thing the same way. Every rule is one function that takes scalars or numpy
arrays alike (the live prober calls it on one probe, the analyses on whole columns).
"""
from __future__ import annotations

import ipaddress
import socket

import numpy as np

from .schema import OUTCOMES, PERIOD_STATUS, TCP_FLAGS

__all__ = [
    "IPPROTO_ICMP", "IPPROTO_TCP", "IPPROTO_UDP", "IPPROTO_ICMPV6",
    "ICMP_ECHO_REQUEST", "ICMP_ECHO_REPLY", "ICMPV6_ECHO_REQUEST", "ICMPV6_ECHO_REPLY",
    "ICMP_ID_SEQ_TYPES", "ICMPV6_ID_SEQ_TYPES", "echo_request_type", "echo_reply_type", "is_echo_reply",
    "PROBE_PROTOCOLS", "REPLY_KINDS", "ECHO_REPLY", "SYN_ACK", "RST_ACK", "UDP_REPLY", "PORT_UNREACHABLE",
    "REFUSALS", "TCP_HEADER_LEN", "udp_request_seq", "udp_flow_roles", "is_port_unreachable", "UDP_NO_REQUEST",
    "is_syn", "is_syn_ack", "is_rst_ack", "is_bare_rst", "syn_data_len", "syn_ack_isn", "reset_isn", "rst_ack_accepts",
    "ANSWERED", "classify_outcome", "period_status", "loss_pct", "address_sort_key", "sorted_addresses",
]

# ------------------------------------------------------------------------------------ IP protocols
IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6 = 1, 6, 17, 58

# ------------------------------------------------------------------------------------------- ICMP
ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST = 0, 8                 # RFC 792
ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY = 128, 129         # RFC 4443
ICMP_ID_SEQ_TYPES = frozenset({0, 8, 13, 14, 15, 16, 17, 18})
"""ICMP types whose header carries identifier and sequence number (echo, timestamp, information,
address mask request/reply; RFC 792, RFC 950)."""
ICMPV6_ID_SEQ_TYPES = frozenset({ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY})
"""ICMPv6 types with identifier and sequence number (echo request/reply)."""


def echo_request_type(family: int) -> int:
    """The echo-request type for IP version ``family`` (4 → 8, 6 → 128)."""
    return ICMP_ECHO_REQUEST if family == 4 else ICMPV6_ECHO_REQUEST


def echo_reply_type(family: int) -> int:
    """The echo-reply type for IP version ``family`` (4 → 0, 6 → 129)."""
    return ICMP_ECHO_REPLY if family == 4 else ICMPV6_ECHO_REPLY


def is_echo_reply(icmp_type):
    """True for an ICMP or ICMPv6 echo reply type (scalar or array)."""
    t = np.asarray(icmp_type)
    out = (t == ICMP_ECHO_REPLY) | (t == ICMPV6_ECHO_REPLY)
    return bool(out) if out.ndim == 0 else out


# ----------------------------------------------------------------------------- probes and replies
PROBE_PROTOCOLS = ("icmp", "icmpv6", "tcp", "udp")
"""Values of a probe's ``protocol``, in the order of their integer codes in the matching kernels."""
REPLY_KINDS = ("echo_reply", "syn_ack", "rst_ack", "udp_reply", "port_unreachable")
"""What answered a probe, by integer code (-1: nothing)."""
ECHO_REPLY, SYN_ACK, RST_ACK, UDP_REPLY, PORT_UNREACHABLE = 0, 1, 2, 3, 4
REFUSALS = (RST_ACK, PORT_UNREACHABLE)
"""Reply kinds that say "port closed" from the target itself: a TCP RST/ACK (RFC 9293 3.10.7.1) and, for a
UDP probe, an ICMP/ICMPv6 port unreachable sent by the probe's destination (RFC 1122 4.1.3.1, RFC 4443
3.1 code 4). The outcome is ``refused``: the path works, the target answered."""
UDP_NO_REQUEST = 0xFFFFFFFF
"""The ``seq`` a UDP reply or port unreachable gets when no UDP request on its 4-tuple came before it
(it can match no probe: a request's seq is 16 bits)."""
TCP_HEADER_LEN = 20
"""Bytes of a TCP header without options: a probe SYN's data is its segment size minus these."""

_F = TCP_FLAGS
_SYN, _ACK, _RST = _F["SYN"], _F["ACK"], _F["RST"]


def _flags(flags):
    return np.asarray(flags, dtype=np.int64)


def _out(x):
    return bool(x) if np.ndim(x) == 0 else x


def is_syn(flags):
    """A connection request: SYN without ACK and without RST."""
    f = _flags(flags)
    return _out(((f & (_SYN | _ACK)) == _SYN) & ((f & _RST) == 0))


def is_syn_ack(flags):
    """The target's acceptance: SYN and ACK, no RST."""
    f = _flags(flags)
    return _out(((f & (_SYN | _ACK)) == (_SYN | _ACK)) & ((f & _RST) == 0))


def is_rst_ack(flags):
    """The target's refusal (port closed): RST with ACK, no SYN."""
    f = _flags(flags)
    return _out((f & (_SYN | _ACK | _RST)) == (_RST | _ACK))


def is_bare_rst(flags):
    """The prober's reset after a SYN/ACK: RST without ACK or SYN."""
    f = _flags(flags)
    return _out((f & (_SYN | _ACK | _RST)) == _RST)


def syn_data_len(segment_size):
    """Data bytes a probe SYN carries, from its TCP segment size (NaN size → 0)."""
    s = np.asarray(segment_size, dtype=np.float64)
    out = np.where(np.isnan(s), 0, s - TCP_HEADER_LEN).astype(np.int64)
    return int(out) if out.ndim == 0 else out


def syn_ack_isn(ack):
    """The probe ISN a SYN/ACK answers: its ack - 1 (mod 2³²)."""
    a = np.asarray(ack, dtype=np.int64)
    out = (a - 1) % (1 << 32)
    return int(out) if out.ndim == 0 else out


def reset_isn(seq):
    """The probe ISN the prober's RST refers to: its seq - 1 (mod 2³²; the RST follows the SYN)."""
    s = np.asarray(seq, dtype=np.int64)
    out = (s - 1) % (1 << 32)
    return int(out) if out.ndim == 0 else out


def rst_ack_accepts(ack, isn, data_len):
    """Does a RST/ACK with ``ack`` answer the SYN with ``isn`` carrying ``data_len`` bytes? Yes when it
    acknowledges the SYN alone (ISN + 1) or the SYN and its data (ISN + 1 + data_len), mod 2³²."""
    a, i, d = (np.asarray(x, dtype=np.int64) for x in (ack, isn, data_len))
    m = 1 << 32
    return _out(((a - i - 1) % m == 0) | ((a - i - 1 - d) % m == 0))


def udp_request_seq(ip_id, is_ipv4):
    """A UDP probe's ``seq``: the IPv4 identification of its request, 0 for IPv6 (no id without a
    fragment header). Tracers that keep one 4-tuple for every probe (Paris traceroute, scamper's default
    udp-paris, tcptraceroute for TCP) tell their probes apart by it; the ports alone would fold them."""
    i = np.asarray(ip_id, dtype=np.float64)
    out = np.where(np.asarray(is_ipv4, bool) & ~np.isnan(i), np.nan_to_num(i), 0).astype(np.int64) & 0xFFFF
    return int(out) if out.ndim == 0 else out


def udp_flow_roles(src, dst, sport, dport):
    """Which UDP datagrams are requests (True) and which replies (False), in frame order: on each 4-tuple
    the side that sent the first datagram is the client (as Zeek's UDP connections take the first
    packet's sender as originator); its datagrams are requests, the other side's replies on the
    reversed 4-tuple. ``src``/``dst``: integer address codes (arrays)."""
    s, d = np.asarray(src, np.int64), np.asarray(dst, np.int64)
    es = (s << 16) | (np.asarray(sport, np.int64) & 0xFFFF)      # one endpoint: address and port
    ed = (d << 16) | (np.asarray(dport, np.int64) & 0xFFFF)
    fwd = es <= ed
    lo, hi = np.where(fwd, es, ed), np.where(fwd, ed, es)
    n = s.size
    if n == 0:
        return np.zeros(0, bool)
    order = np.lexsort((np.arange(n), hi, lo))
    start = np.ones(n, bool)
    start[1:] = (lo[order][1:] != lo[order][:-1]) | (hi[order][1:] != hi[order][:-1])
    first = order[np.maximum.accumulate(np.where(start, np.arange(n), 0))]   # each row's flow's first row
    out = np.empty(n, bool)
    out[order] = fwd[order] == fwd[first]
    return out


def is_port_unreachable(ip_proto, icmp_type, icmp_code):
    """ICMP destination unreachable code 3 (port, RFC 792) or ICMPv6 destination unreachable code 4 (port,
    RFC 4443 3.1); scalars or arrays."""
    p, t, c = (np.asarray(x, dtype=np.int64) for x in (ip_proto, icmp_type, icmp_code))
    return _out(((p == IPPROTO_ICMP) & (t == 3) & (c == 3)) | ((p == IPPROTO_ICMPV6) & (t == 1) & (c == 4)))


# --------------------------------------------------------------------------------------- outcomes
ANSWERED = ("answered", "refused")
"""Outcomes that count as answered for loss and RTT (a refusal proves the path works)."""
_O = {name: i for i, name in enumerate(OUTCOMES)}


def classify_outcome(reply_kind, delay_ns, timeout_ns, unjudged=False, codes=False):
    """A probe's outcome (schema.OUTCOMES) from what answered it (``reply_kind``: a REPLY_KINDS code,
    -1 for nothing), the reply delay (ns, NaN for none) and the timeout (ns).

    answered: a reply within the timeout; refused: a refusal (REFUSALS: a RST/ACK, or the destination's
    own ICMP port unreachable to a UDP probe) within it; late: a reply after it;
    unknown: no reply and ``unjudged`` (the capture ended before the timeout ran out); lost otherwise.
    Scalars give a str; arrays give an array of names, or of OUTCOMES codes with ``codes=True``.
    """
    kind = np.asarray(reply_kind, dtype=np.int64)
    delay = np.asarray(delay_ns, dtype=np.float64)
    got = (kind >= 0) & ~np.isnan(delay)
    late = got & (delay > timeout_ns)
    refusal = (kind == RST_ACK) | (kind == PORT_UNREACHABLE)
    code = np.select([got & ~late & refusal, got & ~late, late, ~got & np.asarray(unjudged, bool)],
                     [_O["refused"], _O["answered"], _O["late"], _O["unknown"]], _O["lost"])
    if code.ndim == 0:
        return OUTCOMES[int(code)]
    return code if codes else np.asarray(OUTCOMES, dtype=object)[code]


def period_status(sent, answered, codes=False):
    """A period's status (schema.PERIOD_STATUS) from probes sent and answered in it: no_probes (nothing
    sent: no data), no_reply (sent, none answered: 100 % loss), loss (some lost), ok (all answered)."""
    s, a = np.asarray(sent), np.asarray(answered)
    code = np.select([s == 0, a == 0, a < s], [3, 2, 1], 0)   # indices into PERIOD_STATUS
    if code.ndim == 0:
        return PERIOD_STATUS[int(code)]
    return code if codes else np.asarray(PERIOD_STATUS, dtype=object)[code]


def loss_pct(sent, answered):
    """100 × (sent − answered) / sent; NaN when nothing was sent (never 0 % for no data)."""
    s = np.asarray(sent, dtype=np.float64)
    a = np.asarray(answered, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(s > 0, 100.0 * (s - a) / s, np.nan)
    return float(out) if out.ndim == 0 else out


# -------------------------------------------------------------------------------------- addresses
def address_sort_key(addr: str) -> tuple[int, bytes]:
    """Sort key of an address in text form: IPv4 before IPv6, each by its bytes (numeric order)."""
    if ":" in addr:
        return (6, socket.inet_pton(socket.AF_INET6, addr))
    try:
        return (4, socket.inet_aton(addr))
    except OSError:
        return (4, ipaddress.ip_address(addr).packed)


def sorted_addresses(addrs) -> list[str]:
    """Distinct addresses in the packets table's category order (IPv4 numerically, then IPv6)."""
    return sorted(set(addrs), key=address_sort_key)
