"""Observed state: Docker's container JSON, read back into pods through podyard's labels.

Pure: it receives the engine's list output (one call per node, plus an inspect of the few
containers that have exited, merged in by the driver) and returns typed pods. It never calls
Docker. What the labels mean is `labels.py`'s to say; this module groups containers into
pods and reads the engine's own fields (state, exit code, times, IP).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NotRequired, TypedDict

from reconciler import labels, model


class ContainerJSON(TypedDict):
    """The subset of `GET /containers/json` that podyard reads (plus inspect fields)."""

    Id: str
    Names: list[str]
    Image: str
    State: str
    Status: str
    Created: int
    Labels: dict[str, str]
    NetworkSettings: NotRequired[dict[str, Any]]
    # Merged in by the driver from `inspect`, for containers that are not running.
    ExitCode: NotRequired[int]
    StartedAt: NotRequired[str]
    FinishedAt: NotRequired[str]
    OOMKilled: NotRequired[bool]


@dataclass(frozen=True)
class ObservedContainer:
    id: str
    name: str  # the Kubernetes container name, "POD" for the pause container
    docker_name: str
    image: str
    state: str  # Docker's: created, running, exited, dead, paused, restarting, removing
    created: float
    restarts: int = 0
    streak: int = 0
    exit_code: int | None = None
    started_at: float = 0.0
    finished_at: float = 0.0
    oom_killed: bool = False
    ip: str = ""

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def exited(self) -> bool:
        return self.state in ("exited", "dead")


@dataclass(frozen=True)
class ObservedPod:
    """One pod as found on one node: its pause container and its app containers."""

    node: str
    namespace: str
    name: str
    uid: str
    owner: str
    template_hash: str
    revision: str
    labels: tuple[tuple[str, str], ...]
    pause: ObservedContainer | None
    containers: tuple[ObservedContainer, ...]
    requests: model.Requests = field(default_factory=model.Requests)  # held on its node

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def created(self) -> float:
        return min(c.created for c in self.all_containers)

    @property
    def all_containers(self) -> tuple[ObservedContainer, ...]:
        return ((self.pause,) if self.pause else ()) + self.containers

    @property
    def ip(self) -> str:
        return self.pause.ip if self.pause else ""

    @property
    def restarts(self) -> int:
        return sum(c.restarts for c in self.containers)

    def container(self, name: str) -> ObservedContainer | None:
        """The app container of that name, if it exists."""
        return next((c for c in self.containers if c.name == name), None)

    @property
    def ready(self) -> bool:
        """Every container present and running: what the READY column counts."""
        return (
            self.pause is not None
            and self.pause.running
            and all(c.running for c in self.containers)
        )

    @property
    def phase(self) -> str:
        """Kubernetes' pod phase, as near as Docker's states let us tell."""
        if self.pause is None or not self.pause.running:
            return "Failed" if self.pause and self.pause.exited else "Pending"
        states = [c.state for c in self.containers]
        if states and all(s == "running" for s in states):
            return "Running"
        exited = [c for c in self.containers if c.exited]
        if exited and len(exited) == len(states):
            return "Succeeded" if all(c.exit_code == 0 for c in exited) else "Failed"
        return "Running" if "running" in states else "Pending"


@dataclass(frozen=True)
class NodeInfo:
    """What a node's engine says of its machine (`GET /info`): capacity and versions."""

    cpus: int = 0
    memory: int = 0  # bytes
    engine_version: str = ""
    os: str = ""
    kernel: str = ""

    @classmethod
    def from_json(cls, info: dict[str, Any]) -> NodeInfo:
        """From the engine's `/info` JSON; missing fields read as unknown."""
        return cls(
            cpus=int(info.get("NCPU") or 0),
            memory=int(info.get("MemTotal") or 0),
            engine_version=str(info.get("ServerVersion") or ""),
            os=str(info.get("OperatingSystem") or ""),
            kernel=str(info.get("KernelVersion") or ""),
        )


