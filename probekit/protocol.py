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
    "PROBE_PROTOCOLS", "REPLY_KINDS", "ECHO_REPLY", "SYN_ACK", "RST_ACK", "TCP_HEADER_LEN",
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
PROBE_PROTOCOLS = ("icmp", "icmpv6", "tcp")
"""Values of a probe's ``protocol``, in the order of their integer codes in the matching kernels."""
REPLY_KINDS = ("echo_reply", "syn_ack", "rst_ack")
"""What answered a probe, by integer code (-1: nothing)."""
ECHO_REPLY, SYN_ACK, RST_ACK = 0, 1, 2
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


# --------------------------------------------------------------------------------------- outcomes
ANSWERED = ("answered", "refused")
"""Outcomes that count as answered for loss and RTT (a refusal proves the path works)."""
_O = {name: i for i, name in enumerate(OUTCOMES)}


def classify_outcome(reply_kind, delay_ns, timeout_ns, unjudged=False, codes=False):
    """A probe's outcome (schema.OUTCOMES) from what answered it (``reply_kind``: a REPLY_KINDS code,
    -1 for nothing), the reply delay (ns, NaN for none) and the timeout (ns).

    answered: a reply within the timeout; refused: a RST/ACK within it; late: a reply after it;
    unknown: no reply and ``unjudged`` (the capture ended before the timeout ran out); lost otherwise.
    Scalars give a str; arrays give an array of names, or of OUTCOMES codes with ``codes=True``.
    """
    kind = np.asarray(reply_kind, dtype=np.int64)
    delay = np.asarray(delay_ns, dtype=np.float64)
    got = (kind >= 0) & ~np.isnan(delay)
    late = got & (delay > timeout_ns)
    code = np.select([got & ~late & (kind == RST_ACK), got & ~late, late, ~got & np.asarray(unjudged, bool)],
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
