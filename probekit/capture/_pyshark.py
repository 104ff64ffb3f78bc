"""backend="pyshark": the packets table through real tshark dissection (slow; for deep dissection
and cross-checks). tshark runs with reassembly off and raw sequence numbers so that each row
describes its own frame, as the other backends do.

pyshark drives tshark through asyncio; inside a Jupyter kernel the event loop is already running,
so the capture is always read in a worker thread with its own loop.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import socket
import threading

from .._io import open_bytes
from ..errors import BackendError, CaptureError
from ..protocol import ICMP_ID_SEQ_TYPES, ICMPV6_ID_SEQ_TYPES
from ._dpkt import _to_table
from ._frames import index_frames
from .encaps import GENEVE_CLASS_AWS, GWLB_FLOW_COOKIE, MAX_DEPTH

TSHARK_PREFS = {
    "ip.defragment": "FALSE",
    "ipv6.defragment": "FALSE",
    "tcp.relative_sequence_numbers": "FALSE",
    "tcp.desegment_tcp_streams": "FALSE",
    "tcp.analyze_sequence_numbers": "FALSE",
    "udp.try_heuristic_first": "FALSE",
}
_ICMP_ECHO = ICMP_ID_SEQ_TYPES


def tshark_path() -> str:
    """The tshark executable, or BackendError saying how to install it."""
    path = os.environ.get("PROBEKIT_TSHARK") or shutil.which("tshark")
    if not path:
        raise BackendError("tshark is not installed, and the pyshark backend runs it: install it with "
                           "`apt-get install tshark` (Debian/Ubuntu) or `./kit report`, which installs it, "
                           "or set PROBEKIT_TSHARK to its path")
    return path


def read_pyshark(path: str, decapsulate: bool = True):
    """(packets table, frame index) through tshark; read_capture sets ``attrs``."""
    tshark = tshark_path()
    # probekit's own container walk gives the interface table and the file offsets of payloads
    with open_bytes(path) as buf:
        idx = index_frames(buf, path)
    try:
        rows = run_in_thread(lambda: _dissect(path, tshark, decapsulate))
    except Exception as e:  # pyshark raises its own classes for tshark's refusals
        if isinstance(e, (BackendError, CaptureError)):
            raise
        last = str(e).strip().splitlines()
        raise CaptureError(path, None, "tshark could not dissect the file: "
                                       + next((ln for ln in last if ln.startswith("Last error")), last[0] if last else
                                              type(e).__name__)) from None
    if len(rows) != len(idx):
        raise CaptureError(path, None, f"tshark dissected {len(rows)} frames, the file holds {len(idx)} "
                                       "packets (tshark shows some pcapng non-packet blocks as frames)")
    for i, row in enumerate(rows):
        row["frame"] = i + 1
        row["iface"] = int(idx.iface[i])
        row["linktype"] = idx.interfaces[int(idx.iface[i])].linktype
        if row.get("payload_rel") is not None:
            row["payload_off"] = int(idx.data_off[i]) + row.pop("payload_rel")
    return _to_table(rows), idx


def run_in_thread(fn):
    """Run ``fn`` in a fresh thread with its own asyncio loop (works inside Jupyter)."""
    box: dict = {}

    def target():
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        _watch_children(loop)
        try:
            box["value"] = fn()
        except BaseException as e:  # re-raised in the caller's thread
            box["error"] = e
        # the loop is left to the garbage collector: pyshark's Capture.__del__ still runs close() on it

    t = threading.Thread(target=target, name="probekit-pyshark", daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def _watch_children(loop) -> None:
    """Reap tshark through a pidfd watcher bound to this loop. pyshark installs a SafeChildWatcher on
    the main thread's loop, which then reaps (and loses) the exit status of tshark processes started
    from other loops: "Unknown child process pid N, will report returncode 255"."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        watcher: asyncio.AbstractChildWatcher
        try:
            watcher = asyncio.PidfdChildWatcher()
        except (AttributeError, OSError):  # pragma: no cover - old kernels: threads reap each child
            watcher = asyncio.ThreadedChildWatcher()
        watcher.attach_loop(loop)
        asyncio.set_child_watcher(watcher)


