"""``probekit.open(path)``: one capture and every analysis of it, computed on first use and kept.

This is what notebooks and the report call, so that they narrate and plot while all computation stays
in probekit. Each property is one analysis module's function applied with the session's settings.

``tables=FOLDER``: the session's tables are loaded from ``FOLDER`` when a session with the same file and
settings saved them there (``save_tables``): ``probekit report`` analyses each capture once, saves its
tables, and the notebooks' kernels load them instead of reading and analysing the capture again.
Without it (a notebook opened in JupyterLab), everything is computed from the capture.

Huge captures (``chunked=True``, or a plain file over 2 GiB): the capture is walked chunk by chunk
(``probekit.drive.chunked``) and its packets table is never held. Every table built from the probes,
the ICMP errors, the streams and the fragments is the in-memory session's; the packet-level views
(``packets``, ``connections``, per-probe payload bytes) raise a clear error, and ``not_applicable('packets')``
says so in words for notebooks to print.

CloudWatch: ``cloudwatch=`` export file(s) and ``monitor=`` the monitor description; by default the
session looks beside the capture for ``NAME.cloudwatch.json`` (else ``NAME.cloudwatch-console.csv``) and
``NAME.monitor.json``; ``cloudwatch=False`` looks for nothing.
"""
from __future__ import annotations

import hashlib
import os
import pickle
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from . import accessor as _accessor  # noqa: F401 - registers df.probekit (used by the payload and tcp analyses)
from ._jit import njit
from .analysis import cloudwatch as _cw
from .analysis import connections as _conn
from .analysis import datagrams as _dg
from .analysis import errors_icmp as _err
from .analysis import fingerprint as _fp
from .analysis import match, metrics, payload, sizes, sources, timing
from .analysis import mtu as _mtu
from .analysis import streams as _streams
from .schema import STREAM_KEYS

__all__ = ["Capture", "open_capture", "capture_summary", "CLOUDWATCH_SIDECARS", "MONITOR_SIDECAR"]

CLOUDWATCH_SIDECARS = (".cloudwatch.json", ".cloudwatch-console.csv")
"""Exports looked for beside a capture, first found wins (``target-down.pcap.cloudwatch.json``)."""
MONITOR_SIDECAR = ".monitor.json"
PLOT_PROBES = 200_000
"""Per-probe figures (timeline, outcome by size) of a chunked capture draw at most this many probes: the
first ones, a stretch of the capture as it is (matplotlib needs minutes and gigabytes for millions of ticks)."""
_PACKET_LEVEL = ("packets", "connections", "connection_kinds", "payloads", "payload_tests")
"""Tables made from the packets table itself: not available on a chunked capture."""
_WINDOWS = ("probe_window", "inter_arrival_window")
"""A chunked capture's stretch of probes for per-probe figures (``plot_probes``): its own tables, so that a
notebook's kernel loads them without the probes table."""
REPORT_SKIPS = ("probes", "all_probes", "inter_arrivals")
"""Tables with a row per probe that ``probekit report`` does not save for a chunked capture: its notebooks
show the per-stream and per-period tables and draw per-probe figures from ``plot_probes`` (a kernel would
otherwise load gigabytes of a huge capture's probes)."""
_TABLES = ("packets", "datagrams", "all_probes", "icmp_errors", "streams", "other_traffic", "mtu", "period_errors",
           "error_reporters",
           "probes", "periods", "probe_periods", "inter_arrivals", "timing", "gaps", "shares", "balance",
           "alternation", "source_quality", "source_rate", "source_rate_table", "connections", "connection_kinds",
           "payloads", "payload_tests", "payload_verdicts", "fingerprints", "default_size_changes", "cloudwatch",
           "cloudwatch_audit", "cloudwatch_summary", "packet_count", "capture_notes", "payload_probes",
           "capture_span_ns", "probe_facts", *_WINDOWS)


class _table(cached_property):
    """A session's table: computed on first use and kept, or, for a session opened with ``tables=``, read
    from the file ``save_tables`` wrote for it."""

    def __get__(self, instance, owner=None):
        if instance is not None and self.attrname not in instance.__dict__:
            saved = instance.__dict__.get("_saved")
            if saved and self.attrname in saved:
                with open(saved.pop(self.attrname), "rb") as f:
                    instance.__dict__[self.attrname] = pickle.load(f)
                return instance.__dict__[self.attrname]
            if self.attrname in instance.__dict__.get("_skipped", ()):
                instance._not_saved(self.attrname)
        return super().__get__(instance, owner)


def _files(x) -> list[Path]:
    if x is None or x is False:
        return []
    if isinstance(x, (str, os.PathLike)):
        return [Path(x)]
    return [Path(p) for p in x]


