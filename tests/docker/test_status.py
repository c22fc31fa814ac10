"""`podyard get|describe|logs` against pods the reconciler made, kubectl-style."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from .conftest import BIN, SLEEPER, Yard, rc_manifest

pytestmark = pytest.mark.docker


def podyard(yard: Yard, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "podyard"), "--scope", yard.scope, *args],
        capture_output=True, text=True, timeout=60,
    )


def converged(yard: Yard, replicas: int = 2) -> None:
    yard.write(replicas)
    result = yard.reconcile()
    assert result.returncode == 0, result.stderr


def test_get_pods_prints_a_kubectl_table(yard: Yard) -> None:
    converged(yard)
    result = podyard(yard, "get", "pods", "-n", yard.namespace)
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == [
        "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "REVISION",
    ]
    assert len(rows) == 2
    for row in rows:
        name, ready, status, restarts, *_ = row.split()
        assert name.startswith("web-") and (ready, status, restarts) == ("1/1", "Running", "0")


def test_get_pods_json_and_yaml_are_kubernetes_shaped(yard: Yard) -> None:
    converged(yard)
    as_json = json.loads(podyard(yard, "get", "pods", "-A", "-o", "json").stdout)
    as_yaml = yaml.safe_load(podyard(yard, "get", "pods", "-A", "-o", "yaml").stdout)
    assert as_json == as_yaml
    assert as_json["kind"] == "List" and len(as_json["items"]) == 2
    pod = as_json["items"][0]
    assert pod["metadata"]["namespace"] == yard.namespace
    assert pod["metadata"]["ownerReferences"][0]["name"] == "web"
    assert pod["status"]["phase"] == "Running" and pod["status"]["podIP"]


def test_get_rc_counts_desired_current_and_ready(yard: Yard) -> None:
    converged(yard, 3)
    result = podyard(yard, "get", "rc", "-n", yard.namespace, "-f", str(yard.root))
    assert result.returncode == 0, result.stderr
    header, row = result.stdout.splitlines()
    assert header.split()[:4] == ["NAME", "DESIRED", "CURRENT", "READY"]
    assert row.split()[:4] == ["web", "3", "3", "3"]


def test_describe_shows_containers_and_history_and_logs_print_output(yard: Yard) -> None:
    chatty = "[sh, -c, \"echo hello from podyard; trap 'exit 0' TERM; sleep 3600 & wait\"]"
    yard.file.write_text(rc_manifest(yard.namespace, 1).replace(SLEEPER, chatty))
    assert yard.reconcile().returncode == 0
    name = podyard(yard, "get", "pods", "-n", yard.namespace).stdout.splitlines()[1].split()[0]
    described = podyard(yard, "describe", "pod", name, "-n", yard.namespace)
    assert described.returncode == 0, described.stderr
    assert f"Name:         {name}" in described.stdout
    assert "Controlled By: ReplicationController/web" in described.stdout
    assert "container app started" in described.stdout
    logs = podyard(yard, "logs", name, "-n", yard.namespace)
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout == "hello from podyard\n"


def test_unknown_pod_is_a_clear_error(yard: Yard) -> None:
    result = podyard(yard, "describe", "pod", "nope", "-n", yard.namespace)
    assert result.returncode == 1
    assert 'pods "nope" not found' in result.stderr and "Traceback" not in result.stderr
