"""UDP probes cut by a rotation: real UDP recordings (traceroute/mtr/scamper tracing to a closed port,
the lab's mixed capture, and DNS from the public corpus) split into two rotated files at every seam that
puts a request in one file and its answer (a UDP reply, the destination's ICMP port unreachable) in the
next. The Parquet dataset paths give the probes of the whole file read in memory: ``scale.dataset_probes``
(per file, then stitched; its frames are each file's own) and ``drive.dataset`` (windows of files, frames
across the files)."""
from __future__ import annotations

import struct
from pathlib import Path

import pandas as pd
import pytest

import probekit
from helpers.corpus import REAL, require_real_captures
from probekit import scale
from probekit.drive.dataset import dataset_analyses
from probekit.schema import PROBE_COLUMNS

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_UDP = ["captures/tools/traceroute-udp.pcap", "captures/tools/mtr-udp.pcap",
               "captures/tools/scamper-trace.pcap", "captures/lab/lab-mixed.pcap"]
REAL_DNS = ["dpkt/dns_icmp.pcap", "zeek/wikipedia.pcap"]


def pcap_records(path: Path) -> tuple[bytes, list[bytes]]:
    """A classic pcap's file header and its records, bytes as they are (what tcpdump -C writes per file)."""
    b = path.read_bytes()
    order = "<" if b[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    pos, out = 24, []
    while pos + 16 <= len(b):
        incl = struct.unpack(order + "I", b[pos + 8:pos + 12])[0]
        out.append(b[pos:pos + 16 + incl])
        pos += 16 + incl
    return b[:24], out


def seams(probes: pd.DataFrame) -> list[int]:
    """Every k such that cutting after frame k puts a UDP probe's request and its answer in two files."""
    u = probes[(probes["protocol"] == "udp") & probes["reply_frame"].notna()]
    return sorted({k for a, b in zip(u["request_frame"], u["reply_frame"]) for k in range(int(a), int(b))})


def identity(t: pd.DataFrame, frames: bool) -> pd.DataFrame:
    cols = [c for c in PROBE_COLUMNS if frames or not c.endswith("_frame")]
    return t[cols].astype(str).reset_index(drop=True)


def check_every_seam(path: Path, tmp_path: Path):
    whole = probekit.match_probes(probekit.read_capture(path))
    cuts = seams(whole)
    assert cuts, "the recording has UDP probes answered"
    head, recs = pcap_records(path)
    for k in cuts:
        d = tmp_path / f"cut{k}"
        d.mkdir()
        files = [d / "rot-0.pcap", d / "rot-1.pcap"]
        files[0].write_bytes(head + b"".join(recs[:k]))
        files[1].write_bytes(head + b"".join(recs[k:]))
        alone = probekit.match_probes(probekit.read_capture(files[0]))
        assert not identity(alone, False).equals(identity(whole[whole["request_frame"] <= k], False)), \
            f"cut after {k}: the first file alone cannot judge the probe"
        scale.convert(files, d / "ds")
        got = scale.dataset_probes(d / "ds", scheduler="synchronous")
        pd.testing.assert_frame_equal(identity(got, False), identity(whole, False), obj=f"dataset_probes, cut {k}")
        got = dataset_analyses(d / "ds", scheduler="synchronous", analyses=("probes",))["probes"]
        pd.testing.assert_frame_equal(identity(got, True), identity(whole, True), obj=f"dataset_analyses, cut {k}")


@pytest.mark.parametrize("rel", SHIPPED_UDP)
def test_udp_probes_cut_by_rotation_shipped(rel, tmp_path):
    check_every_seam(ROOT / rel, tmp_path)


@pytest.mark.parametrize("rel", REAL_DNS)
def test_dns_cut_by_rotation_public_corpus(rel, tmp_path):
    require_real_captures()
    check_every_seam(REAL / rel, tmp_path)
