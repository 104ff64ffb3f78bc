"""CloudWatch's numbers: every export format read by content, probe ids resolved, the audit's findings,
clock skew, the figure, the shipped synthetic exports, and bad input named plainly."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import probekit
from cloudwatch_shapes import (
    CONSOLE_CSV,
    GET_METRIC_DATA_PAGES,
    GET_METRIC_STATISTICS,
    GET_MONITOR,
    ICMP_ID,
    LIST_MONITORS,
    MONITOR,
    OTHER_CONSOLE_CSV,
    TCP_ID,
    check_shape,
    output_shape,
)
from probekit.analysis.cloudwatch import audit_cloudwatch, audit_summary, estimate_clock_skew
from probekit.capture.cloudwatch import read_cloudwatch, read_monitors
from probekit.errors import ProbekitError
from probekit.schema import AUDIT, AUDIT_SUMMARY, CLOUDWATCH, check_table
from probekit.synth import read_truth
from probekit.synth.cloudwatch import write_cloudwatch_exports

ROOT = Path(__file__).resolve().parents[1]
CAPTURES = ROOT / "captures"
TD = CAPTURES / "target-down.pcap"
T0 = pd.Timestamp("2026-01-01T00:00:00Z").value


def _write(tmp_path, name, docs) -> Path:
    p = tmp_path / name
    if isinstance(docs, str):
        p.write_text(docs)
    else:
        p.write_text("".join(json.dumps(d, indent=2) + "\n" for d in docs))
    return p


# ----------------------------------------------------------------------------------- the shapes themselves
@pytest.mark.parametrize("service,op,doc", [
    ("networkmonitor", "GetMonitor", GET_MONITOR),
    ("networkmonitor", "ListMonitors", LIST_MONITORS),
    ("cloudwatch", "GetMetricData", GET_METRIC_DATA_PAGES[0]),
    ("cloudwatch", "GetMetricData", GET_METRIC_DATA_PAGES[1]),
    ("cloudwatch", "GetMetricStatistics", GET_METRIC_STATISTICS),
])
def test_examples_follow_botocores_service_models(service, op, doc):
    check_shape(doc, output_shape(service, op))


def test_shape_checker_rejects_what_aws_would_not_send():
    bad = json.loads(json.dumps(GET_METRIC_DATA_PAGES[0]))
    bad["MetricDataResults"][0]["StatusCode"] = "Partial"
    with pytest.raises(AssertionError, match="enum"):
        check_shape(bad, output_shape("cloudwatch", "GetMetricData"))
    with pytest.raises(AssertionError, match="required"):
        check_shape({k: v for k, v in GET_MONITOR.items() if k != "aggregationPeriod"},
                    output_shape("networkmonitor", "GetMonitor"))


def test_shipped_exports_follow_the_shapes():
    from probekit.capture.cloudwatch import read_json_documents
    (mon,) = read_json_documents(TD.with_name(TD.name + ".monitor.json"))
    check_shape(mon, output_shape("networkmonitor", "GetMonitor"))
    pages = read_json_documents(TD.with_name(TD.name + ".cloudwatch.json"))
    assert len(pages) == 2 and pages[0]["NextToken"] and "NextToken" not in pages[1]
    assert {r["StatusCode"] for r in pages[0]["MetricDataResults"]} == {"PartialData"}
    for p in pages:
        check_shape(p, output_shape("cloudwatch", "GetMetricData"))


# ----------------------------------------------------------------------------------- readers
def test_get_metric_data_pages_in_one_file_or_several_give_one_table(tmp_path):
    mon = _write(tmp_path, "monitor.json", [GET_MONITOR])
    one = read_cloudwatch(_write(tmp_path, "cw.json", GET_METRIC_DATA_PAGES), monitor=mon)
    two = read_cloudwatch([_write(tmp_path, "p1.json", GET_METRIC_DATA_PAGES[:1]),
                           _write(tmp_path, "p2.json", GET_METRIC_DATA_PAGES[1:])], monitor=mon)
    check_table(one, CLOUDWATCH)
    cols = [c for c in one.columns if c != "source_file"]
    pd.testing.assert_frame_equal(one[cols], two[cols])
    n = sum(len(r["Values"]) for p in GET_METRIC_DATA_PAGES for r in p["MetricDataResults"])
    assert len(one) == n == 15
    assert set(one["resolved"]) == {"monitor"} and set(one["monitor"]) == {MONITOR}
    tcp = one[one["probe_id"] == TCP_ID]
    assert set(tcp["protocol"]) == {"tcp"} and set(tcp["port"]) == {80} and set(tcp["destination"]) == {"192.0.2.10"}
    assert set(one.loc[one["probe_id"] == ICMP_ID, "protocol"]) == {"icmp"}
    assert set(one["period_s"]) == {30} and set(one["size"]) == {56}
    assert set(one["unit"]) == {"Percent", "Microseconds"}
    # StatusCode kept per series and page
    assert set(one["status_code"]) == {"PartialData", "Complete"}
    v = one[(one["probe_id"] == ICMP_ID) & (one["metric"] == "PacketLoss")].set_index("period_start_ns")["value"]
    assert v[T0 + 90 * 10**9] == 100.0 and v[T0] == 0.0


def test_a_last_page_with_a_next_token_is_reported_incomplete(tmp_path):
    cw = read_cloudwatch(_write(tmp_path, "cw.json", GET_METRIC_DATA_PAGES[:1]),
                         monitor=_write(tmp_path, "m.json", [GET_MONITOR]))
    assert any("NextToken" in n and "incomplete" in n for n in cw.attrs["notes"])


def test_a_fetch_style_file_carries_its_own_monitor(tmp_path):
    cw = read_cloudwatch(_write(tmp_path, "cw.json", [GET_MONITOR] + GET_METRIC_DATA_PAGES))
    assert set(cw["resolved"]) == {"monitor"}


def test_get_metric_statistics_takes_its_probe_from_the_file_name(tmp_path):
    mon = _write(tmp_path, "m.json", [GET_MONITOR])
    cw = read_cloudwatch(_write(tmp_path, f"{ICMP_ID}.RTT.json", [GET_METRIC_STATISTICS]), monitor=mon)
    check_table(cw, CLOUDWATCH)
    assert set(cw["statistic"]) == {"Average", "Maximum", "SampleCount"}
    avg = cw[cw["statistic"] == "Average"].sort_values("period_start_ns")
    assert avg["value"].tolist() == [11998.25, 12005.0] and set(avg["protocol"]) == {"icmp"}
    assert set(cw.loc[cw["statistic"] == "SampleCount", "unit"]) == {"Count"}


def test_get_metric_statistics_without_a_probe_id_is_guessed_only_when_the_monitor_has_one_probe(tmp_path):
    one = dict(GET_MONITOR, probes=GET_MONITOR["probes"][1:])
    cw = read_cloudwatch(_write(tmp_path, "rtt.json", [GET_METRIC_STATISTICS]), monitor=_write(tmp_path, "m.json", [one]))
    assert set(cw["resolved"]) == {"guessed"} and set(cw["probe_id"]) == {TCP_ID}
    assert any("assumed" in n for n in cw.attrs["notes"])
    cw2 = read_cloudwatch(_write(tmp_path, "rtt2.json", [GET_METRIC_STATISTICS]),
                          monitor=_write(tmp_path, "m2.json", [GET_MONITOR]))
    assert set(cw2["resolved"]) == {"unresolved"}


def test_console_csv_reads_like_get_metric_data(tmp_path):
    mon = _write(tmp_path, "m.json", [GET_MONITOR])
    csv = read_cloudwatch(_write(tmp_path, "graph.csv", CONSOLE_CSV), monitor=mon)
    gmd = read_cloudwatch(_write(tmp_path, "cw.json", GET_METRIC_DATA_PAGES), monitor=mon)
    check_table(csv, CLOUDWATCH)
    key = ["probe_id", "metric", "period_start_ns"]
    a = csv.set_index(key)["value"].sort_index()
    b = gmd.set_index(key)["value"].sort_index()
    pd.testing.assert_series_equal(a, b)
    assert not csv.attrs["notes"]


def test_console_csv_without_time_zone_says_it_read_utc(tmp_path):
    cw = read_cloudwatch(_write(tmp_path, "g.csv", CONSOLE_CSV.replace("Z,", ",").replace("T", " ")))
    assert cw["period_start_ns"].min() == T0
    assert any("read as UTC" in n for n in cw.attrs["notes"])


def test_list_monitors_gives_periods_but_not_probes(tmp_path):
    m = read_monitors(_write(tmp_path, "l.json", [LIST_MONITORS]))
    assert m[MONITOR]["period_s"] == 30 and m["other"]["period_s"] == 60 and not m[MONITOR]["probes"]
    cw = read_cloudwatch(_write(tmp_path, "cw.json", GET_METRIC_DATA_PAGES), monitor=_write(tmp_path, "l2.json", [LIST_MONITORS]))
    assert set(cw["resolved"]) == {"unresolved"} and set(cw["period_s"]) == {30}
    assert any("get-monitor" in n for n in cw.attrs["notes"])


def test_probekits_old_csv_still_reads(tmp_path):
    p = _write(tmp_path, "old.csv", "timestamp,probe,metric,value\n2026-01-01T00:00:00Z,tcp:192.0.2.10:80,PacketLoss,0.0\n"
                                    "2026-01-01T00:00:00Z,icmp:192.0.2.10,RTT,12000\n")
    cw = read_cloudwatch(p)
    assert set(cw["resolved"]) == {"export"}
    assert cw.set_index("protocol")["port"].to_dict() == {"tcp": 80, "icmp": pd.NA} or \
        (cw.loc[cw["protocol"] == "tcp", "port"].tolist() == [80] and cw.loc[cw["protocol"] == "icmp", "port"].isna().all())


# ----------------------------------------------------------------------------------- bad input
def test_an_export_for_another_monitor_is_an_error(tmp_path):
    other = json.loads(json.dumps(GET_METRIC_DATA_PAGES).replace(f"Monitor={MONITOR}", "Monitor=someone-else"))
    with pytest.raises(ProbekitError, match="another monitor") as e:
        read_cloudwatch(_write(tmp_path, "cw.json", other), monitor=_write(tmp_path, "m.json", [GET_MONITOR]))
    assert "someone-else" in str(e.value) and MONITOR in str(e.value)


def test_probe_ids_of_another_monitor_without_monitor_names_are_an_error(tmp_path):
    csv = CONSOLE_CSV.replace(ICMP_ID, "probe-aaaaaaaaaaaaaaaaaaaaaaaaaa").replace(TCP_ID, "probe-bbbbbbbbbbbbbbbbbbbbbbbbbb")
    with pytest.raises(ProbekitError, match="none of the export's probe ids"):
        read_cloudwatch(_write(tmp_path, "g.csv", csv), monitor=_write(tmp_path, "m.json", [GET_MONITOR]))


def test_a_probe_id_absent_from_the_monitor_is_a_finding(tmp_path):
    csv = CONSOLE_CSV.replace(TCP_ID, "probe-zzzzzzzzzzzzzzzzzzzzzzzzzz")
    cw = read_cloudwatch(_write(tmp_path, "g.csv", csv), monitor=_write(tmp_path, "m.json", [GET_MONITOR]))
    assert set(cw.loc[cw["probe_id"] == "probe-zzzzzzzzzzzzzzzzzzzzzzzzzz", "resolved"]) == {"not_in_monitor"}
    assert any("probe-zzzzzzzzzzzzzzzzzzzzzzzzzz" in n for n in cw.attrs["notes"])
    probes = probekit.match_probes(probekit.read_capture(TD))
    a = audit_cloudwatch(probes, cw)
    bad = a[a["probe_id"] == "probe-zzzzzzzzzzzzzzzzzzzzzzzzzz"]
    assert len(bad) and (bad["finding"] == "probe_not_in_monitor").all()
    assert "not in the monitor description" in bad["detail"].iloc[0]


def test_truncated_json_names_file_and_offset(tmp_path):
    text = json.dumps(GET_METRIC_DATA_PAGES[0], indent=2)
    p = tmp_path / "cut.json"
    p.write_text(text[: len(text) // 2])
    with pytest.raises(ProbekitError) as e:
        read_cloudwatch(p)
    msg = str(e.value)
    assert str(p) in msg and "byte" in msg and "truncated" in msg and "\n" not in msg


def test_a_csv_of_another_console_graph_is_named(tmp_path):
    with pytest.raises(ProbekitError, match="another console graph"):
        read_cloudwatch(_write(tmp_path, "cpu.csv", OTHER_CONSOLE_CSV))


def test_json_that_is_not_an_aws_output_is_named(tmp_path):
    with pytest.raises(ProbekitError, match="not CloudWatch or Network Monitor output"):
        read_cloudwatch(_write(tmp_path, "x.json", [{"hello": 1}]))


def test_get_metric_data_of_another_namespace_is_named(tmp_path):
    doc = {"MetricDataResults": [{"Id": "cpu", "Label": "CPUUtilization", "Timestamps": [], "Values": [],
                                  "StatusCode": "Complete"}], "Messages": []}
    with pytest.raises(ProbekitError, match="not an AWS/NetworkMonitor export"):
        read_cloudwatch(_write(tmp_path, "x.json", [doc]))


@pytest.mark.parametrize("make,needle", [
    (lambda d: (d / "cut.json").write_text('{"MetricDataResults": [{"Id": "m0_rtt", "Lab'), "truncated"),
    (lambda d: (d / "cpu.csv").write_text(OTHER_CONSOLE_CSV), "another console graph"),
])
def test_cli_bad_input_is_one_line(tmp_path, make, needle):
    make(tmp_path)
    f = next(tmp_path.iterdir())
    p = subprocess.run([sys.executable, "-m", "probekit", "audit", str(TD), "--cloudwatch", str(f)],
                       capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 1, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("probekit: error:") and needle in lines[0]
    assert "Traceback" not in p.stderr


# ----------------------------------------------------------------------------------- the audit
@pytest.fixture(scope="module")
def td():
    df = probekit.read_capture(TD)
    return df, probekit.match_probes(df), read_truth(TD)


def _no_reply_periods(truth, protocol, period_s=30):
    t = truth[truth["protocol"] == protocol]
    per = t.assign(p=t["send_ns"] // (period_s * 10**9) * (period_s * 10**9)).groupby("p")["answered"].any()
    return set(per.index[~per.to_numpy()])


def test_shipped_target_down_export_shows_zero_loss_while_no_probe_was_answered(td):
    df, probes, truth = td
    cw = read_cloudwatch(TD.with_name(TD.name + ".cloudwatch.json"), monitor=TD.with_name(TD.name + ".monitor.json"))
    a = audit_cloudwatch(probes, cw, packets=df)
    check_table(a, AUDIT)
    zero = a[a["finding"] == "zero_loss_but_no_replies"]
    assert set(zero["period_start_ns"]) == _no_reply_periods(truth, "tcp") and len(zero) >= 5
    assert set(zero["protocol"]) == {"tcp"} and (zero["cw_loss_pct"] == 0).all() and (zero["cw_rtt_us"] == 0).all()
    icmp = a[a["protocol"] == "icmp"]
    assert icmp["agrees"].all() and set(icmp.loc[icmp["status"] == "no_reply", "period_start_ns"]) == \
        _no_reply_periods(truth, "icmp")
    assert a.attrs["period_s"] == 30 and not a["icmp_errors"].isna().any()
    sk = a.attrs["clock_skew"]
    assert sk["determinable"] and sk["skew_s"] == 0.0 and sk["applied_s"] == 0.0
    s = audit_summary(a)
    check_table(s, AUDIT_SUMMARY)
    assert s["finding"].astype(str).tolist() == ["zero_loss_but_no_replies"] and s["periods"].iloc[0] == len(zero)


def test_console_csv_export_gives_the_same_audit(td):
    _, probes, _ = td
    mon = TD.with_name(TD.name + ".monitor.json")
    a = audit_cloudwatch(probes, read_cloudwatch(TD.with_name(TD.name + ".cloudwatch.json"), monitor=mon))
    b = audit_cloudwatch(probes, read_cloudwatch(TD.with_name(TD.name + ".cloudwatch-console.csv"), monitor=mon))
    cols = ["period_start_ns", "protocol", "port", "probe_id", "cw_loss_pct", "cw_rtt_us", "finding"]
    pd.testing.assert_frame_equal(a[cols], b[cols])


def test_metric_without_probes_when_tcp_stops_after_activation(tmp_path):
    cap = CAPTURES / "tcp-stops-after-activation.pcap"
    truth = read_truth(cap)
    (tmp_path / cap.name).symlink_to(cap)
    files = write_cloudwatch_exports(truth, tmp_path / cap.name, "m")
    cw = read_cloudwatch(files[1], monitor=files[0])
    probes = probekit.match_probes(probekit.read_capture(cap))
    a = audit_cloudwatch(probes, cw)
    step = 30 * 10**9
    tcp = truth[truth["protocol"] == "tcp"]
    lo, hi = truth["send_ns"].min() // step * step, truth["send_ns"].max() // step * step
    silent = set(range(lo, hi + step, step)) - set(tcp["send_ns"] // step * step)
    got = a[(a["protocol"] == "tcp") & (a["finding"] == "metric_without_probes")]
    assert silent and set(got["period_start_ns"]) == silent
    assert got["probing_stopped"].all() and (got["sent"] == 0).all()


def _cw_from(periods, protocol="icmp", loss=None, rtt=None, shift_ns=0):
    p = periods[periods["protocol"] == protocol]
    rows = []
    for r in p.itertuples():
        for metric, v in (("PacketLoss", r.loss_pct if loss is None else loss(r)),
                          ("RTT", r.rtt_mean_us if rtt is None else rtt(r))):
            if not np.isnan(v):
                rows.append(dict(timestamp=r.period_start_ns / 1e9 + shift_ns / 1e9, protocol=str(r.protocol),
                                 destination=str(r.destination), metric=metric, value=v))
    return pd.DataFrame(rows)


def test_tolerances_as_stated(td, tmp_path):
    _, probes, _ = td
    per = probekit.period_metrics(probes, 30, by=probekit.schema.STREAM_KEYS)
    ok = per[(per["protocol"] == "icmp") & (per["status"] == "ok")]
    first = int(ok["period_start_ns"].iloc[0])
    sent = int(ok["sent"].iloc[0])

    def audit(loss=None, rtt=None):
        f = tmp_path / "cw.csv"
        _cw_from(per, loss=loss, rtt=rtt).to_csv(f, index=False)
        a = audit_cloudwatch(probes, read_cloudwatch(f))
        return a[a["protocol"] == "icmp"].set_index("period_start_ns").loc[first]

    one_probe = 100.0 / sent
    assert audit(loss=lambda r: r.loss_pct + (0.99 * one_probe if r.period_start_ns == first else 0))["finding"] == "agrees"
    assert audit(loss=lambda r: r.loss_pct + (1.01 * one_probe if r.period_start_ns == first else 0))["finding"] == "loss_differs"
    assert audit(rtt=lambda r: r.rtt_mean_us * (1.19 if r.period_start_ns == first else 1))["finding"] == "agrees"
    row = audit(rtt=lambda r: r.rtt_mean_us * (1.21 if r.period_start_ns == first else 1))
    assert row["finding"] == "rtt_differs" and "tolerance" in row["detail"]


def test_zero_rtt_without_reply_and_probes_without_metric(td, tmp_path):
    _, probes, _ = td
    per = probekit.period_metrics(probes, 30, by=probekit.schema.STREAM_KEYS)
    f = tmp_path / "cw.csv"
    cw = _cw_from(per, loss=lambda r: r.loss_pct, rtt=lambda r: 0.0 if r.status == "no_reply" else r.rtt_mean_us)
    cw = cw[cw["timestamp"] != cw["timestamp"].min()]  # CloudWatch lost the first period
    cw.to_csv(f, index=False)
    a = audit_cloudwatch(probes, read_cloudwatch(f))
    icmp = a[a["protocol"] == "icmp"].set_index("period_start_ns")
    dead = icmp.index[icmp["status"] == "no_reply"]
    assert (icmp.loc[dead, "finding"] == "zero_rtt_without_reply").all()
    assert icmp["finding"].iloc[0] == "probes_without_metric"
    tcp = a[a["protocol"] == "tcp"]
    assert (tcp["finding"] == "probes_without_metric").all()  # the export has no TCP at all


def test_clock_skew_is_estimated_and_applied_only_when_asked(td):
    _, probes, _ = td
    cw = read_cloudwatch(TD.with_name(TD.name + ".cloudwatch.json"), monitor=TD.with_name(TD.name + ".monitor.json"))
    late = probes.assign(ts_ns=probes["ts_ns"] - 7 * 10**9)  # the capture host's clock 7 s behind
    sk = estimate_clock_skew(late, cw, 30)
    assert sk["determinable"] and sk["low_s"] <= 7 <= sk["high_s"] and sk["skew_s"] == 7
    a = audit_cloudwatch(late, cw)
    assert a.attrs["clock_skew"]["skew_s"] == 7 and (a["finding"] == "loss_differs").any()
    fixed = audit_cloudwatch(late, cw, clock_skew_s=7)
    assert not (fixed["finding"] == "loss_differs").any()
    assert set(fixed.loc[~fixed["agrees"], "finding"]) == {"zero_loss_but_no_replies"}


def test_clock_skew_not_determinable_without_a_loss_change(tmp_path):
    cap = CAPTURES / "healthy.pcap"
    probes = probekit.match_probes(probekit.read_capture(cap))
    per = probekit.period_metrics(probes, 30, by=probekit.schema.STREAM_KEYS)
    f = tmp_path / "cw.csv"
    _cw_from(per, loss=lambda r: 0.0).to_csv(f, index=False)
    sk = estimate_clock_skew(probes, read_cloudwatch(f), 30)
    assert not sk["determinable"] and "not determinable" in sk["note"]


def test_unresolved_probe_is_guessed_for_a_single_stream_and_said_so(tmp_path):
    cap = tmp_path / "icmp.pcap"
    from probekit.synth import default_monitor, synth
    truth = synth("target-down", cap, seed=4, monitor=default_monitor(protocol="icmp"), duration_s=120.0)
    files = write_cloudwatch_exports(truth, cap, "solo")
    cw = read_cloudwatch(files[2])  # the console CSV, no monitor description
    assert set(cw["resolved"]) == {"unresolved"}
    a = audit_cloudwatch(probekit.match_probes(probekit.read_capture(cap)), cw)
    assert set(a["resolved"]) == {"guessed"} and a["agrees"].all()
    assert any(n.startswith("GUESSED") for n in a.attrs["notes"])


def test_audit_of_a_target_side_capture_does_not_compare_rtt(tmp_path):
    cap = CAPTURES / "healthy-ipv6-target-side.pcap"
    probes = probekit.match_probes(probekit.read_capture(cap))
    per = probekit.period_metrics(probes, 30, by=probekit.schema.STREAM_KEYS)
    f = tmp_path / "cw.csv"
    _cw_from(per, protocol="icmpv6", rtt=lambda r: 12000.0).to_csv(f, index=False)
    a = audit_cloudwatch(probes, read_cloudwatch(f))
    v6 = a[a["protocol"] == "icmpv6"]
    assert len(v6) and v6["agrees"].all()
    assert any("target" in n for n in a.attrs["notes"])


def test_the_legacy_names_still_work_and_warn(td, tmp_path):
    _, probes, _ = td
    f = tmp_path / "old.csv"
    _cw_from(probekit.period_metrics(probes, 30, by=probekit.schema.STREAM_KEYS)).to_csv(f, index=False)
    with pytest.warns(DeprecationWarning):
        cw = probekit.read_cloudwatch_csv(f)
    a = probekit.audit_cloudwatch(probes, cw, period_s=30)
    assert a[a["protocol"] == "icmp"]["agrees"].all()


# ----------------------------------------------------------------------------------- figure and shipped files
def test_figure_marks_each_disagreeing_period(td):
    from matplotlib.patches import Polygon, Rectangle
    cap = probekit.open_capture(TD)
    rows = cap.cloudwatch_by_probe()["tcp 192.0.2.10:80"]
    from probekit.plots import plot_cloudwatch_audit
    fig = plot_cloudwatch_audit(rows)
    top, bottom = fig.axes
    red = [p for p in top.patches if isinstance(p, (Polygon, Rectangle)) and p.get_facecolor()[0] > 0.8
           and p.get_facecolor()[1] < 0.3]
    assert len(red) == int((~rows["agrees"]).sum()) == 6
    texts = [t.get_text() for t in top.texts]
    assert texts.count("zero loss but no replies") == 6
    cw_line = [ln for ln in top.lines if ln.get_label() == "CloudWatch PacketLoss"][0]
    assert np.array_equal(cw_line.get_ydata(), rows["cw_loss_pct"].to_numpy())
    assert "6 of 10 periods disagree" in top.get_title()


def test_shipped_exports_regenerate_byte_for_byte(tmp_path):
    from probekit.synth import synth
    from probekit.synth.shipped import CLOUDWATCH_EXPORTS, SHIPPED
    for name, monitor in CLOUDWATCH_EXPORTS.items():
        scen, seed, kw = SHIPPED[name]
        truth = synth(scen, tmp_path / name, seed=seed, **kw)
        for f in write_cloudwatch_exports(truth, tmp_path / name, monitor):
            assert f.read_bytes() == (CAPTURES / f.name).read_bytes(), f.name
    assert not (CAPTURES / "target-down.cloudwatch.csv").exists(), "replaced by the exports in AWS's formats"
    readme = (CAPTURES / "README.md").read_text()
    section = readme.split("## Synthetic CloudWatch exports", 1)[1].split("\n## ", 1)[0]
    exports = [f.name for f in CAPTURES.glob("target-down.pcap.*") if not f.name.endswith("truth.csv")]
    assert "synthetic" in section and len(exports) == 3 and all(f"`{n}`" in section for n in exports)


def test_session_finds_the_exports_beside_the_capture():
    cap = probekit.open_capture(TD)
    assert [p.name for p in cap.cloudwatch_files] == ["target-down.pcap.cloudwatch.json"]
    assert [p.name for p in cap.monitor_files] == ["target-down.pcap.monitor.json"]
    assert probekit.open_capture(CAPTURES / "healthy.pcap").cloudwatch is None
    assert probekit.open_capture(TD, cloudwatch=False).cloudwatch_audit is None
    s = cap.summary()
    assert s["headline"].startswith("**CloudWatch disagrees** (`zero_loss_but_no_replies`)")
    assert "0 % loss and 0 ms RTT for tcp 192.0.2.10:80 while none of its" in s["headline"]


def test_cli_audit_json_and_exit_zero():
    p = subprocess.run([sys.executable, "-m", "probekit", "audit", str(TD), "--json"], capture_output=True, text=True,
                       cwd=ROOT)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert {r["finding"] for r in out["summary"]} == {"zero_loss_but_no_replies"}
    assert len(out["audit"]) == 20 and out["clock_skew"]["determinable"] and out["tolerances"]["loss_tolerance_pct"] == 1.0
    p = subprocess.run([sys.executable, "-m", "probekit", "audit", str(TD), "--period", "60"], capture_output=True,
                       text=True, cwd=ROOT)
    assert p.returncode == 1 and "aggregationPeriod" in p.stderr and len(p.stderr.strip().splitlines()) == 1
