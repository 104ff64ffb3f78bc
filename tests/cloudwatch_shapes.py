"""AWS's documented output shapes, as the API reference (botocore's service models) gives them, and a
checker that holds a document to botocore's own model. Shared by tests/test_cloudwatch*.py.

The examples are written out by hand from the shapes in botocore/data/networkmonitor/2023-08-01/service-2.json
(GetMonitorOutput, ListMonitorsOutput) and botocore/data/cloudwatch/2010-08-01/service-2.json
(GetMetricDataOutput with pagination and StatusCode PartialData, GetMetricStatisticsOutput), with the
timestamps as the AWS CLI prints them (ISO 8601). ``check_shape`` validates every example (and the
shipped exports, and what fetch writes) against the model, so an example that drifts from AWS's shape
fails.
"""
from __future__ import annotations

import datetime as dt
import numbers

MONITOR = "probekit-example"
ICMP_ID = "probe-3qm8p693i4fi1h8lqylzkbp42e"
TCP_ID = "probe-7pq1shc0cmz1bdlgv8b9ssy7vo"

GET_MONITOR = {
    "monitorArn": f"arn:aws:networkmonitor:us-east-1:111122223333:monitor/{MONITOR}",
    "monitorName": MONITOR,
    "state": "ACTIVE",
    "aggregationPeriod": 30,
    "tags": {},
    "probes": [
        {"probeId": ICMP_ID, "probeArn": f"arn:aws:networkmonitor:us-east-1:111122223333:probe/{ICMP_ID}",
         "sourceArn": "arn:aws:ec2:us-east-1:111122223333:subnet/subnet-0123456789abcdef0",
         "destination": "192.0.2.10", "protocol": "ICMP", "packetSize": 56, "addressFamily": "IPV4",
         "vpcId": "vpc-0123456789abcdef0", "state": "ACTIVE", "createdAt": "2025-12-31T23:00:00+00:00",
         "modifiedAt": "2025-12-31T23:00:00+00:00", "tags": {}},
        {"probeId": TCP_ID, "probeArn": f"arn:aws:networkmonitor:us-east-1:111122223333:probe/{TCP_ID}",
         "sourceArn": "arn:aws:ec2:us-east-1:111122223333:subnet/subnet-0123456789abcdef0",
         "destination": "192.0.2.10", "destinationPort": 80, "protocol": "TCP", "packetSize": 56,
         "addressFamily": "IPV4", "vpcId": "vpc-0123456789abcdef0", "state": "ACTIVE",
         "createdAt": "2025-12-31T23:00:00+00:00", "modifiedAt": "2025-12-31T23:00:00+00:00", "tags": {}},
    ],
    "createdAt": "2025-12-31T23:00:00+00:00",
    "modifiedAt": "2025-12-31T23:00:00+00:00",
}

LIST_MONITORS = {
    "monitors": [
        {"monitorArn": f"arn:aws:networkmonitor:us-east-1:111122223333:monitor/{MONITOR}", "monitorName": MONITOR,
         "state": "ACTIVE", "aggregationPeriod": 30, "tags": {}},
        {"monitorArn": "arn:aws:networkmonitor:us-east-1:111122223333:monitor/other", "monitorName": "other",
         "state": "INACTIVE", "aggregationPeriod": 60},
    ],
}

# two pages of one GetMetricData call: the first is PartialData with a NextToken
GET_METRIC_DATA_PAGES = [
    {"MetricDataResults": [
        {"Id": "m0_packetloss", "Label": f"PacketLoss Average Monitor={MONITOR} Probe={ICMP_ID}",
         "Timestamps": ["2026-01-01T00:01:30+00:00", "2026-01-01T00:01:00+00:00"], "Values": [100.0, 0.0],
         "StatusCode": "PartialData"},
        {"Id": "m0_rtt", "Label": f"RTT Average Monitor={MONITOR} Probe={ICMP_ID}",
         "Timestamps": ["2026-01-01T00:01:00+00:00"], "Values": [12100.5], "StatusCode": "PartialData"},
        {"Id": "m1_packetloss", "Label": f"PacketLoss Average Monitor={MONITOR} Probe={TCP_ID}",
         "Timestamps": ["2026-01-01T00:01:30+00:00", "2026-01-01T00:01:00+00:00"], "Values": [0.0, 0.0],
         "StatusCode": "PartialData"},
        {"Id": "m1_rtt", "Label": f"RTT Average Monitor={MONITOR} Probe={TCP_ID}",
         "Timestamps": ["2026-01-01T00:01:30+00:00", "2026-01-01T00:01:00+00:00"], "Values": [0.0, 11950.0],
         "StatusCode": "PartialData"}],
     "NextToken": "eyJwYWdlIjoyfQ==", "Messages": []},
    {"MetricDataResults": [
        {"Id": "m0_packetloss", "Label": f"PacketLoss Average Monitor={MONITOR} Probe={ICMP_ID}",
         "Timestamps": ["2026-01-01T00:00:30+00:00", "2026-01-01T00:00:00+00:00"], "Values": [0.0, 0.0],
         "StatusCode": "Complete"},
        {"Id": "m0_rtt", "Label": f"RTT Average Monitor={MONITOR} Probe={ICMP_ID}",
         "Timestamps": ["2026-01-01T00:00:30+00:00", "2026-01-01T00:00:00+00:00"], "Values": [12005.0, 11998.25],
         "StatusCode": "Complete"},
        {"Id": "m1_packetloss", "Label": f"PacketLoss Average Monitor={MONITOR} Probe={TCP_ID}",
         "Timestamps": ["2026-01-01T00:00:30+00:00", "2026-01-01T00:00:00+00:00"], "Values": [0.0, 0.0],
         "StatusCode": "Complete"},
        {"Id": "m1_rtt", "Label": f"RTT Average Monitor={MONITOR} Probe={TCP_ID}",
         "Timestamps": ["2026-01-01T00:00:30+00:00", "2026-01-01T00:00:00+00:00"], "Values": [11900.0, 11800.0],
         "StatusCode": "Complete"}],
     "Messages": []},
]

