"""A long fuzz run of the reader (not part of the tests; tests/test_fuzz.py runs a fixed-size one in CI).

    python benchmarks/fuzz_reader.py hypothesis [EXAMPLES]   # mutated real captures, default 20000
    python benchmarks/fuzz_reader.py atheris [-atheris_runs=N] # coverage-guided, if atheris is installed

Only probekit.CaptureError may escape read_capture; anything else is a bug and stops the run with the
input saved to benchmarks/data/crash-*.bin.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_hypothesis(examples: int) -> int:
    env = dict(os.environ, PROBEKIT_FUZZ_EXAMPLES=str(examples))
    return subprocess.call([sys.executable, "-m", "pytest", "-q", str(ROOT / "tests" / "test_fuzz.py"), "-k",
                            "mutated", "-p", "no:cacheprovider"], env=env, cwd=ROOT)


def run_atheris(argv: list[str]) -> int:
    try:
        import atheris
    except ImportError:
        print("atheris is not installed: pip install atheris", file=sys.stderr)
        return 2
    import probekit.capture._kernels  # numba kernels stay uninstrumented (they are compiled)
    with atheris.instrument_imports(include=["probekit.capture._frames", "probekit.capture.reader",
                                             "probekit.capture._table", "probekit.capture.linktypes"]):
        import probekit
    tmp = Path(tempfile.mkdtemp()) / "fuzz.bin"
    seeds = Path(tempfile.mkdtemp())
    for i, p in enumerate(sorted((ROOT / "captures").glob("*.pcap*"))):
        (seeds / f"seed{i}").write_bytes(p.read_bytes()[:4096])

    def one(data: bytes) -> None:
        tmp.write_bytes(data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                probekit.read_capture(tmp)
            except probekit.CaptureError:
                pass
            except Exception:
                crash = ROOT / "benchmarks" / "data" / f"crash-{abs(hash(data))}.bin"
                crash.parent.mkdir(parents=True, exist_ok=True)
                crash.write_bytes(data)
                raise
    atheris.Setup([sys.argv[0], str(seeds), *argv], one)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "hypothesis"
    if mode == "atheris":
        sys.exit(run_atheris(sys.argv[2:]))
    sys.exit(run_hypothesis(int(sys.argv[2]) if len(sys.argv) > 2 else 20000))