def _dissect(path: str, tshark: str, decapsulate: bool = True) -> list[dict]:
    import pyshark

    cap = pyshark.FileCapture(path, keep_packets=False, tshark_path=tshark, override_prefs=TSHARK_PREFS)
    rows = []
    try:
        try:
            for pkt in cap:
                rows.append(_row(pkt, decapsulate))
        except Exception as e:   # raised at the end of the frames, when pyshark cleans tshark up
            if not _lost_exit_status(e):
                raise
    finally:
        try:
            cap.close()
        except Exception as e:
            if not _lost_exit_status(e):
                raise
            cap._running_processes.clear()   # tshark is gone: pyshark's __del__ must not report it again
    return rows


def _lost_exit_status(e: Exception) -> bool:
    """pyshark's crash report when asyncio lost tshark's exit status (its child was reaped elsewhere:
    "exit status already read: will report returncode 255") after every frame was read; the caller
    still checks that tshark gave one row per frame of the file."""
    return type(e).__name__ == "TSharkCrashException" and "(retcode: 255)" in str(e)


def _get(layer, name, conv=int):
    v = layer.get_field(name) if layer is not None else None
    if v is None or v == "":
        return None
    if conv is int:
        return int(str(v), 0)
    return conv(v)


def _layer(layers, name):
    for layer in layers:
        if layer.layer_name == name:
            return layer
    return None


_IP_LAYERS = ("ip", "ipv6")
# tshark's layer name for the encapsulations carried in UDP -> the ``tunnel`` category and tunnel_id field
_UDP_TUNNELS = {"vxlan": ("vxlan", "vni"), "geneve": ("geneve", "vni"), "gtp": ("gtpu", "teid"),
                "teredo": ("teredo", None), "ayiya": ("ayiya", None)}


def _tunnels(layers, names, at: int):
    """Open the tunnels tshark dissected after the IP layer at ``at``, as probekit.capture.encaps does.
    Returns (index where the innermost packet's layers start, outermost kind, its id, depth)."""
    start, kind, tid, depth, cookie = at, None, None, 0, None
    ip = at
    while depth < MAX_DEPTH and ip + 1 < len(names):
        nxt = names[ip + 1]
        if nxt in _IP_LAYERS:                          # IP-in-IP, 6in4, IPv6-in-IPv6
            k = "ipip" if nxt == "ip" else ("ip6ip6" if names[ip] == "ipv6" else "6in4")
            t, inner = None, ip + 1
        elif nxt == "gre" or (nxt == "udp" and ip + 2 < len(names) and names[ip + 2] == "gre"):
            g0 = ip + (1 if nxt == "gre" else 2)       # GRE, or GRE-in-UDP (RFC 8086, UDP 4754)
            erspan = g0 + 1 < len(names) and names[g0 + 1] == "erspan"
            k = "erspan" if erspan else "gre"
            g = layers[g0 + 1] if erspan else layers[g0]
            t = _get(g, "spanid") if erspan else (_get(g, "key") if _get(g, "key") is not None else _get(g, "call_id"))
            inner = g0 + (2 if erspan else 1)
        elif nxt == "udp" and ip + 2 < len(names) and names[ip + 2] in _UDP_TUNNELS and \
                (names[ip + 2] != "ayiya" or (ip + 3 < len(names) and names[ip + 3] in _IP_LAYERS)):
            # (an AYIYA header other than a forward of an IP packet carries none: the row stays UDP)
            k, field = _UDP_TUNNELS[names[ip + 2]]
            t = _get(layers[ip + 2], field) if field else None
            inner = ip + 3
        else:
            break
        if depth == 0:
            kind, tid = k, t
            cookie = _gwlb_cookie(layers[ip + 2]) if k == "geneve" else None
        depth += 1
        start = inner
        ip = next((j for j in range(inner, len(names)) if names[j] in _IP_LAYERS + ("arp",)), None)
        if ip is None or names[ip] == "arp":
            break
    return start, kind, tid, depth, cookie


