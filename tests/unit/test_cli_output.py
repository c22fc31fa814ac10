"""The command line's pure parts: kubectl-style formatting and error-to-exit-code mapping."""

from __future__ import annotations

import io
from typing import Any

import pytest

from reconciler import errors, observe
from reconciler.cli import console, podyard, reconcile, tables
from reconciler.engine import driver

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (59, "59s"), (60, "1m"), (7199, "119m"), (7200, "2h"), (172800, "2d")],
)
def test_age_reads_like_kubectl(seconds: float, text: str) -> None:
    assert tables.age(seconds) == text


def test_table_pads_columns_like_kubectl() -> None:
    out = tables.table([["NAME", "READY"], ["web-abcde", "1/1"], ["db", "0/2"]])
    assert out.splitlines() == ["NAME        READY", "web-abcde   1/1", "db          0/2"]


def container(state: str, **kw: object) -> observe.ObservedContainer:
    return observe.ObservedContainer(
        id="c",
        name="app",
        docker_name="x",
        image="i",
        state=state,
        created=0,
        **kw,  # type: ignore[arg-type]
    )


def pod(*apps: observe.ObservedContainer, pause: str = "running") -> observe.ObservedPod:
    return observe.ObservedPod(
        node="n1",
        namespace="default",
        name="p",
        uid="u",
        owner="",
        template_hash="h",
        revision="",
        labels=(),
        pause=container(pause),
        containers=apps,
    )


@pytest.mark.parametrize(
    ("the_pod", "expected"),
    [
        (pod(container("running")), "Running"),
        (pod(container("created")), "ContainerCreating"),
        (pod(container("exited", exit_code=1, streak=1)), "Error"),
        (pod(container("exited", exit_code=1, streak=3)), "CrashLoopBackOff"),
        (pod(container("exited", exit_code=0)), "Completed"),
        (pod(container("exited", exit_code=137, oom_killed=True)), "OOMKilled"),
        (pod(container("running"), pause="exited"), "SandboxDied"),
    ],
)
def test_pod_status_uses_kubectl_words(the_pod: observe.ObservedPod, expected: str) -> None:
    assert podyard.pod_status(the_pod) == expected


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        (
            errors.ManifestError([errors.Problem("a.yaml", 3, "spec.replicas", "must be >= 0")]),
            1,
            "a.yaml:3: spec.replicas: must be >= 0",
        ),
        (errors.ClusterError("node1: TLS handshake failed"), 3, "node1: TLS handshake failed"),
        (errors.Unreachable("engine not answering"), 3, "engine not answering"),
        (RuntimeError("boom"), 4, "internal error: RuntimeError: boom"),
    ],
)
def test_every_failure_is_one_clear_line_and_an_exit_code(
    error: Exception, code: int, message: str
) -> None:
    err = io.StringIO()
    out = console.Console(out=io.StringIO(), err=err)

    def fail() -> int:
        raise error

    assert console.guard(fail, out) == code
    assert message in err.getvalue()
    assert "Traceback" not in err.getvalue()


def test_help_explains_modes_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        reconcile.reconcile_parser().parse_args(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for word in ("--validate", "--dry-run", "--watch", "--committed", "exit codes"):
        assert word in text


class _Node:
    def __init__(self, name: str, up: bool) -> None:
        self.node, self.up = name, up

    def probe(self) -> None:
        if not self.up:
            raise errors.Unreachable(f"ping on {self.node}: engine unreachable")

    def list_pods(self) -> tuple[observe.ObservedPod, ...]:
        self.probe()
        return (pod(container("running")),)

    def __getattr__(self, name: str) -> Any:  # the rest of the Driver protocol: never called
        raise AttributeError(name)


def test_get_lists_the_nodes_that_answer_and_names_those_that_do_not() -> None:
    err = io.StringIO()
    out = console.Console(out=io.StringIO(), err=err)
    drivers: dict[str, driver.Driver] = {"n1": _Node("n1", True), "n2": _Node("n2", False)}
    pods = podyard._list_reachable(drivers, out)
    assert len(pods) == 1
    assert "node n2 is not answering" in err.getvalue()


def test_get_fails_when_no_node_answers() -> None:
    out = console.Console(out=io.StringIO(), err=io.StringIO())
    with pytest.raises(errors.Unreachable):
        podyard._list_reachable({"n1": _Node("n1", False)}, out)
