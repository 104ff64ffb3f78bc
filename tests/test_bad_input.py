"""Bad input: a clear CaptureError naming file, offset and problem; cut files give every whole record."""
from __future__ import annotations

import subprocess
import sys
import warnings

import pytest

import probekit
from helpers import capwriter as W
from helpers.frames import ether, icmp4, icmp6

FRAMES = [(100 + i, i, ether(icmp4(seq=i))) for i in range(5)]


def _read_cut(path, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = probekit.read_capture(path, **kw)
    return df, [w for w in caught if issubclass(w.category, probekit.CaptureWarning)]


def test_pcap_cut_at_every_byte_of_the_last_two_records(tmp_path):
    full = W.pcap(FRAMES)
    rec = 16 + len(FRAMES[0][2])
    whole = probekit.read_capture(_write(tmp_path / "full.pcap", full))
    for cut in range(len(full) - 2 * rec, len(full)):
        p = _write(tmp_path / "cut.pcap", full[:cut])
        df, warns = _read_cut(p)
        n_whole = (cut - 24) // rec
        assert len(df) == n_whole, cut
        assert df["icmp_seq"].tolist() == whole["icmp_seq"].tolist()[:n_whole]
        boundary = 24 + n_whole * rec
        if cut == boundary:
            assert not warns
            continue
        assert len(warns) == 1
        msg = str(warns[0].message)
        assert f"{p}: byte offset {boundary}: file ends inside a record" in msg
        assert df.attrs["notes"] and "salvaged" in df.attrs["notes"][0]
        with pytest.raises(probekit.CaptureError) as ei:
            probekit.read_capture(p, strict=True)
        assert ei.value.offset == boundary


def test_pcapng_cut_mid_block(tmp_path):
    blocks = [W.shb(), W.idb(101)] + [W.epb(0, 10**6 * i, icmp6()) for i in range(4)]
    full = b"".join(blocks)
    cut = len(full) - 10
    p = _write(tmp_path / "cut.pcapng", full[:cut])
    df, warns = _read_cut(p)
    assert len(df) == 3 and len(warns) == 1
    last_start = len(full) - len(blocks[-1])
    assert f"byte offset {last_start}: file ends inside a block" in str(warns[0].message)


def test_pcapng_corrupt_block_after_packets_is_salvaged(tmp_path):
    good = W.shb() + W.idb(101) + W.epb(0, 1, icmp6()) + W.epb(0, 2, icmp6())
    bad = good + b"\x06\x00\x00\x00\x15\x00\x00\x00" + b"\0" * 20  # EPB with length 21
    df, warns = _read_cut(_write(tmp_path / "bad.pcapng", bad))
    assert len(df) == 2 and "length of 21 that is not a multiple of 4" in str(warns[0].message)


def test_huge_record_length_is_corruption_not_a_malloc(tmp_path):
    data = W.pcap(FRAMES[:2]) + b"\0" * 8 + b"\xff\xff\xff\x7f" + b"\0" * 40
    df, warns = _read_cut(_write(tmp_path / "huge.pcap", data))
    assert len(df) == 2 and "claims 2147483647 captured bytes" in str(warns[0].message)


@pytest.mark.parametrize("content,reason", [
    (b"", "empty file (0 bytes)"),
    (b"PK\x03\x04 this is a zip", "not a pcap or pcapng capture (first bytes 50 4b 03 04"),
    (b"\xd4\xc3", "file too short (2 bytes)"),
    (b"\xd4\xc3\xb2\xa1\x02\x00", "truncated pcap file header: needs 24 bytes, the file has 6"),
])
def test_not_a_capture(tmp_path, content, reason):
    p = _write(tmp_path / "x.pcap", content)
    with pytest.raises(probekit.CaptureError) as ei:
        probekit.read_capture(p)
    assert reason in str(ei.value) and str(p) in str(ei.value)


def test_directory_and_missing_file(tmp_path):
    with pytest.raises(probekit.CaptureError, match="is a directory"):
        probekit.read_capture(tmp_path)
    with pytest.raises(probekit.CaptureError, match="no such file"):
        probekit.read_capture(tmp_path / "nope.pcap")


def test_pcapng_packet_names_a_missing_interface(tmp_path):
    data = W.shb() + W.idb(1) + W.epb(3, 1, ether(icmp4()))
    with pytest.raises(probekit.CaptureError, match="names interface 3, but its section has 1"):
        probekit.read_capture(_write(tmp_path / "x.pcapng", data))


@pytest.mark.parametrize("args,rc,needle", [
    (["summary", "{missing}"], 1, "no such file"),
    (["summary", "{junk}"], 1, "not a pcap or pcapng capture"),
    (["read", "{junk}", "-o", "{out}"], 1, "not a pcap or pcapng capture"),
    (["read", "{good}", "-o", "{tmp}/out.txt"], 1, "must end in .parquet or .csv"),
    (["summary"], 2, "usage:"),
    (["nonsense"], 2, "invalid choice"),
])
def test_cli_errors_are_one_line_without_traceback(tmp_path, args, rc, needle):
    junk = _write(tmp_path / "junk.pcap", b"hello world, not a capture")
    good = _write(tmp_path / "good.pcap", W.pcap(FRAMES))
    subs = dict(missing=tmp_path / "missing.pcap", junk=junk, good=good, out=tmp_path / "o.parquet", tmp=tmp_path)
    argv = [a.format(**subs) for a in args]
    p = subprocess.run([sys.executable, "-m", "probekit", *argv], capture_output=True, text=True)
    assert p.returncode == rc, p.stderr
    assert needle in p.stderr and "Traceback" not in p.stderr
    if rc == 1:
        assert len(p.stderr.strip().splitlines()) == 1


def test_cli_salvage_warns_and_succeeds(tmp_path):
    p = _write(tmp_path / "cut.pcap", W.pcap(FRAMES)[:-5])
    out = subprocess.run([sys.executable, "-m", "probekit", "summary", str(p)], capture_output=True, text=True)
    assert out.returncode == 0 and "4 packets" in out.stdout
    assert "warning: salvaged 4 whole record(s)" in out.stderr and "Traceback" not in out.stderr
    strict = subprocess.run([sys.executable, "-m", "probekit", "summary", "--strict", str(p)],
                            capture_output=True, text=True)
    assert strict.returncode == 1 and "file ends inside a record" in strict.stderr


def _write(path, data: bytes):
    path.write_bytes(data)
    return path
