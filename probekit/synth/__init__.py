"""Deterministic synthetic captures of Network Monitor probes, with their ground truth.

``synth("target-down", "out.pcap", seed=1)`` writes the capture and ``out.pcap.truth.csv`` beside it
(one row per probe: send time, source, destination, protocol, size, answered, RTT, outcome). The same
arguments always give byte-identical files.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ProbekitError
from ..spec import (
    DEFAULT_DESTINATION_V4,
    DEFAULT_DESTINATION_V6,
    DEFAULT_SOURCES_V4,
    DEFAULT_SOURCES_V6,
    Monitor,
    Probe,
    SpecError,
)
from ..wire import LINK_ETHERNET, LINK_SLL2
from .extras import render_all
from .scenarios import SCENARIO_DOCS, SCENARIOS, Conditions, scenario
from .simulate import TRUTH_COLUMNS, Simulation, simulate
from .write import ENCAPS, encapsulate, write_pcap, write_pcapng

__all__ = ["synth", "default_monitor", "read_truth", "truth_path", "Conditions", "scenario", "SCENARIOS",
           "SCENARIO_DOCS", "simulate", "Simulation"]

LINKS = {"ethernet": LINK_ETHERNET, "sll2": LINK_SLL2}


def default_monitor(protocol: str = "both", size: int = 56, sources: int = 2, family: int = 4,
                    port: int = 80, period_s: int = 30) -> Monitor:
    """The investigation's monitor: ICMP and TCP probes to one target from two ENIs."""
    if protocol not in ("icmp", "tcp", "both"):
        raise SpecError("protocol", protocol, "must be 'icmp', 'tcp' or 'both'")
    pool = DEFAULT_SOURCES_V4 if family == 4 else DEFAULT_SOURCES_V6
    if family not in (4, 6):
        raise SpecError("family", family, "must be 4 or 6")
    if not 1 <= sources <= len(pool):
        raise SpecError("sources", sources, f"must be 1 to {len(pool)}")
    dst = DEFAULT_DESTINATION_V4 if family == 4 else DEFAULT_DESTINATION_V6
    probes = []
    if protocol in ("icmp", "both"):
        probes.append(Probe("icmp", dst, None, size, pool[:sources]))
    if protocol in ("tcp", "both"):
        probes.append(Probe("tcp", dst, port, size, pool[:sources]))
    return Monitor(tuple(probes), period_s)


def truth_path(capture) -> Path:
    return Path(os.fspath(capture) + ".truth.csv")


def synth(scenario_name: str = "healthy", out=None, *, monitor: Monitor | None = None, seed: int = 0,
          link: str = "ethernet", snaplen: int = 262144, fmt: str | None = None, nano: bool | None = None,
          conditions: Conditions | None = None, encap: str | None = None, **overrides) -> pd.DataFrame:
    """Simulate a scenario; write the capture (pcap or pcapng by ``fmt`` or the file suffix) and its
    truth sidecar when ``out`` is given. Returns the truth table. Extra keyword arguments override
    scenario conditions (``duration_s``, ``rate_per_s``, ``loss``, ...). ``encap`` (``vxlan``, ``geneve``,
    ``gre``) writes the same frames mirrored inside that tunnel, as VPC Traffic Mirroring delivers them."""
    cond = conditions if conditions is not None else scenario(scenario_name, **overrides)
    monitor = monitor or default_monitor()
    if link not in LINKS:
        raise SpecError("link", link, f"must be one of {', '.join(LINKS)}")
    if encap is not None and (encap not in ENCAPS or link != "ethernet"):
        raise SpecError("encap", encap, f"must be one of {', '.join(ENCAPS)}, with the ethernet link")
    if not 64 <= snaplen <= 262144:
        raise SpecError("snaplen", snaplen, "must be 64 to 262144 bytes")
    rng = np.random.default_rng(seed)
    sim = simulate(monitor, cond, rng)
    if out is not None:
        out = Path(out)
        fmt = fmt or ("pcapng" if out.suffix == ".pcapng" else "pcap")
        if fmt not in ("pcap", "pcapng"):
            raise ProbekitError(f"{out}: format must be pcap or pcapng, not {fmt}")
        t, r = render_all(sim, LINKS[link], cond.vantage)   # probes + fragments, ICMP errors, background
        if encap is not None:
            r = encapsulate(r, encap)
        if fmt == "pcap":
            write_pcap(out, t, r, snaplen, nano=bool(nano))
        else:
            write_pcapng(out, t, r, snaplen, nano=True if nano is None else nano)
        meta = dict(
            scenario=list(cond.names), seed=seed, link=link, format=fmt, snaplen=snaplen,
            monitor=dict(period_s=monitor.period_s, probes=[asdict(p) for p in monitor.probes]),
            conditions=cond.as_meta())
        if encap is not None:
            meta["encap"] = encap
        _write_truth(truth_path(out), sim.truth, meta)
    return sim.truth


def _write_truth(path: Path, truth: pd.DataFrame, meta: dict) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    with open(path, "wb") as f:
        f.write(b"# probekit ground truth: one row per probe sent; rtt_us as measured at the prober\n")
        f.write(("# meta: " + json.dumps(meta, sort_keys=True, default=list) + "\n").encode())
        table = pa.Table.from_pandas(truth, preserve_index=False)
        pacsv.write_csv(table, f, pacsv.WriteOptions(quoting_style="needed"))


def read_truth(path) -> pd.DataFrame:
    """The truth sidecar of a synthetic capture (the capture's path or the .truth.csv itself), or the live
    prober's results CSV, which has the same columns."""
    p = Path(path)
    if not p.name.endswith(".csv"):
        p = truth_path(p)
    df = pd.read_csv(p, comment="#", dtype={"port": "UInt16", "answered": bool})
    assert tuple(df.columns[:len(TRUTH_COLUMNS)]) == TRUTH_COLUMNS, list(df.columns)   # + TRUTH_ERROR_COLUMNS
    meta_line = next((ln for ln in p.read_text().splitlines() if ln.startswith("# meta: ")), None)
    df.attrs["meta"] = json.loads(meta_line[len("# meta: "):]) if meta_line else {}
    df["lost_leg"] = df["lost_leg"].astype(object).fillna("").astype(str)
    return df
