"""The live prober's per-period JSONL: one record per (stream, source, period), written when the period
closes; SIGKILL loses at most the open periods. Real namespaces (the lab, prefix pkK), raw sockets."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from probekit.live.lab import Lab, LabConfig
from probekit.synth import read_truth

ROOT = Path(__file__).resolve().parents[1]
NEEDS = [t for t in ("ip", "tcpdump", "nft", "iptables", "nginx") if not shutil.which(t)]
pytestmark = [
    pytest.mark.serial,  # real lab traffic and timing: run alone, after the parallel part (./kit test)
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root (network namespaces, raw sockets)"),
    pytest.mark.skipif(bool(NEEDS), reason=f"missing tools: {NEEDS} (./kit test installs them)"),
]
PERIOD_S, TIMEOUT_S, RATE = 1, 0.2, 20


@pytest.fixture(scope="module")
def lab():
    lab = Lab(LabConfig(prefix="pkK"))
    lab.up()
    yield lab
    lab.down()
    assert not lab.namespaces()


def _prober(lab, out: Path, duration: float) -> subprocess.Popen:
    c = lab.config
    cmd = ["ip", "netns", "exec", c.ns("prober"), sys.executable, "-m", "probekit", "probe", "--dest", c.target_v4,
           "--protocol", "both", "--port", "8080", "--rate", str(RATE), "--duration", str(duration), "--timeout",
           str(TIMEOUT_S), "--period", str(PERIOD_S), "-o", str(out)]
    for s in c.sources_v4:
        cmd += ["--source", s]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _records(path: Path) -> list[dict]:
    lines = path.read_text().splitlines(keepends=True)
    # a record is one write of one whole line; a kill can at most cut the last one short
    return [json.loads(ln) for ln in lines if ln.endswith("\n")]


def _check_against_results(recs: list[dict], results: Path, pairs: set) -> None:
    """One record per (stream, source, period), contiguous periods, each complete: its counts equal the
    probes of that period in the per-probe results."""
    keys = [(r["stream"], r["source"], r["period_start_ns"]) for r in recs]
    assert len(keys) == len(set(keys)), "a (stream, source, period) written twice"
    starts = sorted({k[2] for k in keys})
    step = PERIOD_S * 10**9
    assert starts == list(range(starts[0], starts[-1] + step, step)), "periods are contiguous"
    assert {(k[0], k[1]) for k in keys} == pairs and len(keys) == len(pairs) * len(starts)
    truth = read_truth(results)
    truth = truth.assign(period_start_ns=truth["send_ns"] // step * step)
    for r in recs:
        t = truth[(truth["stream"] == r["stream"]) & (truth["source"] == r["source"])
                  & (truth["period_start_ns"] == r["period_start_ns"])]
        assert r["sent"] == len(t) and r["answered"] == int(t["answered"].sum()), r
        assert r["status"] == ("no_probes" if len(t) == 0 else "ok" if t["answered"].all() else
                               "no_reply" if not t["answered"].any() else "loss")


def _pairs(lab) -> set:
    t = lab.config.target_v4
    return {(s, src) for s in (f"icmp:{t}", f"tcp:{t}:8080") for src in lab.config.sources_v4}


def test_one_record_per_stream_source_period(lab, tmp_path):
    out = tmp_path / "r.csv"
    proc = _prober(lab, out, duration=4)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    recs = _records(out.with_suffix(".periods.jsonl"))
    _check_against_results(recs, out, _pairs(lab))
    assert sum(r["sent"] for r in recs) == len(read_truth(out)) == 4 * RATE * 2
    assert {r["status"] for r in recs} <= {"ok", "no_probes"}


def test_sigkill_loses_at_most_the_open_periods(lab, tmp_path):
    out = tmp_path / "r.csv"
    proc = _prober(lab, out, duration=30)
    periods = out.with_suffix(".periods.jsonl")
    t0 = time.monotonic()
    while not (periods.exists() and periods.stat().st_size) and time.monotonic() - t0 < 20:
        time.sleep(0.05)
    time.sleep(3.0 + PERIOD_S / 3)
    killed_ns = time.time_ns()
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    recs = _records(periods)
    _check_against_results(recs, out, _pairs(lab))
    step = PERIOD_S * 10**9
    last_closed = max(r["period_start_ns"] for r in recs)
    # what a kill may lose: the period it fell in, and the one before while its probes were undecided
    open_from = (killed_ns - 2 * int(TIMEOUT_S * 1e9) - 50_000_000) // step * step - step
    assert last_closed >= open_from, (last_closed, killed_ns)
    assert len({r["period_start_ns"] for r in recs}) >= 3
