"""Fragment reassembly against real tshark (ip.reassembled / ipv6.reassembled) on the real fragment files,
and on hand-built fragment chains (out of order, duplicated, overlapping, never complete, timed out)."""
from __future__ import annotations

import os
import shutil
import struct
import subprocess

import numpy as np
import pandas as pd
import pytest

import probekit
import reference_datagrams as ref
from conftest import ROOT, SHARED, require_real_captures
from helpers.capwriter import pcap
from probekit.analysis import datagrams as dgm
from probekit.analysis.datagrams import (
    datagram_fragments,
    datagram_payloads,
    datagrams,
    fragment_rows,
    matcher_view,
    reassembled_packets,
)
from probekit.schema import DATAGRAMS, check_table

REAL_FILES = ["zeek/ipv4/fragmented-1.pcap", "zeek/ipv4/fragmented-2.pcap", "zeek/ipv4/fragmented-3.pcap",
              "zeek/ipv4/fragmented-4.pcap", "zeek/ipv4/fragmented-syn.pcap", "zeek/ipv6-fragmented-dns.pcap",
              "tcpdump/ipv6_frag6_negative_len.pcap"]
WILD_FILES = ["arkime__arkime/tests/pcap/socks5-http-302-frag.pcap", "appneta__tcpreplay/test/test_fragroute.pcap",
              "the-tcpdump-group__tcpdump/tests/ip6_frag_asan.pcap",
              "zeek__zeek/testing/btest/Traces/ipv6-http-atomic-frag.pcap"]
# Where the default (RFC 5722 / Linux) policy refuses what tshark reassembles, and why:
RFC_REFUSES = {"zeek/ipv4/fragmented-1.pcap": "beyond_end",   # frame 3 (0-304) runs past the last fragment's end 164
               "zeek/ipv4/fragmented-4.pcap": "overlap"}      # frame 5 (24-72) partly overlaps frame 3 (48-72)


def _tshark() -> str:
    path = shutil.which("tshark")
    if path is None:
        msg = "tshark is not installed"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def tshark_reassembled(path) -> set[tuple[int, int, int]]:
    """(frame that completed it, reassembled length, fragment count) of every datagram tshark reassembles."""
    fields = ["frame.number", "ip.reassembled.length", "ip.fragment.count", "ipv6.reassembled.length",
              "ipv6.fragment.count"]
    cmd = [_tshark(), "-n", "-r", str(path), "-o", "ip.defragment:TRUE", "-o", "ipv6.defragment:TRUE",
           "-T", "fields", "-E", "separator=|", "-E", "occurrence=f"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
    got = set()
    for line in out.splitlines():
        fr, l4, c4, l6, c6 = (line.split("|") + [""] * 5)[:5]
        if l4 or l6:
            got.add((int(fr), int(l4 or l6), int(c4 or c6)))
    return got


def ours(df, overlap):
    d = datagrams(df, overlap=overlap)
    check_table(d, DATAGRAMS)
    # tshark's fragment count includes the duplicates it saw: compare with every fragment we took in
    return d, {(int(r.last_frame), int(r.payload_len), int(r.fragments + r.dropped))
               for r in d[d["complete"]].itertuples()}


def _corpus(rel):
    if rel in REAL_FILES:
        return require_real_captures() / rel
    wild = SHARED / "captures-wild"
    if not wild.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"CI must have {wild}")
        pytest.skip(f"the wild-capture corpus is not at {wild}")
    return wild / rel


@pytest.mark.parametrize("rel", REAL_FILES + WILD_FILES)
def test_first_wins_policy_reassembles_what_tshark_does(rel):
    path = _corpus(rel)
    df = probekit.read_capture(path)
    _, got = ours(df, "first")
    assert got == tshark_reassembled(path)


@pytest.mark.parametrize("rel", REAL_FILES + WILD_FILES)
def test_rfc_policy_agrees_with_tshark_or_names_the_reason(rel):
    path = _corpus(rel)
    df = probekit.read_capture(path)
    d, got = ours(df, "rfc")
    want = tshark_reassembled(path)
    if rel in RFC_REFUSES:
        assert not got and want
        row = d[d["last_frame"] == max(f for f, _, _ in want)]
        assert list(row["reason"]) == [RFC_REFUSES[rel]] and row["note"].iloc[0]
    else:
        assert got == want
    # every datagram that did not complete says why, in words
    bad = d[~d["complete"]]
    assert (bad["note"].str.len() > 0).all()


