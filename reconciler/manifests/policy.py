"""The pod security policy: Kubernetes' Pod Security Standards, level "baseline" unless relaxed.

Pure: no I/O. Baseline forbids what hands a pod the node: the host's namespaces, privileged
containers, added capabilities, hostPath volumes, hostPorts, unconfined AppArmor and the like.
Most of these are fields podyard's schema refuses at every level (`schema.py` says so); what
podyard supports and baseline forbids is checked here, one document at a time:

- a hostPath volume: only under a prefix of `allowed_host_paths` (whole path components);
- a hostPort: only within a range of `allowed_host_ports`;
- an AppArmor annotation: only `runtime/default` or `localhost/<profile>`. podyard applies no
  AppArmor profile, but Kubernetes' baseline refuses the others, and what podyard accepts
  Kubernetes must accept too.

At level "privileged" nothing is checked. The policy (`model.PodSecurity`) comes from the
cluster file's `podSecurity` section or `reconcile --pod-security`, through `manifests.Loader`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from reconciler import model
from reconciler.manifests.documents import Path

Finding = tuple[Path, str]

APPARMOR_PREFIX = "container.apparmor.security.beta.kubernetes.io/"
# Where each kind keeps its pod template (the object holding `metadata` and `spec`).
_TEMPLATES: dict[str, tuple[str, ...]] = {
    "Pod": (), "ReplicationController": ("spec", "template"),
}


def check(kind: str, doc: Mapping[str, Any], policy: model.PodSecurity) -> list[Finding]:
    """Every way `doc` breaks `policy`, each saying how an operator relaxes it."""
    if policy.level == model.PRIVILEGED or kind not in _TEMPLATES:
        return []
    base = _TEMPLATES[kind]
    template: Any = doc
    for key in base:
        template = _map(template).get(key)
    spec = _map(_map(template).get("spec"))
    meta = _map(_map(template).get("metadata"))
    return [
        *_host_paths((*base, "spec"), spec, policy.allowed_host_paths),
        *_host_ports((*base, "spec"), spec, policy.allowed_host_ports),
        *_apparmor((*base, "metadata", "annotations"), meta.get("annotations")),
    ]


def path_allowed(path: str, allowed: Sequence[str]) -> bool:
    """Whether `path` is an allowed path or lies under one: `/srv/data` allows `/srv/data/x`,
    not `/srv/database`; a relative path or one with `..` is never allowed."""
    parts = _components(path)
    if parts is None:
        return False
    prefixes = (_components(a) for a in allowed)
    return any(p is not None and parts[: len(p)] == p for p in prefixes)


def describe(security: model.PodSecurity) -> str:
    """The policy in one line, as `reconcile --validate` prints it."""
    if security.level == model.PRIVILEGED:
        return model.PRIVILEGED
    paths = ", ".join(security.allowed_host_paths) or "none"
    return (f"{security.level} (host paths allowed: {paths}; host ports allowed: "
            f"{describe_ports(security.allowed_host_ports)})")


def describe_ports(ranges: Sequence[tuple[int, int]]) -> str:
    """`8000-8100, 30080`, as the cluster file writes them; `none` when empty."""
    return ", ".join(str(low) if low == high else f"{low}-{high}" for low, high in ranges) or "none"


def _components(path: str) -> tuple[str, ...] | None:
    if not path.startswith("/"):
        return None
    parts = tuple(p for p in path.split("/") if p not in ("", "."))
    return None if ".." in parts else parts


def _violation(what: str, detail: str, allowance: str = "") -> str:
    """Kubernetes' words for the violation, then how an operator relaxes the policy."""
    field = f"podSecurity.{allowance} or " if allowance else ""
    return (f'violates PodSecurity "{model.BASELINE}": {what} ({detail}); allow it with '
            f"{field}podSecurity.level: {model.PRIVILEGED} in the cluster file (reconcile "
            f"--pod-security {model.PRIVILEGED} for one host)")


def _host_paths(path: Path, spec: Mapping[str, Any], allowed: Sequence[str]) -> Iterator[Finding]:
    for i, volume in _items(spec.get("volumes")):
        host_path = _map(volume.get("hostPath")).get("path")
        if not isinstance(host_path, str) or path_allowed(host_path, allowed):
            continue
        name = volume.get("name")
        detail = (f'volume "{name}" uses {host_path}; '
                  f"allowed host paths: {', '.join(allowed) or 'none'}")
        yield (*path, "volumes", i, "hostPath", "path"), _violation(
            "hostPath volumes", detail, "allowedHostPaths")


def _host_ports(
    path: Path, spec: Mapping[str, Any], allowed: Sequence[tuple[int, int]]
) -> Iterator[Finding]:
    for i, container in _items(spec.get("containers")):
        for j, port in _items(container.get("ports")):
            number = port.get("hostPort")
            if isinstance(number, bool) or not isinstance(number, int) or number <= 0:
                continue  # 0 asks for no host port; a negative one is the schema's problem
            if any(low <= number <= high for low, high in allowed):
                continue
            detail = (f'container "{container.get("name")}" uses hostPort {number}; '
                      f"allowed host ports: {describe_ports(allowed)}")
            yield (*path, "containers", i, "ports", j, "hostPort"), _violation(
                "hostPort", detail, "allowedHostPorts")


def _apparmor(path: Path, annotations: Any) -> Iterator[Finding]:
    for key, value in _map(annotations).items():
        if not isinstance(key, str) or not key.startswith(APPARMOR_PREFIX):
            continue
        if not isinstance(value, str) or value in ("", "runtime/default"):
            continue
        if value.startswith("localhost/"):
            continue
        detail = f'annotation "{key}"="{value}"'
        yield (*path, key), _violation("forbidden AppArmor profile", detail)


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _items(value: Any) -> Iterator[tuple[int, Mapping[str, Any]]]:
    for i, item in enumerate(value if isinstance(value, list) else []):
        if isinstance(item, Mapping):
            yield i, item
