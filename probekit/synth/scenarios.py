"""Scenarios: named presets over one set of conditions, composable with '+' (e.g. 'lossy+size-change').

Every knob has a default that reproduces what the investigation saw; a scenario only changes the
knobs it is about, so compositions are well defined (later names win on the same knob).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

from ..spec import SpecError

__all__ = ["Conditions", "SCENARIOS", "scenario"]


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
    names: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self):
        checks = [("duration_s", self.duration_s > 0, "must be > 0 seconds"),
                  ("rate_per_s", 0 < self.rate_per_s <= 10_000, "must be in (0, 10000] probes per second"),
                  ("loss", 0 <= self.loss < 1, "must be a probability in [0, 1)"),
                  ("rtt_median_ms", self.rtt_median_ms > 0, "must be > 0 ms"),
                  ("rtt_jitter_ms", self.rtt_jitter_ms >= 0, "must be >= 0 ms"),
                  ("timeout_s", self.timeout_s > 0, "must be > 0 seconds"),
                  ("vantage", self.vantage in ("prober", "target"), "must be 'prober' or 'target'"),
                  ("new_size", 56 <= self.new_size <= 8500, "must be 56 to 8500 bytes")]
        for name, ok, allowed in checks:
            if not ok:
                raise SpecError(name, getattr(self, name), allowed)

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
}
SCENARIO_DOCS = {
    "healthy": "continuous probing from every source, round-robin, small loss",
    "target-down": "the target stops answering at 120 s (ICMP and TCP unanswered)",
    "tcp-stops-after-activation": "TCP probes only for the first 60 s after each (re)activation",
    "port-closed": "the target answers TCP probes with RST/ACK",
    "size-change": "the size is reconfigured at 60 s and the wire follows 60 s later",
    "lossy": "8 % loss per leg and 30 ms RTT jitter, so replies reorder",
    "eni-failure": "source 2 stops at 150 s",
}


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
