"""Watches and log follows: long-lived responses, written to a `Sink` one piece at a time.

`watch_event` is pure: one stored change, as a watch with selectors sees it. As the API
server's watch cache does, an object that starts matching a filtered watch is ADDED to it,
and one that stops matching is DELETED from it. `run_watch` and `run_log` loop until the
timeout, the server's stop, or the client going away (`Sink.gone`); they only wait on the
store (`Store.wait`) or on the engine's stream, never on the controller.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from reconciler.api import meta, selectors, store, tables

POLL = 1.0  # seconds between looks at the client and the stop flag while nothing changes
BOOKMARK_EVERY = 60.0


class Sink(Protocol):
    """Where a stream goes: `write` raises OSError once the client is gone."""

    def write(self, data: bytes) -> None: ...
    def gone(self) -> bool: ...


@dataclass(frozen=True)
class WatchOptions:
    resource: str
    kind: str  # of the resource's objects, for bookmarks
    namespace: str | None = None
    matches: selectors.Match = lambda obj: True
    table: str = ""  # "", or the meta.k8s.io version of the Table asked for
    include: str = "Metadata"  # Table rows' object: Metadata, Object or None
    timeout: float = 1800.0
    bookmarks: bool = False
    initial_events_end: bool = False  # sendInitialEvents: a bookmark marks their end

    def wanted(self, obj: Mapping[str, Any]) -> bool:
        """Whether an object is in this watch's namespace and matches its selectors."""
        namespace = (obj.get("metadata") or {}).get("namespace", "")
        return (self.namespace is None or namespace == self.namespace) and self.matches(obj)


def watch_event(change: store.Change, opts: WatchOptions) -> tuple[str, Mapping[str, Any]] | None:
    """How `change` shows in the watch: (type, object), or None when it does not concern it."""
    if change.resource != opts.resource:
        return None
    now = opts.wanted(change.object) if change.type != "DELETED" else False
    before = change.previous is not None and opts.wanted(change.previous)
    if change.type == "DELETED":
        return ("DELETED", change.object) if before else None
    if now and before:
        return ("MODIFIED", change.object)
    if now:
        return ("ADDED", change.object)
    if before and change.previous is not None:  # no longer matching: gone from this watch
        return ("DELETED", store.stamped(change.previous, change.rv))
    return None


def encode(kind: str, obj: Mapping[str, Any], opts: WatchOptions, now: float,
           first: bool) -> bytes:
    """One watch event as a line of JSON; as a one-row Table when a Table was asked for."""
    if opts.table:
        rv = (obj.get("metadata") or {}).get("resourceVersion", "")
        shown: Mapping[str, Any] = tables.table(opts.resource, [obj], now, rv, opts.include,
                                                columns=first)
        shown = {**shown, "apiVersion": f"meta.k8s.io/{opts.table}"}
    else:
        shown = obj
    return (json.dumps({"type": kind, "object": shown}, separators=(",", ":")) + "\n").encode()


def run_watch(
    data: store.Store,
    sink: Sink,
    opts: WatchOptions,
    since: int,
    initial: Iterable[Mapping[str, Any]] = (),
    stop: threading.Event | None = None,
    clock: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
) -> None:
    """Stream `initial` as ADDED, then every change after `since`, until the timeout."""
    deadline = clock() + opts.timeout
    first = True
    last_write = clock()
    try:
        for obj in initial:
            sink.write(encode("ADDED", obj, opts, wall(), first))
            first = False
        if opts.initial_events_end:
            sink.write(_bookmark(opts, since, {"k8s.io/initial-events-end": "true"}))
        while clock() < deadline and not (stop and stop.is_set()) and not sink.gone():
            try:
                changes = data.wait(since, min(POLL, max(0.0, deadline - clock())))
            except store.Expired as e:
                error = meta.status(410, "Expired", str(e))
                sink.write((json.dumps({"type": "ERROR", "object": error}) + "\n").encode())
                return
            for change in changes:
                since = change.rv
                event = watch_event(change, opts)
                if event is not None:
                    sink.write(encode(*event, opts, wall(), first))
                    first, last_write = False, clock()
            if opts.bookmarks and not opts.table and clock() - last_write >= BOOKMARK_EVERY:
                sink.write(_bookmark(opts, max(since, data.state.rv)))
                last_write = clock()
            if data.closed:
                return
    except OSError:
        return  # the client went away


def _bookmark(opts: WatchOptions, rv: int, annotations: dict[str, str] | None = None) -> bytes:
    """A BOOKMARK: only the kind and a resourceVersion (and the end of initial events)."""
    metadata: dict[str, Any] = {"resourceVersion": str(rv)}
    if annotations:
        metadata["annotations"] = annotations
    mark = {"kind": opts.kind, "apiVersion": "v1", "metadata": metadata}
    return (json.dumps({"type": "BOOKMARK", "object": mark}) + "\n").encode()


class LogSource(Protocol):
    def __iter__(self) -> Any: ...
    def close(self) -> None: ...


def run_log(source: LogSource, sink: Sink, limit: int | None = None,
            stop: threading.Event | None = None) -> None:
    """Copy a log to the client; a watcher ends the engine's stream as soon as the client
    goes away or the server stops, even while the container is silent."""
    done = threading.Event()

    def watch_client() -> None:
        while not done.wait(POLL):
            if sink.gone() or (stop is not None and stop.is_set()):
                source.close()
                return

    threading.Thread(target=watch_client, daemon=True, name="log-client").start()
    sent = 0
    try:
        for chunk in source:
            if limit is not None:
                chunk = chunk[: max(0, limit - sent)]
            if chunk:
                sink.write(chunk)
                sent += len(chunk)
            if limit is not None and sent >= limit:
                return
    except OSError:
        return
    finally:
        done.set()
        source.close()
