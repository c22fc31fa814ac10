"""What wakes `reconcile --watch --committed`: a ref or HEAD written, never one read."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.control import watch

pytestmark = pytest.mark.unit

GIT = Path("/var/lib/podyard/manifests/.git")


@pytest.mark.parametrize(("event", "path", "wakes"), [
    ("modified", "HEAD", True),
    ("moved", "refs/heads/main", True),  # a fetch or reset renames the new ref into place
    ("created", "refs/remotes/origin/main", True),
    ("closed", "packed-refs", True),
    ("deleted", "refs/heads/old", True),
    # Every load reads HEAD and the branch: its own reads must not wake the next pass.
    ("opened", "HEAD", False),
    ("closed_no_write", "HEAD", False),
    ("opened", "refs/heads/main", False),
    ("closed_no_write", "packed-refs", False),
    ("created", "refs/heads/main.lock", False),
    ("modified", "index", False),
    ("modified", "objects/98/9c72033ed35196f42e4517942facecf535e4fe", False),
    ("modified", "config", False),
])
def test_only_a_written_ref_wakes_the_loop(event: str, path: str, wakes: bool) -> None:
    assert watch.ref_moved(event, GIT / path, GIT) is wakes


def test_an_event_outside_the_repository_wakes_nothing() -> None:
    assert not watch.ref_moved("modified", Path("/etc/HEAD"), GIT)
    assert not watch.ref_moved("modified", GIT, GIT)
