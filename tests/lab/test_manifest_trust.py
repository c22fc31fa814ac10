"""What a push can make the controller do: only what is committed, valid, allowed and (when
asked) signed; anything else is refused and the last good state stays applied."""

from __future__ import annotations

import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .hosts import Lab
from .operate import bare_pod, commit_on_tip, git, push, remote, running, wait_until

pytestmark = pytest.mark.lab

CLUSTER_FILE = "/etc/podyard/cluster.yml"
JOURNAL = "journalctl -u podyard-controller --no-pager -n 200"
STATUS = "/opt/podyard/venv/bin/podyard status"


def placed(lab: Lab, name: str) -> bool:
    return any(name in running(lab, node) for node in lab.nodes)


def push_commit(lab: Lab, work: Path, sign_with: Path | None = None) -> None:
    """Push what is committed in `work` (made by `commit_on_tip`), signed if asked."""
    if sign_with is not None:
        git(work, "-c", "gpg.format=ssh", "-c", f"user.signingkey={sign_with}",
            "commit", "-q", "--amend", "--no-edit", "-S")
    git(work, "push", "-q", remote(lab), "main")


@pytest.fixture
def applied(lab: Lab) -> Iterator[str]:
    """A known good state applied first: a pod that must survive every refused push."""
    name = f"keep-{uuid.uuid4().hex[:6]}"
    push(lab, keep=bare_pod(name, lab.registry))
    wait_until("the good state", lambda: placed(lab, name), 120)
    yield name
    push(lab, idle="apiVersion: v1\nkind: Namespace\nmetadata:\n  name: lab-idle\n")


def test_a_push_with_a_symlink_is_refused_and_the_last_state_stays(
    lab: Lab, applied: str
) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        (work / "passwd.yaml").symlink_to("/etc/passwd")  # outside the repository
        commit_on_tip(lab, work, keep=bare_pod(applied, lab.registry),
                      extra=bare_pod("never", lab.registry))
        push_commit(lab, work)
    master = lab.masters[0]
    wait_until("the refusal", lambda: "passwd.yaml: is a symbolic link" in lab.ssh(
        master, JOURNAL), 60)
    journal = lab.ssh(master, JOURNAL)
    assert "root:x:0:0" not in journal  # the link's target was never read
    assert "Not applied" in lab.ssh(master, STATUS)
    assert placed(lab, applied) and not placed(lab, "never")


def test_a_host_path_root_pod_is_refused_with_the_policy_message(
    lab: Lab, applied: str
) -> None:
    root = bare_pod("rooted", lab.registry).replace(
        "  containers:",
        "  volumes:\n    - name: root\n      hostPath: {path: /}\n  containers:",
    )
    push(lab, keep=bare_pod(applied, lab.registry), rooted=root)
    master = lab.masters[0]
    wait_until("the policy's refusal",
               lambda: 'violates PodSecurity "baseline": hostPath volumes' in lab.ssh(
                   master, JOURNAL), 60)
    assert "podSecurity.allowedHostPaths" in lab.ssh(master, JOURNAL)
    assert placed(lab, applied) and not placed(lab, "rooted")


@pytest.fixture
def signing_key(lab: Lab, tmp_path: Path) -> Iterator[Path]:
    """An SSH signing key the controller trusts (verifyCommits on) for the test's length."""
    key = tmp_path / "signer"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "lab-signer", "-f",
                    str(key)], check=True, capture_output=True)
    public = (tmp_path / "signer.pub").read_text().strip()
    master = lab.masters[0]
    lab.ssh(master, f"cp {CLUSTER_FILE} {CLUSTER_FILE}.before-signing && "
                    f"printf 'verifyCommits: true\\ntrustedSigners: [\"{public}\"]\\n' "
                    f">> {CLUSTER_FILE} && systemctl restart podyard-controller")
    yield key
    lab.ssh(master, f"mv {CLUSTER_FILE}.before-signing {CLUSTER_FILE} && "
                    "systemctl restart podyard-controller")


def test_with_verification_only_a_signed_commit_is_applied(
    lab: Lab, applied: str, signing_key: Path
) -> None:
    master = lab.masters[0]
    with tempfile.TemporaryDirectory() as scratch:
        commit_on_tip(lab, Path(scratch), keep=bare_pod(applied, lab.registry),
                      unsigned=bare_pod("unsigned", lab.registry))
        push_commit(lab, Path(scratch))
    wait_until("the unsigned commit refused",
               lambda: "is not signed by a trusted key" in lab.ssh(master, STATUS), 60)
    assert not placed(lab, "unsigned")
    with tempfile.TemporaryDirectory() as scratch:
        commit_on_tip(lab, Path(scratch), keep=bare_pod(applied, lab.registry),
                      signed=bare_pod("signed", lab.registry))
        push_commit(lab, Path(scratch), sign_with=signing_key)
    wait_until("the signed commit applied", lambda: placed(lab, "signed"), 90)
    assert placed(lab, applied) and not placed(lab, "unsigned")
