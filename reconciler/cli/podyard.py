"""`podyard`: the cluster as kubectl shows it (get, describe, logs). Changes nothing.

It reads the same engines the reconciler drives, through the driver, and formats what the
labels say as kubectl's tables and Kubernetes-shaped JSON/YAML. Services and their endpoints
come from the controller's status file instead (`services.py`). Exit codes come from
`console.py`.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from reconciler import errors, manifests, model, observe, plan
from reconciler.cli import nodes, services, summary, tables
from reconciler.cli.console import EXIT_INVALID, EXIT_OK, Console, guard
from reconciler.cluster import config
from reconciler.control import status
from reconciler.engine import driver

POD_KINDS = ("pods", "pod", "po")
RC_KINDS = ("rc", "replicationcontrollers", "replicationcontroller")
NODE_KINDS = ("nodes", "node", "no")


def podyard_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="podyard",
        description="Look at the pods podyard runs, the way kubectl shows them. Changes nothing.",
    )
    p.add_argument("--cluster", type=Path, help="cluster file (default: the local engine)")
    p.add_argument("--scope", help="only pods of this reconcile scope (default: every scope)")
    sub = p.add_subparsers(dest="command", required=True)
    get = sub.add_parser(
        "get", help="list pods, replication controllers, nodes, services or endpoints"
    )
    get.add_argument("kind", choices=[*POD_KINDS, *RC_KINDS, *NODE_KINDS, *services.KINDS])
    get.add_argument("-o", "--output", choices=["wide", "json", "yaml"], help="output format")
    _namespace_args(get)
    get.add_argument(
        "-f", "--manifests", type=Path,
        help="manifests, for the DESIRED column of `get rc` (default: what the controller "
        "applied, from its status file)"
    )
    describe = sub.add_parser("describe", help="show a pod, a node or a service in detail")
    describe.add_argument("kind", choices=[*POD_KINDS, *NODE_KINDS, *services.SERVICE_KINDS])
    describe.add_argument("name")
    _namespace_args(describe)
    sub.add_parser(
        "status", help="what the controller last reported: revision applied, nodes, pending"
    )
    logs = sub.add_parser("logs", help="print a container's logs")
    logs.add_argument("pod")
    logs.add_argument("-c", "--container", help="container name (default: the only one)")
    logs.add_argument("-f", "--follow", action="store_true", help="stream new lines")
    logs.add_argument("--tail", type=int, default=-1, help="lines from the end (default all)")
    _namespace_args(logs)
    return p


def _namespace_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-n", "--namespace", default=model.DEFAULT_NAMESPACE)
    p.add_argument("-A", "--all-namespaces", action="store_true")


def podyard_main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point of `podyard`."""
    args = podyard_parser().parse_args(argv)
    console = Console()
    sys.exit(guard(lambda: _podyard(args, console), console))


def _podyard(args: argparse.Namespace, console: Console) -> int:
    if args.command == "status":
        print(summary.text(status.read_all(args.scope)), file=console.out)
        return EXIT_OK
    if getattr(args, "kind", None) in services.KINDS:  # the controller's view only
        return services.command(args, status.read_all(args.scope), console)
    cluster = config.load_cluster(args.cluster) if args.cluster else config.local_cluster()
    drivers = driver.connect(cluster, parallelism=4, scope=args.scope)
    try:
        if getattr(args, "kind", None) in NODE_KINDS:  # `logs` has no kind
            return _nodes(cluster, drivers, args, console)
        pods = _list_reachable(drivers, console)
        if not args.all_namespaces:
            pods = [p for p in pods if p.namespace == args.namespace]
        if args.command == "get":
            if args.kind in RC_KINDS:
                return _get_rc(pods, args, console, cluster.pod_security)
            pending = [
                p for doc in status.read_all(args.scope) for p in doc.get("pending") or ()
                if args.all_namespaces or p.get("namespace") == args.namespace
            ]
            return _get_pods(pods, pending, args, console)
        name = args.name if args.command == "describe" else args.pod
        found = [p for p in pods if p.name == name]
        if not found:
            print(f'Error from server (NotFound): pods "{name}" not found', file=console.err)
            return EXIT_INVALID
        pod = observe_best(found)
        if args.command == "describe":
            return _describe(pod, drivers[pod.node], console)
        return _logs(pod, drivers[pod.node], args, console)
    finally:
        for d in drivers.values():
            d.close()


def _nodes(
    cluster: config.Cluster, drivers: dict[str, driver.Driver], args: argparse.Namespace,
    console: Console,
) -> int:
    found = nodes.look(cluster, drivers, status.read_all(args.scope))
    if args.command == "describe":
        match = [n for n in found if n.name == args.name]
        if not match:
            print(f'Error from server (NotFound): nodes "{args.name}" not found', file=console.err)
            return EXIT_INVALID
        print(nodes.describe(match[0], cluster.reserved), file=console.out)
        return EXIT_OK
    print(nodes.get_table(found, cluster.reserved, args.output == "wide"), file=console.out)
    return EXIT_OK


