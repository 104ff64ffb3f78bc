"""ICMP and ICMPv6 errors attributed to the probes they answer (schema.ICMP_ERRORS, schema.PROBE_ERRORS).

A router that cannot deliver a probe, a firewall that rejects it and a target whose port or protocol is
closed answer with an ICMP error quoting the probe's IP header and at least its first 8 L4 bytes
(RFC 792, RFC 1812 4.3.2.3, RFC 4443 2.4): enough for the ports and TCP sequence number, or the echo
identifier and sequence number. The packets table's ``quoted_*`` columns hold that quoted header; an
error is given to the latest probe with the quoted identity sent before it (within ``window_s``).

Outcomes: ``unreachable`` with the code (net, host, protocol, port, admin_prohibited, ...),
``ttl_exceeded``, ``frag_needed`` (ICMP) / ``packet_too_big`` (ICMPv6) with the MTU the router named,
``param_problem``; each with the reporting router's address. Without the quoted columns (a packets
table from before they existed) both functions return empty tables.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .._jit import njit
from ..capture.checksums import raw_column
from ..schema import ERROR_OUTCOMES, ICMP_ERRORS, PROBE_ERRORS, QUOTED_COLUMNS
from ._groups import factorize_rows as _factorize
from .streams import _codes_in, _positions

__all__ = [
    "ERROR_TYPES",
    "attribute_errors",
    "has_quoted_columns",
    "icmp_errors",
    "period_errors",
    "with_error_outcomes",
]

_NS = 1_000_000_000
# (protocol number, type) -> outcome
ERROR_TYPES = {(1, 3): "unreachable", (1, 11): "ttl_exceeded", (1, 12): "param_problem",
               (58, 1): "unreachable", (58, 2): "packet_too_big", (58, 3): "ttl_exceeded", (58, 4): "param_problem"}
_V4_UNREACH = {0: "net", 1: "host", 2: "protocol", 3: "port", 4: "frag_needed", 5: "source_route_failed",
               6: "net_unknown", 7: "host_unknown", 8: "source_isolated", 9: "net_prohibited",
               10: "host_prohibited", 11: "net_tos", 12: "host_tos", 13: "admin_prohibited",
               14: "host_precedence", 15: "precedence_cutoff"}
_V6_UNREACH = {0: "no_route", 1: "admin_prohibited", 2: "beyond_scope", 3: "address", 4: "port",
               5: "source_policy", 6: "reject_route"}
_EXCEEDED = {0: "ttl", 1: "reassembly"}
_PARAM = {0: "pointer", 1: "missing_option", 2: "bad_length"}
_V6_PARAM = {0: "header_field", 1: "next_header", 2: "option", 3: "first_fragment_incomplete"}
_CODES = {(1, 3): _V4_UNREACH, (58, 1): _V6_UNREACH, (1, 11): _EXCEEDED, (58, 3): _EXCEEDED,
          (1, 12): _PARAM, (58, 4): _V6_PARAM, (58, 2): {0: "too_big"}}
_PROTO_NAMES = {1: "icmp", 58: "icmpv6", 6: "tcp", 17: "udp"}


def has_quoted_columns(packets: pd.DataFrame) -> bool:
    """True when the packets table carries the decoder's quoted-header columns."""
    return all(c in packets.columns for c in QUOTED_COLUMNS)


def _num(s: pd.Series) -> np.ndarray:
    return s.to_numpy("float64", na_value=np.nan)


def _at(s: pd.Series, rows: np.ndarray) -> np.ndarray:
    """A numeric (nullable, sparse or dense) column's values at ``rows`` as float64, NaN where absent:
    only those rows are touched."""
    a = s.array.take(rows)
    return a.to_numpy("float64", na_value=np.nan) if hasattr(a, "_mask") else np.asarray(a, dtype=np.float64)


