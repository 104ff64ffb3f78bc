"""iter_packet_chunks: the capture as bounded packets tables, concatenated equal to read_capture's table
(frame numbers across chunks, stream-absolute payload offsets, interfaces numbered over the file), from
files, compressed files and streams, with the same salvage warnings and errors."""
from __future__ import annotations

import gzip
import io
import warnings
from pathlib import Path

import pandas as pd
import pytest

from helpers import capwriter as W
from probekit import CaptureError, CaptureWarning, read_capture
from probekit.capture import iter_packet_chunks

ROOT = Path(__file__).resolve().parents[1]
CAPS = ["healthy.pcap", "lossy.pcapng", "lossy+size-change.pcapng", "healthy-ipv6-target-side.pcap"]


def joined(chunks) -> pd.DataFrame:
    parts = list(chunks)
    if not parts:
        return pd.DataFrame()
    df = pd.concat([p.assign(src=p["src"].astype(str), dst=p["dst"].astype(str)) for p in parts],
                   ignore_index=True)
    return df


def plain(df):
    return df.assign(src=df["src"].astype(str), dst=df["dst"].astype(str)).reset_index(drop=True)


def mixed_sections() -> bytes:
    """Two sections of opposite byte order, interfaces of different link types, EPB, SPB, OPB, ISB."""
    eth = bytes(12) + b"\x08\x00" + bytes.fromhex("450000300001000040010000c0000201c6336401") + \
        bytes.fromhex("0800f7ff00010001") + bytes(20)
    raw = bytes.fromhex("450000300001000040010000c0000202c6336402") + bytes.fromhex("0800f7ff00020002") + bytes(20)
    out = [W.shb(big=True), W.idb(1, big=True, tsresol=9)]
    out += [W.epb(0, 10**9 * 5 + i, eth, big=True) for i in range(5)]
    out += [W.isb(0, big=True), W.shb(), W.idb(101, snaplen=0), W.idb(1, tsresol=3)]
    out += [W.epb(i % 2, 1000 + i, raw if i % 2 == 0 else eth) for i in range(9)]
    out += [W.spb(raw), W.opb(1, 77, eth), W.idb(101)]
    out += [W.epb(2, 5, raw)]
    return b"".join(out)


