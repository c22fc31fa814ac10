"""What `podyard get nodes` and `get pods` show of the controller's view, without Docker."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from reconciler import model, observe, plan
from reconciler.cli import nodes, summary, tables
from reconciler.cluster import config, health
from reconciler.control import observation, status

pytestmark = pytest.mark.unit


def pod(name: str, cpu: int, memory: int) -> observe.ObservedPod:
    return observe.ObservedPod(
        node="node1", namespace="default", name=name, uid=name, owner="", template_hash="",
        revision="", labels=(), pause=None, containers=(),
        requests=model.Requests(cpu=cpu, memory=memory),
    )


def test_the_status_file_says_what_only_the_controller_knows(tmp_path: Path) -> None:
    judged = health.Health(grace=4, eviction_delay=4)
    judged.answered("node1", now=100)
    judged.failed("node2", now=100, error="connection refused")
    judged.tick(now=105)
    observer = observation.Observer({}, judged, clock=lambda: 105, report=lambda t: None)
    observer.info["node1"] = observe.NodeInfo(cpus=2, memory=2**31, engine_version="20.10.24")
    the_plan = plan.Plan(unschedulable=(("default", "huge", "0/2 nodes are available: x."),))
    doc = status.document("default", judged, observer, ["node1", "node2"], the_plan, 105)
    path = tmp_path / "status-default.json"
    assert status.write(path, doc)
    read = status.read(path)
    assert read is not None and read == json.loads(json.dumps(doc))
    assert read["nodes"]["node1"]["state"] == "Ready"
    assert read["nodes"]["node2"] == {
        "state": "NotReady", "firstSeen": 100, "lastAnswer": None,
        "lastError": "connection refused", "cpus": 0, "memory": 0, "version": "",
        "os": "", "kernel": "",
    }
    assert read["pending"] == [
        {"namespace": "default", "name": "huge", "reason": "0/2 nodes are available: x."}
    ]


def test_the_status_file_carries_the_last_finished_passs_duration() -> None:
    judged = health.Health(grace=4, eviction_delay=4)
    observer = observation.Observer({}, judged, clock=lambda: 0, report=lambda t: None)
    doc = status.document("default", judged, observer, [], plan.Plan(), 0.0, None, (),
                          {"finished": 3, "lastSeconds": 0.052})
    assert doc["passes"] == {"finished": 3, "lastSeconds": 0.052}
    assert status.document("default", judged, observer, [], plan.Plan(), 0.0)["passes"] == {}


def test_a_status_file_that_cannot_be_written_is_not_an_error(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert status.write(blocked / "status.json", {}) is False
    assert status.read(tmp_path / "missing.json") is None


def test_get_nodes_shows_requested_over_allocatable_as_kubectl_prints_quantities() -> None:
    now = time.time()
    ready = nodes.Node(
        "node1", (("node-role.kubernetes.io/worker", ""),), True, "",
        observe.NodeInfo(cpus=2, memory=4 * 2**30, engine_version="20.10.24"),
        (pod("a", 250, 64 * 2**20), pod("b", 500, 128 * 2**20)),
        {"state": "Ready", "firstSeen": now - 7200},
    )
    lost = nodes.Node("node2", (), False, "ping on node2: timed out", None, (),
                      {"state": "NotReady,Evicted", "firstSeen": now - 7200})
    text = nodes.get_table([ready, lost], config.Reserved(), wide=False)
    rows = [line.split() for line in text.splitlines()]
    assert rows[0] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "PODS", "CPU", "MEMORY"]
    assert rows[1] == ["node1", "Ready", "worker", "2h", "docker://20.10.24", "2",
                       "750m/1900m", "192Mi/3840Mi"]
    assert rows[2] == ["node2", "NotReady,Evicted", "<none>", "2h", "<unknown>", "0",
                       "0m/<unknown>", "0/<unknown>"]


def test_a_node_that_does_not_answer_this_command_is_not_ready_whatever_the_file_says() -> None:
    silent = nodes.Node("node2", (), False, "refused", None, (), {"state": "Ready"})
    assert silent.state == "NotReady"


@pytest.mark.parametrize(
    ("value", "text"),
    [(0, "0"), (512, "512"), (2048, "2Ki"), (64 * 2**20, "64Mi"), (3 * 2**30, "3Gi"),
     (3 * 2**30 + 1, "3.0Gi"), (5 * 2**20 + 7, "5Mi")],
)
def test_memory_is_printed_in_binary_units(value: int, text: str) -> None:
    assert tables.bytes_text(value) == text


def test_podyard_status_says_what_is_applied_and_why_newer_is_not() -> None:
    doc = {
        "scope": "default", "time": time.time() - 3,
        "manifests": {"applied": "abc123", "problem": "commit def456: HEAD is not signed"},
        "nodes": {"node1": {"state": "Ready"}, "node2": {"state": "NotReady"}},
        "pending": [{"namespace": "default", "name": "huge", "reason": "0/2 nodes..."}],
    }
    text = summary.text([doc])
    assert "Applied:     revision abc123" in text
    assert "Not applied: commit def456: HEAD is not signed" in text
    assert "Nodes:       node1 Ready, node2 NotReady" in text
    assert "Pending:     default/huge: 0/2 nodes..." in text
    assert "no controller status" in summary.text([])
