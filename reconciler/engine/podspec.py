"""Where a pod becomes containers: pure translation of a pod into Docker create requests.

In: a pod's identity (`plan.PodIdentity`), the node it goes to and the scope that owns it.
Out: the exact body of each `POST /containers/create` (Engine API 1.41) and each emptyDir
volume, as plain data. Pure: no I/O. The driver sends these as they are; `reconcile
--dry-run -o yaml` prints them.

A pod is built as the kubelet builds it on Docker: a pause container owns the network and
IPC namespaces (and the host ports), and each app container joins it by name. Container
names follow the kubelet's `k8s_<container>_<pod>_<namespace>_<uid>_<attempt>`.

Every container, the pause container too, is hardened beyond Docker's defaults (`HARDENING`):
no process gains privileges through setuid binaries, the number of processes is bounded, and
NET_RAW is dropped from Docker's default capabilities, as Kubernetes' restricted level does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler import labels, model
from reconciler.plan import actions

PAUSE_STOP_SECONDS = 1  # the sandbox exits on SIGTERM; never let it hold up a deletion
# A fork bomb in one container must not take every PID of its node; far above what a
# real service runs (the kubelet leaves this to the node's podPidsLimit).
PIDS_LIMIT = 4096
# Docker's default capability set keeps NET_RAW, which lets a container forge packets and
# spoof addresses on the node's network; Kubernetes' restricted level drops it too.
DROPPED_CAPABILITIES = ("NET_RAW",)
HARDENING: Mapping[str, Any] = {
    "SecurityOpt": ["no-new-privileges"],
    "PidsLimit": PIDS_LIMIT,
    "CapDrop": list(DROPPED_CAPABILITIES),
}


@dataclass(frozen=True)
class ContainerSpec:
    """One container as the engine is asked to create it."""

    name: str  # the Docker container name
    config: Mapping[str, Any]  # the JSON body of POST /containers/create

    def as_dict(self) -> dict[str, Any]:
        """For printing: the name, then the request body."""
        return {"name": self.name, "config": dict(self.config)}


@dataclass(frozen=True)
class VolumeSpec:
    """An emptyDir volume: created with labels, so it is found and removed with its pod."""

    name: str
    labels: Mapping[str, str]

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "labels": dict(self.labels)}


@dataclass(frozen=True)
class PodSpecs:
    """Everything a new pod's creation sends to its node, in order."""

    pause: ContainerSpec
    volumes: tuple[VolumeSpec, ...]
    apps: tuple[ContainerSpec, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "pause": self.pause.as_dict(),
            "volumes": [v.as_dict() for v in self.volumes],
            "containers": [a.as_dict() for a in self.apps],
        }


def container_name(pod: actions.PodIdentity, container: str, attempt: int) -> str:
    """The kubelet's naming convention, so `docker ps` reads like `crictl ps`."""
    return f"k8s_{container}_{pod.name}_{pod.namespace}_{pod.uid}_{attempt}"


def pause_name(pod: actions.PodIdentity) -> str:
    """The pause container's name: app containers join its namespaces through it."""
    return container_name(pod, labels.PAUSE, 0)


def volume_name(uid: str, volume: str) -> str:
    """An emptyDir's Docker volume: private to one pod, removed with it."""
    return f"podyard_{uid}_{volume}"


def stamp(pod: actions.PodIdentity, node: str, scope: str) -> labels.PodStamp:
    """The labels every container of the pod carries, as a value."""
    return labels.PodStamp(
        namespace=pod.namespace,
        name=pod.name,
        uid=pod.uid,
        owner=pod.owner,
        template_hash=pod.template_hash,
        revision=pod.revision,
        labels=pod.template.labels,
        node=node,
        scope=scope,
        grace=pod.template.spec.termination_grace_period_seconds,
        requests=pod.template.spec.requests,
    )


def pod(pod: actions.PodIdentity, node: str, scope: str, pause_image: str) -> PodSpecs:
    """Every create request of a new pod: sandbox, volumes, then each app container."""
    return PodSpecs(
        pause=pause(pod, node, scope, pause_image),
        volumes=volumes(pod, node, scope),
        apps=tuple(
            app(pod, node, scope, c, restarts=0, streak=0) for c in pod.template.spec.containers
        ),
    )


