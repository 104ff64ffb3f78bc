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
import struct
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..spec import Monitor
from ..wire import Kind
from .scenarios import Conditions

__all__ = ["EPOCH_S", "Simulation", "simulate"]

EPOCH_S = 1_767_225_600          # 2026-01-01T00:00:00Z: synthetic captures start here
EPHEMERAL_LO, EPHEMERAL_HI = 32768, 61000


@dataclass
class Simulation:
    truth: pd.DataFrame          # one row per probe sent (see TRUTH_COLUMNS)
    packets: dict                # parallel arrays, one entry per captured packet, in capture order
    payload_pool: np.ndarray     # uint8: every probe's payload, back to back
    addresses: list[bytes]       # address table (packed), indexed by packets['src'] / ['dst']
    sources: list[str]           # text form of each source address in ``addresses`` order
    background: list | None = None   # packet descriptions of the background scenario (synth.extras renders them)


from ..schema import TRUTH_COLUMNS  # noqa: E402 - the truth sidecar's columns (schema.TRUTH)

TRUTH_ERROR_COLUMNS = ("error_code", "reporter", "mtu")
"""Appended to the truth when a scenario makes ICMP errors or sets a path MTU: the error's code by name
(as probekit.analysis.errors_icmp names it), who sent it, and the MTU it named."""

ROUTER = {4: "203.0.113.1", 6: "fd00:7::1"}        # the last router before the target
FIREWALL = {4: "203.0.113.254", 6: "fd00:7::fe"}   # the firewall that rejects TCP probes
# unreachable code name -> (ICMP code, ICMPv6 code, ICMPv6 code name)
UNREACH = {"net": (0, 0, "no_route"), "host": (1, 3, "address"), "protocol": (2, 4, "port"), "port": (3, 4, "port"),
           "admin_prohibited": (13, 1, "admin_prohibited"), "host_prohibited": (10, 1, "admin_prohibited"),
           "net_prohibited": (9, 1, "admin_prohibited")}
XFORM_NONE, XFORM_FRAGMENT, XFORM_QUOTED, XFORM_ERROR = 0, 1, 2, 3   # see probekit.synth.extras


def forensic(cond: Conditions) -> bool:
    """Whether the scenario makes ICMP errors or sets a path MTU (the truth then has TRUTH_ERROR_COLUMNS)."""
    return cond.router_error is not None or cond.tcp_reject is not None or cond.path_mtu is not None


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
    cols = list(TRUTH_COLUMNS) + (list(TRUTH_ERROR_COLUMNS) if forensic(cond) else [])
    truth = pd.concat(truths, ignore_index=True) if truths else pd.DataFrame(columns=cols)
    truth = truth[cols]
    keys = pk[0].keys() if pk else _empty_packets().keys()
    packets = {key: np.concatenate([p[key] for p in pk]) if pk else _empty_packets()[key] for key in keys}
    order = np.lexsort((packets["seq_in_probe"], packets["probe"], packets["t_ns"]))
    packets = {key: v[order] for key, v in packets.items()}
    addresses = [ipaddress.ip_address(a).packed for a in addr_index]
    sources = list(addr_index)
    pool = np.concatenate(pools) if pools else np.zeros(0, np.uint8)
    # drawn after every probe stream, so that the probes are the same with or without it
    bg = _background(monitor, cond, rng) if cond.background else None
    return Simulation(truth, packets, pool, addresses, sources, bg)