def test_named_reasons_on_the_real_bad_files():
    real = require_real_captures()
    d = datagrams(probekit.read_capture(real / "tcpdump/ipv6_frag6_negative_len.pcap"))
    assert list(d["reason"]) == ["bad_length"] and "negative length" in d["note"].iloc[0]
    d = datagrams(probekit.read_capture(real / "zeek/ipv4/fragmented-3.pcap"))
    assert list(d["reason"]) == ["incomplete"] and d["payload_len"].isna().all()
    assert "the last fragment never came" in d["note"].iloc[0]
    d = datagrams(probekit.read_capture(real / "zeek/ipv6-fragmented-dns.pcap"))
    assert list(d["reason"]) == ["incomplete", "complete"]
    d1 = datagrams(probekit.read_capture(real / "zeek/ipv4/fragmented-1.pcap"), overlap="first")
    assert list(d1["reason"]) == ["conflict"]       # tshark flags ip.fragment.overlap.conflict there too


# ------------------------------------------------------------------------- hand-built fragment chains
def _ip4(src, dst, ident, off, mf, data, proto=17, ttl=64):
    flags = (0x2000 if mf else 0) | (off // 8)
    hdr = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(data), ident, flags, ttl, proto, 0,
                      bytes(map(int, src.split("."))), bytes(map(int, dst.split("."))))
    return hdr + data


def _ip6(ident, off, mf, data, nh=17):
    src = bytes.fromhex("20010db8000000000000000000000001")
    dst = bytes.fromhex("20010db8000000000000000000000002")
    frag = struct.pack(">BBHI", nh, 0, (off & 0xFFF8) | (1 if mf else 0), ident)
    return struct.pack(">IHBB16s16s", 0x60000000, 8 + len(data), 44, 64, src, dst) + frag + data


def _udp(payload: bytes, sport=5000, dport=6000) -> bytes:
    return struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload


def _write(tmp_path, name, packets, linktype=228):
    p = tmp_path / name
    p.write_bytes(pcap([(1_700_000_000 + int(t), int(round((t % 1) * 1e6)), b) for t, b in packets],
                       linktype=linktype))
    return p


def _chain(datagram: bytes, cuts):
    return [(a, datagram[a:b], b < len(datagram)) for a, b in zip(cuts[:-1], cuts[1:])]


def test_out_of_order_and_duplicates_reassemble_like_tshark(tmp_path):
    body = _udp(bytes(range(256)) * 4)              # 1032 bytes
    frags = _chain(body, [0, 256, 512, 768, len(body)])
    order = [3, 1, 1, 0, 2]                         # last first, a duplicate, the head late
    pk = [(i * 0.001, _ip4("192.0.2.1", "192.0.2.2", 77, *frags[k][:1], frags[k][2], frags[k][1]))
          for i, k in enumerate(order)]
    path = _write(tmp_path, "ooo.pcap", pk)
    df = probekit.read_capture(path)
    for policy in ("rfc", "first"):
        d, got = ours(df, policy)
        assert got == tshark_reassembled(path) == {(5, len(body), 5)}   # 4 used + the duplicate
        assert int(d["dropped"].iloc[0]) == 1 and d["first_frame"].iloc[0] == 1
        assert int(d["offset0_frame"].iloc[0]) == 4 and int(d["ip_proto"].iloc[0]) == 17
    # every fragment's data is found in the file: the offset-0 one from its L4 header, the later ones
    # (no L4 header, no payload_off) by the frame index and their IP header's fields
    assert dgm._fragment_data(df, np.array([3, 0]))[0] == body[:256]
    assert dgm._fragment_data(df, np.array([0]))[0] == body[768:]
    assert datagram_payloads(df).iloc[0] == body


