"""One pass: observe every node, plan, apply; and `converge`, passes until done or timed out.

A pass is level-triggered, as in kopf and controller-runtime: it re-reads every node's
containers, plans against the desired state, and applies. The engines are reached through the
drivers only; what a node's silence means is `cluster/health.py`'s to say.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from reconciler import errors, execute, labels, model, observe, plan
from reconciler.cluster import config, health
from reconciler.control import observation, status
from reconciler.engine import driver
from reconciler.plan import actions, network, pods, schedule


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
    eviction_delay: float = health.DEFAULT_EVICTION_DELAY
    reserved: config.Reserved = field(default_factory=config.Reserved)
    status_file: Path | None = None  # where each pass reports nodes and pending pods
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
        self.health = health.Health(
            grace=options.node_grace, eviction_delay=options.eviction_delay
        )
        self.observer = observation.Observer(drivers, self.health, clock, self._transition)
        self._available: frozenset[str] = frozenset(drivers)
        self._status_warned = False
        self.applied_revision = ""  # the revision of the manifests the last pass applied
        self.manifests_problem = ""  # why newer manifests are not applied, if they are not
        self._last_plan = actions.Plan()
        self._bridges: dict[str, str] = {}  # each node's bridge subnet, as last seen
        # Called with each node's change of state (the watch loop wakes on it).
        self.on_change: Callable[[health.Transition], None] | None = None
        # Called after each pass has planned, with what it planned from (the API's snapshot).
        self.on_pass: Callable[
            [model.DesiredState, observation.View, plan.Plan], None] | None = None
        self._desired = model.DesiredState()
        self.scope = next((d.scope for d in drivers.values() if d.scope), "")
        # The watch loop's finished passes and how long the last one took (manifests loaded,
        # observed, planned, applied), for the status file.
        self.passes = 0
        self.last_pass_seconds = 0.0

    def survey(self) -> observation.View:
        """Every node probed and listed at once; the silent ones judged (`observation.py`)."""
        view = self.observer.survey()
        self._available = view.available
        return view

    def observe_pods(self) -> list[observe.ObservedPod]:
        """The pods the plan counts: fresh from answering nodes, as last seen on silent ones."""
        return list(self.survey().pods)

    def heartbeat(self) -> None:
        """Probe every node now; a node's change of state is reported as it happens."""
        self.observer.heartbeat()

    def judge(self) -> float | None:
        """Judge the silent nodes as of now; when the next one would change state."""
        self.observer.tick()
        return self.health.next_deadline()

    def plan(
        self,
        desired: model.DesiredState,
        observed: list[observe.ObservedPod],
        ctx: pods.Context | None = None,
        networks: Mapping[str, observe.NodeNetwork] | None = None,
    ) -> plan.Plan:
        """The pure diff, with this controller's clock, nodes and backoff (or `ctx`); with
        the answering nodes' `networks`, completed with what the Services need there.

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
        pod_plan = plan.diff(desired, observed, ctx or self.context(desired))
        if networks is None:
            return pod_plan
        return plan.services_plan(desired, observed, pod_plan, self.network(networks))

    def network(self, networks: Mapping[str, observe.NodeNetwork]) -> network.Network:
        """What the Services' plan needs to know of the cluster beyond its pods."""
        for name, seen in networks.items():
            if seen.pod_network:  # remembered: a silent node's pods keep their subnet
                self._bridges[name] = seen.pod_network
        subnets = [n.pod_subnet or self._bridges.get(n.name, "") for n in self.cluster.nodes]
        return network.Network(
            scope=self.scope or labels.DEFAULT_SCOPE,
            service_cidr=self.cluster.service_cidr,
            nodes=networks,
            serving=frozenset(n.name for n in self.cluster.nodes if self.health.ready(n.name)),
            pod_networks=tuple(sorted({s for s in subnets if s})),
            node_addresses=tuple(sorted(
                a for a in (_address(n.endpoint) for n in self.cluster.nodes) if a
            )),
        )

    def context(self, desired: model.DesiredState) -> pods.Context:
        """What the plan needs beyond state: the time, the nodes, the revision, the backoff."""
        return plan.Context(
            now=self.clock(),
            nodes=self.scheduling_view(),
            revision=desired.revision.label,
            backoff=self.options.backoff,
        )

    def scheduling_view(self) -> tuple[schedule.Node, ...]:
        """The nodes as the scheduler sees them: labels; whether new pods may go there (Ready,
        and answering in this pass); what they can hold (the engine's capacity less the
        reserve; 0, unknown, until the node has answered once)."""
        reserved = self.options.reserved
        nodes = []
        for n in self.cluster.nodes:
            info = self.observer.info.get(n.name)
            nodes.append(schedule.Node(
                n.name,
                n.labels,
                self._schedulable(n.name),
                allocatable_cpu=max(1, info.cpus * 1000 - reserved.cpu) if info else 0,
                allocatable_memory=max(1, info.memory - reserved.memory) if info else 0,
            ))
        return tuple(nodes)

    def refused(self, problem: str) -> None:
        """Newer manifests cannot be applied (invalid, or refused): say so in the status."""
        self.manifests_problem = problem
        self.write_status(self._last_plan)

    def write_status(self, the_plan: actions.Plan) -> None:
        """Report nodes and pending pods for `podyard get` (see `status.py`)."""
        path = self.options.status_file
        if path is None:
            return
        names = [n.name for n in self.cluster.nodes]
        doc = status.document(
            self.scope, self.health, self.observer, names, the_plan, self.clock(),
            {"applied": self.applied_revision, "problem": self.manifests_problem},
            self._desired.controllers,
            {"finished": self.passes, "lastSeconds": round(self.last_pass_seconds, 6)},
        )
        if not status.write(path, doc) and not self._status_warned:
            self._status_warned = True
            self.reporter.warn(f"cannot write the status file {path}; podyard get shows less")

    def timed(self, seconds: float) -> None:
        """Count a finished pass of the watch loop and how long it took, load included."""
        self.passes += 1
        self.last_pass_seconds = seconds

    def _schedulable(self, node: str) -> bool:
        return self.health.ready(node) and node in self._available

    def _acted(self, result: execute.Result) -> None:
        if result.ok and isinstance(result.action, plan.CreatePod):
            self.health.placed(result.action.node, result.action.pod.uid)
        self.reporter.action(result)

    def _transition(self, transition: health.Transition) -> None:
        if transition.after is health.State.READY:
            self.reporter.info(str(transition))
        else:
            self.reporter.warn(str(transition))
        if self.on_change is not None:
            self.on_change(transition)

    def run_pass(
        self, desired: model.DesiredState, stop: threading.Event | None = None
    ) -> PassResult:
        """Observe, plan, apply once: on the nodes that answered, stale pods removed first."""
        view = self.survey()
        the_plan = _on_available(self.plan(desired, list(view.pods), networks=view.networks), view)
        self.applied_revision = str(desired.revision)
        self._last_plan, self._desired = the_plan, desired
        self.write_status(the_plan)
        if self.on_pass is not None:
            self.on_pass(desired, view, the_plan)
        if the_plan.empty:
            return PassResult(the_plan, None, len(view.pods))
        outcome = execute.apply(
            the_plan,
            self.drivers,
            parallelism=self.options.parallelism,
            on_result=self._acted,
            stop=stop,
            lost=lambda node: not self.health.ready(node),
        )
        return PassResult(the_plan, outcome, len(view.pods))

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
            self._fail_if_no_node_ever_answered()
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

    def _fail_if_no_node_ever_answered(self) -> None:
        """A one-shot run against engines none of which has answered within the grace period
        cannot do anything: say so now (exit 3) rather than wait out --timeout."""
        names = [n.name for n in self.cluster.nodes]
        if any(self.health.last_answer(n) is not None for n in names):
            return
        if all(self.health.state(n) is not health.State.READY for n in names):
            errors_seen = "; ".join(f"{n}: {self.health.last_error(n)}" for n in names)
            raise errors.ClusterError(f"no node answers ({errors_seen})")

    def resync(self) -> None:
        """Make the next pass list every node in full, not trusting any cache."""
        for d in self.drivers.values():
            d.invalidate_cache()

    def close(self) -> None:
        self.observer.close()
        for d in self.drivers.values():
            d.close()


def _on_available(the_plan: plan.Plan, view: observation.View) -> plan.Plan:
    """Only what can be done now: actions on silent nodes wait; stale pods go first."""
    now = [a for a in the_plan.actions if a.node in view.available]
    later = len(the_plan.actions) - len(now)
    waiting = the_plan.waiting
    if later:
        silent = sorted({a.node for a in the_plan.actions} - view.available)
        waiting += (f"{later} action(s) wait for node(s) {', '.join(silent)} to answer",)
    return dataclasses.replace(the_plan, actions=(*view.stale, *now), waiting=waiting)


def _address(endpoint: str) -> str:
    """The IP address in `tcp://10.0.0.11:2376`; "" for a socket or a host name."""
    host = urllib.parse.urlsplit(endpoint).hostname or ""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return ""


def _sleep(seconds: float, stop: threading.Event | None) -> None:
    if stop is None:
        time.sleep(seconds)
    else:
        stop.wait(seconds)
