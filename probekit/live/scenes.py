"""Situations the real kernel makes in the lab, for the forensics of messy captures: a smaller MTU on the
router-to-target link, a firewall that REJECTs with an ICMP type, the target down with the router
answering, and ordinary background traffic (web clients, UDP "DNS"/"NTP" queries, a scanner) mixed
with the probes. ``record_mixed_capture`` records all of it in one short real capture
(captures/lab/lab-mixed.pcap). Only the lab's own documentation addresses, only inside its namespaces.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from .lab import HTTP_PORT, Lab, LabConfig, LabError, _run

__all__ = ["set_path_mtu", "reject", "clear_reject", "Background", "record_mixed_capture", "REJECT_WITH"]

REJECT_WITH = ("icmp-net-unreachable", "icmp-host-unreachable", "icmp-port-unreachable", "icmp-proto-unreachable",
               "icmp-net-prohibited", "icmp-host-prohibited", "icmp-admin-prohibited", "tcp-reset")
"""iptables' REJECT types (``--reject-with``) the router can answer with."""


def set_path_mtu(lab: Lab, mtu: int | None) -> None:
    """MTU of the router's link towards the target (None: back to 1500). A DF-set probe larger than it
    draws ICMP "fragmentation needed" naming it; without DF the router fragments."""
    if mtu is not None and not 576 <= mtu <= 9000:
        raise LabError(f"path MTU {mtu}: give 576..9000 bytes")
    ns_r, ns_t = lab.config.ns("router"), lab.config.ns("target")
    _run(["ip", "link", "set", "rt", "mtu", str(mtu or 1500)], ns=ns_r)
    _run(["ip", "link", "set", "eth0", "mtu", str(mtu or 1500)], ns=ns_t)


def reject(lab: Lab, protocol: str = "tcp", with_: str = "icmp-admin-prohibited", port: int | None = HTTP_PORT) -> None:
    """The router REJECTs forwarded ``protocol`` packets towards the target with ``with_`` (a firewall)."""
    if with_ not in REJECT_WITH:
        raise LabError(f"reject-with {with_!r}: one of {', '.join(REJECT_WITH)}")
    if with_ == "tcp-reset" and protocol != "tcp":
        raise LabError("tcp-reset answers TCP only")
    if not shutil.which("iptables"):
        raise LabError("iptables is not installed: apt-get install iptables")
    rule = ["-d", lab.config.target_v4, "-p", protocol]
    if port is not None and protocol in ("tcp", "udp"):
        rule += ["--dport", str(port)]
    _run(["iptables", "-I", "FORWARD", *rule, "-j", "REJECT", "--reject-with", with_], ns=lab.config.ns("router"))


def clear_reject(lab: Lab) -> None:
    """Remove every REJECT rule from the router's FORWARD chain (impairment rules are left alone)."""
    ns = lab.config.ns("router")
    out = _run(["iptables", "-S", "FORWARD"], ns=ns, check=False).stdout.splitlines()
    for line in out:
        if "-j REJECT" in line and line.startswith("-A "):
            _run(["iptables", "-D", *line.split()[1:]], ns=ns, check=False)


_CLIENT = r"""
import http.client, socket, sys, time
target, router, port, duration, src = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
end = time.time() + duration
k = 0
while time.time() < end:
    k += 1
    try:  # a web client: a GET, and every third round a POST with a body (data transfer)
        c = http.client.HTTPConnection(target, port, timeout=2, source_address=(src, 0))
        c.request("POST" if k % 3 == 0 else "GET", f"/page{k}", body=(b"x" * 4000) if k % 3 == 0 else None)
        c.getresponse().read()
        c.close()
    except Exception:
        pass
    dns = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01"
    for dst, dport, payload in ((router, 53, dns),
                                (target, 123, b"\x1b" + b"\x00" * 47)):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)   # DNS to the router, NTP to the target:
        s.bind((src, 0))                                       # nobody listens, ICMP port unreachable
        s.settimeout(0.2)
        try:
            s.sendto(payload, (dst, dport)); s.recvfrom(512)
        except OSError:
            pass
        s.close()
    time.sleep(1.3)
"""
BACKGROUND_V4 = "198.51.100.11"
"""The analyst's own host beside the prober's ENIs (a second address on eni0's subnet): background traffic
comes from it, as it would from another machine."""