# get-metric-statistics names neither monitor nor probe: its Label is the metric name
GET_METRIC_STATISTICS = {
    "Label": "RTT",
    "Datapoints": [
        {"Timestamp": "2026-01-01T00:00:00+00:00", "SampleCount": 60.0, "Average": 11998.25, "Maximum": 14100.0,
         "Unit": "Microseconds"},
        {"Timestamp": "2026-01-01T00:00:30+00:00", "SampleCount": 60.0, "Average": 12005.0, "Maximum": 13900.0,
         "Unit": "Microseconds"},
    ],
}

# the console's "Download as .csv" of a graph of the two probes (lines labelled with the probe id)
CONSOLE_CSV = (
    f"Time,{ICMP_ID} PacketLoss,{ICMP_ID} RTT,{TCP_ID} PacketLoss,{TCP_ID} RTT\n"
    "2026-01-01T00:00:00Z,0,11998.25,0,11800\n"
    "2026-01-01T00:00:30Z,0,12005,0,11900\n"
    "2026-01-01T00:01:00Z,0,12100.5,0,11950\n"
    "2026-01-01T00:01:30Z,100,,0,0\n"
)

# a console CSV of another graph (EC2 CPU), for the bad-input tests
OTHER_CONSOLE_CSV = "Time,CPUUtilization i-0123456789abcdef0,NetworkIn i-0123456789abcdef0\n2026-01-01T00:00:00Z,3.2,1024\n"


def _model(service: str):
    import botocore.session
    return botocore.session.get_session().get_service_model(service)


def output_shape(service: str, operation: str):
    return _model(service).operation_model(operation).output_shape


def check_shape(doc, shape, where: str = "$") -> None:
    """AssertionError unless ``doc`` follows botocore's ``shape`` (members, required members, lists, maps,
    enums and scalar types; timestamps as ISO 8601 strings or epoch numbers)."""
    t = shape.type_name
    if t == "structure":
        assert isinstance(doc, dict), f"{where}: {type(doc).__name__}, want an object"
        extra = set(doc) - set(shape.members)
        assert not extra, f"{where}: members not in {shape.name}: {sorted(extra)}"
        missing = set(shape.required_members) - set(doc)
        assert not missing, f"{where}: required members of {shape.name} missing: {sorted(missing)}"
        for k, v in doc.items():
            check_shape(v, shape.members[k], f"{where}.{k}")
    elif t == "list":
        assert isinstance(doc, list), f"{where}: want a list"
        for i, v in enumerate(doc):
            check_shape(v, shape.member, f"{where}[{i}]")
    elif t == "map":
        assert isinstance(doc, dict), f"{where}: want a map"
        for k, v in doc.items():
            check_shape(k, shape.key, f"{where} key")
            check_shape(v, shape.value, f"{where}[{k!r}]")
    elif t == "string":
        assert isinstance(doc, str), f"{where}: want a string"
        if shape.enum:
            assert doc in shape.enum, f"{where}: {doc!r} not in {shape.name}'s enum {shape.enum}"
    elif t in ("integer", "long"):
        assert isinstance(doc, int) and not isinstance(doc, bool), f"{where}: want an integer"
        if "min" in shape.metadata:
            assert doc >= shape.metadata["min"], f"{where}: {doc} < min {shape.metadata['min']}"
    elif t in ("double", "float"):
        assert isinstance(doc, numbers.Real) and not isinstance(doc, bool), f"{where}: want a number"
    elif t == "timestamp":
        if isinstance(doc, str):
            dt.datetime.fromisoformat(doc.replace("Z", "+00:00"))
        else:
            assert isinstance(doc, numbers.Real), f"{where}: want a timestamp"
    elif t == "boolean":
        assert isinstance(doc, bool), f"{where}: want a boolean"
