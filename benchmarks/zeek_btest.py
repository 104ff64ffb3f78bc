"""Zeek conformance on Zeek's own btest set: every ``testing/btest/Baseline/*/conn.log`` of a Zeek mirror,
re-made by probekit's ``connections()`` from the btest's trace and options, compared per connection.

    python benchmarks/zeek_btest.py [--mirror /work/.mirror/zeek+zeek/repo] [--rev HEAD] [--only SUBSTR]
                                    [--verbose]

The mirror is a (bare) git clone of github.com/zeek/zeek; nothing is copied into the repository: each
trace is extracted with ``git show`` into a temporary directory that is removed at the end.

For each baseline the btest script (``testing/btest/<name with dots as slashes>.{zeek,test,...}``; a
``-N`` suffix is a ``@TEST-START-NEXT`` variant of the same script) is read for the ``zeek -r`` line that
wrote the conn.log: ``-b`` (bare: only the loaded protocols' ports are likely server ports), ``-C``
(no checksum checks), ``-f FILTER`` (applied with tcpdump, i.e. libpcap), the scripts it loads and the
redefs it makes. Redefs of timers probekit takes (``timeouts_s``), ``ignore_checksums`` and
``likely_server_ports`` are passed on; a baseline whose script changes something probekit does not
model is skipped, with the reason printed.

Matching: on the 5-tuple and proto, and on ts within 1 µs where the baseline has real timestamps (btest
masks most of them as XXXXXXXXXX.XXXXXX: then connections of one 5-tuple pair in order). A baseline cut
to a few columns without the 5-tuple (``btest-diff-cut -m uid history service``) is compared as a
multiset of the values it has. ``X`` (HIST_ANALYZER_LIMIT_REACHED, set by application analyzers) is
removed from Zeek's history before comparing and counted. Outer tunnel connections (a conn.log row
that is the tunnel_parent of another, or whose service is a tunnel protocol) are counted apart. The
outer UDP connections of the tunnels the reader opened come from a second read with
``decapsulate=False`` (the packets table holds the inner packet): Zeek logs them too, and those it does
not mark as tunnels (GRE-in-UDP, a VXLAN datagram whose bad checksum stops Zeek before the tunnel) are
compared like any other row.

This is a measurement tool, not a CI test (CI has no mirror).
"""
from __future__ import annotations

import argparse
import collections
import ipaddress
import json
import math
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

DEFAULT_MIRROR = "/work/.mirror/zeek+zeek/repo"
SCRIPT_EXTS = ("", ".zeek", ".test", ".spicy", ".sh", ".bro", ".zeek.test")
ID_FIELDS = ("id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto")
NUM_FIELDS = ("orig_bytes", "resp_bytes", "missed_bytes", "orig_pkts", "orig_ip_bytes", "resp_pkts",
              "resp_ip_bytes")
TIMER_REDEFS = ("tcp_attempt_delay", "tcp_reset_delay", "tcp_close_delay", "tcp_connection_linger",
                "tcp_inactivity_timeout", "udp_inactivity_timeout", "icmp_inactivity_timeout",
                "tcp_SYN_timeout", "tcp_session_timer")
# redefs that change conn.log in ways probekit does not model (the reason printed when skipping)
UNMODELLED_REDEFS = {
    "tcp_max_old_segments": "the reassembler's old-segment limit",
    "tcp_excessive_data_without_further_acks": "the reassembler's excessive-data limit",
    "tcp_max_above_hole_without_any_acks": "the reassembler's above-hole limit",
    "report_gaps_for_partial": "gap reporting for partial connections",
    "ignore_checksums_nets": "per-network checksum skipping",
    "ConnKey::factory": "a different connection key (VLAN-aware)",
    "tcp_storm_thresh": "storm detection", "tcp_storm_interarrival_thresh": "storm detection",
    "tcp_content_deliver_all_orig": "content delivery", "tcp_match_undelivered": "content delivery",
    "ConnThreshold::generic_packet_thresholds": "generic packet thresholds",
    "Conn::default_extract": "content extraction",
}
# script calls that change a connection's life or its packets' processing (checked in the btest's
# script; those in LOADED_CHECKS also in the scripts it loads)
UNMODELLED_CALLS = {
    "skip_further_processing": "skip_further_processing() stops processing a connection's packets",
    "set_inactivity_timeout": "set_inactivity_timeout() changes a connection's timer",
    "NetControl::create_packetfilter": "a NetControl packet filter drops packets during the run",
    "install_pcap_filter": "a packet filter installed by script",
    "Analyzer::disable_all": "Analyzer::disable_all (ConnSize and other analyzers off)",
    "disable_analyzer(Analyzer::ANALYZER_TCP": "the TCP analyzer disabled",
    "suspend_processing": "suspended processing",
}
# scripts that, loaded by name, change how connections are processed (with the btest's redefs that
# arm them); base/protocols/ftp loads gridftp too, but its 1 GB size_threshold keeps it idle there
LOADED_SKIPS = {"gridftp": "GridFTP data-channel detection calls skip_further_processing (gridftp.zeek)"}


