"""Scheduling is pure: each filter, the unschedulable reason in Kubernetes' words, the scores."""

from __future__ import annotations

import collections
import dataclasses
import itertools
import random
from collections.abc import Sequence

import pytest

from reconciler import model, observe, plan
from reconciler.plan import schedule

pytestmark = pytest.mark.unit

Mi = 2**20
Gi = 2**30
WEB = ("default", "ReplicationController/web")
NOT_READY = "node(s) had untolerated taint {node.kubernetes.io/not-ready: }"
SELECTOR = "node(s) didn't match Pod's node affinity/selector"
PORTS = "node(s) didn't have free ports for the requested pod ports"


def node(
    name: str,
    cpu: int = 0,
    memory: int = 0,
    *,
    ready: bool = True,
    labels: model.Pairs = (),
) -> schedule.Node:
    return schedule.Node(name, labels, ready, allocatable_cpu=cpu, allocatable_memory=memory)


def demand(
    cpu: int = 0,
    memory: int = 0,
    *,
    group: schedule.Group = WEB,
    selector: model.Pairs = (),
    ports: Sequence[schedule.Port] = (),
) -> schedule.Demand:
    return schedule.Demand(group, model.Requests(cpu, memory), selector, frozenset(ports))


_names = itertools.count()


def running(
    on: str, cpu: int = 0, memory: int = 0, owner: str = "ReplicationController/other"
) -> observe.ObservedPod:
    """A pod observed on a node, holding its requests there (as read from its label)."""
    pause = observe.ObservedContainer("p", "POD", "POD", "pause", "running", created=1.0)
    app = observe.ObservedContainer("a", "app", "app", "app:1", "running", created=1.0)
    return observe.ObservedPod(
        node=on,
        namespace="default",
        name=f"pod-{next(_names)}",
        uid=f"uid-{next(_names)}",
        owner=owner,
        template_hash="",
        revision="",
        labels=(),
        pause=pause,
        containers=(app,),
        requests=model.Requests(cpu, memory),
    )


def placement(
    nodes: Sequence[schedule.Node], pods: Sequence[observe.ObservedPod] = ()
) -> schedule.Placement:
    return schedule.Placement.from_pods(nodes, pods)


# -- filters -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nodes", "pods", "pod", "expected"),
    [
        pytest.param(
            [node("n1", ready=False), node("n2")], [], demand(), ("n2", ""), id="ready-only"
        ),
        pytest.param(
            [node("n1", ready=False)],
            [],
            demand(),
            (None, f"0/1 nodes are available: 1 {NOT_READY}."),
            id="not-ready",
        ),
        pytest.param(
            [node("n1"), node("n2", labels=(("disk", "ssd"), ("zone", "a")))],
            [],
            demand(selector=(("disk", "ssd"),)),
            ("n2", ""),
            id="selector-matches",
        ),
        pytest.param(
            [node("n1", labels=(("disk", "hdd"),))],
            [],
            demand(selector=(("disk", "ssd"),)),
            (None, f"0/1 nodes are available: 1 {SELECTOR}."),
            id="selector-value-differs",
        ),
        pytest.param(
            [node("n1", 1000)],
            [running("n1", cpu=800)],
            demand(cpu=200),
            ("n1", ""),
            id="cpu-exactly-fits",
        ),
        pytest.param(
            [node("n1", 1000)],
            [running("n1", cpu=800)],
            demand(cpu=201),
            (None, "0/1 nodes are available: 1 Insufficient cpu."),
            id="cpu-short",
        ),
        pytest.param(
            [node("n1", 1000, 1 * Gi)],
            [running("n1", memory=768 * Mi)],
            demand(memory=512 * Mi),
            (None, "0/1 nodes are available: 1 Insufficient memory."),
            id="memory-short",
        ),
        pytest.param(
            [node("n1", 1000, 1 * Gi)],
            [running("n1", cpu=1000, memory=1 * Gi)],
            demand(cpu=1, memory=1),
            (None, "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory."),
            id="both-short-count-once-each",
        ),
        pytest.param(
            [node("n1", 1000, 1 * Gi)],
            [running("n1", cpu=1000, memory=1 * Gi)],
            demand(),
            ("n1", ""),
            id="requesting-nothing-is-never-refused",
        ),
        pytest.param(
            [node("n1")],
            [running("n1", cpu=64_000, memory=512 * Gi)],
            demand(cpu=64_000, memory=512 * Gi),
            ("n1", ""),
            id="unknown-allocatable-never-filters",
        ),
        pytest.param(
            [node("n1", 1000, 1 * Gi, ready=False, labels=(("disk", "hdd"),))],
            [running("n1", cpu=1000)],
            demand(cpu=500, selector=(("disk", "ssd"),)),
            (None, f"0/1 nodes are available: 1 {NOT_READY}."),
            id="only-the-first-failing-filter-counts",
        ),
    ],
)
def test_each_filter_admits_or_refuses_a_node_in_kubernetes_words(
    nodes: list[schedule.Node],
    pods: list[observe.ObservedPod],
    pod: schedule.Demand,
    expected: tuple[str | None, str],
) -> None:
    assert placement(nodes, pods).choose(pod) == expected


