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
    Column("community_id", "str", "Community ID v1 flow hash (only with community_id=True)"),
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
    print(markdown({"packets": PACKETS, "probes": PROBES, "periods": PERIODS, "connections": CONNECTIONS}[(sys.argv[1:] or ["packets"])[0]]),
          end="")
