"""Start-up time, old against new, side by side in one run.

The old figures come from a temporary ``git worktree`` of an earlier commit (default 826bcbf, before the
lazy ``import probekit``), run with the same interpreter and PYTHONPATH pointing at it; the new ones from
this checkout. Each figure is the median wall time of a fresh process over ``--runs`` runs, after one
warm-up run (so numba's on-disk cache and the OS page cache are warm for both).

    python benchmarks/bench_startup.py [--runs 5] [--old 826bcbf] [--capture captures/healthy.pcap]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# what is timed, with the target (seconds) where it sets one
CASES = [
    ("probekit --version", ["-m", "probekit", "--version"], 0.3),
    ("probekit --help", ["-m", "probekit", "--help"], 0.3),
    ("import probekit", ["-c", "import probekit"], 0.5),
    ("read_capture (reader only)", ["-c", "import probekit, sys; probekit.read_capture(sys.argv[1])", "{capture}"],
     None),
    ("probekit summary (warm)", ["-m", "probekit", "summary", "{capture}"], 2.0),
]


def _env(tree: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "NUMBA_DISABLE_JIT")}
    env["PYTHONPATH"] = str(tree)
    return env


def _check_tree(tree: Path) -> None:
    """The interpreter must import probekit from ``tree``, not from an installed copy."""
    out = subprocess.run([sys.executable, "-c", "import probekit; print(probekit.__file__)"], env=_env(tree), cwd=tree,
                         capture_output=True, text=True, check=True).stdout.strip()
    if not out.startswith(str(tree)):
        sys.exit(f"probekit imports from {out}, not from {tree}: is PYTHONPATH honoured?")


def _time(tree: Path, args: list[str], runs: int, capture: Path) -> float:
    cmd = [sys.executable, *[a.format(capture=capture) for a in args]]
    env = _env(tree)
    subprocess.run(cmd, env=env, cwd=tree, capture_output=True, check=True)  # warm-up (numba cache, pages)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, env=env, cwd=tree, capture_output=True, check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--old", default="826bcbf", help="the commit to compare with (default 826bcbf)")
    ap.add_argument("--capture", type=Path, default=ROOT / "captures" / "healthy.pcap")
    a = ap.parse_args()
    capture = a.capture.resolve()
    with tempfile.TemporaryDirectory(prefix="probekit-old-") as tmp:
        old = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(old), a.old], check=True)
        try:
            _check_tree(old)
            _check_tree(ROOT)
            rows = []
            for name, args, target in CASES:
                t_old = _time(old, args, a.runs, capture)
                t_new = _time(ROOT, args, a.runs, capture)
                rows.append((name, t_old, t_new, target))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], check=False)
    print(f"start-up, median of {a.runs} warm runs each, {sys.executable} on {os.cpu_count()} CPU(s); "
          f"old = {a.old}, new = this tree; capture {capture.name}")
    print(f"{'':30} {'old s':>8} {'new s':>8} {'old/new':>8} {'target':>8}  met")
    for name, t_old, t_new, target in rows:
        tgt = f"≤ {target:g}" if target else ""
        met = "" if target is None else ("yes" if t_new <= target else "NO")
        print(f"{name:30} {t_old:8.3f} {t_new:8.3f} {t_old / t_new:7.1f}× {tgt:>8}  {met}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
