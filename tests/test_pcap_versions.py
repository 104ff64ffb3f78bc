"""Classic pcap versions as libpcap's sf-pcap.c reads them: 2.0 to 2.4 and DG/UX's 543.0; caplen and len
in the old order before 2.3 (and in 543.0), "maybe swapped" in 2.3; the modified format (magic
0xa1b2cd34) with its 24-byte record header. Hand-made files, every field packed here with struct."""
from __future__ import annotations

import struct

import numpy as np
import pytest

from probekit import CaptureError, read_capture
from probekit.capture import _kernels as K
from probekit.capture._frames import index_frames


def pcap_fill(buf, start, be, count, data_off, ts_sec, ts_frac, caplen, wirelen, hdrsize=16, swap=0):
    """The plain reference for pcap_walk's fields (the two-walk reader's second walk, before one walk)."""
    off = start
    for i in range(count):
        ts_sec[i] = K._rd32(buf, off, be)
        ts_frac[i] = K._rd32(buf, off + 4, be)
        cap, wire = K._pcap_lengths(buf, off, be, swap)
        caplen[i] = cap
        wirelen[i] = wire
        data_off[i] = off + hdrsize
        off += hdrsize + cap

# an IPv4/ICMP echo request (raw IP link type 101), 28 bytes of headers + 20 payload bytes
IP = bytes.fromhex("4500003000010000400100000a0000010a000002") + bytes.fromhex("0800f7ff00010001") + bytes(20)


def old_pcap(records, *, version=(2, 4), magic=0xA1B2C3D4, big=False, order="caplen-first", linktype=101,
             snaplen=65535):
    """records: (sec, usec, data, wirelen). order: which length the record header stores first."""
    e = ">" if big else "<"
    out = [struct.pack(e + "IHHiIII", magic, version[0], version[1], 0, 0, snaplen, linktype)]
    for sec, usec, data, wl in records:
        a, b = (len(data), wl) if order == "caplen-first" else (wl, len(data))
        hdr = struct.pack(e + "IIII", sec, usec, a, b)
        if magic == 0xA1B2CD34:      # struct pcap_sf_patched_pkthdr: + int index, u_short protocol, u_char
            hdr += struct.pack(e + "iHBx", 3, 0x0800, 0)   # pkt_type, and the pad to 24 bytes
        out.append(hdr + data)
    return b"".join(out)


RECORDS = [(1000, 1, IP, 48), (1000, 2, IP[:40], 48), (1001, 999999, IP, 1500)]


@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize("version", [(2, 0), (2, 1), (2, 2), (543, 0)])
def test_versions_before_2_3_store_len_before_caplen(tmp_path, version, big):
    p = tmp_path / "old.pcap"
    p.write_bytes(old_pcap(RECORDS, version=version, big=big, order="len-first"))
    df = read_capture(p)
    assert df["caplen"].tolist() == [48, 40, 48]
    assert df["wirelen"].tolist() == [48, 48, 1500]
    assert df["ts_ns"].tolist() == [1000 * 10**9 + 1000, 1000 * 10**9 + 2000, 1001 * 10**9 + 999999000]
    assert df["src"].astype(str).tolist() == ["10.0.0.1"] * 3
    assert df["icmp_type"].tolist() == [8, 8, 8]


@pytest.mark.parametrize("order", ["caplen-first", "len-first"])
def test_version_2_3_swaps_only_where_caplen_exceeds_len(tmp_path, order):
    p = tmp_path / "v23.pcap"
    p.write_bytes(old_pcap(RECORDS, version=(2, 3), order=order))
    df = read_capture(p)
    # where caplen == len the order cannot matter; where they differ the smaller one is the caplen
    assert df["caplen"].tolist() == [48, 40, 48]
    assert df["wirelen"].tolist() == [48, 48, 1500]


def test_version_2_4_is_never_swapped(tmp_path):
    p = tmp_path / "v24.pcap"
    recs = [(1, 0, IP, 48)]
    p.write_bytes(old_pcap(recs, version=(2, 4)))
    assert read_capture(p)["caplen"].tolist() == [48]
    # 2.4 with caplen > len stays as written (libpcap only swaps for 2.3)
    p.write_bytes(old_pcap([(1, 0, IP, 30)], version=(2, 4)))
    df = read_capture(p)
    assert df["caplen"].tolist() == [48] and df["wirelen"].tolist() == [30]


@pytest.mark.parametrize("version", [(2, 5), (1, 0), (3, 4), (543, 1)])
def test_other_versions_are_refused_as_libpcap_does(tmp_path, version):
    p = tmp_path / "bad.pcap"
    p.write_bytes(old_pcap(RECORDS, version=version))
    with pytest.raises(CaptureError, match=rf"unsupported pcap file version {version[0]}\.{version[1]}") as e:
        read_capture(p)
    assert e.value.offset == 4


@pytest.mark.parametrize("big", [False, True])
def test_modified_pcap_magic_has_24_byte_record_headers(tmp_path, big):
    p = tmp_path / "mod.pcap"
    p.write_bytes(old_pcap(RECORDS, magic=0xA1B2CD34, big=big))
    df = read_capture(p)
    assert len(df) == 3
    assert df["caplen"].tolist() == [48, 40, 48]
    assert df["ts_ns"].tolist()[2] == 1001 * 10**9 + 999999000
    assert df["dst"].astype(str).tolist() == ["10.0.0.2"] * 3
    # payload offsets point into the file past the longer header
    raw = p.read_bytes()
    first = int(df["payload_off"].iloc[0])
    assert first == 24 + 24 + 28 and raw[first:first + 20] == bytes(20)
    pl = df.probekit.payloads()
    assert pl.iloc[0] == bytes(20) and pl.iloc[1] == bytes(12)


