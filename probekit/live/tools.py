"""Record what real monitoring tools put on the wire: each tool runs in the lab's prober namespace against
the lab's target, tcpdump captures the prober's first ENI, and the tool's own report is kept beside it.

These recordings are the evidence the fingerprints are tested on (``captures/tools/``); ``probekit lab
record-tools`` (or ``./kit tools``) makes them anew. Every recipe is data: the command line, what the
tool sends and how long to let it run. Traffic goes only to the lab's target and router (documentation
addresses inside namespaces the lab made).
"""
from __future__ import annotations

import json
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .lab import HTTP_PORT, Lab, LabError

__all__ = ["ToolRecipe", "TOOLS", "record_tool", "record_tools", "find_tool"]

INETUTILS_PING = "/opt/probekit-tools/inetutils/bin/ping"   # Debian's inetutils-ping conflicts with iputils-ping
BLACKBOX_PORT = 9115


@dataclass(frozen=True)
class ToolRecipe:
    """One tool run: ``argv`` uses {src}, {dst}, {port}, {iface}, {gw_mac} placeholders."""
    name: str
    binary: str
    argv: str
    sends: str
    package: str
    timeout_s: float = 30.0


TOOLS: dict[str, ToolRecipe] = {t.name: t for t in (
    ToolRecipe("iputils-ping", "ping", "ping -n -c 5 -i 0.2 -s 48 -I {src} {dst}",
               "ICMP echo, struct timeval then 0x10 0x11 ...", "iputils-ping"),
    ToolRecipe("inetutils-ping", INETUTILS_PING, INETUTILS_PING + " -n -c 5 -i 0.2 -s 48 {dst}",
               "ICMP echo, inetutils' timeval then pattern", "inetutils-ping"),
    ToolRecipe("busybox-ping", "busybox", "busybox ping -c 5 -s 48 -I {src} {dst}",
               "ICMP echo, busybox's payload", "busybox"),
    ToolRecipe("fping", "fping", "fping -c 5 -p 200 -b 48 -S {src} {dst}",
               "ICMP echo, zero payload", "fping"),
    ToolRecipe("fping-smokeping", "fping", "fping -C 5 -q -B1 -r1 -i10 -b 56 -S {src} {dst}",
               "smokeping's FPing probe (fping -C -B1 -r1 -i10 -b 56)", "fping"),
    ToolRecipe("fping-zabbix", "fping", "fping -C5 -p1000 -b 68 -t500 -S {src} {dst}",
               "Zabbix's icmpping (fping -C count -p interval -b bytes -t timeout)", "fping"),
    ToolRecipe("check_icmp", "/usr/lib/nagios/plugins/check_icmp",
               "/usr/lib/nagios/plugins/check_icmp -H {dst} -n 5 -i 200ms -s {src}",
               "monitoring-plugins check_icmp: ICMP echo with its own data", "monitoring-plugins-basic"),
    ToolRecipe("check_ping", "/usr/lib/nagios/plugins/check_ping",
               "/usr/lib/nagios/plugins/check_ping -H {dst} -p 5 -w 100,20% -c 200,50%",
               "monitoring-plugins check_ping: runs the system ping", "monitoring-plugins-basic"),
    ToolRecipe("check_tcp", "/usr/lib/nagios/plugins/check_tcp",
               "/usr/lib/nagios/plugins/check_tcp -H {dst} -p {port}",
               "monitoring-plugins check_tcp: a full TCP connection", "monitoring-plugins-basic"),
    ToolRecipe("oping", "oping", "oping -c 5 -i 0.2 -D {iface} {dst}",
               "liboping echo: 'liboping -- ICMP ping library' text", "oping"),
    ToolRecipe("nping-icmp", "nping", "nping --icmp -c 5 --delay 200ms --data-length 48 -e {iface} -S {src} {dst}",
               "nping ICMP echo, random payload identical per probe", "nmap"),
    ToolRecipe("nping-tcp", "nping", "nping --tcp -p {port} -c 5 --delay 200ms --data-length 36 -e {iface} -S {src} {dst}",
               "nping TCP SYN with a random payload", "nmap"),
    ToolRecipe("nmap-syn", "nmap", "nmap -n -Pn -sS -p {port},22,443 -e {iface} -S {src} {dst}",
               "nmap SYN scan", "nmap"),
    ToolRecipe("hping3", "hping3", "hping3 -S -p {port} -d 36 -c 5 -i u200000 -I {iface} -a {src} {dst}",
               "hping3 SYN with 36 'X' bytes", "hping3"),
    ToolRecipe("mtr-icmp", "mtr", "mtr -n -r -c 3 -i 0.2 -a {src} {dst}",
               "mtr: TTL-limited ICMP echo", "mtr-tiny"),
    ToolRecipe("mtr-udp", "mtr", "mtr -n -r -u -c 3 -i 0.2 -a {src} {dst}",
               "mtr -u: TTL-limited UDP", "mtr-tiny"),
    ToolRecipe("mtr-tcp", "mtr", "mtr -n -r -T -P {port} -c 3 -i 0.2 -a {src} {dst}",
               "mtr -T: TTL-limited TCP SYN", "mtr-tiny"),
    ToolRecipe("traceroute-udp", "traceroute", "traceroute -n -q 2 -s {src} {dst}",
               "traceroute: UDP to 33434+ with rising TTL", "traceroute"),
    ToolRecipe("traceroute-icmp", "traceroute", "traceroute -n -I -q 2 -s {src} {dst}",
               "traceroute -I: ICMP echo with rising TTL", "traceroute"),
    ToolRecipe("tcptraceroute", "tcptraceroute", "tcptraceroute -n -q 2 -s {src} {dst} {port}",
               "tcptraceroute: TCP SYN with rising TTL", "tcptraceroute"),
    ToolRecipe("scamper-ping", "scamper", "scamper -O text -c 'ping -c 5 -i 0.2 -S {src}' -i {dst}",
               "scamper ping", "scamper"),
    ToolRecipe("scamper-trace", "scamper", "scamper -O text -c 'trace -q 1 -S {src}' -i {dst}",
               "scamper trace (UDP-paris by default)", "scamper"),
    ToolRecipe("zmap", "zmap", "zmap -p {port} -i {iface} -S {src} -G {gw_mac} -B 10K -n 1 "
               "--blacklist-file=/dev/null {dst}/32",
               "zmap SYN scan (stateless, fixed IP id 54321)", "zmap"),
    ToolRecipe("masscan", "masscan", "masscan {dst} -p{port} --rate 100 --adapter {iface} --adapter-ip {src} "
               "--router-mac {gw_mac} --wait 1",
               "masscan SYN scan (stateless, SYN cookie sequence)", "masscan"),
    ToolRecipe("blackbox-icmp", "prometheus-blackbox-exporter", "blackbox:icmp",
               "prometheus-blackbox-exporter icmp module", "prometheus-blackbox-exporter"),
    ToolRecipe("blackbox-tcp", "prometheus-blackbox-exporter", "blackbox:tcp_connect",
               "prometheus-blackbox-exporter tcp_connect module", "prometheus-blackbox-exporter"),
)}


