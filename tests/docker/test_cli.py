"""The `reconcile` command line's help and dry run against the real engine.

Converging through the command line is covered in test_watch.py, each test in a scope of
its own; here, what must change nothing.
"""

from __future__ import annotations

import subprocess

import pytest

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
