"""Reproducible write-ups: run the notebooks with parameters, render one self-contained HTML file.

``build_report(captures, "report.html")`` executes every notebook in ``probekit/notebooks/`` with the captures
injected (papermill's convention: a cell tagged ``parameters`` holds the defaults, an ``injected-
parameters`` cell after it the overrides), puts a summary of findings at the top, and writes one HTML
file with every figure embedded, readable offline.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import ProbekitError

__all__ = ["capture_summary", "summary_markdown", "run_notebook", "build_report", "NOTEBOOKS_DIR"]

NOTEBOOKS_DIR = Path(__file__).resolve().parent / "notebooks"  # shipped as package data


# ----------------------------------------------------------------------------------- summary
def capture_summary(cap) -> dict:
    """Streams (per Network Monitor probe), their verdicts, loss/RTT and the anomalies found."""
    probes = cap.probes
    streams, anomalies = [], []
    if len(probes):
        fp = cap.fingerprints
        pv = cap.payload_verdicts
        q = cap.probe_periods
        for key, g in probes.groupby(["protocol", "destination", "port"], observed=True, dropna=False):
            proto, dst, port = key
            label = f"{proto} {dst}" + ("" if pd.isna(port) else f":{int(port)}")
            judged = g[g["outcome"] != "unknown"]
            ok = judged["outcome"].isin(["answered", "refused"])
            sel = (fp["protocol"] == proto) & (fp["destination"] == dst)
            sel_v = (pv["protocol"] == proto) & (pv["destination"] == dst)
            streams.append(dict(
                stream=label, sources=int(g["source"].nunique()), probes=int(len(g)),
                loss_pct=float(100 * (1 - ok.mean())) if len(judged) else float("nan"),
                rtt_median_us=float(judged["rtt_us"].median()) if ok.any() else float("nan"),
                tool=", ".join(sorted(set(fp.loc[sel, "tool"]))), payload=", ".join(sorted(set(pv.loc[sel_v, "verdict"]))),
                outcomes=", ".join(f"{k} {v}" for k, v in g["outcome"].value_counts().items() if v)))
            qq = q[(q["protocol"] == proto) & (q["destination"] == dst)]
            for status, what in (("no_reply", "100 % loss (no reply at all)"), ("no_probes", "no probes at all")):
                n = int((qq["status"] == status).sum())
                if n:
                    first = qq.loc[qq["status"] == status, "period_start_ns"].min()
                    anomalies.append(f"{label}: {n} period(s) of {cap.period_s} s with {what}, the first at "
                                     f"{_utc(first)}")
        for r in cap.gaps.itertuples():
            anomalies.append(f"{r.protocol} from {r.source}: no probes for {r.length_s:.0f} s from {_utc(r.start_ns)}"
                             + (" to the end of the capture" if r.kind == "trailing" else ""))
        for r in cap.balance.itertuples():
            if r.balanced is not pd.NA and not r.balanced:  # <NA> (one source) is not an anomaly
                anomalies.append(f"{r.protocol} {r.destination}: sources are not balanced (chi-square p={r.p_value:.2g})")
        for r in cap.size_changes().itertuples():
            anomalies.append(f"{r.protocol} {r.destination}: probe size {r.from_size} → {r.to_size} bytes at {_utc(r.ts_ns)}")
    return dict(capture=cap.name, packets=int(len(cap.packets)), probes=int(len(probes)),
                vantage=probes.attrs.get("vantage"), span_s=(cap.span_ns[1] - cap.span_ns[0]) / 1e9,
                streams=streams, anomalies=anomalies, notes=list(cap.packets.attrs.get("notes", [])))


def _utc(ns) -> str:
    return pd.Timestamp(int(ns), unit="ns", tz="UTC").strftime("%Y-%m-%d %H:%M:%S UTC")


def summary_markdown(summaries: list[dict]) -> str:
    lines = ["# Summary of findings", ""]
    for s in summaries:
        lines.append(f"## {s['capture']}")
        lines.append(f"{s['packets']} packets, {s['probes']} probes over {s['span_s']:.0f} s, captured at the "
                     f"{s['vantage'] or '?'} side.")
        lines.append("")
        if s["streams"]:
            lines.append("| probe | sources | probes | loss % | median RTT (ms) | sent by | payload | outcomes |")
            lines.append("|---|---:|---:|---:|---:|---|---|---|")
            for r in s["streams"]:
                rtt = "–" if np.isnan(r["rtt_median_us"]) else f"{r['rtt_median_us'] / 1e3:.2f}"
                loss = "–" if np.isnan(r["loss_pct"]) else f"{r['loss_pct']:.1f}"
                lines.append(f"| {r['stream']} | {r['sources']} | {r['probes']} | {loss} | {rtt} | {r['tool']} | "
                             f"{r['payload']} | {r['outcomes']} |")
        else:
            lines.append("No probes (ICMP echo or TCP SYN) in this capture.")
        lines.append("")
        if s["anomalies"]:
            lines.append("**Anomalies**")
            lines.append("")
            lines += [f"- {a}" for a in s["anomalies"]]
        else:
            lines.append("No anomalies found.")
        for n in s["notes"]:
            lines.append(f"- note: {n}")
        lines.append("")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------- notebooks
def _parameter_cell(params: dict):
    import nbformat
    src = "# Parameters injected by probekit report\n" + "\n".join(f"{k} = {v!r}" for k, v in params.items())
    cell = nbformat.v4.new_code_cell(src)
    cell.metadata["tags"] = ["injected-parameters"]
    return cell


def inject_parameters(nb, params: dict):
    """A copy of ``nb`` with the overrides in a cell after the one tagged ``parameters``."""
    nb = copy.deepcopy(nb)
    idx = next((i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if idx is None:
        raise ProbekitError("notebook has no cell tagged 'parameters'")
    nb.cells.insert(idx + 1, _parameter_cell(params))
    return nb


def run_notebook(path, params: dict | None = None, timeout: int = 600, cwd=None):
    """Execute a notebook (every cell) with parameters injected; returns the executed notebook.
    A failing cell raises ProbekitError naming the notebook and the cell."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    if params:
        nb = inject_parameters(nb, params)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd or path.parent)}})
    try:
        client.execute()
    except CellExecutionError as e:
        first = str(e).strip().splitlines()
        tail = [ln for ln in first if ln.strip()][-1:] or ["error"]
        raise ProbekitError(f"{path.name}: a cell failed: {tail[0]}") from None
    return nb


