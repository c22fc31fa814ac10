"""A pod spec reaches the engine as the kubelet would set it up on Docker."""

from __future__ import annotations

import io
import socket
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import docker
import pytest

from reconciler import errors, labels, model, observe, plan
from reconciler.engine import driver, podspec

from .conftest import TEST_LABEL, Space
from .workloads import BUSYBOX, bare, container, template

pytestmark = pytest.mark.docker


def logs(space: Space, pod: observe.ObservedPod, name: str) -> str:
    c = pod.container(name)
    assert c is not None
    return b"".join(space.d.logs(c.id)).decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_containers_of_a_pod_share_localhost_and_an_empty_dir(space: Space) -> None:
    shared = (model.VolumeMount("shared", "/shared"),)
    serve = "echo hello > /shared/msg; exec httpd -f -p 8080 -h /shared"
    web = container("web", ("sh", "-c", serve), volume_mounts=shared)
    reader = container("reader", ("sh", "-c",
        "until wget -qO- localhost:8080/msg; do sleep 0.2; done; cat /shared/msg; "
        "trap 'exit 0' TERM; sleep 3600 & wait"), volume_mounts=shared)
    space.converge(bare(space.namespace, template(web, reader, volumes=(model.Volume("shared"),))))
    [pod] = space.pods()
    space.wait_for(lambda: logs(space, pod, "reader").count("hello") == 2)

    volumes = space.api.volumes(filters={"label": f"{labels.UID}={pod.uid}"})["Volumes"]
    assert [v["Name"] for v in volumes] == [podspec.volume_name(pod.uid, "shared")]
    space.converge(model.DesiredState())
    assert space.api.volumes(filters={"label": f"{labels.UID}={pod.uid}"})["Volumes"] in ([], None)


def test_host_port_is_published_on_the_sandbox(space: Space) -> None:
    port = free_port()
    serve = "mkdir /www; echo up > /www/index.html; exec httpd -f -p 80 -h /www"
    web = container("web", ("sh", "-c", serve),
                    ports=(model.ContainerPort(80, host_port=port),))
    space.converge(bare(space.namespace, template(web)))
    [pod] = space.pods()
    assert pod.pause is not None
    bindings = space.d.inspect(pod.pause.id)["HostConfig"]["PortBindings"]
    assert bindings == {"80/tcp": [{"HostIp": "", "HostPort": str(port)}]}
    space.wait_for(lambda: _get(f"http://127.0.0.1:{port}/index.html") == "up\n")


def _get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return str(response.read().decode())
    except OSError:
        return ""


def test_limits_env_and_working_dir_reach_the_engine(space: Space) -> None:
    app = container(
        "app", ("sh", "-c", "echo $GREETING; pwd"), env=(("GREETING", "hi there"),),
        working_dir="/tmp",
        resources=model.Resources(cpu_request=250, cpu_limit=500, memory_limit=64 * 2**20),
    )
    space.converge(bare(space.namespace, template(app, restart_policy="Never")))
    [pod] = space.pods()
    space.wait_for(lambda: logs(space, pod, "app") == "hi there\n/tmp\n")
    c = pod.container("app")
    assert c is not None
    host = space.d.inspect(c.id)["HostConfig"]
    assert (host["NanoCpus"], host["CpuShares"], host["Memory"]) == (500_000_000, 256, 64 * 2**20)
    assert host["NetworkMode"] == f"container:{pod.pause.id}"  # type: ignore[union-attr]
    assert host["IpcMode"] == f"container:{pod.pause.id}"  # type: ignore[union-attr]


@pytest.fixture
def entrypoint_image(space: Space, engine: docker.APIClient) -> Iterator[str]:
    """An image with both an ENTRYPOINT and a CMD, to tell command from args."""
    tag = f"podyard/entrypoint-test:{space.namespace}"
    dockerfile = (f'FROM {BUSYBOX}\nLABEL {TEST_LABEL}={space.namespace}\n'
                  'ENTRYPOINT ["echo", "entrypoint"]\nCMD ["cmd"]\n')
    for _ in engine.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True):
        pass
    yield tag


def test_command_replaces_entrypoint_and_args_replace_cmd(
    space: Space, entrypoint_image: str
) -> None:
    def variant(name: str, command: tuple[str, ...] | None,
                args: tuple[str, ...] | None) -> model.Container:
        return container(name, command, args=args, image=entrypoint_image)

    space.converge(bare(space.namespace, template(
        variant("neither", None, None),
        variant("args", None, ("arg",)),
        variant("command", ("echo", "command"), None),
        variant("both", ("echo", "command"), ("arg",)),
        restart_policy="Never",
    )))
    [pod] = space.pods()
    expected = {"neither": "entrypoint cmd\n", "args": "entrypoint arg\n",
                "command": "command\n", "both": "command arg\n"}
    space.wait_for(lambda: {n: logs(space, pod, n) for n in expected} == expected)


