"""The public surface: names pinned, schema documented, dependencies declared in both places."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import probekit
from probekit.schema import PACKET_COLUMNS, check_packets, empty_packets, markdown

ROOT = Path(__file__).resolve().parents[1]

PUBLIC = {
    "read_capture", "CaptureError", "CaptureWarning", "BackendError", "ProbekitError", "PACKETS",
    "PACKET_COLUMNS", "__version__",
}


def test_public_names_are_pinned():
    assert set(probekit.__all__) == PUBLIC
    for name in PUBLIC:
        assert hasattr(probekit, name), name


def test_docs_list_the_schema_verbatim():
    doc = (ROOT / "docs" / "packets-table.md").read_text()
    assert markdown() in doc, "regenerate the rows with `python -m probekit.schema`"


def test_empty_table_follows_schema():
    df = empty_packets()
    check_packets(df)
    assert tuple(df.columns) == PACKET_COLUMNS


def _names(reqs):
    return {re.split(r"[<>=!~ \[]", r.strip(), maxsplit=1)[0].lower() for r in reqs if r.strip()}


def test_environment_yml_matches_pyproject():
    py = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = _names(py["dependencies"]) | _names(py["optional-dependencies"]["test"])
    text = (ROOT / "environment.yml").read_text()
    env_lines = text[text.index("\ndependencies:"):].splitlines()
    deps = [ln.strip()[2:] for ln in env_lines if ln.startswith("  - ") and not ln.strip().startswith("- pip")]
    have = _names(d for d in deps if not d.startswith("python=")) - {"wireshark"}
    assert have == wanted, f"only in environment.yml: {have - wanted}; only in pyproject: {wanted - have}"
