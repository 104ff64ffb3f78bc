"""Many captures: read rotated files into one table, convert them to a partitioned Parquet dataset, and
run the analyses over that dataset with Dask, in bounded memory, with the in-memory path's numbers.

- ``read_captures(glob or paths)``: one packets table with a ``capture`` column, files read in parallel
  (the compiled kernels release the GIL), one progress bar; ``frame`` counts across the files in order.
- ``convert(captures, out_dir)``: one Parquet file per capture under ``out_dir/capture=NAME/``, each
  written to a hidden temporary file and renamed into place, with a manifest; a crash leaves the
  dataset readable (readers skip hidden files) and re-running converts only what is missing.
- ``dataset_probes(out_dir, scheduler=None)``: probe matching per file on Dask workers, then the probes
  a file could not judge (their reply is in the next file) are matched against the next files'
  orphan replies, so a probe split by rotation counts as it does in memory. UDP has no identity in its
  replies but the 4-tuple (a reply or port unreachable takes the seq of the latest request on it, and
  the 4-tuple's first sender is its client): each file is matched on a window starting with the
  previous file's UDP datagrams and destination unreachables of the last 121 s, and the UDP probes of
  that tail, judged there, replace the previous file's. ``scheduler`` is None
  (a LocalCluster), "synchronous", or a ``distributed`` scheduler address ("tcp://host:8786").
"""
from __future__ import annotations

import glob as _glob
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from .capture import read_capture
from .errors import ProbekitError
from .schema import packets_for_storage, packets_from_storage

__all__ = ["read_captures", "convert", "dataset_files", "dataset_probes"]

MANIFEST = "_probekit_manifest.json"


_COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz", ".zst", ".zstd", ".lz4")


def _rotation_key(path: str):
    """Sort key putting rotated captures in the order they were written: numbers compare as numbers
    (``cap``, ``cap1``, ``cap2``, ..., ``cap10`` as ``tcpdump -C`` names them) and a compression
    suffix (``tcpdump -z gzip``) does not count."""
    import re
    name = path
    for suf in _COMPRESSED_SUFFIXES:
        if name.endswith(suf):
            name = name[:-len(suf)]
            break
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", name) if t]


def _expand(paths) -> list[Path]:
    if isinstance(paths, (str, os.PathLike)):
        p = str(paths)
        found = sorted(_glob.glob(p), key=_rotation_key) if any(ch in p for ch in "*?[") else [p]
    else:
        found = [str(x) for x in paths]
    if not found:
        raise ProbekitError(f"{paths}: no capture files match")
    return [Path(f) for f in found]


def _combine(tables: list[pd.DataFrame], names: list[str]) -> pd.DataFrame:
    from pandas.api.types import union_categoricals
    if not tables:
        raise ProbekitError("no captures to combine")
    cats = union_categoricals([t["src"] for t in tables] + [t["dst"] for t in tables], ignore_order=True).categories
    v4 = sorted((c for c in cats if ":" not in c), key=lambda a: tuple(int(x) for x in a.split(".")))
    v6 = sorted((c for c in cats if ":" in c), key=lambda a: __import__("ipaddress").ip_address(a).packed)
    dtype = pd.CategoricalDtype(v4 + v6)
    parts = []
    base = 0
    for t, name in zip(tables, names):
        t = t.copy()
        t["src"] = t["src"].astype(dtype)
        t["dst"] = t["dst"].astype(dtype)
        t["frame"] = t["frame"] + base
        base += len(t)
        t.insert(0, "capture", name)
        parts.append(t)
    df = pd.concat(parts, ignore_index=True)
    df["capture"] = pd.Categorical(df["capture"], categories=names)
    return df


def read_captures(paths, *, workers: int | None = None, progress: bool | None = None, backend: str = "fast",
                  strict: bool = False) -> pd.DataFrame:
    """Read many captures into one packets table (plus a leading ``capture`` column).

    paths: a glob or a list. Compressed rotations (``tcpdump -G/-C ... -z gzip``, also bzip2, xz, zstd,
    lz4) are read as they are; a glob sorts numbers as numbers and ignores the compression suffix, so
    ``cap``, ``cap1.gz``, ..., ``cap10.gz`` come in the order tcpdump wrote them."""
    files = _expand(paths)
    names = [f.name for f in files]
    if len(set(names)) != len(names):
        names = [str(f) for f in files]
    bar = None
    if progress or (progress is None and sys.stderr.isatty() and len(files) > 1):
        from tqdm import tqdm
        bar = tqdm(total=len(files), unit="file", desc="reading", leave=False)

    def one(f):
        t = read_capture(f, backend=backend, strict=strict, progress=False)
        if bar is not None:
            bar.update(1)
        return t
    try:
        with ThreadPoolExecutor(max_workers=workers or min(len(files), os.cpu_count() or 1)) as ex:
            tables = list(ex.map(one, files))
    finally:
        if bar is not None:
            bar.close()
    df = _combine(tables, names)
    df.attrs.update(paths={n: str(f) for n, f in zip(names, files)}, format="many",
                    notes=[n for t in tables for n in t.attrs.get("notes", [])])
    return df


