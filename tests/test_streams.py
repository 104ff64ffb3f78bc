"""Streams: the Network Monitor streams found among a real browser and a real scan (mergecap/editcap)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import probekit
from conftest import ROOT, require_real_captures
from probekit.analysis.streams import (
    other_traffic,
    packet_kinds,
    select_probe_streams,
    stream_key,
    streams,
)
from probekit.schema import OTHER_TRAFFIC, STREAMS, check_table

HEALTHY = ROOT / "captures" / "healthy.pcap"
SOURCES = "198.51.100.10,198.51.100.11"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        msg = f"{name} (Debian's wireshark-common) is not installed"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def _shift_to(src: Path, start_ns: int, out: Path) -> Path:
    first = int(probekit.read_capture(src)["ts_ns"].min())
    shift_s = (start_ns - first) / 1e9
    subprocess.run([_tool("editcap"), "-t", f"{shift_s:.6f}", str(src), str(out)], check=True,
                   capture_output=True)
    return out


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """healthy.pcap + zeek/wikipedia.pcap (a browser, 60 s in) + zeek/nmap-vsn.pcap (a scan, 120 s in),
    merged by time with the real mergecap, as a new user would."""
    real = require_real_captures()
    d = tmp_path_factory.mktemp("mixed")
    t0 = int(probekit.read_capture(HEALTHY)["ts_ns"].min())
    w = _shift_to(real / "zeek" / "wikipedia.pcap", t0 + 60 * 10**9, d / "w.pcap")
    n = _shift_to(real / "zeek" / "nmap-vsn.pcap", t0 + 120 * 10**9, d / "n.pcap")
    out = d / "mixed.pcap"
    subprocess.run([_tool("mergecap"), "-F", "pcap", "-w", str(out), str(HEALTHY), str(w), str(n)], check=True,
                   capture_output=True)
    df = probekit.read_capture(out)
    probes = probekit.match_probes(df)
    fp = probekit.fingerprint(df, probes)
    return df, probes, streams(df, probes, fp)


def test_mixed_capture_has_exactly_the_monitor_streams_as_probes(mixed):
    _df, probes, st = mixed
    check_table(st, STREAMS)
    # the matcher alone sees more TCP "probe" streams than the monitor's one
    assert probes.groupby(["protocol", "destination", "port"], observed=True, dropna=False).ngroups > 3
    pr = st[st["kind"] == "probe"]
    got = sorted((str(r.protocol), str(r.destination), None if pd.isna(r.port) else int(r.port), r.source_list)
                 for r in pr.itertuples())
    assert got == [("icmp", "192.0.2.10", None, SOURCES), ("tcp", "192.0.2.10", 80, SOURCES)]
    assert set(pr["tool"]) == {"cwnm-like"}
    assert (pr["on_schedule_pct"] == 100).all()


def test_browser_is_client_and_nmap_is_scan(mixed):
    _df, _probes, st = mixed
    browser = st[st["source_list"] == "141.142.220.118"]
    scanner = st[(st["source_list"] == "192.168.1.71") & (st["protocol"] == "tcp")]
    assert len(browser) >= 3 and set(browser["kind"]) == {"client"}
    assert (browser["data_pct"] >= 50).all()
    assert len(scanner) >= 8 and set(scanner["kind"]) == {"scan"}
    # the hosts' own DNS, NetBIOS, LLMNR and mDNS requests (the browser's and nmap's lookups among them)
    # are UDP probes for the matcher and client traffic here: service ports, replies with data
    udp = st[st["protocol"] == "udp"]
    assert len(udp) >= 4 and set(udp["kind"]) == {"client"}
    assert {53, 137, 5353, 5355} <= set(udp["port"].astype(int))
    dns = udp[(udp["port"] == 53) & (udp["source_list"] == "141.142.220.118")]
    assert len(dns) == 1 and dns["data_pct"].iloc[0] == 100 and "service port" in dns["evidence"].iloc[0]
    assert (scanner["per_target_max"] <= 2).all() and (scanner["source_targets"] >= 8).all()
    # every row is explained in words with its numbers
    assert all(str(r.requests) in r.evidence for r in st.itertuples())


def test_other_traffic_summarises_the_rest(mixed):
    df, _probes, st = mixed
    ot = other_traffic(df, st)
    check_table(ot, OTHER_TRAFFIC)
    kinds = set(ot["kind"].astype(str))
    assert {"client", "scan", "arp"} <= kinds and "probe" not in kinds
    # every frame is counted once: probe frames + other traffic = the capture
    pk = packet_kinds(df, st)
    # DNS queries and their answers are the client streams' frames (UDP requests, replies on the 4-tuple)
    dns = ((df["ip_proto"] == 17) & ((df["dport"] == 53) | (df["sport"] == 53))).fillna(False).to_numpy()
    assert dns.sum() > 20 and set(pk[dns].astype(str)) == {"client"}
    assert int(ot["packets"].sum()) + int((pk == "probe").sum()) == len(df)
    # the probe frames are exactly the frames of healthy.pcap
    healthy = probekit.read_capture(HEALTHY)
    assert int((pk == "probe").sum()) == len(healthy)
    assert int(ot.loc[ot["kind"] == "client", "bytes"].iloc[0]) == int(df.loc[(pk == "client").to_numpy(), "wirelen"].sum())


@pytest.mark.parametrize("by", [("protocol", "source", "destination", "port"), ("protocol", "destination", "port")])
def test_probe_stream_metrics_equal_the_capture_without_background(mixed, by):
    _df, probes, st = mixed
    sel = select_probe_streams(probes, st)
    alone = probekit.match_probes(probekit.read_capture(HEALTHY))
    a = probekit.period_metrics(sel, 30, by=by)
    b = probekit.period_metrics(alone, 30, by=by)
    assert len(a) == len(b) > 0
    pd.testing.assert_frame_equal(a, b)
    # without the filter the browser and the scan add streams and no_probes periods
    c = probekit.period_metrics(probes, 30, by=by)
    assert len(c) > len(a) and (c["status"] == "no_probes").sum() > (a["status"] == "no_probes").sum()


def test_overrides_and_explicit_keys(mixed):
    df, probes, st = mixed
    st2 = streams(df, probes, overrides={"tcp:208.80.152.3:80": "probe",
                                         "tcp:198.51.100.11>192.0.2.10:80": "other"})
    row = st2[(st2["destination"] == "208.80.152.3")]
    assert list(row["kind"]) == ["probe"] and list(row["decided_by"]) == ["user"]
    tcp = st2[(st2["protocol"] == "tcp") & (st2["destination"] == "192.0.2.10")]
    assert dict(zip(tcp["source_list"], tcp["kind"].astype(str))) == {"198.51.100.10": "probe",
                                                                     "198.51.100.11": "other"}
    sel = select_probe_streams(probes, st2)
    assert "208.80.152.3" in set(sel["destination"].astype(str))
    assert not ((sel["protocol"] == "tcp") & (sel["source"] == "198.51.100.11")
                & (sel["destination"] == "192.0.2.10")).any()
    # explicit keys on the rule-based table: add the scan target, drop the ICMP stream
    sel2 = select_probe_streams(probes, st, keys=["tcp:192.168.1.63:443"], exclude=[("icmp", "192.0.2.10", None)])
    assert set(sel2["protocol"].astype(str)) == {"tcp"}
    assert ((sel2["destination"] == "192.168.1.63") & (sel2["port"] == 443)).sum() == 2
    assert len(select_probe_streams(probes, st, kinds=None)) == len(probes)
    with pytest.raises(ValueError):
        streams(df, probes, overrides={"tcp:1.2.3.4:80": "monitor"})


def test_stream_key_text():
    assert stream_key("tcp:192.0.2.10:80") == ("tcp", "192.0.2.10", 80)
    assert stream_key("icmpv6:2001:db8::1") == ("icmpv6", "2001:db8::1", None)
    assert stream_key("tcp:[2001:db8::1]:443") == ("tcp", "2001:db8::1", 443)
    assert stream_key("udp:198.51.100.10>192.0.2.10:33434") == ("udp", "198.51.100.10", "192.0.2.10", 33434)


def test_irregular_schedule_is_not_a_probe():
    """The same packets with the TCP requests' times replaced by a Poisson process: not a schedule."""
    df = probekit.read_capture(HEALTHY)
    probes = probekit.match_probes(df)
    rng = np.random.default_rng(5)
    tcp = (probes["protocol"] == "tcp").to_numpy()
    ts = probes["ts_ns"].to_numpy().copy()
    ts[tcp] = ts[tcp].min() + np.cumsum(rng.exponential(0.5e9, tcp.sum())).astype(np.int64)
    st = streams(df, probes.assign(ts_ns=ts))
    row = st[st["protocol"] == "tcp"].iloc[0]
    assert row["kind"] == "other" and row["on_schedule_pct"] < 80
    assert "under 80 % of gaps on schedule" in row["evidence"]
    assert set(st.loc[st["protocol"] == "icmp", "kind"]) == {"probe"}


