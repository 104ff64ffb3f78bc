"""One lab run: impair the path, capture at both ends, probe from the prober's namespace, collect."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .lab import Lab, LabError

__all__ = ["lab_run"]


def lab_run(lab: Lab, out_dir, protocol: str = "both", family: int = 4, rate: float = 10.0, duration: float = 20.0,
            size: int = 56, delay_ms: float = 0.0, jitter_ms: float = 0.0, loss: float = 0.0,
            keep_order: bool = False, seed: int | None = None, timeout_s: float = 1.0, period_s: int = 30,
            during=None) -> dict:
    """Run the prober in the lab and capture it; ``during(lab)`` (optional) is called once probing started,
    e.g. to take the target down part-way. Returns paths and the prober's summary."""
    if not lab.is_up():
        lab.up()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    c = lab.config
    if delay_ms or jitter_ms or loss:
        lab.impair(delay_ms, jitter_ms, loss, keep_order, seed)
    else:
        lab.clear_impairment()
    caps = {"target": out / "target.pcap", "prober": out / "prober.pcap"}
    for where, path in caps.items():
        lab.start_capture(where, path)
    sources = c.sources_v4 if family == 4 else c.sources_v6
    dest = c.target_v4 if family == 4 else c.target_v6
    cmd = ["ip", "netns", "exec", c.ns("prober"), sys.executable, "-m", "probekit", "probe", "--dest", dest,
           "--protocol", protocol, "--port", "8080", "--size", str(size), "--rate", str(rate), "--duration",
           str(duration), "--timeout", str(timeout_s), "--period", str(period_s), "-o", str(out / "results.csv")]
    for s in sources:
        cmd += ["--source", s]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if during is not None:
            during(lab)
        stdout, stderr = proc.communicate(timeout=duration + 60)
        if proc.returncode:
            raise LabError(f"the prober failed: {stderr.strip().splitlines()[-1] if stderr.strip() else proc.returncode}")
        summary = json.loads(stdout.strip().splitlines()[-1])
    finally:
        for where in caps:
            lab.stop_capture(where)
    return {"prober_capture": str(caps["prober"]), "target_capture": str(caps["target"]),
            "results": str(out / "results.csv"), "periods": str(out / "results.periods.jsonl"), "summary": summary,
            "impairment": dict(delay_ms=delay_ms, jitter_ms=jitter_ms, loss=loss, keep_order=keep_order)}


def record_lab_captures(folder, seconds: float = 120.0) -> list[Path]:
    """The real lab captures shipped in captures/lab/: healthy, target down half-way, port closed.
    Each run writes the prober-side (SLL2, `tcpdump -i any`) capture and the prober's results."""
    import shutil
    import threading
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lab = Lab()
    lab.up()
    made = []

    def keep(run, name):
        for src, suffix in ((run["prober_capture"], ".pcap"), (run["results"], ".results.csv")):
            dst = folder / f"{name}{suffix}"
            shutil.copy(src, dst)
            made.append(dst)
    try:
        with __import__("tempfile").TemporaryDirectory() as tmp:
            keep(lab_run(lab, Path(tmp) / "h", rate=2, duration=seconds, seed=11), "lab-healthy")
            timer = {}

            def down_half_way(lab):
                timer["t"] = threading.Timer(seconds / 2, lab.set_target, args=(False,))
                timer["t"].start()
            try:
                keep(lab_run(lab, Path(tmp) / "d", rate=2, duration=seconds, seed=12, during=down_half_way),
                     "lab-target-down")
            finally:
                lab.set_target(True)
            lab.set_http(False)
            try:
                keep(lab_run(lab, Path(tmp) / "c", protocol="tcp", rate=2, duration=seconds / 2, seed=13),
                     "lab-port-closed")
            finally:
                lab.set_http(True)
    finally:
        lab.down()
    return made


if __name__ == "__main__":  # pragma: no cover
    for p in record_lab_captures(sys.argv[1] if len(sys.argv) > 1 else "captures/lab"):
        print(p)
