"""The plan is pure: every rule of the diff, with plain values and an injected clock."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from reconciler import model, observe, plan
from reconciler.plan import schedule

pytestmark = pytest.mark.unit

NOW = 1_000_000.0
NODES = (schedule.Node("n1"), schedule.Node("n2", labels=(("disk", "ssd"),)))


def template(image: str = "app:1", restart: str = "Always", **spec: object) -> model.PodTemplate:
    containers = (model.Container(name="app", image=image),)
    pod_spec = model.PodSpec(containers=containers, restart_policy=restart)
    if spec:
        pod_spec = model.PodSpec(**{"containers": containers, "restart_policy": restart, **spec})  # type: ignore[arg-type]
    return model.PodTemplate(labels=(("app", "web"),), annotations=(), spec=pod_spec)


def rc(replicas: int, image: str = "app:1") -> model.ReplicationController:
    return model.ReplicationController(
        namespace="default",
        name="web",
        labels=(),
        replicas=replicas,
        selector=(("app", "web"),),
        template=template(image),
    )


def container(name: str, state: str = "running", **kw: object) -> observe.ObservedContainer:
    fields: dict[str, object] = {"created": NOW - 100, "ip": "10.0.0.2" if name == "POD" else ""}
    fields.update(kw)
    return observe.ObservedContainer(
        id=f"id-{name}-{next(_ids)}",
        name=name,
        docker_name=name,
        image="x",
        state=state,
        **fields,  # type: ignore[arg-type]
    )


_ids = itertools.count()


def pod(
    name: str,
    tmpl: model.PodTemplate,
    owner: str = "",
    node: str = "n1",
    app: observe.ObservedContainer | None = None,
    pause_state: str = "running",
    created: float = NOW - 100,
) -> observe.ObservedPod:
    return observe.ObservedPod(
        node=node,
        namespace="default",
        name=name,
        uid=f"uid-{name}",
        owner=owner,
        template_hash=tmpl.hash,
        revision="",
        labels=tmpl.labels,
        pause=container("POD", pause_state, created=created),
        containers=(app or container("app", created=created),),
    )


def suffixes() -> Iterator[str]:
    return (f"{i:05d}" for i in itertools.count())


def context(**kw: object) -> plan.Context:
    names = suffixes()
    uids = (f"new-{i}" for i in itertools.count())
    defaults: dict[str, object] = {
        "now": NOW,
        "nodes": NODES,
        "suffix": lambda: next(names),
        "uid": lambda namespace, name: next(uids),
    }
    defaults.update(kw)
    return plan.Context(**defaults)  # type: ignore[arg-type]


def lines(p: plan.Plan) -> list[str]:
    return [a.describe() for a in p.actions]


def state(*objs: object) -> model.DesiredState:
    return model.DesiredState(
        pods=tuple(o for o in objs if isinstance(o, model.Pod)),
        controllers=tuple(o for o in objs if isinstance(o, model.ReplicationController)),
    )


OWNER = "ReplicationController/web"


def test_creates_every_missing_replica_spread_over_nodes() -> None:
    p = plan.diff(state(rc(3)), [], context())
    assert lines(p) == [
        "+ create pod web-00000 (rc/web) on n1: replicas 0 < 3",
        "+ create pod web-00001 (rc/web) on n2: replicas 0 < 3",
        "+ create pod web-00002 (rc/web) on n1: replicas 0 < 3",
    ]
    assert all(a.pod.owner == OWNER for a in p.creates())


def test_converged_state_plans_nothing() -> None:
    t = rc(2).template
    observed = [pod("web-a", t, OWNER), pod("web-b", t, OWNER, node="n2")]
    p = plan.diff(state(rc(2)), observed, context())
    assert p.empty and p.waiting == () and p.requeue_after is None


def test_scale_down_removes_least_valuable_first() -> None:
    t = rc(1).template
    crashed = container("app", "exited", exit_code=1, restarts=4, streak=4, finished_at=NOW - 1)
    observed = [
        pod("web-old", t, OWNER, created=NOW - 500),
        pod("web-new", t, OWNER, created=NOW - 10),
        pod("web-crashy", t, OWNER, app=crashed),
    ]
    p = plan.diff(state(rc(1)), observed, context())
    assert [a.name for a in p.deletes()] == ["web-crashy", "web-new"]


def test_rolling_update_creates_one_new_pod_before_removing_old() -> None:
    old = rc(2, "app:1").template
    observed = [pod("web-a", old, OWNER), pod("web-b", old, OWNER)]
    p = plan.diff(state(rc(2, "app:2")), observed, context())
    assert [type(a).__name__ for a in p.actions] == ["CreatePod"]
    assert p.creates()[0].reason == "rolling update"
    assert p.waiting == ("rc/web: rolling update waits for new pods to be ready",)


def test_rolling_update_removes_one_old_pod_once_a_new_one_is_ready() -> None:
    old, new = rc(2, "app:1").template, rc(2, "app:2").template
    observed = [pod("web-a", old, OWNER), pod("web-b", old, OWNER), pod("web-c", new, OWNER)]
    p = plan.diff(state(rc(2, "app:2")), observed, context())
    assert len(p.deletes()) == 1 and p.deletes()[0].reason == "template changed"
    assert p.creates() == ()


def test_rolling_update_never_drops_ready_count_below_replicas() -> None:
    old, new = rc(3, "app:1").template, rc(3, "app:2").template
    starting = container("app", "created")
    observed = [pod(f"web-{i}", old, OWNER) for i in "abc"] + [
        pod("web-n", new, OWNER, app=starting)
    ]
    p = plan.diff(state(rc(3, "app:2")), observed, context())
    assert p.deletes() == ()


def test_rolling_update_deletes_old_pods_that_are_not_ready_at_once() -> None:
    old = rc(2, "app:1").template
    broken = container("app", "exited", exit_code=1, finished_at=NOW - 1, streak=3)
    observed = [pod("web-a", old, OWNER), pod("web-b", old, OWNER, app=broken)]
    p = plan.diff(state(rc(2, "app:2")), observed, context())
    assert [a.name for a in p.deletes()] == ["web-b"]
    assert len(p.creates()) == 1


def test_replicas_zero_removes_everything() -> None:
    t = rc(0).template
    p = plan.diff(state(rc(0)), [pod("web-a", t, OWNER), pod("web-b", t, OWNER)], context())
    assert len(p.deletes()) == 2 and p.creates() == ()


def test_pods_of_an_rc_no_longer_declared_are_deleted() -> None:
    t = rc(1).template
    p = plan.diff(state(), [pod("web-a", t, OWNER)], context())
    assert lines(p) == ["- delete pod web-a on n1: no longer declared"]


def test_bare_pod_is_created_then_left_alone() -> None:
    bare = model.Pod("default", "db", template())
    assert lines(plan.diff(state(bare), [], context())) == ["+ create pod db on n1: declared"]
    assert plan.diff(state(bare), [pod("db", template())], context()).empty


def test_bare_pod_whose_spec_changed_is_replaced_delete_first() -> None:
    bare = model.Pod("default", "db", template("app:2"))
    p = plan.diff(state(bare), [pod("db", template("app:1"))], context())
    assert lines(p) == [
        "- delete pod db on n1: spec changed",
        "+ create pod db on n1: spec changed",
    ]


def test_pod_whose_pause_died_is_recreated() -> None:
    bare = model.Pod("default", "db", template())
    p = plan.diff(state(bare), [pod("db", template(), pause_state="exited")], context())
    assert lines(p) == [
        "- delete pod db on n1: pod sandbox is gone",
        "+ create pod db on n1: pod sandbox is gone",
    ]


def test_first_crash_restarts_at_once() -> None:
    bare = model.Pod("default", "db", template())
    crashed = container("app", "exited", exit_code=1, started_at=NOW - 3, finished_at=NOW - 2)
    p = plan.diff(state(bare), [pod("db", template(), app=crashed)], context())
    (restart,) = p.restarts()
    assert (restart.restarts, restart.streak, restart.old_id) == (1, 1, crashed.id)


@pytest.mark.parametrize(
    ("streak", "finished_ago", "acts", "requeue"),
    [
        (1, 9, False, 1.0),  # second restart waits 10 s
        (1, 10, True, None),
        (2, 15, False, 5.0),  # then 20 s
        (9, 299, False, 1.0),  # capped at 5 min
        (9, 300, True, None),
    ],
)
def test_crash_loop_backs_off_exponentially(
    streak: int, finished_ago: float, acts: bool, requeue: float | None
) -> None:
    bare = model.Pod("default", "db", template())
    crashed = container(
        "app",
        "exited",
        exit_code=1,
        streak=streak,
        started_at=NOW - finished_ago - 1,
        finished_at=NOW - finished_ago,
    )
    p = plan.diff(state(bare), [pod("db", template(), app=crashed)], context())
    assert bool(p.restarts()) is acts
    assert p.requeue_after == pytest.approx(requeue) if requeue else p.requeue_after is None


def test_backoff_resets_after_ten_minutes_of_clean_running() -> None:
    bare = model.Pod("default", "db", template())
    crashed = container(
        "app", "exited", exit_code=1, streak=6, started_at=NOW - 700, finished_at=NOW - 1
    )
    (restart,) = plan.diff(state(bare), [pod("db", template(), app=crashed)], context()).restarts()
    assert restart.streak == 1


@pytest.mark.parametrize(
    ("ran", "streak"),
    [
        (599.9, 7),  # just short of ten minutes: the streak goes on (and the back-off waits)
        (600.0, 1),  # exactly ten minutes: reset, restarted at once as a first crash
    ],
)
def test_backoff_reset_boundary_is_ten_minutes_of_running(ran: float, streak: int) -> None:
    bare = model.Pod("default", "db", template())
    crashed = container(
        "app", "exited", exit_code=1, streak=6, started_at=NOW - 1 - ran, finished_at=NOW - 1
    )
    p = plan.diff(state(bare), [pod("db", template(), app=crashed)], context())
    if streak == 1:
        (restart,) = p.restarts()
        assert restart.streak == 1
    else:
        assert p.restarts() == () and any("back-off" in w for w in p.waiting)


@pytest.mark.parametrize(
    ("policy", "code", "restarted"),
    [("Always", 0, True), ("OnFailure", 0, False), ("OnFailure", 2, True), ("Never", 2, False)],
)
def test_restart_policy_decides_which_exits_restart(
    policy: str, code: int, restarted: bool
) -> None:
    t = template(restart=policy)
    bare = model.Pod("default", "job", t)
    done = container("app", "exited", exit_code=code, finished_at=NOW - 1)
    p = plan.diff(state(bare), [pod("job", t, app=done)], context())
    assert bool(p.restarts()) is restarted


def test_missing_app_container_is_recreated_in_the_same_pod() -> None:
    bare = model.Pod("default", "db", template())
    observed = pod("db", template())
    gutted = observe.ObservedPod(**{**observed.__dict__, "containers": ()})
    (restart,) = plan.diff(state(bare), [gutted], context()).restarts()
    assert restart.reason == "container missing" and restart.pause_id == observed.pause.id  # type: ignore[union-attr]


def test_duplicate_bare_pods_keep_only_the_best() -> None:
    bare = model.Pod("default", "db", template())
    a = pod("db", template(), created=NOW - 500)
    b = observe.ObservedPod(**{**pod("db", template(), created=NOW - 5).__dict__, "uid": "uid-b"})
    p = plan.diff(state(bare), [a, b], context())
    assert [d.uid for d in p.deletes()] == ["uid-b"]


def test_node_selector_limits_placement_and_says_why_not() -> None:
    picky = model.Pod("default", "db", template(node_selector=(("disk", "ssd"),)))
    assert plan.diff(state(picky), [], context()).creates()[0].node == "n2"
    nowhere = model.Pod("default", "db", template(node_selector=(("disk", "nvme"),)))
    p = plan.diff(state(nowhere), [], context())
    assert p.empty
    assert p.waiting == (
        "pod db is unschedulable: 0/2 nodes are available: "
        "2 node(s) didn't match Pod's node affinity/selector.",
    )


def test_pods_go_only_to_ready_nodes() -> None:
    nodes = (schedule.Node("n1", ready=False), schedule.Node("n2"))
    p = plan.diff(state(rc(2)), [], context(nodes=nodes))
    assert {a.node for a in p.creates()} == {"n2"}


def test_revision_is_stamped_on_new_pods_only() -> None:
    t = rc(1).template
    p = plan.diff(state(rc(2)), [pod("web-a", t, OWNER)], context(revision="abc123"))
    assert [a.pod.revision for a in p.creates()] == ["abc123"]


def test_deletes_come_before_creates_and_restarts() -> None:
    bare = model.Pod("default", "db", template("app:2"))
    crashed = container("app", "exited", exit_code=1, finished_at=NOW - 1)
    observed = [pod("db", template("app:1")), pod("web-a", rc(1).template, OWNER, app=crashed)]
    p = plan.diff(state(bare, rc(2)), observed, context())
    kinds = [type(a).__name__ for a in p.actions]
    assert kinds == sorted(kinds, key=["DeletePod", "CreatePod", "RestartContainer"].index)