# ------------------------------------------------------------------------------------- convert
def convert(captures, out_dir, *, progress: bool | None = None) -> dict:
    """Append captures to a Parquet dataset, one file per capture, safely; returns what was done."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    files = _expand(captures)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    man_path = out / MANIFEST
    manifest = json.loads(man_path.read_text()) if man_path.exists() else {}
    done, skipped = [], []
    for f in files:
        st = f.stat()
        key = f.name
        part = out / f"capture={key}"
        target = part / "part-0.parquet"
        entry = manifest.get(key)
        if entry and entry["size"] == st.st_size and entry["mtime_ns"] == st.st_mtime_ns and target.exists():
            skipped.append(key)
            continue
        df = read_capture(f, progress=progress)
        df.attrs = {}
        part.mkdir(parents=True, exist_ok=True)
        tmp = part / f".tmp-{os.getpid()}.parquet"
        table = pa.Table.from_pandas(packets_for_storage(df), preserve_index=False)
        table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                               b"probekit.path": str(f.resolve()).encode()})
        pq.write_table(table, tmp)
        os.replace(tmp, target)
        manifest[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "rows": len(df), "path": str(f.resolve())}
        tmp_man = out / f".{MANIFEST}.tmp"
        tmp_man.write_text(json.dumps(manifest, indent=1, sort_keys=True))
        os.replace(tmp_man, man_path)
        done.append(key)
    return {"converted": done, "skipped": skipped, "dataset": str(out)}


def dataset_files(out_dir) -> list[Path]:
    """The dataset's Parquet files in capture order (as the manifest lists them, then by name)."""
    out = Path(out_dir)
    files = sorted(p for p in out.glob("capture=*/part-0.parquet"))
    if not files:
        raise ProbekitError(f"{out}: no converted captures (probekit convert CAPTURES -o {out})")
    return files


def _load_partition(path: Path) -> pd.DataFrame:
    import pyarrow.parquet as pq
    t = pq.read_table(path)
    df = packets_from_storage(t.to_pandas())
    if "capture" in df.columns:
        df = df.drop(columns=["capture"])
    for c in ("src", "dst"):
        df[c] = df[c].astype("category")
    from pandas.api.types import union_categoricals
    cats = union_categoricals([df["src"], df["dst"]]).categories
    df["src"] = df["src"].cat.set_categories(cats)
    df["dst"] = df["dst"].cat.set_categories(cats)
    df.attrs["path"] = (t.schema.metadata or {}).get(b"probekit.path", b"").decode() or None
    return df


_HOLD_NS = int((120.0 + 1.0) * 1e9)
"""How far back into the previous file a file's UDP window reaches: match_probes' default reply window
(120 s) and 1 s, as the chunked driver's hold."""


def _udp_tail(prev: str | None, first_ns: int | None) -> pd.DataFrame | None:
    """The previous file's UDP datagrams (and ICMP/ICMPv6 destination unreachables: the port unreachables
    they drew there) of the last ``_HOLD_NS`` before ``first_ns`` (few rows): a UDP reply or the
    destination's port unreachable at the top of a file meets its request there, and the side that sent a
    4-tuple's first datagram stays its client (protocol.udp_flow_roles) across the seam."""
    if prev is None or first_ns is None:
        return None
    t = _load_partition(Path(prev))
    ts = t["ts_ns"].to_numpy("int64", na_value=np.iinfo(np.int64).min)
    proto = t["ip_proto"].to_numpy("int64", na_value=-1)
    typ = t["icmp_type"].to_numpy("int64", na_value=-1)
    unreachable = ((proto == 1) & (typ == 3)) | ((proto == 58) & (typ == 1))   # the refusals they drew
    m = ((proto == 17) | unreachable) & (ts >= first_ns - _HOLD_NS) & (ts <= first_ns)
    return t[m] if m.any() else None


