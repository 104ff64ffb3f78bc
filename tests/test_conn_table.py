"""The connection table around the compiled state machine (issue #15) against the code it replaced
(tests/reference_conn_table.py, probekit at b77021f): the whole table equal, value for value and dtype
for dtype, on every shipped capture, on the public corpus (the Zeek tests' traces with their options),
on captures whose timestamps go back, on captures with corrupted bytes (bad checksums everywhere), and
on packets tables whose columns are not the reader's own dtypes; each compiled helper against a plain
implementation."""
from __future__ import annotations

import ipaddress
import re
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import probekit
import reference_conn_table as R
from conftest import REAL, real_captures, require_real_captures
from probekit.analysis import connections as C
from probekit.capture import checksums as CS
from probekit.schema import CONNECTIONS, check_table, packets_for_storage, packets_from_storage

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(p.name for p in (ROOT / "captures").iterdir() if p.suffix in (".pcap", ".pcapng"))
HTTP = frozenset({"80/tcp", "81/tcp", "631/tcp", "1080/tcp", "3128/tcp", "8000/tcp", "8080/tcp", "8888/tcp"})
# the option sets tests/test_zeek.py runs (zeek, zeek -b, zeek -C -b with HTTP's ports, local nets)
OPTIONS = [
    {},
    {"bare": True},
    {"check_checksums": False, "bare": True, "likely_server_ports": R.BARE_LIKELY_SERVER_PORTS | HTTP},
    {"check_checksums": False, "local_nets": (ipaddress.ip_network("125.190.109.0/24"),)},
    {"local_nets": (), "community_id": True, "timeouts_s": {"icmp_inactivity_timeout": 1.0}},
]


def same(packets: pd.DataFrame, **opts) -> pd.DataFrame:
    """connections() and the reference on the same table: equal in every value, dtype and category,
    and in the text they print to; returns the table."""
    got = C.connections(packets, **opts)
    want = R.connections(packets, **opts)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert list(got.dtypes.astype(str)) == list(want.dtypes.astype(str))
    assert got.to_csv(index=False) == want.to_csv(index=False)
    check_table(got, CONNECTIONS)
    return got


# ------------------------------------------------------------------------------ whole tables
@pytest.mark.parametrize("name", SHIPPED)
def test_equal_on_shipped_captures(name):
    df = probekit.read_capture(ROOT / "captures" / name)
    rows = 0
    for opts in OPTIONS:
        rows += len(same(df, **opts))
    assert rows > 0


def test_equal_on_the_zeek_traces():
    """Every trace of the Zeek tests' corpus with every option set they use."""
    require_real_captures()
    traces = sorted(p for p in (REAL / "zeek").rglob("*") if p.suffix in (".pcap", ".pcapng"))
    assert len(traces) > 20
    rows = 0
    for p in traces:
        df = probekit.read_capture(p)
        for opts in OPTIONS:
            rows += len(same(df, **opts))
    assert rows > 100


def test_equal_on_the_real_corpus():
    require_real_captures()
    n = 0
    for rel in real_captures():
        try:
            df = probekit.read_capture(REAL / rel)
        except probekit.CaptureError:
            continue  # the files libpcap refuses too (tests/helpers/corpus.py REFUSED)
        same(df)
        n += 1
    assert n > 50


