"""The checks the Kubernetes API server makes beyond the schema, for one document at a time.

Pure: no I/O. Each check yields (field path, reason) findings. The document may also have
schema problems, so every check reads values defensively and skips what has the wrong type:
the schema already reports those. Cross-document rules (duplicates, namespaces, nodePort
clashes) live in `manifests.py`, which sees all documents.
"""

from __future__ import annotations

import decimal
import ipaddress
import re
from collections.abc import Iterator, Mapping
from typing import Any

from reconciler import errors, model
from reconciler.manifests.documents import Path

_shown = errors.excerpt  # a value of a manifest, as an error may quote it

Finding = tuple[Path, str]

# Always `fullmatch`ed, as Go's regexp matches the API server's `^...$`: Python's `$` also
# matches before a final newline, so `.match` would let `name: "web\n"` through.
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_SVC_NAME = re.compile(r"[-a-z0-9]+")
_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
# Docker's bind syntax is `source:target:options`, options separated by commas.
_BIND_SEPARATORS = (":", ",")
_NUL = "must not contain a NUL character: Docker cannot pass it on"
_MAX_QUANTITY = decimal.Decimal(2**63 - 1)
_MAX_ANNOTATIONS = 256 * 1024
NODE_PORTS = (30000, 32767)


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _items(value: Any) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """(index, mapping) for each mapping in a list value; other items are schema problems."""
    for i, item in enumerate(_list(value)):
        if isinstance(item, Mapping):
            yield i, item


# Name syntax, as k8s.io/apimachinery/pkg/util/validation words it.


def dns_label(value: str) -> str | None:
    """Why `value` is not a DNS-1123 label (namespaces, containers, volumes), or None."""
    if len(value) > 63:
        return "must be no more than 63 characters"
    if not _DNS_LABEL.fullmatch(value):
        return (f"{_shown(value)} must be a DNS-1123 label: lower case letters, digits and '-', "
                "starting and ending with a letter or digit")
    return None


def dns_1035_label(value: str) -> str | None:
    """Why `value` is not a DNS-1035 label (Service names), or None."""
    if len(value) > 63:
        return "must be no more than 63 characters"
    if not _DNS_1035.fullmatch(value):
        return (f"{_shown(value)} must be a DNS-1035 label: lower case letters, digits and '-', "
                "starting with a letter and ending with a letter or digit")
    return None


def dns_subdomain(value: str) -> str | None:
    """Why `value` is not a DNS-1123 subdomain (Pod and RC names), or None."""
    if len(value) > 253:
        return "must be no more than 253 characters"
    if not _DNS_SUBDOMAIN.fullmatch(value):
        return (f"{_shown(value)} must be a DNS-1123 subdomain: lower case letters, digits, '-' "
                "and '.', starting and ending with a letter or digit")
    return None


def qualified_name(value: str) -> str | None:
    """Why `value` is not a label or annotation key ([prefix/]name), or None."""
    prefix, _, name = value.rpartition("/")
    if "/" in value and (not prefix or "/" in prefix):
        return f"key {_shown(value)} must be a name with an optional DNS subdomain prefix and '/'"
    if prefix and dns_subdomain(prefix):
        return f"key prefix {_shown(prefix)} must be a DNS-1123 subdomain"
    if len(name) > 63:
        return f"key name {_shown(name)} must be no more than 63 characters"
    if not _LABEL_NAME.fullmatch(name):
        return (f"key name {_shown(name)} must consist of letters, digits, '-', '_' or '.', "
                "starting and ending with a letter or digit")
    return None


def label_value(value: str) -> str | None:
    """Why `value` is not a label value, or None."""
    if len(value) > 63:
        return f"value {_shown(value)} must be no more than 63 characters"
    if value and not _LABEL_NAME.fullmatch(value):
        return (f"value {_shown(value)} must be empty or consist of letters, digits, '-', '_' or "
                "'.', starting and ending with a letter or digit")
    return None


def iana_svc_name(value: str) -> str | None:
    """Why `value` is not an IANA_SVC_NAME (named ports), or None."""
    if len(value) > 15:
        return f"{_shown(value)} must be no more than 15 characters"
    if not _SVC_NAME.fullmatch(value) or not re.search("[a-z]", value):
        return f"{_shown(value)} must contain only lower case letters, digits and '-', and a letter"
    if value.startswith("-") or value.endswith("-") or "--" in value:
        return f"{_shown(value)} must not begin or end with '-' or contain '--'"
    return None


