"""``df.probekit``: domain verbs on a packets table (pandas accessor)."""
from __future__ import annotations

import pandas as pd

from ._io import capture_bytes
from ._jit import njit
from .errors import ProbekitError

__all__ = ["PacketsAccessor"]


@pd.api.extensions.register_dataframe_accessor("probekit")
class PacketsAccessor:
    """Verbs on a packets table read by probekit (``df.attrs['path']`` names its file)."""

    def __init__(self, df: pd.DataFrame):
        self._df = df

    def files(self):
        """(capture file path, row positions) for each file the table's rows come from."""
        import numpy as np
        df = self._df
        if "capture" in df.columns and df.attrs.get("paths"):
            codes = df["capture"].cat.codes.to_numpy()
            for i, name in enumerate(df["capture"].cat.categories):
                rows = np.flatnonzero(codes == i)
                if rows.size:
                    yield df.attrs["paths"][name], rows
            return
        path = df.attrs.get("path")
        if not path:
            raise ProbekitError("this table has no attrs['path']: payloads come from the capture file; "
                                "read it with probekit.read_capture or read_captures")
        yield path, np.arange(len(df))

    def payloads(self) -> pd.Series:
        """Captured L4 payload bytes of every row (b"" where none), sliced from the capture on demand: the
        table itself never holds packet bytes. A plain file is memory-mapped again; a compressed file is
        decompressed again up to the last payload asked for (the time of one decompression); a table
        read from a stream (stdin, a pipe, a file object) slices the bytes it holds."""
        df = self._df
        off = df["payload_off"].to_numpy(dtype="int64", na_value=-1)
        length = df["payload_caplen"].to_numpy(dtype="int64", na_value=0)
        out = [b""] * len(df)
        for path, rows in self.files():
            has = rows[(off[rows] >= 0) & (length[rows] > 0)]
            if not has.size:
                continue
            upto = int((off[has] + length[has]).max())
            with capture_bytes(path, upto=upto) as buf:
                for r in rows.tolist():
                    o, n = off[r], length[r]
                    if o >= 0 and n > 0:
                        out[r] = bytes(buf[o:o + n])
        return pd.Series(out, index=df.index, name="payload", dtype=object)

    def payload_buffer(self):
        """The same bytes as :meth:`payloads`, back to back without a Python object per row:
        ``(data, offsets)`` with ``data`` uint8 and ``offsets`` int64 of len(df) + 1 entries (row i's
        payload is ``data[offsets[i]:offsets[i + 1]]``), gathered in one compiled pass per file."""
        import numpy as np
        df = self._df
        off = df["payload_off"].to_numpy(dtype="int64", na_value=-1)
        length = df["payload_caplen"].to_numpy(dtype="int64", na_value=0)
        length = np.where((off >= 0) & (length > 0), length, 0)
        offsets = np.zeros(len(df) + 1, np.int64)
        np.cumsum(length, out=offsets[1:])
        data = np.empty(int(offsets[-1]), np.uint8)
        if data.size:
            for path, rows in self.files():
                has = rows[length[rows] > 0]
                if not has.size:
                    continue
                with capture_bytes(path, upto=int((off[has] + length[has]).max())) as buf:
                    _gather(buf, off[rows], length[rows], offsets[rows], data)
        return data, offsets

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


@njit(nogil=True)
def _gather(buf, src_off, length, dst_off, out):  # pragma: no cover - compiled
    for i in range(src_off.shape[0]):
        n = length[i]
        s = src_off[i]
        d = dst_off[i]
        if s + n > buf.shape[0]:  # never for a table read from this file; keeps a stale table memory-safe
            n = max(0, buf.shape[0] - s)
        for j in range(n):
            out[d + j] = buf[s + j]
