"""Every action type has its handler; nothing ever runs as some other action by default."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler import execute, model, plan
from reconciler.cli import console

pytestmark = pytest.mark.unit

POD = plan.PodIdentity(
    "default", "web-1", "u1", "", model.PodTemplate((), (), model.PodSpec(containers=())), ""
)
ACTIONS: list[plan.Action] = [
    plan.CreatePod("n1", POD, "declared"),
    plan.DeletePod("n1", "default", "web-1", "u1", (), "undeclared"),
    plan.RestartContainer("n1", POD, "p", "app", "old", 1, 1, "exited"),
]


class Recorder:
    """Records which driver method each action reached."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return lambda *args: self.calls.append(name)


@pytest.mark.parametrize(
    ("action", "method", "verb"),
    list(zip(ACTIONS, ["create_pod", "delete_pod", "restart_container"],
        ["created", "deleted", "restarted"], strict=True)),
)
def test_each_action_reaches_its_own_handler(action: plan.Action, method: str, verb: str) -> None:
    driver = Recorder()
    execute.perform(action, driver)
    assert driver.calls == [method]
    assert console.past_tense(action) == verb


class RenamePod:
    """An action type no handler knows."""

    node = "n1"


def test_an_unknown_action_type_is_refused_not_run_as_another() -> None:
    driver = Recorder()
    with pytest.raises(AssertionError):
        execute.perform(RenamePod(), driver)  # type: ignore[arg-type]
    with pytest.raises(AssertionError):
        console.past_tense(RenamePod())  # type: ignore[arg-type]
    assert driver.calls == []
