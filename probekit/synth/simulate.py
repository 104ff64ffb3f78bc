"""The probe simulator: a monitor spec plus conditions → the truth (one row per probe) and the packets
a capture at the chosen vantage point would hold. Vectorised per probe stream; every random draw comes
from one numpy Generator seeded by the caller, in a fixed order, so a seed fixes every byte.

Identifier choices (documented in captures/README.md):
- ICMP: one echo identifier per (probe, source), fixed for the run as for a long-lived prober process
  per ENI; the sequence number counts up per (probe, source) from a random start, wrapping at 2^16.
- TCP: the source port counts up per (probe, source) from a random start inside 32768-60999 (Linux's
  ephemeral range), wrapping inside it; the ISN is random per probe.
- IPv4 identification: random per packet. TTL 64 at the sender, less ``hops`` on arrival.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..spec import Monitor
from ..wire import Kind
from .scenarios import Conditions

__all__ = ["simulate", "Simulation", "EPOCH_S"]

EPOCH_S = 1_767_225_600          # 2026-01-01T00:00:00Z: synthetic captures start here
EPHEMERAL_LO, EPHEMERAL_HI = 32768, 61000


@dataclass
class Simulation:
    truth: pd.DataFrame          # one row per probe sent (see TRUTH_COLUMNS)
    packets: dict                # parallel arrays, one entry per captured packet, in capture order
    payload_pool: np.ndarray     # uint8: every probe's payload, back to back
    addresses: list[bytes]       # address table (packed), indexed by packets['src'] / ['dst']
    sources: list[str]           # text form of each source address in ``addresses`` order


from ..schema import TRUTH_COLUMNS  # noqa: E402 - the truth sidecar's columns (schema.TRUTH)


def simulate(monitor: Monitor, cond: Conditions, rng: np.random.Generator) -> Simulation:
    addr_index: dict[str, int] = {}

    def aid(a: str) -> int:
        return addr_index.setdefault(str(ipaddress.ip_address(a)), len(addr_index))

    truths, pk, pools = [], [], []
    pool_base = 0
    probe_base = 0
    for k, probe in enumerate(monitor.probes):
        t = _stream(k, probe, monitor, cond, rng, aid, probe_base, pool_base)
        if t is None:
            continue
        truth, packets, pool = t
        truths.append(truth)
        pk.append(packets)
        pools.append(pool)
        pool_base += pool.size
        probe_base += len(truth)
    truth = pd.concat(truths, ignore_index=True) if truths else pd.DataFrame(columns=list(TRUTH_COLUMNS))
    keys = pk[0].keys() if pk else _empty_packets().keys()
    packets = {key: np.concatenate([p[key] for p in pk]) if pk else _empty_packets()[key] for key in keys}
    order = np.lexsort((packets["seq_in_probe"], packets["probe"], packets["t_ns"]))
    packets = {key: v[order] for key, v in packets.items()}
    addresses = [ipaddress.ip_address(a).packed for a in addr_index]
    sources = list(addr_index)
    pool = np.concatenate(pools) if pools else np.zeros(0, np.uint8)
    return Simulation(truth, packets, pool, addresses, sources)


def _empty_packets() -> dict:
    z = np.zeros(0, np.int64)
    return {k: z for k in ("t_ns", "kind", "family", "size", "probe", "seq_in_probe", "src", "dst", "src_slot",
                           "from_prober", "icmp_id", "icmp_seq", "sport", "dport", "tcp_seq", "tcp_ack",
                           "payload_off", "payload_len", "ttl")}


def _stream(k, probe, monitor, cond: Conditions, rng, aid, probe_base, pool_base):
    nsrc = len(probe.sources)
    n_all = int(np.floor(cond.duration_s * cond.rate_per_s))
    if n_all == 0:
        return None
    interval = 1.0 / cond.rate_per_s
    phase = (k * 0.137) % 1.0 * interval           # streams do not send in lock-step
    t = np.arange(n_all) * interval + phase
    t = t + rng.uniform(-1, 1, n_all) * cond.send_jitter_ms / 1e3
    t = np.clip(t, 0, None) + cond.start_s
    slot = (np.arange(n_all) + k) % nsrc                 # round-robin over the sources
    keep = np.ones(n_all, bool)
    if probe.protocol == "tcp" and cond.tcp_activations_s is not None:
        active = np.zeros(n_all, bool)
        for a in (x + cond.start_s for x in cond.tcp_activations_s):
            active |= (t >= a) & (t < a + cond.tcp_active_s)
        keep &= active
    if cond.eni_failure_at_s is not None:
        keep &= ~((slot == cond.failed_source % nsrc) & (t >= cond.eni_failure_at_s))
    # draws for every scheduled slot, in a fixed order, then the kept ones
    ids = rng.integers(1, 65536, nsrc)
    seq0 = rng.integers(0, 65536, nsrc)
    port0 = rng.integers(EPHEMERAL_LO, EPHEMERAL_HI, nsrc)
    isn = rng.integers(0, 2**32, n_all, dtype=np.uint64)
    req_lost = rng.random(n_all) < cond.loss
    rep_lost = rng.random(n_all) < cond.loss
    retry_lost = rng.random(n_all) < cond.loss
    z = rng.standard_normal(n_all)
    t, slot, isn, req_lost, rep_lost, retry_lost, z = (a[keep] for a in (t, slot, isn, req_lost, rep_lost,
                                                                        retry_lost, z))
    n = t.size
    if n == 0:
        return None
    send_ns = np.round(t * 1e9).astype(np.int64)
    # per-source counters (cumulative count of earlier probes from the same source)
    count = np.zeros(n, np.int64)
    for s in range(nsrc):
        m = slot == s
        count[m] = np.arange(m.sum())
    size_cfg = np.full(n, probe.size, np.int64)
    size = size_cfg.copy()
    if cond.size_change_at_s is not None:
        size_cfg[t >= cond.size_change_at_s] = cond.new_size
        size[t >= cond.size_change_at_s + cond.size_apply_delay_s] = cond.new_size
    plen = size - (8 if probe.protocol == "icmp" else 20)
    pool = rng.integers(0, 256, int(plen.sum()), dtype=np.uint8)
    pay_off = pool_base + np.concatenate([[0], np.cumsum(plen)[:-1]]).astype(np.int64)
    # RTT: lognormal around the median; the target's own reply time is part of it
    sigma = np.log1p(cond.rtt_jitter_ms / cond.rtt_median_ms) if cond.rtt_jitter_ms > 0 else 0.0
    rtt_ns = np.round(cond.rtt_median_ms * 1e6 * np.exp(sigma * z)).astype(np.int64)
    server_ns = int(cond.server_delay_us * 1e3)
    rtt_ns = np.maximum(rtt_ns, server_ns + 2000)
    owd = (rtt_ns - server_ns) // 2
    down = np.zeros(n, bool)
    if cond.target_down_at_s is not None:
        up = np.inf if cond.target_up_at_s is None else cond.target_up_at_s
        down = (t >= cond.target_down_at_s) & (t < up)
    reaches = ~down & ~req_lost
    tcp = probe.protocol == "tcp"
    closed = tcp and cond.port_closed
    retry_ns = int(cond.synack_retry_s * 1e9)
    # first reply to reach the prober
    first = np.where(reaches & ~rep_lost, send_ns + rtt_ns, -1)
    retried = np.zeros(n, bool)
    if tcp and not closed:  # a lost SYN/ACK is re-sent; the prober resets the late one too
        retried = reaches & rep_lost
        first = np.where(retried & ~retry_lost, send_ns + rtt_ns + retry_ns, first)
    got = first >= 0
    rtt_seen = np.where(got, first - send_ns, -1)
    late = got & (rtt_seen > cond.timeout_s * 1e9)
    answered = got & ~late
    outcome = np.where(answered, "refused" if closed else "answered", np.where(late, "late", "lost"))
    leg = np.where(down, "target_down", np.where(req_lost, "request", np.where(~got, "reply", "")))
    fam = probe.family
    dst_id = aid(probe.destination)
    src_ids = np.array([aid(s) for s in probe.sources], np.int64)
    src_id = src_ids[slot]
    truth = pd.DataFrame({
        "probe_id": probe_base + np.arange(n), "stream": probe.label(), "protocol": probe.protocol,
        "source": np.array(probe.sources, dtype=object)[slot], "destination": probe.destination,
        "port": probe.port if tcp else pd.NA, "size_configured": size_cfg, "size": size,
        "send_ns": EPOCH_S * 10**9 + send_ns, "answered": answered,
        "rtt_us": np.where(answered, rtt_seen / 1e3, np.nan), "outcome": outcome, "lost_leg": leg,
        "replies": (reaches & ~rep_lost).astype(np.int64) + (retried & ~retry_lost),
    })
    truth["port"] = truth["port"].astype("UInt16")
    # ------------------------------------------------------------------ packets at the vantage
    icmp_id = ids[slot]
    icmp_seq = (seq0[slot] + count) % 65536
    sport = EPHEMERAL_LO + (port0[slot] - EPHEMERAL_LO + count) % (EPHEMERAL_HI - EPHEMERAL_LO)
    dport = probe.port or 0
    isn = isn.astype(np.int64)
    pid = probe_base + np.arange(n)
    at_prober = cond.vantage == "prober"
    rst_ns = int(cond.rst_delay_us * 1e3)
    rows = []

    def emit(mask, when, kind, from_prober, seq_in_probe, tcp_seq=0, tcp_ack=0, with_payload=False):
        m = np.asarray(mask, bool)
        if not m.any():
            return
        cnt = int(m.sum())
        rows.append(dict(
            t_ns=EPOCH_S * 10**9 + np.broadcast_to(when, n)[m],
            kind=np.full(cnt, kind), family=np.full(cnt, fam), size=size[m], probe=pid[m],
            seq_in_probe=np.full(cnt, seq_in_probe),
            src=np.where(from_prober, src_id[m], dst_id), dst=np.where(from_prober, dst_id, src_id[m]),
            src_slot=slot[m], from_prober=np.full(cnt, from_prober),
            icmp_id=icmp_id[m], icmp_seq=icmp_seq[m], sport=np.where(from_prober, sport[m], dport),
            dport=np.where(from_prober, dport, sport[m]),
            tcp_seq=(np.broadcast_to(tcp_seq, n)[m]) % 2**32, tcp_ack=(np.broadcast_to(tcp_ack, n)[m]) % 2**32,
            payload_off=np.where(with_payload, pay_off[m], 0), payload_len=np.where(with_payload, plen[m], 0),
            ttl=np.full(cnt, 64 if from_prober == at_prober else 64 - cond.hops),
        ))

    ones = np.ones(n, bool)
    synack_arrival = send_ns + rtt_ns                    # at the prober
    if at_prober:
        emit(ones, send_ns, Kind.SYN if tcp else Kind.ICMP_REQUEST, True, 0, isn, 0, True)
        ok1 = reaches & ~rep_lost
        if not tcp:
            emit(ok1, synack_arrival, Kind.ICMP_REPLY, False, 1, with_payload=True)
        elif closed:
            emit(ok1, synack_arrival, Kind.RST_ACK, False, 1, 0, isn + 1 + plen)
        else:
            emit(ok1, synack_arrival, Kind.SYN_ACK, False, 1, _synack_isn(isn), isn + 1)
            emit(ok1, synack_arrival + rst_ns, Kind.RST, True, 2, isn + 1)
            ok2 = retried & ~retry_lost
            emit(ok2, synack_arrival + retry_ns, Kind.SYN_ACK, False, 3, _synack_isn(isn), isn + 1)
            emit(ok2, synack_arrival + retry_ns + rst_ns, Kind.RST, True, 4, isn + 1)
    else:
        arrive = send_ns + owd
        depart = arrive + server_ns
        emit(reaches, arrive, Kind.SYN if tcp else Kind.ICMP_REQUEST, True, 0, isn, 0, True)
        if not tcp:
            emit(reaches, depart, Kind.ICMP_REPLY, False, 1, with_payload=True)
        elif closed:
            emit(reaches, depart, Kind.RST_ACK, False, 1, 0, isn + 1 + plen)
        else:
            emit(reaches, depart, Kind.SYN_ACK, False, 1, _synack_isn(isn), isn + 1)
            ok1 = reaches & ~rep_lost
            emit(ok1, synack_arrival + rst_ns + owd, Kind.RST, True, 2, isn + 1)
            emit(retried, depart + retry_ns, Kind.SYN_ACK, False, 3, _synack_isn(isn), isn + 1)
            ok2 = retried & ~retry_lost
            emit(ok2, synack_arrival + retry_ns + rst_ns + owd, Kind.RST, True, 4, isn + 1)
    packets = {key: np.concatenate([r[key] for r in rows]) for key in rows[0]} if rows else _empty_packets()
    return truth, packets, pool


def _synack_isn(isn: np.ndarray) -> np.ndarray:
    """The target's ISN: a fixed scramble of the prober's (deterministic, unrelated-looking)."""
    return (isn * 2654435761 + 0x9E3779B9) % 2**32
