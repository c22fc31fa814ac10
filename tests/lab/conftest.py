"""Fixtures of the lab tier: a master and two nodes provisioned by site.yml.

The session fixture `lab` brings the lab up from nothing (playbooks/lab_up.yml, then site.yml)
or reuses one already provisioned, and removes it at the end unless PODYARD_KEEP_LAB=1.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from .hosts import STAMP, Lab, describe_lab, lab_is_up, require_success, run_playbook


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """The provisioned lab, brought up from nothing when needed."""
    if shutil.which("docker") is None:
        pytest.fail("the lab needs a Docker engine on this machine (run `make docker`)")
    described = describe_lab()
    first_run = None
    if not lab_is_up(described.masters + described.nodes):
        require_success(run_playbook("playbooks/lab_up.yml"), "playbooks/lab_up.yml")
        first_run = run_playbook("site.yml")
        require_success(first_run, "site.yml")
        STAMP.write_text(f"{first_run.seconds:.1f}\n")
    yield describe_lab(first_run)
    if os.environ.get("PODYARD_KEEP_LAB") != "1":
        STAMP.unlink(missing_ok=True)
        require_success(run_playbook("playbooks/lab_down.yml"), "playbooks/lab_down.yml")
