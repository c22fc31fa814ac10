"""The API's objects are built from a pass's snapshot as the Kubernetes API writes them."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from kubernetes import client as k8s

from reconciler import execute, model, plan
from reconciler.api import events, meta, objects, publisher, store

from . import api_world as w

pytestmark = pytest.mark.unit


def built(**changes: Any) -> objects.Objects:
    return objects.Builder().build(w.snap(**changes))


def test_pod_carries_its_identity_owner_template_and_node() -> None:
    found = built()
    pod = found["pods"][(w.NS, "web-aaaaa")]
    rc = found["replicationcontrollers"][(w.NS, "web")]
    assert pod["metadata"]["uid"] == "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa"
    assert pod["metadata"]["creationTimestamp"] == "2023-11-14T22:13:20Z"
    assert pod["metadata"]["labels"] == {"app": "web"}
    assert pod["metadata"]["annotations"]["example.org/note"] == "hello"
    assert pod["metadata"]["ownerReferences"] == [{
        "apiVersion": "v1", "kind": "ReplicationController", "name": "web",
        "uid": rc["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]
    assert pod["spec"]["nodeName"] == "node1"
    assert pod["spec"]["containers"][0]["command"] == ["sleep", "3600"]
    assert pod["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "100m", "memory": "64Mi"}}
    assert pod["status"]["hostIP"] == "10.0.0.11"
    assert pod["status"]["podIP"] == "10.244.1.5"


def test_running_pod_is_ready_with_a_running_docker_container() -> None:
    status = built()["pods"][(w.NS, "web-aaaaa")]["status"]
    assert status["phase"] == "Running"
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Initialized": "True", "Ready": "True", "ContainersReady": "True", "PodScheduled": "True"}
    [app] = status["containerStatuses"]
    assert app["state"] == {"running": {"startedAt": "2023-11-14T22:13:20Z"}}
    assert app["containerID"] == "docker://app-" + "a" * 32
    assert app["ready"] is True
    assert status["qosClass"] == "Burstable"


def test_crash_looping_pod_stays_running_and_waits_in_back_off() -> None:
    status = built()["pods"][(w.NS, "web-bbbbb")]["status"]
    assert status["phase"] == "Running"  # restartPolicy Always: it will run again
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == "ContainersNotReady"
    [app] = status["containerStatuses"]
    assert app["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert app["lastState"]["terminated"]["exitCode"] == 1
    assert app["lastState"]["terminated"]["reason"] == "Error"
    assert app["restartCount"] == 3


def test_pod_the_pass_deletes_is_terminating_since_it_was_first_seen_so() -> None:
    builder = objects.Builder()
    first = builder.build(w.snap(deleting=frozenset({"a" * 32})))
    later = builder.build(w.snap(time=w.NOW + 5, deleting=frozenset({"a" * 32})))
    pod = later["pods"][(w.NS, "web-aaaaa")]
    assert pod["metadata"]["deletionTimestamp"] == meta.timestamp(w.NOW)
    assert first["pods"][(w.NS, "web-aaaaa")] == pod


def test_rc_counts_its_pods_and_bumps_its_generation_on_a_new_spec() -> None:
    builder = objects.Builder()
    rc = builder.build(w.snap())["replicationcontrollers"][(w.NS, "web")]
    assert rc["spec"]["replicas"] == 2
    assert rc["spec"]["selector"] == {"app": "web"}
    assert rc["spec"]["template"]["metadata"]["labels"] == {"app": "web"}
    assert rc["status"] == {"replicas": 2, "fullyLabeledReplicas": 2, "readyReplicas": 1,
                            "availableReplicas": 1, "observedGeneration": 1}
    scaled = dataclasses.replace(w.WEB, replicas=3)
    desired = dataclasses.replace(w.DESIRED, controllers=(scaled,))
    again = builder.build(w.snap(desired=desired))["replicationcontrollers"][(w.NS, "web")]
    assert again["metadata"]["generation"] == 2
    assert again["metadata"]["creationTimestamp"] == rc["metadata"]["creationTimestamp"]


def test_service_and_endpoints_show_the_allocated_addresses_and_ready_pods() -> None:
    found = built()
    svc = found["services"][(w.NS, "web")]
    assert svc["spec"]["clusterIP"] == "10.96.0.20"
    assert svc["spec"]["clusterIPs"] == ["10.96.0.20"]
    assert svc["spec"]["ports"] == [{"name": "http", "protocol": "TCP", "port": 80,
                                     "targetPort": "http", "nodePort": 30080}]
    ep = found["endpoints"][(w.NS, "web")]
    assert ep["subsets"] == [{
        "addresses": [{"ip": "10.244.1.5", "nodeName": "node1", "targetRef": {
            "kind": "Pod", "namespace": w.NS, "name": "web-aaaaa",
            "uid": "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa"}}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]


def test_nodes_report_health_addresses_capacity_and_runtime() -> None:
    found = built()
    ready, lost = found["nodes"][("", "node1")], found["nodes"][("", "node2")]
    condition = ready["status"]["conditions"][0]
    assert condition["type"] == "Ready" and condition["status"] == "True"
    assert condition["lastHeartbeatTime"] == meta.timestamp(w.NOW - 1)
    assert ready["status"]["addresses"] == [{"type": "InternalIP", "address": "10.0.0.11"},
                                            {"type": "Hostname", "address": "node1"}]
    assert ready["status"]["capacity"] == {"cpu": "2", "memory": "4194304Ki", "pods": "110"}
    assert ready["status"]["allocatable"]["cpu"] == "1900m"
    assert ready["status"]["nodeInfo"]["containerRuntimeVersion"] == "docker://20.10.24"
    assert ready["metadata"]["labels"]["node-role.kubernetes.io/worker"] == ""
    assert lost["status"]["conditions"][0]["status"] == "Unknown"
    assert "no answer" in lost["status"]["conditions"][0]["message"]
    assert [t["effect"] for t in lost["spec"]["taints"]] == ["NoSchedule", "NoExecute"]


def test_namespaces_are_the_declared_ones_and_default() -> None:
    found = built()["namespaces"]
    assert sorted(found) == [("", "default"), ("", w.NS)]
    assert found[("", w.NS)]["status"] == {"phase": "Active"}


def test_pending_pods_of_an_rc_keep_the_name_they_were_first_shown_with() -> None:
    builder = objects.Builder()
    reason = "0/2 nodes are available: 2 Insufficient memory."
    first = builder.build(w.snap(pending=((w.NS, "web-xxxxx", reason),)))
    second = builder.build(w.snap(time=w.NOW + 1, pending=((w.NS, "web-yyyyy", reason),)))
    assert first["pods"][(w.NS, "web-xxxxx")] == second["pods"][(w.NS, "web-xxxxx")]
    pending = second["pods"][(w.NS, "web-xxxxx")]
    assert pending["status"]["phase"] == "Pending"
    assert pending["status"]["conditions"][0]["message"] == reason
    assert pending["metadata"]["ownerReferences"][0]["name"] == "web"
    assert "nodeName" not in pending["spec"]


def test_an_unchanged_cluster_gives_equal_objects_and_no_change_to_watch() -> None:
    builder = objects.Builder()
    data = store.Store(start=100)
    assert data.publish(builder.build(w.snap()))
    assert data.publish(builder.build(w.snap(time=w.NOW + 30))) == []


MODELS = {"pods": "V1Pod", "replicationcontrollers": "V1ReplicationController",
          "services": "V1Service", "endpoints": "V1Endpoints", "nodes": "V1Node",
          "namespaces": "V1Namespace", "events": "CoreV1Event"}


def test_every_object_reads_back_into_the_official_clients_models() -> None:
    found = built()
    log = events.EventLog("default")
    log.add(log.pod(w.NS, "db", "c" * 32), "Scheduled", "assigned", "node2", w.NOW)
    found["events"] = log.objects(w.NOW)
    api = k8s.ApiClient()
    # The client's own decoder, which checks required fields; its public wrapper changed
    # signature between releases, this one did not.
    decode = api._ApiClient__deserialize  # type: ignore[attr-defined]
    for resource, items in found.items():
        for obj in items.values():
            model_ = decode(json.loads(json.dumps(obj)), MODELS[resource])
            assert model_.metadata.name == obj["metadata"]["name"]


def result(action: plan.Action, error: Exception | None = None) -> execute.Result:
    return execute.Result(action, error, 0.1)


def identity(name: str = "web-ccccc") -> plan.PodIdentity:
    return plan.PodIdentity(w.NS, name, "d" * 32, "ReplicationController/web",
                            w.WEB.template, "")


def test_actions_become_the_events_kubernetes_components_would_write() -> None:
    log = events.EventLog("default")
    log.action(result(plan.CreatePod("node1", identity(), "replicas 1 < 2")), w.NOW, {})
    log.action(result(plan.DeletePod("node1", w.NS, "web-aaaaa", "a" * 32, (), "surplus")),
               w.NOW + 1, {"a" * 32: "ReplicationController/web"})
    found = {(e["involvedObject"]["kind"], e["reason"]): e
             for e in log.objects(w.NOW + 2).values()}
    assert set(found) == {("Pod", "Scheduled"), ("ReplicationController", "SuccessfulCreate"),
                          ("Pod", "Killing"), ("ReplicationController", "SuccessfulDelete")}
    created = found[("ReplicationController", "SuccessfulCreate")]
    assert created["message"] == "Created pod: web-ccccc"
    assert created["type"] == "Normal"
    assert created["source"] == {"component": "podyard", "host": "node1"}
    scheduled = found[("Pod", "Scheduled")]
    assert scheduled["involvedObject"]["uid"] == "dddddddd-dddd-dddd-dddd-dddddddddddd"
    assert scheduled["metadata"]["namespace"] == w.NS


def test_a_repeated_event_counts_up_and_a_failure_is_a_warning() -> None:
    log = events.EventLog("default")
    failed = result(plan.CreatePod("node1", identity(), "replicas"), RuntimeError("no image"))
    log.action(failed, w.NOW, {})
    log.action(failed, w.NOW + 10, {})
    [event] = log.objects(w.NOW + 10).values()
    assert (event["reason"], event["type"], event["count"]) == ("FailedCreate", "Warning", 2)
    assert event["firstTimestamp"] == meta.timestamp(w.NOW)
    assert event["lastTimestamp"] == meta.timestamp(w.NOW + 10)
    assert "no image" in event["message"]
    assert log.objects(w.NOW + 10 + events.EVENT_TTL + 1) == {}


def test_a_node_that_stops_answering_gets_a_warning_event() -> None:
    log = events.EventLog("default")
    log.nodes({"node1": "Ready", "node2": "Ready"}, w.NODES, w.NOW)
    [event] = log.objects(w.NOW).values()
    assert event["involvedObject"]["name"] == "node2"
    assert (event["reason"], event["type"]) == ("NodeNotReady", "Warning")
    assert event["metadata"]["namespace"] == "default"


def test_the_publisher_publishes_snapshots_and_the_events_of_recorded_actions() -> None:
    data = store.Store(start=1)
    pub = publisher.Publisher(data, "default", print, clock=lambda: w.NOW)
    pub.builder.address = lambda n: ""
    pub.offer(w.snap())
    pub.record(result(plan.CreatePod("node1", identity(), "replicas")))
    changes = pub.publish_now()
    assert {c.resource for c in changes} == set(objects.RESOURCES)
    assert len(data.state.items("events")) == 2
    assert pub.publish_now() == []  # nothing new: nothing changes


def test_a_snapshot_is_taken_without_building_anything() -> None:
    declared = model.DesiredState()
    assert w.snap(desired=declared).desired is declared