@pytest.mark.parametrize(
    ("first", "second", "fits"),
    [
        ([(80, "TCP")], [(80, "TCP")], False),
        ([(80, "TCP")], [(80, "UDP")], True),  # a port is taken per protocol
        ([(80, "TCP")], [(8080, "TCP")], True),
        ([], [(80, "TCP")], True),
    ],
)
def test_a_host_port_placed_on_a_node_is_not_free_for_the_next_pod(
    first: list[schedule.Port], second: list[schedule.Port], fits: bool
) -> None:
    placed = placement([node("n1")])
    assert placed.choose(demand(ports=first)) == ("n1", "")
    expected = ("n1", "") if fits else (None, f"0/1 nodes are available: 1 {PORTS}.")
    assert placed.choose(demand(ports=second)) == expected


# -- the reason when nothing fits ----------------------------------------------------------


@pytest.mark.parametrize(
    ("nodes", "pods", "pod", "reason"),
    [
        pytest.param(
            [node("n1", 4000, 1 * Gi, labels=(("disk", "ssd"),)), node("n2", 4000, 8 * Gi)],
            [],
            demand(memory=2 * Gi, selector=(("disk", "ssd"),)),
            f"0/2 nodes are available: 1 Insufficient memory, 1 {SELECTOR}.",
            id="the-kubernetes-example",
        ),
        pytest.param(
            [node("n1", 1000, 1 * Gi), node("n2", 1000, 1 * Gi)],
            [],
            demand(memory=2 * Gi),
            "0/2 nodes are available: 2 Insufficient memory.",
            id="too-big-everywhere",
        ),
        pytest.param(
            [node("n1", 1000, 1 * Gi), node("n2", 1000, 1 * Gi)],
            [],
            demand(cpu=2000, memory=2 * Gi),
            "0/2 nodes are available: 2 Insufficient cpu, 2 Insufficient memory.",
            id="each-node-counts-once-per-resource",
        ),
        pytest.param(
            # Kubernetes sorts the "<count> <reason>" strings, so the count sorts first.
            [node("n1", ready=False), node("n2", 1000), node("n3", 1000)],
            [],
            demand(cpu=2000),
            f"0/3 nodes are available: 1 {NOT_READY}, 2 Insufficient cpu.",
            id="sorted-as-counted-text",
        ),
        pytest.param(
            [node("n1", 1000, labels=(("disk", "ssd"),)), node("n2"), node("n3", ready=False)],
            [running("n1", cpu=1000)],
            demand(cpu=100, selector=(("disk", "ssd"),)),
            f"0/3 nodes are available: 1 Insufficient cpu, 1 {SELECTOR}, 1 {NOT_READY}.",
            id="three-reasons",
        ),
        pytest.param([], [], demand(), "no nodes available to schedule pods", id="no-nodes"),
    ],
)
def test_an_unschedulable_pod_gets_the_reason_kubernetes_would_give(
    nodes: list[schedule.Node],
    pods: list[observe.ObservedPod],
    pod: schedule.Demand,
    reason: str,
) -> None:
    assert placement(nodes, pods).choose(pod) == (None, reason)


