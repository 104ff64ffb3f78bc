"""``probekit cloudwatch fetch``: a monitor's probes and their CloudWatch metrics, from AWS, with boto3.

Credentials and region come from the user's normal chain (environment, ``AWS_PROFILE``/``--profile``,
config files, instance role; endpoints from ``AWS_ENDPOINT_URL``/``AWS_ENDPOINT_URL_<SERVICE>``); nothing
of them is written or printed. The output file holds the ``get_monitor`` response, then every
``get_metric_data`` page, each as one JSON document the way the AWS CLI prints it (ISO 8601 times) —
which ``probekit.capture.cloudwatch.read_cloudwatch`` reads like any other export.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path

from ..errors import ProbekitError

__all__ = ["fetch_cloudwatch", "metric_queries", "NAMESPACE", "METRICS"]

NAMESPACE = "AWS/NetworkMonitor"
METRICS = ("PacketLoss", "RTT", "HealthIndicator")  # an absent metric comes back as an empty series
_MAX_QUERIES = 500  # GetMetricData's limit per call
_SECRETS = re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")


def metric_queries(monitor: str, probes: list[dict], period_s: int, stat: str = "Average") -> list[dict]:
    """GetMetricData queries for every probe's PacketLoss, RTT and HealthIndicator; the labels name
    monitor, probe, metric and statistic (GetMetricData returns no dimensions, so the reader takes them
    from the label)."""
    out = []
    for i, p in enumerate(probes):
        for metric in METRICS:
            out.append({"Id": f"m{i}_{metric.lower()}",
                        "Label": f"{metric} {stat} Monitor={monitor} Probe={p['probeId']}",
                        "MetricStat": {"Metric": {"Namespace": NAMESPACE, "MetricName": metric,
                                                  "Dimensions": [{"Name": "Monitor", "Value": monitor},
                                                                 {"Name": "Probe", "Value": p["probeId"]}]},
                                       "Period": int(period_s), "Stat": stat},
                        "ReturnData": True})
    return out


def _time(x, default: dt.datetime) -> dt.datetime:
    if x is None:
        return default
    if isinstance(x, dt.datetime):
        return x if x.tzinfo else x.replace(tzinfo=dt.UTC)
    try:
        t = dt.datetime.fromisoformat(str(x).replace("Z", "+00:00"))
    except ValueError:
        raise ProbekitError(f"{x!r}: not an ISO 8601 time (e.g. 2026-01-01T00:00:00Z)") from None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _jsonable(o):
    if isinstance(o, dt.datetime):
        return o.astimezone(dt.UTC).isoformat()
    raise TypeError(type(o).__name__)


def _clean(resp: dict) -> dict:
    return {k: v for k, v in resp.items() if k != "ResponseMetadata"}


def _scrub(text: str, session) -> str:
    """The error text without any credential the session holds (or that looks like an access key id)."""
    try:
        creds = session.get_credentials()
        frozen = creds.get_frozen_credentials() if creds else None
    except Exception:
        frozen = None
    for secret in (getattr(frozen, "secret_key", None), getattr(frozen, "token", None),
                   getattr(frozen, "access_key", None)):
        if secret:
            text = text.replace(secret, "***")
    return _SECRETS.sub("***", text)


def fetch_cloudwatch(monitor: str, out, start=None, end=None, *, region: str | None = None,
                     profile: str | None = None, stat: str = "Average") -> dict:
    """Fetch monitor ``monitor``'s description and every probe's PacketLoss/RTT between ``start`` and
    ``end`` (ISO 8601 or datetime; default the last 3 hours) into ``out``; returns counts. Every failure
    (no credentials, no region, access denied, unknown monitor, no connection) is one ProbekitError line."""
    try:
        import boto3
        import botocore.exceptions as bx
    except ImportError:
        raise ProbekitError("boto3 is not installed: pip install 'probekit[aws]'") from None
    try:
        session = boto3.Session(profile_name=profile, region_name=region)
    except bx.ProfileNotFound as e:
        raise ProbekitError(f"AWS: {e}") from None
    now = dt.datetime.now(dt.UTC)
    end_t = _time(end, now)
    start_t = _time(start, end_t - dt.timedelta(hours=3))
    if start_t >= end_t:
        raise ProbekitError(f"--start {start_t.isoformat()} is not before --end {end_t.isoformat()}")
    try:
        nm = session.client("networkmonitor")
        cw = session.client("cloudwatch")
        mon = _clean(nm.get_monitor(monitorName=monitor))
        probes = mon.get("probes") or []
        if not probes:
            raise ProbekitError(f"monitor {monitor} has no probes: nothing to fetch")
        period = int(mon.get("aggregationPeriod") or 60)
        queries = metric_queries(monitor, probes, period, stat)
        pages = []
        for k in range(0, len(queries), _MAX_QUERIES):
            token = None
            while True:
                kw = dict(MetricDataQueries=queries[k:k + _MAX_QUERIES], StartTime=start_t, EndTime=end_t,
                          ScanBy="TimestampDescending")
                if token:
                    kw["NextToken"] = token
                page = _clean(cw.get_metric_data(**kw))
                pages.append(page)
                token = page.get("NextToken")
                if not token:
                    break
    except ProbekitError:
        raise
    except bx.NoRegionError:
        raise ProbekitError("AWS: no region configured (set AWS_REGION or AWS_DEFAULT_REGION, give --region, or "
                            "set one in ~/.aws/config)") from None
    except (bx.NoCredentialsError, bx.PartialCredentialsError):
        raise ProbekitError("AWS: no credentials found (configure them as for the AWS CLI: a profile, "
                            "environment variables or an instance role)") from None
    except bx.ClientError as e:
        err = e.response.get("Error", {})
        raise ProbekitError(_scrub(f"AWS: {e.operation_name}: {err.get('Code', 'error')}: "
                                   f"{err.get('Message', '')}".rstrip(": "), session)) from None
    except (bx.BotoCoreError, OSError) as e:
        raise ProbekitError(_scrub(f"AWS: {type(e).__name__}: {e}", session)) from None
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    with open(tmp, "w", encoding="utf-8") as f:
        for doc in [mon] + pages:
            f.write(json.dumps(doc, indent=4, default=_jsonable) + "\n")
    os.replace(tmp, out)
    points = sum(len(r.get("Values") or []) for p in pages for r in p.get("MetricDataResults") or [])
    return dict(output=str(out), monitor=monitor, probes=len(probes), pages=len(pages), datapoints=points,
                period_s=period, start=start_t.isoformat(), end=end_t.isoformat())
