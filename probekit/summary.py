"""A capture at a glance: span, link types, protocols, talkers, truncation and salvage notes."""
from __future__ import annotations

import pandas as pd

from .capture.linktypes import linktype_name

__all__ = ["summarize"]

_PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6", 132: "sctp", 47: "gre", 50: "esp", 2: "igmp"}


def summarize(df: pd.DataFrame, top: int = 10) -> dict:
    """A JSON-ready dict describing a packets table (see ``probekit summary``)."""
    ts = df["ts_ns"].dropna()
    first = int(ts.min()) if len(ts) else None
    last = int(ts.max()) if len(ts) else None
    proto = df["ip_proto"].map(lambda p: _PROTO_NAMES.get(int(p), f"ip-proto-{int(p)}"), na_action="ignore")
    l4 = proto.where(df["l3"].isin(["ipv4", "ipv6"]), None).fillna(df["l3"].astype(str))
    return {
        "path": df.attrs.get("path"),
        "format": df.attrs.get("format"),
        "packets": len(df),
        "bytes_on_wire": int(df["wirelen"].sum()),
        "first_ns": first,
        "last_ns": last,
        "first_utc": None if first is None else pd.Timestamp(first, unit="ns", tz="UTC").isoformat(),
        "duration_s": None if first is None or last is None else (last - first) / 1e9,
        "linktypes": {linktype_name(k): int(v) for k, v in df["linktype"].value_counts().sort_index().items()},
        "l3": {k: int(v) for k, v in df["l3"].value_counts().items() if v},
        "protocols": {k: int(v) for k, v in l4.value_counts().items()},
        "sources": _top(df["src"], top),
        "destinations": _top(df["dst"], top),
        "truncated": int(df["truncated"].sum()),
        "malformed": int(df["malformed"].sum()),
        "without_timestamp": int(df["ts_ns"].isna().sum()),
        "out_of_order": int((ts.diff() < 0).sum()),
        "notes": list(df.attrs.get("notes", [])),
    }


def _top(col: pd.Series, n: int) -> dict:
    vc = col.value_counts()
    vc = vc[vc > 0].head(n)
    return {str(k): int(v) for k, v in vc.items()}


def format_summary(s: dict) -> str:
    lines = [f"{s['path']}  ({s['format']}, {s['packets']} packets, {s['bytes_on_wire']} bytes on the wire)"]
    if s["first_ns"] is not None:
        lines.append(f"  time         {s['first_utc']}  +{s['duration_s']:.6f} s")
    for key in ("linktypes", "l3", "protocols", "sources", "destinations"):
        if s[key]:
            lines.append(f"  {key:<13}" + ", ".join(f"{k} {v}" for k, v in s[key].items()))
    flags = [f"{s[k]} {k.replace('_', ' ')}" for k in ("truncated", "malformed", "without_timestamp",
                                                      "out_of_order") if s[k]]
    if flags:
        lines.append("  frames       " + ", ".join(flags))
    for note in s["notes"]:
        lines.append(f"  note         {note}")
    return "\n".join(lines)
