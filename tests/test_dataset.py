"""The Dask dataset path gives the in-memory numbers analysis by analysis: the rotated fixture of
test_scale (probes answered in the next file, TCP connections cut by the rotation) converted to Parquet
and analysed through probekit.drive.dataset, against read_captures of the same files."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import probekit
from probekit import scale
from probekit.drive.dataset import dataset_analyses
from probekit.schema import (
    PROBE_COLUMNS as PROBE_COLS,  # every column, frame numbers across the files too
)
from probekit.synth import synth


def same(a: pd.DataFrame, b: pd.DataFrame, what: str, cols=None):
    a = a.reset_index(drop=True)
    b = b.reset_index(drop=True)
    if cols is not None:
        a, b = a[cols], b[cols]
    assert list(a.columns) == list(b.columns), what
    x = a.astype(object).where(a.notna(), None)
    y = b.astype(object).where(b.notna(), None)
    assert len(x) == len(y), (what, len(x), len(y))
    for c in x.columns:
        u, v = x[c].tolist(), y[c].tolist()
        assert [str(e) for e in u] == [str(e) for e in v], (what, c)


@pytest.fixture(scope="module")
def rotated(tmp_path_factory):
    """Four rotated files of one lossy run, each cut right before a SYN/ACK (or a prober's RST): a probe
    and its TCP connection start in one file and end in the next."""
    import dpkt
    d = tmp_path_factory.mktemp("rotcut")
    whole = d / "whole.pcap"
    synth("lossy", whole, seed=7, duration_s=120, rtt_median_ms=150, rtt_jitter_ms=120)
    df = probekit.read_capture(whole)
    synack = np.flatnonzero((df["tcp_flags"] == 0x12).fillna(False).to_numpy())
    rst = np.flatnonzero((df["tcp_flags"] == 0x04).fillna(False).to_numpy())
    cuts = [int(synack[len(synack) // 4]), int(rst[len(rst) // 2]), int(synack[3 * len(synack) // 4])]
    with open(whole, "rb") as f:
        pkts = list(dpkt.pcap.Reader(f))
    bounds = [0, *cuts, len(pkts)]
    for i in range(4):
        with open(d / f"rot-{i}.pcap", "wb") as f:
            w = dpkt.pcap.Writer(f)
            for ts, buf in pkts[bounds[i]:bounds[i + 1]]:
                w.writepkt(buf, ts)
    whole.unlink()
    return d


@pytest.fixture(scope="module")
def both(rotated, tmp_path_factory):
    ds = tmp_path_factory.mktemp("ds") / "ds"
    scale.convert(str(rotated / "rot-*.pcap"), ds)
    df = scale.read_captures(str(rotated / "rot-*.pcap"))
    probes = df.probekit.probes()
    return ds, df, probes


def test_every_analysis_equals_in_memory(both):
    ds, df, mem = both
    got = dataset_analyses(ds, scheduler="synchronous")
    span = df.probekit.span_ns()
    assert got["span_ns"] == span and got["packets"] == len(df)
    same(got["probes"], mem, "probes", list(PROBE_COLS))
    pd.testing.assert_frame_equal(got["probes"], mem, check_exact=True)
    per_file = sum((probekit.read_capture(p).probekit.probes()["outcome"] == "unknown").sum()
                   for p in sorted(ds.parent.parent.glob("rotcut*/rot-*.pcap"))[:-1])
    assert per_file > 0, "the fixture leaves probes a single file cannot judge"
    same(got["periods"], probekit.period_metrics(mem, 30), "periods")
    same(got["probe_periods"], probekit.period_metrics(mem, 30, by=probekit.STREAM_KEYS), "probe_periods")
    same(got["timing"], probekit.timing_summary(mem, span_ns=span), "timing")
    same(got["gaps"], probekit.find_gaps(mem, span_ns=span), "gaps")
    same(got["shares"], probekit.analysis.sources.source_shares(mem), "shares")
    same(got["balance"], probekit.balance_test(mem), "balance")
    same(got["alternation"], probekit.alternation(mem), "alternation")
    same(got["source_quality"], probekit.analysis.sources.source_quality(mem), "source_quality")
    same(got["source_rate"], probekit.analysis.sources.source_rate(mem, 30), "source_rate")
    same(got["size_changes"], probekit.size_changes(mem), "size_changes")
    same(got["payload_verdicts"], probekit.payload_verdicts(mem, probekit.request_payloads(df, mem)), "verdicts")
    same(got["fingerprints"], probekit.fingerprint(df, mem), "fingerprints")
    conns = probekit.tcp_connections(df)
    same(got["connections"], conns, "connections")


def test_connections_cut_by_rotation_are_stitched(both, rotated):
    """Without the stitch a connection cut by the rotation would be two half connections."""
    ds, df, _ = both
    per_file = sum(len(probekit.tcp_connections(probekit.read_capture(p))) for p in sorted(rotated.glob("rot-*.pcap")))
    whole = probekit.tcp_connections(df)
    assert per_file > len(whole), "the fixture cuts connections"
    got = dataset_analyses(ds, scheduler="synchronous", analyses=("connections",))
    assert len(got["connections"]) == len(whole)


def test_on_a_cluster_by_its_tcp_address(both):
    """``scheduler="tcp://host:port"`` (here a LocalCluster's address, as `dask scheduler` would give)."""
    from distributed import LocalCluster
    ds, df, mem = both
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tcp://")
        got = dataset_analyses(ds, scheduler=cluster.scheduler_address,
                               analyses=("probes", "periods", "fingerprints", "connections"))
    same(got["periods"], probekit.period_metrics(mem, 30), "periods")
    same(got["fingerprints"], probekit.fingerprint(df, mem), "fingerprints")
    same(got["connections"], probekit.tcp_connections(df), "connections")


def test_a_4_tuple_reused_files_apart_is_one_connection_as_in_memory(tmp_path):
    """A 4-tuple seen again files later: the dataset path recomputes it over all its files, so it gets the
    in-memory answer (with Zeek's timers: the attempt timer expired, so the later SYN is a new connection)."""
    from helpers import capwriter as W
    from test_payload_tcp import _syn_frames
    for i, port in enumerate((5000, 6000, 5000)):
        frames = [(ts + 100 * i, us, data) for ts, us, data in _syn_frames([b""], 1024, lambda k, p=port: p,
                                                                           lambda k, i=i: 1000 + i)]
        (tmp_path / f"r-{i}.pcap").write_bytes(W.pcap(frames))
    mem = probekit.tcp_connections(scale.read_captures(str(tmp_path / "r-*.pcap")))
    scale.convert(str(tmp_path / "r-*.pcap"), tmp_path / "ds")
    got = dataset_analyses(tmp_path / "ds", scheduler="synchronous", analyses=("connections",))["connections"]
    assert len(mem) == 3 and mem["syns"].tolist() == [1, 1, 1]
    same(got, mem, "connections")
