"""Plain reference of probekit/analysis/datagrams.py: the implementation before the compiled assembly
(b77021f), its kernel run as plain Python, with the same rules since added (the IPv6 fragment's data
after its Fragment header, Linux's first-fragment header check). The tests hold the module equal to it on
every corpus fragment file, the fragment scenarios and fuzzed chains; the capture's bytes (where an IPv6
Fragment header ends, a chain walked past the first fragment) come from the module's own byte helpers,
which the tests check against tshark."""
from __future__ import annotations

import numpy as np
import pandas as pd

from probekit.analysis.datagrams import (
    _agreement,
    _bad_length_note,
    _chain_protocols,
    _fragment_data,
    fragment_headers,
    fragment_rows,
)
from probekit.schema import DATAGRAM_COLUMNS, DATAGRAM_REASONS, DATAGRAMS

__all__ = ["datagram_fragments", "datagram_payloads", "datagrams", "fragment_rows", "reassembled_packets"]

_NS = 1_000_000_000
R_COMPLETE, R_CONFLICT, R_INCOMPLETE, R_TIMEOUT, R_OVERLAP, R_TAILS, R_BEYOND, R_BADLEN = range(8)
MAX_END = 65535


def _reassemble(grp, ts, start, end, last, v6, cut, hdr, timeout_ns, policy, capture_end_ns):
    """Walk fragments sorted by (key, arrival). Returns per fragment: datagram, used, overlapping; per
    datagram: first and last fragment index, end (-1 unknown), bytes received, reason, used, dropped."""
    n = grp.shape[0]
    dg = np.full(n, -1, np.int64)
    used = np.zeros(n, np.int8)
    ovl = np.zeros(n, np.int8)
    eff = end.copy()
    d_first = np.zeros(n, np.int64)
    d_last = np.zeros(n, np.int64)
    d_total = np.full(n, -1, np.int64)
    d_recv = np.zeros(n, np.int64)
    d_reason = np.full(n, -1, np.int8)
    d_used = np.zeros(n, np.int32)
    d_drop = np.zeros(n, np.int32)
    d_bad = np.zeros(n, np.int8)
    d_clip = np.zeros(n, np.int8)
    d_cut = np.zeros(n, np.int8)
    d_hdr0 = np.full(n, -1, np.int64)
    acc_s = np.zeros(n, np.int64)
    acc_e = np.zeros(n, np.int64)
    nacc = 0
    cur = -1
    state = 0            # 0: closed (or none), 1: open
    for i in range(n):
        newdg = cur < 0 or state != 1 or grp[i] != grp[i - 1] or ts[i] - ts[d_first[cur]] > timeout_ns[i]
        if newdg:
            if cur >= 0 and state == 1:
                f = d_first[cur]
                d_reason[cur] = R_TIMEOUT if capture_end_ns - ts[f] > timeout_ns[f] else R_INCOMPLETE
                if d_bad[cur]:
                    d_reason[cur] = R_BADLEN
            cur += 1
            d_first[cur] = i
            nacc = 0
            state = 1
        dg[i] = cur
        d_last[cur] = i
        if cut[i] and policy == 0:
            d_cut[cur] = 1
            d_drop[cur] += 1
            continue
        s = start[i]
        e = end[i]
        ln = e - s
        if ln > 0 and not last[i] and ln % 8 != 0:
            if v6[i]:
                ln = -1              # RFC 8200: discard the fragment
            elif policy == 0:
                e = s + (ln & ~7)    # Linux trims a non-last IPv4 fragment to a multiple of 8
                ln = e - s
        if ln == 0 and policy == 0:  # Linux ip_frag_queue / ip6_frag_queue: end == offset discards the queue
            d_bad[cur] = 1
            d_reason[cur] = R_BADLEN
            d_drop[cur] += 1
            state = 0
            continue
        if ln <= 0 or (e > MAX_END and (v6[i] or policy != 0)):
            d_bad[cur] = 1           # IPv6: past 65535 the fragment is discarded (RFC 8200 4.5)
            d_drop[cur] += 1
            continue
        total = d_total[cur]
        if last[i]:
            if total >= 0 and total != e:
                d_reason[cur] = R_TAILS
                d_drop[cur] += 1
                state = 0
                continue
            beyond = False
            for j in range(nacc):
                if acc_e[j] > e:
                    beyond = True
            if beyond:
                if policy == 0:
                    d_reason[cur] = R_BEYOND
                    d_drop[cur] += 1
                    state = 0
                    continue
                d_clip[cur] = 1
                for j in range(nacc):
                    acc_e[j] = min(acc_e[j], e)
            d_total[cur] = e
            total = e
        elif total >= 0 and e > total:
            if policy == 0:
                d_reason[cur] = R_BEYOND
                d_drop[cur] += 1
                state = 0
                continue
            d_clip[cur] = 1
            e = total
            if e <= s:
                d_drop[cur] += 1
                continue
        kind = 0             # 1 exact duplicate, 2 inside received bytes, 3 partial overlap
        for j in range(nacc):
            if s < acc_e[j] and acc_s[j] < e:
                if s == acc_s[j] and e == acc_e[j]:
                    k = 1
                elif s >= acc_s[j] and e <= acc_e[j]:
                    k = 2
                else:
                    k = 3
                kind = max(kind, k)
        if kind > 0:
            ovl[i] = 1
        if policy == 0:
            if kind == 1 or (kind == 2 and not v6[i]):
                d_drop[cur] += 1
                continue
            if kind >= 2:
                d_reason[cur] = R_OVERLAP
                d_drop[cur] += 1
                state = 0
                continue
        elif kind == 1 or kind == 2:
            d_drop[cur] += 1
            continue
        # accept: insert keeping acc sorted by start, then the union length
        j = nacc
        while j > 0 and acc_s[j - 1] > s:
            acc_s[j] = acc_s[j - 1]
            acc_e[j] = acc_e[j - 1]
            j -= 1
        acc_s[j] = s
        acc_e[j] = e
        nacc += 1
        used[i] = 1
        eff[i] = e
        d_used[cur] += 1
        recv = 0
        hi = -1
        for j in range(nacc):
            a = acc_s[j]
            b = acc_e[j]
            if a > hi:
                recv += b - a
                hi = b
            elif b > hi:
                recv += b - hi
                hi = b
        d_recv[cur] = recv
        if s == 0 and d_hdr0[cur] < 0:
            d_hdr0[cur] = hdr[i]
        if total >= 0 and recv == total:
            d_reason[cur] = R_COMPLETE
            if policy == 0 and not v6[i] and d_hdr0[cur] + total > MAX_END:
                d_reason[cur] = R_BADLEN     # Linux ip_frag_reasm: header + payload past 65535 (oversize)
                d_bad[cur] = 1
            state = 0
    if cur >= 0 and state == 1:
        f = d_first[cur]
        d_reason[cur] = R_TIMEOUT if capture_end_ns - ts[f] > timeout_ns[f] else R_INCOMPLETE
        if d_bad[cur]:
            d_reason[cur] = R_BADLEN
    m = cur + 1
    return (dg, used, ovl, eff, d_first[:m], d_last[:m], d_total[:m], d_recv[:m], d_reason[:m], d_used[:m],
            d_drop[:m], d_bad[:m], d_clip[:m], d_cut[:m])