def _text_at(s: pd.Series, rows: np.ndarray) -> np.ndarray:
    """A text column (categorical or sparse) at ``rows`` as an object array, None where absent."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        cats = np.asarray(s.cat.categories.astype(object), dtype=object)
        c = s.cat.codes.to_numpy()[rows]
        out = cats[np.maximum(c, 0)] if len(cats) else np.full(rows.size, None, dtype=object)
        return np.where(c >= 0, out, None)
    arr = s.array
    if isinstance(arr, pd.arrays.SparseArray):        # the values at the rows that have one, by position
        idx, vals = arr.sp_index.indices, np.asarray(arr.sp_values, dtype=object)
        out = np.full(rows.size, None, dtype=object)
        if idx.size:
            j = np.minimum(np.searchsorted(idx, rows), idx.size - 1)
            present = idx[j] == rows
            out[present] = vals[j[present]]
        return out
    v = np.asarray(arr.take(rows), dtype=object)
    return np.where(pd.isna(v), None, v)


def _missing(v: np.ndarray) -> np.ndarray:
    """None in an object array of text (as _text_at gives them)."""
    return np.equal(v, None)


def _names(keys: np.ndarray, table: dict, default) -> np.ndarray:
    """table[k] for every k of an integer array, looked up once per distinct value (errors are few kinds)."""
    u, inv = np.unique(keys, return_inverse=True)
    return np.array([table.get(int(k), default(int(k))) for k in u], dtype=object)[inv] if u.size \
        else np.zeros(0, dtype=object)


_EMPTY: dict = {}


def _empty(columns) -> pd.DataFrame:
    """The typed table without rows (made once per schema, a copy each call: typing costs milliseconds)."""
    key = tuple(c.name for c in columns)
    if key not in _EMPTY:
        _EMPTY[key] = _typed(pd.DataFrame({c.name: [] for c in columns}), columns)
    return _EMPTY[key].copy()


_OUTCOME_OF = {a * 256 + b: v for (a, b), v in ERROR_TYPES.items()}
_CODE_NAMES = {(a * 256 + b) * 256 + k: v for (a, b), d in _CODES.items() for k, v in d.items()}
_PROTO_OF = {k: v for k, v in _PROTO_NAMES.items()}


def icmp_errors(packets: pd.DataFrame, probes: pd.DataFrame | None = None, window_s: float = 120.0) -> pd.DataFrame:
    """One row per ICMP/ICMPv6 error frame: type, code by name, reporter, MTU, the quoted packet and, when
    ``probes`` is given, the probe it answers (schema.ICMP_ERRORS). Only the error frames' rows of the
    packets table are read (a take per column); names come from one look-up per distinct type and code."""
    if not has_quoted_columns(packets) or packets.empty:
        out = _empty(ICMP_ERRORS)
        out.attrs["note"] = ("" if has_quoted_columns(packets) else
                             "the packets table has no quoted_* columns (decoder without quoted headers)")
        return out
    proto, no_proto = raw_column(packets, "ip_proto")      # the columns' own buffers: no int16 copies
    typ, no_typ = raw_column(packets, "icmp_type")
    _, no_ts = raw_column(packets, "ts_ns")
    m = ((((proto == 1) & ((typ == 3) | (typ == 11) | (typ == 12)))
          | ((proto == 58) & (typ >= 1) & (typ <= 4))) & ~no_proto & ~no_typ & ~no_ts)
    rows = np.flatnonzero(m)
    if not rows.size:
        return _empty(ICMP_ERRORS)
    p, t = proto[rows].astype(np.int64), typ[rows].astype(np.int64)
    c = packets["icmp_code"].to_numpy("int16", na_value=-1)[rows].astype(np.int64)
    tk = p * 256 + t
    outcome = _names(tk, _OUTCOME_OF, lambda k: None)
    outcome[(p == 1) & (t == 3) & (c == 4)] = "frag_needed"
    code = _names(tk * 256 + c, _CODE_NAMES, lambda k: f"code_{k % 256}")   # codes no RFC names: said as such
    mtu = _at(packets["icmp_mtu"], rows) if "icmp_mtu" in packets.columns else np.full(rows.size, np.nan)
    mtu = np.where((outcome == "frag_needed") | (outcome == "packet_too_big"), mtu, np.nan)
    qproto = _at(packets["quoted_proto"], rows)
    has_q = ~np.isnan(qproto)
    qname = _names(np.where(has_q, qproto, -1).astype(np.int64), _PROTO_OF,
                   lambda k: "" if k < 0 else f"ip_{k}")   # quoted protocols other than ICMP, TCP, UDP (rare)
    is_icmp = (qproto == 1) | (qproto == 58)
    is_l4 = (qproto == 6) | (qproto == 17)
    sport, dport = _at(packets["quoted_sport"], rows), _at(packets["quoted_dport"], rows)
    ident = np.where(is_icmp, _at(packets["quoted_icmp_id"], rows), np.where(is_l4, sport, np.nan))
    port = np.where(is_l4, dport, np.nan)
    seq = np.where(is_icmp, _at(packets["quoted_icmp_seq"], rows),
                   np.where(qproto == 6, _at(packets["quoted_tcp_seq"], rows), np.nan))
    qsrc, qdst = _text_at(packets["quoted_src"], rows), _text_at(packets["quoted_dst"], rows)
    # what the quoted header lacks, said in words
    note = np.full(rows.size, "", dtype=object)
    no_ip = _missing(qsrc) | _missing(qdst) | ~has_q
    known = is_icmp | is_l4
    need_seq = (qproto == 6) | is_icmp
    no_l4 = ~no_ip & known & (np.isnan(ident) | (need_seq & np.isnan(seq)) | (is_l4 & np.isnan(port)))
    note[no_ip] = "the quoted IP header is missing or truncated"
    note[no_l4] = "the quoted header is cut before the ports / identifier / sequence number"
    note[~no_ip & ~known] = "the quoted packet is not ICMP, TCP or UDP"
    ts = packets["ts_ns"].array.take(rows).to_numpy("int64")
    request_frame = np.full(rows.size, -1, np.int64)
    after = np.full(rows.size, np.nan)
    if probes is not None:
        ok = note == ""
        if ok.any() and probes.empty:
            note[ok] = _NO_PROBE
        elif ok.any():
            hit, req_ts = _attach(probes, window_s, ts, qname, qsrc, qdst, ident, port, seq, ok)
            request_frame = np.where(hit >= 0, probes["request_frame"].to_numpy("int64")[np.maximum(hit, 0)], -1)
            after = np.where(hit >= 0, (ts - req_ts) / 1e3, np.nan)
            note[ok & (hit < 0)] = _NO_PROBE
    cols = {
        "error_frame": packets["frame"].to_numpy("int64")[rows], "ts_ns": ts,
        "reporter": _category(_text_at(packets["src"], rows)), "icmp_type": _uint(t, "UInt8"),
        "icmp_code": _uint(c, "UInt8"), "outcome": pd.Categorical(outcome, categories=list(ERROR_OUTCOMES)),
        "code": _category(code), "mtu": _uint(mtu, "UInt32"), "protocol": _category(qname),
        "source": _category(qsrc), "destination": _category(qdst), "port": _uint(port, "UInt16"),
        "ident": _uint(ident, "UInt32"), "seq": _uint(seq, "UInt32"), "request_frame": _uint(request_frame, "Int64"),
        "error_after_us": after, "note": pd.Series(note, dtype=object)}
    return pd.DataFrame(cols, columns=[c.name for c in ICMP_ERRORS])


_NO_PROBE = "quotes no probe sent in the capture before it (within the window)"
_PCODE = {"icmp": 0, "icmpv6": 1, "tcp": 2, "udp": 3}


def _category(v: np.ndarray) -> pd.Categorical:
    """A categorical of text values (None for missing), categories sorted as pd.Categorical sorts them:
    a hash factorisation, then the few distinct values sorted."""
    codes, uniq = pd.factorize(np.asarray(v, dtype=object), use_na_sentinel=True)
    uniq = np.asarray(uniq, dtype=object)
    order = np.argsort(uniq.astype(str), kind="stable") if uniq.size else np.zeros(0, np.int64)
    rank = np.empty(uniq.size, np.int64)
    rank[order] = np.arange(uniq.size)
    codes = np.where(codes >= 0, rank[np.maximum(codes, 0)] if uniq.size else -1, -1)
    return pd.Categorical.from_codes(codes, categories=pd.Index(uniq[order], dtype=object))


def _text_codes(v: np.ndarray, index: pd.Index) -> np.ndarray:
    """Positions of text values (None: -1) in ``index``, looked up once per distinct value."""
    codes, uniq = pd.factorize(np.asarray(v, dtype=object), use_na_sentinel=True)
    if not len(uniq):
        return np.full(len(v), -1, np.int64)
    pos = _positions(index, list(uniq))
    return np.where(codes >= 0, pos[np.maximum(codes, 0)], -1)


def _uint(v: np.ndarray, dtype: str):
    """A nullable integer array from float (NaN) or int (-1) values."""
    f = np.asarray(v, dtype=np.float64)
    bad = np.isnan(f) | (f < 0)
    return pd.arrays.IntegerArray(np.where(bad, 0, f).astype(dtype.lower()), bad)


def _attach(probes: pd.DataFrame, window_s: float, ts, qname, qsrc, qdst, ident, port, seq, ok):
    """For each error with ``ok``: the probe (row of ``probes``) with its quoted identity (protocol,
    source, destination, ident, port, seq; UDP without seq, which no quote of ours carries) sent last at
    or before it, within ``window_s`` — -1 when none — and that probe's time."""
    addr = pd.Index(sorted({str(x) for c in ("source", "destination") for x in _categories(probes[c])}), dtype=object)
    n_p = len(probes)
    p_proto = _codes_in(probes["protocol"], pd.Index(list(_PCODE), dtype=object))
    p_udp = p_proto == 3
    p_key = np.stack([
        p_proto, _codes_in(probes["source"], addr), _codes_in(probes["destination"], addr),
        probes["ident"].to_numpy("int64", na_value=-1), _own_ports(probes),
        np.where(p_udp, -1, probes["seq"].to_numpy("int64", na_value=-1))]).T
    e_proto = _text_codes(qname, pd.Index(list(_PCODE), dtype=object))
    e_key = np.stack([
        e_proto, _text_codes(qsrc, addr), _text_codes(qdst, addr),
        np.nan_to_num(ident, nan=-1).astype(np.int64), np.nan_to_num(port, nan=-1).astype(np.int64),
        np.where(e_proto == 3, -1, np.nan_to_num(seq, nan=-1)).astype(np.int64)]).T
    keys = np.concatenate([p_key, e_key]) + 1           # every field >= 0: -1 (absent) becomes 0
    use = np.concatenate([(p_key[:, 0] >= 0) & (p_key[:, 1] >= 0) & (p_key[:, 2] >= 0),
                          ok & (e_key[:, 0] >= 0) & (e_key[:, 1] >= 0) & (e_key[:, 2] >= 0)])
    kid, n_keys = _factorize(keys, use, 6)
    p_ts = probes["ts_ns"].to_numpy("int64")
    all_ts = np.concatenate([p_ts, ts])
    is_err = np.concatenate([np.zeros(n_p, np.int8), np.ones(ts.size, np.int8)])
    order = np.lexsort((is_err, all_ts))                # at equal times the probe comes first (merge_asof)
    hit = _latest_before(order, kid, all_ts, n_p, n_keys, int(window_s * _NS))
    return hit, np.where(hit >= 0, p_ts[np.maximum(hit, 0)], 0)