def test_disagreeing_overlap_is_a_note_not_an_exception(tmp_path):
    body = _udp(b"A" * 200)
    # a second offset-0 fragment with other bytes: both are located, so the disagreement is seen
    evil = _udp(b"B" * 200)
    pk = [(0.0, _ip4("192.0.2.1", "192.0.2.2", 9, 0, True, body[:104])),
          (0.001, _ip4("192.0.2.1", "192.0.2.2", 9, 0, True, evil[:104])),
          (0.002, _ip4("192.0.2.1", "192.0.2.2", 9, 104, False, body[104:]))]
    df = probekit.read_capture(_write(tmp_path, "ovl.pcap", pk))
    d = datagrams(df, overlap="first")
    assert list(d["reason"]) == ["conflict"] and bool(d["complete"].iloc[0])
    d = datagrams(df)       # Linux: a fragment inside received bytes is a duplicate; first wins
    assert list(d["reason"]) == ["complete"] and int(d["dropped"].iloc[0]) == 1


def test_ipv6_overlap_discards_the_datagram_rfc5722(tmp_path):
    body = _udp(bytes(300))
    pk = [(0.0, _ip6(5, 0, True, body[:160])), (0.001, _ip6(5, 80, True, body[80:240])),
          (0.002, _ip6(5, 240, False, body[240:]))]
    df = probekit.read_capture(_write(tmp_path, "ovl6.pcap", pk, linktype=229))
    d = datagrams(df)
    assert d["reason"].iloc[0] == "overlap" and "RFC 5722" in d["note"].iloc[0]
    # the last fragment, after the discard, starts a datagram of its own that never completes
    assert len(d) == 2 and d["reason"].iloc[1] == "incomplete"
    d = datagrams(df, overlap="first")
    assert list(d["reason"]) == ["complete"] and int(d["payload_len"].iloc[0]) == len(body)
    # an exact duplicate is dropped, not an overlap (RFC 8200 4.5)
    pk = [pk[0], pk[0], (0.002, _ip6(5, 160, False, body[160:]))]
    d = datagrams(probekit.read_capture(_write(tmp_path, "dup6.pcap", pk, linktype=229)))
    assert list(d["reason"]) == ["complete"] and int(d["dropped"].iloc[0]) == 1


def test_never_completes_and_timeout(tmp_path):
    body = _udp(bytes(400))
    head = _ip4("192.0.2.1", "192.0.2.2", 3, 0, True, body[:200])
    tail = _ip4("192.0.2.1", "192.0.2.2", 3, 200, False, body[200:])
    other = _ip4("192.0.2.1", "192.0.2.9", 1, 0, False, _udp(b"x"))
    # head, then the tail 40 s later (past Linux's 30 s), then the capture goes on
    df = probekit.read_capture(_write(tmp_path, "tmo.pcap", [(0.0, head), (40.0, tail), (100.0, other)]))
    d = datagrams(df)
    assert list(d["reason"]) == ["timeout", "timeout"] and not d["complete"].any()
    assert "timeout ran out" in d["note"].iloc[0]
    assert list(datagrams(df, timeout_s=60)["reason"]) == ["complete"]
    # the capture ends 5 s after a lone head: incomplete, not timed out
    df = probekit.read_capture(_write(tmp_path, "end.pcap", [(0.0, head), (5.0, other)]))
    assert list(datagrams(df)["reason"]) == ["incomplete"]


def test_reassembled_packets_one_row_per_datagram(tmp_path):
    body = _udp(bytes(1000))
    pk = [(0.0, _ip4("192.0.2.1", "192.0.2.2", 8, 0, True, body[:504])),
          (0.5, _ip4("192.0.2.1", "192.0.2.2", 8, 504, False, body[504:])),
          (1.0, _ip4("192.0.2.1", "192.0.2.2", 9, 0, True, body[:504]))]     # never completes
    df = probekit.read_capture(_write(tmp_path, "rp.pcap", pk))
    r = reassembled_packets(df)
    assert list(r["frame"]) == [1]
    assert int(r["ts_ns"].iloc[0]) == int(df["ts_ns"].iloc[1])       # whole when the last fragment came
    assert int(r["ip_len"].iloc[0]) == 20 + len(body) and int(r["payload_len"].iloc[0]) == len(body) - 8
    assert not bool(r["ip_mf"].iloc[0])


