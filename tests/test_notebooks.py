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
          "04-tcp-reset-behaviour", "05-loss-and-rtt-metrics"]


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
    ("zeek/wikipedia.pcap", "03-payload-randomness", "no payload bytes"),
])
def test_notebooks_on_real_captures_say_what_does_not_apply(rel, theme, needle):
    require_real_captures()
    nb = run_notebook(ROOT / "probekit" / "notebooks" / f"{theme}.ipynb", {"captures": [str(REAL / rel)], "period": 30})
    text = "\n".join(o.get("data", {}).get("text/markdown", "") + o.get("text", "")
                     for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert needle in text


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.html"
    caps = [ROOT / "captures" / "target-down.pcap", ROOT / "captures" / "tcp-stops-after-activation.pcap"]
    build_report(caps, out, period_s=30)
    return out


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
