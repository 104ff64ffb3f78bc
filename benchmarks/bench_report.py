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
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OLD_REV = "d9b276f"


def _run(tree: Path, captures: list[Path], out: Path) -> float:
    env = dict(os.environ, PYTHONPATH=str(tree))
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "probekit", "report", *map(str, captures), "-o", str(out)],
                       cwd=tree, env=env, capture_output=True, text=True)
    took = time.perf_counter() - t
    if p.returncode:
        sys.exit(f"report failed in {tree}:\n{p.stderr[-2000:]}")
    return took


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
        for i in range(args.repeat):
            t_old = _run(old, [old / "captures" / n for n in names], Path(tmp) / f"old{i}.html")
            t_new = _run(ROOT, [ROOT / "captures" / n for n in names], Path(tmp) / f"new{i}.html")
            rows.append((t_old, t_new))
            print(f"run {i + 1}: old {t_old:6.1f} s   new {t_new:6.1f} s   old/new {t_old / t_new:4.2f}×", flush=True)
        best_old, best_new = min(r[0] for r in rows), min(r[1] for r in rows)
        print(f"\nprobekit report on {len(names)} capture(s), best of {args.repeat}: old ({args.old}) {best_old:.1f} s, "
              f"new {best_new:.1f} s — {best_old / best_new:.2f}× faster (target: new ≤ 25 s)")


if __name__ == "__main__":
    main()
