"""Payload verdicts, fingerprints and the chunked driver beside the implementation before issue 16
(tests/reference_*.py) and beside the read, in one run on the benchmark capture (bench_read.build).
Prints each step's seconds and its ratio to the read; checks old and new give the same tables.

    python benchmarks/bench_speed.py [--packets 100000 1000000 10000000] [--old-max 1000000]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))


def timed(fn, repeat=1):
    best, out = None, None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        d = time.perf_counter() - t
        best = d if best is None else min(best, d)
    return best, out


def run(n: int, old_max: int, repeat: int):
    from bench_read import build

    import probekit
    from probekit.analysis import payload as P
    from probekit.analysis.fingerprint import fingerprint
    from probekit.drive.chunked import chunked_analyses
    path = build(n)["pcap"]
    probekit.read_capture(path)
    read_s, df = timed(lambda: probekit.read_capture(path), repeat)
    probes = df.probekit.probes()
    balance = probekit.balance_test(probes)
    rows = {}
    rows["payload verdicts (new: buffer + verdicts)"], v = timed(
        lambda: P.payload_verdicts(probes, P.request_payload_buffer(df, probes)), repeat)
    rows["fingerprints (new, given verdicts + balance)"], f = timed(
        lambda: fingerprint(df, probes, verdicts=v, balance=balance), repeat)
    rows["fingerprints (new, computing its verdicts)"], _ = timed(lambda: fingerprint(df, probes), 1)
    same = None
    if n <= old_max:
        import reference_fingerprint as RF
        import reference_payload as R
        rows["payload verdicts (old)"], vo = timed(lambda: R.payload_verdicts(probes, R.request_payloads(df, probes)))
        rows["fingerprints (old)"], fo = timed(lambda: RF.fingerprint(df, probes))
        key = ["protocol", "destination", "port", "source"]
        a = v.sort_values(key).reset_index(drop=True)
        b = vo.sort_values(key).reset_index(drop=True)
        same = all(a[c].astype(str).tolist() == b[c].astype(str).tolist() for c in vo.columns) and \
            f.sort_values(key)["evidence"].tolist() == fo.sort_values(key)["evidence"].tolist()

    def in_memory_metrics():
        d = probekit.read_capture(path)
        p = d.probekit.probes()
        return probekit.period_metrics(p, 30), probekit.period_metrics(p, 30, by=probekit.PROBE_LEVEL)
    rows["metrics, in memory (read + match + periods)"], mem = timed(in_memory_metrics)
    rows["metrics, chunked (2 M packets per chunk)"], ch = timed(lambda: chunked_analyses(
        path, analyses=("periods", "probe_periods"), keep_probes=False))
    same_ch = ch.tables["periods"].equals(mem[0]) and ch.tables["probe_periods"].equals(mem[1])
    print(f"\n{len(df):,} packets, {len(probes):,} probes; read {read_s:.3f} s")
    for k, s in rows.items():
        print(f"  {k:<48}{s:8.3f} s  {s / read_s:7.2f} × the read")
    print(f"  old and new payload verdicts / fingerprint evidence identical: {same}; chunked periods equal: {same_ch}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--packets", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--old-max", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    for n in a.packets:
        run(n, a.old_max, a.repeat)


if __name__ == "__main__":
    main()
