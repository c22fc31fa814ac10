"""The cluster file: the nodes, their engines' endpoints, and the TLS files to reach them.

The cluster file (`/etc/podyard/cluster.yml`, written by the Ansible `controller` role) lists
the nodes and the TLS files for their engines, and what pods may ask of them (`podSecurity`).
Without one, the local engine is the only node. Reads that one file; talks to no engine.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reconciler import errors, model

_PORT_RANGE = re.compile(r"([0-9]{1,5})(?:-([0-9]{1,5}))?")  # fullmatch: "8080", "8000-8100"


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
    service_cidr: str = model.DEFAULT_SERVICE_CIDR
    registry: str = ""
    node_grace: float | None = None  # seconds; None: the controller's default
    eviction_delay: float | None = None
    reserved: Reserved = field(default_factory=Reserved)
    pod_security: model.PodSecurity = model.DEFAULT_POD_SECURITY
    commit_trust: model.CommitTrust = field(default_factory=model.CommitTrust)


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
        service_cidr=_cidr(path, data.get("serviceCIDR", model.DEFAULT_SERVICE_CIDR)),
        registry=str(data.get("registry", "")),
        node_grace=_seconds(path, data, "nodeGrace"),
        eviction_delay=_seconds(path, data, "evictionDelay"),
        reserved=_reserved(path, data.get("reserved")),
        pod_security=_pod_security(path, data.get("podSecurity")),
        commit_trust=_commit_trust(path, data),
    )


def _cidr(path: Path, raw: Any) -> str:
    """`serviceCIDR`: an IPv4 network with room for Services (at least a /28)."""
    try:
        network = ipaddress.ip_network(str(raw), strict=False)
    except ValueError as e:
        raise errors.ClusterError(f"{path}: serviceCIDR: {e}") from e
    if network.version != 4 or network.prefixlen > 28:
        raise errors.ClusterError(
            f"{path}: serviceCIDR must be an IPv4 network of at least 16 addresses, not {raw}"
        )
    return str(network)


def _commit_trust(path: Path, data: dict[str, Any]) -> model.CommitTrust:
    """`verifyCommits: true` with `trustedSigners: [<SSH public key or OpenPGP block>, ...]`."""
    verify = data.get("verifyCommits", False)
    signers = data.get("trustedSigners") or []
    if not isinstance(verify, bool):
        raise errors.ClusterError(f"{path}: verifyCommits must be true or false")
    if not isinstance(signers, list) or not all(isinstance(s, str) and s for s in signers):
        raise errors.ClusterError(f"{path}: trustedSigners must be a list of public keys")
    if verify and not signers:
        raise errors.ClusterError(f"{path}: verifyCommits needs at least one trustedSigners key")
    return model.CommitTrust(verify=verify, signers=tuple(signers))


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


def _pod_security(path: Path, raw: Any) -> model.PodSecurity:
    """`podSecurity: {level: baseline, allowedHostPaths: [/srv/data], allowedHostPorts:
    ["8000-8100", 30080]}`: what pods may ask of their node (Kubernetes' Pod Security
    Standards); without it, level baseline with no host path and no host port allowed."""
    if raw is None:
        return model.DEFAULT_POD_SECURITY
    keys = {"level", "allowedHostPaths", "allowedHostPorts"}
    if not isinstance(raw, dict) or set(raw) - keys:
        raise errors.ClusterError(f"{path}: podSecurity takes only {', '.join(sorted(keys))}")
    level = raw.get("level", model.BASELINE)
    if level not in model.POD_SECURITY_LEVELS:
        raise errors.ClusterError(
            f"{path}: podSecurity.level must be {' or '.join(model.POD_SECURITY_LEVELS)}, "
            f"not {level!r}")
    paths, ports = raw.get("allowedHostPaths") or [], raw.get("allowedHostPorts") or []
    if not isinstance(paths, list) or not isinstance(ports, list):
        raise errors.ClusterError(f"{path}: podSecurity.allowedHostPaths and "
                                  "allowedHostPorts must be lists")
    return model.PodSecurity(
        level=level,
        allowed_host_paths=tuple(_host_path(path, p) for p in paths),
        allowed_host_ports=tuple(_port_range(path, p) for p in ports),
    )


def _host_path(path: Path, raw: Any) -> str:
    """An absolute path prefix, without `..` (which would make "under it" meaningless)."""
    if not isinstance(raw, str) or not raw.startswith("/") or ".." in raw.split("/"):
        raise errors.ClusterError(f"{path}: podSecurity.allowedHostPaths: {raw!r} must be an "
                                  "absolute path without '..'")
    return raw


def _port_range(path: Path, raw: Any) -> tuple[int, int]:
    """`8080` or `"8000-8100"` (inclusive), each port 1-65535."""
    text = str(raw) if isinstance(raw, int) and not isinstance(raw, bool) else raw
    found = _PORT_RANGE.fullmatch(text) if isinstance(text, str) else None
    low, high = (int(found[1]), int(found[2] or found[1])) if found else (0, 0)
    if not 1 <= low <= high <= 65535:
        raise errors.ClusterError(f"{path}: podSecurity.allowedHostPorts: {raw!r} must be a "
                                  'port or a range like "8000-8100", within 1-65535')
    return low, high


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
