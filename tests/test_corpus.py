"""Every capture in ../shared/captures-real against its oracle: tshark's field dumps for readable
files, libpcap's expected errors for the malformed ones. Each place probekit differs from tshark on
purpose is listed below with its reason; a listed difference that no longer occurs fails too, so
the list stays true."""
from __future__ import annotations

import re
import warnings

import pytest

import probekit
from helpers.corpus import ORACLE, REAL, REFUSED, real_captures, require_real_captures
from helpers.oracle import compare, load_tshark

# rel path -> {field: reason}. Fields are those of oracle.compare ("ts_ns", "ip.src", "tcp.len", ...).
KNOWN_DIFFERENCES: dict[str, dict[str, str]] = {
    "libpcap/pcapng-tsresol-bin-overflow.pcapng": {
        "ts_ns": "if_tsresol 2^-63 with raw 2^63-1 is 0.99999999989 s: probekit scales exactly (999999999 ns); "
                 "tshark 4.0 overflows and prints 1 ns"},
    "tcpdump/LINKTYPE_IPV6_invalid.pcap": {
        "ip.src": "LINKTYPE_IPV6 carrying an IPv4 header: probekit decodes by the version nibble and flags the "
                  "frame malformed; tshark decodes nothing",
        "ip.dst": "same frame", "ip.proto": "same frame", "udp.length": "same frame"},
    "tcpdump/ipv4_invalid_hdr_length.pcap": {
        "ip.src": "IHL below 5: probekit keeps the fixed header's addresses and flags the frame malformed; "
                  "tshark drops them as a bogus header",
        "ip.dst": "same frame", "ip.proto": "same frame"},
    "zeek/trunc/ipv4-internally-truncated-header.pcap": {
        "ip.dst": "destination bytes are captured; tshark stops at the bad total length before showing it"},
    "zeek/trunc/ipv4-truncated-broken-header.pcap": {
        "ip.src": "header fields are all captured but inconsistent: probekit shows them, flagged malformed; "
                  "tshark shows none", "ip.dst": "same frame", "ip.proto": "same frame"},
    "tcpdump/timestamp_invalid_micro.pcap": {
        "ts_ns": "µs field >= 10^6: probekit computes sec·10^9 + frac·10^3 as written; tshark prints the "
                 "fraction unnormalised ('.1000000000') or drops it"},
    "tcpdump/timestamp_invalid_nano.pcap": {
        "ts_ns": "ns field >= 10^9: probekit computes sec·10^9 + frac as written; tshark prints it "
                 "unnormalised or negative"},
    "zeek/communityid/icmp6.pcap": {
        "udp.length": "ICMPv6 errors quote the offending datagram: tshark reports the quoted UDP header, "
                      "probekit only the frame's own (outer) headers"},
    "zeek/ipv4/fragmented-1.pcap": {
        "udp.length": "tshark reassembles IPv4 fragments and reports UDP on the last fragment; probekit reports "
                      "each frame's own headers (UDP on the first fragment only)"},
    "zeek/ipv4/fragmented-2.pcap": {"udp.length": "reassembly, as fragmented-1"},
    "zeek/ipv4/fragmented-3.pcap": {
        "tcp.srcport": "reassembly: TCP on the first fragment here, on the last in tshark",
        "tcp.dstport": "same", "tcp.flags": "same", "tcp.seq": "same", "tcp.ack": "same", "tcp.len": "same"},
    "zeek/ipv4/fragmented-4.pcap": {
        "tcp.srcport": "reassembly, as fragmented-3", "tcp.dstport": "same", "tcp.flags": "same",
        "tcp.seq": "same (and relative numbering follows the frames tshark attributes TCP to)",
        "tcp.ack": "same", "tcp.len": "same"},
    "zeek/ipv4/fragmented-syn.pcap": {
        "tcp.srcport": "reassembly, as fragmented-3", "tcp.dstport": "same", "tcp.flags": "same",
        "tcp.seq": "same", "tcp.ack": "same", "tcp.len": "same"},
    "zeek/ipv6-fragmented-dns.pcap": {"udp.length": "IPv6 reassembly, as fragmented-1"},
    "zeek/tcp/rst-inject-rae.pcap": {
        "tcp.seq": "tshark re-bases its relative numbers when the SYN/ACK follows an injected RST; the raw "
                   "numbers agree with tshark's tcp.seq_raw (test_backends)", "tcp.ack": "same"},
    "zeek/tcp/truncated-header.pcap": {
        "tcp.len": "TCP header cut by the snap length: probekit leaves the payload length unknown (<NA>), "
                   "tshark says 0"},
}
# rel path -> (frames tshark lists that are not packets, reason)
NOT_PACKETS = {
    "pcapng-test-generator/output_le/difficult/test202.pcapng":
        ({1, 7, 10}, "tshark 4.0 lists the three pcapng custom blocks (CB/DCB) as frames; they hold no packet"),
}
# libpcap refuses these, probekit reads them, with the reason
READ_DESPITE_LIBPCAP = {
    "libpcap/pcapng-no-idb.pcapng": "a section with no interfaces and no packets is a valid, empty capture "
                                    "in the pcapng spec (test002.pcapng has the same shape and tshark reads "
                                    "both); probekit returns an empty table with a note",
}
# Files cut inside a record: salvaged with a warning (tshark also stops with an error)
CUT = {"dpkt/truncated_dns_2.pcap": 1}

