"""What real tools put on the wire, as ordered rules over per-stream features: which tool sent a probe
stream, with readable evidence. Recorded for real in the lab (``probekit.live.tools``, captures/tools/).

Features are computed once per source stream by ``fingerprint.stream_features`` (compiled aggregates over
the probes table and the request headers); the rules then run once per stream (there are few), first
match wins. Tools that are
identical on the wire share one label naming all of them (e.g. fping, smokeping's FPing and Zabbix's
icmpping all run fping).
"""
from __future__ import annotations

import numpy as np

__all__ = ["classify_stream", "payload_shape", "shape_from_verdict", "TOOL_LABELS"]

TS_WINDOW_S = 86_400
WINDOWS_FILL = b"abcdefghijklmnopqrstuvwabcdefghi"

TOOL_LABELS = {
    "cwnm-like": "CloudWatch Network Monitor (or a prober sending fresh random payloads like it)",
    "iputils-ping": "iputils ping (also monitoring-plugins check_ping and smokeping's FPing-less probes, which run it)",
    "inetutils-ping": "GNU inetutils ping",
    "busybox-ping": "busybox ping",
    "fping": "fping (also smokeping's FPing and Zabbix's icmpping, which run it)",
    "scamper": "scamper (ping; trace, whose default udp-paris keeps one UDP 4-tuple for every probe)",
    "check_icmp": "monitoring-plugins check_icmp",
    "oping": "oping / liboping",
    "blackbox-exporter": "prometheus-blackbox-exporter (icmp module)",
    "windows-ping": "Windows ping",
    "nping": "nmap's nping",
    "hping3": "hping3",
    "mtr": "mtr",
    "traceroute": "traceroute (Linux: UDP to rising ports by default, -I for ICMP)",
    "tcptraceroute": "tcptraceroute",
    "nmap": "nmap SYN scan",
    "zmap": "zmap",
    "masscan": "masscan",
    "tcp-connect": "a plain connect() client (check_tcp, blackbox-exporter tcp_connect, any socket connect)",
    "unknown": "no known tool",
}
"""Every label :func:`classify_stream` gives, with what it names."""


def payload_shape(p: bytes, frame_s: float) -> tuple[str, str]:
    """(shape, evidence) of one request payload: text, zeros, constant, timeval+pattern layouts, ascending
    pattern, windows alphabet or opaque."""
    n = len(p)
    if n == 0:
        return "empty", "no payload"
    a = np.frombuffer(p, np.uint8)
    if not a.any():
        return "zeros", f"{n}-byte all-zero payload"
    if n >= 4 and bool(np.all(a == a[0])):
        return f"constant 0x{a[0]:02x}", f"{n} × 0x{a[0]:02x} ({chr(a[0]) if 32 <= a[0] < 127 else '.'!r})"
    if p.startswith(WINDOWS_FILL[: min(n, 32)]):
        return "windows alphabet", f"{n}-byte 'abcdefghijklmnopqrstuvwabcdefghi' fill"
    d = np.diff(a.astype(np.int64)) % 256  # type: ignore[operator]
    if n >= 8 and bool(np.all(d == 1)):
        return "ascending", f"ascending bytes from 0x{a[0]:02x} ({n} bytes)"
    if n >= 8 and bool(np.all((a >= 32) & (a < 127) | (a == 10) | (a == 13) | (a == 0))) and a[:8].all():
        text = p.split(b"\0")[0].decode("ascii", "replace")
        return "text", f"payload is the ASCII text {text[:60]!r}"
    tv = n >= 16 and abs(int.from_bytes(p[:8], "little") - frame_s) < TS_WINDOW_S \
        and int.from_bytes(p[8:16], "little") < 1_000_000
    if tv:
        rest = a[16:].astype(np.int64)
        idx = np.arange(16, n)
        if rest.size and bool(np.all(rest == idx % 256)):
            return "timeval+iputils", "a struct timeval (the send time), then bytes 0x10, 0x11, … (iputils' fill)"
        if rest.size and bool(np.all(rest == (idx - 16) % 256)):
            return "timeval+inetutils", "a struct timeval (the send time), then bytes 0x00, 0x01, … (inetutils' fill)"
        if rest.size >= 2 and not a[18:].any():
            return "timeval+id", (f"a struct timeval (the send time), a 16-bit ping id {int.from_bytes(p[16:18], 'little')}, "
                                  f"then zeros ({n} bytes)")
        return "timeval", "a struct timeval near the frame time, then other bytes"
    if n > 4 and a[:4].any() and not a[4:].any():
        return "u32+zeros", f"a 32-bit counter/timestamp, then {n - 4} zero bytes"
    return "opaque", f"{n} bytes without a known layout"


