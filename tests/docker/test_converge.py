"""Convergence on the real engine: create, scale, roll, heal, delete, and leave others alone."""

from __future__ import annotations

import time
from collections import defaultdict

import docker
import pytest

from reconciler import labels, model, observe

from .conftest import TEST_LABEL, Space
from .workloads import BUSYBOX, bare, container, rc, template

pytestmark = pytest.mark.docker

POD_CONTAINERS = {labels.PAUSE, "app"}  # every pod here: its sandbox and one app container


def fingerprint(space: Space) -> set[tuple[str, int, str]]:
    """Every container of the namespace: id, creation time, state."""
    return {(c["Id"], c["Created"], c["State"]) for c in space.containers()}


def ready_pods(space: Space) -> list[observe.ObservedPod]:
    return [p for p in space.pods() if p.ready]


def test_creates_scales_and_deletes_an_rc(space: Space) -> None:
    space.converge(rc(space.namespace, 3))
    assert len(ready_pods(space)) == 3
    assert all(len(p.all_containers) == 2 for p in space.pods())

    space.converge(rc(space.namespace, 5))
    assert len(ready_pods(space)) == 5
    space.converge(rc(space.namespace, 2))
    assert len(ready_pods(space)) == 2
    assert len(space.containers()) == 4

    space.converge(model.DesiredState())
    assert space.containers() == []


def test_second_pass_plans_nothing_and_changes_no_container(space: Space) -> None:
    desired = rc(space.namespace, 3)
    space.converge(desired)
    before = fingerprint(space)
    the_plan, outcome = space.apply(desired)
    assert the_plan.empty and not the_plan.waiting
    assert outcome.results == ()
    assert fingerprint(space) == before


def test_image_change_rolls_without_dropping_below_replicas(
    space: Space, engine: docker.APIClient
) -> None:
    # A second image name for the same content: the template changes, no registry needed.
    new_image = f"podyard/busybox-rollout:{space.namespace}"
    engine.tag(BUSYBOX, "podyard/busybox-rollout", space.namespace)
    since = int(time.time())  # whole seconds: the namespace is new, nothing earlier is in it
    try:
        space.converge(rc(space.namespace, 3))
        space.converge(rc(space.namespace, 3, template(container(image=new_image))))
        pods = space.pods()
        assert len(pods) == 3
        assert {c.image for p in pods for c in p.containers} == {new_image}
    finally:
        engine.remove_image(new_image)
    counts, uids = replay_ready_pods(space, since)
    assert len(uids) == 6, "three pods, each replaced once"
    full = counts.index(3)  # the first moment all three were ready
    assert min(counts[full:]) >= 3, f"ready pods after each engine event: {counts}"
    assert counts[-1] == 3


def replay_ready_pods(space: Space, since: int) -> tuple[list[int], set[str]]:
    """The namespace's ready pods after each container start, death and removal since `since`.

    Replayed from the engine's own event log rather than polled, so no dip between two looks
    goes unseen. A pod counts as ready while its sandbox and its app container both run.
    Returns the count after each event, in the engine's order, and every pod that was ready.
    """
    events = space.api.events(
        since=since, until=int(time.time()) + 1, decode=True,
        filters={"type": "container", "event": ["start", "die", "destroy"],
                 "label": f"{labels.NAMESPACE}={space.namespace}"},
    )
    running: dict[str, set[str]] = defaultdict(set)  # pod uid -> names of its running containers
    counts: list[int] = []
    ever_ready: set[str] = set()
    for event in sorted(events, key=lambda e: int(e["timeNano"])):
        attributes = event["Actor"]["Attributes"]
        containers = running[attributes[labels.UID]]
        if event["Action"] == "start":
            containers.add(attributes[labels.CONTAINER])
        else:
            containers.discard(attributes[labels.CONTAINER])
        ready = {uid for uid, names in running.items() if names >= POD_CONTAINERS}
        counts.append(len(ready))
        ever_ready |= ready
    return counts, ever_ready


def test_restarts_a_killed_container_in_the_same_sandbox(space: Space) -> None:
    desired = bare(space.namespace, template())
    space.converge(desired)
    [pod] = space.pods()
    app = pod.container("app")
    assert app is not None
    space.api.kill(app.id)
    space.wait_for(lambda: not space.pods()[0].ready)

    space.converge(desired)
    [healed] = space.pods()
    assert healed.uid == pod.uid and healed.pause == pod.pause  # same sandbox, untouched
    new = healed.container("app")
    assert new is not None and new.running and new.id != app.id
    assert new.restarts == 1
    assert new.docker_name.endswith("_1")


def test_crash_loop_backs_off(space: Space) -> None:
    space.backoff = space.backoff.__class__(initial=2.0)
    crasher = container(command=("sh", "-c", "exit 1"))
    desired = bare(space.namespace, template(crasher))

    def app() -> observe.ObservedContainer:
        c = space.pods()[0].container("app")
        assert c is not None
        return c

    space.apply(desired)  # creates the pod
    space.wait_for(lambda: app().exited)
    space.apply(desired)  # the first restart is immediate
    assert app().restarts == 1
    space.wait_for(lambda: app().exited)

    waiting = space.plan(desired)
    assert waiting.restarts() == () and waiting.requeue_after is not None
    assert any("back-off" in w for w in waiting.waiting)
    assert app().restarts == 1  # not restarted at once

    time.sleep(waiting.requeue_after + 0.1)
    the_plan, _ = space.apply(desired)
    assert len(the_plan.restarts()) == 1
    assert app().restarts == 2 and app().streak == 2


def test_never_touches_a_container_podyard_did_not_make(space: Space) -> None:
    # Same naming scheme and pod labels, but without the ownership mark.
    stamp = {labels.NAMESPACE: space.namespace, labels.POD: "pod",
             labels.UID: "f" * 32, labels.CONTAINER: "app", TEST_LABEL: space.namespace}
    foreign = space.api.create_container(
        BUSYBOX, command=["sleep", "3600"], labels=stamp,
        name=f"k8s_app_pod_{space.namespace}_{'f' * 32}_0",
    )["Id"]
    space.api.start(foreign)
    space.converge(bare(space.namespace, template()))
    space.converge(model.DesiredState())
    assert [c["Id"] for c in space.containers()] == [foreign]
    assert space.api.inspect_container(foreign)["State"]["Running"]