def _list_reachable(
    drivers: dict[str, driver.Driver], console: Console
) -> list[observe.ObservedPod]:
    """Pods of every node that answers; a node that does not is named, not fatal (as kubectl
    still lists pods while a node is NotReady). Only when no node answers is it an error."""
    pods: list[observe.ObservedPod] = []
    failures: list[errors.EngineError] = []
    for name, d in drivers.items():
        try:
            d.probe()  # a vanished host answers nothing: fail in a second, not a minute
            pods.extend(d.list_pods())
        except errors.RETRYABLE as e:
            failures.append(e)
            console.warn(f"node {name} is not answering: {e}")
    if failures and len(failures) == len(drivers):
        raise failures[0]
    return pods


def observe_best(found: list[observe.ObservedPod]) -> observe.ObservedPod:
    """Of pods sharing a name (a replacement under way), the one worth showing."""
    return plan.rank(found)[-1]


def pod_status(pod: observe.ObservedPod) -> str:
    """The STATUS column, as kubectl words it."""
    if pod.pause is None or not pod.pause.running:
        return "SandboxDied" if pod.pause else "Unknown"
    for c in pod.containers:
        if c.state == "created":
            return "ContainerCreating"
        if c.exited:
            if c.oom_killed:
                return "OOMKilled"
            if c.streak > 1:
                return "CrashLoopBackOff"
            return "Completed" if c.exit_code == 0 else "Error"
    return pod.phase


def _get_pods(
    pods: list[observe.ObservedPod], pending: list[dict[str, Any]], args: argparse.Namespace,
    console: Console,
) -> int:
    """The pods found on the nodes, and the pods the controller could place nowhere."""
    if args.output in ("json", "yaml"):
        items = [_pod_json(p) for p in pods] + [_pending_json(w) for w in pending]
        return _dump(items, args.output, console)
    now = time.time()
    header = ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "REVISION"]
    if args.all_namespaces:
        header.insert(0, "NAMESPACE")
    if args.output == "wide":
        header += ["OWNER", "TEMPLATE-HASH"]
    rows = [header]
    for p in pods:
        ready = sum(c.running for c in p.containers)
        row = [
            p.name,
            f"{ready}/{len(p.containers)}",
            pod_status(p),
            str(p.restarts),
            tables.age(now - p.created),
            p.ip or "<none>",
            p.node,
            p.revision or "<none>",
        ]
        if args.all_namespaces:
            row.insert(0, p.namespace)
        if args.output == "wide":
            row += [p.owner or "<none>", p.template_hash]
        rows.append(row)
    for waiting in pending:
        name, namespace = str(waiting.get("name")), str(waiting.get("namespace"))
        row = [name, "0/0", "Pending", "0", "<unknown>", "<none>", "<none>", "<none>"]
        if args.all_namespaces:
            row.insert(0, namespace)
        if args.output == "wide":
            row += ["<none>", "<none>"]
        rows.append(row)
    if len(rows) == 1:
        print(f"No resources found in {args.namespace} namespace.", file=console.err)
        return EXIT_OK
    print(tables.table(rows), file=console.out)
    for waiting in pending:
        print(f"{waiting.get('name')} is Pending: {waiting.get('reason')}", file=console.err)
    return EXIT_OK


