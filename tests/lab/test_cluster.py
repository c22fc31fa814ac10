"""The provisioned lab works as a cluster: engines, TLS API, pod network, registry, controller."""

from __future__ import annotations

import socket
import ssl
import time
import uuid
from collections.abc import Iterator

import docker
import pytest

from .engine_api import engine_version
from .hosts import Lab
from .operate import push, wait_until

pytestmark = pytest.mark.lab

# Every container a test starts carries this label, so that it is removed whatever happens.
TEST_LABEL = "io.podyard.lab-test"


@pytest.fixture
def engines(lab: Lab) -> Iterator[dict[str, docker.DockerClient]]:
    """A TLS client per node; removes the test's containers afterwards."""
    clients = {node: lab.engine(node) for node in lab.nodes}
    yield clients
    for client in clients.values():
        for container in client.containers.list(all=True, filters={"label": TEST_LABEL}):
            container.remove(force=True)
        client.close()


def test_docker_is_active_and_enabled_on_every_host(lab: Lab) -> None:
    for host in lab.masters + lab.nodes:
        assert lab.ssh(host, "systemctl is-active docker").strip() == "active", host
        assert lab.ssh(host, "systemctl is-enabled docker").strip() == "enabled", host


def test_tls_api_answers_a_client_with_the_cluster_certificate(lab: Lab) -> None:
    for node in lab.nodes:
        client = lab.engine(node)
        try:
            assert client.version()["ApiVersion"]
        finally:
            client.close()


def test_tls_api_refuses_a_client_without_the_cluster_certificate(lab: Lab) -> None:
    for node in lab.nodes:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            engine_version(lab.addresses[node], None)


def test_plain_tcp_port_2375_is_closed(lab: Lab) -> None:
    for host in lab.masters + lab.nodes:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((lab.addresses[host], 2375), timeout=10).close()


def test_each_node_engine_uses_its_pod_subnet(
    lab: Lab, engines: dict[str, docker.DockerClient]
) -> None:
    for node, client in engines.items():
        bridge = client.networks.get("bridge")
        subnets = [config["Subnet"] for config in bridge.attrs["IPAM"]["Config"]]
        assert subnets == [lab.pod_subnets[node]], node


def test_registry_serves_images_to_every_node(
    lab: Lab, engines: dict[str, docker.DockerClient]
) -> None:
    for node, client in engines.items():
        for repository in ("podyard/busybox", "podyard/pause"):
            image = client.images.pull(f"{lab.registry}/{repository}", tag="1")
            assert image.id, f"{node}: {repository}"


def test_pod_on_one_node_reaches_pod_on_another_by_its_ip(
    lab: Lab, engines: dict[str, docker.DockerClient]
) -> None:
    first, second = lab.nodes[:2]
    image = f"{lab.registry}/podyard/busybox:1"
    token = uuid.uuid4().hex
    server = engines[second].containers.run(
        image,
        ["sh", "-c", f"mkdir /www && echo {token} > /www/index.html && httpd -f -p 8080 -h /www"],
        detach=True,
        labels={TEST_LABEL: "server"},
    )
    server.reload()
    server_ip = server.attrs["NetworkSettings"]["IPAddress"]
    assert server_ip.startswith(lab.pod_subnets[second].rsplit(".", 2)[0])
    deadline = time.monotonic() + 30
    # (busybox's own `wget -T` crashes; `timeout` bounds each try instead.)
    while True:
        output = engines[first].containers.run(
            image,
            ["sh", "-c", f"timeout 5 wget -q -O - http://{server_ip}:8080/ || true"],
            labels={TEST_LABEL: "client"},
            remove=True,
        )
        if token in output.decode():
            break
        assert time.monotonic() < deadline, f"{first} cannot reach {server_ip} on {second}"
        time.sleep(1)


def test_controller_unit_is_active_on_the_master(lab: Lab) -> None:
    master = lab.masters[0]
    assert lab.ssh(master, "systemctl is-enabled podyard-controller").strip() == "enabled"
    state = lab.ssh(master, "systemctl is-active podyard-controller", check=False).strip()
    journal = lab.ssh(master, "journalctl -u podyard-controller -n 20 --no-pager", check=False)
    assert state == "active", f"podyard-controller is {state}:\n{journal}"


def test_git_push_lands_in_the_controllers_clone(lab: Lab) -> None:
    master = lab.masters[0]
    name = f"lab-push-{uuid.uuid4().hex[:8]}"
    clone = "/var/lib/podyard/manifests"

    def clone_at(commit: str) -> bool:
        head = lab.ssh(master, f"sudo -u podyard git -C {clone} rev-parse HEAD", check=False)
        return head.strip() == commit

    commit = push(lab, **{name: f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n"})
    wait_until("the push in the controller's clone", lambda: clone_at(commit), timeout=30)
    assert name in lab.ssh(master, f"cat {clone}/{name}.yaml")
    # Deleting the file in Git deletes it in the clone.
    commit = push(lab)
    wait_until("the deletion in the controller's clone", lambda: clone_at(commit), timeout=30)
    listing = lab.ssh(master, f"ls {clone}")
    assert f"{name}.yaml" not in listing, listing