def pause(pod: actions.PodIdentity, node: str, scope: str, image: str) -> ContainerSpec:
    """The sandbox: owns the pod's network (with its host ports) and IPC namespaces."""
    ports = _host_ports(pod.template.spec)
    host_config: dict[str, Any] = {
        "NetworkMode": "default", "IpcMode": "shareable", **_hardening(),
    }
    config: dict[str, Any] = {
        "Image": image,
        "Hostname": pod.name[:63],
        "Labels": labels.encode(
            stamp(pod, node, scope), labels.ContainerStamp(labels.PAUSE)
        ),
        "StopTimeout": PAUSE_STOP_SECONDS,
        "HostConfig": host_config,
    }
    if pod.dns is not None:
        host_config.update(
            Dns=[pod.dns.nameserver], DnsSearch=list(pod.dns.search),
            DnsOptions=list(pod.dns.options),
        )
    if ports:
        config["ExposedPorts"] = {key: {} for key in ports}
        host_config["PortBindings"] = {
            key: [{"HostIp": "", "HostPort": str(host)}] for key, host in ports.items()
        }
    return ContainerSpec(pause_name(pod), config)


def app(
    pod: actions.PodIdentity,
    node: str,
    scope: str,
    container: model.Container,
    *,
    restarts: int,
    streak: int,
) -> ContainerSpec:
    """One app container, joining the sandbox's network and IPC namespaces.

    Kubernetes' command/args semantics map onto Docker's as the kubelet maps them: `command`
    replaces the image's ENTRYPOINT (and, as in Docker, drops its CMD), `args` its CMD.
    """
    sandbox = f"container:{pause_name(pod)}"
    host_config: dict[str, Any] = {"NetworkMode": sandbox, "IpcMode": sandbox, **_hardening()}
    binds = _binds(pod, container)
    if binds:
        host_config["Binds"] = binds
    host_config.update(_limits(container.resources))
    config: dict[str, Any] = {
        "Image": container.image,
        "Labels": labels.encode(
            stamp(pod, node, scope),
            labels.ContainerStamp(container.name, restarts=restarts, streak=streak),
        ),
        "StopTimeout": pod.template.spec.termination_grace_period_seconds,
        "HostConfig": host_config,
    }
    if container.command is not None:
        config["Entrypoint"] = list(container.command)
    if container.args is not None:
        config["Cmd"] = list(container.args)
    env = _env(pod, container)
    if env:
        config["Env"] = env
    if container.working_dir:
        config["WorkingDir"] = container.working_dir
    return ContainerSpec(container_name(pod, container.name, restarts), config)


def volumes(pod: actions.PodIdentity, node: str, scope: str) -> tuple[VolumeSpec, ...]:
    """The pod's emptyDir volumes (hostPath volumes are the host's, never created)."""
    volume_labels = labels.encode_volume(stamp(pod, node, scope))
    return tuple(
        VolumeSpec(volume_name(pod.uid, v.name), volume_labels)
        for v in pod.template.spec.volumes
        if v.is_empty_dir
    )


def _env(pod: actions.PodIdentity, container: model.Container) -> list[str]:
    """The Services' variables, then the container's own, which win over them (kubelet)."""
    own = {k for k, _ in container.env}
    merged = [(k, v) for k, v in pod.env if k not in own] + list(container.env)
    return [f"{k}={v}" for k, v in merged]


def _host_ports(spec: model.PodSpec) -> dict[str, int]:
    """`"<containerPort>/<proto>"` -> hostPort, for each port that asks for one."""
    return {
        f"{p.container_port}/{p.protocol.lower()}": p.host_port
        for c in spec.containers
        for p in c.ports
        if p.host_port
    }


def _binds(pod: actions.PodIdentity, container: model.Container) -> list[str]:
    volumes_by_name = {v.name: v for v in pod.template.spec.volumes}
    binds = []
    for mount in container.volume_mounts:
        volume = volumes_by_name[mount.name]
        mode = "ro" if mount.read_only else "rw"
        if volume.is_empty_dir:
            # An emptyDir starts empty, as in Kubernetes: no copy of the image's files.
            source, mode = volume_name(pod.uid, volume.name), mode + ",nocopy"
        else:
            source = volume.host_path
        binds.append(f"{source}:{mount.mount_path}:{mode}")
    return binds


def _hardening() -> dict[str, Any]:
    """`HARDENING`, with lists of their own: a caller editing one request edits no other."""
    return {k: list(v) if isinstance(v, list) else v for k, v in HARDENING.items()}


def _limits(resources: model.Resources) -> dict[str, int]:
    """Docker's CPU and memory settings for Kubernetes requests and limits (as the kubelet)."""
    limits: dict[str, int] = {}
    if resources.cpu_limit:
        limits["NanoCpus"] = resources.cpu_limit * 1_000_000
    if resources.cpu_request:
        limits["CpuShares"] = max(2, resources.cpu_request * 1024 // 1000)
    if resources.memory_limit:
        limits["Memory"] = resources.memory_limit
    return limits