def _col(packets: pd.DataFrame, name: str, rows: np.ndarray, dtype="int64", na=0) -> np.ndarray:
    """One column at ``rows`` as numpy (no take of the whole table)."""
    return packets[name].to_numpy(dtype, na_value=na)[rows]


def _inputs(packets: pd.DataFrame, timeout_s):
    rows = fragment_rows(packets)
    l3 = packets["l3"]
    v6_code = l3.cat.categories.get_indexer(["ipv6"])[0] if isinstance(l3.dtype, pd.CategoricalDtype) else -2
    v6 = (l3.cat.codes.to_numpy()[rows] == v6_code) if v6_code != -2 else (l3.astype(object).to_numpy()[rows] == "ipv6")
    src = packets["src"].cat.codes.to_numpy("int64")[rows]
    dst = packets["dst"].cat.codes.to_numpy("int64")[rows]
    proto = np.where(v6, 0, _col(packets, "ip_proto", rows))
    ipid = _col(packets, "ip_id", rows)
    n = np.int64(len(packets["src"].cat.categories) + 1)
    pair = pd.factorize((src + 1) * n + (dst + 1))[0].astype(np.int64) if len(rows) else np.zeros(0, np.int64)
    key = (((pair * 2 + v6) * 256 + proto) << 32) | ipid          # RFC 791 / RFC 8200 reassembly key
    ts = _col(packets, "ts_ns", rows)
    frame = _col(packets, "frame", rows)
    start = _col(packets, "frag_offset", rows)
    hdr, upper, cut, nxt = fragment_headers(packets, rows)
    length = _col(packets, "ip_len", rows) - hdr
    last = ~_col(packets, "ip_mf", rows, "bool", False)
    if timeout_s is None:
        tmo = np.where(v6, 60 * _NS, 30 * _NS).astype(np.int64)
    else:
        tmo = np.full(len(rows), int(timeout_s * _NS), np.int64)
    order = np.lexsort((frame, ts, key))
    return rows[order], key[order], ts[order], start[order], (start + length)[order], last[order], v6[order], \
        tmo[order], frame[order], cut[order], upper[order], hdr[order], nxt[order]


