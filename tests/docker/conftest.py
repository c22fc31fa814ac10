"""Fixtures for the docker tier: the local engine, and a namespace each test owns alone.

Every test works in a fresh namespace and only ever plans against the pods of that
namespace, so the pods of other users of this engine are never deleted as "undeclared".
Teardown removes exactly the containers, volumes and images carrying the test's namespace.
"""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
import pytest

from reconciler import driver, execute, model, observe, plan, schedule

from .workloads import BUSYBOX

ROOT = Path(__file__).resolve().parents[2]
TEST_LABEL = "io.podyard.test"  # on the unmanaged containers and images a test makes


@pytest.fixture(scope="session")
def engine() -> Iterator[docker.APIClient]:
    """The local engine, with the test image built; the tier is skipped when none answers."""
    api = docker.APIClient(version=driver.API_VERSION, timeout=120)
    try:
        api.ping()
    except Exception as e:  # pragma: no cover - depends on the machine
        pytest.skip(f"no Docker engine: {e}")
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

    def plan(self, desired: model.DesiredState) -> plan.Plan:
        ctx = plan.Context(now=time.time(), nodes=(schedule.Node(self.d.node),),
                           backoff=self.backoff)
        return plan.diff(desired, self.pods(), ctx)

    def apply(self, desired: model.DesiredState) -> tuple[plan.Plan, execute.Outcome]:
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

    def containers(self) -> list[dict[str, object]]:
        """Every container of the namespace, podyard's or not, running or not."""
        return list(self.api.containers(
            all=True, filters={"label": f"{observe.NAMESPACE}={self.namespace}"}
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
    """Remove what the test made, found by its namespace label and nothing else."""
    for label in (f"{observe.NAMESPACE}={namespace}", f"{TEST_LABEL}={namespace}"):
        for c in api.containers(all=True, filters={"label": label}):
            api.remove_container(c["Id"], force=True)
        for v in api.volumes(filters={"label": label}).get("Volumes") or ():
            api.remove_volume(v["Name"], force=True)
        for image in api.images(filters={"label": label}):
            api.remove_image(image["Id"], force=True)
