"""Desired state: frozen dataclasses for what the manifests declare, and pod template hashing.

Pure: no I/O. The objects are built from documents that already passed validation
(`manifests.py`), so the constructors here trust field types and only translate names and
defaults the way the Kubernetes API server fills them in.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

DEFAULT_NAMESPACE = "default"
DEFAULT_GRACE_SECONDS = 30
MAX_NAME_LENGTH = 63  # what generateName keeps a generated name within (a DNS label)

# Pod Security Standards levels podyard enforces (Kubernetes' third, "restricted", it does not).
BASELINE = "baseline"
PRIVILEGED = "privileged"
POD_SECURITY_LEVELS = (BASELINE, PRIVILEGED)

# Matched whole (`fullmatch`): a `$` would also match before a final newline.
_QUANTITY = re.compile(
    r"([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?"
)
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


def parse_quantity(text: str | int | float) -> Decimal:
    """Parse a Kubernetes quantity ("250m", "64Mi", "1e3", 2) into a Decimal; ValueError if bad."""
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a quantity")
    if isinstance(text, int | float):
        return Decimal(str(text))
    match = _QUANTITY.fullmatch(text)
    if not match:
        raise ValueError(f"{text!r} is not a quantity (like 250m, 64Mi or 2)")
    number, suffix = match.group(1), match.group(2) or ""
    try:
        value = Decimal(number)
    except InvalidOperation as e:  # pragma: no cover - the regex admits only numbers
        raise ValueError(f"{text!r} is not a quantity") from e
    try:
        if suffix in _BINARY:
            return value * _BINARY[suffix]
        if suffix in _DECIMAL:
            return value.scaleb(_DECIMAL[suffix])
        if suffix:
            return value.scaleb(int(suffix[1:]))
    except ArithmeticError as e:  # an exponent beyond what Decimal can scale to
        raise ValueError(f"{text!r} is out of range") from e
    return value


Pairs = tuple[tuple[str, str], ...]


def pairs(mapping: Mapping[str, Any] | None) -> Pairs:
    """A mapping as sorted (key, value) pairs: hashable, ordered, comparable."""
    return tuple(sorted((str(k), str(v)) for k, v in (mapping or {}).items()))


@dataclass(frozen=True)
class Source:
    """Where an object was declared, for error messages and `describe`."""

    file: str
    line: int


@dataclass(frozen=True)
class ContainerPort:
    container_port: int
    protocol: str = "TCP"
    name: str = ""
    host_port: int = 0


@dataclass(frozen=True)
class VolumeMount:
    name: str
    mount_path: str
    read_only: bool = False


@dataclass(frozen=True)
class Resources:
    """CPU in millicores, memory in bytes; 0 means unset."""

    cpu_request: int = 0
    cpu_limit: int = 0
    memory_request: int = 0
    memory_limit: int = 0


@dataclass(frozen=True)
class Requests:
    """What a whole pod asks its node to set aside: CPU in millicores, memory in bytes."""

    cpu: int = 0
    memory: int = 0


@dataclass(frozen=True)
class Container:
    name: str
    image: str
    command: tuple[str, ...] | None = None
    args: tuple[str, ...] | None = None
    env: Pairs = ()
    ports: tuple[ContainerPort, ...] = ()
    resources: Resources = field(default_factory=Resources)
    volume_mounts: tuple[VolumeMount, ...] = ()
    image_pull_policy: str = "IfNotPresent"
    working_dir: str = ""


@dataclass(frozen=True)
class Volume:
    """An emptyDir (host_path empty) or a hostPath volume."""

    name: str
    host_path: str = ""
    host_path_type: str = ""

    @property
    def is_empty_dir(self) -> bool:
        return not self.host_path


@dataclass(frozen=True)
class PodSpec:
    containers: tuple[Container, ...]
    volumes: tuple[Volume, ...] = ()
    restart_policy: str = "Always"
    node_selector: Pairs = ()
    termination_grace_period_seconds: int = DEFAULT_GRACE_SECONDS

    @functools.cached_property
    def requests(self) -> Requests:
        """The pod's requests as the scheduler counts them: summed over its containers.

        A limit without a request already counts as the request (`build_resources`).
        Cached: every new pod of a template is scheduled with it.
        """
        return Requests(
            cpu=sum(c.resources.cpu_request for c in self.containers),
            memory=sum(c.resources.memory_request for c in self.containers),
        )


@dataclass(frozen=True)
class PodTemplate:
    """What a pod is made from: labels, annotations and spec. Bare pods have one too."""

    labels: Pairs
    annotations: Pairs
    spec: PodSpec

    @functools.cached_property
    def hash(self) -> str:
        """A stable content hash: same template, same hash, on every machine and run.

        Cached: a pass compares it with every observed pod's label.
        """
        return template_hash(self)


@dataclass(frozen=True)
class Pod:
    """A bare pod, declared by its own manifest."""

    namespace: str
    name: str
    template: PodTemplate
    source: Source | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ReplicationController:
    namespace: str
    name: str
    labels: Pairs
    replicas: int
    selector: Pairs
    template: PodTemplate
    source: Source | None = field(default=None, compare=False)


DEFAULT_SERVICE_CIDR = "10.96.0.0/16"  # where ClusterIPs come from without a cluster file


@dataclass(frozen=True)
class ServicePort:
    port: int
    target_port: int | str
    protocol: str = "TCP"
    name: str = ""
    node_port: int = 0


@dataclass(frozen=True)
class Service:
    namespace: str
    name: str
    labels: Pairs
    type: str
    cluster_ip: str
    selector: Pairs
    ports: tuple[ServicePort, ...]
    source: Source | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Namespace:
    name: str
    labels: Pairs = ()
    source: Source | None = field(default=None, compare=False)


@dataclass(frozen=True)
class PodSecurity:
    """What a pod may ask of its node: Kubernetes' Pod Security Standards, as podyard has them.

    At `baseline` (the default) a hostPath volume must lie under one of `allowed_host_paths`
    and a hostPort in one of `allowed_host_ports` (inclusive ranges); none are allowed unless
    the cluster file says so. `privileged` allows both anywhere. Set by the cluster file's
    `podSecurity` section or `reconcile --pod-security`; checked by `manifests`.
    """

    level: str = BASELINE
    allowed_host_paths: tuple[str, ...] = ()
    allowed_host_ports: tuple[tuple[int, int], ...] = ()


DEFAULT_POD_SECURITY = PodSecurity()


@dataclass(frozen=True)
class Revision:
    """The Git commit the manifests came from; empty when not in a Git work tree."""

    commit: str = ""
    dirty: bool = False

    def __str__(self) -> str:
        if not self.commit:
            return "(not in git)"
        return self.commit[:12] + ("-dirty" if self.dirty else "")

    @property
    def label(self) -> str:
        """The value stamped on containers."""
        return str(self) if self.commit else ""


@dataclass(frozen=True)
class DesiredState:
    """Everything the manifests declare, as one immutable value."""

    namespaces: tuple[Namespace, ...] = ()
    pods: tuple[Pod, ...] = ()
    controllers: tuple[ReplicationController, ...] = ()
    services: tuple[Service, ...] = ()
    revision: Revision = field(default_factory=Revision)

    def counts(self) -> dict[str, int]:
        """How many objects of each kind, for summaries."""
        return {
            "Namespace": len(self.namespaces),
            "Pod": len(self.pods),
            "ReplicationController": len(self.controllers),
            "Service": len(self.services),
        }


def generated_name(base: str, suffix: str) -> str:
    """`<base>-<suffix>` as Kubernetes' generateName makes it: cut to fit 63 characters.

    As the API server does, the prefix `<base>-` is cut, not the suffix, so a long
    ReplicationController name still gives valid, distinct pod names.
    """
    return f"{base}-"[: MAX_NAME_LENGTH - len(suffix)] + suffix


def template_hash(template: PodTemplate) -> str:
    """Hash the template's canonical JSON: independent of dict order, Python version, host."""
    canonical = json.dumps(asdict(template), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:10]


