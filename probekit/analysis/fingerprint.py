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

__all__ = ["fingerprint", "fingerprint_from", "request_columns", "request_floats", "stream_features", "REQUEST_COLUMNS"]

STREAM = SOURCE_STREAM_KEYS
STREAM_LEVEL = ("protocol", "destination", "port")


@njit(nogil=True)
def _sorted_finite(x, order, lo, hi, buf):  # pragma: no cover - compiled
    """The non-NaN values of x[order[lo:hi]], sorted (a view of ``buf``)."""
    k = 0
    for i in range(lo, hi):
        v = x[order[i]]
        if not np.isnan(v):
            buf[k] = v
            k += 1
    out = buf[:k]
    out.sort()
    return out


@njit(nogil=True)
def _counted(x, order, lo, hi, counts, seen):  # pragma: no cover - compiled
    """Count the non-NaN values of x[order[lo:hi]] in ``counts`` (indexed by value) when every one is an
    integer in 0..65535 (header fields): returns how many distinct values (listed in ``seen``), or -1
    (counts left clean) when some value is not such an integer."""
    nd = 0
    for i in range(lo, hi):
        v = x[order[i]]
        if np.isnan(v):
            continue
        if not (v >= 0.0 and v < 65536.0) or v != np.floor(v):
            for j in range(nd):
                counts[seen[j]] = 0
            return -1
        c = np.int64(v)
        if counts[c] == 0:
            seen[nd] = c
            nd += 1
        counts[c] += 1
    return nd