def _empty_packets() -> dict:
    z = np.zeros(0, np.int64)
    return {k: z for k in ("t_ns", "kind", "family", "size", "probe", "seq_in_probe", "src", "dst", "src_slot",
                           "from_prober", "icmp_id", "icmp_seq", "sport", "dport", "tcp_seq", "tcp_ack",
                           "payload_off", "payload_len", "ttl", "xform", "err_type", "err_code", "err_mtu",
                           "frag_mtu", "drop_frag")}


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
    tcp = probe.protocol == "tcp"
    fam = probe.family
    # the path: an MTU (oversize probes dropped, refused with frag-needed, or fragmented), a firewall
    hdr = 20 if fam == 4 else 40
    over = (size + hdr > cond.path_mtu) if cond.path_mtu is not None else np.zeros(n, bool)
    fragmented = over & (cond.oversize == "fragment")
    stopped = over & (cond.oversize != "fragment")
    rejected = np.full(n, tcp and cond.tcp_reject is not None) & ~stopped
    reaches = ~down & ~req_lost & ~stopped & ~rejected
    back = ~req_lost & ~rep_lost             # the request got as far as the router and its error came back
    e_big = stopped & (cond.oversize == "frag_needed") & back
    e_fw = rejected & back
    e_down = down & (cond.router_error is not None) & back & ~stopped & ~rejected
    err = e_big | e_fw | e_down
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
    leg = np.where(stopped & ~req_lost & ~err, "mtu_blackhole", np.where(rejected & ~req_lost & ~err, "rejected", leg))
    big_name = "frag_needed" if fam == 4 else "packet_too_big"
    outcome = np.where(e_big, big_name, np.where(e_fw | e_down, "unreachable", outcome))
    leg = np.where(err, "icmp_error", leg)

    def code_of(name):
        return name if fam == 4 else UNREACH[name][2]
    err_name = np.where(e_big, "frag_needed" if fam == 4 else "too_big",
                        np.where(e_fw, code_of(cond.tcp_reject) if cond.tcp_reject else "",
                                 np.where(e_down, code_of(cond.router_error) if cond.router_error else "", "")))
    reporter = np.where(e_fw, FIREWALL[fam], np.where(e_big | e_down, ROUTER[fam], ""))
    err_type = np.where(e_big, 3 if fam == 4 else 2, 3 if fam == 4 else 1)
    code_num = {k: (v[0] if fam == 4 else v[1]) for k, v in UNREACH.items()}
    err_code = np.where(e_big, 4 if fam == 4 else 0,
                        np.where(e_fw, code_num.get(cond.tcp_reject, 0), code_num.get(cond.router_error, 0)))
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
    if forensic(cond):
        truth["error_code"] = err_name
        truth["reporter"] = reporter
        truth["mtu"] = pd.array(np.where(e_big, cond.path_mtu or 0, 0), dtype="UInt32")
        truth.loc[~e_big, "mtu"] = pd.NA
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

    def emit(mask, when, kind, from_prober, seq_in_probe, tcp_seq=0, tcp_ack=0, with_payload=False,
             xform=XFORM_NONE, src=None, ttl=None, frag_mtu=0, drop_frag=-1, template=False):
        m = np.asarray(mask, bool)
        if not m.any():
            return
        cnt = int(m.sum())
        xf = np.where(fragmented[m], XFORM_FRAGMENT, XFORM_NONE) if xform == XFORM_FRAGMENT else np.full(cnt, xform)
        row = dict(
            t_ns=EPOCH_S * 10**9 + np.broadcast_to(when, n)[m],
            kind=np.full(cnt, kind), family=np.full(cnt, fam), size=size[m], probe=pid[m],
            seq_in_probe=np.full(cnt, seq_in_probe),
            src=np.where(from_prober, src_id[m], dst_id), dst=np.where(from_prober, dst_id, src_id[m]),
            src_slot=slot[m], from_prober=np.full(cnt, from_prober),
            icmp_id=icmp_id[m], icmp_seq=icmp_seq[m], sport=np.where(from_prober, sport[m], dport),
            dport=np.where(from_prober, dport, sport[m]),
            tcp_seq=(np.broadcast_to(tcp_seq, n)[m]) % 2**32, tcp_ack=(np.broadcast_to(tcp_ack, n)[m]) % 2**32,
            payload_off=np.where(with_payload, pay_off[m], 0), payload_len=np.where(with_payload, plen[m], 0),
            ttl=np.full(cnt, 64 if from_prober == at_prober else 64 - cond.hops) if ttl is None else np.full(cnt, ttl),
            xform=xf, err_type=err_type[m], err_code=err_code[m],
            err_mtu=np.full(cnt, cond.path_mtu or 0), frag_mtu=np.where(xf == XFORM_FRAGMENT, frag_mtu, 0),
            drop_frag=np.broadcast_to(drop_frag, n)[m],
        )
        if src is not None:
            row["src"] = np.broadcast_to(src, n)[m]
        if template:   # the outer error's template: a 56-byte echo reply whose payload is replaced
            row["size"] = np.full(cnt, 56)
            row["payload_off"] = np.zeros(cnt, np.int64)
            row["payload_len"] = np.full(cnt, 48)
        rows.append(row)

    ones = np.ones(n, bool)
    synack_arrival = send_ns + rtt_ns                    # at the prober
    mtu = cond.path_mtu or 0
    middle = -2                                          # a lost reply fragment: the renderer drops the middle one
    if at_prober:
        emit(ones, send_ns, Kind.SYN if tcp else Kind.ICMP_REQUEST, True, 0, isn, 0, True,
             xform=XFORM_FRAGMENT, frag_mtu=mtu)
        ok1 = reaches & ~rep_lost
        if err.any():     # the error quotes the request as the router got it; it comes back from the router
            err_at = send_ns + rtt_ns - server_ns
            req_kind = Kind.SYN if tcp else Kind.ICMP_REQUEST
            emit(err, err_at, req_kind, True, 6, isn, 0, True, xform=XFORM_QUOTED, ttl=64 - cond.hops + 1)
            who = np.array([aid(r) if r else -1 for r in reporter.tolist()], np.int64)
            emit(err, err_at, Kind.ICMP_REPLY, False, 7, xform=XFORM_ERROR, src=who, ttl=64 - cond.hops + 1,
                 template=True)
        if not tcp:
            emit(ok1, synack_arrival, Kind.ICMP_REPLY, False, 1, with_payload=True, xform=XFORM_FRAGMENT, frag_mtu=mtu)
            emit(reaches & rep_lost & fragmented, synack_arrival, Kind.ICMP_REPLY, False, 1, with_payload=True,
                 xform=XFORM_FRAGMENT, frag_mtu=mtu, drop_frag=middle)
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
        emit(reaches, arrive, Kind.SYN if tcp else Kind.ICMP_REQUEST, True, 0, isn, 0, True,
             xform=XFORM_FRAGMENT, frag_mtu=mtu)
        if not tcp:
            emit(reaches, depart, Kind.ICMP_REPLY, False, 1, with_payload=True, xform=XFORM_FRAGMENT, frag_mtu=mtu)
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


