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
from ..capture.payloads import payload_buffer
from ..schema import FINGERPRINTS, SOURCE_STREAM_KEYS
from .payload import (
    _group_ids,
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
def _val(data, mask, r):  # pragma: no cover - compiled
    """data[r] as float64, NaN where the column's <NA> ``mask`` is set (a select, no branch: a test of
    an empty mask here made the group pass 50 times slower)."""
    x = np.float64(data[r])
    return np.nan if mask[r] else x


@njit(nogil=True)
def _from_counts(counts, seen, nd):  # pragma: no cover - compiled
    """(most frequent value with ties to the smallest — Series.mode().iloc[0], -1 without values —, the
    median — NaN without values —, distinct values) of the values counted in ``counts`` (indexed by
    value; the ``nd`` distinct ones listed in ``seen``), and the counts cleaned for the next group."""
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


N_FEATURES = 19
"""Rows of :func:`_stream_pass`'s output, in the order of ``_FEATURE_ROWS``."""


@njit(nogil=True)
def _tally(v):  # pragma: no cover - compiled
    """A value as the group pass counts it: the integer when it is a header-field integer (0..65535),
    -1 for NaN, -2 for anything else (that stream's values are sorted instead)."""
    if np.isnan(v):
        return np.int32(-1)
    if not (v >= 0.0 and v < 65536.0) or v != np.floor(v):
        return np.int32(-2)
    return np.int32(v)


@njit(nogil=True)
def _stream_pass(gid, n_groups, rows, base, ipd, ipm, wind, winm, spd, spm, ttd, ttm, thd, thm, pld, plm,
                 seqd, seqm, szd, szm, resent, no_reset, outcome, answered_code, port_na, span,
                 frames):  # pragma: no cover - compiled
    """Every per-stream feature the classification uses, in one pass over the probes in probe order
    (each stream's state in arrays by stream number ``gid``), then one pass over each stream's window,
    size and TTL values, which the first pass wrote stream by stream (as int32, :func:`_tally`) for their
    value counts. Columns come as (values, <NA> mask as long as the values); the request headers (IP id,
    window, source port, TTL, TCP header and payload lengths) at row ``rows[q] + base`` of their columns
    (``rows`` empty: row q, a table like the probes), the probes' columns (seq, size, retransmits, whether
    reset — ``no_reset``: reset_frame's <NA> mask —, outcome codes) at row q. The ports each probe's
    stream covers (``span``; empty: 1 where ``port_na`` is clear) give ``ports``. Returns a
    (N_FEATURES, n_groups) float64 table (integers and flags exact), and (3, n_groups) flags: the streams
    whose window, size or TTL values are not all header-field integers, left for :func:`_sorted_stats`."""
    n = gid.size
    G = n_groups
    start = np.zeros(G + 1, np.int64)
    for i in range(n):
        start[gid[i] + 1] += 1
    big = 0
    for g in range(G):
        big = max(big, start[g + 1])
        start[g + 1] += start[g]
    out = np.zeros((N_FEATURES, G), np.float64)
    pos = start[:-1].copy()
    tal = np.empty((3, n), np.int32)         # window, size, TTL, stream by stream
    seen_ip = np.zeros(G, np.bool_)
    seen_sp = np.zeros(G, np.bool_)
    seen_sq = np.zeros(G, np.bool_)
    one_ip = np.ones(G, np.bool_)
    one_sp = np.ones(G, np.bool_)
    one_sq = np.ones(G, np.bool_)
    v_ip = np.zeros(G)                        # the first IP id, source port, seq
    v_sp = np.zeros(G)
    v_sq = np.zeros(G)
    k_sp = np.zeros(G, np.int64)
    step = np.ones(G, np.bool_)
    prev_sp = np.zeros(G)
    prev_ip = np.zeros(G)
    r_sum = np.zeros(G, np.int64)
    n_ans = np.zeros(G, np.int64)
    n_rst = np.zeros(G, np.int64)
    t_lo = np.full(G, np.inf)
    t_hi = np.full(G, -np.inf)
    step_max = np.full(G, -1.0)
    th = np.full(G, -1.0)
    pl = np.zeros(G)
    ports = np.zeros(G, np.int64)
    has_rows = rows.size > 0
    has_span = span.size > 0
    for q in range(n):
        g = gid[q]
        r = rows[q] + base if has_rows else q
        ip = _val(ipd, ipm, r)
        sp = _val(spd, spm, r)
        x_ttl = _val(ttd, ttm, r)
        sq = _val(seqd, seqm, q)
        p = pos[g]
        pos[g] = p + 1
        tal[0, p] = _tally(_val(wind, winm, r))
        tal[1, p] = _tally(_val(szd, szm, q))
        tal[2, p] = _tally(x_ttl)
        # one distinct non-NaN value (Series.nunique() == 1) of IP id, source port, seq
        if not np.isnan(ip):
            if not seen_ip[g]:
                seen_ip[g] = True
                v_ip[g] = ip
            elif ip != v_ip[g]:
                one_ip[g] = False
        if not np.isnan(sp):
            if not seen_sp[g]:
                seen_sp[g] = True
                v_sp[g] = sp
            elif sp != v_sp[g]:
                one_sp[g] = False
            # source ports step by one (mod 2^16) from probe to probe, NaN ports skipped; needs 3 or more
            if k_sp[g] and (sp - prev_sp[g]) % 65536 != 1:
                step[g] = False
            prev_sp[g] = sp
            k_sp[g] += 1
        if not np.isnan(sq):
            if not seen_sq[g]:
                seen_sq[g] = True
                v_sq[g] = sq
            elif sq != v_sq[g]:
                one_sq[g] = False
        r_sum[g] += resent[q]
        if outcome[q] == answered_code:
            n_ans[g] += 1
            if not no_reset[q]:
                n_rst[g] += 1
        if not np.isnan(x_ttl):
            t_lo[g] = min(t_lo[g], x_ttl)
            t_hi[g] = max(t_hi[g], x_ttl)
        if p > start[g]:     # IP id jumps between neighbours in probe order (a NaN on either side: no jump)
            d = abs(ip - prev_ip[g])
            if not np.isnan(d) and d > step_max[g]:
                step_max[g] = d
        else:
            out[10, g] = frames[q]
            out[15, g] = ip
        prev_ip[g] = ip
        x = _val(thd, thm, r)
        if not np.isnan(x) and x > th[g]:
            th[g] = x
        x = _val(pld, plm, r)
        if not np.isnan(x) and x > pl[g]:
            pl[g] = x
        s = span[q] if has_span else (0 if port_na[q] else 1)
        if s > ports[g]:
            ports[g] = s
    counts = np.zeros(65536, np.int64)
    seen = np.empty(min(big, 65536), np.int64)
    sort = np.zeros((3, G), np.bool_)
    for g in range(G):
        lo, hi = start[g], start[g + 1]
        for j in range(3):      # window: its mode; size: its median; TTL: its distinct values
            nd = 0
            bad = False
            last, run = 0, 0            # runs of one value counted at once (a stream's values repeat)
            for i in range(lo, hi):
                c = tal[j, i]
                if run and c == last:
                    run += 1
                    continue
                if run:
                    if counts[last] == 0:
                        seen[nd] = last
                        nd += 1
                    counts[last] += run
                    run = 0
                if c < 0:
                    if c == -2:
                        bad = True
                        break
                    continue
                last, run = c, 1
            if run:
                if counts[last] == 0:
                    seen[nd] = last
                    nd += 1
                counts[last] += run
            if bad:               # not header-field integers: this stream's values are sorted (after)
                for t in range(nd):
                    counts[seen[t]] = 0
                sort[j, g] = True
                continue
            m = _from_counts(counts, seen, nd)
            if j == 0:
                out[3, g] = m[0]
            elif j == 1:
                out[2, g] = m[1]
            else:
                out[13, g] = m[2]
        out[0, g] = hi - lo
        out[1, g] = seen_ip[g] and one_ip[g]
        out[4, g] = step[g] and k_sp[g] > 2
        out[5, g] = seen_sp[g] and one_sp[g]
        out[6, g] = seen_sq[g] and one_sq[g]
        out[7, g] = r_sum[g]
        out[8, g] = n_ans[g]
        out[9, g] = n_rst[g]
        out[11, g] = t_lo[g]
        out[12, g] = t_hi[g]
        out[14, g] = step_max[g]
        out[16, g] = th[g] if th[g] >= 0 else np.nan       # SYN headers agree within a tool
        out[17, g] = pl[g]
        out[18, g] = ports[g]
    return out, sort


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


_NO_ROWS = np.zeros(0, np.int64)


def _column(col) -> tuple[np.ndarray, np.ndarray]:
    """A column (Series, pandas array or numpy array) as (values, <NA> mask) for the group pass: the
    column's own buffers when it has them (numbers and a mask: no copy), else float64 with NaN (and a
    mask of zeros)."""
    if isinstance(col, np.ndarray) and col.ndim == 1 and col.dtype.kind in "iuf":
        return np.ascontiguousarray(col), np.zeros(col.size, np.bool_)
    a = col.array if isinstance(col, pd.Series) else pd.array(col) if isinstance(col, np.ndarray) else col
    data, mask = getattr(a, "_data", None), getattr(a, "_mask", None)
    if isinstance(data, np.ndarray) and isinstance(mask, np.ndarray) and data.ndim == 1 and data.dtype.kind in "iuf":
        return np.ascontiguousarray(data), np.ascontiguousarray(mask, np.bool_)
    nd = getattr(a, "_ndarray", None)
    if isinstance(nd, np.ndarray) and nd.ndim == 1 and nd.dtype.kind in "iuf":
        return np.ascontiguousarray(nd), np.zeros(nd.size, np.bool_)
    out = np.asarray(a.to_numpy("float64", na_value=np.nan), np.float64)
    return out, np.zeros(out.size, np.bool_)


class _Requests:
    """The request headers the group pass reads (REQUEST_COLUMNS), without a float64 copy per probe:
    each column's (values, mask), read at row ``rows[q] + base`` for probe q (a packets table's columns,
    ``rows`` the request frames) or at row q (``rows`` empty: a table like the probes)."""

    def __init__(self, cols: dict, rows: np.ndarray = _NO_ROWS, base: int = 0, packets=None):
        self.cols, self.rows, self.base, self.packets = cols, rows, base, packets

    @classmethod
    def of_table(cls, req) -> _Requests | None:
        """From :func:`request_columns` (or :func:`request_floats`); None when it has no rows."""
        if req is None or not len(req):
            return None
        return cls({c: _column(req[c]) for c in REQUEST_COLUMNS})

    @classmethod
    def of_packets(cls, packets: pd.DataFrame, probes: pd.DataFrame) -> _Requests:
        frames = np.ascontiguousarray(probes["request_frame"].to_numpy("int64"))
        return cls({c: _column(packets[c]) for c in REQUEST_COLUMNS}, frames, -1, packets)

    def floats(self, name: str) -> np.ndarray:
        """Column ``name`` per probe as float64 with NaN for <NA>."""
        if self.packets is not None:
            return _take_float(self.packets[name], self.rows + self.base)
        data, mask = self.cols[name]
        out = data.astype(np.float64)
        out[mask] = np.nan
        return out


_BOOL_FEATURES = ("one_ipid", "sport_step_one", "one_sport", "one_seq")
_INT_FEATURES = ("probes", "resent", "answered", "n_reset", "first_request", "ttls", "ports")
_FEATURE_ROWS = ("probes", "one_ipid", "size", "win", "sport_step_one", "one_sport", "one_seq", "resent", "answered",
                 "n_reset", "first_request", "ttl_min", "ttl_max", "ttls", "id_step_max", "ip_id_first", "thl",
                 "plen", "ports")
_HEADER_FEATURES = ("ttl_min", "ttl_max", "ttls", "id_step_max", "ip_id_first", "thl", "plen")


def _mask_of(col: pd.Series) -> np.ndarray:
    """A column's <NA> mask (its own when it has one)."""
    mask = getattr(col.array, "_mask", None)
    return np.ascontiguousarray(mask, np.bool_) if isinstance(mask, np.ndarray) else np.asarray(pd.isna(col), np.bool_)


def _read_only(a):
    """A read-only view of an array (every call of the group pass has one signature: no second compile
    for a writable column); anything else as it is."""
    if isinstance(a, np.ndarray) and a.flags.writeable:
        a = a.view()
        a.flags.writeable = False
    return a


def _sorted_stats(m: np.ndarray, row: int, j: int, streams: np.ndarray, gid: np.ndarray, col: tuple,
                  reqs: _Requests | None) -> None:
    """For the streams flagged in ``streams``: the window's mode (``j`` 0), the size's median (1) or the
    TTL's distinct values (2) from the sorted non-NaN values of column ``col`` ((values, mask), at the
    request rows of ``reqs`` or at the probes' rows) into ``m[row]``: what the group pass counts for
    header-field integers (the mode's ties to the smallest value, -1 without values; the median NaN
    without values)."""
    data, mask = col
    rows = np.flatnonzero(streams[gid])
    at = rows if reqs is None or not reqs.rows.size else reqs.rows[rows] + reqs.base
    x = data[at].astype(np.float64)
    x[mask[at]] = np.nan
    g = gid[rows]
    keep = ~np.isnan(x)
    for s in np.flatnonzero(streams).tolist():
        z = np.sort(x[(g == s) & keep])
        if j == 0:
            if z.size:
                vals, counts = np.unique(z, return_counts=True)
                m[row, s] = vals[int(np.argmax(counts))]
            else:
                m[row, s] = -1.0
        elif j == 1:
            m[row, s] = np.nan if not z.size else z[z.size // 2] if z.size % 2 else \
                (z[z.size // 2 - 1] + z[z.size // 2]) / 2
        else:
            m[row, s] = np.unique(z).size


def _features(probes: pd.DataFrame, reqs: _Requests | None, by=STREAM,
              span: np.ndarray | None = None) -> tuple[np.ndarray, pd.DataFrame, dict]:
    """(each probe's stream number, the streams' keys, the per-stream features as arrays — names
    ``_FEATURE_ROWS`` plus ``reset_share``): one compiled group pass (:func:`_stream_pass`)."""
    gid, keys = _group_ids(probes, list(by))
    G = len(keys)
    n = len(probes)
    outcome = probes["outcome"]
    if isinstance(outcome.dtype, pd.CategoricalDtype):
        codes = np.ascontiguousarray(outcome.cat.codes.to_numpy())
        cats = list(outcome.cat.categories)
        answered = cats.index("answered") if "answered" in cats else -2
    else:
        codes, answered = np.asarray(outcome == "answered", bool).astype(np.int8), 1
    resent = probes["retransmits"].to_numpy()
    if resent.dtype.kind not in "iu":
        resent = np.asarray(probes["retransmits"], np.int64)
    portcol = probes["dst_port"] if "dst_port" in probes.columns else probes["port"]
    if reqs is None:     # no request columns: NaN headers (their features zeros, as before)
        nan = np.full(max(n, 1), np.nan)
        reqs = _Requests({c: (nan, np.zeros(nan.size, np.bool_)) for c in REQUEST_COLUMNS}, np.zeros(n, np.int64))
        have = False
    else:
        have = True
    c = reqs.cols
    seq, size = _column(probes["seq"]), _column(probes["size"])
    args = (np.ascontiguousarray(gid, np.int64), G, reqs.rows, reqs.base, *c["ip_id"], *c["tcp_win"], *c["sport"],
            *c["ttl"], *c["tcp_hdr_len"], *c["payload_caplen"], *seq, *size, np.ascontiguousarray(resent),
            _mask_of(probes["reset_frame"]), codes, answered, _mask_of(portcol),
            _NO_ROWS if span is None else np.ascontiguousarray(span, np.int64),
            np.ascontiguousarray(probes["request_frame"].to_numpy(np.int64)))
    m, sort = _stream_pass(*(_read_only(a) for a in args))
    if sort.any():      # values that are not header-field integers: those streams' values sorted
        for j, (row, col, at) in enumerate(((3, c["tcp_win"], True), (2, size, False), (13, c["ttl"], True))):
            if sort[j].any():
                _sorted_stats(m, row, j, sort[j], gid, col, reqs if at else None)
    f = {}
    for i, name in enumerate(_FEATURE_ROWS):
        f[name] = m[i].astype(bool) if name in _BOOL_FEATURES else m[i].astype(np.int64) if name in _INT_FEATURES \
            else m[i]
    if not have:
        f |= {k: np.zeros(G) for k in _HEADER_FEATURES}
    with np.errstate(invalid="ignore", divide="ignore"):
        f["reset_share"] = np.where(f["answered"] > 0, f["n_reset"] / np.maximum(f["answered"], 1), np.nan)
    return gid, keys, f


def stream_features(probes: pd.DataFrame, req, by=STREAM) -> tuple[pd.DataFrame, np.ndarray]:
    """Per stream the wire features the classification uses (one row per group of ``by``, groupby's
    order), and each probe's stream number. ``req``: :func:`request_columns` (or :func:`request_floats`)."""
    gid, keys, f = _features(probes, _Requests.of_table(req), by)
    feats = pd.DataFrame({**{c: keys[c] for c in keys.columns},
                          **{k: f[k] for k in ("probes", "one_ipid")}, "size": f["size"], "win": f["win"],
                          **{k: f[k] for k in ("sport_step_one", "one_sport", "one_seq", "resent", "answered",
                                               "reset_share", "first_request", *_HEADER_FEATURES)}})
    return feats, gid


def _same_column(a: pd.Series, b: pd.Series) -> bool:
    """Whether two key columns hold the same values row for row (<NA> equal to <NA>): by codes when both
    are categoricals of one dtype, by values and mask when both are one nullable dtype, else as objects."""
    if len(a) != len(b):
        return False
    if isinstance(a.dtype, pd.CategoricalDtype) and a.dtype == b.dtype:
        return bool(np.array_equal(a.cat.codes.to_numpy(), b.cat.codes.to_numpy()))
    x, y = a.array, b.array
    xm, ym = getattr(x, "_mask", None), getattr(y, "_mask", None)
    if a.dtype == b.dtype and isinstance(xm, np.ndarray) and isinstance(ym, np.ndarray):
        return bool(np.array_equal(xm, ym) and np.array_equal(x._data[~xm], y._data[~ym]))
    return a.astype(object).reset_index(drop=True).equals(b.astype(object).reset_index(drop=True))


def _same_keys(a: pd.DataFrame, b: pd.DataFrame, by) -> bool:
    """Whether two per-stream tables list the same keys in the same order."""
    if len(a) != len(b):
        return False
    return all(_same_column(a[c], b[c]) for c in by)


def _key_strings(df: pd.DataFrame, by) -> list[str]:
    cols = [df[c].astype(object).tolist() for c in by]
    return ["|".join("NA" if pd.isna(x) else str(x) for x in t) for t in zip(*cols)]


def fingerprint(packets: pd.DataFrame, probes: pd.DataFrame, verdicts: pd.DataFrame | None = None,
                balance: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per source stream (schema.FINGERPRINTS): ``tool`` and ``evidence``.

    ``verdicts`` (``payload_verdicts(probes, ...)`` per source stream) and ``balance``
    (``balance_test(probes)``) are computed when not given; a session passes the ones it holds."""
    if probes.empty:
        return fingerprint_from(probes, pd.DataFrame(), verdicts, balance)
    if verdicts is None:
        verdicts = payload_verdicts(probes, request_payload_buffer(packets, probes), by=STREAM)
    # the request headers are read in the packets' columns at the request rows (no copy per probe)
    return fingerprint_from(probes, _Requests.of_packets(packets, probes), verdicts, balance, packets=packets)


def _tracer_candidates(probes: pd.DataFrame) -> int:
    """The UDP probes with a port: fewer than streams.tracer_ports' minimum (3) and no stream is a
    tracer's run of ports (every probe keeps its port)."""
    proto = probes["protocol"]
    portcol = probes["dst_port"] if "dst_port" in probes.columns else probes["port"]
    if isinstance(proto.dtype, pd.CategoricalDtype):
        cats = list(proto.cat.categories)
        if "udp" not in cats:
            return 0
        udp = proto.cat.codes.to_numpy() == cats.index("udp")
    else:
        udp = (proto.astype(object) == "udp").to_numpy(bool)
    return int(np.count_nonzero(udp & ~_mask_of(portcol)))


def fingerprint_from(probes: pd.DataFrame, req, verdicts: pd.DataFrame | None = None,
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
    reqs = req if isinstance(req, _Requests) else _Requests.of_table(req)
    # a tracer's UDP probes to rising ports are one stream, keyed by the lowest port (streams.tracer_ports);
    # without 3 UDP probes with a port there is none, and each probe's stream covers its own port
    span = None
    if _tracer_candidates(probes) >= 3:
        port, span = tracer_ports(probes, reqs.floats("ttl") if reqs else np.full(len(probes), np.nan))

        def keyed() -> bool:     # a matcher's table is keyed already (port = the run's key, dst_port)
            have = probes["port"].to_numpy("float64", na_value=np.nan) if "port" in probes \
                else np.full(len(probes), np.nan)
            return np.array_equal(np.where(port >= 0, port, np.nan), have, equal_nan=True)
        if (span > 1).any() and not keyed():
            probes = probes.assign(port=pd.array(np.where(port >= 0, port, 0), dtype="UInt16"))
            probes.loc[port < 0, "port"] = pd.NA
            verdicts = payload_verdicts(probes, request_payload_buffer(packets, probes), by=STREAM) \
                if packets is not None else verdicts
        del port
    if balance is None:
        balance = balance_test(probes)
    _, keys, f = _features(probes, reqs, STREAM, span)
    del span
    G = len(keys)
    if _same_keys(verdicts, keys, STREAM):     # the verdicts of these probes by the same keys: row for row
        v = verdicts.reset_index(drop=True)
    else:
        vk = dict(zip(_key_strings(verdicts, STREAM), range(len(verdicts))))
        v_rows = np.array([vk[k] for k in _key_strings(keys, STREAM)], np.int64)
        v = verdicts.iloc[v_rows].reset_index(drop=True)
    bk = dict(zip(_key_strings(balance, STREAM_LEVEL), range(len(balance))))
    b_rows = [bk.get(k, -1) for k in _key_strings(keys, STREAM_LEVEL)]
    b_sources = balance["sources"].tolist()
    b_even = balance["balanced"].tolist()
    sources = [int(b_sources[i]) if i >= 0 else 1 for i in b_rows]
    even = [bool(b_even[i]) if i >= 0 and not pd.isna(b_even[i]) else False for i in b_rows]
    shapes = _stream_shapes(f["first_request"], v, packets)
    verdict_text = [str(x) for x in v["verdict"].tolist()]
    protocol = [str(x) for x in keys["protocol"].tolist()]
    py = {k: f[k].tolist() for k in ("probes", "one_ipid", "size", "win", "sport_step_one", "one_sport", "one_seq",
                                     "resent", "reset_share", "ports", *_HEADER_FEATURES)}
    tools, whys = [], []
    for i in range(G):     # per stream (few): the rules and their evidence
        verdict = verdict_text[i]
        n = int(py["probes"][i])
        row = dict(protocol=protocol[i], shape=shapes[i][0], shape_evidence=shapes[i][1], probes=n,
                   verdict=verdict, payloads=1 if verdict == "repeated-random" else n, ttl_min=py["ttl_min"][i],
                   ttl_max=py["ttl_max"][i], ttls=py["ttls"][i], id_step_max=py["id_step_max"][i],
                   ip_ids=1 if py["one_ipid"][i] else n, ip_id_first=py["ip_id_first"][i], win=py["win"][i],
                   thl=py["thl"][i], sport_step=1 if py["sport_step_one"][i] else 0,
                   sports=1 if py["one_sport"][i] else n, seqs=1 if py["one_seq"][i] else n,
                   resent=int(py["resent"][i]), plen=py["plen"][i], size=py["size"][i], reset=py["reset_share"][i],
                   ports=int(py["ports"][i]), id_step_one=bool(py["id_step_max"][i] == 1))
        tool, why = classify_stream(row, int(sources[i]), bool(even[i]))
        tools.append(tool)
        whys.append(why)
    out = _typed_keys(keys[list(STREAM)], probes).assign(probes=f["probes"].astype("int64"),
                                                         tool=pd.Series(tools, dtype="str"),
                                                         evidence=pd.Series(whys, dtype="str"))
    return out[cols]


def _stream_shapes(first_request: np.ndarray, verdicts: pd.DataFrame, packets: pd.DataFrame | None) -> list:
    """(shape, evidence) of each stream's payload: from its first request's bytes (frame numbers
    ``first_request``) when the packets table is at hand (one payload per stream), else from the payload
    verdict's fill."""
    G = len(first_request)
    if packets is None or not G:
        return [shape_from_verdict(verdicts.iloc[i]) for i in range(G)]
    rows = np.asarray(first_request, np.int64) - 1
    data, offsets = payload_buffer(packets, rows)    # the same bytes as payloads(), without taking the table
    heads = [data[offsets[i]:offsets[i + 1]].tobytes() for i in range(G)]
    secs = _take_float(packets["ts_ns"], rows) / 1e9
    out = []
    for i in range(G):     # a payload without a known layout is described by its verdict, as the
        sh = payload_shape(heads[i], secs[i])          # chunked and Dask drivers (no payload bytes) describe it
        out.append(shape_from_verdict(verdicts.iloc[i]) if sh[0] == "opaque" else sh)
    return out
