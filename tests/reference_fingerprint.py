"""REFERENCE for the fingerprint's compiled per-stream aggregates: the same features computed the plain
way (a pandas groupby per stream over the probes and their request headers), classified by the same rules
(probekit.analysis.signatures). The equality tests hold the compiled path to this."""
from __future__ import annotations

import numpy as np
import pandas as pd

from probekit.analysis.signatures import classify_stream, payload_shape, shape_from_verdict
from probekit.analysis.sources import balance_test
from reference_payload import payload_verdicts, request_payloads

__all__ = ["fingerprint"]

STREAM = ("protocol", "source", "destination", "port")


def _mode(s: pd.Series) -> float:
    s = s.dropna()
    return float(s.mode().iloc[0]) if len(s) else -1.0


def fingerprint(packets: pd.DataFrame, probes: pd.DataFrame) -> pd.DataFrame:
    """One row per source stream: ``tool`` and ``evidence``."""
    if probes.empty:
        return pd.DataFrame(columns=list(STREAM) + ["probes", "tool", "evidence"])
    # a tracer's UDP probes to rising ports are one stream at the lowest port (the plain rule)
    from reference_streams import tracer_ports
    port, span = tracer_ports(packets, probes)
    if (span > 1).any():
        probes = probes.assign(port=pd.array([p if p >= 0 else None for p in port.tolist()], dtype="UInt16"))
    payloads = request_payloads(packets, probes)
    verdicts = payload_verdicts(probes, payloads, by=STREAM)
    req = packets.iloc[probes["request_frame"].to_numpy("int64") - 1]

    def col(name):
        return req[name].to_numpy("float64", na_value=np.nan)
    feats = probes[list(STREAM)].assign(
        ip_id=col("ip_id"), win=col("tcp_win"), sport=col("sport"), ttl=col("ttl"), thl=col("tcp_hdr_len"),
        plen=col("payload_caplen"), seq=probes["seq"].to_numpy("float64", na_value=np.nan),
        reset=probes["reset_frame"].notna().to_numpy(), resent=probes["retransmits"].to_numpy(),
        answered=probes["outcome"].isin(["answered"]).to_numpy(), size=probes["size"].to_numpy("float64", na_value=np.nan),
        frame=probes["request_frame"].to_numpy(), ts=probes["ts_ns"].to_numpy(), payload=payloads.to_numpy(object),
        span=span)
    balance = balance_test(probes)
    rows = []
    def k(t):
        return tuple("NA" if pd.isna(x) else str(int(x)) if isinstance(x, (int, float, np.number)) else str(x)
                     for x in t)
    vg = {k(key): g.iloc[0] for key, g in verdicts.groupby(list(STREAM), observed=True, dropna=False)}
    for key, g in feats.groupby(list(STREAM), observed=True, dropna=False):
        v = vg[k(key)]
        b = balance[(balance["protocol"] == key[0]) & (balance["destination"] == key[2])
                    & ((balance["port"] == key[3]) if not pd.isna(key[3]) else balance["port"].isna())]
        sources = int(b["sources"].iloc[0]) if len(b) else 1
        even = bool(b["balanced"].iloc[0]) if len(b) and not pd.isna(b["balanced"].iloc[0]) else False
        n = len(g)
        sp = g["sport"].dropna().to_numpy()
        shape, ev = payload_shape(bytes(g["payload"].iloc[0]), g["ts"].iloc[0] / 1e9)
        if shape == "opaque":
            shape, ev = shape_from_verdict(v)
        ans = g["answered"].to_numpy()
        verdict = str(v["verdict"])
        r = dict(protocol=str(key[0]), shape=shape, shape_evidence=ev, probes=n, verdict=verdict,
                 payloads=1 if verdict == "repeated-random" else n,
                 ttl_min=g["ttl"].min() if g["ttl"].notna().any() else np.inf,
                 ttl_max=g["ttl"].max() if g["ttl"].notna().any() else -np.inf, ttls=g["ttl"].nunique(),
                 id_step_max=g["ip_id"].diff().abs().max() if n > 1 and g["ip_id"].diff().notna().any() else -1.0,
                 ip_ids=1 if g["ip_id"].nunique() == 1 else n,
                 ip_id_first=g["ip_id"].iloc[0], win=_mode(g["win"]),
                 thl=g["thl"].max() if g["thl"].notna().any() else np.nan,
                 sport_step=1 if sp.size > 2 and bool(np.all(np.diff(sp) % 65536 == 1)) else 0,
                 sports=1 if g["sport"].nunique() == 1 else n, seqs=1 if g["seq"].nunique() == 1 else n,
                 resent=int(g["resent"].sum()), plen=g["plen"].fillna(0).max(), size=g["size"].median(),
                 reset=float(g["reset"][ans].mean()) if ans.any() else np.nan, ports=int(g["span"].max()),
                 id_step_one=bool(n > 1 and g["ip_id"].diff().abs().max() == 1))
        tool, why = classify_stream(r, sources, even)
        rows.append((*key, n, tool, why))
    return pd.DataFrame(rows, columns=list(STREAM) + ["probes", "tool", "evidence"])