def quantity(value: Any) -> tuple[decimal.Decimal | None, str | None]:
    """A quantity's value, or why it is not a valid one."""
    try:
        parsed = model.parse_quantity(value)
    except (ValueError, ArithmeticError):
        return None, f"{_shown(value)} is not a quantity (like 250m, 64Mi or 2)"
    if parsed < 0:
        return None, f"{_shown(value)} must not be negative"
    if parsed > _MAX_QUANTITY:
        return None, f"{_shown(value)} is too large"
    return parsed, None


# Object checks.


def check(kind: str, doc: Mapping[str, Any]) -> list[Finding]:
    """Every API-server rule `doc` (of a supported kind) breaks."""
    findings = list(_metadata(kind, _map(doc.get("metadata"))))
    spec = _map(doc.get("spec"))
    if kind == "Pod":
        findings += _pod_spec(("spec",), spec)
    elif kind == "ReplicationController":
        findings += _controller(spec)
    elif kind == "Service":
        findings += _service(spec)
    return findings


def _metadata(kind: str, meta: Mapping[str, Any]) -> Iterator[Finding]:
    name, namespace = meta.get("name"), meta.get("namespace")
    name_rule = {"Service": dns_1035_label, "Namespace": dns_label}.get(kind, dns_subdomain)
    if isinstance(name, str):
        reason = name_rule(name)
        if reason:
            yield ("metadata", "name"), reason
    if kind == "Namespace" and namespace is not None:
        yield ("metadata", "namespace"), "a Namespace is not namespaced: remove this field"
    elif isinstance(namespace, str):
        reason = dns_label(namespace)
        if reason:
            yield ("metadata", "namespace"), reason
    yield from _labels(("metadata", "labels"), meta.get("labels"))
    yield from _annotations(("metadata", "annotations"), meta.get("annotations"))


def _labels(path: Path, labels: Any) -> Iterator[Finding]:
    for key, value in _map(labels).items():
        reason = qualified_name(key) or (label_value(value) if isinstance(value, str) else None)
        if reason:
            yield (*path, key), reason


def _annotations(path: Path, annotations: Any) -> Iterator[Finding]:
    total = 0
    for key, value in _map(annotations).items():
        reason = qualified_name(key)
        if reason:
            yield (*path, key), reason
        total += len(key) + (len(value) if isinstance(value, str) else 0)
    if total > _MAX_ANNOTATIONS:
        yield path, f"must have at most {_MAX_ANNOTATIONS} bytes in all, not {total}"


def _controller(spec: Mapping[str, Any]) -> Iterator[Finding]:
    template = _map(spec.get("template"))
    meta = _map(template.get("metadata"))
    labels = _map(meta.get("labels"))
    selector = spec.get("selector")
    yield from _labels(("spec", "selector"), selector)
    yield from _labels(("spec", "template", "metadata", "labels"), labels)
    yield from _annotations(
        ("spec", "template", "metadata", "annotations"), meta.get("annotations")
    )
    if isinstance(selector, Mapping) and selector:
        if any(labels.get(k) != v for k, v in selector.items()):
            yield (("spec", "template", "metadata", "labels"),
                   "selector does not match template labels: every spec.selector label must be "
                   "set here with the same value")
    elif isinstance(labels, Mapping) and not labels and "template" in spec:
        yield (("spec", "selector"),
               "required: set spec.selector or spec.template.metadata.labels (the default)")
    pod_spec = _map(template.get("spec"))
    yield from _pod_spec(("spec", "template", "spec"), pod_spec)
    policy = pod_spec.get("restartPolicy", "Always")
    if isinstance(policy, str) and policy != "Always":
        yield (("spec", "template", "spec", "restartPolicy"),
               f"must be Always in a ReplicationController, not {policy}")


def _pod_spec(path: Path, spec: Mapping[str, Any]) -> Iterator[Finding]:
    volumes, findings = _volumes((*path, "volumes"), spec.get("volumes"))
    yield from findings
    names: dict[str, int] = {}
    host_ports: dict[tuple[int, str], int] = {}
    for i, container in _items(spec.get("containers")):
        where = (*path, "containers", i)
        name = container.get("name")
        if isinstance(name, str):
            reason = dns_label(name)
            if reason:
                yield (*where, "name"), reason
            elif name in names:
                reason = f"duplicate container name {_shown(name)} (also containers[{names[name]}])"
                yield (*where, "name"), reason
            names.setdefault(name, i)
        yield from _container(where, container, volumes, host_ports)
    yield from _labels((*path, "nodeSelector"), spec.get("nodeSelector"))


