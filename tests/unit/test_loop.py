"""The controller's pass logic with a stand-in for the engines and an injected clock.

The engines themselves are covered by the docker and lab tiers; here only what the loop
decides: when a silent node fails the pass, when its pods are given up, what empties a scope.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from reconciler import errors, execute, model, observe, plan
from reconciler.cluster import config
from reconciler.control import passes

pytestmark = pytest.mark.unit


class Engine:
    """A node that either answers with a fixed list of pods or does not answer at all."""

    def __init__(self, name: str, pods: tuple[observe.ObservedPod, ...] = ()) -> None:
        self.node = name
        self.pods = pods
        self.down = False

    def list_pods(self) -> tuple[observe.ObservedPod, ...]:
        if self.down:
            raise errors.Unreachable(f"{self.node}: connection refused")
        return self.pods

    def invalidate_cache(self) -> None:
        pass

    def close(self) -> None:
        pass


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
        passes.Options(node_grace=20),
        notes,
        clock=lambda: now[0],  # type: ignore[arg-type]
    )
    yield controller, engines, now, notes
    controller.close()


def test_a_silent_node_fails_the_pass_during_its_grace_period(setup: Any) -> None:
    controller, engines, now, _ = setup
    engines["n2"].down = True
    with pytest.raises(errors.Unreachable, match="node n2"):
        controller.observe_pods()
    now[0] += 19
    with pytest.raises(errors.Unreachable):
        controller.observe_pods()


def test_after_the_grace_period_a_lost_nodes_pods_are_replaced_elsewhere(setup: Any) -> None:
    controller, engines, now, notes = setup
    engines["n2"].down = True
    with pytest.raises(errors.Unreachable):
        controller.observe_pods()
    now[0] += 20
    observed = controller.observe_pods()
    assert [p.name for p in observed] == ["web-a"]
    assert any("node n2 is NotReady" in line for line in notes.lines)
    the_plan = controller.plan(model.DesiredState(controllers=(WEB,)), observed)
    assert [(type(a).__name__, a.node) for a in the_plan.actions] == [("CreatePod", "n1")]


def test_a_node_that_answers_again_is_ready_again(setup: Any) -> None:
    controller, engines, now, notes = setup
    engines["n2"].down = True
    now[0] += 30
    with pytest.raises(errors.Unreachable):
        controller.observe_pods()
    engines["n2"].down = False
    assert len(controller.observe_pods()) == 2
    assert "node n2 is answering again" in notes.lines
    assert controller.plan(model.DesiredState(controllers=(WEB,)), controller.observe_pods()).empty


def test_the_scheduler_sees_a_silent_node_as_not_ready(setup: Any) -> None:
    controller, engines, _, _ = setup
    engines["n2"].down = True
    with pytest.raises(errors.Unreachable):
        controller.observe_pods()
    view = controller.scheduling_view()
    assert [(n.name, n.ready) for n in view] == [("n1", True), ("n2", False)]


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
        engines,  # type: ignore[arg-type]
        passes.Options(allow_empty=True),
        Notes(),
    )
    try:
        the_plan = controller.plan(model.DesiredState(), controller.observe_pods())
        assert [type(a) for a in the_plan.actions] == [plan.DeletePod]
    finally:
        controller.close()
