"""Fixtures for the docker tier: the local engine, and a namespace each test owns alone.

Every test works in a fresh namespace and only ever plans against the pods of that
namespace, so the pods of other users of this engine are never deleted as "undeclared".
Teardown removes exactly the containers, volumes and images carrying the test's namespace.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
import pytest

from reconciler import execute, labels, model, observe, plan
from reconciler.engine import client, driver
from reconciler.plan import actions, schedule

from ..support import SLEEPER as SLEEPER  # re-exported: tests import it from here
from ..support import rc_manifest as rc_manifest  # re-exported too
from . import daemon, services
from .workloads import BUSYBOX

ROOT = Path(__file__).resolve().parents[2]
TEST_LABEL = "io.podyard.test"  # on the unmanaged containers and images a test makes


@pytest.fixture(scope="session")
def engine() -> Iterator[docker.APIClient]:
    """The local engine, with the test image built; the tier fails when none answers."""
    problem = daemon.probe()
    if problem is not None:  # pragma: no cover - depends on the machine
        # A failure, not a skip: a missing install step must never pass as a green tier.
        pytest.fail(f"no Docker engine answers ({problem}); run `make docker` first",
                    pytrace=False)
    api = docker.APIClient(daemon.SOCKET_URL, version=client.API_VERSION, timeout=120)
    try:
        api.inspect_image(BUSYBOX)
    except docker.errors.ImageNotFound:
        subprocess.run(["bash", str(ROOT / "examples/images/build.sh")], check=True)
    yield api
    api.close()


@dataclass
class Space:
    """One test's namespace on the local node: converge, observe, and look at containers."""

    api: docker.APIClient
    d: driver.DockerDriver
    namespace: str
    backoff: plan.Backoff = field(default_factory=plan.Backoff)

    def pods(self) -> list[observe.ObservedPod]:
        """This namespace's pods, as the controller sees them."""
        return [p for p in self.d.list_pods() if p.namespace == self.namespace]

    def plan(self, desired: model.DesiredState) -> actions.Plan:  # `plan` here is this method
        ctx = plan.Context(now=time.time(), nodes=(schedule.Node(self.d.node),),
                           backoff=self.backoff)
        return plan.diff(desired, self.pods(), ctx)

    def apply(self, desired: model.DesiredState) -> tuple[actions.Plan, execute.Outcome]:
        """One pass: observe, plan, apply; fails the test if an action failed."""
        the_plan = self.plan(desired)
        outcome = execute.apply(the_plan, {self.d.node: self.d})
        assert not outcome.failed, [f"{r.action.describe()}: {r.error}" for r in outcome.failed]
        return the_plan, outcome

    def converge(self, desired: model.DesiredState, passes: int = 20) -> int:
        """Passes until one plans nothing and waits for nothing; how many acted."""
        for n in range(passes):
            the_plan, _ = self.apply(desired)
            if the_plan.empty and not the_plan.waiting:
                return n
            if the_plan.empty:
                time.sleep(min(the_plan.requeue_after or 0.2, 2.0))
        raise AssertionError(f"not converged after {passes} passes: {the_plan.waiting}")

    def containers(self) -> list[observe.ContainerJSON]:
        """Every container of the namespace, podyard's or not, running or not."""
        return list(self.api.containers(
            all=True, filters={"label": f"{labels.NAMESPACE}={self.namespace}"}
        ))

    def wait_for(self, predicate: object, timeout: float = 20.0) -> None:
        """Poll the engine until the predicate (no arguments) holds."""
        deadline = time.monotonic() + timeout
        while not predicate():  # type: ignore[operator]
            assert time.monotonic() < deadline, "timed out waiting"
            time.sleep(0.1)


@pytest.fixture
def space(engine: docker.APIClient) -> Iterator[Space]:
    namespace = f"t-{secrets.token_hex(4)}"
    d = driver.DockerDriver.local()
    yield Space(engine, d, namespace)
    d.close()
    cleanup(engine, namespace)


def cleanup(api: docker.APIClient, namespace: str) -> None:
    """Remove what the test made, found by its namespace label (or its scope's, which is
    named after it: the node agents and address claims) and nothing else; and the scope's
    Service chains."""
    labelled = (f"{labels.NAMESPACE}={namespace}", f"{TEST_LABEL}={namespace}",
                f"{labels.SCOPE}={namespace}")
    for label in labelled:
        for c in api.containers(all=True, filters={"label": label}):
            api.remove_container(c["Id"], force=True)
        for v in api.volumes(filters={"label": label}).get("Volumes") or ():
            api.remove_volume(v["Name"], force=True)
        for image in api.images(filters={"label": label}):
            api.remove_image(image["Id"], force=True)
    services.remove_chains(namespace)


# ---- the command line, in a scope of its own -----------------------------------------------

BIN = Path(sys.executable).parent


class Yard:
    """A manifest directory in Git, a scope, and ways to look at what runs in it."""

    def __init__(self, api: docker.APIClient, root: Path) -> None:
        self.api = api
        self.root = root
        self.namespace = f"w-{secrets.token_hex(4)}"
        self.scope = self.namespace
        self.file = root / "web.yaml"
        self.logs: list[Path] = []
        subprocess.run(["git", "init", "-q", str(root)], check=True)

    def write(self, replicas: int | str, image: str = BUSYBOX) -> None:
        tmp = self.file.with_suffix(".tmp")  # hidden from the loader: not .yaml
        tmp.write_text(rc_manifest(self.namespace, replicas, image))
        tmp.replace(self.file)

    def commit(self, message: str) -> None:
        env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
               "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
        subprocess.run(["git", "-C", str(self.root), "add", "-A"], check=True, env=env)
        subprocess.run(["git", "-C", str(self.root), "commit", "-qm", message], check=True, env=env)

    def reconcile(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "reconcile"), "--scope", self.scope, *args, str(self.root)],
            capture_output=True, text=True, timeout=timeout,
        )

    def watch(self, *args: str) -> subprocess.Popen[str]:
        log = self.root.parent / f"watch-{len(self.logs)}.log"
        self.logs.append(log)
        with log.open("w") as out:  # the child keeps its own copy of the descriptor
            return subprocess.Popen(
                [str(BIN / "reconcile"), "--watch", "--scope", self.scope, "--resync", "2",
                 *args, str(self.root)],
                stdout=out, stderr=subprocess.STDOUT, text=True,
            )

    def output(self) -> str:
        return "".join(log.read_text() for log in self.logs)

    def running_pods(self) -> list[observe.ContainerJSON]:
        """Running pause containers of the namespace: one per running pod."""
        return [
            c for c in self.api.containers(
                filters={"label": [f"{labels.NAMESPACE}={self.namespace}",
                                   f"{labels.CONTAINER}={labels.PAUSE}"]}
            )
        ]

    def app_containers(self, state: str = "running") -> list[observe.ContainerJSON]:
        return [
            c for c in self.api.containers(
                all=True,
                filters={"label": [f"{labels.NAMESPACE}={self.namespace}",
                                   f"{labels.CONTAINER}=app"]},
            ) if c["State"] == state
        ]

    def wait_for(self, predicate: Callable[[], bool], what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; output:\n{self.output()}")
            time.sleep(0.2)


@pytest.fixture
def yard(engine: docker.APIClient, tmp_path: Path) -> Iterator[Yard]:
    root = tmp_path / "manifests"
    root.mkdir()
    y = Yard(engine, root)
    yield y
    cleanup(engine, y.namespace)


