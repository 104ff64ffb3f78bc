"""Write a connections table (schema.CONNECTIONS) as Zeek's own conn.log: the ASCII (TSV) writer's
format with its ``#separator``/``#fields``/``#types`` header and ``#close`` footer, or Zeek's JSON
writer (one object per line, Zeek's field names, ``ts`` as float seconds). Writing files is not an
analysis, so this lives beside the CLI, not in analysis/."""
from __future__ import annotations

import json
import math
import time

import pandas as pd

__all__ = ["CONN_FIELDS", "write_conn_json", "write_conn_tsv"]

# (Zeek field, Zeek type, our column)
CONN_FIELDS = (
    ("ts", "time", "ts_ns"), ("uid", "string", "uid"), ("id.orig_h", "addr", "orig_h"),
    ("id.orig_p", "port", "orig_p"), ("id.resp_h", "addr", "resp_h"), ("id.resp_p", "port", "resp_p"),
    ("proto", "enum", "proto"), ("service", "string", None), ("duration", "interval", "duration_s"),
    ("orig_bytes", "count", "orig_bytes"), ("resp_bytes", "count", "resp_bytes"),
    ("conn_state", "string", "conn_state"), ("local_orig", "bool", "local_orig"),
    ("local_resp", "bool", "local_resp"), ("missed_bytes", "count", "missed_bytes"),
    ("history", "string", "history"), ("orig_pkts", "count", "orig_pkts"),
    ("orig_ip_bytes", "count", "orig_ip_bytes"), ("resp_pkts", "count", "resp_pkts"),
    ("resp_ip_bytes", "count", "resp_ip_bytes"), ("tunnel_parents", "set[string]", "tunnel_parents"),
    ("ip_proto", "count", "ip_proto"),
)
_COMMUNITY = ("community_id", "string", "community_id")


def _fields(conns: pd.DataFrame):
    f = list(CONN_FIELDS)
    if "community_id" in conns.columns:
        f.append(_COMMUNITY)
    return f


def _missing(v, name: str = "") -> bool:
    # conn.zeek's set_conn: history is only set when not empty
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) or (name == "history" and v == "")


def _tsv_value(v, typ: str, name: str) -> str:
    if _missing(v, name):
        return "-"
    if typ == "time":
        return f"{int(v) // 1000 / 1e6:.6f}"
    if typ == "interval":
        return f"{v:.6f}"
    if typ == "bool":
        return "T" if v else "F"
    s = str(v)
    if s == "":
        return "(empty)"
    return s.replace("\\", "\\\\").replace("\t", "\\x09")


def _stamp(t: float) -> str:
    return time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime(t))


def write_conn_tsv(conns: pd.DataFrame, out) -> None:
    """Zeek's ASCII log format (what ``zeek -r`` writes by default) to the text stream ``out``."""
    fields = _fields(conns)
    out.write("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n")
    out.write(f"#open\t{_stamp(time.time())}\n")
    out.write("#fields\t" + "\t".join(f for f, _, _ in fields) + "\n")
    out.write("#types\t" + "\t".join(t for _, t, _ in fields) + "\n")
    cols = [conns[c].tolist() if c is not None else [None] * len(conns) for _, _, c in fields]
    types = [(t, f) for f, t, _ in fields]
    for row in zip(*cols):
        out.write("\t".join(_tsv_value(v, t, f) for v, (t, f) in zip(row, types)) + "\n")
    out.write(f"#close\t{_stamp(time.time())}\n")


def write_conn_json(conns: pd.DataFrame, out) -> None:
    """Zeek's JSON writer (LogAscii::use_json=T): one object per line, unset fields left out."""
    fields = _fields(conns)
    cols = [conns[c].tolist() if c is not None else [None] * len(conns) for _, _, c in fields]
    for row in zip(*cols):
        obj = {}
        for (name, typ, _), v in zip(fields, row):
            if _missing(v, name):
                continue
            if typ == "time":
                v = int(v) / 1e9
            elif typ in ("count", "port"):
                v = int(v)
            elif typ == "bool":
                v = bool(v)
            elif typ == "set[string]":
                v = str(v).split(",")
            elif typ == "interval":
                v = float(v)
            else:
                v = str(v)
            obj[name] = v
        out.write(json.dumps(obj, separators=(",", ":")) + "\n")
