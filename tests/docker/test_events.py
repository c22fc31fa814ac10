"""Engine events about podyard containers: the watch stream and a pod's history."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from reconciler import labels

from .conftest import Space
from .workloads import bare, template

pytestmark = pytest.mark.docker


def test_watch_reports_a_death_and_ends_when_stopped(space: Space) -> None:
    space.converge(bare(space.namespace, template()))
    [pod] = space.pods()
    app = pod.container("app")
    assert app is not None
    stop = threading.Event()
    opened = threading.Event()
    seen: list[dict[str, Any]] = []

    def watch() -> None:
        for event in space.d.watch_events(stop, on_open=opened.set):
            seen.append(event)

    def is_death(event: dict[str, Any]) -> bool:
        return event.get("Action") == "die" and event.get("id") == app.id

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        # The engine has answered the subscription: every event from here on is in the stream.
        assert opened.wait(timeout=20), "the event stream did not open"
        space.api.kill(app.id)
        space.wait_for(lambda: any(is_death(e) for e in seen))
    finally:
        stop.set()
        watcher.join(timeout=5)
    assert not watcher.is_alive()
    # The stream carries every podyard container of the engine, other tests' too.
    attributes = next(e for e in seen if is_death(e))["Actor"]["Attributes"]
    assert attributes[labels.UID] == pod.uid


def test_pod_events_tell_a_pods_history(space: Space) -> None:
    space.converge(bare(space.namespace, template()))
    [pod] = space.pods()
    app = pod.container("app")
    assert app is not None
    space.api.kill(app.id)
    space.wait_for(lambda: any(
        m == "container app exited (exit code 137)"
        for _, m in space.d.pod_events(pod.uid, since=pod.created)
    ))
    history = [m for _, m in space.d.pod_events(pod.uid, since=pod.created)]
    assert history[:2] == ["sandbox created", "sandbox started"]
    assert "container app killed (signal 9)" in history
    stamps = [t for t, _ in space.d.pod_events(pod.uid, since=pod.created)]
    assert stamps == sorted(stamps) and stamps[0] >= pod.created
