"""REFERENCE (the implementation before issue 16, kept verbatim for the equality tests).

Which tool sent a probe stream: CloudWatch-Network-Monitor-like, iputils ping, fping, hping3, nping,
Windows ping, or unknown — with the evidence that decided it (see shared/lab-notes.md for what each
tool puts on the wire)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from reference_payload import payload_verdicts, request_payloads
from probekit.analysis.sources import balance_test

__all__ = ["fingerprint"]

STREAM = ("protocol", "destination", "port", "source")


def fingerprint(packets: pd.DataFrame, probes: pd.DataFrame) -> pd.DataFrame:
    """One row per stream (protocol, destination, port, source): ``tool`` and ``evidence``."""
    if probes.empty:
        return pd.DataFrame(columns=list(STREAM) + ["probes", "tool", "evidence"])
    payloads = request_payloads(packets, probes)
    verdicts = payload_verdicts(probes, payloads, by=STREAM)
    req = packets.iloc[probes["request_frame"].to_numpy("int64") - 1]
    feats = probes[list(STREAM)].assign(
        ip_id=req["ip_id"].to_numpy("float64", na_value=np.nan), win=req["tcp_win"].to_numpy("float64", na_value=np.nan),
        sport=req["sport"].to_numpy("float64", na_value=np.nan), seq=probes["seq"].to_numpy("float64", na_value=np.nan),
        reset=probes["reset_frame"].notna().to_numpy(), resent=probes["retransmits"].to_numpy(), answered=probes["outcome"].isin(["answered"]).to_numpy(),
        size=probes["size"].to_numpy("float64", na_value=np.nan))
    balance = balance_test(probes)
    rows = []
    for (key, g), (_, v) in zip(feats.groupby(list(STREAM), observed=True, dropna=False),
                                verdicts.groupby(list(STREAM), observed=True, dropna=False)):
        v = v.iloc[0]
        b = balance[(balance["protocol"] == key[0]) & (balance["destination"] == key[1])
                    & ((balance["port"] == key[2]) if not pd.isna(key[2]) else balance["port"].isna())]
        sources = int(b["sources"].iloc[0]) if len(b) else 1
        even = bool(b["balanced"].iloc[0]) if len(b) and not pd.isna(b["balanced"].iloc[0]) else False
        tool, why = _classify(str(key[0]), g, v, sources, even)
        rows.append((*key, len(g), tool, why))
    return pd.DataFrame(rows, columns=list(STREAM) + ["probes", "tool", "evidence"])


def _classify(proto: str, g: pd.DataFrame, v: pd.Series, sources: int, even: bool) -> tuple[str, str]:
    verdict, fill, length = v["verdict"], v["fill"] or "", int(v["length"])
    n = len(g)
    same_id = n > 1 and g["ip_id"].nunique() == 1
    size = int(g["size"].median())
    if proto in ("icmp", "icmpv6"):
        if verdict == "timestamped" and fill.startswith("iputils"):
            return "iputils-ping", f"payload starts with a timeval, then {fill}"
        if verdict == "timestamped":
            return "iputils-ping", "payload starts with a timestamp near the frame time (ping's timeval)"
        if fill == "zeros":
            return "fping", f"{length}-byte all-zero payload"
        if fill == "windows alphabet":
            return "windows-ping", f"{length}-byte 'abcdefghijklmnopqrstuvwabcdefghi' fill"
        if verdict == "repeated-random":
            return "nping", "random payload repeated in every probe" + (", same IP id every probe" if same_id else "")
        if verdict == "random":
            why = (f"{size}-byte ICMP message, fresh random payload in every probe, no timestamp, "
                   f"{sources} source(s){' evenly' if even else ''}")
            # Network Monitor's default is 56 bytes; another size still fits when several ENIs share the probe
            return ("cwnm-like" if size == 56 or (sources >= 2 and even) else "unknown"), why
        return "unknown", f"payload verdict {verdict}: {v['evidence']}"
    # TCP
    win = g["win"].dropna()
    w = int(win.mode().iloc[0]) if len(win) else -1
    sport = g["sport"].dropna().to_numpy()
    step_one = sport.size > 2 and bool(np.all(np.diff(sport) % 65536 == 1))
    # nping re-sends one identity (port, ISN) every probe: matching folds those into one probe re-sent
    same_port_seq = (n > 1 or int(g["resent"].sum()) >= 2) and g["sport"].nunique() == 1 and g["seq"].nunique() == 1
    if fill == "constant 0x58":
        return "hping3", f"{length} × 'X' payload, window {w}" + (", source port +1 per probe" if step_one else "")
    if same_port_seq or (verdict == "repeated-random" and w == 1480):
        return "nping", (f"same source port and sequence number every probe, window {w}"
                         + (", one random payload repeated" if verdict == "repeated-random" else ""))
    if verdict == "random" and length > 0:
        reset = float(g["reset"][g["answered"]].mean()) if g["answered"].any() else float("nan")
        why = (f"SYN carrying {length} fresh random payload bytes ({size}-byte segment), window {w}, prober RST "
               f"after {reset:.0%} of SYN/ACKs, {sources} source(s){' evenly' if even else ''}")
        return "cwnm-like", why
    if length == 0:
        return "unknown", f"SYN without payload, window {w}: a plain connect() or scanner, not Network Monitor"
    return "unknown", f"payload verdict {verdict}: {v['evidence']}"
