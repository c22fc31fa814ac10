"""`pods/<name>/log`: which container of which node, with which options; then the stream.

`target` is pure: the served pod object and the query in, a `Target` (node, container id,
options) or a `Refused` carrying the Status Kubernetes answers (404, 400) out. `open_stream`
reads the log from the pod's node on an engine client of its own (`engine/logstream.py`),
never one of the controller's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.api import meta
from reconciler.cluster import config
from reconciler.engine import logstream


class Refused(Exception):
    """The request cannot be served; `status` is the answer."""

    def __init__(self, status: dict[str, Any]) -> None:
        super().__init__(status["message"])
        self.status = status


@dataclass(frozen=True)
class Target:
    node: str
    container_id: str
    follow: bool = False
    tail: int | None = None
    timestamps: bool = False
    since: float | None = None
    limit: int | None = None  # bytes


def target(pod: Mapping[str, Any] | None, name: str, query: Mapping[str, str],
           now: float) -> Target:
    """Where the log of the asked container is, and how much of it; Refused otherwise."""
    if pod is None:
        raise Refused(meta.status(404, "NotFound", f'pods "{name}" not found',
                                  {"name": name, "kind": "pods"}))
    names = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
    container = query.get("container") or ""
    if not container:
        if len(names) != 1:
            raise _bad(f"a container name must be specified for pod {name}, choose one of: "
                       f"[{' '.join(names)}]")
        container = names[0]
    if container not in names:
        raise _bad(f"container {container} is not valid for pod {name}")
    if _flag(query, "previous"):
        raise _bad(f'previous terminated container "{container}" in pod "{name}" not found')
    statuses = {c["name"]: c for c in (pod.get("status") or {}).get("containerStatuses") or []}
    seen = statuses.get(container) or {}
    node = (pod.get("spec") or {}).get("nodeName") or ""
    container_id = str(seen.get("containerID") or "").removeprefix("docker://")
    if not node or not container_id:
        waiting = ((seen.get("state") or {}).get("waiting") or {}).get("reason") or "Pending"
        raise _bad(f'container "{container}" in pod "{name}" is waiting to start: {waiting}')
    return Target(node, container_id, follow=_flag(query, "follow"),
                  tail=_number(query, "tailLines"), timestamps=_flag(query, "timestamps"),
                  since=_since(query, now), limit=_number(query, "limitBytes"))


def open_stream(cluster: config.Cluster, t: Target) -> logstream.LogStream:
    """The log, from the pod's node, on a connection of its own."""
    return logstream.open_logs(cluster, t.node, t.container_id, follow=t.follow, tail=t.tail,
                               timestamps=t.timestamps, since=t.since)


def _since(query: Mapping[str, str], now: float) -> float | None:
    if query.get("sinceSeconds"):
        seconds = _number(query, "sinceSeconds")
        if not seconds or seconds < 1:
            raise _bad("sinceSeconds: Invalid value: must be greater than 0")
        return now - seconds
    if query.get("sinceTime"):
        stamp = meta.parse_timestamp(query["sinceTime"])
        if not stamp:
            raise _bad(f"sinceTime: Invalid value: {query['sinceTime']!r}")
        return stamp
    return None


def _number(query: Mapping[str, str], key: str) -> int | None:
    if key not in query:
        return None
    try:
        value = int(query[key])
    except ValueError as e:
        raise _bad(f"{key}: Invalid value: {query[key]!r}: must be an integer") from e
    if value < 0:
        raise _bad(f"{key}: Invalid value: {value}: must be greater than or equal to 0")
    return value


def _flag(query: Mapping[str, str], key: str) -> bool:
    return query.get(key, "").lower() in ("true", "1")


def _bad(message: str) -> Refused:
    return Refused(meta.status(400, "BadRequest", message))
