"""`podyard get nodes` and `podyard describe node`, with the columns kubectl shows.

What a node is comes from two places: this command's own probe of each engine (is it
answering, its capacity and version, its pods) and the controller's status file (its
judgement over time: when the node was first seen, when it last answered, NotReady or
evicted). Without a status file, STATUS is this command's own probe.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from reconciler import errors, observe
from reconciler.cli import tables
from reconciler.cluster import config
from reconciler.engine import driver

ROLE_PREFIX = "node-role.kubernetes.io/"


@dataclass(frozen=True)
class Node:
    """One node as this command sees it."""

    name: str
    labels: tuple[tuple[str, str], ...]
    answered: bool
    error: str
    info: observe.NodeInfo | None
    pods: tuple[observe.ObservedPod, ...]
    status: Mapping[str, Any]  # this node in the controller's status file, or {}

    @property
    def state(self) -> str:
        if self.status.get("state") and self.answered == (self.status["state"] == "Ready"):
            return str(self.status["state"])
        return "Ready" if self.answered else "NotReady"

    @property
    def roles(self) -> str:
        roles = sorted(k[len(ROLE_PREFIX):] for k, _ in self.labels if k.startswith(ROLE_PREFIX))
        return ",".join(roles) or "<none>"


def look(
    cluster: config.Cluster, drivers: Mapping[str, driver.Driver], statuses: list[dict[str, Any]]
) -> list[Node]:
    """Every node of the cluster: probed, listed and described at once."""
    merged: dict[str, Mapping[str, Any]] = {}
    for doc in statuses:
        merged.update(doc.get("nodes") or {})
    with ThreadPoolExecutor(max(1, len(drivers))) as pool:
        futures = {
            n.name: pool.submit(_look_at, n, drivers[n.name], merged.get(n.name) or {})
            for n in cluster.nodes
        }
        return [f.result() for f in futures.values()]


def _look_at(n: config.NodeConfig, d: driver.Driver, status: Mapping[str, Any]) -> Node:
    try:
        d.probe()
        info = d.info()
        pods = d.list_pods()
    except errors.EngineError as e:
        return Node(n.name, n.labels, False, str(e), None, (), status)
    return Node(n.name, n.labels, True, "", info, pods, status)


def get_table(found: list[Node], reserved: config.Reserved, wide: bool) -> str:
    """NAME STATUS ROLES AGE VERSION PODS CPU MEMORY (requested/allocatable)."""
    now = time.time()
    header = ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "PODS", "CPU", "MEMORY"]
    if wide:
        header += ["OS-IMAGE", "KERNEL-VERSION"]
    rows = [header]
    for n in found:
        cpu, memory = _usage(n, reserved)
        row = [n.name, n.state, n.roles, _age(n, now), _version(n), str(len(n.pods)), cpu, memory]
        if wide:
            row += [n.info.os if n.info else "<unknown>", n.info.kernel if n.info else "<unknown>"]
        rows.append(row)
    return tables.table(rows)


def describe(n: Node, reserved: config.Reserved) -> str:
    """Conditions, capacity, last answer and pods, as `kubectl describe node` lays them out."""
    now = time.time()
    last = n.status.get("lastAnswer")
    lines = [
        f"Name:               {n.name}",
        f"Roles:              {n.roles}",
        f"Labels:             {', '.join(f'{k}={v}' for k, v in n.labels) or '<none>'}",
        "Conditions:",
        "  Type    Status   LastHeartbeatTime   Reason",
        f"  Ready   {'True' if n.answered else 'False':<8} "
        f"{(tables.age(now - last) + ' ago') if last else '<unknown>':<19} "
        f"{'EngineAnswering' if n.answered else 'EngineNotAnswering'}",
    ]
    if n.error or n.status.get("lastError"):
        lines.append(f"  Message: {n.error or n.status.get('lastError')}")
    if n.info:
        lines += [
            "Capacity:",
            f"  cpu:     {n.info.cpus}",
            f"  memory:  {tables.bytes_text(n.info.memory)}",
            "Allocatable:",
            f"  cpu:     {_millicores(_allocatable(n.info, reserved)[0])}",
            f"  memory:  {tables.bytes_text(_allocatable(n.info, reserved)[1])}",
            "System Info:",
            f"  Operating System:           {n.info.os}",
            f"  Kernel Version:             {n.info.kernel}",
            f"  Container Runtime Version:  docker://{n.info.engine_version}",
        ]
    cpu, memory = _usage(n, reserved)
    lines += [
        f"Allocated resources: cpu {cpu}, memory {memory}",
        f"Pods: ({len(n.pods)} in total)",
        "  Namespace   Name   CPU Requests   Memory Requests",
    ]
    for p in n.pods:
        lines.append(
            f"  {p.namespace}   {p.name}   {_millicores(p.requests.cpu)}   "
            f"{tables.bytes_text(p.requests.memory)}"
        )
    return "\n".join(lines)


def _allocatable(info: observe.NodeInfo, reserved: config.Reserved) -> tuple[int, int]:
    return max(0, info.cpus * 1000 - reserved.cpu), max(0, info.memory - reserved.memory)


def _usage(n: Node, reserved: config.Reserved) -> tuple[str, str]:
    cpu = sum(p.requests.cpu for p in n.pods)
    memory = sum(p.requests.memory for p in n.pods)
    if n.info is None:
        return f"{_millicores(cpu)}/<unknown>", f"{tables.bytes_text(memory)}/<unknown>"
    cpu_total, memory_total = _allocatable(n.info, reserved)
    return (
        f"{_millicores(cpu)}/{_millicores(cpu_total)}",
        f"{tables.bytes_text(memory)}/{tables.bytes_text(memory_total)}",
    )


def _age(n: Node, now: float) -> str:
    first = n.status.get("firstSeen")
    return tables.age(now - float(first)) if first else "<unknown>"


def _version(n: Node) -> str:
    version = n.info.engine_version if n.info else n.status.get("version")
    return f"docker://{version}" if version else "<unknown>"


def _millicores(value: int) -> str:
    return f"{value // 1000}" if value % 1000 == 0 and value else f"{value}m"