# Construction from validated documents. The documents are plain dicts that passed the
# schema and the semantic checks, so missing keys mean "use the Kubernetes default".


def build_template(metadata: Mapping[str, Any], spec: Mapping[str, Any]) -> PodTemplate:
    """A pod template from a pod's (or an RC template's) metadata and spec."""
    return PodTemplate(
        labels=pairs(metadata.get("labels")),
        annotations=pairs(metadata.get("annotations")),
        spec=build_pod_spec(spec),
    )


def build_pod_spec(spec: Mapping[str, Any]) -> PodSpec:
    """A PodSpec from a validated `spec` mapping, with the API server's defaults."""
    return PodSpec(
        containers=tuple(build_container(c) for c in spec["containers"]),
        volumes=tuple(build_volume(v) for v in spec.get("volumes", ())),
        restart_policy=spec.get("restartPolicy", "Always"),
        node_selector=pairs(spec.get("nodeSelector")),
        termination_grace_period_seconds=int(
            spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)
        ),
    )


def build_container(c: Mapping[str, Any]) -> Container:
    """A Container from a validated container mapping."""
    image = c["image"]
    # Kubernetes' default: Always for ":latest" or an untagged image, else IfNotPresent.
    tag = image.rsplit("/", 1)[-1]
    default_policy = "Always" if ":" not in tag or tag.endswith(":latest") else "IfNotPresent"
    if "@" in image:
        default_policy = "IfNotPresent"
    return Container(
        name=c["name"],
        image=image,
        command=tuple(c["command"]) if "command" in c else None,
        args=tuple(c["args"]) if "args" in c else None,
        env=tuple((e["name"], str(e.get("value", ""))) for e in c.get("env", ())),
        ports=tuple(
            ContainerPort(
                container_port=p["containerPort"],
                protocol=p.get("protocol", "TCP"),
                name=p.get("name", ""),
                host_port=p.get("hostPort", 0),
            )
            for p in c.get("ports", ())
        ),
        resources=build_resources(c.get("resources", {})),
        volume_mounts=tuple(
            VolumeMount(m["name"], m["mountPath"], bool(m.get("readOnly", False)))
            for m in c.get("volumeMounts", ())
        ),
        image_pull_policy=c.get("imagePullPolicy", default_policy),
        working_dir=c.get("workingDir", ""),
    )


