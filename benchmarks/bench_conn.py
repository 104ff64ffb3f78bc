"""Connection table cost beside read cost, in one run: read the probe capture, then the old per-packet
Python tcp_connections (probekit 0.1, loaded from git history), the new compiled TCP+UDP+ICMP table,
and tshark's ``-z conv,tcp`` on the same file; prints seconds and the ratio to the read.

    python benchmarks/bench_conn.py [--packets 1000000] [--no-old]
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path

from bench_read import build

import probekit
from probekit.analysis.connections import connections

ROOT = Path(__file__).resolve().parents[1]
OLD = "d9b276f"  # the last commit with the per-packet Python state machine


def _old_tcp_connections():
    try:
        src = subprocess.run(["git", "-C", str(ROOT), "show", f"{OLD}:probekit/analysis/tcp.py"],
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    mod = types.ModuleType("probekit.analysis._old_tcp")
    mod.__package__ = "probekit.analysis"
    sys.modules[mod.__name__] = mod
    src = src.replace("from ..capture._kernels import njit", "from numba import njit").replace("@njit(cache=True)", "@njit")
    exec(compile(src, "old_tcp.py", "exec"), mod.__dict__)
    return mod.tcp_connections


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--no-old", action="store_true", help="skip the old Python state machine (slow)")
    args = ap.parse_args()
    path = build(args.packets)["pcap"]
    df = probekit.read_capture(path)  # warm the page cache and the compiled kernels
    connections(df.head(1000))
    steps = {}

    def best(f, n=3):  # best of n: the machine may be shared
        r = []
        for _ in range(n):
            t = time.perf_counter()
            out = f()
            r.append(time.perf_counter() - t)
        return min(r), out
    steps["read (best of 3)"], df = best(lambda: probekit.read_capture(path))
    old = None if args.no_old else _old_tcp_connections()
    if old is not None:
        t = time.perf_counter()
        n_old = len(old(df))
        steps[f"old tcp_connections (Python loop, {n_old:,} TCP)"] = time.perf_counter() - t
    dt, c = best(lambda: connections(df))
    steps[f"connections (TCP+UDP+ICMP, {len(c):,} rows, best of 3)"] = dt
    dt, _ = best(lambda: connections(df, check_checksums=False))
    steps["connections, check_checksums=False (zeek -C)"] = dt
    if shutil.which("tshark"):
        t = time.perf_counter()
        subprocess.run(["tshark", "-n", "-q", "-r", str(path), "-z", "conv,tcp"], capture_output=True, check=True)
        steps["tshark -z conv,tcp"] = time.perf_counter() - t
    print(f"\n{len(df):,} packets ({path})")
    for k, v in steps.items():
        print(f"  {k:<58s} {v:8.3f} s   {v / steps['read (best of 3)']:6.2f}× read")


if __name__ == "__main__":
    sys.exit(main())
