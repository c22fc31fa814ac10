"""Applying a plan: each action on its node's driver, with bounded parallelism per node.

Owns the order of a plan's groups: address claims, then every node's Service rules and DNS,
then every deletion, then every creation, then every container restart, and releases last.
A deleted pod frees its node and its host ports before a new one arrives; a pod serving a
Service is deleted only once every node's rules without it are in place (if one node could
not take them, such deletions wait for the next pass). It also keeps the accounting of what
happened. One failed action is recorded and does not stop the others; the next pass plans
again. A node that stops answering while its actions are under way is not waited for: they
are recorded as failed at once and the apply goes on, so a host that vanished mid-call holds
up no other node (its calls end at their own timeout). It makes no decision of its own and
never talks to Docker except through `engine.driver.Driver`; it does not retry (`control/`
does).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass
from typing import assert_never

from reconciler import errors, plan
from reconciler.engine import driver


@dataclass(frozen=True)
class Result:
    """One action as it ended: the error it raised (None if it worked) and how long it took."""

    action: plan.Action
    error: Exception | None
    seconds: float

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Outcome:
    """Everything an `apply` did, in completion order, and what it did not start."""

    results: tuple[Result, ...] = ()
    skipped: tuple[plan.Action, ...] = ()  # not started: a stop was requested
    seconds: float = 0.0

    @property
    def failed(self) -> tuple[Result, ...]:
        return tuple(r for r in self.results if r.error is not None)

    @property
    def succeeded(self) -> tuple[Result, ...]:
        return tuple(r for r in self.results if r.error is None)

    @property
    def complete(self) -> bool:
        """Every action was attempted and none failed."""
        return not self.skipped and not self.failed


OnResult = Callable[[Result], None]
Lost = Callable[[str], bool]  # whether a node has stopped answering

LOST_CHECK = 0.25  # seconds between looks at whether a node with actions under way was lost


def apply(
    the_plan: plan.Plan,
    drivers: Mapping[str, driver.Driver],
    *,
    parallelism: int = 8,
    on_result: OnResult | None = None,
    stop: threading.Event | None = None,
    lost: Lost | None = None,
) -> Outcome:
    """Run the plan's deletions, then creations, then restarts; report each as it ends.

    `on_result` is called from worker threads, one call at a time. Once `stop` is set no
    further action starts; actions under way finish and are reported. Once `lost(node)` holds,
    that node's actions under way are reported as failed and no longer waited for.
    """
    run = _Run(drivers, on_result, stop or threading.Event(), lost or (lambda _node: False))
    started = time.monotonic()
    pools = {name: ThreadPoolExecutor(max(1, parallelism), f"apply-{name}") for name in drivers}
    try:
        run.group(the_plan.claims(), pools)
        run.group(the_plan.programs(), pools)
        held = run.failed_programs()
        deletes = the_plan.deletes()
        if held:
            for action in deletes:
                if action.uid in the_plan.serving:
                    run.finish(action, errors.Unreachable(
                        f"held until {', '.join(held)} take the service rules without this pod"
                    ), 0.0)
            deletes = tuple(a for a in deletes if a.uid not in the_plan.serving)
        for group in (deletes, the_plan.creates(), the_plan.restarts(), the_plan.releases()):
            run.group(group, pools)
    finally:
        for name, pool in pools.items():
            # A lost node's calls end at their own timeout; nothing waits for them.
            pool.shutdown(wait=name not in run.lost_nodes, cancel_futures=name in run.lost_nodes)
    return Outcome(tuple(run.results), tuple(run.skipped), time.monotonic() - started)


class _Run:
    """The mutable state of one `apply`, shared by its worker threads under one lock."""

    def __init__(
        self, drivers: Mapping[str, driver.Driver], on_result: OnResult | None,
        stop: threading.Event, lost: Lost,
    ) -> None:
        self.drivers = drivers
        self.on_result = on_result
        self.stop = stop
        self.lost = lost
        self.lock = threading.Lock()
        self.results: list[Result] = []
        self.skipped: list[plan.Action] = []
        self.lost_nodes: set[str] = set()
        self._reported: set[int] = set()  # id() of the actions whose result is recorded

    def group(
        self, actions: Iterable[plan.Action], pools: Mapping[str, ThreadPoolExecutor]
    ) -> None:
        """Run one group across every node and wait for all of it: groups do not overlap."""
        pending: dict[Future[None], plan.Action] = {}
        for action in actions:
            pool = pools.get(action.node)
            if pool is None:
                self.finish(action, errors.ClusterError(f"unknown node {action.node}"), 0.0)
            elif action.node in self.lost_nodes:
                self.abandon(action)
            else:
                pending[pool.submit(self.one, action)] = action
        while pending:
            done, _ = wait_for(pending, timeout=LOST_CHECK, return_when=FIRST_COMPLETED)
            for future in done:
                del pending[future]
                future.result()  # re-raises only a failing on_result callback
            for future, action in list(pending.items()):
                if action.node in self.lost_nodes or self.lost(action.node):
                    del pending[future]
                    self.abandon(action)

    def abandon(self, action: plan.Action) -> None:
        """The action's node stopped answering: report it failed now, ignore how it ends."""
        with self.lock:
            self.lost_nodes.add(action.node)
        self.finish(action, errors.Unreachable(f"node {action.node} stopped answering"), 0.0)

    def failed_programs(self) -> list[str]:
        """The nodes whose Service rules could not be applied so far."""
        with self.lock:
            return sorted({r.action.node for r in self.results
                           if r.error is not None and isinstance(r.action, plan.ProgramRules)})

    def one(self, action: plan.Action) -> None:
        """Run one action unless a stop was requested; never raises for the action's error."""
        if action.node in self.lost_nodes:
            return  # reported failed when its node was lost, while it waited for a thread
        if self.stop.is_set():
            with self.lock:
                self.skipped.append(action)
            return
        started = time.monotonic()
        error: Exception | None = None
        try:
            perform(action, self.drivers[action.node])
        except Exception as e:  # recorded, not raised: one action must not stop the others
            error = e
        self.finish(action, error, time.monotonic() - started)

    def finish(self, action: plan.Action, error: Exception | None, seconds: float) -> None:
        """Record how the action ended; only the first word counts (an abandoned action's
        call may still end later, and is then ignored)."""
        result = Result(action, error, seconds)
        with self.lock:
            if id(action) in self._reported:
                return
            self._reported.add(id(action))
            self.results.append(result)
            if self.on_result is not None:
                self.on_result(result)


def perform(action: plan.Action, d: driver.Driver) -> None:
    """One action on one driver: a handler per action type, and no default branch.

    A new action type makes mypy fail on `assert_never` until it has a handler here, and an
    object that is no action raises AssertionError: nothing ever runs as some other action.
    """
    match action:
        case plan.DeletePod():
            d.delete_pod(action)
        case plan.CreatePod():
            d.create_pod(action.pod)
        case plan.RestartContainer():
            d.restart_container(action)
        case plan.ClaimAddress():
            d.claim(action.claim)
        case plan.ReleaseAddress():
            d.release(action.claim)
        case plan.ProgramRules():
            d.program_rules(action.rules)
        case plan.ProgramDNS():
            d.program_dns(action.records)
        case _:
            assert_never(action)

