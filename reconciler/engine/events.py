"""One node's engine events: the live stream that wakes the loop, and a pod's history.

The stream blocks between events, so a helper thread closes it when the caller's `stop` is
set. Each event marks its container in the node's cache, so the next list refreshes it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import docker

from reconciler import labels
from reconciler.engine import cache, client

LIVE = ("create", "start", "die", "oom", "destroy")  # what makes the loop look again
HISTORY = ("create", "start", "kill", "die", "oom", "destroy")  # what `describe` shows


def stream(
    node: str,
    api: docker.APIClient,
    scope: str | None,
    containers: cache.ContainerCache,
    stops: tuple[threading.Event | None, ...] = (),
    on_open: Callable[[], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """Events about podyard containers from now on, until a `stops` event is set or the
    engine goes.

    While the stream is open the cache is live, each event marking its container for a
    refresh. `on_open` is called once the engine has answered the subscription: a list made
    after that misses no change.
    """
    filters = {"type": "container", "label": labels.ownership_filter(scope), "event": list(LIVE)}
    with client.engine_errors(node, "watch events"):
        events = api.events(filters=filters, decode=True)
    containers.opened()
    done = threading.Event()
    watched = [s for s in stops if s is not None]
    threading.Thread(
        target=_close_when, args=(events, watched, done), daemon=True, name="events-stop"
    ).start()
    try:
        if on_open is not None:
            on_open()
        with client.engine_errors(node, "watch events"):
            for event in events:
                if any(s.is_set() for s in watched):
                    return
                if event.get("id"):
                    containers.mark_dirty(str(event["id"]), event=str(event.get("Action")))
                yield event
    finally:
        containers.closed()
        done.set()
        with contextlib.suppress(Exception):
            events.close()


def pod_history(
    node: str, api: docker.APIClient, uid: str, since: float
) -> list[tuple[float, str]]:
    """One pod's container history, oldest first, as (Unix time, message) for `describe`."""
    filters = {"type": "container", "label": labels.pod_filter(uid), "event": list(HISTORY)}
    with client.engine_errors(node, "read events"):
        found = list(
            api.events(since=int(since), until=int(time.time()) + 1, filters=filters, decode=True)
        )
    return [(e.get("timeNano", 0) / 1e9, message(e)) for e in found]


def message(event: Mapping[str, Any]) -> str:
    """An engine event in kubectl's words: `container app died (exit code 1)`."""
    attributes = (event.get("Actor") or {}).get("Attributes") or {}
    name = attributes.get(labels.CONTAINER, "?")
    subject = "sandbox" if name == labels.PAUSE else f"container {name}"
    action = str(event.get("Action") or event.get("status") or "")
    words = {"create": "created", "start": "started", "kill": "killed", "die": "exited",
             "oom": "ran out of memory", "destroy": "removed"}
    text = f"{subject} {words.get(action, action)}"
    if action == "die" and "exitCode" in attributes:
        text += f" (exit code {attributes['exitCode']})"
    if action == "kill" and "signal" in attributes:
        text += f" (signal {attributes['signal']})"
    return text


def _close_when(events: Any, stops: list[threading.Event], done: threading.Event) -> None:
    # Poll: `done` ends this thread when the caller stops iterating first.
    while not done.wait(0.1):
        if any(s.is_set() for s in stops):
            with contextlib.suppress(Exception):
                events.close()
            return
