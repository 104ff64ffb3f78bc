"""The ``probekit`` command line. Errors are one line on stderr: exit 1 for bad input, 2 for usage."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import warnings

from .errors import ProbekitError

__all__ = ["main"]


def _source(arg: str):
    """A capture argument as read_capture takes it: ``-`` is stdin (binary); a path, also of a named pipe,
    stays a path."""
    return sys.stdin.buffer if arg == "-" else arg


@contextlib.contextmanager
def _as_files(args: list[str]):
    """Capture arguments for commands that open captures by name more than once (report, convert): stdin
    (``-``) and named pipes are copied to files in a temporary folder first, named ``stdin`` or the
    pipe's name; regular files pass as they are."""
    import shutil
    import stat
    import tempfile
    with contextlib.ExitStack() as stack:
        out = []
        tmp = None
        for a in args:
            is_pipe = a != "-" and os.path.exists(a) and not stat.S_ISREG(os.stat(a).st_mode) \
                and not os.path.isdir(a)
            if a != "-" and not is_pipe:
                out.append(a)
                continue
            if tmp is None:
                tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="probekit-"))
            dest = os.path.join(tmp, "stdin" if a == "-" else os.path.basename(a))
            with (open(a, "rb") if is_pipe else contextlib.nullcontext(sys.stdin.buffer)) as src, \
                    open(dest, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            out.append(dest)
        yield out


def _cmd_read(args) -> int:
    from .capture import read_capture
    df = read_capture(_source(args.capture), backend=args.backend, strict=args.strict)
    out = args.output
    if out.endswith(".csv"):
        df.to_csv(out, index=False)
    elif out.endswith(".parquet") or out.endswith(".pq"):
        from .schema import packets_for_storage
        packets_for_storage(df).to_parquet(out, index=False)
    else:
        raise ProbekitError(f"{out}: output must end in .parquet or .csv")
    print(f"{out}: {len(df)} packets", file=sys.stderr)
    return 0


def _cmd_summary(args) -> int:
    from .capture import read_capture
    from .summary import format_summary, summarize
    results = []
    for path in args.capture:
        df = read_capture(_source(path), backend=args.backend, strict=args.strict)
        results.append(summarize(df))
    if args.json:
        print(json.dumps(results if len(results) > 1 else results[0], indent=2))
    else:
        print("\n\n".join(format_summary(s) for s in results))
    return 0


def _cmd_synth(args) -> int:
    from .synth import default_monitor, synth
    monitor = default_monitor(protocol=args.protocol, size=args.size, sources=args.sources, family=args.family,
                              port=args.port, period_s=args.period)
    over = dict(duration_s=args.duration, rate_per_s=args.rate, loss=args.loss, vantage=args.vantage)
    truth = synth(args.scenario, args.output, monitor=monitor, seed=args.seed, link=args.link,
                  snaplen=args.snaplen, encap=args.encap, **{k: v for k, v in over.items() if v is not None})
    answered = int(truth["answered"].sum())
    print(f"{args.output}: {len(truth)} probes ({answered} answered), truth in {args.output}.truth.csv",
          file=sys.stderr)
    return 0


def _session(args):
    """The capture as a session: probes of probe streams unless --all-streams, fragments reassembled,
    ICMP errors attributed — the same pipeline as notebooks and the report. A plain file over 2 GiB (or
    --chunked always) is walked chunk by chunk with the same numbers; what needs its packets table says so."""
    from .capture import read_capture
    from .session import Capture
    if _huge(args):
        return Capture(args.capture, timeout_s=args.timeout, vantage=args.vantage, period_s=getattr(args, "period", 30),
                       all_streams=getattr(args, "all_streams", False), cloudwatch=False, chunked=True)
    df = read_capture(_source(args.capture), backend=args.backend, strict=args.strict)
    return Capture.from_packets(df, args.capture, timeout_s=args.timeout, vantage=args.vantage,
                                period_s=getattr(args, "period", 30), all_streams=getattr(args, "all_streams", False))


def _probes_of(args):
    cap = _session(args)
    return cap.packets, cap.probes


def _emit(table, args) -> None:
    import pandas as pd
    t = table.copy()
    for c in t.columns:
        if c.endswith("_ns") and c != "period_s":
            t[c.replace("_ns", "_utc")] = pd.to_datetime(t[c], unit="ns", utc=True).dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if getattr(args, "json", False):
        print(t.to_json(orient="records", indent=1, date_format="iso"))
    elif getattr(args, "csv", False):
        print(t.to_csv(index=False), end="")
    else:
        with pd.option_context("display.max_rows", None, "display.width", 200, "display.max_columns", None):
            print(t.drop(columns=[c for c in t.columns if c.endswith("_ns")]).to_string(index=False))


def _cmd_metrics(args) -> int:
    if args.bounded:   # memory for one chunk: the chunked walk keeps per-period counts only
        from .drive.chunked import chunked_analyses
        name = "probe_periods" if args.per_probe else "periods"
        res = chunked_analyses(args.capture, period_s=args.period, timeout_s=args.timeout, vantage=args.vantage,
                               analyses=(name,), keep_probes=False)
        print(f"{args.capture}: {res.packets} packets read in {res.chunks} chunks (--bounded: every request stream "
              "counts and ICMP errors are not attributed; without --bounded the probe streams are selected)",
              file=sys.stderr)
        _emit(res.tables[name], args)
        return 0
    cap = _session(args)
    _emit(cap.probe_periods if args.per_probe else cap.periods, args)   # with the ICMP errors each period drew
    return 0


def _huge(args) -> bool:
    """A plain capture file over 2 GiB (or --chunked always), read chunk by chunk with the fast backend."""
    mode = getattr(args, "chunked", "auto")
    if mode == "never" or args.capture == "-" or args.backend != "fast":
        return False
    if mode == "always":
        return True
    from .drive.chunked import CHUNKED_FILE_BYTES
    return os.path.isfile(args.capture) and os.path.getsize(args.capture) > CHUNKED_FILE_BYTES


def _cmd_timing(args) -> int:
    from .analysis.timing import find_gaps, timing_summary
    cap = _session(args)
    probes, span = cap.probes, cap.span_ns
    summary = timing_summary(probes, span_ns=span, gap_factor=args.gap_factor)
    gaps = find_gaps(probes, factor=args.gap_factor, span_ns=span)
    if args.json:
        import json
        print(json.dumps({"streams": json.loads(summary.to_json(orient="records")),
                          "gaps": json.loads(gaps.to_json(orient="records"))}, indent=1))
    else:
        _emit(summary, args)
        if len(gaps):
            print("\ngaps (stretches without probes):")
            _emit(gaps, args)
    return 0


def _cmd_payload(args) -> int:
    _emit(_session(args).payload_verdicts, args)
    return 0


def _cmd_tcp(args) -> int:
    """TCP connections in Zeek's terms: those of the probe streams' probes (every one with --all-streams)."""
    from .analysis.connections import probe_connections, tcp_connections
    cap = _session(args)
    conns = tcp_connections(cap.packets, check_checksums=not args.ignore_checksums)
    if not args.all_streams:
        conns = conns[conns["uid"].isin(probe_connections(cap.probes, conns)["uid"])]
    _emit(conns.reset_index(drop=True), args)
    return 0


def _cmd_probes(args) -> int:
    """The probes table: outcome (ICMP errors included, with code and reporter), RTT, frames."""
    _emit(_session(args).probes, args)
    return 0


# ---- conn: Zeek's conn.log (one block) ----
def _cmd_conn(args) -> int:
    from .analysis.connections import connections
    from .capture import read_capture
    from .zeeklog import write_conn_json, write_conn_tsv
    df = read_capture(args.capture, backend=args.backend, strict=args.strict)
    conns = connections(df, check_checksums=not args.ignore_checksums, bare=args.bare,
                        community_id=args.community_id)
    write = write_conn_json if args.zeek_json else write_conn_tsv
    if args.output:
        with open(args.output, "w") as out:
            write(conns, out)
    else:
        write(conns, sys.stdout)
    return 0


def _add_conn_parser(sub, reader_opts) -> None:
    sp = sub.add_parser("conn", help="Zeek's conn.log (TCP, UDP, ICMP) in Zeek's TSV or JSON format")
    sp.add_argument("capture")
    g = sp.add_mutually_exclusive_group()
    g.add_argument("--zeek-tsv", action="store_true", help="Zeek's ASCII log format (the default)")
    g.add_argument("--zeek-json", action="store_true", help="Zeek's JSON log format, one object per line")
    sp.add_argument("-C", "--ignore-checksums", action="store_true", help="as zeek -C")
    sp.add_argument("-b", "--bare", action="store_true", help="as zeek -b: no protocol analyzers' server ports")
    sp.add_argument("--community-id", action="store_true", help="add the community_id field")
    sp.add_argument("-o", "--output", help="write to this file instead of stdout")
    reader_opts(sp)
    sp.set_defaults(func=_cmd_conn)
# ---- end conn ----


def _cmd_fingerprint(args) -> int:
    _emit(_session(args).fingerprints, args)
    return 0


# ---------------------------------------------------------------- CloudWatch audit, fetch and the report
def _cmd_report(args) -> int:
    from .report import build_report
    with _as_files(args.capture) as captures:
        mode = {"auto": None, "always": True, "never": False}[args.chunked]
        out = build_report(captures, args.output, period_s=args.period, cloudwatch=args.cloudwatch,
                           monitor=args.monitor, chunked=mode, chunk_packets=args.chunk_packets)
    print(f"{out}: report on {len(args.capture)} capture(s)", file=sys.stderr)
    return 0


def _cloudwatch_of(args, capture=None):
    """The CloudWatch table of --cloudwatch/--monitor, or of the exports beside the capture."""
    from pathlib import Path

    from .capture.cloudwatch import read_cloudwatch
    from .session import CLOUDWATCH_SIDECARS, MONITOR_SIDECAR
    files, monitor = list(args.cloudwatch or []), list(args.monitor or [])
    if not files and capture is not None:
        cap = Path(capture)
        files = [str(q) for q in (cap.with_name(cap.name + s) for s in CLOUDWATCH_SIDECARS) if q.is_file()][:1]
        mon = cap.with_name(cap.name + MONITOR_SIDECAR)
        if files and not monitor and mon.is_file():
            monitor = [str(mon)]
    if not files:
        raise ProbekitError("no CloudWatch export: give --cloudwatch FILE (get-metric-data or get-metric-statistics "
                            "JSON, a console CSV, or `probekit cloudwatch fetch` output)")
    for f in files + monitor:
        if not Path(f).is_file():
            raise ProbekitError(f"{f}: no such file")
    return read_cloudwatch(files, monitor=monitor or None)


def _notes(table) -> None:
    for n in table.attrs.get("notes", []):
        print(f"probekit: note: {n}", file=sys.stderr)


def _cmd_audit(args) -> int:
    import pandas as pd

    from .analysis.cloudwatch import audit_cloudwatch, audit_summary
    df, probes = _probes_of(args)
    cw = _cloudwatch_of(args, args.capture)
    audit = audit_cloudwatch(probes, cw, period_s=args.period, packets=df)
    summary = audit_summary(audit)
    _notes(audit)
    if args.json:
        def records(t):
            return json.loads(t.to_json(orient="records", date_format="iso"))
        print(json.dumps({"audit": records(audit), "summary": records(summary), "period_s": audit.attrs["period_s"],
                          "tolerances": audit.attrs["tolerances"], "clock_skew": audit.attrs["clock_skew"],
                          "notes": audit.attrs["notes"]}, indent=1))
        return 0
    _emit(audit.drop(columns=["detail", "period_s", "agrees", "resolved", "cw_status_code", "rtt_median_us"]), args)
    tol = audit.attrs["tolerances"]
    print(f"\n{int((~audit['agrees']).sum())} of {len(audit)} periods ({audit.attrs['period_s']} s) disagree; "
          f"tolerances: loss ±max({tol['loss_tolerance_pct']:g} %-points, one probe's share), RTT "
          f"±max({tol['rtt_tolerance_pct']:g} %, {tol['rtt_tolerance_us'] / 1e3:g} ms)")
    print(f"clock skew: {audit.attrs['clock_skew']['note']}")
    for r in summary.itertuples():
        port = "" if pd.isna(r.port) else f":{int(r.port)}"
        what = f"{r.protocol} {r.destination}{port}" if r.protocol else f"probe {r.probe_id}"
        print(f"- {r.finding}: {what}, {r.periods} period(s) from {pd.Timestamp(r.first_period_start_ns, tz='UTC')}")
    return 0


def _cmd_cloudwatch(args) -> int:
    if args.cw_command == "fetch":
        from .live.cloudwatch import fetch_cloudwatch
        res = fetch_cloudwatch(args.monitor, args.output, start=args.start, end=args.end, region=args.region,
                               profile=args.profile)
        print(f"{res['output']}: monitor {res['monitor']}, {res['probes']} probe(s), {res['datapoints']} datapoints "
              f"in {res['pages']} page(s), {res['start']} to {res['end']}", file=sys.stderr)
        return 0
    cw = _cloudwatch_of(args)
    _notes(cw)
    _emit(cw.drop(columns=["source_file"]), args)
    return 0


def _cloudwatch_parsers(sub, analysis_opts) -> None:
    sp = sub.add_parser("audit", help="line CloudWatch's PacketLoss/RTT up with a capture, period by period, and "
                                      "name every disagreement (exit 0 either way)")
    analysis_opts(sp)
    sp.add_argument("--cloudwatch", action="append", metavar="FILE",
                    help="CloudWatch export (repeatable): get-metric-data / get-metric-statistics JSON, console CSV, "
                         "`probekit cloudwatch fetch` output (default: CAPTURE.cloudwatch.json beside the capture)")
    sp.add_argument("--monitor", action="append", metavar="FILE",
                    help="monitor description: `aws networkmonitor get-monitor` output (default: CAPTURE.monitor.json)")
    sp.add_argument("--period", type=int, choices=(30, 60), help="aggregation period (default: the export's)")
    sp.add_argument("--csv", action="store_true")
    sp.set_defaults(func=_cmd_audit)

    sp = sub.add_parser("cloudwatch", help="CloudWatch's numbers: fetch them from AWS, or show an export as a table")
    csub = sp.add_subparsers(dest="cw_command", required=True, metavar="ACTION")
    f = csub.add_parser("fetch", help="a monitor's probes and every probe's PacketLoss/RTT, with boto3 (your AWS "
                                      "credentials and region chain; nothing of them is written)")
    f.add_argument("--monitor", required=True, help="monitor name")
    f.add_argument("--start", help="ISO 8601 (default: 3 hours before --end)")
    f.add_argument("--end", help="ISO 8601 (default: now)")
    f.add_argument("--region", help="AWS region (default: the usual chain)")
    f.add_argument("--profile", help="AWS profile (default: the usual chain)")
    f.add_argument("-o", "--output", required=True, help="cw.json")
    f.set_defaults(func=_cmd_cloudwatch)
    r = csub.add_parser("read", help="read exports (any format) into the CloudWatch table and print it")
    r.add_argument("cloudwatch", nargs="+", metavar="FILE")
    r.add_argument("--monitor", action="append", metavar="FILE")
    r.add_argument("--json", action="store_true")
    r.add_argument("--csv", action="store_true")
    r.set_defaults(func=_cmd_cloudwatch)

    sp = sub.add_parser("report", help="run the notebooks on captures and write one self-contained HTML report")
    sp.add_argument("capture", nargs="+")
    sp.add_argument("-o", "--output", required=True, help="report.html")
    sp.add_argument("--period", type=int, choices=(30, 60), default=30)
    sp.add_argument("--cloudwatch", action="append", metavar="FILE",
                    help="CloudWatch export to audit against the captures (default: NAME.cloudwatch.json beside each)")
    sp.add_argument("--monitor", action="append", metavar="FILE", help="monitor description (get-monitor output)")
    sp.add_argument("--chunked", choices=("auto", "always", "never"), default="auto",
                    help="walk each capture in chunks without holding its packets table (auto: plain files over "
                         "2 GiB); the notebooks' packet-level sections are then skipped")
    sp.add_argument("--chunk-packets", type=int, default=None, metavar="N",
                    help="packets per chunk on the chunked path (default 1,000,000)")
    sp.set_defaults(func=_cmd_report)
# ---------------------------------------------------------------- end of the CloudWatch block


def _probe_list(protocol, dest, port, size, sources):
    from .spec import Probe
    protos = ["icmp", "tcp"] if protocol == "both" else [protocol]
    return [Probe(pr, dest, port if pr == "tcp" else None, size, tuple(sources)) for pr in protos]


def _cmd_probe(args) -> int:
    from .live.prober import Prober
    probes = _probe_list(args.protocol, args.dest, args.port, args.size, args.source)
    summary = Prober(probes, args.rate, args.duration, args.output, timeout_s=args.timeout, period_s=args.period,
                     seed=args.seed, force=args.force, suppress_kernel_rst=not args.no_suppress_kernel_rst).run()
    print(json.dumps(summary))
    return 0


def _cmd_lab(args) -> int:
    from .live.lab import Lab, LabConfig
    lab = Lab(LabConfig(prefix=args.prefix, enis=args.enis))
    if args.action == "up":
        lab.up()
        print(json.dumps(lab.status(), indent=1))
    elif args.action == "down":
        lab.down()
        print("lab removed", file=sys.stderr)
    elif args.action == "status":
        print(json.dumps(lab.status(), indent=1))
    elif args.action == "set":
        what = args.what
        if what in ("target-down", "target-up"):
            lab.set_target(what == "target-up")
        elif what in ("http-off", "http-on"):
            lab.set_http(what == "http-on")
        elif what in ("eni-down", "eni-up"):
            lab.set_eni(args.eni, what == "eni-up")
        elif what == "impair":
            lab.impair(args.delay_ms, args.jitter_ms, args.loss, args.keep_order)
        elif what == "clear":
            lab.clear_impairment()
        elif what in ("mirror-on", "mirror-off"):
            lab.set_mirror(what == "mirror-on")
        print(json.dumps(lab.status(), indent=1))
    elif args.action == "run":
        from .live.run import lab_run
        res = lab_run(lab, out_dir=args.output, protocol=args.protocol, family=args.family, rate=args.rate,
                      duration=args.duration, size=args.size, delay_ms=args.delay_ms, jitter_ms=args.jitter_ms,
                      loss=args.loss, keep_order=args.keep_order, seed=args.seed)
        print(json.dumps(res, indent=1))
    return 0


def _cmd_convert(args) -> int:
    from .scale import convert
    with _as_files(args.capture) as captures:
        res = convert(captures, args.output)
    print(json.dumps(res))
    return 0


def _cmd_dataset_metrics(args) -> int:
    from .analysis.metrics import period_metrics
    from .scale import dataset_probes
    from .schema import SOURCE_STREAM_KEYS, STREAM_KEYS
    probes = dataset_probes(args.dataset, timeout_s=args.timeout, scheduler=args.scheduler)
    _emit(period_metrics(probes, args.period, by=STREAM_KEYS if args.per_probe else SOURCE_STREAM_KEYS), args)
    return 0


# ------------------------------------------------------------------ forensics: streams and MTU (issue 13)
def _cmd_streams(args) -> int:
    cap = _session(args)
    _emit(cap.other_traffic if args.other else cap.streams, args)
    return 0


def _cmd_mtu(args) -> int:
    from .analysis.mtu import size_outcomes
    cap = _session(args)
    _emit(size_outcomes(cap.probes, packets=cap.packets, datagrams=cap.datagrams) if args.sizes else cap.mtu, args)
    return 0


def _forensics_parsers(sub, analysis_opts) -> None:
    sp = sub.add_parser("streams", help="every request stream with its kind (probe, client, scan, other) and evidence")
    analysis_opts(sp)
    sp.add_argument("--other", action="store_true", help="the other-traffic summary instead (kind, talkers, bytes)")
    sp.add_argument("--csv", action="store_true")
    sp.set_defaults(func=_cmd_streams)
    sp = sub.add_parser("mtu", help="probe size against outcome: largest that passes, smallest that fails, path MTU")
    analysis_opts(sp)
    sp.add_argument("--sizes", action="store_true", help="one row per stream and size instead")
    sp.add_argument("--csv", action="store_true")
    sp.set_defaults(func=_cmd_mtu)
# ------------------------------------------------------------------------------ end of the forensics block


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="probekit", description="Read, generate and analyse network-monitor "
                                                               "probe captures.")
    p.add_argument("--version", action="version", version=f"probekit {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def reader_opts(sp):
        sp.add_argument("--backend", choices=("fast", "dpkt", "pyshark"), default="fast",
                        help="reader backend (default: fast)")
        sp.add_argument("--strict", action="store_true",
                        help="fail on a cut or corrupt file instead of salvaging its whole records")

    sp = sub.add_parser("read", help="write the packets table of a capture to Parquet or CSV")
    sp.add_argument("capture")
    sp.add_argument("-o", "--output", required=True, help="OUT.parquet or OUT.csv")
    reader_opts(sp)
    sp.set_defaults(func=_cmd_read)

    sp = sub.add_parser("summary", help="time span, link types, protocols and talkers of captures")
    sp.add_argument("capture", nargs="+")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    reader_opts(sp)
    sp.set_defaults(func=_cmd_summary)

    def analysis_opts(sp):
        sp.add_argument("capture")
        sp.add_argument("--timeout", type=float, default=1.0, help="reply timeout in seconds (default 1)")
        sp.add_argument("--vantage", choices=("auto", "prober", "target"), default="auto",
                        help="where the capture was taken (default: decided from TTLs)")
        sp.add_argument("--json", action="store_true")
        sp.add_argument("--all-streams", action="store_true",
                        help="every request stream (clients, scans, ...), not only the probe streams")
        sp.add_argument("--chunked", choices=("auto", "always", "never"), default="auto",
                        help="walk the capture in chunks without holding its packets table, same numbers (auto: "
                             "plain files over 2 GiB)")
        reader_opts(sp)

    sp = sub.add_parser("probes", help="one row per probe: outcome (ICMP errors with code and reporter), RTT, frames")
    analysis_opts(sp)
    sp.add_argument("--csv", action="store_true")
    sp.set_defaults(func=_cmd_probes)

    sp = sub.add_parser("metrics", help="per-period loss and RTT per stream (honest: no probes = no data)")
    analysis_opts(sp)
    sp.add_argument("--period", type=int, choices=(30, 60), default=30)
    sp.add_argument("--csv", action="store_true")
    sp.add_argument("--per-probe", action="store_true", help="sources together, as CloudWatch publishes")
    sp.add_argument("--bounded", action="store_true",
                    help="memory for one chunk whatever the file's size: per-period counts of every request stream "
                         "(no stream selection, no ICMP-error attribution)")
    sp.set_defaults(func=_cmd_metrics)

    sp = sub.add_parser("timing", help="inter-arrival rate, jitter, dominant period, bursts and gaps")
    analysis_opts(sp)
    sp.add_argument("--gap-factor", type=float, default=5.0, help="a gap is > this × the median inter-arrival")
    sp.set_defaults(func=_cmd_timing)

    sp = sub.add_parser("payload", help="payload randomness per stream: ent tests, NIST, duplicates, verdict")
    analysis_opts(sp)
    sp.set_defaults(func=_cmd_payload)

    sp = sub.add_parser("tcp", help="TCP connections with Zeek's conn_state and history, resets, handshake RTT")
    analysis_opts(sp)
    sp.add_argument("-C", "--ignore-checksums", action="store_true", help="as zeek -C")
    sp.set_defaults(func=_cmd_tcp)

    _add_conn_parser(sub, reader_opts)

    sp = sub.add_parser("fingerprint", help="which tool sent each probe stream, with the evidence")
    analysis_opts(sp)
    sp.set_defaults(func=_cmd_fingerprint)

    _cloudwatch_parsers(sub, analysis_opts)

    sp = sub.add_parser("probe", help="send real Network-Monitor-style probes (raw sockets, root)")
    sp.add_argument("--source", action="append", required=True, help="local source address (repeat per ENI)")
    sp.add_argument("--dest", required=True)
    sp.add_argument("--protocol", choices=("icmp", "tcp", "both"), default="both")
    sp.add_argument("--port", type=int, default=8080)
    sp.add_argument("--size", type=int, default=56)
    sp.add_argument("--rate", type=float, default=2.0, help="probes per second per probe (all sources together)")
    sp.add_argument("--duration", type=float, required=True, help="seconds; required: the prober never runs unbounded")
    sp.add_argument("--timeout", type=float, default=1.0)
    sp.add_argument("--period", type=int, default=30)
    sp.add_argument("--seed", type=int)
    sp.add_argument("--force", action="store_true", help="allow a total rate above the cap")
    sp.add_argument("--no-suppress-kernel-rst", action="store_true")
    sp.add_argument("-o", "--output", required=True, help="results CSV (per-period metrics go beside it)")
    sp.set_defaults(func=_cmd_probe)

    sp = sub.add_parser("lab", help="the network-namespace lab: up, down, status, set, run (root)")
    sp.add_argument("action", choices=("up", "down", "status", "set", "run"))
    sp.add_argument("what", nargs="?", choices=("target-down", "target-up", "http-off", "http-on", "eni-down",
                                                "eni-up", "impair", "clear", "mirror-on", "mirror-off"),
                    help="for `set` (mirror-on: the target's traffic in VXLAN to a mirror-target namespace)")
    sp.add_argument("--prefix", default="pk", help="namespace name prefix (default pk)")
    sp.add_argument("--enis", type=int, default=2)
    sp.add_argument("--eni", type=int, default=1, help="which ENI for eni-down/eni-up")
    sp.add_argument("--delay-ms", type=float, default=0.0)
    sp.add_argument("--jitter-ms", type=float, default=0.0)
    sp.add_argument("--loss", type=float, default=0.0)
    sp.add_argument("--keep-order", action="store_true")
    sp.add_argument("--protocol", choices=("icmp", "tcp", "both"), default="both")
    sp.add_argument("--family", type=int, choices=(4, 6), default=4)
    sp.add_argument("--rate", type=float, default=10.0)
    sp.add_argument("--duration", type=float, default=20.0)
    sp.add_argument("--size", type=int, default=56)
    sp.add_argument("--seed", type=int)
    sp.add_argument("-o", "--output", default="build/lab", help="folder for captures and results (run)")
    sp.set_defaults(func=_cmd_lab)

    sp = sub.add_parser("convert", help="append captures to a partitioned Parquet dataset (crash-safe)")
    sp.add_argument("capture", nargs="+")
    sp.add_argument("-o", "--output", required=True, help="dataset folder")
    sp.set_defaults(func=_cmd_convert)

    sp = sub.add_parser("dataset-metrics", help="per-period metrics over a Parquet dataset, through Dask")
    sp.add_argument("dataset")
    sp.add_argument("--period", type=int, choices=(30, 60), default=30)
    sp.add_argument("--timeout", type=float, default=1.0)
    sp.add_argument("--per-probe", action="store_true")
    sp.add_argument("--scheduler", help="distributed scheduler address (tcp://host:8786); default a LocalCluster; "
                                        "'synchronous' for one process")
    sp.add_argument("--json", action="store_true")
    sp.add_argument("--csv", action="store_true")
    sp.set_defaults(func=_cmd_dataset_metrics)

    sp = sub.add_parser("synth", help="write a deterministic synthetic capture of a probe scenario")
    sp.__class__ = _SynthParser  # its description lists the scenarios, imported only for `synth --help`
    sp.add_argument("scenario", help="e.g. healthy, target-down, lossy+size-change")
    sp.add_argument("-o", "--output", required=True, help="OUT.pcap or OUT.pcapng")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--duration", type=float, help="seconds of probing (default 300)")
    sp.add_argument("--rate", type=float, help="probes per second per probe, all sources together (default 2)")
    sp.add_argument("--size", type=int, default=56, help="probe packet size, 56-8500 (default 56)")
    sp.add_argument("--sources", type=int, default=2, help="number of ENIs (default 2)")
    sp.add_argument("--protocol", choices=("icmp", "tcp", "both"), default="both")
    sp.add_argument("--family", type=int, choices=(4, 6), default=4)
    sp.add_argument("--port", type=int, default=80, help="TCP probe port (default 80)")
    sp.add_argument("--period", type=int, default=30, help="aggregation period, 30 or 60 s")
    sp.add_argument("--loss", type=float, help="loss probability per leg")
    sp.add_argument("--vantage", choices=("prober", "target"), help="where the capture is taken")
    sp.add_argument("--link", choices=("ethernet", "sll2"), default="ethernet")
    sp.add_argument("--snaplen", type=int, default=262144)
    sp.add_argument("--encap", choices=("vxlan", "geneve", "gre"),
                    help="write the frames mirrored inside this tunnel (vxlan: as VPC Traffic Mirroring delivers them)")
    sp.set_defaults(func=_cmd_synth)
    _forensics_parsers(sub, analysis_opts)
    return p


class _SynthParser(argparse.ArgumentParser):
    """The ``synth`` subcommand's parser: the scenario list (from probekit.synth, which loads numpy and
    pandas) is read only when its help is shown, so that ``--version`` and ``--help`` stay light."""

    def format_help(self) -> str:
        from .synth.scenarios import SCENARIO_DOCS
        self.description = "Scenarios (join with '+' to compose): " + "; ".join(
            f"{k}: {v}" for k, v in SCENARIO_DOCS.items())
        return super().format_help()


def _version() -> str:
    from . import __version__
    return __version__


def main(argv: list[str] | None = None) -> int:
    from .errors import CaptureWarning
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", CaptureWarning)
            rc = args.func(args)
        for w in caught:
            if issubclass(w.category, CaptureWarning):
                print(f"probekit: warning: {w.message}", file=sys.stderr)
        return rc
    except ProbekitError as e:
        print(f"probekit: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"probekit: error: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("probekit: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug: still one line, with the way to see more
        if os.environ.get("PROBEKIT_DEBUG"):
            raise
        print(f"probekit: internal error: {type(e).__name__}: {e} (set PROBEKIT_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