def build_resources(r: Mapping[str, Any]) -> Resources:
    """Resources in millicores and bytes; a limit without a request implies the request."""
    limits, requests = r.get("limits", {}), r.get("requests", {})

    def millicores(q: Any) -> int:
        return int(parse_quantity(q) * 1000) if q is not None else 0

    def bytes_(q: Any) -> int:
        return int(parse_quantity(q)) if q is not None else 0

    return Resources(
        cpu_request=millicores(requests.get("cpu", limits.get("cpu"))),
        cpu_limit=millicores(limits.get("cpu")),
        memory_request=bytes_(requests.get("memory", limits.get("memory"))),
        memory_limit=bytes_(limits.get("memory")),
    )


def build_volume(v: Mapping[str, Any]) -> Volume:
    """A Volume from a validated volume mapping (emptyDir or hostPath)."""
    if "hostPath" in v:
        return Volume(v["name"], v["hostPath"]["path"], v["hostPath"].get("type", ""))
    return Volume(v["name"])


def build_service(
    namespace: str, metadata: Mapping[str, Any], spec: Mapping[str, Any], source: Source | None
) -> Service:
    """A Service from a validated document; targetPort defaults to port, as in Kubernetes."""
    return Service(
        namespace=namespace,
        name=metadata["name"],
        labels=pairs(metadata.get("labels")),
        type=spec.get("type", "ClusterIP"),
        cluster_ip=spec.get("clusterIP", ""),
        selector=pairs(spec.get("selector")),
        ports=tuple(
            ServicePort(
                port=p["port"],
                target_port=p.get("targetPort", p["port"]),
                protocol=p.get("protocol", "TCP"),
                name=p.get("name", ""),
                node_port=p.get("nodePort", 0),
            )
            for p in spec.get("ports", ())
        ),
        source=source,
    )


@dataclass(frozen=True)
class CommitTrust:
    """Whether a committed tree applies only when HEAD is signed, and by whom (the cluster
    file's `verifyCommits` and `trustedSigners`)."""

    verify: bool = False
    signers: tuple[str, ...] = ()  # SSH public key lines or OpenPGP public key blocks


NO_COMMIT_TRUST = CommitTrust()  # signatures are not checked
