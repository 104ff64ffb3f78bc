"""Start-up stays light: what each entry point imports (module sets, not wall-clock times: the times
are measured in benchmarks/bench_startup.py), and every numba kernel caches on disk."""
from __future__ import annotations

import ast
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import probekit

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("pandas", "numpy", "numba", "scipy", "matplotlib", "pyarrow", "dpkt", "nbformat", "dask")


def _modules_after(code: str) -> set[str]:
    """The modules loaded by a fresh interpreter after running ``code`` (this checkout first on the path)."""
    script = code + "\nimport sys, json\nprint('\\n@@' + json.dumps(sorted(sys.modules)))"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return set(json.loads(r.stdout.rsplit("\n@@", 1)[1]))


def _cli(*argv: str) -> str:
    return ("import runpy, sys\nsys.argv = ['probekit', " + ", ".join(map(repr, argv)) + "]\n"
            "try:\n    runpy.run_module('probekit', run_name='__main__')\nexcept SystemExit as e:\n"
            "    assert e.code in (0, None), e.code\n")


@pytest.mark.parametrize("argv", [("--version",), ("--help",), ("summary", "--help")])
def test_version_and_help_import_nothing_heavy(argv):
    loaded = _modules_after(_cli(*argv))
    assert "probekit.cli" in loaded
    assert not {m for m in HEAVY if m in loaded}, sorted(m for m in HEAVY if m in loaded)


def test_synth_help_still_lists_the_scenarios():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "probekit", "synth", "--help"], env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0 and "target-down" in r.stdout and "Scenarios" in r.stdout, r.stdout


def test_import_probekit_is_lazy():
    loaded = _modules_after("import probekit")
    assert {m for m in loaded if m.startswith("probekit")} == {"probekit"}
    assert not {m for m in HEAVY if m in loaded}


def test_errors_module_is_light():
    loaded = _modules_after("import probekit.errors")
    assert {m for m in loaded if m.startswith("probekit")} == {"probekit", "probekit.errors"}
    assert not {m for m in HEAVY if m in loaded}


def test_reading_a_capture_loads_only_the_reader():
    loaded = _modules_after(f"import probekit\ndf = probekit.read_capture({str(ROOT / 'captures' / 'healthy.pcap')!r})\n"
                            "assert len(df) > 0 and df.probekit.span_ns()[0] > 0")
    ours = {m for m in loaded if m.startswith("probekit.")}
    allowed_prefixes = ("probekit.capture", "probekit._io", "probekit._jit", "probekit.errors", "probekit.schema",
                        "probekit.protocol", "probekit.accessor")
    assert ours and all(m.startswith(allowed_prefixes) for m in ours), sorted(ours)
    assert "probekit.capture._dpkt" not in loaded and "probekit.capture._pyshark" not in loaded
    assert "matplotlib" not in loaded and "dpkt" not in loaded


def test_every_public_name_resolves_and_dir_lists_them():
    names = dir(probekit)
    for name in probekit.__all__:
        assert name in names
        assert getattr(probekit, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        probekit.no_such_name  # noqa: B018
    # submodules are reachable as attributes, as when `import probekit` imported them all
    assert _modules_after("import probekit\nprobekit.schema.empty_packets()\nprobekit.plots.plot_sizes") >= {
        "probekit.schema", "probekit.plots"}
    # a public name is the object of its defining module, not a copy
    from probekit.capture.reader import read_capture
    assert probekit.read_capture is read_capture


def _package_sources():
    return sorted((ROOT / "probekit").rglob("*.py"))


def test_every_kernel_uses_the_one_jit_decorator():
    """Only probekit/_jit.py imports numba; every other module takes ``njit`` from it."""
    offenders = []
    for path in _package_sources():
        if path.name == "_jit.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            mods = ([a.name for a in node.names] if isinstance(node, ast.Import)
                    else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            if any(m == "numba" or m.startswith("numba.") for m in mods):
                offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, offenders


def _jit_modules() -> list[str]:
    out = []
    for path in _package_sources():
        text = path.read_text()
        if "@njit" in text:
            out.append(".".join(path.relative_to(ROOT).with_suffix("").parts))
    return out


@pytest.mark.parametrize("module", _jit_modules())
def test_kernels_cache_on_disk(module):
    from probekit._jit import HAVE_NUMBA
    if not HAVE_NUMBA or os.environ.get("NUMBA_DISABLE_JIT") == "1":
        pytest.skip("numba is not compiling here: nothing to cache")
    from numba.core.dispatcher import Dispatcher
    mod = importlib.import_module(module)
    kernels = [v for v in vars(mod).values() if isinstance(v, Dispatcher) and v.__module__ == module]
    assert kernels, f"{module} has @njit but no compiled kernel"
    no_cache = [k.py_func.__name__ for k in kernels if type(k._cache).__name__ == "NullCache"]
    assert not no_cache, f"{module}: kernels without the on-disk cache: {no_cache}"