def _own_ports(probes: pd.DataFrame) -> np.ndarray:
    """Each request's own destination port (``dst_port``; ``port`` in a probes table without it), -1 for
    none: what an error's quoted header names (a tracer probe's ``port`` is its stream's lowest port)."""
    s = probes["dst_port"] if "dst_port" in probes.columns else probes["port"]
    return s.to_numpy("float64", na_value=-1).astype(np.int64)


def _categories(s: pd.Series):
    return s.cat.categories.astype(object) if isinstance(s.dtype, pd.CategoricalDtype) else pd.unique(s.astype(object))


@njit(nogil=True)
def _latest_before(order, kid, ts, n_probes, n_keys, window_ns):  # pragma: no cover - compiled
    """One pass in time order: a probe (index < n_probes) becomes the latest of its identity; an error
    takes the latest probe of its identity if that was sent at most ``window_ns`` before it, else -1."""
    last = np.full(max(n_keys, 1), -1, np.int64)
    hit = np.full(ts.size - n_probes, -1, np.int64)
    for e in order:
        k = kid[e]
        if k < 0:
            continue
        if e < n_probes:
            last[k] = e
        else:
            p = last[k]
            if p >= 0 and ts[e] - ts[p] <= window_ns:
                hit[e - n_probes] = p
    return hit