def build_report(captures, out_html, period_s: int = 30, notebooks_dir=None, cloudwatch_csv=None) -> Path:
    """Run every notebook on ``captures`` and write one self-contained HTML report."""
    import nbformat
    from nbconvert import HTMLExporter
    from .session import Capture
    captures = [str(Path(c).resolve()) for c in captures]
    for c in captures:
        if not Path(c).is_file():
            raise ProbekitError(f"{c}: no such capture file")
    nb_dir = Path(notebooks_dir or NOTEBOOKS_DIR)
    books = sorted(nb_dir.glob("[0-9][0-9]-*.ipynb"))
    if not books:
        raise ProbekitError(f"{nb_dir}: no notebooks found")
    summaries = [capture_summary(Capture(c, period_s=period_s)) for c in captures]
    report = nbformat.v4.new_notebook()
    report.cells.append(nbformat.v4.new_markdown_cell(
        "# probekit report\n\nCaptures: " + ", ".join(f"`{Path(c).name}`" for c in captures)
        + f"  \nAggregation period: {period_s} s. Generated by `probekit report`; every figure below was computed "
          "by the notebooks in `notebooks/`, run on these captures."))
    report.cells.append(nbformat.v4.new_markdown_cell(summary_markdown(summaries)))
    params = {"captures": captures, "period": period_s,
              "cloudwatch_csv": str(Path(cloudwatch_csv).resolve()) if cloudwatch_csv else None}
    for book in books:
        nb = run_notebook(book, params, cwd=book.parent)
        for cell in nb.cells:
            if "parameters" in cell.metadata.get("tags", []) or "injected-parameters" in cell.metadata.get("tags", []):
                continue
            report.cells.append(cell)
    exporter = HTMLExporter(template_name="lab", exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True, embed_images=True)
    html, _ = exporter.from_notebook_node(report)
    html = _offline(html)
    out = Path(out_html)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out


def _offline(html: str) -> str:
    """Drop scripts fetched from the network (MathJax, require.js): the report must read offline."""
    html = re.sub(r'<script[^>]*\bsrc="https?://[^"]*"[^>]*>\s*</script>', "", html)
    # nbconvert's lab template imports mermaid from a CDN for diagrams; the report has none
    return re.sub(r'<script type="module">(?:(?!</script>).)*?https?://(?:(?!</script>).)*</script>', "", html,
                  flags=re.S)