@njit(nogil=True)
def _mode_median_distinct(x, order, lo, hi, counts, seen, buf):  # pragma: no cover - compiled
    """(most frequent value with ties to the smallest — Series.mode().iloc[0], -1 without values —, the
    median — NaN without values —, distinct values) of the non-NaN x[order[lo:hi]]: from value counts
    when the values are header-field integers (no sort of the rows), else from a sort."""
    nd = _counted(x, order, lo, hi, counts, seen)
    if nd < 0:
        z = _sorted_finite(x, order, lo, hi, buf)
        best, best_n, i, distinct = -1.0, 0, 0, 0
        while i < z.size:
            j = i
            while j < z.size and z[j] == z[i]:
                j += 1
            if j - i > best_n:
                best, best_n = z[i], j - i
            distinct += 1
            i = j
        if z.size == 0:
            med = np.nan
        elif z.size % 2:
            med = z[z.size // 2]
        else:
            med = (z[z.size // 2 - 1] + z[z.size // 2]) / 2
        return best, med, distinct
    vals = seen[:nd].copy()
    vals.sort()
    best, best_n, total = -1.0, 0, 0
    for j in range(nd):
        c = counts[vals[j]]
        total += c
        if c > best_n:
            best, best_n = np.float64(vals[j]), c
    med = np.nan
    if total:
        lo_k = (total - 1) // 2          # the middle rank(s) of the sorted values
        hi_k = total // 2
        a = b = 0.0
        cum = 0
        for j in range(nd):
            c = counts[vals[j]]
            if cum <= lo_k < cum + c:
                a = np.float64(vals[j])
            if cum <= hi_k < cum + c:
                b = np.float64(vals[j])
                break
            cum += c
        med = a if total % 2 else (a + b) / 2
    for j in range(nd):
        counts[seen[j]] = 0
    return best, med, nd


@njit(nogil=True)
def _one_value(x, order, lo, hi):  # pragma: no cover - compiled
    """Series.nunique() == 1 over x[order[lo:hi]]: exactly one distinct non-NaN value."""
    seen = False
    v0 = 0.0
    for i in range(lo, hi):
        v = x[order[i]]
        if np.isnan(v):
            continue
        if not seen:
            seen = True
            v0 = v
        elif v != v0:
            return False
    return seen


@njit(nogil=True)
def _aggregates(order, bounds, ip_id, win, sport, seq, size, answered, reset, resent, ttl, thl, plen,
                one_ipid, one_sport, one_seq, win_mode, size_median, step_one, n_resent, n_ans, n_reset,
                ttl_min, ttl_max, ttls, id_step_max, ip_id_first, thl_max, plen_max):  # pragma: no cover - compiled
    """Per stream (its probes ``order[bounds[g]:bounds[g + 1]]``, in probe order) every feature the
    classification uses, in one pass over the rows through ``order`` (the columns are not sorted):
    what the probes table gives (seq, size, outcome, resets, retransmits) and what the request headers
    give (IP id, window, source port, TTL, TCP header and payload lengths)."""
    big = 0
    for g in range(bounds.shape[0] - 1):
        big = max(big, bounds[g + 1] - bounds[g])
    buf = np.empty(big, np.float64)
    counts = np.zeros(65536, np.int64)
    seen = np.empty(min(big, 65536), np.int64)
    for g in range(bounds.shape[0] - 1):
        lo, hi = bounds[g], bounds[g + 1]
        one_ipid[g] = _one_value(ip_id, order, lo, hi)
        one_sport[g] = _one_value(sport, order, lo, hi)
        one_seq[g] = _one_value(seq, order, lo, hi)
        # most frequent window (ties to the smallest), median size, distinct TTLs
        win_mode[g] = _mode_median_distinct(win, order, lo, hi, counts, seen, buf)[0]
        size_median[g] = _mode_median_distinct(size, order, lo, hi, counts, seen, buf)[1]
        ttls[g] = _mode_median_distinct(ttl, order, lo, hi, counts, seen, buf)[2]
        # source ports step by one (mod 2^16) from probe to probe, NaN ports skipped; needs 3 or more
        k = 0
        ok = True
        prev = 0.0
        r = 0
        a = 0
        ar = 0
        t_lo, t_hi = np.inf, -np.inf
        step_max = -1.0
        th, pl = -1.0, 0.0
        for i in range(lo, hi):
            q = order[i]
            v = sport[q]
            if not np.isnan(v):
                if k and (v - prev) % 65536 != 1:
                    ok = False
                prev = v
                k += 1
            r += resent[q]
            if answered[q]:
                a += 1
                if reset[q]:
                    ar += 1
            x = ttl[q]
            if not np.isnan(x):
                t_lo = min(t_lo, x)
                t_hi = max(t_hi, x)
            if i > lo:       # IP id jumps between neighbours in probe order (a NaN on either side: no jump)
                d = abs(ip_id[q] - ip_id[order[i - 1]])
                if not np.isnan(d) and d > step_max:
                    step_max = d
            x = thl[q]
            if not np.isnan(x) and x > th:
                th = x
            x = plen[q]
            if not np.isnan(x) and x > pl:
                pl = x
        step_one[g] = ok and k > 2
        n_resent[g] = r
        n_ans[g] = a
        n_reset[g] = ar
        ttl_min[g] = t_lo
        ttl_max[g] = t_hi
        id_step_max[g] = step_max
        ip_id_first[g] = ip_id[order[lo]]
        thl_max[g] = th if th >= 0 else np.nan       # SYN headers agree within a tool
        plen_max[g] = pl


def _take_float(col: pd.Series, rows: np.ndarray) -> np.ndarray:
    """col[rows] as float64 with NaN for <NA>, taking before converting (from the column's values and
    mask when it has them: no pandas take)."""
    a = col.array
    data, mask = getattr(a, "_data", None), getattr(a, "_mask", None)
    if data is None or mask is None:
        return a.take(rows).to_numpy("float64", na_value=np.nan)
    out = data[rows].astype(np.float64)
    out[mask[rows]] = np.nan
    return out


def _floats(col) -> np.ndarray:
    """A column (Series or array) as float64 with NaN for <NA>."""
    if isinstance(col, np.ndarray) and col.dtype == np.float64:
        return col
    s = col if isinstance(col, pd.Series) else pd.Series(col)
    a = s.array
    data, mask = getattr(a, "_data", None), getattr(a, "_mask", None)
    if isinstance(data, np.ndarray) and isinstance(mask, np.ndarray):    # the values and mask: no take
        out = data.astype(np.float64)
        out[mask] = np.nan
        return out
    return _take_float(s, np.arange(len(s)))


REQUEST_COLUMNS = ("ip_id", "tcp_win", "sport", "ttl", "tcp_hdr_len", "payload_caplen")


def request_columns(packets: pd.DataFrame, probes: pd.DataFrame) -> pd.DataFrame:
    """The request packet's header fields the rules read, for each probe (rows like ``probes``)."""
    rows = probes["request_frame"].to_numpy("int64") - 1
    return pd.DataFrame({c: packets[c].array.take(rows) for c in REQUEST_COLUMNS})


def request_floats(packets: pd.DataFrame, probes: pd.DataFrame) -> dict:
    """:func:`request_columns` as float64 arrays with NaN for <NA> (what the aggregates read), taken from
    the packets' column buffers at the request rows."""
    rows = probes["request_frame"].to_numpy("int64") - 1
    return {c: _take_float(packets[c], rows) for c in REQUEST_COLUMNS}


def _stream_groups(probes: pd.DataFrame, by: list) -> tuple[np.ndarray, pd.DataFrame, np.ndarray]:
    """(stream number of each probe, the streams' keys, their sizes), numbered in groupby's order
    (category order, numbers by value, <NA> last): payload's ``_group_ids`` (categorical and
    nullable-integer keys take the table's shared groups, ``_groups.groups_of``, made once per table and
    shared with the payload verdicts; other keys group by pandas)."""
    gid, keys = _group_ids(probes, by)
    return gid, keys, np.bincount(gid, minlength=len(keys)) if gid.size else np.zeros(len(keys), np.int64)


def stream_features(probes: pd.DataFrame, req, by=STREAM) -> tuple[pd.DataFrame, np.ndarray]:
    """Per stream the wire features the classification uses (one row per group of ``by``, groupby's
    order), and each probe's stream number. ``req``: :func:`request_columns` (or :func:`request_floats`)."""
    by = list(by)
    gid, keys, size = _stream_groups(probes, by)
    G = len(keys)
    order = _sorted_order(gid, G).astype(np.int64)
    bounds = np.concatenate([[0], np.cumsum(size)]).astype(np.int64)
    if isinstance(req, pd.DataFrame):
        req = {c: _floats(req[c]) for c in REQUEST_COLUMNS} if len(req) else {}
    f = req or {c: np.full(len(probes), np.nan) for c in REQUEST_COLUMNS}
    out = {k: np.zeros(G, bool) for k in ("one_ipid", "one_sport", "one_seq", "step_one")}
    out |= {k: np.zeros(G, np.float64) for k in ("win_mode", "size_median", "ttl_min", "ttl_max", "id_step_max",
                                                  "ip_id_first", "thl", "plen")}
    out |= {k: np.zeros(G, np.int64) for k in ("n_resent", "n_ans", "n_reset", "ttls")}
    outcome = probes["outcome"]
    answered = (outcome == "answered").to_numpy(bool, na_value=False) if isinstance(outcome.dtype, pd.CategoricalDtype) \
        else np.asarray(outcome == "answered", bool)
    _aggregates(order, bounds, f["ip_id"], f["tcp_win"], f["sport"], _floats(probes["seq"]), _floats(probes["size"]),
                answered, ~np.asarray(pd.isna(probes["reset_frame"])), np.asarray(probes["retransmits"], np.int64),
                f["ttl"], f["tcp_hdr_len"], f["payload_caplen"],
                out["one_ipid"], out["one_sport"], out["one_seq"], out["win_mode"], out["size_median"],
                out["step_one"], out["n_resent"], out["n_ans"], out["n_reset"], out["ttl_min"], out["ttl_max"],
                out["ttls"], out["id_step_max"], out["ip_id_first"], out["thl"], out["plen"])
    if not req:          # no request columns: no header features (zeros, as before)
        out |= {k: np.zeros(G) for k in ("ttl_min", "ttl_max", "ttls", "id_step_max", "ip_id_first", "thl", "plen")}
    with np.errstate(invalid="ignore", divide="ignore"):
        reset_share = np.where(out["n_ans"] > 0, out["n_reset"] / np.maximum(out["n_ans"], 1), np.nan)
    frames = probes["request_frame"].to_numpy(np.int64)
    feats = keys.assign(
        probes=np.diff(bounds), one_ipid=out["one_ipid"], size=out["size_median"], win=out["win_mode"],
        sport_step_one=out["step_one"], one_sport=out["one_sport"], one_seq=out["one_seq"],
        resent=out["n_resent"], answered=out["n_ans"], reset_share=reset_share,
        first_request=frames[order[bounds[:-1]]] if G else np.zeros(0, np.int64),
        ttl_min=out["ttl_min"], ttl_max=out["ttl_max"], ttls=out["ttls"], id_step_max=out["id_step_max"],
        ip_id_first=out["ip_id_first"], thl=out["thl"], plen=out["plen"])
    return feats, gid


def _same_keys(a: pd.DataFrame, b: pd.DataFrame, by) -> bool:
    """Whether two per-stream tables list the same keys in the same order."""
    if len(a) != len(b):
        return False
    return all(a[c].astype(object).reset_index(drop=True).equals(b[c].astype(object).reset_index(drop=True))
               for c in by)


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
    return fingerprint_from(probes, request_floats(packets, probes), verdicts, balance, packets=packets)


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
    req = {c: _floats(req[c]) for c in REQUEST_COLUMNS} if len(req) else {}
    port, span = tracer_ports(probes, req["ttl"] if req else np.full(len(probes), np.nan))
    def keyed() -> bool:     # a matcher's table is keyed already (port = the run's key, dst_port)
        have = probes["port"].to_numpy("float64", na_value=np.nan) if "port" in probes else np.full(len(probes), np.nan)
        return np.array_equal(np.where(port >= 0, port, np.nan), have, equal_nan=True)
    if (span > 1).any() and not keyed():
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
    if _same_keys(verdicts, feats, STREAM):     # the verdicts of these probes by the same keys: row for row
        v = verdicts.reset_index(drop=True)
    else:
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
    cols = [c for c in ("payload_off", "payload_caplen", "ts_ns", "capture") if c in packets.columns]
    first = packets[cols].iloc[feats["first_request"].to_numpy("int64") - 1]     # what payloads() reads
    first.attrs = packets.attrs
    heads = payloads(first).tolist()
    secs = first["ts_ns"].to_numpy("float64", na_value=np.nan) / 1e9
    out = []
    for i in range(len(feats)):     # a payload without a known layout is described by its verdict, as the
        sh = payload_shape(heads[i], secs[i])          # chunked and Dask drivers (no payload bytes) describe it
        out.append(shape_from_verdict(verdicts.iloc[i]) if sh[0] == "opaque" else sh)
    return out
