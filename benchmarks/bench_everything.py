"""The whole report's analyses beside the read, in one run (issue 16: total ≤ 6× the read).

On bench_read's probe capture of 1 M packets (and 0.1 M; 10 M with --ten-million) this opens a session
(``probekit.open_capture``), times the read, then every table the report and its notebooks show, in
the order they need one another, each on the session that already holds what it depends on (so each
step is its own cost and the steps add up to the report's). Best of --repeat fresh sessions per step;
prints each step's seconds and its ratio to the read, and the total; beside them the same in CPU
seconds of this process (on a machine shared with other work the wall clock also counts the waits for a
core; every step here runs on one thread).

    python benchmarks/bench_everything.py [--repeat 3] [--ten-million] [--data DIR]

Captures bench_read.build has not made yet are generated into --data (default build/bench-data, not
benchmarks/data, which may be another tree's).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_read  # noqa: E402

import probekit  # noqa: E402

# (label, what the session computes): in dependency order; the report's notebooks and its summary read these
STEPS = [
    ("datagrams (fragments reassembled)", lambda c: c.datagrams),
    ("match (all requests, on the datagrams)", lambda c: c.all_probes),
    ("ICMP errors (quotes, outcomes)", lambda c: c.icmp_errors),
    ("streams (fingerprints of all requests, kinds)", lambda c: c.streams),
    ("probes (probe streams selected)", lambda c: c.probes),
    ("periods (per source stream)", lambda c: c.periods),
    ("probe periods (per Network Monitor probe)", lambda c: c.probe_periods),
    ("inter-arrivals", lambda c: c.inter_arrivals),
    ("timing summary", lambda c: c.timing),
    ("gaps", lambda c: c.gaps),
    ("source shares", lambda c: c.shares),
    ("source balance", lambda c: c.balance),
    ("source alternation", lambda c: c.alternation),
    ("source quality", lambda c: c.source_quality),
    ("source rate (+ its table)", lambda c: (c.source_rate, c.source_rate_table)),
    ("size changes", lambda c: c.default_size_changes),
    ("payload bytes (one gather)", lambda c: c.payload_buffer),
    ("payload tests (per payload)", lambda c: c.payload_tests),
    ("payload verdicts (per stream)", lambda c: c.payload_verdicts),
    ("payloads as bytes objects (plots)", lambda c: c.payloads),
    ("fingerprints (probe streams)", lambda c: c.fingerprints),
    ("connections (Zeek conn.log)", lambda c: c.connections),
    ("connection kinds", lambda c: c.connection_kinds),
    ("path MTU", lambda c: c.mtu),
    ("period errors", lambda c: c.period_errors),
    ("error reporters", lambda c: c.error_reporters),
    ("other traffic", lambda c: c.other_traffic),
    ("CloudWatch audit (none without an export)", lambda c: c.cloudwatch_audit),
    ("summary (findings, headline)", lambda c: c.summary()),
]
PAYLOAD = ("payload bytes (one gather)", "payload verdicts (per stream)")
SHARED = bench_read.DATA


def capture(n_packets: int, data: Path) -> Path:
    """bench_read's capture of n packets: from benchmarks/data if it is there, else generated into ``data``."""
    bench_read.DATA = SHARED
    if not (SHARED / f"probes-{n_packets}.pcap").exists():
        data.mkdir(parents=True, exist_ok=True)
        bench_read.DATA = data
    return bench_read.build(n_packets)["pcap"]


def run(path: Path, repeat: int) -> None:
    probekit.open_capture(path, cloudwatch=False).summary()          # compile / warm every kernel and the page cache
    inf = float("inf")
    read, read_cpu = inf, inf
    best = {k: [inf, inf] for k, _ in STEPS}
    size = None
    for _ in range(repeat):
        cap = probekit.open_capture(path, cloudwatch=False)
        t0, c0 = time.perf_counter(), time.process_time()
        df = cap.packets
        read, read_cpu = min(read, time.perf_counter() - t0), min(read_cpu, time.process_time() - c0)
        for k, f in STEPS:
            t0, c0 = time.perf_counter(), time.process_time()
            f(cap)
            b = best[k]
            b[0], b[1] = min(b[0], time.perf_counter() - t0), min(b[1], time.process_time() - c0)
        size = (len(df), len(cap.probes))
    assert size is not None
    load = os.getloadavg()
    print(f"\n{path.name}: {size[0]:,} packets, {size[1]:,} probes; read {read:.3f} s ({read_cpu:.3f} s CPU); "
          f"best of {repeat}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"  {'step':<50}{'s':>8}{'× read':>9}{'CPU s':>9}{'× read':>9}")

    def line(label, wall, cpu, note=""):
        print(f"  {label:<50}{wall:8.3f}{wall / read:9.2f}{cpu:9.3f}{cpu / read_cpu:9.2f}{note}")

    for k, _ in STEPS:
        line(k, *best[k])
    line("payload verdicts from the file (bytes + verdicts)", sum(best[k][0] for k in PAYLOAD),
         sum(best[k][1] for k in PAYLOAD), "   (issue 16: ≤ 2)")
    line("all the analyses above", sum(b[0] for b in best.values()), sum(b[1] for b in best.values()),
         "   (issue 16: ≤ 6)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--ten-million", action="store_true", help="also the 10 M-packet capture (generated once)")
    ap.add_argument("--data", type=Path, default=HERE.parent / "build" / "bench-data",
                    help="where captures missing from benchmarks/data are generated")
    args = ap.parse_args()
    sizes = [100_000, 1_000_000] + ([10_000_000] if args.ten_million else [])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", probekit.CaptureWarning)
        for n in sizes:
            run(capture(n, args.data), 1 if n >= 10_000_000 else args.repeat)


if __name__ == "__main__":
    main()
