"""The pandas ICMP-error attribution that probekit.analysis.errors_icmp replaced (maps, a boolean take of
the packets table, merge_asof by identity, groupby), kept as the reference its vectorised and compiled
version is tested against (tests/test_errors_icmp.py). Not used by probekit itself.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from probekit.analysis.errors_icmp import _empty, _num, _typed, has_quoted_columns
from probekit.schema import ERROR_OUTCOMES, ICMP_ERRORS, PROBE_ERRORS

__all__ = ["attribute_errors", "icmp_errors", "with_error_outcomes"]

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


def _obj(s: pd.Series) -> np.ndarray:
    """Text values as an object array (None for missing)."""
    return s.astype(object).where(s.notna(), None).to_numpy()


def _is(s: pd.Series, value: str) -> np.ndarray:
    return (s.astype(object) == value).to_numpy()


def _codes_in(s: pd.Series, cats: pd.Index) -> np.ndarray:
    return cats.get_indexer(s.astype(object)).astype(np.int64)


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
    pr_udp = _is(probes["protocol"], "udp")
    pr = pd.DataFrame({
        "ts_ns": probes["ts_ns"].to_numpy("int64"), "protocol": _codes_in(probes["protocol"], protos),
        "source": _codes_in(probes["source"], addrs), "destination": _codes_in(probes["destination"], addrs),
        "ident": probes["ident"].to_numpy("int64", na_value=-1),
        # the request's own destination port (a tracer probe's ``port`` is its stream's lowest)
        "port": probes["dst_port" if "dst_port" in probes.columns else "port"].to_numpy("float64", na_value=-1)
        .astype(np.int64),
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
    # exact: the difference of the integer times (the original took it in float64 epoch ns, ±256 ns)
    req_ts = pd.Series(probes["ts_ns"].to_numpy("int64"), index=probes["request_frame"].to_numpy("int64"))
    req_ts = req_ts[~req_ts.index.duplicated()]
    hit_rf = m["request_frame"].to_numpy("float64")[hit].astype("int64")
    after[idx[hit]] = (m["ts_ns"].to_numpy("int64")[hit] - req_ts.loc[hit_rf].to_numpy("int64")) / 1e3
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
    """errors_icmp.with_error_outcomes as it was before its no-error fast paths (issue 16), verbatim: a probe that was not
    answered or refused (lost, late, unknown) and drew an error takes the error's outcome; columns
    ``error_code``, ``reporter`` and ``mtu`` are added (<NA> elsewhere). Answered probes keep 'answered':
    an error about a duplicate does not undo a reply."""
    out = probes.copy()
    cats = list(out["outcome"].cat.categories) + [c for c in ERROR_OUTCOMES if c not in out["outcome"].cat.categories]
    codes = out["outcome"].cat.set_categories(cats).cat.codes.to_numpy().astype(np.int64)
    rf = out["request_frame"].to_numpy("int64")
    pos = pd.Index(errors["request_frame"].to_numpy("int64")).get_indexer(rf) if len(errors) else np.full(len(rf), -1)
    kept = np.isin(codes, [cats.index(c) for c in ("answered", "refused") if c in cats])
    replace = (pos >= 0) & ~kept
    at = np.where(replace, pos, 0)

    def taken(col: pd.Series) -> pd.Categorical:
        """errors[col] at each replaced probe, <NA> elsewhere: categories the values present, sorted."""
        if not replace.any():
            return pd.Categorical(np.full(len(rf), None, dtype=object))
        c = pd.Categorical(col.astype(str).to_numpy(object))
        got = np.where(replace, c.codes[at], -1)
        return pd.Categorical.from_codes(got, categories=c.categories).remove_unused_categories()

    if len(errors):
        e_codes = pd.Index(cats).get_indexer(errors["outcome"].astype(str).to_numpy(object))
        codes = np.where(replace, e_codes[at], codes)
    out["outcome"] = pd.Categorical.from_codes(codes, categories=cats)
    out["error_code"] = taken(errors["code"])
    out["reporter"] = taken(errors["reporter"])
    mtu = errors["mtu"].to_numpy("float64", na_value=np.nan)[at] if len(errors) else np.full(len(rf), np.nan)
    out["mtu"] = pd.array(np.where(replace & ~np.isnan(mtu), mtu, np.nan), dtype="Float64").astype("UInt32")
    return out
