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

from ..schema import ERROR_OUTCOMES, ICMP_ERRORS, PROBE_ERRORS, QUOTED_COLUMNS

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


def _empty(columns) -> pd.DataFrame:
    return _typed(pd.DataFrame({c.name: [] for c in columns}), columns)


def icmp_errors(packets: pd.DataFrame, probes: pd.DataFrame | None = None, window_s: float = 120.0) -> pd.DataFrame:
    """One row per ICMP/ICMPv6 error frame: type, code by name, reporter, MTU, the quoted packet and, when
    ``probes`` is given, the probe it answers (schema.ICMP_ERRORS)."""
    if not has_quoted_columns(packets) or packets.empty:
        out = _empty(ICMP_ERRORS)
        out.attrs["note"] = ("" if has_quoted_columns(packets) else
                             "the packets table has no quoted_* columns (decoder without quoted headers)")
        return out
    proto = packets["ip_proto"].to_numpy("int64", na_value=-1)
    typ = packets["icmp_type"].to_numpy("int64", na_value=-1)
    key = proto * 1000 + typ
    err_keys = np.array([p * 1000 + t for p, t in ERROR_TYPES])
    m = np.isin(key, err_keys) & packets["ts_ns"].notna().to_numpy()
    if not m.any():
        return _empty(ICMP_ERRORS)
    e = packets[m]
    p, t = proto[m], typ[m]
    c = e["icmp_code"].to_numpy("int64", na_value=-1)
    tk = p * 256 + t
    outcome = pd.Series(tk).map({a * 256 + b: v for (a, b), v in ERROR_TYPES.items()}).to_numpy(object)
    outcome[(p == 1) & (t == 3) & (c == 4)] = "frag_needed"
    names = {(a * 256 + b) * 256 + k: v for (a, b), d in _CODES.items() for k, v in d.items()}
    code = pd.Series(tk * 256 + c).map(names).to_numpy(object)
    unnamed = pd.isna(code)
    if unnamed.any():            # codes no RFC names: said as such (rare)
        code[unnamed] = [f"code_{k}" for k in c[unnamed].tolist()]
    mtu = _num(e["icmp_mtu"]) if "icmp_mtu" in e.columns else np.full(len(e), np.nan)
    mtu = np.where(np.isin(outcome, ("frag_needed", "packet_too_big")), mtu, np.nan)
    qproto = _num(e["quoted_proto"])
    qname = pd.Series(qproto).map({float(k): v for k, v in _PROTO_NAMES.items()}).to_numpy(object)
    other = pd.isna(qname) & ~np.isnan(qproto)
    if other.any():              # quoted protocols other than ICMP, TCP, UDP (rare)
        qname[other] = [f"ip_{int(x)}" for x in qproto[other].tolist()]
    qname[np.isnan(qproto)] = ""
    is_icmp = np.isin(qproto, (1, 58))
    is_l4 = np.isin(qproto, (6, 17))
    ident = np.where(is_icmp, _num(e["quoted_icmp_id"]), np.where(is_l4, _num(e["quoted_sport"]), np.nan))
    port = np.where(is_l4, _num(e["quoted_dport"]), np.nan)
    seq = np.where(is_icmp, _num(e["quoted_icmp_seq"]), np.where(qproto == 6, _num(e["quoted_tcp_seq"]), np.nan))
    from .streams import _obj
    qsrc = _obj(e["quoted_src"])
    qdst = _obj(e["quoted_dst"])
    out = pd.DataFrame({
        "error_frame": e["frame"].to_numpy("int64"), "ts_ns": e["ts_ns"].to_numpy("int64"),
        "reporter": _obj(e["src"]), "icmp_type": t, "icmp_code": c, "outcome": outcome,
        "code": code, "mtu": mtu, "protocol": qname, "source": qsrc, "destination": qdst, "port": port,
        "ident": ident, "seq": seq})
    # what the quoted header lacks, said in words
    note = np.full(len(out), "", dtype=object)
    no_ip = pd.isna(qsrc) | pd.isna(qdst) | np.isnan(qproto)
    need_seq = (qproto == 6) | is_icmp
    no_l4 = ~no_ip & (np.isin(qproto, (1, 58, 6, 17)) & (np.isnan(ident) | (need_seq & np.isnan(seq))
                                                         | (is_l4 & np.isnan(port))))
    note[no_ip] = "the quoted IP header is missing or truncated"
    note[no_l4] = "the quoted header is cut before the ports / identifier / sequence number"
    note[~no_ip & ~np.isin(qproto, (1, 58, 6, 17))] = "the quoted packet is not ICMP, TCP or UDP"
    out["request_frame"] = np.nan
    out["error_after_us"] = np.nan
    out["note"] = note
    if probes is not None:
        _attach(out, probes, window_s)
    return _typed(out, ICMP_ERRORS)


