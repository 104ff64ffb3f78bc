"""The packets table: column names, dtypes and meaning, defined once.

Every reader backend produces exactly these columns in this order; docs/packets-table.md is checked
against this module by the tests. Integer columns that do not apply to a frame are <NA> (pandas
nullable dtypes), never 0. Addresses are categoricals shared by ``src`` and ``dst``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["Column", "PACKETS", "PACKET_COLUMNS", "L3_KINDS", "TUNNEL_KINDS", "TCP_FLAGS", "empty_packets",
           "STREAM_KEYS", "SOURCE_STREAM_KEYS", "SPARSE", "TABLES", "check_table", "empty_table", "tables_markdown",
           "PAYLOAD_TESTS", "PAYLOAD_VERDICTS", "FINGERPRINTS", "CLOUDWATCH", "AUDIT",
           "AUDIT_SUMMARY"]


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str
    doc: str
    optional: bool = False
    """A grouping key that is present only when the caller groups by it (``by=...``)."""


STREAM_KEYS = ("protocol", "destination", "port")
"""A *stream*: every probe of one monitored target (what CloudWatch calls a probe), all sources together."""
SOURCE_STREAM_KEYS = ("protocol", "source", "destination", "port")
"""A *source stream*: one stream as sent from one source address (one ENI)."""

L3_KINDS = ("ipv4", "ipv6", "arp", "other", "none", "encrypted")
"""Values of ``l3``: what the link layer carried ('arp' covers ARP and RARP; 'other': a known link
layer with another protocol;
'none': nothing decodable, e.g. an unknown link type or a frame too short for its link header;
'encrypted': the link layer hides its payload — MACsec with encryption, an 802.11 protected frame)."""

TUNNEL_KINDS = ("none", "vxlan", "geneve", "gre", "erspan", "ipip", "6in4", "ip6ip6", "teredo", "gtpu", "ayiya")
"""Values of ``tunnel``: the outermost encapsulation the decoder opened (see probekit.capture.encaps)."""

SPARSE = "Sparse[float64, nan]"
"""dtype of the rarely-filled numeric packets columns (tunnel and quoted-header fields): only the rows
that have a value cost memory (12 bytes each); NaN where the field does not apply. Integer values are
exact (all fit in 2^53); ``s.astype("UInt32")`` (or UInt16/UInt8) gives the nullable integer column."""
SPARSE_TEXT = "Sparse[object, nan]"
"""dtype of the rarely-filled address columns (quoted_src, quoted_dst): text, NaN where absent."""
SPARSE_FLAG = "Sparse[bool, False]"
"""dtype of the rarely-true packets flags (malformed, offload): only the True rows cost memory."""
SPARSE_COUNT = "Sparse[uint8, 0]"
"""dtype of tunnel_depth: 0 (no tunnel, a real value, not a missing one) costs nothing."""
CODED = {"tunnel_id": np.uint32, "outer_ttl": np.uint8}
"""Dictionary-coded number columns (dtype ``category``): the distinct values, sorted, with this dtype are
the categories, <NA> where the field does not apply. One byte per row for up to 127 distinct values, in a
plain capture as in a mirrored one; ``s.astype("UInt32")`` gives the numbers."""

TCP_FLAGS = {"FIN": 0x001, "SYN": 0x002, "RST": 0x004, "PSH": 0x008, "ACK": 0x010, "URG": 0x020,
             "ECE": 0x040, "CWR": 0x080, "AE": 0x100}
"""Bits of ``tcp_flags`` (the 12-bit field after the data offset, as tshark's ``tcp.flags``)."""

PACKETS: tuple[Column, ...] = (
    Column("frame", "int64", "frame number, 1-based, in file order (tshark's frame.number)"),
    Column("iface", "uint16", "interface id: pcapng IDB index counted across sections; 0 for pcap"),
    Column("linktype", "uint16", "LINKTYPE_ value of the frame's interface (see probekit.capture.linktypes)"),
    Column("ts_ns", "Int64", "capture timestamp, integer nanoseconds since the Unix epoch (exact); <NA> "
                             "for pcapng Simple Packet Blocks, which carry none"),
    Column("caplen", "uint32", "bytes captured (stored in the file)"),
    Column("wirelen", "uint32", "original length on the wire"),
    Column("l3", "category", "network layer: " + ", ".join(L3_KINDS)),
    Column("vlan", "UInt16", "outermost 802.1Q/802.1ad VLAN id"),
    Column("src", "category", "source IPv4/IPv6 address, text form"),
    Column("dst", "category", "destination IPv4/IPv6 address, text form"),
    Column("ip_proto", "UInt8", "IPv4 protocol / IPv6 last next-header (after extension headers)"),
    Column("ip_len", "UInt32", "IP total length from the header (IPv6: 40 + payload length)"),
    Column("ip_hdr_len", "UInt16", "IP header bytes incl. IPv4 options / IPv6 extension headers"),
    Column("ttl", "UInt8", "IPv4 TTL / IPv6 hop limit"),
    Column("ip_id", "UInt32", "IPv4 identification; IPv6 fragment-header identification"),
    Column("ip_df", "boolean", "IPv4 don't-fragment flag"),
    Column("ip_mf", "boolean", "more-fragments flag (IPv4 or IPv6 fragment header)"),
    Column("frag_offset", "UInt16", "fragment offset in bytes (0 for the first fragment)"),
    Column("icmp_type", "UInt8", "ICMP or ICMPv6 type"),
    Column("icmp_code", "UInt8", "ICMP or ICMPv6 code"),
    Column("icmp_id", "UInt16", "echo identifier (ICMP 0/8/13/14/15/16/17/18, ICMPv6 128/129)"),
    Column("icmp_seq", "UInt16", "echo sequence number (same types as icmp_id)"),
    Column("sport", "UInt16", "TCP/UDP source port"),
    Column("dport", "UInt16", "TCP/UDP destination port"),
    Column("tcp_flags", "UInt16", "TCP flag bits (probekit.schema.TCP_FLAGS)"),
    Column("tcp_seq", "UInt32", "TCP sequence number (raw, not relative)"),
    Column("tcp_ack", "UInt32", "TCP acknowledgement number (raw)"),
    Column("tcp_win", "UInt16", "TCP window field (unscaled)"),
    Column("tcp_hdr_len", "UInt8", "TCP header length in bytes, options included"),
    Column("payload_len", "Int32", "L4 payload bytes per the headers (TCP/UDP data, ICMP data after the "
                                   "8-byte header); <NA> where no L4 header was decoded"),
    Column("payload_off", "Int64", "byte offset of the L4 payload in the capture file (for "
                                   "df.probekit.payloads()); <NA> when none of it was captured"),
    Column("payload_caplen", "Int32", "payload bytes actually present in the file (<= payload_len)"),
    Column("truncated", "bool", "caplen < wirelen, or a header was cut by the snap length"),
    Column("malformed", SPARSE_FLAG, "a header is inconsistent (bad IHL, lengths, version vs link type, a tunnel "
                                "header longer than its packet, ...)"),
    Column("offload", SPARSE_FLAG, "segmentation-offload super-frame: IPv4 total length 0 or beyond the frame; "
                              "the captured length is taken instead (as Zeek does), L4 fields are kept"),
    Column("tunnel", "category", "outermost encapsulation opened: " + ", ".join(TUNNEL_KINDS) + "; the L3/L4 "
                                 "columns above then describe the innermost IP packet"),
    Column("tunnel_depth", SPARSE_COUNT, "number of nested encapsulations opened (0 = none)"),
    Column("outer_src", "category", "source address of the outermost IP header (tunnelled frames only)"),
    Column("outer_dst", "category", "destination address of the outermost IP header (tunnelled frames only)"),
    Column("tunnel_id", "category", "the outermost tunnel's id: VXLAN/GENEVE VNI, GRE key (PPTP call id), "
                                    "GTP-U TEID, ERSPAN session id (dictionary-coded uint32, see CODED)"),
    Column("outer_ttl", "category", "TTL / hop limit of the outermost IP header (tunnelled frames only; "
                                    "dictionary-coded uint8)"),
    Column("gwlb_flow_cookie", SPARSE, "AWS Gateway Load Balancer flow cookie: the 32-bit GENEVE option of class "
                                       "0x0108 type 3 in the outermost GENEVE header; GWLB's name for the flow "
                                       "the packet belongs to, to group one GWLB flow's packets (its two "
                                       "directions, as GWLB hands them to the appliance and takes them back)"),
    Column("quoted_src", SPARSE_TEXT, "source address of the IP header an ICMP error (types 3, 4, 5, 11, 12) "
                                      "or ICMPv6 error (types 1-4) quotes"),
    Column("quoted_dst", SPARSE_TEXT, "destination address of the quoted IP header"),
    Column("quoted_proto", SPARSE, "protocol of the quoted IP header (IPv6: after extension headers)"),
    Column("quoted_sport", SPARSE, "TCP/UDP source port of the quoted datagram"),
    Column("quoted_dport", SPARSE, "TCP/UDP destination port of the quoted datagram"),
    Column("quoted_icmp_id", SPARSE, "echo identifier of a quoted ICMP/ICMPv6 echo"),
    Column("quoted_icmp_seq", SPARSE, "echo sequence number of a quoted ICMP/ICMPv6 echo"),
    Column("quoted_tcp_seq", SPARSE, "TCP sequence number of the quoted segment (raw)"),
    Column("icmp_mtu", SPARSE, "next-hop MTU of an ICMP fragmentation-needed (type 3 code 4) or ICMPv6 "
                               "packet-too-big (type 2)"),
)

PACKET_COLUMNS = tuple(c.name for c in PACKETS)

OUTCOMES = ("answered", "refused", "late", "lost", "unknown")
"""Values of a probe's ``outcome``: answered (echo reply / SYN-ACK / a UDP datagram back on the reversed
4-tuple, within the timeout), refused (within the timeout, the target itself said "port closed": a TCP
RST/ACK, or for a UDP probe an ICMP/ICMPv6 port unreachable sent by the probe's destination; the path
works), late (a reply after the timeout: lost for the metrics), lost (no reply in the capture), unknown
(the capture ended before the timeout ran out); and, once ICMP errors are attributed, the
ERROR_OUTCOMES (unreachable — a port unreachable from any other address among them —, ttl_exceeded,
frag_needed, packet_too_big, param_problem), which count as lost."""

PROBES: tuple[Column, ...] = (
    Column("ts_ns", "int64", "request time at the capture point, ns since the epoch"),
    Column("protocol", "category", "icmp, icmpv6, tcp or udp"),
    Column("source", "category", "prober address (the ENI)"),
    Column("destination", "category", "target address"),
    Column("port", "UInt16", "the stream's port, what every analysis groups by: the TCP/UDP destination port, "
                             "for a tracer's UDP probes to rising ports (traceroute, mtr -u) the lowest port of "
                             "the run (streams.tracer_ports; docs/streams.md); <NA> for ICMP"),
    Column("dst_port", "UInt16", "the request's own TCP/UDP destination port (= port but in a tracer's run); "
                                 "<NA> for ICMP"),
    Column("size", "Int32", "probe size: ICMP message, TCP segment or UDP datagram bytes (IP total length - "
                            "IP header)"),
    Column("ident", "UInt32", "ICMP echo identifier, or the TCP/UDP source port"),
    Column("seq", "UInt32", "ICMP echo sequence number, the TCP initial sequence number, or for UDP the "
                            "request's IPv4 identification (0 for IPv6): what tells apart the probes of a "
                            "tracer that keeps one 4-tuple (Paris traceroute)"),
    Column("outcome", "category", "one of " + ", ".join(OUTCOMES)),
    Column("rtt_us", "float64", "reply time - request time in µs, for answered/refused probes; NaN "
                                "otherwise (never 0 for no reply). At the target's side of the path "
                                "this is the target's turnaround"),
    Column("reply_delay_us", "float64", "reply time - request time for any reply, late ones included"),
    Column("request_frame", "int64", "frame number of the request (the first one, if re-sent)"),
    Column("reply_frame", "Int64", "frame number of the first reply (for a refused UDP probe: the "
                                   "destination's ICMP port unreachable)"),
    Column("reset_frame", "Int64", "frame number of the prober's RST after the SYN/ACK (TCP)"),
    Column("reset_after_us", "float64", "prober's RST time - SYN/ACK time, µs (TCP)"),
    Column("retransmits", "int32", "further requests with the same identity and IP TTL / hop limit (re-sent "
                                   "SYNs, repeated echo); UDP: always 0"),
    Column("extra_replies", "int32", "replies after the first (duplicates, re-sent SYN/ACKs)"),
    Column("error_code", "category", "the ICMP/ICMPv6 error this probe drew, its code by name (schema.ICMP_ERRORS); "
                                     "present once errors are attributed (sessions do)", optional=True),
    Column("reporter", "category", "the router or host that sent that error", optional=True),
    Column("mtu", "UInt32", "the MTU a fragmentation-needed / packet-too-big error named", optional=True),
)
PROBE_COLUMNS = tuple(c.name for c in PROBES if not c.optional)

PERIOD_STATUS = ("ok", "loss", "no_reply", "no_probes")
"""``status`` of a period: ok (every probe answered), loss (some lost), no_reply (probes sent, none
answered: 100 % loss), no_probes (nothing sent: no data, metrics NaN, never 0 % loss); with ICMP errors
attributed (sessions), ``errors``: 100 % loss, every probe answered by an ICMP error (unreachable, TTL
exceeded, too big) — the path refused rather than stayed silent."""

PERIODS: tuple[Column, ...] = (
    Column("protocol", "category", "stream key (columns present depend on ``by``)", optional=True),
    Column("source", "category", "stream key: prober address (absent when aggregated over sources)", optional=True),
    Column("destination", "category", "stream key", optional=True),
    Column("port", "UInt16", "stream key (<NA> for ICMP)", optional=True),
    Column("period_start_ns", "int64", "start of the aggregation period, aligned to multiples of the "
                                       "period since the epoch, as CloudWatch aligns them"),
    Column("period_s", "int32", "aggregation period, 30 or 60 s"),
    Column("sent", "int64", "probes sent in the period (outcome unknown excluded)"),
    Column("answered", "int64", "answered or refused within the timeout"),
    Column("late", "int64", "replies after the timeout (counted as lost)"),
    Column("loss_pct", "float64", "100 * (sent - answered) / sent; NaN when nothing was sent"),
    Column("rtt_mean_us", "float64", "RTT statistics over answered probes, µs; NaN when none answered"),
    Column("rtt_median_us", "float64", "median RTT, µs"),
    Column("rtt_p95_us", "float64", "95th-percentile RTT, µs"),
    Column("rtt_min_us", "float64", "minimum RTT, µs"),
    Column("rtt_max_us", "float64", "maximum RTT, µs"),
    Column("status", "category", "one of " + ", ".join(PERIOD_STATUS) + " (and errors, see PERIOD_STATUS)"),
    Column("unreachable", "int64", "probes that drew ICMP destination unreachable (sessions)", optional=True),
    Column("ttl_exceeded", "int64", "probes that drew ICMP time exceeded (sessions)", optional=True),
    Column("too_big", "int64", "probes that drew fragmentation needed / packet too big (sessions)", optional=True),
    Column("param_problem", "int64", "probes that drew a parameter problem (sessions)", optional=True),
    Column("reporters", "str", "who sent those errors, 'address (count), ...' (sessions)", optional=True),
)


# ============================================================================ analysis tables (seams)
# The tables of timing, sources, sizes, matching and the truth sidecars. Grouping keys are optional
# columns: an analysis grouped ``by`` STREAM_KEYS has no ``source`` column.
def _keys(source: bool = True) -> tuple[Column, ...]:
    cols = (Column("protocol", "category", "stream key: icmp, icmpv6, tcp or udp", optional=True),)
    if source:
        cols += (Column("source", "category", "stream key: prober address (the ENI)", optional=True),)  # type: ignore[assignment]
    return cols + (Column("destination", "category", "stream key: target address", optional=True),
                   Column("port", "UInt16", "stream key: TCP/UDP destination port (<NA> for ICMP)", optional=True))


INTER_ARRIVALS: tuple[Column, ...] = _keys() + (
    Column("ts_ns", "int64", "probe request time, ns since the epoch"),
    Column("ia_s", "float64", "seconds since the previous probe of its group (NaN for the first)"),
)
TIMING_SUMMARY: tuple[Column, ...] = _keys() + (
    Column("probes", "int64", "probes in the group"),
    Column("rate_per_s", "float64", "(probes - 1) / (last - first request time); NaN for one probe"),
    Column("ia_median_s", "float64", "median inter-arrival, s"),
    Column("ia_mean_s", "float64", "mean inter-arrival, s"),
    Column("ia_std_ms", "float64", "inter-arrival standard deviation (jitter), ms; NaN under 3 probes"),
    Column("ia_mad_ms", "float64", "mean absolute deviation of the inter-arrivals from their mean, ms"),
    Column("dominant_period_s", "float64", "strongest period of the probe train (spectrum); NaN under 8 probes"),
    Column("bursts", "int64", "inter-arrivals under burst_factor x the median"),
    Column("gaps", "int64", "gaps found by find_gaps (leading/trailing ones with span_ns)"),
    Column("longest_gap_s", "float64", "longest of those gaps, s (0 when none)"),
)
GAP_KINDS = ("gap", "leading", "trailing")
GAPS: tuple[Column, ...] = _keys() + (
    Column("start_ns", "int64", "last probe before the gap (or the capture start, leading)"),
    Column("end_ns", "int64", "first probe after the gap (or the capture end, trailing)"),
    Column("length_s", "float64", "end - start, s"),
    Column("kind", "category", "one of " + ", ".join(GAP_KINDS) + " (trailing: the stream stopped for good)"),
)
SOURCE_SHARES: tuple[Column, ...] = _keys(source=False) + (
    Column("source", "category", "prober address (the ENI)"),
    Column("probes", "int64", "probes from this source in the stream"),
    Column("share", "float64", "fraction of the stream's probes (0-1)"),
)
BALANCE: tuple[Column, ...] = _keys(source=False) + (
    Column("sources", "int64", "sources seen in the stream"),
    Column("probes", "int64", "probes in the stream"),
    Column("chi2", "float64", "chi-square statistic of the per-source counts against an even split"),
    Column("p_value", "float64", "its p-value (NaN with one source)"),
    Column("balanced", "boolean", "p_value >= alpha; <NA> with one source"),
)
ALTERNATION: tuple[Column, ...] = _keys(source=False) + (
    Column("sources", "int64", "distinct sources"),
    Column("runs", "int64", "runs of consecutive probes from one source"),
    Column("mean_run", "float64", "mean run length, probes"),
    Column("longest_run", "int64", "longest run, probes"),
    Column("share_runs_of_1", "float64", "fraction of runs of length 1"),
    Column("round_robin", "bool", "every run has length 1 and the sources keep one cyclic order"),
)
SOURCE_RATE: tuple[Column, ...] = _keys(source=False) + (
    Column("source", "category", "prober address (the ENI)"),
    Column("period_start_ns", "int64", "period start, aligned to multiples of the period since the epoch"),
    Column("probes", "int64", "probes from the source in the period (0-filled over the stream's span)"),
    Column("rate_per_s", "float64", "probes / period_s"),
)
SOURCE_QUALITY: tuple[Column, ...] = _keys(source=False) + (
    Column("source", "category", "prober address (the ENI)"),
    Column("sent", "int64", "probes judged (outcome unknown excluded)"),
    Column("answered", "int64", "answered or refused within the timeout"),
    Column("rtt_median_us", "float64", "median RTT of answered probes, µs"),
    Column("rtt_mean_us", "float64", "mean RTT, µs"),
    Column("rtt_p95_us", "float64", "95th-percentile RTT, µs"),
    Column("loss_pct", "float64", "100 * (sent - answered) / sent; NaN when nothing was sent"),
)
SIZE_CHANGES: tuple[Column, ...] = _keys(source=False) + (
    Column("ts_ns", "int64", "first probe at the new size"),
    Column("from_size", "int64", "probe size before, bytes (as PROBES.size)"),
    Column("to_size", "int64", "probe size after, bytes"),
    Column("last_old_ns", "int64", "last probe at the old size"),
    Column("delay_s", "float64", "ts_ns - configured_at_ns, s (NaN without configured_at_ns)"),
)
ORPHANS: tuple[Column, ...] = (
    Column("protocol", "str", "icmp, icmpv6, tcp or udp"),
    Column("source", "str", "prober address the reply went to"),
    Column("destination", "str", "target address it came from"),
    Column("ident", "int64", "ICMP identifier or the prober's TCP port"),
    Column("port", "Int64", "TCP target port; <NA> for ICMP"),
    Column("seq", "int64", "ICMP sequence number, or the ISN the reply acknowledges (ack - 1)"),
    Column("ts_ns", "int64", "reply time, ns since the epoch"),
    Column("frame", "int64", "reply frame number"),
    Column("kind", "int64", "0 echo reply, 1 SYN/ACK, 2 RST/ACK, 3 UDP reply, 4 the destination's port "
                            "unreachable (probekit.protocol.REPLY_KINDS)"),
    Column("ack_raw", "float64", "the RST/ACK's raw ack number; NaN for other kinds"),
)
TRUTH: tuple[Column, ...] = (
    Column("probe_id", "int64", "probe number in send order"),
    Column("stream", "str", "the stream's label (protocol:destination[:port])"),
    Column("protocol", "str", "icmp, icmpv6 or tcp"),
    Column("source", "str", "prober address (the ENI)"),
    Column("destination", "str", "target address"),
    Column("port", "UInt16", "TCP destination port; <NA> for ICMP"),
    Column("size_configured", "int64", "size the monitor was configured with, bytes"),
    Column("size", "int64", "size the probe was sent with, bytes"),
    Column("send_ns", "int64", "send time, ns since the epoch"),
    Column("answered", "bool", "answered or refused within the timeout"),
    Column("rtt_us", "float64", "RTT at the prober, µs; NaN when not answered"),
    Column("outcome", "str", "one of " + ", ".join(OUTCOMES)),
    Column("lost_leg", "str", "where an unanswered probe was lost (request, reply, target_down, late, "
                                 "send_error, unknown); empty when answered"),
    Column("replies", "int64", "replies that arrived"),
    Column("error_code", "str", "scenarios with ICMP errors: the error's code by name (as "
                                "probekit.analysis.errors_icmp names it)", optional=True),
    Column("reporter", "str", "scenarios with ICMP errors: the router that sent it", optional=True),
    Column("mtu", "Int32", "scenarios with a path MTU: the MTU the error named", optional=True),
)
"""The truth sidecar (``CAPTURE.truth.csv``) of a synthetic capture and the live prober's results CSV."""
TRUTH_COLUMNS = tuple(c.name for c in TRUTH if not c.optional)

# ------------------------------------------------------------------------------------ CONNECTIONS
CONNECTIONS: tuple[Column, ...] = (
    # conn.log's fields (docs from Zeek's scripts/base/protocols/conn/main.zeek, Conn::Info)
    Column("ts_ns", "int64", "conn.log ts: this is the time of the first packet (ns since the epoch)"),
    Column("uid", "str", "a unique identifier of the connection (deterministic here: a hash of its identity)"),
    Column("orig_h", "category", "id.orig_h: the originator's address"),
    Column("orig_p", "uint16", "id.orig_p: the originator's port (ICMP: the message type)"),
    Column("resp_h", "category", "id.resp_h: the responder's address"),
    Column("resp_p", "uint16", "id.resp_p: the responder's port (ICMP: the counterpart type, or the code "
                               "for one-way messages)"),
    Column("proto", "category", "the transport layer protocol of the connection: tcp, udp, icmp"),
    Column("duration_s", "float64", "how long the connection lasted, s; NaN where Zeek leaves it unset "
                                    "(duration 0). Trailing non-productive TCP packets after both sides "
                                    "closed are not covered"),
    Column("orig_bytes", "Int64", "the number of payload bytes the originator sent. For TCP this is taken "
                                  "from sequence numbers and might be inaccurate; <NA> when duration is unset"),
    Column("resp_bytes", "Int64", "the number of payload bytes the responder sent (see orig_bytes)"),
    Column("conn_state", "category", "S0 attempt, no reply; S1 established, not terminated; SF normal "
                                     "establishment and termination; REJ attempt rejected; S2/S3 established, "
                                     "close attempt by originator/responder only; RSTO/RSTR originator/responder "
                                     "aborted; RSTOS0 SYN then RST from the originator, no SYN-ACK; RSTRH "
                                     "SYN-ACK then RST from the responder, no SYN; SH/SHR SYN/SYN-ACK then FIN, "
                                     "half open; OTH no SYN seen, midstream traffic"),
    Column("local_orig", "boolean", "T if the connection is originated locally (Site::local_nets, by "
                                    "default Site::private_address_space); <NA> with no local nets"),
    Column("local_resp", "boolean", "T if the connection is responded to locally"),
    Column("missed_bytes", "int64", "the number of bytes missed in content gaps, representative of packet loss"),
    Column("history", "str", "the state history as letters (s SYN, h SYN+ACK, a pure ACK, d data, f FIN, r "
                             "RST, c bad checksum, g content gap, t retransmitted payload, w zero window, i "
                             "FIN+RST, q multi-flag, ^ flipped; upper case from the originator); c, g, t, w "
                             "are logarithmic: again at 10, 100, 1000 ... occurrences. Application-layer "
                             "letters (x) are out of scope"),
    Column("orig_pkts", "int64", "number of packets that the originator sent"),
    Column("orig_ip_bytes", "int64", "number of IP level bytes that the originator sent (from the IP total "
                                     "length header field)"),
    Column("resp_pkts", "int64", "number of packets that the responder sent"),
    Column("resp_ip_bytes", "int64", "number of IP level bytes that the responder sent"),
    Column("tunnel_parents", "str", "if this connection was over a tunnel, the uids of the encapsulating "
                                    "parent connections used over its lifetime (comma-separated; <NA> "
                                    "when not tunnelled or the packets table has no tunnel columns)"),
    Column("ip_proto", "uint8", "the protocol identifier passed in the IP header"),
    Column("community_id", "str", "Community ID v1 flow hash (only with community_id=True)", optional=True),
    # probe analysis extras (TCP; <NA>/NaN/0 otherwise)
    Column("first_frame", "int64", "frame number of the connection's first packet"),
    Column("isn", "Int64", "the first SYN's sequence number"),
    Column("syn_payload", "Int32", "payload bytes of the first SYN"),
    Column("syns", "int32", "SYNs (without ACK) seen: more than 1 means re-sent"),
    Column("synacks", "int32", "SYN/ACKs seen: more than 1 means re-sent"),
    Column("handshake_rtt_us", "float64", "first SYN/ACK time - first SYN time, µs"),
    Column("reset_by", "category", "who sent the first RST: orig or resp"),
    Column("reset_after_synack_us", "float64", "first RST time - first SYN/ACK time, µs"),
    Column("reset_ack_from_responder", "bool", "the first RST came from the responder with ACK set (a "
                                               "closed port's answer)"),
)
CONNECTION_COLUMNS = tuple(c.name for c in CONNECTIONS)

# ------------------------------------------------------------------ payload and fingerprint tables
PAYLOAD_TESTS: tuple[Column, ...] = (
    Column("length", "int64", "captured payload bytes of the request"),
    Column("entropy_bits", "float64", "Shannon entropy of the payload's bytes, bits per byte; NaN when empty"),
    Column("entropy_norm", "float64", "entropy_bits / log2(min(length, 256)): 1 is the most the length allows"),
    Column("monobit_p", "float64", "NIST SP 800-22 frequency (monobit) test p-value; NaN under 100 bits"),
    Column("runs_p", "float64", "NIST SP 800-22 runs test p-value (0 when the monobit pre-test fails); NaN "
                                "under 100 bits"),
    Column("timestamp", "object", "timeval/timespec layout found at the payload start within a day of the "
                                  "frame time (e.g. timeval64-le), else None"),
    Column("fill", "object", "known fill: zeros, constant 0xNN, incrementing, iputils (timeval + 0x10, 0x11, "
                             "...), windows alphabet; else None"),
)
"""Per probe request (rows like the probes table): ``probekit.payload_tests``."""

PAYLOAD_VERDICTS: tuple[Column, ...] = (
    Column("protocol", "category", "source-stream key (the columns present depend on ``by``)"),
    Column("source", "category", "source-stream key: prober address"),
    Column("destination", "category", "source-stream key"),
    Column("port", "UInt16", "source-stream key (<NA> for ICMP)"),
    Column("probes", "int64", "probes in the stream"),
    Column("length", "int64", "median payload length, bytes (truncated to an integer)"),
    Column("distinct", "int64", "distinct payloads (by length and a 128-bit hash of the bytes)"),
    Column("duplicate_share", "float64", "1 - distinct / probes"),
    Column("timestamp_share", "float64", "share of payloads starting with a timestamp near the frame time"),
    Column("fill", "object", "most frequent known fill (ties: first in sorted order), else None"),
    Column("entropy_mean", "float64", "mean per-payload entropy, bits per byte"),
    Column("entropy_norm_mean", "float64", "mean per-payload normalised entropy"),
    Column("monobit_pass", "float64", "share of tested payloads with monobit p >= alpha; NaN if none tested"),
    Column("runs_pass", "float64", "share of tested payloads with runs p >= alpha; NaN if none tested"),
    Column("ent_entropy", "float64", "ent: entropy of all the stream's payload bytes back to back, bits/byte"),
    Column("ent_chi2", "float64", "ent: chi-square against uniform bytes; NaN under 1280 bytes"),
    Column("ent_chi2_p", "float64", "ent: p-value of the chi-square (255 degrees of freedom)"),
    Column("ent_mean", "float64", "ent: arithmetic mean of the bytes (127.5 for uniform)"),
    Column("ent_pi", "float64", "ent: Monte-Carlo estimate of pi from 24-bit coordinate pairs"),
    Column("ent_serial_corr", "float64", "ent: serial correlation coefficient of neighbouring bytes"),
    Column("ent_note", "object", "why an ent result is missing, else None"),
    Column("verdict", "str", "random, repeated-random, patterned, constant, timestamped or empty"),
    Column("evidence", "str", "the numbers that decided the verdict, as a sentence"),
)
"""Per source stream: ``probekit.payload_verdicts``."""

FINGERPRINTS: tuple[Column, ...] = (
    Column("protocol", "category", "source-stream key"),
    Column("source", "category", "source-stream key: prober address"),
    Column("destination", "category", "source-stream key"),
    Column("port", "UInt16", "source-stream key (<NA> for ICMP)"),
    Column("probes", "int64", "probes in the stream"),
    Column("tool", "str", "cwnm-like, iputils-ping, fping, hping3, nping, windows-ping or unknown"),
    Column("evidence", "str", "what on the wire decided it"),
)
"""Per source stream: ``probekit.fingerprint``."""

# ------------------------------------------------------------------------------ CloudWatch
CLOUDWATCH_METRICS = ("PacketLoss", "RTT", "HealthIndicator")
"""Network Monitor's metrics in namespace ``AWS/NetworkMonitor`` (dimensions ``Monitor`` and ``Probe``):
PacketLoss in percent, RTT in microseconds, HealthIndicator (AWS network health: 0 healthy, 100 degraded)."""

PROBE_RESOLUTION = ("monitor", "export", "guessed", "unresolved", "not_in_monitor")
"""``resolved``: how a CloudWatch row's probe id became destination/protocol/port — monitor (found in the
monitor description, ``aws networkmonitor get-monitor``), export (the file itself names them: probekit's
old CSV), guessed (one probe id and one capture stream: assumed to be the same; the audit says so),
unresolved (no monitor description to look the id up in), not_in_monitor (the id is absent from the
monitor description given)."""

CLOUDWATCH: tuple[Column, ...] = (
    Column("period_start_ns", "int64", "start of the CloudWatch period (its datapoint timestamp), ns since the "
                                       "epoch, UTC"),
    Column("period_s", "Int32", "aggregation period in s: the monitor's aggregationPeriod, else the spacing of "
                                "the timestamps; <NA> when neither says"),
    Column("monitor", "object", "monitor name (dimension Monitor), None when the export does not say"),
    Column("probe_id", "object", "probe id (dimension Probe, 'probe-...'), None when the export does not say"),
    Column("destination", "object", "target address, from the monitor description (None if unresolved)"),
    Column("port", "UInt16", "TCP destination port; <NA> for ICMP or unresolved"),
    Column("protocol", "object", "icmp, icmpv6 or tcp (None if unresolved)"),
    Column("size", "Int32", "the probe's packetSize in bytes from the monitor description"),
    Column("metric", "category", "one of " + ", ".join(CLOUDWATCH_METRICS)),
    Column("statistic", "object", "Average, Maximum, Minimum, Sum, SampleCount or pNN (Average when the "
                                  "export does not say)"),
    Column("value", "float64", "the datapoint's value, in ``unit``"),
    Column("unit", "object", "Percent (PacketLoss), Microseconds (RTT), None (HealthIndicator)"),
    Column("resolved", "category", "how the probe id was resolved: one of " + ", ".join(PROBE_RESOLUTION)),
    Column("status_code", "object", "GetMetricData's StatusCode for the series (Complete, PartialData, ...), "
                                    "None for other formats"),
    Column("source_file", "object", "the export file the row was read from"),
)
CLOUDWATCH_COLUMNS = tuple(c.name for c in CLOUDWATCH)

AUDIT_FINDINGS = ("agrees", "zero_loss_but_no_replies", "zero_rtt_without_reply", "metric_without_probes",
                  "probes_without_metric", "loss_differs", "rtt_differs", "probe_not_in_monitor",
                  "unresolved_probe")
"""``finding`` of an audit row, worst first: zero_loss_but_no_replies (CloudWatch ~0 % loss for a period whose
probes all went unanswered), zero_rtt_without_reply (an RTT of 0 with no reply at all), metric_without_probes
(CloudWatch published a datapoint for a period in which the capture shows no probe of the stream),
probes_without_metric (probes were sent but CloudWatch has no datapoint), loss_differs / rtt_differs
(beyond the stated tolerances), probe_not_in_monitor / unresolved_probe (the probe id could not be
lined up with a capture stream)."""

AUDIT: tuple[Column, ...] = (
    Column("period_start_ns", "int64", "period start, aligned to multiples of period_s since the epoch, as "
                                       "CloudWatch aligns them"),
    Column("period_s", "int32", "aggregation period, s"),
    Column("protocol", "object", "stream key (None for a probe id that could not be resolved)"),
    Column("destination", "object", "stream key"),
    Column("port", "UInt16", "stream key (<NA> for ICMP)"),
    Column("probe_id", "object", "CloudWatch's probe id, when known"),
    Column("resolved", "object", "how the probe id was resolved (schema.PROBE_RESOLUTION); None where "
                                 "CloudWatch has no row"),
    Column("cw_loss_pct", "float64", "CloudWatch's PacketLoss for the period, %; NaN if not published"),
    Column("cw_rtt_us", "float64", "CloudWatch's RTT for the period, µs; NaN if not published"),
    Column("cw_status_code", "object", "GetMetricData's StatusCode of the series, when known"),
    Column("sent", "int64", "probes the capture shows sent in the period (all sources)"),
    Column("answered", "int64", "of which answered or refused within the timeout"),
    Column("loss_pct", "float64", "the capture's loss, %; NaN when nothing was sent"),
    Column("rtt_mean_us", "float64", "the capture's mean RTT over answered probes, µs"),
    Column("rtt_median_us", "float64", "the capture's median RTT, µs"),
    Column("status", "category", "the capture's period status (schema.PERIOD_STATUS)"),
    Column("icmp_errors", "Int64", "ICMP/ICMPv6 error messages (unreachable, time exceeded) sent to a prober "
                                   "source in the period; <NA> when no packets table was given"),
    Column("probing_stopped", "bool", "the capture shows no probe of this stream in the period"),
    Column("finding", "category", "one of " + ", ".join(AUDIT_FINDINGS)),
    Column("agrees", "bool", "finding == 'agrees'"),
    Column("detail", "object", "the finding in words, with the numbers and tolerance that decided it"),
)
AUDIT_COLUMNS = tuple(c.name for c in AUDIT)

AUDIT_SUMMARY: tuple[Column, ...] = (
    Column("protocol", "object", "stream key (None for an unresolved probe id)"),
    Column("destination", "object", "stream key"),
    Column("port", "UInt16", "stream key (<NA> for ICMP)"),
    Column("probe_id", "object", "CloudWatch's probe id, when known"),
    Column("finding", "category", "one of " + ", ".join(AUDIT_FINDINGS) + " (never agrees)"),
    Column("periods", "int64", "periods with this finding"),
    Column("first_period_start_ns", "int64", "start of the first such period, ns since the epoch"),
    Column("last_period_start_ns", "int64", "start of the last such period"),
    Column("cw_loss_pct", "float64", "CloudWatch's mean PacketLoss over those periods, %"),
    Column("cw_rtt_us", "float64", "CloudWatch's mean RTT over those periods, µs"),
    Column("sent", "int64", "probes the capture shows sent in those periods"),
    Column("answered", "int64", "of which answered"),
)
"""The audit in brief: one row per probe and finding other than agrees, worst finding first."""

# ------------------------------------------------------------------------ forensics (issue 13)
STREAM_KINDS = ("probe", "client", "scan", "other")
"""``kind`` of a stream: probe (a monitor's regular probing, whatever tool), client (connections that
carry data: browsers, ssh, API clients), scan (one or two requests per target across many targets from
one source), other (anything else). The rules are in docs/streams.md."""

STREAMS: tuple[Column, ...] = (
    Column("protocol", "category", "icmp, icmpv6, tcp or udp"),
    Column("destination", "category", "target address"),
    Column("port", "UInt16", "TCP/UDP destination port; <NA> for ICMP. A tracer's UDP stream (rising "
                             "ports, rising TTLs) is keyed by its lowest port"),
    Column("ports", "int32", "destination ports the row covers from ``port`` on: port .. port + ports - 1 "
                             "(a tracer's run of ports); 1 for TCP and other UDP, 0 for ICMP"),
    Column("kind", "category", "one of " + ", ".join(STREAM_KINDS)),
    Column("sources", "int32", "number of source addresses in this row (source streams of the same kind "
                               "to the same target are one row)"),
    Column("source_list", "object", "the source addresses, comma-separated, sorted"),
    Column("requests", "int64", "requests (probes table rows) in the row"),
    Column("first_ns", "int64", "first request, ns since the epoch"),
    Column("last_ns", "int64", "last request, ns since the epoch"),
    Column("rate_per_s", "float64", "requests per second over the row's span (NaN for one request)"),
    Column("gap_median_s", "float64", "median gap between requests of one source, s (median over "
                                      "sources); NaN with fewer than two requests per source"),
    Column("on_schedule_pct", "float64", "share of per-source gaps within 20 % of a whole multiple of "
                                         "that source's median gap: 100 for a fixed schedule, even with "
                                         "lost requests; NaN without gaps"),
    Column("per_target_max", "int64", "most requests any one source sent to this target"),
    Column("source_targets", "int64", "most distinct targets (protocol, destination, port) any source "
                                      "of this row sent one or two requests to (a scanner's fan-out)"),
    Column("data_pct", "float64", "TCP: share of connections that carried data after the SYN (either "
                                  "way); UDP: share of requests answered by a UDP datagram (an "
                                  "application's reply); NaN for ICMP"),
    Column("payload_len_median", "float64", "median L4 payload bytes of the requests (SYN data for TCP, "
                                            "echo data for ICMP)"),
    Column("payload_lengths", "int32", "distinct request payload lengths"),
    Column("tool", "object", "prober fingerprint (probekit.fingerprint's tool) when a fingerprints "
                             "table was given; several joined by '/'; <NA> otherwise"),
    Column("decided_by", "category", "rule or user (a user override)"),
    Column("evidence", "object", "the rule that decided the kind, in words, with the numbers"),
)
STREAM_COLUMNS = tuple(c.name for c in STREAMS)

OTHER_TRAFFIC: tuple[Column, ...] = (
    Column("kind", "category", "stream kind (client, scan, other) or, for packets in no stream, what "
                               "they are: arp, dns, ntp, udp, icmp, tcp, ip, non-ip"),
    Column("talkers", "int64", "distinct addresses taking part"),
    Column("top_talkers", "object", "the busiest address pairs, 'a > b (n)', up to three"),
    Column("packets", "int64", "frames"),
    Column("bytes", "int64", "wire bytes (wirelen)"),
    Column("first_ns", "Int64", "first frame, ns since the epoch"),
    Column("last_ns", "Int64", "last frame, ns since the epoch"),
)


DATAGRAM_REASONS = ("complete", "conflict", "incomplete", "timeout", "overlap", "multiple_tails", "beyond_end",
                    "bad_length")
"""``reason`` of a datagram: complete (reassembled), conflict (complete under overlap='first', but
overlapping fragments disagreed: the first bytes won), incomplete (fragments missing when the capture
ended), timeout (fragments missing when the reassembly timeout ran out), overlap (fragments overlap:
discarded, RFC 5722 for IPv6 / Linux for IPv4), multiple_tails (two last fragments with different ends),
beyond_end (a fragment past the end the last fragment set), bad_length (a non-last fragment whose length
is not a multiple of 8, or a fragment with no data or a negative length)."""

DATAGRAMS: tuple[Column, ...] = (
    Column("datagram", "int64", "datagram number, 0-based, in order of its first fragment"),
    Column("l3", "category", "ipv4 or ipv6"),
    Column("src", "category", "source address"),
    Column("dst", "category", "destination address"),
    Column("ip_proto", "UInt8", "protocol of the reassembled payload (from the offset-0 fragment; <NA> "
                                "without it)"),
    Column("ip_id", "UInt32", "IPv4 identification / IPv6 fragment identification"),
    Column("first_frame", "int64", "frame of the first fragment to arrive"),
    Column("offset0_frame", "Int64", "frame of the offset-0 fragment (its row carries the L4 header)"),
    Column("last_frame", "int64", "frame that completed the datagram (tshark's reassembled_in), or the "
                                  "last fragment seen"),
    Column("first_ts_ns", "int64", "first fragment's time, ns since the epoch"),
    Column("last_ts_ns", "int64", "last_frame's time: when the datagram became whole"),
    Column("fragments", "int32", "fragments used"),
    Column("dropped", "int32", "fragments of this datagram not used (duplicates, overlaps)"),
    Column("payload_len", "Int32", "reassembled IP payload bytes (the last fragment's end); <NA> when the "
                                   "last fragment never came"),
    Column("received_len", "int32", "IP payload bytes received (the union of the fragments)"),
    Column("complete", "bool", "every byte from 0 to payload_len arrived, and nothing was discarded"),
    Column("reason", "category", "one of " + ", ".join(DATAGRAM_REASONS)),
    Column("note", "object", "what went wrong, with frames and byte ranges ('' when complete)"),
)
DATAGRAM_COLUMNS = tuple(c.name for c in DATAGRAMS)


ERROR_OUTCOMES = ("unreachable", "ttl_exceeded", "frag_needed", "packet_too_big", "param_problem")
"""Probe outcomes an ICMP/ICMPv6 error gives (beside OUTCOMES): unreachable (ICMP type 3 except code 4,
ICMPv6 type 1; ``code`` says net, host, port, protocol, admin_prohibited ...), ttl_exceeded (ICMP 11 /
ICMPv6 3), frag_needed (ICMP 3 code 4, with the next-hop MTU), packet_too_big (ICMPv6 2, with the MTU),
param_problem (ICMP 12 / ICMPv6 4). All count as lost in the metrics."""

QUOTED_COLUMNS = ("quoted_src", "quoted_dst", "quoted_proto", "quoted_sport", "quoted_dport", "quoted_icmp_id",
                  "quoted_icmp_seq", "quoted_tcp_seq")
"""Packets-table columns (the decoder's) with the header quoted inside an ICMP/ICMPv6 error; with
``icmp_mtu`` (next-hop MTU of frag-needed / packet-too-big). Error attribution needs them."""

ICMP_ERRORS: tuple[Column, ...] = (
    Column("error_frame", "int64", "frame of the ICMP/ICMPv6 error"),
    Column("ts_ns", "int64", "its time, ns since the epoch"),
    Column("reporter", "category", "who sent the error (a router on the path, a firewall, the target)"),
    Column("icmp_type", "UInt8", "ICMP or ICMPv6 type"),
    Column("icmp_code", "UInt8", "ICMP or ICMPv6 code"),
    Column("outcome", "category", "one of " + ", ".join(ERROR_OUTCOMES)),
    Column("code", "category", "the code by name: net, host, protocol, port, frag_needed, admin_prohibited, "
                               "net_prohibited, host_prohibited, no_route, beyond_scope, address, source_policy, "
                               "reject_route, ttl, reassembly, too_big, pointer, ..., or code_N"),
    Column("mtu", "UInt32", "next-hop MTU named by frag_needed / packet_too_big (<NA> otherwise, or "
                            "without the icmp_mtu column)"),
    Column("protocol", "category", "quoted packet's protocol: icmp, icmpv6, tcp, udp (or ip_N)"),
    Column("source", "category", "quoted packet's source: the prober, when it quotes a probe"),
    Column("destination", "category", "quoted packet's destination"),
    Column("port", "UInt16", "quoted TCP/UDP destination port"),
    Column("ident", "UInt32", "quoted echo identifier, or TCP/UDP source port"),
    Column("seq", "UInt32", "quoted echo sequence number, or TCP sequence number"),
    Column("request_frame", "Int64", "the probe it answers (probes table's request_frame); <NA> if none"),
    Column("error_after_us", "float64", "error time - request time, µs"),
    Column("note", "object", "why it was not attributed ('' when it was)"),
)

PROBE_ERRORS: tuple[Column, ...] = (
    Column("request_frame", "int64", "the probe (probes table key)"),
    Column("outcome", "category", "one of " + ", ".join(ERROR_OUTCOMES) + " (the first error)"),
    Column("code", "category", "the first error's code by name (see ICMP_ERRORS)"),
    Column("reporter", "category", "who sent the first error"),
    Column("mtu", "UInt32", "MTU named by a frag_needed / packet_too_big error"),
    Column("error_frame", "int64", "frame of the first error"),
    Column("error_after_us", "float64", "first error time - request time, µs"),
    Column("errors", "int32", "errors quoting this probe"),
)


PATH_KINDS = ("fits", "fragments", "black_hole", "frag_needed", "packet_too_big", "unknown")
"""``path`` of the MTU table: fits (every size passed whole), fragments (sizes above the MTU crossed in
fragments), black_hole (sizes above some limit vanish with no error), frag_needed / packet_too_big (the
path answers oversize probes with the ICMP / ICMPv6 error naming the MTU), unknown (size does not decide
the outcome, e.g. every size lost)."""

MTU_SIZES: tuple[Column, ...] = (
    Column("protocol", "category", "stream key"),
    Column("destination", "category", "stream key"),
    Column("port", "UInt16", "stream key (<NA> for ICMP)"),
    Column("size", "Int32", "probe size (ICMP message / TCP segment bytes)"),
    Column("ip_len", "Int32", "IP packet bytes of that size (size + 20 for IPv4, + 40 for IPv6)"),
    Column("first_ns", "int64", "first probe of this size"),
    Column("last_ns", "int64", "last probe of this size"),
    Column("sent", "int64", "probes of this size (outcome unknown excluded)"),
    Column("answered", "int64", "answered or refused"),
    Column("lost", "int64", "lost or late with no ICMP error"),
    Column("too_big", "int64", "answered by frag_needed / packet_too_big"),
    Column("other_errors", "int64", "answered by another ICMP error (unreachable, ttl_exceeded, ...)"),
    Column("fragmented", "int64", "probes whose request or reply crossed in fragments"),
    Column("mtu", "UInt32", "MTU named by the too-big errors (the most common value)"),
    Column("verdict", "category", "pass (some answered), fail (none answered of >= min_probes), or few"),
)

MTU: tuple[Column, ...] = (
    Column("protocol", "category", "stream key"),
    Column("destination", "category", "stream key"),
    Column("port", "UInt16", "stream key (<NA> for ICMP)"),
    Column("sizes", "int32", "distinct probe sizes seen"),
    Column("largest_pass", "Int32", "largest size answered"),
    Column("smallest_fail", "Int32", "smallest size above largest_pass that was never answered"),
    Column("path", "category", "one of " + ", ".join(PATH_KINDS)),
    Column("mtu", "UInt32", "the path MTU in IP bytes: named by the routers' errors, or the largest "
                            "fragment of a fragmenting path; <NA> when only bounds are known"),
    Column("mtu_low", "UInt32", "the MTU is at least this (IP bytes of largest_pass, or of the largest fragment)"),
    Column("mtu_high", "UInt32", "the MTU is below this (IP bytes of smallest_fail); <NA> when nothing failed"),
    Column("reporters", "object", "who sent the too-big errors, comma-separated"),
    Column("evidence", "object", "what decided the path, in words"),
)


def empty_packets() -> pd.DataFrame:
    """A packets table with no rows and the right dtypes."""
    cols = {}
    for c in PACKETS:
        if c.name in CODED:
            cols[c.name] = pd.Categorical([], categories=pd.Index([], dtype=CODED[c.name]))
        elif c.dtype == "category":
            cats = {"l3": L3_KINDS, "tunnel": TUNNEL_KINDS}.get(c.name, [])
            cols[c.name] = pd.Categorical([], categories=list(cats))
        else:
            cols[c.name] = pd.Series([], dtype=c.dtype)
    return pd.DataFrame(cols)


# ============================================================================== the table registry
# name -> (columns, one-line doc). Adding a table: declare its Column tuple above (in your section)
# and add one entry here; tests/test_tables.py parametrizes over this registry.
TABLES: dict[str, tuple[tuple[Column, ...], str]] = {
    "packets": (PACKETS, "One row per frame: `probekit.read_capture`."),
    "probes": (PROBES, "One row per probe: `probekit.match_probes` / `df.probekit.probes()`."),
    "periods": (PERIODS, "One row per stream (or source stream) and period: `probekit.period_metrics`."),
    "inter_arrivals": (INTER_ARRIVALS, "Each probe with the time since the previous one: `probekit.inter_arrivals`."),
    "timing_summary": (TIMING_SUMMARY, "Rate, jitter, period, bursts and gaps per group: `probekit.timing_summary`."),
    "gaps": (GAPS, "Stretches without probes: `probekit.find_gaps`."),
    "source_shares": (SOURCE_SHARES, "Probes per source within each stream: `probekit.source_shares`."),
    "balance": (BALANCE, "Chi-square test of an even split over the sources: `probekit.balance_test`."),
    "alternation": (ALTERNATION, "How the sources take turns: `probekit.alternation`."),
    "source_rate": (SOURCE_RATE, "Probes per source per period: `probekit.source_rate`."),
    "source_quality": (SOURCE_QUALITY, "Loss and RTT per source over the capture: `probekit.source_quality`."),
    "size_changes": (SIZE_CHANGES, "Change points of the probe size: `probekit.size_changes`."),
    "orphans": (ORPHANS, "Replies without a request: `match_probes(..., keep_orphans=True)[1]`."),
    "connections": (CONNECTIONS, "TCP, UDP and ICMP connections as Zeek's conn.log: `probekit.connections`."),
    "payload_tests": (PAYLOAD_TESTS, "Per request payload: entropy, NIST tests, timestamp, fill: `probekit.payload_tests`."),
    "payload_verdicts": (PAYLOAD_VERDICTS, "Payload randomness verdict per stream: `probekit.payload_verdicts`."),
    "fingerprints": (FINGERPRINTS, "Which tool sent each source stream, with evidence: `probekit.fingerprint`."),
    "cloudwatch": (CLOUDWATCH, "CloudWatch's own datapoints, from any export format: `probekit.read_cloudwatch`."),
    "audit": (AUDIT, "CloudWatch's periods beside the capture's, with a finding each: `probekit.audit_cloudwatch`."),
    "audit_summary": (AUDIT_SUMMARY, "One row per probe: the audit's findings counted."),
    "streams": (STREAMS, "Every candidate stream with its evidence and kind (probe, client, scan, other): `probekit.streams`."),
    "other_traffic": (OTHER_TRAFFIC, "What is not a probe stream, summarised: `probekit.other_traffic`."),
    "datagrams": (DATAGRAMS, "IPv4/IPv6 fragments reassembled into datagrams: `probekit.datagrams`."),
    "icmp_errors": (ICMP_ERRORS, "ICMP/ICMPv6 errors with what they quote: `probekit.icmp_errors`."),
    "probe_errors": (PROBE_ERRORS, "Each probe that drew an ICMP error, with outcome, code and reporter."),
    "mtu_sizes": (MTU_SIZES, "Probe size against outcome per stream: `probekit.mtu_sizes`."),
    "mtu": (MTU, "The path MTU per stream: largest size that passes, smallest that fails: `probekit.path_mtu`."),
    "truth": (TRUTH, "Ground truth of a synthetic capture / the live prober's results CSV: "
                     "`probekit.synth.read_truth`."),
}


def sparse_at(values: np.ndarray, rows: np.ndarray, n: int, dtype: str) -> pd.arrays.SparseArray:
    """A sparse column of ``n`` rows (one of the packets table's Sparse dtypes) holding ``values`` at the
    increasing positions ``rows``, the fill value elsewhere, built without a dense copy. The index is a
    block index (8 bytes per run of filled rows) where that is smaller than an integer index (4 bytes
    per filled row): a mirrored capture's columns filled on every row cost only their values."""
    dt = pd.api.types.pandas_dtype(dtype)
    rows = np.asarray(rows, dtype=np.int32)
    runs = int(np.count_nonzero(np.diff(rows) != 1)) + 1 if rows.size else 0
    kind = "block" if 2 * runs < rows.size else "integer"
    values = np.asarray(values, dtype=dt.subtype)
    if hasattr(pd.arrays.SparseArray, "from_indices"):
        return pd.arrays.SparseArray.from_indices(values, rows, n, fill_value=dt.fill_value, kind=kind,
                                                  dtype=dt.subtype)
    from pandas._libs.sparse import BlockIndex, IntIndex  # pandas < 3.1
    if kind == "block":
        starts = np.flatnonzero(np.diff(rows, prepend=-2) != 1)
        lengths = np.diff(np.append(starts, rows.size))
        index = BlockIndex(n, rows[starts].astype(np.int32), lengths.astype(np.int32))
    else:
        index = IntIndex(n, rows)
    return pd.arrays.SparseArray(values, sparse_index=index, dtype=dt)


def coded(values: np.ndarray, rows: np.ndarray, n: int, name: str) -> pd.Categorical:
    """A dictionary-coded number column (see CODED) of ``n`` rows: ``values`` at ``rows``, <NA> elsewhere."""
    sub = CODED[name]
    v = np.asarray(values).astype(sub, copy=False)
    if v.size and v.dtype.itemsize == 1:    # uint8: a lookup table instead of a hash
        seen = np.bincount(v, minlength=256)
        uniq = np.flatnonzero(seen).astype(sub)
        lut = np.zeros(256, np.int32)
        lut[uniq] = np.arange(uniq.size, dtype=np.int32)
        inv = lut[v]
    else:
        uniq, inv = factorize_sorted(v)
    ct = np.int8 if uniq.size < 127 else np.int32
    if rows.size == n:
        codes = inv.astype(ct)
    else:
        codes = np.full(n, -1, ct)
        codes[rows] = inv
    return pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(pd.Index(uniq, dtype=sub)))


