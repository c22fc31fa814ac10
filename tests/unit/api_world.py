"""A small cluster as the API sees it: the snapshots the API's unit tests build objects from.

An RC `web` of two replicas (one Ready, one crashed), a bare pod `db`, a NodePort Service
`web` with one endpoint, and two nodes, `node1` Ready and `node2` NotReady.
"""

from __future__ import annotations

import dataclasses

from reconciler import model, observe, plan
from reconciler.api import snapshot

NOW = 1_700_000_600.0
CREATED = 1_700_000_000.0
NS = "shop"


def template(app: str, annotations: model.Pairs = ()) -> model.PodTemplate:
    container = model.Container(
        "app", "podyard/busybox:1", command=("sleep", "3600"),
        ports=(model.ContainerPort(8080, name="http"),),
        resources=model.Resources(cpu_request=100, memory_request=64 * 2**20),
    )
    return model.PodTemplate((("app", app),), annotations, model.PodSpec((container,)))


WEB = model.ReplicationController(
    NS, "web", (("tier", "front"),), 2, (("app", "web"),),
    template("web", (("example.org/note", "hello"),)))
DB = model.Pod(NS, "db", template("db"))
SERVICE = model.Service(NS, "web", (), "NodePort", "", (("app", "web"),),
                        (model.ServicePort(80, "http", name="http"),))
DESIRED = model.DesiredState(
    namespaces=(model.Namespace(NS),), pods=(DB,), controllers=(WEB,), services=(SERVICE,),
    revision=model.Revision("a" * 40),
)


def container(name: str, uid: str, state: str = "running", **kw: object
              ) -> observe.ObservedContainer:
    found = observe.ObservedContainer(f"{name}-{uid}", name, f"k8s_{name}_{uid}",
                                      "podyard/busybox:1", state, CREATED)
    return dataclasses.replace(found, **kw)  # type: ignore[arg-type]


def pod(name: str, uid: str, node: str = "node1", owner: str = "ReplicationController/web",
        app: str = "web", ip: str = "10.244.1.5", apps: tuple[observe.ObservedContainer, ...] = ()
        ) -> observe.ObservedPod:
    pause = container("POD", uid, ip=ip)
    template_hash = WEB.template.hash if owner else DB.template.hash
    return observe.ObservedPod(node, NS, name, uid, owner, template_hash, "a" * 12,
                               (("app", app),), pause, apps or (container("app", uid),))


READY = pod("web-aaaaa", "a" * 32)
CRASHED = pod("web-bbbbb", "b" * 32, ip="10.244.1.6", apps=(
    container("app", "b" * 32, "exited", exit_code=1, restarts=3, streak=2,
              started_at=CREATED + 10, finished_at=CREATED + 20),))
BARE = pod("db", "c" * 32, "node2", "", "db", "10.244.2.2")
STATUS = plan.ServiceStatus(
    NS, "web", "NodePort", "10.96.0.20", (("http", 80, "TCP", 30080, "http"),),
    (("http", ("10.244.1.5:8080",)),), (("app", "web"),), CREATED,
)
NODES = (
    snapshot.NodeSeen("node1", (("node-role.kubernetes.io/worker", ""),), "tcp://10.0.0.11:2376",
                      "Ready", CREATED - 100, NOW - 1, "",
                      observe.NodeInfo(2, 4 * 2**30, "20.10.24", "Debian 12", "6.1.0")),
    snapshot.NodeSeen("node2", (), "tcp://10.0.0.12:2376", "NotReady", CREATED - 100, NOW - 6,
                      "no answer", observe.NodeInfo(2, 4 * 2**30, "20.10.24", "Debian 12",
                                                    "6.1.0")),
)


def snap(**changes: object) -> snapshot.Snapshot:
    """The cluster above at NOW, with any field replaced."""
    base = snapshot.Snapshot(
        time=NOW, scope="default", revision="a" * 12, desired=DESIRED,
        pods=(READY, CRASHED, BARE), nodes=NODES, services=(STATUS,),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]
