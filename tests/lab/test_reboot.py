"""A rebooted node comes back with its engine settings and its pod routes."""

from __future__ import annotations

import subprocess

import pytest

from .hosts import Lab, wait_for_ssh

pytestmark = pytest.mark.lab


def test_rebooted_node_gets_its_routes_and_engine_settings_back(lab: Lab) -> None:
    node = lab.nodes[0]
    others = [other for other in lab.nodes if other != node]
    # A container restart is a reboot: new network namespace, no routes, systemd boots again.
    subprocess.run(
        ["docker", "restart", f"podyard-lab-{node}"], check=True, capture_output=True, timeout=120
    )
    wait_for_ssh(lab, node)
    assert lab.ssh(node, "systemctl is-active docker").strip() == "active"
    assert lab.ssh(node, "systemctl is-active podyard-pod-network").strip() == "active"
    routes = lab.ssh(node, "ip -4 route show")
    for other in others:
        assert f"{lab.pod_subnets[other]} via {lab.addresses[other]}" in routes, routes
    rules = lab.ssh(node, "iptables -w -S DOCKER-USER; iptables -w -t nat -S POSTROUTING")
    assert "-A DOCKER-USER -s 10.244.0.0/16 -d 10.244.0.0/16 -j ACCEPT" in rules, rules
    nat_rules = [line for line in rules.splitlines() if line.startswith("-A POSTROUTING")]
    # Pod-to-pod traffic must skip Docker's masquerade, so our RETURN comes before it (the
    # services' own jump, which masquerades only marked traffic, may come first).
    ours = nat_rules.index("-A POSTROUTING -s 10.244.0.0/16 -d 10.244.0.0/16 -j RETURN")
    assert all("MASQUERADE" not in line for line in nat_rules[:ours]), rules
    client = lab.engine(node)
    try:
        bridge = client.networks.get("bridge")
        assert bridge.attrs["IPAM"]["Config"][0]["Subnet"] == lab.pod_subnets[node]
        assert client.info()["LiveRestoreEnabled"] is True
    finally:
        client.close()
