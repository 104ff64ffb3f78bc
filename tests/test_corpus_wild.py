"""Every capture in ../shared/captures-wild (1,734 files from nine projects) against its tshark oracle.

Per file: the frame count, timestamps, lengths, the outermost addresses (tshark's first ``ip.*`` /
``ipv6.*``), inner addresses where tshark shows them (a tunnel of the other family: 6in4, Teredo, ...),
protocol, ports, TCP flags and sequence numbers, ICMP type/code/id/seq, and that every frame where
tshark finds an IP header has one in probekit's row too. The comparison is vectorised (one pass of
column operations per file) so the whole corpus runs in a minute or two.

What tshark's first occurrence (``-E occurrence=f``) is, in probekit's columns: the first IPv4 (IPv6)
header of the frame is the outermost one (``outer_*``, tunnelled rows), else the packet's own (``src``),
else the header an ICMP error quotes (``quoted_*``); a field the outer layers lack comes from an inner
one (``tcp.srcport`` of an ICMP port-unreachable is the quoted datagram's). Where a difference is on
purpose or tshark's own mistake, it is listed below with its reason — by rule (RULES: a predicate over
the frames) or by file (KNOWN) — and a listed difference that no longer occurs fails, so the lists
stay true.
"""
from __future__ import annotations

import os
import warnings

import numpy as np
import pandas as pd
import pytest

import probekit
from conftest import SHARED

WILD = SHARED / "captures-wild"
ORACLE = WILD / "oracle"


def _index() -> list[tuple[str, str]]:
    p = WILD / "INDEX.tsv"
    if not p.is_file():
        return []
    rows = [ln.split("\t") for ln in p.read_text().splitlines()[1:] if ln.strip()]
    return [(r[0], r[6]) for r in rows]


FILES = _index()
KIND = dict(FILES)
UDP_TUNNELS = ("vxlan", "geneve", "gtpu", "teredo", "ayiya")
TUNNEL_PROTO = {"vxlan": 17, "geneve": 17, "gtpu": 17, "teredo": 17, "ayiya": 17, "gre": 47, "erspan": 47, "ipip": 4,
                "6in4": 41, "ip6ip6": 41}
FIELDS = ["frame.time_epoch", "frame.len", "frame.cap_len", "frame.interface_id", "ip.src", "ip.dst",
          "ipv6.src", "ipv6.dst", "ip.proto", "ipv6.nxt", "icmp.type", "icmp.code", "icmp.ident", "icmp.seq",
          "icmpv6.type", "tcp.srcport", "tcp.dstport", "tcp.flags", "tcp.seq", "tcp.ack", "udp.srcport",
          "udp.dstport", "ip_found"]


def require_wild() -> None:
    if WILD.is_dir() and FILES:
        return
    msg = f"the captures-wild corpus is not at {WILD} (set PROBEKIT_SHARED to the folder holding it)"
    if os.environ.get("CI"):
        pytest.fail("CI must have ../shared: " + msg)
    pytest.skip(msg)


# ------------------------------------------------------------------------------- the oracle side
def load_oracle(rel: str) -> tuple[int, pd.DataFrame, pd.Series]:
    stem = ORACLE / rel
    rc = int((stem.parent / (stem.name + ".rc")).read_text().strip() or 0)
    tsv = stem.parent / (stem.name + ".tsv")
    if not tsv.is_file() or tsv.stat().st_size == 0:
        return rc, pd.DataFrame(columns=["frame.number"] + FIELDS[:-1], dtype=str), pd.Series([], dtype=str)
    ts = pd.read_csv(tsv, sep="\t", dtype=str, keep_default_na=False, quoting=3)
    pp = stem.parent / (stem.name + ".protocols.tsv")
    protos = (pd.read_csv(pp, sep="\t", dtype=str, keep_default_na=False, quoting=3)["frame.protocols"]
              if pp.is_file() and pp.stat().st_size else pd.Series([""] * len(ts)))
    return rc, ts, protos


def _first(s: pd.Series) -> pd.Series:
    return s.str.split(",", n=1).str[0]


def _ints(s: pd.Series) -> np.ndarray:
    """tshark's decimal or 0x-hex text → float array (NaN for empty)."""
    s = _first(s)
    out = np.full(len(s), np.nan)
    hexa = s.str.startswith("0x").to_numpy()
    dec = (~hexa) & (s != "").to_numpy()
    if dec.any():
        out[dec] = pd.to_numeric(s[dec], errors="coerce").to_numpy(dtype=float)
    if hexa.any():
        out[hexa] = [int(v, 16) for v in s[hexa]]
    return out


