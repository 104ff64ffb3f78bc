"""The one jit decorator: numba's ``njit`` with the on-disk cache on, or plain Python without numba.

Every compiled kernel in probekit is decorated with :func:`njit` from here, so that ``NUMBA_DISABLE_JIT=1``
or a machine without numba runs the same code as plain Python (slowly, identically), and the tests can
hold each kernel equal to its plain-Python run.
"""
from __future__ import annotations

from typing import Any

__all__ = ["njit", "HAVE_NUMBA"]

_numba_njit: Any
try:  # pragma: no cover - exercised by whichever mode the machine has
    from numba import njit as _numba_njit
    HAVE_NUMBA = True
except ImportError:  # pragma: no cover
    _numba_njit = None
    HAVE_NUMBA = False


def njit(*args, **kwargs):
    """``numba.njit`` with ``cache=True`` unless told otherwise; the identity without numba."""
    if _numba_njit is None:
        if args and callable(args[0]):
            return args[0]
        return lambda f: f
    kwargs.setdefault("cache", True)
    return _numba_njit(*args, **kwargs)