class Capture:
    """A capture file and its analyses (``period_s`` for metrics, ``timeout_s`` for matching)."""

    def __init__(self, path, period_s: int = 30, timeout_s: float = 1.0, vantage: str = "auto",
                 backend: str = "fast", cloudwatch=None, monitor=None, tables=None, all_streams: bool = False,
                 stream_overrides: dict | None = None, chunked: bool | None = None, chunk_packets: int | None = None):
        self.path = Path(path)
        self.chunked = chunked
        self.chunk_packets = chunk_packets
        self.all_streams = all_streams
        self.stream_overrides = dict(stream_overrides or {})
        self.period_s = period_s
        self.timeout_s = timeout_s
        self.vantage = vantage
        self.backend = backend
        if cloudwatch is False:
            self.cloudwatch_files, self.monitor_files = [], []
        elif cloudwatch is None:
            side = [self.path.with_name(self.path.name + s) for s in CLOUDWATCH_SIDECARS]
            self.cloudwatch_files = [next(p for p in side if p.is_file())] if any(p.is_file() for p in side) else []
            mon = self.path.with_name(self.path.name + MONITOR_SIDECAR)
            self.monitor_files = _files(monitor) or ([mon] if self.cloudwatch_files and mon.is_file() else [])
        else:
            self.cloudwatch_files, self.monitor_files = _files(cloudwatch), _files(monitor)
        self.tables_dir = Path(tables) if tables else None
        if self.tables_dir is not None:
            self._load_tables()

    def __repr__(self) -> str:
        return f"Capture({str(self.path)!r}, period_s={self.period_s})"

    @classmethod
    def from_packets(cls, packets: pd.DataFrame, name, **kw) -> Capture:
        """A session over a packets table already read (e.g. from stdin): ``name`` labels it."""
        cap = cls(name, **kw)
        cap.__dict__["packets"] = packets
        return cap

    # ------------------------------------------------------------------ saved tables
    def _key(self) -> str:
        st = self.path.stat()
        parts = [str(self.path.resolve()), st.st_size, st.st_mtime_ns, self.period_s, self.timeout_s, self.vantage,
                 self.backend, self.all_streams, sorted(self.stream_overrides.items()), self.is_chunked]
        parts += [str(p.resolve()) for p in self.cloudwatch_files + self.monitor_files]
        return hashlib.sha256(repr(parts).encode()).hexdigest()[:24]

    def save_tables(self, folder=None, skip=()) -> Path:
        """Compute every table and save them to ``folder`` (default: the session's ``tables``) for sessions
        opened later with the same file and settings: one pickle per table in a folder named for the file
        and settings, which a session loads table by table on first use (a notebook's kernel holds only
        the tables it shows). ``skip``: tables not saved (nor computed for the saving); a session opened
        on the folder says so if asked for one (``probekit report`` skips ``REPORT_SKIPS`` for a chunked
        capture). Returns that folder."""
        folder = Path(folder or self.tables_dir)
        folder.mkdir(parents=True, exist_ok=True)
        skip = tuple(n for n in _TABLES if n in set(skip))
        names = [n for n in _TABLES if n not in skip and not (self.is_chunked and n in _PACKET_LEVEL)
                 and not (not self.is_chunked and n in _WINDOWS)]
        for name in names:
            getattr(self, name)
        out = folder / self._key()
        tmp = folder / f"{self._key()}.tmp"
        tmp.mkdir(exist_ok=True)
        for k in _TABLES:
            if k in self.__dict__ and k not in skip:
                with open(tmp / f"{k}.pkl", "wb") as f:
                    pickle.dump(self.__dict__[k], f, protocol=pickle.HIGHEST_PROTOCOL)
        (tmp / "skipped.txt").write_text("".join(f"{k}\n" for k in skip))
        if out.exists():
            import shutil
            shutil.rmtree(out)
        os.replace(tmp, out)
        return out

    def _load_tables(self) -> bool:
        d = self.tables_dir / self._key()
        if not d.is_dir():
            return False
        self.__dict__["_saved"] = {f.stem: f for f in d.glob("*.pkl") if f.stem in _TABLES}
        skipped = d / "skipped.txt"
        self.__dict__["_skipped"] = tuple(skipped.read_text().split()) if skipped.is_file() else ()
        return True

    def _not_saved(self, name: str):
        from .errors import ProbekitError
        skipped = ", ".join(self.__dict__["_skipped"])
        raise ProbekitError(f"{self.name}: the {name!r} table was not saved with this capture's tables "
                            f"({self.tables_dir}: save_tables skipped {skipped}, a row per probe); per-probe figures "
                            "take plot_probes, and a session opened without tables= computes every table")

    def saved_tables(self) -> list[str]:
        """The saved tables this session has not loaded yet (``tables=``)."""
        return sorted(self.__dict__.get("_saved", {}))

    @property
    def name(self) -> str:
        return self.path.name

    # ------------------------------------------------------------------ huge captures: the chunked path
    @_table
    def is_chunked(self) -> bool:
        """Whether the analyses come from the chunked walk (bounded memory): ``chunked=True``, or ``None``
        and a plain file over ``probekit.drive.chunked.CHUNKED_FILE_BYTES`` (2 GiB)."""
        if self.chunked is not None:
            return bool(self.chunked)
        if "packets" in self.__dict__ or not self.path.is_file():
            return False
        from .drive.chunked import CHUNKED_FILE_BYTES
        return self.path.stat().st_size > CHUNKED_FILE_BYTES

    @_table
    def _chunked(self):
        from .drive.chunked import CHUNK_PACKETS, chunked_analyses
        return chunked_analyses(self.path, chunk_packets=self.chunk_packets or CHUNK_PACKETS, period_s=self.period_s,
                                timeout_s=self.timeout_s, vantage=self.vantage, all_streams=self.all_streams,
                                stream_overrides=self.stream_overrides or None)

    def _packet_level(self, what: str):
        from .errors import ProbekitError
        raise ProbekitError(f"{self.name}: {what} needs the packets table, and a huge capture is analysed chunk by "
                            "chunk without holding it; open it with chunked=False to read it whole (it needs about "
                            "120 bytes of memory per packet)")

    @_table
    def packets(self) -> pd.DataFrame:
        if self.is_chunked:
            self._packet_level("the packets table")
        from .capture import read_capture
        return read_capture(self.path, backend=self.backend)

    @_table
    def packet_count(self) -> int:
        """Frames in the capture."""
        return self._chunked.packets if self.is_chunked else len(self.packets)

    @_table
    def capture_notes(self) -> list:
        """The reader's notes (salvaged records, odd headers)."""
        src = self._chunked.attrs if self.is_chunked else self.packets.attrs
        return list(src.get("notes", []))

    def _walk(self, name: str) -> pd.DataFrame:
        """A table of the chunked walk (``probes`` or one of its ``tables``)."""
        res = self._chunked
        if res.probes is None:          # a capture without any request: the in-memory session's empty tables
            return self._empty_walk(name)
        return res.probes if name == "probes" else res.tables[name]

    def _empty_walk(self, name: str) -> pd.DataFrame:
        from .drive.chunked import chunk_source
        empty = Capture.from_packets(next(iter(chunk_source(self.path, 1, window_bytes=1 << 16))).iloc[:0],
                                     self.path, period_s=self.period_s, timeout_s=self.timeout_s, vantage=self.vantage,
                                     cloudwatch=False, all_streams=self.all_streams, chunked=False)
        return getattr(empty, name)

    # ------------------------------------------------------------------ streams, fragments, errors
    @_table
    def datagrams(self) -> pd.DataFrame:
        """Fragments reassembled into datagrams (schema.DATAGRAMS)."""
        if self.is_chunked:
            return self._walk("datagrams")
        return _dg.datagrams(self.packets)

    @_table
    def all_probes(self) -> pd.DataFrame:
        """Every request the matcher finds (probe streams or not), matched on reassembled datagrams, with the
        outcome an ICMP error gave it (schema.PROBES)."""
        if self.is_chunked:
            return self._walk("all_probes")
        view = _dg.matcher_view(self.packets, self.datagrams)
        probes = match.match_probes(view, timeout_s=self.timeout_s, vantage=self.vantage)
        return _err.with_error_outcomes(probes, _err.attribute_errors(self.packets, probes))

    @_table
    def icmp_errors(self) -> pd.DataFrame:
        """Every ICMP/ICMPv6 error with what it quotes and the probe it answers (schema.ICMP_ERRORS)."""
        if self.is_chunked:
            return self._walk("icmp_errors")
        return _err.icmp_errors(self.packets, self.all_probes)

    @_table
    def streams(self) -> pd.DataFrame:
        """Every candidate stream with its evidence and kind: probe, client, scan, other (schema.STREAMS)."""
        if self.is_chunked:
            return self._walk("streams")
        if self.all_probes.empty:
            fp = _fp.fingerprint(self.packets, self.all_probes)
        else:  # kept: when every request stream is a probe stream, the probes' payload work is this one
            buf = payload.request_payload_buffer(self.packets, self.all_probes)
            verdicts, scan = payload.payload_verdicts_and_scan(self.all_probes, buf, by=_fp.STREAM)
            fp = _fp.fingerprint(self.packets, self.all_probes, verdicts=verdicts)
            self._all_payload = (buf, verdicts, scan, fp)
        return _streams.streams(self.packets, self.all_probes, fp, overrides=self.stream_overrides or None)

    def _probe_rows(self) -> np.ndarray | None:
        """Where each probe is among every request (``all_probes`` rows, ascending: the probe streams are a
        selection of them), when the streams step kept its payload work; None else."""
        if getattr(self, "_all_payload", None) is None:
            return None
        rf_all = pd.Index(self.all_probes["request_frame"].to_numpy("int64"))
        if not rf_all.is_unique:
            return None
        pos = rf_all.get_indexer(self.probes["request_frame"].to_numpy("int64"))
        if (pos < 0).any() or (np.diff(pos) <= 0).any():
            return None
        return pos

    def _verdicts_of_subset(self) -> pd.DataFrame | None:
        """The probes' payload verdicts from every request's, when the probes are whole source streams of
        them (each verdict is made from its stream's payloads alone): those streams' rows; None else."""
        pos = self._probe_rows()
        if pos is None:
            return None
        _, verdicts, scan, _ = self._all_payload
        if scan is None or len(verdicts) != (int(scan.gid.max()) + 1 if scan.gid.size else 0):
            return None
        g = len(verdicts)
        picked = np.bincount(scan.gid[pos], minlength=g)
        streams = np.flatnonzero(picked)
        if not np.array_equal(picked[streams], np.bincount(scan.gid, minlength=g)[streams]):
            return None                 # a stream taken in part: its verdict must be made again
        return _retyped(verdicts.iloc[streams].reset_index(drop=True), self.probes)

    def _payload_of_all(self):
        """(payload buffer, verdicts, the verdicts' per-payload scan, fingerprints) of every request, when
        ``probes`` holds exactly those rows (None else)."""
        kept = getattr(self, "_all_payload", None)
        if kept is None or len(self.probes) != len(self.all_probes):
            return None
        same = np.array_equal(self.probes["request_frame"].to_numpy("int64"),
                              self.all_probes["request_frame"].to_numpy("int64"))
        return kept if same else None

    @_table
    def error_reporters(self) -> pd.DataFrame:
        """ICMP errors counted by outcome, code and the router or host that sent them."""
        e = self.icmp_errors
        return (e.groupby(["outcome", "code", "reporter"], observed=True).size().rename("errors")
                .sort_values(ascending=False).reset_index())

    @_table
    def other_traffic(self) -> pd.DataFrame:
        """What is not a probe stream, summarised per kind (schema.OTHER_TRAFFIC); on a chunked capture from a
        second walk over the file (a frame's kind needs the final streams)."""
        if self.is_chunked:
            from .drive.chunked import CHUNK_PACKETS, chunked_other_traffic
            return chunked_other_traffic(self.path, self.streams, chunk_packets=self.chunk_packets or CHUNK_PACKETS)
        return _streams.other_traffic(self.packets, self.streams)

    @_table
    def probes(self) -> pd.DataFrame:
        """The probes of probe streams (every request with ``all_streams=True``): what the analyses use."""
        if self.is_chunked:
            return self._walk("probes")
        if self.all_streams:
            return self.all_probes
        st = self.streams
        # no stream looks like a monitor's (a short capture, a handful of pings): keep what is not a client or
        # a scan, rather than nothing
        kinds = ("probe",) if (st["kind"].astype(str) == "probe").any() else ("probe", "other")
        out = _streams.select_probe_streams(self.all_probes, st, kinds=kinds).reset_index(drop=True)
        out.attrs["stream_kinds"] = kinds
        return out

    @_table
    def mtu(self) -> pd.DataFrame:
        """Per stream: the largest size that passes, the smallest that fails, the path MTU (schema.MTU)."""
        if self.is_chunked and self._chunked.probes is not None and "mtu" in self._chunked.tables:
            return self._walk("mtu")     # made by the walk on the columns it reads (not a copy of the probes)
        packets = self._walk("rare_packets") if self.is_chunked and self._chunked.probes is not None else \
            None if self.is_chunked else self.packets   # the chunked walk keeps the ICMP-error and fragment rows
        return _mtu.path_mtu(self.probes, packets=packets, datagrams=self.datagrams)

    @_table
    def period_errors(self) -> pd.DataFrame:
        """Per source stream and period: probes that drew each kind of ICMP error, and from whom."""
        return _err.period_errors(self.probes, self.period_s)

    @property
    def span_ns(self) -> tuple[int, int]:
        return self.capture_span_ns

    @_table
    def capture_span_ns(self) -> tuple[int, int]:
        """(first, last) frame time of the capture, ns."""
        if self.is_chunked:
            return self._chunked.span_ns
        col = self.packets["ts_ns"]
        ts = (col.dropna() if col.hasnans else col).to_numpy()    # no 8 MB copy when no time is missing
        return (int(ts.min()), int(ts.max())) if len(ts) else (0, 0)

    @property
    def plot_probes(self) -> pd.DataFrame:
        """The probes a per-probe figure draws: every probe, or on a chunked capture the first
        ``PLOT_PROBES`` of them (``plot_window_note`` says which stretch when that is not all)."""
        return self.probe_window if self.is_chunked else self.probes

    @property
    def plot_inter_arrivals(self) -> pd.DataFrame:
        """``inter_arrivals`` of ``plot_probes``: every probe's, or a chunked capture's first ``PLOT_PROBES``
        probes' (the rows of ``inter_arrivals`` for those probes: each one's previous probe is among them)."""
        return self.inter_arrival_window if self.is_chunked else self.inter_arrivals

    @_table
    def probe_window(self) -> pd.DataFrame:
        """A chunked capture's first ``PLOT_PROBES`` probes (``plot_probes``; matplotlib needs minutes and
        gigabytes for millions of ticks)."""
        return self.probes.iloc[:PLOT_PROBES].copy()

    @_table
    def inter_arrival_window(self) -> pd.DataFrame:
        return timing.inter_arrivals(self.probe_window)

    @_table
    def probe_facts(self) -> dict:
        """What ``not_applicable`` and ``plot_window_note`` ask of the probes, without the table: how many,
        which protocols, how many sources, and how many inter-arrivals (probes after the first of their
        source stream: the ``timing`` table's groups)."""
        p = self.probes
        proto = p["protocol"]
        protocols = sorted(set(proto.cat.remove_unused_categories().cat.categories.astype(str))
                           if isinstance(proto.dtype, pd.CategoricalDtype) else set(proto.dropna().astype(str)))
        n_ia = int((self.timing["probes"].to_numpy("int64") - 1).clip(min=0).sum()) if len(p) else 0
        return dict(probes=len(p), protocols=protocols, sources=int(p["source"].nunique()), inter_arrivals=n_ia)

    def plot_window_note(self) -> str | None:
        """The sentence that goes above a per-probe figure drawn from a stretch of the probes (None: all)."""
        n = self.probe_facts["probes"]
        if not self.is_chunked or n <= PLOT_PROBES:
            return None
        w = self.plot_probes
        return (f"{self.name}: per-probe figures draw the first {len(w):,} of {n:,} probes "
                f"({_utc(w['ts_ns'].iloc[0])} to {_utc(w['ts_ns'].iloc[-1])}); the tables count every probe.")

    def has_probes(self, protocol: str | None = None) -> bool:
        f = self.probe_facts
        return bool(f["probes"] if protocol is None else any(p.startswith(protocol) for p in f["protocols"]))

    @_table
    def periods(self) -> pd.DataFrame:
        """Per source stream and period, with the ICMP errors its probes drew and who sent them."""
        if self.is_chunked and self._chunked.probes is not None:
            return self._walk("periods")
        return _err.periods_with_errors(metrics.period_metrics(self.probes, self.period_s), self.probes, self.period_s)

    @_table
    def probe_periods(self) -> pd.DataFrame:
        """Per Network Monitor probe (sources together) and period: the CloudWatch view, errors beside it."""
        if self.is_chunked and self._chunked.probes is not None:
            return self._walk("probe_periods")
        return _err.periods_with_errors(metrics.period_metrics(self.probes, self.period_s, by=STREAM_KEYS),
                                        self.probes, self.period_s)

    @_table
    def inter_arrivals(self) -> pd.DataFrame:
        return timing.inter_arrivals(self.probes)

    @_table
    def timing(self) -> pd.DataFrame:
        if self.is_chunked:
            return self._walk("timing")
        return timing.timing_summary(self.probes, span_ns=self.span_ns)

    @_table
    def gaps(self) -> pd.DataFrame:
        if self.is_chunked:
            return self._walk("gaps")
        return timing.find_gaps(self.probes, span_ns=self.span_ns)

    @_table
    def shares(self) -> pd.DataFrame:
        if self.is_chunked:
            return self._walk("shares")
        return sources.source_shares(self.probes)

    @_table
    def balance(self) -> pd.DataFrame:
        if self.is_chunked:
            return self._walk("balance")
        return sources.balance_test(self.probes)

    @_table
    def alternation(self) -> pd.DataFrame:
        if self.is_chunked:
            return self._walk("alternation")
        return sources.alternation(self.probes)

    @_table
    def source_quality(self) -> pd.DataFrame:
        if self.is_chunked:
            return self._walk("source_quality")
        return sources.source_quality(self.probes)

    @_table
    def source_rate(self) -> pd.DataFrame:
        if self.is_chunked:
            return self._walk("source_rate")
        return sources.source_rate(self.probes, self.period_s)

    @_table
    def source_rate_table(self) -> pd.DataFrame:
        """Probes per period (rows) and (protocol, source) (columns): each ENI's rate over time."""
        return self.source_rate.pivot_table(index="period_start_ns", columns=["protocol", "source"], values="probes",
                                            observed=True)

    @_table
    def connection_kinds(self) -> pd.DataFrame:
        """TCP connections counted by conn_state, history and who reset."""
        if self.is_chunked:
            self._packet_level("the connections table")
        return _conn.connection_kinds(self.connections)

    def size_changes(self, configured_at_ns: int | None = None) -> pd.DataFrame:
        if configured_at_ns is None:
            return self.default_size_changes
        return sizes.size_changes(self.probes, configured_at_ns=configured_at_ns)

    @_table
    def default_size_changes(self) -> pd.DataFrame:
        if self.is_chunked:
            return self._walk("size_changes")
        return sizes.size_changes(self.probes)

    # ------------------------------------------------------------------ CloudWatch
    @_table
    def cloudwatch(self) -> pd.DataFrame | None:
        """CloudWatch's numbers for this capture (schema.CLOUDWATCH), or None without an export."""
        if not self.cloudwatch_files:
            return None
        from .capture.cloudwatch import read_cloudwatch
        return read_cloudwatch(self.cloudwatch_files, monitor=self.monitor_files or None)

    @_table
    def cloudwatch_audit(self) -> pd.DataFrame | None:
        """CloudWatch's periods beside the capture's, with findings (schema.AUDIT); None without an export."""
        if self.cloudwatch is None:
            return None
        packets = (self._walk("rare_packets") if self._chunked.probes is not None else None) if self.is_chunked \
            else self.packets      # the audit counts the ICMP errors the chunked walk kept
        return _cw.audit_cloudwatch(self.probes, self.cloudwatch, packets=packets, span_ns=self.span_ns)

    @_table
    def cloudwatch_summary(self) -> pd.DataFrame | None:
        """The audit in brief (schema.AUDIT_SUMMARY): one row per probe and finding, worst first."""
        return None if self.cloudwatch_audit is None else _cw.audit_summary(self.cloudwatch_audit)

    def cloudwatch_disagreements(self) -> pd.DataFrame | None:
        """The audit's rows that do not agree (what a reader wants to see first)."""
        a = self.cloudwatch_audit
        return None if a is None else a[~a["agrees"]].reset_index(drop=True)

    def cloudwatch_by_probe(self) -> dict:
        """The audit's rows per probe: {'tcp 192.0.2.10:80': rows, ...} (empty without an export)."""
        a = self.cloudwatch_audit
        if a is None:
            return {}
        lab = [(_label(p, d, o) if p else f"probe {i}") for p, d, o, i in
               zip(a["protocol"], a["destination"], a["port"], a["probe_id"])]
        return {k: a[np.asarray(lab, dtype=object) == k].reset_index(drop=True) for k in dict.fromkeys(lab)}

    def cloudwatch_status(self) -> str:
        """One line: which export was audited, the clock skew estimate and the reader's notes."""
        if not self.cloudwatch_files:
            return f"{self.name}: no CloudWatch export."
        a = self.cloudwatch_audit
        sk = a.attrs["clock_skew"]
        tol = a.attrs["tolerances"]
        files = ", ".join(f"`{p.name}`" for p in self.cloudwatch_files + self.monitor_files)
        lines = [f"{self.name}: CloudWatch export {files}; {int((~a['agrees']).sum())} of {len(a)} periods "
                 f"({a.attrs['period_s']} s) disagree. Tolerances: loss ±max({tol['loss_tolerance_pct']:g} %-points, one "
                 f"probe's share), RTT ±max({tol['rtt_tolerance_pct']:g} %, {tol['rtt_tolerance_us'] / 1e3:g} ms). "
                 f"Clock skew: {sk['note']}."]
        lines += [f"- note: {n}" for n in a.attrs["notes"]]
        return "\n".join(lines)

    @_table
    def payloads(self) -> pd.Series:
        """Each probe's request payload as bytes (for plots; the tests read the buffer below)."""
        return self.payload_buffer.to_series()

    @_table
    def payload_buffer(self):
        """Every probe's request payload back to back (one gather from the capture)."""
        if self.is_chunked:
            self._packet_level("every probe's payload bytes")
        kept = self._payload_of_all()
        return kept[0] if kept is not None else payload.request_payload_buffer(self.packets, self.probes)

    @_table
    def payload_tests(self) -> pd.DataFrame:
        kept = self._payload_of_all()
        if kept is not None and kept[2] is not None:     # the verdicts' pass over the bytes made these numbers
            return kept[2].tests()
        pos = self._probe_rows()
        if pos is not None and self._all_payload[2] is not None:        # a probe's tests are its payload's alone
            return self._all_payload[2].tests(pos, self.probes.index)
        return payload.payload_tests(self.payload_buffer, self.probes["ts_ns"])

    @_table
    def payload_verdicts(self) -> pd.DataFrame:
        if self.is_chunked:
            return self._walk("payload_verdicts")
        kept = self._payload_of_all()
        if kept is not None:
            return kept[1].copy()
        sub = self._verdicts_of_subset()
        return sub if sub is not None else payload.payload_verdicts(self.probes, self.payload_buffer)

    @_table
    def connections(self) -> pd.DataFrame:
        """TCP, UDP and ICMP connections as Zeek's conn.log has them (schema.CONNECTIONS)."""
        if self.is_chunked:
            self._packet_level("the connections table")
        return _conn.connections(self.packets)

    @_table
    def fingerprints(self) -> pd.DataFrame:
        if self.is_chunked:
            return self._walk("fingerprints")
        kept = self._payload_of_all()
        if kept is not None:    # the probes are every request: the streams' fingerprints are these
            return _retyped(kept[3], self.probes)
        return _fp.fingerprint(self.packets, self.probes, verdicts=self.payload_verdicts, balance=self.balance)

    def not_applicable(self, theme: str) -> str | None:
        """Why a theme does not apply to this capture (None when it does): 'probes', 'tcp', 'sources',
        'payload'; 'packets' for the packet-level views a chunked capture does not hold."""
        if theme == "packets":
            if not self.is_chunked:
                return None
            return (f"{self.name}: analysed chunk by chunk ({self.packet_count:,} packets, a huge capture or "
                    "chunked=True), so its packets table is not held and the packet-level parts — the packets "
                    "table, Zeek-style connections, each probe's payload bytes, tshark's dissection — are skipped "
                    "here. Every other table and figure comes from the probes, ICMP errors, streams and fragments "
                    "the chunked walk kept, with the in-memory numbers.")
        f = self.probe_facts      # the probes' counts (a kernel of a chunked report does not hold the table)
        if theme in ("probes", "timing", "metrics") and not f["probes"]:
            return (f"{self.name}: no probes (ICMP echo requests or TCP SYNs) in this capture, so there is nothing "
                    "to time or to count.")
        if theme == "timing" and f["inter_arrivals"] == 0:
            return (f"{self.name}: no stream has two probes or more, so there is no inter-arrival to measure "
                    f"({f['probes']} probe(s) in all).")
        if theme == "tcp" and "tcp" not in f["protocols"]:
            return f"{self.name}: no TCP SYN probes, so the TCP handshake and reset analysis does not apply."
        if theme == "sources" and f["sources"] < 2:
            return (f"{self.name}: {f['sources']} probe source(s): a per-ENI split needs two or more "
                    "(Network Monitor uses two).")
        if theme == "payload" and not self._has_payload_bytes():
            return f"{self.name}: the probes carry no payload bytes, so randomness cannot be judged."
        return None

    @_table
    def payload_probes(self) -> int:
        """Probes whose request carries payload bytes."""
        if self.is_chunked:
            return self._chunked.payload_probes
        return int((self.payload_buffer.lengths > 0).sum())     # the buffer's lengths: no bytes objects

    def _has_payload_bytes(self) -> bool:
        return self.payload_probes > 0

    def summary(self) -> dict:
        """Headline facts for a report: streams, verdicts, loss/RTT, the CloudWatch audit and anomalies."""
        return capture_summary(self)


