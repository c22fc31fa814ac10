"""Scheduling: which node each new pod goes to, and why not when none fits.

Pure: it sees the node list and the pods already observed on them, nothing else. The policy
is the Kubernetes default scheduler's in miniature, in its order and its words:

- filter: the node is ready (else the not-ready taint), the nodeSelector matches, the
  hostPorts are free, the CPU and memory requests fit what the node has left;
- score: fewest pods of the same owner (spreading an RC's replicas), then the least
  requested node (LeastAllocated), then fewest pods, then the name, so plans are
  deterministic.

Running pods are never moved: a plan only places the pods it creates.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from reconciler import model, observe

# The scheduler's own words, so `reconcile` says what `kubectl describe pod` would.
NOT_READY = "node(s) had untolerated taint {node.kubernetes.io/not-ready: }"
SELECTOR = "node(s) didn't match Pod's node affinity/selector"
PORTS = "node(s) didn't have free ports for the requested pod ports"
CPU = "Insufficient cpu"
MEMORY = "Insufficient memory"
NO_NODES = "no nodes available to schedule pods"

Port = tuple[int, str]  # (hostPort, protocol)
Group = tuple[str, str]  # (namespace, owner): the pods spread apart from each other
Score = tuple[int, float, int, str]  # lowest wins


@dataclass(frozen=True)
class Node:
    """A node as the scheduler sees it; an allocatable of 0 is unknown and never filters."""

    name: str
    labels: model.Pairs = ()
    ready: bool = True
    allocatable_cpu: int = 0  # millicores
    allocatable_memory: int = 0  # bytes


@dataclass(frozen=True)
class Demand:
    """A pod to place: what it asks of a node, and the group it spreads within."""

    group: Group
    requests: model.Requests = field(default_factory=model.Requests)
    node_selector: model.Pairs = ()
    ports: frozenset[Port] = frozenset()

    @classmethod
    def of(cls, namespace: str, name: str, owner: str, spec: model.PodSpec) -> Demand:
        """The demand of a pod named `name`, owned by `owner` ("" for a bare pod)."""
        return cls(
            group=group(namespace, name, owner),
            requests=spec.requests,
            node_selector=spec.node_selector,
            ports=frozenset(host_ports(spec)),
        )


def group(namespace: str, name: str, owner: str) -> Group:
    """The spreading group of a pod: its owner's pods, or the bare pod alone."""
    return (namespace, owner or f"Pod/{name}")


def host_ports(spec: model.PodSpec) -> set[Port]:
    """The (hostPort, protocol) pairs a pod spec claims on its node."""
    return {(p.host_port, p.protocol) for c in spec.containers for p in c.ports if p.host_port}


@dataclass
class _Usage:
    """What the pods on one node hold: their count, requests, host ports and groups."""

    pods: int = 0
    cpu: int = 0
    memory: int = 0
    ports: set[Port] = field(default_factory=set)
    groups: dict[Group, int] = field(default_factory=dict)  # pods per group

    def add(self, g: Group, requests: model.Requests, sign: int = 1) -> None:
        self.pods += sign
        self.cpu += sign * requests.cpu
        self.memory += sign * requests.memory
        self.groups[g] = self.groups.get(g, 0) + sign