def _prepend(carry: pd.DataFrame, packets: pd.DataFrame) -> pd.DataFrame:
    """carry then packets as one table, addresses on one category list, frames numbered 1.. (the window's)."""
    from pandas.api.types import union_categoricals
    cats = union_categoricals([carry["src"], carry["dst"], packets["src"], packets["dst"]]).categories
    parts = [t.assign(src=t["src"].cat.set_categories(cats), dst=t["dst"].cat.set_categories(cats))
             for t in (carry, packets)]
    out = pd.concat(parts, ignore_index=True)
    out["frame"] = np.arange(1, len(out) + 1, dtype=out["frame"].dtype)
    out.attrs = packets.attrs
    return out


def _partition_probes(path: str, prev: str | None, timeout_s: float, vantage: str):
    """One file's probes and orphan replies; with ``prev`` (the file before it), matched on a window that
    starts with the previous file's UDP tail (``_udp_tail``). The UDP probes whose request is in that tail
    are returned apart (their outcome as this file's packets decide it: they replace the previous file's),
    frames in the previous file's numbering; what this file's own rows give keeps this file's numbering."""
    from .analysis.match import match_probes
    packets = _load_partition(Path(path))
    ts = packets["ts_ns"].dropna()
    carry = _udp_tail(prev, int(ts.min()) if len(ts) else None)
    n_carry = 0
    if carry is not None:
        orig = np.concatenate([carry["frame"].to_numpy("int64"), packets["frame"].to_numpy("int64")])
        n_carry = len(carry)
        packets = _prepend(carry, packets)
    probes, orphans = match_probes(packets, timeout_s=timeout_s, vantage=vantage, keep_orphans=True)
    capture = Path(path).parent.name.split("=", 1)[1]
    keep = probes.assign(source=probes["source"].astype(str), destination=probes["destination"].astype(str),
                         capture=capture)
    carried = keep.iloc[:0]
    if n_carry:
        for c in ("request_frame", "reply_frame", "reset_frame"):   # window frames -> each file's own
            na = keep[c].isna().to_numpy()
            f = keep[c].to_numpy("int64", na_value=1)
            keep[c] = pd.array(orig[f - 1], dtype=keep[c].dtype)
            if na.any():
                keep.loc[na, c] = pd.NA
        req = probes["request_frame"].to_numpy("int64")
        old = req <= n_carry
        carried = keep[old & (probes["protocol"] == "udp").to_numpy()].reset_index(drop=True)
        keep = keep[~old].reset_index(drop=True)
        of = orphans["frame"].to_numpy("int64")
        orphans = orphans[of > n_carry].assign(frame=orig[of[of > n_carry] - 1]).reset_index(drop=True)
    return keep, orphans, probes.attrs.get("vantage"), carried


def dataset_probes(out_dir, *, timeout_s: float = 1.0, vantage: str = "auto", scheduler=None) -> pd.DataFrame:
    """The probes table of a whole dataset, computed per file on Dask and stitched across files."""
    import dask
    files = [str(f) for f in dataset_files(out_dir)]
    prevs = [None, *files[:-1]]
    tasks = [dask.delayed(_partition_probes)(f, p, timeout_s, vantage) for f, p in zip(files, prevs)]
    if scheduler == "synchronous":
        results = dask.compute(*tasks, scheduler="synchronous")
    else:
        from distributed import Client, LocalCluster
        if scheduler is None:
            with LocalCluster(n_workers=min(len(files), os.cpu_count() or 1), threads_per_worker=1,
                              processes=True, dashboard_address=None) as cluster, Client(cluster) as client:
                results = _gather_as_done(client, files, prevs, timeout_s, vantage)
        else:
            with Client(scheduler) as client:
                results = _gather_as_done(client, files, prevs, timeout_s, vantage)
    probes = [_replace_carried(r[0], results[i + 1][3] if i + 1 < len(results) else None)
              for i, r in enumerate(results)]
    orphans = [r[1].assign(file_index=i) for i, r in enumerate(results)]
    probes = _stitch(probes, orphans, timeout_s)
    probes.attrs.update(vantage=results[0][2] if results else vantage, timeout_s=timeout_s,
                        capture_end_ns=int(probes["ts_ns"].max()) if len(probes) else 0)
    return probes


