"""Every analysis on a Parquet dataset of rotated captures (``probekit.convert``) through Dask, with the
in-memory numbers of ``read_captures`` on the same files.

On the workers, per file: probe matching on a window of the files around it (the packets of the
``resend_window_s`` before its first packet and of the ``max(reply_window_s, timeout_s, 60 s)`` after the
next file's first packet: the chunked driver's carry and hold), keeping the probes whose request is in
this file, with frame numbers counted across the dataset as ``read_captures`` counts them; the request
packet's columns of each probe; the file's TCP connections (``tcp_connections``, the per-file function)
and the hashes of its 4-tuples. In the client: the analyses of the probes table (periods, timing, gaps,
sources, size changes), payload verdicts (request bytes read back from the original captures through
the packets accessor, piece by piece), fingerprints, and the connections: a 4-tuple seen in two or more
files is one run; its packets from those files are fetched from the workers and ``tcp_connections`` runs
on them together, replacing the per-file rows, so a connection cut by a rotation is one connection.
Memory: a worker holds a window of a few files; the client holds the probes table.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .. import scale
from ..analysis import metrics, tcp
from ..schema import SOURCE_STREAM_KEYS, STREAM_KEYS

__all__ = ["DATASET_ANALYSES", "dataset_analyses"]

DATASET_ANALYSES = ("probes", "periods", "probe_periods", "timing", "gaps", "shares", "balance", "alternation",
                    "source_quality", "source_rate", "size_changes", "payload_verdicts", "fingerprints",
                    "connections")
_REQ = ("ip_id", "tcp_win", "sport", "ttl", "tcp_hdr_len", "payload_off", "payload_caplen")
_TCP_COLS = ("frame", "ts_ns", "caplen", "l3", "src", "dst", "ip_proto", "ip_len", "ip_hdr_len", "ip_mf", "frag_offset",
             "icmp_type", "icmp_code", "sport", "dport", "tcp_flags", "tcp_seq", "tcp_ack", "tcp_win", "tcp_hdr_len",
             "payload_len", "payload_off", "payload_caplen", "offload", "tunnel", "outer_src", "outer_dst", "tunnel_id")
"""The packets-table columns the connection table reads (Zeek's state machine and its checksum check)."""


def _tcp_keys(packets: pd.DataFrame):
    """Row mask of TCP packets and a 64-bit hash of each one's unordered 4-tuple (as text)."""
    m = ((packets["ip_proto"] == 6).fillna(False) & packets["tcp_flags"].notna()).to_numpy()
    t = packets[m]
    a = t["src"].astype(str) + "|" + t["sport"].astype(str)
    b = t["dst"].astype(str) + "|" + t["dport"].astype(str)
    lo = a.where(a <= b, b)
    hi = b.where(a <= b, a)
    h = pd.util.hash_pandas_object(lo + "#" + hi, index=False).to_numpy(np.uint64)
    return m, h


def _file_info(path: str) -> dict:
    """Rows, first and last timestamp and original capture path of one Parquet file (one column read)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    t = pq.read_table(path, columns=["ts_ns"])
    ts = t.column("ts_ns")
    lo, hi = pc.min(ts).as_py(), pc.max(ts).as_py()
    meta = pq.read_schema(path).metadata or {}
    return dict(rows=t.num_rows, lo=lo, hi=hi, path=meta.get(b"probekit.path", b"").decode() or None)


def _window(files: list[str], infos: list[dict], i: int, timeout_s: float, vantage: str, resend_window_s: float,
            reply_window_s: float, want_conns: bool):
    """File i on a worker: its probes (requests from its first packet to the next file's), matched on a
    window of the files around it (the carry before, the hold after: as the chunked driver's), frames
    numbered across the dataset; the request columns; the file's connections and 4-tuple hashes."""
    from ..analysis.match import match_probes
    from .chunked import _concat_many
    hold_ns = int((max(reply_window_s, timeout_s, 60.0) + 1.0) * 1e9)
    carry_ns = int((resend_window_s + 1.0) * 1e9)
    base = np.concatenate([[0], np.cumsum([f["rows"] for f in infos])])
    lo = infos[i]["lo"]
    nxt = next((infos[j]["lo"] for j in range(i + 1, len(infos)) if infos[j]["lo"] is not None), None)
    use = [i]
    j = i - 1
    while j >= 0 and lo is not None and (infos[j]["hi"] is None or infos[j]["hi"] >= lo - carry_ns):
        use.insert(0, j)
        j -= 1
    j = i + 1
    end = infos[i]["hi"]
    while j < len(infos) and nxt is not None and (end is None or end < nxt + hold_ns):
        use.append(j)
        end = infos[j]["hi"] if end is None else max(end, infos[j]["hi"] or end)
        j += 1
    tables = {}
    for k in use:
        t = scale._load_partition(Path(files[k]))
        t["frame"] = t["frame"] + int(base[k])
        tables[k] = t
    window_parts = []
    for k in use:           # neighbours only for the time the window needs
        t = tables[k]
        if k != i:
            ts = t["ts_ns"].to_numpy("int64", na_value=np.iinfo(np.int64).max)
            if k < i:
                m = ts >= lo - carry_ns
            else:
                m = (ts < nxt + hold_ns) if nxt is not None else np.ones(len(t), bool)
                m &= ts != np.iinfo(np.int64).max
            t = t[m]
        window_parts.append(t)
    window = _concat_many(window_parts)
    probes = match_probes(window, timeout_s=timeout_s, vantage=vantage, resend_window_s=resend_window_s,
                          reply_window_s=reply_window_s)
    t0 = probes["ts_ns"].to_numpy("int64")
    keep = np.ones(len(probes), bool)
    if i > 0 and lo is not None:
        keep &= t0 >= lo
    if nxt is not None:
        keep &= t0 < nxt
    if lo is None:
        keep &= False
    kept = probes[keep].reset_index(drop=True)
    rows = np.searchsorted(window["frame"].to_numpy("int64"), kept["request_frame"].to_numpy("int64"))
    req = pd.DataFrame({c: window[c].array.take(rows) for c in _REQ})
    conns = keys = None
    if want_conns:
        own = tables[i]
        own = own.assign(frame=own["frame"] - int(base[i]))
        own.attrs = tables[i].attrs
        conns = tcp.tcp_connections(own)
        keys = np.unique(_tcp_keys(own)[1])
    return dict(probes=kept, vantage=probes.attrs.get("vantage"), req=req, conns=conns, keys=keys,
                rows=int(infos[i]["rows"]), path=infos[i]["path"])


def _tcp_packets(path: str, keys: np.ndarray) -> pd.DataFrame:
    """The TCP packets of one file whose 4-tuple hash is in ``keys``."""
    packets = scale._load_partition(Path(path))
    m, h = _tcp_keys(packets)
    rows = np.flatnonzero(m)[np.isin(h, keys)]
    out = packets.iloc[rows][list(_TCP_COLS)].reset_index(drop=True)
    out["src"] = out["src"].astype(str)
    out["dst"] = out["dst"].astype(str)
    return out


class _Runner:
    """Runs functions over files: synchronously, on a LocalCluster, or on a scheduler's cluster."""

    def __init__(self, scheduler, n_files: int):
        self.scheduler = scheduler
        self.n = n_files
        self._stack = []
        self.client = None

    def __enter__(self):
        if self.scheduler == "synchronous":
            return self
        from distributed import Client, LocalCluster
        if self.scheduler is None:
            cluster = LocalCluster(n_workers=min(self.n, os.cpu_count() or 1), threads_per_worker=1, processes=True,
                                   dashboard_address=None)
            self._stack.append(cluster)
            self.client = Client(cluster)
        elif hasattr(self.scheduler, "submit"):
            self.client = self.scheduler
            return self
        else:
            self.client = Client(self.scheduler)
        self._stack.append(self.client)
        return self

    def __exit__(self, *exc):
        for x in reversed(self._stack):
            x.close()

    def map(self, fn, *iterables, **kw) -> list:
        if self.client is None:
            return [fn(*args, **kw) for args in zip(*iterables)]
        from distributed import as_completed
        futures = self.client.map(fn, *iterables, pure=False, **kw)
        index = {f.key: i for i, f in enumerate(futures)}
        out = [None] * len(futures)
        for fut in as_completed(futures):     # one result at a time, released on the worker
            out[index[fut.key]] = fut.result()
            fut.release()
        return out


class _LazyPayloads:
    """Request payload bytes of probes from several original captures, through the packets accessor."""

    def __init__(self, paths: np.ndarray, names: list[str], off: np.ndarray, caplen: np.ndarray):
        self.paths = paths          # capture index per probe
        self.names = names          # capture index -> path
        self.off = off
        self._lengths = np.where(off >= 0, caplen, 0).astype(np.int64)

    def __len__(self):
        return self.off.size

    @property
    def lengths(self):
        return self._lengths

    def piece(self, rows):
        from ..capture.payloads import payload_buffer
        off = self.off[rows]
        t = pd.DataFrame({"capture": pd.Categorical.from_codes(self.paths[rows], categories=[str(i) for i in
                                                                                         range(len(self.names))]),
                          "payload_off": pd.array(np.where(off >= 0, off, 0), dtype="Int64"),
                          "payload_caplen": pd.array(self._lengths[rows].astype(np.int32), dtype="Int32")})
        t.loc[off < 0, "payload_off"] = pd.NA
        t.attrs["paths"] = {str(i): p for i, p in enumerate(self.names)}
        data, offsets = payload_buffer(t)
        return data, offsets, np.arange(len(rows), dtype=np.int64)

    def request_rows(self, rows: np.ndarray, ts_ns: np.ndarray) -> pd.DataFrame:
        """A packets table of these requests' rows (their capture, where their payload bytes are, their
        time): what ``fingerprint_from(packets=)`` reads of them (chunked._fingerprints)."""
        t = pd.DataFrame({"capture": pd.Categorical.from_codes(self.paths[rows], categories=[str(i) for i in
                                                                                         range(len(self.names))]),
                          "payload_off": self.off[rows], "payload_caplen": self._lengths[rows], "ts_ns": ts_ns})
        t.attrs["paths"] = {str(i): p for i, p in enumerate(self.names)}
        return t


def dataset_analyses(out_dir, *, period_s: int = 30, timeout_s: float = 1.0, vantage: str = "auto", scheduler=None,
                     analyses=DATASET_ANALYSES, resend_window_s: float = 30.0, reply_window_s: float = 120.0) -> dict:
    """The tables of ``analyses`` (``Capture`` property names) for a whole dataset, as ``read_captures`` of
    its captures would give them in memory. ``scheduler``: None (a LocalCluster), "synchronous", a
    ``distributed`` scheduler address ("tcp://host:8786") or a Client."""
    files = [str(f) for f in scale.dataset_files(out_dir)]
    want = set(analyses)
    want_conns = "connections" in want
    with _Runner(scheduler, len(files)) as run:
        infos = run.map(_file_info, files)
        parts = run.map(_window, [files] * len(files), [infos] * len(files), range(len(files)), timeout_s=timeout_s,
                        vantage=vantage, resend_window_s=resend_window_s, reply_window_s=reply_window_s,
                        want_conns=want_conns)
        conns = _connections(run, files, parts) if want_conns else None
    base = np.concatenate([[0], np.cumsum([p["rows"] for p in parts])])
    from .chunked import _unify, probe_tables
    probes = _unify([p["probes"] for p in parts])
    req = pd.concat([p["req"] for p in parts], ignore_index=True)
    order = np.lexsort((probes["request_frame"].to_numpy(), probes["ts_ns"].to_numpy()))
    probes = probes.iloc[order].reset_index(drop=True)
    req = req.iloc[order].reset_index(drop=True)
    file_of = (np.searchsorted(base, probes["request_frame"].to_numpy("int64") - 1, side="right") - 1)
    spans = [(f["lo"], f["hi"]) for f in infos if f["lo"] is not None]
    span = (min(a for a, _ in spans), max(b for _, b in spans)) if spans else (0, 0)   # the packets' span
    probes.attrs.update(vantage=parts[0]["vantage"] if parts else vantage, timeout_s=timeout_s,
                        capture_end_ns=span[1])
    out = {"probes": probes}
    if "periods" in want:
        out["periods"] = metrics.period_metrics(probes, period_s, by=SOURCE_STREAM_KEYS)
    if "probe_periods" in want:
        out["probe_periods"] = metrics.period_metrics(probes, period_s, by=STREAM_KEYS)
    lazy = _LazyPayloads(file_of.astype(np.int64), [p["path"] for p in parts],
                         req["payload_off"].to_numpy("int64", na_value=-1),
                         req["payload_caplen"].to_numpy("int64", na_value=0))
    out.update(probe_tables(probes, req, lazy, period_s, span, want))
    if conns is not None:
        out["connections"] = conns
    out["span_ns"] = span
    out["packets"] = int(base[-1])
    return {k: v for k, v in out.items() if k in want or k in ("span_ns", "packets")}


def _connections(run: _Runner, files: list[str], parts: list[dict]) -> pd.DataFrame:
    """Per-file connections; a 4-tuple seen in two files or more is recomputed from all its packets."""
    base = np.concatenate([[0], np.cumsum([p["rows"] for p in parts])])
    tables = []
    for i, p in enumerate(parts):
        c = p["conns"].copy()
        c["first_frame"] = c["first_frame"] + int(base[i])
        tables.append(c)
    # 4-tuple hashes seen in two files or more (tcp_connections has no inactivity timeout: a 4-tuple
    # reused files apart continues its connection in memory too), vectorised over all files' hashes
    K = np.concatenate([p["keys"] for p in parts]) if parts else np.zeros(0, np.uint64)
    F = np.repeat(np.arange(len(parts)), [p["keys"].size for p in parts])
    order = np.lexsort((F, K))
    K, F = K[order], F[order]
    new_key = np.ones(K.size, bool)
    new_key[1:] = K[1:] != K[:-1]
    kid = np.cumsum(new_key) - 1
    nfiles = np.bincount(kid) if kid.size else np.zeros(0, np.int64)
    multi = np.flatnonzero(nfiles >= 2)
    if not multi.size:
        return _finish(tables)
    keys = K[np.flatnonzero(new_key)[multi]]
    in_multi = nfiles[kid] >= 2
    need = {int(i): K[in_multi & (i == F)] for i in np.unique(F[in_multi]).tolist()}
    idx = sorted(need)
    got = run.map(_tcp_packets, [files[i] for i in idx], [need[i] for i in idx])
    names = [Path(f).parent.name.split("=", 1)[1] for f in files]
    pk = []
    for i, t in zip(idx, got):
        t = t.copy()
        t["frame"] = t["frame"] + int(base[i])
        t.insert(0, "capture", names[i])
        pk.append(t)
    allp = pd.concat(pk, ignore_index=True)
    allp["capture"] = pd.Categorical(allp["capture"], categories=names)
    cats = sorted(set(allp["src"]) | set(allp["dst"]))
    allp["src"] = pd.Categorical(allp["src"], categories=cats)
    allp["dst"] = pd.Categorical(allp["dst"], categories=cats)
    allp = allp.sort_values("frame", kind="stable").reset_index(drop=True)
    allp.attrs["paths"] = {n: parts[i]["path"] for i, n in enumerate(names)}
    # tcp_connections keeps each 4-tuple's state on its own: one call recomputes every shared 4-tuple
    for i, t in enumerate(tables):
        tables[i] = t[~np.isin(_conn_hash(t), keys)]
    tables.append(tcp.tcp_connections(allp))
    return _finish(tables)


def _finish(tables: list[pd.DataFrame]) -> pd.DataFrame:
    out = pd.concat(tables, ignore_index=True).sort_values("first_frame", kind="stable").reset_index(drop=True)
    out["conn_state"] = out["conn_state"].astype(str).astype("category")
    return out


def _conn_hash(c: pd.DataFrame) -> np.ndarray:
    a = c["orig_h"].astype(str) + "|" + c["orig_p"].astype(str)
    b = c["resp_h"].astype(str) + "|" + c["resp_p"].astype(str)
    lo = a.where(a <= b, b)
    hi = b.where(a <= b, a)
    return pd.util.hash_pandas_object(lo + "#" + hi, index=False).to_numpy(np.uint64)