CAPTURES = real_captures()


def _libpcap_errors() -> dict[str, str]:
    out = {}
    for line in (ORACLE / "libpcap" / "TESTrun-errstr.tsv").read_text().splitlines():
        name, _, err = line.partition("\t")
        out[name] = err
    return out


def test_corpus_present_and_complete():
    require_real_captures()
    assert len(CAPTURES) == 100, f"INDEX.md lists 100 captures, found {len(CAPTURES)}"
    listed = set(KNOWN_DIFFERENCES) | set(NOT_PACKETS) | set(REFUSED) | set(READ_DESPITE_LIBPCAP) | set(CUT)
    assert listed <= set(CAPTURES), listed - set(CAPTURES)


@pytest.mark.parametrize("rel", [c for c in CAPTURES if c not in REFUSED])
def test_matches_tshark(rel):
    rc, ts = load_tshark(ORACLE, rel)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = probekit.read_capture(REAL / rel)
    salvage = [w for w in caught if issubclass(w.category, probekit.CaptureWarning)]
    if rel in CUT:
        assert rc != 0, "tshark stops with an error on a cut file"
        assert len(df) == CUT[rel] and len(salvage) == 1
        assert "byte offset" in str(salvage[0].message) and str(REAL / rel) in str(salvage[0].message)
    else:
        assert rc == 0 or rel in READ_DESPITE_LIBPCAP, f"tshark refused {rel} (rc={rc})"
        assert not salvage, [str(w.message) for w in salvage]
    if rel in NOT_PACKETS:
        drop, _reason = NOT_PACKETS[rel]
        ts = ts[~ts["frame.number"].astype(int).isin(drop)].reset_index(drop=True)
    diffs = compare(df, ts)
    expected = KNOWN_DIFFERENCES.get(rel, {})
    seen = {re.match(r"frame \d+ (\S+):", d).group(1) for d in diffs if d.startswith("frame ")}
    unexpected = [d for d in diffs if not d.startswith("frame ") or d.split()[2].rstrip(":") not in expected]
    assert not unexpected, unexpected[:10]
    stale = set(expected) - seen
    assert not stale, f"listed differences no longer occur: {sorted(stale)}"


@pytest.mark.parametrize("rel", sorted(REFUSED))
def test_refused_like_libpcap(rel):
    errs = _libpcap_errors()
    assert rel.split("/")[-1] in errs, "each refusal is backed by libpcap's expected error"
    offset, pattern = REFUSED[rel]
    with pytest.raises(probekit.CaptureError) as ei:
        probekit.read_capture(REAL / rel)
    e = ei.value
    assert e.path == str(REAL / rel) and e.offset == offset, (e.path, e.offset)
    assert re.search(pattern, e.reason), e.reason
    assert str(e).startswith(f"{REAL / rel}: byte offset {offset}: ")


def test_no_idb_is_an_empty_capture():
    rel = "libpcap/pcapng-no-idb.pcapng"
    require_real_captures()
    assert rel.split("/")[-1] in _libpcap_errors()
    df = probekit.read_capture(REAL / rel)
    assert len(df) == 0 and df.attrs["interfaces"] == [] and "no interface" in df.attrs["notes"][0]
    probekit.schema.check_packets(df)


@pytest.mark.parametrize("rel", ["dpkt/truncated_dns_2.pcap"])
def test_strict_raises_on_cut_file(rel):
    require_real_captures()
    with pytest.raises(probekit.CaptureError, match=r"byte offset 240: file ends inside a record"):
        probekit.read_capture(REAL / rel, strict=True)