def factorize_sorted(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique keys and each key's code (int32). One or two distinct keys (a mirror session's
    addresses, a tunnel id) are found by a min/max look; more by a hash factorize, sorting only the uniques."""
    if keys.size:
        lo, hi = keys.min(), keys.max()
        if lo == hi:
            return keys[:1].copy(), np.zeros(keys.size, np.int32)
        probe = keys[::997]
        if ((probe == lo) | (probe == hi)).all():     # a cheap look first, then the whole array
            is_hi = keys == hi
            if (is_hi | (keys == lo)).all():
                return np.array([lo, hi], dtype=keys.dtype), is_hi.astype(np.int32)
    codes, uniques = pd.factorize(keys, sort=False)
    uniques = np.asarray(uniques, dtype=keys.dtype)
    order = np.argsort(uniques, kind="stable")
    rank = np.empty(order.size, np.int32)
    rank[order] = np.arange(order.size, dtype=np.int32)
    return uniques[order], rank[codes]


def _is_sparse(dtype: str) -> bool:
    return dtype.startswith("Sparse[")


def packets_for_storage(df: pd.DataFrame) -> pd.DataFrame:
    """The packets table with its sparse columns made dense (float64 / object with NaN, bool, uint8), for
    Arrow and Parquet, which cannot hold pandas sparse data; :func:`packets_from_storage` restores them."""
    sparse = [c.name for c in PACKETS if _is_sparse(c.dtype) and c.name in df.columns]
    if not sparse:
        return df
    out = df.copy(deep=False)
    for c in sparse:
        if isinstance(out[c].dtype, pd.SparseDtype):
            out[c] = out[c].sparse.to_dense()
    return out


def packets_from_storage(df: pd.DataFrame) -> pd.DataFrame:
    """Inverse of :func:`packets_for_storage` (in place): the sparse and categorical columns' dtypes back."""
    for c in PACKETS:
        if c.name not in df.columns:
            continue
        col = df[c.name]
        if _is_sparse(c.dtype) and str(col.dtype) != c.dtype:
            dt = pd.api.types.pandas_dtype(c.dtype)
            if c.dtype == SPARSE_TEXT:
                col = col.astype(object)
            elif c.dtype in (SPARSE_FLAG, SPARSE_COUNT):
                col = col.fillna(dt.fill_value)
            v = col.to_numpy(dtype=object if c.dtype == SPARSE_TEXT else dt.subtype, na_value=np.nan)
            rows = np.flatnonzero(pd.notna(v) if c.dtype in (SPARSE, SPARSE_TEXT) else v != dt.fill_value)
            df[c.name] = sparse_at(v[rows], rows, len(v), c.dtype)
        elif c.name in CODED and not (isinstance(col.dtype, pd.CategoricalDtype)
                                      and col.cat.categories.dtype == CODED[c.name]):
            v = pd.to_numeric(col.astype(object), errors="coerce").to_numpy(np.float64)
            rows = np.flatnonzero(~np.isnan(v))
            df[c.name] = coded(v[rows], rows, len(v), c.name)
        elif c.dtype == "category" and not isinstance(col.dtype, pd.CategoricalDtype):
            df[c.name] = col.astype("category")   # an all-null categorical comes back from Parquet as object
    return df


