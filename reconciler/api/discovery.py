"""Discovery: what the API serves, as /version, /api, /api/v1 and /apis describe it.

Pure data. Only the core group's v1 is served; /apis lists no group, so clients (kubectl's
discovery, k9s) see exactly the resources here. A newer kubectl asks for aggregated
discovery through its Accept header first; the plain documents answer it, and it falls back.
"""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass
from typing import Any

from reconciler.api import meta

READ = ["get", "list", "watch"]


@dataclass(frozen=True)
class Resource:
    name: str  # the plural in URLs
    kind: str
    namespaced: bool
    short_names: tuple[str, ...]
    singular: str
    all_category: bool = False  # listed by `kubectl get all`


RESOURCES = (
    Resource("pods", "Pod", True, ("po",), "pod", True),
    Resource("replicationcontrollers", "ReplicationController", True, ("rc",),
             "replicationcontroller", True),
    Resource("services", "Service", True, ("svc",), "service", True),
    Resource("endpoints", "Endpoints", True, ("ep",), "endpoints"),
    Resource("nodes", "Node", False, ("no",), "node"),
    Resource("namespaces", "Namespace", False, ("ns",), "namespace"),
    Resource("events", "Event", True, ("ev",), "event"),
)
BY_NAME = {r.name: r for r in RESOURCES}


def version() -> dict[str, Any]:
    """/version: the Kubernetes release whose API this imitates, marked as podyard's."""
    major, minor = meta.VERSION[1:].split(".")[:2]
    return {
        "major": major, "minor": minor, "gitVersion": meta.VERSION,
        "gitCommit": "", "gitTreeState": "", "buildDate": "",
        "goVersion": f"python{sys.version_info.major}.{sys.version_info.minor}",
        "compiler": "cpython", "platform": f"linux/{platform.machine() or 'unknown'}",
    }


def api_versions(address: str) -> dict[str, Any]:
    """/api: the core group's versions."""
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}]}


def api_groups() -> dict[str, Any]:
    """/apis: no group beyond the core one."""
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": []}


def api_resources() -> dict[str, Any]:
    """/api/v1: every served resource and subresource, read verbs only."""
    listed: list[dict[str, Any]] = []
    for r in RESOURCES:
        doc: dict[str, Any] = {"name": r.name, "singularName": r.singular,
                               "namespaced": r.namespaced, "kind": r.kind, "verbs": READ,
                               "shortNames": list(r.short_names)}
        if r.all_category:
            doc["categories"] = ["all"]
        listed.append(doc)
        if r.name == "pods":
            listed.append({"name": "pods/log", "singularName": "", "namespaced": True,
                           "kind": "Pod", "verbs": ["get"]})
    return {"kind": "APIResourceList", "groupVersion": "v1", "resources": listed}