def test_missing_image_with_never_fails_clearly_and_creates_nothing(space: Space) -> None:
    missing = container(image="podyard/does-not-exist:1", image_pull_policy="Never")
    identity = plan.PodIdentity(space.namespace, "p", plan.random_uid(), "", template(missing), "")
    with pytest.raises(errors.Refused, match="imagePullPolicy is Never"):
        space.d.create_pod(identity)
    assert space.containers() == []


def test_always_reports_a_failed_pull(space: Space) -> None:
    always = container(image=BUSYBOX, image_pull_policy="Always")
    identity = plan.PodIdentity(space.namespace, "p", plan.random_uid(), "", template(always), "")
    with pytest.raises(errors.PodyardError, match="pull image"):
        space.d.create_pod(identity)
    assert space.containers() == []


def test_builds_a_missing_pause_image_that_stops_at_once(
    space: Space, engine: docker.APIClient
) -> None:
    name = f"podyard/pause-test:{space.namespace}"
    d = driver.DockerDriver.local(pause_image=name)
    try:
        assert d.ensure_pause_image() == name
        image = engine.inspect_image(name)
        assert image["Size"] < 4 * 2**20
        assert image["Config"]["Entrypoint"][0] == "/bin/busybox"
        cid = engine.create_container(name, labels={TEST_LABEL: space.namespace})["Id"]
        engine.start(cid)
        # Exits on SIGTERM: `docker stop` with a 10 s timeout returns well before it.
        started = time.monotonic()
        engine.stop(cid, timeout=10)
        assert time.monotonic() - started < 2
        assert engine.inspect_container(cid)["State"]["ExitCode"] == 0
    finally:
        d.close()
        # By the test's label, not by image: the build is reproducible, so the test image can
        # be the very image every pod's sandbox runs.
        for c in engine.containers(all=True, filters={"label": f"{TEST_LABEL}={space.namespace}"}):
            engine.remove_container(c["Id"], force=True)
        engine.remove_image(name)


def test_created_containers_are_exactly_their_podspec(space: Space) -> None:
    """What podspec says (and `--dry-run -o yaml` prints) is what the engine holds."""
    app = container(
        "app", ("sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"), args=("ignored",),
        env=(("A", "1"),), working_dir="/tmp",
        volume_mounts=(model.VolumeMount("scratch", "/scratch"),),
        resources=model.Resources(cpu_request=100, cpu_limit=200, memory_limit=32 * 2**20),
    )
    desired = bare(space.namespace, template(app, volumes=(model.Volume("scratch"),)))
    space.converge(desired)
    [pod] = space.pods()
    identity = plan.PodIdentity(
        pod.namespace, pod.name, pod.uid, "", desired.pods[0].template, pod.revision
    )
    specs = podspec.pod(identity, space.d.node, space.d.scope or "", space.d.pause_image)
    assert pod.pause is not None
    for spec, found in ((specs.pause, pod.pause), (specs.apps[0], pod.containers[0])):
        held = space.d.inspect(found.id)
        assert held["Name"] == f"/{spec.name}"
        asked = dict(spec.config)
        host_config = dict(asked.pop("HostConfig"))
        if found is not pod.pause:  # the engine resolves the sandbox's name to its id
            joined = f"container:{pod.pause.id}"
            assert host_config.pop("NetworkMode") == f"container:{specs.pause.name}"
            assert held["HostConfig"].pop("NetworkMode") == joined
            assert held["HostConfig"]["IpcMode"] in (joined, host_config["IpcMode"])
            del host_config["IpcMode"]
        assert_held(held["HostConfig"], host_config)
        assert_held(held["Config"], asked)


def assert_held(held: dict[str, Any], asked: dict[str, Any]) -> None:
    """Every key the request set is held with the value asked (the engine adds defaults)."""
    for key, value in asked.items():
        if key == "Labels":  # the image's own labels are merged in
            assert value.items() <= held[key].items(), key
        elif key == "Env":  # so is the image's own environment, after the pod's
            assert held[key][: len(value)] == value, (key, held[key], value)
        else:
            assert held[key] == value, (key, held[key], value)
