"""Generator speed: probekit.synth against a plain per-packet dpkt builder, side by side in one run.

The dpkt builder makes the same packets (same simulation, same fields) one dpkt object at a time and
writes them with dpkt.pcap.Writer; it runs on a slice and is reported as packets/s, like probekit.

    python benchmarks/bench_synth.py [--packets 1000000] [--slice 50000]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import dpkt
import numpy as np

from probekit.synth import default_monitor, scenario, synth
from probekit.synth.simulate import EPOCH_S, simulate
from probekit.wire import LINK_ETHERNET, Layout, build_one


def dpkt_builder(sim, out: Path, limit: int) -> int:
    pk = sim.packets
    with open(out, "wb") as f:
        w = dpkt.pcap.Writer(f, snaplen=262144, linktype=1)
        for i in range(min(limit, pk["t_ns"].size)):
            lay = Layout(int(pk["kind"][i]), int(pk["family"][i]), int(pk["size"][i]), LINK_ETHERNET)
            plen = int(pk["payload_len"][i])
            off = int(pk["payload_off"][i])
            frame = build_one(lay, src=sim.addresses[pk["src"][i]], dst=sim.addresses[pk["dst"][i]], ip_id=i & 0xFFFF,
                              ttl=int(pk["ttl"][i]), mac_src=b"\2" * 6, mac_dst=b"\4" * 6,
                              icmp_id=int(pk["icmp_id"][i]), icmp_seq=int(pk["icmp_seq"][i]),
                              payload=sim.payload_pool[off:off + plen].tobytes(), sport=int(pk["sport"][i]),
                              dport=int(pk["dport"][i]), seq=int(pk["tcp_seq"][i]), ack=int(pk["tcp_ack"][i]))
            w.writepkt(frame, ts=int(pk["t_ns"][i]) / 1e9)
    return min(limit, pk["t_ns"].size)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--slice", type=int, default=50_000)
    args = ap.parse_args()
    rate = 200.0
    kw = dict(duration_s=args.packets / 5 / rate, rate_per_s=rate, loss=0.0, send_jitter_ms=0.5)
    with tempfile.TemporaryDirectory() as d:
        synth("healthy", Path(d) / "warm.pcap", seed=1, duration_s=5)  # compile kernels outside the timing
        t = time.perf_counter()
        synth("healthy", Path(d) / "pk.pcap", seed=42, **kw)
        t_pk = time.perf_counter() - t
        n_pk = sum(1 for _ in dpkt.pcap.Reader(open(Path(d) / "pk.pcap", "rb")))
        sim = simulate(default_monitor(), scenario("healthy", **kw), np.random.default_rng(42))
        t = time.perf_counter()
        n_dp = dpkt_builder(sim, Path(d) / "dp.pcap", args.slice)
        t_dp = time.perf_counter() - t
    print(f"\n{'builder':<26}{'packets':>10}{'seconds':>10}{'packets/s':>13}{'ratio':>8}")
    print(f"{'probekit.synth (all)':<26}{n_pk:>10}{t_pk:>10.2f}{n_pk / t_pk:>13,.0f}{(n_pk / t_pk) / (n_dp / t_dp):>8.1f}")
    print(f"{'per-packet dpkt (slice)':<26}{n_dp:>10}{t_dp:>10.2f}{n_dp / t_dp:>13,.0f}{1.0:>8.1f}")
    print(f"(synth includes simulation and writing; the dpkt row builds and writes only; epoch {EPOCH_S})")


if __name__ == "__main__":
    main()
