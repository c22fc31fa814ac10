"""The driver's container cache under a live event stream, against the real engine."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import docker
import pytest

from reconciler import labels, model
from reconciler.engine import driver

from .conftest import TEST_LABEL, Space
from .workloads import BUSYBOX, SLEEPER, bare, rc, template

pytestmark = pytest.mark.docker


class Watcher:
    """A driver's event stream, consumed in a thread, as the loop does."""

    def __init__(self, d: driver.DockerDriver) -> None:
        self.d = d
        self.stop = threading.Event()
        self.open = threading.Event()
        self.seen: list[dict[str, Any]] = []
        self.thread = threading.Thread(target=self._run)
        self.thread.start()
        assert self.open.wait(10), "the event stream did not open"

    def _run(self) -> None:
        for event in self.d.watch_events(self.stop, on_open=self.open.set):
            self.seen.append(event)

    def saw(self, action: str, cid: str) -> bool:
        return any(e.get("Action") == action and e.get("id") == cid for e in self.seen)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        assert not self.thread.is_alive()


class Calls:
    """Counts the driver's list calls, and remembers their filters."""

    def __init__(self, d: driver.DockerDriver) -> None:
        self.filters: list[dict[str, Any]] = []
        real = d.api.containers

        def containers(*args: Any, **kwargs: Any) -> Any:
            self.filters.append(kwargs.get("filters") or {})
            return real(*args, **kwargs)

        d.api.containers = containers

    def take(self) -> list[dict[str, Any]]:
        taken, self.filters = self.filters, []
        return taken


@pytest.fixture
def scoped(space: Space) -> Iterator[Space]:
    """The test's namespace, seen by a driver of a scope of its own: no one else's events."""
    d = driver.DockerDriver.local(scope=space.namespace)
    yield Space(space.api, d, space.namespace)
    d.close()


@pytest.fixture
def watcher(scoped: Space) -> Iterator[Watcher]:
    w = Watcher(scoped.d)
    yield w
    w.close()


def test_an_idle_list_makes_no_engine_call(scoped: Space, watcher: Watcher) -> None:
    scoped.converge(rc(scoped.namespace, 2))
    calls = Calls(scoped.d)
    scoped.pods()  # refreshes what the creation's events marked
    scoped.wait_for(lambda: len(watcher.seen) >= 8)  # create + start of 4 containers
    scoped.pods()
    calls.take()
    assert len(scoped.pods()) == 2
    assert calls.take() == []


def test_a_killed_container_is_seen_by_the_next_pass(scoped: Space, watcher: Watcher) -> None:
    scoped.converge(bare(scoped.namespace, template()))
    [pod] = scoped.pods()
    app = pod.container("app")
    assert app is not None and app.running
    calls = Calls(scoped.d)
    scoped.api.kill(app.id)
    scoped.wait_for(lambda: watcher.saw("die", app.id))
    [pod] = scoped.pods()
    after = pod.container("app")
    assert after is not None and after.exited and after.exit_code == 137
    [refresh] = calls.take()
    assert app.id in refresh["id"]  # one filtered call, not a full list


def test_a_pass_right_after_apply_sees_what_it_created(scoped: Space, watcher: Watcher) -> None:
    scoped.pods()  # the cache is full
    desired = bare(scoped.namespace, template())
    _, outcome = scoped.apply(desired)
    assert len(outcome.succeeded) == 1
    [pod] = scoped.pods()  # whether or not the engine's events have arrived yet
    assert pod.ready
    scoped.apply(model.DesiredState())
    assert scoped.pods() == []


def test_a_foreign_scope_container_is_ignored(
    scoped: Space, watcher: Watcher, engine: docker.APIClient
) -> None:
    scoped.converge(bare(scoped.namespace, template()))
    foreign = engine.create_container(
        BUSYBOX, entrypoint=list(SLEEPER),
        labels={labels.MANAGED: "true", labels.SCOPE: f"other-{scoped.namespace}",
                labels.NAMESPACE: scoped.namespace, labels.POD: "foreign",
                labels.UID: "foreign-uid", labels.CONTAINER: labels.PAUSE,
                TEST_LABEL: scoped.namespace},
    )["Id"]
    engine.start(foreign)
    scoped.d.cache.mark_dirty(foreign)  # even when looked at, the refresh filters it out
    assert [p.name for p in scoped.pods()] == ["pod"]
    assert not watcher.saw("start", foreign)


def test_a_broken_stream_makes_the_next_list_a_full_one(
    scoped: Space, engine: docker.APIClient
) -> None:
    first = Watcher(scoped.d)
    scoped.converge(bare(scoped.namespace, template()))
    [pod] = scoped.pods()
    app = pod.container("app")
    assert app is not None
    first.close()  # the stream ends: what happens now is heard by no one
    engine.kill(app.id)
    scoped.wait_for(lambda: engine.inspect_container(app.id)["State"]["Status"] == "exited")
    second = Watcher(scoped.d)
    try:
        calls = Calls(scoped.d)
        [pod] = scoped.pods()
        after = pod.container("app")
        assert after is not None and after.exited
        [full] = calls.take()
        assert "id" not in full
        assert scoped.pods() == [pod]
        assert calls.take() == []
    finally:
        second.close()


def test_without_a_stream_every_list_is_a_full_one(scoped: Space) -> None:
    scoped.converge(bare(scoped.namespace, template()))
    calls = Calls(scoped.d)
    scoped.pods()
    scoped.pods()
    assert [("id" in f) for f in calls.take()] == [False, False]
