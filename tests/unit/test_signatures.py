"""Commit signature verification with real git and real SSH signing keys."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from reconciler.manifests import signatures

pytestmark = pytest.mark.unit

ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
       "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org",
       "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def key(directory: Path, name: str) -> tuple[Path, str]:
    """A new SSH signing key: its private file and its public line."""
    private = directory / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f",
                    str(private)], check=True, capture_output=True)
    return private, (directory / f"{name}.pub").read_text().strip()


def commit(repo: Path, signing_key: Path | None) -> None:
    (repo / "pod.yaml").write_text(f"# {os.urandom(4).hex()}\n")
    sign = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={signing_key}"] if signing_key else []
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True, env=ENV)
    subprocess.run(["git", "-C", str(repo), *sign, "commit", "-q", "-m", "change",
                    *(["-S"] if signing_key else [])], check=True, env=ENV, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True, env=ENV)
    return root


def test_verification_off_accepts_anything(repo: Path) -> None:
    commit(repo, None)
    assert signatures.unverified(repo, signatures.Trust()) is None


def test_a_commit_signed_by_a_trusted_key_is_accepted(repo: Path, tmp_path: Path) -> None:
    private, public = key(tmp_path, "alice")
    commit(repo, private)
    assert signatures.unverified(repo, signatures.Trust(True, (public,))) is None


@pytest.mark.parametrize("signed_by", [None, "mallory"])
def test_unsigned_or_untrusted_commits_are_refused_with_the_reason(
    repo: Path, tmp_path: Path, signed_by: str | None
) -> None:
    _, trusted = key(tmp_path, "alice")
    signer = key(tmp_path, signed_by)[0] if signed_by else None
    commit(repo, signer)
    reason = signatures.unverified(repo, signatures.Trust(True, (trusted,)))
    assert reason is not None and reason.startswith("HEAD is not signed by a trusted key")


def test_a_signed_commit_on_top_of_a_signed_one_must_itself_be_signed(
    repo: Path, tmp_path: Path
) -> None:
    private, public = key(tmp_path, "alice")
    trust = signatures.Trust(True, (public,))
    commit(repo, private)
    assert signatures.unverified(repo, trust) is None
    commit(repo, None)
    assert signatures.unverified(repo, trust) is not None


def test_verification_without_any_trusted_key_refuses(repo: Path) -> None:
    commit(repo, None)
    assert signatures.unverified(repo, signatures.Trust(True, ())) == (
        "verifyCommits is on but trustedSigners lists no key"
    )