def _attach(out: pd.DataFrame, probes: pd.DataFrame, window_s: float) -> None:
    ok = (out["note"] == "").to_numpy()
    if not ok.any():
        return
    if probes.empty:
        out.loc[ok, "note"] = "quotes no probe sent in the capture before it (within the window)"
        return
    udp = (out["protocol"] == "udp").to_numpy()
    protos = pd.Index(["icmp", "icmpv6", "tcp", "udp"], dtype=object)
    addrs = []
    for c in ("source", "destination"):
        v = probes[c]
        addrs += list(v.cat.categories.astype(object)) if isinstance(v.dtype, pd.CategoricalDtype) else list(v.unique())
    addrs = pd.Index(sorted(set(map(str, addrs))), dtype=object)

    def codes(values, index):
        return index.get_indexer(pd.Index(values, dtype=object))

    ev = pd.DataFrame({
        "ts_ns": out["ts_ns"].to_numpy("int64"), "protocol": codes(out["protocol"].to_numpy(object), protos),
        "source": codes(out["source"].to_numpy(object), addrs),
        "destination": codes(out["destination"].to_numpy(object), addrs),
        "ident": np.nan_to_num(out["ident"].to_numpy("float64"), nan=-1).astype(np.int64),
        "port": np.nan_to_num(out["port"].to_numpy("float64"), nan=-1).astype(np.int64),
        "seq": np.where(udp, -1, np.nan_to_num(out["seq"].to_numpy("float64"), nan=-1)).astype(np.int64),
        "_i": np.arange(len(out))})[ok]
    from .streams import _codes_in, _is
    pr_udp = _is(probes["protocol"], "udp")
    pr = pd.DataFrame({
        "ts_ns": probes["ts_ns"].to_numpy("int64"), "protocol": _codes_in(probes["protocol"], protos),
        "source": _codes_in(probes["source"], addrs), "destination": _codes_in(probes["destination"], addrs),
        "ident": probes["ident"].to_numpy("int64", na_value=-1),
        "port": probes["port"].to_numpy("float64", na_value=-1).astype(np.int64),
        "seq": np.where(pr_udp, -1, probes["seq"].to_numpy("int64", na_value=-1)),
        "request_frame": probes["request_frame"].to_numpy("int64"), "req_ts": probes["ts_ns"].to_numpy("int64")})
    by = ["protocol", "source", "destination", "ident", "port", "seq"]
    m = pd.merge_asof(ev.sort_values("ts_ns", kind="stable"), pr.sort_values("ts_ns", kind="stable"), on="ts_ns",
                      by=by, direction="backward", tolerance=int(window_s * _NS))
    hit = m["request_frame"].notna().to_numpy()
    idx = m["_i"].to_numpy()
    rf = out["request_frame"].to_numpy("float64").copy()
    after = out["error_after_us"].to_numpy("float64").copy()
    rf[idx[hit]] = m["request_frame"].to_numpy("float64")[hit]
    after[idx[hit]] = (m["ts_ns"].to_numpy("float64")[hit] - m["req_ts"].to_numpy("float64")[hit]) / 1e3
    out["request_frame"] = rf
    out["error_after_us"] = after
    note = out["note"].to_numpy(object).copy()
    note[idx[~hit]] = "quotes no probe sent in the capture before it (within the window)"
    out["note"] = note


