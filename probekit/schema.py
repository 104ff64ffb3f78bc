"""The packets table: column names, dtypes and meaning, defined once.

Every reader backend produces exactly these columns in this order; docs/packets-table.md is checked
against this module by the tests. Integer columns that do not apply to a frame are <NA> (pandas
nullable dtypes), never 0. Addresses are categoricals shared by ``src`` and ``dst``.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

__all__ = ["Column", "PACKETS", "PACKET_COLUMNS", "L3_KINDS", "TCP_FLAGS", "empty_packets", "STREAM_KEYS",
           "SOURCE_STREAM_KEYS"]


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str
    doc: str


STREAM_KEYS = ("protocol", "destination", "port")
"""A *stream*: every probe of one monitored target (what CloudWatch calls a probe), all sources together."""
SOURCE_STREAM_KEYS = ("protocol", "source", "destination", "port")
"""A *source stream*: one stream as sent from one source address (one ENI)."""

L3_KINDS = ("ipv4", "ipv6", "arp", "other", "none")
"""Values of ``l3``: what the link layer carried ('arp' covers ARP and RARP; 'other': a known link
layer with another protocol;
'none': nothing decodable, e.g. an unknown link type or a frame too short for its link header)."""

TCP_FLAGS = {"FIN": 0x001, "SYN": 0x002, "RST": 0x004, "PSH": 0x008, "ACK": 0x010, "URG": 0x020,
             "ECE": 0x040, "CWR": 0x080, "AE": 0x100}
"""Bits of ``tcp_flags`` (the 12-bit field after the data offset, as tshark's ``tcp.flags``)."""

PACKETS: tuple[Column, ...] = (
    Column("frame", "int64", "frame number, 1-based, in file order (tshark's frame.number)"),
    Column("iface", "int32", "interface id: pcapng IDB index counted across sections; 0 for pcap"),
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
    Column("malformed", "bool", "a header is inconsistent (bad IHL, lengths, version vs link type, ...)"),
)

PACKET_COLUMNS = tuple(c.name for c in PACKETS)

OUTCOMES = ("answered", "refused", "late", "lost", "unknown")
"""Values of a probe's ``outcome``: answered (echo reply / SYN-ACK within the timeout), refused (RST/ACK
within the timeout: the port is closed, yet the path works), late (a reply after the timeout: lost for
the metrics), lost (no reply in the capture), unknown (the capture ended before the timeout ran out)."""

PROBES: tuple[Column, ...] = (
    Column("ts_ns", "int64", "request time at the capture point, ns since the epoch"),
    Column("protocol", "category", "icmp, icmpv6 or tcp"),
    Column("source", "category", "prober address (the ENI)"),
    Column("destination", "category", "target address"),
    Column("port", "UInt16", "TCP destination port; <NA> for ICMP"),
    Column("size", "Int32", "probe size: ICMP message or TCP segment bytes (IP total length - IP header)"),
    Column("ident", "UInt32", "ICMP echo identifier, or the TCP source port"),
    Column("seq", "UInt32", "ICMP echo sequence number, or the TCP initial sequence number"),
    Column("outcome", "category", "one of " + ", ".join(OUTCOMES)),
    Column("rtt_us", "float64", "reply time - request time in µs, for answered/refused probes; NaN "
                                "otherwise (never 0 for no reply). At the target's side of the path "
                                "this is the target's turnaround"),
    Column("reply_delay_us", "float64", "reply time - request time for any reply, late ones included"),
    Column("request_frame", "int64", "frame number of the request (the first one, if re-sent)"),
    Column("reply_frame", "Int64", "frame number of the first reply"),
    Column("reset_frame", "Int64", "frame number of the prober's RST after the SYN/ACK (TCP)"),
    Column("reset_after_us", "float64", "prober's RST time - SYN/ACK time, µs (TCP)"),
    Column("retransmits", "int32", "further requests with the same identity (re-sent SYNs, repeated echo)"),
    Column("extra_replies", "int32", "replies after the first (duplicates, re-sent SYN/ACKs)"),
)
PROBE_COLUMNS = tuple(c.name for c in PROBES)

PERIOD_STATUS = ("ok", "loss", "no_reply", "no_probes")
"""``status`` of a period: ok (every probe answered), loss (some lost), no_reply (probes sent, none
answered: 100 % loss), no_probes (nothing sent: no data, metrics NaN, never 0 % loss)."""

PERIODS: tuple[Column, ...] = (
    Column("protocol", "category", "stream key (columns present depend on ``by``)"),
    Column("source", "category", "stream key: prober address (absent when aggregated over sources)"),
    Column("destination", "category", "stream key"),
    Column("port", "UInt16", "stream key (<NA> for ICMP)"),
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
    Column("status", "category", "one of " + ", ".join(PERIOD_STATUS)),
)


# ------------------------------------------------------------------------ forensics (issue 13)
STREAM_KINDS = ("probe", "client", "scan", "other")
"""``kind`` of a stream: probe (a monitor's regular probing, whatever tool), client (connections that
carry data: browsers, ssh, API clients), scan (one or two requests per target across many targets from
one source), other (anything else). The rules are in docs/streams.md."""

STREAMS: tuple[Column, ...] = (
    Column("protocol", "category", "icmp, icmpv6, tcp (udp: traceroute-style probes, once matched)"),
    Column("destination", "category", "target address"),
    Column("port", "UInt16", "TCP/UDP destination port; <NA> for ICMP"),
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
                                  "way); NaN for ICMP/UDP"),
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
        if c.dtype == "category":
            cols[c.name] = pd.Categorical([], categories=(L3_KINDS if c.name == "l3" else []))
        else:
            cols[c.name] = pd.Series([], dtype=c.dtype)
    return pd.DataFrame(cols)


def check_packets(df: pd.DataFrame) -> None:
    """Raise AssertionError if ``df`` does not follow the schema (used by tests and backends)."""
    assert tuple(df.columns) == PACKET_COLUMNS, f"columns differ: {list(df.columns)}"
    for c in PACKETS:
        got = str(df[c.name].dtype)
        assert got == c.dtype, f"{c.name}: dtype {got}, schema says {c.dtype}"



def check_table(df: pd.DataFrame, columns: tuple[Column, ...]) -> None:
    """Raise AssertionError unless ``df`` has ``columns`` (in order; PERIODS' optional keys may be absent)."""
    want = [c for c in columns if c.name in df.columns]
    assert [c.name for c in want] == list(df.columns), f"columns differ: {list(df.columns)}"
    for c in want:
        assert str(df[c.name].dtype) == c.dtype, f"{c.name}: dtype {df[c.name].dtype}, schema says {c.dtype}"


def markdown(columns: tuple[Column, ...] = PACKETS) -> str:
    """The table's documentation as Markdown rows (docs/packets-table.md embeds this verbatim)."""
    rows = ["| column | dtype | meaning |", "|---|---|---|"]
    rows += [f"| `{c.name}` | {c.dtype} | {c.doc} |" for c in columns]
    return "\n".join(rows) + "\n"


if __name__ == "__main__":  # pragma: no cover
    import sys
    print(markdown({"packets": PACKETS, "probes": PROBES, "periods": PERIODS}[(sys.argv[1:] or ["packets"])[0]]),
          end="")
