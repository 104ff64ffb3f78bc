"""Probe size against outcome: does the path carry each size, and what is its MTU (schema.MTU_SIZES,
schema.MTU).

Network Monitor probes may be 56 to 8,500 bytes. A path whose MTU is smaller either fragments them
(they arrive in pieces and are answered), drops them silently (a black hole: every probe above some size
is lost and nothing says why), or answers "fragmentation needed" (ICMP type 3 code 4) / "packet too big"
(ICMPv6 type 2) naming the next-hop MTU. Per stream: the largest size answered, the smallest size above
it never answered, the path's behaviour and the MTU — named by the routers when they say it, the largest
fragment's IP length when the path fragments, bounds otherwise.

Inputs: the probes table (error outcomes already merged, e.g. by errors_icmp.with_error_outcomes, or
the PROBE_ERRORS table given as ``errors``), and optionally the packets table and the DATAGRAMS table to
see which probes crossed in fragments.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..schema import ERROR_OUTCOMES, MTU, MTU_SIZES, PATH_KINDS, STREAM_KEYS, typed

__all__ = ["path_mtu", "size_outcomes"]

_KEYS = list(STREAM_KEYS)
_TOO_BIG = ("frag_needed", "packet_too_big")


def _str(s: pd.Series) -> pd.Series:
    """A column's values as Python strings (object dtype; "nan" where missing, as ``astype(str)``), from the
    categories of a categorical column rather than from each row."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        cats = np.array([str(c) for c in s.cat.categories] + ["nan"], dtype=object)
        return pd.Series(cats[s.cat.codes.to_numpy()], index=s.index, dtype=object)
    return s.astype(str)


def _with_errors(probes: pd.DataFrame, errors: pd.DataFrame | None) -> pd.DataFrame:
    if errors is None or errors.empty or _in(probes["outcome"], ERROR_OUTCOMES).any():
        return probes
    from .errors_icmp import with_error_outcomes
    return with_error_outcomes(probes, errors)


def _fragmented(probes: pd.DataFrame, packets: pd.DataFrame | None, datagrams: pd.DataFrame | None,
                rows: np.ndarray | None = None) -> np.ndarray:
    """True where the probe's request or reply was (the offset-0 fragment of) a fragmented datagram
    (``rows``: only these probes)."""
    n = len(probes) if rows is None else rows.size
    out = np.zeros(n, bool)
    frames = set()
    if datagrams is not None and len(datagrams):
        frames |= set(datagrams["offset0_frame"].dropna().astype("int64").tolist())
        frames |= set(datagrams["first_frame"].astype("int64").tolist())
    if packets is not None and len(packets):
        f = _true(packets["ip_mf"]) | _positive(packets["frag_offset"])
        if f.any():
            frames |= set(packets["frame"].to_numpy("int64")[f].tolist())
    if not frames:
        return out
    fr = np.fromiter(frames, np.int64)
    req = probes["request_frame"].to_numpy("int64")
    rep = probes["reply_frame"].to_numpy("float64", na_value=-1).astype(np.int64)
    if rows is not None:
        req, rep = req[rows], rep[rows]
    out |= np.isin(req, fr)
    out |= np.isin(rep, fr)
    return out


def _has_colon(s: pd.Series) -> np.ndarray:
    """Whether each address is an IPv6 one (has a ':'), decided once per category of a categorical column."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        per = np.array([":" in str(c) for c in s.cat.categories] + [False], bool)
        return per[s.cat.codes.to_numpy()]
    return s.astype(str).str.contains(":").to_numpy()


def _ip_header(probes: pd.DataFrame, rows: np.ndarray | None = None) -> np.ndarray:
    """The IP header length of each probe (of ``rows`` only, if given): 40 for ICMPv6 or an IPv6
    destination, else 20."""
    proto, dst = probes["protocol"], probes["destination"]
    if rows is not None:
        proto, dst = proto.iloc[rows], dst.iloc[rows]
    v6 = _in(proto, ("icmpv6",)) | _has_colon(dst)
    return np.where(v6, 40, 20)


def _outcome_class(s: pd.Series) -> np.ndarray:
    """Per probe: -1 not judged (``unknown``), 0 answered or refused, 1 lost or late, 2 too big, 3 another
    error, 4 any other outcome; decided once per category of a categorical column (int64)."""
    def of(text: str) -> int:
        if text == "unknown":
            return -1
        if text in ("answered", "refused"):
            return 0
        if text in ("lost", "late"):
            return 1
        if text in _TOO_BIG:
            return 2
        return 3 if text in ERROR_OUTCOMES else 4
    if isinstance(s.dtype, pd.CategoricalDtype):
        per = np.array([of(str(c)) for c in s.cat.categories] + [of("nan")], np.int64)
        return per[s.cat.codes.to_numpy()]
    return np.array([of(t) for t in _str(s).tolist()], np.int64)


def _values(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(values, present) of a numeric column: a nullable column's own buffers (values arbitrary where
    absent), a float column's NaN as absent."""
    a = col.array
    data, mask = getattr(a, "_data", None), getattr(a, "_mask", None)
    if isinstance(data, np.ndarray) and isinstance(mask, np.ndarray):
        return data, ~mask
    v = col.to_numpy("float64", na_value=np.nan)
    return v, ~np.isnan(v)