class Background:
    """Ordinary traffic from the prober namespace for ``duration_s``: a web client (GET and POST) against the
    target's nginx, UDP queries nobody answers (DNS to the router, NTP to the target), and one nmap SYN
    scan of 100 ports when nmap is installed. ``with Background(lab, 30): ...``"""

    def __init__(self, lab: Lab, duration_s: float, scan: bool = True):
        self.lab, self.duration_s, self.scan = lab, duration_s, scan
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> Background:
        c = self.lab.config
        ns = c.ns("prober")
        _run(["ip", "addr", "replace", f"{BACKGROUND_V4}/28", "dev", "eni0"], ns=ns)
        self.procs.append(subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", _CLIENT, c.target_v4,
                                            c.router_v4, str(HTTP_PORT), str(self.duration_s), BACKGROUND_V4],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        if self.scan and shutil.which("nmap"):
            self.procs.append(subprocess.Popen(["ip", "netns", "exec", ns, "nmap", "-n", "-Pn", "-sS", "--max-rate",
                                                "50", "-p", "1-100", "-S", BACKGROUND_V4, "-e", "eni0", c.target_v4],
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        return self

    def __exit__(self, *exc) -> None:
        for p in self.procs:
            try:
                p.wait(timeout=self.duration_s + 30)
            except subprocess.TimeoutExpired:
                p.kill()


def record_mixed_capture(folder, seconds: float = 40.0, prefix: str = "pkX") -> dict:
    """A real capture at the prober (``tcpdump -i any``) of Network-Monitor-style probes (ICMP and TCP from
    two ENIs) mixed with background traffic; half-way the router starts REJECTing the TCP probes with
    admin-prohibited; the router-to-target link has a 1,400-byte MTU: the analyst's non-DF 3,000-byte ping
    crosses it in fragments (cut at 1,500 by the sender and again by the router), and a DF-set 1,500-byte
    ping draws "fragmentation needed" naming the MTU. Writes
    ``lab-mixed.pcap`` and ``lab-mixed.results.csv`` (the prober's own view) and ``lab-mixed.scene.json``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lab = Lab(LabConfig(prefix=prefix, enis=2)).up()
    c = lab.config
    ns = c.ns("prober")
    scene = {"seconds": seconds, "reject_tcp_from_s": seconds / 2, "reject_with": "icmp-admin-prohibited",
             "path_mtu": 1400, "fragmented_ping_size": 3000, "df_ping_size": 1472,
             "background_source": BACKGROUND_V4}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            pcap = Path(tmp) / "mixed.pcap"
            lab.start_capture("prober", pcap, iface="any", flt="not ip6 or icmp6")
            set_path_mtu(lab, scene["path_mtu"])  # type: ignore[arg-type]
            probe = ["ip", "netns", "exec", ns, sys.executable, "-m", "probekit", "probe", "--dest", c.target_v4,
                     "--protocol", "both", "--port", str(HTTP_PORT), "--rate", "2", "--duration", str(seconds),
                     "--seed", "21", "-o", str(Path(tmp) / "results.csv")]
            for s in c.sources_v4:
                probe += ["--source", s]
            p1 = subprocess.Popen(probe, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            timer = threading.Timer(seconds / 2, reject, args=(lab, "tcp", scene["reject_with"]))
            timer.start()
            with Background(lab, seconds - 5):
                _run(["ping", "-n", "-c", "3", "-i", "1", "-M", "dont", "-s", str(scene["fragmented_ping_size"]),
                      "-I", BACKGROUND_V4, c.target_v4], ns=ns, check=False)
                # a DF-set 1,500-byte ping: the router answers "fragmentation needed", naming the 1,400 MTU
                _run(["ping", "-n", "-c", "2", "-i", "1", "-M", "do", "-s", str(scene["df_ping_size"]),
                      "-I", BACKGROUND_V4, c.target_v4], ns=ns, check=False)
            out1, err1 = p1.communicate(timeout=seconds + 60)
            timer.join()
            lab.stop_capture("prober", settle_s=1.0)
            if p1.returncode:
                raise LabError(f"the prober failed: {err1.strip().splitlines()[-1] if err1.strip() else p1.returncode}")
            shutil.copy(pcap, folder / "lab-mixed.pcap")
            shutil.copy(Path(tmp) / "results.csv", folder / "lab-mixed.results.csv")
        (folder / "lab-mixed.scene.json").write_text(json.dumps(scene, indent=1) + "\n")
    finally:
        clear_reject(lab)
        lab.down()
    return scene


if __name__ == "__main__":  # pragma: no cover
    print(record_mixed_capture(sys.argv[1] if len(sys.argv) > 1 else "captures/lab"))
