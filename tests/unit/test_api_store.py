"""The store stamps every change with a resourceVersion; watches see changes as Kubernetes
sends them, and a watch from a resourceVersion the store no longer knows is told to relist."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from reconciler.api import requests, selectors, store, streams

pytestmark = pytest.mark.unit


def pod(name: str, phase: str = "Running", app: str = "web", ns: str = "shop") -> dict[str, Any]:
    return {"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": ns, "labels": {"app": app},
                         "creationTimestamp": "2023-11-14T22:13:20Z"},
            "spec": {"containers": [{"name": "app"}], "nodeName": "node1"},
            "status": {"phase": phase}}


def pods(*found: dict[str, Any]) -> dict[str, Any]:
    return {"pods": {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in found}}


def test_publish_stamps_added_modified_and_deleted_with_increasing_versions() -> None:
    data = store.Store(start=100)
    first = data.publish(pods(pod("a"), pod("b")))
    assert [(c.type, c.key[1], c.rv) for c in first] == [("ADDED", "a", 101), ("ADDED", "b", 102)]
    second = data.publish(pods(pod("a", "Failed")))
    assert [(c.type, c.key[1], c.rv) for c in second] == [
        ("MODIFIED", "a", 103), ("DELETED", "b", 104)]
    assert second[0].previous is not None and second[0].previous["status"]["phase"] == "Running"
    assert second[1].object["metadata"]["resourceVersion"] == "104"
    state = data.state
    assert state.rv == 104
    assert [o["metadata"]["resourceVersion"] for o in state.items("pods")] == ["103"]
    assert data.publish(pods(pod("a", "Failed"))) == []


def test_changes_since_a_version_and_expired_versions() -> None:
    data = store.Store(start=0, history=3)
    data.publish(pods(pod("a")))
    data.publish(pods(pod("a"), pod("b")))
    assert [c.rv for c in data.since(0)] == [1, 2]
    assert data.since(2) == []
    data.publish(pods(pod("a"), pod("b"), pod("c"), pod("d")))  # rv 3 and 4: 1 falls out
    assert [c.rv for c in data.since(1)] == [2, 3, 4]
    with pytest.raises(store.Expired, match="too old resource version: 0"):
        data.since(0)
    with pytest.raises(store.Expired):
        data.since(99)  # handed out by an earlier run of the controller


def test_wait_returns_at_once_when_changes_came_and_after_the_timeout_otherwise() -> None:
    data = store.Store(start=0)
    assert data.wait(0, 0.01) == []
    threading.Timer(0.05, lambda: data.publish(pods(pod("a")))).start()
    assert [c.rv for c in data.wait(0, 5.0)] == [1]


def options(**kw: Any) -> streams.WatchOptions:
    return streams.WatchOptions(resource="pods", kind="Pod", **kw)


def test_filtered_watch_sees_objects_enter_and_leave_its_selection() -> None:
    data = store.Store(start=0)
    data.publish(pods(pod("a", app="db")))
    [enter] = data.publish(pods(pod("a", app="web")))
    [leave] = data.publish(pods(pod("a", app="db")))
    watch = options(matches=selectors.label_matcher("app=web"))
    assert streams.watch_event(enter, watch) == ("ADDED", enter.object)
    kind, obj = streams.watch_event(leave, watch) or ("", {})
    assert kind == "DELETED"
    assert obj["metadata"]["labels"] == {"app": "web"}  # as it was, at the new version
    assert obj["metadata"]["resourceVersion"] == str(leave.rv)
    assert streams.watch_event(leave, options(namespace="other")) is None
    assert streams.watch_event(leave, options())[0] == "MODIFIED"  # type: ignore[index]


class Sink:
    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    def write(self, data: bytes) -> None:
        self.lines += [json.loads(line) for line in data.decode().splitlines()]

    def gone(self) -> bool:
        return False


def test_watch_streams_the_initial_objects_then_changes_until_its_timeout() -> None:
    data = store.Store(start=0)
    data.publish(pods(pod("a")))
    sink = Sink()
    threading.Timer(0.05, lambda: data.publish(pods(pod("a"), pod("b")))).start()
    streams.run_watch(data, sink, options(timeout=0.3), 1, [data.state.items("pods")[0]])
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in sink.lines] == [
        ("ADDED", "a"), ("ADDED", "b")]


def test_table_watch_sends_one_row_tables_with_the_columns_once() -> None:
    data = store.Store(start=0)
    sink = Sink()
    threading.Timer(0.05, lambda: data.publish(pods(pod("a"), pod("b")))).start()
    streams.run_watch(data, sink, options(table="v1", timeout=0.3), 0)
    tables = [e["object"] for e in sink.lines]
    assert [t["kind"] for t in tables] == ["Table", "Table"]
    assert tables[0]["columnDefinitions"][0]["name"] == "Name"
    assert tables[1]["columnDefinitions"] is None
    assert [t["rows"][0]["cells"][0] for t in tables] == ["a", "b"]


def test_a_watch_that_falls_behind_the_history_gets_an_error_410() -> None:
    data = store.Store(start=0, history=1)
    data.publish(pods(pod("a"), pod("b")))
    sink = Sink()
    streams.run_watch(data, sink, options(timeout=1.0), 0)
    [error] = sink.lines
    assert error["type"] == "ERROR"
    assert (error["object"]["code"], error["object"]["reason"]) == (410, "Expired")


@pytest.mark.parametrize(("target", "kind", "resource", "namespace", "name", "watch"), [
    ("/api/v1/pods", "list", "pods", None, "", False),
    ("/api/v1/pods?watch=true", "list", "pods", None, "", True),
    ("/api/v1/pods?watch=1&resourceVersion=5", "list", "pods", None, "", True),
    ("/api/v1/namespaces/shop/pods", "list", "pods", "shop", "", False),
    ("/api/v1/namespaces/shop/pods/web-1", "get", "pods", "shop", "web-1", False),
    ("/api/v1/namespaces/shop/pods/web-1/status", "get", "pods", "shop", "web-1", False),
    ("/api/v1/namespaces/shop/pods/web-1/log?follow=true", "log", "pods", "shop", "web-1", False),
    ("/api/v1/namespaces/shop/pods/web-1/exec?command=sh", "write", "pods", "shop", "web-1",
     False),
    ("/api/v1/watch/namespaces/shop/pods", "list", "pods", "shop", "", True),
    ("/api/v1/watch/pods", "list", "pods", None, "", True),
    ("/api/v1/watch/namespaces/shop/pods/web-1", "list", "pods", "shop", "", True),
    ("/api/v1/nodes/node1", "get", "nodes", None, "node1", False),
    ("/api/v1/namespaces", "list", "namespaces", None, "", False),
    ("/api/v1/namespaces/shop", "get", "namespaces", None, "shop", False),
    ("/api/v1/namespaces/shop/events", "list", "events", "shop", "", False),
    ("/api/v1/pods/web-1", "unknown", "", None, "", False),
    ("/api/v1/namespaces/shop/nodes", "unknown", "", None, "", False),
    ("/api/v1/secrets", "unknown", "", None, "", False),
    ("/apis/apps/v1", "unknown", "", None, "", False),
    ("/api/v1/", "discovery", "", None, "", False),
])
def test_paths(target: str, kind: str, resource: str, namespace: str | None, name: str,
               watch: bool) -> None:
    request = requests.parse(target)
    assert (request.kind, request.resource, request.namespace, request.name, request.watch) == (
        kind, resource, namespace, name, watch)


def test_a_watch_of_one_object_selects_it_by_name() -> None:
    request = requests.parse("/api/v1/watch/namespaces/shop/pods/web-1?fieldSelector=a%3Db")
    assert request.query["fieldSelector"] == "a=b,metadata.name=web-1"


@pytest.mark.parametrize(("accept", "form"), [
    ("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;"
     "g=meta.k8s.io,application/json", ("Table", "v1")),
    ("application/json;as=Table;v=v1beta1;g=meta.k8s.io", ("Table", "v1beta1")),
    ("application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io",
     ("PartialObjectMetadataList", "v1")),
    ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
     ("", "")),
    ("application/vnd.kubernetes.protobuf, */*", ("", "")),
    ("", ("", "")),
])
def test_accept_headers(accept: str, form: tuple[str, str]) -> None:
    assert requests.wanted_form(accept) == form


def test_a_watch_list_ends_its_initial_events_with_a_bookmark() -> None:
    data = store.Store(start=0)
    data.publish(pods(pod("a")))
    sink = Sink()
    streams.run_watch(data, sink, options(timeout=0.0, initial_events_end=True), 1,
                      data.state.items("pods"))
    assert [e["type"] for e in sink.lines] == ["ADDED", "BOOKMARK"]
    assert sink.lines[1]["object"]["metadata"] == {
        "resourceVersion": "1", "annotations": {"k8s.io/initial-events-end": "true"}}