def check_packets(df: pd.DataFrame) -> None:
    """Raise AssertionError if ``df`` does not follow the schema (used by tests and backends)."""
    assert tuple(df.columns) == PACKET_COLUMNS, f"columns differ: {list(df.columns)}"
    for c in PACKETS:
        got = str(df[c.name].dtype)
        assert got == c.dtype, f"{c.name}: dtype {got}, schema says {c.dtype}"



def check_table(df: pd.DataFrame, columns: tuple[Column, ...]) -> None:
    """Raise AssertionError unless ``df`` has exactly ``columns``, in order, with their dtypes; only
    ``optional`` columns (grouping keys chosen with ``by``) may be absent."""
    want = [c for c in columns if c.name in df.columns]
    missing = [c.name for c in columns if c.name not in df.columns and not c.optional]
    assert not missing, f"columns missing: {missing}"
    assert [c.name for c in want] == list(df.columns), f"columns differ: {list(df.columns)}"
    for c in want:
        assert str(df[c.name].dtype) == c.dtype, f"{c.name}: dtype {df[c.name].dtype}, schema says {c.dtype}"


def empty_table(columns: tuple[Column, ...], by=None) -> pd.DataFrame:
    """A table with no rows and the declared dtypes (optional keys kept only if in ``by``)."""
    keep = [c for c in columns if not c.optional or by is None or c.name in by]
    data = {}
    for c in keep:
        if c.dtype == "category":
            data[c.name] = pd.Categorical([])
        else:
            data[c.name] = pd.Series([], dtype=c.dtype)
    return pd.DataFrame(data)


