"""`podyard get svc`, `get endpoints` and `describe svc`: Services as kubectl shows them.

A Service has no container of its own: what it is (its ClusterIP, NodePorts, endpoints, or
why it has no address) is known only to the controller, which writes it into its status
file after each pass (`control/status.py`). These commands read those files and nothing
else, so they answer without reaching any engine. Without a status file that has Services,
there is nothing to show: a one-line reason and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import datetime
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.cli import tables
from reconciler.cli.console import EXIT_CLUSTER, EXIT_INVALID, EXIT_OK, Console

SERVICE_KINDS = ("services", "service", "svc")
ENDPOINT_KINDS = ("endpoints", "ep")
KINDS = (*SERVICE_KINDS, *ENDPOINT_KINDS)
MAX_SHOWN = 3  # kubectl's formatEndpoints: three addresses, then "+ N more..."


@dataclass(frozen=True)
class Port:
    """One Service port with its endpoints ("ip:port")."""

    name: str
    port: int
    protocol: str
    node_port: int
    target_port: int | str
    endpoints: tuple[str, ...]


@dataclass(frozen=True)
class Service:
    """One Service as the controller's last pass left it."""

    namespace: str
    name: str
    type: str
    cluster_ip: str
    labels: tuple[tuple[str, str], ...]
    selector: tuple[tuple[str, str], ...]
    ports: tuple[Port, ...]
    created: float  # 0: unknown (the address was claimed in that very pass)
    problem: str  # why it has no address, or ""


def from_status(docs: Iterable[Mapping[str, Any]]) -> list[Service] | None:
    """The Services of every status file, by namespace and name; None when no file has any
    Services section (no controller has reported here, or one older than Services)."""
    found: list[Service] = []
    reported = False
    for doc in docs:
        entries = doc.get("services")
        if not isinstance(entries, list):
            continue
        reported = True
        found += [_service(e) for e in entries if isinstance(e, Mapping)]
    return sorted(found, key=lambda s: (s.namespace, s.name)) if reported else None


def _service(e: Mapping[str, Any]) -> Service:
    return Service(
        namespace=str(e.get("namespace") or ""),
        name=str(e.get("name") or ""),
        type=str(e.get("type") or "ClusterIP"),
        cluster_ip=str(e.get("clusterIP") or ""),
        labels=_pairs(e.get("labels")),
        selector=_pairs(e.get("selector")),
        ports=tuple(_port(p) for p in e.get("ports") or () if isinstance(p, Mapping)),
        created=float(e.get("created") or 0.0),
        problem=str(e.get("problem") or ""),
    )


def _port(p: Mapping[str, Any]) -> Port:
    target = p.get("targetPort")
    return Port(
        name=str(p.get("name") or ""),
        port=int(p.get("port") or 0),
        protocol=str(p.get("protocol") or "TCP"),
        node_port=int(p.get("nodePort") or 0),
        target_port=target if isinstance(target, int | str) else 0,
        endpoints=tuple(str(a) for a in p.get("endpoints") or ()),
    )


def _pairs(value: Any) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((str(k), str(v)) for k, v in (value or {}).items())) \
        if isinstance(value, Mapping) else ()


def command(args: argparse.Namespace, docs: list[dict[str, Any]], console: Console) -> int:
    """`get svc`, `get ep` or `describe svc`, from the controllers' status files."""
    found = from_status(docs)
    if found is None:
        scope = f" of scope {args.scope}" if args.scope else ""
        print(
            f"error: no controller{scope} has reported Services on this host yet; they are "
            "known only once a pass of `reconcile` or `reconcile --watch` has run here",
            file=console.err,
        )
        return EXIT_CLUSTER
    if not args.all_namespaces:
        found = [s for s in found if s.namespace == args.namespace]
    if args.command == "describe":
        match = [s for s in found if s.name == args.name]
        if not match:
            print(f'Error from server (NotFound): services "{args.name}" not found',
                  file=console.err)
            return EXIT_INVALID
        print("\n\n".join(describe(s) for s in match), file=console.out)
        return EXIT_OK
    endpoints = args.kind in ENDPOINT_KINDS
    if endpoints:
        found = [s for s in found if s.selector]  # no selector: no Endpoints object
    if args.output in ("json", "yaml"):
        items = [endpoints_json(s) if endpoints else service_json(s) for s in found]
        print(tables.listing(items, args.output), end="", file=console.out)
        return EXIT_OK
    if not found:
        where = "" if args.all_namespaces else f" in {args.namespace} namespace"
        print(f"No resources found{where}.", file=console.err)
        return EXIT_OK
    if endpoints:
        print(endpoints_table(found, all_namespaces=args.all_namespaces), file=console.out)
        return EXIT_OK
    wide = args.output == "wide"
    print(get_table(found, wide=wide, all_namespaces=args.all_namespaces), file=console.out)
    for s in found:
        if s.problem:
            print(f"service {s.name} has no address: {s.problem}", file=console.err)
    return EXIT_OK