def test_a_host_port_clash_is_counted_among_the_other_reasons() -> None:
    placed = placement([node("n1", 1000), node("n2", 1000, labels=(("disk", "ssd"),))])
    assert placed.choose(demand(ports=[(80, "TCP")])) == ("n1", "")
    assert placed.choose(demand(cpu=1000, ports=[(80, "TCP")])) == ("n2", "")
    assert placed.choose(demand(ports=[(80, "TCP")])) == (
        None,
        f"0/2 nodes are available: 2 {PORTS}.",
    )


def test_a_pod_too_big_for_any_node_is_not_counted_anywhere() -> None:
    placed = placement([node("n1", 1000, 1 * Gi), node("n2", 1000, 1 * Gi)])
    assert placed.choose(demand(memory=2 * Gi))[0] is None
    assert [placed.choose(demand(memory=1 * Gi))[0] for _ in range(3)] == ["n1", "n2", None]


# -- scores --------------------------------------------------------------------------------


def places(placed: schedule.Placement, pods: Sequence[schedule.Demand]) -> list[str | None]:
    return [placed.choose(p)[0] for p in pods]


def test_an_rcs_six_replicas_spread_three_and_three_over_two_equal_nodes() -> None:
    placed = placement([node("n1", 4000, 8 * Gi), node("n2", 4000, 8 * Gi)])
    chosen = places(placed, [demand(250, 64 * Mi)] * 6)
    assert chosen == ["n1", "n2"] * 3


@pytest.mark.parametrize(
    ("nodes", "pods", "pod", "expected"),
    [
        pytest.param(
            [node("n1", 4000, 8 * Gi), node("n2", 4000, 8 * Gi)],
            [running("n1", owner="ReplicationController/web"), running("n2", 3000, 6 * Gi)],
            demand(100, 100 * Mi),
            "n2",
            id="spreading-before-least-requested",
        ),
        pytest.param(
            [node("n1", 4000, 8 * Gi), node("n2", 4000, 8 * Gi)],
            [running("n2", 1000, 1 * Gi), running("n2"), running("n1", 2000, 2 * Gi)],
            demand(100, 100 * Mi),
            "n2",
            id="least-requested-before-pod-count",
        ),
        pytest.param(
            # cpu 0% + memory 60% is more requested than cpu 50% + memory 0%: the mean.
            [node("n1", 4000, 10 * Gi), node("n2", 4000, 10 * Gi)],
            [running("n1", memory=6 * Gi), running("n2", cpu=2000)],
            demand(),
            "n2",
            id="mean-of-cpu-and-memory",
        ),
        pytest.param(
            [node("n1", 2000, 4 * Gi), node("n2", 8000, 16 * Gi)],
            [],
            demand(500, 512 * Mi),
            "n2",
            id="the-bigger-node-is-less-requested-after-placing",
        ),
        pytest.param(
            [node("n1"), node("n2")],
            [running("n1"), running("n1"), running("n2")],
            demand(500, 512 * Mi),
            "n2",
            id="unknown-allocatable-scores-by-pod-count",
        ),
        pytest.param(
            # n2's CPU is unknown: comparing CPU shares would be comparing with nothing.
            [node("n1", 4000, 8 * Gi), node("n2", 0, 8 * Gi)],
            [running("n1", cpu=3000), running("n1"), running("n2", memory=1 * Gi)],
            demand(100, 100 * Mi),
            "n1",
            id="a-resource-some-node-does-not-know-is-not-compared",
        ),
        pytest.param(
            [node("n2", 4000, 8 * Gi), node("n3", 4000, 8 * Gi), node("n1", 4000, 8 * Gi)],
            [],
            demand(100, 100 * Mi),
            "n1",
            id="the-name-breaks-ties",
        ),
    ],
)
def test_the_best_scoring_node_wins(
    nodes: list[schedule.Node],
    pods: list[observe.ObservedPod],
    pod: schedule.Demand,
    expected: str,
) -> None:
    assert placement(nodes, pods).choose(pod) == (expected, "")


