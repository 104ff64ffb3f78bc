"""ICMP/ICMPv6 errors attributed to probes: the real lab capture where a Linux router answered host
unreachable, and the corpus files that carry errors (quoted headers from real tshark, see quoted_oracle)."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

import probekit
from conftest import ROOT, SHARED
from probekit.analysis.errors_icmp import (
    attribute_errors,
    has_quoted_columns,
    icmp_errors,
    period_errors,
    with_error_outcomes,
)
from probekit.schema import ICMP_ERRORS, PROBE_ERRORS, check_table
from quoted_oracle import add_quoted, tshark_quoted

LAB_DOWN = ROOT / "captures" / "lab" / "lab-target-down.pcap"
ICMP_DIR = "zeek__zeek/testing/btest/Traces/icmp"
# corpus file -> (outcome, code, mtu) of every error frame in it; reporter and values from tshark
CORPUS = {
    "icmp-destunreach-udp.pcap": ("unreachable", "port", None),
    "icmp-destunreach-ip.pcap": ("unreachable", None, None),
    "icmp-timeexceeded.pcap": ("ttl_exceeded", "ttl", None),
    "icmp6-toobig.pcap": ("packet_too_big", "too_big", 1280),
    "icmp6-timeexceeded.pcap": ("ttl_exceeded", "ttl", None),
    "icmp6-paramprob.pcap": ("param_problem", None, None),
    "icmp6-destunreach-ip6ext-udp.pcap": ("unreachable", None, None),
    "icmp6-destunreach-ip6ext-trunc.pcap": ("unreachable", None, None),
    "icmp6-destunreach-no-context.pcap": ("unreachable", None, None),
    "icmp-destunreach-no-context.pcap": ("unreachable", None, None),
}


@pytest.fixture(scope="module")
def lab():
    df = add_quoted(probekit.read_capture(LAB_DOWN), LAB_DOWN)
    return df, probekit.match_probes(df)


def test_every_router_error_in_the_lab_capture_finds_its_probe(lab):
    df, probes = lab
    q = tshark_quoted(LAB_DOWN)
    e = icmp_errors(df, probes)
    check_table(e, ICMP_ERRORS)
    assert len(e) == len(q) > 100
    assert (e["note"] == "").all() and e["request_frame"].notna().all()
    a = attribute_errors(df, probes)
    check_table(a, PROBE_ERRORS)
    # the router is rate-limited to about one error per probe: every error quotes its own probe
    assert len(a) == len(e) and (a["errors"] == 1).all()
    assert set(a["outcome"].astype(str)) == {"unreachable"} and set(a["code"].astype(str)) == {"host"}
    # the reporters are the router's addresses, never the target or a prober
    assert set(a["reporter"].astype(str)) == set(df.loc[df["frame"].isin(q["frame"]), "src"].astype(str))
    assert not set(a["reporter"].astype(str)) & (set(probes["source"].astype(str)) | {"192.0.2.10"})
    # each error quotes the probe it answers: same identity, the prober it went back to, after the request
    pr = probes.set_index("request_frame").loc[a["request_frame"].to_numpy()]
    err = df.set_index("frame").loc[a["error_frame"].to_numpy()]
    assert (err["dst"].astype(str).to_numpy() == pr["source"].astype(str).to_numpy()).all()
    assert (a["error_after_us"] > 0).all()
    icmp = (pr["protocol"].astype(str) == "icmp").to_numpy()
    qq = q.set_index("frame").loc[a["error_frame"].to_numpy()]
    assert (qq["quoted_icmp_seq"].to_numpy()[icmp] == pr["seq"].to_numpy()[icmp]).all()
    assert (qq["quoted_tcp_seq"].to_numpy()[~icmp] == pr["seq"].to_numpy()[~icmp]).all()
    # none of them had been answered: the target was down
    assert set(pr["outcome"].astype(str)) <= {"lost", "late", "unknown"}


def test_probes_and_periods_say_how_many_and_from_whom(lab):
    df, probes = lab
    a = attribute_errors(df, probes)
    w = with_error_outcomes(probes, a)
    assert int((w["outcome"] == "unreachable").sum()) == len(a)
    assert int((w["outcome"] == "answered").sum()) == int((probes["outcome"] == "answered").sum())
    assert w.loc[w["outcome"] == "unreachable", "reporter"].notna().all()
    assert w.loc[w["outcome"] != "unreachable", "reporter"].isna().all()
    pe = period_errors(w, 30)
    assert int(pe["unreachable"].sum()) == len(a) and int(pe["too_big"].sum()) == 0
    assert pe["reporters"].str.contains("198.51.100.").all()
    # outcome as text (a hand-made or loaded table) gives the same rows as the categorical's codes
    txt = period_errors(w.assign(outcome=w["outcome"].astype(str)), 30)
    assert txt.equals(pe)
    # the metrics still count them as lost (CloudWatch can only count loss)
    m = probekit.period_metrics(w, 30)
    assert int(m["sent"].sum() - m["answered"].sum()) >= len(a)


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_errors_classified_as_tshark_dissects_them(name):
    wild = SHARED / "captures-wild"
    if not wild.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"CI must have {wild}")
        pytest.skip(f"the wild-capture corpus is not at {wild}")
    path = wild / ICMP_DIR / name
    df = add_quoted(probekit.read_capture(path), path)
    q = tshark_quoted(path)
    e = icmp_errors(df, probekit.match_probes(df))     # no probe in these files: nothing to attribute
    check_table(e, ICMP_ERRORS)
    assert list(e["error_frame"]) == list(q["frame"]) and len(e) > 0
    outcome, code, mtu = CORPUS[name]
    assert set(e["outcome"].astype(str)) == {outcome}
    if code:
        assert set(e["code"].astype(str)) == {code}
    assert list(e["reporter"].astype(str)) == list(df.set_index("frame").loc[q["frame"], "src"].astype(str))
    if mtu:
        assert list(e["mtu"]) == [mtu] * len(e)
    else:
        assert e["mtu"].isna().all()
    assert e["request_frame"].isna().all() and (e["note"].str.len() > 0).all()
    if "no-context" in name or "trunc" in name:
        assert e["note"].str.contains("quoted").all()      # a truncated quote is a note, not an exception


def test_without_quoted_columns_the_tables_are_empty():
    """A packets table without the decoder's quoted-header columns (e.g. from another tool's export)."""
    df = probekit.read_capture(LAB_DOWN)
    df = df.drop(columns=[c for c in df.columns if c.startswith("quoted_") or c == "icmp_mtu"])
    assert not has_quoted_columns(df)
    probes = probekit.match_probes(df)
    e = icmp_errors(df, probes)
    check_table(e, ICMP_ERRORS)
    assert e.empty and "quoted" in e.attrs["note"]
    a = attribute_errors(df, probes)
    check_table(a, PROBE_ERRORS)
    assert a.empty
    assert with_error_outcomes(probes, a)["outcome"].astype(str).tolist() == probes["outcome"].astype(str).tolist()


def test_error_for_an_unknown_probe_is_a_note(lab):
    df, probes = lab
    # drop the probes the errors answer: the errors stay, unattributed, each with a note
    a = attribute_errors(df, probes)
    rest = probes[~probes["request_frame"].isin(a["request_frame"])]
    e = icmp_errors(df, rest)
    assert e["request_frame"].isna().all()
    assert (e["note"] == "quotes no probe sent in the capture before it (within the window)").all()
    assert np.isnan(e["error_after_us"]).all()
    assert attribute_errors(df, rest).empty


def _scenario(tmp_path_factory, name, family):
    from probekit.synth import default_monitor, synth
    path = tmp_path_factory.mktemp("err") / f"{name}-{family}.pcap"
    synth(name, path, seed=3, monitor=default_monitor(family=family))
    return path


REFERENCE_CASES = [*(f"lab/{p.name}" for p in sorted((ROOT / "captures" / "lab").glob("*.pcap"))),
                   *(f"tools/{n}.pcap" for n in ("traceroute-udp", "traceroute-icmp", "mtr-udp", "mtr-icmp",
                                                 "mtr-tcp", "scamper-trace", "tcptraceroute")),
                   "unreachable:4", "unreachable:6", "admin-prohibited:4", "pmtu:6", "fragmenting-path+unreachable:4"]


@pytest.mark.parametrize("case", REFERENCE_CASES)
def test_attribution_equals_the_pandas_reference(case, tmp_path_factory):
    """The vectorised + compiled attribution gives the tables of the pandas one it replaced
    (tests/reference_errors_icmp.py), on real recordings and on the error scenarios, v4 and v6."""
    import reference_errors_icmp as R
    from helpers.tables import table_diffs
    if ":" in case:
        name, fam = case.split(":")
        path = _scenario(tmp_path_factory, name, int(fam))
    else:
        path = ROOT / "captures" / case
    df = probekit.read_capture(path)
    probes = probekit.match_probes(df)
    for fn in ("icmp_errors", "attribute_errors"):
        want, got = getattr(R, fn)(df, probes), globals()[fn](df, probes)
        assert table_diffs(want, got) == [], (case, fn)
        assert [str(want[c].dtype) for c in want] == [str(got[c].dtype) for c in got], (case, fn)
    # the outcomes merged in: equal to the merge before its fast paths, with errors and without any
    pd.testing.assert_frame_equal(with_error_outcomes(probes, got), R.with_error_outcomes(probes, want))
    e = icmp_errors(df, probes)
    assert e["request_frame"].notna().sum() > 0 or case.startswith("lab/lab-healthy") or "port-closed" in case