def _run(packets: pd.DataFrame, timeout_s, overlap: str):
    if overlap not in ("rfc", "first"):
        raise ValueError("overlap must be 'rfc' (RFC 5722 / Linux) or 'first' (first bytes win)")
    rows, key, ts, start, end, last, v6, tmo, frame, cut, upper, hdr, nxt = _inputs(packets, timeout_s)
    cap_end = int(packets["ts_ns"].max()) if len(packets) and packets["ts_ns"].notna().any() else 0
    res = _reassemble(key.astype(np.int64), ts, start, end, last, v6, cut, hdr, tmo, 0 if overlap == "rfc" else 1,
                      cap_end)
    frags = pd.DataFrame({"frame": frame, "row": rows, "datagram": res[0], "start": start, "end": res[3],
                          "last": last, "used": res[1].astype(bool), "overlaps": res[2].astype(bool), "ts_ns": ts,
                          "v6": v6, "hdr": hdr, "upper": upper, "nxt": nxt})
    return frags, res


def datagram_fragments(packets: pd.DataFrame, timeout_s: float | None = None, overlap: str = "rfc") -> pd.DataFrame:
    """One row per fragment: frame, row (position in ``packets``), datagram, byte range [start, end) in
    the datagram's IP payload, last (no more-fragments flag), used, overlaps (an earlier fragment of its
    datagram covers some of its bytes), ts_ns; in the kernel's order (key, arrival)."""
    frags, _ = _run(packets, timeout_s, overlap)
    return _renumber(frags)[0]


def _renumber(frags: pd.DataFrame):
    """Datagram numbers in order of first arrival (the kernel numbers them in key order)."""
    if frags.empty:
        return frags, np.zeros(0, np.int64)
    first = frags.groupby("datagram")["frame"].min()
    order = np.argsort(first.to_numpy(), kind="stable")
    new = np.empty(len(order), np.int64)
    new[order] = np.arange(len(order))
    frags = frags.assign(datagram=new[frags["datagram"].to_numpy()])
    return frags, new