def _epoch_ns(s: pd.Series) -> np.ndarray:
    """'sec.fraction' → exact integer ns (object array of Python ints, None for empty)."""
    from decimal import Decimal
    return np.array([int(Decimal(v) * 1_000_000_000) if v else None for v in s], dtype=object)


# ------------------------------------------------------------------------------- probekit's side
def _text(c: pd.Series) -> np.ndarray:
    return c.astype(object).where(c.notna(), "").astype(str).to_numpy()


def _num(c: pd.Series) -> np.ndarray:
    return c.astype("float64").to_numpy(dtype=float, na_value=np.nan) if c.dtype != float else c.to_numpy()


def expected(df: pd.DataFrame) -> dict[str, np.ndarray]:
    """What tshark's first-occurrence fields should read for each row; None entries = not checkable."""
    n = len(df)
    depth = df["tunnel_depth"].to_numpy()
    tun = df["tunnel"].astype(str).to_numpy()
    osrc, odst = _text(df["outer_src"]), _text(df["outer_dst"])
    src, dst = _text(df["src"]), _text(df["dst"])
    qsrc, qdst = _text(df["quoted_src"]), _text(df["quoted_dst"])
    l3 = df["l3"].astype(str).to_numpy()
    proto = _num(df["ip_proto"])
    qproto = _num(df["quoted_proto"])
    out: dict[str, np.ndarray] = {}
    unknown = np.zeros(n, bool)
    fam_outer = np.where(np.char.find(osrc.astype(str), ":") >= 0, "ipv6", np.where(osrc != "", "ipv4", ""))
    fam_q = np.where(np.char.find(qsrc.astype(str), ":") >= 0, "ipv6", np.where(qsrc != "", "ipv4", ""))
    for fam, key in (("ipv4", "ip"), ("ipv6", "ipv6")):
        s = np.full(n, "", object)
        d = np.full(n, "", object)
        pr = np.full(n, np.nan)
        unk = np.zeros(n, bool)
        # quoted header (lowest priority), then the packet's own, then the outermost
        mq = fam_q == fam
        s[mq], d[mq] = qsrc[mq], qdst[mq]
        pr[mq] = qproto[mq]
        mo = (l3 == fam)
        s[mo], d[mo] = src[mo], dst[mo]
        pr[mo] = proto[mo]
        # a tunnel from the other family with more than one level: an intermediate header may be first
        unk |= (depth >= 2) & (fam_outer != fam)
        mt = (depth >= 1) & (fam_outer == fam)
        s[mt], d[mt] = osrc[mt], odst[mt]
        pr[mt] = [TUNNEL_PROTO[t] for t in tun[mt]]
        s[unk] = None
        d[unk] = None
        pr[unk] = np.nan
        out[key + ".src"], out[key + ".dst"] = s, d
        if key == "ip":
            out["ip.proto"] = pr
            out["_ip_unknown"] = unk
        else:
            nxt = pr.copy()
            plain = mo & (depth == 0) & (_num(df["ip_hdr_len"]) == 40)
            nxt[~plain] = np.nan   # after extension headers ip_proto is the last next-header
            out["ipv6.nxt"] = nxt
            out["_nxt_checked"] = plain
    del unknown
    own_icmp4 = (l3 == "ipv4") & (proto == 1)
    own_icmp6 = (l3 == "ipv6") & (proto == 58)
    out["icmp.type"] = np.where(own_icmp4, _num(df["icmp_type"]), np.nan)
    out["icmp.code"] = np.where(own_icmp4, _num(df["icmp_code"]), np.nan)
    out["icmpv6.type"] = np.where(own_icmp6, _num(df["icmp_type"]), np.nan)
    qicmp = own_icmp4 & (qproto == 1)
    out["icmp.ident"] = np.where(own_icmp4, _num(df["icmp_id"]), np.nan)
    out["icmp.seq"] = np.where(own_icmp4, _num(df["icmp_seq"]), np.nan)
    fill = qicmp & np.isnan(out["icmp.ident"])
    out["icmp.ident"][fill] = _num(df["quoted_icmp_id"])[fill]
    out["icmp.seq"][fill] = _num(df["quoted_icmp_seq"])[fill]
    own_tcp = (proto == 6) & np.isin(l3, ["ipv4", "ipv6"])
    own_udp = (proto == 17) & np.isin(l3, ["ipv4", "ipv6"])
    q_tcp = ~own_tcp & (qproto == 6)
    q_udp = ~own_udp & (qproto == 17)
    sport, dport = _num(df["sport"]), _num(df["dport"])
    qs, qd = _num(df["quoted_sport"]), _num(df["quoted_dport"])
    out["tcp.srcport"] = np.where(own_tcp, sport, np.where(q_tcp, qs, np.nan))
    out["tcp.dstport"] = np.where(own_tcp, dport, np.where(q_tcp, qd, np.nan))
    out["tcp.flags"] = np.where(own_tcp, _num(df["tcp_flags"]), np.nan)
    out["tcp.seq"] = np.where(own_tcp, _num(df["tcp_seq"]), np.where(q_tcp, _num(df["quoted_tcp_seq"]), np.nan))
    out["tcp.ack"] = np.where(own_tcp, _num(df["tcp_ack"]), np.nan)
    udp_outer = np.isin(tun, UDP_TUNNELS) | (depth >= 2)       # outer UDP ports are not kept
    out["udp.srcport"] = np.where(own_udp, sport, np.where(q_udp, qs, np.nan))
    out["udp.dstport"] = np.where(own_udp, dport, np.where(q_udp, qd, np.nan))
    out["_udp_unknown"] = udp_outer
    out["ip_found"] = (np.isin(l3, ["ipv4", "ipv6"]) & ((src != "") | (dst != ""))) | (osrc != "")
    return out


