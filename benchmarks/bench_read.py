"""Reader speed and memory, side by side in one run (this machine is noisy: compare ratios).

Builds a probe-traffic capture (ICMP echo request/reply, TCP SYN / SYN-ACK / RST from two ENIs) of
--packets packets as pcap and pcapng with probekit.synth, then times each reader in its own process
(peak RSS measured there): probekit, dpkt objects, dpkt Reader + struct, scapy PcapReader (100 k
slice), pyshark (10 k slice), tshark -T fields. Prints packets/s, the ratio to dpkt objects and peak
memory, and checks probekit's table equals the dpkt backend's field by field.

Compressed and piped input, in the same run: probekit on the gzip'd pcap against ``gzip -dc FILE >
/dev/null`` plus probekit on the plain file (target: at most 1.5x), and the peak memory of a read from a
pipe (``cat FILE |``) relative to the file's size (target: at most 6x), on the pcap and, with
``--pipe-gb G``, on a capture of G GB made by repeating the pcap's records.

VXLAN (VPC Traffic Mirroring), in the same run: probekit on a VXLAN-mirrored copy of the pcap beside the
plain file (issue 12: at most 1.5x), the decoder kernel alone on both (interleaved, best of --repeat), and
the packets table's bytes per packet for both (issue 16: at most 120). ``--only-vxlan`` runs only that.

Derived files (slices, the mirrored copy, the gzip'd copy) go next to the captures, or into ``--work DIR``
when the captures' folder is not to be written.

    python benchmarks/bench_read.py [--packets 1000000] [--repeat 3] [--pipe-gb 1] [--only-vxlan] [--work DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
WORK = DATA     # where derived files are written (--work)


def build(n_packets: int) -> dict[str, Path]:
    from probekit.synth import synth
    DATA.mkdir(exist_ok=True)
    # healthy scenario: per pair of probes (ICMP + TCP) 2 + 3 packets; loss 0 keeps the count exact
    rate = 200.0
    duration = n_packets / 5 / rate
    out = {}
    for fmt in ("pcap", "pcapng"):
        p = DATA / f"probes-{n_packets}.{fmt}"
        if not p.exists():
            synth("healthy", p, seed=42, duration_s=duration, rate_per_s=rate, loss=0.0, send_jitter_ms=0.5)
        out[fmt] = p
    return out


def slice_pcap(src: Path, n: int) -> Path:
    """The first n records of a classic pcap (for the slow readers)."""
    import dpkt
    dst = WORK / f"{src.stem}-first{n}.pcap"
    if dst.exists():
        return dst
    with open(src, "rb") as f, open(dst, "wb") as g:
        r = dpkt.pcap.Reader(f)
        w = dpkt.pcap.Writer(g, snaplen=r.snaplen, linktype=r.datalink())
        for i, (ts, buf) in enumerate(r):
            if i == n:
                break
            w.writepkt(buf, ts)
    return dst


# ------------------------------------------------------------------ one reader, run in a subprocess
def run_probekit(path):
    import probekit
    df = probekit.read_capture(path)
    return len(df)


def run_dpkt_objects(path):
    import dpkt
    n = 0
    with open(path, "rb") as f:
        reader = dpkt.pcapng.Reader(f) if str(path).endswith(".pcapng") else dpkt.pcap.Reader(f)
        for _ts, buf in reader:
            eth = dpkt.ethernet.Ethernet(buf)
            ip = eth.data
            l4 = ip.data
            _ = (ip.src, ip.dst, ip.p, ip.len, ip.ttl, ip.id)
            if isinstance(l4, dpkt.tcp.TCP):
                _ = (l4.sport, l4.dport, l4.flags, l4.seq, l4.ack, len(l4.data))
            elif isinstance(l4, dpkt.icmp.ICMP):
                _ = (l4.type, l4.code, l4.data.id, l4.data.seq)
            n += 1
    return n


def run_dpkt_struct(path):
    import struct

    import dpkt
    n = 0
    u_ip = struct.Struct(">BBHHHBBH4s4s").unpack_from
    u_tcp = struct.Struct(">HHIIH").unpack_from
    u_icmp = struct.Struct(">BBHHH").unpack_from
    with open(path, "rb") as f:
        reader = dpkt.pcapng.Reader(f) if str(path).endswith(".pcapng") else dpkt.pcap.Reader(f)
        for _ts, buf in reader:
            v, _tos, tot, ipid, _ff, ttl, p, _s, src, dst = u_ip(buf, 14)
            ihl = (v & 15) * 4
            if p == 6:
                u_tcp(buf, 14 + ihl)
            elif p == 1:
                u_icmp(buf, 14 + ihl)
            n += 1
    return n


def run_scapy(path):
    from scapy.utils import PcapReader
    n = 0
    from scapy.layers.inet import IP
    for pkt in PcapReader(str(path)):
        ip = pkt.getlayer(IP)
        _ = ip.src, ip.dst, ip.proto
        n += 1
    return n


def run_pyshark(path):
    import pyshark
    n = 0
    cap = pyshark.FileCapture(str(path), keep_packets=False)
    for pkt in cap:
        _ = pkt.ip.src
        n += 1
    cap.close()
    return n


def run_tshark(path):
    out = subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-e", "frame.time_epoch", "-e", "ip.src",
                          "-e", "ip.dst", "-e", "ip.proto", "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "tcp.flags",
                          "-e", "tcp.seq_raw", "-e", "icmp.ident", "-e", "icmp.seq"],
                         capture_output=True, check=True)
    return out.stdout.count(b"\n")


def run_gzip_dc(path):
    """The decompression alone, as the real tool does it: gzip -dc FILE > /dev/null."""
    with open(os.devnull, "wb") as null:
        subprocess.run(["gzip", "-dc", str(path)], stdout=null, check=True)
    return 0


def run_probekit_pipe(path):
    """probekit reading the capture from a pipe (cat FILE |): no mmap, the bytes come in chunks."""
    import probekit
    cat = subprocess.Popen(["cat", str(path)], stdout=subprocess.PIPE)
    df = probekit.read_capture(cat.stdout)
    cat.wait()
    return len(df)


RUNNERS = {"probekit": run_probekit, "probekit-pipe": run_probekit_pipe, "gzip-dc": run_gzip_dc,
           "dpkt-objects": run_dpkt_objects, "dpkt-struct": run_dpkt_struct,
           "scapy": run_scapy, "pyshark": run_pyshark, "tshark": run_tshark}


def kernel_times(paths: list[str], repeat: int) -> list[float]:
    """The compiled decoder alone (frame index built first, outputs allocated fresh each run, as the
    reader does) on each file, interleaved, best of ``repeat``."""
    import numpy as np

    from probekit._io import open_bytes
    from probekit.capture import _decode as D
    from probekit.capture._frames import index_frames
    from probekit.capture.linktypes import decoder_kind
    state = []
    for p in paths:
        ob = open_bytes(p)
        buf = np.asarray(ob.__enter__())
        idx = index_frames(buf, p)
        kinds = np.array([decoder_kind(i.linktype) for i in idx.interfaces], np.int8)[idx.iface]
        state.append((ob, buf, idx, kinds))
    best = [float("inf")] * len(paths)
    for r in range(repeat + 1):           # the first round compiles or loads the cached kernel
        for j, (_ob, buf, idx, kinds) in enumerate(state):
            n = len(idx)
            outs = (np.zeros((D.N8, n), np.uint8), np.zeros((D.N16, n), np.uint16), np.zeros((D.N32, n), np.uint32),
                    np.zeros((D.N64, n), np.int64), np.zeros((D.NA, n), np.uint64))
            t = time.perf_counter()
            D.decode(buf, idx.data_off, idx.caplen, idx.wirelen, kinds, True, *outs)
            if r:
                best[j] = min(best[j], time.perf_counter() - t)
    return best


def read_times(paths: list[str], repeat: int) -> list[float]:
    """probekit.read_capture on each file, interleaved (a load change hits both alike), best of ``repeat``."""
    import probekit
    best = [float("inf")] * len(paths)
    for r in range(repeat + 1):           # the first round warms the page cache and the kernels
        for j, p in enumerate(paths):
            t = time.perf_counter()
            probekit.read_capture(p)
            if r:
                best[j] = min(best[j], time.perf_counter() - t)
    return best


def child(name: str, path: str, repeat: int) -> None:
    if name in ("kernel", "reads"):
        fn = kernel_times if name == "kernel" else read_times
        print(json.dumps(dict(seconds=fn(path.split(","), repeat))))
        return
    fn = RUNNERS[name]
    if name.startswith("probekit"):  # compile (or load the cached) kernels outside the timing
        import probekit
        probekit.read_capture(Path(__file__).resolve().parents[1] / "captures" / "healthy.pcap")
    base = _hwm_kib()
    best = float("inf")
    n = 0
    for _ in range(repeat):
        t = time.perf_counter()
        n = fn(path)
        best = min(best, time.perf_counter() - t)
    peak = _hwm_kib()
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # tshark's, for the tshark row
    print(json.dumps(dict(n=n, seconds=best, peak_kib=max(peak, kids) if name == "tshark" else peak, base_kib=base)))


def _hwm_kib() -> int:
    """Peak RSS of this process image (VmHWM; unlike ru_maxrss it is not inherited across exec)."""
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def measure(name, path, repeat):
    p = subprocess.run([sys.executable, __file__, "--child", name, str(path), "--repeat", str(repeat)],
                       capture_output=True, text=True)
    if p.returncode:
        return dict(error=p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"exit {p.returncode}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def gzip_of(path: Path) -> Path:
    gz = WORK / (path.name + ".gz")
    if not gz.exists():
        with open(gz, "wb") as f:
            subprocess.run(["gzip", "-c", "-6", str(path)], stdout=f, check=True)
    return gz


def big_pcap(src: Path, gb: float) -> Path:
    """A pcap of about ``gb`` GB: the header of ``src`` and its records repeated (for the memory row)."""
    dst = WORK / f"{src.stem}-{gb:g}GB.pcap"
    if dst.exists():
        return dst
    raw = src.read_bytes()
    with open(dst, "wb") as f:
        f.write(raw[:24])
        body = memoryview(raw)[24:]
        while f.tell() < gb * 1e9:
            f.write(body)
    return dst


def compressed_and_piped(files: dict, repeat: int, pipe_gb: float | None) -> None:
    plain = files["pcap"]
    gz = gzip_of(plain)
    rows = {"probekit gz": measure("probekit", gz, repeat), "gzip -dc": measure("gzip-dc", gz, repeat),
            "probekit plain": measure("probekit", plain, repeat),
            "probekit pipe": measure("probekit-pipe", plain, 1)}
    for k, v in rows.items():
        print(f"  measured {k}: {v}", file=sys.stderr)
    if any("error" in v for v in rows.values()):
        print("compressed/piped rows failed:", {k: v for k, v in rows.items() if "error" in v})
        return
    t_gz, t_dc, t_plain = rows["probekit gz"]["seconds"], rows["gzip -dc"]["seconds"], rows["probekit plain"]["seconds"]
    print(f"\ngzip'd pcap ({gz.stat().st_size / 1e6:.1f} MB compressed, {plain.stat().st_size / 1e6:.1f} MB plain, "
          f"{rows['probekit gz']['n']} packets), best of {repeat}:")
    print(f"  probekit on .gz {t_gz:8.2f} s   gzip -dc > /dev/null {t_dc:6.2f} s   + probekit plain {t_plain:6.2f} s"
          f"   ratio {t_gz / (t_dc + t_plain):.2f}x  (target <= 1.5x)")
    pipes = [(plain, rows["probekit pipe"])]
    if pipe_gb:
        big = big_pcap(plain, pipe_gb)
        r = measure("probekit-pipe", big, 1)
        print(f"  measured probekit pipe {pipe_gb} GB: {r}", file=sys.stderr)
        pipes.append((big, r))
    for path, r in pipes:
        if "error" in r:
            print(f"  piped read of {path.name}: error {r['error']}")
            continue
        size = path.stat().st_size
        print(f"  piped read (cat | read_capture) of {size / 1e9:.2f} GB, {r['n']} packets: {r['seconds']:.2f} s, "
              f"peak RSS {r['peak_kib'] / 1024:.0f} MB = {r['peak_kib'] * 1024 / size:.2f}x the file, "
              f"growth {(r['peak_kib'] - r['base_kib']) * 1024 / size:.2f}x  (target <= 6x)")


def check_equal(path: Path) -> str:
    sys.path.insert(0, str(HERE.parent / "tests"))
    import probekit
    from helpers.tables import table_diffs
    a = probekit.read_capture(path)
    b = probekit.read_capture(path, backend="dpkt")
    d = table_diffs(a, b)
    return "equal, field by field" if not d else "DIFFERENT: " + "; ".join(d[:5])


# ----------------------------------------------------------------------------- VXLAN (Traffic Mirroring)
def mirror_vxlan(src: Path) -> Path:
    """The same capture as VPC Traffic Mirroring delivers it: every frame inside Ethernet/IPv4/UDP 4789/VXLAN
    (VNI 42), outer addresses of a mirror session; outer IPv4 length and UDP length consistent."""
    import struct

    from probekit.capture._frames import index_frames
    from probekit.capture.reader import open_bytes
    dst = WORK / (src.stem + "-vxlan.pcap")
    if dst.exists():
        return dst
    with open_bytes(str(src)) as buf:
        idx = index_frames(buf, str(src))
        raw = bytes(buf)
    eth = bytes.fromhex("0a0000000002" "0a0000000001" "0800")
    out = [raw[:24]]
    for i in range(len(idx)):
        o, c, w = int(idx.data_off[i]), int(idx.caplen[i]), int(idx.wirelen[i])
        ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + 16 + w, i & 0xFFFF, 0x4000, 64, 17, 0,
                         bytes([10, 0, 0, 5]), bytes([10, 0, 9, 9]))
        udp = struct.pack(">HHHH", 49152 + (i & 0x3FFF), 4789, 16 + w, 0)
        hdr = eth + ip + udp + b"\x08\x00\x00\x00\x00\x00\x2a\x00"
        out.append(raw[o - 16:o - 8] + struct.pack("<II", c + 50, w + 50) + hdr + raw[o:o + c])
    dst.write_bytes(b"".join(out))
    return dst


def vxlan_section(plain: Path, repeat: int, check_slice: int) -> None:
    """probekit on the VXLAN-mirrored capture beside its plain counterpart (issue 12: within 1.5x), with the
    packets table's bytes per packet (issue 16: <= 120) for both."""
    mirrored = mirror_vxlan(plain)
    rp = measure("probekit", plain, repeat)
    rv = measure("probekit", mirrored, repeat)
    rk = measure("kernel", f"{plain},{mirrored}", max(repeat, 5))
    rr = measure("reads", f"{plain},{mirrored}", max(repeat, 5))
    mem = subprocess.run([sys.executable, "-c", (
        "import sys, probekit\n"
        "for p in sys.argv[1:]:\n"
        "    df = probekit.read_capture(p)\n"
        "    print(df.memory_usage(deep=True).sum() / len(df), (df.tunnel == 'vxlan').mean())\n"),
        str(plain), str(mirrored)], capture_output=True, text=True, check=True).stdout.split()
    print(f"\nVXLAN-mirrored capture ({mirrored.stat().st_size / 1e6:.1f} MB) beside the plain one:")
    for label, r, b in (("plain", rp, mem[0]), ("vxlan", rv, mem[2])):
        if "error" in r:
            print(f"  {label:<6} error: {r['error']}")
            continue
        print(f"  {label:<6}{r['n'] / r['seconds']:>13,.0f} packets/s  {r['seconds']:.3f} s  "
              f"table {float(b):.1f} bytes/packet")
    if "error" not in rp and "error" not in rv:
        print(f"  vxlan / plain read time, separate processes: {rv['seconds'] / rp['seconds']:.2f}x; "
              f"frames decapsulated: {float(mem[3]):.0%}")
    if "error" not in rr:
        tp, tv = rr["seconds"]
        print(f"  read_capture interleaved in one process (best of {max(repeat, 5)}): plain {tp:.3f} s, vxlan {tv:.3f} s, "
              f"{tv / tp:.2f}x (target <= 1.5x)")
    if "error" not in rk:
        kp, kv = rk["seconds"]
        print(f"  decoder kernel alone (best of {max(repeat, 5)}, interleaved): plain {kp:.3f} s, vxlan {kv:.3f} s, "
              f"{kv / kp:.2f}x")
    print(f"  load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"  probekit vs dpkt backend on the first {check_slice} mirrored packets: "
          f"{check_equal(slice_pcap(mirrored, check_slice))}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--child", nargs=2)
    ap.add_argument("--check-slice", type=int, default=100_000, help="packets compared with the dpkt backend")
    ap.add_argument("--pipe-gb", type=float, help="also measure a piped read of a capture of this many GB")
    ap.add_argument("--only-containers", action="store_true", help="only the compressed and piped rows")
    ap.add_argument("--only-vxlan", action="store_true", help="only the VXLAN section")
    ap.add_argument("--work", type=Path, help="folder for derived files (default: next to the captures)")
    args = ap.parse_args()
    if args.child:
        return child(args.child[0], args.child[1], args.repeat)
    global WORK
    if args.work:
        WORK = args.work
        WORK.mkdir(parents=True, exist_ok=True)
    files = build(args.packets)
    if args.only_containers:
        return compressed_and_piped(files, args.repeat, args.pipe_gb)
    if args.only_vxlan:
        return vxlan_section(files["pcap"], args.repeat, args.check_slice)
    size = {k: v.stat().st_size for k, v in files.items()}
    s100k = slice_pcap(files["pcap"], 100_000)
    s10k = slice_pcap(files["pcap"], 10_000)
    plan = [("probekit", "pcap", files["pcap"], args.repeat), ("dpkt-objects", "pcap", files["pcap"], 1),
            ("dpkt-struct", "pcap", files["pcap"], 1),
            ("probekit", "pcapng", files["pcapng"], args.repeat), ("dpkt-objects", "pcapng", files["pcapng"], 1),
            ("scapy", "pcap 100k", s100k, 1), ("pyshark", "pcap 10k", s10k, 1)]
    if shutil.which("tshark"):
        plan.append(("tshark", "pcap", files["pcap"], 1))
    results = []
    for name, label, path, rep in plan:
        r = measure(name, path, rep)
        results.append((name, label, path, r))
        print(f"  measured {name} on {label}: {r}", file=sys.stderr)
    ref = {lab: r["n"] / r["seconds"] for name, lab, _p, r in results if name == "dpkt-objects" and "n" in r}
    ref_any = ref.get("pcap")
    print(f"\nprobe-traffic capture: {args.packets} packets; pcap {size['pcap'] / 1e6:.1f} MB, "
          f"pcapng {size['pcapng'] / 1e6:.1f} MB; {os.cpu_count()} cores; best of {args.repeat} for probekit\n")
    print(f"{'reader':<14}{'file':<11}{'packets/s':>13}{'× dpkt objects':>16}{'peak RSS MB':>13}"
          f"{'growth/file':>13}")
    for name, label, path, r in results:
        if "error" in r:
            print(f"{name:<14}{label:<11}  error: {r['error']}")
            continue
        pps = r["n"] / r["seconds"]
        base = ref.get(label.split()[0], ref_any)
        fsize = path.stat().st_size
        growth = (r["peak_kib"] - r["base_kib"]) * 1024 / fsize  # memory the read itself added, per file byte
        print(f"{name:<14}{label:<11}{pps:>13,.0f}{pps / base:>16.1f}{r['peak_kib'] / 1024:>13.0f}"
              f"{growth:>13.1f}")
    compressed_and_piped(files, args.repeat, args.pipe_gb)
    cut = slice_pcap(files["pcap"], args.check_slice)
    print(f"\nprobekit vs dpkt backend on the first {args.check_slice} packets: {check_equal(cut)}")
    vxlan_section(files["pcap"], args.repeat, args.check_slice)


if __name__ == "__main__":
    main()
