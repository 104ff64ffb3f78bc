"""Reproducible write-ups: run the notebooks with parameters, render one self-contained HTML file.

``build_report(captures, "report.html")`` reads and analyses each capture once (``probekit.session``),
saves its tables to a temporary folder, and executes every notebook in ``probekit/notebooks/`` with the captures
and that folder injected (papermill's convention: a cell tagged ``parameters`` holds the defaults, an
``injected-parameters`` cell after it the overrides) on a small pool of kernels that load the tables
instead of recomputing them. The summary of findings at the top leads, per capture, with its most
important finding; the HTML embeds every figure and reads offline.

Huge captures (``chunked``): each capture is walked chunk by chunk (``probekit.drive.chunked``) in the
report's process, which saves the tables the walk computed but the per-probe ones (``session.REPORT_SKIPS``):
the kernels load per-stream and per-period tables and a stretch of the probes for per-probe figures
(``plot_probes``), so no process holds a packets table and no kernel a huge capture's probes. Such a report
of a capture over ``ONE_KERNEL_BYTES`` runs its notebooks on one kernel (an idle kernel holds about 0.3 GiB
while the capture is walked). The
notebooks' packet-level sections (the packets table, connections, payload bytes, dissection) say that they
are skipped for such a capture.
"""
from __future__ import annotations

import copy
import os
import re
from pathlib import Path

import numpy as np

from .errors import ProbekitError

__all__ = ["summary_markdown", "run_notebook", "build_report", "NOTEBOOKS_DIR"]  # capture_summary: see __getattr__

NOTEBOOKS_DIR = Path(__file__).resolve().parent / "notebooks"  # shipped as package data


def __getattr__(name: str):
    """``capture_summary`` moved to probekit.session (kept importable from here). Imported on use, so that
    the report can start its kernels before the analyses are imported."""
    if name == "capture_summary":
        from .session import capture_summary
        return capture_summary
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
                     f"{s['vantage'] or '?'} side."
                     + (" Analysed chunk by chunk (a huge capture): the notebooks' packet-level sections are "
                        "skipped." if s.get("chunked") else ""))
        lines.append("")
        if s.get("cloudwatch_status"):
            lines += [s["cloudwatch_status"], ""]
        if s.get("forensics"):
            lines += [f"- {f}" for f in s["forensics"]] + [""]
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


def _std_fds_open() -> None:
    """Give file descriptors 0-2 a target (/dev/null) where the process started without them (CI runs with
    no standard input): otherwise a kernel's first ZeroMQ socket takes fd 0, and a subprocess it starts
    (tshark, for ``probekit.dissect``) inherits and closes it — "Socket operation on non-socket"."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


def run_notebook(path, params: dict | None = None, timeout: int = 600, cwd=None):
    """Execute a notebook (every cell) with parameters injected; returns the executed notebook.
    A failing cell raises ProbekitError naming the notebook and the cell."""
    _std_fds_open()
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


_WARM_UP = ("import probekit, probekit.plots, matplotlib.pyplot, IPython.display  # probekit report: warm-up\n"
            "from matplotlib_inline.config import InlineBackend\n"
            "InlineBackend.instance().print_figure_kwargs = {'bbox_inches': None}  # figures use constrained layout")


def _kernels(n_books: int, chunked: bool = False) -> int:
    """How many kernels run the notebooks side by side: one per CPU, at most 2, one for a report that walks
    a capture chunk by chunk (its memory is the bound; PROBEKIT_REPORT_KERNELS says otherwise)."""
    want = os.environ.get("PROBEKIT_REPORT_KERNELS")
    n = int(want) if want else 1 if chunked else min(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                                     else (os.cpu_count() or 1))
    return max(1, min(n, n_books))


ONE_KERNEL_BYTES = 256 << 20
"""A report that walks a capture this large or larger chunk by chunk runs one kernel: a second one would sit
idle (about 0.3 GiB) beside the walk. Smaller chunked captures keep the pool (the tests' reports)."""


def _walks_in_chunks(captures: list[str], chunked: bool | None) -> bool:
    """Whether some capture of the report is walked chunk by chunk (``Capture.is_chunked``'s rule) and is
    at least ``ONE_KERNEL_BYTES``."""
    from .drive import CHUNKED_FILE_BYTES  # the constant alone: the analyses are not imported yet
    sizes = [Path(c).stat().st_size for c in captures]
    walked = sizes if chunked else [] if chunked is False else [n for n in sizes if n > CHUNKED_FILE_BYTES]
    return any(n >= ONE_KERNEL_BYTES for n in walked)


async def _execute(books: list, analyse, nb_dir: Path, timeout: int, n_kernels: int) -> None:
    """Run the notebooks (name, notebook) on a pool of kernels, each taking the next notebook when free.
    The kernels start and import probekit while ``analyse`` (the captures' tables) runs in a thread;
    no cell runs before it has finished."""
    import asyncio

    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    queue: asyncio.Queue = asyncio.Queue()
    for item in books:
        queue.put_nowait(item)
    ready = asyncio.Event()

    async def worker() -> None:
        import nbformat
        client = NotebookClient(nbformat.v4.new_notebook(), timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(nb_dir)}})
        async with client.async_setup_kernel():
            client.kc.execute(_WARM_UP, silent=True)
            await ready.wait()
            while not queue.empty():
                name, nb = queue.get_nowait()
                client.nb = nb
                client.reset_execution_trackers()
                for index, cell in enumerate(nb.cells):
                    try:
                        await client.async_execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
                    except CellExecutionError as e:
                        lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
                        raise ProbekitError(f"{name}.ipynb: a cell failed: {lines[-1] if lines else 'error'}") from None

    async def prepare() -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(None, analyse)
        finally:
            ready.set()

    tasks = [asyncio.ensure_future(worker()) for _ in range(n_kernels)]
    prep = asyncio.ensure_future(prepare())
    try:
        await prep
        await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _run(coro) -> None:
    """asyncio.run, also from inside a running event loop (a Jupyter kernel): then in a thread."""
    import asyncio
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(1) as ex:
        return ex.submit(asyncio.run, coro).result()