def test_lost_requests_keep_the_schedule():
    """A target-side capture misses the requests lost on the way: gaps of two periods stay on schedule."""
    df = probekit.read_capture(HEALTHY)
    probes = probekit.match_probes(df)
    drop = np.random.default_rng(1).random(len(probes)) < 0.3
    st = streams(df, probes[~drop].reset_index(drop=True))
    assert set(st["kind"]) == {"probe"} and (st["on_schedule_pct"] == 100).all()


def test_empty_inputs():
    df = probekit.read_capture(HEALTHY)
    probes = probekit.match_probes(df).iloc[:0]
    st = streams(df, probes)
    check_table(st, STREAMS)
    assert st.empty
    ot = other_traffic(df, st)
    check_table(ot, OTHER_TRAFFIC)
    assert int(ot["packets"].sum()) == len(df)
    assert select_probe_streams(probes, st).empty


def test_tracer_runs_are_one_stream_and_scans_are_not():
    """tracer_ports: consecutive UDP ports to one destination with rising TTLs fold to the lowest port;
    the same ports at one TTL (a UDP port scan), a lone port and a run of two stay as they are."""
    from probekit.analysis.streams import tracer_ports
    rows = ([("192.0.2.10", 33434 + i, 1 + i // 2) for i in range(10)]        # traceroute: 2 per hop
            + [("192.0.2.10", 40000, 64), ("192.0.2.10", 33450, 3), ("192.0.2.10", 33451, 4)]
            + [("192.0.2.20", 1 + i, 64) for i in range(20)])                   # a port scan
    probes = pd.DataFrame({"protocol": pd.Categorical(["udp"] * len(rows)),
                           "destination": pd.Categorical([r[0] for r in rows]),
                           "port": pd.array([r[1] for r in rows], dtype="UInt16")})
    port, span = tracer_ports(probes, np.array([r[2] for r in rows], float))
    assert port[:10].tolist() == [33434] * 10 and span[:10].tolist() == [10] * 10
    assert port[10:13].tolist() == [40000, 33450, 33451] and span[10:13].tolist() == [1, 1, 1]
    assert port[13:].tolist() == list(range(1, 21)) and set(span[13:]) == {1}


def _synth_case(tmp_path_factory, name):
    from probekit.synth import synth
    path = tmp_path_factory.mktemp("st") / f"{name.replace('+', '_')}.pcap"
    synth(name, path, seed=4)
    return path


REFERENCE_CASES = ["lab/lab-mixed.pcap", "lab/lab-target-down.pcap", "tools/traceroute-udp.pcap",
                   "tools/mtr-udp.pcap", "tools/scamper-trace.pcap", "tools/nmap-syn.pcap", "healthy.pcap",
                   "mixed", "synth:background", "synth:background+eni-failure",
                   "synth:fragmenting-path+unreachable+background"]


@pytest.mark.parametrize("case", REFERENCE_CASES)
def test_streams_equal_the_pandas_reference(case, mixed, tmp_path_factory):
    """The compiled / vectorised streams table, packet kinds, selection and other traffic equal the plain
    pandas implementation (tests/reference_streams.py), fingerprints given or not."""
    import reference_streams as R
    from helpers.tables import table_diffs
    from probekit.analysis.streams import packet_kind_codes
    if case == "mixed":
        df, probes, _ = mixed
    else:
        path = _synth_case(tmp_path_factory, case[6:]) if case.startswith("synth:") else ROOT / "captures" / case
        df = probekit.read_capture(path)
        probes = probekit.match_probes(df)
    for fp in (None, probekit.fingerprint(df, probes)):
        want, got = R.streams(df, probes, fp), streams(df, probes, fp)
        check_table(got, STREAMS)
        assert table_diffs(want, got) == [], case
        assert [str(want[c].dtype) for c in want] == [str(got[c].dtype) for c in got]
    assert (R.packet_kind_codes(df, want) == packet_kind_codes(df, got)).all()
    for kinds in (("probe",), ("client", "other"), None):
        assert table_diffs(R.select_probe_streams(probes, want, kinds=kinds),
                           select_probe_streams(probes, got, kinds=kinds)) == []
    assert table_diffs(R.other_traffic(df, want), other_traffic(df, got)) == []


def test_drop_unused_equals_pandas():
    from probekit.analysis.streams import _drop_unused
    for vals, cats in ((["b", None, "d", "b"], ["a", "b", "c", "d"]), (["a", "b"], ["a", "b"]),
                       ([None, None], ["x"]), ([], ["x", "y"])):
        s = pd.Series(pd.Categorical(vals, categories=cats), name="source")
        pd.testing.assert_series_equal(_drop_unused(s), s.cat.remove_unused_categories())


KERNEL_CASES = ["tools/traceroute-udp.pcap", "tools/nmap-syn.pcap", "lab/lab-mixed.pcap", "healthy.pcap"]


@pytest.mark.parametrize("case", KERNEL_CASES)
def test_compiled_kernels_equal_plain_python(case, monkeypatch):
    """Every compiled kernel of the streams step, run as plain Python (``py_func``), gives the same
    streams table, packet kinds and selection; on the in-memory table (the session's cached groups) and on
    a chunked-walk-like slim table (frames with gaps: the merge of ascending frames)."""
    import probekit.analysis.streams as S
    from helpers.tables import table_diffs
    df = probekit.read_capture(ROOT / "captures" / case)
    probes = probekit.match_probes(df)
    fp = probekit.fingerprint(df, probes)
    slim = df.iloc[np.unique(probes["request_frame"].to_numpy("int64") - 1)].reset_index(drop=True)

    def run():
        fresh = probes.copy(deep=False)                 # no cached groups: the packed key per row
        st = S.streams(df, probes, fp)
        return (st, S.streams(df, fresh, fp), S.streams(slim, fresh, fp), S.packet_kind_codes(df, st),
                S.select_probe_streams(probes, st), S.select_probe_streams(fresh, st))
    compiled = run()
    for name in ("_group_stats", "stable_group_order", "_carried", "_frame_kinds", "_merge_rows"):
        kernel = getattr(S, name)
        if hasattr(kernel, "py_func"):
            monkeypatch.setattr(S, name, kernel.py_func)
    plain = run()
    for a, b in zip(compiled, plain):
        if isinstance(a, pd.DataFrame):
            assert table_diffs(a, b) == [], case
        else:
            assert np.array_equal(a, b), case
    st, fresh_st, slim_st = compiled[:3]
    assert table_diffs(st, fresh_st) == [], case           # cached groups or packed keys: one table
    assert table_diffs(compiled[4], compiled[5]) == [], case


def test_frame_rows_merge_equals_get_indexer():
    """Frames → rows by subtraction, merge, binary search or hash: what ``Index.get_indexer`` gives."""
    from probekit.analysis.streams import _frame_rows, _merge_rows
    rng = np.random.default_rng(5)
    for n, m in ((0, 5), (1, 3), (50, 200), (1000, 300)):
        fr = np.unique(rng.integers(1, 3 * n + 2, n))
        packets = pd.DataFrame({"frame": fr})
        for frames in (np.sort(rng.integers(0, 3 * n + 4, m)), rng.integers(0, 3 * n + 4, m)):
            want = pd.Index(fr).get_indexer(frames)
            assert np.array_equal(_frame_rows(packets, frames), want)
            if frames.size < 2 or (np.diff(frames) >= 0).all():
                for kernel in (_merge_rows, getattr(_merge_rows, "py_func", _merge_rows)):
                    out = np.empty(frames.size, np.int64)
                    kernel(fr.astype(np.int64), frames.astype(np.int64), out)
                    assert np.array_equal(out, want)
    contiguous = pd.DataFrame({"frame": np.arange(1, 11)})
    assert np.array_equal(_frame_rows(contiguous, np.array([1, 5, 10])), [0, 4, 9])
    shuffled = pd.DataFrame({"frame": np.array([5, 3, 9, 1])})
    assert np.array_equal(_frame_rows(shuffled, np.array([9, 2, 1])), [2, -1, 3])


def test_stable_group_order_is_a_stable_argsort():
    """The shared counting sort (streams and payload verdicts) is ``np.argsort(kind="stable")``,
    compiled and as plain Python."""
    from probekit.analysis._groups import stable_group_order
    rng = np.random.default_rng(11)
    for n, groups in ((0, 1), (1, 1), (7, 3), (1000, 1), (5000, 40), (5000, 5000)):
        gid = rng.integers(0, groups, n).astype(np.int64)
        want = np.argsort(gid, kind="stable")
        assert np.array_equal(stable_group_order(gid, groups), want), (n, groups)
        if hasattr(stable_group_order, "py_func"):
            assert np.array_equal(stable_group_order.py_func(gid, groups), want), (n, groups)