def get_table(
    found: Sequence[Service], *, wide: bool = False, all_namespaces: bool = False,
    now: float | None = None,
) -> str:
    """NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE [SELECTOR], as kubectl prints Services."""
    now = _now(now)
    header = ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    rows = [["NAMESPACE", *header] if all_namespaces else header]
    for s in found:
        row = [s.name, s.type, s.cluster_ip or "<none>", "<none>", ports_text(s.ports),
               _age(s, now)]
        if all_namespaces:
            row.insert(0, s.namespace)
        if wide:
            row.append(selector_text(s.selector))
        rows.append(row)
    if wide:
        rows[0].append("SELECTOR")
    return tables.table(rows)


def endpoints_table(
    found: Sequence[Service], *, all_namespaces: bool = False, now: float | None = None
) -> str:
    """NAME ENDPOINTS AGE, as kubectl prints Endpoints."""
    now = _now(now)
    header = ["NAME", "ENDPOINTS", "AGE"]
    rows = [["NAMESPACE", *header] if all_namespaces else header]
    for s in found:
        row = [s.name, endpoints_text(s.ports), _age(s, now)]
        rows.append([s.namespace, *row] if all_namespaces else row)
    return tables.table(rows)


def ports_text(ports: Sequence[Port]) -> str:
    """`80/TCP`, `80:30080/TCP`, several joined by commas (kubectl's makePortString)."""
    pieces = [
        f"{p.port}:{p.node_port}/{p.protocol}" if p.node_port else f"{p.port}/{p.protocol}"
        for p in ports
    ]
    return ",".join(pieces) or "<none>"


def selector_text(pairs: Sequence[tuple[str, str]]) -> str:
    """`app=web,tier=front` sorted by key; `<none>` when empty (kubectl's FormatLabels)."""
    return ",".join(f"{k}={v}" for k, v in sorted(pairs)) or "<none>"


def endpoints_text(ports: Sequence[Port], only: str | None = None) -> str:
    """kubectl's formatEndpoints: each port's addresses, three at most, `+ N more...`;
    `<none>` when the Service has no endpoint at all; `only`: the port of that name."""
    if not any(p.endpoints for p in ports):
        return "<none>"
    shown: list[str] = []
    count = 0
    for p in ports:
        if only is not None and p.name != only:
            continue
        count += len(p.endpoints)
        shown += p.endpoints[: max(0, MAX_SHOWN - len(shown))]
    text = ",".join(shown)
    return f"{text} + {count - MAX_SHOWN} more..." if count > MAX_SHOWN else text


def describe(s: Service) -> str:
    """`kubectl describe service` as near as podyard knows it, aligned as kubectl aligns."""
    rows: list[list[str]] = [
        ["Name:", s.name],
        ["Namespace:", s.namespace],
        *_multiline("Labels:", s.labels),
        ["Annotations:", "<none>"],
        ["Selector:", selector_text(s.selector)],
        ["Type:", s.type],
        ["IP Family Policy:", "SingleStack"],
        ["IP Families:", "IPv4"],
        ["IP:", s.cluster_ip or "<none>"],
    ]
    if s.cluster_ip:
        rows.append(["IPs:", s.cluster_ip])
    for p in s.ports:
        name = p.name or "<unset>"
        rows += [
            ["Port:", name, f"{p.port}/{p.protocol}"],
            ["TargetPort:", f"{p.target_port}/{p.protocol}"],
        ]
        if p.node_port:
            rows.append(["NodePort:", name, f"{p.node_port}/{p.protocol}"])
        rows.append(["Endpoints:", endpoints_text(s.ports, only=p.name)])
    rows.append(["Session Affinity:", "None"])
    if s.type in ("NodePort", "LoadBalancer"):
        rows.append(["External Traffic Policy:", "Cluster"])
    if s.problem:
        rows.append(["Problem:", s.problem])
    rows.append(["Events:", "<none>"])
    return tabbed(rows)


