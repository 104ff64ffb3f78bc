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

from .._jit import njit
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
    if errors is None or errors.empty or _any_in(probes["outcome"], ERROR_OUTCOMES):
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


def _class_of(text: str) -> int:
    """An outcome's class: -1 not judged (``unknown``), 0 answered or refused, 1 lost or late, 2 too big,
    3 another error, 4 any other outcome."""
    if text == "unknown":
        return -1
    if text in ("answered", "refused"):
        return 0
    if text in ("lost", "late"):
        return 1
    if text in _TOO_BIG:
        return 2
    return 3 if text in ERROR_OUTCOMES else 4


def _values(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(values, present) of a numeric column: a nullable column's own buffers (values arbitrary where
    absent), a float column's NaN as absent."""
    a = col.array
    data, mask = getattr(a, "_data", None), getattr(a, "_mask", None)
    if isinstance(data, np.ndarray) and isinstance(mask, np.ndarray):
        return data, ~mask
    v = col.to_numpy("float64", na_value=np.nan)
    return v, ~np.isnan(v)


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


def _any_in(s: pd.Series, values) -> bool:
    """``_in(s, values).any()``; for a categorical column a look for the codes of the categories among
    ``values`` (none: no scan), not a mask of every row."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        want = np.flatnonzero(np.isin(np.array([str(c) for c in s.cat.categories], dtype=object), list(values)))
        codes = s.cat.codes.to_numpy()
        hit = any(bool((codes == c).any()) for c in want.tolist())
        return hit or ("nan" in values and bool((codes < 0).any()))
    return bool(_in(s, values).any())


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


def _row_codes(s: pd.Series, of_text) -> tuple[np.ndarray, np.ndarray]:
    """(code per row, value per code) of a column whose value per row is ``of_text(_str(value))``: a
    categorical column's codes (<NA>: the table's last entry, "nan"'s) and the value of each category,
    or for another column the values per row themselves (codes 0..n-1 into a table of them)."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        table = np.array([of_text(str(c)) for c in s.cat.categories] + [of_text("nan")], np.int64)
        return s.cat.codes.to_numpy(), table
    values = np.array([of_text(t) for t in _str(s).tolist()], np.int64)
    return np.arange(values.size, dtype=np.int64), values


def _text_table(s: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(code per row, rank per code, the texts in rank order) of :func:`_text_rank`, per category of a
    categorical column (<NA>: the last code, "nan")."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        cats = np.array([str(c) for c in s.cat.categories] + ["nan"], dtype=object)
        texts, rank = np.unique(cats, return_inverse=True)
        return s.cat.codes.to_numpy(), rank.reshape(-1).astype(np.int64), texts.astype(object)
    rank, texts = _text_rank(s)
    return rank, np.append(np.arange(texts.size, dtype=np.int64), 0), texts


_NO_TABLE = 1 << 12   # slots of the kernel's first hash table of groups (more groups: a table of 2 × rows)


@njit(nogil=True)
def _size_groups(ocode, otab, size_v, size_ok, pcode, ptab, dcode, dtab, port_v, port_ok, ts, mtu_v, mtu_ok,
                 rows, gid, slots, gkey, gsize, gfirst, gmin, gmax, gcount, named):
    """size_outcomes' rows and groups in one pass: the probes with an outcome judged (class ``otab[code]``
    >= 0; code < 0: the table's last entry) and a size, grouped by (protocol rank, destination rank
    (``ptab``/``dtab`` of the codes, the same rule), port (-1 for none), size) in the order the rows
    first show them. Per kept row (``rows[j]`` its row): ``gid``; per group: its key word (protocol
    << 44 | destination << 17 | port + 1) and size, first kept row, earliest and latest time, the rows
    of each class (``gcount[g, cls]``) and ``named[k]`` the kept rows whose ``mtu`` is there (not NaN).
    Returns (kept rows, groups, named rows), or groups = -1 when more groups than the table holds
    (``slots``: a power of two, -1 filled here; the caller calls again with a larger one)."""
    mask = slots.size - 1
    for k in range(slots.size):
        slots[k] = -1
    n_rows, n_groups, n_named = 0, 0, 0
    for i in range(ocode.size):
        oc = ocode[i]
        c = otab[oc if oc >= 0 else otab.size - 1]
        if c < 0 or not size_ok[i]:
            continue
        pc, dc = pcode[i], dcode[i]
        pr = ptab[pc if pc >= 0 else ptab.size - 1]
        dr = dtab[dc if dc >= 0 else dtab.size - 1]
        port = np.int64(port_v[i]) if port_ok[i] else np.int64(-1)
        sz = np.float64(size_v[i])
        key = (pr << 44) | (dr << 17) | (port + 1)
        hs = np.int64(sz) if np.isfinite(sz) else np.int64(0)
        h = (np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)) ^ (np.uint64(hs) * np.uint64(0xFF51AFD7ED558CCD))
        sl = np.int64((h ^ (h >> np.uint64(29))) & np.uint64(mask))
        while True:
            g = slots[sl]
            if g < 0 or (gkey[g] == key and gsize[g] == sz):
                break
            sl = (sl + 1) & mask
        if g < 0:
            if 2 * (n_groups + 1) > slots.size:
                return n_rows, -1, n_named
            g = n_groups
            n_groups += 1
            slots[sl] = g
            gkey[g] = key
            gsize[g] = sz
            gfirst[g] = n_rows
            gmin[g] = ts[i]
            gmax[g] = ts[i]
            for q in range(5):
                gcount[g, q] = 0
        t = ts[i]
        if t < gmin[g]:
            gmin[g] = t
        if t > gmax[g]:
            gmax[g] = t
        gcount[g, c] += 1
        if mtu_ok[i] and not np.isnan(np.float64(mtu_v[i])):
            named[n_named] = n_rows
            n_named += 1
        rows[n_rows] = i
        gid[n_rows] = g
        n_rows += 1
    return n_rows, n_groups, n_named


