"""``df.probekit``: domain verbs on a packets table (pandas accessor)."""
from __future__ import annotations

import pandas as pd

from .capture.payloads import payload_buffer, payload_files, payloads

__all__ = ["PacketsAccessor"]


@pd.api.extensions.register_dataframe_accessor("probekit")
class PacketsAccessor:
    """Verbs on a packets table read by probekit (``df.attrs['path']`` names its file)."""

    def __init__(self, df: pd.DataFrame):
        self._df = df

    def files(self):
        """(capture file path, row positions) for each file the table's rows come from."""
        return payload_files(self._df)

    def payloads(self) -> pd.Series:
        """Captured L4 payload bytes of every row (b"" where none), sliced from the capture on demand
        (``probekit.capture.payloads.payloads``)."""
        return payloads(self._df)

    def payload_buffer(self):
        """The same bytes back to back: ``(data, offsets)`` (``probekit.capture.payloads.payload_buffer``)."""
        return payload_buffer(self._df)

    def probes(self, timeout_s: float = 1.0, vantage: str = "auto") -> pd.DataFrame:
        """The probes table of this packets table (``probekit.match_probes``)."""
        from .analysis.match import match_probes
        return match_probes(self._df, timeout_s=timeout_s, vantage=vantage)

    def span_ns(self) -> tuple[int, int]:
        """First and last timestamp of the capture (ns), for gap detection at its edges."""
        ts = self._df["ts_ns"].dropna()
        return (int(ts.min()), int(ts.max())) if len(ts) else (0, 0)

    def flags(self, *names: str) -> pd.Series:
        """True where every named TCP flag is set, e.g. ``df.probekit.flags("SYN", "ACK")``."""
        from .schema import TCP_FLAGS
        bits = 0
        for n in names:
            bits |= TCP_FLAGS[n.upper()]
        f = self._df["tcp_flags"]
        return ((f & bits) == bits).fillna(False).astype(bool)