def _volumes(path: Path, value: Any) -> tuple[set[str], list[Finding]]:
    """The names of the declared volumes, and what is wrong with the volumes."""
    declared: set[str] = set()
    findings: list[Finding] = []
    for i, volume in _items(value):
        name = volume.get("name")
        if isinstance(name, str):
            reason = dns_label(name)
            if reason:
                findings.append(((*path, i, "name"), reason))
            elif name in declared:
                findings.append(((*path, i, "name"), f"duplicate volume name {_shown(name)}"))
            declared.add(name)
        sources = [k for k in ("emptyDir", "hostPath") if k in volume]
        others = set(volume) - {"name", "emptyDir", "hostPath"}  # the schema reports those
        if len(sources) != 1 and not others:
            findings.append(((*path, i), "must set exactly one volume type: emptyDir or hostPath"))
        host_path = _map(volume.get("hostPath")).get("path")
        reason = bind_path(host_path) if isinstance(host_path, str) else None
        if reason:
            findings.append(((*path, i, "hostPath", "path"), reason))
    return declared, findings


def bind_path(path: str) -> str | None:
    """Why `path` cannot be a side of a Docker bind (a hostPath or a mountPath), or None."""
    if not path.startswith("/") or ".." in path.split("/"):
        return f"{_shown(path)} must be an absolute path without '..'"
    if "\0" in path:
        return _NUL
    separators = [c for c in _BIND_SEPARATORS if c in path]
    if separators:
        them = "it" if len(separators) == 1 else "them"
        chars = " or ".join(map(repr, separators))
        return (f"{_shown(path)} must not contain {chars}: Docker's bind "
                f"syntax (source:target:options) cannot carry {them}")
    return None


def _container(
    path: Path, container: Mapping[str, Any], volumes: set[str],
    host_ports: dict[tuple[int, str], int],
) -> Iterator[Finding]:
    image = container.get("image")
    if isinstance(image, str) and (not image or image.strip() != image):
        yield (*path, "image"), "must not be empty or have leading or trailing whitespace"
    yield from _nul_characters(path, container)
    working_dir = container.get("workingDir")
    if isinstance(working_dir, str) and working_dir and not working_dir.startswith("/"):
        # Kubernetes leaves this to the runtime; Docker refuses a relative one.
        yield (*path, "workingDir"), f"{_shown(working_dir)} must be an absolute path"
    for i, env in _items(container.get("env")):
        name = env.get("name")
        if isinstance(name, str) and not _ENV_NAME.fullmatch(name):
            yield (*path, "env", i, "name"), (
                f"{_shown(name)} must be an environment variable name: letters, digits, '_', '-' "
                "and '.', not starting with a digit")
    yield from _container_ports(path, container, host_ports)
    yield from _resources((*path, "resources"), _map(container.get("resources")))
    mount_paths: set[str] = set()
    for i, mount in _items(container.get("volumeMounts")):
        name, mount_path = mount.get("name"), mount.get("mountPath")
        if isinstance(name, str) and name not in volumes:
            yield (*path, "volumeMounts", i, "name"), (
                f"no volume named {_shown(name)} in the pod's volumes")
        if isinstance(mount_path, str):
            reason = bind_path(mount_path)
            if reason:
                yield (*path, "volumeMounts", i, "mountPath"), reason
            elif mount_path in mount_paths:
                twice = f"{_shown(mount_path)} is mounted twice"
                yield (*path, "volumeMounts", i, "mountPath"), twice
            mount_paths.add(mount_path)


def _nul_characters(path: Path, container: Mapping[str, Any]) -> Iterator[Finding]:
    """Docker takes these strings as C strings: a NUL would cut them short, or fail."""
    strings: list[tuple[Path, Any]] = [
        ((*path, "image"), container.get("image")),
        ((*path, "workingDir"), container.get("workingDir")),
    ]
    for key in ("command", "args"):
        strings += [((*path, key, i), item) for i, item in enumerate(_list(container.get(key)))]
    strings += [((*path, "env", i, "value"), env.get("value"))
                for i, env in _items(container.get("env"))]
    # Env names, mount paths and host paths have rules of their own that refuse a NUL.
    for where, value in strings:
        if isinstance(value, str) and "\0" in value:
            yield where, _NUL


