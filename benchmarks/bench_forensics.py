"""Forensics cost beside the read, in one run: read a 1 M-packet probe capture (benchmarks/bench_read.py),
then classify the streams, attribute ICMP errors and reassemble fragments; prints each step (best of
``--repeat``) and the ratio of the steps together to the read. Beside each step the pandas
implementation it replaced (tests/reference_streams.py, tests/reference_errors_icmp.py) runs on the same
tables, so before → after is read off one run on a noisy machine. The shipped 1 M capture has no
fragments, no errors and no UDP, so two more files are measured: the
``fragmenting-path+unreachable+background`` scenario at a high rate (every big probe in 6 fragments each
way, errors after the target goes down) and a UDP-tracer capture (the real traceroute recording repeated).

    python benchmarks/bench_forensics.py [--packets 1000000] [--repeat 5]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from bench_read import build

import probekit
from probekit.analysis.datagrams import datagrams, reassembled_packets
from probekit.analysis.errors_icmp import attribute_errors
from probekit.analysis.streams import streams
from probekit.synth import synth

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import reference_errors_icmp as ref_errors
import reference_streams as ref_streams


def best(f, repeat: int) -> float:
    out = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        out = min(out, time.perf_counter() - t)
    return out


def run(path: Path, repeat: int) -> dict:
    df = probekit.read_capture(path)          # page cache and compiled kernels warm
    steps = {"read": (best(lambda: probekit.read_capture(path), repeat), None)}
    d = datagrams(df)
    r = reassembled_packets(df, d)
    steps["reassembly (datagrams + matcher view)"] = (best(lambda: reassembled_packets(df, datagrams(df)), repeat), None)
    probes = probekit.match_probes(r)

    def forensics(mod):
        def f():
            st = mod.streams(r, probes)
            mod.select_probe_streams(probes, st)
            mod.other_traffic(r, st)
        return f
    forensics(sys.modules[streams.__module__])()
    steps["streams (classify, select, other traffic)"] = (
        best(forensics(sys.modules[streams.__module__]), repeat), best(forensics(ref_streams), max(1, repeat // 2)))
    attribute_errors(df, probes)
    steps["error attribution"] = (best(lambda: attribute_errors(df, probes), repeat),
                                  best(lambda: ref_errors.attribute_errors(df, probes), max(1, repeat // 2)))
    steps["_n"] = (len(df), len(probes), len(d), int((probes["protocol"] == "udp").sum()))
    return steps


def show(name, steps):
    n, p, dg, udp = steps.pop("_n")
    print(f"\n{name}: {n:,} packets, {p:,} probes ({udp:,} UDP), {dg:,} fragmented datagrams")
    read = steps["read"][0]
    print(f"  {'step':<45}{'now':>9}{'':>8}{'pandas before':>15}{'':>8}")
    for k, (v, old) in steps.items():
        was = "" if old is None else f"{old:9.3f} s {old / read:5.2f}×"
        print(f"  {k:<45}{v:7.3f} s {v / read:5.2f}×  {was}")
    extra = sum(v for k, (v, _) in steps.items() if k != "read")
    before = sum((old if old is not None else v) for k, (v, old) in steps.items() if k != "read")
    print(f"  {'forensics in all':<45}{extra:7.3f} s {extra / read:5.2f}×  {before:9.3f} s {before / read:5.2f}×"
          "  (× = of the read, same run)")


def tracer_capture(tmp: Path, copies: int) -> Path:
    """The real traceroute-udp recording (Ethernet, little-endian pcap) repeated ``copies`` times, one run
    every 2 s, each copy's IPv4 ids shifted so that its probes are new probes, not re-sends."""
    src = Path(__file__).resolve().parents[1] / "captures" / "tools" / "traceroute-udp.pcap"
    raw = src.read_bytes()
    head, body = raw[:24], raw[24:]
    recs, i = [], 0
    while i + 16 <= len(body):
        incl = int.from_bytes(body[i + 8:i + 12], "little")
        recs.append(body[i:i + 16 + incl])
        i += 16 + incl
    out = bytearray(head)
    for c in range(copies):
        for rec in recs:
            r = bytearray(rec)
            r[0:4] = (int.from_bytes(r[0:4], "little") + 2 * c).to_bytes(4, "little")
            ip_id = 16 + 14 + 4
            r[ip_id:ip_id + 2] = ((int.from_bytes(r[ip_id:ip_id + 2], "big") + 7919 * c) & 0xFFFF).to_bytes(2, "big")
            out += r
    path = tmp / "tracer.pcap"
    path.write_bytes(bytes(out))
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    show("probe capture", run(build(args.packets)["pcap"], args.repeat))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "frag.pcap"
        rate = max(2.0, args.packets / 300 / 2 / 16)      # about args.packets / 2 frames in 300 s
        synth("fragmenting-path+unreachable+background", path, seed=1, rate_per_s=rate,
              size_change_at_s=0.0, size_apply_delay_s=0.0)
        show("fragmenting-path+unreachable+background", run(path, args.repeat))
        show("traceroute -U runs (the real recording, repeated)", run(tracer_capture(Path(tmp), 500), args.repeat))
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")


if __name__ == "__main__":
    main()