def attribute_errors(packets: pd.DataFrame, probes: pd.DataFrame, window_s: float = 120.0) -> pd.DataFrame:
    """One row per probe that drew an ICMP/ICMPv6 error, keyed by ``request_frame`` (schema.PROBE_ERRORS):
    the first error's outcome, code, reporter and MTU, and how many errors quoted the probe."""
    e = icmp_errors(packets, probes, window_s)
    rf = e["request_frame"].to_numpy("int64", na_value=-1)
    sel = np.flatnonzero(rf >= 0)
    if not sel.size:
        return _empty(PROBE_ERRORS)
    ts, ef = e["ts_ns"].to_numpy("int64")[sel], e["error_frame"].to_numpy("int64")[sel]
    o = sel[np.lexsort((ef, ts, rf[sel]))]              # by probe, then time, then frame
    r = rf[o]
    start = np.ones(o.size, bool)
    start[1:] = r[1:] != r[:-1]
    first = o[start]
    gid = np.cumsum(start) - 1
    count = np.bincount(gid)
    # a frag-needed/too-big MTU from any of the probe's errors: the first one that names one
    mtu_all = e["mtu"].to_numpy("float64", na_value=np.nan)[o]
    has = ~np.isnan(mtu_all)
    mtu = np.full(first.size, np.nan)
    pos = np.flatnonzero(has)
    if pos.size:
        g = gid[pos]
        firsts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
        mtu[g[firsts]] = mtu_all[pos[firsts]]
    take = lambda c: e[c].array.take(first)
    out = pd.DataFrame({
        "request_frame": rf[first], "outcome": pd.Categorical(take("outcome"), categories=list(ERROR_OUTCOMES)),
        "code": _category(np.asarray(take("code"), dtype=object)),
        "reporter": _category(np.asarray(take("reporter"), dtype=object)), "mtu": _uint(mtu, "UInt32"),
        "error_frame": e["error_frame"].to_numpy("int64")[first],
        "error_after_us": e["error_after_us"].to_numpy("float64")[first], "errors": count.astype(np.int32)},
        columns=[c.name for c in PROBE_ERRORS])
    return out