def _gwlb_cookie(geneve) -> int | None:
    """The AWS GWLB flow cookie among the GENEVE options tshark lists (class, type, and for options it
    does not know, their data 4 bytes after the option's start)."""
    classes, types = geneve.get_field("option_class"), geneve.get_field("option_type")
    data = geneve.get_field("option_unknown_data")
    if classes is None or types is None or data is None:
        return None
    by_pos = {int(d.pos): d.raw_value for d in data.all_fields}
    for c, t in zip(classes.all_fields, types.all_fields):
        if int(str(c.show), 0) == GENEVE_CLASS_AWS and int(str(t.show), 0) == GWLB_FLOW_COOKIE:
            raw = by_pos.get(int(c.pos) + 4)
            if raw is not None and len(raw) == 8:
                return int(raw, 16)
    return None


def _row(pkt, decapsulate: bool = True) -> dict:
    fr = pkt.frame_info
    epoch = fr.get_field("time_epoch")
    ts_ns = None
    if epoch:  # pcapng simple packet blocks carry no time
        sec, _, frac = str(epoch).partition(".")
        ts_ns = int(sec) * 1_000_000_000 + int((frac + "000000000")[:9])
    row: dict = {
        "ts_ns": ts_ns,
        "caplen": int(fr.cap_len),
        "wirelen": int(fr.len),
        "truncated": int(fr.cap_len) < int(fr.len),
        "malformed": _layer(pkt.layers, "_ws.malformed") is not None,
    }
    layers = pkt.layers
    names = [layer.layer_name for layer in layers]
    vlan = next((lay for lay in layers if lay.layer_name in ("vlan", "ieee8021ad")), None)
    row["vlan"] = _get(vlan, "id")
    at = next((j for j, n in enumerate(names) if n in _IP_LAYERS + ("arp",)), None)
    depth = 0
    if at is not None and names[at] != "arp":
        start, kind, tid, depth, cookie = _tunnels(layers, names, at)
    if depth and not decapsulate:     # the outer packet alone: its IP header and UDP header, if any
        end = at + (2 if names[at + 1] == "udp" else 1)
        layers, names = layers[:end], names[:end]
    elif depth:
        outer = layers[at]
        v6 = names[at] == "ipv6"
        row.update(tunnel=kind, tunnel_depth=depth, tunnel_id=tid, gwlb_flow_cookie=cookie,
                   outer_src=_get(outer, "src", _addr6 if v6 else str),
                   outer_dst=_get(outer, "dst", _addr6 if v6 else str),
                   outer_ttl=_get(outer, "hlim" if v6 else "ttl"))
        layers, names = layers[start:], names[start:]
    ip, ip6 = _layer(layers, "ip"), _layer(layers, "ipv6")
    first_l3 = next((n for n in names if n in ("ip", "ipv6", "arp")), None)
    if first_l3 == "ip":
        row.update(l3="ipv4", src=_get(ip, "src", str), dst=_get(ip, "dst", str), ip_proto=_get(ip, "proto"),
                   ip_len=_get(ip, "len"),
                   ip_hdr_len=_get(ip, "hdr_len"), ttl=_get(ip, "ttl"), ip_id=_get(ip, "id"),
                   ip_df=bool(_get(ip, "flags_df")), ip_mf=bool(_get(ip, "flags_mf")),
                   frag_offset=None if _get(ip, "frag_offset") is None else _get(ip, "frag_offset") * 8)
        first_frag = not row["frag_offset"]
    elif first_l3 == "ipv6":
        plen = _get(ip6, "plen")
        row.update(l3="ipv6", src=_get(ip6, "src", _addr6), dst=_get(ip6, "dst", _addr6),
                   ip_len=None if plen is None else 40 + plen, ttl=_get(ip6, "hlim"))
        frag_off = _get(ip6, "fraghdr_offset")
        if frag_off is not None:
            row.update(ip_id=_get(ip6, "fraghdr_ident"), ip_mf=bool(_get(ip6, "fraghdr_more")),
                       frag_offset=frag_off * 8)
        first_frag = not frag_off
        l4 = next((n for n in names if n in ("tcp", "udp", "icmpv6")), None)
        row["ip_proto"] = {"tcp": 6, "udp": 17, "icmpv6": 58}.get(l4 or "", _get(ip6, "fraghdr_nxt") or _get(ip6, "nxt"))
        if l4 is not None:
            first = "type" if l4 == "icmpv6" else "srcport"
            l4pos = getattr(_layer(layers, l4).get_field(first), "pos", None)
            v6pos = getattr(ip6.get_field("version"), "pos", None)
            if l4pos is not None and v6pos is not None:
                row["ip_hdr_len"] = int(l4pos) - int(v6pos)
    elif first_l3 == "arp":
        row["l3"] = "arp"
        return row
    else:
        row["l3"] = "other" if len(names) > 1 and names[1] not in ("data", "_ws.malformed") else "none"
        return row
    if not first_frag:
        return row
    tcp, udp = _layer(layers, "tcp"), _layer(layers, "udp")
    icmp = _layer(layers, "icmp") or _layer(layers, "icmpv6")
    if tcp is not None:
        hl = _get(tcp, "hdr_len")
        row.update(sport=_get(tcp, "srcport"), dport=_get(tcp, "dstport"), tcp_flags=_get(tcp, "flags"),
                   tcp_seq=_get(tcp, "seq_raw") if tcp.get_field("seq_raw") else _get(tcp, "seq"),
                   tcp_ack=_get(tcp, "ack_raw") if tcp.get_field("ack_raw") else _get(tcp, "ack"),
                   tcp_win=_get(tcp, "window_size_value"), tcp_hdr_len=hl, payload_len=_get(tcp, "len"))
        _payload(row, tcp, "srcport", hl)
    elif udp is not None:
        length = _get(udp, "length")
        row.update(sport=_get(udp, "srcport"), dport=_get(udp, "dstport"))
        ip_l4 = row["ip_len"] - row["ip_hdr_len"] if row.get("ip_hdr_len") else None
        row["payload_len"] = (ip_l4 if ip_l4 is not None else length) - 8
        _payload(row, udp, "srcport", 8)
    elif icmp is not None:
        t = _get(icmp, "type")
        row.update(icmp_type=t, icmp_code=_get(icmp, "code"))
        echo = _ICMP_ECHO if row["l3"] == "ipv4" else ICMPV6_ID_SEQ_TYPES
        if t in echo:
            row.update(icmp_id=_get(icmp, "ident") if row["l3"] == "ipv4" else _get(icmp, "echo_identifier"),
                       icmp_seq=_get(icmp, "seq") if row["l3"] == "ipv4" else _get(icmp, "echo_sequence_number"))
        if row.get("ip_hdr_len"):
            row["payload_len"] = row["ip_len"] - row["ip_hdr_len"] - 8
            _payload(row, icmp, "type", 8)
    return row