def test_placing_the_same_pods_twice_gives_the_same_nodes() -> None:
    nodes = [node(f"n{i}", 1000 * (i % 3 + 1), Gi * (i % 2 + 1)) for i in range(7)]
    pods = [demand(100 * (i % 4), 64 * Mi * (i % 3), group=("ns", f"rc{i % 5}")) for i in range(60)]
    assert places(placement(nodes), pods) == places(placement(list(reversed(nodes))), pods)


def test_a_released_pod_frees_its_requests_and_its_place_in_the_spread() -> None:
    gone = running("n1", 1000, 1 * Gi, owner="ReplicationController/web")
    placed = placement([node("n1", 1000, 1 * Gi), node("n2", 1000, 2 * Gi)], [gone])
    assert placed.choose(demand(memory=1 * Gi)) == ("n2", "")  # n1 is full
    placed.release(gone)
    assert placed.choose(demand(memory=1 * Gi)) == ("n1", "")  # and spreads to n1 again


def test_releasing_a_pod_of_an_unknown_node_changes_nothing() -> None:
    placed = placement([node("n1", 1000)])
    placed.release(running("elsewhere", cpu=1000))
    assert placed.choose(demand(cpu=1000)) == ("n1", "")


def test_observed_pods_on_unknown_nodes_are_not_counted() -> None:
    placed = placement([node("n1", 1000)], [running("gone", cpu=1000)])
    assert placed.choose(demand(cpu=1000)) == ("n1", "")


def test_a_bare_pod_is_a_group_of_its_own() -> None:
    assert schedule.group("default", "db", "") == ("default", "Pod/db")
    assert schedule.group("default", "web-x", "ReplicationController/web") == WEB


def test_a_demand_carries_the_pods_summed_requests_selector_and_host_ports() -> None:
    resources = model.build_resources({"limits": {"cpu": "500m", "memory": "128Mi"}})
    spec = model.PodSpec(
        containers=(
            model.Container("a", "x", resources=resources),
            model.Container(
                "b",
                "x",
                ports=(model.ContainerPort(80, host_port=8080),),
                resources=model.Resources(cpu_request=250, memory_request=64 * Mi),
            ),
        ),
        node_selector=(("disk", "ssd"),),
    )
    assert schedule.Demand.of("default", "web-x", "ReplicationController/web", spec) == (
        schedule.Demand(
            WEB, model.Requests(750, 192 * Mi), (("disk", "ssd"),), frozenset({(8080, "TCP")})
        )
    )


# -- through the plan ----------------------------------------------------------------------

NODES = (node("n1", 4000, 8 * Gi), node("n2", 4000, 8 * Gi, labels=(("disk", "ssd"),)))


def template(
    cpu: int = 0, memory: int = 0, image: str = "app:1", selector: model.Pairs = ()
) -> model.PodTemplate:
    resources = model.Resources(cpu_request=cpu, memory_request=memory)
    spec = model.PodSpec(
        containers=(model.Container("app", image, resources=resources),),
        node_selector=selector,
    )
    return model.PodTemplate(labels=(("app", "web"),), annotations=(), spec=spec)


def rc(replicas: int, tmpl: model.PodTemplate) -> model.ReplicationController:
    return model.ReplicationController("default", "web", (), replicas, (("app", "web"),), tmpl)


def diff(
    objs: Sequence[model.Pod | model.ReplicationController],
    observed: Sequence[observe.ObservedPod] = (),
    nodes: Sequence[schedule.Node] = NODES,
) -> plan.Plan:
    names = (f"{i:05d}" for i in itertools.count())
    ctx = plan.Context(
        now=1000.0,
        nodes=tuple(nodes),
        suffix=lambda: next(names),
        uid=lambda namespace, name: f"uid-{name}",
    )
    desired = model.DesiredState(
        pods=tuple(o for o in objs if isinstance(o, model.Pod)),
        controllers=tuple(o for o in objs if isinstance(o, model.ReplicationController)),
    )
    return plan.diff(desired, observed, ctx)