def _container_ports(
    path: Path, container: Mapping[str, Any], host_ports: dict[tuple[int, str], int]
) -> Iterator[Finding]:
    names: set[str] = set()
    for i, port in _items(container.get("ports")):
        name = port.get("name")
        if isinstance(name, str):
            reason = iana_svc_name(name)
            if reason:
                yield (*path, "ports", i, "name"), reason
            elif name in names:
                yield (*path, "ports", i, "name"), f"duplicate port name {_shown(name)}"
            names.add(name)
        host_port, protocol = port.get("hostPort"), port.get("protocol", "TCP")
        if isinstance(host_port, int) and host_port and isinstance(protocol, str):
            if (host_port, protocol) in host_ports:
                yield ((*path, "ports", i, "hostPort"),
                       f"host port {host_port}/{protocol} is already used in this pod")
            host_ports[(host_port, protocol)] = i


def _resources(path: Path, resources: Mapping[str, Any]) -> Iterator[Finding]:
    values: dict[tuple[str, str], decimal.Decimal] = {}
    for section in ("requests", "limits"):
        for resource, raw in _map(resources.get(section)).items():
            if not isinstance(raw, str | int | float) or isinstance(raw, bool):
                continue
            parsed, reason = quantity(raw)
            if reason:
                yield (*path, section, resource), reason
            elif parsed is not None:
                values[(section, resource)] = parsed
    for resource in ("cpu", "memory"):
        request, limit = values.get(("requests", resource)), values.get(("limits", resource))
        if request is not None and limit is not None and request > limit:
            yield ((*path, "requests", resource),
                   f"must be less than or equal to the {resource} limit")


def _service(spec: Mapping[str, Any]) -> Iterator[Finding]:
    kind = spec.get("type", "ClusterIP")
    low, high = NODE_PORTS
    yield from _labels(("spec", "selector"), spec.get("selector"))
    cluster_ip = spec.get("clusterIP")
    if isinstance(cluster_ip, str) and cluster_ip:
        reason = _cluster_ip(cluster_ip)
        if reason:
            yield ("spec", "clusterIP"), reason
    ports = list(_items(spec.get("ports")))
    names: set[str] = set()
    seen: set[tuple[int, str]] = set()
    node_ports: set[tuple[int, str]] = set()
    for i, port in ports:
        where = ("spec", "ports", i)
        name = port.get("name")
        if isinstance(name, str) and name:
            reason = dns_label(name)
            if reason:
                yield (*where, "name"), reason
            elif name in names:
                yield (*where, "name"), f"duplicate port name {_shown(name)}"
            names.add(name)
        elif len(ports) > 1:
            yield (*where, "name"), "required when a Service has more than one port"
        number, protocol = port.get("port"), port.get("protocol", "TCP")
        if isinstance(number, int) and isinstance(protocol, str):
            if (number, protocol) in seen:
                yield (*where, "port"), f"duplicate port {number}/{protocol}"
            seen.add((number, protocol))
        yield from _target_port((*where, "targetPort"), port.get("targetPort"))
        node_port = port.get("nodePort")
        if isinstance(node_port, int) and not isinstance(node_port, bool) and isinstance(
            protocol, str
        ):
            if kind != "NodePort":
                yield (*where, "nodePort"), f"may only be set when type is NodePort, not {kind}"
            elif not low <= node_port <= high:
                yield ((*where, "nodePort"),
                       f"must be in the NodePort range {low}-{high}, not {node_port}")
            elif (node_port, protocol) in node_ports:
                yield (*where, "nodePort"), f"duplicate nodePort {node_port}/{protocol}"
            node_ports.add((node_port, protocol))


def _cluster_ip(value: str) -> str | None:
    if value == "None":
        return "headless Services (clusterIP: None) are not supported by podyard"
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return f"{_shown(value)} must be an IPv4 address, or empty to have one assigned"
    if address.version != 4:
        return f"{_shown(value)} must be an IPv4 address: podyard does not support IPv6"
    if address.is_unspecified or address.is_loopback or address.is_multicast:
        return f"{_shown(value)} must be a unicast address that is not a loopback one"
    return None


def _target_port(path: Path, value: Any) -> Iterator[Finding]:
    if isinstance(value, bool):
        return
    if isinstance(value, int) and not 1 <= value <= 65535:
        yield path, f"must be between 1 and 65535, not {value}"
    elif isinstance(value, str):
        reason = iana_svc_name(value)
        if reason:
            yield path, f"a port name: {reason}"
