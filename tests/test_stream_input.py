"""Captures from streams: file objects, named pipes, stdin for the CLI, all read front to back without a
seek, equal to the plain file's table row for row; payload slicing works from the bytes held; a stream
that closes mid-record salvages every whole record with a warning."""
from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest
import zstandard

from probekit import CaptureError, CaptureWarning, read_capture

ROOT = Path(__file__).resolve().parents[1]
HEALTHY = ROOT / "captures" / "healthy.pcap"
PCAPNG = ROOT / "captures" / "lossy.pcapng"


class OnlyRead:
    """A stream that can only be read, a few bytes at a time: no seek, no tell, no fileno, no readinto."""

    def __init__(self, data: bytes, step: int = 7):
        self._b = io.BytesIO(data)
        self._step = step
        self.calls = 0

    def read(self, n=-1):
        self.calls += 1
        return self._b.read(min(self._step, n if n >= 0 else self._step))

    def seek(self, *a):
        raise AssertionError("the reader seeked")

    tell = seek


def same(a: pd.DataFrame, b: pd.DataFrame):
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_exact=True)


@pytest.mark.parametrize("path", [HEALTHY, PCAPNG])
@pytest.mark.parametrize("compress", [None, "gzip", "zstd"])
def test_file_object_without_seek_equals_plain(path, compress):
    want = read_capture(path)
    data = path.read_bytes()
    if compress == "gzip":
        data = gzip.compress(data)
    elif compress == "zstd":
        data = zstandard.ZstdCompressor().compress(data)
    src = OnlyRead(data, step=4093)
    got = read_capture(src)
    same(got, want)
    assert src.calls > 10
    assert got.probekit.payloads().tolist() == want.probekit.payloads().tolist()


def test_tiny_reads_and_bytesio():
    want = read_capture(HEALTHY)
    with pytest.warns(CaptureWarning, match=r"<OnlyRead>: byte offset \d+: file ends inside a record"):
        got = read_capture(OnlyRead(HEALTHY.read_bytes()[:30000], step=3))
    assert 0 < len(got) < len(want)
    same(got, want.iloc[:len(got)])
    same(read_capture(io.BytesIO(HEALTHY.read_bytes())), want)


def test_payloads_survive_copies_and_pickle_says_why_not():
    want = read_capture(HEALTHY)
    got = read_capture(io.BytesIO(gzip.compress(HEALTHY.read_bytes())))
    sub = got[got["payload_caplen"].fillna(0) > 0].copy()
    assert sub.probekit.payloads().tolist() == want.loc[sub.index].probekit.payloads().tolist()
    back = pickle.loads(pickle.dumps(sub))
    with pytest.raises(CaptureError, match="no longer held"):
        back.probekit.payloads()


def test_text_mode_file_object_is_a_clear_error(tmp_path):
    with open(HEALTHY, encoding="latin-1") as f, pytest.raises(CaptureError, match="binary mode"):
        read_capture(f)


def _feed_fifo(fifo: Path, data: bytes, close_early: int | None = None):
    def run():
        with open(fifo, "wb") as f:
            f.write(data if close_early is None else data[:close_early])
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("compress", [False, True])
def test_named_pipe(tmp_path, compress):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    data = HEALTHY.read_bytes()
    t = _feed_fifo(fifo, gzip.compress(data) if compress else data)
    got = read_capture(fifo)
    t.join(5)
    want = read_capture(HEALTHY)
    same(got, want)
    assert got.probekit.payloads().tolist() == want.probekit.payloads().tolist()


def test_pipe_closing_mid_record_salvages(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    data = HEALTHY.read_bytes()
    t = _feed_fifo(fifo, data, close_early=100_000)
    with pytest.warns(CaptureWarning, match=rf"{fifo}: byte offset \d+: file ends inside a record"):
        got = read_capture(fifo)
    t.join(5)
    want = read_capture(HEALTHY)
    assert 0 < len(got) < len(want)
    same(got, want.iloc[:len(got)])
    t = _feed_fifo(fifo, data, close_early=100_000)
    with pytest.raises(CaptureError, match="ends inside a record"):
        read_capture(fifo, strict=True)
    t.join(5)


def _cli(args, stdin: bytes | None = None):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "probekit", *args], input=stdin, capture_output=True, env=env,
                          timeout=300)


def test_cli_reads_stdin_for_every_reading_command(tmp_path):
    data = gzip.compress(HEALTHY.read_bytes())
    r = _cli(["summary", "-", "--json"], stdin=data)
    assert r.returncode == 0, r.stderr
    f = _cli(["summary", str(HEALTHY), "--json"])
    a, b = json.loads(r.stdout), json.loads(f.stdout)
    assert a.pop("path") == "<stdin>"
    b.pop("path")
    assert a == b
    for cmd in (["metrics", "-", "--csv"], ["payload", "-", "--json"], ["timing", "-", "--json"],
                ["tcp", "-", "--json"], ["fingerprint", "-", "--json"]):
        r = _cli(cmd, stdin=data)
        f = _cli([cmd[0], str(HEALTHY), *cmd[2:]])
        assert r.returncode == 0, (cmd, r.stderr)
        assert r.stdout == f.stdout, cmd
    out = tmp_path / "p.parquet"
    r = _cli(["read", "-", "-o", str(out)], stdin=data)
    assert r.returncode == 0, r.stderr
    from probekit.schema import packets_from_storage
    same(packets_from_storage(pd.read_parquet(out)), read_capture(HEALTHY))
    r = _cli(["convert", "-", "-o", str(tmp_path / "ds")], stdin=data)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["converted"] == ["stdin"]


