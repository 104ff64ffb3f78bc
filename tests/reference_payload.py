"""REFERENCE (the implementation before issue 16, kept verbatim for the equality tests).

Payload randomness of probe requests: entropy, the ``ent`` test set, NIST SP 800-22 monobit and runs,
duplicates, embedded timestamps and known fills, and a verdict per stream with its evidence."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import special, stats

import probekit.accessor  # noqa: F401 - registers df.probekit

__all__ = ["request_payloads", "payload_tests", "ent", "payload_verdicts", "ENT_MIN_BYTES"]

ENT_MIN_BYTES = 1280          # 256 cells × 5 expected per cell: below this the chi-square is not valid
WINDOWS_FILL = b"abcdefghijklmnopqrstuvwabcdefghi"
TS_WINDOW_S = 86_400          # a decoded timestamp within a day of the frame time counts as one
ALPHA = 0.01


def request_payloads(packets: pd.DataFrame, probes: pd.DataFrame) -> pd.Series:
    """Captured payload bytes of each probe's request (indexed like ``probes``)."""
    rows = probes["request_frame"].to_numpy("int64") - 1
    if not len(rows):
        return pd.Series([], index=probes.index, dtype=object, name="payload")
    sub = packets.iloc[rows]
    sub.attrs = packets.attrs
    return pd.Series(sub.probekit.payloads().tolist(), index=probes.index, dtype=object, name="payload")


def _entropy(counts: np.ndarray, n: int) -> float:
    p = counts[counts > 0] / n
    return float(-(p * np.log2(p)).sum()) if n else float("nan")


def payload_tests(payloads: pd.Series, ts_ns: pd.Series) -> pd.DataFrame:
    """Per payload: length, entropy (bits/byte) and normalised by log2(min(n, 256)), NIST monobit and runs
    p-values (payloads of >= 100 bits), an embedded timestamp layout and a known fill, if any.
    Vectorised over payloads of equal length."""
    n_all = len(payloads)
    out = pd.DataFrame({"length": np.zeros(n_all, np.int64), "entropy_bits": np.nan, "entropy_norm": np.nan,
                        "monobit_p": np.nan, "runs_p": np.nan, "timestamp": None, "fill": None}, index=payloads.index)
    if n_all == 0:
        return out
    blobs = payloads.tolist()
    lengths = np.fromiter((len(b) for b in blobs), np.int64, n_all)
    frame_s = ts_ns.to_numpy("int64") / 1e9
    out["length"] = lengths
    res = {k: np.full(n_all, np.nan) for k in ("entropy_bits", "entropy_norm", "monobit_p", "runs_p")}
    ts_name = np.full(n_all, None, dtype=object)
    fill = np.full(n_all, None, dtype=object)
    for L in np.unique(lengths):
        if L == 0:
            continue
        rows = np.flatnonzero(lengths == L)
        for lo in range(0, rows.size, 20000):
            r = rows[lo:lo + 20000]
            m = np.frombuffer(b"".join(blobs[i] for i in r), np.uint8).reshape(r.size, L)
            h = _entropy_rows(m)
            res["entropy_bits"][r] = h
            res["entropy_norm"][r] = h / (math.log2(min(L, 256)) if L > 1 else 1.0)
            if L * 8 >= 100:
                res["monobit_p"][r], res["runs_p"][r] = _nist_rows(m)
            ts_name[r] = _timestamp_rows(m, frame_s[r])
            fill[r] = _fill_rows(m)
    for k, v in res.items():
        out[k] = v
    out["timestamp"] = ts_name
    out["fill"] = fill
    return out


def _entropy_rows(m: np.ndarray) -> np.ndarray:
    n, L = m.shape
    counts = np.zeros((n, 256), np.int32)
    np.add.at(counts, (np.repeat(np.arange(n), L), m.ravel()), 1)
    p = counts / L
    with np.errstate(divide="ignore", invalid="ignore"):
        return -(np.where(p > 0, p * np.log2(p), 0.0)).sum(axis=1)