def _floats_at(col: pd.Series, rows: np.ndarray) -> np.ndarray:
    """col[rows] as float64 with NaN where absent."""
    v, ok = _values(col)
    out = v[rows].astype(np.float64)
    out[~ok[rows]] = np.nan
    return out


def _dense_rank(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rank of each value among the distinct values, the distinct values ascending): ``np.unique(x,
    return_inverse=True)``, by marking the values in a table when they are integers in a short range
    (sizes, packed keys of few streams), else by hashing (the distinct values are few) instead of
    sorting all."""
    if (x.size and x.dtype.kind in "iu") or (x.size and x.dtype.kind == "f" and bool(np.isfinite(x).all())
                                           and bool((x == np.floor(x)).all())):
        lo, hi = x.min(), x.max()
        if int(hi) - int(lo) < max(4 * x.size, 1 << 16):
            off = (x - lo).astype(np.int64)
            seen = np.zeros(int(hi) - int(lo) + 1, bool)
            seen[off] = True
            rank = np.cumsum(seen) - 1
            return rank[off], (np.flatnonzero(seen) + lo).astype(x.dtype)
    return _dense_rank_hashed(x)


def _dense_rank_hashed(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rank of each value among the distinct values, the distinct values ascending): ``np.unique(x,
    return_inverse=True)`` reversed, by hashing (the distinct values are few) instead of sorting all."""
    codes, uniq = pd.factorize(x)
    order = np.argsort(uniq, kind="stable")
    rank = np.empty(order.size, np.int64)
    rank[order] = np.arange(order.size)
    return rank[codes], np.asarray(uniq)[order]


def _true(col: pd.Series) -> np.ndarray:
    """A nullable boolean column as a numpy mask, <NA> false (from its values and mask: no copy of the
    column into objects)."""
    a = col.array
    data, mask = getattr(a, "_data", None), getattr(a, "_mask", None)
    if isinstance(data, np.ndarray) and isinstance(mask, np.ndarray) and data.dtype == bool:
        return data & ~mask
    return col.to_numpy(bool, na_value=False)


def _positive(col: pd.Series) -> np.ndarray:
    """``col > 0`` with <NA> false, on a nullable integer column's own values (no int64 copy)."""
    a = col.array
    data, mask = getattr(a, "_data", None), getattr(a, "_mask", None)
    if isinstance(data, np.ndarray) and isinstance(mask, np.ndarray) and data.dtype.kind in "iu":
        return (data > 0) & ~mask
    return col.to_numpy("int64", na_value=0) > 0


def _equal(col: pd.Series, value: int) -> np.ndarray:
    """``col == value`` with <NA> false, on a nullable integer column's own values (no int64 copy)."""
    a = col.array
    data, mask = getattr(a, "_data", None), getattr(a, "_mask", None)
    if isinstance(data, np.ndarray) and isinstance(mask, np.ndarray) and data.dtype.kind in "iu":
        info = np.iinfo(data.dtype)
        if not info.min <= value <= info.max:
            return np.zeros(len(data), bool)
        return (data == value) & ~mask
    return col.to_numpy("int64", na_value=-1) == value