def with_error_outcomes(probes: pd.DataFrame, errors: pd.DataFrame) -> pd.DataFrame:
    """The probes table with the errors merged in (the lead's merge, offered here): a probe that was not
    answered or refused (lost, late, unknown) and drew an error takes the error's outcome; columns
    ``error_code``, ``reporter`` and ``mtu`` are added (<NA> elsewhere). Answered probes keep 'answered':
    an error about a duplicate does not undo a reply."""
    out = probes.copy(deep=False)      # columns replaced below, the others shared (copy-on-write)
    cats = list(out["outcome"].cat.categories) + [c for c in ERROR_OUTCOMES if c not in out["outcome"].cat.categories]
    outcome = out["outcome"].cat.set_categories(cats)
    codes = outcome.cat.codes.to_numpy()
    rf = out["request_frame"].to_numpy("int64")
    if len(errors):
        pos = pd.Index(errors["request_frame"].to_numpy("int64")).get_indexer(rf)
        keep = np.zeros(len(cats) + 1, bool)    # by code; a missing outcome (-1) reads the last: False
        keep[[cats.index(c) for c in ("answered", "refused") if c in cats]] = True
        replace = (pos >= 0) & ~keep[codes]
        at = np.where(replace, pos, 0)
    else:                          # no error: no outcome changes (the categories gain the error outcomes)
        replace, at = np.zeros(len(rf), bool), np.zeros(len(rf), np.intp)

    def taken(col: pd.Series) -> pd.Categorical:
        """errors[col] at each replaced probe, <NA> elsewhere: categories the values present, sorted."""
        if not replace.any():      # every value <NA>: no categories (what an array of None gives)
            return pd.Categorical.from_codes(np.full(len(rf), -1, np.int8),
                                             dtype=pd.CategoricalDtype(pd.Index([], dtype=object)))
        c = pd.Categorical(col.astype(str).to_numpy(object))
        got = np.where(replace, c.codes[at], -1)
        return pd.Categorical.from_codes(got, categories=c.categories).remove_unused_categories()

    if len(errors):
        e_codes = pd.Index(cats).get_indexer(errors["outcome"].astype(str).to_numpy(object))
        out["outcome"] = pd.Categorical.from_codes(np.where(replace, e_codes[at], codes.astype(np.int64)), categories=cats)
    else:
        out["outcome"] = outcome
    out["error_code"] = taken(errors["code"])
    out["reporter"] = taken(errors["reporter"])
    if replace.any():
        mtu = errors["mtu"].to_numpy("float64", na_value=np.nan)[at]
        out["mtu"] = pd.array(np.where(replace & ~np.isnan(mtu), mtu, np.nan), dtype="Float64").astype("UInt32")
    else:                          # no error replaced an outcome: every MTU <NA>
        out["mtu"] = pd.arrays.IntegerArray(np.zeros(len(rf), np.uint32), np.ones(len(rf), bool))
    return out


