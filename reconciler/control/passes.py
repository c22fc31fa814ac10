"""One pass: observe every node, plan, apply; and `converge`, passes until done or timed out.

A pass is level-triggered, as in kopf and controller-runtime: it re-reads every node's
containers, plans against the desired state, and applies. The engines are reached through the
drivers only; what a node's silence means is `cluster/health.py`'s to say.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from reconciler import errors, execute, model, observe, plan
from reconciler.cluster import config, health
from reconciler.engine import driver
from reconciler.plan import pods, schedule


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
    node_grace: float = health.DEFAULT_GRACE
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
        cluster: config.Cluster,
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
        self.health = health.Health(grace=options.node_grace)
        self.pool = ThreadPoolExecutor(max_workers=max(1, len(drivers)))

    def observe_pods(self) -> list[observe.ObservedPod]:
        """Every pod on every reachable node, one list call per node, nodes in parallel.

        A node that does not answer within its grace period fails the pass (Unreachable), so
        a slow engine never makes its pods look lost; after the grace period its pods are left
        out and the plan replaces them elsewhere.
        """
        futures = {name: self.pool.submit(d.list_pods) for name, d in self.drivers.items()}
        pods: list[observe.ObservedPod] = []
        now = self.clock()
        for name, future in futures.items():
            try:
                pods.extend(future.result())
                if self.health.answered(name):
                    self.reporter.info(f"node {name} is answering again")
            except errors.RETRYABLE as e:
                if self.health.failed(name, now, str(e)) is health.Verdict.SUSPECT:
                    raise errors.Unreachable(f"node {name}: {e}") from e
                self.reporter.warn(f"node {name} is NotReady ({e}); its pods are replaced")
        return pods

    def plan(
        self,
        desired: model.DesiredState,
        observed: list[observe.ObservedPod],
        ctx: pods.Context | None = None,
    ) -> plan.Plan:
        """The pure diff, with this controller's clock, nodes and backoff (or `ctx`).

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
        return plan.diff(desired, observed, ctx or self.context(desired))

    def context(self, desired: model.DesiredState) -> pods.Context:
        """What the plan needs beyond state: the time, the nodes, the revision, the backoff."""
        return plan.Context(
            now=self.clock(),
            nodes=self.scheduling_view(),
            revision=desired.revision.label,
            backoff=self.options.backoff,
        )

    def scheduling_view(self) -> tuple[schedule.Node, ...]:
        """The nodes as the scheduler sees them: labels, and whether new pods may go there."""
        return tuple(
            schedule.Node(n.name, n.labels, self.health.ready(n.name)) for n in self.cluster.nodes
        )

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
            except errors.RETRYABLE as e:
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
