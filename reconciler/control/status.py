"""The controller's status file: what only the controller knows, for `podyard get` to show.

Each pass writes it atomically (a temporary file renamed over the old one): every node's
state with its first and last answer, the pods no node can take, with the scheduler's
reason, each RC's desired replicas, and the Services as the pass left them (addresses, ports,
endpoints, or why a Service has no address). It is a report, not state: nothing reads it
back to decide anything, and a missing or stale file only makes `podyard` show less.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from reconciler import model, plan
from reconciler.cluster import health
from reconciler.control import observation
from reconciler.plan import services

DIRECTORY = Path("/run/podyard")


def default_path(scope: str) -> Path:
    """Where the controller of a scope writes its status."""
    return DIRECTORY / f"status-{scope}.json"


def document(
    scope: str,
    nodes: health.Health,
    observer: observation.Observer,
    names: list[str],
    the_plan: plan.Plan,
    now: float,
    manifests: dict[str, str] | None = None,
    controllers: tuple[model.ReplicationController, ...] = (),
    passes: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The status of one pass, as plain JSON data; `manifests`: the revision applied, and
    why the newest one is not (invalid, or a commit signature refused), if it is not;
    `controllers`: the RCs applied, whose desired replicas `podyard get rc` shows; `passes`:
    how many passes the watch loop has finished and how long the last one took (written
    during a pass, it is the one before)."""
    return {
        "scope": scope,
        "time": now,
        "manifests": manifests or {},
        "passes": passes or {},
        "nodes": {name: _node(name, nodes, observer) for name in names},
        "pending": [
            {"namespace": ns, "name": name, "reason": reason}
            for ns, name, reason in the_plan.unschedulable
        ],
        "waiting": list(the_plan.waiting),
        "services": [_service(s) for s in the_plan.services],
        "controllers": [
            {"namespace": rc.namespace, "name": rc.name, "replicas": rc.replicas}
            for rc in controllers
        ],
    }


def _service(s: plan.ServiceStatus) -> dict[str, Any]:
    """One Service: what `podyard get svc`, `get endpoints` and `describe svc` show."""
    endpoints = dict(s.endpoints)
    ports = []
    for name, number, protocol, node_port, target in s.ports:
        key = services.port_key(model.ServicePort(number, target, protocol, name))
        ports.append({
            "name": name, "port": number, "protocol": protocol, "nodePort": node_port,
            "targetPort": int(target) if target.isdigit() else target,
            "endpoints": list(endpoints.get(key, ())),
        })
    return {
        "namespace": s.namespace,
        "name": s.name,
        "type": s.type,
        "clusterIP": s.cluster_ip,
        "labels": dict(s.labels),
        "selector": dict(s.selector),
        "ports": ports,
        "created": s.created,
        "problem": s.problem,
    }


def _node(name: str, nodes: health.Health, observer: observation.Observer) -> dict[str, Any]:
    info = observer.info.get(name)
    return {
        "state": nodes.state(name).value,
        "firstSeen": nodes.first_seen(name),
        "lastAnswer": nodes.last_answer(name),
        "lastError": nodes.last_error(name),
        "cpus": info.cpus if info else 0,
        "memory": info.memory if info else 0,
        "version": info.engine_version if info else "",
        "os": info.os if info else "",
        "kernel": info.kernel if info else "",
    }


def write(path: Path, data: dict[str, Any]) -> bool:
    """Replace the status file at once; False when it cannot be written (not an error)."""
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".status-")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return False
    return True


def read(path: Path) -> dict[str, Any] | None:
    """A status file's content; None when there is none or it cannot be read."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_all(scope: str | None) -> list[dict[str, Any]]:
    """The status of one scope, or of every scope whose controller wrote one here."""
    paths = [default_path(scope)] if scope else sorted(DIRECTORY.glob("status-*.json"))
    return [d for d in (read(p) for p in paths) if d is not None]
