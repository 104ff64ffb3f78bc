"""``probekit.open(path)``: one capture and every analysis of it, computed on first use and kept.

This is what notebooks and the report call, so that they narrate and plot while all computation stays
in probekit. Each property is one analysis module's function applied with the session's settings.
"""
from __future__ import annotations

from functools import cached_property
from pathlib import Path

import pandas as pd

from .analysis import fingerprint as _fp
from .analysis import match, metrics, payload, sizes, sources, tcp, timing
from .schema import STREAM_KEYS

__all__ = ["Capture", "open_capture"]


class Capture:
    """A capture file and its analyses (``period_s`` for metrics, ``timeout_s`` for matching)."""

    def __init__(self, path, period_s: int = 30, timeout_s: float = 1.0, vantage: str = "auto",
                 backend: str = "fast"):
        self.path = Path(path)
        self.period_s = period_s
        self.timeout_s = timeout_s
        self.vantage = vantage
        self.backend = backend

    def __repr__(self) -> str:
        return f"Capture({str(self.path)!r}, period_s={self.period_s})"

    @property
    def name(self) -> str:
        return self.path.name

    @cached_property
    def packets(self) -> pd.DataFrame:
        from .capture import read_capture
        return read_capture(self.path, backend=self.backend)

    @cached_property
    def probes(self) -> pd.DataFrame:
        return match.match_probes(self.packets, timeout_s=self.timeout_s, vantage=self.vantage)

    @property
    def span_ns(self) -> tuple[int, int]:
        return self.packets.probekit.span_ns()

    def has_probes(self, protocol: str | None = None) -> bool:
        p = self.probes
        return bool(len(p) if protocol is None else (p["protocol"].astype(str).str.startswith(protocol)).any())

    @cached_property
    def periods(self) -> pd.DataFrame:
        """Per source stream and period."""
        return metrics.period_metrics(self.probes, self.period_s)

    @cached_property
    def probe_periods(self) -> pd.DataFrame:
        """Per Network Monitor probe (sources together) and period: the CloudWatch view."""
        return metrics.period_metrics(self.probes, self.period_s, by=STREAM_KEYS)

    @cached_property
    def inter_arrivals(self) -> pd.DataFrame:
        return timing.inter_arrivals(self.probes)

    @cached_property
    def timing(self) -> pd.DataFrame:
        return timing.timing_summary(self.probes, span_ns=self.span_ns)

    @cached_property
    def gaps(self) -> pd.DataFrame:
        return timing.find_gaps(self.probes, span_ns=self.span_ns)

    @cached_property
    def shares(self) -> pd.DataFrame:
        return sources.source_shares(self.probes)

    @cached_property
    def balance(self) -> pd.DataFrame:
        return sources.balance_test(self.probes)

    @cached_property
    def alternation(self) -> pd.DataFrame:
        return sources.alternation(self.probes)

    @cached_property
    def source_quality(self) -> pd.DataFrame:
        return sources.source_quality(self.probes)

    @cached_property
    def source_rate(self) -> pd.DataFrame:
        return sources.source_rate(self.probes, self.period_s)

    @cached_property
    def source_rate_table(self) -> pd.DataFrame:
        """Probes per period (rows) and (protocol, source) (columns): each ENI's rate over time."""
        return self.source_rate.pivot_table(index="period_start_ns", columns=["protocol", "source"], values="probes",
                                            observed=True)

    @cached_property
    def connection_kinds(self) -> pd.DataFrame:
        """TCP connections counted by conn_state, history and who reset."""
        c = self.connections
        return (c.groupby(["conn_state", "history", "reset_by"], observed=True, dropna=False).size()
                .rename("connections").reset_index())

    def size_changes(self, configured_at_ns: int | None = None) -> pd.DataFrame:
        return sizes.size_changes(self.probes, configured_at_ns=configured_at_ns)

    @cached_property
    def payloads(self) -> pd.Series:
        return payload.request_payloads(self.packets, self.probes)

    @cached_property
    def payload_tests(self) -> pd.DataFrame:
        return payload.payload_tests(self.payloads, self.probes["ts_ns"])

    @cached_property
    def payload_verdicts(self) -> pd.DataFrame:
        return payload.payload_verdicts(self.probes, self.payloads)

    @cached_property
    def connections(self) -> pd.DataFrame:
        return tcp.tcp_connections(self.packets)

    @cached_property
    def fingerprints(self) -> pd.DataFrame:
        return _fp.fingerprint(self.packets, self.probes)

    def not_applicable(self, theme: str) -> str | None:
        """Why a theme does not apply to this capture (None when it does): 'probes', 'tcp', 'sources',
        'payload'."""
        p = self.probes
        if theme in ("probes", "timing", "metrics") and p.empty:
            return (f"{self.name}: no probes (ICMP echo requests or TCP SYNs) in this capture, so there is nothing "
                    "to time or to count.")
        if theme == "timing" and self.inter_arrivals["ia_s"].notna().sum() == 0:
            return (f"{self.name}: no stream has two probes or more, so there is no inter-arrival to measure "
                    f"({len(p)} probe(s) in all).")
        if theme == "tcp" and not (p["protocol"] == "tcp").any():
            return f"{self.name}: no TCP SYN probes, so the TCP handshake and reset analysis does not apply."
        if theme == "sources" and p["source"].nunique() < 2:
            return (f"{self.name}: {p['source'].nunique()} probe source(s): a per-ENI split needs two or more "
                    "(Network Monitor uses two).")
        if theme == "payload" and not (self.payloads.map(len) > 0).any():
            return f"{self.name}: the probes carry no payload bytes, so randomness cannot be judged."
        return None

    def summary(self) -> dict:
        """Headline facts for a report: streams, verdicts, loss/RTT and anomalies."""
        from .report import capture_summary
        return capture_summary(self)


def open_capture(path, **kw) -> Capture:
    """A :class:`Capture` session for ``path`` (keyword arguments: period_s, timeout_s, vantage, backend)."""
    return Capture(path, **kw)
