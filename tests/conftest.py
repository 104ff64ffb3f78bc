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


# The longest test files run first, so that on pytest-xdist's workers (./kit test: a file to a worker)
# they do not start last and leave one worker running alone at the end.
_LONGEST_FIRST = ("test_packaging.py", "test_conn_table.py", "test_notebooks.py", "test_analysis.py")


def pytest_collection_modifyitems(items):
    rank = {name: k for k, name in enumerate(_LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))   # stable: file order kept otherwise