def size_outcomes(probes: pd.DataFrame, errors: pd.DataFrame | None = None, packets: pd.DataFrame | None = None,
                  datagrams: pd.DataFrame | None = None, min_probes: int = 3) -> pd.DataFrame:
    """One row per stream and probe size: sent, answered, lost, too-big errors, fragmented, the MTU the
    errors named, and a verdict (schema.MTU_SIZES). Grouped in one compiled pass (:func:`_size_groups`)
    on the category codes, in the order a groupby on the stream's texts, port and size gives
    (tests/reference_mtu.py: the pandas version it replaced)."""
    names = [c.name for c in MTU_SIZES]
    p = _with_errors(probes, errors)
    ocode, otab = _row_codes(p["outcome"], _class_of)
    size_v, has_size = _values(p["size"])
    pcode, ptab, ptext = _text_table(p["protocol"])
    dcode, dtab, dtext = _text_table(p["destination"])
    port_v, has_port = _values(p["port"])
    mtu_v, has_mtu = _values(p["mtu"]) if "mtu" in p.columns else (np.zeros(len(p), np.uint32), np.zeros(len(p), bool))
    assert ptab.size < 1 << 19 and dtab.size < 1 << 27
    ts_all = p["ts_ns"].to_numpy("int64")
    n = len(p)
    rows, gid, named = np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.int64)
    for size in (_NO_TABLE, max(16, 1 << int(2 * n).bit_length())):
        cap = size // 2 + 1
        gkey, gsize, gfirst = np.empty(cap, np.int64), np.empty(cap, np.float64), np.empty(cap, np.int64)
        gmin, gmax, gcount = np.empty(cap, np.int64), np.empty(cap, np.int64), np.empty((cap, 5), np.int64)
        k, G, n_named = _size_groups(ocode, otab, size_v, has_size, pcode, ptab, dcode, dtab, port_v, has_port,
                                     ts_all, mtu_v, has_mtu, rows, gid, np.empty(size, np.int64), gkey, gsize,
                                     gfirst, gmin, gmax, gcount, named)
        if G >= 0:
            break
    if not k:
        return _typed(pd.DataFrame({c: [] for c in names}), MTU_SIZES)
    rows, gid = rows[:k], gid[:k]
    # the groups in the order of (protocol, destination, port, size)
    order = np.lexsort((gsize[:G], gkey[:G]))
    rank = np.empty(G, np.int64)
    rank[order] = np.arange(G)
    gid = rank[gid]
    first, first_ns, last_ns = gfirst[order], gmin[order], gmax[order]
    counts = gcount[order]
    sent = counts.sum(axis=1)
    key = gkey[order]
    port = (key & 0x1FFFF) - 1
    hdr = _ip_header(p, rows[first])       # at the groups' first rows: a stream has one header length
    frag = _fragmented(p, packets, datagrams, rows)
    n_frag = np.bincount(gid[frag], minlength=G).astype(np.int64) if frag.any() else np.zeros(G, np.int64)
    g_mtu = np.full(G, np.nan)
    if n_named:       # the errors' MTU: the most common per group, ties to the smallest (Series.mode)
        at = named[:n_named]
        mtu = mtu_v[rows[at]].astype(np.float64)
        m = pd.DataFrame({"g": gid[at], "m": mtu}).value_counts().reset_index(name="n")
        m = m.sort_values(["g", "n", "m"], ascending=[True, False, True], kind="stable").drop_duplicates("g")
        g_mtu[m["g"].to_numpy()] = m["m"].to_numpy("float64")
    out = pd.DataFrame({
        "protocol": ptext[key >> 44], "destination": dtext[(key >> 17) & ((1 << 27) - 1)], "port": port,
        "size": gsize[order], "first_ns": first_ns, "last_ns": last_ns, "sent": sent.astype(np.int64),
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
    # (a filter of the whole table only when some are)
    if "reporter" in p.columns and _any_in(p["outcome"], _TOO_BIG):
        tb = p[_in(p["outcome"], _TOO_BIG)]
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
    if packets is None or packets.empty or _any_in(p["outcome"], _TOO_BIG):
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