def datagrams(packets: pd.DataFrame, timeout_s: float | None = None, overlap: str = "rfc") -> pd.DataFrame:
    """Every fragmented datagram of the capture, reassembled (schema.DATAGRAMS); see the module doc for
    the overlap policy and the timeout."""
    frags, res = _run(packets, timeout_s, overlap)
    _, _, _, _, d_first, d_last, d_total, d_recv, d_reason, d_used, d_drop, d_bad, d_clip, d_cut = res
    nd = len(d_first)
    if nd == 0:
        return _typed(pd.DataFrame({c: [] for c in DATAGRAM_COLUMNS}), packets)
    rr = frags["row"].to_numpy()
    fi = d_first
    # the offset-0 fragment of each datagram (the used one, else any)
    zero = frags.assign(_z=(frags["start"] == 0), _i=np.arange(len(frags)))
    zero = zero[zero["_z"]].sort_values(["datagram", "used", "_i"], ascending=[True, False, True])
    zero = zero.drop_duplicates("datagram")
    z_row = np.full(nd, -1, np.int64)
    z_row[zero["datagram"].to_numpy()] = zero["_i"].to_numpy()
    up = frags["upper"].to_numpy()
    proto = np.where(up >= 0, up, np.nan)
    frame = frags["frame"].to_numpy()
    reason = d_reason.astype(np.int64)
    first_rows = rr[fi]
    sc = packets["src"].cat.codes.to_numpy()[first_rows]
    dc = packets["dst"].cat.codes.to_numpy()[first_rows]
    out = pd.DataFrame({
        "l3": frags["v6"].to_numpy()[fi].astype(np.int8), "src": sc, "dst": dc,
        "ip_proto": np.where(z_row >= 0, proto[np.maximum(z_row, 0)], np.nan),
        "ip_id": _col(packets, "ip_id", first_rows),
        "first_frame": frame[fi],
        "offset0_frame": np.where(z_row >= 0, frame[np.maximum(z_row, 0)], -1),
        "last_frame": frame[d_last], "first_ts_ns": frags["ts_ns"].to_numpy()[fi],
        "last_ts_ns": frags["ts_ns"].to_numpy()[d_last], "fragments": d_used, "dropped": d_drop,
        "payload_len": d_total, "received_len": d_recv, "reason_code": reason, "bad": d_bad, "clipped": d_clip,
        "cut": d_cut, "zi": z_row,
    })
    frags_r, new = _renumber(frags)
    out.index = new
    out = out.sort_index()
    out["datagram"] = np.arange(nd)
    if overlap == "first":
        _mark_conflicts(packets, frags_r, out)
    out["complete"] = out["reason_code"].isin([R_COMPLETE, R_CONFLICT]).to_numpy()
    _chain_protocols(packets, {k: frags_r[k].to_numpy() for k in frags_r.columns}, out, overlap)
    out["reason"] = pd.Categorical.from_codes(out["reason_code"].to_numpy(), categories=list(DATAGRAM_REASONS))
    out["note"] = _notes(out, frags_r, packets, overlap)
    cats = packets["src"].cat.categories
    out["l3"] = pd.Categorical.from_codes(out["l3"].to_numpy(), categories=["ipv4", "ipv6"])
    out["src"] = pd.Categorical.from_codes(out["src"].to_numpy(), categories=cats)
    out["dst"] = pd.Categorical.from_codes(out["dst"].to_numpy(), categories=cats)
    return _typed(out, packets)


def _notes(out: pd.DataFrame, frags: pd.DataFrame, packets: pd.DataFrame, overlap: str) -> list:
    notes = [""] * len(out)
    bad = np.flatnonzero((out["reason"].to_numpy() != "complete") | (out["clipped"].to_numpy() > 0))
    if not bad.size:
        return notes
    byd = {d: g for d, g in frags[frags["datagram"].isin(bad)].groupby("datagram")}
    for d in bad.tolist():          # only the datagrams that went wrong (bad input is rare)
        r = out.iloc[d]
        g = byd.get(d)
        frames = ", ".join(str(f) for f in g["frame"].tolist()) if g is not None else ""
        have = f"{int(r['received_len'])} of {'?' if r['payload_len'] < 0 else int(r['payload_len'])} bytes"
        if r["reason"] in ("complete", "conflict") and r["clipped"]:
            notes[d] = (f"a fragment reached past the end the last fragment set ({int(r['payload_len'])} "
                        f"bytes): clipped (overlap='first'); frames {frames}")
        elif r["reason"] in ("incomplete", "timeout"):
            holes = _holes(g, int(r["payload_len"]))
            when = ("the capture ended" if r["reason"] == "incomplete"
                    else "the reassembly timeout ran out")
            notes[d] = f"fragments missing ({holes}) when {when}: {have} from frame(s) {frames}"
        elif r["reason"] == "overlap":
            o = g[g["overlaps"] | ~g["used"]]
            ex = o.iloc[-1] if len(o) else g.iloc[-1]
            agree = _agreement(packets, g)
            notes[d] = (f"frame {int(ex['frame'])} (bytes {int(ex['start'])}-{int(ex['end'])}) overlaps bytes "
                        f"already received{agree}: datagram discarded ({'RFC 5722' if r['l3'] in (1, 'ipv6') else 'Linux'}"
                        f" policy; overlap='first' keeps it); frames {frames}")
        elif r["reason"] == "conflict":
            notes[d] = f"overlapping fragments disagree; the bytes that arrived first were kept; frames {frames}"
        elif r["reason"] == "multiple_tails":
            notes[d] = f"two last fragments with different ends; datagram discarded; frames {frames}"
        elif r["reason"] == "beyond_end":
            notes[d] = f"a fragment reaches past the end the last fragment set; datagram discarded; frames {frames}"
        elif r["reason"] == "bad_length":
            notes[d] = _bad_length_note(g, r, overlap, have, frames)
        if r["cut"] and g is not None:
            z = g[(g["start"] == 0) & ~g["used"]]
            zf = int(z["frame"].iloc[0]) if len(z) else int(g["frame"].iloc[0])
            notes[d] = (f"frame {zf}: the offset-0 fragment does not hold the upper-layer header after its "
                        f"extension headers, discarded (RFC 8200 4.5; Linux ipv6frag_thdr_truncated); "
                        + notes[d]).rstrip("; ")
    return notes


