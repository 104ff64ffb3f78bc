"""Which tool sent a probe stream — Network Monitor or one of the monitoring and scanning tools recorded
for real in the lab (the rules: analysis/signatures.py) — with the evidence that decided it.

Everything is computed from per-stream aggregates over the whole probes table at once (counts, distinct
IP ids, ports and sequence numbers, the most common window, whether source ports step by one, the share
of SYN/ACKs the prober reset); only the sentence of evidence is written per stream.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .._jit import njit
from ..capture.payloads import payloads
from ..schema import FINGERPRINTS, SOURCE_STREAM_KEYS
from .payload import (
    _group_ids,
    _sorted_order,
    _typed_keys,
    payload_verdicts,
    request_payload_buffer,
)
from .signatures import classify_stream, payload_shape, shape_from_verdict
from .sources import balance_test
from .streams import tracer_ports

__all__ = ["fingerprint", "fingerprint_from", "request_columns", "stream_features", "REQUEST_COLUMNS"]

STREAM = SOURCE_STREAM_KEYS
STREAM_LEVEL = ("protocol", "destination", "port")


@njit(nogil=True)
def _one_value(x, lo, hi):  # pragma: no cover - compiled
    """Series.nunique() == 1 over x[lo:hi]: exactly one distinct non-NaN value."""
    seen = False
    v0 = 0.0
    for i in range(lo, hi):
        v = x[i]
        if np.isnan(v):
            continue
        if not seen:
            seen = True
            v0 = v
        elif v != v0:
            return False
    return seen


@njit(nogil=True)
def _aggregates(bounds, ip_id, win, sport, seq, size, answered, reset, resent,
                one_ipid, one_sport, one_seq, win_mode, size_median, step_one, n_resent, n_ans, n_reset
                ):  # pragma: no cover - compiled
    """Per stream (rows sorted by stream, probe order within): the features the classification uses."""
    for g in range(bounds.shape[0] - 1):
        lo, hi = bounds[g], bounds[g + 1]
        one_ipid[g] = _one_value(ip_id, lo, hi)
        one_sport[g] = _one_value(sport, lo, hi)
        one_seq[g] = _one_value(seq, lo, hi)
        # most frequent window, ties to the smallest (Series.mode().iloc[0])
        w = win[lo:hi]
        w = np.sort(w[~np.isnan(w)])
        best, best_n, i = -1.0, 0, 0
        while i < w.size:
            j = i
            while j < w.size and w[j] == w[i]:
                j += 1
            if j - i > best_n:
                best, best_n = w[i], j - i
            i = j
        win_mode[g] = best
        z = size[lo:hi]
        z = np.sort(z[~np.isnan(z)])
        if z.size == 0:
            size_median[g] = np.nan
        elif z.size % 2:
            size_median[g] = z[z.size // 2]
        else:
            size_median[g] = (z[z.size // 2 - 1] + z[z.size // 2]) / 2
        # source ports step by one (mod 2^16) from probe to probe, NaN ports skipped; needs 3 or more
        k = 0
        ok = True
        prev = 0.0
        for i in range(lo, hi):
            v = sport[i]
            if np.isnan(v):
                continue
            if k and (v - prev) % 65536 != 1:
                ok = False
            prev = v
            k += 1
        step_one[g] = ok and k > 2
        r = 0
        a = 0
        ar = 0
        for i in range(lo, hi):
            r += resent[i]
            if answered[i]:
                a += 1
                if reset[i]:
                    ar += 1
        n_resent[g] = r
        n_ans[g] = a
        n_reset[g] = ar


def _take_float(col: pd.Series, rows: np.ndarray) -> np.ndarray:
    """col[rows] as float64 with NaN for <NA>, taking before converting."""
    return col.array.take(rows).to_numpy("float64", na_value=np.nan)


REQUEST_COLUMNS = ("ip_id", "tcp_win", "sport", "ttl", "tcp_hdr_len", "payload_caplen")


def request_columns(packets: pd.DataFrame, probes: pd.DataFrame) -> pd.DataFrame:
    """The request packet's header fields the rules read, for each probe (rows like ``probes``)."""
    rows = probes["request_frame"].to_numpy("int64") - 1
    return pd.DataFrame({c: packets[c].array.take(rows) for c in REQUEST_COLUMNS})


