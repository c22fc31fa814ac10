"""The published objects, their resourceVersions, and the history of changes watches read.

One writer (the publisher's thread) calls `publish` with the whole object set of a snapshot;
the store diffs it against the last one, object by object, and stamps every change with the
next resourceVersion (one counter for all resources, as etcd's revision). Readers (the
server's threads) take `state` (an immutable `State`, replaced whole, never changed) and wait
for changes after a resourceVersion with `wait`; nobody holds the lock longer than a list
append or a copy of the changes a reader asks for.

Changes are kept in a bounded history. A watch from a resourceVersion older than the history
reaches back (or newer than any given out, as after a controller restart) gets `Expired`,
which the server answers with 410 Gone so the client lists again. resourceVersions start at
the publishing time in microseconds, so a restarted controller never hands out a version it
handed out before.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from reconciler.api import objects

Key = objects.Key
HISTORY = 20000  # changes kept for watches that reconnect


class Expired(Exception):
    """The changes after this resourceVersion are no longer (or were never) known here."""

    def __init__(self, asked: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {asked} ({oldest})")
        self.asked, self.oldest = asked, oldest


@dataclass(frozen=True)
class Change:
    """One object added, modified or deleted, at resourceVersion `rv`."""

    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    resource: str
    key: Key
    object: Mapping[str, Any]  # as served, resourceVersion stamped
    previous: Mapping[str, Any] | None = None  # before a MODIFIED or DELETED


@dataclass(frozen=True)
class State:
    """Every object as of resourceVersion `rv`: what a list or a get reads."""

    rv: int
    objects: Mapping[str, Mapping[Key, Mapping[str, Any]]] = field(default_factory=dict)

    def items(self, resource: str) -> list[Mapping[str, Any]]:
        """The objects of a resource in the API's order (namespace, then name)."""
        found = self.objects.get(resource, {})
        return [found[key] for key in sorted(found)]


def stamped(obj: Mapping[str, Any], rv: int) -> dict[str, Any]:
    """A copy of `obj` carrying resourceVersion `rv` (the rest is shared, never changed)."""
    metadata = dict(obj.get("metadata") or {})
    metadata["resourceVersion"] = str(rv)
    return {**obj, "metadata": metadata}


class Store:
    """The state and its history; one writer, any number of readers."""

    def __init__(self, start: int | None = None, history: int = HISTORY) -> None:
        rv = int(time.time() * 1e6) if start is None else start
        self._cond = threading.Condition()
        self._state = State(rv, MappingProxyType({r: MappingProxyType({})
                                                  for r in objects.RESOURCES}))
        self._bare: dict[str, dict[Key, dict[str, Any]]] = {r: {} for r in objects.RESOURCES}
        self._changes: deque[Change] = deque(maxlen=history)
        self._first = rv  # the oldest resourceVersion a watch may start from
        self.closed = False

    @property
    def state(self) -> State:
        """The current state: a reference read, never a wait."""
        return self._state

    def publish(self, found: objects.Objects) -> list[Change]:
        """Make `found` the current object set of its resources; the changes it made."""
        rv = self._state.rv
        changes: list[Change] = []
        served = {r: dict(self._state.objects.get(r, {})) for r in self._state.objects}
        for resource, new in found.items():
            old = self._bare.setdefault(resource, {})
            mine = served.setdefault(resource, {})
            for key in sorted(new):
                if key in old and old[key] == new[key]:
                    continue
                rv += 1
                previous = mine.get(key)
                mine[key] = stamped(new[key], rv)
                kind = "MODIFIED" if previous is not None else "ADDED"
                changes.append(Change(rv, kind, resource, key, mine[key], previous))
            for key in sorted(set(old) - set(new)):
                rv += 1
                previous = mine.pop(key)
                changes.append(Change(rv, "DELETED", resource, key, stamped(previous, rv),
                                      previous))
            self._bare[resource] = dict(new)
        if not changes:
            return []
        state = State(rv, MappingProxyType({r: MappingProxyType(o) for r, o in served.items()}))
        with self._cond:
            for change in changes:
                if len(self._changes) == self._changes.maxlen:
                    self._first = self._changes.popleft().rv
                self._changes.append(change)
            self._state = state
            self._cond.notify_all()
        return changes

    def since(self, rv: int) -> list[Change]:
        """The changes after `rv`, oldest first; Expired when some are not known."""
        with self._cond:
            return self._since(rv)

    def wait(self, rv: int, timeout: float) -> list[Change]:
        """The changes after `rv`, waiting up to `timeout` seconds for one to come."""
        with self._cond:
            if not self.closed and self._state.rv <= rv:
                self._cond.wait(timeout)
            return self._since(rv)

    def close(self) -> None:
        """Wake every waiting reader: the server is stopping."""
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def _since(self, rv: int) -> list[Change]:
        if rv < self._first or rv > self._state.rv:
            raise Expired(rv, self._first)
        start = bisect.bisect_right(self._changes, rv, key=lambda c: c.rv)
        return list(self._changes)[start:] if start < len(self._changes) else []
