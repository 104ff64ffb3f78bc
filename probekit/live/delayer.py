"""A userspace path delay for kernels without netem: packets sent to NFQUEUE by iptables are held and
released (verdict ACCEPT) after delay ± jitter. Speaks nfnetlink_queue over a raw netlink socket with
the standard library only. Jitter reorders packets, as netem does; --keep-order releases in arrival
order instead.

    python -m probekit.live.delayer --queue 0 --delay-ms 20 --jitter-ms 2 [--keep-order] [--seed N]
"""
from __future__ import annotations

import argparse
import heapq
import os
import random
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS = 1, 2
NFQA_PACKET_HDR, NFQA_VERDICT_HDR, NFQA_TIMESTAMP = 1, 2, 4
NFQNL_CFG_CMD_BIND, NFQNL_CFG_CMD_UNBIND = 1, 2
NFQNL_COPY_META = 1
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2
NF_ACCEPT = 1


def _attr(atype: int, payload: bytes) -> bytes:
    n = 4 + len(payload)
    return struct.pack("=HH", n, atype) + payload + b"\0" * ((-n) % 4)


def _msg(msg_type: int, queue: int, attrs: bytes, family: int = socket.AF_UNSPEC, flags: int = NLM_F_REQUEST,
         seq: int = 0) -> bytes:
    body = struct.pack("=BBH", family, 0, socket.htons(queue)) + attrs
    return struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg_type, flags, seq, 0) + body


class Queue:
    def __init__(self, num: int):
        self.num = num
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.sock.bind((0, 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self._config(struct.pack("!BxH", NFQNL_CFG_CMD_BIND, 0))
        self._send(_msg(NFQNL_MSG_CONFIG, num, _attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META)),
                        flags=NLM_F_REQUEST | NLM_F_ACK, seq=2))
        self._ack()

    def _config(self, cmd: bytes) -> None:
        self._send(_msg(NFQNL_MSG_CONFIG, self.num, _attr(NFQA_CFG_CMD, cmd), flags=NLM_F_REQUEST | NLM_F_ACK, seq=1))
        self._ack()

    def _send(self, data: bytes) -> None:
        self.sock.send(data)

    def _ack(self) -> None:
        data = self.sock.recv(65536)
        _length, mtype = struct.unpack_from("=IH", data, 0)
        if mtype == NLMSG_ERROR:
            (err,) = struct.unpack_from("=i", data, 16)
            if err:
                raise OSError(-err, f"nfnetlink_queue configuration refused: {os.strerror(-err)}")

    def packets(self, data: bytes):
        """(packet id, kernel receive time in ns or None) for each packet in a batch of messages."""
        off = 0
        while off + 16 <= len(data):
            length, mtype = struct.unpack_from("=IH", data, off)
            if length < 16:
                break
            if mtype == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                a = off + 20
                pid, ts = None, None
                while a + 4 <= off + length:
                    alen, atype = struct.unpack_from("=HH", data, a)
                    if alen < 4:
                        break
                    if atype & 0x7FFF == NFQA_PACKET_HDR:
                        pid = struct.unpack_from("!I", data, a + 4)[0]
                    elif atype & 0x7FFF == NFQA_TIMESTAMP and alen >= 20:
                        sec, usec = struct.unpack_from("!QQ", data, a + 4)
                        ts = sec * 1_000_000_000 + usec * 1000
                    a += (alen + 3) & ~3
                if pid is not None:
                    yield pid, ts
            off += (length + 3) & ~3

    def accept(self, pid: int) -> None:
        self._send(_msg(NFQNL_MSG_VERDICT, self.num, _attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, pid))))


def run(queue: int, delay_ms: float, jitter_ms: float, keep_order: bool, seed: int | None) -> None:
    rng = random.Random(seed)
    q = Queue(queue)
    held: list[tuple[int, int, int]] = []   # (release_ns, arrival order, packet id)
    order = 0
    last_release = 0
    stop = False

    def _stop(*_):
        nonlocal stop
        stop = True
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(f"delayer: queue {queue}, delay {delay_ms} ms ± {jitter_ms} ms, keep_order={keep_order}", flush=True)
    while not stop:
        now = time.time_ns()
        while held and held[0][0] <= now:
            _, _, pid = heapq.heappop(held)
            q.accept(pid)
        # sleep until 300 µs before the next release, then spin: wake-up latency would add to the delay
        timeout = max(0.0, (held[0][0] - now) / 1e9 - 0.0003) if held else 0.5
        r, _, _ = select.select([q.sock], [], [], min(timeout, 0.5))
        if not r:
            while held and time.time_ns() < held[0][0]:
                pass
            continue
        data = q.sock.recv(1 << 20)
        t = time.time_ns()
        for pid, ts in q.packets(data):
            d = max(0.0, rng.gauss(delay_ms, jitter_ms) if jitter_ms > 0 else delay_ms)
            # count the delay from when the kernel received the packet, not from when we read it
            base = ts if ts is not None and 0 < t - ts < 1_000_000_000 else t
            release = base + int(d * 1e6)
            if keep_order:
                release = max(release, last_release)
                last_release = release
            heapq.heappush(held, (release, order, pid))
            order += 1
    for _, _, pid in held:  # never strand a packet in the queue
        q.accept(pid)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queue", type=int, default=0)
    ap.add_argument("--delay-ms", type=float, default=0.0)
    ap.add_argument("--jitter-ms", type=float, default=0.0)
    ap.add_argument("--keep-order", action="store_true")
    ap.add_argument("--seed", type=int)
    a = ap.parse_args(argv)
    try:
        run(a.queue, a.delay_ms, a.jitter_ms, a.keep_order, a.seed)
    except OSError as e:
        print(f"delayer: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