def compare(df: pd.DataFrame, ts: pd.DataFrame) -> dict[str, np.ndarray]:
    """field -> boolean array of frames that differ (vectorised)."""
    if len(df) != len(ts):
        return {"frame count": np.array([True])}
    e = expected(df)
    diff: dict[str, np.ndarray] = {}
    tns = _epoch_ns(ts["frame.time_epoch"])
    ours_ts = df["ts_ns"].astype(object).where(df["ts_ns"].notna(), None).to_numpy()
    diff["frame.time_epoch"] = ours_ts != tns
    diff["frame.len"] = df["wirelen"].to_numpy() != _ints(ts["frame.len"])
    diff["frame.cap_len"] = df["caplen"].to_numpy() != _ints(ts["frame.cap_len"])
    itf = _ints(ts["frame.interface_id"])
    diff["frame.interface_id"] = ~np.isnan(itf) & (df["iface"].to_numpy() != itf)
    for f in ("ip.src", "ip.dst", "ipv6.src", "ipv6.dst"):
        theirs = _first(ts[f]).to_numpy()
        if f.startswith("ipv6"):
            theirs = np.array([_canon6(v) for v in theirs], object)
        ours = e[f]
        known = np.array([v is not None for v in ours], dtype=bool)
        diff[f] = known & (ours != theirs).astype(bool)
    for f in ("ip.proto", "ipv6.nxt", "icmp.type", "icmp.code", "icmp.ident", "icmp.seq", "icmpv6.type",
              "tcp.srcport", "tcp.dstport", "tcp.flags", "tcp.seq", "tcp.ack", "udp.srcport", "udp.dstport"):
        theirs = _ints(ts[f])
        ours = e[f]
        d = ~((ours == theirs) | (np.isnan(ours) & np.isnan(theirs)))
        if f == "ip.proto":
            d &= ~e["_ip_unknown"]
        if f == "ipv6.nxt":
            d &= e["_nxt_checked"]
        if f.startswith("udp."):
            d &= ~e["_udp_unknown"]
        diff[f] = d
    tshark_ip = ((_first(ts["ip.src"]) != "") | (_first(ts["ipv6.src"]) != "")).to_numpy()
    diff["ip_found"] = tshark_ip & ~e["ip_found"]
    return diff


def _canon6(v: str) -> str:
    import socket
    if not v:
        return v
    try:
        return socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, v))
    except OSError:
        return v


# ------------------------------------------------------------------------------- the listed differences
L4_FIELDS = ("icmp.type", "icmp.code", "icmp.ident", "icmp.seq", "icmpv6.type", "tcp.srcport", "tcp.dstport",
             "tcp.flags", "tcp.seq", "tcp.ack", "udp.srcport", "udp.dstport")