def _header_aggregates(req: pd.DataFrame, bounds: np.ndarray) -> dict:
    """TTL range, IP-id jumps, TCP header length and payload length per stream (rows sorted by stream):
    what tells tracers, scanners and the ping family apart. Vectorised with reduceat over the bounds."""
    G = bounds.size - 1
    if G == 0 or len(req) == 0:
        z = np.zeros(G)
        return dict(ttl_min=z, ttl_max=z, ttls=z, id_step_max=z, ip_id_first=z, thl=z, plen=z)
    starts = bounds[:-1]
    rows = np.arange(len(req))
    ttl = _take_float(req["ttl"], rows)
    ipid = _take_float(req["ip_id"], rows)
    thl = _take_float(req["tcp_hdr_len"], rows)
    plen = _take_float(req["payload_caplen"], rows)
    t = np.where(np.isnan(ttl), np.inf, ttl)
    ttl_min = np.minimum.reduceat(t, starts)
    ttl_max = np.maximum.reduceat(np.where(np.isnan(ttl), -np.inf, ttl), starts)
    gid = np.repeat(np.arange(G), np.diff(bounds))          # distinct TTLs: count changes in (stream, ttl) order
    o = np.lexsort((t, gid))
    new = np.ones(o.size, bool)
    new[1:] = (gid[o][1:] != gid[o][:-1]) | (t[o][1:] != t[o][:-1])
    ttls = np.bincount(gid[o][new & np.isfinite(t[o])], minlength=G)
    step = np.abs(np.diff(ipid, prepend=np.nan))
    step[starts] = np.nan
    id_step_max = np.fmax.reduceat(np.where(np.isnan(step), -1.0, step), starts)
    thl_max = np.fmax.reduceat(np.where(np.isnan(thl), -1.0, thl), starts)   # SYN headers agree within a tool
    plen_max = np.fmax.reduceat(np.where(np.isnan(plen), 0.0, plen), starts)
    return dict(ttl_min=ttl_min, ttl_max=ttl_max, ttls=ttls, id_step_max=id_step_max, ip_id_first=ipid[starts],
                thl=np.where(thl_max < 0, np.nan, thl_max), plen=plen_max)


def stream_features(probes: pd.DataFrame, req: pd.DataFrame, by=STREAM) -> tuple[pd.DataFrame, np.ndarray]:
    """Per stream the wire features the classification uses (one row per group of ``by``, groupby's
    order), and each probe's stream number. ``req``: :func:`request_columns`."""
    by = list(by)
    gid, keys = _group_ids(probes, by)
    G = len(keys)
    order = _sorted_order(gid, G)
    bounds = np.searchsorted(gid[order], np.arange(G + 1)).astype(np.int64)
    req = req.iloc[order].reset_index(drop=True)
    rows = np.arange(len(req))
    pcol = lambda c: probes[c].array.take(order)
    out = {k: np.zeros(G, bool) for k in ("one_ipid", "one_sport", "one_seq", "step_one")}
    out |= {k: np.zeros(G, np.float64) for k in ("win_mode", "size_median")}
    out |= {k: np.zeros(G, np.int64) for k in ("n_resent", "n_ans", "n_reset")}
    _aggregates(bounds, _take_float(req["ip_id"], rows), _take_float(req["tcp_win"], rows),
                _take_float(req["sport"], rows), pcol("seq").to_numpy("float64", na_value=np.nan),
                pcol("size").to_numpy("float64", na_value=np.nan), (pcol("outcome") == "answered").astype(bool),
                ~np.asarray(pd.isna(pcol("reset_frame"))), np.asarray(pcol("retransmits"), np.int64),
                out["one_ipid"], out["one_sport"], out["one_seq"], out["win_mode"], out["size_median"],
                out["step_one"], out["n_resent"], out["n_ans"], out["n_reset"])
    with np.errstate(invalid="ignore", divide="ignore"):
        reset_share = np.where(out["n_ans"] > 0, out["n_reset"] / np.maximum(out["n_ans"], 1), np.nan)
    feats = keys.assign(
        probes=np.diff(bounds), one_ipid=out["one_ipid"], size=out["size_median"], win=out["win_mode"],
        sport_step_one=out["step_one"], one_sport=out["one_sport"], one_seq=out["one_seq"],
        resent=out["n_resent"], answered=out["n_ans"], reset_share=reset_share,
        first_request=np.asarray(pcol("request_frame"), np.int64)[bounds[:-1]] if G else np.zeros(0, np.int64),
        **_header_aggregates(req, bounds))
    return feats, gid


def _key_strings(df: pd.DataFrame, by) -> list[str]:
    return ["|".join("NA" if pd.isna(x) else str(x) for x in t) for t in df[list(by)].astype(object).itertuples(index=False)]


