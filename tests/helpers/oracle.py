"""Read the tshark field dumps in captures-real/oracle/tshark/ and compare them with a packets table."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pandas as pd

TSHARK_FIELDS = ["frame.number", "frame.time_epoch", "frame.len", "frame.cap_len", "ip.src", "ip.dst",
                 "ipv6.src", "ipv6.dst", "ip.proto", "icmp.type", "icmp.code", "icmp.ident", "icmp.seq",
                 "icmpv6.type", "tcp.srcport", "tcp.dstport", "tcp.flags", "tcp.seq", "tcp.ack",
                 "tcp.len", "udp.length"]


def oracle_stem(rel: str) -> str:
    return rel.replace("/", "__")


def load_tshark(oracle_dir: Path, rel: str) -> tuple[int, pd.DataFrame]:
    stem = oracle_dir / "tshark" / oracle_stem(rel)
    rc = int((stem.parent / (stem.name + ".rc")).read_text().strip() or 0)
    tsv = stem.parent / (stem.name + ".tsv")
    if tsv.stat().st_size == 0:
        return rc, pd.DataFrame(columns=TSHARK_FIELDS, dtype=str)
    return rc, pd.read_csv(tsv, sep="\t", dtype=str, keep_default_na=False)


def epoch_to_ns(text: str) -> int | None:
    """tshark's frame.time_epoch ('sec.fraction') → integer ns, exactly (Decimal, no float)."""
    if not text:
        return None
    return int(Decimal(text) * 1_000_000_000)


def first(v: str) -> str:
    """tshark lists inner headers after outer ones ('a,b'): the outer one is the frame's."""
    return v.split(",")[0]


def _int(v: str):
    v = first(v)
    if v == "":
        return None
    return int(v, 16) if v.startswith("0x") else int(v)


def relative_tcp(df: pd.DataFrame) -> tuple[list, list]:
    """TCP seq/ack made relative the way tshark shows them by default: per connection and direction,
    relative to the first sequence number seen in that direction (the ISN for a SYN, one less for
    a segment seen without its SYN; a direction not yet seen takes its base from the first ack)."""
    base: dict = {}
    seqs, acks = [], []
    for row in df.itertuples(index=False):
        if pd.isna(row.tcp_seq):
            seqs.append(None)
            acks.append(None)
            continue
        key = (str(row.src), row.sport, str(row.dst), row.dport)
        rkey = (str(row.dst), row.dport, str(row.src), row.sport)
        flags = 0 if pd.isna(row.tcp_flags) else int(row.tcp_flags)   # a cut header: seq only
        syn = flags & 0x02
        if key not in base:
            base[key] = int(row.tcp_seq) - (0 if syn else 1)
        seqs.append((int(row.tcp_seq) - base[key]) % 2**32)
        if flags & 0x10 and not pd.isna(row.tcp_ack):
            if rkey not in base:
                base[rkey] = int(row.tcp_ack) - 1
            acks.append((int(row.tcp_ack) - base[rkey]) % 2**32)
        else:
            acks.append(0)
    return seqs, acks


def compare(df: pd.DataFrame, ts: pd.DataFrame) -> list[str]:
    """Every disagreement between probekit's table and tshark's dump, as 'frame N field: ours vs tshark'."""
    out = []
    if len(df) != len(ts):
        return [f"frame count: {len(df)} vs {len(ts)}"]
    seqs, acks = relative_tcp(df)

    def chk(i, field, ours, theirs):
        if ours != theirs:
            out.append(f"frame {i + 1} {field}: {ours!r} vs {theirs!r}")

    for i, (row, t) in enumerate(zip(df.itertuples(index=False), ts.itertuples(index=False))):
        t = dict(zip(TSHARK_FIELDS, t))
        na = pd.isna
        chk(i, "ts_ns", None if na(row.ts_ns) else int(row.ts_ns), epoch_to_ns(t["frame.time_epoch"]))
        chk(i, "wirelen", int(row.wirelen), int(t["frame.len"]))
        chk(i, "caplen", int(row.caplen), int(t["frame.cap_len"]))
        v4 = row.l3 == "ipv4" and not (na(row.src) and na(row.dst))
        v6 = row.l3 == "ipv6" and not (na(row.src) and na(row.dst))

        def text(v):
            return "" if na(v) else str(v)
        chk(i, "ip.src", text(row.src) if v4 else "", first(t["ip.src"]))
        chk(i, "ip.dst", text(row.dst) if v4 else "", first(t["ip.dst"]))
        chk(i, "ipv6.src", text(row.src) if v6 else "", first(t["ipv6.src"]))
        chk(i, "ipv6.dst", text(row.dst) if v6 else "", first(t["ipv6.dst"]))
        chk(i, "ip.proto", int(row.ip_proto) if v4 else None, _int(t["ip.proto"]))
        icmp4 = v4 and not na(row.ip_proto) and row.ip_proto == 1 and not na(row.icmp_type)
        icmp6 = v6 and not na(row.ip_proto) and row.ip_proto == 58 and not na(row.icmp_type)
        chk(i, "icmp.type", int(row.icmp_type) if icmp4 else None, _int(t["icmp.type"]))
        chk(i, "icmp.code", int(row.icmp_code) if icmp4 else None, _int(t["icmp.code"]))
        chk(i, "icmp.ident", int(row.icmp_id) if icmp4 and not na(row.icmp_id) else None, _int(t["icmp.ident"]))
        chk(i, "icmp.seq", int(row.icmp_seq) if icmp4 and not na(row.icmp_seq) else None, _int(t["icmp.seq"]))
        chk(i, "icmpv6.type", int(row.icmp_type) if icmp6 else None, _int(t["icmpv6.type"]))
        proto = None if na(row.ip_proto) else int(row.ip_proto)
        tcp = proto == 6 and not na(row.sport) and (v4 or v6)
        udp = proto == 17 and not na(row.sport) and (v4 or v6)
        chk(i, "tcp.srcport", int(row.sport) if tcp else None, _int(t["tcp.srcport"]))
        chk(i, "tcp.dstport", int(row.dport) if tcp else None, _int(t["tcp.dstport"]))
        full = tcp and not na(row.tcp_flags)
        chk(i, "tcp.flags", int(row.tcp_flags) if full else None, _int(t["tcp.flags"]))
        chk(i, "tcp.seq", seqs[i] if full else None, _int(t["tcp.seq"]))
        chk(i, "tcp.ack", acks[i] if full else None, _int(t["tcp.ack"]))
        chk(i, "tcp.len", int(row.payload_len) if full and not na(row.payload_len) else None, _int(t["tcp.len"]))
        chk(i, "udp.length", int(row.payload_len) + 8 if udp and not na(row.payload_len) else None,
            _int(t["udp.length"]))
    return out
