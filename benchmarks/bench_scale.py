"""Scale, side by side in one run: 100 rotated files / 10 M packets, in memory (read_captures + match +
metrics) against the Parquet dataset through Dask (LocalCluster, 2 workers with a memory limit),
each in its own process, with peak memory. Checks that both give the same per-period numbers.
``--analyses all``: every analysis of the report (periods, timing, gaps, sources, size changes, payload
verdicts, fingerprints, connections) on both paths (``probekit.drive.dataset.dataset_analyses`` for
Dask), each table compared.

    python benchmarks/bench_scale.py [--files 100] [--packets-per-file 100000] [--bound-gib 1.5] [--analyses all]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "rotated"


def build(files: int, per_file: int) -> Path:
    from probekit.synth import synth
    DATA.mkdir(parents=True, exist_ok=True)
    rate = 200.0
    duration = per_file / 5 / rate
    for i in range(files):
        p = DATA / f"probes-{i:03d}.pcap"
        if not p.exists():
            synth("healthy", p, seed=100 + i, duration_s=duration, rate_per_s=rate, start_s=i * duration,
                  send_jitter_ms=0.5)
    return DATA


def _hwm() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


TABLES = ("periods", "probe_periods", "timing", "gaps", "balance", "alternation", "source_quality", "size_changes",
          "payload_verdicts", "fingerprints", "connections")


def _digest(t) -> int:
    import hashlib
    return int(hashlib.sha1(t.astype(str).to_csv(index=False).encode()).hexdigest()[:12], 16)


def child_all(mode: str, folder: str, bound: float) -> None:
    import probekit
    from probekit.analysis import payload as P
    t = time.perf_counter()
    extra = 0
    if mode == "memory":
        df = probekit.read_captures(f"{folder}/probes-*.pcap")
        probes = df.probekit.probes()
        span = df.probekit.span_ns()
        out = {"periods": probekit.period_metrics(probes, 30),
               "probe_periods": probekit.period_metrics(probes, 30, by=probekit.PROBE_LEVEL),
               "timing": probekit.timing_summary(probes, span_ns=span), "gaps": probekit.find_gaps(probes, span_ns=span),
               "balance": probekit.balance_test(probes), "alternation": probekit.alternation(probes),
               "source_quality": probekit.analysis.sources.source_quality(probes),
               "size_changes": probekit.size_changes(probes)}
        out["payload_verdicts"] = P.payload_verdicts(probes, P.request_payload_buffer(df, probes))
        out["fingerprints"] = probekit.fingerprint(df, probes, verdicts=out["payload_verdicts"], balance=out["balance"])
        out["connections"] = probekit.tcp_connections(df)
        n_packets = len(df)
        del df
    else:
        from distributed import Client, LocalCluster

        from probekit.drive.dataset import dataset_analyses
        ds = Path(folder).parent / "rotated-dataset"
        probekit.convert(f"{folder}/probes-*.pcap", ds)
        with LocalCluster(n_workers=2, threads_per_worker=1, memory_limit=f"{bound / 2:.2f}GiB",
                          dashboard_address=None) as cluster, Client(cluster) as client:
            out = dataset_analyses(ds, scheduler=client, analyses=("probes",) + TABLES)
            extra = max(client.run(_hwm).values())
        n_packets = out["packets"]
        probes = out["probes"]
    secs = time.perf_counter() - t
    print(json.dumps(dict(seconds=secs, packets=n_packets, probes=len(probes), peak=_hwm(), worker_peak=extra,
                          digests={k: _digest(out[k]) for k in TABLES})))


def child(mode: str, folder: str, bound: float) -> None:
    import probekit
    t = time.perf_counter()
    if mode == "memory":
        df = probekit.read_captures(f"{folder}/probes-*.pcap")
        probes = df.probekit.probes()
        n_packets = len(df)
        del df
        extra = 0
    else:
        from distributed import Client, LocalCluster
        ds = Path(folder).parent / "rotated-dataset"
        probekit.convert(f"{folder}/probes-*.pcap", ds)
        with LocalCluster(n_workers=2, threads_per_worker=1, memory_limit=f"{bound / 2:.2f}GiB",
                          dashboard_address=None) as cluster, Client(cluster) as client:
            probes = probekit.dataset_probes(ds, scheduler=client.scheduler.address)
            extra = max(client.run(_hwm).values())
        n_packets = sum(json.loads((ds / "_probekit_manifest.json").read_text())[k]["rows"]
                        for k in json.loads((ds / "_probekit_manifest.json").read_text()))
    per = probekit.period_metrics(probes, 30)
    secs = time.perf_counter() - t
    key = per[["sent", "answered", "loss_pct", "rtt_median_us", "status"]].astype(str).to_csv(index=False)
    print(json.dumps(dict(seconds=secs, packets=n_packets, probes=len(probes), peak=_hwm(), worker_peak=extra,
                          digest=hash(key))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=100)
    ap.add_argument("--packets-per-file", type=int, default=100_000)
    ap.add_argument("--bound-gib", type=float, default=3.0)
    ap.add_argument("--child", nargs=2)
    ap.add_argument("--analyses", choices=("metrics", "all"), default="metrics")
    a = ap.parse_args()
    if a.child:
        return (child_all if a.analyses == "all" else child)(a.child[0], a.child[1], a.bound_gib)
    folder = build(a.files, a.packets_per_file)
    res = {}
    for mode in ("memory", "dask"):
        p = subprocess.run([sys.executable, __file__, "--child", mode, str(folder), "--bound-gib", str(a.bound_gib),
                            "--analyses", a.analyses],
                           capture_output=True, text=True, env={"PYTHONHASHSEED": "0", **__import__("os").environ})
        if p.returncode:
            print(p.stderr[-2000:])
            raise SystemExit(1)
        res[mode] = json.loads(p.stdout.strip().splitlines()[-1])
    gib = 2**30
    print(f"\n{a.files} files, {res['memory']['packets']:,} packets, {res['memory']['probes']:,} probes")
    print(f"{'path':<10}{'seconds':>10}{'client peak GiB':>18}{'worker peak GiB':>18}")
    for mode, r in res.items():
        print(f"{mode:<10}{r['seconds']:>10.1f}{r['peak'] / gib:>18.2f}{r['worker_peak'] / gib:>18.2f}")
    if a.analyses == "all":
        for k in TABLES:
            print(f"  {k:<18} same on both paths: {res['memory']['digests'][k] == res['dask']['digests'][k]}")
        same = res["memory"]["digests"] == res["dask"]["digests"]
    else:
        same = res["memory"]["digest"] == res["dask"]["digest"]
    bound_ok = max(res["dask"]["peak"], res["dask"]["worker_peak"]) < a.bound_gib * gib < res["memory"]["peak"]
    print(f"same per-period numbers: {same}; Dask under the {a.bound_gib} GiB bound that the in-memory path "
          f"exceeds: {bound_ok}")


if __name__ == "__main__":
    main()