def fingerprint(packets: pd.DataFrame, probes: pd.DataFrame, verdicts: pd.DataFrame | None = None,
                balance: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per source stream (schema.FINGERPRINTS): ``tool`` and ``evidence``.

    ``verdicts`` (``payload_verdicts(probes, ...)`` per source stream) and ``balance``
    (``balance_test(probes)``) are computed when not given; a session passes the ones it holds."""
    if probes.empty:
        return fingerprint_from(probes, pd.DataFrame(), verdicts, balance)
    if verdicts is None:
        verdicts = payload_verdicts(probes, request_payload_buffer(packets, probes), by=STREAM)
    return fingerprint_from(probes, request_columns(packets, probes), verdicts, balance, packets=packets)


def fingerprint_from(probes: pd.DataFrame, req: pd.DataFrame, verdicts: pd.DataFrame | None = None,
                     balance: pd.DataFrame | None = None, packets: pd.DataFrame | None = None) -> pd.DataFrame:
    """:func:`fingerprint` from the probes, their request columns (:func:`request_columns`) and their
    payload verdicts (the chunked and Dask drivers hold these, not the packets table). With ``packets``
    the first request payload of each stream gives its layout; without, the verdict's fill does."""
    cols = [c.name for c in FINGERPRINTS]
    if probes.empty:
        return _typed_keys(pd.DataFrame({c: [] for c in STREAM}), probes).assign(
            probes=pd.Series([], dtype="int64"), tool=pd.Series([], dtype="str"),
            evidence=pd.Series([], dtype="str"))[cols]
    if verdicts is None:
        raise ValueError("fingerprint_from needs the payload verdicts of the probes")
    # a tracer's UDP probes to rising ports are one stream, keyed by the lowest port (streams.tracer_ports)
    port, span = tracer_ports(probes, _take_float(req["ttl"], np.arange(len(req))) if len(req) else
                              np.full(len(probes), np.nan))
    if (span > 1).any():
        probes = probes.assign(port=pd.array(np.where(port >= 0, port, 0), dtype="UInt16"))
        probes.loc[port < 0, "port"] = pd.NA
        verdicts = payload_verdicts(probes, request_payload_buffer(packets, probes), by=STREAM) \
            if packets is not None else verdicts
    if balance is None:
        balance = balance_test(probes)
    feats, gid = stream_features(probes, req)
    spans = np.zeros(len(feats), np.int64)
    if len(gid):
        np.maximum.at(spans, gid, span)
    vk = dict(zip(_key_strings(verdicts, STREAM), range(len(verdicts))))
    v_rows = np.array([vk[k] for k in _key_strings(feats, STREAM)], np.int64)
    v = verdicts.iloc[v_rows].reset_index(drop=True)
    bk = dict(zip(_key_strings(balance, STREAM_LEVEL), range(len(balance))))
    b_rows = [bk.get(k, -1) for k in _key_strings(feats, STREAM_LEVEL)]
    sources = np.array([int(balance["sources"].iloc[i]) if i >= 0 else 1 for i in b_rows])
    bal = balance["balanced"]
    even = np.array([bool(bal.iloc[i]) if i >= 0 and not pd.isna(bal.iloc[i]) else False for i in b_rows])
    shapes = _stream_shapes(feats, v, packets)
    tools, whys = [], []
    for i, f in enumerate(feats.itertuples(index=False)):     # per stream (few): the rules and their evidence
        verdict = str(v["verdict"].iloc[i])
        n = int(f.probes)
        row = dict(protocol=str(f.protocol), shape=shapes[i][0], shape_evidence=shapes[i][1], probes=n,
                   verdict=verdict, payloads=1 if verdict == "repeated-random" else n, ttl_min=f.ttl_min,
                   ttl_max=f.ttl_max, ttls=f.ttls, id_step_max=f.id_step_max, ip_ids=1 if f.one_ipid else n,
                   ip_id_first=f.ip_id_first, win=f.win, thl=f.thl, sport_step=1 if f.sport_step_one else 0,
                   sports=1 if f.one_sport else n, seqs=1 if f.one_seq else n, resent=int(f.resent), plen=f.plen,
                   size=f.size, reset=f.reset_share, ports=int(spans[i]), id_step_one=bool(f.id_step_max == 1))
        tool, why = classify_stream(row, int(sources[i]), bool(even[i]))
        tools.append(tool)
        whys.append(why)
    out = _typed_keys(feats[list(STREAM)], probes).assign(probes=feats["probes"].astype("int64"),
                                                          tool=pd.Series(tools, dtype="str"),
                                                          evidence=pd.Series(whys, dtype="str"))
    return out[cols]



def _stream_shapes(feats: pd.DataFrame, verdicts: pd.DataFrame, packets: pd.DataFrame | None) -> list:
    """(shape, evidence) of each stream's payload: from its first request's bytes when the packets table
    is at hand (one payload per stream), else from the payload verdict's fill."""
    if packets is None or not len(feats):
        return [shape_from_verdict(verdicts.iloc[i]) for i in range(len(feats))]
    first = packets.iloc[feats["first_request"].to_numpy("int64") - 1]
    first.attrs = packets.attrs
    heads = payloads(first).tolist()
    secs = first["ts_ns"].to_numpy("float64", na_value=np.nan) / 1e9
    out = []
    for i in range(len(feats)):     # a payload without a known layout is described by its verdict, as the
        sh = payload_shape(heads[i], secs[i])          # chunked and Dask drivers (no payload bytes) describe it
        out.append(shape_from_verdict(verdicts.iloc[i]) if sh[0] == "opaque" else sh)
    return out
