"""Analysis cost beside read cost, in one run: read a probe capture of --packets packets (bench_read's
file), then time matching, per-period metrics, timing, per-source analyses and size changes, each
with the new (compiled/vectorised) implementation and the old one (tests/reference_*.py) side by side;
prints each step's time, its ratio to the read, and the old/new speed-up. Best of --repeat runs.

    python benchmarks/bench_analysis.py [--packets 1000000] [--repeat 3] [--no-old] [--extras] [--session] [--cpu]

--session also times the session's tables of these analyses as the report asks for them
(``open_capture(...).periods``, ``probe_periods``, ``inter_arrivals``, ``timing``, ``gaps``, ``shares``,
``balance``, ``alternation``, ``source_quality``, ``source_rate``, ``source_rate_table``,
``default_size_changes``), in that order, each on a session that holds what they share (a fresh
session and a fresh copy of the probes table per run): each step's own cost, adding up to the report's.
The periods tables include session.py's ICMP-error columns (errors_icmp.periods_with_errors).

--cpu times each step by the process's CPU time instead of the wall clock: on a machine shared with
other jobs a step that waits for a core is not charged for the wait (the steps are single-threaded).

Each run of a step gets its own copy of the probes table (made outside the timing): the analyses keep
what they share per table (analysis._groups.table_cached), so a second run on the same table would
time cache hits. Within a step the parts share, as in a session.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import bench_read  # noqa: E402

import probekit  # noqa: E402
from probekit.analysis import match, metrics, sizes, sources, timing  # noqa: E402
from probekit.schema import STREAM_KEYS  # noqa: E402

CLOCK = time.perf_counter


def best(fn, repeat, table=None):
    """Best time of ``repeat`` calls; with ``table``, each call gets a fresh copy of it (no shared values kept)."""
    t = float("inf")
    for _ in range(repeat):
        arg = () if table is None else (table.copy(),)
        t0 = CLOCK()
        fn(*arg)
        t = min(t, CLOCK() - t0)
    return t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-old", action="store_true", help="skip the old implementations")
    ap.add_argument("--extras", action="store_true", help="also time payload verdicts and TCP connections")
    ap.add_argument("--cpu", action="store_true", help="CPU time of the process instead of wall-clock time")
    ap.add_argument("--session", action="store_true", help="also time the session's tables of these analyses")
    ap.add_argument("--data", type=Path, default=HERE.parent / "build" / "bench-data",
                    help="where a capture missing from benchmarks/data is generated")
    args = ap.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.cpu else time.perf_counter
    shared = bench_read.DATA
    if not (shared / f"probes-{args.packets}.pcap").exists():   # benchmarks/data may be another tree's
        args.data.mkdir(parents=True, exist_ok=True)
        bench_read.DATA = args.data
    path = bench_read.build(args.packets)["pcap"]
    df = probekit.read_capture(path)  # warm the page cache and the compiled kernels
    read = best(lambda: probekit.read_capture(path), args.repeat)
    probes = match.match_probes(df)
    span = df.probekit.span_ns()
    new = {  # each takes a fresh copy of the probes table (see best)
        "match": lambda p: match.match_probes(df),
        "periods (30 s per source + 60 s per stream)": lambda p: (
            metrics.period_metrics(p, 30), metrics.period_metrics(p, 60, by=STREAM_KEYS)),
        "timing (summary with gaps)": lambda p: timing.timing_summary(p, span_ns=span),
        "sources (shares, balance, alternation, rate, quality)": lambda p: (
            sources.balance_test(p), sources.alternation(p), sources.source_quality(p),
            sources.source_rate(p, 30), sources.source_shares(p)),
        "size changes": lambda p: sizes.size_changes(p),
    }
    old = {}
    if not args.no_old:
        import reference_analyses as R
        import reference_match as RM
        old = {
            "match": lambda: RM.match_probes(df),
            "periods (30 s per source + 60 s per stream)": lambda: (
                R.period_metrics(probes, 30), R.period_metrics(probes, 60, by=STREAM_KEYS)),
            "timing (summary with gaps)": lambda: R.timing_summary(probes, span_ns=span),
            "sources (shares, balance, alternation, rate, quality)": lambda: (
                R.balance_test(probes), R.alternation(probes), R.source_quality(probes),
                R.source_rate(probes, 30), R.source_shares(probes)),
            "size changes": lambda: R.size_changes(probes),
        }
    for f in new.values():
        f(probes.copy())  # compile / warm
    clock = "CPU" if args.cpu else "wall-clock"
    load = os.getloadavg()
    print(f"\n{len(df):,} packets, {len(probes):,} probes; read {read:.3f} s (best of {args.repeat}, {clock} time); "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"  {'step':<54}{'new s':>8}{'× read':>8}{'old s':>9}{'× read':>8}{'speed-up':>10}")
    tot_new = tot_old = 0.0
    for k, f in new.items():
        t_new = best(f, args.repeat, probes)
        tot_new += t_new
        line = f"  {k:<54}{t_new:8.3f}{t_new / read:8.2f}"
        if k in old:
            t_old = best(old[k], 1 if args.packets > 2_000_000 else args.repeat)
            tot_old += t_old
            line += f"{t_old:9.3f}{t_old / read:8.2f}{t_old / t_new:9.1f}×"
        print(line)
    line = f"  {'matching + periods + timing + sources + sizes':<54}{tot_new:8.3f}{tot_new / read:8.2f}"
    if old:
        line += f"{tot_old:9.3f}{tot_old / read:8.2f}{tot_old / tot_new:9.1f}×"
    print(line)
    if args.session:
        session_steps(path, df, probes, read, args.repeat)
    if args.extras:
        t = best(lambda: probekit.payload_verdicts(probes, probekit.request_payloads(df, probes)), 1)
        print(f"  {'payload randomness (all requests)':<54}{t:8.3f}{t / read:8.2f}")
        t = best(lambda: probekit.tcp_connections(df), 1)
        print(f"  {'TCP conn_state/history (all connections)':<54}{t:8.3f}{t / read:8.2f}")


SESSION_STEPS = ("periods", "probe_periods", "inter_arrivals", "timing", "gaps", "shares", "balance", "alternation",
                 "source_quality", "source_rate", "source_rate_table", "default_size_changes")


def session_steps(path, df, probes, read, repeat):
    """The session's tables in the report's order, best of ``repeat`` fresh sessions (each given the
    packets, a fresh copy of the probes table and the span, so that only these steps are timed)."""
    import warnings
    best_t = dict.fromkeys(SESSION_STEPS, float("inf"))
    span = df.probekit.span_ns()
    for _ in range(repeat + 1):   # the first run warms what is compiled
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cap = probekit.open_capture(path, cloudwatch=False)
        cap.__dict__.update(packets=df, probes=probes.copy(), capture_span_ns=span)
        for k in SESSION_STEPS:
            t0 = CLOCK()
            getattr(cap, k)
            best_t[k] = min(best_t[k], CLOCK() - t0) if _ else best_t[k]
    print(f"  session tables (best of {repeat} fresh sessions):")
    for k in SESSION_STEPS:
        print(f"    {k:<52}{best_t[k]:8.3f}{best_t[k] / read:8.2f}")
    tot = sum(best_t.values())
    print(f"    {'all of them':<52}{tot:8.3f}{tot / read:8.2f}")


if __name__ == "__main__":
    main()
