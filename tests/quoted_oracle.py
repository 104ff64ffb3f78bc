"""The header quoted inside ICMP/ICMPv6 errors, as real tshark dissects it, added to a packets table as the
decoder's ``quoted_*`` columns (schema.QUOTED_COLUMNS, ``icmp_mtu``).

Until the decoder branch lands its columns, the attribution tests take the quoted fields from tshark
itself (an independent dissector) rather than from our own decoding; once the packets table carries
them, ``add_quoted`` keeps the table's own columns and the tests run on those.
"""
from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

FIELDS = ["frame.number", "ip.src", "ip.dst", "ip.proto", "ipv6.src", "ipv6.dst", "ipv6.nxt", "icmp.type",
          "icmpv6.type", "icmp.ident", "icmp.seq", "icmpv6.echo.identifier", "icmpv6.echo.sequence_number",
          "tcp.srcport", "tcp.dstport", "tcp.seq", "udp.srcport", "udp.dstport", "icmp.mtu", "icmpv6.mtu"]
V4_ERRORS = {3, 11, 12}
V6_ERRORS = {1, 2, 3, 4}


def tshark() -> str:
    path = shutil.which("tshark")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("tshark is not installed")
        pytest.skip("tshark is not installed")
    return path


def tshark_quoted(path) -> pd.DataFrame:
    """One row per ICMP/ICMPv6 error frame: the quoted header's fields (inner = second occurrence)."""
    cmd = [tshark(), "-n", "-r", str(path), "-o", "tcp.relative_sequence_numbers:FALSE", "-T", "fields",
           "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=,"]
    for f in FIELDS:
        cmd += ["-e", f]
    text = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
    rows = []
    for line in text.splitlines():
        v = dict(zip(FIELDS, (line.split("|") + [""] * len(FIELDS))[:len(FIELDS)]))
        t4 = [int(x) for x in v["icmp.type"].split(",") if x]
        t6 = [int(x) for x in v["icmpv6.type"].split(",") if x]
        if not ((t4 and t4[0] in V4_ERRORS) or (t6 and t6[0] in V6_ERRORS)):
            continue
        v6 = bool(t6 and t6[0] in V6_ERRORS)
        src = v["ipv6.src" if v6 else "ip.src"].split(",")
        dst = v["ipv6.dst" if v6 else "ip.dst"].split(",")
        proto = [x for x in v["ipv6.nxt" if v6 else "ip.proto"].split(",") if x]

        def one(name):
            x = [y for y in v[name].split(",") if y]
            return int(x[-1], 0) if x else None
        inner_proto = int(proto[-1]) if len(proto) > 1 else None
        rows.append(dict(
            frame=int(v["frame.number"]), quoted_src=src[1] if len(src) > 1 else None,
            quoted_dst=dst[1] if len(dst) > 1 else None, quoted_proto=inner_proto,
            quoted_sport=one("tcp.srcport") if inner_proto == 6 else one("udp.srcport") if inner_proto == 17 else None,
            quoted_dport=one("tcp.dstport") if inner_proto == 6 else one("udp.dstport") if inner_proto == 17 else None,
            quoted_icmp_id=one("icmpv6.echo.identifier" if v6 else "icmp.ident") if inner_proto in (1, 58) else None,
            quoted_icmp_seq=one("icmpv6.echo.sequence_number" if v6 else "icmp.seq") if inner_proto in (1, 58) else None,
            quoted_tcp_seq=one("tcp.seq") if inner_proto == 6 else None,
            icmp_mtu=one("icmpv6.mtu" if v6 else "icmp.mtu")))
    return pd.DataFrame(rows, columns=["frame", "quoted_src", "quoted_dst", "quoted_proto", "quoted_sport",
                                       "quoted_dport", "quoted_icmp_id", "quoted_icmp_seq", "quoted_tcp_seq",
                                       "icmp_mtu"])


TYPES = {"quoted_proto": "UInt8", "quoted_sport": "UInt16", "quoted_dport": "UInt16", "quoted_icmp_id": "UInt16",
         "quoted_icmp_seq": "UInt16", "quoted_tcp_seq": "UInt32", "icmp_mtu": "UInt32"}


def add_quoted(df: pd.DataFrame, path) -> pd.DataFrame:
    """``df`` with the quoted_* columns and icmp_mtu filled from tshark (kept as they are if present)."""
    if all(c in df.columns for c in ["quoted_src", *TYPES]):
        return df
    q = tshark_quoted(path)
    out = df.copy()
    pos = pd.Index(df["frame"].to_numpy()).get_indexer(q["frame"].to_numpy())
    n = len(df)
    for c in ("quoted_src", "quoted_dst"):
        vals = np.full(n, None, dtype=object)
        vals[pos] = q[c].to_numpy(object)
        out[c] = pd.Categorical(vals)
    for c, t in TYPES.items():
        f = np.full(n, np.nan)
        f[pos] = q[c].to_numpy("float64", na_value=np.nan) if len(q) else []
        arr = pd.array(np.nan_to_num(f).astype("int64"), dtype=t)
        arr[np.isnan(f)] = pd.NA
        out[c] = arr
    out.attrs = dict(df.attrs)
    return out