def _in(s: pd.Series, values) -> np.ndarray:
    """``_str(s).isin(values)`` as a numpy mask, decided once per category of a categorical column."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        per = np.append(np.isin(np.array([str(c) for c in s.cat.categories], dtype=object), list(values)),
                        "nan" in values)
        return per[s.cat.codes.to_numpy()]
    return _str(s).isin(values).to_numpy()


def _text_rank(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(rank of each row's ``_str`` value among the column's distinct texts, the texts in rank order): what
    sorting by the text gives, computed per category of a categorical column."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        cats = np.array([str(c) for c in s.cat.categories] + ["nan"], dtype=object)
        code = s.cat.codes.to_numpy().astype(np.int64)
        code = np.where(code < 0, cats.size - 1, code)
    else:
        cats, code = np.unique(s.astype(str).to_numpy(dtype=object), return_inverse=True)
        cats = cats.astype(object)
    texts, rank = np.unique(cats, return_inverse=True)
    return rank[code].astype(np.int64), texts.astype(object)


def _text_codes(s: pd.Series, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_text_rank` at ``rows`` only: (rank of each of those rows' ``_str`` value among the
    column's distinct texts, the texts in rank order)."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        cats = np.array([str(c) for c in s.cat.categories] + ["nan"], dtype=object)
        texts, rank = np.unique(cats, return_inverse=True)
        code = s.cat.codes.to_numpy()[rows].astype(np.int64)
        code[code < 0] = cats.size - 1
        return rank.reshape(-1)[code].astype(np.int64), texts.astype(object)
    rank, texts = _text_rank(s)
    return rank[rows], texts


def size_outcomes(probes: pd.DataFrame, errors: pd.DataFrame | None = None, packets: pd.DataFrame | None = None,
                  datagrams: pd.DataFrame | None = None, min_probes: int = 3) -> pd.DataFrame:
    """One row per stream and probe size: sent, answered, lost, too-big errors, fragmented, the MTU the
    errors named, and a verdict (schema.MTU_SIZES). Grouped with numpy on the category codes, in the
    order a groupby on the stream's texts, port and size gives (tests/reference_mtu.py: the pandas
    version it replaced)."""
    names = [c.name for c in MTU_SIZES]
    p = _with_errors(probes, errors)
    cls = _outcome_class(p["outcome"])
    size_f, has_size = _values(p["size"])
    rows = np.flatnonzero((cls >= 0) & has_size)
    if not rows.size:
        return _typed(pd.DataFrame({c: [] for c in names}), MTU_SIZES)
    cls = cls[rows]
    mtu = _floats_at(p["mtu"], rows) if "mtu" in p.columns else np.full(rows.size, np.nan)
    prank, ptext = _text_codes(p["protocol"], rows)
    drank, dtext = _text_codes(p["destination"], rows)
    port_v, has_port = _values(p["port"])
    port = np.where(has_port[rows], port_v[rows].astype(np.int64), -1)
    size = size_f[rows].astype(np.float64)
    srank, sizes = _dense_rank(size)
    prt, ports = _dense_rank(port)
    # groups in the order of (protocol, destination, port, size): the ranks packed in one key (a short
    # range of integers for few streams: counted in a table, not hashed)
    gid, uniq = _dense_rank(((prank * len(dtext) + drank) * len(ports) + prt) * len(sizes) + srank)
    G = uniq.size
    sent = np.bincount(gid, minlength=G)
    first = np.empty(G, np.int64)
    first[gid[::-1]] = np.arange(rows.size - 1, -1, -1)     # each group's first row
    ts = p["ts_ns"].to_numpy("int64")[rows]
    if ts.size < 2 or bool((ts[1:] >= ts[:-1]).all()):      # in time order (a probes table is): the first
        last = np.empty(G, np.int64)                        # and last rows hold the extremes
        last[gid] = np.arange(rows.size)
        first_ns, last_ns = ts[first], ts[last]
    else:
        first_ns = np.full(G, np.iinfo(np.int64).max, np.int64)
        last_ns = np.full(G, np.iinfo(np.int64).min, np.int64)
        np.minimum.at(first_ns, gid, ts)
        np.maximum.at(last_ns, gid, ts)
    counts = np.bincount(gid * 5 + cls, minlength=G * 5).reshape(G, 5).astype(np.int64)   # one pass: every class
    hdr = _ip_header(p, rows[first])       # at the groups' first rows: a stream has one header length
    frag = _fragmented(p, packets, datagrams, rows)
    n_frag = np.bincount(gid[frag], minlength=G).astype(np.int64) if frag.any() else np.zeros(G, np.int64)
    g_mtu = np.full(uniq.size, np.nan)
    named = np.flatnonzero(~np.isnan(mtu))
    if named.size:       # the errors' MTU: the most common per group, ties to the smallest (Series.mode)
        m = pd.DataFrame({"g": gid[named], "m": mtu[named]}).value_counts().reset_index(name="n")
        m = m.sort_values(["g", "n", "m"], ascending=[True, False, True], kind="stable").drop_duplicates("g")
        g_mtu[m["g"].to_numpy()] = m["m"].to_numpy("float64")
    out = pd.DataFrame({
        "protocol": ptext[prank[first]], "destination": dtext[drank[first]], "port": port[first],
        "size": size[first], "first_ns": first_ns, "last_ns": last_ns, "sent": sent.astype(np.int64),
        "answered": counts[:, 0], "lost": counts[:, 1], "too_big": counts[:, 2], "other_errors": counts[:, 3],
        "fragmented": n_frag, "hdr": hdr, "mtu": g_mtu})
    out["ip_len"] = out["size"] + out["hdr"]
    out["verdict"] = np.select([out["answered"] > 0, out["sent"] >= min_probes], ["pass", "fail"], "few")
    return _typed(out[names], MTU_SIZES)


def path_mtu(probes: pd.DataFrame, errors: pd.DataFrame | None = None, packets: pd.DataFrame | None = None,
             datagrams: pd.DataFrame | None = None, min_probes: int = 3) -> pd.DataFrame:
    """One row per stream: largest size that passes, smallest that fails, how the path treats the rest
    (fits, fragments, black_hole, frag_needed, packet_too_big, unknown) and the MTU (schema.MTU)."""
    sizes = size_outcomes(probes, errors, packets, datagrams, min_probes)
    names = [c.name for c in MTU]
    if sizes.empty:
        return _typed(pd.DataFrame({c: [] for c in names}), MTU)
    p = _with_errors(probes, errors)
    rep = {}
    too_big = _in(p["outcome"], _TOO_BIG)
    if "reporter" in p.columns and too_big.any():      # (a filter of the whole table only when some are)
        tb = p[too_big]
        for key, g in tb.groupby([_str(tb["protocol"]), _str(tb["destination"]),
                                  tb["port"].to_numpy("float64", na_value=-1).astype(np.int64)]):
            rep[key] = ",".join(sorted(set(_str(g["reporter"]))))
    frag_len = _largest_fragments(p, packets, datagrams)
    loose = _unattributed_too_big(p, packets)
    rows = []
    s = sizes.assign(port_k=sizes["port"].to_numpy("float64", na_value=-1).astype(np.int64),
                     protocol=_str(sizes["protocol"]), destination=_str(sizes["destination"]))
    for key, g in s.groupby(["protocol", "destination", "port_k"], sort=True):   # per stream
        rows.append(_decide(key, g, rep.get(key, ""), frag_len.get(key), loose.get(key)))
    out = pd.DataFrame(rows, columns=["protocol", "destination", "port"] + names[3:])
    return _typed(out, MTU)


def _largest_fragments(p: pd.DataFrame, packets, datagrams) -> dict:
    """Largest IP length among the fragments of each stream's probes (a fragmenting path's MTU)."""
    if packets is None or datagrams is None or datagrams.empty:
        return {}
    from .datagrams import datagram_fragments
    fr = datagram_fragments(packets)
    if fr.empty:
        return {}
    iplen = packets["ip_len"].to_numpy("float64", na_value=np.nan)[fr["row"].to_numpy()]
    biggest = pd.Series(iplen).groupby(fr["datagram"].to_numpy()).max()
    zero = fr[fr["start"] == 0].drop_duplicates("datagram")
    by_frame = pd.Series(biggest.reindex(zero["datagram"].to_numpy()).to_numpy(), index=zero["frame"].to_numpy())
    by_frame = by_frame[~by_frame.index.duplicated()]
    req = by_frame.reindex(p["request_frame"].to_numpy("int64")).to_numpy("float64")
    rep = by_frame.reindex(p["reply_frame"].to_numpy("float64", na_value=-1).astype(np.int64)).to_numpy("float64")
    m = np.fmax(req, rep)
    d = pd.DataFrame({"protocol": _str(p["protocol"]).to_numpy(),
                      "destination": _str(p["destination"]).to_numpy(),
                      "port": p["port"].to_numpy("float64", na_value=-1).astype(np.int64), "m": m}).dropna()
    if d.empty:
        return {}
    return {k: int(v) for k, v in d.groupby(["protocol", "destination", "port"])["m"].max().items()}


def _unattributed_too_big(p: pd.DataFrame, packets) -> dict:
    """Frag-needed / packet-too-big errors sent to a stream's sources when the probes carry no error
    outcome (a packets table without the quoted_* columns): (count, reporters) per stream."""
    if packets is None or packets.empty or _in(p["outcome"], _TOO_BIG).any():
        return {}
    typ = packets["icmp_type"]
    m = _equal(typ, 3) | _equal(typ, 2)          # few ICMP errors: the protocol and code only for those
    if m.any():
        m &= (_equal(packets["ip_proto"], 1) & _equal(typ, 3) & _equal(packets["icmp_code"], 4)) | \
            (_equal(packets["ip_proto"], 58) & _equal(typ, 2))
    if not m.any():
        return {}
    err = pd.DataFrame({"to": packets.loc[m, "dst"].astype(str).to_numpy(),
                        "by": packets.loc[m, "src"].astype(str).to_numpy()})
    out = {}
    srcs = p.assign(port_k=p["port"].to_numpy("float64", na_value=-1).astype(np.int64))
    for key, g in srcs.groupby([_str(srcs["protocol"]), _str(srcs["destination"]), "port_k"]):
        e = err[err["to"].isin(set(_str(g["source"])))]
        if len(e):
            out[key] = (len(e), ",".join(sorted(set(e["by"]))))
    return out


def _decide(key, g: pd.DataFrame, reporters: str, frag_len, loose=None):
    g = g.sort_values("size")
    size = g["size"].to_numpy("int64")
    iplen = g["ip_len"].to_numpy("int64")
    verdict = _str(g["verdict"]).to_numpy()
    passed = verdict == "pass"
    failed = verdict == "fail"
    largest = int(size[passed].max()) if passed.any() else None
    above = failed & (size > (largest if largest is not None else -1))
    smallest = int(size[above].min()) if above.any() else None
    big = g["too_big"].to_numpy() > 0
    mtu_named = g["mtu"].dropna()
    mtu_named = int(mtu_named.mode().iloc[0]) if len(mtu_named) else None
    fragmented = int(g["fragmented"].sum())
    lo = int(iplen[passed].max()) if passed.any() else None
    hi = int(iplen[size == smallest][0]) if smallest is not None else None
    proto = key[0]
    if big.any():
        kind = "packet_too_big" if proto == "icmpv6" or ":" in key[1] else "frag_needed"
        mtu = mtu_named
        why = (f"{int(g['too_big'].sum())} probe(s) of {', '.join(str(x) for x in size[big])} bytes answered "
               f"'{'packet too big' if kind == 'packet_too_big' else 'fragmentation needed'}'"
               + (f" naming MTU {mtu}" if mtu else " (no MTU column to read it from)")
               + (f" from {reporters}" if reporters else ""))
    elif smallest is not None and largest is not None and loose:
        kind = "packet_too_big" if proto == "icmpv6" or ":" in key[1] else "frag_needed"
        mtu, reporters = None, loose[1]
        why = (f"sizes up to {largest} answered, {smallest} and above never; the capture holds {loose[0]} "
               f"'{'packet too big' if kind == 'packet_too_big' else 'fragmentation needed'}' error(s) to its "
               f"sources from {loose[1]}, not attributed to probes (the packets table lacks the quoted_* "
               f"columns); the MTU is {lo} to {hi - 1} IP bytes")
    elif smallest is not None and largest is not None:
        kind, mtu = "black_hole", None
        why = (f"sizes up to {largest} answered, {smallest} and above never ({int(g.loc[above, 'sent'].sum())} "
               f"probe(s)) and no ICMP error: a black hole; the MTU is {lo} to {hi - 1} IP bytes")
    elif smallest is not None:
        kind, mtu = "unknown", None
        why = "no size was answered: size does not decide the outcome"
    elif fragmented:
        kind, mtu = "fragments", frag_len
        why = (f"{fragmented} probe(s) crossed in fragments and were answered"
               + (f"; the largest fragment is {frag_len} IP bytes" if frag_len else ""))
    else:
        kind, mtu = "fits", None
        why = f"every size answered whole (largest {largest} bytes = {lo} IP bytes)"
    if kind == "fragments" and frag_len:
        lo = max(lo or 0, frag_len)
    if largest is not None and smallest is not None and smallest < largest:
        kind, why = "unknown", why + "; but smaller sizes failed too"
    return (key[0], key[1], key[2] if key[2] >= 0 else None, len(size), largest, smallest, kind, mtu, lo, hi,
            reporters, why)


def _typed(out: pd.DataFrame, columns) -> pd.DataFrame:
    return typed(out.reset_index(drop=True), columns, categories={"path": PATH_KINDS, "verdict": ("pass", "fail", "few")},
                 negative_na=("port",))