def shape_from_verdict(v) -> tuple[str, str]:
    """(shape, evidence) from a payload verdict row when no payload bytes are at hand (chunked, Dask)."""
    fill = v.get("fill")
    fill = fill if isinstance(fill, str) else ""
    length = v.get("length", 0)
    length = 0 if length is None or length != length else int(length)
    verdict = str(v.get("verdict"))
    if length == 0:
        return "empty", "no payload"
    if fill == "zeros":
        return "zeros", f"{length}-byte all-zero payload"
    if fill == "windows alphabet":
        return "windows alphabet", f"{length}-byte 'abcdefghijklmnopqrstuvwabcdefghi' fill"
    if fill.startswith("constant"):
        return fill, f"{length} × {fill.removeprefix('constant ')}"
    if verdict == "timestamped" and fill.startswith("iputils"):
        return "timeval+iputils", "a struct timeval (the send time), then bytes 0x10, 0x11, … (iputils' fill)"
    return "opaque", f"{length} bytes, payload verdict {verdict}"


def _ttl_limited(r) -> bool:
    return r["ttl_min"] <= 3 and r["ttls"] >= 2


def _udp_tool(r, shape: str, ev: str, ttl: str) -> tuple[str, str]:
    """UDP probes: the tracers. ``r["ports"]``: destination ports the stream covers (streams.tracer_ports)."""
    ports = int(r.get("ports", 1) or 1)
    if not _ttl_limited(r):   # said without the payload's layout: the chunked drivers have no payload bytes
        top = r["ttl_max"]
        at = f"{int(top)}" if np.isfinite(top) else "?"
        return "unknown", f"UDP requests at one TTL ({at}): no tracer; an application's or unknown"
    rising = f"destination ports rising over {ports}" if ports > 1 else "one destination port"
    if shape == "ascending" and ports > 1:
        return "traceroute", f"{ttl}, {rising}, a new source port per probe, {ev} (traceroute's '@ABC…' fill)"
    if shape == "zeros" and ports > 1 and r["sports"] == 1:
        return "mtr", f"{ttl}, {rising} from one source port, {ev}"
    if ports == 1 and r["sports"] == 1 and r.get("id_step_one"):
        return "scamper", (f"{ttl}, one UDP 4-tuple for every probe (Paris traceroute: scamper's udp-paris), "
                           f"IP ids counting up by one, {ev}")
    return "unknown", f"{ttl}, {rising}, {ev}"