def _holes(g: pd.DataFrame | None, total: int) -> str:
    if g is None:
        return "all"
    iv = sorted(zip(g.loc[g["used"], "start"].tolist(), g.loc[g["used"], "end"].tolist()))
    holes, hi = [], 0
    for a, b in iv:
        if a > hi:
            holes.append(f"{hi}-{a}")
        hi = max(hi, b)
    holes.append(f"{hi}-{total}" if total >= 0 else f"{hi}-end (the last fragment never came)")
    if total >= 0 and hi >= total:
        holes.pop()
    return "bytes " + ", ".join(holes) if holes else "none"


def _mark_conflicts(packets: pd.DataFrame, frags: pd.DataFrame, out: pd.DataFrame) -> None:
    d_ovl = frags.loc[frags["overlaps"], "datagram"].unique()
    for d in d_ovl.tolist():            # only datagrams with overlapping fragments
        g = frags[frags["datagram"] == d]
        if _agreement(packets, g) and out.at[d, "reason_code"] == R_COMPLETE:
            out.at[d, "reason_code"] = R_CONFLICT


def datagram_payloads(packets: pd.DataFrame, timeout_s: float | None = None, overlap: str = "rfc") -> pd.Series:
    """The reassembled IP payload of every complete datagram (indexed by datagram number), the bytes
    that arrived first winning; None where a datagram is incomplete or a fragment's bytes cannot be
    located in the file (see ``_fragment_data``) or were cut by the snap length."""
    frags = datagram_fragments(packets, timeout_s, overlap)
    d = datagrams(packets, timeout_s, overlap)
    out = pd.Series([None] * len(d), index=d["datagram"].to_numpy(), dtype=object, name="payload")
    if d.empty:
        return out
    use = frags[frags["used"] & frags["datagram"].isin(d.loc[d["complete"], "datagram"])]
    hdr = fragment_headers(packets, use["row"].to_numpy())[0]
    data = _fragment_data(packets, use["row"].to_numpy(), hdr)
    use = use.assign(data=data)
    for dgn, g in use.groupby("datagram"):    # per complete datagram
        total = int(d.at[dgn, "payload_len"])
        buf = bytearray(total)
        have = np.zeros(total, bool)
        ok = True
        for s, e, b in zip(g["start"].tolist(), g["end"].tolist(), g["data"].tolist()):
            if b is None or len(b) < e - s:
                ok = False
                break
            new = ~have[s:e]
            if new.any():
                seg = np.frombuffer(b[:e - s], np.uint8)
                arr = np.frombuffer(bytes(buf[s:e]), np.uint8).copy()
                arr[new] = seg[new]
                buf[s:e] = arr.tobytes()
                have[s:e] = True
        out.at[dgn] = bytes(buf) if ok and have.all() else None
    return out


