"""A controller killed with SIGKILL mid-pass leaves nothing the next pass cannot repair."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from reconciler import labels, model

from .conftest import Space
from .workloads import container, rc, template

pytestmark = pytest.mark.docker

HERE = Path(__file__).resolve().parent
REPLICAS = 20

# The same pass as the test's, in a process of its own, converging until it is killed.
CONVERGE = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {here!r})
    from workloads import container, rc, template
    from reconciler import driver, execute, model, plan, schedule
    namespace = sys.argv[1]
    d = driver.DockerDriver.local()
    tpl = template(container(volume_mounts=(model.VolumeMount("scratch", "/scratch"),)),
                   volumes=(model.Volume("scratch"),))
    desired = rc(namespace, {replicas}, tpl)
    print("ready", flush=True)
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
    with subprocess.Popen([sys.executable, "-c", script, space.namespace],
                          stdout=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout is not None and child.stdout.readline() == "ready\n"
            time.sleep(1.0)
            partial = len(space.containers())
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
    assert 0 < partial < 2 * REPLICAS, "the kill should land in the middle of the creation"

    space.converge(desired(space.namespace))

    pods = space.pods()
    assert len(pods) == REPLICAS and all(p.ready for p in pods)
    assert len({p.name for p in pods}) == REPLICAS
    uids = {p.uid for p in pods}
    # No orphans: every container and volume of the namespace belongs to a complete pod.
    containers = space.containers()
    assert len(containers) == 2 * REPLICAS
    assert {c["Labels"][labels.UID] for c in containers} == uids  # type: ignore[index]
    volumes = space.api.volumes(
        filters={"label": f"{labels.NAMESPACE}={space.namespace}"})["Volumes"] or []
    assert sorted(v["Labels"][labels.UID] for v in volumes) == sorted(uids)
