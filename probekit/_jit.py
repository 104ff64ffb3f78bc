"""The one jit decorator: numba's ``njit`` with the on-disk cache on, or plain Python without numba.

Every compiled kernel in probekit is decorated with :func:`njit` from here, so that ``NUMBA_DISABLE_JIT=1``
or a machine without numba runs the same code as plain Python (slowly, identically), and the tests can
hold each kernel equal to its plain-Python run.
"""
from __future__ import annotations

from typing import Any

__all__ = ["njit", "HAVE_NUMBA", "ctz", "ctz_plain", "prefetch", "prefetch_plain"]

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


def ctz_plain(w) -> int:
    """The index of the lowest set bit of a nonzero unsigned 64-bit word, in Python integers."""
    w = int(w)
    return (w & -w).bit_length() - 1


def _compiled_ctz():
    """LLVM's ``cttz`` (one instruction) through numba's intrinsic, or None when numba does not compile
    (not installed, or ``NUMBA_DISABLE_JIT``): then :func:`ctz` is :func:`ctz_plain`."""
    if _numba_njit is None:
        return None
    from numba import config
    if config.DISABLE_JIT:
        return None
    import numpy as np
    from numba.cpython.unsafe.numbers import trailing_zeros

    @njit(nogil=True)
    def ctz(w):  # pragma: no cover - compiled
        """The index of the lowest set bit of a nonzero unsigned 64-bit word (LLVM's cttz)."""
        return np.int64(trailing_zeros(w))
    return ctz


ctz = _compiled_ctz() or ctz_plain
"""The lowest set bit's index of a nonzero uint64: compiled kernels call it; it is :func:`ctz_plain` in
plain Python."""


def prefetch_plain(arr, i) -> None:
    """Nothing: a prefetch is a hint, with no effect on any result."""


def prefetch(arr, i) -> None:
    """A prefetch hint for ``arr[i]`` (read, keep in all cache levels): LLVM's ``llvm.prefetch`` in
    compiled kernels, nothing in plain Python (so a kernel's ``py_func`` runs too). The address is
    never loaded from: a prefetch of an address outside the array, or unmapped, is dropped by the
    processor, so callers may run past their data's end."""


def _register_prefetch() -> None:
    """Give :func:`prefetch` its compiled form (an ``@overload`` calling an intrinsic), when numba is there."""
    if _numba_njit is None:
        return
    from llvmlite import ir
    from numba import types
    from numba.extending import intrinsic, overload

    @intrinsic
    def _llvm_prefetch(typingctx, arr, i):  # pragma: no cover - compiled
        if not (isinstance(arr, types.Array) and arr.ndim == 1 and arr.layout == "C"
                and isinstance(i, types.Integer)):
            return None

        def codegen(context, builder, signature, args):
            aryty, ity = signature.args
            ary = context.make_array(aryty)(context, builder, args[0])
            idx = context.cast(builder, args[1], ity, types.intp)
            ptr = builder.gep(ary.data, [idx])  # plain arithmetic (not inbounds): no test, no poison
            i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
            fn = builder.module.declare_intrinsic("llvm.prefetch", [i8p],
                                                  ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]))
            builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
            return context.get_dummy_value()
        return types.void(arr, i), codegen

    @overload(prefetch)
    def _prefetch_compiled(arr, i):  # pragma: no cover - compiled
        if isinstance(arr, types.Array) and arr.ndim == 1 and arr.layout == "C" and isinstance(i, types.Integer):
            return lambda arr, i: _llvm_prefetch(arr, i)
        return lambda arr, i: None


_register_prefetch()