class Placement:
    """What each node holds, updated as a plan places and removes pods."""

    def __init__(self, nodes: Iterable[Node]) -> None:
        self.nodes = {n.name: n for n in nodes}
        self.usage = {name: _Usage() for name in self.nodes}
        self.labels = {n.name: frozenset(n.labels) for n in self.nodes.values()}
        # A share of an unknown allocatable compares with nothing: a resource counts in the
        # least-requested score only when every ready node knows it (else pod counts decide).
        ready = [n for n in self.nodes.values() if n.ready]
        self.compare_cpu = all(n.allocatable_cpu for n in ready)
        self.compare_memory = all(n.allocatable_memory for n in ready)
        self._ranking: _Ranking | None = None

    @classmethod
    def from_pods(cls, nodes: Iterable[Node], pods: Iterable[observe.ObservedPod]) -> Placement:
        """The placement as observed: every pod counts, with its requests, where it runs."""
        placement = cls(nodes)
        for pod in pods:
            if pod.node in placement.usage:
                placement.usage[pod.node].add(_group_of(pod), pod.requests)
        return placement

    def choose(self, pod: Demand) -> tuple[str | None, str]:
        """The best node for the pod, now counted there; or None and why, as Kubernetes says."""
        if not self.nodes:
            return None, NO_NODES
        ranking = self._rank(pod)
        if not ranking.heap:
            rejected = Counter(r for n in self.nodes.values() for r in self._misfits(n, pod))
            return None, unschedulable(len(self.nodes), rejected)
        _, best = heapq.heappop(ranking.heap)
        usage = self.usage[best]
        usage.add(pod.group, pod.requests)
        usage.ports |= pod.ports
        node = self.nodes[best]
        if not self._misfits(node, pod):  # it may take another copy of this pod: re-rank it
            heapq.heappush(ranking.heap, (self._score(node, pod), best))
        return best, ""

    def release(self, pod: observe.ObservedPod) -> None:
        """An observed pod is being deleted: what it held on its node is free again."""
        usage = self.usage.get(pod.node)
        if usage is not None and usage.pods > 0:
            usage.add(_group_of(pod), pod.requests, sign=-1)
            self._ranking = None

    def _rank(self, pod: Demand) -> _Ranking:
        """The nodes that fit the pod, best first.

        Kept while the same pod is placed again and again (an RC's replicas, one after the
        other): only the node just chosen has changed then, and `choose` re-ranks it. Any
        other change (another pod placed, a pod released) makes the next call rank anew.
        """
        if self._ranking is None or self._ranking.pod != pod:
            fits = [n for n in self.nodes.values() if not self._misfits(n, pod)]
            heap = [(self._score(n, pod), n.name) for n in fits]
            heapq.heapify(heap)
            self._ranking = _Ranking(pod, heap)
        return self._ranking

    def _misfits(self, node: Node, pod: Demand) -> tuple[str, ...]:
        """Why the pod does not fit on the node: the first filter that fails, in order."""
        if not node.ready:
            return (NOT_READY,)
        if not self.labels[node.name].issuperset(pod.node_selector):
            return (SELECTOR,)
        usage = self.usage[node.name]
        if pod.ports & usage.ports:
            return (PORTS,)
        return _insufficient(node, usage, pod.requests)

    def _score(self, node: Node, pod: Demand) -> Score:
        """Lowest wins: fewest pods of the same owner, least requested, fewest pods, name."""
        usage = self.usage[node.name]
        load = _load(node, usage, pod.requests, cpu=self.compare_cpu, memory=self.compare_memory)
        return (usage.groups.get(pod.group, 0), load, usage.pods, node.name)


@dataclass
class _Ranking:
    """The nodes that fit one pod, as a heap of (score, node name)."""

    pod: Demand
    heap: list[tuple[Score, str]]


def _insufficient(node: Node, usage: _Usage, requests: model.Requests) -> tuple[str, ...]:
    """NodeResourcesFit: each resource the node has too little of left, counted apart.

    As in Kubernetes, a pod that requests none of a resource is never refused for it.
    """
    reasons = []
    if _short(requests.cpu, node.allocatable_cpu, usage.cpu):
        reasons.append(CPU)
    if _short(requests.memory, node.allocatable_memory, usage.memory):
        reasons.append(MEMORY)
    return tuple(reasons)


def _short(requested: int, allocatable: int, used: int) -> bool:
    """Whether what is left is less than the request; an unknown allocatable (0) never is."""
    return bool(requested and allocatable) and requested > allocatable - used


def _load(node: Node, usage: _Usage, requests: model.Requests, *, cpu: bool, memory: bool) -> float:
    """LeastAllocated: the mean requested share of the compared resources, this pod included.

    0 when no resource is compared: the pod count decides then.
    """
    shares = []
    if cpu:
        shares.append((usage.cpu + requests.cpu) / node.allocatable_cpu)
    if memory:
        shares.append((usage.memory + requests.memory) / node.allocatable_memory)
    return sum(shares) / len(shares) if shares else 0.0


def unschedulable(nodes: int, rejected: Counter[str]) -> str:
    """Why no node fits, as the scheduler's FitError says it: counted, sorted, a period."""
    histogram = sorted(f"{count} {reason}" for reason, count in rejected.items())
    return f"0/{nodes} nodes are available: {', '.join(histogram)}."


def _group_of(pod: observe.ObservedPod) -> Group:
    return group(pod.namespace, pod.name, pod.owner)
