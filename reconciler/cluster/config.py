"""The cluster file: the nodes, their engines' endpoints, and the TLS files to reach them.

The cluster file (`/etc/podyard/cluster.yml`, written by the Ansible `controller` role) lists
the nodes and the TLS files for their engines. Without one, the local engine is the only node.
Reads that one file; talks to no engine.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reconciler import errors, model


@dataclass(frozen=True)
class TLS:
    ca: str
    cert: str
    key: str


@dataclass(frozen=True)
class NodeConfig:
    name: str
    endpoint: str  # "unix:///var/run/docker.sock" or "tcp://10.0.0.11:2376"
    pod_subnet: str = ""
    labels: model.Pairs = ()


@dataclass(frozen=True)
class Reserved:
    """What each node keeps for itself (engine, system): not allocatable to pods."""

    cpu: int = 100  # millicores
    memory: int = 256 * 2**20  # bytes


@dataclass(frozen=True)
class Cluster:
    nodes: tuple[NodeConfig, ...]
    tls: TLS | None = None
    service_cidr: str = "10.96.0.0/16"
    registry: str = ""
    node_grace: float | None = None  # seconds; None: the controller's default
    eviction_delay: float | None = None
    reserved: Reserved = field(default_factory=Reserved)


def local_cluster() -> Cluster:
    """The embedded default: the local engine is the one node, named after the host."""
    return Cluster(nodes=(NodeConfig(socket.gethostname(), "unix:///var/run/docker.sock"),))


def load_cluster(path: Path) -> Cluster:
    """Read and check a cluster file; ClusterError names what is wrong."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise errors.ClusterError(f"{path}: cannot read cluster file: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list) or not data["nodes"]:
        raise errors.ClusterError(f"{path}: needs a non-empty `nodes` list")
    nodes = tuple(_node(path, i, n) for i, n in enumerate(data["nodes"]))
    names = [n.name for n in nodes]
    if len(set(names)) != len(names):
        raise errors.ClusterError(f"{path}: node names must be unique: {names}")
    tls = data.get("tls")
    uses_tcp = any(n.endpoint.startswith("tcp://") for n in nodes)
    if uses_tcp and not (isinstance(tls, dict) and all(tls.get(k) for k in ("ca", "cert", "key"))):
        # Docker's TCP API is never used without mutual TLS.
        raise errors.ClusterError(f"{path}: tcp:// endpoints need tls.ca, tls.cert, tls.key")
    return Cluster(
        nodes=nodes,
        tls=TLS(str(tls["ca"]), str(tls["cert"]), str(tls["key"])) if tls else None,
        service_cidr=str(data.get("serviceCIDR", "10.96.0.0/16")),
        registry=str(data.get("registry", "")),
        node_grace=_seconds(path, data, "nodeGrace"),
        eviction_delay=_seconds(path, data, "evictionDelay"),
        reserved=_reserved(path, data.get("reserved")),
    )


def _seconds(path: Path, data: dict[str, Any], key: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise errors.ClusterError(f"{path}: {key} must be a number of seconds, not {value!r}")
    return float(value)


def _reserved(path: Path, raw: Any) -> Reserved:
    """`reserved: {cpu: 100m, memory: 256Mi}`, in Kubernetes quantities."""
    if raw is None:
        return Reserved()
    if not isinstance(raw, dict) or set(raw) - {"cpu", "memory"}:
        raise errors.ClusterError(f"{path}: reserved takes only cpu and memory")
    try:
        cpu = model.parse_quantity(raw.get("cpu", "100m")) * 1000
        memory = model.parse_quantity(raw.get("memory", "256Mi"))
    except ValueError as e:
        raise errors.ClusterError(f"{path}: reserved: {e}") from e
    return Reserved(cpu=int(cpu), memory=int(memory))


def _node(path: Path, index: int, raw: Any) -> NodeConfig:
    if not isinstance(raw, dict) or not raw.get("name") or not raw.get("endpoint"):
        raise errors.ClusterError(f"{path}: nodes[{index}] needs `name` and `endpoint`")
    endpoint = str(raw["endpoint"])
    if not endpoint.startswith(("tcp://", "unix://")):
        raise errors.ClusterError(f"{path}: nodes[{index}].endpoint must be tcp:// or unix://")
    return NodeConfig(
        name=str(raw["name"]),
        endpoint=endpoint,
        pod_subnet=str(raw.get("podSubnet", "")),
        labels=model.pairs(raw.get("labels")),
    )
