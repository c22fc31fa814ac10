"""Where a pod becomes containers: the exact create requests, checked without Docker."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler import labels, model, plan
from reconciler.engine import images, podspec

pytestmark = pytest.mark.unit

UID = "0123456789abcdef0123456789abcdef"
PAUSE_NAME = f"k8s_POD_web-1_default_{UID}_0"


def identity(*containers: model.Container, **spec: Any) -> plan.PodIdentity:
    template = model.PodTemplate(
        labels=(("app", "web"),),
        annotations=(),
        spec=model.PodSpec(containers=containers, **spec),
    )
    return plan.PodIdentity(
        "default", "web-1", UID, "ReplicationController/web", template, "abc123"
    )


def app_config(c: model.Container, **spec: Any) -> dict[str, Any]:
    pod = identity(c, **spec)
    return dict(podspec.app(pod, "node1", "default", c, restarts=0, streak=0).config)


@pytest.mark.parametrize(
    ("command", "args", "expected"),
    [
        (None, None, {}),  # the image's ENTRYPOINT and CMD
        (("sh", "-c"), None, {"Entrypoint": ["sh", "-c"]}),  # Docker drops the image's CMD too
        (None, ("echo", "hi"), {"Cmd": ["echo", "hi"]}),  # the image's ENTRYPOINT stays
        (("sh", "-c"), ("echo hi",), {"Entrypoint": ["sh", "-c"], "Cmd": ["echo hi"]}),
        ((), (), {"Entrypoint": [], "Cmd": []}),  # declared empty is still declared
    ],
)
def test_command_replaces_entrypoint_and_args_replace_cmd(
    command: tuple[str, ...] | None, args: tuple[str, ...] | None, expected: dict[str, Any]
) -> None:
    config = app_config(model.Container("app", "busybox", command=command, args=args))
    assert {k: config[k] for k in ("Entrypoint", "Cmd") if k in config} == expected


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ((), None),
        ((("A", "1"),), ["A=1"]),
        ((("B", "2"), ("A", "x=y")), ["B=2", "A=x=y"]),  # declared order, '=' in values kept
        ((("EMPTY", ""),), ["EMPTY="]),
    ],
)
def test_env_is_passed_in_declared_order(
    env: tuple[tuple[str, str], ...], expected: list[str] | None
) -> None:
    assert app_config(model.Container("app", "busybox", env=env)).get("Env") == expected


def test_working_dir_is_set_only_when_declared() -> None:
    assert "WorkingDir" not in app_config(model.Container("app", "busybox"))
    assert app_config(model.Container("app", "busybox", working_dir="/srv"))["WorkingDir"] == "/srv"


@pytest.mark.parametrize(
    ("ports", "exposed", "bindings"),
    [
        ((model.ContainerPort(80),), None, None),  # a containerPort alone publishes nothing
        (
            (model.ContainerPort(80, host_port=8080),),
            {"80/tcp": {}},
            {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]},
        ),
        (
            (model.ContainerPort(53, protocol="UDP", host_port=5353), model.ContainerPort(9000)),
            {"53/udp": {}},
            {"53/udp": [{"HostIp": "", "HostPort": "5353"}]},
        ),
    ],
)
def test_host_ports_are_published_on_the_sandbox_only(
    ports: tuple[model.ContainerPort, ...], exposed: Any, bindings: Any
) -> None:
    c = model.Container("app", "busybox", ports=ports)
    pod = identity(c)
    pause = podspec.pause(pod, "node1", "default", "podyard/pause:1").config
    assert pause.get("ExposedPorts") == exposed
    assert pause["HostConfig"].get("PortBindings") == bindings
    app = app_config(c)
    assert "ExposedPorts" not in app and "PortBindings" not in app["HostConfig"]


def test_app_containers_join_the_sandbox_by_name() -> None:
    c = model.Container("app", "busybox")
    specs = podspec.pod(identity(c), "node1", "default", "podyard/pause:1")
    assert specs.pause.name == PAUSE_NAME
    assert specs.pause.config["HostConfig"] == {
        "NetworkMode": "default", "IpcMode": "shareable", **podspec.HARDENING,
    }
    assert specs.pause.config["Hostname"] == "web-1"
    [app] = specs.apps
    assert app.name == f"k8s_app_web-1_default_{UID}_0"
    assert app.config["HostConfig"]["NetworkMode"] == f"container:{PAUSE_NAME}"
    assert app.config["HostConfig"]["IpcMode"] == f"container:{PAUSE_NAME}"


def test_a_restarted_container_is_named_after_its_attempt() -> None:
    c = model.Container("app", "busybox")
    spec = podspec.app(identity(c), "node1", "default", c, restarts=3, streak=2)
    assert spec.name == f"k8s_app_web-1_default_{UID}_3"
    assert spec.config["Labels"][labels.RESTARTS] == "3"
    assert spec.config["Labels"][labels.STREAK] == "2"


SHARED = model.Volume("shared")
HOST = model.Volume("logs", host_path="/var/log/app")


@pytest.mark.parametrize(
    ("mounts", "binds"),
    [
        ((), None),
        (
            (model.VolumeMount("shared", "/data"),),
            [f"podyard_{UID}_shared:/data:rw,nocopy"],  # an emptyDir starts empty
        ),
        (
            (model.VolumeMount("logs", "/logs", read_only=True),),
            ["/var/log/app:/logs:ro"],
        ),
        (
            (model.VolumeMount("shared", "/a"), model.VolumeMount("shared", "/b")),
            [f"podyard_{UID}_shared:/a:rw,nocopy", f"podyard_{UID}_shared:/b:rw,nocopy"],
        ),
        (  # one volume at two paths is bound at both, each with its own mode
            (model.VolumeMount("logs", "/a", read_only=True), model.VolumeMount("logs", "/b")),
            ["/var/log/app:/a:ro", "/var/log/app:/b:rw"],
        ),
    ],
)
def test_volume_mounts_become_binds(
    mounts: tuple[model.VolumeMount, ...], binds: list[str] | None
) -> None:
    c = model.Container("app", "busybox", volume_mounts=mounts)
    config = app_config(c, volumes=(SHARED, HOST))
    assert config["HostConfig"].get("Binds") == binds


def test_only_empty_dirs_are_created_as_labelled_volumes() -> None:
    c = model.Container("app", "busybox")
    specs = podspec.pod(identity(c, volumes=(SHARED, HOST)), "node1", "default", "pause")
    [volume] = specs.volumes
    assert volume.name == f"podyard_{UID}_shared"
    assert dict(volume.labels) == {
        labels.MANAGED: "true", labels.UID: UID,
        labels.NAMESPACE: "default", labels.POD: "web-1",
    }


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        (model.Resources(), {}),
        (model.Resources(cpu_limit=500), {"NanoCpus": 500_000_000}),
        (model.Resources(cpu_request=250), {"CpuShares": 256}),
        (model.Resources(cpu_request=1), {"CpuShares": 2}),  # the kernel's minimum share
        (model.Resources(memory_limit=64 * 2**20), {"Memory": 64 * 2**20}),
        # A memory request reserves nothing on Docker: only the scheduler reads it.
        (model.Resources(memory_request=32 * 2**20), {}),
    ],
)
def test_limits_and_requests_map_as_the_kubelet_maps_them(
    resources: model.Resources, expected: dict[str, int]
) -> None:
    host_config = app_config(model.Container("app", "busybox", resources=resources))["HostConfig"]
    others = {"NetworkMode", "IpcMode", *podspec.HARDENING}
    assert {k: v for k, v in host_config.items() if k not in others} == expected


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("SecurityOpt", ["no-new-privileges"]),  # setuid binaries gain nothing
        ("PidsLimit", podspec.PIDS_LIMIT),  # a fork bomb stays in its container
        ("CapDrop", ["NET_RAW"]),  # Docker's defaults less NET_RAW, as Kubernetes' restricted
    ],
)
def test_every_container_and_the_sandbox_are_hardened(key: str, value: Any) -> None:
    c = model.Container("app", "busybox", resources=model.Resources(memory_limit=2**26))
    specs = podspec.pod(identity(c), "node1", "default", "podyard/pause:1")
    restarted = podspec.app(identity(c), "node1", "default", c, restarts=1, streak=1)
    for spec in (specs.pause, *specs.apps, restarted):
        assert spec.config["HostConfig"][key] == value, spec.name
    assert "CapAdd" not in specs.apps[0].config["HostConfig"]


def test_the_pids_limit_is_a_named_bound_well_above_a_real_service() -> None:
    assert 1024 <= podspec.PIDS_LIMIT <= 32768


def test_hardening_lists_are_not_shared_between_requests() -> None:
    c = model.Container("app", "busybox")
    first = podspec.app(identity(c), "node1", "default", c, restarts=0, streak=0)
    first.config["HostConfig"]["CapDrop"].append("CHOWN")
    again = podspec.app(identity(c), "node1", "default", c, restarts=0, streak=0)
    assert again.config["HostConfig"]["CapDrop"] == ["NET_RAW"]


def test_the_grace_period_is_the_stop_timeout_and_a_label() -> None:
    c = model.Container("app", "busybox")
    pod = identity(c, termination_grace_period_seconds=45)
    specs = podspec.pod(pod, "node1", "default", "podyard/pause:1")
    assert specs.apps[0].config["StopTimeout"] == 45
    assert specs.apps[0].config["Labels"][labels.GRACE] == "45"
    assert specs.pause.config["StopTimeout"] == podspec.PAUSE_STOP_SECONDS


def test_labels_carry_the_pod_and_read_back_as_written() -> None:
    c = model.Container("app", "busybox")
    pod = identity(c)
    specs = podspec.pod(pod, "node1", "team-a", "podyard/pause:1")
    pause_labels = specs.pause.config["Labels"]
    assert pause_labels == {
        labels.MANAGED: "true",
        labels.SCOPE: "team-a",
        labels.NAMESPACE: "default",
        labels.POD: "web-1",
        labels.UID: UID,
        labels.CONTAINER: labels.PAUSE,
        labels.OWNER: "ReplicationController/web",
        labels.TEMPLATE_HASH: pod.template.hash,
        labels.REVISION: "abc123",
        labels.POD_LABELS: '{"app": "web"}',
        labels.NODE: "node1",
        labels.GRACE: "30",
        labels.REQUESTS: "cpu=0,memory=0",
    }
    app_labels = specs.apps[0].config["Labels"]
    assert app_labels.keys() - pause_labels.keys() == {labels.RESTARTS, labels.STREAK}
    assert labels.decode_pod(app_labels, "node1") == podspec.stamp(pod, "node1", "team-a")
    assert labels.decode_container(app_labels) == labels.ContainerStamp("app", 0, 0)


def test_every_label_written_is_in_the_vocabulary() -> None:
    c = model.Container("app", "busybox")
    specs = podspec.pod(identity(c), "node1", "default", "podyard/pause:1")
    written = set(specs.pause.config["Labels"]) | set(specs.apps[0].config["Labels"])
    vocabulary = {v for k, v in vars(labels).items() if k.isupper() and isinstance(v, str)}
    assert written <= vocabulary


@pytest.mark.parametrize(
    ("policy", "present", "pulled_ago", "decision"),
    [
        ("Always", False, None, images.PULL),
        ("Always", True, None, images.PULL),  # Always pulls even when present
        ("Always", True, 5.0, images.USE),  # the pods of one rollout share a pull
        ("Always", True, images.PULL_REUSE_SECONDS + 1, images.PULL),
        ("IfNotPresent", True, None, images.USE),
        ("IfNotPresent", False, None, images.PULL),
        ("Never", True, None, images.USE),
        ("Never", False, None, images.REFUSE),
    ],
)
def test_pull_policy_decides_as_the_kubelet_does(
    policy: str, present: bool, pulled_ago: float | None, decision: str
) -> None:
    assert images.pull_decision(policy, present=present, pulled_ago=pulled_ago) == decision


def test_the_same_pod_gives_the_same_requests() -> None:
    c = model.Container("app", "busybox", env=(("A", "1"),))
    first = podspec.pod(identity(c), "node1", "default", "p").as_dict()
    assert podspec.pod(identity(c), "node1", "default", "p").as_dict() == first


@pytest.mark.parametrize(
    ("containers", "label"),
    [
        ((model.Container("app", "busybox"),), "cpu=0,memory=0"),
        (
            (
                model.Container(
                    "a", "busybox", resources=model.Resources(cpu_request=250, memory_request=2**26)
                ),
                model.Container("b", "busybox", resources=model.Resources(cpu_request=100)),
            ),
            "cpu=350,memory=67108864",
        ),
        (  # a limit without a request requests the limit, as the API server defaults it
            (
                model.Container(
                    "app",
                    "busybox",
                    resources=model.build_resources({"limits": {"cpu": "1", "memory": "1Gi"}}),
                ),
            ),
            "cpu=1000,memory=1073741824",
        ),
    ],
)
def test_every_container_carries_the_pods_summed_requests(
    containers: tuple[model.Container, ...], label: str
) -> None:
    specs = podspec.pod(identity(*containers), "node1", "default", "podyard/pause:1")
    for spec in (specs.pause, *specs.apps):
        assert spec.config["Labels"][labels.REQUESTS] == label
    read = labels.decode_pod(specs.pause.config["Labels"], "node1").requests
    assert read == identity(*containers).template.spec.requests
