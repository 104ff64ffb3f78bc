"""Compressed captures are recognised by content and read exactly like the plain file, row for row; cut or
corrupt compressed data salvages the whole records before the damage with a warning naming the file,
the offset (in the decompressed stream) and the problem, or raises CaptureError; nothing else escapes."""
from __future__ import annotations

import bz2
import gzip
import lzma
import shutil
import subprocess
import warnings
from pathlib import Path

import lz4.frame
import numpy as np
import pandas as pd
import pytest
import zstandard

from helpers.capwriter import pcap
from probekit import CaptureError, CaptureWarning, read_capture
from probekit._io import sniff_compression
from probekit.scale import read_captures

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ["healthy.pcap", "lossy.pcapng"]

COMPRESS = {
    "gzip": lambda b: gzip.compress(b),
    "bzip2": lambda b: bz2.compress(b),
    "xz": lambda b: lzma.compress(b, format=lzma.FORMAT_XZ),
    "zstd": lambda b: zstandard.ZstdCompressor().compress(b),
    "lz4": lambda b: lz4.frame.compress(b),
}
TOOLS = {"gzip": ["gzip", "-c"], "bzip2": ["bzip2", "-c"], "xz": ["xz", "-c"], "zstd": ["zstd", "-q", "-c"],
         "lz4": ["lz4", "-q", "-c"]}


def assert_same_table(got: pd.DataFrame, want: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True), check_exact=True)


@pytest.fixture(scope="module")
def plain():
    return {name: read_capture(ROOT / "captures" / name) for name in SHIPPED}


@pytest.mark.parametrize("kind", sorted(COMPRESS))
@pytest.mark.parametrize("name", SHIPPED)
def test_compressed_reads_equal_plain_row_for_row(tmp_path, plain, name, kind):
    raw = (ROOT / "captures" / name).read_bytes()
    # the name says nothing: content decides (".pcap" though it is compressed)
    path = tmp_path / f"{name}.bin"
    path.write_bytes(COMPRESS[kind](raw))
    with warnings.catch_warnings():
        warnings.simplefilter("error", CaptureWarning)
        got = read_capture(path)
    assert_same_table(got, plain[name])
    assert got.attrs["compression"] == kind
    assert got.attrs["format"] == plain[name].attrs["format"]
    # payload slicing decompresses again
    assert got.probekit.payloads().tolist() == plain[name].probekit.payloads().tolist()
    syn = got[got["payload_caplen"].fillna(0) > 0].iloc[::7]
    assert syn.probekit.payloads().tolist() == plain[name].loc[syn.index].probekit.payloads().tolist()


@pytest.mark.parametrize("kind", sorted(TOOLS))
def test_files_written_by_the_real_tools(tmp_path, plain, kind):
    if not shutil.which(TOOLS[kind][0]):
        pytest.skip(f"{TOOLS[kind][0]} is not installed")
    src = ROOT / "captures" / "lossy.pcapng"
    out = tmp_path / "x"
    with open(out, "wb") as f:
        subprocess.run(TOOLS[kind] + [str(src)], stdout=f, check=True)
    assert sniff_compression(out.read_bytes()[:6]) == kind
    assert_same_table(read_capture(out), plain["lossy.pcapng"])


def test_a_plain_file_named_gz_is_plain(tmp_path, plain):
    p = tmp_path / "really-plain.pcap.gz"
    shutil.copy(ROOT / "captures" / "healthy.pcap", p)
    got = read_capture(p)
    assert got.attrs["compression"] is None
    assert_same_table(got, plain["healthy.pcap"])


@pytest.mark.parametrize("cuts", [(1000,), (24, 25, 26), (5000, 77777, 150001)])
def test_multi_member_gzip(tmp_path, plain, cuts):
    """`cat a.gz b.gz` and `tcpdump -z` style: members split anywhere, also inside a record header."""
    raw = (ROOT / "captures" / "healthy.pcap").read_bytes()
    bounds = [0, *cuts, len(raw)]
    p = tmp_path / "multi.gz"
    p.write_bytes(b"".join(gzip.compress(raw[a:b]) for a, b in zip(bounds, bounds[1:])))
    assert_same_table(read_capture(p), plain["healthy.pcap"])


@pytest.mark.parametrize("kind", ["bzip2", "xz", "zstd", "lz4"])
def test_concatenated_streams_of_other_kinds(tmp_path, plain, kind):
    raw = (ROOT / "captures" / "healthy.pcap").read_bytes()
    p = tmp_path / "two"
    p.write_bytes(COMPRESS[kind](raw[:100_003]) + COMPRESS[kind](raw[100_003:]))
    assert_same_table(read_capture(p), plain["healthy.pcap"])