def _payload(row: dict, layer, first_field: str, l4_hdr: int | None) -> None:
    """Payload position within the frame: where tshark says the L4 header starts, plus its length."""
    if l4_hdr is None or row.get("payload_len") is None:
        return
    f = layer.get_field(first_field)
    pos = getattr(f, "pos", None)
    if pos is None:
        return
    start = int(pos) + l4_hdr
    row["payload_rel"] = start
    row["payload_caplen"] = max(0, min(row["payload_len"], row["caplen"] - start))


def _addr6(text: str) -> str:
    return socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, str(text)))


def dissect(path, frame: int) -> str:
    """tshark's full dissection of one frame, as Wireshark's packet details pane shows it (``tshark -V``).
    tshark runs as a plain subprocess with no standard input, so this works inside a running Jupyter kernel
    (no event loop involved, none of the kernel's descriptors inherited)."""
    import subprocess
    tshark = tshark_path()
    path = str(path)
    try:
        p = subprocess.run([tshark, "-n", "-r", path, "-Y", f"frame.number == {int(frame)}", "-V"],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, close_fds=True)
    except subprocess.TimeoutExpired:
        raise CaptureError(path, None, f"tshark took over 120 s to dissect frame {frame}") from None
    if p.returncode != 0:
        raise CaptureError(path, None, f"tshark could not dissect it: {(p.stderr or '').strip().splitlines()[-1:]}")
    text = p.stdout.strip()
    if not text:
        raise CaptureError(path, None, f"no frame {frame} in the capture")
    return text