def _replace_carried(own: pd.DataFrame, carried: pd.DataFrame | None) -> pd.DataFrame:
    """A file's probes with its UDP probes re-judged by the next file's window (same request frame)."""
    if carried is None or not len(carried):
        return own
    udp = (own["protocol"] == "udp").to_numpy()
    frames = own["request_frame"].to_numpy("int64")
    by_frame = dict(zip(carried["request_frame"].to_numpy("int64").tolist(), range(len(carried))))
    rows = [(i, by_frame[f]) for i, f in enumerate(frames.tolist()) if udp[i] and f in by_frame]
    if not rows:
        return own
    out = own.copy()
    mine, theirs = (np.array(x, np.int64) for x in zip(*rows))
    new = carried.iloc[theirs].assign(capture=own["capture"].iloc[mine].to_numpy())
    new.index = out.index[mine]
    for c in out.columns:
        out.loc[new.index, c] = new[c]
    return out


def _gather_as_done(client, files, prevs, timeout_s, vantage) -> list:
    """Collect each file's result as soon as it is done and release it on the worker, so worker memory
    holds one partition at a time, not the whole dataset's results."""
    from distributed import as_completed
    futures = client.map(_partition_probes, files, prevs, timeout_s=timeout_s, vantage=vantage, pure=False)
    index = {f.key: i for i, f in enumerate(futures)}
    results = [None] * len(files)
    for fut in as_completed(futures):
        results[index[fut.key]] = fut.result()
        fut.release()
    return results


def _stitch(parts: list[pd.DataFrame], orphans: list[pd.DataFrame], timeout_s: float) -> pd.DataFrame:
    """Give each file's unjudged probes ('unknown': the file ended before their timeout) the first orphan
    reply with their identity in a later file; judge them as the in-memory path does (the rules:
    probekit.protocol). Loops over the unjudged probes only: those sent less than the timeout before a
    file's end."""
    from .protocol import ECHO_REPLY, RST_ACK, classify_outcome, rst_ack_accepts, syn_data_len
    from .schema import OUTCOMES
    timeout_ns = int(timeout_s * 1e9)
    allp = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if allp.empty:
        return allp
    end_ns = int(allp["ts_ns"].max())
    orph = pd.concat(orphans, ignore_index=True) if orphans else pd.DataFrame()
    file_of = np.repeat(np.arange(len(parts)), [len(p) for p in parts])
    allp["_file"] = file_of
    unknown = allp.index[allp["outcome"] == "unknown"]
    if len(unknown) and len(orph):
        o = orph.sort_values("ts_ns", kind="stable")
        for i in unknown:
            r = allp.loc[i]
            proto = str(r["protocol"])
            m = (o["protocol"] == proto) & (o["source"] == r["source"]) & (o["destination"] == r["destination"]) \
                & (o["file_index"] > r["_file"]) & (o["ts_ns"] >= r["ts_ns"])
            if proto == "tcp":
                m &= (o["ident"] == int(r["ident"])) & (o["port"] == int(r["port"]))
                exact = m & (o["seq"] == int(r["seq"])) & (o["kind"] != RST_ACK)
                data = syn_data_len(np.nan if pd.isna(r["size"]) else float(r["size"]))
                ack = o["ack_raw"].to_numpy("float64")
                accepts = rst_ack_accepts(np.nan_to_num(ack, nan=-1).astype(np.int64), int(r["seq"]), data)
                rst = m & (o["kind"] == RST_ACK) & ~np.isnan(ack) & accepts
                m = exact | rst
            else:
                m &= (o["ident"] == int(r["ident"])) & (o["seq"] == int(r["seq"]))
            hit = o[m]
            if hit.empty:
                continue
            h = hit.iloc[0]
            delay = int(h["ts_ns"]) - int(r["ts_ns"])
            kind = classify_outcome(int(h["kind"]) if not pd.isna(h["kind"]) else ECHO_REPLY, delay, timeout_ns)
            allp.at[i, "outcome"] = kind
            allp.at[i, "reply_delay_us"] = delay / 1e3
            allp.at[i, "rtt_us"] = np.nan if kind == "late" else delay / 1e3
            o = o.drop(index=h.name)
    # what is still unknown: judge against the end of the whole dataset, as one capture would be
    still = (allp["outcome"] == "unknown").to_numpy()
    ts = allp.loc[still, "ts_ns"].to_numpy(np.int64)
    allp.loc[still, "outcome"] = classify_outcome(np.full(ts.size, -1), np.full(ts.size, np.nan), timeout_ns,
                                                  unjudged=ts + timeout_ns > end_ns)
    allp["outcome"] = pd.Categorical(allp["outcome"].astype(str), categories=list(OUTCOMES))
    for c in ("source", "destination"):
        allp[c] = allp[c].astype("category")
    return allp.drop(columns=["_file"]).sort_values(["ts_ns"], kind="stable").reset_index(drop=True)
