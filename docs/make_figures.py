"""Regenerate the README's figures from the shipped captures: python docs/make_figures.py"""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import probekit
from probekit import plots

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "figures"
OUT.mkdir(parents=True, exist_ok=True)

cap = probekit.open_capture(ROOT / "captures" / "target-down.pcap")
tcp = cap.probe_periods[cap.probe_periods["protocol"] == "tcp"]
plots.plot_loss_rtt(tcp, title="TCP probes, target down at 120 s: 100 % loss and no RTT, not 0 % / 0 ms").savefig(
    OUT / "target-down-tcp.png", dpi=90)
cap = probekit.open_capture(ROOT / "captures" / "tcp-stops-after-activation.pcap")
plots.plot_timeline(cap.probes).figure.savefig(OUT / "tcp-stops-timeline.png", dpi=90)
print("wrote", *sorted(p.name for p in OUT.glob("*.png")))
