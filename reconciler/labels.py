"""The `io.podyard.*` label vocabulary: podyard's only persistent state, encoded and decoded here.

Every container (and emptyDir volume) podyard creates carries these labels. A controller that
crashes, restarts or moves to another master rebuilds all it knows from them, so this module
is the schema of podyard's state: `encode_*` writes it (through `engine/podspec.py`), `decode`
reads it (through `observe.py`). Pure: no I/O. Every label written here is read somewhere;
the README's "How pods map onto Docker" table lists each one and its reader.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler import model

PREFIX = "io.podyard."
MANAGED = PREFIX + "managed"  # "true" on everything podyard creates: the ownership mark
SCOPE = PREFIX + "scope"  # which reconciler owns the pod: one never prunes another's pods
NAMESPACE = PREFIX + "pod.namespace"
POD = PREFIX + "pod.name"
UID = PREFIX + "pod.uid"
CONTAINER = PREFIX + "container.name"  # "POD" for the pause container, as the kubelet names it
OWNER = PREFIX + "owner"  # "ReplicationController/web", or "" for a bare pod
TEMPLATE_HASH = PREFIX + "template-hash"  # model.template_hash of the pod's template
REVISION = PREFIX + "revision"  # the Git commit the pod was created from
POD_LABELS = PREFIX + "pod.labels"  # the pod's own labels as JSON, for selectors
NODE = PREFIX + "node"
GRACE = PREFIX + "grace-period"  # terminationGracePeriodSeconds, read back on delete
REQUESTS = PREFIX + "requests"  # "cpu=250,memory=67108864": so running pods count on a node
RESTARTS = PREFIX + "restarts"  # total restarts of this container slot
STREAK = PREFIX + "crash-streak"  # restarts since it last ran long enough to reset the backoff

# Node agents and address claims (`engine/agents.py`), the Services' state on each engine.
SYSTEM = PREFIX + "system"  # "proxy" or "dns" on a node agent container: not a pod
CLAIM_OWNER = PREFIX + "claim.owner"  # "<scope>/<namespace>/<service>" holding the address
CLAIM_KIND = PREFIX + "claim.kind"  # "ip" (a ClusterIP) or "nodeport"
CLAIM_VALUE = PREFIX + "claim.value"  # "10.96.0.12", "30080/TCP"
CLAIM_PORT = PREFIX + "claim.port"  # for a NodePort: the Service port it serves

DEFAULT_SCOPE = "default"
PAUSE = "POD"  # the container name of a pod's sandbox


@dataclass(frozen=True)
class PodStamp:
    """What every container of one pod carries: the pod's identity and where it runs."""

    namespace: str
    name: str
    uid: str
    owner: str
    template_hash: str
    revision: str
    labels: model.Pairs
    node: str
    scope: str
    grace: int = model.DEFAULT_GRACE_SECONDS
    requests: model.Requests = field(default_factory=model.Requests)  # the scheduler counts it


@dataclass(frozen=True)
class ContainerStamp:
    """What one container carries beyond its pod's stamp."""

    container: str  # the Kubernetes container name, PAUSE for the sandbox
    restarts: int = 0
    streak: int = 0


def encode(pod: PodStamp, container: ContainerStamp) -> dict[str, str]:
    """The labels of one container of a pod."""
    labels = {
        MANAGED: "true",
        SCOPE: pod.scope,
        NAMESPACE: pod.namespace,
        POD: pod.name,
        UID: pod.uid,
        CONTAINER: container.container,
        OWNER: pod.owner,
        TEMPLATE_HASH: pod.template_hash,
        REVISION: pod.revision,
        POD_LABELS: json.dumps(dict(pod.labels), sort_keys=True),
        NODE: pod.node,
        GRACE: str(pod.grace),
        REQUESTS: encode_requests(pod.requests),
    }
    if container.container != PAUSE:
        labels[RESTARTS] = str(container.restarts)
        labels[STREAK] = str(container.streak)
    return labels


def encode_requests(requests: model.Requests) -> str:
    """A pod's requests as one label value: `cpu=<millicores>,memory=<bytes>`."""
    return f"cpu={requests.cpu},memory={requests.memory}"


def decode_requests(text: str | None) -> model.Requests:
    """Requests read back; a damaged or missing value reads as 0, as a pod without requests."""
    found: dict[str, int] = {}
    for item in (text or "").split(","):
        key, _, value = item.partition("=")
        found[key.strip()] = max(_int(value.strip(), 0), 0)
    return model.Requests(cpu=found.get("cpu", 0), memory=found.get("memory", 0))


def encode_volume(pod: PodStamp) -> dict[str, str]:
    """The labels of a pod's emptyDir volume: enough to find and remove it with the pod."""
    return {MANAGED: "true", UID: pod.uid, NAMESPACE: pod.namespace, POD: pod.name}


def managed(labels: Mapping[str, str] | None) -> bool:
    """Whether a container or volume is podyard's (and so may ever be stopped or removed)."""
    return bool(labels) and labels.get(MANAGED) == "true"  # type: ignore[union-attr]


def decode_pod(labels: Mapping[str, str], node: str) -> PodStamp:
    """A pod's stamp read back from one of its containers; damaged values become defaults.

    `node` is where the container was found, which wins over the label: a pod is where it
    runs, whatever its labels say.
    """
    return PodStamp(
        namespace=labels.get(NAMESPACE, ""),
        name=labels.get(POD, ""),
        uid=labels.get(UID, ""),
        owner=labels.get(OWNER, ""),
        template_hash=labels.get(TEMPLATE_HASH, ""),
        revision=labels.get(REVISION, ""),
        labels=_pod_labels(labels.get(POD_LABELS)),
        node=node,
        scope=labels.get(SCOPE, ""),
        grace=_int(labels.get(GRACE), model.DEFAULT_GRACE_SECONDS),
        requests=decode_requests(labels.get(REQUESTS)),
    )


def decode_container(labels: Mapping[str, str]) -> ContainerStamp:
    """One container's own stamp read back; damaged counters read as 0."""
    return ContainerStamp(
        container=labels.get(CONTAINER, ""),
        restarts=_int(labels.get(RESTARTS), 0),
        streak=_int(labels.get(STREAK), 0),
    )


def ownership_filter(scope: str | None) -> list[str]:
    """The engine's label filter for podyard's containers: of one scope, or of all (None)."""
    mine = [f"{MANAGED}=true"]
    return [*mine, f"{SCOPE}={scope}"] if scope else mine


def pod_filter(uid: str) -> list[str]:
    """The engine's label filter for every container or volume of one pod."""
    return [f"{MANAGED}=true", f"{UID}={uid}"]


def _pod_labels(text: str | None) -> model.Pairs:
    try:
        data = json.loads(text or "{}")
    except ValueError:
        return ()
    if not isinstance(data, dict):
        return ()
    return tuple(sorted((str(k), str(v)) for k, v in data.items()))


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text else default
    except ValueError:
        return default
