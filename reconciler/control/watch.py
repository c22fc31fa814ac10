"""The watch loop: a pass whenever the manifests change, an engine reports, or a timer fires.

Events only say "look again" (level-triggered). While a node's event stream is open its
driver serves the containers from a cache kept fresh by those events; a full list still
happens at start, after a broken stream and at every periodic resync, so a missed event is
corrected within one resync. `control/` and `execute.py` are the only code that waits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from reconciler import errors, model
from reconciler.control import observation, passes
from reconciler.engine import driver


class Trigger:
    """A wake-up flag shared by file events, engine events and timers; debounced."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reasons: list[str] = []
        self._lock = threading.Lock()

    def fire(self, reason: str) -> None:
        with self._lock:
            self.reasons.append(reason)
        self._event.set()

    def wait(self, timeout: float) -> list[str]:
        """Block until fired or timeout; return (and clear) the reasons."""
        self._event.wait(timeout)
        with self._lock:
            reasons, self.reasons = self.reasons, []
            self._event.clear()
        return reasons


def watch(
    controller: passes.Controller,
    load: Callable[[], model.DesiredState],
    paths: list[Path],
    stop: threading.Event,
    git_dir: Path | None = None,
) -> None:
    """Keep the cluster equal to the manifests until `stop` is set.

    A manifest error is reported and the last valid state stays applied: nothing is deleted
    because a file is half-written. An engine that goes away is waited for.
    """
    trigger = Trigger()
    observers = [_watch_files(paths, trigger)]
    if git_dir is not None:  # --committed: a new commit moves a ref, whatever the files do
        observers.append(_watch_refs(git_dir, trigger))
    # A stop must not wait for the next resync: wake the loop as soon as it is asked for.
    threading.Thread(target=_fire_on_stop, args=(stop, trigger), daemon=True).start()
    controller.on_change = lambda t: trigger.fire(f"node {t.node}: {t.after.value}")
    for target in (_heartbeat, _judge):
        threading.Thread(
            target=target, args=(controller, stop), daemon=True, name=target.__name__[1:]
        ).start()
    for name, d in controller.drivers.items():
        threading.Thread(
            target=_watch_engine, args=(name, d, trigger, stop), daemon=True, name=f"events-{name}"
        ).start()
    desired: model.DesiredState | None = None
    retry = 0.5
    wait = 0.0
    resync_at = time.monotonic() + controller.options.resync
    try:
        while not stop.is_set():
            reasons = trigger.wait(min(wait, max(0.0, resync_at - time.monotonic())))
            if stop.is_set():
                break
            if any(r.startswith("file") for r in reasons):
                stop.wait(controller.options.debounce)  # let an editor finish writing
                trigger.wait(0)
            if time.monotonic() >= resync_at:
                controller.resync()
                resync_at = time.monotonic() + controller.options.resync
            started = time.monotonic()
            desired, changed = _reload(load, desired, controller)
            if desired is None:
                wait = controller.options.resync
                continue
            try:
                result = controller.run_pass(desired, stop)
            except errors.ManifestError as e:
                for problem in e.problems:
                    controller.reporter.warn(f"{problem}")
                wait = controller.options.resync
                continue
            except errors.RETRYABLE as e:
                controller.reporter.warn(f"{e}; retrying in {retry:.1f}s")
                wait, retry = retry, min(retry * 2, 10.0)
                continue
            controller.timed(time.monotonic() - started)
            retry = 0.5
            wait = _next_wait(result, controller.options.resync)
            if changed and result.plan.empty:
                controller.reporter.info(f"revision {desired.revision}: nothing to do")
    finally:
        for o in observers:
            o.stop()


def _fire_on_stop(stop: threading.Event, trigger: Trigger) -> None:
    stop.wait()
    trigger.fire("stop")


def _heartbeat(controller: passes.Controller, stop: threading.Event) -> None:
    """Probe every node each PROBE_INTERVAL (a probe of a vanished host takes up to its
    timeout, so this thread only probes; `_judge` keeps the time)."""
    while not stop.wait(observation.PROBE_INTERVAL):
        try:
            controller.heartbeat()
        except Exception as e:  # a probe bug must not silence failure detection for good
            controller.reporter.warn(f"node heartbeat failed: {e}")


