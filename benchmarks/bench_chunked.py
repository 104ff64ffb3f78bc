"""A huge single capture in bounded memory: repeat the 1 M-packet benchmark capture N times with shifted
timestamps into one classic pcap (50 copies: 50 M packets, about 4.6 GB, in /tmp by default; deleted
afterwards unless --keep), then run the chunked driver's `probekit metrics` equivalent (per-period
metrics per source stream and per stream) in a child process and report its time and peak RSS. The
numbers are checked against ``period_metrics`` of the 1 M file's in-memory probes repeated the same way
(the copies are 1,020 s apart, further than any matching window, so matching the whole file gives
exactly those probes).

Then ``probekit report --chunked always`` and ``probekit metrics --chunked always`` on the same file
(the report's process and its notebook kernels: the peak of their summed RSS, sampled every 0.2 s, and
the peak of the largest one), beside the same report on the 1 M file in memory and chunked (the ratios
say what the chunked path costs per packet).

    python benchmarks/bench_chunked.py [--copies 50] [--chunk 1000000] [--out /tmp/probekit-50M.pcap]
                                       [--no-report] [--compare]

``--report-only``: only ``probekit report --chunked always`` on the big file (time, peak RSS of the report
and its kernels, of the largest process; the load average at its start and end), the file kept under
``--out`` if it is there already (``--keep``) so several code versions can be measured on one file.

``--compare``: also ``probekit metrics --chunked always`` against ``--chunked never`` (the in-memory
session: the packets table read whole) on the big file, output compared (text equal), with both times
and peaks — for a size where the in-memory path fits (10 M packets: about 8 GB).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHIFT_S = 1020          # a multiple of 30 and 60 s: periods stay aligned


def write_repeated(src: Path, out: Path, copies: int) -> int:
    import numpy as np

    import probekit
    from probekit.capture._frames import index_frames
    from probekit.capture.reader import open_bytes
    with open_bytes(str(src)) as buf:
        idx = index_frames(buf, str(src))
        body = np.array(buf[24:])
        header = bytes(buf[:24])
    ts_at = (idx.data_off - 16 - 24).astype(np.int64)         # ts_sec of each record in `body`
    sec = body[ts_at[:, None] + np.arange(4)].copy().view("<u4").ravel()
    with open(out, "wb") as f:
        f.write(header)
        for k in range(copies):
            shifted = (sec + np.uint32(k * SHIFT_S)).view(np.uint8).reshape(-1, 4)
            body[ts_at[:, None] + np.arange(4)] = shifted
            f.write(body.tobytes())
    del probekit
    return len(idx) * copies


def _hwm() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def child(path: str, chunk: int) -> None:
    from probekit.drive.chunked import chunked_analyses
    t = time.perf_counter()
    res = chunked_analyses(path, chunk_packets=chunk, period_s=30, analyses=("periods", "probe_periods"),
                           keep_probes=False)
    secs = time.perf_counter() - t
    per, pp = res.tables["periods"], res.tables["probe_periods"]
    per.to_parquet(path + ".periods.parquet")
    pp.to_parquet(path + ".probe_periods.parquet")
    print(json.dumps(dict(seconds=secs, packets=res.packets, chunks=res.chunks, peak=_hwm(),
                          periods=len(per), sent=int(per["sent"].sum()))))


def tree_run(cmd: list[str], stdout=subprocess.DEVNULL) -> dict:
    """Run ``cmd``; its wall time, the peak of its process tree's summed RSS and of its largest process."""
    import psutil
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE, text=True)
    root = psutil.Process(p.pid)
    peak = largest = 0
    each: dict[int, list] = {}          # pid -> [peak RSS, what it is]
    while p.poll() is None:
        rss = []
        try:
            for q in [root, *root.children(recursive=True)]:
                try:
                    r = q.memory_info().rss
                    rss.append(r)
                    if q.pid not in each:
                        cmd = q.cmdline()
                        each[q.pid] = [0, "kernel" if "ipykernel_launcher" in " ".join(cmd) else
                                       "report" if q.pid == p.pid else Path(cmd[0]).name if cmd else "?"]
                    each[q.pid][0] = max(each[q.pid][0], r)
                except psutil.Error:
                    pass
        except psutil.Error:
            pass
        peak, largest = max(peak, sum(rss)), max(largest, max(rss, default=0))
        time.sleep(0.2)
    err = p.stderr.read()
    if p.returncode:
        print(err[-3000:])
        raise SystemExit(1)
    return dict(seconds=time.perf_counter() - t, peak=peak, largest=largest,
                each=sorted((v for v in each.values() if v[0] > 100 << 20), reverse=True))


def _each(rr: dict) -> str:
    """The processes over 100 MiB, largest first: 'report 2.10, kernel 1.20 GiB'."""
    return ", ".join(f"{what} {rss / 2**30:.2f}" for rss, what in rr["each"]) + " GiB"


def report(path: Path, chunked: bool, chunk: int) -> dict:
    html = Path(str(path) + ".report.html")
    cmd = [sys.executable, "-m", "probekit", "report", str(path), "-o", str(html),
           "--chunked", "always" if chunked else "never", "--chunk-packets", str(chunk)]
    try:
        return tree_run(cmd)
    finally:
        html.unlink(missing_ok=True)


