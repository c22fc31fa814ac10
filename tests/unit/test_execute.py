"""The executor: group order, failures isolated, per-node pools, reporting, graceful stop."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from reconciler import errors, execute, model, plan

pytestmark = pytest.mark.unit

TEMPLATE = model.PodTemplate(
    labels=(), annotations=(),
    spec=model.PodSpec(containers=(model.Container(name="app", image="app:1"),)),
)


def identity(name: str) -> plan.PodIdentity:
    return plan.PodIdentity("default", name, f"uid-{name}", "", TEMPLATE, "")


def create(name: str, node: str = "n1") -> plan.CreatePod:
    return plan.CreatePod(node, identity(name), "declared")


def delete(name: str, node: str = "n1") -> plan.DeletePod:
    return plan.DeletePod(node, "default", name, f"uid-{name}", (), "no longer declared")


def restart(name: str, node: str = "n1") -> plan.RestartContainer:
    return plan.RestartContainer(node, identity(name), "pause", "app", "old", 1, 1, "exited")


class FakeDriver:
    """Records calls; fails the pods named in `failing`; can hold each action on `hold`.

    `hold` runs while the action counts as running: a `threading.Barrier(n).wait` there
    forces n actions to be under way at once, whatever the scheduler does, and a broken
    barrier (timeout) fails the action instead of hanging the test.
    """

    def __init__(self, node: str, failing: set[str] | None = None,
                 hold: Callable[[], object] | None = None) -> None:
        self.node = node
        self.failing = failing or set()
        self.hold = hold
        self.calls: list[str] = []
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0

    def _do(self, verb: str, name: str) -> None:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        if self.hold is not None:
            self.hold()
        with self.lock:
            self.running -= 1
            self.calls.append(f"{verb} {name}")
        if name in self.failing:
            raise errors.Unreachable(f"{verb} {name} failed")

    def create_pod(self, pod: plan.PodIdentity) -> None:
        self._do("create", pod.name)

    def delete_pod(self, action: plan.DeletePod) -> None:
        self._do("delete", action.name)

    def restart_container(self, action: plan.RestartContainer) -> None:
        self._do("restart", action.pod.name)

    def __getattr__(self, name: str) -> Any:  # the rest of the Driver protocol is unused here
        raise AttributeError(name)


def run(the_plan: plan.Plan, *drivers: FakeDriver, **kw: Any) -> execute.Outcome:
    return execute.apply(the_plan, {d.node: d for d in drivers}, **kw)


def test_runs_deletes_then_creates_then_restarts() -> None:
    d = FakeDriver("n1")
    run(plan.Plan((restart("c"), create("b"), delete("a"))), d, parallelism=1)
    assert d.calls == ["delete a", "create b", "restart c"]


def test_a_failed_action_is_reported_and_the_others_still_run() -> None:
    d = FakeDriver("n1", failing={"b"})
    outcome = run(plan.Plan((create("a"), create("b"), create("c"))), d)
    assert sorted(d.calls) == ["create a", "create b", "create c"]
    assert [r.action.pod.name for r in outcome.failed] == ["b"]  # type: ignore[union-attr]
    assert isinstance(outcome.failed[0].error, errors.Unreachable)
    assert len(outcome.succeeded) == 2 and not outcome.complete


def test_parallelism_is_bounded_per_node() -> None:
    # Each action waits until three of its node run at once: all twelve can only pass if the
    # node's pool runs three together, and `peak` shows it never ran a fourth.
    n1, n2 = (FakeDriver(node, hold=threading.Barrier(3, timeout=10).wait)
              for node in ("n1", "n2"))
    actions = tuple(create(f"p{i}", node) for i in range(12) for node in ("n1", "n2"))
    outcome = run(plan.Plan(actions), n1, n2, parallelism=3)
    assert outcome.complete, [str(r.error) for r in outcome.failed]
    assert n1.peak == 3 and n2.peak == 3


def test_reports_each_result_as_it_happens_one_at_a_time() -> None:
    seen: list[execute.Result] = []
    inside = threading.Lock()

    def report(result: execute.Result) -> None:
        assert inside.acquire(blocking=False), "on_result called concurrently"
        seen.append(result)
        inside.release()

    outcome = run(plan.Plan(tuple(create(f"p{i}") for i in range(10))),
                  FakeDriver("n1", hold=functools.partial(time.sleep, 0.01)), on_result=report)
    assert seen == list(outcome.results) and len(seen) == 10
    assert all(r.seconds >= 0.01 for r in seen)


def test_a_stop_lets_running_actions_finish_and_starts_no_more() -> None:
    stop = threading.Event()
    # Neither of the first two actions ends before both have started: the stop, set as the
    # first one ends, finds exactly two under way, and each worker sees it before the next.
    d = FakeDriver("n1", hold=threading.Barrier(2, timeout=10).wait)

    def stop_after_first(result: execute.Result) -> None:
        stop.set()

    actions = tuple(create(f"p{i}") for i in range(6))
    outcome = run(plan.Plan(actions), d, parallelism=2, on_result=stop_after_first, stop=stop)
    assert [r.ok for r in outcome.results] == [True, True]  # both ran to their end
    assert len(outcome.skipped) == 4 and not outcome.complete


def test_an_unknown_node_fails_its_action_only() -> None:
    d = FakeDriver("n1")
    outcome = run(plan.Plan((create("a", node="gone"), create("b"))), d)
    assert d.calls == ["create b"]
    assert [type(r.error) for r in outcome.failed] == [errors.ClusterError]


def test_a_node_lost_mid_apply_is_not_waited_for() -> None:
    before = threading.active_count()
    release = threading.Event()
    n1, n2 = FakeDriver("n1"), FakeDriver("n2", hold=lambda: release.wait(10))
    seen: list[execute.Result] = []
    # n2 counts as lost as soon as its first call is under way, and that call hangs.
    the_plan = plan.Plan((delete("a", "n2"), create("b", "n2"), create("c", "n1")))
    try:
        outcome = run(the_plan, n1, n2, lost=lambda node: node == "n2" and n2.running > 0,
                      on_result=seen.append)
        assert n1.calls == ["create c"] and n2.calls == []  # the apply went on without n2
    finally:
        release.set()  # the hung call ends late: it is not reported a second time
    assert [type(r.action) for r in outcome.failed] == [plan.DeletePod, plan.CreatePod]
    assert all("n2 stopped answering" in str(r.error) for r in outcome.failed)
    deadline = time.monotonic() + 10
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert n2.calls == ["delete a"] and len(seen) == 3


@pytest.fixture(autouse=True)
def _no_threads_left() -> Iterator[None]:
    before = threading.active_count()
    yield
    assert threading.active_count() == before