def _judge(controller: passes.Controller, stop: threading.Event) -> None:
    """Judge the silent nodes at the moment a grace period or eviction delay ends, so a lost
    node's pods are replaced as soon as its eviction delay ends, not a probe later."""
    wait = observation.PROBE_INTERVAL
    while not stop.wait(wait):
        deadline = controller.judge()
        ahead = observation.PROBE_INTERVAL if deadline is None else deadline - controller.clock()
        wait = min(observation.PROBE_INTERVAL, max(0.01, ahead))


def _next_wait(result: passes.PassResult, resync: float) -> float:
    if result.outcome is not None:
        return 0.0 if not result.failed else 1.0  # acted: look again at once
    if result.plan.requeue_after is not None:
        return min(result.plan.requeue_after, resync)
    if result.plan.waiting:
        return min(1.0, resync)
    return resync


def _reload(
    load: Callable[[], model.DesiredState],
    last: model.DesiredState | None,
    controller: passes.Controller,
) -> tuple[model.DesiredState | None, bool]:
    """The manifests if valid, else the last valid state (and the errors reported)."""
    reporter = controller.reporter
    try:
        desired = load()
    except errors.ManifestError as e:
        for problem in e.problems:
            reporter.warn(f"invalid manifest: {problem}")
        kept = "keeping the last valid state" if last else "nothing applied yet"
        reporter.warn(f"{e}; {kept}")
        first = f": {e.problems[0]}" if e.problems else ""
        controller.refused(f"{e}{first}; {kept}")
        return last, False
    if controller.manifests_problem:
        controller.manifests_problem = ""
    return desired, desired != last


class _FileObserver(Protocol):
    def stop(self) -> None: ...


# File events that only read: every load opens HEAD and the branch's ref to resolve them, so
# waking on these would make each pass wake the next one, for ever.
READS = ("opened", "closed_no_write")


def ref_moved(event_type: str, path: Path, git_dir: Path) -> bool:
    """Whether a file event is HEAD, packed-refs or a ref of `git_dir` written (not read, not
    a lock file)."""
    if event_type in READS or not path.is_relative_to(git_dir) or path.name.endswith(".lock"):
        return False
    inside = path.relative_to(git_dir).parts
    return bool(inside) and inside[0] in ("HEAD", "packed-refs", "refs")


def _watch_refs(git_dir: Path, trigger: Trigger) -> _FileObserver:
    """Fire when HEAD or a ref of the repository moves (a commit, a fetch, a reset)."""
    from watchdog.events import FileSystemEvent, FileSystemEventHandler
    from watchdog.observers import Observer

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event: FileSystemEvent) -> None:
            path = Path(str(getattr(event, "dest_path", "") or event.src_path))
            if ref_moved(event.event_type, path, git_dir):
                trigger.fire(f"file {event.event_type} {path}")

    observer = Observer()
    observer.schedule(Handler(), str(git_dir), recursive=True)
    observer.daemon = True
    observer.start()
    return observer


def _watch_files(paths: list[Path], trigger: Trigger) -> _FileObserver:
    """Fire on any change under the manifest paths (hidden files and .git ignored)."""
    from watchdog.events import FileSystemEvent, FileSystemEventHandler
    from watchdog.observers import Observer

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event: FileSystemEvent) -> None:
            path = str(event.src_path)
            if event.event_type in READS:
                return
            if any(part.startswith(".") for part in Path(path).parts[-4:]):
                return
            trigger.fire(f"file {event.event_type} {path}")

    observer = Observer()
    for path in paths:
        target = path if path.is_dir() else path.parent
        observer.schedule(Handler(), str(target), recursive=True)
    observer.daemon = True
    observer.start()
    return observer


def _watch_engine(name: str, d: driver.Driver, trigger: Trigger, stop: threading.Event) -> None:
    """Fire on podyard containers changing; reconnect when the engine comes back.

    Each (re)connection fires too: what changed while the stream was down is only seen by
    the full list the next pass makes.
    """
    delay = 0.5

    def opened() -> None:
        trigger.fire(f"engine {name}: watching events")

    while not stop.is_set():
        try:
            for event in d.watch_events(stop, on_open=opened):
                trigger.fire(f"engine {name}: {event}")
                delay = 0.5
        except errors.PodyardError:
            pass
        if stop.is_set():
            return
        trigger.fire(f"engine {name}: event stream ended")
        stop.wait(delay)
        delay = min(delay * 2, 5.0)