def test_modified_pcap_ethernet_snaplen_grows_by_14(tmp_path):
    p = tmp_path / "mod-eth.pcap"
    eth = bytes(12) + b"\x08\x00" + IP
    p.write_bytes(old_pcap([(1, 0, eth, len(eth))], magic=0xA1B2CD34, linktype=1, snaplen=96))
    df = read_capture(p)
    assert df.attrs["interfaces"][0]["snaplen"] == 110
    assert df["ip_proto"].tolist() == [1]


def test_cut_modified_pcap_names_the_24_byte_header(tmp_path):
    p = tmp_path / "cut.pcap"
    p.write_bytes(old_pcap(RECORDS, magic=0xA1B2CD34)[:24 + 24 + 48 + 10])
    with pytest.warns(Warning, match=r"byte offset 96: file ends inside a record header \(10 of 24 bytes\)"):
        df = read_capture(p)
    assert len(df) == 1


@pytest.mark.parametrize("swap", [K.LEN_NOT_SWAPPED, K.LEN_SWAPPED, K.LEN_MAYBE_SWAPPED])
@pytest.mark.parametrize("hdrsize", [16, 24])
def test_record_walk_kernels_equal_plain_python(swap, hdrsize):
    """The compiled walk and its plain-Python run agree, on whole and on cut buffers."""
    if not hasattr(K.pcap_count, "py_func"):
        pytest.skip("numba is not installed: the kernels are plain Python already")
    magic = 0xA1B2CD34 if hdrsize == 24 else 0xA1B2C3D4
    rng = np.random.default_rng(hdrsize + swap)
    recs = [(int(i), int(i) * 7, bytes(rng.integers(0, 256, int(n), dtype=np.uint8)), int(w))
            for i, (n, w) in enumerate(zip(rng.integers(0, 300, 200), rng.integers(0, 400, 200)))]
    order = "len-first" if swap == K.LEN_SWAPPED else "caplen-first"
    raw = old_pcap(recs, magic=magic, order=order)
    for cut in (len(raw), len(raw) - 5, len(raw) // 2):
        buf = np.frombuffer(raw[:cut], np.uint8)
        for limit in (-1, 17):
            a = K.pcap_count(buf, 24, False, hdrsize, swap, limit)
            b = K.pcap_count.py_func(buf, 24, False, hdrsize, swap, limit)
            assert tuple(int(x) for x in a) == tuple(int(x) for x in b)
        # the one-walk kernel the reader uses: the same records as pcap_count + the plain fill, compiled and
        # as plain Python, in arrays sized for the most records the bytes can hold
        for limit in (-1, 17):
            room = (cut - 24) // hdrsize if limit < 0 else limit
            walks = []
            for fn in (K.pcap_walk, K.pcap_walk.py_func):
                arrs = [np.empty(room, np.int64), np.empty(room, np.int64), np.empty(room, np.uint32),
                        np.empty(room, np.uint32)]
                r = fn(buf, 24, False, hdrsize, swap, limit, 1000, *arrs)
                walks.append((tuple(int(x) for x in r), [x[:int(r[0])] for x in arrs]))
            assert walks[0][0] == walks[1][0] == tuple(
                int(x) for x in K.pcap_count.py_func(buf, 24, False, hdrsize, swap, limit))
            k = walks[0][0][0]
            data_off, ts_sec, ts_frac, caplen, wirelen = [np.empty(k, np.int64)] + [np.empty(k, np.uint32)
                                                                                   for _ in range(4)]
            pcap_fill(buf, 24, False, k, data_off, ts_sec, ts_frac, caplen, wirelen, hdrsize, swap)
            for x, y in zip(walks[0][1], walks[1][1]):
                assert np.array_equal(x, y)
            assert np.array_equal(walks[0][1][0], data_off)
            assert np.array_equal(walks[0][1][1], ts_sec.astype(np.int64) * 10**9 + ts_frac.astype(np.int64) * 1000)
            assert np.array_equal(walks[0][1][2], caplen) and np.array_equal(walks[0][1][3], wirelen)
    if swap != K.LEN_MAYBE_SWAPPED:   # the file walk: the version picks the same length order
        raw = old_pcap(recs, magic=magic, order=order, version=(2, 2) if swap == K.LEN_SWAPPED else (2, 4))
        idx = index_frames(np.frombuffer(raw, np.uint8), "x")
        assert idx.caplen.tolist() == [len(r[2]) for r in recs]
        assert idx.wirelen.tolist() == [r[3] for r in recs]


def test_real_old_version_files_in_the_wild_corpus():
    """captures-wild has no 2.0-2.3 or modified-magic file (checked by magic and version); its one
    other version (2.5, libpcap's own test) must be refused with libpcap's reason."""
    from conftest import SHARED
    wild = SHARED / "captures-wild" / "the-tcpdump-group__libpcap" / "tests" / "pcap-invalid-version-2.pcap"
    if not wild.exists():
        import os
        if os.environ.get("CI"):
            pytest.fail(f"CI must have {wild}")
        pytest.skip(f"{wild} is not there (set PROBEKIT_SHARED)")
    with pytest.raises(CaptureError, match=r"unsupported pcap file version 2\.5"):
        read_capture(wild)
