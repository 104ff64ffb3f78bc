"""Live accuracy, side by side in one lab run (root): ping, fping, hping3 and nping against probekit's
prober through the same impaired path. Prints each tool's RTT and loss against the configured truth,
and probekit's send-schedule error (p50/p99) at 100 and 1,000 probes/s.

    sudo python benchmarks/bench_live.py [--delay-ms 10] [--loss 0.05] [--count 400]
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from probekit.live.lab import Lab, LabConfig
from probekit.synth import read_truth


def sh(lab, args, timeout=300):
    return subprocess.run(["ip", "netns", "exec", lab.config.ns("prober"), *args], capture_output=True, text=True,
                          timeout=timeout)


def run_probekit(lab, out, rate, count, protocol="icmp"):
    c = lab.config
    p = sh(lab, [sys.executable, "-m", "probekit", "probe", "--dest", c.target_v4, "--protocol", protocol, "--port",
                 "8080", "--rate", str(rate), "--duration", str(count / rate), "--source", c.eni_v4(0), "--source",
                 c.eni_v4(1), "--force", "-o", str(out)])
    if p.returncode:
        raise SystemExit(p.stderr)
    import json
    summary = json.loads(p.stdout.strip().splitlines()[-1])
    res = read_truth(out)
    rtt = res.loc[res["answered"], "rtt_us"].to_numpy() / 1e3
    return dict(rtt_ms=float(np.median(rtt)) if rtt.size else float("nan"), loss=float(1 - res["answered"].mean()),
                sent=len(res), p50_us=summary["schedule_error_p50_us"], p99_us=summary["schedule_error_p99_us"])


def run_ping(lab, count):
    c = lab.config
    p = sh(lab, ["ping", "-n", "-c", str(count), "-i", "0.01", "-W", "1", "-I", c.eni_v4(0), c.target_v4])
    times = [float(x) for x in re.findall(r"time=([\d.]+) ms", p.stdout)]
    sent = int(re.search(r"(\d+) packets transmitted", p.stdout).group(1))
    return dict(rtt_ms=float(np.median(times)) if times else float("nan"), loss=1 - len(times) / sent, sent=sent)


def run_fping(lab, count):
    c = lab.config
    p = sh(lab, ["fping", "-C", str(count), "-p", "10", "-t", "1000", "-q", "-S", c.eni_v4(0), c.target_v4])
    line = (p.stderr or p.stdout).strip().splitlines()[-1]
    vals = line.split(":", 1)[1].split()
    times = [float(v) for v in vals if v != "-"]
    return dict(rtt_ms=float(np.median(times)) if times else float("nan"), loss=1 - len(times) / len(vals), sent=len(vals))


def run_hping3(lab, count):
    c = lab.config
    p = sh(lab, ["hping3", "-S", "-p", "8080", "-d", "36", "-c", str(count), "-i", "u10000", "-a", c.eni_v4(0),
                 "-I", "eni0", c.target_v4])
    out = p.stdout + p.stderr
    times = [float(x) for x in re.findall(r"rtt=([\d.]+) ms", out)]
    m = re.search(r"(\d+) packets transmitted, (\d+) packets received", out)
    sent, recv = (int(m.group(1)), int(m.group(2))) if m else (count, len(times))
    return dict(rtt_ms=float(np.median(times)) if times else float("nan"), loss=1 - min(recv, sent) / sent, sent=sent)


def run_nping(lab, count):
    c = lab.config
    p = sh(lab, ["nping", "--icmp", "-c", str(count), "--delay", "10ms", "-S", c.eni_v4(0), "-e", "eni0", "-v-1",
                 c.target_v4], timeout=600)
    out = p.stdout
    avg = re.search(r"Avg rtt:\s*([\d.]+)ms", out)
    m = re.search(r"Raw packets sent: (\d+).*?Rcvd: (\d+)", out, re.S)
    sent, recv = (int(m.group(1)), int(m.group(2))) if m else (count, 0)
    return dict(rtt_ms=float(avg.group(1)) if avg else float("nan"), loss=1 - recv / sent if sent else float("nan"),
                sent=sent, note="average (nping prints no per-probe times)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--delay-ms", type=float, default=10.0)
    ap.add_argument("--loss", type=float, default=0.05)
    ap.add_argument("--count", type=int, default=400)
    a = ap.parse_args()
    lab = Lab(LabConfig(prefix="pkB"))
    lab.up()
    tmp = Path(tempfile.mkdtemp())
    try:
        base = run_probekit(lab, tmp / "base.csv", 100, 300)["rtt_ms"]
        lab.impair(delay_ms=a.delay_ms, loss=a.loss, seed=1)
        truth_rtt = a.delay_ms + base
        rows = []
        for name, fn in (("ping", run_ping), ("fping", run_fping), ("hping3", run_hping3), ("nping", run_nping)):
            tool = {"nping": "nping"}.get(name, name)
            if not shutil.which(tool):
                rows.append((name, None))
                continue
            rows.append((name, fn(lab, a.count)))
        pk100 = run_probekit(lab, tmp / "p100.csv", 100, a.count)
        pk1000 = run_probekit(lab, tmp / "p1000.csv", 1000, max(a.count, 3000))
        rows += [("probekit 100/s", pk100), ("probekit 1000/s", pk1000)]
    finally:
        lab.down()
    print(f"\npath: +{a.delay_ms} ms forward delay, {a.loss:.1%} forward loss; unimpaired baseline RTT {base:.3f} ms "
          f"(probekit, median); truth RTT {truth_rtt:.3f} ms\n")
    print(f"{'tool':<17}{'sent':>6}{'RTT ms':>10}{'RTT error ms':>14}{'loss':>8}{'loss error':>12}{'sched p50 µs':>14}"
          f"{'sched p99 µs':>14}")
    for name, r in rows:
        if r is None:
            print(f"{name:<17}  not installed")
            continue
        err = r["rtt_ms"] - truth_rtt
        print(f"{name:<17}{r['sent']:>6}{r['rtt_ms']:>10.3f}{err:>14.3f}{r['loss']:>8.1%}{r['loss'] - a.loss:>12.1%}"
              f"{r.get('p50_us') or float('nan'):>14.1f}{r.get('p99_us') or float('nan'):>14.1f}"
              + (f"  ({r['note']})" if r.get("note") else ""))


if __name__ == "__main__":
    main()
