"""The whole report's analyses beside the read, in one run (issue 16: total ≤ 6× the read).

On bench_read's probe capture of 1 M packets (and 0.1 M; 10 M with --ten-million) this opens a session
(``probekit.open_capture``), times the read, then every table the report and its notebooks show, in
the order they need one another, each on the session that already holds what it depends on (so each
step is its own cost and the steps add up to the report's). Best of --repeat fresh sessions per step;
prints each step's seconds and its ratio to the read, and the total; beside them the same in CPU
seconds of this process (on a machine shared with other work the wall clock also counts the waits for a
core; every step here runs on one thread).

    python benchmarks/bench_everything.py [--repeat 3] [--ten-million] [--data DIR] [--before COMMIT]

Captures bench_read.build has not made yet are generated into --data (default build/bench-data, not
benchmarks/data, which may be another tree's).

``--before COMMIT``: the same steps with the package as it was at COMMIT, in the same process, beside
today's (``git archive`` of its ``probekit/`` imported as ``probekit_before``, extracted once into
build/bench-before/COMMIT; the package imports itself only relatively). Each repetition opens one
session of each, so both columns see the same machine load; each is divided by its own read. Where the
report asked for something else then (``BEFORE``: the plots' bytes objects), the before column times that.
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
    # the notebooks pass the buffer to plot_byte_histogram / plot_payload_raster (no bytes object per payload)
    ("payloads for the plots (the buffer)", lambda c: c.payload_buffer),
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
# what the report asked for at a --before commit where it differs: the notebooks built a bytes object per
# payload for the byte histogram and the raster (cap.payloads) before the plots took the buffer
BEFORE = {"payloads for the plots (the buffer)": lambda c: c.payloads}
SHARED = bench_read.DATA


def capture(n_packets: int, data: Path) -> Path:
    """bench_read's capture of n packets: from benchmarks/data if it is there, else generated into ``data``."""
    bench_read.DATA = SHARED
    if not (SHARED / f"probes-{n_packets}.pcap").exists():
        data.mkdir(parents=True, exist_ok=True)
        bench_read.DATA = data
    return bench_read.build(n_packets)["pcap"]


def before(commit: str):
    """The probekit package as it was at ``commit``, imported as ``probekit_before``."""
    import importlib
    import subprocess
    import tarfile
    root = HERE.parent / "build" / "bench-before" / commit
    if not (root / "probekit_before").is_dir():
        root.mkdir(parents=True, exist_ok=True)
        tar = root / "src.tar"
        with open(tar, "wb") as f:
            subprocess.run(["git", "-C", str(HERE.parent), "archive", commit, "probekit"], stdout=f, check=True)
        with tarfile.open(tar) as t:
            t.extractall(root / "tmp", filter="data")
        (root / "tmp" / "probekit").rename(root / "probekit_before")
    sys.path.insert(0, str(root))
    return importlib.import_module("probekit_before")


def _session_times(pk, path: Path, best: dict, read: list, old: bool = False) -> tuple[int, int]:
    cap = pk.open_capture(path, cloudwatch=False)
    t0, c0 = time.perf_counter(), time.process_time()
    df = cap.packets
    read[0], read[1] = min(read[0], time.perf_counter() - t0), min(read[1], time.process_time() - c0)
    for k, f in STEPS:
        if old and k in BEFORE:
            f = BEFORE[k]
        t0, c0 = time.perf_counter(), time.process_time()
        f(cap)
        b = best[k]
        b[0], b[1] = min(b[0], time.perf_counter() - t0), min(b[1], time.process_time() - c0)
    return len(df), len(cap.probes)


def run(path: Path, repeat: int, old=None) -> None:
    packages = [probekit] + ([old] if old is not None else [])
    for pk in packages:
        pk.open_capture(path, cloudwatch=False).summary()          # compile / warm every kernel and the page cache
    inf = float("inf")
    reads = [[inf, inf] for _ in packages]
    bests = [{k: [inf, inf] for k, _ in STEPS} for _ in packages]
    size = None
    for _ in range(repeat):
        for pk, best, read in zip(packages, bests, reads):
            size = _session_times(pk, path, best, read, old=pk is not probekit)
    assert size is not None
    load = os.getloadavg()
    (read, read_cpu), best = reads[0], bests[0]
    print(f"\n{path.name}: {size[0]:,} packets, {size[1]:,} probes; read {read:.3f} s ({read_cpu:.3f} s CPU); "
          f"best of {repeat}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if old is None:
        print(f"  {'step':<50}{'s':>8}{'× read':>9}{'CPU s':>9}{'× read':>9}")
    else:
        print(f"  {'step':<50}{'s':>8}{'× read':>9}{'CPU s':>9}{'× read':>9}   before: {'s':>6}{'× read':>9}"
              f"{'CPU × read':>12}   (read {reads[1][0]:.3f} s)")

    def line(label, get, note=""):
        wall, cpu = get(best)
        text = f"  {label:<50}{wall:8.3f}{wall / read:9.2f}{cpu:9.3f}{cpu / read_cpu:9.2f}"
        if old is not None:
            w0, c0 = get(bests[1])
            text += f"   {w0:14.3f}{w0 / reads[1][0]:9.2f}{c0 / reads[1][1]:12.2f}"
        print(text + note)

    for k, _ in STEPS:
        line(k, lambda b, k=k: b[k])
    line("payload verdicts from the file (bytes + verdicts)",
         lambda b: (sum(b[k][0] for k in PAYLOAD), sum(b[k][1] for k in PAYLOAD)), "   (issue 16: ≤ 2)")
    line("all the analyses above", lambda b: (sum(v[0] for v in b.values()), sum(v[1] for v in b.values())),
         "   (issue 16: ≤ 6)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--ten-million", action="store_true", help="also the 10 M-packet capture (generated once)")
    ap.add_argument("--data", type=Path, default=HERE.parent / "build" / "bench-data",
                    help="where captures missing from benchmarks/data are generated")
    ap.add_argument("--before", metavar="COMMIT", help="also time the package as it was at COMMIT, beside")
    ap.add_argument("--sizes", default=None, help="comma-separated packet counts (default 100000,1000000)")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")] if args.sizes else [100_000, 1_000_000]
    sizes += [10_000_000] if args.ten_million else []
    old = before(args.before) if args.before else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", probekit.CaptureWarning)
        if old is not None:
            warnings.simplefilter("ignore", old.CaptureWarning)
            warnings.simplefilter("ignore", UserWarning)   # the old package registers df.probekit again
        for n in sizes:
            run(capture(n, args.data), 1 if n >= 10_000_000 else args.repeat, old)


if __name__ == "__main__":
    main()
