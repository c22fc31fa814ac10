"""Engine events about podyard containers: the watch stream and a pod's history."""

from __future__ import annotations

import threading
import time
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
    seen: list[dict[str, Any]] = []

    def watch() -> None:
        for event in space.d.watch_events(stop):
            seen.append(event)

    watcher = threading.Thread(target=watch)
    watcher.start()
    time.sleep(0.3)  # the stream is open before the kill
    space.api.kill(app.id)
    space.wait_for(lambda: any(e.get("Action") == "die" and e.get("id") == app.id for e in seen))
    stop.set()
    watcher.join(timeout=5)
    assert not watcher.is_alive()
    attributes = next(e for e in seen if e.get("Action") == "die")["Actor"]["Attributes"]
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
