"""The `reconcile` command line against the real engine, in ways that change nothing.

Converging through the command line is tested with `test_watch.py`; here, its help and a
dry run, which must print the plan and leave the engine as it was.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import Space
from .workloads import BUSYBOX

pytestmark = pytest.mark.docker

RECONCILE = Path(sys.executable).parent / "reconcile"


def manifests(directory: Path, namespace: str, replicas: int) -> Path:
    (directory / "web.yaml").write_text(f"""\
apiVersion: v1
kind: Namespace
metadata:
  name: {namespace}
---
apiVersion: v1
kind: ReplicationController
metadata:
  name: web
  namespace: {namespace}
spec:
  replicas: {replicas}
  selector:
    app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
        - name: web
          image: {BUSYBOX}
          command: ["httpd", "-f", "-p", "8080"]
""")
    return directory


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(RECONCILE), *args], capture_output=True, text=True, timeout=60)


def test_help_explains_usage_and_exit_codes() -> None:
    result = run("--help")
    assert result.returncode == 0
    assert "usage: reconcile" in result.stdout and "exit codes" in result.stdout


def test_dry_run_prints_the_plan_and_creates_nothing(space: Space, tmp_path: Path) -> None:
    result = run("--dry-run", str(manifests(tmp_path, space.namespace, 3)))
    assert result.returncode == 0, result.stderr
    creates = [line for line in result.stdout.splitlines()
               if line.startswith(f"+ create pod {space.namespace}/web-")]
    assert len(creates) == 3, result.stdout
    assert all("(rc/web)" in line for line in creates)
    assert space.containers() == []
