"""The hand-over from a pass to the API: one immutable value, taken on the loop's thread.

`take` copies what the API shows out of the controller right after a pass has planned: the
desired state and the observed pods are already immutable; node health, which other threads
keep changing, is copied into frozen `NodeSeen`s. It does no I/O and nothing slow (no object
is built here: that is the publisher's thread's work), so taking one costs the loop nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler import model, observe, plan
from reconciler.cluster import config
from reconciler.control import observation, passes


@dataclass(frozen=True)
class NodeSeen:
    """One node as the controller judged it when the pass ran."""

    name: str
    labels: model.Pairs = ()
    endpoint: str = ""
    state: str = "Ready"  # health.State's value: Ready, NotReady, NotReady,Evicted
    first_seen: float | None = None
    last_answer: float | None = None
    last_error: str = ""
    info: observe.NodeInfo | None = None

    @property
    def ready(self) -> bool:
        return self.state == "Ready"


@dataclass(frozen=True)
class Snapshot:
    """What one pass knew: everything the API serves, except the events of actions."""

    time: float
    scope: str = ""
    revision: str = ""  # the manifests' revision the pass applied
    desired: model.DesiredState = field(default_factory=model.DesiredState)
    pods: tuple[observe.ObservedPod, ...] = ()
    deleting: frozenset[str] = frozenset()  # uids of the pods this pass deletes
    pending: tuple[tuple[str, str, str], ...] = ()  # (namespace, name, why no node fits)
    nodes: tuple[NodeSeen, ...] = ()
    services: tuple[plan.ServiceStatus, ...] = ()
    reserved: config.Reserved = field(default_factory=config.Reserved)


def take(
    controller: passes.Controller,
    desired: model.DesiredState,
    view: observation.View,
    the_plan: plan.Plan,
) -> Snapshot:
    """The snapshot of the pass that just planned `the_plan` from `view`."""
    return Snapshot(
        time=controller.clock(),
        scope=controller.scope,
        revision=str(desired.revision),
        desired=desired,
        pods=view.pods,
        deleting=frozenset(a.uid for a in the_plan.deletes()),
        pending=the_plan.unschedulable,
        nodes=tuple(_node(controller, n) for n in controller.cluster.nodes),
        services=the_plan.services,
        reserved=controller.options.reserved,
    )


def _node(controller: passes.Controller, n: config.NodeConfig) -> NodeSeen:
    nodes = controller.health
    return NodeSeen(
        name=n.name,
        labels=n.labels,
        endpoint=n.endpoint,
        state=nodes.state(n.name).value,
        first_seen=nodes.first_seen(n.name),
        last_answer=nodes.last_answer(n.name),
        last_error=nodes.last_error(n.name),
        info=controller.observer.info.get(n.name),
    )