_NULLABLE_INTS = ("UInt8", "UInt16", "UInt32", "UInt64", "Int8", "Int16", "Int32", "Int64")


def typed(df: pd.DataFrame, columns: tuple[Column, ...], categories: dict | None = None,
          negative_na: tuple[str, ...] = ()) -> pd.DataFrame:
    """``df`` cast to the declared columns, in their order (the one cast every producer of a small table
    uses). A declared column that ``df`` lacks is all missing. ``object`` columns hold None for missing;
    ``category`` columns take their categories from ``categories[name]`` when given (else from the
    values, or kept if already categorical); nullable integer columns take <NA> for missing values
    (and for negative ones in the ``negative_na`` columns: "-1 means none" in a kernel's output)."""
    categories = categories or {}
    n = len(df)
    out = {}
    for c in columns:
        v = df[c.name] if c.name in df else pd.Series([None] * n, index=df.index, dtype=object)
        if c.dtype == "object":
            out[c.name] = v.astype(object).where(v.notna(), None)
        elif c.dtype == "category":
            cats = categories.get(c.name)
            if cats is None and isinstance(v.dtype, pd.CategoricalDtype):
                out[c.name] = v
            else:
                vals = v.astype(object).where(v.notna(), None)
                out[c.name] = pd.Series(pd.Categorical(vals, categories=None if cats is None else list(cats)),
                                        index=df.index)
        elif c.dtype in _NULLABLE_INTS:
            if not n:
                f = np.zeros(0)
            elif v.dtype == object:
                f = pd.to_numeric(v, errors="coerce").to_numpy("float64", na_value=np.nan)
            else:
                f = v.to_numpy("float64", na_value=np.nan)
            if c.name in negative_na:
                f = np.where(f < 0, np.nan, f)
            missing = np.isnan(f)
            arr = pd.array(np.where(missing, 0, f).astype("int64"), dtype=c.dtype)
            arr[missing] = pd.NA
            out[c.name] = pd.Series(arr, index=df.index)
        else:
            out[c.name] = v.astype(c.dtype)
    return pd.DataFrame(out, index=df.index)


