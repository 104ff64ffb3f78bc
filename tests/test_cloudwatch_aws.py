"""``probekit cloudwatch fetch`` against real local servers: boto3 talks to a moto server (CloudWatch's
APIs, started here on loopback) and — since moto has no Network Monitor API — to a small loopback HTTP
server in this file that answers GetMonitor with a document built and checked against botocore's own
service model (networkmonitor 2023-08-01, rest-json). Then the fetched file is audited against the
shipped target-down capture."""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cloudwatch_shapes import check_shape, output_shape
from probekit.capture.cloudwatch import read_json_documents
from probekit.synth import read_truth
from probekit.synth.cloudwatch import cloudwatch_periods

ROOT = Path(__file__).resolve().parents[1]
TD = ROOT / "captures" / "target-down.pcap"
MONITOR = "probekit-target-down"
KEY_ID = "AKIAPROBEKITTEST0001"
SECRET = "probekit/secret+do-not-print-0123456789ab"

boto3 = pytest.importorskip("boto3", reason="boto3 is in probekit's [aws] and [test] extras")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _moto_server() -> str:
    exe = Path(sys.executable).with_name("moto_server")
    found = str(exe) if exe.exists() else shutil.which("moto_server")
    if not found:
        msg = "moto_server is not installed (pip install 'moto[server]'; it is in probekit's [test] extra)"
        if os.environ.get("CI"):
            pytest.fail("CI must have moto[server]: " + msg)
        pytest.skip(msg)
    return found


@pytest.fixture(scope="module")
def moto_url():
    port = _free_port()
    proc = subprocess.Popen([_moto_server(), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=2).read()
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _wire(doc, shape):
    """``doc`` (ISO 8601 timestamps, as the CLI prints) in rest-json's wire form: timestamps as epoch
    seconds (the protocol's default), structures/lists walked through botocore's model."""
    t = shape.type_name
    if t == "structure":
        return {k: _wire(v, shape.members[k]) for k, v in doc.items()}
    if t == "list":
        return [_wire(v, shape.member) for v in doc]
    if t == "timestamp":
        return dt.datetime.fromisoformat(doc).timestamp()
    return doc


class _NetworkMonitor(BaseHTTPRequestHandler):
    """GET /monitors/{monitorName} (GetMonitor's requestUri in botocore's model)."""
    monitors: dict = {}
    seen: list = []

    def do_GET(self):
        self.seen.append((self.path, self.headers.get("Authorization", "")))
        name = self.path.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
        if name == "forbidden":
            # an error whose message echoes the caller's access key id: it must not reach the user
            return self._send(403, {"message": f"User with access key {KEY_ID} is not authorized"},
                              "AccessDeniedException")
        if not self.path.startswith("/monitors/") or name not in self.monitors:
            return self._send(404, {"message": f"Monitor {name} not found"}, "ResourceNotFoundException")
        self._send(200, self.monitors[name])

    def _send(self, code, body, error=None):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if error:
            self.send_header("x-amzn-ErrorType", error)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


@pytest.fixture(scope="module")
def networkmonitor_url():
    shape = output_shape("networkmonitor", "GetMonitor")
    (doc,) = read_json_documents(TD.with_name(TD.name + ".monitor.json"))
    check_shape(doc, shape)
    wire = _wire(doc, shape)
    check_shape(wire, shape)
    _NetworkMonitor.monitors = {MONITOR: wire}
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _NetworkMonitor)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()


def _env(moto_url, nm_url, tmp_path, **drop_or_set):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=KEY_ID, AWS_SECRET_ACCESS_KEY=SECRET, AWS_DEFAULT_REGION="us-east-1",
               AWS_ENDPOINT_URL_CLOUDWATCH=moto_url, AWS_ENDPOINT_URL_NETWORKMONITOR=nm_url,
               AWS_CONFIG_FILE=str(tmp_path / "no-config"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-creds"),
               AWS_EC2_METADATA_DISABLED="true", PYTHONPATH=str(ROOT))
    for k, v in drop_or_set.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


def _probekit(env, *args):
    return subprocess.run([sys.executable, "-m", "probekit", *args], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=300)


