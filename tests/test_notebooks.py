"""The notebook kit: stripped in git, every cell runs, the report renders, JupyterLab serves it."""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from helpers.corpus import REAL, require_real_captures
from probekit.report import build_report, run_notebook

ROOT = Path(__file__).resolve().parents[1]
NB = sorted((ROOT / "probekit" / "notebooks").glob("[0-9][0-9]-*.ipynb"))
ARTIFACTS = ROOT / "build" / "test-artifacts"
THEMES = ["00-quickstart", "01-inter-arrival-timing", "02-per-eni-distribution", "03-payload-randomness",
          "04-tcp-reset-behaviour", "05-loss-and-rtt-metrics", "06-streams-errors-and-mtu"]


def test_the_six_notebooks_exist_and_are_stripped():
    """Notebooks are kept diff-able: committed without outputs or execution counts, one tagged
    parameters cell each (papermill's convention)."""
    assert [p.stem for p in NB] == THEMES
    for p in NB:
        nb = nbformat.read(p, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), f"{p.name}: strip outputs"
        tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1 and "captures =" in tagged[0].source, p.name
        assert nb.cells[0].cell_type == "markdown", "each notebook opens with its story"


def test_no_analysis_logic_in_cells():
    """Cells narrate and call probekit; pandas arithmetic on tables belongs in probekit."""
    banned = re.compile(r"\.(groupby|merge|agg|apply|rolling|resample|pivot_table|pivot|value_counts|size)\(|np\.|"
                        r"numpy|scipy|dpkt")
    allowed = {"groupby('protocol', observed=True)"}  # iterating over protocols to draw one figure each
    for p in NB:
        for c in nbformat.read(p, as_version=4).cells:
            if c.cell_type != "code":
                continue
            src = c.source
            for a in allowed:
                src = src.replace(a, "")
            assert not banned.search(src), f"{p.name}: {c.source[:80]}"


@pytest.mark.parametrize("path", NB, ids=lambda p: p.stem)
def test_every_notebook_runs_top_to_bottom_on_the_shipped_captures(path):
    nb = run_notebook(path)
    outs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outs if o.output_type == "error"]
    images = [o for o in outs if "image/png" in o.get("data", {})]
    assert images, "each notebook draws at least one figure"


