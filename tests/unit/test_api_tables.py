"""Server-side tables print what kubectl prints against Kubernetes."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.api import events, objects, tables

from . import api_world as w

pytestmark = pytest.mark.unit


def cells(resource: str, key: tuple[str, str], now: float = w.CREATED + 125) -> list[Any]:
    found = objects.Builder().build(w.snap())
    return list(tables.row(resource, found[resource][key], now)["cells"])


@pytest.mark.parametrize(("seconds", "shown"), [
    (-5, "<invalid>"), (-1, "0s"), (0, "0s"), (119, "119s"), (120, "2m"), (125, "2m5s"),
    (600, "10m"), (10799, "179m"), (3 * 3600, "3h"), (3 * 3600 + 60, "3h1m"), (8 * 3600, "8h"),
    (47 * 3600, "47h"), (48 * 3600, "2d"), (50 * 3600, "2d2h"), (8 * 86400, "8d"),
    (2 * 365 * 86400, "2y"), (2 * 365 * 86400 + 86400, "2y1d"), (9 * 365 * 86400, "9y"),
])
def test_ages_are_go_human_durations(seconds: int, shown: str) -> None:
    assert tables.age(seconds) == shown


def test_pod_columns_and_wide_columns() -> None:
    names = [(c["name"], c["priority"]) for c in tables.COLUMNS["pods"]]
    assert names == [("Name", 0), ("Ready", 0), ("Status", 0), ("Restarts", 0), ("Age", 0),
                     ("IP", 1), ("Node", 1), ("Nominated Node", 1), ("Readiness Gates", 1)]
    assert cells("pods", (w.NS, "web-aaaaa")) == [
        "web-aaaaa", "1/1", "Running", 0, "2m5s", "10.244.1.5", "node1", "<none>", "<none>"]
    assert cells("pods", (w.NS, "web-bbbbb"))[:4] == ["web-bbbbb", "0/1", "CrashLoopBackOff", 3]


def test_terminating_and_completed_pods() -> None:
    found = objects.Builder().build(w.snap(deleting=frozenset({"a" * 32})))
    row = tables.row("pods", found["pods"][(w.NS, "web-aaaaa")], w.NOW)
    assert row["cells"][2] == "Terminating"
    done = {"metadata": {"name": "job"}, "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Succeeded", "containerStatuses": [
                {"ready": False, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}}
    row = tables.row("pods", done, w.NOW)
    assert row["cells"][1:3] == ["0/1", "Completed"]
    assert row["conditions"][0]["type"] == "Completed"


def test_rc_service_endpoints_node_and_namespace_rows() -> None:
    assert cells("replicationcontrollers", (w.NS, "web")) == [
        "web", 2, 2, 1, "2m5s", "app", "podyard/busybox:1", "app=web"]
    assert cells("services", (w.NS, "web")) == [
        "web", "NodePort", "10.96.0.20", "<none>", "80:30080/TCP", "2m5s", "app=web"]
    assert cells("endpoints", (w.NS, "web")) == ["web", "10.244.1.5:8080", "2m5s"]
    assert cells("nodes", ("", "node1")) == [
        "node1", "Ready", "worker", "3m45s", "v1.20.0-podyard", "10.0.0.11", "<none>",
        "Debian 12", "6.1.0", "docker://20.10.24"]
    assert cells("nodes", ("", "node2"))[1:3] == ["NotReady", "<none>"]
    assert cells("namespaces", ("", w.NS)) == [w.NS, "Active", "2m5s"]  # its oldest pod


def test_endpoints_beyond_three_are_counted() -> None:
    ep = {"subsets": [{"addresses": [{"ip": f"10.0.0.{i}"} for i in range(5)],
                       "ports": [{"port": 80}]}]}
    assert tables.format_endpoints(ep) == "10.0.0.0:80,10.0.0.1:80,10.0.0.2:80 + 2 more..."
    assert tables.format_endpoints({}) == "<none>"


def test_event_rows_show_repeats_over_time() -> None:
    log = events.EventLog("default")
    for i in range(3):
        log.add(log.pod(w.NS, "web-aaaaa", "a" * 32), "Started", "Restarted container app",
                "node1", w.NOW + i * 60)
    [event] = log.objects(w.NOW + 120).values()
    row = tables.row("events", event, w.NOW + 130)["cells"]
    assert row == ["10s (x3 over 2m10s)", "Normal", "Started", "pod/web-aaaaa", "",
                   "podyard, node1", "Restarted container app", "2m10s", 3,
                   event["metadata"]["name"]]
    assert [c["name"] for c in tables.COLUMNS["events"] if c["priority"] == 0] == [
        "Last Seen", "Type", "Reason", "Object", "Message"]


def test_rows_carry_the_object_as_asked() -> None:
    obj = objects.Builder().build(w.snap())["pods"][(w.NS, "db")]
    partial = tables.row("pods", obj, w.NOW)["object"]
    assert partial["kind"] == "PartialObjectMetadata"
    assert partial["metadata"]["name"] == "db"
    assert tables.row("pods", obj, w.NOW, "Object")["object"] == obj
    assert "object" not in tables.row("pods", obj, w.NOW, "None")
    doc = tables.table("pods", [obj], w.NOW, "7", columns=False)
    assert doc["columnDefinitions"] is None and doc["metadata"] == {"resourceVersion": "7"}
