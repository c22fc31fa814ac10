"""Commit signature verification with real git and real SSH signing keys."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from reconciler import errors, manifests, model
from reconciler.cluster import config
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
    assert signatures.unverified(repo, model.CommitTrust()) is None


def test_a_commit_signed_by_a_trusted_key_is_accepted(repo: Path, tmp_path: Path) -> None:
    private, public = key(tmp_path, "alice")
    commit(repo, private)
    assert signatures.unverified(repo, model.CommitTrust(True, (public,))) is None


@pytest.mark.parametrize("signed_by", [None, "mallory"])
def test_unsigned_or_untrusted_commits_are_refused_with_the_reason(
    repo: Path, tmp_path: Path, signed_by: str | None
) -> None:
    _, trusted = key(tmp_path, "alice")
    signer = key(tmp_path, signed_by)[0] if signed_by else None
    commit(repo, signer)
    reason = signatures.unverified(repo, model.CommitTrust(True, (trusted,)))
    assert reason is not None and reason.startswith("HEAD is not signed by a trusted key")


def test_a_signed_commit_on_top_of_a_signed_one_must_itself_be_signed(
    repo: Path, tmp_path: Path
) -> None:
    private, public = key(tmp_path, "alice")
    trust = model.CommitTrust(True, (public,))
    commit(repo, private)
    assert signatures.unverified(repo, trust) is None
    commit(repo, None)
    assert signatures.unverified(repo, trust) is not None


def test_verification_without_any_trusted_key_refuses(repo: Path) -> None:
    commit(repo, None)
    assert signatures.unverified(repo, model.CommitTrust(True, ())) == (
        "verifyCommits is on but trustedSigners lists no key"
    )


POD = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\nspec:\n  containers:\n" \
      "    - name: app\n      image: busybox:1\n"


def test_the_loader_applies_only_a_verified_head_and_keeps_refusing_until_one_is(
    repo: Path, tmp_path: Path
) -> None:
    private, public = key(tmp_path, "alice")
    (repo / "web.yaml").write_text(POD)  # commit() rewrites pod.yaml, not this
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True, env=ENV)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", "unsigned"], check=True, env=ENV)
    loader = manifests.Loader(repo, committed=True, trust=model.CommitTrust(True, (public,)))
    for _ in range(2):  # the refusal is remembered for the revision, and said again
        with pytest.raises(errors.ManifestError) as refused:
            loader.load()
        assert "is not signed by a trusted key" in refused.value.problems[0].reason
    commit(repo, private)
    assert [p.name for p in loader.load().pods] == ["a"]


def test_verify_commits_needs_the_committed_tree(repo: Path, tmp_path: Path) -> None:
    _, public = key(tmp_path, "alice")
    loader = manifests.Loader(repo, trust=model.CommitTrust(True, (public,)))
    with pytest.raises(errors.ManifestError, match="1 problem"):
        loader.load()


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("verifyCommits: yes-please\n", "verifyCommits must be true or false"),
        ("verifyCommits: true\n", "verifyCommits needs at least one trustedSigners key"),
        ("trustedSigners: ssh-ed25519 AAAA\n", "trustedSigners must be a list"),
    ],
)
def test_a_bad_trust_section_is_a_cluster_error(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "cluster.yml"
    path.write_text("nodes: [{name: n1, endpoint: 'unix:///var/run/docker.sock'}]\n" + text)
    with pytest.raises(errors.ClusterError, match=error):
        config.load_cluster(path)


def test_the_trust_section_is_read(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yml"
    path.write_text("nodes: [{name: n1, endpoint: 'unix:///var/run/docker.sock'}]\n"
                    "verifyCommits: true\ntrustedSigners: ['ssh-ed25519 AAAA alice']\n")
    assert config.load_cluster(path).commit_trust == model.CommitTrust(
        True, ("ssh-ed25519 AAAA alice",)
    )