def attribute_errors(packets: pd.DataFrame, probes: pd.DataFrame, window_s: float = 120.0) -> pd.DataFrame:
    """One row per probe that drew an ICMP/ICMPv6 error, keyed by ``request_frame`` (schema.PROBE_ERRORS):
    the first error's outcome, code, reporter and MTU, and how many errors quoted the probe."""
    e = icmp_errors(packets, probes, window_s)
    e = e[e["request_frame"].notna()]
    if e.empty:
        return _empty(PROBE_ERRORS)
    e = e.sort_values(["request_frame", "ts_ns", "error_frame"], kind="stable")
    n = e.groupby("request_frame").size()
    first = e.drop_duplicates("request_frame")
    out = pd.DataFrame({
        "request_frame": first["request_frame"].to_numpy("int64"), "outcome": first["outcome"].astype(str).to_numpy(),
        "code": first["code"].astype(str).to_numpy(), "reporter": first["reporter"].astype(str).to_numpy(),
        "mtu": first["mtu"].to_numpy("float64", na_value=np.nan), "error_frame": first["error_frame"].to_numpy(),
        "error_after_us": first["error_after_us"].to_numpy(),
        "errors": n.reindex(first["request_frame"]).to_numpy()})
    # a frag-needed/too-big MTU from any of the probe's errors
    mt = e.dropna(subset=["mtu"]).groupby("request_frame")["mtu"].first() if e["mtu"].notna().any() else None
    if mt is not None:
        out["mtu"] = out["request_frame"].map(mt.astype("float64")).to_numpy("float64")
    return _typed(out, PROBE_ERRORS)


def with_error_outcomes(probes: pd.DataFrame, errors: pd.DataFrame) -> pd.DataFrame:
    """The probes table with the errors merged in (the lead's merge, offered here): a probe that was not
    answered or refused (lost, late, unknown) and drew an error takes the error's outcome; columns
    ``error_code``, ``reporter`` and ``mtu`` are added (<NA> elsewhere). Answered probes keep 'answered':
    an error about a duplicate does not undo a reply."""
    out = probes.copy()
    cats = list(out["outcome"].cat.categories) + [c for c in ERROR_OUTCOMES if c not in out["outcome"].cat.categories]
    outcome = out["outcome"].astype(str).to_numpy(object).copy()
    e = errors.set_index("request_frame")
    rf = out["request_frame"].to_numpy("int64")
    has = np.isin(rf, e.index.to_numpy("int64"))
    replace = has & ~np.isin(outcome, ("answered", "refused"))
    eo = e["outcome"].astype(str).reindex(rf).to_numpy(object)
    outcome[replace] = eo[replace]
    out["outcome"] = pd.Categorical(outcome, categories=cats)
    out["error_code"] = pd.Categorical(np.where(replace, e["code"].astype(str).reindex(rf).to_numpy(object), None))
    out["reporter"] = pd.Categorical(np.where(replace, e["reporter"].astype(str).reindex(rf).to_numpy(object), None))
    mtu = e["mtu"].reindex(rf).to_numpy("float64", na_value=np.nan)
    out["mtu"] = pd.array(np.where(replace & ~np.isnan(mtu), mtu, np.nan), dtype="Float64").astype("UInt32")
    return out


def period_errors(probes: pd.DataFrame, period_s: int = 30, by=("protocol", "source", "destination", "port")) -> pd.DataFrame:
    """Per stream and period, how many probes drew each kind of error and from whom — the columns the
    periods table should gain (they stay lost for loss_pct, as CloudWatch counts them): unreachable,
    ttl_exceeded, too_big (frag_needed + packet_too_big), param_problem, reporters ('addr (n), ...')."""
    by = list(by)
    cols = by + ["period_start_ns", "unreachable", "ttl_exceeded", "too_big", "param_problem", "reporters"]
    p = probes[probes["outcome"].astype(str).isin(ERROR_OUTCOMES)]
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
