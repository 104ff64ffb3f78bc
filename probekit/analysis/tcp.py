"""Deprecated module name: TCP connections now come from :mod:`probekit.analysis.connections` (TCP, UDP
and ICMP as Zeek's conn.log has them). ``tcp_connections`` is its TCP rows."""
from __future__ import annotations

from .connections import LIKELY_SERVER_PORTS, tcp_connections

__all__ = ["LIKELY_SERVER_PORTS", "tcp_connections"]
