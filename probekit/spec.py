"""Monitor and probe specifications, validated with CloudWatch Network Monitor's limits.

A monitor aggregates over 30 or 60 s and owns probes; a probe sends ICMP echo or TCP SYN to one
destination (IPv4 or IPv6; TCP needs a port) at a packet size of 56 to 8500 bytes from a set of
sources (the "ENIs", two by default). Every rule violated raises SpecError naming the field and
what is allowed.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from .errors import ProbekitError

__all__ = ["SpecError", "Probe", "Monitor", "DEFAULT_SOURCES_V4", "DEFAULT_SOURCES_V6"]

PERIODS_S = (30, 60)
SIZE_MIN, SIZE_MAX = 56, 8500
PROTOCOLS = ("icmp", "tcp")
# Documentation ranges only (RFC 5737 / RFC 4193): never a real network.
DEFAULT_SOURCES_V4 = ("198.51.100.10", "198.51.100.11", "198.51.100.12", "198.51.100.13")
DEFAULT_SOURCES_V6 = ("fd00:5::10", "fd00:5::11", "fd00:5::12", "fd00:5::13")
DEFAULT_DESTINATION_V4 = "192.0.2.10"
DEFAULT_DESTINATION_V6 = "fd00:6::10"


class SpecError(ProbekitError, ValueError):
    """A monitor or probe setting is outside what Network Monitor allows; names the field."""

    def __init__(self, field_name: str, value, allowed: str):
        self.field = field_name
        self.value = value
        self.allowed = allowed
        super().__init__(f"{field_name}={value!r}: {allowed}")


@dataclass(frozen=True)
class Probe:
    """One probe: protocol, destination, port (TCP), packet size in bytes, and its sources.

    ``size`` is what Network Monitor calls the packet size: the ICMP message (8-byte header + payload)
    or the TCP segment (20-byte header + payload) — 56 gives 48 ICMP or 36 TCP payload bytes.
    """
    protocol: str
    destination: str = DEFAULT_DESTINATION_V4
    port: int | None = None
    size: int = 56
    sources: tuple[str, ...] = ()

    def __post_init__(self):
        proto = str(self.protocol).lower()
        if proto not in PROTOCOLS:
            raise SpecError("protocol", self.protocol, "must be 'icmp' or 'tcp'")
        object.__setattr__(self, "protocol", proto)
        try:
            dst = ipaddress.ip_address(self.destination)
        except ValueError:
            raise SpecError("destination", self.destination, "must be an IPv4 or IPv6 address") from None
        object.__setattr__(self, "destination", str(dst))
        if proto == "tcp":
            if self.port is None:
                raise SpecError("port", None, "a TCP probe needs a port (1-65535)")
            if not isinstance(self.port, int) or not 1 <= self.port <= 65535:
                raise SpecError("port", self.port, "must be an integer from 1 to 65535")
        elif self.port is not None:
            raise SpecError("port", self.port, "an ICMP probe has no port")
        if not isinstance(self.size, int) or not SIZE_MIN <= self.size <= SIZE_MAX:
            raise SpecError("size", self.size, f"must be an integer from {SIZE_MIN} to {SIZE_MAX} bytes")
        sources = tuple(self.sources) or (DEFAULT_SOURCES_V4[:2] if dst.version == 4 else DEFAULT_SOURCES_V6[:2])
        checked = []
        for s in sources:
            try:
                a = ipaddress.ip_address(s)
            except ValueError:
                raise SpecError("sources", s, "each source must be an IPv4 or IPv6 address") from None
            if a.version != dst.version:
                raise SpecError("sources", s, f"an IPv{a.version} source cannot probe the IPv{dst.version} "
                                              f"destination {dst}")
            checked.append(str(a))
        if len(set(checked)) != len(checked):
            raise SpecError("sources", sources, "sources must be distinct")
        object.__setattr__(self, "sources", tuple(checked))

    @property
    def family(self) -> int:
        return ipaddress.ip_address(self.destination).version

    @property
    def payload_len(self) -> int:
        """Payload bytes after the 8-byte ICMP or 20-byte TCP header."""
        return self.size - (8 if self.protocol == "icmp" else 20)

    def with_size(self, size: int) -> Probe:
        return Probe(self.protocol, self.destination, self.port, size, self.sources)

    def label(self) -> str:
        return f"{self.protocol}:{self.destination}" + (f":{self.port}" if self.port else "")


@dataclass(frozen=True)
class Monitor:
    """A monitor: aggregation period in seconds (30 or 60) and its probes."""
    probes: tuple[Probe, ...] = field(default_factory=tuple)
    period_s: int = 30

    def __post_init__(self):
        if self.period_s not in PERIODS_S:
            raise SpecError("period_s", self.period_s, "the aggregation period must be 30 or 60 seconds")
        probes = tuple(self.probes)
        if not probes:
            raise SpecError("probes", probes, "a monitor needs at least one probe")
        for p in probes:
            if not isinstance(p, Probe):
                raise SpecError("probes", p, "each probe must be a probekit.Probe")
        object.__setattr__(self, "probes", probes)