def git(mirror: str, *args: str, binary: bool = False):
    r = subprocess.run(["git", "-C", mirror, *args], capture_output=True, check=False)
    if r.returncode != 0:
        return None
    return r.stdout if binary else r.stdout.decode("utf-8", "replace")


def parse_interval(v: str) -> float | None:
    m = re.fullmatch(r"\s*([0-9.]+)\s*(usecs?|msecs?|secs?|mins?|hrs?|days?)\s*", v)
    if not m:
        return None
    mult = {"usec": 1e-6, "msec": 1e-3, "sec": 1.0, "min": 60.0, "hr": 3600.0, "day": 86400.0}
    return float(m.group(1)) * mult[m.group(2).rstrip("s")]


def port_literals(text: str) -> set[str]:
    return {f"{n}/{p}" for n, p in re.findall(r"\b(\d{1,5})/(tcp|udp)\b", text)}


class Mirror:
    def __init__(self, path: str, rev: str):
        self.path, self.rev = path, rev
        files = git(path, "ls-tree", "-r", "--name-only", rev, "testing/btest", "scripts")
        if files is None:
            raise SystemExit(f"zeek_btest: {path} is not a git repository with {rev} (a mirror of zeek/zeek)")
        self.files = files.splitlines()
        self.set = set(self.files)
        self.scripts: dict[str, str] = {}
        for f in self.files:
            if f.startswith("testing/btest/") and not f.startswith(("testing/btest/Baseline", "testing/btest/Traces")):
                rel = f[len("testing/btest/"):]
                for ext in sorted(SCRIPT_EXTS, key=len, reverse=True):
                    if ext and rel.endswith(ext):
                        self.scripts.setdefault(rel[: -len(ext)].replace("/", "."), f)
                        break
                else:
                    self.scripts.setdefault(rel.replace("/", "."), f)
        self._ports: dict[str, set[str]] = {}

    def show(self, path: str, binary: bool = False):
        return git(self.path, "show", f"{self.rev}:{path}", binary=binary)

    def baselines(self) -> list[str]:
        return sorted(f[len("testing/btest/Baseline/"):-len("/conn.log")] for f in self.files
                      if f.startswith("testing/btest/Baseline/") and f.endswith("/conn.log")
                      and f.count("/") == 4)

    def script_for(self, name: str) -> tuple[str | None, int]:
        if name in self.scripts:
            return self.scripts[name], 0
        m = re.fullmatch(r"(.*)-(\d+)", name)
        if m and m.group(1) in self.scripts:
            return self.scripts[m.group(1)], int(m.group(2)) - 1
        return None, 0

    def protocol_ports(self, load: str) -> set[str]:
        """The server ports a loaded base/protocols/P (or packet-protocols/P) script gives
        likely_server_ports: the first set of each ``register_for_ports(tag, server_ports, ...)`` call
        (Analyzer::register_for_ports adds exactly that set) and ``likely_server_ports += {...}``."""
        m = re.match(r"(?:\.\./)*(?:scripts/)?base/(protocols|packet-protocols)/([\w-]+)", load)
        if not m:
            return set()
        d = f"scripts/base/{m.group(1)}/{m.group(2)}/"
        if d not in self._ports:
            ports: set[str] = set()
            texts = [self.show(f) or "" for f in self.files if f.startswith(d) and f.endswith(".zeek")]
            allt = "\n".join(texts)
            consts = {k: v for k, v in re.findall(r"\bconst\s+(\w+)\s*(?::[^=]*)?=\s*\{([^}]*)\}", allt)}
            for arg in re.findall(r"register_for_ports\s*\(\s*[^,]+,\s*(\{[^}]*\}|[\w:]+)", allt):
                if arg.startswith("{"):
                    ports |= port_literals(arg)
                else:
                    ports |= port_literals(consts.get(arg.split("::")[-1], ""))
            for blk in re.findall(r"likely_server_ports\s*\+=\s*\{([^}]*)\}", allt):
                ports |= port_literals(blk)
            self._ports[d] = ports
        return self._ports[d]

