"""The namespace lab: a prober with N "ENIs", a router that can impair the path, and a target running a
real HTTP server; tcpdump on both ends. Only documentation ranges, only inside namespaces made here.

    prober ns                      router ns                         target ns
    eni0 198.51.100.10/28 ── r0 198.51.100.1/28
    eni1 198.51.100.26/28 ── r1 198.51.100.17/28     rt 192.0.2.1/24 ── eth0 192.0.2.10/24 (nginx :8080)
    (fd00:5:K::10/64)          (fd00:5:K::1/64)     (fd00:6::1/64)      (fd00:6::10/64)

With the mirror switched on (``Lab.set_mirror(True)``, ``probekit lab set mirror-on``), every frame the
target's eth0 receives or sends is copied, as VPC Traffic Mirroring does, into VXLAN (VNI 4242, UDP
4789) towards a mirror-target namespace that captures and drops it:

    target ns: eth0 ── nftables netdev ingress + egress `dup to vx0`
               vx0 (vxlan 4242, remote 198.51.100.246) over mt0 198.51.100.245/30 ── mt1 198.51.100.246/30
    mirror ns: tcpdump -i mt1 udp port 4789; nft input `udp dport 4789 drop` (silently: no ICMP port
               unreachable comes back, which would otherwise be mirrored again and grow into a loop)

Each ENI has its own policy-routing table (``ip rule from ADDR``), so a probe leaves by the interface
of its source address. Impairment sits on the router's forward path towards the target: loss with
iptables' statistic match, delay and jitter with a userspace NFQUEUE delayer (this kernel has no netem;
netem is used where the kernel has it).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import ProbekitError

__all__ = ["Lab", "LabError", "LabConfig"]

STATE_DIR = Path(os.environ.get("PROBEKIT_LAB_STATE", "/run/probekit-lab"))
HTTP_PORT = 8080
MIRROR_VNI = 4242
VXLAN_PORT = 4789
MIRROR_MTU = 9000              # the underlay carries a full 1500-byte frame plus 50 bytes of VXLAN


class LabError(ProbekitError):
    """The lab could not be set up or changed; the message says which step and what to do."""


@dataclass
class LabConfig:
    prefix: str = "pk"
    enis: int = 2

    def ns(self, role: str) -> str:
        return f"{self.prefix}-{role}"

    def eni_v4(self, k: int) -> str:
        return f"198.51.100.{16 * k + 10}"

    def eni_gw_v4(self, k: int) -> str:
        return f"198.51.100.{16 * k + 1}"

    def eni_v6(self, k: int) -> str:
        return f"fd00:5:{k}::10"

    def eni_gw_v6(self, k: int) -> str:
        return f"fd00:5:{k}::1"

    target_v4: str = "192.0.2.10"
    target_v6: str = "fd00:6::10"
    router_v4: str = "192.0.2.1"
    router_v6: str = "fd00:6::1"
    mirror_local_v4: str = "198.51.100.245"    # the target's end of the mirror link (VXLAN source)
    mirror_v4: str = "198.51.100.246"          # the mirror target (VXLAN destination)

    @property
    def sources_v4(self) -> list[str]:
        return [self.eni_v4(k) for k in range(self.enis)]

    @property
    def sources_v6(self) -> list[str]:
        return [self.eni_v6(k) for k in range(self.enis)]


@dataclass
class _State:
    config: dict
    pids: dict = field(default_factory=dict)     # name -> pid of processes the lab started
    impairment: dict = field(default_factory=dict)


def _run(args: list[str], check: bool = True, ns: str | None = None) -> subprocess.CompletedProcess:
    cmd = (["ip", "netns", "exec", ns] if ns else []) + args
    p = subprocess.run(cmd, capture_output=True, text=True)
    if check and p.returncode:
        raise LabError(f"`{' '.join(cmd)}` failed: {(p.stderr or p.stdout).strip() or f'exit {p.returncode}'}")
    return p


def _need_root():
    if os.geteuid() != 0:
        raise LabError("the lab creates network namespaces and needs root: run it with sudo (or as root)")
    for tool in ("ip", "tcpdump"):
        if not shutil.which(tool):
            raise LabError(f"`{tool}` is not installed: apt-get install iproute2 tcpdump (./kit test installs them)")


class Lab:
    """``Lab().up()``, ``.down()``, ``.status()``; switches for the investigation's situations."""

    def __init__(self, config: LabConfig | None = None):
        self.config = config or LabConfig()
        self.state_file = STATE_DIR / f"{self.config.prefix}.json"

    # ------------------------------------------------------------------------------ state
    def _load(self) -> _State:
        if self.state_file.exists():
            d = json.loads(self.state_file.read_text())
            return _State(d["config"], d.get("pids", {}), d.get("impairment", {}))
        return _State(asdict(self.config))

    def _save(self, st: _State) -> None:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps(asdict(st)))

    def namespaces(self) -> list[str]:
        out = _run(["ip", "netns", "list"], check=False).stdout.split()
        return [n for n in out if n.startswith(self.config.prefix + "-")]

    def is_up(self) -> bool:
        return set(self.namespaces()) >= {self.config.ns(r) for r in ("prober", "router", "target")}

    # --------------------------------------------------------------------------------- up
    def up(self) -> Lab:
        """Create the namespaces, links, addresses, routes and the HTTP server. Clears leftovers first,
        so a crashed earlier run never breaks this one."""
        _need_root()
        self.down()
        c = self.config
        try:
            for role in ("prober", "router", "target"):
                _run(["ip", "netns", "add", c.ns(role)])
                _run(["ip", "link", "set", "lo", "up"], ns=c.ns(role))
                for key in ("net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
                            "net.ipv6.conf.all.keep_addr_on_down=1", "net.ipv6.conf.default.keep_addr_on_down=1"):
                    _run(["sysctl", "-qw", key], ns=c.ns(role))
            _run(["sysctl", "-qw", "net.ipv4.ip_forward=1"], ns=c.ns("router"))
            _run(["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"], ns=c.ns("router"))
            _run(["sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647"], ns=c.ns("prober"))
            for k in range(c.enis):
                self._veth(f"eni{k}", c.ns("prober"), f"r{k}", c.ns("router"))
                _run(["ip", "addr", "add", f"{c.eni_v4(k)}/28", "dev", f"eni{k}"], ns=c.ns("prober"))
                _run(["ip", "-6", "addr", "add", f"{c.eni_v6(k)}/64", "dev", f"eni{k}", "nodad"], ns=c.ns("prober"))
                _run(["ip", "addr", "add", f"{c.eni_gw_v4(k)}/28", "dev", f"r{k}"], ns=c.ns("router"))
                _run(["ip", "-6", "addr", "add", f"{c.eni_gw_v6(k)}/64", "dev", f"r{k}", "nodad"], ns=c.ns("router"))
                table = str(100 + k)
                _run(["ip", "route", "add", "default", "via", c.eni_gw_v4(k), "dev", f"eni{k}", "table", table],
                     ns=c.ns("prober"))
                _run(["ip", "-6", "route", "add", "default", "via", c.eni_gw_v6(k), "dev", f"eni{k}", "table", table],
                     ns=c.ns("prober"))
                _run(["ip", "rule", "add", "from", c.eni_v4(k), "table", table], ns=c.ns("prober"))
                _run(["ip", "-6", "rule", "add", "from", c.eni_v6(k), "table", table], ns=c.ns("prober"))
            _run(["ip", "route", "add", "default", "via", c.eni_gw_v4(0), "dev", "eni0"], ns=c.ns("prober"))
            _run(["ip", "-6", "route", "add", "default", "via", c.eni_gw_v6(0), "dev", "eni0"], ns=c.ns("prober"))
            self._veth("rt", c.ns("router"), "eth0", c.ns("target"))
            _run(["ip", "addr", "add", f"{c.router_v4}/24", "dev", "rt"], ns=c.ns("router"))
            _run(["ip", "-6", "addr", "add", f"{c.router_v6}/64", "dev", "rt", "nodad"], ns=c.ns("router"))
            _run(["ip", "addr", "add", f"{c.target_v4}/24", "dev", "eth0"], ns=c.ns("target"))
            _run(["ip", "-6", "addr", "add", f"{c.target_v6}/64", "dev", "eth0", "nodad"], ns=c.ns("target"))
            _run(["ip", "route", "add", "default", "via", c.router_v4], ns=c.ns("target"))
            _run(["ip", "-6", "route", "add", "default", "via", c.router_v6], ns=c.ns("target"))
            st = self._load()
            st.pids["http"] = self._start_http()
            self._save(st)
            self._wait_reachable()
        except Exception:
            self.down()
            raise
        return self

    def _veth(self, a: str, ns_a: str, b: str, ns_b: str) -> None:
        tmp_a, tmp_b = f"{self.config.prefix}{a}x", f"{self.config.prefix}{b}y"
        _run(["ip", "link", "add", tmp_a[:15], "type", "veth", "peer", "name", tmp_b[:15]])
        _run(["ip", "link", "set", tmp_a[:15], "netns", ns_a])
        _run(["ip", "link", "set", tmp_b[:15], "netns", ns_b])
        _run(["ip", "link", "set", tmp_a[:15], "name", a], ns=ns_a)
        _run(["ip", "link", "set", tmp_b[:15], "name", b], ns=ns_b)
        for ns, dev in ((ns_a, a), (ns_b, b)):
            _run(["ip", "link", "set", dev, "up"], ns=ns)
            if shutil.which("ethtool"):  # sender-side captures would show offloaded (bad) checksums
                _run(["ethtool", "-K", dev, "tx", "off", "rx", "off"], ns=ns, check=False)

    def _start_http(self) -> int:
        ns = self.config.ns("target")
        conf_dir = STATE_DIR / f"{self.config.prefix}-nginx"
        conf_dir.mkdir(parents=True, exist_ok=True)
        if shutil.which("nginx"):
            conf = conf_dir / "nginx.conf"
            conf.write_text(f"""daemon off;
worker_processes 1;
pid {conf_dir}/nginx.pid;
error_log {conf_dir}/error.log;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {conf_dir}/body; proxy_temp_path {conf_dir}/proxy;
  fastcgi_temp_path {conf_dir}/fastcgi; uwsgi_temp_path {conf_dir}/uwsgi; scgi_temp_path {conf_dir}/scgi;
  server {{ listen {HTTP_PORT}; listen [::]:{HTTP_PORT}; location / {{ return 200 "probekit lab target\\n"; }} }}
}}
""")
            cmd = ["ip", "netns", "exec", ns, "nginx", "-c", str(conf), "-p", str(conf_dir)]
        else:  # the Python fallback listens on both families
            cmd = ["ip", "netns", "exec", ns, sys.executable, "-m", "http.server", str(HTTP_PORT), "--bind", "::"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        return proc.pid

    def _wait_reachable(self, timeout: float = 10.0) -> None:
        c = self.config
        deadline = time.time() + timeout
        while time.time() < deadline:
            # one ping from every ENI, both families: neighbour entries are warm before the first probe
            ok = all(_run(["ping", "-c1", "-W1", "-I", src, dst], ns=c.ns("prober"), check=False).returncode == 0
                     for k in range(c.enis) for src, dst in ((c.eni_v4(k), c.target_v4), (c.eni_v6(k), c.target_v6)))
            port = _run(["bash", "-c", f"exec 3<>/dev/tcp/{c.target_v4}/{HTTP_PORT}"], ns=c.ns("prober"),
                        check=False).returncode == 0
            if ok and port:
                return
            time.sleep(0.2)
        raise LabError(f"the target {c.target_v4}:{HTTP_PORT} did not become reachable from the prober in {timeout} s")

    # ------------------------------------------------------------------------------- down
    def down(self) -> None:
        """Remove everything this lab made, whatever state it is in."""
        st = self._load()
        for pid in list(st.pids.values()):
            _kill(pid)
        for ns in self.namespaces():
            for pid in _run(["ip", "netns", "pids", ns], check=False).stdout.split():
                _kill(int(pid))
            _run(["ip", "netns", "del", ns], check=False)
        if self.state_file.exists():
            self.state_file.unlink()

    def status(self) -> dict:
        st = self._load()
        alive = {k: _alive(v) for k, v in st.pids.items()}
        return {"up": self.is_up(), "mirror": self.mirroring(), "namespaces": self.namespaces(), "processes": alive,
                "impairment": st.impairment, "sources_v4": self.config.sources_v4, "target_v4": self.config.target_v4,
                "sources_v6": self.config.sources_v6, "target_v6": self.config.target_v6}

    # --------------------------------------------------------------------------- switches
    def set_http(self, running: bool) -> None:
        """HTTP server off: the port is closed and the target's kernel answers RST/ACK."""
        st = self._load()
        if running and not _alive(st.pids.get("http", -1)):
            st.pids["http"] = self._start_http()
        elif not running and "http" in st.pids:
            _kill(st.pids.pop("http"))
            time.sleep(0.2)
        self._save(st)

    def set_target(self, up: bool) -> None:
        """Target down: its interface goes down, so nothing answers at all (host unreachable)."""
        _run(["ip", "link", "set", "eth0", "up" if up else "down"], ns=self.config.ns("target"))
        if up:
            c = self.config
            self._restore_default(c.ns("target"), [["ip", "route", "replace", "default", "via", c.router_v4],
                                                   ["ip", "-6", "route", "replace", "default", "via", c.router_v6]])

    @staticmethod
    def _restore_default(ns: str, cmds: list[list[str]]) -> None:
        """Routes come back once the link's connected routes have: retry for a moment."""
        for cmd in cmds:
            for attempt in range(50):
                if _run(cmd, ns=ns, check=attempt == 49).returncode == 0:
                    break
                time.sleep(0.05)

    def mirroring(self) -> bool:
        """Is the VXLAN mirror of the target's traffic on?"""
        return self.config.ns("mirror") in self.namespaces()

    def set_mirror(self, on: bool) -> None:
        """Mirror every frame the target's eth0 receives and sends into VXLAN towards a mirror-target
        namespace (capture it with ``start_capture("mirror", path)``), as VPC Traffic Mirroring delivers
        mirrored traffic to its target; off removes the mirror and its namespace."""
        c = self.config
        tgt, mir = c.ns("target"), c.ns("mirror")
        if not on:
            _run(["nft", "delete", "table", "netdev", "pkmirror"], ns=tgt, check=False)
            _run(["ip", "link", "del", "vx0"], ns=tgt, check=False)
            _run(["ip", "link", "del", "mt0"], ns=tgt, check=False)
            if mir in self.namespaces():
                for pid in _run(["ip", "netns", "pids", mir], check=False).stdout.split():
                    _kill(int(pid))
                _run(["ip", "netns", "del", mir], check=False)
            return
        if not shutil.which("nft"):
            raise LabError("`nft` is not installed: apt-get install nftables (./kit test installs it)")
        if not self.is_up():
            raise LabError("the lab is not up: run `probekit lab up` (Lab.up()) before switching the mirror on")
        self.set_mirror(False)
        try:
            _run(["ip", "netns", "add", mir])
            _run(["ip", "link", "set", "lo", "up"], ns=mir)
            self._veth("mt0", tgt, "mt1", mir)
            for ns, dev, addr in ((tgt, "mt0", c.mirror_local_v4), (mir, "mt1", c.mirror_v4)):
                _run(["ip", "link", "set", dev, "mtu", str(MIRROR_MTU)], ns=ns)
                _run(["ip", "addr", "add", f"{addr}/30", "dev", dev], ns=ns)
            _run(["ip", "link", "add", "vx0", "type", "vxlan", "id", str(MIRROR_VNI), "dstport", str(VXLAN_PORT),
                  "remote", c.mirror_v4, "local", c.mirror_local_v4, "dev", "mt0"], ns=tgt)
            _run(["ip", "link", "set", "vx0", "mtu", str(MIRROR_MTU - 50)], ns=tgt)
            # vx0 sends only mirrored frames: no IPv6 of its own (router solicitations, DAD)
            _run(["sysctl", "-qw", "net.ipv6.conf.vx0.disable_ipv6=1"], ns=tgt)
            _run(["ip", "link", "set", "vx0", "up"], ns=tgt)
            _nft(tgt, """table netdev pkmirror {
  chain rx { type filter hook ingress device "eth0" priority 0; dup to "vx0"; }
  chain tx { type filter hook egress device "eth0" priority 0; dup to "vx0"; }
}""")
            _nft(mir, f"""table inet pkmirror {{
  chain input {{ type filter hook input priority 0; udp dport {VXLAN_PORT} drop; }}
}}""")
        except Exception:
            self.set_mirror(False)
            raise

    def set_eni(self, k: int, up: bool) -> None:
        _run(["ip", "link", "set", f"eni{k}", "up" if up else "down"], ns=self.config.ns("prober"))
        if up:
            c = self.config
            t = str(100 + k)
            self._restore_default(c.ns("prober"), [
                ["ip", "route", "replace", "default", "via", c.eni_gw_v4(k), "dev", f"eni{k}", "table", t],
                ["ip", "-6", "route", "replace", "default", "via", c.eni_gw_v6(k), "dev", f"eni{k}", "table", t]])

    def impair(self, delay_ms: float = 0.0, jitter_ms: float = 0.0, loss: float = 0.0, keep_order: bool = False,
               seed: int | None = None) -> None:
        """Impair the forward path (prober → target): probes are lost with probability ``loss`` and
        delayed by ``delay_ms`` ± ``jitter_ms`` (normal), reordering unless ``keep_order``."""
        if not 0 <= loss < 1:
            raise LabError(f"loss={loss}: a probability in [0, 1)")
        ns = self.config.ns("router")
        st = self._load()
        self.clear_impairment(st)
        for tool in ("iptables", "ip6tables"):
            if not shutil.which(tool):
                raise LabError(f"`{tool}` is not installed: apt-get install iptables")
            if loss > 0:
                _run([tool, "-A", "FORWARD", "-o", "rt", "-m", "statistic", "--mode", "random", "--probability",
                      f"{loss:.6f}", "-j", "DROP"], ns=ns)
            if delay_ms > 0 or jitter_ms > 0:
                _run([tool, "-A", "FORWARD", "-o", "rt", "-j", "NFQUEUE", "--queue-num", "0", "--queue-bypass"], ns=ns)
        if delay_ms > 0 or jitter_ms > 0:
            # run the file itself, not the package: importing all of probekit would take seconds
            cmd = ["ip", "netns", "exec", ns, sys.executable, str(Path(__file__).with_name("delayer.py")), "--queue",
                   "0", "--delay-ms", str(delay_ms), "--jitter-ms", str(jitter_ms)]
            if keep_order:
                cmd.append("--keep-order")
            if seed is not None:
                cmd += ["--seed", str(seed)]
            log_path = STATE_DIR / f"{self.config.prefix}-delayer.log"
            log = open(log_path, "w")
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            st.pids["delayer"] = proc.pid
            self._save(st)
            deadline = time.time() + 10
            while "delayer: queue" not in log_path.read_text():  # bound to the queue: packets now wait
                if proc.poll() is not None or time.time() > deadline:
                    raise LabError(f"the NFQUEUE delayer did not start: {log_path.read_text().strip() or 'no output'}")
                time.sleep(0.05)
        st.impairment = dict(delay_ms=delay_ms, jitter_ms=jitter_ms, loss=loss, keep_order=keep_order)
        self._save(st)

    def clear_impairment(self, st: _State | None = None) -> None:
        own = st is None
        st = st or self._load()
        ns = self.config.ns("router")
        for tool in ("iptables", "ip6tables"):
            if shutil.which(tool):
                _run([tool, "-F", "FORWARD"], ns=ns, check=False)
        if "delayer" in st.pids:
            _kill(st.pids.pop("delayer"))
        st.impairment = {}
        if own:
            self._save(st)

    # -------------------------------------------------------------------------- captures
    def start_capture(self, where: str, path: Path, iface: str | None = None, flt: str | None = None) -> int:
        """tcpdump at the target (its Ethernet interface), the prober (``-i any``: Linux SLL2) or the mirror
        target (the VXLAN packets on its link, see set_mirror); ``iface``/``flt`` override the interface and
        the capture filter. Returns once tcpdump says it is listening."""
        ns = self.config.ns(where)
        iface = iface or {"target": "eth0", "mirror": "mt1"}.get(where, "any")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        flt = flt or (f"udp port {VXLAN_PORT}" if where == "mirror" else "icmp or icmp6 or tcp")
        proc = subprocess.Popen(["ip", "netns", "exec", ns, "tcpdump", "-U", "--immediate-mode", "-n", "-s", "0", "-i",
                                 iface, "-w", str(path), flt], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
        assert proc.stderr is not None  # stderr=PIPE
        deadline = time.time() + 10
        line = ""
        while time.time() < deadline:
            line = proc.stderr.readline()
            if "listening on" in line:
                break
            if proc.poll() is not None:
                raise LabError(f"tcpdump in {ns} stopped: {line.strip() or proc.stderr.read().strip()}")
        else:
            proc.kill()
            raise LabError(f"tcpdump in {ns} did not start listening within 10 s")
        st = self._load()
        st.pids[f"tcpdump-{where}"] = proc.pid
        self._save(st)
        return proc.pid

    def stop_capture(self, where: str, settle_s: float = 0.5) -> None:
        """Give in-flight packets a moment, then stop tcpdump cleanly (SIGINT flushes the file)."""
        time.sleep(settle_s)
        st = self._load()
        pid = st.pids.pop(f"tcpdump-{where}", None)
        if pid:
            _kill(pid, signal.SIGINT, wait=5.0)
        self._save(st)


def _nft(ns: str, ruleset: str) -> None:
    p = subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=ruleset, capture_output=True, text=True)
    if p.returncode:
        raise LabError(f"nft in {ns} refused the mirror rules: {p.stderr.strip()}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except (ProcessLookupError, PermissionError, OSError):
        return False


def _kill(pid: int, sig=signal.SIGTERM, wait: float = 2.0) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError, OSError):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError, OSError):
            return
    deadline = time.time() + wait
    while time.time() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return
        except ChildProcessError:
            if not _alive(pid):
                return
        time.sleep(0.05)
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