def classify_stream(r, sources: int = 1, even: bool = False) -> tuple[str, str]:
    """(tool, evidence) for one stream's features (a mapping: see ``fingerprint.fingerprint``); first
    matching rule wins."""
    proto, shape, ev = str(r["protocol"]), r["shape"], r["shape_evidence"]
    n = int(r["probes"])
    same_payload = n > 1 and r["payloads"] == 1
    ttl = f"TTL {int(r['ttl_min'])}–{int(r['ttl_max'])} rising (a tracer)"
    if proto in ("icmp", "icmpv6"):
        text = ev if shape == "text" else ""
        if "Prometheus Blackbox Exporter" in text:
            return "blackbox-exporter", text
        if "liboping" in text:
            return "oping", text
        if _ttl_limited(r):
            if shape == "zeros":
                return "mtr", f"{ttl}, {ev}"
            if shape == "ascending":
                return "traceroute", f"{ttl}, {ev}"
            return "unknown", f"{ttl}, {ev}"
        if shape == "timeval+iputils":
            return "iputils-ping", ev
        if shape == "timeval+inetutils":
            return "inetutils-ping", ev
        if shape == "timeval+id":
            return "check_icmp", ev
        if shape == "u32+zeros":
            return "busybox-ping", ev
        if shape == "windows alphabet":
            return "windows-ping", ev
        if shape == "zeros":
            random_id = n >= 3 and r["id_step_max"] > 1024
            if random_id:
                return "scamper", f"{ev}, IP id changes at random between probes (scamper writes its own IP header)"
            return "fping", f"{ev}, IP ids from the kernel"
        fresh = r.get("verdict") == "random" or (shape == "opaque" and r["payloads"] == n)
        if same_payload and shape == "opaque":
            return "nping", ("one random payload repeated in every probe"
                             + (", same IP id every probe" if r["ip_ids"] == 1 else ""))
        if shape == "opaque" and fresh:
            size = int(r["size"])
            why = (f"{size}-byte ICMP message, fresh random payload in every probe, no timestamp, "
                   f"{sources} source(s){' evenly' if even else ''}")
            return ("cwnm-like" if size == 56 or (sources >= 2 and even) else "unknown"), why
        return "unknown", f"payload verdict {r.get('verdict', '?')}: {ev}"
    if proto == "udp":
        return _udp_tool(r, shape, ev, ttl)
    # TCP SYNs
    win, thl = r["win"], r["thl"]
    w = "?" if np.isnan(win) else int(win)
    if win == 0 and thl == 20:
        return "tcptraceroute", ("SYN with window 0 and no TCP options, one source port and sequence number re-sent"
                                 if r["resent"] else "SYN with window 0 and no TCP options")
    if _ttl_limited(r):
        return "mtr", f"{ttl}, SYNs from the kernel's connect() (window {w}, {int(thl)}-byte header)"
    if shape == "constant 0x58":
        return "hping3", f"{ev}, window {w}" + (", source port +1 per probe" if r["sport_step"] == 1 else "")
    if r["ip_id_first"] == 54321 and r["ip_ids"] == 1:
        return "zmap", f"IP id 54321 (zmap's fixed value), window {w}, TTL {int(r['ttl_max'])}"
    if r["ttl_max"] == 255 and win == 1024 and thl == 20:
        return "masscan", "TTL 255, window 1024, no TCP options (masscan's template SYN)"
    if win == 1024 and thl == 24 and r["plen"] == 0:
        return "nmap", "window 1024 and a lone MSS option (nmap's SYN-scan probe)"
    if (r["sports"] == 1 and r["seqs"] == 1 and (n > 1 or r["resent"] >= 2)) or win == 1480:
        return "nping", f"same source port and sequence number every probe, window {w}"
    if shape == "opaque" and r["plen"] > 0 and r.get("verdict", "random") == "random":
        why = (f"SYN carrying {int(r['plen'])} fresh random payload bytes ({int(r['size'])}-byte segment), window "
               f"{w}, prober RST after {r['reset']:.0%} of SYN/ACKs, {sources} source(s){' evenly' if even else ''}")
        return "cwnm-like", why
    if r["plen"] == 0 and thl is not None and thl >= 32:
        return "tcp-connect", (f"SYN without payload, window {w}, {int(thl)}-byte header with the kernel's options: "
                               "a plain connect() (check_tcp, blackbox tcp_connect, …), not Network Monitor")
    if r["plen"] == 0:
        return "unknown", f"SYN without payload, window {w}: a plain connect() or scanner, not Network Monitor"
    return "unknown", f"payload verdict {r.get('verdict', '?')}: {ev}"
