"""Observing the cluster for one pass: every node probed and listed in parallel, and judged.

A node is probed (the engine's `/_ping`, 1 s at most) unless it answered within the last
second, then listed; each node gets LIST_DEADLINE seconds in all, so one silent node never
holds up the pass of the others. What its silence means is `cluster/health.py`'s to say:

- answered: its pods, fresh; and the pods it held when it was evicted, to be removed first;
- silent, not yet evicted: its pods as last seen, so nothing is replaced early, and it is
  not `available`: nothing is done there in this pass;
- evicted: none of its pods, so the plan replaces them on the nodes that answer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass, field

from reconciler import errors, observe, plan
from reconciler.cluster import health
from reconciler.engine import driver

LIST_DEADLINE = 10.0  # seconds a node has to answer its probe and its list in one pass
PROBE_INTERVAL = 1.0  # a node that answered this recently is not probed again

_Listed = tuple[tuple[observe.ObservedPod, ...], observe.NodeNetwork]


@dataclass(frozen=True)
class View:
    """The cluster as one pass sees it."""

    pods: tuple[observe.ObservedPod, ...]  # what the plan counts
    available: frozenset[str]  # nodes that answered in this pass: the only ones acted on
    stale: tuple[plan.DeletePod, ...]  # pods replaced elsewhere while their node was lost
    networks: Mapping[str, observe.NodeNetwork] = field(default_factory=dict)  # answering


class Observer:
    """Probes and lists the nodes; remembers what each held when it last answered."""

    def __init__(
        self,
        drivers: Mapping[str, driver.Driver],
        nodes: health.Health,
        clock: Callable[[], float],
        report: Callable[[health.Transition], None],
    ) -> None:
        self.drivers = drivers
        self.health = nodes
        self.clock = clock
        self._report = report
        # Two threads a node: a call stuck on a vanished host must not queue the next one.
        self.pool = ThreadPoolExecutor(max(2, 2 * len(drivers)), "observe")
        self.info: dict[str, observe.NodeInfo] = {}
        self._last_seen: dict[str, tuple[observe.ObservedPod, ...]] = {}
        self._lock = threading.Lock()

    def survey(self) -> View:
        """Every node at once; a node that misses LIST_DEADLINE is silent for this pass."""
        futures = {name: self.pool.submit(self._list, name) for name in self.drivers}
        wait_for(futures.values(), timeout=LIST_DEADLINE)
        pods: list[observe.ObservedPod] = []
        stale: list[plan.DeletePod] = []
        available = set()
        networks = {}
        for name, future in futures.items():
            outcome = self._outcome(name, future)
            if outcome is not None:
                found, networks[name] = outcome
                available.add(name)
                fresh, gone = self._split_stale(name, found)
                pods += fresh
                stale += gone
            else:
                with self._lock:  # empty once the node is evicted (see `report`)
                    pods += self._last_seen.get(name, ())
        return View(tuple(pods), frozenset(available), tuple(stale), networks)

    def heartbeat(self) -> None:
        """Probe every node (under `--watch`, once a second) and judge the silent ones."""
        futures = {name: self.pool.submit(self._probe, name) for name in self.drivers}
        wait_for(futures.values(), timeout=driver.PROBE_TIMEOUT + 1.0)
        for name, future in futures.items():
            if not future.done():
                self._failed(name, "no answer to its probe")
        self.tick()

    def tick(self) -> None:
        """Judge the silent nodes as of now: time passes even when no probe returns."""
        for transition in self.health.tick(self.clock()):
            self.report(transition)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    def report(self, transition: health.Transition) -> None:
        """Pass a node's change of state on; an evicted node's pods as last seen are dropped
        at once, so no later pass counts them, whatever the node does next."""
        if transition.after is health.State.EVICTED:
            with self._lock:
                self._last_seen.pop(transition.node, None)
        self._report(transition)

    def _probe(self, name: str) -> None:
        d = self.drivers[name]
        try:
            d.probe()
            if name not in self.info:
                self.info[name] = d.info()
        except errors.EngineError as e:
            self._failed(name, str(e))
            return
        self._answered(name)

    def _list(self, name: str) -> _Listed | None:
        d = self.drivers[name]
        if self.health.silent_since(name, self.clock(), PROBE_INTERVAL):
            return None  # the heartbeat asked it a moment ago; a pass must not wait on it
        try:
            last = self.health.last_answer(name)
            if last is None or self.clock() - last >= PROBE_INTERVAL:
                d.probe()
            if name not in self.info:
                self.info[name] = d.info()
            found = d.list_pods()
            network = d.network()
        except errors.EngineError as e:
            self._failed(name, str(e))
            return None
        self._answered(name)
        self.health.saw_pods(name, (p.uid for p in found))
        with self._lock:
            self._last_seen[name] = found
        return found, network

    def _outcome(self, name: str, future: Future[_Listed | None]) -> _Listed | None:
        if future.done():
            return future.result()
        self._failed(name, f"no answer within {LIST_DEADLINE:.0f}s")
        return None

    def _split_stale(
        self, name: str, found: tuple[observe.ObservedPod, ...]
    ) -> tuple[list[observe.ObservedPod], list[plan.DeletePod]]:
        """A returning node's pods that were replaced elsewhere are deleted, not counted."""
        stale_uids = self.health.stale(name)
        if not stale_uids:
            return list(found), []
        self.health.settled(name, stale_uids - {p.uid for p in found})
        reason = "its node was lost and it was replaced elsewhere"
        gone = [
            plan.DeletePod(name, p.namespace, p.name, p.uid,
                           tuple(c.id for c in p.all_containers), reason)
            for p in found if p.uid in stale_uids
        ]
        return [p for p in found if p.uid not in stale_uids], gone

    def _answered(self, name: str) -> None:
        transition = self.health.answered(name, self.clock())
        if transition is not None:
            self.info.pop(name, None)  # the node may have come back with other hardware
            self.report(transition)

    def _failed(self, name: str, error: str) -> None:
        self.drivers[name].interrupt_events()
        transition = self.health.failed(name, self.clock(), error or "no answer")
        if transition is not None:
            self.report(transition)
