"""The ``probekit`` command line. Errors are one line on stderr: exit 1 for bad input, 2 for usage."""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

from .errors import ProbekitError

__all__ = ["main"]


def _cmd_read(args) -> int:
    from .capture import read_capture
    df = read_capture(args.capture, backend=args.backend, strict=args.strict)
    out = args.output
    if out.endswith(".csv"):
        df.to_csv(out, index=False)
    elif out.endswith(".parquet") or out.endswith(".pq"):
        df.to_parquet(out, index=False)
    else:
        raise ProbekitError(f"{out}: output must end in .parquet or .csv")
    print(f"{out}: {len(df)} packets", file=sys.stderr)
    return 0


def _cmd_summary(args) -> int:
    from .capture import read_capture
    from .summary import format_summary, summarize
    results = []
    for path in args.capture:
        df = read_capture(path, backend=args.backend, strict=args.strict)
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


def _probes_of(args):
    from .analysis.match import match_probes
    from .capture import read_capture
    df = read_capture(args.capture, backend=args.backend, strict=args.strict)
    return df, match_probes(df, timeout_s=args.timeout, vantage=args.vantage)


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
    from .analysis.metrics import PROBE_LEVEL, STREAM, period_metrics
    _, probes = _probes_of(args)
    per = period_metrics(probes, args.period, by=PROBE_LEVEL if args.per_probe else STREAM)
    _emit(per, args)
    return 0


def _cmd_timing(args) -> int:
    from .analysis.timing import find_gaps, timing_summary
    df, probes = _probes_of(args)
    span = df.probekit.span_ns()
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
    from .analysis.payload import payload_verdicts, request_payloads
    df, probes = _probes_of(args)
    v = payload_verdicts(probes, request_payloads(df, probes))
    _emit(v, args)
    return 0


def _cmd_tcp(args) -> int:
    from .analysis.tcp import tcp_connections
    from .capture import read_capture
    df = read_capture(args.capture, backend=args.backend, strict=args.strict)
    _emit(tcp_connections(df, check_checksums=not args.ignore_checksums), args)
    return 0


def _cmd_fingerprint(args) -> int:
    from .analysis.fingerprint import fingerprint
    df, probes = _probes_of(args)
    _emit(fingerprint(df, probes), args)
    return 0


def _cmd_report(args) -> int:
    from .report import build_report
    out = build_report(args.capture, args.output, period_s=args.period, cloudwatch_csv=args.cloudwatch)
    print(f"{out}: report on {len(args.capture)} capture(s)", file=sys.stderr)
    return 0


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
    res = convert(args.capture, args.output)
    print(json.dumps(res))
    return 0


def _cmd_dataset_metrics(args) -> int:
    from .analysis.metrics import PROBE_LEVEL, STREAM, period_metrics
    from .scale import dataset_probes
    probes = dataset_probes(args.dataset, timeout_s=args.timeout, scheduler=args.scheduler)
    _emit(period_metrics(probes, args.period, by=PROBE_LEVEL if args.per_probe else STREAM), args)
    return 0


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
        reader_opts(sp)

    sp = sub.add_parser("metrics", help="per-period loss and RTT per stream (honest: no probes = no data)")
    analysis_opts(sp)
    sp.add_argument("--period", type=int, choices=(30, 60), default=30)
    sp.add_argument("--csv", action="store_true")
    sp.add_argument("--per-probe", action="store_true", help="sources together, as CloudWatch publishes")
    sp.set_defaults(func=_cmd_metrics)

    sp = sub.add_parser("timing", help="inter-arrival rate, jitter, dominant period, bursts and gaps")
    analysis_opts(sp)
    sp.add_argument("--gap-factor", type=float, default=5.0, help="a gap is > this × the median inter-arrival")
    sp.set_defaults(func=_cmd_timing)

    sp = sub.add_parser("payload", help="payload randomness per stream: ent tests, NIST, duplicates, verdict")
    analysis_opts(sp)
    sp.set_defaults(func=_cmd_payload)

    sp = sub.add_parser("tcp", help="TCP connections with Zeek's conn_state and history, resets, handshake RTT")
    sp.add_argument("capture")
    sp.add_argument("--json", action="store_true")
    sp.add_argument("-C", "--ignore-checksums", action="store_true", help="as zeek -C")
    reader_opts(sp)
    sp.set_defaults(func=_cmd_tcp)

    sp = sub.add_parser("fingerprint", help="which tool sent each probe stream, with the evidence")
    analysis_opts(sp)
    sp.set_defaults(func=_cmd_fingerprint)

    sp = sub.add_parser("report", help="run the notebooks on captures and write one self-contained HTML report")
    sp.add_argument("capture", nargs="+")
    sp.add_argument("-o", "--output", required=True, help="report.html")
    sp.add_argument("--period", type=int, choices=(30, 60), default=30)
    sp.add_argument("--cloudwatch", help="CloudWatch metrics export (CSV) to audit against the captures")
    sp.set_defaults(func=_cmd_report)

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
                                                "eni-up", "impair", "clear"), help="for `set`")
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

    from .synth.scenarios import SCENARIO_DOCS
    sp = sub.add_parser("synth", help="write a deterministic synthetic capture of a probe scenario",
                        description="Scenarios (join with '+' to compose): " + "; ".join(
                            f"{k}: {v}" for k, v in SCENARIO_DOCS.items()))
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
    return p


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
