"""Many captures: read_captures, the Parquet dataset (crash-safe appends) and the Dask path, which must
give the in-memory numbers, also for probes whose reply landed in the next rotated file."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import probekit
from probekit import scale
from probekit.synth import synth

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def rotated(tmp_path_factory):
    """Four 'tcpdump -G 30' files of one lossy run with 300 ms RTT jitter: probes at each file's end are
    answered in the next file."""
    import dpkt
    d = tmp_path_factory.mktemp("rot")
    whole = d / "whole.pcap"
    synth("lossy", whole, seed=7, duration_s=120, rtt_median_ms=150, rtt_jitter_ms=120)
    with open(whole, "rb") as f:
        pkts = list(dpkt.pcap.Reader(f))
    t0 = pkts[0][0]
    for i in range(4):  # what tcpdump -G 30 would have written
        with open(d / f"rot-{i}.pcap", "wb") as f:
            w = dpkt.pcap.Writer(f)
            for ts, buf in pkts:
                if (i == 3 and ts >= t0 + 90) or t0 + 30 * i <= ts < t0 + 30 * (i + 1):
                    w.writepkt(buf, ts)
    whole.unlink()
    return d


def test_read_captures_is_one_table(rotated):
    t = probekit.read_captures(str(rotated / "rot-*.pcap"))
    parts = [probekit.read_capture(p) for p in sorted(rotated.glob("rot-*.pcap"))]
    assert len(t) == sum(len(p) for p in parts) and list(t["capture"].cat.categories) == [f"rot-{i}.pcap" for i in range(4)]
    assert (t["frame"].to_numpy() == np.arange(1, len(t) + 1)).all()
    assert t["ts_ns"].is_monotonic_increasing
    first = parts[1].probekit.payloads().tolist()
    assert t[t["capture"] == "rot-1.pcap"].probekit.payloads().tolist() == first
    probes = t.probekit.probes()
    per_file = sum((p.probekit.probes()["outcome"] == "unknown").sum() for p in parts[:-1])
    assert per_file > 0, "the fixture really splits probes across files"
    assert (probes["outcome"] == "unknown").sum() < per_file


def test_convert_is_idempotent_and_crash_safe(rotated, tmp_path):
    ds = tmp_path / "ds"
    files = sorted(rotated.glob("rot-*.pcap"))
    r = scale.convert(files[:2], ds)
    assert r["converted"] == ["rot-0.pcap", "rot-1.pcap"]
    # a crash mid-conversion: a half-written hidden temporary file, rot-2 not converted
    (ds / "capture=rot-2.pcap").mkdir()
    (ds / "capture=rot-2.pcap" / ".tmp-999.parquet").write_bytes(b"PAR1 half a file")
    import pyarrow.dataset as pads
    assert pads.dataset(ds, format="parquet", partitioning="hive").count_rows() == sum(
        len(probekit.read_capture(f)) for f in files[:2]), "the dataset stays readable"
    r = scale.convert(files, ds)
    assert r["converted"] == ["rot-2.pcap", "rot-3.pcap"] and r["skipped"] == ["rot-0.pcap", "rot-1.pcap"]
    manifest = json.loads((ds / scale.MANIFEST).read_text())
    assert sorted(manifest) == [f.name for f in files]


@pytest.mark.parametrize("scheduler", ["synchronous", None])
def test_dask_path_gives_the_in_memory_numbers(rotated, tmp_path, scheduler):
    ds = tmp_path / "ds"
    scale.convert(str(rotated / "rot-*.pcap"), ds)
    mem = scale.read_captures(str(rotated / "rot-*.pcap")).probekit.probes()
    dsk = scale.dataset_probes(ds, scheduler=scheduler)
    assert len(dsk) == len(mem)
    assert (dsk["outcome"].astype(str).to_numpy() == mem["outcome"].astype(str).to_numpy()).all()
    assert np.allclose(dsk["rtt_us"].fillna(-1), mem["rtt_us"].fillna(-1))
    for period in (30, 60):
        a = probekit.period_metrics(dsk, period)
        b = probekit.period_metrics(mem, period)
        cols = ["sent", "answered", "late", "loss_pct", "rtt_median_us", "rtt_p95_us", "status"]
        assert a[cols].astype(str).equals(b[cols].astype(str))
    ta = probekit.timing_summary(dsk)
    tb = probekit.timing_summary(mem)
    assert np.allclose(ta["rate_per_s"], tb["rate_per_s"]) and probekit.balance_test(dsk).equals(probekit.balance_test(mem))


def test_cli_convert_and_dataset_metrics(rotated, tmp_path):
    ds = tmp_path / "ds"
    p = subprocess.run([sys.executable, "-m", "probekit", "convert", *map(str, sorted(rotated.glob("rot-*.pcap"))),
                        "-o", str(ds)], capture_output=True, text=True, check=True)
    assert len(json.loads(p.stdout)["converted"]) == 4
    p = subprocess.run([sys.executable, "-m", "probekit", "dataset-metrics", str(ds), "--scheduler", "synchronous",
                        "--json", "--per-probe"], capture_output=True, text=True, check=True)
    rows = json.loads(p.stdout)
    assert {r["protocol"] for r in rows} == {"icmp", "tcp"} and all(r["sent"] > 0 for r in rows)
