"""The matcher's row classing kernel (match._classify) and the probes table's tie-run reorder equal their
numpy references: the vectorised code they replaced, kept here."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from probekit.analysis import match
from probekit.capture.checksums import raw_column
from probekit.protocol import IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, reset_isn, syn_ack_isn

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "captures").glob("*.pcap*") if "truth" not in p.name)


def classify_numpy(ts_na, proto, proto_na, typ, typ_na, id_na, seq_na, flags, flags_na, tcp_seq, tcp_ack, n_classes):
    """match._events' classing before the kernel, verbatim: (cls, counts, tseq)."""
    has_ts = ~ts_na
    icmp_ok = ~id_na & ~seq_na & has_ts & ~typ_na & ~proto_na
    ic = np.flatnonzero(icmp_ok & ((proto == IPPROTO_ICMP) | (proto == IPPROTO_ICMPV6)))
    tc = np.flatnonzero((proto == IPPROTO_TCP) & ~proto_na & ~flags_na & has_ts)
    cls = np.full(ts_na.size, -1, np.int8)
    t = typ[ic].astype(np.int64)
    if t.size and (t.min() < 0 or t.max() > 255):
        ic, t = ic[(t >= 0) & (t <= 255)], t[(t >= 0) & (t <= 255)]
    ci = match._ICMP_CLASSES[np.where(proto[ic] == IPPROTO_ICMP, 0, 256) + t]
    ct = match._tcp_classes(flags.dtype)[flags[tc]]
    cls[ic], cls[tc] = ci, ct
    counts = np.bincount(ci[ci >= 0], minlength=n_classes) + np.bincount(ct[ct >= 0], minlength=n_classes)
    tcp_ev = ct >= 0
    tc, tcp_cls = tc[tcp_ev], ct[tcp_ev]
    tseq = tcp_seq[tc].astype(np.int64) & 0xFFFFFFFF
    by_ack = (tcp_cls == match._SYN_ACKS) | (tcp_cls == match._RST_ACKS)
    tseq[by_ack] = syn_ack_isn(tcp_ack[tc[by_ack]])
    rst = tcp_cls == match._RESETS
    tseq[rst] = reset_isn(tseq[rst])
    return cls, counts, tseq


def _classify(*a, kernel=match._classify):
    n = a[0].size
    cls, counts, tseq = np.empty(n, np.int8), np.zeros(11, np.int64), np.empty(n, np.int64)
    k = kernel(*a, match._ICMP_CLASSES, match._tcp_classes(a[7].dtype), cls, counts, tseq)
    return cls, counts, tseq[:k]


def _check(args, plain=False):
    """The kernel (and, with ``plain``, its plain-Python run) equal to the numpy reference."""
    want = classify_numpy(*args, 11)
    runs = [match._classify] + ([getattr(match._classify, "py_func", match._classify)] if plain else [])
    for kernel in runs:
        got = _classify(*args, kernel=kernel)
        for w, g, name in zip(want, got, ("cls", "counts", "tseq")):
            assert w.dtype == g.dtype and np.array_equal(w, g), name


@pytest.mark.parametrize("seed", range(4))
def test_classify_equals_numpy_on_random_rows(seed):
    """Random protocols, types, flags (uint8 and uint16), sequence numbers at the 2^32 edges, and missing
    fields everywhere."""
    rng = np.random.default_rng(seed)
    n = 20000
    na = lambda p: rng.random(n) < p
    proto = rng.choice(np.array([1, 6, 17, 58, 47, 0], np.uint8), n)
    typ = rng.choice(np.array([0, 8, 128, 129, 3, 11, 255], np.uint8), n)
    flags = rng.integers(0, 256 if seed % 2 else 1 << 12, n).astype(np.uint8 if seed % 2 else np.uint16)
    edge = np.array([0, 1, 2, 0xFFFFFFFE, 0xFFFFFFFF], np.uint32)
    seq = np.where(rng.random(n) < 0.3, rng.choice(edge, n), rng.integers(0, 1 << 32, n)).astype(np.uint32)
    ack = np.where(rng.random(n) < 0.3, rng.choice(edge, n), rng.integers(0, 1 << 32, n)).astype(np.uint32)
    _check((na(0.05), proto, na(0.05), typ, na(0.1), na(0.05), na(0.05), flags, na(0.05), seq, ack), plain=True)


def test_classify_equals_numpy_on_shipped_captures():
    import probekit
    for rel in SHIPPED:
        try:
            p = probekit.open_capture(ROOT / rel, cloudwatch=False).packets
        except Exception:   # the captures made to fail reading
            continue
        raw = {c: raw_column(p, c) for c in ("ts_ns", "ip_proto", "icmp_type", "icmp_id", "icmp_seq", "tcp_flags")}
        seq, ack = (match._raw(p[c], 0) for c in ("tcp_seq", "tcp_ack"))
        _check((raw["ts_ns"][1], *raw["ip_proto"], *raw["icmp_type"], raw["icmp_id"][1], raw["icmp_seq"][1],
                *raw["tcp_flags"], seq, ack))


@pytest.mark.parametrize("seed", range(6))
def test_time_order_moves_the_rows_a_lexsort_moves(seed):
    """(rows, src) of match._time_order applied in place equal ``a[np.lexsort((frame, ts))]``: times in
    order with runs of ties out of frame order, and times that go back."""
    rng = np.random.default_rng(seed)
    n = 3000
    ts = np.sort(rng.integers(0, n // (1 + seed % 3 * 20), n)).astype(np.int64)
    if seed >= 4:
        ts[rng.integers(0, n, 5)] -= 7   # times that go back
    frame = rng.permutation(n).astype(np.int64)
    if seed == 0:
        ts, frame = np.arange(n, dtype=np.int64), np.arange(n, dtype=np.int64)
    moved = match._time_order(ts, frame)
    order = np.lexsort((frame, ts))
    if moved is None:
        assert (order == np.arange(n)).all()
        return
    rows, src = moved
    for a in (ts.copy(), frame.copy(), rng.random(n)):
        want = a[order]
        assert np.array_equal(match._moved(a, moved), want)
        a[rows] = a[src]
        assert np.array_equal(a, want)


def test_used_categories_is_remove_unused_categories():
    import pandas as pd
    rng = np.random.default_rng(2)
    for ncat, n, neg in ((5, 1000, False), (300, 5000, False), (300, 5000, True), (4, 0, False), (200, 50, True)):
        cats = pd.Index([f"10.0.{i // 256}.{i % 256}" for i in range(ncat)], dtype=object)
        codes = rng.integers(-1 if neg else 0, ncat // 2 + 1, n)
        got = match._used_categories(codes, cats)
        want = pd.Categorical.from_codes(codes, categories=cats).remove_unused_categories()
        assert list(got.categories) == list(want.categories) and np.array_equal(got.codes, want.codes)
        assert got.codes.dtype == want.codes.dtype
