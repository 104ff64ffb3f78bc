"""Real tcpdump, real traffic in a namespace made here: a ``-C``/``-G`` rotation compressed with ``-z gzip``
read by read_captures equals one uncompressed capture of the same traffic, and ``tcpdump -w -`` piped
into ``probekit summary -`` gives the summary of the same bytes written to a file. Needs root."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import probekit
from probekit.scale import read_captures

ROOT = Path(__file__).resolve().parents[1]
NS = "pkM-tcpd"
pytestmark = [
    pytest.mark.serial,  # real lab traffic and timing: run alone, after the parallel part (./kit test)
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a network namespace, tcpdump on its loopback)"),
    pytest.mark.skipif(not shutil.which("tcpdump") or not shutil.which("ip"), reason="needs tcpdump and iproute2"),
]


@pytest.fixture(scope="module")
def ns():
    subprocess.run(["ip", "netns", "del", NS], capture_output=True)
    subprocess.run(["ip", "netns", "add", NS], check=True)
    subprocess.run(["ip", "netns", "exec", NS, "ip", "link", "set", "lo", "up"], check=True)
    yield NS
    subprocess.run(["ip", "netns", "del", NS], check=True)


def tcpdump(ns, *args, stdout=subprocess.DEVNULL):
    """Start tcpdump on the namespace's loopback; return once it says it is listening."""
    p = subprocess.Popen(["ip", "netns", "exec", ns, "tcpdump", "-U", "--immediate-mode", "-n", "-s", "0", "-i", "lo",
                          *args], stdout=stdout, stderr=subprocess.PIPE, text=False, start_new_session=True)
    deadline = time.time() + 10
    while time.time() < deadline:
        line = p.stderr.readline().decode()
        if "listening on" in line:
            return p
        if p.poll() is not None:
            raise RuntimeError(f"tcpdump stopped: {line}{p.stderr.read().decode()}")
    p.kill()
    raise RuntimeError("tcpdump did not start listening")


def stop(p):
    time.sleep(0.3)
    os.killpg(p.pid, signal.SIGINT)
    p.wait(10)


def ping(ns, count, interval, size=56):
    subprocess.run(["ip", "netns", "exec", ns, "ping", "-q", "-c", str(count), "-i", str(interval), "-s", str(size),
                    "127.0.0.1"], check=True, capture_output=True)


def _wait_compressed(folder: Path, timeout=20):
    """tcpdump -z runs gzip on each finished file in the background: wait until only the last is plain."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        plain = [p for p in folder.iterdir() if p.name.startswith("rot") and not p.name.endswith(".gz")]
        if len(plain) <= 1 and not any(p.name.endswith(".gz") and p.with_suffix("").exists() for p in folder.iterdir()):
            return
        time.sleep(0.1)
    raise AssertionError(f"gzip did not finish: {sorted(p.name for p in folder.iterdir())}")


@pytest.mark.parametrize("rotate", [["-C", "1"], ["-G", "1"]], ids=["by-size", "by-time"])
def test_gzip_rotation_equals_one_plain_capture(ns, tmp_path, rotate):
    rot_dir = tmp_path / "rot"
    rot_dir.mkdir()
    pattern = str(rot_dir / ("rot.pcap" if rotate[0] == "-C" else "rot-%s.pcap"))
    whole = tcpdump(ns, "-w", str(tmp_path / "all.pcap"), "icmp")
    rot = tcpdump(ns, *rotate, "-z", "gzip", "-Z", "root", "-w", pattern, "icmp")
    try:
        if rotate[0] == "-C":       # 1,000,000 bytes per file: about 2.7 MB of echo requests and replies
            ping(ns, 900, 0.002, size=1400)
        else:                       # a new file every second for 3.5 s
            ping(ns, 70, 0.05, size=200)
    finally:
        stop(rot)
        stop(whole)
    _wait_compressed(rot_dir)
    names = sorted(p.name for p in rot_dir.iterdir())
    gz = [n for n in names if n.endswith(".gz")]
    assert len(gz) >= 2, names
    want = probekit.read_capture(tmp_path / "all.pcap")
    got = read_captures(str(rot_dir / "rot*"))
    assert set(got.attrs["paths"]) == set(names)
    # the same traffic seen by two tcpdumps: the same frames, each stamped by its own socket (the kernel
    # stamps each packet socket's copy itself: the two can differ by a few µs); offsets count per file
    cols = [c for c in want.columns if c not in ("payload_off", "ts_ns")]
    pd.testing.assert_frame_equal(got[cols].reset_index(drop=True), want[cols].reset_index(drop=True),
                                  check_categorical=False)
    dts = (got["ts_ns"].to_numpy("int64") - want["ts_ns"].to_numpy("int64"))
    assert abs(dts).max() < 1_000_000, abs(dts).max()
    assert len(want) >= 2 * 70
    # exactly: each rotated file equals what the real gzip -dc makes of it, read as a plain file
    for name, part in got.groupby("capture", observed=True):
        plain = tmp_path / "plain"
        with open(plain, "wb") as f:
            if name.endswith(".gz"):
                subprocess.run(["gzip", "-dc", str(rot_dir / name)], stdout=f, check=True)
            else:
                f.write((rot_dir / name).read_bytes())
        ref = probekit.read_capture(plain)
        mine = part.drop(columns=["capture", "frame"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, ref.drop(columns=["frame"]), check_categorical=False)
    # payloads come out of the compressed files
    some = got.iloc[::37]
    assert some.probekit.payloads().tolist() == want.iloc[::37].probekit.payloads().tolist()


def test_tcpdump_piped_into_probekit_summary(ns, tmp_path):
    copy = tmp_path / "copy.pcap"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    td = tcpdump(ns, "-w", "-", "icmp", stdout=subprocess.PIPE)
    tee = subprocess.Popen(["tee", str(copy)], stdin=td.stdout, stdout=subprocess.PIPE)
    td.stdout.close()
    pk = subprocess.Popen([sys.executable, "-m", "probekit", "summary", "-", "--json"], stdin=tee.stdout,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    tee.stdout.close()
    try:
        ping(ns, 25, 0.02)
    finally:
        stop(td)
    out, err = pk.communicate(timeout=120)
    tee.wait(10)
    assert pk.returncode == 0, err.decode()
    got = json.loads(out)
    assert got.pop("path") == "<stdin>"
    ref = subprocess.run([sys.executable, "-m", "probekit", "summary", str(copy), "--json"], capture_output=True,
                         env=env, check=True)
    want = json.loads(ref.stdout)
    want.pop("path")
    assert got == want
    df = probekit.read_capture(copy)
    assert (df["icmp_type"] == 8).sum() == 25 and (df["icmp_type"] == 0).sum() == 25