def test_trailing_zeros_are_ignored_and_trailing_garbage_is_noted(tmp_path, plain):
    raw = (ROOT / "captures" / "healthy.pcap").read_bytes()
    z = tmp_path / "zeros.gz"
    z.write_bytes(gzip.compress(raw) + b"\0" * 1000)       # gzip(1) accepts zero padding silently
    with warnings.catch_warnings():
        warnings.simplefilter("error", CaptureWarning)
        assert_same_table(read_capture(z), plain["healthy.pcap"])
    g = tmp_path / "garbage.gz"
    g.write_bytes(gzip.compress(raw) + b"not gzip at all")
    with pytest.warns(CaptureWarning, match=r"15 bytes after the last gzip member .* ignored"):
        got = read_capture(g)
    assert_same_table(got, plain["healthy.pcap"])


def _whole_records_before(raw: bytes, n: int) -> int:
    """How many whole pcap records lie in the first n bytes of a (plain, 16-byte header LE) pcap."""
    off, count = 24, 0
    while off + 16 <= n:
        cap = int.from_bytes(raw[off + 8:off + 12], "little")
        if off + 16 + cap > n:
            break
        off += 16 + cap
        count += 1
    return count


@pytest.mark.parametrize("kind", sorted(COMPRESS))
@pytest.mark.parametrize("frac", [0.3, 0.77])
def test_cut_compressed_file_salvages_whole_records(tmp_path, plain, kind, frac):
    raw = (ROOT / "captures" / "healthy.pcap").read_bytes()
    comp = COMPRESS[kind](raw)
    p = tmp_path / f"cut-{kind}"
    p.write_bytes(comp[:int(len(comp) * frac)])
    try:
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            got = read_capture(p)
    except CaptureError as e:   # a block-compressed format may hold nothing whole before the cut
        assert kind in ("bzip2", "xz", "lz4", "zstd") and "no capture bytes could be decompressed" in e.reason
        assert kind in e.reason and "cut short" in e.reason
        return
    msg = str(rec[0].message)
    assert str(p) in msg and "decompressed" in msg and "cut short" in msg and kind in msg
    # every whole record of the decompressed prefix is there, equal to the plain read
    n = len(got)
    assert 0 < n < len(plain["healthy.pcap"])
    assert_same_table(got, plain["healthy.pcap"].iloc[:n])
    with pytest.raises(CaptureError, match="cut short"):
        read_capture(p, strict=True)