def test_kernel_equals_plain_python(tmp_path):
    rng = np.random.default_rng(3)
    n = 400
    grp = np.sort(rng.integers(0, 40, n)).astype(np.int64)
    ts = np.cumsum(rng.integers(1, 10**9, n)).astype(np.int64)
    start = (rng.integers(0, 20, n) * 8).astype(np.int64)
    start[rng.random(n) < 0.03] = 65528 - 40                      # near the end: some reach past 65535
    end = start + (rng.integers(0, 6, n) * 8 + rng.integers(0, 2, n) * 3).astype(np.int64)
    last = rng.random(n) < 0.3
    v6 = rng.random(n) < 0.5
    tmo = np.full(n, 5 * 10**9, np.int64)
    cut = (rng.random(n) < 0.5) & v6 & (start == 0)
    frame = np.arange(1, n + 1, dtype=np.int64)
    hdr = np.where(v6, 48, 20).astype(np.int64)
    for policy in (0, 1):
        a = dgm._reassemble(grp, ts, start, end, last, v6, cut, hdr, frame, tmo, policy, int(ts[-1]))
        b = ref._reassemble(grp, ts, start, end, last, v6, cut, hdr, tmo, policy, int(ts[-1]))   # plain Python
        for x, y in zip(a[:14], b):
            np.testing.assert_array_equal(x, y)
        assert set(np.unique(a[8])) > {dgm.R_COMPLETE}         # the random chains hit several reasons
        if policy == 0:
            assert a[13].any()                                   # and discarded header-cut first fragments


def test_no_fragments_is_an_empty_table():
    df = probekit.read_capture(ROOT / "captures" / "healthy.pcap")
    d = datagrams(df)
    check_table(d, DATAGRAMS)
    assert d.empty and datagram_fragments(df).empty
    pd.testing.assert_frame_equal(d, dgm._typed(pd.DataFrame({c: [] for c in dgm.DATAGRAM_COLUMNS}), df))
    pd.testing.assert_frame_equal(d, ref.datagrams(df))
    assert list(d["src"].cat.categories) == list(df["src"].cat.categories)
    assert reassembled_packets(df) is df
    pd.testing.assert_series_equal(datagram_payloads(df), pd.Series([], dtype=object, name="payload"),
                                   check_index_type=False)


# ------------------------------------------------------------- the compiled kernel against the reference
def _same_as_reference(df):
    for policy in ("rfc", "first"):
        d = datagrams(df, overlap=policy)
        check_table(d, DATAGRAMS)
        pd.testing.assert_frame_equal(d, ref.datagrams(df, overlap=policy))
        pd.testing.assert_frame_equal(datagram_fragments(df, overlap=policy),
                                      ref.datagram_fragments(df, overlap=policy).drop(columns=["hdr", "upper", "nxt"]))
        pd.testing.assert_series_equal(datagram_payloads(df, overlap=policy), ref.datagram_payloads(df, overlap=policy))
    pd.testing.assert_frame_equal(reassembled_packets(df), ref.reassembled_packets(df))
    _matcher_view_matches_like_the_reassembled_table(df)


def _matcher_view_matches_like_the_reassembled_table(df):
    """matcher_view (the table patched in place) gives the matcher what reassembled_packets (fragments
    dropped, the reference) gives it: the same probes, orphans and attrs; only the four patched columns
    differ from the packets table."""
    view = matcher_view(df)
    if not len(fragment_rows(df)):
        assert view is df
        return
    assert len(view) == len(df) and list(view.columns) == list(df.columns)
    for c in df.columns:
        if c not in ("ts_ns", "ip_len", "payload_len", "ip_mf"):
            assert view[c].array is df[c].array or view[c].equals(df[c]), c
    want = reassembled_packets(df)
    for kw in ({}, {"vantage": "prober"}, {"vantage": "target"}):
        a, ao = probekit.match_probes(view, keep_orphans=True, **kw)
        b, bo = probekit.match_probes(want, keep_orphans=True, **kw)
        pd.testing.assert_frame_equal(a, b)
        pd.testing.assert_frame_equal(ao, bo)
        assert a.attrs == b.attrs


