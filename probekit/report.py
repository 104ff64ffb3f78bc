"""Reproducible write-ups: run the notebooks with parameters, render one self-contained HTML file.

``build_report(captures, "report.html")`` executes every notebook in ``notebooks/`` with the captures
injected (papermill's convention: a cell tagged ``parameters`` holds the defaults, an ``injected-
parameters`` cell after it the overrides), puts a summary of findings at the top, and writes one HTML
file with every figure embedded, readable offline.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path

import numpy as np

from .errors import ProbekitError
from .session import capture_summary  # noqa: F401 - kept importable from here (it moved to session)

__all__ = ["capture_summary", "summary_markdown", "run_notebook", "build_report", "NOTEBOOKS_DIR"]

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"


# ----------------------------------------------------------------------------------- summary
def summary_markdown(summaries: list[dict]) -> str:
    """The report's opening: per capture its most important finding first, then its streams and the rest."""
    lines = ["# Summary of findings", ""]
    lead = [f"- **{s['capture']}**: " + (s["headline"] or "no anomalies found.") for s in summaries]
    lines += ["Most important finding per capture (a CloudWatch disagreement first, then 100 %-loss periods, gaps, "
              "imbalance, size changes):", ""] + lead + [""]
    without = [s["capture"] for s in summaries if not s["cloudwatch"]]
    if without:
        lines += [("No CloudWatch export for " + ("any capture" if len(without) == len(summaries) else
                                                  ", ".join(f"`{c}`" for c in without))
                   + " (give one with `--cloudwatch`, or put `NAME.cloudwatch.json` / `NAME.monitor.json` beside the "
                     "capture), so " + ("their" if len(without) > 1 else "its") + " CloudWatch numbers are not audited."),
                  ""]
    for s in summaries:
        lines.append(f"## {s['capture']}")
        lines.append(f"{s['packets']} packets, {s['probes']} probes over {s['span_s']:.0f} s, captured at the "
                     f"{s['vantage'] or '?'} side.")
        lines.append("")
        if s.get("cloudwatch_status"):
            lines += [s["cloudwatch_status"], ""]
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
            lines.append("**Anomalies** (most important first)")
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


_WARM_UP = "import probekit, probekit.plots, matplotlib.pyplot, IPython.display  # probekit report: warm-up"


def _tagged(book: str, nb) -> list:
    """The notebook's cells, each tagged with its notebook's name (to name it when a cell fails)."""
    for cell in nb.cells:
        cell.metadata["probekit_book"] = book
    return list(nb.cells)


def build_report(captures, out_html, period_s: int = 30, notebooks_dir=None, cloudwatch=None, monitor=None,
                 cloudwatch_csv=None, timeout: int = 600, notebook_out=None) -> Path:
    """Run every notebook on ``captures`` and write one self-contained HTML report.

    Each capture is read and analysed once, here: its tables are saved to a temporary folder that the
    notebooks' kernel loads (parameter ``tables``). The notebooks run one after another in one kernel,
    which starts (and imports probekit) while the captures are being analysed. ``cloudwatch``/``monitor``:
    a CloudWatch export (any format ``probekit.capture.cloudwatch`` reads) and the monitor description,
    audited against every capture; without them each capture's own ``NAME.cloudwatch.json`` /
    ``NAME.monitor.json`` beside it are used when present. ``cloudwatch_csv`` is the old name of
    ``cloudwatch``. ``notebook_out``: also write the executed report as a notebook (.ipynb).
    """
    import tempfile

    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    from nbconvert import HTMLExporter

    from .session import Capture
    cloudwatch = cloudwatch if cloudwatch is not None else cloudwatch_csv
    captures = [str(Path(c).resolve()) for c in captures]
    for c in captures:
        if not Path(c).is_file():
            raise ProbekitError(f"{c}: no such capture file")
    cw_files = [str(Path(p).resolve()) for p in ([cloudwatch] if isinstance(cloudwatch, (str, Path)) else cloudwatch or [])]
    mon_files = [str(Path(p).resolve()) for p in ([monitor] if isinstance(monitor, (str, Path)) else monitor or [])]
    for f in cw_files + mon_files:
        if not Path(f).is_file():
            raise ProbekitError(f"{f}: no such CloudWatch export or monitor description")
    nb_dir = Path(notebooks_dir or NOTEBOOKS_DIR)
    books = sorted(nb_dir.glob("[0-9][0-9]-*.ipynb"))
    if not books:
        raise ProbekitError(f"{nb_dir}: no notebooks found")
    with tempfile.TemporaryDirectory(prefix="probekit-report-") as tables:
        params = {"captures": captures, "period": period_s, "cloudwatch": cw_files or None,
                  "monitor": mon_files or None, "tables": tables}
        work = nbformat.v4.new_notebook()
        work.metadata["language_info"] = {"name": "python"}
        for book in books:
            work.cells += _tagged(book.stem, inject_parameters(nbformat.read(book, as_version=4), params))
        client = NotebookClient(work, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(nb_dir)}})
        with client.setup_kernel():
            client.kc.execute(_WARM_UP, silent=True)  # the kernel imports while we analyse below
            sessions = [Capture(c, period_s=period_s, cloudwatch=cw_files or None, monitor=mon_files or None)
                        for c in captures]
            summaries = []
            for cap in sessions:
                summaries.append(cap.summary())
                cap.save_tables(tables)
            client.reset_execution_trackers()
            for index, cell in enumerate(work.cells):
                try:
                    client.execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
                except CellExecutionError as e:
                    lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
                    raise ProbekitError(f"{cell.metadata.get('probekit_book', '?')}.ipynb: a cell failed: "
                                        f"{lines[-1] if lines else 'error'}") from None
    report = nbformat.v4.new_notebook()
    report.cells.append(nbformat.v4.new_markdown_cell(
        "# probekit report\n\nCaptures: " + ", ".join(f"`{Path(c).name}`" for c in captures)
        + f"  \nAggregation period: {period_s} s. Generated by `probekit report`; every figure below was computed "
          "by the notebooks in `notebooks/`, run on these captures (each capture read and analysed once)."))
    report.cells.append(nbformat.v4.new_markdown_cell(summary_markdown(summaries)))
    for cell in work.cells:
        tags = cell.metadata.get("tags", [])
        if "parameters" in tags or "injected-parameters" in tags:
            continue
        cell.metadata.pop("probekit_book", None)
        report.cells.append(cell)
    if notebook_out:
        nbformat.write(report, str(notebook_out))
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

