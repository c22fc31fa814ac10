"""Scheduling: which node each new pod goes to, and why not when none fits.

Pure: it sees the node list and the pods already observed on them, nothing else. The policy
is the default scheduler's in miniature: filter (node ready, nodeSelector matches, hostPorts
free), then score (fewest pods wins, the name breaks ties so plans are deterministic).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from reconciler import model, observe


@dataclass(frozen=True)
class Node:
    name: str
    labels: model.Pairs = ()
    ready: bool = True


def host_ports(spec: model.PodSpec) -> set[tuple[int, str]]:
    """The (hostPort, protocol) pairs a pod spec claims on its node."""
    return {(p.host_port, p.protocol) for c in spec.containers for p in c.ports if p.host_port}


class Placement:
    """Pods per node, updated as a plan places and removes pods."""

    def __init__(self, nodes: Iterable[Node]) -> None:
        self.nodes = {n.name: n for n in nodes}
        self.count = dict.fromkeys(self.nodes, 0)
        self.ports: dict[str, set[tuple[int, str]]] = {n: set() for n in self.nodes}

    @classmethod
    def from_pods(cls, nodes: Iterable[Node], pods: Iterable[observe.ObservedPod]) -> Placement:
        """The placement as observed: every pod counts on the node it runs on."""
        placement = cls(nodes)
        for pod in pods:
            if pod.node in placement.count:
                placement.count[pod.node] += 1
        return placement

    def choose(self, spec: model.PodSpec) -> tuple[str | None, str]:
        """The best node for a pod with this spec, or None and the reason, kubectl-style."""
        if not self.nodes:
            return None, "no nodes"
        rejected: dict[str, int] = {}
        fits = []
        wanted = host_ports(spec)
        for node in self.nodes.values():
            reason = self._misfit(node, spec, wanted)
            if reason:
                rejected[reason] = rejected.get(reason, 0) + 1
            else:
                fits.append(node.name)
        if not fits:
            detail = ", ".join(f"{n} {r}" for r, n in sorted(rejected.items()))
            return None, f"0/{len(self.nodes)} nodes are available: {detail}"
        best = min(fits, key=lambda n: (self.count[n], n))
        self.count[best] += 1
        self.ports[best] |= wanted
        return best, ""

    def release(self, node: str) -> None:
        """A pod on this node is being deleted."""
        if self.count.get(node, 0) > 0:
            self.count[node] -= 1

    def _misfit(self, node: Node, spec: model.PodSpec, wanted: set[tuple[int, str]]) -> str:
        if not node.ready:
            return "node(s) not ready"
        labels = dict(node.labels)
        if any(labels.get(k) != v for k, v in spec.node_selector):
            return "node(s) didn't match the pod's node selector"
        if wanted & self.ports[node.name]:
            return "node(s) didn't have free ports for the requested pod ports"
        return ""