def exec_lines(text: str) -> list[str]:
    return [m.group(1).strip() for m in re.finditer(r"@TEST-EXEC(?:-FAIL)?:\s*(.*)", text)]


def variant_text(text: str, k: int) -> str:
    """The k-th @TEST-START-NEXT block (0: the first), which btest runs with the first block's
    TEST-EXEC lines."""
    parts = re.split(r"^#\s*@TEST-START-NEXT.*$", text, flags=re.M)
    return parts[k] if k < len(parts) else parts[-1]


def strip_comments(text: str) -> str:
    return "\n".join(ln.split("#", 1)[0] if not ln.lstrip().startswith("@") else ln for ln in text.splitlines())


def plan(mirror: Mirror, name: str):
    """(options for connections(), trace path, BPF filter) or a skip reason (str)."""
    path, variant = mirror.script_for(name)
    if path is None:
        return "no btest script found for this baseline"
    full = mirror.show(path) or ""
    lines = exec_lines(full)
    # the last `zeek ... -r` before the line that diffs conn.log
    diff_at = next((i for i, ln in enumerate(lines) if re.search(r"btest-diff\S*\s.*\bconn\.log\b", ln)),
                   len(lines))
    runs = [ln for ln in lines[:diff_at] if re.search(r"\bzeek\b", ln) and re.search(r"(^|\s)-[A-Za-z]*r(\s|\S*\$)", ln)]
    if not runs:
        other = [ln for ln in lines[:diff_at] if re.search(r"\bzeek\b", ln)]
        return "conn.log not written by a `zeek -r TRACE` run" + (f" ({other[-1][:60]!r})" if other else "")
    cmd = runs[-1].replace("${TRACES}", "$TRACES")
    piped = None
    if "|" in cmd.split("zeek", 1)[0]:
        # `zcat <$TRACES/x.gz | zeek -r - ...`: probekit reads the compressed file itself
        m = re.match(r"\s*(?:gunzip -c|zcat|cat)\s*<?\s*(\$TRACES/\S+)\s*\|\s*(.*)", cmd)
        if not m:
            return "the trace is piped into zeek by a command other than cat/zcat"
        piped, cmd = m.group(1), m.group(2)
    try:
        argv = shlex.split(cmd.replace("$TRACES", "@TRACES@"))
    except ValueError:
        return f"cannot parse the TEST-EXEC line {cmd[:60]!r}"
    argv = argv[argv.index(next(a for a in argv if a.endswith("zeek"))) + 1:]
    bare, checks, traces, bpf, loads, cli_redefs = False, True, [], None, [], {}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in (">", ">>", "2>", "2>&1", "&&", ";", "|") or a.startswith((">", "2>")):
            break
        if a.startswith("-") and not a.startswith("--") and len(a) > 1:
            for j, ch in enumerate(a[1:]):
                if ch == "b":
                    bare = True
                elif ch == "C":
                    checks = False
                elif ch in "rfeiopPsBGw":
                    val = a[j + 2:] or (argv[i + 1] if i + 1 < len(argv) else "")
                    if not a[j + 2:]:
                        i += 1
                    if ch == "r":
                        traces.append(val)
                    elif ch == "f":
                        bpf = val
                    elif ch == "e":
                        loads.append(("-e", val))
                    elif ch in "iw":
                        return f"zeek -{ch} (live or writing)"
                    break
            i += 1
            continue
        if a.startswith("--"):
            if a in ("--pseudo-realtime",):
                return "pseudo-realtime"
            i += 1
            continue
        if "=" in a and not a.endswith((".zeek", ".sig")):  # a command-line redef, NAME=VALUE
            k, v = a.split("=", 1)
            cli_redefs[k.strip()] = v.strip()
        elif a == "%INPUT":
            pass
        else:
            loads.append(("@load", a))
        i += 1
    for k in ("PacketFilter::restricted_filter", "PacketFilter::default_capture_filter"):
        if k in cli_redefs and cli_redefs[k].strip('"'):
            f = cli_redefs[k].strip('"')
            bpf = f if bpf is None else f"({bpf}) and ({f})"
    if piped and traces == ["-"]:
        traces = [piped.replace("$TRACES", "@TRACES@")]
    if len(traces) != 1:
        return f"{len(traces)} traces (-r) in one run"
    if not traces[0].startswith("@TRACES@/"):
        return f"trace outside Traces/ ({traces[0][:50]})"
    trace = "testing/btest/Traces/" + traces[0][len("@TRACES@/"):]
    if trace not in mirror.set:
        return f"trace {trace} not in the mirror"
    # a -N variant runs the first block's TEST-EXEC lines with its own block's script
    body = strip_comments(variant_text(full, variant) if variant else full)
    script_loads = re.findall(r"^\s*@load(?:-sigs)?\s+(\S+)", body, flags=re.M)
    loads += [("@load", s) for s in script_loads]
    redefs = dict(re.findall(r"\bredef\s+([A-Za-z_][\w:]*)\s*(?:=|\+=|-=)\s*([^;]*);", body))
    redefs.update(cli_redefs)
    for k, why in UNMODELLED_REDEFS.items():
        if k in redefs:
            return f"redef {k}: {why} (not modelled)"
    for call, why in UNMODELLED_CALLS.items():
        if call in body:
            return why
    for kind, w in loads:
        if kind == "@load" and w.rstrip("/").endswith(tuple(LOADED_SKIPS)):
            return f"@load {w}: {LOADED_SKIPS[next(k for k in LOADED_SKIPS if w.rstrip('/').endswith(k))]}"
    if re.search(r"\bterminate\(\)", body):
        return "terminate() ends the run early"
    for k in redefs:
        if k.startswith(("tcp_", "udp_", "icmp_")) and k not in TIMER_REDEFS and k not in (
                "udp_content_ports", "udp_content_delivery_ports_use_resp", "udp_content_delivery_ports_resp",
                "udp_content_delivery_ports_orig", "udp_content_deliver_all_orig", "udp_content_deliver_all_resp"):
            return f"redef {k} (not modelled)"
    opts: dict = {}
    to = {}
    for k in TIMER_REDEFS:
        if k in redefs:
            s = parse_interval(redefs[k])
            if s is None:
                return f"redef {k} = {redefs[k]!r} (cannot read the interval)"
            to[k] = s
    if to:
        opts["timeouts_s"] = to
    if redefs.get("ignore_checksums", "").strip() == "T":
        checks = False
    if not checks:
        opts["check_checksums"] = False
    from probekit.analysis.connections import BARE_LIKELY_SERVER_PORTS, LIKELY_SERVER_PORTS
    if bare:
        opts["bare"] = True
        ports = set(BARE_LIKELY_SERVER_PORTS)
        for kind, what in loads:
            if kind == "@load":
                ports |= mirror.protocol_ports(what)
    else:
        ports = set(LIKELY_SERVER_PORTS)
    m = re.search(r"\blikely_server_ports\s*\+=\s*\{([^}]*)\}", body)
    if m:
        ports |= port_literals(m.group(1))
    if not bare and ports == set(LIKELY_SERVER_PORTS):
        pass
    else:
        opts["likely_server_ports"] = frozenset(ports)
    # the DNS analyzer (and its ExpireTimer) is there without -b, or with base/protocols/dns loaded
    dns = not bare or any(k == "@load" and re.match(r"(?:scripts/)?base/protocols/dns/?$", w) for k, w in loads)
    dns_timeout = parse_interval(redefs.get("dns_session_timeout", "10 sec")) or 10.0
    opts["_dns"] = dns_timeout if dns else 0.0
    if "Site::local_nets" in redefs:
        nets = re.findall(r"[0-9a-fA-F:.\[\]]+/\d+", redefs["Site::local_nets"])
        try:
            opts["local_nets"] = tuple(ipaddress.ip_network(n.strip("[]"), strict=False) for n in nets)
        except ValueError:
            pass
    return opts, trace, bpf


