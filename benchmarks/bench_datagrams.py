"""Fragment reassembly cost beside the read, in one run (the machine is noisy: compare ratios).

The capture is bench_forensics.py's second file: the ``fragmenting-path+unreachable+background`` scenario
at a high rate (every big probe in 6 fragments each way, errors after the target goes down), about
``--packets / 2`` frames. Each step is timed best of ``--repeat``: the read, then ``datagrams`` +
``matcher_view`` (what the session does: the table patched in place) with probekit's compiled kernel,
``reassembled_packets`` beside it (the fragments dropped: a copy of the table), the matcher on each view,
and the same with the plain reference (tests/reference_datagrams.py, the implementation before the
kernel) unless ``--no-reference``; prints each step and its ratio to the read, and checks they give the
same tables and the same probes. Last, the 1 M-packet probe capture of bench_read (no fragment): what the
view costs there (``--no-plain`` skips it).

    python benchmarks/bench_datagrams.py [--packets 1000000] [--repeat 5] [--keep DIR]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

import probekit
from probekit.analysis.datagrams import datagrams, matcher_view, reassembled_packets
from probekit.synth import synth

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))


def capture(packets: int, where: Path) -> Path:
    path = where / f"frag-{packets}.pcap"
    if not path.exists():
        rate = max(2.0, packets / 300 / 2 / 16)      # about packets / 2 frames in 300 s (bench_forensics.py)
        synth("fragmenting-path+unreachable+background", path, seed=1, rate_per_s=rate,
              size_change_at_s=0.0, size_apply_delay_s=0.0)
    return path


def best(fn, repeat: int):
    out, times = None, []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--keep", type=Path, default=None, help="keep the capture in DIR (made once)")
    ap.add_argument("--no-reference", action="store_true", help="skip the plain reference (slow)")
    ap.add_argument("--no-plain", action="store_true", help="skip the capture without fragments")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        where = args.keep or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        path = capture(args.packets, where)
        df = probekit.read_capture(path)            # page cache and compiled kernels warm
        datagrams(df)
        t_read, df = best(lambda: probekit.read_capture(path), args.repeat)

        def ours():
            d = datagrams(df)
            return d, reassembled_packets(df, d)
        t_ours, (d, view) = best(ours, args.repeat)
        t_dg, _ = best(lambda: datagrams(df), args.repeat)
        t_view, patched = best(lambda: matcher_view(df, d), args.repeat)
        t_take, _ = best(lambda: reassembled_packets(df, d), args.repeat)
        t_mp, probes = best(lambda: probekit.match_probes(patched), args.repeat)
        t_mt, probes_t = best(lambda: probekit.match_probes(view), args.repeat)
        pd.testing.assert_frame_equal(probes, probes_t)
        print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"{path.name}: {len(df):,} packets, {len(d):,} fragmented datagrams, "
              f"{int(d['complete'].sum()):,} complete; best of {args.repeat}")
        print(f"  {'read':<40}{t_read:8.3f} s")
        for label, t in (("datagrams (compiled kernel)", t_dg), ("matcher_view (patched in place)", t_view),
                         ("reassembled_packets (a copy)", t_take), ("match on matcher_view", t_mp),
                         ("match on reassembled_packets", t_mt),
                         ("reassembly + view (compiled kernel)", t_dg + t_view)):
            print(f"  {label:<40}{t:8.3f} s  = {t / t_read:.2f} × the read")
        print("  matcher_view and reassembled_packets: the same probes")
        if not args.no_reference:
            import reference_datagrams as ref

            def plain():
                rd = ref.datagrams(df)
                return rd, ref.reassembled_packets(df, rd)
            t_ref, (rd, rview) = best(plain, min(args.repeat, 2))
            print(f"  {'reassembly (plain reference)':<40}{t_ref:8.3f} s  = {t_ref / t_read:.2f} × the read")
            pd.testing.assert_frame_equal(d, rd)
            pd.testing.assert_frame_equal(view, rview)
            print("  kernel and reference: the same datagrams table and matcher view")
    if not args.no_plain:
        import bench_read
        plain = bench_read.DATA / "probes-1000000.pcap"
        if plain.exists():
            df = probekit.read_capture(plain)
            t_read, df = best(lambda: probekit.read_capture(plain), args.repeat)
            t_d, d = best(lambda: datagrams(df), args.repeat)
            t_v, v = best(lambda: matcher_view(df, d), args.repeat)
            assert v is df
            print(f"{plain.name}: {len(df):,} packets, no fragment; read {t_read:.3f} s")
            print(f"  {'datagrams + matcher_view (the table)':<40}{t_d + t_v:8.3f} s  = {(t_d + t_v) / t_read:.2f} × the read")


if __name__ == "__main__":
    main()
