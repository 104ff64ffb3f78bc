"""Where the shared public-capture corpus is (../shared/captures-real, or $PROBEKIT_SHARED), the rule
for when it is missing (skip with the reason; fail when CI is set), and the captures libpcap refuses."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

__all__ = ["ROOT", "SHARED", "REAL", "ORACLE", "REFUSED", "require_real_captures", "real_captures"]

ROOT = Path(__file__).resolve().parents[2]
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


def real_captures() -> list[str]:
    """Relative paths of every capture in the corpus (empty when the corpus is absent)."""
    if not REAL.is_dir():
        return []
    out = []
    for p in sorted(REAL.rglob("*")):
        if p.is_file() and "oracle" not in p.relative_to(REAL).parts and p.suffix in (".pcap", ".pcapng"):
            out.append(str(p.relative_to(REAL)))
    return out


# Files libpcap refuses (oracle/libpcap/TESTrun-errstr.tsv) -> (byte offset, pattern of our reason)
REFUSED = {
    "libpcap/linktype-reserved-field-not-zero.pcap": (20, r"reserved bits set \(0x00300000\)"),
    "libpcap/pcap-empty-file.pcap": (0, r"empty file"),
    "libpcap/pcap-invalid-version-1.pcap": (4, r"unsupported pcap file version 1\.4"),
    "libpcap/pcap-truncated-hdr-23.pcap": (0, r"truncated pcap file header: needs 24 bytes, the file has 23"),
    "libpcap/pcapng-block-len-not-mult4.pcapng": (32, r"length of 21 that is not a multiple of 4"),
    "libpcap/pcapng-block-len-too-small.pcapng": (32, r"length of 4 < 12"),
    "libpcap/pcapng-idb-tsresol-dec-high.pcapng": (44, r"if_tsresol resolution 10\^-100 is too high"),
    "libpcap/pcapng-invalid-vers-1.pcapng": (12, r"unsupported pcapng version 0\.1"),
    "libpcap/pcapng-packet-before-idb.pcapng": (28, r"packet block before any interface description block"),
    "libpcap/pcapng-shb-len-insane.pcapng": (4, r"invalid length 2097152"),
    "libpcap/pcapng-truncated-shb.pcapng": (0, r"needs 28 bytes, 16 remain"),
    # libpcap names 32 as the header length (it re-reads the block after the fixed SHB fields); the
    # SHB's own length field says 52, and its trailer at offset 48 holds 0x30303030 = 808464432.
    "libpcap/shb-option-too-long.pcapng": (48, r"header 52 and trailer 808464432 don't match"),
}
