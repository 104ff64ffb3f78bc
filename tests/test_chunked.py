"""The chunked driver gives the in-memory session's numbers: every shipped capture walked 1,000 packets at a
time (so probes, their replies, RSTs, ICMP errors and data segments are split across chunks) yields the same
requests with their ICMP-error outcomes, ICMP errors, streams table, selected probes, per-period metrics
(with the errors each period drew), timing, sources, sizes, payload verdicts and fingerprints as
``probekit.open_capture`` reading it whole."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import probekit
from probekit.drive import chunked as C
from test_payload_speed import SHIPPED

ROOT = Path(__file__).resolve().parents[1]


CAPTURES = [r for r in SHIPPED if not r.startswith("captures/tools/")]   # the tools' recordings are a few frames


def in_memory(path, period_s=30, **kw):
    """The in-memory session (the packets table read whole): stream selection, ICMP errors, reassembly."""
    return probekit.open_capture(path, period_s=period_s, cloudwatch=False, chunked=False, **kw)


def every_request(path, period_s=30):
    """Per-period metrics of every request stream without ICMP-error outcomes: what the bounded walk
    (keep_probes=False) counts."""
    cap = probekit.open_capture(path, period_s=period_s, all_streams=True, cloudwatch=False, chunked=False)
    cap.__dict__["all_probes"] = probekit.match_probes(cap.packets)
    cap.__dict__["periods"] = probekit.period_metrics(cap.probes, period_s)
    cap.__dict__["probe_periods"] = probekit.period_metrics(cap.probes, period_s, by=probekit.schema.STREAM_KEYS)
    return cap


def assert_same(a: pd.DataFrame, b: pd.DataFrame, what: str):
    assert list(a.columns) == list(b.columns), what
    assert len(a) == len(b), (what, len(a), len(b))
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_exact=True,
                                  obj=what)


def _splits(pr: pd.DataFrame, chunk: int) -> bool:
    """Some probe's reply or RST is in a later chunk than its request."""
    req = (pr["request_frame"] - 1) // chunk
    later = [((pr[c].fillna(pr["request_frame"]) - 1) // chunk) != req for c in ("reply_frame", "reset_frame")]
    return bool((later[0] | later[1]).any())


@pytest.mark.parametrize("rel", CAPTURES)
def test_chunked_equals_in_memory(rel):
    path = ROOT / rel
    cap = in_memory(path)
    # 1,000 packets per chunk; where that splits no probe (small captures), also the first smaller size that does
    n = len(cap.packets)
    sizes = [c for c in (1000, 333, 97, 31) if n > c and _splits(cap.all_probes, c)][:1]
    assert sizes, "some chunk size splits a probe from its reply or RST"
    for chunk in sorted({1000, sizes[0]} if n > 1000 else {sizes[0]}, reverse=True):
        fallbacks = C.narrow_fallbacks
        res = C.chunked_analyses(path, chunk_packets=chunk, window_bytes=64 << 10)
        assert C.narrow_fallbacks == fallbacks, "a step read a probe column not in its list (drive/chunked.py)"
        assert res.packets == len(cap.packets) and res.chunks >= -(-len(cap.packets) // chunk) > 1
        assert_same(res.probes, cap.probes, "probes")
        assert res.probes.attrs["capture_end_ns"] == cap.all_probes.attrs["capture_end_ns"]
        assert res.probes.attrs.get("stream_kinds") == cap.probes.attrs.get("stream_kinds")
        for name in ("all_probes", "icmp_errors", "streams", "datagrams", "periods", "probe_periods", "timing",
                     "gaps", "shares", "balance", "alternation", "source_quality", "source_rate",
                     "payload_verdicts", "fingerprints"):
            assert_same(res.tables[name], getattr(cap, name), name)
        assert_same(res.tables["size_changes"], cap.size_changes(), "size_changes")
        assert_same(res.tables["mtu"], cap.mtu, "mtu")
        kinds = cap.streams["kind"].astype(str)
        assert (kinds == "probe").any() or len(cap.all_probes) == 0


def test_chunked_streams_errors_and_overrides():
    """The messy lab capture (a scan, a client, fragments, ICMP errors): chunks split them all; the
    selection follows overrides and all_streams as in memory."""
    path = ROOT / "captures" / "lab" / "lab-mixed.pcap"
    base = in_memory(path)
    st = base.streams
    assert {"scan", "client", "probe"} <= set(st["kind"].astype(str)) and len(base.icmp_errors) > 0
    assert len(base.datagrams) > 0 and len(base.probes) < len(base.all_probes)
    client = st[st["kind"].astype(str) == "client"].iloc[0]
    key = f"{client.protocol}:{client.destination}:{int(client.port)}"
    for kw in (dict(stream_overrides={key: "probe"}), dict(all_streams=True)):
        cap = in_memory(path, **kw)
        res = C.chunked_analyses(path, chunk_packets=97, window_bytes=16 << 10, all_streams=kw.get("all_streams", False),
                                 stream_overrides=kw.get("stream_overrides"))
        assert_same(res.probes, cap.probes, f"probes {kw}")
        assert_same(res.tables["streams"], cap.streams, f"streams {kw}")
        assert_same(res.tables["periods"], cap.periods, f"periods {kw}")
        assert len(res.probes) > len(base.probes)


@pytest.mark.parametrize("rel", CAPTURES[:4])
def test_periods_alone_in_bounded_memory(rel):
    """keep_probes=False: only the per-period tables, kept period by period."""
    path = ROOT / rel
    cap = every_request(path, period_s=60)
    res = C.chunked_analyses(path, chunk_packets=1000, period_s=60, analyses=("periods", "probe_periods"),
                             keep_probes=False)
    assert res.probes is None
    assert_same(res.tables["periods"], cap.periods, "periods")
    assert_same(res.tables["probe_periods"], cap.probe_periods, "probe_periods")


def test_chunks_are_the_packets_table():
    path = ROOT / "captures" / "lossy.pcapng"
    whole = probekit.read_capture(path)
    parts = list(C.chunk_source(path, 777))
    assert all(len(p) <= 777 for p in parts) and len(parts) > 2
    cat = pd.concat([p.assign(src=p["src"].astype(str), dst=p["dst"].astype(str)) for p in parts], ignore_index=True)
    ref = whole.assign(src=whole["src"].astype(str), dst=whole["dst"].astype(str))
    pd.testing.assert_frame_equal(cat, ref)


def test_pcap_windows_cut_records(tmp_path):
    """Windows far smaller than a record's neighbours: every record is whole, offsets absolute."""
    path = ROOT / "captures" / "healthy.pcap"
    whole = probekit.read_capture(path)
    parts = list(C.chunk_source(path, 500, window_bytes=1000))
    got = pd.concat([p.assign(src=p["src"].astype(str), dst=p["dst"].astype(str)) for p in parts], ignore_index=True)
    pd.testing.assert_frame_equal(got, whole.assign(src=whole["src"].astype(str), dst=whole["dst"].astype(str)))


def test_cut_pcap_salvages_like_the_reader(tmp_path):
    src = (ROOT / "captures" / "healthy.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(src[:len(src) * 2 // 3])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = probekit.read_capture(cut)
    parts = list(C.chunk_source(cut, 1000, window_bytes=4096))
    assert sum(len(p) for p in parts) == len(whole)
    assert any("salvaged" in n for n in parts[-1].attrs["notes"])


@pytest.mark.parametrize("rel", ["captures/lab/lab-mixed.pcap", "captures/target-down.pcap",
                                 "captures/lab/lab-target-down.pcap"])
def test_chunked_session_equals_in_memory_session(rel, tmp_path, monkeypatch):
    """A session forced chunked (1,000 packets per chunk) has every table the report saves equal to the
    in-memory session's (CloudWatch audit, path MTU, other traffic and the summary included); saved and
    loaded again, it answers without walking the file; the packet-level views raise a clear error."""
    from probekit.errors import ProbekitError
    from probekit.session import _PACKET_LEVEL, _TABLES
    path = ROOT / rel
    mem = probekit.open_capture(path, chunked=False)
    ch = probekit.open_capture(path, chunked=True, chunk_packets=1000)
    assert _same_summary(ch.summary(), mem.summary()) and ch.summary()["chunked"] and not mem.summary()["chunked"]
    for name in _TABLES:
        if name in _PACKET_LEVEL:
            continue
        a, b = getattr(ch, name), getattr(mem, name)
        if isinstance(b, pd.DataFrame):
            assert_same(a, b, name)
        else:
            assert a == b, name
    assert ch.not_applicable("packets") and mem.not_applicable("packets") is None
    for name in _PACKET_LEVEL:
        with pytest.raises(ProbekitError, match="chunk by chunk"):
            getattr(ch, name)
    ch.save_tables(tmp_path)

    def walk(*a, **kw):
        raise AssertionError("walked the capture again")

    monkeypatch.setattr(C, "chunk_source", walk)
    again = probekit.open_capture(path, chunked=True, chunk_packets=1000, tables=tmp_path)
    for name in _TABLES:
        if name not in _PACKET_LEVEL:
            getattr(again, name)
    assert _same_summary(again.summary(), mem.summary()) and "_chunked" not in again.__dict__


def _same_summary(a: dict, b: dict) -> bool:
    """Summaries equal but for the chunked flag (NaN equal to NaN)."""
    import json
    norm = [json.loads(json.dumps({k: v for k, v in d.items() if k != "chunked"}, default=str).replace("NaN", "null"))
            for d in (a, b)]
    return norm[0] == norm[1]


def test_cli_chunked_gives_the_in_memory_output(capsys, monkeypatch):
    """`--chunked always` on the analysis commands: the in-memory output (probe streams selected, ICMP
    errors attributed); a command that needs the packets table says so in one line; `metrics --bounded`
    is the per-period walk of every request stream."""
    from probekit import cli
    monkeypatch.setattr(C, "CHUNK_PACKETS", 1000)
    path = str(ROOT / "captures" / "lab" / "lab-mixed.pcap")

    def run(*argv):
        rc = cli.main(list(argv))
        out, err = capsys.readouterr()
        return rc, out, err
    for cmd in (["metrics", "--csv"], ["metrics", "--per-probe", "--csv"], ["probes", "--csv"], ["streams", "--csv"],
                ["timing", "--json"], ["mtu", "--csv"]):
        rc0, mem, _ = run(*cmd, path, "--chunked", "never")
        rc1, ch, _ = run(*cmd, path, "--chunked", "always")
        assert rc0 == rc1 == 0 and ch == mem and len(mem) > 100, cmd
    rc, out, err = run("tcp", path, "--chunked", "always")
    assert rc == 1 and "chunk by chunk" in err and "Traceback" not in err
    rc, out, err = run("metrics", path, "--bounded", "--csv")
    assert rc == 0 and "--bounded" in err
    want = every_request(path).periods
    got = pd.read_csv(__import__("io").StringIO(out))
    assert len(got) == len(want) and int(got["sent"].sum()) == int(want["sent"].sum())
    assert "unreachable" not in got.columns and int(got["sent"].sum()) > len(cap_probes(path))


def cap_probes(path):
    return in_memory(path).probes


def test_per_probe_figures_draw_a_stated_stretch_of_a_chunked_capture(monkeypatch):
    """Millions of ticks take matplotlib minutes and gigabytes: a chunked capture's per-probe figures draw
    the first PLOT_PROBES probes and say so; the in-memory session draws every probe."""
    import probekit.session as S
    monkeypatch.setattr(S, "PLOT_PROBES", 100)
    path = ROOT / "captures" / "healthy.pcap"
    ch = probekit.open_capture(path, chunked=True, chunk_packets=1000)
    mem = probekit.open_capture(path, chunked=False)
    assert_same(ch.plot_probes, ch.probes.iloc[:100], "window")
    note = ch.plot_window_note()
    assert note and f"first 100 of {len(ch.probes):,} probes" in note
    assert mem.plot_probes is mem.probes and mem.plot_window_note() is None


@pytest.mark.parametrize("rel", ["captures/healthy.pcap", "captures/lab/lab-mixed.pcap"])
def test_report_tables_of_a_chunked_capture_hold_no_probes_table(rel, tmp_path, monkeypatch):
    """What ``probekit report`` saves for a chunked capture (``skip=REPORT_SKIPS``): no table with a row per
    probe but the stretch per-probe figures draw. A session on those tables answers what the notebooks ask
    (which themes apply, the stretch and its inter-arrivals, the window note) as the in-memory session
    does, without walking the capture again; asked for a skipped table, it says so in one error."""
    import probekit.session as S
    from probekit.errors import ProbekitError
    monkeypatch.setattr(S, "PLOT_PROBES", 50)
    path = ROOT / rel
    mem = in_memory(path)
    ch = probekit.open_capture(path, chunked=True, chunk_packets=1000, cloudwatch=False)
    folder = ch.save_tables(tmp_path, skip=S.REPORT_SKIPS)
    saved = {f.stem for f in folder.glob("*.pkl")}
    assert not saved & set(S.REPORT_SKIPS) and {"probe_window", "inter_arrival_window", "probe_facts"} <= saved
    assert len(mem.probes) > 50                                    # the window is a stretch of them

    def walk(*a, **kw):
        raise AssertionError("walked the capture again")

    monkeypatch.setattr(C, "chunk_source", walk)
    again = probekit.open_capture(path, chunked=True, chunk_packets=1000, cloudwatch=False, tables=tmp_path)
    n = len(mem.probes)
    assert again.probe_facts == dict(probes=n, protocols=sorted(set(mem.probes["protocol"].astype(str))),
                                     sources=int(mem.probes["source"].nunique()),
                                     inter_arrivals=int(mem.inter_arrivals["ia_s"].notna().sum()))
    for theme in ("probes", "timing", "metrics", "tcp", "sources", "payload"):
        assert again.not_applicable(theme) == mem.not_applicable(theme), theme
    assert again.has_probes("tcp") == mem.has_probes("tcp") and again.has_probes("icmp") == mem.has_probes("icmp")
    assert_same(again.plot_probes, mem.probes.iloc[:50], "window")
    # the stretch's inter-arrivals are the in-memory table's rows for those probes: in each source stream
    # (the table is sorted by stream, then time) the first as many rows as the stretch has of that stream
    keys = list(probekit.schema.SOURCE_STREAM_KEYS)
    ia = mem.inter_arrivals
    both = pd.concat([mem.probes[keys].iloc[:50], ia[keys]], ignore_index=True)
    gid = both.groupby(keys, observed=True, dropna=False).ngroup().to_numpy()
    in_window = np.bincount(gid[:50], minlength=gid.max() + 1)
    rank = ia.groupby(keys, observed=True, dropna=False).cumcount().to_numpy()
    assert_same(again.plot_inter_arrivals, ia[rank < in_window[gid[50:]]], "inter-arrivals of the window")
    assert f"first 50 of {n:,} probes" in again.plot_window_note()
    for name in S.REPORT_SKIPS:
        with pytest.raises(ProbekitError, match=f"the '{name}' table was not saved"):
            getattr(again, name)
    assert "_chunked" not in again.__dict__ and mem.plot_inter_arrivals is mem.inter_arrivals


TOOLS = sorted(r for r in SHIPPED if r.startswith("captures/tools/"))


@pytest.mark.parametrize("rel", TOOLS)
def test_chunked_tool_labels_on_the_tools_recordings(rel):
    """The lab's recordings of each tool (a few frames each): walked 3 and 1,000 packets at a time, the
    probes, the streams (kind and tool) and the fingerprints (tool and evidence, read from each stream's
    first request payload as in memory) are the in-memory session's."""
    path = ROOT / rel
    cap = in_memory(path)
    for chunk in (3, 1000):
        res = C.chunked_analyses(path, chunk_packets=chunk, window_bytes=1 << 12)
        assert_same(res.probes, cap.probes, "probes")
        assert_same(res.tables["streams"], cap.streams, "streams")
        assert_same(res.tables["fingerprints"], cap.fingerprints, "fingerprints")


@pytest.mark.parametrize("rel", ["captures/lab/lab-port-closed.pcap", "captures/tools/traceroute-udp.pcap"])
def test_fingerprints_group_by_group(rel, monkeypatch):
    """Fingerprints made one (protocol, source, destination) group at a time (a tracer's ports stay in their
    group) are the in-memory session's, rows in its order."""
    path = ROOT / rel
    cap = in_memory(path)
    monkeypatch.setattr(C, "FINGERPRINT_ROWS", 1)
    calls = []
    real = C._fingerprints_of
    monkeypatch.setattr(C, "_fingerprints_of", lambda p, *a: calls.append(len(p)) or real(p, *a))
    res = C.chunked_analyses(path, chunk_packets=1000, window_bytes=64 << 10)
    groups = cap.all_probes.groupby(["protocol", "source", "destination"], observed=True).ngroups
    # all_probes' (for the streams), then probes' when they are not every request
    assert len(calls) >= groups and sum(calls) in (len(cap.all_probes), len(cap.all_probes) + len(cap.probes))
    assert_same(res.tables["fingerprints"], cap.fingerprints, "fingerprints")
    assert_same(res.tables["streams"], cap.streams, "streams")


@pytest.mark.parametrize("rel,longest", [("captures/lab/lab-mixed.pcap", 40), ("captures/target-down.pcap", 300)])
def test_payload_verdicts_stream_by_stream(rel, longest, monkeypatch):
    """Verdicts made in pieces of a few payloads (as on a huge capture: every stream longer than a piece,
    judged from running counts carried from piece to piece, its payloads read from the file piece by piece)
    are the in-memory session's, rows in its order."""
    path = ROOT / rel
    cap = in_memory(path)
    # longer than 128 payloads: cut into parts of numpy's pairwise tree
    assert len(cap.payload_verdicts) > 2 and cap.payload_verdicts["probes"].max() == longest
    monkeypatch.setattr(C.payload, "PIECE_ROWS", 5)
    pieces = []
    real = C._LazyPayloads.piece
    monkeypatch.setattr(C._LazyPayloads, "piece", lambda self, rows: pieces.append(len(rows)) or real(self, rows))
    res = C.chunked_analyses(path, chunk_packets=1000, window_bytes=64 << 10)
    assert len(pieces) > len(cap.payload_verdicts) and max(pieces) <= 5, "read in pieces"
    for name in ("payload_verdicts", "fingerprints", "streams"):
        assert_same(res.tables[name], getattr(cap, name), name)


@pytest.mark.parametrize("rel", ["captures/lab/lab-mixed.pcap", "captures/lossy.pcapng"])
def test_lazy_payloads_read_the_file_window_by_window(rel, monkeypatch):
    """The verdicts' payload bytes read with ordinary reads in small windows (rows in any order, repeated,
    without payload) are the packets accessor's bytes of the same rows."""
    from probekit.capture.payloads import payload_buffer
    path = ROOT / rel
    df = probekit.read_capture(path)
    rows = np.random.default_rng(1).integers(0, len(df), 3000)
    lazy = C._LazyPayloads(str(path), df["payload_off"].to_numpy("int64", na_value=-1),
                           df["payload_caplen"].to_numpy("int32", na_value=0))
    monkeypatch.setattr(C, "READ_WINDOW", 700)           # payloads cut by windows' ends
    data, offsets, pos = lazy.piece(rows)
    want, want_off = payload_buffer(df, rows)
    assert lazy.plain and (np.diff(offsets) > 0).sum() > 100
    assert np.array_equal(offsets, want_off) and np.array_equal(data, want) and np.array_equal(pos, np.arange(3000))


def test_spilled_request_columns_read_back_as_kept():
    """The request columns spilled to a temporary file during the walk (batch by batch) read back, in the
    probes' order and for any subset of rows, as the joined table's columns (values, <NA>, dtypes); the
    payloads read through the spill are those of arrays; the folder goes with the last view."""
    import os
    path = ROOT / "captures/lab/lab-mixed.pcap"
    df = probekit.read_capture(path)
    cols = C._REQ_COLS
    rng = np.random.default_rng(5)
    cuts = np.sort(rng.choice(np.arange(1, len(df)), 4, replace=False))
    spill = C._Spill(cols)
    for part in np.split(np.arange(len(df)), cuts):
        spill.add(df.iloc[part][list(cols)].reset_index(drop=True))
    spill.add(df.iloc[:0][list(cols)])                       # an empty batch
    order = rng.permutation(len(df))
    view = spill.finish(order)
    want = df[list(cols)].iloc[order].reset_index(drop=True)
    pd.testing.assert_frame_equal(view.frame(cols), want, check_exact=True)
    rows = np.sort(rng.choice(len(df), 300, replace=False))
    sub = view.take(rows)
    assert len(sub) == 300
    pd.testing.assert_frame_equal(sub.frame(cols), want.iloc[rows].reset_index(drop=True), check_exact=True)
    pd.testing.assert_frame_equal(C._req_frame(sub, cols[:3], np.array([4, 2])),
                                  want.iloc[rows[[4, 2]]][list(cols[:3])].reset_index(drop=True), check_exact=True)
    assert len(sub.column("ttl", np.array([], np.int64))) == 0
    lazy = C._LazyPayloads(str(path), spilled=sub)
    arrays = C._LazyPayloads(str(path), want["payload_off"].to_numpy("int64", na_value=-1)[rows],
                             want["payload_caplen"].to_numpy("int32", na_value=0)[rows])
    assert len(lazy) == len(arrays) and np.array_equal(lazy.lengths, arrays.lengths)
    some = np.arange(0, 300, 7)
    for a, b in zip(lazy.subset(some).piece(np.arange(43)), arrays.subset(some).piece(np.arange(43))):
        assert np.array_equal(a, b)
    folder = spill.dir
    del spill, view, sub, lazy
    import gc
    gc.collect()
    assert not os.path.exists(folder)


@pytest.mark.parametrize("rel", ["captures/lab/lab-mixed.pcap", "captures/target-down.pcap", "captures/lossy.pcapng"])
def test_stream_steps_read_their_columns_of_the_parked_table(rel):
    """The probes table is parked in a temporary file while the stream-selection steps and the analyses run:
    the balance test, streams.streams and the analyses get only the columns listed for them, and none asks
    for another (no fallback to the whole table); the tables are the in-memory session's."""
    path = ROOT / rel
    before = C.narrow_fallbacks
    res = C.chunked_analyses(path, chunk_packets=1000, window_bytes=64 << 10)
    assert C.narrow_fallbacks == before
    cap = in_memory(path)
    for name in ("streams", "balance", "fingerprints", "payload_verdicts", "periods", "probe_periods", "timing"):
        assert_same(res.tables[name], getattr(cap, name), name)
    assert_same(res.tables["all_probes"], cap.all_probes, "all_probes")
    assert_same(res.probes, cap.probes, "probes")
    for key in ("vantage", "timeout_s", "capture_end_ns", "stream_kinds"):
        assert res.probes.attrs.get(key) == cap.probes.attrs.get(key), key