def observed_of(obj: model.ReplicationController | model.Pod, on: str) -> observe.ObservedPod:
    """A running pod of a declared object, as observed (its requests read from its label)."""
    if isinstance(obj, model.ReplicationController):
        owner, name = plan.owner_of(obj), f"{obj.name}-{next(_names)}"
    else:
        owner, name = "", obj.name
    return dataclasses.replace(
        running(on, owner=owner),
        name=name,
        template_hash=obj.template.hash,
        requests=obj.template.spec.requests,
    )


def test_plan_spreads_an_rc_of_six_three_and_three() -> None:
    p = diff([rc(6, template(250, 64 * Mi))])
    assert collections.Counter(a.node for a in p.creates()) == {"n1": 3, "n2": 3}


def test_plan_places_a_pod_with_a_node_selector_on_the_matching_node() -> None:
    picky = model.Pod("default", "db", template(selector=(("disk", "ssd"),)))
    assert [a.node for a in diff([picky]).creates()] == ["n2"]


def test_plan_reports_a_pod_too_big_for_any_node_as_waiting() -> None:
    big = model.Pod("default", "big", template(memory=16 * Gi))
    p = diff([big])
    assert p.creates() == ()
    assert p.waiting == (
        "pod big is unschedulable: 0/2 nodes are available: 2 Insufficient memory.",
    )


def test_plan_counts_what_observed_pods_request() -> None:
    hog = model.Pod("default", "hog", template(memory=7 * Gi))
    web = rc(1, template(memory=2 * Gi))
    p = diff([hog, web], [observed_of(hog, "n1")])
    assert [a.node for a in p.creates()] == ["n2"]


def test_plan_never_moves_running_pods_to_rebalance() -> None:
    web = rc(6, template(250, 64 * Mi))
    p = diff([web], [observed_of(web, "n1") for _ in range(4)])
    assert p.deletes() == ()
    assert [a.node for a in p.creates()] == ["n2", "n2"]


def test_plan_frees_a_replaced_pods_requests_for_its_successor() -> None:
    old, new = template(memory=6 * Gi, image="app:1"), template(memory=6 * Gi, image="app:2")
    running_old = observed_of(model.Pod("default", "db", old), "n1")
    p = diff([model.Pod("default", "db", new)], [running_old], nodes=NODES[:1])
    assert [a.describe() for a in p.actions] == [
        "- delete pod db on n1: spec changed",
        "+ create pod db on n1: spec changed",
    ]


def test_the_ranking_kept_between_replicas_chooses_as_a_fresh_one_would() -> None:
    rng = random.Random(7)
    nodes = [
        node(
            f"n{i}",
            rng.choice([0, 8000, 16000]),
            rng.choice([8, 16]) * Gi,
            ready=i != 3,
            labels=(("disk", "ssd"),) if i % 3 == 0 else (),
        )
        for i in range(12)
    ]
    observed = [
        running(f"n{rng.randrange(12)}", 200, 256 * Mi, f"ReplicationController/rc{i % 5}")
        for i in range(40)
    ]
    kinds = [
        demand(
            rng.choice([0, 100, 500]),
            rng.choice([0, 128, 512]) * Mi,
            group=("default", f"ReplicationController/rc{i % 4}"),
            selector=(("disk", "ssd"),) if i == 5 else (),
            ports=[(80, "TCP")] if i == 6 else (),
        )
        for i in range(8)
    ]
    leaving = list(observed)
    steps: list[schedule.Demand | observe.ObservedPod] = []
    for _ in range(100):
        pod = rng.choice(kinds)
        for _ in range(rng.randint(1, 5)):  # runs of one pod, as an RC's replicas are placed
            steps.append(pod)
            if leaving and rng.random() < 0.2:  # a pod deleted between two of the run
                steps.append(leaving.pop())
    kept, fresh = placement(nodes, observed), placement(nodes, observed)
    nowhere = demand(selector=(("disk", "none"),))  # fits no node: only makes `fresh` re-rank
    for i, step in enumerate(steps):
        if isinstance(step, observe.ObservedPod):
            kept.release(step)
            fresh.release(step)
            continue
        fresh.choose(nowhere)
        assert kept.choose(step) == fresh.choose(step), f"step {i}"
