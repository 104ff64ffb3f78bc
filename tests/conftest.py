"""Shared fixtures. The corpus helpers live in tests/helpers/corpus.py (re-exported here for tests that
still import them from conftest)."""
from __future__ import annotations

from pathlib import Path

import pytest

from helpers.corpus import ORACLE, REAL, ROOT, SHARED, real_captures, require_real_captures

__all__ = ["ORACLE", "REAL", "ROOT", "SHARED", "real_captures", "require_real_captures"]


@pytest.fixture(scope="session")
def real_dir() -> Path:
    return require_real_captures()


@pytest.fixture(autouse=True)
def _close_figures():
    """Tests draw many figures; close them after each test."""
    yield
    import sys
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")
