"""Shared fixtures: where ../shared/captures-real is, and the rule for when it is missing."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PROBEKIT_SHARED", ROOT.parent / "shared"))
REAL = SHARED / "captures-real"
ORACLE = REAL / "oracle"


def require_real_captures() -> Path:
    """The public-capture corpus; skip with the reason on a user's clone, fail in CI."""
    if REAL.is_dir():
        return REAL
    msg = (f"the public-capture corpus is not at {REAL} (set PROBEKIT_SHARED to the folder holding "
           "captures-real/)")
    if os.environ.get("CI"):
        pytest.fail("CI must have ../shared: " + msg)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def real_dir() -> Path:
    return require_real_captures()


def real_captures() -> list[str]:
    """Relative paths of every capture in the corpus (empty when the corpus is absent)."""
    if not REAL.is_dir():
        return []
    out = []
    for p in sorted(REAL.rglob("*")):
        if p.is_file() and "oracle" not in p.relative_to(REAL).parts and p.suffix in (".pcap", ".pcapng"):
            out.append(str(p.relative_to(REAL)))
    return out


@pytest.fixture(autouse=True)
def _close_figures():
    """Tests draw many figures; close them after each test."""
    yield
    import sys
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")
