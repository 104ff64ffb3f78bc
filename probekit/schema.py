"""The packets table: column names, dtypes and meaning, defined once.

Every reader backend produces exactly these columns in this order; docs/packets-table.md is checked
against this module by the tests. Integer columns that do not apply to a frame are <NA> (pandas
nullable dtypes), never 0. Addresses are categoricals shared by ``src`` and ``dst``.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

__all__ = ["Column", "PACKETS", "PACKET_COLUMNS", "L3_KINDS", "TCP_FLAGS", "empty_packets", "STREAM_KEYS",
           "SOURCE_STREAM_KEYS", "TABLES", "check_table", "empty_table", "tables_markdown"]


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
    Column("status", "category", "one of " + ", ".join(PERIOD_STATUS)),
)


# ============================================================================ analysis tables (seams)
# The tables of timing, sources, sizes, matching and the truth sidecars. Grouping keys are optional
# columns: an analysis grouped ``by`` STREAM_KEYS has no ``source`` column.
def _keys(source: bool = True) -> tuple[Column, ...]:
    cols = (Column("protocol", "category", "stream key: icmp, icmpv6 or tcp", optional=True),)
    if source:
        cols += (Column("source", "category", "stream key: prober address (the ENI)", optional=True),)
    return cols + (Column("destination", "category", "stream key: target address", optional=True),
                   Column("port", "UInt16", "stream key: TCP destination port (<NA> for ICMP)", optional=True))


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
    Column("protocol", "str", "icmp, icmpv6 or tcp"),
    Column("source", "str", "prober address the reply went to"),
    Column("destination", "str", "target address it came from"),
    Column("ident", "int64", "ICMP identifier or the prober's TCP port"),
    Column("port", "Int64", "TCP target port; <NA> for ICMP"),
    Column("seq", "int64", "ICMP sequence number, or the ISN the reply acknowledges (ack - 1)"),
    Column("ts_ns", "int64", "reply time, ns since the epoch"),
    Column("frame", "int64", "reply frame number"),
    Column("kind", "int64", "0 echo reply, 1 SYN/ACK, 2 RST/ACK (probekit.protocol.REPLY_KINDS)"),
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
)
"""The truth sidecar (``CAPTURE.truth.csv``) of a synthetic capture and the live prober's results CSV."""
TRUTH_COLUMNS = tuple(c.name for c in TRUTH)


def empty_packets() -> pd.DataFrame:
    """A packets table with no rows and the right dtypes."""
    cols = {}
    for c in PACKETS:
        if c.dtype == "category":
            cols[c.name] = pd.Categorical([], categories=(L3_KINDS if c.name == "l3" else []))
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
    "truth": (TRUTH, "Ground truth of a synthetic capture / the live prober's results CSV: "
                     "`probekit.synth.read_truth`."),
}


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


def markdown(columns: tuple[Column, ...] = PACKETS) -> str:
    """The table's documentation as Markdown rows (docs/packets-table.md embeds this verbatim)."""
    rows = ["| column | dtype | meaning |", "|---|---|---|"]
    rows += [f"| `{c.name}` | {c.dtype} | {c.doc}{' (grouping key, present when grouped by it)' if c.optional and not c.doc.startswith('stream key') else ''} |"
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
