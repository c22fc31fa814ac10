"""Nodes fail, the cluster does not: a lost node's pods move, and come back without duplicates.

Each test pushes its own manifests to the master's repository (a push replaces the whole set,
as a user's push would) and counts the pods on the nodes' engines themselves.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest

from .hosts import Lab, wait_for_ssh
from .operate import (
    NETWORK,
    bare_pod,
    count,
    pod_containers,
    push,
    rc,
    running,
    settle,
    wait_until,
)

pytestmark = pytest.mark.lab

# The failure timeline of the lab's controller (the controller role's defaults): NotReady
# after 4 s without an answer, pods replaced 4 s later; then the pods' own start.
FAILOVER_BUDGET = 4 + 4 + 30


@pytest.fixture
def clean(lab: Lab) -> Iterator[None]:
    """Every node up and connected before and after the test; the manifests emptied after."""
    yield
    for node in lab.nodes:
        subprocess.run(["docker", "start", f"podyard-lab-{node}"], capture_output=True)
        subprocess.run(["docker", "network", "connect", "--ip", lab.addresses[node], NETWORK,
                        f"podyard-lab-{node}"], capture_output=True)
    for node in lab.nodes:
        wait_for_ssh(lab, node)
    # Not an empty set: the controller refuses to let one delete everything (--allow-empty).
    push(lab, idle="apiVersion: v1\nkind: Namespace\nmetadata:\n  name: lab-idle\n")


def test_replicas_spread_selectors_are_honoured_and_a_too_big_pod_waits(
    lab: Lab, clean: None
) -> None:
    push(
        lab,
        spread=rc("spread", 6, lab.registry),
        zoned=bare_pod("zoned", lab.registry, "  nodeSelector:\n    zone: b\n"),
        huge=bare_pod("huge", lab.registry).replace(
            "      command:", "      resources:\n        requests:\n          memory: 1Ti\n"
            "      command:"
        ),
    )
    wait_until("6 spread replicas", lambda: sum(count(lab, "spread-").values()) == 6, 120)
    assert count(lab, "spread-") == dict.fromkeys(lab.nodes, 3)
    wait_until("the zoned pod", lambda: "zoned" in running(lab, lab.nodes[1]), 60)
    assert "zoned" not in running(lab, lab.nodes[0])
    get = "sudo -u podyard /opt/podyard/venv/bin/podyard --cluster /etc/podyard/cluster.yml"
    out = lab.ssh(lab.masters[0], f"{get} get pods 2>&1", check=False)
    assert "huge is Pending: 0/2 nodes are available: 2 Insufficient memory." in out, out


def test_a_stopped_node_is_replaced_and_comes_back_without_duplicates(
    lab: Lab, clean: None
) -> None:
    lost = lab.nodes[1]
    survivor = lab.nodes[0]
    push(lab, moving=rc("moving", 4, lab.registry), solo=bare_pod("solo", lab.registry))
    wait_until(
        "4 replicas over both nodes and the bare pod",
        lambda: count(lab, "moving-") == {n: 2 for n in lab.nodes}
        and sum(count(lab, "solo").values()) == 1,
        120,
    )
    settle(lab)
    subprocess.run(["docker", "stop", "-t", "1", f"podyard-lab-{lost}"], check=True,
                   capture_output=True, timeout=120)
    seconds = wait_until(
        "every pod back on the surviving node",
        lambda: count(lab, "moving-", [survivor])[survivor] == 4
        and count(lab, "solo", [survivor])[survivor] == 1,
        FAILOVER_BUDGET,
    )
    print(f"failover: {seconds:.1f}s")
    # While the node is down, a push still converges on the rest of the cluster.
    push(lab, moving=rc("moving", 5, lab.registry), solo=bare_pod("solo", lab.registry))
    wait_until("the scale-up on the surviving node",
               lambda: count(lab, "moving-", [survivor])[survivor] == 5, 60)
    subprocess.run(["docker", "start", f"podyard-lab-{lost}"], check=True, capture_output=True)
    wait_for_ssh(lab, lost)
    wait_until(
        "exact totals once the node is back",
        lambda: pod_containers(lab, lost) == ""
        and sum(count(lab, "moving-").values()) == 5,
        90,
    )
    assert sum(count(lab, "solo").values()) == 1  # never two copies of a bare pod
    journal = lab.ssh(lab.masters[0], "journalctl -u podyard-controller --no-pager -n 300")
    assert f"node {lost} is NotReady" in journal and f"node {lost} is Ready again" in journal


def test_a_cut_off_node_is_replaced_and_no_duplicates_remain_once_it_heals(
    lab: Lab, clean: None
) -> None:
    cut = lab.nodes[1]
    push(lab, cutoff=rc("cutoff", 4, lab.registry))
    wait_until("4 replicas over both nodes", lambda: count(lab, "cutoff-") == {
        n: 2 for n in lab.nodes}, 120)
    settle(lab)
    before = count(lab, "cutoff-")
    subprocess.run(["docker", "network", "disconnect", NETWORK, f"podyard-lab-{cut}"],
                   check=True, capture_output=True)
    wait_until("the cut-off node's replicas replaced",
               lambda: count(lab, "cutoff-", [lab.nodes[0]])[lab.nodes[0]] == 4, FAILOVER_BUDGET)
    # Cut off, not stopped: its old pods still run there, where nothing can reach them (as in
    # Kubernetes, an RC briefly has more copies than declared during a partition).
    inside = subprocess.run(
        ["docker", "exec", f"podyard-lab-{cut}", "docker", "ps", "-q",
         "--filter", "label=io.podyard.container.name=POD"],
        capture_output=True, text=True, check=True,
    )
    assert len(inside.stdout.split()) == before[cut] > 0
    subprocess.run(["docker", "network", "connect", "--ip", lab.addresses[cut], NETWORK,
                    f"podyard-lab-{cut}"], check=True, capture_output=True)
    wait_until(
        "the stale copies removed",
        lambda: count(lab, "cutoff-", [cut])[cut] == 0 and sum(count(lab, "cutoff-").values()) == 4,
        60,
    )
    time.sleep(3)  # another pass or two: nothing comes back, nothing is added
    assert sum(count(lab, "cutoff-").values()) == 4
    # Its routes to the other pod subnets went with its interface; its pod network unit puts
    # them back without a reboot.
    routes = [f"ip -4 route show exact {lab.pod_subnets[other]} via {lab.addresses[other]}"
              for other in lab.nodes if other != cut]
    wait_until(f"{cut}'s routes to the other nodes' pods",
               lambda: all(lab.ssh(cut, route, check=False).strip() for route in routes), 30)


def test_a_killed_controller_is_restarted_and_leaves_exactly_what_was_declared(
    lab: Lab, clean: None
) -> None:
    master = lab.masters[0]
    push(lab, many=rc("many", 20, lab.registry))
    wait_until("the apply under way", lambda: sum(count(lab, "many-").values()) >= 3, 60)
    lab.ssh(master, "systemctl kill -s KILL podyard-controller")
    wait_until("systemd to restart the controller",
               lambda: lab.ssh(master, "systemctl is-active podyard-controller",
                               check=False).strip() == "active", 30)
    wait_until("exactly 20 pods", lambda: sum(count(lab, "many-").values()) == 20, 180)
    time.sleep(3)
    assert sum(count(lab, "many-").values()) == 20
    for node in lab.nodes:
        exited = pod_containers(lab, node, "status=exited", "status=created")
        assert exited == "", f"{node} holds half-made pods"
