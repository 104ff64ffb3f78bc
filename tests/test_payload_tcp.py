"""Analyses II: payload randomness, TCP state in Zeek's terms (against Zeek's own baselines), and prober
fingerprints."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import dpkt
import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

import probekit
from helpers import capwriter as W
from helpers.corpus import ORACLE, REAL, require_real_captures
from helpers.frames import A4, B4, ether
from probekit import plots
from probekit.analysis.payload import ENT_MIN_BYTES

ROOT = Path(__file__).resolve().parents[1]
CAPTURES = ROOT / "captures"


# ------------------------------------------------------------------------------------ Zeek
def zeek_log(path: Path) -> list[dict]:
    fields, rows = None, []
    for line in path.read_text().splitlines():
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
        elif line and not line.startswith("#") and fields:
            rows.append(dict(zip(fields, line.split("\t"))))
    return rows


# (baseline conn.log, trace, zeek ignored checksums?, zeek in bare mode?)
CONN_LOGS = [
    ("opt.basic/conn.log", "wikipedia.pcap", False, False),
    # The same trace under a bare-mode btest (zeek -b: no protocol analyzers, so no likely server
    # ports): the connection that starts with a SYN/ACK from port 80 is not flipped ('H', not '^h').
    ("scripts.base.frameworks.logging.field-extension/conn.log", "wikipedia.pcap", False, True),
    ("core.tcp.missing-syn/conn.log", "tcp/missing-syn.pcap", False, False),
    ("core.history-flip/conn.log", "tcp/missing-syn.pcap", False, False),
    # Every TCP checksum in this trace is wrong (tshark agrees), yet Zeek's baseline shows whole
    # handshakes: its btest ran with checksums ignored (zeek -C), so we compare the same way.
    ("core.vlan-mpls/conn.log", "mixed-vlan-mpls.pcap", True, False),
]


@pytest.mark.parametrize("log,trace,ignore,bare", CONN_LOGS, ids=[c[0].split("/")[0] for c in CONN_LOGS])
def test_conn_state_and_history_equal_zeek(log, trace, ignore, bare):
    require_real_captures()
    expected = [r for r in zeek_log(ORACLE / "zeek" / log) if r.get("proto") == "tcp"]
    assert expected
    got = probekit.tcp_connections(probekit.read_capture(REAL / "zeek" / trace), check_checksums=not ignore,
                                   **({"likely_server_ports": frozenset()} if bare else {}))
    for r in expected:
        g = got[(got["orig_h"] == r["id.orig_h"]) & (got["orig_p"] == int(r["id.orig_p"]))
                & (got["resp_h"] == r["id.resp_h"]) & (got["resp_p"] == int(r["id.resp_p"]))]
        assert len(g) == 1, r
        assert (str(g["conn_state"].iloc[0]), g["history"].iloc[0]) == (r["conn_state"], r["history"]), r
    assert len(got) == len(expected)


def test_rst_behavior_baseline():
    require_real_captures()
    out = (ORACLE / "zeek" / "scripts.base.protocols.conn.conn_state-RST-behavior" / "out").read_text().splitlines()
    expected = [tuple(x.strip() for x in ln.split(",")) for ln in out if not ln.startswith("#")]
    traces = ["tcp/single-rst.pcap", "tcp/syn-then-rst.pcap", "tcp/syn-then-ack-then-rst.pcap",
              "tcp/syn-then-stuff-then-rst.pcap"]
    for trace, (history, state) in zip(traces, expected):
        c = probekit.tcp_connections(probekit.read_capture(REAL / "zeek" / trace))
        assert (c["history"].tolist(), c["conn_state"].astype(str).tolist()) == ([history], [state]), trace


def test_bad_checksum_syn_baseline():
    require_real_captures()
    rows = [ln.split("\t") for ln in (ORACLE / "zeek" / "core.tcp.bad-checksum-syn" / "conn.log").read_text().splitlines()
            if ln and not ln.startswith("#") and not ln.startswith("uid")]
    history, state = rows[0][3], rows[0][4]
    c = probekit.tcp_connections(probekit.read_capture(REAL / "zeek" / "tcp/syn-bad.pcap"))
    assert (c["history"].iloc[0], str(c["conn_state"].iloc[0])) == (history, state) == ("C", "OTH")
    assert c["orig_pkts"].iloc[0] == 0, "a packet with a bad checksum is not processed further"


def test_originator_of_a_reordered_handshake_as_zeek():
    require_real_captures()
    line = (ORACLE / "zeek" / "scripts.policy.protocols.conn.community-id-logging-flipped" / "conn.log.cut").read_text()
    oh, op, rh, rp = next(ln for ln in line.splitlines() if not ln.startswith("#")).split("\t")[:4]
    c = probekit.tcp_connections(probekit.read_capture(REAL / "zeek" / "tcp/handshake-reorder.pcap"))
    assert (c["orig_h"].iloc[0], c["orig_p"].iloc[0], c["resp_h"].iloc[0], c["resp_p"].iloc[0]) == (oh, int(op), rh, int(rp))


@pytest.mark.parametrize("name,state,history", [
    ("healthy.pcap", "RSTO", "SThR"),   # Zeek counts data on a SYN as a retransmission: the 'T'
    ("port-closed.pcap", "REJ", "STr"),
    ("healthy-ipv6-target-side.pcap", "RSTO", "SThR"),
])
def test_probe_patterns_in_zeek_terms(name, state, history):
    df = probekit.read_capture(CAPTURES / name)
    c = probekit.tcp_connections(df)
    top = c.groupby(["conn_state", "history"], observed=True).size().idxmax()
    assert top == (state, history)
    main = c[(c["conn_state"] == state) & (c["history"] == history)]
    assert (main["syn_payload"] == 36).all() and (main["syns"] == 1).all()
    if state == "RSTO":
        assert (main["reset_by"] == "orig").all() and not main["reset_ack_from_responder"].any()
        if "target" not in name:
            assert np.allclose(main["reset_after_synack_us"], 80, atol=1)
            answered = df.probekit.probes().query("protocol == 'tcp' and outcome == 'answered'")
            assert np.allclose(main["handshake_rtt_us"], answered["rtt_us"].median(), rtol=0.5)
    else:
        assert main["reset_ack_from_responder"].all() and (main["reset_by"] == "resp").all()


def test_target_down_is_s0():
    c = probekit.tcp_connections(probekit.read_capture(CAPTURES / "target-down.pcap"))
    late = c[c["ts_ns"] > c["ts_ns"].min() + 121 * 10**9]
    assert (late["conn_state"] == "S0").all() and len(late) > 300


# ----------------------------------------------------------------------------- payloads
def test_ent_known_values():
    uniform = bytes(range(256)) * 20
    e = probekit.ent(uniform)
    assert e["entropy_bits"] == pytest.approx(8.0) and e["chi2"] == pytest.approx(0.0) and e["mean"] == 127.5
    small = probekit.ent(b"\x00" * 100)
    assert small["chi2_p"] is None and str(ENT_MIN_BYTES) in small["note"] and small["entropy_bits"] == 0
    rnd = probekit.ent(np.random.default_rng(1).integers(0, 256, 600_000, dtype=np.uint8).tobytes())
    assert abs(rnd["pi"] - np.pi) < 0.02 and abs(rnd["serial_correlation"]) < 0.01 and rnd["chi2_p"] > 0.001


def _verdict(payloads, ts=None):
    probes = pd.DataFrame({"protocol": "icmp", "destination": "192.0.2.10", "port": pd.NA, "source": "a",
                           "ts_ns": ts if ts is not None else 1_767_225_600 * 10**9 + np.arange(len(payloads)) * 10**9})
    return probekit.payload_verdicts(probes, pd.Series(payloads)).iloc[0]


@pytest.mark.parametrize("make,verdict", [
    (lambda r: [r.integers(0, 256, 48, dtype=np.uint8).tobytes() for _ in range(400)], "random"),
    (lambda r: [bytes(48)] * 400, "constant"),
    (lambda r: [bytes(range(i % 200, i % 200 + 48)) for i in range(400)], "patterned"),
    (lambda r: [r.integers(0, 256, 48, dtype=np.uint8).tobytes()] * 400, "repeated-random"),
    # biased: bytes drawn from 0..127 only, so every top bit is 0: monobit must fail
    (lambda r: [r.integers(0, 128, 48, dtype=np.uint8).tobytes() for _ in range(400)], "patterned"),
    (lambda r: [b"abcdefghijklmnopqrstuvwabcdefghi"] * 50, "patterned"),
])
def test_payload_verdicts(make, verdict):
    v = _verdict(make(np.random.default_rng(7)))
    assert v["verdict"] == verdict, v["evidence"]


def test_random_payload_passes_and_biased_fails_at_the_stated_level():
    r = np.random.default_rng(3)
    good = pd.Series([r.integers(0, 256, 48, dtype=np.uint8).tobytes() for _ in range(2000)])
    t = probekit.payload_tests(good, pd.Series(np.zeros(2000, np.int64)))
    for col in ("monobit_p", "runs_p"):
        rate = (t[col] < 0.01).mean()
        assert rate < 0.01 + 3 * np.sqrt(0.01 * 0.99 / 2000), (col, rate)
    assert (t["entropy_norm"] > 0.85).all() and (t["entropy_bits"] <= np.log2(48)).all()
    bad = pd.Series([bytes(r.integers(0, 2, 48) * 255) for _ in range(200)])  # bytes 0x00 or 0xff: long runs
    tb = probekit.payload_tests(bad, pd.Series(np.zeros(200, np.int64)))
    assert (tb["runs_p"] < 0.01).mean() > 0.5


def test_shipped_and_real_payload_verdicts():
    df = probekit.read_capture(CAPTURES / "healthy.pcap")
    pr = df.probekit.probes()
    v = probekit.payload_verdicts(pr, probekit.request_payloads(df, pr))
    assert (v["verdict"] == "random").all() and (v["duplicate_share"] == 0).all()
    assert set(v["length"]) == {48, 36} and (v["timestamp_share"] == 0).all()
    require_real_captures()
    df = probekit.read_capture(REAL / "zeek/icmp/5-pings.pcap")
    pr = df.probekit.probes()
    tests = probekit.payload_tests(probekit.request_payloads(df, pr), pr["ts_ns"])
    assert (tests["timestamp"] == "timeval64-le").all() and tests["fill"].str.startswith("iputils").all()


# -------------------------------------------------------------------------- fingerprints
def _icmp_frames(payloads, ident=77, same_ipid=False):
    out = []
    for i, p in enumerate(payloads):
        icmp = dpkt.icmp.ICMP(type=8, data=dpkt.icmp.ICMP.Echo(id=ident, seq=i, data=p))
        ip = dpkt.ip.IP(src=A4, dst=B4, p=1, ttl=64, id=4242 if same_ipid else i, data=icmp)
        out.append((1_700_000_000 + i, 0, ether(bytes(ip))))
    return out


def _syn_frames(payloads, win, sport_fn, seq_fn):
    out = []
    for i, p in enumerate(payloads):
        tcp = dpkt.tcp.TCP(sport=sport_fn(i), dport=80, seq=seq_fn(i), flags=dpkt.tcp.TH_SYN, win=win, data=p)
        out.append((1_700_000_000 + i, 0, ether(bytes(dpkt.ip.IP(src=A4, dst=B4, p=6, ttl=64, id=i, data=tcp)))))
    return out


@pytest.mark.parametrize("frames,tool", [
    (lambda r: _icmp_frames([bytes(48)] * 30), "fping"),
    (lambda r: _icmp_frames([b"abcdefghijklmnopqrstuvwabcdefghi"] * 30), "windows-ping"),
    (lambda r: _icmp_frames([r.integers(0, 256, 48, dtype=np.uint8).tobytes()] * 30, same_ipid=True), "nping"),
    (lambda r: _syn_frames([b"X" * 36] * 30, 512, lambda i: 2000 + i, lambda i: 1000 * i), "hping3"),
    (lambda r: _syn_frames([r.integers(0, 256, 36, dtype=np.uint8).tobytes()] * 30, 1480, lambda i: 5555,
                           lambda i: 777), "nping"),
])
def test_fingerprints_of_other_tools(tmp_path, frames, tool):
    p = tmp_path / "t.pcap"
    p.write_bytes(W.pcap(frames(np.random.default_rng(1))))
    df = probekit.read_capture(p)
    f = probekit.fingerprint(df, df.probekit.probes())
    assert f["tool"].tolist() == [tool], f["evidence"].tolist()


def test_fingerprints_of_shipped_and_real():
    df = probekit.read_capture(CAPTURES / "healthy.pcap")
    f = probekit.fingerprint(df, df.probekit.probes())
    assert (f["tool"] == "cwnm-like").all() and len(f) == 4
    assert f["evidence"].str.contains("2 source\\(s\\) evenly").all()
    require_real_captures()
    df = probekit.read_capture(REAL / "zeek/icmp/5-pings.pcap")
    assert probekit.fingerprint(df, df.probekit.probes())["tool"].tolist() == ["iputils-ping"]
    df = probekit.read_capture(REAL / "zeek/nmap-vsn.pcap")   # a version scan: connect() SYNs with the kernel's options
    f = probekit.fingerprint(df, df.probekit.probes())
    assert set(f.loc[f["protocol"] == "tcp", "tool"]) == {"tcp-connect"}
    # its DNS lookups are UDP probes at one TTL: no tracer, named as such
    assert set(f.loc[f["protocol"] == "udp", "tool"]) == {"unknown"}
    assert f.loc[f["protocol"] == "udp", "evidence"].str.contains("no tracer").all()


def test_cli_payload_tcp_fingerprint_json():
    for cmd, check in (("payload", lambda rows: {r["verdict"] for r in rows} == {"random"}),
                       ("tcp", lambda rows: {r["conn_state"] for r in rows} >= {"REJ"}),
                       ("fingerprint", lambda rows: {r["tool"] for r in rows} == {"cwnm-like"})):
        p = subprocess.run([sys.executable, "-m", "probekit", cmd, str(CAPTURES / "port-closed.pcap"), "--json"],
                           capture_output=True, text=True, check=True)
        assert check(json.loads(p.stdout)), cmd


def test_payload_and_tcp_plots_draw_their_tables():
    """Each figure holds what its table says (counted in the artists), with its labels."""
    df = probekit.read_capture(CAPTURES / "healthy.pcap")
    pr = df.probekit.probes()
    pl = probekit.request_payloads(df, pr)
    tests = probekit.payload_tests(pl, pr["ts_ns"])
    conns = probekit.tcp_connections(df)

    ax = plots.plot_byte_histogram(pl)
    nbytes = sum(len(b) for b in pl)
    (bars,) = ax.containers  # the ±2σ band is a patch too, not a bar
    assert len(bars) == 256 and sum(b.get_height() for b in bars) == nbytes > 0
    assert np.array_equal([b.get_height() for b in bars],
                          np.bincount(np.frombuffer(b"".join(pl), np.uint8), minlength=256))
    assert ax.get_title() == f"Payload bytes ({nbytes} bytes)" and ax.get_xlabel() == "byte value"

    ax = plots.plot_entropy(pr, tests)
    assert sum(len(ln.get_xdata()) for ln in ax.lines) == len(pr)
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == sorted(pr["source"].astype(str).unique())

    ax = plots.plot_payload_raster(pl)
    (img,) = ax.images
    rows = [b for b in pl.tolist()[:400] if b]
    assert img.get_array().shape == (len(rows), max(len(b) for b in rows))
    assert np.array_equal(img.get_array()[0, :len(rows[0])], np.frombuffer(rows[0], np.uint8))

    ax = plots.plot_rst_delay(conns)
    delay = next(c for c in conns.columns if c.endswith("after_synack_us"))
    d = conns.dropna(subset=[delay])
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sum(int(re.search(r"n=(\d+)", t).group(1)) for t in legend) == len(d) > 0
    drawn = sum(p.get_height() for p in ax.patches)
    assert 0.98 * len(d) <= drawn <= len(d)  # the bins stop a little past the 99th percentile

    c = conns.iloc[0]
    ax = plots.plot_ladder(df, (c.orig_h, c.orig_p), (c.resp_h, c.resp_p))
    between = ((df["src"].astype(str).isin([c.orig_h, c.resp_h])) & (df["dst"].astype(str).isin([c.orig_h, c.resp_h]))
               & (df["sport"].isin([c.orig_p, c.resp_p])) & (df["dport"].isin([c.orig_p, c.resp_p]))).fillna(False)
    arrows = [t for t in ax.texts if t.get_text() == ""]  # annotate() with an arrow and no text
    labels = [t.get_text() for t in ax.texts if t.get_text()]
    assert len(arrows) == len(labels) == int(between.sum()) >= 3
    assert labels[0].startswith("SYN len=") and [t.get_text() for t in ax.get_xticklabels()] == [
        f"{c.orig_h}:{c.orig_p}", f"{c.resp_h}:{c.resp_p}"]


def _figure_data(ax):
    """What a payload figure shows: bar heights, image pixels, texts and title."""
    return ([b.get_height() for c in ax.containers for b in c], [np.asarray(i.get_array()) for i in ax.images],
            [t.get_text() for t in ax.texts], ax.get_title())


def _same_figure(a, b):
    (bars_a, img_a, txt_a, title_a), (bars_b, img_b, txt_b, title_b) = _figure_data(a), _figure_data(b)
    assert bars_a == bars_b and txt_a == txt_b and title_a == title_b and len(img_a) == len(img_b)
    for x, y in zip(img_a, img_b):
        assert x.shape == y.shape and np.array_equal(x, y, equal_nan=True)


def test_payload_plots_draw_the_same_from_the_buffer_as_from_bytes():
    """The session's payload buffer (no bytes object per payload) draws the figure the Series of bytes
    draws: the same 256 bar heights and the same raster pixels, empty payloads skipped, for the first
    rows only; and a Series drawn as before (rows from its own bytes)."""
    from probekit.analysis.payload import PayloadBuffer
    cap = probekit.open_capture(CAPTURES / "healthy.pcap", cloudwatch=False)
    buf, ser = cap.payload_buffer, cap.payloads
    assert len(buf) == len(ser) == len(cap.probes) and (ser.map(len) > 0).all()
    _same_figure(plots.plot_byte_histogram(buf), plots.plot_byte_histogram(ser))
    first = int(np.flatnonzero(ser.map(len).to_numpy() > 0)[0])
    for rows in (first + 7, len(ser) + 5):                                 # some rows; all and more
        a, b = plots.plot_payload_raster(buf, max_rows=rows), plots.plot_payload_raster(ser, max_rows=rows)
        _same_figure(a, b)
        want = [np.frombuffer(x, np.uint8) for x in ser.tolist()[:rows] if x]
        (img,) = a.images
        got = np.asarray(img.get_array())
        assert got.shape == (len(want), max(map(len, want)))
        assert all(np.array_equal(got[i, :len(w)], w) and np.isnan(got[i, len(w):]).all() for i, w in enumerate(want))
    plt = matplotlib.pyplot
    plt.close("all")
    # ragged rows with empties between, and nothing at all
    blobs = pd.Series([b"", b"\x00\xff", b"", b"abc", b"\x07", b""], dtype=object)
    hand = PayloadBuffer.from_series(blobs)
    for rows in (2, 6):
        _same_figure(plots.plot_payload_raster(hand, max_rows=rows), plots.plot_payload_raster(blobs, max_rows=rows))
    _same_figure(plots.plot_byte_histogram(hand), plots.plot_byte_histogram(blobs))
    empty = PayloadBuffer(np.zeros(0, np.uint8), np.zeros(1, np.int64), pd.RangeIndex(0))
    for ax in (plots.plot_byte_histogram(empty), plots.plot_payload_raster(empty)):
        assert [t.get_text() for t in ax.texts] == ["no payload bytes"]
    plt.close("all")