def test_cli_stdin_errors_are_one_line():
    r = _cli(["summary", "-"], stdin=b"\x1f\x8b\x08\x00" + b"\xff" * 64)
    assert r.returncode == 1
    lines = r.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("probekit: error: <stdin>") and "gzip" in lines[0]
    r = _cli(["summary", "-"], stdin=b"")
    assert r.returncode == 1 and "empty" in r.stderr.decode()


def test_cli_named_pipe(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    t = _feed_fifo(fifo, HEALTHY.read_bytes())
    r = _cli(["metrics", str(fifo), "--csv"])
    t.join(5)
    assert r.returncode == 0, r.stderr
    assert r.stdout == _cli(["metrics", str(HEALTHY), "--csv"]).stdout


def test_the_dpkt_backend_reads_streams_and_compressed_files(tmp_path):
    want = read_capture(HEALTHY, backend="dpkt")
    got = read_capture(io.BytesIO(HEALTHY.read_bytes()), backend="dpkt")
    same(got, want)
    assert got.probekit.payloads().tolist() == want.probekit.payloads().tolist()
    p = tmp_path / "h.zst"
    p.write_bytes(zstandard.ZstdCompressor().compress(HEALTHY.read_bytes()))
    got = read_capture(p, backend="dpkt")
    same(got, want)
    assert got.attrs["compression"] == "zstd"
    assert got.probekit.payloads().tolist() == want.probekit.payloads().tolist()


def test_a_stream_larger_than_any_buffer_step(tmp_path):
    """40 MB through a pipe-like object: the held buffer grows many times (by mremap) without loss."""
    raw = HEALTHY.read_bytes()
    big = raw + raw[24:] * 150
    p = tmp_path / "big.pcap"
    p.write_bytes(big)
    want = read_capture(p)
    got = read_capture(OnlyRead(big, step=1 << 20))
    same(got, want)
    last = got.iloc[-5:]
    assert last.probekit.payloads().tolist() == want.iloc[-5:].probekit.payloads().tolist()


def test_the_readers_map_is_kept_for_the_tables_analyses_and_only_for_that_file(tmp_path, monkeypatch):
    """read_capture keeps its memory map of a plain file for the re-opens of the table's bytes
    (capture_bytes: checksums, payloads) instead of mapping and faulting it in again; a file
    rewritten, replaced, deleted or above the size limit is mapped anew (or raises), and no more than
    KEEP_MAPPED_FILES stay mapped."""
    from probekit import _io
    p = tmp_path / "a.pcap"
    orig = HEALTHY.read_bytes()
    p.write_bytes(orig)
    _io.kept_maps.clear()
    df = read_capture(p)
    with open(p, "rb") as f:
        assert _io.kept_maps.get(_io._KeptMaps.key(f)) is not None, "the reader kept its map"
    with _io.capture_bytes(df.attrs["path"]) as b1, _io.capture_bytes(df.attrs["path"]) as b2:
        assert b1 is b2, "the reader's map, not a new one"
        assert bytes(b1[:64]) == orig[:64]
    row = int(df["payload_off"].notna().to_numpy().argmax())
    off = int(df["payload_off"].iloc[row])
    assert df.probekit.payloads().iloc[row][0] == orig[off]
    # rewritten in place, same size: another modification time, so another key (the old map is shared
    # and would show the new bytes too: identity is what is tested)
    data = bytearray(orig)
    data[off] ^= 0xFF
    p.write_bytes(bytes(data))
    os.utime(p, ns=(1, 1))
    with _io.capture_bytes(df.attrs["path"]) as b3:
        assert b3 is not b1 and b3[off] == data[off]
    # replaced by another file (another inode) with other bytes: the old inode's map must not serve it
    other = bytearray(data)
    other[off] ^= 0x0F
    q = tmp_path / "b.pcap"
    q.write_bytes(bytes(other))
    os.replace(q, p)
    with _io.capture_bytes(str(p)) as b4:
        assert b4 is not b3 and b4[off] == other[off] != b3[off]
    assert df.probekit.payloads().iloc[row][0] == other[off]
    # deleted while its map is kept: the path raises; the map is let go at the next put
    p.unlink()
    with pytest.raises(CaptureError), _io.capture_bytes(str(p)):
        pass
    files = []
    for k in range(_io.KEEP_MAPPED_FILES + 1):
        r = tmp_path / f"c{k}.pcap"
        r.write_bytes(orig)
        read_capture(r)
        files.append(r)
    assert len(_io.kept_maps._maps) == _io.KEEP_MAPPED_FILES, "the least recently used went"
    assert all(os.path.exists(path) for _, path in _io.kept_maps._maps.values()), "the deleted file went"
    with open(files[0], "rb") as f:
        assert _io.kept_maps.get(_io._KeptMaps.key(f)) is None
    monkeypatch.setattr(_io, "KEEP_MAPPED_BYTES", 100)  # a file too large to keep: mapped per use
    _io.kept_maps.clear()
    read_capture(files[0])
    with _io.capture_bytes(str(files[0])) as b5, _io.capture_bytes(str(files[0])) as b6:
        assert b5 is not b6
    assert not _io.kept_maps._maps
