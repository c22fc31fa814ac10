"""The reconcile loop: one pass at a time, triggered by files, engine events and a timer.

A pass is level-triggered, as in kopf and controller-runtime: whatever woke it up, it re-reads
the manifests and every node's containers, plans, and applies. Events only say "look again".
In `watch`, while a node's event stream is open its driver serves the containers from a cache
kept fresh by those events; a full list still happens at start, after a broken stream and at
every periodic resync, so a missed event is corrected within one resync.
This module and `execute.py` are the only ones that sleep or wait.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from reconciler import driver, errors, execute, model, nodes, observe, plan


class Reporter(Protocol):
    """Where the loop tells what it does; the CLI decides how it looks."""

    def action(self, result: execute.Result) -> None: ...
    def info(self, message: str) -> None: ...
    def warn(self, message: str) -> None: ...


@dataclass(frozen=True)
class Options:
    parallelism: int = 8
    timeout: float = 300.0
    resync: float = 30.0
    debounce: float = 0.1
    backoff: plan.Backoff = field(default_factory=plan.Backoff)
    node_grace: float = nodes.DEFAULT_GRACE
    settle: float = 1.0  # a pod must stay up this long after the last action to count
    allow_empty: bool = False  # manifests declaring nothing may delete every pod


@dataclass(frozen=True)
class PassResult:
    plan: plan.Plan
    outcome: execute.Outcome | None
    pods: int  # pods observed before the pass acted

    @property
    def converged(self) -> bool:
        return self.plan.empty and not self.plan.waiting

    @property
    def failed(self) -> int:
        return len(self.outcome.failed) if self.outcome else 0


class Controller:
    """Observes the nodes, plans, and applies: the machinery of a pass, without the timing."""

    def __init__(
        self,
        cluster: nodes.Cluster,
        drivers: Mapping[str, driver.Driver],
        options: Options,
        reporter: Reporter,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cluster = cluster
        self.drivers = drivers
        self.options = options
        self.reporter = reporter
        self.clock = clock
        self.health = nodes.Health(grace=options.node_grace)
        self.pool = ThreadPoolExecutor(max_workers=max(1, len(drivers)))

    def observe_pods(self) -> list[observe.ObservedPod]:
        """Every pod on every reachable node, one list call per node, nodes in parallel.

        A node that does not answer within its grace period fails the pass (TemporaryError),
        so a slow engine never makes its pods look lost; after the grace period its pods are
        left out and the plan replaces them elsewhere.
        """
        futures = {name: self.pool.submit(d.list_pods) for name, d in self.drivers.items()}
        pods: list[observe.ObservedPod] = []
        now = self.clock()
        for name, future in futures.items():
            try:
                pods.extend(future.result())
                if not self.health.ready(name):
                    self.reporter.info(f"node {name} is answering again")
                self.health.answered(name)
            except errors.TemporaryError as e:
                self.health.failed(name, now, str(e))
                if not self.health.lost(name, now):
                    raise errors.TemporaryError(f"node {name}: {e}") from e
                self.reporter.warn(f"node {name} is NotReady ({e}); its pods are replaced")
        return pods

    def plan(self, desired: model.DesiredState, observed: list[observe.ObservedPod]) -> plan.Plan:
        """The pure diff, with this controller's clock, nodes and backoff.

        Manifests that declare nothing while pods run are far more often a wrong path or an
        emptied checkout than a wish to delete everything: that needs --allow-empty.
        """
        if not any(desired.counts().values()) and observed and not self.options.allow_empty:
            raise errors.ManifestError(
                [
                    errors.Problem(
                        ".",
                        0,
                        "",
                        f"declares no objects; refusing to delete "
                        f"{len(observed)} pods without --allow-empty",
                    )
                ]
            )
        ctx = plan.Context(
            now=self.clock(),
            nodes=self.health.scheduling_view(self.cluster),
            revision=desired.revision.label,
            backoff=self.options.backoff,
        )
        return plan.diff(desired, observed, ctx)

    def run_pass(
        self, desired: model.DesiredState, stop: threading.Event | None = None
    ) -> PassResult:
        """Observe, plan, apply once."""
        observed = self.observe_pods()
        the_plan = self.plan(desired, observed)
        if the_plan.empty:
            return PassResult(the_plan, None, len(observed))
        outcome = execute.apply(
            the_plan,
            self.drivers,
            parallelism=self.options.parallelism,
            on_result=self.reporter.action,
            stop=stop,
        )
        return PassResult(the_plan, outcome, len(observed))

    def converge(
        self, desired: model.DesiredState, stop: threading.Event | None = None
    ) -> tuple[bool, list[PassResult]]:
        """Pass after pass until nothing is left to do or the timeout passes."""
        deadline = self.clock() + self.options.timeout
        passes: list[PassResult] = []
        delay = 0.5
        acted = -math.inf
        while self.clock() < deadline and not (stop and stop.is_set()):
            try:
                result = self.run_pass(desired, stop)
            except errors.TemporaryError as e:
                self.reporter.warn(f"{e}; retrying in {delay:.1f}s")
                _sleep(min(delay, max(0.0, deadline - self.clock())), stop)
                delay = min(delay * 2, 10.0)
                continue
            passes.append(result)
            if result.outcome is not None:
                acted = self.clock()
            if result.converged:
                settled = self.clock() - acted >= self.options.settle
                if settled or (stop and stop.is_set()):
                    return True, passes
                # A container that crashes at once still looks running right after start:
                # look once more after the settle time before calling it converged.
                _sleep(self.options.settle - (self.clock() - acted), stop)
                continue
            if result.plan.empty:  # only waiting: backoff, rollout, unschedulable
                wait = result.plan.requeue_after or 1.0
                _sleep(min(wait, 1.0, max(0.0, deadline - self.clock())), stop)
            elif result.failed:
                _sleep(min(delay, max(0.0, deadline - self.clock())), stop)
                delay = min(delay * 2, 10.0)
        return False, passes

    def resync(self) -> None:
        """Make the next pass list every node in full, not trusting any cache."""
        for d in self.drivers.values():
            d.invalidate_cache()

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        for d in self.drivers.values():
            d.close()


def _sleep(seconds: float, stop: threading.Event | None) -> None:
    if stop is None:
        time.sleep(seconds)
    else:
        stop.wait(seconds)


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
    controller: Controller,
    load: Callable[[], model.DesiredState],
    paths: list[Path],
    stop: threading.Event,
) -> None:
    """Keep the cluster equal to the manifests until `stop` is set.

    A manifest error is reported and the last valid state stays applied: nothing is deleted
    because a file is half-written. An engine that goes away is waited for.
    """
    trigger = Trigger()
    observers = [_watch_files(paths, trigger)]
    # A stop must not wait for the next resync: wake the loop as soon as it is asked for.
    threading.Thread(target=_fire_on_stop, args=(stop, trigger), daemon=True).start()
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
                _sleep(controller.options.debounce, stop)  # let an editor finish writing
                trigger.wait(0)
            if time.monotonic() >= resync_at:
                controller.resync()
                resync_at = time.monotonic() + controller.options.resync
            desired, changed = _reload(load, desired, controller.reporter)
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
            except errors.TemporaryError as e:
                controller.reporter.warn(f"{e}; retrying in {retry:.1f}s")
                wait, retry = retry, min(retry * 2, 10.0)
                continue
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


def _next_wait(result: PassResult, resync: float) -> float:
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
    reporter: Reporter,
) -> tuple[model.DesiredState | None, bool]:
    """The manifests if valid, else the last valid state (and the errors reported)."""
    try:
        desired = load()
    except errors.ManifestError as e:
        for problem in e.problems:
            reporter.warn(f"invalid manifest: {problem}")
        kept = "keeping the last valid state" if last else "nothing applied yet"
        reporter.warn(f"{e}; {kept}")
        return last, False
    return desired, desired != last


class _FileObserver(Protocol):
    def stop(self) -> None: ...


def _watch_files(paths: list[Path], trigger: Trigger) -> _FileObserver:
    """Fire on any change under the manifest paths (hidden files and .git ignored)."""
    from watchdog.events import FileSystemEvent, FileSystemEventHandler
    from watchdog.observers import Observer

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event: FileSystemEvent) -> None:
            path = str(event.src_path)
            if event.event_type in ("opened", "closed_no_write"):
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