def read_log(text: str) -> tuple[list[str], list[dict]]:
    lines = [ln for ln in text.splitlines() if not ln.startswith("###") and ln.strip()]
    fields: list[str] | None = None
    rows = []
    if lines and lines[0].lstrip().startswith("{"):
        for ln in lines:
            try:
                r = json.loads(ln)
            except json.JSONDecodeError:
                continue
            rows.append({k: (",".join(map(str, v)) if isinstance(v, list) else str(v)) for k, v in r.items()})
        return (list(rows[0]) if rows else []), rows
    for ln in lines:
        if ln.startswith("#fields"):
            fields = ln.split("\t")[1:]
        elif ln.startswith("#"):
            continue
        elif fields is None:  # btest-diff-cut output: the first line names the columns
            fields = ln.split("\t")
        else:
            rows.append(dict(zip(fields, ln.split("\t"))))
    return fields or [], rows


def as_int(v) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def got_rows(conns) -> list[dict]:
    import pandas as pd
    out = []
    for r in conns.itertuples(index=False):
        d = {
            "ts": r.ts_ns / 1e9, "id.orig_h": str(r.orig_h), "id.orig_p": str(int(r.orig_p)),
            "id.resp_h": str(r.resp_h), "id.resp_p": str(int(r.resp_p)), "proto": str(r.proto),
            "conn_state": str(r.conn_state), "history": r.history if isinstance(r.history, str) else "",
            "duration": r.duration_s,
        }
        for f in NUM_FIELDS:
            v = getattr(r, f)
            d[f] = None if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) else int(v)
        out.append(d)
    return out