FEATURES = ("probes", "one_ipid", "size", "win", "sport_step_one", "one_sport", "one_seq", "resent", "answered",
            "reset_share", "first_request", "ttl_min", "ttl_max", "ttls", "id_step_max", "ip_id_first", "thl", "plen")


def stream_features(probes: pd.DataFrame, req: pd.DataFrame) -> pd.DataFrame:
    """The per-stream numbers fingerprint.stream_features compiles (columns FEATURES), a pandas groupby
    per source stream over the probes and their request headers (``req``: fingerprint.request_columns)."""
    def col(name):
        return req[name].to_numpy("float64", na_value=np.nan)
    f = probes[list(STREAM)].assign(
        ip_id=col("ip_id"), win=col("tcp_win"), sport=col("sport"), ttl=col("ttl"), thl=col("tcp_hdr_len"),
        plen=col("payload_caplen"), seq=probes["seq"].to_numpy("float64", na_value=np.nan),
        reset=probes["reset_frame"].notna().to_numpy(), resent=probes["retransmits"].to_numpy(),
        answered=probes["outcome"].isin(["answered"]).to_numpy(),
        size=probes["size"].to_numpy("float64", na_value=np.nan), frame=probes["request_frame"].to_numpy())
    rows = []
    for _, g in f.groupby(list(STREAM), observed=True, dropna=False):
        n = len(g)
        sp = g["sport"].dropna().to_numpy()
        ans = g["answered"].to_numpy()
        step = g["ip_id"].diff().abs()
        rows.append(dict(
            probes=n, one_ipid=g["ip_id"].nunique() == 1, size=g["size"].median(), win=_mode(g["win"]),
            sport_step_one=bool(sp.size > 2 and np.all(np.diff(sp) % 65536 == 1)), one_sport=g["sport"].nunique() == 1,
            one_seq=g["seq"].nunique() == 1, resent=int(g["resent"].sum()), answered=int(ans.sum()),
            reset_share=float(g["reset"][ans].mean()) if ans.any() else np.nan, first_request=int(g["frame"].iloc[0]),
            ttl_min=g["ttl"].min() if g["ttl"].notna().any() else np.inf,
            ttl_max=g["ttl"].max() if g["ttl"].notna().any() else -np.inf, ttls=g["ttl"].nunique(),
            id_step_max=step.max() if step.notna().any() else -1.0, ip_id_first=g["ip_id"].iloc[0],
            thl=g["thl"].max() if g["thl"].notna().any() else np.nan, plen=g["plen"].fillna(0).max()))
    return pd.DataFrame(rows, columns=list(FEATURES))
