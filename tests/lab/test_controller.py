"""The controller on the master, end to end: a push to its repository runs pods on the nodes."""

from __future__ import annotations

import ipaddress
import subprocess
import time

import pytest

from .hosts import REPO, Lab

pytestmark = pytest.mark.lab

GET_PODS = (
    "sudo -u podyard /opt/podyard/venv/bin/podyard --cluster /etc/podyard/cluster.yml get pods"
)


def running(lab: Lab) -> list[list[str]]:
    """Rows of `podyard get pods` on the master whose STATUS is Running."""
    out = lab.ssh(lab.masters[0], GET_PODS, check=False)
    return [row.split() for row in out.splitlines()[1:] if " Running " in row]


def test_pushed_manifests_run_spread_over_the_nodes_and_reach_each_other(lab: Lab) -> None:
    push = subprocess.run(
        ["bash", str(REPO / "examples/lab/push.sh")], capture_output=True, text=True, timeout=180
    )
    assert push.returncode == 0, push.stderr
    deadline = time.monotonic() + 120
    while len(rows := running(lab)) < 4:
        assert time.monotonic() < deadline, lab.ssh(lab.masters[0], GET_PODS, check=False)
        time.sleep(1)
    assert len(rows) == 4
    placed = {row[6] for row in rows}
    assert placed == set(lab.nodes), rows  # the scheduler spreads the replicas
    for row in rows:
        node, ip = row[6], row[5]
        assert ipaddress.ip_address(ip) in ipaddress.ip_network(lab.pod_subnets[node]), row
    # A pod on one node answers a pod on the other by its pod IP (host-gw, no NAT).
    source = next(row for row in rows if row[6] == lab.nodes[0])
    target = next(row for row in rows if row[6] == lab.nodes[1])
    request = "printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 5 " + target[5] + " 8080"
    answer = lab.ssh(
        lab.nodes[0],
        f"docker exec $(docker ps -q --filter label=io.podyard.pod.name={source[0]} "
        f"--filter label=io.podyard.container.name=web) sh -c \"{request}\"",
    )
    assert f"hello from {target[0]}" in answer
