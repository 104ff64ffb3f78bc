"""The summary's per-stream pandas loop that probekit/session.py's capture_summary replaced (a slice of
the probes table per stream: nunique, isin, mean, median, value_counts), kept verbatim as the reference
it is tested against (tests/test_summary.py). Not used by probekit itself."""
from __future__ import annotations

import numpy as np
import pandas as pd

from probekit.analysis._groups import group_by as _group_by
from probekit.schema import STREAM_KEYS
from probekit.session import _cloudwatch_findings, _label, _utc


def _forensics_lines(cap) -> list[str]:
    """Which streams are probes and who sends them, what was set aside, which routers answered with ICMP
    errors, and the path MTU: the report's lines on a messy capture."""
    out = []
    st = cap.streams
    if st.empty:
        return out
    pr = st[st["kind"].astype(str) == "probe"]
    if len(pr):
        out.append("Probe streams: " + "; ".join(
            f"{_label(r.protocol, r.destination, r.port)} from {r.sources} source(s) ({r.source_list}), "
            f"{r.tool or 'unknown tool'}" for r in pr.itertuples()) + ".")
    if cap.all_streams:
        out.append("Every request stream is analysed (all_streams=True).")
    ot = cap.other_traffic
    if len(ot):
        out.append("Set aside as other traffic: " + ", ".join(
            f"{r.kind} ({r.packets} packets, {r.bytes} bytes)" for r in ot.itertuples()) + ".")
    e = cap.icmp_errors
    if len(e):
        g = e.groupby(["reporter", "outcome", "code"], observed=True).size().sort_values(ascending=False)
        out.append("ICMP errors: " + ", ".join(f"{rep} sent {n} × {outc} ({code})" for (rep, outc, code), n in
                                               g.head(6).items()) + (" …" if len(g) > 6 else "") + ".")
    for r in cap.mtu.itertuples():
        if r.path != "fits":
            out.append(f"Path MTU, {_label(r.protocol, r.destination, r.port)}: {r.path} — {r.evidence}.")
    return out


def capture_summary(cap) -> dict:
    """Streams (per Network Monitor probe), their verdicts, loss/RTT, the anomalies found and the CloudWatch
    audit's findings; ``headline``: the most important finding (a CloudWatch disagreement first, then
    100 %-loss periods, gaps, imbalance, size changes)."""
    probes = cap.probes
    streams, ranked = [], {k: [] for k in ("cloudwatch", "no_reply", "no_probes", "gaps", "balance", "sizes")}
    if len(probes):
        fp = cap.fingerprints
        pv = cap.payload_verdicts
        q = cap.probe_periods
        cols = list(dict.fromkeys([*STREAM_KEYS, "source", "outcome", "rtt_us"]))   # the columns read, not the table
        sub = probes[cols]
        grp = _group_by(sub, STREAM_KEYS)         # groupby's streams, in its order, from the key codes
        order = np.argsort(grp.gid, kind="stable")
        bounds = np.searchsorted(grp.gid[order], np.arange(grp.n + 1))
        for i in range(grp.n):
            g = sub.iloc[order[bounds[i]:bounds[i + 1]]]
            proto, dst, port = (g[c].iloc[0] for c in STREAM_KEYS)
            label = _label(proto, dst, port)
            judged = g[g["outcome"] != "unknown"]
            ok = judged["outcome"].isin(["answered", "refused"])
            sel = (fp["protocol"] == proto) & (fp["destination"] == dst)
            sel_v = (pv["protocol"] == proto) & (pv["destination"] == dst)
            streams.append(dict(
                stream=label, sources=int(g["source"].nunique()), probes=len(g),
                loss_pct=float(100 * (1 - ok.mean())) if len(judged) else float("nan"),
                rtt_median_us=float(judged["rtt_us"].median()) if ok.any() else float("nan"),
                tool=", ".join(sorted(set(fp.loc[sel, "tool"]))), payload=", ".join(sorted(set(pv.loc[sel_v, "verdict"]))),
                outcomes=", ".join(f"{k} {v}" for k, v in g["outcome"].value_counts().items() if v)))
            qq = q[(q["protocol"] == proto) & (q["destination"] == dst)]
            for status, what in (("no_reply", "100 % loss (no reply at all)"), ("no_probes", "no probes at all")):
                n = int((qq["status"] == status).sum())
                if n:
                    first = qq.loc[qq["status"] == status, "period_start_ns"].min()
                    ranked[status].append(f"{label}: {n} period(s) of {cap.period_s} s with {what}, the first at "
                                          f"{_utc(first)}")
        for r in cap.gaps.itertuples():
            ranked["gaps"].append(f"{r.protocol} from {r.source}: no probes for {r.length_s:.0f} s from {_utc(r.start_ns)}"
                                  + (" to the end of the capture" if r.kind == "trailing" else ""))
        for r in cap.balance.itertuples():
            if r.balanced is not pd.NA and not r.balanced:  # <NA> (one source) is not an anomaly
                ranked["balance"].append(f"{r.protocol} {r.destination}: sources are not balanced "
                                         f"(chi-square p={r.p_value:.2g})")
        for r in cap.size_changes().itertuples():
            ranked["sizes"].append(f"{r.protocol} {r.destination}: probe size {r.from_size} → {r.to_size} bytes at "
                                   f"{_utc(r.ts_ns)}")
        ranked["cloudwatch"] = _cloudwatch_findings(cap)
    for k in ("errors", "mtu"):
        ranked.setdefault(k, [])
    if len(probes):
        q = cap.probe_periods
        for key, g in q[q["status"].astype(str) == "errors"].groupby(list(STREAM_KEYS), observed=True, dropna=False):
            ranked["errors"].append(f"{_label(*key)}: {len(g)} period(s) in which every probe drew an ICMP error "
                                    f"instead of a reply ({g['reporters'].iloc[0]}), the first at "
                                    f"{_utc(g['period_start_ns'].min())}")
        for r in cap.mtu.itertuples():
            if r.path in ("black_hole", "frag_needed", "packet_too_big"):
                ranked["mtu"].append(f"{_label(r.protocol, r.destination, r.port)}: path MTU — {r.evidence}")
    anomalies = [a for k in ("cloudwatch", "no_reply", "errors", "no_probes", "gaps", "balance", "sizes", "mtu")
                 for a in ranked[k]]
    audit = cap.cloudwatch_audit if len(probes) else None
    return dict(capture=cap.name, packets=cap.packet_count, probes=len(probes), chunked=bool(cap.is_chunked),
                forensics=_forensics_lines(cap),
                vantage=probes.attrs.get("vantage"), span_s=(cap.span_ns[1] - cap.span_ns[0]) / 1e9,
                streams=streams, anomalies=anomalies, headline=anomalies[0] if anomalies else None,
                cloudwatch=[p.name for p in cap.cloudwatch_files],
                cloudwatch_status=cap.cloudwatch_status() if audit is not None else None,
                notes=cap.capture_notes)
