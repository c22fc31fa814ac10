"""The `reconcile` command line's help and dry run against the real engine.

Converging through the command line is covered in test_watch.py, each test in a scope of
its own; here, what must change nothing.
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml

from reconciler import labels

from .conftest import BIN, Yard

pytestmark = pytest.mark.docker


def test_help_explains_usage_and_exit_codes() -> None:
    result = subprocess.run(
        [str(BIN / "reconcile"), "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert "usage: reconcile" in result.stdout and "exit codes" in result.stdout


def test_dry_run_prints_the_plan_and_creates_nothing(yard: Yard) -> None:
    yard.write(3)
    result = yard.reconcile("--dry-run")
    assert result.returncode == 0, result.stderr
    creates = [line for line in result.stdout.splitlines()
               if line.startswith(f"+ create pod {yard.namespace}/web-")]
    assert len(creates) == 3, result.stdout
    assert all("(rc/web)" in line for line in creates)
    assert "dry run: nothing changed" in result.stdout
    assert yard.app_containers() == [] and yard.running_pods() == []


def _generated_names_masked(text: str, namespace: str) -> str:
    """The dry run with the random suffixes of RC pod names (web-xxxxx) replaced, and the
    uids, which a dry run derives from the pod's name."""
    text = re.sub(r"web-[a-z0-9]{5}(?![a-z0-9])", "web-?????", text).replace(namespace, "NS")
    return re.sub(r"[0-9a-f]{32}", "UID", text)


def test_dry_run_yaml_prints_each_create_request_and_is_stable(yard: Yard) -> None:
    yard.write(2)
    first = yard.reconcile("--dry-run", "-o", "yaml")
    assert first.returncode == 0, first.stderr
    document = yaml.safe_load(first.stdout)
    creates = [a for a in document["actions"] if a["action"].startswith("+ create pod")]
    assert document["kind"] == "Plan" and len(creates) == 2
    # Before any pod: the scope's DNS address is claimed and the node's agents programmed.
    kinds = [a["action"].split()[1] for a in document["actions"][:-2]]
    assert kinds == ["claim", "program", "update"], kinds
    action = creates[0]
    assert action["action"].startswith(f"+ create pod {yard.namespace}/web-")
    pause, [app] = action["pause"], action["containers"]
    assert pause["config"]["Labels"][labels.CONTAINER] == labels.PAUSE
    assert app["config"]["HostConfig"]["NetworkMode"] == f"container:{pause['name']}"
    assert app["config"]["Entrypoint"] == ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
    assert app["config"]["StopTimeout"] == 2
    second = yard.reconcile("--dry-run", "-o", "yaml")
    masked = _generated_names_masked(first.stdout, yard.namespace)
    assert _generated_names_masked(second.stdout, yard.namespace) == masked
    as_json = yard.reconcile("--dry-run", "-o", "json")
    assert json.loads(as_json.stdout)["actions"][-1]["node"] == action["node"]
    assert yard.app_containers() == [] and yard.running_pods() == []


def test_output_format_needs_dry_run(yard: Yard) -> None:
    yard.write(1)
    result = yard.reconcile("-o", "yaml")
    assert result.returncode == 2 and "-o/--output goes with --dry-run" in result.stderr
    assert yard.running_pods() == []
