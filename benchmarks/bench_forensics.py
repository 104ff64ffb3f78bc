"""Forensics cost beside the read, in one run: read a 1 M-packet probe capture (benchmarks/bench_read.py),
then classify the streams, attribute ICMP errors and reassemble fragments; prints each step and the ratio
of the three together to the read. The shipped 1 M capture has no fragments and no errors, so a second
file is measured too: the ``fragmenting-path+unreachable+background`` scenario at a high rate (every big
probe in 6 fragments each way, errors after the target goes down).

    python benchmarks/bench_forensics.py [--packets 1000000]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench_read import build

import probekit
from probekit.analysis.datagrams import datagrams, reassembled_packets
from probekit.analysis.errors_icmp import attribute_errors
from probekit.analysis.streams import other_traffic, select_probe_streams, streams
from probekit.synth import synth


def run(path: Path) -> dict:
    probekit.read_capture(path)          # page cache and compiled kernels warm
    steps = {}
    t = time.perf_counter()
    df = probekit.read_capture(path)
    steps["read"] = time.perf_counter() - t
    t = time.perf_counter()
    d = datagrams(df)
    r = reassembled_packets(df, d)
    steps["reassembly (datagrams + matcher view)"] = time.perf_counter() - t
    probes = probekit.match_probes(r)
    t = time.perf_counter()
    st = streams(r, probes)
    select_probe_streams(probes, st)
    other_traffic(r, st)
    steps["streams (classify, select, other traffic)"] = time.perf_counter() - t
    t = time.perf_counter()
    attribute_errors(df, probes)      # empty without the decoder's quoted_* columns
    steps["error attribution"] = time.perf_counter() - t
    steps["_n"] = (len(df), len(probes), len(d), "quoted_src" in df.columns)
    return steps


def show(name, steps):
    n, p, dg, quoted = steps.pop("_n")
    print(f"\n{name}: {n:,} packets, {p:,} probes, {dg:,} fragmented datagrams"
          + ("" if quoted else " (no quoted_* columns: error attribution returns at once)"))
    for k, v in steps.items():
        print(f"  {k:<45}{v:8.3f} s")
    extra = sum(v for k, v in steps.items() if k != "read")
    print(f"  {'forensics in all':<45}{extra:8.3f} s  = {extra / steps['read']:.2f} × the read")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--packets", type=int, default=1_000_000)
    args = ap.parse_args()
    show("probe capture", run(build(args.packets)["pcap"]))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "frag.pcap"
        rate = max(2.0, args.packets / 300 / 2 / 16)      # about args.packets / 2 frames in 300 s
        synth("fragmenting-path+unreachable+background", path, seed=1, rate_per_s=rate,
                             size_change_at_s=0.0, size_apply_delay_s=0.0)
        show("fragmenting-path+unreachable+background", run(path))


if __name__ == "__main__":
    main()
