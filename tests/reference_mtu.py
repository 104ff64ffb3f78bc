"""The pandas version of probekit.analysis.mtu.size_outcomes that the numpy grouping replaced (issue 16),
kept verbatim as the reference tests/test_mtu.py holds it to. Not used by probekit itself."""
from __future__ import annotations

import numpy as np
import pandas as pd

from probekit.analysis.mtu import _KEYS, _TOO_BIG, _ip_header, _str, _typed, _with_errors
from probekit.schema import ERROR_OUTCOMES, MTU_SIZES


def _fragmented(probes: pd.DataFrame, packets: pd.DataFrame | None, datagrams: pd.DataFrame | None) -> np.ndarray:
    """True where the probe's request or reply was (the offset-0 fragment of) a fragmented datagram."""
    out = np.zeros(len(probes), bool)
    frames = set()
    if datagrams is not None and len(datagrams):
        frames |= set(datagrams["offset0_frame"].dropna().astype("int64").tolist())
        frames |= set(datagrams["first_frame"].astype("int64").tolist())
    if packets is not None and len(packets):
        f = packets["ip_mf"].fillna(False).to_numpy(bool) | (packets["frag_offset"].fillna(0).to_numpy() > 0)
        frames |= set(packets.loc[f, "frame"].astype("int64").tolist())
    if not frames:
        return out
    fr = np.fromiter(frames, np.int64)
    out |= np.isin(probes["request_frame"].to_numpy("int64"), fr)
    out |= np.isin(probes["reply_frame"].to_numpy("float64", na_value=-1).astype(np.int64), fr)
    return out


def size_outcomes(probes: pd.DataFrame, errors: pd.DataFrame | None = None, packets: pd.DataFrame | None = None,
                  datagrams: pd.DataFrame | None = None, min_probes: int = 3) -> pd.DataFrame:
    """One row per stream and probe size: sent, answered, lost, too-big errors, fragmented, the MTU the
    errors named, and a verdict (schema.MTU_SIZES)."""
    names = [c.name for c in MTU_SIZES]
    p = _with_errors(probes, errors)
    p = p[_str(p["outcome"]) != "unknown"]
    if p.empty or p["size"].isna().all():
        return _typed(pd.DataFrame({c: [] for c in names}), MTU_SIZES)
    o = _str(p["outcome"])
    mtu = p["mtu"].to_numpy("float64", na_value=np.nan) if "mtu" in p.columns else np.full(len(p), np.nan)
    d = pd.DataFrame({
        "protocol": _str(p["protocol"]).to_numpy(), "destination": _str(p["destination"]).to_numpy(),
        "port": p["port"].to_numpy("float64", na_value=-1).astype(np.int64),
        "size": p["size"].to_numpy("float64", na_value=np.nan), "ts_ns": p["ts_ns"].to_numpy("int64"),
        "ok": o.isin(["answered", "refused"]).to_numpy(), "lost": o.isin(["lost", "late"]).to_numpy(),
        "too_big": o.isin(_TOO_BIG).to_numpy(),
        "other_errors": (o.isin(ERROR_OUTCOMES) & ~o.isin(_TOO_BIG)).to_numpy(),
        "frag": _fragmented(p, packets, datagrams), "mtu": mtu, "hdr": _ip_header(p)})
    d = d.dropna(subset=["size"])
    g = d.groupby(_KEYS + ["size"], sort=True)
    out = g.agg(first_ns=("ts_ns", "min"), last_ns=("ts_ns", "max"), sent=("ok", "size"), answered=("ok", "sum"),
                lost=("lost", "sum"), too_big=("too_big", "sum"), other_errors=("other_errors", "sum"),
                fragmented=("frag", "sum"), hdr=("hdr", "first"),
                mtu=("mtu", lambda s: s.mode().iloc[0] if s.notna().any() else np.nan)).reset_index()
    out["ip_len"] = out["size"] + out["hdr"]
    out["verdict"] = np.select([out["answered"] > 0, out["sent"] >= min_probes], ["pass", "fail"], "few")
    return _typed(out[names], MTU_SIZES)