def _retyped(table: pd.DataFrame, probes: pd.DataFrame) -> pd.DataFrame:
    """A per-stream table of every request with its key columns in the categories of ``probes`` (the
    probe selection drops unused categories): what the same function gives on ``probes``."""
    out = table.copy(deep=False)
    for c in ("protocol", "source", "destination"):
        if c in out.columns and isinstance(probes[c].dtype, pd.CategoricalDtype) \
                and isinstance(out[c].dtype, pd.CategoricalDtype):
            out[c] = out[c].cat.set_categories(probes[c].cat.categories)
    return out


def open_capture(path, **kw) -> Capture:
    """A :class:`Capture` session for ``path`` (keyword arguments: period_s, timeout_s, vantage, backend,
    cloudwatch, monitor, tables)."""
    return Capture(path, **kw)


# ----------------------------------------------------------------------------------- summary
def _utc(ns) -> str:
    return pd.Timestamp(int(ns), unit="ns", tz="UTC").strftime("%Y-%m-%d %H:%M:%S UTC")


def _label(proto, dst, port) -> str:
    return f"{proto} {dst}" + ("" if port is None or pd.isna(port) else f":{int(port)}")


def _cloudwatch_findings(cap) -> list[str]:
    """The audit's disagreements in words, worst first (one line per probe and finding)."""
    s = cap.cloudwatch_summary
    if s is None:
        return []
    out = []
    for r in s.itertuples():
        what = _label(r.protocol, r.destination, r.port) if r.protocol else f"probe {r.probe_id}"
        when = f"{r.periods} period(s) from {_utc(r.first_period_start_ns)}"
        cw = (f"CloudWatch said {r.cw_loss_pct:.0f} % loss" if not np.isnan(r.cw_loss_pct) else "CloudWatch said nothing") \
            + ("" if np.isnan(r.cw_rtt_us) else f" and {r.cw_rtt_us / 1e3:.0f} ms RTT")
        f = r.finding
        if f == "zero_loss_but_no_replies":
            text = f"{cw} for {what} while none of its {r.sent} probes was answered ({when})"
        elif f == "zero_rtt_without_reply":
            text = f"{cw} for {what}: an RTT of 0 while none of its {r.sent} probes was answered ({when})"
        elif f == "metric_without_probes":
            text = f"{cw} for {what} while the capture shows no probe of it at all ({when})"
        elif f == "probes_without_metric":
            text = f"CloudWatch has no datapoint for {what} although {r.sent} probes were sent ({when})"
        elif f == "loss_differs":
            text = f"{cw} for {what}; the capture's loss differs beyond the tolerance ({when})"
        elif f == "rtt_differs":
            text = f"{cw} for {what}; the capture's RTT differs beyond the tolerance ({when})"
        else:
            text = f"{what}: {f.replace('_', ' ')} ({when})"
        out.append(f"**CloudWatch disagrees** (`{f}`): {text}")
    return out


