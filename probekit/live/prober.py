"""A real Network-Monitor-style prober on raw sockets.

ICMP/ICMPv6 echo requests whose whole ICMP message is the probe size, with fresh random payload; TCP
SYNs carrying (size - 20) random bytes, answered SYN/ACKs reset at once from the prober (late ones too),
so the wire shows SYN → SYN/ACK → RST. The kernel's own RST to the SYN/ACK (no socket owns the port) is
dropped by an nftables rule that lets through only packets marked by the prober (SO_MARK).
Round-robin over the sources at a fixed rate for a bounded duration; RTTs from kernel receive
timestamps (SO_TIMESTAMPNS). Results are written as the generator's truth format (one row per probe,
schema.TRUTH) as soon as each probe's outcome is decided, plus ``RESULTS.periods.jsonl``: exactly one
record per (stream, source, period), written (and fsynced) when the period closes, that is once the
outcome of its last probe is decided (``2 × timeout_s`` after the period's end). ``kill -9`` therefore
loses at most the periods still open: the current one, and the one before it for ``2 × timeout_s``
after a boundary. The rules (what answers a probe, its outcome, a period's status) are
probekit.protocol's.
"""
from __future__ import annotations

import csv
import errno
import ipaddress
import json
import os
import select
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ProbekitError
from ..protocol import (
    ANSWERED,
    REPLY_KINDS,
    classify_outcome,
    echo_request_type,
    is_echo_reply,
    loss_pct,
    period_status,
    rst_ack_accepts,
    syn_ack_isn,
    syn_data_len,
)
from ..schema import TRUTH_COLUMNS
from ..spec import Probe

__all__ = ["Prober", "ProberError", "MAX_RATE"]

SO_TIMESTAMPNS = 35          # Linux; Python's socket module lacks the constant
SO_MARK = 36
MARK = 0x70726B
PROBE_PORTS = (61000, 61999)  # outside ip_local_port_range: no socket owns them
MAX_RATE = 1000.0            # probes/s across all probes, unless forced


class ProberError(ProbekitError):
    """The prober cannot run as asked; the message says how to fix it."""


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _tcp_segment(src: str, dst: str, sport: int, dport: int, seq: int, ack: int, flags: int, win: int,
                 payload: bytes = b"") -> bytes:
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, win, 0, 0)
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    seg = hdr + payload
    if s.version == 4:
        pseudo = s.packed + d.packed + struct.pack("!BBH", 0, 6, len(seg))
    else:
        pseudo = s.packed + d.packed + struct.pack("!IxxxB", len(seg), 6)
    c = _csum(pseudo + seg)
    return seg[:16] + struct.pack("!H", c) + seg[18:]


@dataclass
class _Sent:
    probe_id: int
    stream: int
    source: str
    size: int
    send_ns: int
    sched_err_ns: int
    ident: int
    seq: int
    first_reply_ns: int | None = None
    kind: str | None = None      # echo_reply / syn_ack / rst_ack
    replies: int = 0
    send_error: str | None = None


@dataclass
class _Stream:
    probe: Probe
    ids: dict = field(default_factory=dict)       # source -> icmp id
    seqs: dict = field(default_factory=dict)      # source -> next icmp seq
    ports: dict = field(default_factory=dict)     # source -> next sport