@pytest.mark.parametrize("name", CAPS)
@pytest.mark.parametrize("per,read_bytes", [(97, 4096), (500, 100), (1000, 1 << 16), (10**6, 16 << 20)])
def test_chunks_join_to_read_capture(name, per, read_bytes):
    path = ROOT / "captures" / name
    want = read_capture(path)
    chunks = list(iter_packet_chunks(path, per, read_bytes=read_bytes))
    assert all(len(c) <= per for c in chunks)
    if want.attrs["format"] == "pcap":
        assert all(len(c) == per for c in chunks[:-1])
    pd.testing.assert_frame_equal(joined(chunks), plain(want), check_exact=True)
    # payloads of any one chunk come straight from the file
    c = chunks[len(chunks) // 2]
    rows = c["frame"].to_numpy() - 1
    assert c.probekit.payloads().tolist() == want.iloc[rows].probekit.payloads().tolist()


@pytest.mark.parametrize("how", ["gzip-file", "stream", "gzip-stream"])
@pytest.mark.parametrize("name", ["healthy.pcap", "lossy+size-change.pcapng"])
def test_chunks_of_compressed_files_and_streams(tmp_path, name, how):
    path = ROOT / "captures" / name
    want = read_capture(path)
    data = path.read_bytes()
    if how == "gzip-file":
        src = tmp_path / "x.gz"
        src.write_bytes(gzip.compress(data))
    elif how == "stream":
        src = io.BytesIO(data)
    else:
        src = io.BytesIO(gzip.compress(data))
    chunks = list(iter_packet_chunks(src, 333, read_bytes=5000))
    pd.testing.assert_frame_equal(joined(chunks), plain(want), check_exact=True)
    # the decompressed stream is the file's bytes: offsets agree, and each chunk slices its own bytes
    for c in chunks[::4]:
        rows = c["frame"].to_numpy() - 1
        assert c.probekit.payloads().tolist() == want.iloc[rows].probekit.payloads().tolist()


@pytest.mark.parametrize("per", [1, 3, 100])
def test_mixed_endian_sections_and_late_interfaces(tmp_path, per):
    p = tmp_path / "mixed.pcapng"
    p.write_bytes(mixed_sections())
    want = read_capture(p)
    assert len(want) == 5 + 9 + 2 + 1 and sorted(set(want["iface"])) == [0, 1, 2, 3]
    got = joined(iter_packet_chunks(p, per, read_bytes=64))
    pd.testing.assert_frame_equal(got, plain(want), check_exact=True)


def _warned(fn):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        out = fn()
    return out, [str(w.message) for w in rec if issubclass(w.category, CaptureWarning)]


@pytest.mark.parametrize("name,cut", [("healthy.pcap", 100_000), ("healthy.pcap", 24 + 7),
                                      ("lossy.pcapng", 50_001), ("mixed", 700), ("mixed", 1210)])
@pytest.mark.parametrize("compress", [False, True])
def test_cut_captures_salvage_the_same_rows_with_the_same_warning(tmp_path, name, cut, compress):
    data = mixed_sections() if name == "mixed" else (ROOT / "captures" / name).read_bytes()
    data = data[:cut]
    p = tmp_path / "cut"
    p.write_bytes(gzip.compress(data) if compress else data)
    want, wmsg = _warned(lambda: read_capture(p))
    got, gmsg = _warned(lambda: joined(iter_packet_chunks(p, 50, read_bytes=333)))
    assert wmsg and gmsg == wmsg
    if len(want):
        pd.testing.assert_frame_equal(got, plain(want), check_exact=True)
    else:
        assert len(got) == 0
    with pytest.raises(CaptureError) as a:
        read_capture(p, strict=True)
    with pytest.raises(CaptureError) as b:
        list(iter_packet_chunks(p, 50, strict=True, read_bytes=333))
    assert str(a.value) == str(b.value)


@pytest.mark.parametrize("data", [b"", b"\x0a\x0d", b"hello world, not a capture", W.pcap([], version=(2, 9)),
                                  gzip.compress(b"", mtime=0)[:-4], W.shb()[:20]])
def test_unreadable_inputs_raise_the_same_error(tmp_path, data):
    p = tmp_path / "bad"
    p.write_bytes(data)
    with pytest.raises(CaptureError) as a:
        read_capture(p)
    with pytest.raises(CaptureError) as b:
        list(iter_packet_chunks(p))
    assert str(a.value) == str(b.value)


@pytest.mark.parametrize("source", ["mixed", "lossy.pcapng", "healthy.pcap"])
def test_random_cuts_and_flips_agree_with_read_capture(tmp_path, source):
    """Damage anywhere: the chunked walk salvages the same rows with the same words as read_capture, or
    raises the same CaptureError."""
    import numpy as np
    data = mixed_sections() if source == "mixed" else (ROOT / "captures" / source).read_bytes()[:40_000]
    rng = np.random.default_rng(int(__import__("os").environ.get("PKM_SEED", 11)))
    p = tmp_path / "x"
    for trial in range(int(__import__("os").environ.get("PKM_TRIALS", 40))):
        b = bytearray(data)
        if trial % 2:
            b = b[:int(rng.integers(0, len(b)))]
        else:
            i = int(rng.integers(0, len(b)))
            b[i] ^= int(rng.integers(1, 256))
        p.write_bytes(bytes(b))
        try:
            want, wmsg = _warned(lambda: read_capture(p))
        except CaptureError as e:
            with pytest.raises(CaptureError) as got_err:
                list(iter_packet_chunks(p, 13, read_bytes=997))
            assert str(got_err.value) == str(e), trial
            continue
        got, gmsg = _warned(lambda: joined(iter_packet_chunks(p, 13, read_bytes=997)))
        assert gmsg == wmsg, trial
        if len(want):
            pd.testing.assert_frame_equal(got, plain(want), check_exact=True)
        else:
            assert len(got) == 0


def test_a_packet_may_name_only_an_interface_described_before_it(tmp_path):
    """libpcap (sf-pcapng.c): a packet on an interface whose IDB has not come yet is an error, even if
    that IDB follows later in the section."""
    eth = bytes(12) + b"\x08\x00" + bytes(20)
    p = tmp_path / "late.pcapng"
    p.write_bytes(W.shb() + W.idb(1) + W.epb(0, 1, eth) + W.epb(1, 2, eth) + W.idb(1) + W.epb(1, 3, eth))
    for read in (lambda: read_capture(p), lambda: list(iter_packet_chunks(p, 1))):
        with pytest.raises(CaptureError, match=r"names interface 1, but its section has 1 interface\(s\) before it"):
            read()
