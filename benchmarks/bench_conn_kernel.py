"""The connection kernel alone, beside the read of the same file, in one run: the inputs that
``connections()`` gives the state machine (``_conn_kernel.conn_block``, run as one block; the packets
grouped by key) are captured once, then this tree's kernel (``conn_kernel``, the one-block form) runs
on them, and the kernel of an earlier commit (``--base``, loaded from git
history: the file-order kernel) on the same packets put back in file order, best of N each, wall and
CPU; the whole ``connections()`` call is timed too. numba's compile is cached on disk (the base kernel
is compiled once before the timing): no compile time is counted.

    python benchmarks/bench_conn_kernel.py [--packets 1000000] [--base e67a59b] [--repeat 5]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
from bench_read import build

import probekit
from probekit.analysis import _conn_kernel as K
from probekit.analysis import connections as CONN
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


CPU: list[float] = []


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


def _file_order(a):
    """The file-order kernel's arguments from the grouped kernel's: each per-packet input put back at
    its packet's position (``pkt``), and the number of keys."""
    pkt, (ts, kind, key, side, flags, seq, ack, win, length, ip_len, l4_ok, sport, dport, src_lsp, dst_lsp,
          resp_bcast, src_long, dst_long, params) = a[0], a[1:20]

    def back(x):
        out = np.empty(len(x), np.int64 if x.dtype != bool else bool)
        out[pkt] = x
        return out
    cols = [back(x) for x in (ts, kind, key, side, flags, seq, ack, win, length, ip_len, l4_ok, sport, dport,
                              src_lsp, dst_lsp, resp_bcast, src_long, dst_long)]
    return (*cols, int(key.max()) + 1, params)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--base", default="e67a59b", help="the commit whose (file-order) kernel to compare with")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    path = build(args.packets)["pcap"]
    df = probekit.read_capture(path)
    captured = {}
    real = K.conn_block

    def grab(*a):
        captured["args"] = a
        return real(*a)
    # connections() runs the state machine a block at a time (conn_block): as one block here, so its
    # inputs are the whole pass's, conn_kernel's arguments without the block's offset and state
    K.conn_block, block = grab, CONN._KERNEL_BLOCK
    CONN._KERNEL_BLOCK = len(df) + 1
    try:
        connections(df)
    finally:
        K.conn_block, CONN._KERNEL_BLOCK = real, block
    b = captured["args"]
    a = [*b[:4], *b[5:21]]
    m = len(a[0])

    def fresh():  # the kernel's outputs, allocated as connections() does (fresh memory each call)
        return [np.empty((m, K.NCO), np.int64), np.empty(m + 1, np.int64), np.empty(6 * m + 16, np.uint8),
                np.empty(m, np.int64)]
    rows = {}
    rows["read"], df = best(lambda: probekit.read_capture(path), args.repeat)
    old = _kernel_at(args.base)
    if old is not None and hasattr(old, "history_buffers"):
        fa = _file_order(a)
        old.conn_kernel(*fa)  # compile
        rows[f"conn_kernel @ {args.base} (file order)"], ref = best(lambda: old.conn_kernel(*fa), args.repeat)
        rows[f"  + conn_finish, history_buffers @ {args.base}"], _ = best(
            lambda: (old.conn_finish(ref[0], ref[1]), old.history_buffers(len(ref[0]), ref[3], ref[4])), args.repeat)
    else:
        old = None
    order, skey = np.empty(m, np.int64), np.empty(m, np.int64)
    key = np.empty(m, np.int64)
    key[a[0]] = a[3]
    rows["group_by_key (this tree)"], _ = best(lambda: K.group_by_key(key, int(key.max()) + 1, order, skey, key, key[:0]),
                                               args.repeat)
    rows["conn_kernel (this tree, by key)"], nc = best(lambda: K.conn_kernel(*a[:20], *fresh()), args.repeat)
    out = fresh()
    nc = K.conn_kernel(*a[:20], *out)
    if old is not None:
        ci = out[0][:nc]
        by_first = np.argsort(ci[:, K.C_FIRSTPKT], kind="stable")
        oc = ref[0]
        same = len(oc) == nc and all((oc[:, getattr(old, n)] == ci[by_first, getattr(K, n)]).all()
                                     for n in ("C_START", "C_LAST", "C_FIRSTPKT", "C_ORIGSIDE", "C_MISSED", "C_ISN"))
        print(f"same connections as {args.base} (start, last, first packet, originator, missed bytes, ISN): {same}")
    rows["connections() (whole table)"], c = best(lambda: connections(df), args.repeat)
    print(f"\n{len(df):,} packets, {len(c):,} connections ({path}), best of {args.repeat}")
    print(f"  {'step':<44s} {'wall':>8s}     {'÷ read':>6s}   {'CPU':>6s}   {'÷ read':>6s}")
    for (k, v), cpu in zip(rows.items(), CPU):
        print(f"  {k:<44s} {v:8.3f} s   {v / rows['read']:6.2f}×   {cpu:6.3f} s   {cpu / CPU[0]:6.2f}×")
    print(f"  load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    sys.exit(main())
