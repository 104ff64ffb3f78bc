"""Analysis cost beside read cost, in one run: read a 1 M-packet probe capture, then match probes,
per-period metrics, timing and per-source analyses; prints each step and the ratio to the read.

    python benchmarks/bench_analysis.py [--packets 1000000]
"""
from __future__ import annotations

import argparse
import time

from bench_read import build

import probekit


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--packets", type=int, default=1_000_000)
    args = ap.parse_args()
    path = build(args.packets)["pcap"]
    probekit.read_capture(path)  # warm the page cache and the compiled kernels
    steps = {}
    t = time.perf_counter()
    df = probekit.read_capture(path)
    steps["read"] = time.perf_counter() - t
    t = time.perf_counter()
    probes = probekit.match_probes(df)
    steps["match"] = time.perf_counter() - t
    t = time.perf_counter()
    probekit.period_metrics(probes, 30)
    probekit.period_metrics(probes, 60, by=probekit.PROBE_LEVEL)
    steps["metrics (30 s per ENI + 60 s per probe)"] = time.perf_counter() - t
    t = time.perf_counter()
    probekit.timing_summary(probes, span_ns=df.probekit.span_ns())
    steps["timing"] = time.perf_counter() - t
    t = time.perf_counter()
    probekit.balance_test(probes), probekit.alternation(probes), probekit.source_quality(probes)
    probekit.source_rate(probes, 30)
    steps["per-source"] = time.perf_counter() - t
    t = time.perf_counter()
    probekit.size_changes(probes)
    steps["size changes"] = time.perf_counter() - t
    analysis = sum(v for k, v in steps.items() if k != "read")
    t = time.perf_counter()
    payloads = probekit.request_payloads(df, probes)
    probekit.payload_verdicts(probes, payloads)
    steps2 = {"payload randomness (all requests)": time.perf_counter() - t}
    t = time.perf_counter()
    probekit.tcp_connections(df)
    steps2["TCP conn_state/history (all connections)"] = time.perf_counter() - t
    print(f"\n{len(df):,} packets, {len(probes):,} probes")
    for k, v in steps.items():
        print(f"  {k:<42}{v:8.3f} s")
    print(f"  {'analyses I (match..size changes)':<42}{analysis:8.3f} s  = {analysis / steps['read']:.2f} × the read")
    for k, v in steps2.items():
        print(f"  {k:<42}{v:8.3f} s  = {v / steps['read']:.1f} × the read")


if __name__ == "__main__":
    main()