_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def parse_time(text: str | None) -> float:
    """Docker's RFC 3339 time (nanoseconds, Z) as a Unix timestamp; 0 for the zero time."""
    match = _RFC3339.match(text or "")
    if not match or match.group(1).startswith("0001-"):
        return 0.0
    seconds, fraction, zone = match.groups()
    offset = "+00:00" if zone == "Z" else zone
    stamp = datetime.fromisoformat(seconds + offset).timestamp()
    return stamp + (float("0" + fraction) if fraction else 0.0)


def container_from_json(raw: ContainerJSON) -> ObservedContainer:
    """One engine container as podyard sees it."""
    stamp = labels.decode_container(raw.get("Labels") or {})
    networks = (raw.get("NetworkSettings") or {}).get("Networks") or {}
    ip = next((n.get("IPAddress", "") for n in networks.values() if n.get("IPAddress")), "")
    return ObservedContainer(
        id=raw["Id"],
        name=stamp.container,
        docker_name=(raw.get("Names") or ["/"])[0].lstrip("/"),
        image=raw.get("Image", ""),
        state=raw.get("State", ""),
        created=float(raw.get("Created", 0)),
        restarts=stamp.restarts,
        streak=stamp.streak,
        exit_code=raw.get("ExitCode"),
        started_at=parse_time(raw.get("StartedAt")),
        finished_at=parse_time(raw.get("FinishedAt")),
        oom_killed=bool(raw.get("OOMKilled", False)),
        ip=ip,
    )


def group_pods(node: str, raws: Iterable[ContainerJSON]) -> tuple[ObservedPod, ...]:
    """Group one node's podyard containers into pods by pod uid; others are ignored."""
    by_uid: dict[str, list[ContainerJSON]] = {}
    for raw in raws:
        found = raw.get("Labels") or {}
        if labels.managed(found) and found.get(labels.UID):
            by_uid.setdefault(found[labels.UID], []).append(raw)
    pods = [_pod_from_group(node, uid, group) for uid, group in by_uid.items()]
    return tuple(sorted(pods, key=lambda p: (p.namespace, p.name, p.created, p.uid)))


def _pod_from_group(node: str, uid: str, group: list[ContainerJSON]) -> ObservedPod:
    containers = [container_from_json(raw) for raw in group]
    # The pause container carries the pod's identity; fall back to any member if it is gone.
    pause = next((c for c in containers if c.name == labels.PAUSE), None)
    first = next(
        (r for r in group if (r.get("Labels") or {}).get(labels.CONTAINER) == labels.PAUSE),
        group[0],
    )
    stamp = labels.decode_pod(first.get("Labels") or {}, node)
    return ObservedPod(
        node=node,
        namespace=stamp.namespace,
        name=stamp.name,
        uid=uid,
        owner=stamp.owner,
        template_hash=stamp.template_hash,
        revision=stamp.revision,
        labels=stamp.labels,
        pause=pause,
        containers=tuple(
            sorted((c for c in containers if c.name != labels.PAUSE), key=_newest_last)
        ),
        requests=stamp.requests,
    )


def _newest_last(c: ObservedContainer) -> tuple[str, float]:
    return (c.name, c.created)


# -- Services: what each node holds for them --------------------------------------------------

CLAIM_IP = "ip"
CLAIM_NODE_PORT = "nodeport"


@dataclass(frozen=True, order=True)
class Claim:
    """One address held by one Service: a ClusterIP, or a NodePort ("30080/TCP")."""

    kind: str  # CLAIM_IP or CLAIM_NODE_PORT
    value: str
    owner: str  # "<scope>/<namespace>/<name>"
    port: str = ""  # for a NodePort: the Service port it serves ("http" or "80/TCP")
    created: float = field(default=0.0, compare=False)

    @property
    def scope(self) -> str:
        return self.owner.split("/", 1)[0]



@dataclass(frozen=True)
class Agent:
    """A node agent container (the Service rules' or the cluster DNS'), as found."""

    id: str
    running: bool
    ip: str = ""  # on the bridge network (the DNS agent); "" in the host's network
    digest: str = ""  # of what it last applied; "" when unknown or nothing yet


@dataclass(frozen=True)
class NodeNetwork:
    """What a node holds for Services: address claims, and its two agents."""

    claims: tuple[Claim, ...] = ()
    proxy: Agent | None = None
    dns: Agent | None = None
    pod_network: str = ""  # the subnet of the engine's bridge, where its pods get addresses
