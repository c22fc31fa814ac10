"""The `Loader` that `--watch` calls every pass: unchanged files are not read again, and an
edited, added or removed file is always seen."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler import errors, manifests
from reconciler.manifests import files

pytestmark = pytest.mark.unit


def pod(name: str, image: str = "busybox:1") -> str:
    return f"""\
apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  containers:
    - name: app
      image: {image}
"""


@pytest.fixture
def no_racy_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trust every file's stat signature at once, as if each was written long ago."""
    monkeypatch.setattr(files, "RACY_NS", 0)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the files the loader reads, in order."""
    seen: list[str] = []
    real: Callable[..., files.File] = files.read

    def counting(entry: files.Entry, limits: object) -> files.File:
        seen.append(entry.name)
        return real(entry, limits)

    monkeypatch.setattr(files, "read", counting)
    return seen


def images(state: object) -> dict[str, str]:
    return {p.name: p.template.spec.containers[0].image for p in state.pods}  # type: ignore[attr-defined]


@pytest.mark.usefixtures("no_racy_window")
def test_nothing_changed_returns_the_same_state_without_reading(
    tmp_path: Path, reads: list[str]
) -> None:
    (tmp_path / "a.yaml").write_text(pod("a"))
    (tmp_path / "b.yaml").write_text(pod("b"))
    loader = manifests.Loader(tmp_path)
    first = loader.load()
    assert reads == ["a.yaml", "b.yaml"]
    assert loader.load() is first
    assert reads == ["a.yaml", "b.yaml"]


@pytest.mark.usefixtures("no_racy_window")
def test_only_the_edited_file_is_read_again(tmp_path: Path, reads: list[str]) -> None:
    (tmp_path / "a.yaml").write_text(pod("a"))
    (tmp_path / "b.yaml").write_text(pod("b"))
    loader = manifests.Loader(tmp_path)
    loader.load()
    (tmp_path / "b.yaml").write_text(pod("b", "busybox:2"))
    assert images(loader.load()) == {"a": "busybox:1", "b": "busybox:2"}
    assert reads == ["a.yaml", "b.yaml", "b.yaml"]


def test_an_edit_within_the_same_instant_and_size_is_seen(tmp_path: Path) -> None:
    # Written twice in a row with the same length: a stat signature alone could miss it.
    path = tmp_path / "a.yaml"
    path.write_text(pod("a", "busybox:1"))
    loader = manifests.Loader(tmp_path)
    assert images(loader.load()) == {"a": "busybox:1"}
    path.write_text(pod("a", "busybox:2"))
    assert images(loader.load()) == {"a": "busybox:2"}


@pytest.mark.usefixtures("no_racy_window")
def test_an_edit_that_keeps_size_and_mtime_is_seen(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(pod("a", "busybox:1"))
    before = os.stat(path)
    loader = manifests.Loader(tmp_path)
    loader.load()
    while time.time_ns() < before.st_ctime_ns + 50_000_000:  # past the file system's tick
        pass
    path.write_text(pod("a", "busybox:2"))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # ctime still moves
    assert images(loader.load()) == {"a": "busybox:2"}


@pytest.mark.usefixtures("no_racy_window")
def test_added_and_removed_files_are_seen(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(pod("a"))
    loader = manifests.Loader(tmp_path)
    loader.load()
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yaml").write_text(pod("b"))
    assert sorted(images(loader.load())) == ["a", "b"]
    (tmp_path / "a.yaml").unlink()
    assert sorted(images(loader.load())) == ["b"]


@pytest.mark.usefixtures("no_racy_window")
def test_an_invalid_file_keeps_failing_until_fixed(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(pod("a").replace("image:", "imag:"))
    loader = manifests.Loader(tmp_path)
    for _ in range(2):
        with pytest.raises(errors.ManifestError) as invalid:
            loader.load()
        assert "imag" in str(invalid.value.problems[0])
    path.write_text(pod("a"))
    assert images(loader.load()) == {"a": "busybox:1"}


def git(root: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    subprocess.run(["git", "-C", str(root), *args], check=True, env=env, capture_output=True)


def test_committed_follows_new_commits_only(tmp_path: Path, reads: list[str]) -> None:
    git(tmp_path, "init", "-q")
    (tmp_path / "a.yaml").write_text(pod("a"))
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "one")
    loader = manifests.Loader(tmp_path, committed=True)
    first = loader.load()
    (tmp_path / "a.yaml").write_text(pod("a", "busybox:2"))  # not committed: not applied
    assert loader.load() is first
    git(tmp_path, "commit", "-qam", "two")
    state = loader.load()
    assert images(state) == {"a": "busybox:2"} and state.revision != first.revision
    assert reads == ["a.yaml", "a.yaml"]
