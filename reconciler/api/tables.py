"""Server-side printing: objects as a meta.k8s.io/v1 Table, with kubectl's columns.

Pure, with the time passed in. The columns, their priorities (1: shown by `-o wide`) and the
cells follow the API server's own printers (pkg/printers/internalversion) for Kubernetes 1.20,
computed from the objects' JSON, so `kubectl get` prints what it prints against Kubernetes.
Each row carries the object as PartialObjectMetadata (the default), in full (`Object`), or
not at all (`None`), as `includeObject` asks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from reconciler.api import meta

Obj = Mapping[str, Any]
_NAME = {"name": "Name", "type": "string", "format": "name",
         "description": "Name must be unique within a namespace.", "priority": 0}
_AGE = ("Age", "string", "CreationTimestamp is a timestamp representing the server time when "
        "this object was created.", 0)


def _columns(*specs: tuple[str, str, str, int], name_first: bool = True) -> list[dict[str, Any]]:
    found = [{"name": n, "type": t, "format": "", "description": d, "priority": p}
             for n, t, d, p in specs]
    return [dict(_NAME), *found] if name_first else found


COLUMNS: dict[str, list[dict[str, Any]]] = {
    "pods": _columns(
        ("Ready", "string", "The aggregate readiness state of this pod for accepting traffic.", 0),
        ("Status", "string", "The aggregate status of the containers in this pod.", 0),
        ("Restarts", "integer", "The number of times the containers in this pod have been "
         "restarted.", 0),
        _AGE,
        ("IP", "string", "IP address allocated to the pod.", 1),
        ("Node", "string", "NodeName is a request to schedule this pod onto a specific node.", 1),
        ("Nominated Node", "string", "nominatedNodeName is set only when this pod preempts "
         "other pods on the node.", 1),
        ("Readiness Gates", "string", "If specified, all readiness gates will be evaluated for "
         "pod readiness.", 1)),
    "replicationcontrollers": _columns(
        ("Desired", "integer", "Replicas is the number of desired replicas.", 0),
        ("Current", "integer", "Replicas is the most recently oberved number of replicas.", 0),
        ("Ready", "integer", "The number of ready replicas for this replication controller.", 0),
        _AGE,
        ("Containers", "string", "Names of each container in the template.", 1),
        ("Images", "string", "Images referenced by each container in the template.", 1),
        ("Selector", "string", "Selector is a label query over pods that should match the "
         "Replicas count.", 1)),
    "services": _columns(
        ("Type", "string", "type determines how the Service is exposed.", 0),
        ("Cluster-IP", "string", "clusterIP is the IP address of the service.", 0),
        ("External-IP", "string", "externalIPs is a list of IP addresses for which nodes in the "
         "cluster will also accept traffic for this service.", 0),
        ("Port(s)", "string", "The list of ports that are exposed by this service.", 0),
        _AGE,
        ("Selector", "string", "Route service traffic to pods with label keys and values "
         "matching this selector.", 1)),
    "endpoints": _columns(
        ("Endpoints", "string", "Endpoints of the service", 0), _AGE),
    "nodes": _columns(
        ("Status", "string", "The status of the node", 0),
        ("Roles", "string", "The roles of the node", 0),
        _AGE,
        ("Version", "string", "Kubelet Version reported by the node.", 0),
        ("Internal-IP", "string", "List of addresses reachable to the node.", 1),
        ("External-IP", "string", "List of addresses reachable to the node.", 1),
        ("OS-Image", "string", "OS Image reported by the node from /etc/os-release.", 1),
        ("Kernel-Version", "string", "Kernel Version reported by the node.", 1),
        ("Container-Runtime", "string", "ContainerRuntime Version reported by the node.", 1)),
    "namespaces": _columns(
        ("Status", "string", "The status of the namespace", 0), _AGE),
    "events": [
        *_columns(
            ("Last Seen", "string", "The time at which the most recent occurrence of this "
             "event was recorded.", 0),
            ("Type", "string", "Type of this event (Normal, Warning).", 0),
            ("Reason", "string", "This should be a short, machine understandable string that "
             "gives the reason for the transition into the object's current status.", 0),
            ("Object", "string", "The object that this event is about.", 0),
            ("Subobject", "string", "The field of the object this event is about.", 1),
            ("Source", "string", "The component reporting this event.", 1),
            ("Message", "string", "A human-readable description of the status of this "
             "operation.", 0),
            ("First Seen", "string", "The time at which the event was first recorded.", 1),
            ("Count", "string", "The number of times this event has occurred.", 1),
            name_first=False),
        dict(_NAME, priority=1),
    ],
}


def table(resource: str, items: Iterable[Obj], now: float, rv: str = "",
          include: str = "Metadata", columns: bool = True) -> dict[str, Any]:
    """A Table of the objects; `columns` False leaves the definitions out (watch events after
    the first, as the API server sends them)."""
    doc: dict[str, Any] = {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
                           "metadata": {"resourceVersion": rv} if rv else {}}
    doc["columnDefinitions"] = COLUMNS[resource] if columns else None
    doc["rows"] = [row(resource, obj, now, include) for obj in items]
    return doc


def row(resource: str, obj: Obj, now: float, include: str = "Metadata") -> dict[str, Any]:
    """One object's row: its cells, and the object as `include` asks."""
    doc: dict[str, Any] = {"cells": _CELLS[resource](obj, now)}
    phase = (obj.get("status") or {}).get("phase") if resource == "pods" else None
    if phase in ("Succeeded", "Failed"):
        doc["conditions"] = [{"type": "Completed", "status": "True", "reason": phase,
                              "message": "The pod has completed successfully." if
                              phase == "Succeeded" else "The pod failed."}]
    if include == "Object":
        doc["object"] = dict(obj)
    elif include != "None":
        doc["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                         "metadata": obj.get("metadata") or {}}
    return doc


def age(seconds: float) -> str:
    """Go's duration.HumanDuration, as kubectl's AGE column has it."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        years, days = hours // 24 // 365, hours // 24 % 365
        return f"{years}y{days}d" if days else f"{years}y"
    return f"{hours // 24 // 365}y"


def since(stamp: str | None, now: float) -> str:
    """The age of an RFC 3339 time; <unknown> without one."""
    if not stamp:
        return "<unknown>"
    return age(now - meta.parse_timestamp(stamp))


def format_labels(labels: Mapping[str, str] | None) -> str:
    """labels.FormatLabels: `k=v` sorted and comma-joined, <none> when empty."""
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items())) or "<none>"


def _pod(obj: Obj, now: float) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    reason = status.get("reason") or status.get("phase") or ""
    restarts = ready = 0
    running = False
    for c in reversed(status.get("containerStatuses") or []):
        restarts += int(c.get("restartCount") or 0)
        state = c.get("state") or {}
        waiting, terminated = state.get("waiting"), state.get("terminated")
        if waiting and waiting.get("reason"):
            reason = waiting["reason"]
        elif terminated and terminated.get("reason"):
            reason = terminated["reason"]
        elif terminated:
            signal = terminated.get("signal")
            reason = f"Signal:{signal}" if signal else f"ExitCode:{terminated.get('exitCode')}"
        elif c.get("ready") and "running" in state:
            running = True
            ready += 1
    if reason == "Completed" and running:
        conditions = status.get("conditions") or []
        is_ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
        reason = "Running" if is_ready else "NotReady"
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        reason = "Terminating"
    total = len(spec.get("containers") or [])
    ips = status.get("podIPs") or []
    return [
        obj["metadata"]["name"], f"{ready}/{total}", reason, restarts,
        since(obj["metadata"].get("creationTimestamp"), now),
        (ips[0].get("ip") if ips else "") or "<none>", spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>", "<none>",
    ]


def _rc(obj: Obj, now: float) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    return [
        obj["metadata"]["name"], int(spec.get("replicas") or 0),
        int(status.get("replicas") or 0), int(status.get("readyReplicas") or 0),
        since(obj["metadata"].get("creationTimestamp"), now),
        ",".join(c.get("name", "") for c in containers),
        ",".join(c.get("image", "") for c in containers),
        format_labels(spec.get("selector")),
    ]


def _service(obj: Obj, now: float) -> list[Any]:
    spec = obj.get("spec") or {}
    ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    ports = []
    for p in spec.get("ports") or []:
        protocol = p.get("protocol") or "TCP"
        if p.get("nodePort"):
            ports.append(f"{p.get('port')}:{p['nodePort']}/{protocol}")
        else:
            ports.append(f"{p.get('port')}/{protocol}")
    external = ",".join(spec.get("externalIPs") or []) or "<none>"
    return [
        obj["metadata"]["name"], spec.get("type") or "ClusterIP",
        ips[0] if ips else "<none>", external, ",".join(ports) or "<none>",
        since(obj["metadata"].get("creationTimestamp"), now), format_labels(spec.get("selector")),
    ]


def format_endpoints(obj: Obj, most: int = 3) -> str:
    """The ENDPOINTS cell: the first three ip:port, then `+ N more...`."""
    shown: list[str] = []
    count = 0
    for subset in obj.get("subsets") or []:
        addresses = [a.get("ip", "") for a in subset.get("addresses") or []]
        ports = subset.get("ports") or []
        for text in ([f"{ip}:{p.get('port')}" for p in ports for ip in addresses]
                     if ports else addresses):
            if len(shown) < most:
                shown.append(text)
            count += 1
    if not count:
        return "<none>"
    more = f" + {count - most} more..." if count > most else ""
    return ",".join(shown) + more


def _endpoints(obj: Obj, now: float) -> list[Any]:
    return [obj["metadata"]["name"], format_endpoints(obj),
            since(obj["metadata"].get("creationTimestamp"), now)]


def _node(obj: Obj, now: float) -> list[Any]:
    status, spec = obj.get("status") or {}, obj.get("spec") or {}
    labels = obj["metadata"].get("labels") or {}
    ready = [c for c in status.get("conditions") or [] if c.get("type") == "Ready"]
    states = [("Ready" if c.get("status") == "True" else "NotReady") for c in ready] or ["Unknown"]
    if spec.get("unschedulable"):
        states.append("SchedulingDisabled")
    roles = sorted({k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/")}
                   | {labels.get("kubernetes.io/role", "")})
    info = status.get("nodeInfo") or {}

    def address(kind: str) -> str:
        found = [a["address"] for a in status.get("addresses") or [] if a.get("type") == kind]
        return found[0] if found else "<none>"

    return [
        obj["metadata"]["name"], ",".join(states), ",".join(r for r in roles if r) or "<none>",
        since(obj["metadata"].get("creationTimestamp"), now), info.get("kubeletVersion", ""),
        address("InternalIP"), address("ExternalIP"), info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


def _namespace(obj: Obj, now: float) -> list[Any]:
    return [obj["metadata"]["name"], (obj.get("status") or {}).get("phase", ""),
            since(obj["metadata"].get("creationTimestamp"), now)]


def _event(obj: Obj, now: float) -> list[Any]:
    first = since(obj.get("firstTimestamp"), now)
    last = since(obj.get("lastTimestamp"), now) if obj.get("lastTimestamp") else first
    count = int(obj.get("count") or 0)
    if count > 1:
        last = f"{last} (x{count} over {first})"
    involved = obj.get("involvedObject") or {}
    source = obj.get("source") or {}
    where = source.get("component", "") + (f", {source['host']}" if source.get("host") else "")
    return [
        last, obj.get("type", ""), obj.get("reason", ""),
        f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}",
        involved.get("fieldPath", ""), where, str(obj.get("message", "")).strip(), first, count,
        obj["metadata"]["name"],
    ]


_CELLS: dict[str, Callable[[Obj, float], list[Any]]] = {
    "pods": _pod, "replicationcontrollers": _rc, "services": _service,
    "endpoints": _endpoints, "nodes": _node, "namespaces": _namespace, "events": _event,
}