def _multiline(title: str, pairs: Sequence[tuple[str, str]]) -> list[list[str]]:
    """kubectl's printLabelsMultiline: one `key=value` a line, sorted; `<none>` when empty."""
    lines = [f"{k}={v}" for k, v in sorted(pairs)] or ["<none>"]
    return [[title if i == 0 else "", line] for i, line in enumerate(lines)]


def tabbed(rows: Sequence[Sequence[str]], padding: int = 2) -> str:
    """Go's text/tabwriter as kubectl's describe uses it: every cell but a line's last is
    padded to the widest cell of its column among the adjacent lines that have that column."""
    widths: list[list[int]] = [[0] * (len(r) - 1) for r in rows]
    for column in range(max((len(r) for r in rows), default=1) - 1):
        start = 0
        while start < len(rows):
            if len(rows[start]) - 1 <= column:
                start += 1
                continue
            end = start
            while end < len(rows) and len(rows[end]) - 1 > column:
                end += 1
            width = max(len(rows[i][column]) for i in range(start, end)) + padding
            for i in range(start, end):
                widths[i][column] = width
            start = end
    return "\n".join(
        "".join(cell.ljust(w) for cell, w in zip(r[:-1], widths[i], strict=True)) + r[-1]
        for i, r in enumerate(rows)
    )


def service_json(s: Service) -> dict[str, Any]:
    """A Service as a Kubernetes-shaped object: what `get svc -o json|yaml` prints."""
    ports = []
    for p in s.ports:
        port: dict[str, Any] = {"name": p.name} if p.name else {}
        port.update(port=p.port, protocol=p.protocol, targetPort=p.target_port)
        if p.node_port:
            port["nodePort"] = p.node_port
        ports.append(port)
    spec: dict[str, Any] = {"type": s.type, "selector": dict(s.selector), "ports": ports}
    if s.cluster_ip:
        spec.update(clusterIP=s.cluster_ip, clusterIPs=[s.cluster_ip])
    spec.update(ipFamilies=["IPv4"], ipFamilyPolicy="SingleStack", sessionAffinity="None")
    if s.type in ("NodePort", "LoadBalancer"):
        spec["externalTrafficPolicy"] = "Cluster"
    meta = _metadata(s)
    if s.problem:
        meta["annotations"] = {"podyard.io/problem": s.problem}
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec,
            "status": {"loadBalancer": {}}}


def endpoints_json(s: Service) -> dict[str, Any]:
    """A Service's Endpoints object: one subset per port that has endpoints."""
    subsets = []
    for p in s.ports:
        if not p.endpoints:
            continue
        port: dict[str, Any] = {"name": p.name} if p.name else {}
        port.update(port=int(p.endpoints[0].rpartition(":")[2]), protocol=p.protocol)
        subsets.append({
            "addresses": [{"ip": e.rpartition(":")[0]} for e in p.endpoints],
            "ports": [port],
        })
    doc: dict[str, Any] = {"apiVersion": "v1", "kind": "Endpoints", "metadata": _metadata(s)}
    if subsets:
        doc["subsets"] = subsets
    return doc


def _metadata(s: Service) -> dict[str, Any]:
    stamp = (
        datetime.datetime.fromtimestamp(s.created, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if s.created else None
    )
    meta: dict[str, Any] = {"name": s.name, "namespace": s.namespace, "creationTimestamp": stamp}
    if s.labels:
        meta["labels"] = dict(s.labels)
    return meta


def _age(s: Service, now: float) -> str:
    return tables.age(now - s.created) if s.created else "<unknown>"


def _now(now: float | None) -> float:
    return time.time() if now is None else now