def _key(r) -> tuple:
    return (str(r["id.orig_h"]), str(r["id.orig_p"]), str(r["id.resp_h"]), str(r["id.resp_p"]), str(r["proto"]))


def outer_rows(trace, packets, opts) -> list[dict]:
    """The outer connections of the tunnels the reader opened, as Zeek logs them beside the inner ones
    (UDPAnalyzer::DeliverPacket counts the datagram in its connection before the tunnel analyzer sees
    the payload): the connections of the same trace read with ``decapsulate=False`` that hold a frame
    the reader decapsulated. Rows of the decapsulated read with such a connection's 5-tuple (the
    outer connection's datagrams that carried no inner packet: an AYIYA heartbeat, a Teredo
    datagram Zeek's analyzer refuses) are that connection's: the caller drops them by the returned
    rows' 5-tuples. Each row is tagged ``outer``."""
    import probekit
    from probekit.analysis.connections import connections
    if "tunnel" not in packets.columns:
        return []
    tun = packets["tunnel"].astype(object).to_numpy()
    frames = set(packets["frame"].to_numpy()[(tun != "none") & (tun == tun)].tolist())
    if not frames:
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        flat = probekit.read_capture(trace, decapsulate=False)
        oc = connections(flat, **opts)
    f = flat[flat["frame"].isin(frames) & flat["sport"].notna() & flat["dst"].notna()]
    keys = set()
    for r in f[["src", "sport", "dst", "dport", "ip_proto"]].itertuples(index=False):
        a, b = (str(r.src), str(int(r.sport))), (str(r.dst), str(int(r.dport)))
        pr = {6: "tcp", 17: "udp"}.get(int(r.ip_proto))
        if pr:
            keys.add((*a, *b, pr))
            keys.add((*b, *a, pr))
    out = [dict(g, outer=True) for g in got_rows(oc) if _key(g) in keys]
    return out


def field_equal(f: str, want: str, got) -> bool:
    if f == "duration":
        if want == "-":
            return got is None or (isinstance(got, float) and math.isnan(got))
        return got is not None and not math.isnan(got) and abs(float(want) - got) <= 1e-6
    if f in NUM_FIELDS:
        return (want == "-" and got is None) or (as_int(want) is not None and as_int(want) == got)
    if f == "history":
        return (want in ("-", "(empty)") and got == "") or want == got
    return want == got


TUNNEL_SERVICES = {"vxlan", "geneve", "gtpv1", "teredo", "ayiya", "gre", "pptp", "erspan"}