class Prober:
    """Send ``probes`` round-robin over their sources at ``rate_per_s`` each, for ``duration_s``."""

    def __init__(self, probes: list[Probe], rate_per_s: float, duration_s: float, out, timeout_s: float = 1.0,
                 period_s: int = 30, seed: int | None = None, force: bool = False, suppress_kernel_rst: bool = True):
        if duration_s is None or duration_s <= 0:
            raise ProberError("a duration is required (--duration SECONDS > 0): the prober never runs unbounded")
        total = rate_per_s * len(probes)
        if total > MAX_RATE and not force:
            raise ProberError(f"{total:g} probes/s is above the {MAX_RATE:g}/s cap; pass --force (force=True) if "
                              "you mean it")
        if rate_per_s <= 0:
            raise ProberError("the rate must be > 0 probes per second")
        self.streams = [_Stream(p) for p in probes]
        self.rate = rate_per_s
        self.duration_s = duration_s
        self.timeout_ns = int(timeout_s * 1e9)
        self.period_s = period_s
        self.out = Path(out)
        self.rng = np.random.default_rng(seed)
        self.suppress = suppress_kernel_rst
        self.sent: dict[tuple, _Sent] = {}
        self.by_port: dict[tuple, _Sent] = {}     # (source, sport) -> latest TCP probe from that port
        self.by_id: dict[int, _Sent] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.socks: dict[tuple, socket.socket] = {}
        self.nft_table: str | None = None
        self.cells: dict[tuple, list] = {}          # (stream label, source, period start) -> final rows
        self.first_period_ns: int | None = None
        self.next_close_ns: int | None = None       # start of the oldest period not yet written

    # -------------------------------------------------------------------------- sockets
    def _open(self) -> None:
        for st in self.streams:
            p = st.probe
            fam = socket.AF_INET if p.family == 4 else socket.AF_INET6
            proto = {("icmp", 4): socket.IPPROTO_ICMP, ("icmp", 6): socket.IPPROTO_ICMPV6}.get((p.protocol, p.family),
                                                                                             socket.IPPROTO_TCP)
            for src in p.sources:
                key = (p.family, proto, src)
                if key in self.socks:
                    continue
                try:
                    s = socket.socket(fam, socket.SOCK_RAW, proto)
                except PermissionError:
                    raise ProberError("raw sockets need root or CAP_NET_RAW: run `sudo probekit probe ...` (in the lab "
                                      "`probekit lab run` does this for you)") from None
                try:
                    s.bind((src, 0))
                except OSError as e:
                    s.close()
                    if e.errno == errno.EADDRNOTAVAIL:
                        raise ProberError(f"source {src} is not an address of this host (see `ip addr`); probes can "
                                          "only leave from a local address") from None
                    raise
                s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                try:
                    s.setsockopt(socket.SOL_SOCKET, SO_MARK, MARK)
                except PermissionError:
                    pass
                s.setblocking(False)
                self.socks[key] = s
        for st in self.streams:
            for src in st.probe.sources:
                st.ids[src] = int(self.rng.integers(1, 65536))
                st.seqs[src] = int(self.rng.integers(0, 65536))
                st.ports[src] = int(self.rng.integers(PROBE_PORTS[0], PROBE_PORTS[1] + 1))

    def _install_rst_filter(self) -> None:
        if not self.suppress or not any(st.probe.protocol == "tcp" for st in self.streams):
            return
        if not shutil.which("nft"):
            raise ProberError("nft is not installed, and without it this host's kernel answers every SYN/ACK with "
                              "its own RST: apt-get install nftables, or pass --no-suppress-kernel-rst")
        self.nft_table = f"probekit_{os.getpid()}"
        rules = (f"table inet {self.nft_table} {{\n  chain out {{\n    type filter hook output priority 0; policy accept;\n"
                 f"    tcp sport {PROBE_PORTS[0]}-{PROBE_PORTS[1]} tcp flags & rst == rst meta mark != {MARK} drop\n"
                 "  }\n}\n")
        p = subprocess.run(["nft", "-f", "-"], input=rules, capture_output=True, text=True)
        if p.returncode:
            self.nft_table = None
            raise ProberError(f"could not add the nftables rule that drops the kernel's own RSTs: {p.stderr.strip()}")

    def _remove_rst_filter(self) -> None:
        if self.nft_table:
            subprocess.run(["nft", "delete", "table", "inet", self.nft_table], capture_output=True)
            self.nft_table = None

    # ----------------------------------------------------------------------------- send
    def _schedule(self) -> list[tuple[int, int, str]]:
        """(offset ns, stream index, source) for every probe, round-robin, streams phase-shifted."""
        out = []
        interval = 1e9 / self.rate
        n = int(self.duration_s * self.rate)
        for k, st in enumerate(self.streams):
            phase = (k / len(self.streams)) * interval
            srcs = st.probe.sources
            for i in range(n):
                out.append((int(phase + i * interval), k, srcs[(i + k) % len(srcs)]))
        out.sort()
        return out

    def _prepare(self, k: int, src: str, pid: int):
        """Build the next probe of stream ``k`` from ``src`` ahead of its send time."""
        st = self.streams[k]
        p = st.probe
        payload = self.rng.integers(0, 256, p.payload_len, dtype=np.uint8).tobytes()
        if p.protocol == "icmp":
            ident, seq = st.ids[src], st.seqs[src]
            st.seqs[src] = (seq + 1) % 65536
            typ = echo_request_type(p.family)
            msg = struct.pack("!BBHHH", typ, 0, 0, ident, seq) + payload
            if p.family == 4:
                msg = msg[:2] + struct.pack("!H", _csum(msg)) + msg[4:]
            sock = self.socks[(p.family, socket.IPPROTO_ICMP if p.family == 4 else socket.IPPROTO_ICMPV6, src)]
            key = ("icmp", src, ident, seq)
        else:
            sport = st.ports[src]
            st.ports[src] = PROBE_PORTS[0] + (sport + 1 - PROBE_PORTS[0]) % (PROBE_PORTS[1] - PROBE_PORTS[0] + 1)
            ident, seq = sport, int(self.rng.integers(0, 2**32))
            msg = _tcp_segment(src, p.destination, sport, p.port, seq, 0, 0x02, 65535, payload)
            sock = self.socks[(p.family, socket.IPPROTO_TCP, src)]
            key = ("tcp", src, sport, seq)
        return sock, msg, (p.destination, 0), key, _Sent(pid, k, src, p.size, 0, 0, ident, seq), p.protocol == "tcp"

    def _fire(self, prepared, target_ns: int) -> int:
        """Register the probe, then send it; the reply may be handled before sendto returns."""
        sock, msg, addr, key, rec, is_tcp = prepared
        rec.send_ns = time.time_ns()
        with self.lock:
            self.sent[key] = rec
            self.by_id[rec.probe_id] = rec
            if is_tcp:
                self.by_port[(rec.source, rec.ident)] = rec
        try:
            sock.sendto(msg, addr)
        except OSError as e:  # e.g. the ENI is down: the probe is lost at the source, the run goes on
            rec.send_error = e.strerror or str(e)
        rec.sched_err_ns = rec.send_ns - target_ns
        return rec.sched_err_ns

    # -------------------------------------------------------------------------- receive
    def _receiver(self) -> None:
        socks = list(self.socks.values())
        while not self.stop.is_set():
            r, _, _ = select.select(socks, [], [], 0.1)
            for s in r:
                while True:
                    try:
                        data, anc, _flags, addr = s.recvmsg(65535, 64)
                    except BlockingIOError:
                        break
                    except OSError:
                        break
                    ts = None
                    for level, typ, cdata in anc:
                        if level == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS and len(cdata) >= 16:
                            sec, nsec = struct.unpack("qq", cdata[:16])
                            ts = sec * 1_000_000_000 + nsec
                    self._handle(s, data, addr[0], ts or time.time_ns())

    def _handle(self, s: socket.socket, data: bytes, peer: str, ts: int) -> None:
        if s.family == socket.AF_INET:
            if len(data) < 20:
                return
            ihl = (data[0] & 15) * 4
            local = socket.inet_ntoa(data[16:20])
            l4 = data[ihl:]
        else:
            local = s.getsockname()[0]
            l4 = data
        proto = s.proto
        if proto in (socket.IPPROTO_ICMP, socket.IPPROTO_ICMPV6):
            if len(l4) < 8 or not is_echo_reply(l4[0]):
                return
            ident, seq = struct.unpack("!HH", l4[4:8])
            key = ("icmp", local, ident, seq)
            with self.lock:
                rec = self.sent.get(key)
                if rec:
                    rec.replies += 1
                    if rec.first_reply_ns is None:
                        rec.first_reply_ns, rec.kind = ts, "echo_reply"
            return
        if len(l4) < 20:
            return
        sport, dport, seq, ack, _off, flags = struct.unpack("!HHIIBB", l4[:14])
        if not PROBE_PORTS[0] <= dport <= PROBE_PORTS[1]:
            return
        key = ("tcp", local, dport, syn_ack_isn(ack))
        with self.lock:
            rec = self.sent.get(key)
            if rec is None and flags & 0x04:
                # a RST/ACK may acknowledge the SYN's data as well: ack = ISN + 1 + payload
                cand = self.by_port.get((local, dport))
                if cand is not None and rst_ack_accepts(ack, cand.seq, syn_data_len(cand.size)):
                    rec = cand
            if rec is None:
                return
            rec.replies += 1
            first = rec.first_reply_ns is None
            if first:
                rec.first_reply_ns = ts
                rec.kind = "rst_ack" if flags & 0x04 else "syn_ack"
        if flags & 0x12 == 0x12:  # every SYN/ACK, late ones too, gets the prober's RST
            rst = _tcp_segment(local, peer, dport, sport, (rec.seq + 1) % 2**32, 0, 0x04, 0)
            s.sendto(rst, (peer, 0))

    # ---------------------------------------------------------------------------- output
    def _final(self, rec: _Sent) -> dict:
        st = self.streams[rec.stream]
        p = st.probe
        delay = None if rec.first_reply_ns is None else rec.first_reply_ns - rec.send_ns
        kind = REPLY_KINDS.index(rec.kind) if rec.kind else -1
        outcome = classify_outcome(kind, np.nan if delay is None else delay, self.timeout_ns)
        answered = outcome in ANSWERED
        return {"probe_id": rec.probe_id, "stream": p.label(), "protocol": p.protocol, "source": rec.source,
                "destination": p.destination, "port": p.port if p.port else "", "size_configured": p.size,
                "size": rec.size, "send_ns": rec.send_ns, "answered": answered,
                "rtt_us": f"{delay / 1e3:.3f}" if answered else "", "outcome": outcome,
                "lost_leg": "" if answered else ("send_error" if rec.send_error else
                                                 ("late" if outcome == "late" else "unknown")),
                "replies": rec.replies}

    def _flush(self, writer, fh, periods_fh, upto_ns: int | None) -> None:
        """Write the probes whose outcome is decided (sent 2 × timeout before ``upto_ns``; all of them
        when None), then every period that holds no undecided probe any more."""
        with self.lock:
            ready = [r for r in self.by_id.values() if upto_ns is None or r.send_ns + 2 * self.timeout_ns <= upto_ns]
            for r in ready:
                del self.by_id[r.probe_id]
        rows = [self._final(r) for r in sorted(ready, key=lambda r: r.probe_id)]
        for row in rows:
            writer.writerow(row)
        fh.flush()
        os.fsync(fh.fileno())
        step = self.period_s * 1_000_000_000
        for r in rows:
            start = r["send_ns"] // step * step
            self.cells.setdefault((r["stream"], r["source"], start), []).append(r)
            if self.first_period_ns is None or start < self.first_period_ns:
                self.first_period_ns = start
        self._close_periods(periods_fh, None if upto_ns is None else upto_ns - 2 * self.timeout_ns)

    def _close_periods(self, fh, decided_ns: int | None) -> None:
        """Write one record per (stream, source) for every period that ended by ``decided_ns`` (every
        period with probes when None), oldest first; a source that sent nothing in it gets no_probes."""
        if self.first_period_ns is None:
            return
        step = self.period_s * 1_000_000_000
        start = self.next_close_ns if self.next_close_ns is not None else self.first_period_ns
        last = (max(k[2] for k in self.cells) if self.cells else start - step) if decided_ns is None \
            else decided_ns // step * step - step
        pairs = [(st.probe.label(), src) for st in self.streams for src in st.probe.sources]
        lines = []
        while start <= last:
            for stream, source in pairs:
                lines.append(self._period_record(stream, source, start, self.cells.pop((stream, source, start), [])))
            start += step
        self.next_close_ns = start
        if lines:
            fh.write("".join(lines))
            fh.flush()
            os.fsync(fh.fileno())

    def _period_record(self, stream: str, source: str, start: int, rows: list[dict]) -> str:
        ok = [float(r["rtt_us"]) for r in rows if r["answered"]]
        sent = len(rows)
        loss = loss_pct(sent, len(ok))
        return json.dumps({"stream": stream, "source": source, "period_start_ns": int(start),
                           "period_s": self.period_s, "sent": sent, "answered": len(ok),
                           "late": sum(r["outcome"] == "late" for r in rows),
                           "loss_pct": None if np.isnan(loss) else loss,
                           "rtt_median_us": float(np.median(ok)) if ok else None,
                           "status": period_status(sent, len(ok))}) + "\n"

    # ------------------------------------------------------------------------------- run
    def run(self) -> dict:
        """Probe; returns a summary (counts and the send-schedule error p50/p99 in µs)."""
        self._open()
        self._install_rst_filter()
        self.out.parent.mkdir(parents=True, exist_ok=True)
        periods_path = self.out.with_suffix(".periods.jsonl")
        rx = threading.Thread(target=self._receiver, daemon=True)
        switch = sys.getswitchinterval()
        sys.setswitchinterval(50e-6)  # the sender must get the interpreter back within tens of µs
        rx.start()
        sched = self._schedule()
        errors = []
        try:
            with open(self.out, "w", newline="") as fh, open(periods_path, "w") as pfh:
                fh.write("# probekit live prober results: one row per probe (the generator's truth format)\n")
                writer = csv.DictWriter(fh, fieldnames=list(TRUTH_COLUMNS), lineterminator="\n")
                writer.writeheader()
                start = time.time_ns() + 50_000_000
                step = self.period_s * 1_000_000_000
                # flush when the oldest open period's last probe is decided, and at least every period
                next_flush = (start // step + 1) * step + 2 * self.timeout_ns
                for pid, (off, k, src) in enumerate(sched):
                    target = start + off
                    prepared = self._prepare(k, src, pid)
                    while True:  # sleep to 300 µs before the send time, then spin
                        left = target - time.time_ns()
                        if left <= 0:
                            break
                        if left > 400_000:
                            time.sleep((left - 300_000) / 1e9)
                    errors.append(self._fire(prepared, target))
                    if time.time_ns() >= next_flush:
                        self._flush(writer, fh, pfh, time.time_ns())
                        next_flush += step
                # wait out the late window of the last probes, then write everything
                time.sleep(2 * self.timeout_ns / 1e9 + 0.05)
                self._flush(writer, fh, pfh, None)
        finally:
            sys.setswitchinterval(switch)
            self.stop.set()
            rx.join(timeout=2)
            for s in self.socks.values():
                s.close()
            self._remove_rst_filter()
        e = np.abs(np.array(errors, dtype=np.float64)) / 1e3
        return {"probes": len(sched), "results": str(self.out), "periods": str(periods_path),
                "schedule_error_p50_us": float(np.percentile(e, 50)) if e.size else None,
                "schedule_error_p99_us": float(np.percentile(e, 99)) if e.size else None}