def _nist_rows(m: np.ndarray):
    bits = np.unpackbits(m, axis=1).astype(np.int8)
    nb = bits.shape[1]
    ones = bits.sum(axis=1).astype(np.float64)
    mono = special.erfc(np.abs(2 * ones - nb) / math.sqrt(nb) / math.sqrt(2))
    pi = ones / nb
    v = 1 + (bits[:, 1:] != bits[:, :-1]).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        runs = special.erfc(np.abs(v - 2 * nb * pi * (1 - pi)) / (2 * math.sqrt(2 * nb) * pi * (1 - pi)))
    runs = np.where(np.abs(pi - 0.5) >= 2 / math.sqrt(nb), 0.0, runs)
    return mono, runs


_TS_LAYOUTS = [("<i8", 8, 1e-6, "timeval64-le"), ("<i8", 8, 1e-9, "timespec64-le"), ("<u4", 4, 1e-6, "timeval32-le"),
               (">i8", 8, 1e-6, "timeval64-be"), (">i8", 8, 1e-9, "timespec64-be"), (">u4", 4, 1e-6, "timeval32-be"),
               ("<u4", 4, 1e-9, "timespec32-le"), (">u4", 4, 1e-9, "timespec32-be")]


def _timestamp_rows(m: np.ndarray, frame_s: np.ndarray) -> np.ndarray:
    """Name of the first timeval/timespec layout at the payload start within a day of the frame time."""
    out = np.full(m.shape[0], None, dtype=object)
    for dt, size, unit, name in _TS_LAYOUTS:
        if m.shape[1] < 2 * size:
            continue
        both = np.ascontiguousarray(m[:, :2 * size]).view(dt)
        sec, frac = both[:, 0].astype(np.float64), both[:, 1].astype(np.float64)
        ok = (frac >= 0) & (frac < (1e6 if unit == 1e-6 else 1e9)) & (np.abs(sec + frac * unit - frame_s) <= TS_WINDOW_S)
        out[ok & (out == None)] = name  # noqa: E711 - elementwise test on an object array
    return out