def build_report(captures, out_html, period_s: int = 30, notebooks_dir=None, cloudwatch=None, monitor=None,
                 cloudwatch_csv=None, timeout: int = 600, notebook_out=None, chunked: bool | None = None,
                 chunk_packets: int | None = None) -> Path:
    """Run every notebook on ``captures`` and write one self-contained HTML report.

    Each capture is read and analysed once, here: its tables are saved to a temporary folder that the
    notebooks' kernels load (parameter ``tables``). The notebooks run on a pool of kernels (one per CPU,
    at most 2), which start and import probekit while the captures are being analysed.
    ``cloudwatch``/``monitor``: a CloudWatch export (any format ``probekit.capture.cloudwatch`` reads) and
    the monitor description, audited against every capture; without them each capture's own
    ``NAME.cloudwatch.json`` / ``NAME.monitor.json`` beside it are used when present. ``cloudwatch_csv``
    is the old name of ``cloudwatch``. ``notebook_out``: also write the executed report as a notebook.
    ``chunked``: walk the captures chunk by chunk (None: plain files over 2 GiB), ``chunk_packets`` at a time.
    """
    _std_fds_open()
    import tempfile

    import nbformat
    from nbconvert import HTMLExporter
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
    paths = sorted(nb_dir.glob("[0-9][0-9]-*.ipynb"))
    if not paths:
        raise ProbekitError(f"{nb_dir}: no notebooks found")
    summaries: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="probekit-report-") as tables:
        params = {"captures": captures, "period": period_s, "cloudwatch": cw_files or None,
                  "monitor": mon_files or None, "tables": tables, "chunked": chunked, "chunk_packets": chunk_packets}
        books = [(p.stem, inject_parameters(nbformat.read(p, as_version=4), params)) for p in paths]

        def analyse() -> None:
            from .drive.chunked import release_free_memory
            from .session import REPORT_SKIPS, Capture  # here: the kernels start meanwhile
            for c in captures:
                cap = Capture(c, period_s=period_s, cloudwatch=cw_files or None, monitor=mon_files or None,
                              chunked=chunked, chunk_packets=chunk_packets)
                summaries.append(cap.summary())
                release_free_memory()
                cap.save_tables(tables, skip=REPORT_SKIPS if cap.is_chunked else ())
                del cap                     # its tables go before the next capture is walked
                release_free_memory()       # and their pages, while the kernels run

        _run(_execute(books, analyse, nb_dir, timeout, _kernels(len(books), _walks_in_chunks(captures, chunked))))
    report = nbformat.v4.new_notebook()
    report.metadata["language_info"] = {"name": "python"}
    report.cells.append(nbformat.v4.new_markdown_cell(
        "# probekit report\n\nCaptures: " + ", ".join(f"`{Path(c).name}`" for c in captures)
        + f"  \nAggregation period: {period_s} s. Generated by `probekit report`; every figure below was computed "
          "by the notebooks in `notebooks/`, run on these captures (each capture read and analysed once)."))
    report.cells.append(nbformat.v4.new_markdown_cell(summary_markdown(summaries)))
    for _, nb in books:
        for cell in nb.cells:
            tags = cell.metadata.get("tags", [])
            if "parameters" in tags or "injected-parameters" in tags:
                continue
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