@pytest.mark.parametrize("rel", REAL_FILES + WILD_FILES)
def test_kernel_equals_reference_on_the_corpus(rel):
    _same_as_reference(probekit.read_capture(_corpus(rel)))


@pytest.mark.parametrize("family", [4, 6])
def test_kernel_equals_reference_on_the_fragment_scenario(tmp_path, family):
    from probekit.synth import default_monitor, synth
    path = tmp_path / f"frag-{family}.pcap"
    synth("fragmenting-path+unreachable+background", path, seed=4, monitor=default_monitor(family=family),
          duration_s=40.0, size_change_at_s=0.0, size_apply_delay_s=0.0, loss=0.05)
    df = probekit.read_capture(path)
    d = datagrams(df)
    assert len(d) > 50 and d["complete"].any() and not d["complete"].all()    # some reply fragments lost
    _same_as_reference(df)


# ------------------------------------------- IPv6 extension headers after the Fragment header (RFC 8200 4.5)
def _ip6x(ident, off, mf, data, nh, pre=b"", first_nh=44):
    """An IPv6 fragment with ``pre`` (unfragmentable extension headers, ``first_nh`` the fixed header's
    next header) before its Fragment header (next header ``nh``)."""
    src = bytes.fromhex("20010db8000000000000000000000001")
    dst = bytes.fromhex("20010db8000000000000000000000002")
    frag = struct.pack(">BBHI", nh, 0, (off & 0xFFF8) | (1 if mf else 0), ident)
    return struct.pack(">IHBB16s16s", 0x60000000, len(pre) + 8 + len(data), first_nh, 64, src, dst) + pre + frag + data