def markdown(columns: tuple[Column, ...] = PACKETS) -> str:
    """The table's documentation as Markdown rows (docs/packets-table.md embeds this verbatim)."""
    rows = ["| column | dtype | meaning |", "|---|---|---|"]
    note = " (optional: present only where the text says)"
    rows += [f"| `{c.name}` | {c.dtype} | {c.doc}{note if c.optional and not c.doc.startswith('stream key') else ''} |"
             for c in columns]
    return "\n".join(rows) + "\n"


def tables_markdown() -> str:
    """docs/tables.md: every registered table, generated from this module (a test keeps it current)."""
    out = ["# probekit's tables", "",
           "Generated from `probekit/schema.py` by `python -m probekit.schema --all > docs/tables.md`; "
           "tests/test_tables.py fails when this file is out of date. Units are in the column names "
           "(`_s`, `_ms`, `_us`, `_ns`, `_pct`, `_per_s`); integer columns that do not apply are <NA>.", ""]
    for name, (columns, doc) in TABLES.items():
        out += [f"## {name}", "", doc, "", markdown(columns)]
    return "\n".join(out)


if __name__ == "__main__":  # pragma: no cover
    import sys
    arg = (sys.argv[1:] or ["packets"])[0]
    print(tables_markdown() if arg == "--all" else markdown(TABLES[arg][0]), end="")
