"""`probekit report` on the shipped captures: the old report (every notebook in its own kernel, every
capture read and analysed again in each) against this tree's (each capture analysed once, tables saved
for the kernel; one kernel that starts while the captures are analysed), side by side in one run.

    python benchmarks/bench_report.py [--old REV] [--repeat N] [CAPTURES...]

The old report is ``git archive REV`` (default d9b276f, the tree before the change) unpacked into a
temporary folder and run from there, with its own notebooks and captures; each run is its own process,
timed by wall clock. Prints seconds and the ratio.
"""
from __future__ import annotations

import argparse
import io
import os
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OLD_REV = "d9b276f"


def _run(tree: Path, captures: list[Path], out: Path) -> tuple[float, float]:
    """Wall seconds, and CPU seconds of the report and every process it waited for (its kernels)."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "probekit", "report", *map(str, captures), "-o", str(out)],
                       cwd=tree, env=env, capture_output=True, text=True)
    took = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode:
        sys.exit(f"report failed in {tree}:\n{p.stderr[-2000:]}")
    return took, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("captures", nargs="*", help="capture names in captures/ (default: all nine shipped)")
    ap.add_argument("--old", default=OLD_REV, help=f"git revision of the old report (default {OLD_REV})")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    names = args.captures or sorted(p.name for p in (ROOT / "captures").iterdir() if p.suffix in (".pcap", ".pcapng"))
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        old = Path(tmp) / "old"
        old.mkdir()
        blob = subprocess.run(["git", "archive", args.old, "probekit", "notebooks", "captures"], cwd=ROOT,
                              capture_output=True, check=True).stdout
        tarfile.open(fileobj=io.BytesIO(blob)).extractall(old, filter="data")
        rows = []
        print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (wall times need an idle machine; "
              "CPU seconds are a load-independent measure of the work)", flush=True)
        for i in range(args.repeat):
            (t_old, c_old) = _run(old, [old / "captures" / n for n in names], Path(tmp) / f"old{i}.html")
            (t_new, c_new) = _run(ROOT, [ROOT / "captures" / n for n in names], Path(tmp) / f"new{i}.html")
            rows.append((t_old, t_new, c_old, c_new))
            print(f"run {i + 1}: old {t_old:6.1f} s wall {c_old:6.1f} s CPU   new {t_new:6.1f} s wall {c_new:6.1f} s CPU   "
                  f"old/new wall {t_old / t_new:4.2f}× CPU {c_old / c_new:4.2f}×   (load {os.getloadavg()[0]:.1f})",
                  flush=True)
        best = [min(r[k] for r in rows) for k in range(4)]
        print(f"\nprobekit report on {len(names)} capture(s), best of {args.repeat}: old ({args.old}) {best[0]:.1f} s "
              f"({best[2]:.1f} CPU-s), new {best[1]:.1f} s ({best[3]:.1f} CPU-s): {best[0] / best[1]:.2f}× faster by the "
              f"clock, {best[2] / best[3]:.2f}× less CPU (target: new <= 25 s)")


if __name__ == "__main__":
    main()