@pytest.mark.parametrize("rel,theme,needle", [
    ("zeek/icmp/5-pings.pcap", "04-tcp-reset-behaviour", "TCP handshake and reset analysis does not apply"),
    ("zeek/icmp/5-pings.pcap", "02-per-eni-distribution", "a per-ENI split needs two or more"),
    ("zeek/linux_dlt_sll2.pcap", "01-inter-arrival-timing", "there is no inter-arrival to measure"),
    ("zeek/wikipedia.pcap", "03-payload-randomness", "no probes"),   # a browser: client streams, set aside
    (str(ROOT / "captures" / "tools" / "check_tcp.pcap"), "03-payload-randomness", "no payload bytes"),
])
def test_notebooks_on_real_captures_say_what_does_not_apply(rel, theme, needle):
    require_real_captures()
    nb = run_notebook(ROOT / "probekit" / "notebooks" / f"{theme}.ipynb", {"captures": [str(REAL / rel)], "period": 30})
    text = "\n".join(o.get("data", {}).get("text/markdown", "") + o.get("text", "")
                     for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert needle in text


REPORT_CAPTURES = ["target-down.pcap", "tcp-stops-after-activation.pcap", "healthy.pcap"]


@pytest.fixture(scope="module")
def report_files(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.html"
    build_report([ROOT / "captures" / n for n in REPORT_CAPTURES], out, period_s=30,
                 notebook_out=out.with_suffix(".ipynb"))
    return out, nbformat.read(out.with_suffix(".ipynb"), as_version=4)


@pytest.fixture(scope="module")
def report(report_files):
    return report_files[0]


def test_report_is_self_contained_with_every_section(report):
    html = report.read_text()
    assert "Summary of findings" in html and "Anomalies" in html
    for title in ("00 · Quickstart", "01 · Inter-arrival timing", "02 · Per-ENI distribution",
                  "03 · Payload randomness", "04 · TCP handshake and reset behaviour", "05 · Loss and RTT per period"):
        assert title in html, title
    assert html.count("data:image/png;base64,") >= 20
    assert not re.search(r"<script[^>]*src=\"https?://", html) and "cdnjs" not in html
    assert "100 % loss (no reply at all)" in html and "to the end of the capture" in html
    assert "zero_loss_but_no_replies" in html, "the audit of the investigation's CloudWatch numbers"


def _markdown_outputs(cell) -> list[str]:
    return [o.get("data", {}).get("text/markdown", "") for o in cell.get("outputs", [])]


def test_report_summary_leads_with_the_cloudwatch_disagreement(report_files):
    _, nb = report_files
    summary = next(c.source for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("# Summary"))
    lead = summary.split("\n## ", 1)[0]
    first = [ln for ln in lead.splitlines() if ln.startswith("- **target-down.pcap**")]
    assert len(first) == 1 and "CloudWatch said 0 % loss and 0 ms RTT for tcp 192.0.2.10:80 while none of its" in first[0]
    assert "100 % loss" in next(ln for ln in lead.splitlines() if ln.startswith("- **tcp-stops-after-activation.pcap**")) \
        or "no probes at all" in lead
    assert "- **healthy.pcap**: no anomalies found." in lead
    text = "\n".join([summary] + [m for c in nb.cells for m in _markdown_outputs(c)])
    assert text.count("No CloudWatch export for") == 1, "one line for every capture without an export"
    assert text.count("without a CloudWatch export") == 1, "notebook 05 says it once, for all captures"
    assert "`tcp-stops-after-activation.pcap`, `healthy.pcap`" in lead
    assert "no CloudWatch export given" not in text


def _summary_cell(nb) -> str:
    return next(c.source for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("# Summary"))


def test_report_on_chunked_captures_gives_the_in_memory_summary(report_files, tmp_path, monkeypatch):
    """The same captures forced chunked, 1,000 packets per chunk: the report's process never reads a packets
    table, every cell of every notebook runs (a failing cell fails build_report), the summary's numbers are
    the in-memory report's, and the packet-level sections say plainly that they are skipped."""
    import probekit.capture as capture_pkg
    import probekit.session as session

    def whole(*a, **kw):
        raise AssertionError("the chunked report read a whole packets table")

    monkeypatch.setattr(capture_pkg, "read_capture", whole)
    out = tmp_path / "chunked.html"
    build_report([ROOT / "captures" / n for n in REPORT_CAPTURES], out, period_s=30, chunked=True,
                 chunk_packets=1000, notebook_out=out.with_suffix(".ipynb"))
    nb = nbformat.read(out.with_suffix(".ipynb"), as_version=4)
    outs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outs if o.output_type == "error"]
    chunked = _summary_cell(nb)
    note = (" Analysed chunk by chunk (a huge capture): the notebooks' packet-level sections are skipped.")
    assert chunked.count(note) == len(REPORT_CAPTURES)
    assert chunked.replace(note, "") == _summary_cell(report_files[1])
    text = "\n".join(m for c in nb.cells for m in _markdown_outputs(c))
    assert "analysed chunk by chunk" in text and "packet-level parts" in text
    for theme in ("04 · TCP handshake and reset behaviour", "05 · Loss and RTT per period"):
        assert theme in out.read_text()
    images = [o for o in outs if "image/png" in o.get("data", {})]
    assert len(images) >= 15, len(images)
    assert session.Capture(ROOT / "captures" / "healthy.pcap", chunked=True).not_applicable("packets")


def test_every_figure_and_table_sits_under_its_captures_heading(report_files):
    """Each figure and table of a multi-capture report follows, in its cell, a heading naming the capture."""
    _, nb = report_files
    names = set(REPORT_CAPTURES)
    checked = 0
    for c in nb.cells:
        if c.cell_type != "code":
            continue
        heading = None
        for o in c.outputs:
            md = o.get("data", {}).get("text/markdown", "")
            if md.startswith("### "):
                heading = md[4:].split(",")[0].split(":")[0].strip()
            if "image/png" in o.get("data", {}) or "text/html" in o.get("data", {}):
                assert heading in names, f"output without a capture heading in: {c.source[:80]!r}"
                checked += 1
    assert checked >= 30


def test_report_reads_and_analyses_each_capture_once(tmp_path, monkeypatch):
    """The report process reads each capture once and saves its tables; the notebooks' kernel loads them."""
    import probekit.capture as capture_pkg
    calls = []
    real = capture_pkg.read_capture

    def counting(path, *a, **kw):
        calls.append(Path(path).name)
        return real(path, *a, **kw)

    monkeypatch.setattr(capture_pkg, "read_capture", counting)
    books = tmp_path / "nb"
    books.mkdir()
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("captures = []\nperiod = 30\ncloudwatch = None\nmonitor = None\ntables = None")
    params.metadata["tags"] = ["parameters"]
    probe = nbformat.v4.new_code_cell(
        "import probekit\n"
        "caps = [probekit.open_capture(p, period_s=period, cloudwatch=cloudwatch, monitor=monitor, tables=tables)"
        " for p in captures]\n"
        "assert tables is not None\n"
        "names = ('packets', 'probes', 'connections', 'payload_verdicts', 'cloudwatch_audit')\n"
        "loaded = [n for n in names if all(n in c.saved_tables() for c in caps)]\n"
        "assert not any(n in c.__dict__ for c in caps for n in names)  # each table loaded on first use\n"
        "print('loaded:', ','.join(loaded), 'audit rows:', len(caps[0].cloudwatch_audit))")
    nb.cells = [nbformat.v4.new_markdown_cell("# probe"), params, probe]
    nbformat.write(nb, books / "00-probe.ipynb")
    caps = [ROOT / "captures" / "target-down.pcap", ROOT / "captures" / "healthy.pcap"]
    out = tmp_path / "r.html"
    build_report(caps, out, notebooks_dir=books, notebook_out=tmp_path / "r.ipynb")
    assert sorted(calls) == sorted(p.name for p in caps), calls
    done = nbformat.read(tmp_path / "r.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in done.cells if c.cell_type == "code" for o in c.outputs)
    assert "loaded: packets,probes,connections,payload_verdicts,cloudwatch_audit audit rows: 20" in printed


def test_sessions_load_saved_tables_without_reading_the_capture(tmp_path, monkeypatch):
    import probekit
    import probekit.capture as capture_pkg
    cap = probekit.open_capture(ROOT / "captures" / "target-down.pcap")
    cap.save_tables(tmp_path)

    def boom(*a, **kw):
        raise AssertionError("read again")

    monkeypatch.setattr(capture_pkg, "read_capture", boom)
    again = probekit.open_capture(ROOT / "captures" / "target-down.pcap", tables=tmp_path)
    assert again.probes.equals(cap.probes) and again.cloudwatch_audit.equals(cap.cloudwatch_audit)
    other = probekit.open_capture(ROOT / "captures" / "target-down.pcap", period_s=60, tables=tmp_path)
    with pytest.raises(AssertionError, match="read again"):
        _ = other.packets  # other settings: not the saved tables


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed (./kit test installs it)")
def test_report_renders_in_headless_chromium(report, tmp_path):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report.png"
    if shot.exists():
        shot.unlink()
    p = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
                        "--window-size=1280,2000", f"--screenshot={shot}", report.as_uri()],
                       capture_output=True, text=True, timeout=120)
    console = [ln for ln in p.stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
    assert not console, console
    assert shot.exists() and shot.stat().st_size > 50_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_jupyterlab_serves_the_notebooks(tmp_path):
    port = _free_port()
    token = "probekit-test"
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"), JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"))
    proc = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
                             f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={ROOT}", "--allow-root"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        url = f"http://127.0.0.1:{port}/api/contents/probekit/notebooks?token={token}"
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    listing = json.load(r)
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.5)
        names = {c["name"] for c in listing["content"]}
        assert {f"{t}.ipynb" for t in THEMES} <= names
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab?token={token}", timeout=10) as r:
            assert r.status == 200 and b"JupyterLab" in r.read()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