HDR_FIELDS = ("ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "ip.proto", "ipv6.nxt", "ip_found") + L4_FIELDS
# encapsulations and payload samples tshark opens and probekit (on purpose) does not: their inner headers
# appear in tshark's fields where probekit has none
NOT_OPENED = ("l2tp", "pim", "sflow", "openflow", "nhrp", "gtpprime", "udp:mpls", "ipv6.routing:eth", "avsp",
              "juniper", "6lowpan", "user_dlt", "ipcomp", "erf", "cisco-wids", "aruba_erm", "peekremote")

# (name, fields it explains, predicate over (df, protocols) -> frames, reason)
RULES = [
    ("offload", HDR_FIELDS, lambda df, pr: df["offload"].to_numpy(),
     "segmentation-offload super-frame or IPv6 jumbogram (IP length 0): probekit takes the captured length, as "
     "Zeek does, and decodes on (tunnels included); tshark stops at the zero length"),
    ("ipv4-ah", L4_FIELDS, lambda df, pr: pr.str.contains(r":ip:ah(?::|$)").to_numpy(),
     "IPv4 with an Authentication Header (protocol 51): tshark decodes through it; probekit's IPv4 row stops "
     "at protocol 51 (in IPv6, AH is an extension header and is walked)"),
    ("not-opened", HDR_FIELDS, lambda df, pr: pr.str.contains("|".join(NOT_OPENED)).to_numpy(),
     "tshark opens an encapsulation or payload sample probekit does not decode (L2TP, PIM register, sFlow, "
     "OpenFlow, NHRP, GTP', MPLS over UDP, SRv6 Ethernet, Arista/Juniper headers, 6LoWPAN, ...)"),
    ("quoted-tcp", ("tcp.flags", "tcp.ack"), lambda df, pr: (_num(df["quoted_proto"]) == 6),
     "ICMP errors quoting TCP: probekit keeps the quoted ports and sequence number (quoted_*), not the quoted "
     "flags or acknowledgement"),
    ("extended-echo", ("icmp.ident", "icmp.seq"), lambda df, pr: np.isin(_num(df["icmp_type"]), [42, 43]),
     "RFC 8335 extended echo (ICMP 42/43) is not an echo type of probekit's icmp_id/icmp_seq (schema)"),
]

# rel -> {field: reason}: differences of one file, each with its reason
_SECTIONS = "a file of several pcapng sections: probekit numbers interfaces across sections (schema: iface), " \
            "tshark 4.0 restarts at 0 in each section"
_SUNATM = ("SunATM: tshark strips the 4-byte pseudo-header from frame.len/frame.cap_len; probekit reports the "
           "record's lengths")
_USEC = "µs field >= 10^6: tshark overflows usec*1000 in 32 bits (README); probekit computes sec*10^9 + usec*10^3"
_ICMP3 = ("an ICMP message of fewer than 4 bytes (IPv4 total length says so): probekit shows its type and code, "
          "tshark shows none")
KNOWN: dict[str, dict[str, str]] = {
    "google__gopacket/pcapgo/tests/be/test201.pcapng": {"frame.interface_id": _SECTIONS},
    "google__gopacket/pcapgo/tests/be/test202.pcapng": {"frame.interface_id": _SECTIONS},
    "google__gopacket/pcapgo/tests/le/test201.pcapng": {"frame.interface_id": _SECTIONS},
    "the-tcpdump-group__tcpdump/tests/atm-heapoverflow.pcap": {"frame.len": _SUNATM, "frame.cap_len": _SUNATM},
    "the-tcpdump-group__tcpdump/tests/atm-oam-heapoverflow.pcap": {"frame.len": _SUNATM, "frame.cap_len": _SUNATM},
    "the-tcpdump-group__tcpdump/tests/atm-oam-loopback-print-overrun.pcap": {
        "frame.len": _SUNATM, "frame.cap_len": _SUNATM, "frame.time_epoch": _USEC},
    "the-tcpdump-group__tcpdump/tests/rx_serviceid_oobr.pcap": {"frame.time_epoch": _USEC},
    "the-tcpdump-group__tcpdump/tests/icmp-icmp_print-oobr-1.pcap": {"icmp.type": _ICMP3, "icmp.code": _ICMP3},
    "the-tcpdump-group__tcpdump/tests/icmp-icmp_print-oobr-2.pcap": {"icmp.type": _ICMP3, "icmp.code": _ICMP3},
    "the-tcpdump-group__tcpdump/tests/ipv4_invalid_total_length_2.pcap": {
        "ip.src": "total length below the header length: probekit shows the captured header fields, flagged "
                  "malformed; tshark drops the header", "ip.dst": "same frame", "ip.proto": "same frame"},
    "the-tcpdump-group__tcpdump/tests/various_gre.pcap": {
        f: "Cisco MetaData (0x8909) inside GRE is laid out unlike its Ethernet form; probekit decodes it only "
           "after an Ethernet header" for f in ("icmp.type", "icmp.code", "icmp.ident", "icmp.seq")},
    "the-tcpdump-group__tcpdump/tests/wccp_redirect_gre.pcap": {
        f: "GRE protocol 0x883E (WCCP redirect header) is not opened" for f in
        ("tcp.srcport", "tcp.dstport", "tcp.flags", "tcp.seq", "tcp.ack")},
    "compressed/zeek__zeek/testing/btest/Traces/trunc/mpls-6in6-broken.pcap.gz": {
        f: "a fuzzed trace (Zeek's trunc/ test): after a label stack of dozens of labels, the bottom label is "
           "followed by a first nibble 0, which probekit takes as an RFC 4385 pseudowire control word and then "
           "Ethernet (so it finds an IPv4 header), while tshark's MPLS heuristic tries IPv6 and shows data"
        for f in ("ip.src", "ip.dst", "ip.proto")},
    "zeek__zeek/testing/btest/Traces/icmp/icmp6-redirect-hdr-opt.pcap": {
        "udp.srcport": "the packet an ICMPv6 redirect's option carries: probekit quotes the headers of errors "
                       "(types 1-4) only", "udp.dstport": "same frame"},
    "zeek__zeek/testing/btest/Traces/ipv6-mobility-dst-opts.pcap": {
        "udp.srcport": "destination options with a Home Address option: probekit follows the header's next "
                       "header (UDP); tshark stops after the options", "udp.dstport": "same frame"},
}
# files probekit may refuse (CaptureError), with the reason; a listed file that reads is compared as usual
MAY_REFUSE = {
    "the-tcpdump-group__libpcap/tests/pcap-invalid-version-2.pcap":
        "pcap version 2.5 (libpcap's own test file: libpcap refuses it too)",
    "the-tcpdump-group__libpcap/tests/pcapng-invalid-vers-2.pcapng":
        "pcapng version 1.1 (libpcap's own test file: libpcap refuses it too)",
}


def check_file(rel: str):
    """(status, {field: frames not explained by a rule}, rc, oracle, table)."""
    rc, ts, protos = load_oracle(rel)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", probekit.CaptureWarning)
        try:
            df = probekit.read_capture(WILD / rel)
        except probekit.CaptureError as e:
            return f"refused: {e.reason}", {}, rc, ts, None
    if KIND.get(rel, "").endswith("pcapng") and len(ts) > len(df):
        # tshark 4.0 lists pcapng custom blocks as frames: rows without an interface id
        keep = (ts["frame.interface_id"] != "").to_numpy()
        ts, protos = ts[keep].reset_index(drop=True), protos[keep].reset_index(drop=True)
    if len(ts) == 0 and rc != 0 and "unknown or unsupported" in _stderr(rel):
        return "read", {}, rc, ts, df          # tshark cannot read this link type: nothing to compare
    diffs = compare(df, ts)
    if "frame count" in diffs:
        return "read", {"frame count": np.array([len(df), len(ts)])}, rc, ts, df
    pr = protos.reindex(range(len(df)), fill_value="").astype(str)
    out = {}
    for field, bad in diffs.items():
        for _name, fields, pred, _reason in RULES:
            if field in fields:
                bad = bad & ~np.asarray(pred(df, pr), dtype=bool)
        if bad.any():
            out[field] = np.flatnonzero(bad) + 1
    return "read", out, rc, ts, df


def _stderr(rel: str) -> str:
    p = ORACLE / (rel + ".stderr")
    return p.read_text(errors="replace") if p.is_file() else ""


def test_wild_corpus_present_and_complete():
    require_wild()
    assert len(FILES) == 1734, f"INDEX.tsv lists 1,734 captures, found {len(FILES)}"
    assert set(KNOWN) | set(MAY_REFUSE) <= set(KIND)


@pytest.mark.parametrize("rel", [f for f, _k in FILES] or ["<corpus absent>"])
def test_matches_tshark(rel):
    require_wild()
    status, diffs, rc, ts, df = check_file(rel)
    if status != "read":
        assert rel in MAY_REFUSE or KIND[rel].startswith("gzip:"), f"{rel}: {status}"
        return
    expected = KNOWN.get(rel, {})
    unexpected = {k: v[:5].tolist() for k, v in diffs.items() if k not in expected}
    assert not unexpected, f"differences from tshark (field: first frames): {unexpected}"
    stale = set(expected) - set(diffs)
    assert not stale, f"listed differences no longer occur: {sorted(stale)}"


if __name__ == "__main__":  # a summary for maintaining the lists: python tests/test_corpus_wild.py
    import collections
    import sys
    tally = collections.Counter()
    files = collections.defaultdict(list)
    for rel, _kind in FILES:
        status, diffs, rc, ts, df = check_file(rel)
        if status != "read":
            tally["refused"] += 1
            files["refused"].append((rel, status, rc))
            continue
        for k, v in diffs.items():
            tally[k] += 1
            files[k].append((rel, len(v), list(v[:3])))
    print(tally)
    for k in sys.argv[1:]:
        for x in files[k]:
            print(k, *x)
