"""Scenarios: named presets over one set of conditions, composable with '+' (e.g. 'lossy+size-change').

Every knob has a default that reproduces what the investigation saw; a scenario only changes the
knobs it is about, so compositions are well defined (later names win on the same knob).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

from ..spec import SpecError

__all__ = ["SCENARIOS", "Conditions", "scenario"]


@dataclass(frozen=True)
class Conditions:
    """What the network and the target do while the monitor probes. Times in seconds from the start."""
    duration_s: float = 300.0
    rate_per_s: float = 2.0              # probes per second per probe (all its sources together)
    send_jitter_ms: float = 2.0          # uniform ± jitter of the send schedule
    rtt_median_ms: float = 12.0
    rtt_jitter_ms: float = 1.5           # RTT spread: lognormal around the median, sigma = ln(1 + jitter/median)
    loss: float = 0.002                  # probability each leg (request, reply) is lost
    timeout_s: float = 1.0               # a reply later than this is 'late' (lost for the metrics)
    rst_delay_us: float = 80.0           # prober's RST after the SYN/ACK arrives
    server_delay_us: float = 40.0        # target's reply time after the request arrives
    synack_retry_s: float = 1.0          # a target that got no RST re-sends its SYN/ACK after this
    target_down_at_s: float | None = None
    target_up_at_s: float | None = None
    port_closed: bool = False
    tcp_activations_s: tuple[float, ...] | None = None   # None: TCP probes all the time
    tcp_active_s: float = 60.0           # how long TCP probes last after each (re)activation
    size_change_at_s: float | None = None
    new_size: int = 120
    size_apply_delay_s: float = 60.0     # the wire follows a configuration change after this
    eni_failure_at_s: float | None = None
    failed_source: int = 1               # index of the source that stops
    vantage: str = "prober"              # where the capture is taken: 'prober' or 'target'
    hops: int = 6                        # TTL decrement between prober and target
    start_s: float = 0.0                 # capture start after the synthetic epoch (rotated files follow on)
    # forensics (issue 13): ordinary traffic, ICMP errors, the path MTU
    background: bool = False             # web clients, ssh, DNS, NTP, ARP and a scanner beside the probes
    router_error: str | None = None      # while the target is down the last router answers: host, net, admin_prohibited
    tcp_reject: str | None = None        # a firewall rejects every TCP probe with this ICMP unreachable code
    path_mtu: int | None = None          # IP bytes the path carries; larger probes meet ``oversize``
    oversize: str = "drop"               # drop (black hole), frag_needed (ICMP names the MTU), fragment
    names: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self):
        checks = [("duration_s", self.duration_s > 0, "must be > 0 seconds"),
                  ("rate_per_s", 0 < self.rate_per_s <= 10_000, "must be in (0, 10000] probes per second"),
                  ("loss", 0 <= self.loss < 1, "must be a probability in [0, 1)"),
                  ("rtt_median_ms", self.rtt_median_ms > 0, "must be > 0 ms"),
                  ("rtt_jitter_ms", self.rtt_jitter_ms >= 0, "must be >= 0 ms"),
                  ("timeout_s", self.timeout_s > 0, "must be > 0 seconds"),
                  ("vantage", self.vantage in ("prober", "target"), "must be 'prober' or 'target'"),
                  ("new_size", 56 <= self.new_size <= 8500, "must be 56 to 8500 bytes"),
                  ("router_error", self.router_error in (None, *ERROR_CODES), "must be one of " + ", ".join(ERROR_CODES)),
                  ("tcp_reject", self.tcp_reject in (None, *ERROR_CODES), "must be one of " + ", ".join(ERROR_CODES)),
                  ("path_mtu", self.path_mtu is None or 1280 <= self.path_mtu <= 65535,
                   "must be 1280 to 65535 IP bytes (IPv6's minimum MTU is 1280)"),
                  ("oversize", self.oversize in ("drop", "frag_needed", "fragment"),
                   "must be 'drop', 'frag_needed' or 'fragment'")]
        for name, ok, allowed in checks:
            if not ok:
                raise SpecError(name, getattr(self, name), allowed)

    def as_meta(self) -> dict:
        """The conditions as the truth sidecar records them: every knob but ``names``, and the forensics
        knobs only when set (so captures made before they existed keep byte-identical sidecars)."""
        out = {k: v for k, v in asdict(self).items() if k != "names"}
        for k in FORENSIC_KNOBS:
            if out[k] == getattr(Conditions, k):
                del out[k]
        return out

    def with_(self, **kw) -> Conditions:
        known = {f.name for f in fields(self)}
        bad = set(kw) - known
        if bad:
            raise SpecError(sorted(bad)[0], kw[sorted(bad)[0]], f"unknown condition; known: {', '.join(sorted(known))}")
        return replace(self, **kw)


SCENARIOS: dict[str, dict] = {
    "healthy": {},
    "target-down": {"target_down_at_s": 120.0},
    "tcp-stops-after-activation": {"tcp_activations_s": (0.0,)},
    "port-closed": {"port_closed": True},
    "size-change": {"size_change_at_s": 60.0},
    "lossy": {"loss": 0.08, "rtt_jitter_ms": 30.0, "send_jitter_ms": 5.0},
    "eni-failure": {"eni_failure_at_s": 150.0},
    "background": {"background": True},
    "unreachable": {"target_down_at_s": 120.0, "router_error": "host"},
    "admin-prohibited": {"tcp_reject": "admin_prohibited"},
    "mtu-blackhole": {"path_mtu": 1400, "oversize": "drop", "size_change_at_s": 60.0, "new_size": 1472},
    "fragmenting-path": {"path_mtu": 1500, "oversize": "fragment", "size_change_at_s": 60.0, "new_size": 8500},
    "pmtu": {"path_mtu": 1400, "oversize": "frag_needed", "size_change_at_s": 60.0, "new_size": 1472},
}
SCENARIO_DOCS = {
    "healthy": "continuous probing from every source, round-robin, small loss",
    "target-down": "the target stops answering at 120 s (ICMP and TCP unanswered)",
    "tcp-stops-after-activation": "TCP probes only for the first 60 s after each (re)activation",
    "port-closed": "the target answers TCP probes with RST/ACK",
    "size-change": "the size is reconfigured at 60 s and the wire follows 60 s later",
    "lossy": "8 % loss per leg and 30 ms RTT jitter, so replies reorder",
    "eni-failure": "source 2 stops at 150 s",
    "background": "ordinary traffic beside the probes: web clients, an ssh session, DNS, NTP, ARP, a port scan",
    "unreachable": "the target goes down at 120 s and the last router answers every probe with host unreachable",
    "admin-prohibited": "a firewall rejects every TCP probe with ICMP admin-prohibited; ICMP probes pass",
    "mtu-blackhole": "the size goes to 1472 (on the wire at 120 s); the path's 1400-byte MTU drops it silently",
    "fragmenting-path": "the size goes to 8500 (on the wire at 120 s); requests and replies cross in 1500-byte fragments",
    "pmtu": "the size goes to 1472 (on the wire at 120 s); the router answers 'fragmentation needed', MTU 1400",
}

FORENSIC_KNOBS = ("background", "router_error", "tcp_reject", "path_mtu", "oversize")

ERROR_CODES = ("host", "net", "port", "protocol", "admin_prohibited", "host_prohibited", "net_prohibited")
"""ICMP unreachable codes a scenario can make a router or firewall send (names as errors_icmp gives them)."""


def scenario(name: str, **overrides) -> Conditions:
    """Conditions for a scenario name, or several joined with '+', then explicit overrides."""
    kw: dict = {}
    parts = [p.strip() for p in name.split("+") if p.strip()]
    if not parts:
        raise SpecError("scenario", name, f"choose from {', '.join(SCENARIOS)}")
    for part in parts:
        if part not in SCENARIOS:
            raise SpecError("scenario", part, f"unknown; choose from {', '.join(SCENARIOS)}")
        kw.update(SCENARIOS[part])
    kw.update({k: v for k, v in overrides.items() if v is not None})
    kw["names"] = tuple(parts)
    return Conditions().with_(**kw)
