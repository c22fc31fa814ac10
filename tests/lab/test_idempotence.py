"""A second site.yml run changes nothing on any host."""

from __future__ import annotations

import pytest

from .hosts import Lab, require_success, run_playbook

pytestmark = pytest.mark.lab


def test_second_run_of_site_yml_changes_nothing(lab: Lab) -> None:
    run = run_playbook("site.yml")
    require_success(run, "site.yml (second run)")
    changed = {host: count for host, count in run.changed_per_host().items() if count}
    listing = "\n  ".join(run.changed_tasks)
    assert not changed, f"changed on a second run: {changed}\n  {listing}"
    # Every host was part of the run.
    assert set(run.stats.get("ok", {})) == set(lab.addresses)