def period_errors(probes: pd.DataFrame, period_s: int = 30, by=("protocol", "source", "destination", "port")) -> pd.DataFrame:
    """Per stream and period, how many probes drew each kind of error and from whom — the columns the
    periods table should gain (they stay lost for loss_pct, as CloudWatch counts them): unreachable,
    ttl_exceeded, too_big (frag_needed + packet_too_big), param_problem, reporters ('addr (n), ...')."""
    by = list(by)
    cols = by + ["period_start_ns", "unreachable", "ttl_exceeded", "too_big", "param_problem", "reporters"]
    p = probes[_is_error(probes["outcome"])]
    if p.empty:
        return pd.DataFrame({c: [] for c in cols})
    step = period_s * _NS
    o = p["outcome"].astype(str)
    p = p.assign(period_start_ns=(p["ts_ns"].to_numpy() // step) * step,
                 unreachable=(o == "unreachable").to_numpy(), ttl_exceeded=(o == "ttl_exceeded").to_numpy(),
                 too_big=o.isin(["frag_needed", "packet_too_big"]).to_numpy(),
                 param_problem=(o == "param_problem").to_numpy(), _r=p["reporter"].astype(str))
    keys = by + ["period_start_ns"]
    g = p.groupby(keys, observed=True, dropna=False)
    out = g[["unreachable", "ttl_exceeded", "too_big", "param_problem"]].sum().astype("int64").reset_index()
    rc = p.groupby(keys + ["_r"], observed=True, dropna=False).size().rename("n").reset_index()
    rc = rc.sort_values(keys + ["n"], ascending=[True] * len(keys) + [False])
    rc["t"] = rc["_r"] + " (" + rc["n"].astype(str) + ")"
    txt = rc.groupby(keys, observed=True, dropna=False)["t"].agg(", ".join).reset_index()
    return out.merge(txt.rename(columns={"t": "reporters"}), on=keys, how="left")[cols]


def _is_error(outcome: pd.Series) -> np.ndarray:
    """Which probes drew an ICMP error: on a categorical's codes (no text per probe), else on the texts."""
    if isinstance(outcome.dtype, pd.CategoricalDtype):
        cats = outcome.cat.categories
        wanted = np.flatnonzero(cats.isin(ERROR_OUTCOMES))
        return np.isin(outcome.cat.codes.to_numpy(), wanted) if len(wanted) else np.zeros(len(outcome), bool)
    return outcome.astype(str).isin(ERROR_OUTCOMES).to_numpy()


def periods_with_errors(periods: pd.DataFrame, probes: pd.DataFrame, period_s: int = 30) -> pd.DataFrame:
    """The periods table with how many of its probes drew each kind of ICMP error and from whom (0 and ''
    elsewhere); the errors stay lost in ``loss_pct``, as CloudWatch counts them. A period whose every probe
    drew an error reads ``errors`` instead of ``no_reply``: the path answered, with a refusal."""
    keys = [c for c in ("protocol", "source", "destination", "port") if c in periods.columns]
    pe = period_errors(probes, period_s, by=keys)
    out = periods.copy()
    for c in ("unreachable", "ttl_exceeded", "too_big", "param_problem"):
        out[c] = np.zeros(len(out), np.int64)
    out["reporters"] = ""
    if len(pe) and len(out):
        def k(df):
            return pd.MultiIndex.from_arrays([df[c].astype(str) for c in keys] + [df["period_start_ns"].astype("int64")])
        pos = k(out).get_indexer(k(pe))
        ok = pos >= 0
        for c in ("unreachable", "ttl_exceeded", "too_big", "param_problem"):
            v = out[c].to_numpy().copy()
            v[pos[ok]] = pe[c].to_numpy("int64")[ok]
            out[c] = v
        r = out["reporters"].to_numpy(object).copy()
        r[pos[ok]] = pe["reporters"].fillna("").to_numpy(object)[ok]
        out["reporters"] = r
        errs = out[["unreachable", "ttl_exceeded", "too_big", "param_problem"]].sum(axis=1).to_numpy()
        st = out["status"].astype(str).to_numpy(object)
        all_err = (st == "no_reply") & (errs >= out["sent"].to_numpy("int64")) & (errs > 0)
        st[all_err] = "errors"
        out["status"] = pd.Categorical(st, categories=list(out["status"].cat.categories) + ["errors"])
    else:
        out["status"] = out["status"].cat.add_categories(["errors"])
    return out


def _typed(out: pd.DataFrame, columns) -> pd.DataFrame:
    res = {}
    for c in columns:
        v = out[c.name]
        if c.dtype == "category":
            cats = list(ERROR_OUTCOMES) if c.name == "outcome" else None
            vals = v.astype(object).where(pd.notna(v), None)
            res[c.name] = pd.Categorical(vals, categories=cats) if cats else pd.Categorical(vals)
        elif c.dtype in ("UInt8", "UInt16", "UInt32", "Int64"):
            f = pd.Series(v).to_numpy("float64", na_value=np.nan) if len(v) else np.zeros(0)
            arr = pd.array(np.where(np.isnan(f), 0, f).astype("int64"), dtype=c.dtype)
            arr[np.isnan(f)] = pd.NA
            res[c.name] = arr
        elif c.dtype == "object":
            res[c.name] = pd.Series(v, dtype=object).to_numpy()
        else:
            res[c.name] = pd.Series(v).to_numpy().astype(c.dtype)
    df = pd.DataFrame(res)
    for c in columns:
        if c.dtype == "object":
            df[c.name] = df[c.name].astype(object)
    return df