def _fill_rows(m: np.ndarray) -> np.ndarray:
    n, L = m.shape
    out = np.full(n, None, dtype=object)
    const = (m == m[:, :1]).all(axis=1)
    for i in np.flatnonzero(const):
        out[i] = "zeros" if m[i, 0] == 0 else f"constant 0x{m[i, 0]:02x}"
    if L > 1:
        inc = (np.diff(m.astype(np.int16), axis=1) % 256 == 1).all(axis=1) & ~const
        out[inc] = "incrementing"
    if L > 17:
        ip = (m[:, 16] == 16) & (np.diff(m[:, 16:].astype(np.int16), axis=1) % 256 == 1).all(axis=1)
        out[ip & (out == None)] = "iputils (timeval + 0x10, 0x11, ...)"  # noqa: E711
    win = np.frombuffer((WINDOWS_FILL * (L // len(WINDOWS_FILL) + 1))[:L], np.uint8)
    out[(m == win).all(axis=1)] = "windows alphabet"
    return out


def ent(data: bytes) -> dict:
    """The ``ent`` program's tests on a byte string: entropy (bits/byte), chi-square against uniform
    bytes with its p-value (None below ENT_MIN_BYTES, with the reason), arithmetic mean, Monte Carlo π
    from 24-bit coordinate pairs, and the serial correlation coefficient."""
    a = np.frombuffer(data, np.uint8)
    n = a.size
    out = {"bytes": int(n)}
    if n == 0:
        return out | {"entropy_bits": None, "chi2": None, "chi2_p": None, "mean": None, "pi": None,
                      "serial_correlation": None, "note": "no bytes"}
    counts = np.bincount(a, minlength=256)
    out["entropy_bits"] = _entropy(counts, n)
    if n >= ENT_MIN_BYTES:
        chi2, p = stats.chisquare(counts)
        out["chi2"], out["chi2_p"], out["note"] = float(chi2), float(p), None
    else:
        out["chi2"] = out["chi2_p"] = None
        out["note"] = f"chi-square needs >= {ENT_MIN_BYTES} bytes (5 expected per byte value), have {n}"
    out["mean"] = float(a.mean())
    m = n // 6
    if m:
        g = a[:m * 6].reshape(m, 6).astype(np.float64)
        x = (g[:, 0] * 65536 + g[:, 1] * 256 + g[:, 2]) / 16777215.0
        y = (g[:, 3] * 65536 + g[:, 4] * 256 + g[:, 5]) / 16777215.0
        out["pi"] = float(4.0 * np.mean(x * x + y * y <= 1.0))
    else:
        out["pi"] = None
    if n > 1:
        u = a.astype(np.float64)
        v = np.roll(u, -1)
        num = n * (u * v).sum() - u.sum() ** 2
        den = n * (u * u).sum() - u.sum() ** 2
        out["serial_correlation"] = float(num / den) if den else None
    else:
        out["serial_correlation"] = None
    return out


def payload_verdicts(probes: pd.DataFrame, payloads: pd.Series, by=("protocol", "destination", "port", "source"),
                     alpha: float = ALPHA) -> pd.DataFrame:
    """Per stream: a verdict — random, repeated-random, patterned, constant, timestamped, empty — with
    the evidence (ent results on all its bytes, pass rates of the per-payload NIST tests, duplicates)."""
    tests = payload_tests(payloads, probes["ts_ns"])
    df = probes[list(by)].assign(payload=payloads, **{c: tests[c] for c in tests.columns})
    rows = []
    for key, g in df.groupby(list(by), observed=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        data = b"".join(g["payload"].tolist())
        e = ent(data)
        n = len(g)
        distinct = g["payload"].nunique()
        dup_share = 1 - distinct / n if n else np.nan
        ts_share = g["timestamp"].notna().mean() if n else np.nan
        fills = g["fill"].dropna()
        fill = fills.mode().iloc[0] if len(fills) else None
        tested = g["monobit_p"].dropna()
        mono_pass = float((tested >= alpha).mean()) if len(tested) else np.nan
        runs_pass = float((g["runs_p"].dropna() >= alpha).mean()) if len(tested) else np.nan
        verdict, why = _verdict(n, e, dup_share, ts_share, fill, len(fills) / n if n else 0, mono_pass, runs_pass,
                                g["entropy_norm"].mean(), alpha)
        rows.append((*key, n, int(g["length"].median()) if n else 0, distinct, dup_share, ts_share, fill,
                     g["entropy_bits"].mean(), g["entropy_norm"].mean(), mono_pass, runs_pass, e["entropy_bits"],
                     e["chi2"], e["chi2_p"], e["mean"], e["pi"], e["serial_correlation"], e.get("note"), verdict, why))
    return pd.DataFrame(rows, columns=list(by) + [
        "probes", "length", "distinct", "duplicate_share", "timestamp_share", "fill", "entropy_mean",
        "entropy_norm_mean", "monobit_pass", "runs_pass", "ent_entropy", "ent_chi2", "ent_chi2_p", "ent_mean",
        "ent_pi", "ent_serial_corr", "ent_note", "verdict", "evidence"])


def _verdict(n, e, dup_share, ts_share, fill, fill_share, mono_pass, runs_pass, hnorm, alpha):
    if n == 0 or not e.get("bytes"):
        return "empty", "no payload bytes"
    if ts_share >= 0.9:
        return "timestamped", f"{ts_share:.0%} of payloads start with a timestamp near the frame time"
    if fill is not None and fill_share >= 0.9:
        kind = "constant" if fill.startswith(("zeros", "constant")) else "patterned"
        return kind, f"{fill_share:.0%} of payloads are a known fill: {fill}"
    if dup_share >= 0.5 and hnorm >= 0.85:
        return "repeated-random", (f"high entropy ({hnorm:.2f} of the maximum) but {dup_share:.0%} of payloads "
                                   "repeat an earlier one")
    # per-payload tests at level alpha: expect a pass rate near 1 - alpha; allow binomial slack
    lo = 1 - alpha - 3 * math.sqrt(alpha * (1 - alpha) / n)
    chi_ok = e["chi2_p"] is None or e["chi2_p"] >= alpha / 10
    if dup_share < 0.01 and mono_pass >= lo and runs_pass >= lo and chi_ok and hnorm >= 0.85:
        chi = "chi-square n/a" if e["chi2_p"] is None else f"chi-square p={e['chi2_p']:.3g}"
        return "random", (f"fresh payloads ({dup_share:.1%} repeats), monobit pass {mono_pass:.1%}, runs pass "
                          f"{runs_pass:.1%}, {chi}, entropy {hnorm:.2f} of the maximum")
    return "patterned", (f"fails randomness: monobit pass {mono_pass:.1%}, runs pass {runs_pass:.1%}, "
                         f"entropy {hnorm:.2f} of the maximum, {dup_share:.0%} repeats")