def _forensics_lines(cap) -> list[str]:
    """Which streams are probes and who sends them, what was set aside, which routers answered with ICMP
    errors, and the path MTU: the report's lines on a messy capture."""
    out = []
    st = cap.streams
    if st.empty:
        return out
    pr = st[_equals(st["kind"], "probe")]
    if len(pr):
        out.append("Probe streams: " + "; ".join(
            f"{_label(r.protocol, r.destination, r.port)} from {r.sources} source(s) ({r.source_list}), "
            f"{r.tool or 'unknown tool'}"
            for r in _rows(pr, "protocol", "destination", "port", "sources", "source_list", "tool")) + ".")
    if cap.all_streams:
        out.append("Every request stream is analysed (all_streams=True).")
    ot = cap.other_traffic
    if len(ot):
        out.append("Set aside as other traffic: " + ", ".join(
            f"{r.kind} ({r.packets} packets, {r.bytes} bytes)" for r in _rows(ot, "kind", "packets", "bytes")) + ".")
    e = cap.icmp_errors
    if len(e):
        g = e.groupby(["reporter", "outcome", "code"], observed=True).size().sort_values(ascending=False)
        out.append("ICMP errors: " + ", ".join(f"{rep} sent {n} × {outc} ({code})" for (rep, outc, code), n in
                                               g.head(6).items()) + (" …" if len(g) > 6 else "") + ".")
    for r in _rows(cap.mtu, "protocol", "destination", "port", "path", "evidence"):
        if r.path != "fits":
            out.append(f"Path MTU, {_label(r.protocol, r.destination, r.port)}: {r.path} — {r.evidence}.")
    return out