@pytest.fixture(scope="module")
def published(moto_url):
    """CloudWatch's datapoints for the target-down monitor, put into moto with boto3 as Network Monitor
    would publish them (namespace AWS/NetworkMonitor, dimensions Monitor and Probe)."""
    truth = read_truth(TD)
    per = cloudwatch_periods(truth, MONITOR, 30)
    cw = boto3.client("cloudwatch", endpoint_url=moto_url, region_name="us-east-1", aws_access_key_id=KEY_ID,
                      aws_secret_access_key=SECRET)
    data = []
    for r in per.itertuples():
        dims = [{"Name": "Monitor", "Value": MONITOR}, {"Name": "Probe", "Value": r.probe_id}]
        ts = dt.datetime.fromtimestamp(r.period_start_ns / 1e9, dt.UTC)
        data.append({"MetricName": "PacketLoss", "Dimensions": dims, "Timestamp": ts, "Value": float(r.loss_pct),
                     "Unit": "Percent"})
        if r.rtt_us == r.rtt_us:
            data.append({"MetricName": "RTT", "Dimensions": dims, "Timestamp": ts, "Value": float(r.rtt_us),
                         "Unit": "Microseconds"})
    for k in range(0, len(data), 20):
        cw.put_metric_data(Namespace="AWS/NetworkMonitor", MetricData=data[k:k + 20])
    return truth


def test_fetch_from_moto_and_the_loopback_network_monitor_then_audit(moto_url, networkmonitor_url, published, tmp_path):
    env = _env(moto_url, networkmonitor_url, tmp_path)
    out = tmp_path / "cw.json"
    p = _probekit(env, "cloudwatch", "fetch", "--monitor", MONITOR, "--start", "2026-01-01T00:00:00Z",
                  "--end", "2026-01-01T00:05:00Z", "-o", str(out))
    assert p.returncode == 0, p.stderr
    assert "2 probe(s)" in p.stderr
    text = out.read_text()
    assert SECRET not in text and KEY_ID not in text and SECRET not in p.stdout + p.stderr
    docs = read_json_documents(out)
    check_shape(docs[0], output_shape("networkmonitor", "GetMonitor"))
    for page in docs[1:]:
        check_shape(page, output_shape("cloudwatch", "GetMetricData"))
    assert sum(len(r["Values"]) for page in docs[1:] for r in page["MetricDataResults"]) == \
        len(cloudwatch_periods(published, MONITOR)) * 2 - cloudwatch_periods(published, MONITOR)["rtt_us"].isna().sum()
    # boto3 signed its requests (SigV4) with the key id, never sending the secret
    assert all(a.startswith("AWS4-HMAC-SHA256 Credential=" + KEY_ID) for _, a in _NetworkMonitor.seen)
    assert _NetworkMonitor.seen[-1][0] == f"/monitors/{MONITOR}"

    a = _probekit(env, "audit", str(TD), "--cloudwatch", str(out), "--json")
    assert a.returncode == 0, a.stderr
    audit = json.loads(a.stdout)["audit"]
    zero = {r["period_start_ns"] for r in audit if r["finding"] == "zero_loss_but_no_replies"}
    t = published[published["protocol"] == "tcp"]
    per = t.assign(p=t["send_ns"] // 30_000_000_000 * 30_000_000_000).groupby("p")["answered"].any()
    assert zero == set(per.index[~per.to_numpy()]) and len(zero) >= 5
    assert {r["protocol"] for r in audit if r["finding"] == "zero_loss_but_no_replies"} == {"tcp"}
    assert all(r["agrees"] for r in audit if r["protocol"] == "icmp")


@pytest.mark.parametrize("change,needle", [
    (dict(AWS_ACCESS_KEY_ID=None, AWS_SECRET_ACCESS_KEY=None), "no credentials"),
    (dict(AWS_DEFAULT_REGION=None, AWS_REGION=None), "no region"),
])
def test_credential_and_region_errors_are_one_line(moto_url, networkmonitor_url, tmp_path, change, needle):
    p = _probekit(_env(moto_url, networkmonitor_url, tmp_path, **change), "cloudwatch", "fetch", "--monitor", MONITOR,
                  "-o", str(tmp_path / "cw.json"))
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("probekit: error: AWS:") and needle in lines[0], p.stderr
    assert "Traceback" not in p.stderr and not (tmp_path / "cw.json").exists()


@pytest.mark.parametrize("monitor,needle", [("no-such-monitor", "ResourceNotFoundException"),
                                            ("forbidden", "AccessDeniedException")])
def test_service_errors_are_one_line_and_never_show_a_credential(moto_url, networkmonitor_url, tmp_path, monitor,
                                                                  needle):
    p = _probekit(_env(moto_url, networkmonitor_url, tmp_path), "cloudwatch", "fetch", "--monitor", monitor,
                  "-o", str(tmp_path / "cw.json"))
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "GetMonitor" in lines[0], p.stderr
    assert KEY_ID not in p.stderr + p.stdout and SECRET not in p.stderr + p.stdout


def test_no_connection_is_one_line(networkmonitor_url, tmp_path):
    dead = f"http://127.0.0.1:{_free_port()}"
    env = _env(dead, dead, tmp_path, AWS_MAX_ATTEMPTS="1")
    p = _probekit(env, "cloudwatch", "fetch", "--monitor", MONITOR, "-o", str(tmp_path / "cw.json"))
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("probekit: error: AWS:") and "Traceback" not in p.stderr