# ------------------------------------------------------------------------- rewritten captures
def _records(path: Path) -> tuple[bytes, list[bytes]]:
    """A classic pcap's file header and its records (16-byte header + data), by hand."""
    raw = path.read_bytes()
    e = "<" if raw[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    out, off = [], 24
    while off + 16 <= len(raw):
        incl = struct.unpack(e + "I", raw[off + 8:off + 12])[0]
        out.append(raw[off:off + 16 + incl])
        off += 16 + incl
    return raw[:24], out


@pytest.mark.parametrize("name", ["healthy-vxlan-mirror.pcap", "port-closed.pcap", "eni-failure.pcap"])
def test_equal_when_timestamps_go_back(tmp_path, name):
    """Records shuffled in the file (times kept): the connections come out of the state machine out of
    time order, and the table is sorted, histories and tunnel parents with it."""
    head, recs = _records(ROOT / "captures" / name)
    order = np.random.default_rng(15).permutation(len(recs))
    p = tmp_path / name
    p.write_bytes(head + b"".join(recs[i] for i in order))
    df = probekit.read_capture(p)
    assert not df["ts_ns"].is_monotonic_increasing
    for opts in OPTIONS[:3]:
        got = same(df, **opts)
        assert got["ts_ns"].is_monotonic_increasing and len(got) > 1
        if name.startswith("healthy-vxlan"):
            assert got["tunnel_parents"].notna().all()


@pytest.mark.parametrize("name", ["healthy.pcap", "port-closed.pcap", "healthy-ipv6-target-side.pcap",
                                  "healthy-vxlan-mirror.pcap", "target-down.pcap"])
def test_equal_on_corrupted_bytes(tmp_path, name):
    """One byte in three records of four changed past the link header: IPv4 header and L4 checksums
    fail all over (the 'C' letters, dropped packets); both checksum passes and both tables agree."""
    head, recs = _records(ROOT / "captures" / name)
    rng = np.random.default_rng(len(name))
    out = []
    for r in recs:
        r = bytearray(r)
        if len(r) > 16 + 15 and rng.random() < 0.75:
            at = int(rng.integers(16 + 14, len(r)))
            r[at] ^= int(rng.integers(1, 256))
        out.append(bytes(r))
    p = tmp_path / name
    p.write_bytes(head + b"".join(out))
    df = probekit.read_capture(p)
    ip_ok, l4_ok = CS.checksums_ok(df)
    want_ip, want_l4 = R.checksums_ok(df)
    assert (ip_ok == want_ip).all() and (l4_ok == want_l4).all()
    assert (~l4_ok).sum() > 0  # the corruption reached the checksums (IPv4 header ones where there are)
    assert (~ip_ok).sum() > 0 or not (df["l3"] == "ipv4").any()
    rows = np.flatnonzero(np.arange(len(df)) % 3 != 1)
    for a, b in zip(CS.checksums_ok(df, rows), R.checksums_ok(df, rows)):
        assert (a == b).all()
    for opts in OPTIONS[:3]:
        same(df, **opts)


def test_equal_on_stored_and_converted_columns():
    """A packets table back from Parquet storage, and one whose nullable columns became float64 with
    NaN and whose tunnel kind became plain strings: the fallbacks read them as the reference does."""
    df = probekit.read_capture(ROOT / "captures" / "healthy-vxlan-mirror.pcap")
    back = packets_from_storage(packets_for_storage(df))
    back.attrs = dict(df.attrs)
    same(back)
    conv = df.copy()
    for name in ("ip_proto", "sport", "dport", "tcp_seq", "payload_len", "ip_len", "tcp_win", "ip_mf"):
        conv[name] = conv[name].astype("float64")
    conv["tunnel"] = conv["tunnel"].astype(object)
    conv.attrs = dict(df.attrs)
    got = same(conv)
    assert got["tunnel_parents"].notna().all()


def _hostile_frames():
    """test_zeek's bad input (a 4-tuple reused 10,000 times, absurd sequence jumps, a RST flood, timers)
    plus out-of-order data with more holes than the reassembler's block list keeps, keys whose packets
    interleave at the same instants, and UDP and ICMP between the same hosts."""
    import dpkt

    from helpers.frames import A4, B4, ether
    from test_zeek import PA, SA, A, S, _bad_input_frames, _tcp
    fr = _bad_input_frames()
    t0 = 1_700_000_500.0
    fr += [_tcp(t0, A4, B4, 44000, 80, S, 100), _tcp(t0 + 0.001, B4, A4, 80, 44000, SA, 700, 101),
           _tcp(t0 + 0.002, A4, B4, 44000, 80, A, 101, 701)]
    for k in reversed(range(0, 40, 3)):  # 14 segments, each after a hole, newest first
        fr.append(_tcp(t0 + 0.01 + (40 - k) * 0.001, A4, B4, 44000, 80, PA, 101 + k * 10, 701, b"d" * 10))
    fr.append(_tcp(t0 + 0.2, B4, A4, 80, 44000, A, 701, 101 + 400))
    for k in range(200):  # four keys in turn, two packets at each instant
        t = t0 + 1 + (k // 2) * 0.0001
        sp = 45000 + k % 4
        fr.append(_tcp(t, A4, B4, sp, 443, S if k < 4 else PA, 1 + k, 0 if k < 4 else 1, b"" if k < 4 else b"q"))

    def ip(p, proto, data):
        x = dpkt.ip.IP(src=A4 if p else B4, dst=B4 if p else A4, p=proto, ttl=64, data=data)
        x.len = len(x)
        return ether(bytes(x))
    for k in range(30):
        t = t0 + 2 + k * 0.5
        u = dpkt.udp.UDP(sport=5353 if k % 2 else 40053, dport=40053 if k % 2 else 5353, data=b"u" * k)
        u.ulen = len(u)
        fr.append((int(t), round((t % 1) * 1e6), ip(k % 2 == 0, 17, u)))
        e = dpkt.icmp.ICMP(type=8 if k % 2 else 0, data=dpkt.icmp.ICMP.Echo(id=7, seq=k, data=b"e" * 8))
        fr.append((int(t), round((t % 1) * 1e6) + 1, ip(k % 2 == 1, 1, e)))
    return sorted(fr, key=lambda f: (f[0], f[1]))


def test_equal_on_hostile_input(tmp_path):
    """The kernel key by key (one working slot) against the file-order kernel it replaced
    (tests/reference_conn_kernel.py) on input made to stress it: every table equal."""
    from helpers import capwriter as W
    p = tmp_path / "hostile.pcap"
    p.write_bytes(W.pcap(_hostile_frames()))
    df = probekit.read_capture(p)
    for opts in OPTIONS:
        got = same(df, **opts)
        assert (got["orig_p"] == 40000).sum() == 10_000
    holes = C.connections(df)
    holes = holes[holes["orig_p"] == 44000].iloc[0]
    assert holes.history.startswith("ShAD") and holes.missed_bytes > 0


def test_kernel_plain_python_on_hostile_input(tmp_path):
    """The same input through connections() as plain Python (NUMBA_DISABLE_JIT=1, in a subprocess: both
    option sets in one, so one start-up) and compiled (here)."""
    import os
    import subprocess
    import sys

    from helpers import capwriter as W
    from probekit.analysis import _conn_kernel as K
    if not hasattr(K.conn_kernel, "py_func"):
        pytest.skip("this process runs the kernels as plain Python too (no numba, or NUMBA_DISABLE_JIT)")
    p = tmp_path / "hostile.pcap"
    p.write_bytes(W.pcap(_hostile_frames()))
    code = ("import sys, probekit; from probekit.analysis.connections import connections; "
            "df = probekit.read_capture(sys.argv[1]); "
            "[connections(df, bare=b).to_pickle(f'{sys.argv[2]}{int(b)}.pkl') for b in (False, True)]")
    subprocess.run([sys.executable, "-c", code, str(p), str(tmp_path / "plain")], check=True,
                   env=dict(os.environ, NUMBA_DISABLE_JIT="1", PYTHONPATH=str(ROOT)))
    df = probekit.read_capture(p)
    for bare in (False, True):
        plain = pd.read_pickle(tmp_path / f"plain{int(bare)}.pkl")
        pd.testing.assert_frame_equal(plain, C.connections(df, bare=bare), check_exact=True)


def test_empty_and_nothing_kept():
    df = probekit.read_capture(ROOT / "captures" / "healthy.pcap")
    same(df.iloc[:0])
    arp = df.iloc[:5].copy()
    arp["l3"] = pd.Categorical(["arp"] * 5, categories=df["l3"].cat.categories.union(["arp"]))
    arp.attrs = dict(df.attrs)
    assert len(same(arp)) == 0


# ----------------------------------------------------------------- compiled helpers, one by one
def _rfc1071(data: bytes, s: int = 0) -> int:
    """RFC 1071's sum in plain Python: big-endian 16-bit words, an odd byte padded, folded."""
    if len(data) % 2:
        data += b"\0"
    for k in range(0, len(data), 2):
        s += (data[k] << 8) | data[k + 1]
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def test_checksum_sum_equals_rfc1071():
    rng = np.random.default_rng(1071)
    buf = rng.integers(0, 256, 4096, dtype=np.uint8)
    buf[100:300] = 0
    buf[300:500] = 255
    words = CS._words(buf)
    for _ in range(3000):
        o = int(rng.integers(0, 3900))
        n = int(rng.integers(0, 120))
        s = int(rng.integers(0, 1 << 20))
        want = _rfc1071(bytes(buf[o:o + n]), s)
        got = CS._sum16(buf, words, o, n, np.int64(s))
        assert got == want, (o, n, s)
        assert R._fold(R._sum16(buf, o, n, np.int64(s))) == want
    # all zero, all 0xFF, odd, empty, and segments ending at the buffer's last byte (the last word)
    for o, n in ((100, 64), (300, 64), (101, 63), (300, 0), (4096 - 64, 64), (4096 - 9, 9), (4096 - 8, 8),
                 (4096 - 7, 7)):
        assert CS._sum16(buf, words, o, n, np.int64(0)) == _rfc1071(bytes(buf[o:o + n]))
    for size in (0, 5, 8, 13):  # buffers shorter than a word, or not a whole number of words
        small = buf[:size].copy()
        assert CS._sum16(small, CS._words(small), 0, size, np.int64(0)) == _rfc1071(bytes(small))


def test_checksum_le_check_equals_rfc1071():
    """_verify's test, fold64(_le_sum + (v << 8)) == 0xFFFF, is RFC 1071's (sum of the big-endian words
    and v, folded, == 0xFFFF) for every segment and v: on random bytes, on segments whose checksum was
    made to verify (the True side), on all-zero and all-0xFF ones, odd lengths and the buffer's end."""
    rng = np.random.default_rng(1624)
    buf = rng.integers(0, 256, 4096, dtype=np.uint8)
    buf[100:300] = 0
    buf[300:500] = 255
    words = CS._words(buf)
    cases = [(int(rng.integers(0, 3900)), int(rng.integers(0, 120)), int(rng.integers(0, 1 << 17)))
             for _ in range(3000)]
    cases += [(100, 64, 0), (100, 63, 0), (300, 64, 0), (300, 0, 0), (4096 - 9, 9, 5), (4096 - 7, 7, 1),
              (4096 - 64, 64, 0xFFFF), (101, 40, 0)]
    seen_ok = 0
    for o, n, v in cases:
        for fix in (False, True) if n >= 2 else (False,):
            b = buf.copy()
            if fix:  # set the segment's first word so that the whole verifies
                b[o:o + 2] = 0
                c = (~_rfc1071(bytes(b[o:o + n]), v)) & 0xFFFF
                b[o], b[o + 1] = c >> 8, c & 0xFF
            want = _rfc1071(bytes(b[o:o + n]), v) == 0xFFFF
            w = CS._words(b)
            got = CS._fold64(CS._le_sum(b, w, o, n) + (np.uint64(v) << np.uint64(8))) == 0xFFFF
            assert got == want, (o, n, v, fix)
            seen_ok += want
    assert seen_ok > 1000
    for s in (0, 1, 0xFFFF, 0x10000, 0x1FFFE, (1 << 33) - 1, (1 << 40) + 12345, (1 << 63) - 1):
        assert CS._fold64(np.uint64(s)) == _rfc1071(b"", s)  # the four fixed folds are _fold's loop
    assert CS._fold64(np.uint64((1 << 64) - 1)) == 0xFFFF
    assert CS._le_sum(buf, words, 0, 0) == 0


def test_factorize_equals_pandas():
    rng = np.random.default_rng(7)
    for n, distinct in ((1, 1), (1000, 3), (200_000, 150_000), (300_000, 40_000)):
        keys = rng.integers(-(1 << 62), 1 << 62, distinct)[rng.integers(0, distinct, n)]
        keys[: min(n, 5)] = [-1, 0, 1 << 62, -(1 << 63), (1 << 63) - 1][: min(n, 5)]
        assert (C._key_codes(keys) == pd.factorize(keys)[0]).all()


def test_rstos0_equals_conn_zeek_regex():
    pattern = re.compile(r"\^?S[^HAFGIQ]*R.*")
    rng = np.random.default_rng(0)
    letters = np.frombuffer(b"^ShHaAdDfFrRcCgGtTwWiIqQ", np.uint8)
    hist = ["", "S", "R", "SR", "^SR", "^S", "S^R", "SaR", "SAR", "ShR", "SrR", "^^SR", "Sr", "SdDrR"]
    hist += [bytes(letters[rng.integers(0, len(letters), rng.integers(0, 8))]).decode() for _ in range(5000)]
    data = np.frombuffer("".join(hist).encode(), np.uint8)
    off = np.zeros(len(hist) + 1, np.int64)
    np.cumsum([len(h) for h in hist], out=off[1:])
    for i, h in enumerate(hist):
        assert C._rstos0(data, off[i], off[i + 1]) == bool(pattern.fullmatch(h)), h


def test_uids_equal_reference():
    rng = np.random.default_rng(3)
    parts = [rng.integers(0, 1 << 62, 5000) for _ in range(5)] + [rng.integers(0, 1 << 63, 5000).astype(np.uint64)]
    assert (C._uids(parts) == R._uids(parts)).all()


def _kinds_by_groupby(conns: pd.DataFrame) -> pd.DataFrame:
    """What session.Capture.connection_kinds computed before (the definition): a pandas groupby."""
    proto = conns["proto"]
    tcp = (proto == "tcp").to_numpy(bool, na_value=False) if isinstance(proto.dtype, pd.CategoricalDtype) \
        else (proto.astype(str) == "tcp").to_numpy()
    c = conns[["conn_state", "history", "reset_by"]][tcp]
    return (c.groupby(["conn_state", "history", "reset_by"], observed=True, dropna=False).size()
            .rename("connections").reset_index())


def test_connection_kinds_equal_groupby():
    rng = np.random.default_rng(3)
    n = 5000
    states = pd.Categorical(rng.choice(C._STATE_CATS + [None], n), categories=C._STATE_CATS)
    hist = pd.array(rng.choice(["S", "ShR", "^hA", "Sh", "SThR", "", "D", None], n), dtype="str")
    rby = pd.Categorical(rng.choice(["orig", "resp", None], n), categories=["orig", "resp"])
    proto = pd.Categorical(rng.choice(["tcp", "udp", "icmp"], n, p=[0.7, 0.2, 0.1]), categories=["tcp", "udp", "icmp"])
    synth = pd.DataFrame({"proto": proto, "conn_state": states, "history": hist, "reset_by": rby})
    real = C.connections(probekit.read_capture(ROOT / "captures" / "eni-failure.pcap"))
    for conns in (synth, synth.astype({"proto": object, "history": object}), synth.iloc[:0], synth[synth.proto != "tcp"],
                  real, real.iloc[::-1]):
        got, want = C.connection_kinds(conns), _kinds_by_groupby(conns)
        pd.testing.assert_frame_equal(got, want, check_exact=True)
        assert list(got.dtypes.astype(str)) == list(want.dtypes.astype(str))
    assert len(C.connection_kinds(synth)) > 50 and C.connection_kinds(synth)["connections"].sum() == (proto == "tcp").sum()


def test_select_verified_compiled_equals_its_plain_python_run():
    """The selecting pass (selection, checksums, 5-tuples, with its prefetch hints) compiled and as
    plain Python (its py_func: _jit.prefetch is a no-op there) on a shipped capture: every output equal."""
    if not hasattr(C._select_verified, "py_func"):
        pytest.skip("this process runs the kernels as plain Python (no numba, or NUMBA_DISABLE_JIT)")
    df = probekit.read_capture(ROOT / "captures" / "target-down.pcap")
    raw = {name: CS.raw_column(df, name) for name in C._PACKET_COLUMNS}
    got = []
    for f in (C._select_verified, C._select_verified.py_func):
        t = C._Tuple(raw, df, len(df))
        rows, l4 = np.empty(len(df), np.int64), np.empty(len(df), bool)
        with CS.one_file_words(df) as bw:
            k = f(*bw, raw["ts_ns"][1], raw["tcp_flags"][1], raw["sport"][1], raw["icmp_type"][1],
                  *CS.verify_columns(df), rows, l4, *t.args)
        t.cut(k)
        got.append((k, rows[:k], l4[:k], t))
    (k1, r1, l1, t1), (k2, r2, l2, t2) = got
    assert k1 == k2 > 0 and (r1 == r2).all() and (l1 == l2).all()
    for name in ("kind", "side", "sport", "dport", "key", "bcast"):
        assert (getattr(t1, name) == getattr(t2, name)).all(), name


@pytest.mark.parametrize("block", [1, 7, 4096])
def test_the_state_machine_in_blocks_equals_one_pass(tmp_path, monkeypatch, block):
    """The state machine run a block of packets at a time (its working state carried from block to
    block: a connection spanning blocks, a key ending at a block's edge, timers and reuse) against the
    file-order reference kernel's table, on the hostile input (a 4-tuple reused 10,000 times, RST
    floods, holes, interleaved keys) and a shipped capture, with every option set."""
    from helpers import capwriter as W
    p = tmp_path / "hostile.pcap"
    p.write_bytes(W.pcap(_hostile_frames()))
    monkeypatch.setattr(C, "_KERNEL_BLOCK", block)
    for df in (probekit.read_capture(p), probekit.read_capture(ROOT / "captures" / "eni-failure.pcap")):
        assert len(df) > 2 * block or block == 4096
        for opts in OPTIONS:
            same(df, **opts)
