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
from conftest import ROOT, SHARED, require_real_captures
from helpers.capwriter import pcap
from probekit.analysis import datagrams as dgm
from probekit.analysis.datagrams import (
    datagram_fragments,
    datagram_payloads,
    datagrams,
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
    payload = datagram_payloads(df)
    # the offset-0 fragment's bytes are located from its header; later fragments need the decoder's offsets
    first_known = dgm._fragment_data(df, np.array([3]), np.array([0]))[0]
    assert first_known == body[:256]
    later = df[df["frag_offset"].fillna(0) > 0]
    if later["payload_off"].notna().all():           # a decoder that locates every fragment's data
        assert payload.iloc[0] == body
    else:                                            # today's: the bytes cannot all be located
        assert payload.iloc[0] is None


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
    end = start + (rng.integers(0, 6, n) * 8 + rng.integers(0, 2, n) * 3).astype(np.int64)
    last = rng.random(n) < 0.3
    v6 = rng.random(n) < 0.5
    tmo = np.full(n, 5 * 10**9, np.int64)
    for policy in (0, 1):
        a = dgm._reassemble(grp, ts, start, end, last, v6, tmo, policy, int(ts[-1]))
        f = getattr(dgm._reassemble, "py_func", dgm._reassemble)
        b = f(grp, ts, start, end, last, v6, tmo, policy, int(ts[-1]))
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
        assert set(np.unique(a[8])) > {dgm.R_COMPLETE}         # the random chains hit several reasons


def test_no_fragments_is_an_empty_table():
    df = probekit.read_capture(ROOT / "captures" / "healthy.pcap")
    d = datagrams(df)
    check_table(d, DATAGRAMS)
    assert d.empty and datagram_fragments(df).empty
    assert reassembled_packets(df) is df
    pd.testing.assert_series_equal(datagram_payloads(df), pd.Series([], dtype=object, name="payload"),
                                   check_index_type=False)
