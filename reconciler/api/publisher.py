"""Between the controller and the store: a thread that turns snapshots into objects.

The controller's side costs nothing: `offer` puts a snapshot in a slot (a newer one replaces
an older one not yet built) and `record` appends a finished action; both take a lock only
for that. The publisher's thread builds the objects of the newest snapshot (`objects.py`),
the events of the recorded actions and of node changes (`events.py`), and publishes them
(`store.py`), where the server's threads read them.

`Recorder` stands in for the controller's reporter: it passes everything on to the real one
and records each action for the publisher.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

from reconciler import execute
from reconciler.api import events, objects, snapshot, store
from reconciler.control import passes


class Publisher:
    """Builds and publishes what the controller offers, on a thread of its own."""

    def __init__(self, data: store.Store, scope: str, warn: Callable[[str], None],
                 clock: Callable[[], float] = time.time) -> None:
        self.store = data
        self.clock = clock
        self.warn = warn
        self.builder = objects.Builder(_resolve_address())
        self.log = events.EventLog(scope)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._snapshot: snapshot.Snapshot | None = None
        self._results: list[tuple[execute.Result, float]] = []
        self._built: objects.Objects | None = None
        self._states: dict[str, str] = {}
        self._owners: dict[str, str] = {}  # pod uid -> owner label, for deletion events
        self._previous: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="api-publisher")

    def start(self) -> None:
        self._thread.start()

    def offer(self, snap: snapshot.Snapshot) -> None:
        """The controller's newest snapshot; returns at once."""
        with self._lock:
            self._snapshot = snap
        self._wake.set()

    def record(self, result: execute.Result) -> None:
        """A finished action, for the events; returns at once."""
        with self._lock:
            self._results.append((result, self.clock()))
        self._wake.set()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self.store.close()

    def publish_now(self) -> list[store.Change]:
        """Build and publish what has been offered and recorded (the thread's one step)."""
        with self._lock:
            snap, self._snapshot = self._snapshot, None
            results, self._results = self._results, []
        if snap is not None:
            self._built = self.builder.build(snap)
            current = {p.uid: p.owner for p in snap.pods}  # the last two passes' pods
            self._owners, self._previous = {**self._previous, **current}, current
            self.log.nodes(self._states, snap.nodes, snap.time)
            self._states = {n.name: n.state for n in snap.nodes}
        for result, when in results:
            self.log.action(result, when, self._owners)
        if self._built is None:
            return []
        found = dict(self._built)
        found["events"] = self.log.objects(self.clock())
        return self.store.publish(found)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.publish_now()
            except Exception as e:  # a bug here must not end the API: keep the last state
                self.warn(f"API publisher: {type(e).__name__}: {e}")


class Recorder:
    """The controller's reporter, with every action also recorded for the API's events."""

    def __init__(self, reporter: passes.Reporter, publisher: Publisher) -> None:
        self.reporter = reporter
        self.publisher = publisher

    def action(self, result: execute.Result) -> None:
        self.reporter.action(result)
        self.publisher.record(result)

    def info(self, message: str) -> None:
        self.reporter.info(message)

    def warn(self, message: str) -> None:
        self.reporter.warn(message)


def _resolve_address() -> Callable[[snapshot.NodeSeen], str]:
    """A node's InternalIP: its engine's address, or for a local socket what its name
    resolves to; looked up once per node, on the publisher's thread."""
    known: dict[str, str] = {}

    def address(n: snapshot.NodeSeen) -> str:
        if n.name not in known:
            found = objects.endpoint_address(n.endpoint)
            if not found and n.endpoint.startswith("unix://"):
                try:
                    found = socket.gethostbyname(n.name)
                except OSError:
                    found = ""
            known[n.name] = found
        return known[n.name]

    return address