def expected(src: Path, copies: int):
    import pandas as pd

    import probekit
    probes = probekit.read_capture(src).probekit.probes()[["ts_ns", "protocol", "source", "destination", "port",
                                                            "outcome", "rtt_us"]]
    rep = pd.concat([probes.assign(ts_ns=probes["ts_ns"] + k * SHIFT_S * 10**9) for k in range(copies)],
                    ignore_index=True)
    return (probekit.period_metrics(rep, 30), probekit.period_metrics(rep, 30, by=probekit.PROBE_LEVEL))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--copies", type=int, default=50)
    ap.add_argument("--chunk", type=int, default=None, help="packets per chunk (default: the driver's)")
    ap.add_argument("--out", default="/tmp/probekit-50M.pcap")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--child", nargs=2)
    ap.add_argument("--no-report", action="store_true", help="only the metrics walk")
    ap.add_argument("--compare", action="store_true", help="metrics chunked vs in memory on the big file")
    ap.add_argument("--report-only", action="store_true", help="only the chunked report on the big file")
    a = ap.parse_args()
    if a.chunk is None:
        from probekit.drive.chunked import CHUNK_PACKETS
        a.chunk = CHUNK_PACKETS
    if a.child:
        return child(a.child[0], int(a.child[1]))
    sys.path.insert(0, str(HERE))
    from bench_read import build
    src = build(1_000_000)["pcap"]
    out = Path(a.out)
    t = time.perf_counter()
    if a.report_only and a.keep and out.exists():
        n = a.copies * 1_000_000
    else:
        n = write_repeated(src, out, a.copies)
        print(f"wrote {out} ({out.stat().st_size / 1e9:.2f} GB, {n:,} packets) in {time.perf_counter() - t:.0f} s")
    if a.report_only:
        try:
            load = os.getloadavg()[0]
            rr = report(out, True, a.chunk)
            print(f"probekit report --chunked always, {n / 1e6:.0f} M packets: {rr['seconds']:.1f} s, peak RSS of report "
                  f"+ kernels {rr['peak'] / 2**30:.2f} GiB, largest process {rr['largest'] / 2**30:.2f} GiB; each process "
                  f"at its peak: {_each(rr)} (load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end)")
        finally:
            if not a.keep:
                out.unlink(missing_ok=True)
        return
    try:
        p = subprocess.run([sys.executable, __file__, "--child", str(out), str(a.chunk)], capture_output=True,
                           text=True)
        if p.returncode:
            print(p.stderr[-3000:])
            raise SystemExit(1)
        r = json.loads(p.stdout.strip().splitlines()[-1])
        import pandas as pd
        got_per = pd.read_parquet(str(out) + ".periods.parquet")
        got_pp = pd.read_parquet(str(out) + ".probe_periods.parquet")
        want_per, want_pp = expected(src, a.copies)
        same = got_per.astype(str).equals(want_per.astype(str)) and got_pp.astype(str).equals(want_pp.astype(str))
        gib = 2**30
        print(f"chunked metrics (the --bounded walk): {r['packets']:,} packets in {r['chunks']} chunks, {r['seconds']:.1f} s "
              f"({r['packets'] / r['seconds'] / 1e6:.2f} M packets/s), peak RSS {r['peak'] / gib:.2f} GiB; "
              f"{r['periods']:,} period rows, {r['sent']:,} probes; same numbers as in memory: {same}")
        if not a.no_report:
            rows = [("1 M, in memory", src, False, 1_000_000), ("1 M, chunked", src, True, 1_000_000),
                    (f"{n / 1e6:.0f} M, chunked", out, True, n)]
            print(f"probekit report (load average {os.getloadavg()[0]:.1f} at the start):")
            base = None
            for what, path, chunked, packets in rows:
                rr = report(path, chunked, a.chunk)
                per = rr["seconds"] / packets * 1e6
                base = base or per
                print(f"  {what:>16}: {rr['seconds']:7.1f} s ({per:6.1f} s per M packets, {per / base:4.2f}x), "
                      f"peak RSS of report + kernels {rr['peak'] / gib:5.2f} GiB, largest process "
                      f"{rr['largest'] / gib:5.2f} GiB")
            mm = tree_run([sys.executable, "-m", "probekit", "metrics", str(out), "--chunked", "always", "--csv"])
            print(f"  beside probekit metrics --chunked always on {n / 1e6:.0f} M (stream selection, ICMP errors): "
                  f"{mm['seconds']:.1f} s, peak {mm['peak'] / gib:.2f} GiB; metrics --bounded: {r['seconds']:.1f} s, "
                  f"peak {r['peak'] / gib:.2f} GiB")
        if a.compare:
            outs = {}
            for mode in ("always", "never"):
                csv = Path(f"{out}.metrics-{mode}.csv")
                with open(csv, "w") as f:
                    rr = tree_run([sys.executable, "-m", "probekit", "metrics", str(out), "--chunked", mode, "--csv"],
                                  stdout=f)
                outs[mode] = csv.read_text()
                csv.unlink()
                print(f"  probekit metrics --chunked {mode}: {rr['seconds']:.1f} s, peak "
                      f"{rr['peak'] / 2**30:.2f} GiB")
            print(f"  same output chunked and in memory: {outs['always'] == outs['never']} "
                  f"({outs['never'].count(chr(10)):,} lines)")
    finally:
        if not a.keep:
            for f in (out, Path(str(out) + ".periods.parquet"), Path(str(out) + ".probe_periods.parquet")):
                f.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
