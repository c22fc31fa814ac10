"""Each pass hands the API an immutable snapshot, and each action an event, without waiting."""

from __future__ import annotations

import dataclasses

import pytest

from reconciler import model
from reconciler.api import publisher, snapshot, store
from reconciler.control import passes

from .test_loop import CLUSTER, WEB, Engine, Notes, running_pod

pytestmark = pytest.mark.unit


def test_a_pass_publishes_what_it_saw_and_what_it_did() -> None:
    engines = {"n1": Engine("n1", (running_pod("n1", "web-a", WEB.template),)),
               "n2": Engine("n2", (running_pod("n2", "web-b", WEB.template),))}
    notes = Notes()
    controller = passes.Controller(CLUSTER, engines, passes.Options(), notes, clock=lambda: 1e9)
    data = store.Store(start=0)
    pub = publisher.Publisher(data, "default", notes.warn, clock=lambda: 1e9)
    controller.reporter = publisher.Recorder(notes, pub)
    taken: list[snapshot.Snapshot] = []

    def offer(*args: object) -> None:
        taken.append(snapshot.take(controller, *args))  # type: ignore[arg-type]
        pub.offer(taken[-1])

    controller.on_pass = offer
    three = dataclasses.replace(WEB, replicas=3)  # one more pod than the nodes hold
    controller.run_pass(model.DesiredState(controllers=(three,)))
    pub.publish_now()
    [snap] = taken
    assert [n.name for n in snap.nodes] == ["n1", "n2"] and all(n.ready for n in snap.nodes)
    assert snap.nodes[0].info is not None and snap.nodes[0].info.cpus == 2
    state = data.state
    assert [p["metadata"]["name"] for p in state.items("pods")] == ["web-a", "web-b"]
    rc = state.items("replicationcontrollers")[0]
    assert (rc["spec"]["replicas"], rc["status"]["replicas"]) == (3, 2)
    assert [n["metadata"]["name"] for n in state.items("nodes")] == ["n1", "n2"]
    # The stand-in engines cannot create pods: the failure is the RC's warning event.
    reasons = {(e["involvedObject"]["kind"], e["reason"]) for e in state.items("events")}
    assert ("ReplicationController", "FailedCreate") in reasons
    assert any("create pod" in line for line in notes.lines)  # still told to the console
    controller.close()