def test_cut_gzip_salvage_count_is_exact(tmp_path, plain):
    """gzip streams every byte before the cut: the salvaged count is every whole record in them."""
    raw = (ROOT / "captures" / "healthy.pcap").read_bytes()
    comp = gzip.compress(raw)
    p = tmp_path / "cut.gz"
    p.write_bytes(comp[:len(comp) // 2])
    d = zlib_prefix(p.read_bytes())
    with pytest.warns(CaptureWarning, match=r"byte offset \d+: file ends inside a record"):
        got = read_capture(p)
    assert len(got) == _whole_records_before(raw, len(d))
    assert raw.startswith(d)


def zlib_prefix(comp: bytes) -> bytes:
    import zlib
    d = zlib.decompressobj(31)
    return d.decompress(comp)


@pytest.mark.parametrize("kind", sorted(COMPRESS))
@pytest.mark.parametrize("where", [0.05, 0.5, 0.95])
def test_corrupt_compressed_data_gives_capture_error_or_salvage(tmp_path, kind, where):
    raw = (ROOT / "captures" / "healthy.pcap").read_bytes()
    comp = bytearray(COMPRESS[kind](raw))
    i = max(12, int(len(comp) * where))
    comp[i:i + 8] = b"\xa5" * 8
    p = tmp_path / f"bad-{kind}"
    p.write_bytes(bytes(comp))
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        try:
            got = read_capture(p)
        except CaptureError as e:
            assert e.path == str(p)
            return
    msgs = [str(w.message) for w in rec if issubclass(w.category, CaptureWarning)]
    if len(got) == len(read_capture(ROOT / "captures" / "healthy.pcap")) and not msgs:
        # the damage fell where the format has no check (e.g. inside a pcap payload of a format
        # without a checksum): then the bytes decompressed are the damaged bytes, and that is all
        assert kind in ("lz4", "bzip2", "gzip", "xz", "zstd")
        return
    assert msgs, "damage that changes the record stream must be reported"
    assert str(p) in msgs[0]


def test_truncated_zstd_frame(tmp_path, plain):
    raw = (ROOT / "captures" / "healthy.pcap").read_bytes()
    comp = zstandard.ZstdCompressor(write_checksum=True).compress(raw)
    p = tmp_path / "t.pcap.zst"
    p.write_bytes(comp[:-3])
    with pytest.warns(CaptureWarning, match=r"zstd data is cut short: frame 1 has no end"):
        got = read_capture(p)
    assert_same_table(got, plain["healthy.pcap"].iloc[:len(got)])


def test_corrupt_gzip_header_is_a_capture_error(tmp_path):
    p = tmp_path / "hdr.gz"
    p.write_bytes(b"\x1f\x8b\x09\x00" + b"\0" * 30)       # method 9 does not exist
    with pytest.raises(CaptureError, match="gzip data is corrupt"):
        read_capture(p)


def test_modified_and_old_pcap_inside_gzip(tmp_path):
    """The container walk after decompression is the same walk: a 2.2 pcap (swapped lengths) inside gzip."""
    frames = [(1, 2, b"\x45" + bytes(39)), (3, 4, bytes(60))]
    body = pcap(frames, linktype=101, version=(2, 4))
    p = tmp_path / "v.gz"
    p.write_bytes(gzip.compress(body))
    got = read_capture(p)
    assert got["caplen"].tolist() == [40, 60]


def _rotation(tmp_path, kinds):
    """Split a shipped capture into rotated files named as tcpdump -C names them, compressed by kind."""
    from probekit.capture._frames import index_frames
    raw = (ROOT / "captures" / "healthy.pcap").read_bytes()
    idx = index_frames(np.frombuffer(raw, np.uint8), "x")
    cuts = np.linspace(0, len(idx), len(kinds) + 1).astype(int)
    names = []
    for i, kind in enumerate(kinds):
        a = int(idx.data_off[cuts[i]]) - 16
        b = int(idx.data_off[cuts[i + 1]]) - 16 if cuts[i + 1] < len(idx) else len(raw)
        part = raw[:24] + raw[a:b]
        name = "cap" + (str(i) if i else "")
        if kind:
            name += {"gzip": ".gz", "zstd": ".zst", "xz": ".xz", "bzip2": ".bz2", "lz4": ".lz4"}[kind]
            part = COMPRESS[kind](part)
        (tmp_path / name).write_bytes(part)
        names.append(name)
    return names


def test_read_captures_takes_compressed_rotations_as_they_are(tmp_path, plain):
    kinds = ["gzip"] * 11 + ["zstd", None]     # 13 files: cap, cap1.gz ... cap10.gz, cap11.zst, cap12
    names = _rotation(tmp_path, kinds)
    df = read_captures(str(tmp_path / "cap*"))
    assert list(df["capture"].cat.categories) == names        # cap, cap1.gz, cap2.gz, ..., cap10.gz, ...
    want = plain["healthy.pcap"]
    got = df.drop(columns=["capture"])
    cols = [c for c in want.columns if c != "payload_off"]    # offsets count within each file
    pd.testing.assert_frame_equal(got[cols].reset_index(drop=True), want[cols].reset_index(drop=True),
                                  check_categorical=False)
    assert df.probekit.payloads().tolist() == want.probekit.payloads().tolist()


def _wild_compressed():
    from conftest import SHARED
    root = SHARED / "captures-wild" / "compressed"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.gz")) if root.is_dir() else []


@pytest.mark.parametrize("rel", _wild_compressed() or ["<corpus missing>"])
def test_real_compressed_captures_match_tshark(rel):
    """captures-wild's gzip'd captures (from scapy's and zeek's test data): frame count, timestamps and
    lengths equal tshark's (which reads gzip itself)."""
    import os

    from conftest import SHARED
    root = SHARED / "captures-wild"
    if rel == "<corpus missing>":
        msg = f"captures-wild is not at {root} (set PROBEKIT_SHARED)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    oracle = root / "oracle" / "compressed" / (rel + ".tsv")
    rc = int((root / "oracle" / "compressed" / (rel + ".rc")).read_text().strip() or 0)
    assert rc == 0
    want = pd.read_csv(oracle, sep="\t", dtype=str, keep_default_na=False)
    want = want[want["frame.interface_id"] != ""] if "pcapng" in rel else want   # tshark numbers custom blocks
    with warnings.catch_warnings():
        warnings.simplefilter("error", CaptureWarning)
        got = read_capture(root / "compressed" / rel)
    assert got.attrs["compression"] == "gzip"
    assert len(got) == len(want)
    assert got["caplen"].tolist() == want["frame.cap_len"].astype(int).tolist()
    assert got["wirelen"].tolist() == want["frame.len"].astype(int).tolist()
    sec, _, frac = zip(*(t.partition(".") for t in want["frame.time_epoch"]))
    ns = [int(s) * 10**9 + int((f + "000000000")[:9]) for s, f in zip(sec, frac)]
    assert got["ts_ns"].astype("int64").tolist() == ns


@pytest.mark.parametrize("kind", sorted(COMPRESS))
def test_random_damage_never_raises_anything_else(tmp_path, kind):
    """Flipped bytes and cuts anywhere in a compressed capture: a table (salvaged, with warnings) or a
    CaptureError, never another exception (a flip a format does not check changes bytes silently, as
    it would in a plain file)."""
    import io as _io
    raw = (ROOT / "captures" / "lossy.pcapng").read_bytes()[:60_000]
    comp = COMPRESS[kind](raw)
    rng = np.random.default_rng(7)
    for trial in range(60):
        b = bytearray(comp)
        if trial % 3 == 0:
            b = b[:int(rng.integers(0, len(b)))]
        else:
            for _ in range(int(rng.integers(1, 4))):
                b[int(rng.integers(0, len(b)))] ^= int(rng.integers(1, 256))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CaptureWarning)
            try:
                read_capture(_io.BytesIO(bytes(b)))
            except CaptureError:
                pass
