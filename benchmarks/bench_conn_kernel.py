"""The connection kernel alone, beside the read of the same file, in one run: the inputs that
``connections()`` gives ``_conn_kernel.conn_kernel`` are captured once, then the kernel of this tree and
the kernel of an earlier commit (``--base``, loaded from git history) run on them, best of N each;
the whole ``connections()`` call is timed too.

    python benchmarks/bench_conn_kernel.py [--packets 1000000] [--base b77021f] [--repeat 5]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import types
from pathlib import Path

from bench_read import build

import probekit
from probekit.analysis import _conn_kernel as K
from probekit.analysis.connections import connections

ROOT = Path(__file__).resolve().parents[1]


def _kernel_at(rev: str):
    try:
        src = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:probekit/analysis/_conn_kernel.py"],
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    mod = types.ModuleType(f"_conn_kernel_{rev}")
    src = src.replace("from .._jit import njit", "from probekit._jit import njit").replace("cache=True", "cache=False")
    exec(compile(src, f"_conn_kernel@{rev}.py", "exec"), mod.__dict__)
    return mod


def best(f, n):
    """Best of n wall-clock seconds (and best CPU seconds of this process, steadier on a loaded box)."""
    r, c = [], []
    out = None
    for _ in range(n):
        t, p = time.perf_counter(), time.process_time()
        out = f()
        r.append(time.perf_counter() - t)
        c.append(time.process_time() - p)
    CPU.append(min(c))
    return min(r), out


CPU: list[float] = []


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--base", default="b77021f", help="the commit whose kernel to compare with")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    path = build(args.packets)["pcap"]
    df = probekit.read_capture(path)
    captured = {}
    real = K.conn_kernel

    def grab(*a):
        captured["args"] = a
        return real(*a)
    K.conn_kernel = grab
    try:
        connections(df)
    finally:
        K.conn_kernel = real
    a = captured["args"]
    rows = {}
    rows["read"], df = best(lambda: probekit.read_capture(path), args.repeat)
    old = _kernel_at(args.base)
    if old is not None:
        old.conn_kernel(*a)  # compile
        rows[f"conn_kernel @ {args.base}"], _ = best(lambda: old.conn_kernel(*a), args.repeat)
    rows["conn_kernel (this tree)"], out = best(lambda: K.conn_kernel(*a), args.repeat)
    if old is not None:
        ref = old.conn_kernel(*a)
        same = all((x == y).all() if x.shape == y.shape else False
                   for x, y in zip(ref[2:], out[2:]))
        print(f"same conn_of and history events as {args.base}: {same}")
    ci, ei = out[0], out[1]
    rows["conn_finish + history_buffers"], _ = best(
        lambda: (K.conn_finish(ci, ei), K.history_buffers(len(ci), out[3], out[4])), args.repeat)
    rows["connections() (whole table)"], c = best(lambda: connections(df), args.repeat)
    print(f"\n{len(df):,} packets, {len(c):,} connections ({path}), best of {args.repeat}")
    print(f"  {'step':<36s} {'wall':>8s}     {'÷ read':>6s}   {'CPU':>6s}")
    for (k, v), cpu in zip(rows.items(), CPU):
        print(f"  {k:<36s} {v:8.3f} s   {v / rows['read']:6.2f}×   {cpu:6.3f} s")
    print(f"  load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    sys.exit(main())