# ---------------------------------------------------------------------------- the matcher's view
def reassembled_packets(packets: pd.DataFrame, datagrams_table: pd.DataFrame | None = None) -> pd.DataFrame:
    """The packets table with each fragmented datagram as one row, for matching: the offset-0 fragment's
    row (it carries the L4 header) stands for the datagram, with ``ts_ns`` the time the datagram became
    whole, ``ip_len``/``payload_len`` of the whole datagram and ``ip_mf``/``frag_offset`` cleared; the
    other fragments are dropped, and so are incomplete datagrams (a probe whose reply lost a fragment
    finds no reply; a request that never became whole was never received). Frame numbers are kept."""
    d = datagrams(packets) if datagrams_table is None else datagrams_table
    rows = fragment_rows(packets)
    if not len(rows):
        return packets
    keep = np.ones(len(packets), bool)
    keep[rows] = False
    good = d[d["complete"] & d["offset0_frame"].notna()]
    pos = pd.Index(packets["frame"].to_numpy()).get_indexer(good["offset0_frame"].to_numpy("int64"))
    keep[pos] = True
    out = packets.copy()
    ts = out["ts_ns"].to_numpy("int64", na_value=0).copy()
    ts[pos] = good["last_ts_ns"].to_numpy("int64")
    out["ts_ns"] = pd.arrays.IntegerArray(ts, packets["ts_ns"].isna().to_numpy())
    hdr = out["ip_hdr_len"].to_numpy("int64", na_value=0).copy()
    hdr[pos] = fragment_headers(packets, pos)[0]
    iplen = out["ip_len"].to_numpy("int64", na_value=0).copy()
    plen = out["payload_len"].to_numpy("float64", na_value=np.nan).copy()
    total = good["payload_len"].to_numpy("int64")
    old_l4 = iplen[pos] - hdr[pos]
    iplen[pos] = hdr[pos] + total
    plen[pos] = plen[pos] + (total - old_l4)
    out["ip_len"] = pd.arrays.IntegerArray(iplen.astype(np.uint32), packets["ip_len"].isna().to_numpy())
    out["payload_len"] = pd.arrays.IntegerArray(np.nan_to_num(plen).astype(np.int32), np.isnan(plen))
    mf = out["ip_mf"].copy()
    mf.iloc[pos] = False
    out["ip_mf"] = mf
    out = out[keep].reset_index(drop=True)
    out.attrs = dict(packets.attrs)
    return out


def _typed(out: pd.DataFrame, packets: pd.DataFrame) -> pd.DataFrame:
    cats = packets["src"].cat.categories if "src" in packets else []
    res = {}
    for c in DATAGRAMS:
        v = out[c.name] if c.name in out else pd.Series([], dtype=object)
        if isinstance(v.dtype, pd.CategoricalDtype):
            res[c.name] = v.array
        elif c.name == "l3":
            res[c.name] = pd.Categorical(v, categories=["ipv4", "ipv6"])
        elif c.name in ("src", "dst"):
            res[c.name] = pd.Categorical(v, categories=cats)
        elif c.name == "reason":
            res[c.name] = pd.Categorical(v, categories=list(DATAGRAM_REASONS))
        elif c.dtype in ("UInt8", "UInt32", "Int32", "Int64"):
            f = pd.Series(v).to_numpy("float64", na_value=np.nan) if len(v) else np.zeros(0)
            if c.name in ("payload_len", "offset0_frame"):
                f = np.where(f < 0, np.nan, f)
            res[c.name] = pd.array(np.where(np.isnan(f), 0, f).astype("int64"), dtype=c.dtype)
            res[c.name][np.isnan(f)] = pd.NA
        elif c.dtype == "object":
            res[c.name] = pd.Series(v, dtype=object).to_numpy()
        else:
            res[c.name] = pd.Series(v).to_numpy().astype(c.dtype)
    out = pd.DataFrame(res)
    for c in DATAGRAMS:
        if c.dtype == "object":
            out[c.name] = out[c.name].astype(object)
    return out
