"""How many kernels run a report's notebooks: one per CPU (two at most) in memory, one when a capture is
walked chunk by chunk and large (an idle kernel costs memory while the walk runs), PROBEKIT_REPORT_KERNELS first."""
from __future__ import annotations

import sys
from pathlib import Path

import probekit.drive as drive
from probekit import report

ROOT = Path(__file__).resolve().parents[1]
HEALTHY = str(ROOT / "captures" / "healthy.pcap")


def test_a_chunked_report_runs_one_kernel(monkeypatch):
    monkeypatch.delenv("PROBEKIT_REPORT_KERNELS", raising=False)
    monkeypatch.setattr(report.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    assert report._kernels(7) == 2 and report._kernels(1) == 1
    assert report._kernels(7, chunked=True) == 1
    monkeypatch.setenv("PROBEKIT_REPORT_KERNELS", "3")
    assert report._kernels(7, chunked=True) == 3


def test_which_reports_walk_a_large_capture_in_chunks(monkeypatch):
    """A capture of ONE_KERNEL_BYTES or more walked chunk by chunk: ``chunked=True``, or ``None`` and the
    session's rule (a file over CHUNKED_FILE_BYTES), decided without importing the analyses (the report
    starts its kernels before they load). A small chunked capture keeps the pool."""
    size = Path(HEALTHY).stat().st_size
    assert not report._walks_in_chunks([HEALTHY], True)
    monkeypatch.setattr(report, "ONE_KERNEL_BYTES", size)
    assert report._walks_in_chunks([HEALTHY], True) and not report._walks_in_chunks([HEALTHY], False)
    assert not report._walks_in_chunks([], True)
    assert not report._walks_in_chunks([HEALTHY], None)
    monkeypatch.setattr(drive, "CHUNKED_FILE_BYTES", size - 1)
    assert report._walks_in_chunks([HEALTHY], None)
    if "probekit.drive.chunked" not in sys.modules:      # run alone: the decision loaded no driver
        assert "probekit.analysis.match" not in sys.modules