# ------------------------------------------------------------------------------------ background
GATEWAY_MAC = bytes.fromhex("020000000002")
TARGET_MAC_BG = bytes.fromhex("020000000201")
BG_HOSTS = {4: dict(clients=("203.0.113.10", "203.0.113.11", "203.0.113.12"), analyst="203.0.113.50",
                    resolver="203.0.113.53", ntp="203.0.113.123", scanner="203.0.113.66", gateway="192.0.2.1"),
            6: dict(clients=("fd00:8::10", "fd00:8::11", "fd00:8::12"), analyst="fd00:8::50",
                    resolver="fd00:8::53", ntp="fd00:8::123", scanner="fd00:8::66", gateway="fd00:6::1")}
WEB_PORTS = (443, 443, 80)     # the third client uses the monitored port, from its own address
OPEN_PORTS = (22, 80, 443)


def _background(monitor: Monitor, cond: Conditions, rng: np.random.Generator) -> list[dict]:
    """What else an on-premises target's capture holds: three web clients (one on the monitored port),
    the analyst's ssh session, the target's DNS and NTP, ARP, and a 100-port SYN scan. Descriptions only
    (times in ns, packed addresses, flags, payload); synth.extras builds the frames. A few hundred packets
    per five minutes, drawn from ``rng`` in a fixed order."""
    target = monitor.probes[0].destination
    fam = ipaddress.ip_address(target).version
    h = BG_HOSTS[fam]
    pack = lambda a: ipaddress.ip_address(a).packed
    tgt = pack(target)
    base = EPOCH_S * 10**9 + int(cond.start_s * 1e9)
    dur = cond.duration_s
    out: list[dict] = []

    def seg(t, a, b, sport, dport, flags, seq, ack, payload=b"", a_is_target=False):
        out.append(dict(t_ns=base + int(t * 1e9), family=fam, proto="tcp", src=a, dst=b, sport=sport, dport=dport,
                        flags=flags, seq=seq % 2**32, ack=ack % 2**32, payload=payload,
                        ttl=64 if a_is_target else 58, ip_id=int(rng.integers(0, 65536)),
                        mac_src=TARGET_MAC_BG if a_is_target else GATEWAY_MAC,
                        mac_dst=GATEWAY_MAC if a_is_target else TARGET_MAC_BG, incoming=not a_is_target))

    def udp(t, a, b, sport, dport, payload, a_is_target):
        out.append(dict(t_ns=base + int(t * 1e9), family=fam, proto="udp", src=a, dst=b, sport=sport, dport=dport,
                        payload=payload, ttl=64 if a_is_target else 58, ip_id=int(rng.integers(0, 65536)),
                        mac_src=TARGET_MAC_BG if a_is_target else GATEWAY_MAC,
                        mac_dst=GATEWAY_MAC if a_is_target else TARGET_MAC_BG, incoming=not a_is_target))

    SYN, ACK, PSH, FIN, RST = 0x02, 0x10, 0x08, 0x01, 0x04

    def connection(t, client, port, request, response, rtt=0.004):
        c = pack(client)
        sp = int(rng.integers(32768, 61000))
        isn, isn2 = int(rng.integers(0, 2**32)), int(rng.integers(0, 2**32))
        seg(t, c, tgt, sp, port, SYN, isn, 0)
        seg(t + rtt / 2, tgt, c, port, sp, SYN | ACK, isn2, isn + 1, a_is_target=True)
        seg(t + rtt, c, tgt, sp, port, ACK, isn + 1, isn2 + 1)
        seg(t + rtt + 0.0002, c, tgt, sp, port, PSH | ACK, isn + 1, isn2 + 1, request)
        off = 0
        for k in range(0, len(response), 1400):
            seg(t + 1.5 * rtt + 0.0005 * k / 1400, tgt, c, port, sp, PSH | ACK, isn2 + 1 + k, isn + 1 + len(request),
                response[k:k + 1400], a_is_target=True)
            off = k
        del off
        seg(t + 2 * rtt, c, tgt, sp, port, ACK, isn + 1 + len(request), isn2 + 1 + len(response))
        seg(t + 2 * rtt + 0.001, c, tgt, sp, port, FIN | ACK, isn + 1 + len(request), isn2 + 1 + len(response))
        seg(t + 2.5 * rtt + 0.001, tgt, c, port, sp, FIN | ACK, isn2 + 1 + len(response), isn + 2 + len(request),
            a_is_target=True)
        seg(t + 3 * rtt + 0.001, c, tgt, sp, port, ACK, isn + 2 + len(request), isn2 + 2 + len(response))
        return sp, isn, isn2

    # web clients
    for client, port in zip(h["clients"], WEB_PORTS):
        t = float(rng.uniform(0.5, 10))
        while t < dur - 1:
            req = b"GET /index.html HTTP/1.1\r\nHost: target\r\n\r\n" + bytes(rng.integers(32, 127, 200, dtype=np.uint8))
            connection(t, client, port, req, bytes(rng.integers(0, 256, int(rng.integers(600, 4000)), dtype=np.uint8)))
            t += float(rng.uniform(10, 30))
    # the analyst's ssh session: one connection, keystrokes both ways
    sp, isn, isn2 = connection(0.8, h["analyst"], 22, b"SSH-2.0-OpenSSH_9.2\r\n", b"SSH-2.0-OpenSSH_9.2p1\r\n")
    a = pack(h["analyst"])
    seq_c, seq_t = isn + 1 + 22, isn2 + 1 + 24
    t = 2.0
    while t < dur - 1:
        k = int(rng.integers(36, 100))
        seg(t, a, tgt, sp, 22, PSH | ACK, seq_c, seq_t, bytes(rng.integers(0, 256, k, dtype=np.uint8)))
        seq_c += k
        seg(t + 0.003, tgt, a, 22, sp, PSH | ACK, seq_t, seq_c, bytes(rng.integers(0, 256, k, dtype=np.uint8)),
            a_is_target=True)
        seq_t += k
        t += float(rng.uniform(0.5, 3.0))
    # DNS and NTP from the target
    t = float(rng.uniform(1, 5))
    res, ntp = pack(h["resolver"]), pack(h["ntp"])
    while t < dur - 1:
        qid = int(rng.integers(0, 65536))
        sp = int(rng.integers(32768, 61000))
        q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + b"\x07example\x03com\x00\x00\x01\x00\x01"
        udp(t, tgt, res, sp, 53, q, True)
        udp(t + 0.002, res, tgt, 53, sp, q[:2] + b"\x81\x80" + q[4:] + bytes(16), False)
        t += float(rng.uniform(5, 25))
    t = float(rng.uniform(1, 10))
    while t < dur - 1:
        udp(t, tgt, ntp, 123, 123, b"\x23" + bytes(47), True)
        udp(t + 0.01, ntp, tgt, 123, 123, b"\x24" + bytes(47), False)
        t += 64.0
    # ARP (IPv4): the gateway asks for the target, the target answers
    if fam == 4:
        t = float(rng.uniform(0, 30))
        while t < dur - 1:
            out.append(dict(t_ns=base + int(t * 1e9), proto="arp", op=1, sha=GATEWAY_MAC, spa=pack(h["gateway"]),
                            tha=b"\0" * 6, tpa=tgt, incoming=True))
            out.append(dict(t_ns=base + int((t + 0.0001) * 1e9), proto="arp", op=2, sha=TARGET_MAC_BG, spa=tgt,
                            tha=GATEWAY_MAC, tpa=pack(h["gateway"]), incoming=False))
            t += 30.0
    # a SYN scan of 100 ports, one SYN each, 60 % into the capture
    sc = pack(h["scanner"])
    t0 = dur * 0.6
    sp = int(rng.integers(32768, 61000))
    for i, port in enumerate(rng.permutation(np.arange(1, 101)).tolist() + [443]):
        t = t0 + 0.005 * i
        isn = int(rng.integers(0, 2**32))
        seg(t, sc, tgt, sp, port, SYN, isn, 0)
        if port in OPEN_PORTS:
            seg(t + 0.002, tgt, sc, port, sp, SYN | ACK, int(rng.integers(0, 2**32)), isn + 1, a_is_target=True)
            seg(t + 0.0021, sc, tgt, sp, port, RST, isn + 1, 0)
        else:
            seg(t + 0.002, tgt, sc, port, sp, RST | ACK, 0, isn + 1, a_is_target=True)
    out.sort(key=lambda d: d["t_ns"])
    return out