def _opts(nh, size):
    """A destination options / hop-by-hop header of ``size`` bytes (a multiple of 8): PadN."""
    return bytes([nh, size // 8 - 1, 1, size - 4]) + bytes(size - 4)


def _icmp6_echo(payload: bytes, ident=0x1234, seq=7) -> bytes:
    return struct.pack(">BBHHH", 128, 0, 0, ident, seq) + payload


def _tcp(payload: bytes, sport=40000, dport=443, flags=0x18) -> bytes:
    return struct.pack(">HHIIBBHHH", sport, dport, 1000, 0, 5 << 4, flags, 65535, 0, 0) + payload


def _frags6(ident, body, cuts, nh, pre=b"", first_nh=44):
    return [_ip6x(ident, a, b < len(body), body[a:b], nh, pre, first_nh) for a, b in zip(cuts[:-1], cuts[1:])]


EXT_CASES = {   # name: (fragment header's next header, fragmentable part, cuts, unfragmentable part, L4 proto)
    "dstopts-udp": (60, _opts(17, 16) + _udp(bytes(range(200)) * 2), [0, 200, 424], b"", 17),
    "routing-icmp6": (43, bytes([58, 2, 0, 0]) + bytes(4) + bytes(16) + _icmp6_echo(bytes(600)),
                      [0, 304, 608, 640], b"", 58),
    "hbh-before-dstopts-tcp": (60, _opts(6, 8) + _tcp(b"x" * 900), [0, 480, 928], _opts(44, 8), 6),
    # a destination options header runs into the second fragment and another follows it: Linux's walk
    # (ipv6_skip_exthdr) cannot read the second one's first bytes in the first fragment, fails, and lets
    # the fragment through; the protocol comes from the chain walked in the whole payload
    "chain-past-first-fragment": (60, _opts(60, 64) + _opts(17, 8) + _udp(bytes(100)), [0, 32, 180], b"", 17),
}


@pytest.mark.parametrize("case", list(EXT_CASES))
def test_ipv6_extension_headers_after_the_fragment_header_reassemble_like_tshark(tmp_path, case):
    nh, body, cuts, pre, l4 = EXT_CASES[case]
    pk = [(i * 0.001, f) for i, f in enumerate(_frags6(21, body, cuts, nh, pre, 0 if pre else 44))]
    path = _write(tmp_path, f"{case}.pcap", pk, linktype=229)
    df = probekit.read_capture(path)
    want = tshark_reassembled(path)
    assert want == {(len(pk), len(body), len(pk))}
    for policy in ("rfc", "first"):
        d, got = ours(df, policy)
        assert got == want
        assert list(d["reason"]) == ["complete"] and int(d["ip_proto"].iloc[0]) == l4
    assert datagram_payloads(df).iloc[0] == body
    _same_as_reference(df)
    view = reassembled_packets(df)
    assert list(view["frame"]) == [1]
    row = view.iloc[0]
    assert int(row["ip_len"]) == 40 + len(pre) + 8 + len(body)
    if case == "dstopts-udp":
        assert (int(row["sport"]), int(row["dport"]), int(row["payload_len"])) == (5000, 6000, 400)
    if case == "routing-icmp6":
        assert (int(row["icmp_type"]), int(row["icmp_id"]), int(row["icmp_seq"])) == (128, 0x1234, 7)
        assert int(row["payload_len"]) == 600
    if case == "hbh-before-dstopts-tcp":
        assert (int(row["dport"]), int(row["tcp_flags"]), int(row["payload_len"])) == (443, 0x18, 900)


@pytest.mark.parametrize("head", [16, 32])
def test_ipv6_first_fragment_without_its_upper_layer_header_is_discarded(tmp_path, head):
    # the first fragment holds the destination options but not the UDP header (16), or only half of the
    # options, the UDP header next (32): RFC 8200 4.5 says discard it (Linux ipv6frag_thdr_truncated: the
    # walk ends past the fragment); tshark and overlap='first' reassemble it anyway
    body = _opts(17, 16 if head == 16 else 64) + _udp(bytes(300))
    pk = [(i * 0.001, f) for i, f in enumerate(_frags6(5, body, [0, head, len(body)], 60))]
    path = _write(tmp_path, f"cut{head}.pcap", pk, linktype=229)
    df = probekit.read_capture(path)
    d = datagrams(df)
    assert list(d["reason"]) == ["incomplete"] and int(d["dropped"].iloc[0]) == 1
    assert "upper-layer header" in d["note"].iloc[0] and "RFC 8200" in d["note"].iloc[0]
    d, got = ours(df, "first")
    assert got == tshark_reassembled(path) and int(d["ip_proto"].iloc[0]) == 17
    _same_as_reference(df)
    assert reassembled_packets(df).empty


# ---------------------------------------------------------------------------------- fuzz-like chains
def test_fuzzed_chains_are_notes_never_exceptions(tmp_path):
    """Random chains of IPv4 and IPv6 fragments: random offsets (up to the largest, 65528), lengths (0 to
    past 64 KiB in total), more-fragments flags, duplicates that disagree, lost and reordered fragments.
    Every datagram gets a reason, every one not complete says why, and the kernel equals the reference."""
    rng = np.random.default_rng(13)
    pk, t = [], 0.0
    for k in range(160):
        v6 = bool(k % 2)
        ident = k if rng.random() < 0.8 else 1          # some chains collide on one identifier
        body = rng.integers(0, 256, int(rng.integers(8, 3000)), dtype=np.uint8).tobytes()
        cuts = sorted({0, len(body), *(8 * int(x) for x in rng.integers(1, len(body) // 8 + 1, 3))})
        pieces = [[a, body[a:b], b < len(body)] for a, b in zip(cuts[:-1], cuts[1:])]
        mutation = rng.integers(0, 8)
        if mutation == 1 and len(pieces) > 1:            # a lost fragment
            pieces.pop(int(rng.integers(0, len(pieces))))
        elif mutation == 2:                              # a duplicate that disagrees, shifted by 8
            a, d, mf = pieces[int(rng.integers(0, len(pieces)))]
            pieces.append([max(0, a - 8), bytes(len(d)), mf])
        elif mutation == 3:                              # the largest offset, or one past 64 KiB
            pieces.append([int(rng.choice([65528, 65000])), bytes(int(rng.choice([1, 600]))), False])
        elif mutation == 4:                              # zero-length and odd-length fragments
            pieces.append([8 * int(rng.integers(0, 10)), b"" if rng.random() < 0.5 else b"abc", True])
        elif mutation == 5:                              # two different last fragments
            pieces.append([pieces[-1][0], pieces[-1][1] + b"tail", False])
        order = rng.permutation(len(pieces)) if rng.random() < 0.5 else range(len(pieces))
        for j in order:
            a, d, mf = pieces[j]
            frame = _ip6(ident, a, mf, d) if v6 else _ip4("192.0.2.1", "192.0.2.2", ident, a, mf, d)
            t += float(rng.choice([0.001, 0.001, 0.5, 31.0]))
            pk.append((t, frame))
    path = _write(tmp_path, "fuzz.pcap", pk, linktype=101)
    df = probekit.read_capture(path)
    for policy in ("rfc", "first"):
        d = datagrams(df, overlap=policy)
        check_table(d, DATAGRAMS)
        assert d["reason"].notna().all()
        assert (d.loc[~d["complete"], "note"].str.len() > 0).all()
        assert (d.loc[d["complete"], "payload_len"] <= 65535).all()
        seen = set(d["reason"].astype(str))
        assert {"complete", "timeout", "bad_length", "multiple_tails"} <= seen, seen
        assert seen & {"overlap", "conflict"}, seen
    _same_as_reference(df)


@pytest.mark.parametrize("what", ["zero-length", "past-64k-v4", "past-64k-v6", "huge-offset-alone",
                                  "disagreeing-overlap-v6"])
def test_bad_fragments_are_named(tmp_path, what):
    body = _udp(bytes(range(256)) * 2)
    src, dst = "192.0.2.1", "192.0.2.2"
    if what == "zero-length":        # a fragment with no data, then the two real ones
        pk = [_ip4(src, dst, 4, 0, True, b""), _ip4(src, dst, 4, 0, True, body[:256]),
              _ip4(src, dst, 4, 256, False, body[256:])]
        # Linux (ip_frag_queue: end == offset) discards the queue; the next two make a datagram of their own
        want = {"rfc": ["bad_length", "complete"], "first": ["complete"]}
    elif what == "past-64k-v4":      # the ping of death: 65528 bytes in 1456-byte pieces, then 100 more
        cuts = [*range(0, 65528, 1456), 65528]
        pk = [_ip4(src, dst, 4, a, True, bytes(b - a)) for a, b in zip(cuts[:-1], cuts[1:])]
        pk.append(_ip4(src, dst, 4, 65528, False, bytes(100)))
        want = {"rfc": ["bad_length"], "first": ["bad_length"]}   # Linux ip_frag_reasm / the last one dropped
    elif what == "past-64k-v6":      # RFC 8200 4.5: a fragment ending past 65535 is discarded
        pk = [_ip6(4, 0, True, body[:512]), _ip6(4, 65528, False, bytes(100))]
        want = {"rfc": ["bad_length"], "first": ["bad_length"]}
    elif what == "huge-offset-alone":   # the largest offset, one byte, no head: never completes
        pk = [_ip6(4, 65528, False, b"\x01")]
        want = {"rfc": ["incomplete"], "first": ["incomplete"]}
    else:                            # RFC 5722: overlapping IPv6 fragments with different bytes
        pk = [_ip6(4, 0, True, body[:256]), _ip6(4, 128, True, bytes(256)), _ip6(4, 384, False, body[384:])]
        want = {"rfc": ["overlap", "incomplete"], "first": ["conflict"]}
    df = probekit.read_capture(_write(tmp_path, f"{what}.pcap", [(i * 0.01, f) for i, f in enumerate(pk)],
                                      linktype=101))
    for policy in ("rfc", "first"):
        d = datagrams(df, overlap=policy)
        assert list(d["reason"]) == want[policy], policy
        bad = d[d["reason"] != "complete"]
        assert (bad["note"].str.len() > 0).all()
    d = datagrams(df)
    note = d["note"].iloc[0]
    if what == "zero-length":
        assert "carries no data" in note and "ip_frag_queue" in note
        assert int(datagrams(df, overlap="first")["dropped"].iloc[0]) == 1
    if what == "past-64k-v4":
        assert "65648 bytes" in note and "ip_frag_reasm" in note
    if what == "past-64k-v6":
        assert "past 65535" in note
    if what == "disagreeing-overlap-v6":
        assert "different bytes" in note and "RFC 5722" in note
    _same_as_reference(df)