def find_tool(recipe: ToolRecipe) -> str | None:
    """The tool's executable, or None when it is not installed."""
    b = recipe.binary
    return b if (b.startswith("/") and Path(b).exists()) else shutil.which(b)


def _gw_mac(lab: Lab) -> str:
    ns = lab.config.ns("router")
    out = subprocess.run(["ip", "netns", "exec", ns, "cat", "/sys/class/net/r0/address"], capture_output=True,
                         text=True)
    return out.stdout.strip()


def _run_blackbox(lab: Lab, module: str, dst: str, src: str, runs: int = 5) -> str:
    """Start the exporter in the prober namespace on loopback, ask it for ``runs`` probes, stop it."""
    ns = lab.config.ns("prober")
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "blackbox.yml"
        conf.write_text(f"""modules:
  icmp:
    prober: icmp
    timeout: 2s
    icmp:
      preferred_ip_protocol: ip4
      source_ip_address: {src}
  tcp_connect:
    prober: tcp
    timeout: 2s
    tcp:
      preferred_ip_protocol: ip4
      source_ip_address: {src}
""")
        proc = subprocess.Popen(["ip", "netns", "exec", ns, "prometheus-blackbox-exporter", f"--config.file={conf}",
                                 f"--web.listen-address=127.0.0.1:{BLACKBOX_PORT}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            target = dst if module == "icmp" else f"{dst}:{HTTP_PORT}"
            url = f"http://127.0.0.1:{BLACKBOX_PORT}/probe?module={module}&target={target}"
            out = []
            deadline = time.time() + 10
            while time.time() < deadline:   # wait for the exporter to listen
                p = subprocess.run(["ip", "netns", "exec", ns, "python3", "-c",
                                    f"import urllib.request;urllib.request.urlopen('http://127.0.0.1:{BLACKBOX_PORT}/')"],
                                   capture_output=True)
                if p.returncode == 0:
                    break
                time.sleep(0.2)
            for _ in range(runs):
                p = subprocess.run(["ip", "netns", "exec", ns, "python3", "-c",  # type: ignore[assignment]
                                    f"import urllib.request;print(urllib.request.urlopen({url!r}).read().decode())"],
                                   capture_output=True, text=True, timeout=10)
                out.append("\n".join(line for line in p.stdout.splitlines()  # type: ignore[misc]
                                     if line.startswith(("probe_success", "probe_duration_seconds",  # type: ignore[arg-type]
                                                         "probe_icmp_duration_seconds"))))
                time.sleep(0.2)
            return "\n".join(out)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()


def record_tool(lab: Lab, name: str, out_dir) -> dict:
    """Run one tool against the lab's target with a capture on the prober's eni0; write
    ``<name>.pcap`` and ``<name>.tool.json`` (command, exit status and what the tool printed)."""
    recipe = TOOLS[name]
    if find_tool(recipe) is None:
        raise LabError(f"{name}: `{recipe.binary}` is not installed (Debian package {recipe.package})")
    c = lab.config
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pcap = out_dir / f"{name}.pcap"
    ns = c.ns("prober")
    fields = dict(src=c.eni_v4(0), dst=c.target_v4, port=HTTP_PORT, iface="eni0", gw_mac=_gw_mac(lab))
    lab.start_capture("prober", pcap, iface="eni0", flt="ip or ip6")
    try:
        if recipe.argv.startswith("blackbox:"):
            argv = ["prometheus-blackbox-exporter", recipe.argv.split(":", 1)[1]]
            printed, rc = _run_blackbox(lab, argv[1], fields["dst"], fields["src"]), 0  # type: ignore[arg-type]
        else:
            argv = shlex.split(recipe.argv.format(**fields))
            p = subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True,
                               timeout=recipe.timeout_s)
            printed, rc = (p.stdout + p.stderr).strip(), p.returncode
    finally:
        lab.stop_capture("prober", settle_s=0.7)
    version = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", recipe.package], capture_output=True,
                             text=True).stdout.strip()
    info = {"tool": name, "package": recipe.package, "version": version, "command": argv, "exit_status": rc,
            "sends": recipe.sends, "source": fields["src"], "destination": fields["dst"], "output": printed}
    (out_dir / f"{name}.tool.json").write_text(json.dumps(info, indent=1) + "\n")
    return info


def record_tools(out_dir, names: list[str] | None = None, prefix: str = "pkR") -> list[dict]:
    """Bring a lab up, record every tool (or ``names``) that is installed, take the lab down."""
    from .lab import LabConfig
    lab = Lab(LabConfig(prefix=prefix, enis=1)).up()
    done = []
    try:
        for name in names or list(TOOLS):
            if find_tool(TOOLS[name]) is None:
                continue
            done.append(record_tool(lab, name, out_dir))
    finally:
        lab.down()
    return done


if __name__ == "__main__":  # pragma: no cover
    import sys
    for r in record_tools(sys.argv[1] if len(sys.argv) > 1 else "captures/tools", sys.argv[2:] or None):
        print(f"{r['tool']:18s} exit {r['exit_status']}  {r['output'].splitlines()[-1] if r['output'] else ''}")