def _pending_json(p: dict[str, Any]) -> dict[str, Any]:
    """A pod no node can take, as the API server shows one: Pending, PodScheduled False."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": p.get("name"), "namespace": p.get("namespace")},
        "status": {
            "phase": "Pending",
            "conditions": [{
                "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": p.get("reason"),
            }],
        },
    }


def _get_rc(
    pods: list[observe.ObservedPod], args: argparse.Namespace, console: Console,
    pod_security: model.PodSecurity,
) -> int:
    desired: dict[tuple[str, str], int] = {}
    if args.manifests:
        state = manifests.load(args.manifests, pod_security=pod_security)
        desired = {(rc.namespace, plan.owner_of(rc)): rc.replicas for rc in state.controllers}
    else:  # what the controller applied, from its status file
        desired = {
            (str(rc.get("namespace")), f"ReplicationController/{rc.get('name')}"):
            int(rc.get("replicas") or 0)
            for doc in status.read_all(args.scope) for rc in doc.get("controllers") or ()
            if args.all_namespaces or rc.get("namespace") == args.namespace
        }
    owners = sorted({(p.namespace, p.owner) for p in pods if p.owner} | set(desired))
    if args.output in ("json", "yaml"):
        items = [_rc_json(ns, o, pods, desired) for ns, o in owners]
        return _dump(items, args.output, console)
    now = time.time()
    rows = [["NAME", "DESIRED", "CURRENT", "READY", "AGE", "REVISION"]]
    for ns, owner in owners:
        mine = [p for p in pods if p.owner == owner and p.namespace == ns]
        want = desired.get((ns, owner))
        revisions = sorted({p.revision for p in mine if p.revision})
        rows.append(
            [
                owner.split("/", 1)[1],
                "-" if want is None else str(want),
                str(len(mine)),
                str(sum(p.ready for p in mine)),
                tables.age(now - min(p.created for p in mine)) if mine else "<none>",
                ",".join(revisions) or "<none>",
            ]
        )
    if len(rows) == 1:
        print(f"No resources found in {args.namespace} namespace.", file=console.err)
        return EXIT_OK
    print(tables.table(rows), file=console.out)
    return EXIT_OK


def _pod_json(p: observe.ObservedPod) -> dict[str, Any]:
    """A pod as a Kubernetes-shaped object: what `-o json|yaml` prints."""
    meta: dict[str, Any] = {"name": p.name, "namespace": p.namespace, "uid": p.uid}
    meta["labels"] = dict(p.labels)
    if p.owner:
        kind, name = p.owner.split("/", 1)
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": kind, "name": name}]
    meta["annotations"] = {"podyard.io/template-hash": p.template_hash}
    if p.revision:
        meta["annotations"]["podyard.io/revision"] = p.revision
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"nodeName": p.node},
        "status": {
            "phase": p.phase,
            "podIP": p.ip,
            "containerStatuses": [_container_status(c) for c in p.containers],
        },
    }


def _container_status(c: observe.ObservedContainer) -> dict[str, Any]:
    state: dict[str, Any]
    if c.running:
        state = {"running": {}}
    elif c.exited:
        state = {"terminated": {"exitCode": c.exit_code, "reason": pod_reason(c)}}
    else:
        state = {"waiting": {"reason": "ContainerCreating"}}
    return {
        "name": c.name,
        "image": c.image,
        "containerID": f"docker://{c.id}",
        "ready": c.running,
        "restartCount": c.restarts,
        "state": state,
    }


def pod_reason(c: observe.ObservedContainer) -> str:
    if c.oom_killed:
        return "OOMKilled"
    return "Completed" if c.exit_code == 0 else "Error"


def _rc_json(
    ns: str, owner: str, pods: list[observe.ObservedPod], desired: dict[tuple[str, str], int]
) -> dict[str, Any]:
    mine = [p for p in pods if p.owner == owner and p.namespace == ns]
    spec = {"replicas": desired[(ns, owner)]} if (ns, owner) in desired else {}
    return {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": owner.split("/", 1)[1], "namespace": ns},
        "spec": spec,
        "status": {"replicas": len(mine), "readyReplicas": sum(p.ready for p in mine)},
    }


def _dump(items: list[dict[str, Any]], fmt: str, console: Console) -> int:
    print(tables.listing(items, fmt), end="", file=console.out)
    return EXIT_OK


def _describe(pod: observe.ObservedPod, d: driver.Driver, console: Console) -> int:
    now = time.time()
    lines = [
        f"Name:         {pod.name}",
        f"Namespace:    {pod.namespace}",
        f"Node:         {pod.node}",
        f"Labels:       {', '.join(f'{k}={v}' for k, v in pod.labels) or '<none>'}",
        f"Status:       {pod_status(pod)}",
        f"IP:           {pod.ip or '<none>'}",
        f"UID:          {pod.uid}",
        f"Controlled By: {pod.owner or '<none>'}",
        f"Template:     {pod.template_hash}",
        f"Revision:     {pod.revision or '<none>'}",
        "Containers:",
    ]
    for c in pod.containers:
        lines += [
            f"  {c.name}:",
            f"    Container ID:  docker://{c.id}",
            f"    Image:         {c.image}",
            f"    State:         {_state_text(c, now)}",
            f"    Ready:         {c.running}",
            f"    Restart Count: {c.restarts}",
        ]
    lines.append("Events:")
    events = d.pod_events(pod.uid, since=pod.created)
    if not events:
        lines.append("  <none>")
    for stamp, message in events[-20:]:
        lines.append(f"  {tables.age(now - stamp):>6} ago  {message}")
    print("\n".join(lines), file=console.out)
    return EXIT_OK


def _state_text(c: observe.ObservedContainer, now: float) -> str:
    if c.running:
        return f"Running (started {tables.age(now - (c.started_at or c.created))} ago)"
    if c.exited:
        return f"Terminated: {pod_reason(c)} (exit code {c.exit_code})"
    return "Waiting: ContainerCreating"


def _logs(
    pod: observe.ObservedPod, d: driver.Driver, args: argparse.Namespace, console: Console
) -> int:
    names = [c.name for c in pod.containers]
    if args.container is None and len(names) != 1:
        print(
            f"error: a container name must be specified for pod {pod.name}, "
            f"choose one of: [{' '.join(names)}]",
            file=console.err,
        )
        return EXIT_INVALID
    container = pod.container(args.container or names[0])
    if container is None:
        print(
            f"error: container {args.container} is not valid for pod {pod.name}", file=console.err
        )
        return EXIT_INVALID
    for chunk in d.logs(container.id, follow=args.follow, tail=args.tail):
        console.out.write(chunk.decode(errors="replace"))
        console.out.flush()
    return EXIT_OK
