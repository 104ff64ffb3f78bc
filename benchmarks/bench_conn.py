"""Connection table cost beside read cost, in one run: read the probe capture, then the connection table
as it was before issue #15 (connections.py and checksums.py at b77021f, with the file-order kernel of
e67a59b, all loaded from git history), as it was at the start of the last round (connections.py,
checksums.py and _conn_kernel.py at e67a59b), the current one, the old per-packet Python
tcp_connections (probekit 0.1, also from git history), and tshark's ``-z conv,tcp`` on the same file;
prints seconds and the ratio to the read.

Each connection table is split in two: the compiled state machine (the kernel module's functions:
conn_kernel, conn_finish and history_buffers before; group_by_key and conn_kernel, or conn_block per
block of packets, now; timed inside the same runs) and everything around it (gathering the inputs,
checksums, uids, the DataFrame). Best of
--repeat runs each (interleaved: the read, then each table, then the next repetition), in wall time and
in this process's CPU time (which other processes on a shared machine disturb less); read the ratios
(the load average is printed). numba compiles each kernel once
(cached on disk); every kernel is run once before the timing, so no compile time is counted.

    python benchmarks/bench_conn.py [--packets 1000000] [--repeat 3] [--no-old] [--no-tshark]
                                    [--before REV] [--no-history]
    python benchmarks/bench_conn.py --scale 100000,1000000,10000000 [--dir /tmp/conn-scale] [--repeat 3]

``--before REV``: also the table as it was at commit REV (its connections.py, checksums.py and
_conn_kernel.py from git history), timed beside today's in the same run; ``--no-history`` leaves out
the two tables of issue #15's start (b77021f, e67a59b), whose kernels take minutes to compile.

``--scale``: how the ratio grows with the capture, the current table only: each size is generated as
bench_read.build makes the benchmark captures (the same scenario and rate), into ``--dir`` (removed
afterwards; 10 M packets is ~1 GB), read and tabled best of --repeat.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
from bench_read import build

import probekit
from probekit.analysis import _conn_kernel as K
from probekit.analysis.connections import connections

ROOT = Path(__file__).resolve().parents[1]
OLD = "d9b276f"  # the last commit with the per-packet Python state machine
BEFORE = "b77021f"  # the connection table before issue #15 (the same state machine, pandas around it)
ROUND = "e67a59b"  # the start of this round: the file-order kernel, compiled passes around it
OLD_KERNEL_STEPS = ("conn_kernel", "conn_finish", "history_buffers")
KERNEL_STEPS = ("group_by_key", "conn_kernel", "conn_block")  # those the module has; the table calls
# conn_kernel once (up to beaacdb) or conn_block per block of packets (after)


def _git_show(commit: str, path: str) -> str | None:
    try:
        return subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:{path}"], capture_output=True, text=True,
                              check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None


def _module(name: str, package: str, src: str, filename: str) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__package__ = package
    sys.modules[name] = mod
    exec(compile(src, filename, "exec"), mod.__dict__)
    return mod


def _old_tcp_connections():
    src = _git_show(OLD, "probekit/analysis/tcp.py")
    if src is None:
        return None
    src = src.replace("from ..capture._kernels import njit", "from numba import njit").replace("@njit(cache=True)", "@njit")
    return _module("probekit.analysis._old_tcp", "probekit.analysis", src, "old_tcp.py").tcp_connections


def _kernel_module(rev: str) -> types.ModuleType | None:
    """_conn_kernel.py at ``rev`` as a module of its own (compiled without the disk cache)."""
    src = _git_show(rev, "probekit/analysis/_conn_kernel.py")
    if src is None:
        return None
    src = src.replace("from .._jit import njit", "from probekit._jit import njit").replace("cache=True", "cache=False")
    return _module(f"probekit.analysis._conn_kernel_{rev}", "probekit.analysis", src, f"_conn_kernel_{rev}.py")


def _table_at(rev: str, kernel: types.ModuleType):
    """connections() with connections.py and checksums.py at ``rev``, on ``kernel``."""
    chk, conn = _git_show(rev, "probekit/capture/checksums.py"), _git_show(rev, "probekit/analysis/connections.py")
    if chk is None or conn is None:
        return None
    chk = chk.replace("cache=True", "cache=False")
    _module(f"probekit.capture._checksums_{rev}", "probekit.capture", chk, f"checksums_{rev}.py")
    conn = conn.replace("from ..capture.checksums import", f"from ..capture._checksums_{rev} import")
    conn = conn.replace("from . import _conn_kernel as K", f"from . import {kernel.__name__.rsplit('.', 1)[1]} as K")
    conn = conn.replace("cache=True", "cache=False")
    return _module(f"probekit.analysis._connections_{rev}", "probekit.analysis", conn,
                   f"connections_{rev}.py").connections


class KernelClock:
    """Adds up the (wall, CPU) time spent in the state machine's functions while installed (each table
    calls them through its kernel module, so the wrappers see every call)."""

    def __init__(self, module, names):
        self.spent = np.zeros(2)
        self.module = module
        self.orig = {n: getattr(module, n) for n in names if hasattr(module, n)}

    def __enter__(self):
        for n, f in self.orig.items():
            setattr(self.module, n, self._timed(f))
        return self

    def _timed(self, f):
        def run(*a):
            t = _now()
            try:
                return f(*a)
            finally:
                self.spent += _now() - t
        return run

    def __exit__(self, *exc):
        for n, f in self.orig.items():
            setattr(self.module, n, f)


def _now() -> np.ndarray:
    return np.array([time.perf_counter(), time.process_time()])


def scale(sizes: list[int], where: Path, n: int) -> None:
    from probekit.synth import synth
    where.mkdir(parents=True, exist_ok=True)
    print(f"  {'packets':>11s} {'connections':>12s} {'read s':>8s} {'table s':>8s} {'× read':>7s}   "
          f"{'read CPU':>8s} {'table CPU':>9s} {'× read':>7s}   load")
    for size in sizes:
        p = where / f"probes-{size}.pcap"
        made = not p.exists()
        if made:  # bench_read.build's parameters, into a scratch directory
            synth("healthy", p, seed=42, duration_s=size / 5 / 200.0, rate_per_s=200.0, loss=0.0,
                  send_jitter_ms=0.5)
        try:
            df = probekit.read_capture(p)
            connections(df.head(1000))
            r, c = [], []
            for _ in range(n):
                t = _now()
                df = probekit.read_capture(p)
                r.append(_now() - t)
                t = _now()
                out = connections(df)
                c.append(_now() - t)
            rd, tb = np.min(r, axis=0), np.min(c, axis=0)
            print(f"  {len(df):>11,} {len(out):>12,} {rd[0]:8.3f} {tb[0]:8.3f} {tb[0] / rd[0]:6.2f}×   "
                  f"{rd[1]:8.3f} {tb[1]:9.3f} {tb[1] / rd[1]:6.2f}×   {os.getloadavg()[0]:.2f}")
            del df, out
        finally:
            if made:  # the capture and the truth file synth writes beside it
                for f in (p, p.with_name(p.name + ".truth.csv")):
                    f.unlink(missing_ok=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-old", action="store_true", help="skip the old Python state machine (slow)")
    ap.add_argument("--no-tshark", action="store_true", help="skip tshark")
    ap.add_argument("--before", default=None, help="also the table at this commit, beside today's")
    ap.add_argument("--no-history", action="store_true", help=f"skip the tables at {BEFORE} and {ROUND}")
    ap.add_argument("--scale", default=None, help="comma-separated capture sizes: the current table only")
    ap.add_argument("--dir", default="/tmp/conn-scale", help="where --scale writes its captures")
    args = ap.parse_args()
    if args.scale:
        scale([int(x) for x in args.scale.split(",")], Path(args.dir), args.repeat)
        return 0
    path = build(args.packets)["pcap"]
    df = probekit.read_capture(path)  # warm the page cache and the compiled kernels
    old_k = None if args.no_history else _kernel_module(ROUND)
    before = _table_at(BEFORE, old_k) if old_k is not None else None
    round_start = _table_at(ROUND, old_k) if old_k is not None else None
    rev_k = _kernel_module(args.before) if args.before else None
    at_rev = _table_at(args.before, rev_k) if rev_k is not None else None
    for f in (connections, before, round_start, at_rev):
        if f is not None:
            f(df.head(1000))
    n = args.repeat

    def once(f, module, names):  # one run: (wall, CPU) in all and in the kernel's functions
        with KernelClock(module, names) as k:
            t = _now()
            out = f()
            total = _now() - t
        return (tuple(total), tuple(k.spent)), out

    variants = [(label, f, mod, names) for label, f, mod, names in (
        (f"before ({BEFORE})", before, old_k, OLD_KERNEL_STEPS),
        (f"round start ({ROUND})", round_start, old_k, OLD_KERNEL_STEPS),
        (f"at {args.before}", at_rev, rev_k, KERNEL_STEPS),
        ("now", connections, K, KERNEL_STEPS)) if f is not None]
    # the repetitions interleaved (read, then each table, then the next repetition), so a change of
    # the machine's load during the run falls on every column alike; best of n by wall time each
    reads: list[np.ndarray] = []
    runs: dict[str, list] = {label: [] for label, *_ in variants}
    bare_runs: dict[str, list] = {label: [] for label, *_ in variants}
    tables = {}
    load0 = os.getloadavg()
    for _ in range(n):
        t = _now()
        df = probekit.read_capture(path)
        reads.append(_now() - t)
        for label, f, mod, names in variants:
            r, tables[label] = once(lambda f=f, df=df: f(df), mod, names)
            runs[label].append(r)
            t = _now()
            f(df, check_checksums=False)
            bare_runs[label].append(_now() - t)
    steps: dict[str, np.ndarray] = {}
    read = np.min(reads, axis=0)
    steps[f"read (best of {n})"] = read
    for label, _f, _mod, names in variants:
        total, kern = (np.array(x) for x in min(runs[label]))
        c = tables[label]
        steps[f"connections {label}, {len(c):,} rows"] = total
        steps[f"  {label}: state machine ({', '.join(names)})"] = kern
        steps[f"  {label}: around it (inputs, checksums, uids, the table)"] = total - kern
        steps[f"connections {label}, check_checksums=False (zeek -C)"] = np.min(bare_runs[label], axis=0)
    if len(tables) > 1:
        a, *others = tables.values()
        print("tables equal:", all(a.equals(b) and list(a.dtypes) == list(b.dtypes) for b in others))
    old = None if args.no_old else _old_tcp_connections()
    if old is not None:
        t = _now()
        n_old = len(old(df))
        steps[f"old tcp_connections (Python loop, {n_old:,} TCP)"] = _now() - t
    if shutil.which("tshark") and not args.no_tshark:
        t = _now()
        subprocess.run(["tshark", "-n", "-q", "-r", str(path), "-z", "conv,tcp"], capture_output=True, check=True)
        steps["tshark -z conv,tcp (its CPU time is not this process's)"] = _now() - t
    load1 = os.getloadavg()
    print(f"\n{len(df):,} packets ({path}); load average {load0[0]:.2f} at the start, {load1[0]:.2f} at the end")
    print(f"  {'':<72s} {'wall s':>8s} {'× read':>7s}   {'CPU s':>8s} {'× read':>7s}")
    for k, v in steps.items():
        print(f"  {k:<72s} {v[0]:8.3f} {v[0] / read[0]:6.2f}×   {v[1]:8.3f} {v[1] / read[1]:6.2f}×")


if __name__ == "__main__":
    sys.exit(main())