def _rows(table: pd.DataFrame, *columns: str):
    """Rows of the named columns as named tuples (``table[columns].itertuples()``'s fields, from each
    column's values as Python objects: no sub-table, no per-row Series)."""
    row = _row_type(columns)
    return [row(*v) for v in zip(*(table[c].tolist() for c in columns))] if len(table) else []


_ROW_TYPES: dict = {}


def _row_type(columns: tuple):
    if columns not in _ROW_TYPES:
        from collections import namedtuple
        _ROW_TYPES[columns] = namedtuple("Row", columns)
    return _ROW_TYPES[columns]


def _equals(col: pd.Series, text: str) -> np.ndarray:
    """``col.astype(str) == text`` as a mask, decided once per category of a categorical column."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        per = np.append(np.asarray([str(c) == text for c in col.cat.categories], bool), text == "nan")
        return per[col.cat.codes.to_numpy()]
    return (col.astype(str) == text).to_numpy()


@njit(nogil=True)
def _stream_counts(gid, n, oc, k, src, ns, bitmap, rtt, uk):  # pragma: no cover - compiled
    """Per stream ``gid`` (0..n-1): the outcome counts (n × k; code -1 in the last column), the distinct
    sources (``src`` codes < ``ns``; counted only with ``bitmap``), and the RTTs of the probes whose outcome
    is not ``uk`` and whose RTT is not NaN, stream after stream in row order (``vals``; stream g's are
    ``vals[bounds[g]:bounds[g + 1]]``)."""
    m = gid.size
    per = np.zeros((n, k), np.int64)
    sources = np.zeros(n, np.int64)
    seen = np.zeros(n * ns if bitmap else 1, np.bool_)
    bounds = np.zeros(n + 1, np.int64)
    for i in range(m):
        g = gid[i]
        o = oc[i]
        per[g, k - 1 if o < 0 else o] += 1
        if bitmap and src[i] >= 0:
            j = g * ns + src[i]
            if not seen[j]:
                seen[j] = True
                sources[g] += 1
        if o != uk and not np.isnan(rtt[i]):
            bounds[g + 1] += 1
    for g in range(n):
        bounds[g + 1] += bounds[g]
    vals = np.empty(bounds[n], np.float64)
    pos = bounds[:n].copy()
    for i in range(m):
        if oc[i] != uk and not np.isnan(rtt[i]):
            g = gid[i]
            vals[pos[g]] = rtt[i]
            pos[g] += 1
    return per, sources, vals, bounds


def _stream_stats(probes: pd.DataFrame) -> list:
    """Per stream (groupby's streams by STREAM_KEYS, in its order): its key (the values of its first
    row), distinct sources, probes, loss % of the judged probes (NaN without), the median RTT of the
    judged probes (NaN when none was answered or refused) and the outcomes' counts in words (as
    ``value_counts`` orders them: by count, stable; zeros left out); from the key and outcome codes, one pass each."""
    from .analysis._groups import groups_of
    if not isinstance(probes["outcome"].dtype, pd.CategoricalDtype):
        probes = probes.assign(outcome=probes["outcome"].astype("category"))
    grp = groups_of(probes, STREAM_KEYS)   # shared with the analyses by these keys (cached per table)
    gid, n = grp.gid, grp.n
    out_cats = probes["outcome"].cat.categories
    oc = probes["outcome"].cat.codes.to_numpy().astype(np.int32)      # int32: one compiled variant
    k = len(out_cats) + 1                                       # the last slot: no outcome
    texts = [str(c) for c in out_cats]
    src = probes["source"].cat.codes.to_numpy().astype(np.int32) if isinstance(probes["source"].dtype,
                                                                             pd.CategoricalDtype) else None
    if src is None:
        src = pd.factorize(probes["source"])[0].astype(np.int32)
    ns = int(src.max()) + 1 if src.size else 1
    bitmap = n * ns <= 4 * len(probes) + 65536
    rtt = probes["rtt_us"].to_numpy("float64", na_value=np.nan)
    uk = texts.index("unknown") if "unknown" in texts else -1
    # one pass: outcome counts, distinct sources (a bitmap per stream), the judged probes' RTTs (median
    # skips NaN) placed stream by stream in row order (a counting sort)
    per_outcome, sources, vals, bounds = _stream_counts(np.ascontiguousarray(gid, np.int64), n, oc, k, src, ns,
                                                        bitmap, rtt, uk)
    if not bitmap:
        has = src >= 0
        pairs = np.unique(gid[has] * ns + src[has].astype(np.int64))
        sources = np.bincount(pairs // ns, minlength=n)
    texts_ok = [j for j, t in enumerate(texts) if t in ("answered", "refused")]
    judged = per_outcome[:, [j for j, t in enumerate(texts) if t != "unknown"] + [k - 1]].sum(axis=1)
    ok = per_outcome[:, texts_ok].sum(axis=1)
    keys = [probes[c] for c in STREAM_KEYS]
    rows = []
    for i in range(n):
        first = int(grp.first[i])
        counts = per_outcome[i, :k - 1]
        by_count = np.argsort(-counts, kind="stable")           # value_counts' order: by count, ties as listed
        rows.append((tuple(c.iloc[first] for c in keys), int(sources[i]), int(grp.size[i]),
                     float(100 * (1 - ok[i] / judged[i])) if judged[i] else float("nan"),
                     float(np.median(vals[bounds[i]:bounds[i + 1]])) if ok[i] else float("nan"),
                     ", ".join(f"{texts[j]} {int(counts[j])}" for j in by_count.tolist() if counts[j])))
    return rows


def capture_summary(cap) -> dict:
    """Streams (per Network Monitor probe), their verdicts, loss/RTT, the anomalies found and the CloudWatch
    audit's findings; ``headline``: the most important finding (a CloudWatch disagreement first, then
    100 %-loss periods, gaps, imbalance, size changes)."""
    probes = cap.probes
    streams, ranked = [], {k: [] for k in ("cloudwatch", "no_reply", "no_probes", "gaps", "balance", "sizes")}
    if len(probes):
        fp = cap.fingerprints
        pv = cap.payload_verdicts
        q = cap.probe_periods
        for (proto, dst, port), n_sources, n_probes, loss_pct, rtt_median, outcomes in _stream_stats(probes):
            label = _label(proto, dst, port)
            sel = (fp["protocol"] == proto) & (fp["destination"] == dst)
            sel_v = (pv["protocol"] == proto) & (pv["destination"] == dst)
            streams.append(dict(
                stream=label, sources=n_sources, probes=n_probes, loss_pct=loss_pct, rtt_median_us=rtt_median,
                tool=", ".join(sorted(set(fp.loc[sel, "tool"]))), payload=", ".join(sorted(set(pv.loc[sel_v, "verdict"]))),
                outcomes=outcomes))
            qq = q[(q["protocol"] == proto) & (q["destination"] == dst)]
            for status, what in (("no_reply", "100 % loss (no reply at all)"), ("no_probes", "no probes at all")):
                n = int((qq["status"] == status).sum())
                if n:
                    first = qq.loc[qq["status"] == status, "period_start_ns"].min()
                    ranked[status].append(f"{label}: {n} period(s) of {cap.period_s} s with {what}, the first at "
                                          f"{_utc(first)}")
        for r in _rows(cap.gaps, "protocol", "source", "length_s", "start_ns", "kind"):
            ranked["gaps"].append(f"{r.protocol} from {r.source}: no probes for {r.length_s:.0f} s from {_utc(r.start_ns)}"
                                  + (" to the end of the capture" if r.kind == "trailing" else ""))
        for r in _rows(cap.balance, "protocol", "destination", "balanced", "p_value"):
            if r.balanced is not pd.NA and not r.balanced:  # <NA> (one source) is not an anomaly
                ranked["balance"].append(f"{r.protocol} {r.destination}: sources are not balanced "
                                         f"(chi-square p={r.p_value:.2g})")
        for r in _rows(cap.size_changes(), "protocol", "destination", "from_size", "to_size", "ts_ns"):
            ranked["sizes"].append(f"{r.protocol} {r.destination}: probe size {r.from_size} → {r.to_size} bytes at "
                                   f"{_utc(r.ts_ns)}")
        ranked["cloudwatch"] = _cloudwatch_findings(cap)
    for k in ("errors", "mtu"):
        ranked.setdefault(k, [])
    if len(probes):
        q = cap.probe_periods
        errs = q[_equals(q["status"], "errors")]
        for key, g in (errs.groupby(list(STREAM_KEYS), observed=True, dropna=False) if len(errs) else ()):
            ranked["errors"].append(f"{_label(*key)}: {len(g)} period(s) in which every probe drew an ICMP error "
                                    f"instead of a reply ({g['reporters'].iloc[0]}), the first at "
                                    f"{_utc(g['period_start_ns'].min())}")
        for r in _rows(cap.mtu, "protocol", "destination", "port", "path", "evidence"):
            if r.path in ("black_hole", "frag_needed", "packet_too_big"):
                ranked["mtu"].append(f"{_label(r.protocol, r.destination, r.port)}: path MTU — {r.evidence}")
    anomalies = [a for k in ("cloudwatch", "no_reply", "errors", "no_probes", "gaps", "balance", "sizes", "mtu")
                 for a in ranked[k]]
    audit = cap.cloudwatch_audit if len(probes) else None
    return dict(capture=cap.name, packets=cap.packet_count, probes=len(probes), chunked=bool(cap.is_chunked),
                forensics=_forensics_lines(cap),
                vantage=probes.attrs.get("vantage"), span_s=(cap.span_ns[1] - cap.span_ns[0]) / 1e9,
                streams=streams, anomalies=anomalies, headline=anomalies[0] if anomalies else None,
                cloudwatch=[p.name for p in cap.cloudwatch_files],
                cloudwatch_status=cap.cloudwatch_status() if audit is not None else None,
                notes=cap.capture_notes)
