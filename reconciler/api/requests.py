"""A request's URL as the API reads it: which document, resource, namespace and name.

Pure. The paths are Kubernetes': `/api/v1/<resource>` (a cluster-scoped resource, or a
namespaced one across all namespaces), `/api/v1/namespaces/<ns>/<resource>[/<name>]`,
`/api/v1/<cluster-scoped resource>/<name>`, the legacy `/api/v1/watch/...` form of each, and
the `log` and `status` subresources of a pod. Subresources that act on a pod (exec, attach,
portforward, eviction...) are writes, whatever the method.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler.api import discovery

DISCOVERY = {"/version": "version", "/api": "api", "/apis": "apis", "/api/v1": "v1"}
WRITE_SUBRESOURCES = ("exec", "attach", "portforward", "proxy", "eviction", "binding",
                      "ephemeralcontainers", "scale", "finalize")


@dataclass(frozen=True)
class Request:
    """One API request: `kind` is discovery, list, get, log, write or unknown."""

    kind: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    document: str = ""  # for discovery: version, api, apis, v1
    resource: str = ""
    namespace: str | None = None  # None: every namespace (or a cluster-scoped resource)
    name: str = ""
    subresource: str = ""
    watch: bool = False

    def flag(self, name: str) -> bool:
        """A boolean query parameter (`watch=true`, `follow=1`)."""
        return self.query.get(name, "").lower() in ("true", "1")


def parse(target: str) -> Request:
    """The request an HTTP target (path and query) asks for."""
    url = urllib.parse.urlsplit(target)
    query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
    path = "/" + url.path.strip("/")
    if path in DISCOVERY:
        return Request("discovery", path, query, document=DISCOVERY[path])
    parts = [urllib.parse.unquote(p) for p in url.path.strip("/").split("/")]
    if parts[:2] != ["api", "v1"]:
        return Request("unknown", path, query)
    rest = parts[2:]
    watch = False
    if rest and rest[0] == "watch":
        watch, rest = True, rest[1:]
    request = _resource(path, query, rest)
    if request.kind == "unknown":
        return request
    watch = watch or request.flag("watch")
    if watch and request.kind == "get":  # a watch of one object: a list of one name
        selector = f"metadata.name={request.name}"
        given = query.get("fieldSelector")
        query = {**query, "fieldSelector": f"{given},{selector}" if given else selector}
        return Request("list", path, query, resource=request.resource,
                       namespace=request.namespace, watch=True)
    return Request(request.kind, path, query, resource=request.resource,
                   namespace=request.namespace, name=request.name,
                   subresource=request.subresource, watch=watch)


def _resource(path: str, query: Mapping[str, str], rest: list[str]) -> Request:
    namespace: str | None = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    elif len(rest) in (2, 3) and rest[0] == "namespaces":  # a namespace, or its status
        if len(rest) == 3 and rest[2] != "status":
            return Request("unknown", path, query)
        return Request("get", path, query, resource="namespaces", name=rest[1])
    if not rest or rest[0] not in discovery.BY_NAME:
        return Request("unknown", path, query)
    resource = discovery.BY_NAME[rest[0]]
    if namespace is not None and not resource.namespaced:
        return Request("unknown", path, query)
    if len(rest) == 1:
        return Request("list", path, query, resource=resource.name, namespace=namespace)
    if namespace is None and resource.namespaced:
        return Request("unknown", path, query)  # /api/v1/pods/<name> is not a path
    name = rest[1]
    sub = rest[2] if len(rest) == 3 else ""
    if len(rest) > 3 or (sub and resource.name not in ("pods", "nodes")
                         and sub != "status"):
        return Request("unknown", path, query)
    if sub in WRITE_SUBRESOURCES:
        return Request("write", path, query, resource=resource.name, namespace=namespace,
                       name=name, subresource=sub)
    if sub == "log" and resource.name == "pods":
        return Request("log", path, query, resource="pods", namespace=namespace, name=name,
                       subresource="log")
    if sub not in ("", "status"):
        return Request("unknown", path, query)
    return Request("get", path, query, resource=resource.name, namespace=namespace, name=name,
                   subresource=sub)


def wanted_form(accept: str) -> tuple[str, str]:
    """What the Accept header asks for, first acceptable first: ("Table", "v1"),
    ("PartialObjectMetadata", "v1") (or its List), or ("", "") for the objects themselves.

    kubectl asks `application/json;as=Table;v=v1;g=meta.k8s.io, ..., application/json`.
    Anything else (protobuf, aggregated discovery) is answered with plain JSON.
    """
    for media in accept.split(","):
        kind, *params = (p.strip() for p in media.split(";"))
        options = dict(p.partition("=")[::2] for p in params)
        if kind not in ("application/json", "*/*") or "as" not in options:
            if kind in ("application/json", "*/*", "application/yaml"):
                return "", ""
            continue
        version = options.get("v", "")
        if options.get("g") == "meta.k8s.io" and version in ("v1", "v1beta1") and options["as"] in (
                "Table", "PartialObjectMetadata", "PartialObjectMetadataList"):
            return options["as"], version
    return "", ""