def tunnel_service(z: dict) -> bool:
    """A row whose service is a tunnel protocol: the outer connection of an encapsulation."""
    return bool(set((z.get("service") or "").lower().split(",")) & TUNNEL_SERVICES)


def app_flip(h: str | None) -> bool:
    """A UDP history with '^' after its first letter: an application analyzer's FlipRoles (DNS.cc,
    ntp-analyzer.pac), as Zeek's core flips UDP only when the connection is made (WantConnection)."""
    return bool(h) and "^" in h[1:] and not set(h) & set("SHAFRshafr")


def history_cause(want: str, got: str) -> str:
    """A coarse cause label for a history difference: the letters one side has and the other lacks."""
    wc, gc = collections.Counter(want), collections.Counter(got)
    miss, extra = wc - gc, gc - wc
    parts = []
    if miss:
        parts.append("zeek has " + "".join(sorted(miss.elements())))
    if extra:
        parts.append("probekit has " + "".join(sorted(extra.elements())))
    if not parts:
        parts.append("same letters, other order")
    return "history: " + ", ".join(parts)


def compare(name: str, fields: list[str], zrows: list[dict], grows: list[dict], stats, causes, examples):
    has_id = all(f in fields for f in ID_FIELDS)
    has_ts = "ts" in fields and any(re.fullmatch(r"\d+\.\d+", r.get("ts", "")) for r in zrows)
    compared = [f for f in ("conn_state", "history", "duration") + NUM_FIELDS if f in fields]
    # outer tunnel connections: uids named in another row's tunnel_parents
    parents = set()
    for r in zrows:
        for p in (r.get("tunnel_parents") or "").split(","):
            if p not in ("", "-", "(empty)"):
                parents.add(p)

    def record(f, want, got, z):
        if f.endswith(("_pkts", "_ip_bytes")) and want == "-":
            return  # ConnSize analyzer not loaded/enabled: Zeek has no value
        stats["fields"][f][0] += 1
        if field_equal(f, want, got):
            stats["fields"][f][1] += 1
            return
        if f == "history":
            cause = history_cause(want if want not in ("-", "(empty)") else "", got)
        elif f == "conn_state":
            cause = f"conn_state: zeek {want}, probekit {got}"
        else:
            cause = f"{f} differs"
        causes[cause].append(name)
        examples[cause].append((name, z.get("id.orig_h"), z.get("id.orig_p"), z.get("id.resp_h"),
                                z.get("id.resp_p"), z.get("proto"), f, want, got,
                                z.get("history"), z.get("conn_state")))

    def clean(z):
        h = z.get("history")
        if h is not None and "X" in h:
            stats["x_removed"] += 1
            z = dict(z, history=h.replace("X", ""))
        return z

    if not has_id:
        keys = [f for f in ("conn_state", "history") if f in fields]
        for f in keys:
            zr = [z for z in zrows if not app_flip(z.get("history")) and not tunnel_service(z)]
            if f == "history":
                stats["app_flip"] += sum(1 for z in zrows if app_flip(z.get("history")))
                stats["tunnel_outer"] += sum(1 for z in zrows if tunnel_service(z))
            want = collections.Counter(clean(z).get(f) if f == "history" else z.get(f) for z in zr)
            want = collections.Counter({("" if k in ("-", "(empty)") and f == "history" else k): v
                                        for k, v in want.items()})
            got = collections.Counter(g[f] for g in grows)
            ok = sum((want & got).values())
            stats["fields"][f][0] += sum(want.values())
            stats["fields"][f][1] += ok
            for k, v in (want - got).items():
                cause = f"{f} (multiset, no 5-tuple in the baseline): zeek's {k!r} not among probekit's"
                causes[cause] += [name] * v
                examples[cause].append((name, f, k, sorted(got)))
        stats["multiset"] += len(zrows)
        return
    used = [False] * len(grows)
    index = collections.defaultdict(list)
    for j, g in enumerate(grows):
        index[tuple(g[f] for f in ID_FIELDS)].append(j)
    for z in zrows:
        z = clean(z)
        if z.get("proto") not in ("tcp", "udp", "icmp"):
            stats["not_l4"] += 1
            continue
        if z.get("uid") in parents or tunnel_service(z):
            stats["tunnel_outer"] += 1
            # not compared, but it is the outer connection probekit's outer read has: not an extra
            for k in (tuple(z[f] for f in ID_FIELDS),
                      (z["id.resp_h"], z["id.resp_p"], z["id.orig_h"], z["id.orig_p"], z["proto"])):
                left = [j for j in index.get(k, []) if not used[j] and grows[j].get("outer")]
                if left:
                    used[left[0]] = True
                    break
            continue
        if z.get("proto") == "udp" and app_flip(z.get("history")):
            stats["app_flip"] += 1
            for k in (tuple(z[f] for f in ID_FIELDS),
                      (z["id.resp_h"], z["id.resp_p"], z["id.orig_h"], z["id.orig_p"], z["proto"])):
                left = [j for j in index.get(k, []) if not used[j]]
                if left:
                    used[left[0]] = True
                    break
            continue
        key = tuple(z[f] for f in ID_FIELDS)
        cand = [j for j in index.get(key, []) if not used[j]]
        if has_ts and re.fullmatch(r"\d+\.\d+", z.get("ts", "")):
            cand = [j for j in cand if abs(grows[j]["ts"] - float(z["ts"])) <= 1e-6 + 5e-7]
        if not cand:
            flipped = (z["id.resp_h"], z["id.resp_p"], z["id.orig_h"], z["id.orig_p"], z["proto"])
            fl = [j for j in index.get(flipped, []) if not used[j]]
            cause = "roles flipped (probekit's originator is zeek's responder)" if fl else \
                "connection missing in probekit"
            stats["unmatched"] += 1
            causes[cause].append(name)
            examples[cause].append((name, *key, z.get("history"), z.get("conn_state"),
                                    [grows[j]["history"] for j in fl]))
            for f in ("conn_state", "history"):
                if f in fields:
                    stats["fields"][f][0] += 1
            continue
        j = cand[0]
        used[j] = True
        stats["matched"] += 1
        for f in compared:
            record(f, z.get(f, "-"), grows[j][f], z)
    extra = sum(1 for u in used if not u)
    if extra:
        stats["extra"] += extra
        causes["connection only in probekit"] += [name] * extra
        for j, u in enumerate(used):
            if not u:
                g = grows[j]
                examples["connection only in probekit"].append(
                    (name, *(g[f] for f in ID_FIELDS), g["history"], g["conn_state"]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mirror", default=DEFAULT_MIRROR, help="a git clone (bare is fine) of zeek/zeek")
    ap.add_argument("--rev", default="HEAD")
    ap.add_argument("--only", default=None, help="only baselines whose name contains this")
    ap.add_argument("--verbose", "-v", action="store_true", help="print every disagreement")
    ap.add_argument("--json", default=None, help="also write the per-baseline results here")
    args = ap.parse_args(argv)
    if not Path(args.mirror).exists():
        print(f"zeek_btest: no Zeek mirror at {args.mirror} (give --mirror PATH, a git clone of "
              "github.com/zeek/zeek)", file=sys.stderr)
        return 2
    import probekit
    from probekit.analysis.connections import connections
    mirror = Mirror(args.mirror, args.rev)
    head = (git(args.mirror, "rev-parse", args.rev) or "?").strip()
    names = [n for n in mirror.baselines() if not args.only or args.only in n]
    stats = {"fields": collections.defaultdict(lambda: [0, 0]), "matched": 0, "unmatched": 0, "extra": 0,
             "tunnel_outer": 0, "not_l4": 0, "x_removed": 0, "multiset": 0, "app_flip": 0}
    causes: dict[str, list[str]] = collections.defaultdict(list)
    examples: dict[str, list] = collections.defaultdict(list)
    skipped: dict[str, list[str]] = collections.defaultdict(list)
    done: list[str] = []
    per_baseline = {}
    tmp = Path(tempfile.mkdtemp(prefix="zeek-btest-"))
    try:
        for name in names:
            p = plan(mirror, name)
            if isinstance(p, str):
                skipped[p].append(name)
                continue
            opts, trace, bpf = p
            text = mirror.show(f"testing/btest/Baseline/{name}/conn.log") or ""
            fields, zrows = read_log(text)
            if not zrows:
                skipped["empty baseline"].append(name)
                continue
            data = mirror.show(trace, binary=True)
            if data is None:
                skipped["trace blob absent from the mirror"].append(name)
                continue
            tf = tmp / Path(trace).name
            tf.write_bytes(data)
            if bpf:
                if not shutil.which("tcpdump"):
                    skipped["-f filter and no tcpdump to apply it"].append(name)
                    continue
                out = tmp / ("f-" + tf.name + ".pcap")
                r = subprocess.run(["tcpdump", "-r", str(tf), "-w", str(out), bpf], capture_output=True)
                if r.returncode != 0:
                    skipped["tcpdump cannot apply the -f filter"].append(name)
                    continue
                tf = out
            dns = opts.pop("_dns")
            opts["dns"] = dns > 0
            if dns > 0:
                opts["timeouts_s"] = dict(opts.get("timeouts_s") or {}, dns_session_timeout=dns)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    df = probekit.read_capture(tf)
                    conns = connections(df, **opts)
            except Exception as e:  # a measurement: record and go on
                skipped[f"probekit failed: {type(e).__name__}"].append(f"{name}: {str(e)[:80]}")
                continue
            try:
                outer = outer_rows(tf, df, opts)
                okeys = {_key(g) for g in outer}
                grows = [g for g in got_rows(conns) if _key(g) not in okeys] + outer
            except Exception as e:  # a measurement: record and go on
                skipped[f"probekit failed on the outer read: {type(e).__name__}"].append(f"{name}: {str(e)[:80]}")
                continue
            before = {f: list(v) for f, v in stats["fields"].items()}
            compare(name, fields, zrows, grows, stats, causes, examples)
            done.append(name)
            per_baseline[name] = {f: [v[0] - before.get(f, [0, 0])[0], v[1] - before.get(f, [0, 0])[1]]
                                  for f, v in stats["fields"].items()}
            per_baseline[name]["opts"] = {k: (sorted(v) if isinstance(v, frozenset) else str(v))
                                          for k, v in opts.items()}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"Zeek btest conn.log baselines at {args.mirror} ({head[:12]}): {len(names)} baselines, "
          f"{len(done)} compared, {sum(len(v) for v in skipped.values())} skipped")
    print(f"\nconnections: {stats['matched']} matched per connection, {stats['unmatched']} of zeek's unmatched, "
          f"{stats['extra']} only in probekit, {stats['multiset']} compared as multisets (cut baselines), "
          f"{stats['tunnel_outer']} outer tunnel connections not compared, {stats['not_l4']} non-TCP/UDP/ICMP "
          f"rows not compared, {stats['x_removed']} histories with X removed, {stats['app_flip']} UDP connections "
          "flipped by an application analyzer not compared")
    print("\nagreement (zeek's rows with the field; unmatched rows count as disagreeing):")
    for f, (n, ok) in sorted(stats["fields"].items(), key=lambda kv: (kv[0] not in ("conn_state", "history"), kv[0])):
        print(f"  {f:<14s} {ok:6d} / {n:<6d} {100.0 * ok / n if n else float('nan'):6.1f} %")
    print("\nskipped baselines, by reason:")
    for why, ns in sorted(skipped.items(), key=lambda kv: -len(kv[1])):
        print(f"  [{len(ns)}] {why}: " + ", ".join(ns if args.verbose else ns[:6]) +
              ("" if args.verbose or len(ns) <= 6 else f", ... (+{len(ns) - 6})"))
    print("\ndisagreements, by cause:")
    for cause, ns in sorted(causes.items(), key=lambda kv: -len(kv[1])):
        c = collections.Counter(ns)
        print(f"  [{len(ns)}] {cause}: " + ", ".join(f"{n}×{k}" if k > 1 else n for n, k in c.most_common(6)) +
              ("" if len(c) <= 6 else f", ... (+{len(c) - 6} baselines)"))
        if args.verbose:
            for ex in examples[cause][:8]:
                print(f"        {ex}")
    if args.json:
        Path(args.json).write_text(json.dumps({"per_baseline": per_baseline, "skipped": skipped,
                                               "causes": {k: v for k, v in causes.items()},
                                               "examples": {k: [list(map(str, e)) for e in v]
                                                            for k, v in examples.items()}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
