"""The reader under mutation: real captures with flipped, cut, inserted and duplicated bytes. Only
CaptureError may escape, and whatever is returned follows the schema and points inside the file.
A fixed-size run here; `python benchmarks/fuzz_reader.py` runs a long one (and atheris if installed)."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import probekit
from helpers.corpus import REAL, real_captures
from probekit.schema import check_packets

ROOT = Path(__file__).resolve().parents[1]
SEEDS = sorted(p for p in (ROOT / "captures").iterdir() if p.suffix in (".pcap", ".pcapng"))
SMALL = [REAL / r for r in real_captures() if (REAL / r).stat().st_size <= 64 * 1024]
CORPUS = [p.read_bytes()[:20000] for p in SEEDS] + [p.read_bytes() for p in SMALL]
EXAMPLES = int(os.environ.get("PROBEKIT_FUZZ_EXAMPLES", "300"))


@st.composite
def mutated(draw):
    data = bytearray(draw(st.sampled_from(CORPUS)))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "dup", "zero", "len"]))
        n = len(data)
        if n == 0:
            break
        at = draw(st.integers(0, n - 1))
        if kind == "flip":
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "cut":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=32))
        elif kind == "dup":
            data[at:at] = data[at:at + draw(st.integers(1, 64))]
        elif kind == "zero":
            data[at:at + 4] = b"\0\0\0\0"
        else:  # a plausible-but-wrong length field: large, small or unaligned
            data[at:at + 4] = draw(st.sampled_from([b"\xff\xff\xff\x7f", b"\x00\x00\x01\x00", b"\x15\x00\x00\x00",
                                                    b"\x04\x00\x00\x00", b"\x00\x00\x00\x00"]))
    return bytes(data)


def check_one(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", probekit.CaptureWarning)
        try:
            df = probekit.read_capture(path)
        except probekit.CaptureError as e:
            assert e.path == str(path) and e.reason
            return
    check_packets(df)
    n = len(data)
    assert (df["frame"].to_numpy() == np.arange(1, len(df) + 1)).all()
    off = df["payload_off"].to_numpy("int64", na_value=0)
    cap = df["payload_caplen"].to_numpy("int64", na_value=0)
    assert (off + cap <= n).all() and (cap >= 0).all()
    assert (df["caplen"].to_numpy("int64") <= n).all()
    # the analyses take whatever the reader gave
    probes = df.probekit.probes()
    probekit.period_metrics(probes, 30)
    probekit.tcp_connections(df)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=mutated())
def test_mutated_captures_raise_only_capture_errors(tmp_path_factory, data):
    check_one(tmp_path_factory.mktemp("fz") / "x.pcap", data)


@pytest.mark.parametrize("tail", [b"\x01", b"\x01\x02", b"\x01\x02\x03", b"\x01" * 11])
def test_pcapng_with_a_few_trailing_bytes(tmp_path, tail):
    from helpers import capwriter as W
    p = tmp_path / "idb-then-tail.pcapng"
    p.write_bytes(W.shb() + W.idb(1) + tail)
    with pytest.warns(probekit.CaptureWarning, match="file ends inside a block header"):
        assert len(probekit.read_capture(p)) == 0
    src = (ROOT / "captures" / "lossy.pcapng").read_bytes()
    p = tmp_path / "t.pcapng"
    p.write_bytes(src + tail)
    with pytest.warns(probekit.CaptureWarning, match="file ends inside a block header"):
        df = probekit.read_capture(p)
    assert len(df) == len(probekit.read_capture(ROOT / "captures" / "lossy.pcapng"))
