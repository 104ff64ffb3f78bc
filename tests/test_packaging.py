"""The package as a new user gets it: every dependency declared (pyproject and environment.yml in step),
the notebooks shipped inside the wheel, and the wheel working from a fresh venv outside the checkout."""
from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
CONDA_NAMES = {"wireshark"}  # conda-only: tshark (on Debian ./kit installs it with apt)


def _names(reqs) -> set[str]:
    return {re.split(r"[<>=!~ \[;]", r.strip(), maxsplit=1)[0].lower() for r in reqs if r.strip()}


def _declared() -> set[str]:
    """Every distribution the core and the extras name, the package's own extras resolved."""
    project = PYPROJECT["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += extra
    return _names(reqs) - {project["name"]}


def test_environment_yml_matches_pyproject():
    text = (ROOT / "environment.yml").read_text()
    env_lines = text[text.index("\ndependencies:"):].splitlines()
    deps = [ln.strip()[2:] for ln in env_lines if ln.startswith("  - ") and not ln.strip().startswith("- pip")]
    have = _names(d for d in deps if not d.startswith("python=")) - CONDA_NAMES
    wanted = _declared()
    assert have == wanted, f"only in environment.yml: {have - wanted}; only in pyproject: {wanted - have}"


def test_every_third_party_import_is_declared():
    """Each top-level module the package imports (outside the stdlib) comes from a declared distribution."""
    import importlib.metadata as md
    dist_of = md.packages_distributions()
    imported: set[str] = set()
    for path in (ROOT / "probekit").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                imported.add(node.module.split(".")[0])
    third = {m for m in imported if m not in sys.stdlib_module_names and m not in ("probekit", "__future__")}
    declared = _declared()
    missing = {m: dist_of.get(m) for m in third if not {d.lower() for d in dist_of.get(m, [m])} & declared}
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_the_extras_a_user_is_told_about_exist():
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert {"lab", "dask", "live", "test", "dev"} <= set(extras)
    assert "jupyterlab" in _names(extras["lab"]) and {"dask", "distributed"} <= _names(extras["dask"])
    assert {"ruff", "mypy", "import-linter"} <= _names(extras["dev"])
    # the core runs the report: executing and rendering notebooks is not optional
    assert {"nbformat", "nbclient", "nbconvert", "ipykernel"} <= _names(PYPROJECT["project"]["dependencies"])


def test_version_is_the_same_everywhere():
    import probekit
    assert probekit.__version__ == PYPROJECT["project"]["version"]


# ------------------------------------------------------------------------------ the wheel, installed
def _clean_env(**extra) -> dict:
    """No PYTHONPATH (the tests run with the checkout on it) and no virtualenv leaking in."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(extra)
    return env


def _run(cmd, cwd, timeout=900, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, env=_clean_env(), capture_output=True, text=True,
                       timeout=timeout, **kw)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))} -> {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheelhouse")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", out, ROOT], cwd=out)
    (whl,) = out.glob("probekit-*.whl")
    return whl


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv outside the checkout with the wheel and its declared dependencies (from the package
    index, through pip's cache) and nothing else; returns its bin/ folder."""
    home = tmp_path_factory.mktemp("fresh")
    env_dir = home / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    bindir = env_dir / "bin"
    _run([bindir / "python", "-m", "pip", "install", "-q", "--progress-bar", "off", wheel], cwd=home, timeout=1800)
    return bindir


def test_the_wheel_ships_the_notebooks_and_no_tests(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    books = sorted(n for n in names if n.startswith("probekit/notebooks/") and n.endswith(".ipynb"))
    shipped = sorted(f"probekit/notebooks/{p.name}" for p in (ROOT / "probekit" / "notebooks").glob("*.ipynb"))
    assert books == shipped and len(books) >= 6
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "captures/"))]


def test_installed_wheel_runs_outside_the_checkout(installed, tmp_path):
    work = tmp_path / "elsewhere"
    work.mkdir()
    capture = ROOT / "captures" / "healthy.pcap"
    probekit = installed / "probekit"

    where = _run([installed / "python", "-c", "import probekit; print(probekit.__file__)"], cwd=work).stdout
    assert str(installed.parent) in where and str(ROOT) not in where, where

    version = _run([probekit, "--version"], cwd=work).stdout
    assert version.strip() == f"probekit {PYPROJECT['project']['version']}"

    summary = _run([probekit, "summary", "--json", capture], cwd=work).stdout
    s = json.loads(summary)
    from probekit.capture import read_capture
    assert s["path"].endswith("healthy.pcap") and s["packets"] == len(read_capture(capture)) > 0, s

    _run([probekit, "report", capture, "-o", work / "r.html"], cwd=work, timeout=1200)
    html = (work / "r.html").read_text(encoding="utf-8")
    assert "healthy.pcap" in html and "<img" in html and "no notebooks found" not in html
