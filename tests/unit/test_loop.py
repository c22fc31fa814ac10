"""The controller's pass logic with a stand-in for the engines and an injected clock.

The engines themselves are covered by the docker and lab tiers; here only what the loop
decides: a silent node never holds up the others, when its pods are given up, what happens
when it comes back, what empties a scope.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from reconciler import errors, execute, model, observe, plan
from reconciler.cluster import config, health
from reconciler.control import passes

pytestmark = pytest.mark.unit


class Engine:
    """A node that either answers with a fixed list of pods or does not answer at all."""

    def __init__(self, name: str, pods: tuple[observe.ObservedPod, ...] = ()) -> None:
        self.node = name
        self.pods = pods
        self.down = False
        self.list_down = False  # answers its probe, but not a list
        self.interrupted = 0
        self.scope: str | None = "default"
        self.pause_image = "podyard/pause:1"
        self.net = observe.NodeNetwork(pod_network="10.244.0.0/24")

    def probe(self) -> None:
        if self.down:
            raise errors.Unreachable(f"{self.node}: connection refused")

    def info(self) -> observe.NodeInfo:
        return observe.NodeInfo(cpus=2, memory=4 * 2**30, engine_version="20.10.24")

    def interrupt_events(self) -> None:
        self.interrupted += 1

    def list_pods(self) -> tuple[observe.ObservedPod, ...]:
        self.probe()
        if self.list_down:
            raise errors.Unreachable(f"{self.node}: list timed out")
        return self.pods

    def network(self) -> observe.NodeNetwork:
        return self.net

    # The Services' machinery, kept as plain state: what the loop decides is under test.
    def claim(self, claim: observe.Claim) -> None:
        self.net = dataclasses.replace(self.net, claims=(*self.net.claims, claim))

    def release(self, claim: observe.Claim) -> None:
        kept = tuple(c for c in self.net.claims if c != claim)
        self.net = dataclasses.replace(self.net, claims=kept)

    def program_rules(self, ruleset: plan.RuleSet) -> None:
        agent = observe.Agent("proxy", running=True, digest=ruleset.digest)
        self.net = dataclasses.replace(self.net, proxy=agent)

    def program_dns(self, records: plan.DnsRecords) -> None:
        agent = observe.Agent("dns", running=True, ip="10.244.0.2", digest=records.digest)
        self.net = dataclasses.replace(self.net, dns=agent)

    def invalidate_cache(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:  # the rest of the Driver protocol: never called
        raise AttributeError(name)


class Notes:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def action(self, result: execute.Result) -> None:
        self.lines.append(result.action.describe())

    def info(self, message: str) -> None:
        self.lines.append(message)

    def warn(self, message: str) -> None:
        self.lines.append(f"warning: {message}")


def running_pod(node: str, name: str, tmpl: model.PodTemplate) -> observe.ObservedPod:
    def c(cname: str) -> observe.ObservedContainer:
        return observe.ObservedContainer(
            id=f"{name}-{cname}",
            name=cname,
            docker_name=cname,
            image="i",
            state="running",
            created=0.0,
        )

    return observe.ObservedPod(
        node=node,
        namespace="default",
        name=name,
        uid=f"uid-{name}",
        owner="ReplicationController/web",
        template_hash=tmpl.hash,
        revision="",
        labels=tmpl.labels,
        pause=c("POD"),
        containers=(c("app"),),
    )


TEMPLATE = model.PodTemplate(
    labels=(("app", "web"),),
    annotations=(),
    spec=model.PodSpec(containers=(model.Container("app", "app:1"),)),
)
WEB = model.ReplicationController(
    namespace="default",
    name="web",
    labels=(),
    replicas=2,
    selector=(("app", "web"),),
    template=TEMPLATE,
)
CLUSTER = config.Cluster(
    nodes=(config.NodeConfig("n1", "unix:///a"), config.NodeConfig("n2", "unix:///b"))
)


@pytest.fixture
def setup() -> Iterator[tuple[passes.Controller, dict[str, Engine], list[float], Notes]]:
    engines = {
        "n1": Engine("n1", (running_pod("n1", "web-a", TEMPLATE),)),
        "n2": Engine("n2", (running_pod("n2", "web-b", TEMPLATE),)),
    }
    now = [1000.0]
    notes = Notes()
    controller = passes.Controller(
        CLUSTER,
        engines,
        passes.Options(node_grace=4, eviction_delay=4),
        notes,
        clock=lambda: now[0],
    )
    settle(controller, engines)
    yield controller, engines, now, notes
    controller.close()


def settle(controller: passes.Controller, engines: dict[str, Engine]) -> None:
    """Give every node its claims, rules and DNS first: these tests are about pods."""
    for _ in range(3):
        nets = {name: e.net for name, e in engines.items()}
        the_plan = plan.services_plan(
            model.DesiredState(), [], plan.Plan(), controller.network(nets)
        )
        for action in the_plan.actions:
            execute.perform(action, engines[action.node])


DESIRED = model.DesiredState(controllers=(WEB,))


def kinds(the_plan: plan.Plan) -> list[tuple[str, str]]:
    return [(type(a).__name__, a.node) for a in the_plan.actions]


def test_a_silent_node_holds_up_nothing_and_its_pods_still_count(setup: Any) -> None:
    controller, engines, now, _ = setup
    controller.run_pass(DESIRED)
    engines["n2"].down = True
    now[0] += 1
    view = controller.survey()
    assert view.available == {"n1"}
    assert sorted(p.name for p in view.pods) == ["web-a", "web-b"]  # as last seen
    assert controller.run_pass(DESIRED).plan.empty  # nothing replaced early
    assert engines["n2"].interrupted  # its event stream is not left hanging


def test_actions_on_a_silent_node_wait_while_the_others_proceed(setup: Any) -> None:
    controller, engines, _, _ = setup
    engines["n2"].pods = (dataclasses.replace(engines["n2"].pods[0], pause=None),)  # broken
    controller.survey()
    engines["n2"].down = True
    solo = model.Pod("default", "solo", TEMPLATE)
    desired = model.DesiredState(pods=(solo,), controllers=(WEB,))
    result = controller.run_pass(desired)
    # web-b's deletion (its sandbox is gone) waits for n2; the replacement and the new bare
    # pod go to n1, which answers.
    assert kinds(result.plan) == [("CreatePod", "n1"), ("CreatePod", "n1")]
    assert any("1 action(s) wait for node(s) n2" in w for w in result.plan.waiting)


def test_a_lost_nodes_pods_are_replaced_after_grace_and_eviction_delay(setup: Any) -> None:
    controller, engines, now, notes = setup
    controller.run_pass(DESIRED)
    engines["n2"].down = True
    now[0] += 3.9
    assert controller.run_pass(DESIRED).plan.empty
    now[0] += 0.2  # 4.1 s silent: NotReady, its pods still count
    assert controller.run_pass(DESIRED).plan.empty
    assert "warning: node n2 is NotReady (n2: connection refused)" in notes.lines
    now[0] += 4  # 8.1 s: evicted
    the_plan = controller.plan(DESIRED, controller.observe_pods())
    assert kinds(the_plan) == [("CreatePod", "n1")]
    assert any("its pods are replaced elsewhere" in line for line in notes.lines)


def test_a_returning_node_loses_its_replaced_pods_before_anything_else(setup: Any) -> None:
    controller, engines, now, notes = setup
    controller.run_pass(DESIRED)
    engines["n2"].down = True
    now[0] += 9
    controller.run_pass(DESIRED)  # evicted: web-b is replaced on n1
    engines["n1"].pods += (running_pod("n1", "web-c", TEMPLATE),)
    engines["n2"].down = False
    now[0] += 1  # a pass asks a silent node again once a probe interval has passed
    result = controller.run_pass(DESIRED)
    assert "node n2 is Ready again" in notes.lines
    [delete] = result.plan.actions
    assert isinstance(delete, plan.DeletePod)
    assert (delete.node, delete.name) == ("n2", "web-b")
    assert "replaced elsewhere" in delete.reason
    engines["n2"].pods = ()
    assert controller.run_pass(DESIRED).plan.empty  # exactly 2 again, and no more deletes


def test_an_evicted_nodes_old_pods_never_count_again_even_if_it_answers_midway(
    setup: Any,
) -> None:
    controller, engines, now, _ = setup
    controller.run_pass(DESIRED)
    engines["n2"].down = True
    now[0] += 9
    controller.heartbeat()  # evicted by the heartbeat, between passes
    engines["n1"].pods += (running_pod("n1", "web-c", TEMPLATE),)  # the replacement
    engines["n2"].down, engines["n2"].list_down = False, True
    controller.heartbeat()  # it answers a probe again, but its list fails in the next pass
    result = controller.run_pass(DESIRED)
    assert result.plan.actions == ()  # web-c, the replacement, is not scaled away
    assert [p.name for p in controller.survey().pods] == ["web-a", "web-c"]


def test_a_node_back_before_eviction_keeps_its_pods(setup: Any) -> None:
    controller, engines, now, notes = setup
    controller.run_pass(DESIRED)
    engines["n2"].down = True
    now[0] += 5
    controller.run_pass(DESIRED)
    engines["n2"].down = False
    now[0] += 1
    assert controller.run_pass(DESIRED).plan.empty
    assert "node n2 is Ready again" in notes.lines


def test_the_scheduler_sees_a_silent_node_as_not_ready(setup: Any) -> None:
    controller, engines, _, _ = setup
    engines["n2"].down = True
    controller.survey()
    view = controller.scheduling_view()
    assert [(n.name, n.ready) for n in view] == [("n1", True), ("n2", False)]
    assert view[0].allocatable_cpu == 2000 - 100  # the engine's capacity less the reserve
    assert view[0].allocatable_memory == 4 * 2**30 - 256 * 2**20
    assert view[1].allocatable_cpu == 0  # never answered: unknown


def test_the_heartbeat_notices_a_node_without_a_pass(setup: Any) -> None:
    controller, engines, now, _ = setup
    controller.heartbeat()
    engines["n2"].down = True
    now[0] += 5
    controller.heartbeat()
    assert controller.health.state("n2") is health.State.NOT_READY
    now[0] += 4
    controller.heartbeat()
    assert controller.health.evicted("n2")


def test_manifests_declaring_nothing_do_not_empty_a_scope_by_default(setup: Any) -> None:
    controller, *_ = setup
    with pytest.raises(errors.ManifestError) as refused:
        controller.plan(model.DesiredState(), controller.observe_pods())
    (problem,) = refused.value.problems
    assert "refusing to delete 2 pods without --allow-empty" in problem.reason


def test_allow_empty_lets_empty_manifests_delete_everything() -> None:
    engines = {"n1": Engine("n1", (running_pod("n1", "web-a", TEMPLATE),))}
    controller = passes.Controller(
        config.Cluster(nodes=(config.NodeConfig("n1", "unix:///a"),)),
        engines,
        passes.Options(allow_empty=True),
        Notes(),
    )
    try:
        the_plan = controller.plan(model.DesiredState(), controller.observe_pods())
        assert [type(a) for a in the_plan.actions] == [plan.DeletePod]
    finally:
        controller.close()


def test_a_one_shot_run_gives_up_when_no_node_ever_answers() -> None:
    engine = Engine("n1")
    engine.down = True
    now = [0.0]
    controller = passes.Controller(
        config.Cluster(nodes=(config.NodeConfig("n1", "unix:///a"),)),
        {"n1": engine},
        passes.Options(node_grace=4, timeout=300),
        Notes(),
        clock=lambda: now[0],
    )

    def tick(seconds: float, stop: object) -> None:
        now[0] += seconds

    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(passes, "_sleep", tick)
            with pytest.raises(errors.ClusterError, match=r"no node answers \(n1: n1: connection"):
                controller.converge(DESIRED)
        assert now[0] < 10  # the grace period, not the 300 s timeout
    finally:
        controller.close()


def test_a_pass_does_not_wait_on_a_node_the_heartbeat_just_found_silent(setup: Any) -> None:
    controller, engines, now, _ = setup
    controller.run_pass(DESIRED)
    engines["n2"].down = True
    now[0] += 5
    controller.heartbeat()  # NotReady now
    calls: list[str] = []
    engines["n2"].probe = lambda: calls.append("probe")
    controller.survey()
    assert calls == []  # not asked again within the probe interval
    now[0] += 1.5
    controller.survey()
    assert calls  # asked again after it
