"""Events: what podyard did (each `execute.Result`) and how nodes changed, as v1 Events.

Pure bookkeeping with times passed in. Like client-go's event recorder, a repeat of the same
event (same object, reason, message and source) counts up and moves its lastTimestamp
instead of making a new Event; like the API server, events live an hour (EVENT_TTL), and at
most MAX_EVENTS are kept.

What each action becomes, in the words of the Kubernetes component that does the same:

| action | on the pod | on its RC |
| --- | --- | --- |
| CreatePod | Scheduled (the scheduler) | SuccessfulCreate / FailedCreate (Warning) |
| DeletePod | Killing (the kubelet) | SuccessfulDelete / FailedDelete (Warning) |
| RestartContainer | Started / Failed (Warning) | |

Address claims are events of their Service; rule and DNS programming of their node.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, assert_never

from reconciler import execute, plan
from reconciler.api import meta, snapshot

EVENT_TTL = 3600.0
MAX_EVENTS = 1000
COMPONENT = "podyard"
NODE_EVENTS_NAMESPACE = "default"  # where the kubelet and the node controller put node events


@dataclass(frozen=True)
class Involved:
    """The object an event is about (an ObjectReference)."""

    kind: str
    namespace: str
    name: str
    uid: str


@dataclass
class _Event:
    involved: Involved
    reason: str
    message: str
    type: str
    host: str
    first: float
    last: float
    name: str = ""
    count: int = 1


class EventLog:
    """The events of the last hour, aggregated; `objects` is what the API lists."""

    def __init__(self, scope: str) -> None:
        self.scope = scope
        self._events: OrderedDict[tuple[Involved, str, str, str], _Event] = OrderedDict()

    def add(self, involved: Involved, reason: str, message: str, host: str, when: float,
            warning: bool = False) -> None:
        """One occurrence; a repeat of a kept event counts up."""
        key = (involved, reason, message, host)
        found = self._events.get(key)
        if found is not None:
            found.count += 1
            found.last = max(found.last, when)
            self._events.move_to_end(key)
            return
        kind = "Warning" if warning else "Normal"
        # Named as client-go names events, <object>.<first time in ns as hex>; unique here.
        stamp, taken = int(when * 1e9), {e.name for e in self._events.values()}
        while f"{involved.name}.{stamp:x}" in taken:
            stamp += 1
        self._events[key] = _Event(involved, reason, message, kind, host, when, when,
                                   f"{involved.name}.{stamp:x}")
        while len(self._events) > MAX_EVENTS:
            self._events.popitem(last=False)

    def action(self, result: execute.Result, when: float, owners: Mapping[str, str]) -> None:
        """The events of one finished action; `owners`: each known pod uid's owner label."""
        a = result.action
        error = f": {result.error}" if result.error else ""
        match a:
            case plan.CreatePod():
                pod = self.pod(a.pod.namespace, a.pod.name, a.pod.uid)
                if not result.error:
                    self.add(pod, "Scheduled", f"Successfully assigned {a.pod.namespace}/"
                             f"{a.pod.name} to {a.node}", a.node, when)
                self._owner_event(a.pod.owner, a.pod.namespace, a.pod.name, "Create",
                                  a.node, when, error)
                if result.error and not a.pod.owner:
                    self.add(pod, "FailedCreate", f"Error creating{error}", a.node, when, True)
            case plan.DeletePod():
                pod = self.pod(a.namespace, a.name, a.uid)
                self.add(pod, "Killing", f"Stopping pod: {a.reason}", a.node, when)
                self._owner_event(owners.get(a.uid, ""), a.namespace, a.name, "Delete",
                                  a.node, when, error)
            case plan.RestartContainer():
                pod = self.pod(a.pod.namespace, a.pod.name, a.pod.uid)
                if result.error:
                    self.add(pod, "Failed", f"Error: {result.error}", a.node, when, True)
                else:
                    self.add(pod, "Started", f"Restarted container {a.container}: {a.reason}",
                             a.node, when)
            case plan.ClaimAddress() | plan.ReleaseAddress():
                _, namespace, name = [*a.claim.owner.split("/", 2), "", ""][:3]
                service = Involved("Service", namespace, name,
                                   meta.stable_uid(self.scope, "Service", namespace, name))
                verb = "Claimed" if isinstance(a, plan.ClaimAddress) else "Released"
                what = "clusterIP" if a.claim.kind == "ip" else "nodePort"
                reason = f"{verb}Address" if not result.error else f"Failed{verb[:-1]}"
                self.add(service, reason, f"{verb} {what} {a.claim.value}{error}", a.node,
                         when, bool(result.error))
            case plan.ProgramRules() | plan.ProgramDNS():
                node = self.node(a.node)
                what = "ServiceRules" if isinstance(a, plan.ProgramRules) else "ClusterDNS"
                reason = f"{what}Programmed" if not result.error else f"Failed{what}"
                self.add(node, reason, f"{a.reason}{error}", a.node, when, bool(result.error))
            case _:
                assert_never(a)

    def _owner_event(self, owner: str, namespace: str, pod: str, verb: str, host: str,
                     when: float, error: str) -> None:
        kind, _, name = owner.partition("/")
        if not name:
            return
        rc = Involved(kind, namespace, name, meta.stable_uid(self.scope, kind, namespace, name))
        if error:
            self.add(rc, f"Failed{verb}", f"Error {verb.lower()[:-1]}ing pod {pod}{error}",
                     host, when, True)
        else:
            self.add(rc, f"Successful{verb}", f"{verb}d pod: {pod}", host, when)

    def nodes(self, before: Mapping[str, str], now: Iterable[snapshot.NodeSeen], when: float
              ) -> None:
        """A node event for each node whose state changed since the last snapshot."""
        for n in now:
            was = before.get(n.name)
            if was is None or was == n.state:
                continue
            node = self.node(n.name)
            if n.ready:
                self.add(node, "NodeReady", f"Node {n.name} status is now: NodeReady", "", when)
            elif n.state == "NotReady":
                self.add(node, "NodeNotReady", f"Node {n.name} status is now: NodeNotReady "
                         f"({n.last_error})", "", when, True)
            else:
                self.add(node, "EvictingPods", f"Node {n.name} is lost; its pods are "
                         f"replaced on other nodes", "", when, True)

    def pod(self, namespace: str, name: str, uid: str) -> Involved:
        return Involved("Pod", namespace, name, meta.pod_uid(uid))

    def node(self, name: str) -> Involved:
        return Involved("Node", "", name, meta.stable_uid(self.scope, "Node", name))

    def objects(self, now: float) -> dict[tuple[str, str], dict[str, Any]]:
        """Every kept event as a v1 Event by (namespace, name); expired ones forgotten."""
        for key, event in list(self._events.items()):
            if now - event.last > EVENT_TTL:
                del self._events[key]
        docs = (_event(e) for e in self._events.values())
        return {(d["metadata"]["namespace"], d["metadata"]["name"]): d for d in docs}


def _event(e: _Event) -> dict[str, Any]:
    namespace = e.involved.namespace or NODE_EVENTS_NAMESPACE
    name = e.name
    involved: dict[str, Any] = {"kind": e.involved.kind}
    if e.involved.namespace:
        involved["namespace"] = e.involved.namespace
    involved.update({"name": e.involved.name, "uid": e.involved.uid, "apiVersion": "v1"})
    source: dict[str, Any] = {"component": COMPONENT}
    if e.host:
        source["host"] = e.host
    return {
        "kind": "Event",
        "apiVersion": "v1",
        "metadata": {"name": name, "namespace": namespace,
                     "uid": meta.stable_uid("event", namespace, name),
                     "creationTimestamp": meta.timestamp(e.first)},
        "involvedObject": involved,
        "reason": e.reason,
        "message": e.message,
        "source": source,
        "firstTimestamp": meta.timestamp(e.first),
        "lastTimestamp": meta.timestamp(e.last),
        "count": e.count,
        "type": e.type,
        "eventTime": None,
        "reportingComponent": COMPONENT,
        "reportingInstance": e.host,
    }
