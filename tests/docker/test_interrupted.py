"""A controller killed with SIGKILL mid-pass leaves nothing the next pass cannot repair."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterable
from pathlib import Path

import pytest

from reconciler import labels, model

from .conftest import Space
from .workloads import container, rc, template

pytestmark = pytest.mark.docker

HERE = Path(__file__).resolve().parent
REPLICAS = 20
# The kill lands once the engine reports this many containers created: the pass is under way,
# and far from its 2 * REPLICAS containers, even with the one request each of its workers may
# still have had on its way to the engine.
CREATED_BEFORE_KILL = 4

# The same pass as the test's, in a process of its own, converging until it is killed.
CONVERGE = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {here!r})
    from workloads import container, rc, template
    from reconciler import execute, model, plan
    from reconciler.engine import driver
    from reconciler.plan import schedule
    namespace = sys.argv[1]
    d = driver.DockerDriver.local()
    tpl = template(container(volume_mounts=(model.VolumeMount("scratch", "/scratch"),)),
                   volumes=(model.Volume("scratch"),))
    desired = rc(namespace, {replicas}, tpl)
    while True:
        pods = [p for p in d.list_pods() if p.namespace == namespace]
        ctx = plan.Context(now=time.time(), nodes=(schedule.Node(d.node),))
        execute.apply(plan.diff(desired, pods, ctx), {{d.node: d}})
""")


def desired(namespace: str) -> model.DesiredState:
    tpl = template(container(volume_mounts=(model.VolumeMount("scratch", "/scratch"),)),
                   volumes=(model.Volume("scratch"),))
    return rc(namespace, REPLICAS, tpl)


def test_sigkill_mid_create_then_a_new_pass_repairs_everything(space: Space) -> None:
    script = CONVERGE.format(here=str(HERE), replicas=REPLICAS)
    # Subscribed before the child starts, so none of its creations is missed; `until` ends the
    # stream should the child never get that far.
    created = space.api.events(
        until=int(time.time()) + 120, decode=True,
        filters={"type": "container", "event": "create",
                 "label": f"{labels.NAMESPACE}={space.namespace}"},
    )
    with subprocess.Popen([sys.executable, "-c", script, space.namespace]) as child:
        try:
            seen = count(created, CREATED_BEFORE_KILL)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
            created.close()
    assert seen == CREATED_BEFORE_KILL, f"the pass created only {seen} containers"
    partial = len(space.containers())
    assert CREATED_BEFORE_KILL <= partial < 2 * REPLICAS, "killed mid-creation, not before or after"

    space.converge(desired(space.namespace))

    pods = space.pods()
    assert len(pods) == REPLICAS and all(p.ready for p in pods)
    assert len({p.name for p in pods}) == REPLICAS
    uids = {p.uid for p in pods}
    # No orphans: every container and volume of the namespace belongs to a complete pod.
    containers = space.containers()
    assert len(containers) == 2 * REPLICAS
    assert {c["Labels"][labels.UID] for c in containers} == uids
    volumes = space.api.volumes(
        filters={"label": f"{labels.NAMESPACE}={space.namespace}"})["Volumes"] or []
    assert sorted(v["Labels"][labels.UID] for v in volumes) == sorted(uids)


def count(events: Iterable[object], wanted: int) -> int:
    """Consume events until `wanted` have come (or the stream ended); how many came."""
    seen = 0
    for _ in events:
        seen += 1
        if seen == wanted:
            break
    return seen
