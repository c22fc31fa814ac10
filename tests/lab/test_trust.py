"""Who can do what: pushing manifests opens no key, the registry serves only the cluster's
engines, the branch only moves forward, and a push reaches the controller through its own clone.

Each refusal is checked next to an acceptance through the same path (a readable file, a client
with a certificate, an ordinary push), so a test cannot pass because the probe itself is broken.
"""

from __future__ import annotations

import shlex
import socket
import ssl
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .engine_api import CONTROLLER, engine_version
from .hosts import PKI_DIR, SSH_KEY, SSH_OPTIONS, Lab
from .operate import (
    BRANCH,
    PUSH_USER,
    REPOSITORY,
    commit_on_tip,
    count,
    git,
    git_env,
    push,
    rc,
    wait_until,
)
from .operate import remote as repository_remote

pytestmark = pytest.mark.lab

CLONE = "/var/lib/podyard/manifests"
CONTROLLER_USER = "podyard"
# Where the pki and registry roles put private keys on the master; the search below must find
# at least these (it finds every other PEM private key under the same trees too).
EXPECTED_KEYS = {
    "/etc/podyard/pki/server-key.pem",
    "/etc/podyard/pki/controller-key.pem",
    "/etc/podyard/pki/registry-key.pem",
    "/etc/podyard/pki/registry-client-key.pem",
    "/etc/docker/registry/tls/key.pem",
}
KEY_TREES = "/etc /srv /var/lib/podyard"
IDLE = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: lab-idle\n"


def master(lab: Lab) -> str:
    return lab.masters[0]


def private_keys(lab: Lab, host: str) -> list[str]:
    """Every file holding a PEM or OpenSSH private key under KEY_TREES on a host."""
    found = lab.ssh(
        host, f"grep -rlIs -e '-----BEGIN [A-Z ]*PRIVATE KEY-----' {KEY_TREES}", check=False
    )
    return sorted(found.split())


def readable_by(lab: Lab, host: str, user: str, paths: list[str]) -> list[str]:
    """The paths `user` can read on a host (tried with `sudo -u user cat`)."""
    script = "; ".join(
        f"sudo -u {user} cat {shlex.quote(p)} >/dev/null 2>&1 && echo {shlex.quote(p)}"
        for p in paths
    )
    return lab.ssh(host, f"{script}; true").split()


def writable_by(lab: Lab, host: str, user: str, directories: list[str]) -> list[str]:
    """The directories where `user` can create a file (the probe is removed again)."""
    probe = f".probe-{uuid.uuid4().hex[:8]}"
    script = "; ".join(
        f"sudo -u {user} touch {shlex.quote(d + '/' + probe)} 2>/dev/null"
        f" && rm -f {shlex.quote(d + '/' + probe)} && echo {shlex.quote(d)}"
        for d in directories
    )
    return lab.ssh(host, f"{script}; true").split()


# The push account.


def test_push_account_is_a_git_shell_account_in_its_own_group_only(lab: Lab) -> None:
    entry = lab.ssh(master(lab), f"getent passwd {PUSH_USER}").strip().split(":")
    assert entry[6] == "/usr/bin/git-shell", entry
    assert lab.ssh(master(lab), f"id -Gn {PUSH_USER}").split() == [PUSH_USER]
    # The controller's account reads the repository through that group.
    assert PUSH_USER in lab.ssh(master(lab), f"id -Gn {CONTROLLER_USER}").split()


def test_push_account_cannot_read_any_private_key(lab: Lab) -> None:
    keys = private_keys(lab, master(lab))
    registry_key = f"/etc/docker/certs.d/{lab.registry}/client.key"
    assert EXPECTED_KEYS | {registry_key} <= set(keys), keys
    # The probe works: the account reads its own repository, and root reads every key.
    assert readable_by(lab, master(lab), PUSH_USER, [f"{REPOSITORY}/HEAD"]) == [
        f"{REPOSITORY}/HEAD"
    ]
    assert readable_by(lab, master(lab), "root", keys) == keys
    assert readable_by(lab, master(lab), PUSH_USER, keys) == []


def test_only_the_controllers_account_reads_its_client_key(lab: Lab) -> None:
    key = "/etc/podyard/pki/controller-key.pem"
    assert lab.ssh(master(lab), f"stat -c %U:%a {key}").strip() == f"{CONTROLLER_USER}:600"
    assert readable_by(lab, master(lab), CONTROLLER_USER, [key]) == [key]


def test_push_account_writes_its_repository_and_nothing_else(lab: Lab) -> None:
    directories = [
        f"{REPOSITORY}/objects",
        f"{REPOSITORY}/hooks",
        CLONE,
        f"{CLONE}/.git",
        "/var/lib/podyard",
        "/srv/podyard",
        "/srv/podyard/.ssh",
        "/etc/podyard",
        "/etc/systemd/system",
        "/usr/local/sbin",
    ]
    writable = writable_by(lab, master(lab), PUSH_USER, directories)
    # Its repository (objects, and hooks, which run only as itself); none of the rest.
    assert writable == [f"{REPOSITORY}/objects", f"{REPOSITORY}/hooks"], writable


def ssh_as(lab: Lab, user: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["ssh", "-i", str(SSH_KEY), *SSH_OPTIONS, *args, f"{user}@{lab.addresses[master(lab)]}"],
        input=b"", capture_output=True, timeout=30, check=False,
    )


def test_push_key_runs_no_command_and_opens_no_tunnel(lab: Lab) -> None:
    shell = subprocess.run(
        ["ssh", "-i", str(SSH_KEY), *SSH_OPTIONS, f"{PUSH_USER}@{lab.addresses[master(lab)]}",
         "cat /etc/podyard/pki/ca.pem"],
        capture_output=True, timeout=30, check=False,
    )
    assert shell.returncode != 0 and b"BEGIN CERTIFICATE" not in shell.stdout, shell
    # A tunnel to the master's own sshd: root's key opens it, the push key does not.
    assert ssh_as(lab, "root", "-W", "127.0.0.1:22").stdout.startswith(b"SSH-2.0")
    tunnel = ssh_as(lab, PUSH_USER, "-W", "127.0.0.1:22")
    assert tunnel.returncode != 0 and not tunnel.stdout.startswith(b"SSH-"), tunnel
    assert b"forwarding failed" in tunnel.stderr, tunnel.stderr  # refused, not unauthenticated


def test_controllers_account_accepts_no_ssh_login(lab: Lab) -> None:
    # The lab's key used to push as this account; it is refused now, while root accepts it.
    assert ssh_as(lab, "root", "-W", "127.0.0.1:22").returncode == 0
    refused = ssh_as(lab, CONTROLLER_USER, "-W", "127.0.0.1:22")
    assert refused.returncode == 255 and b"Permission denied" in refused.stderr, refused.stderr


# The registry.


def registry_answer(lab: Lab, client_cert: tuple[Path, Path] | None) -> bytes:
    """GET /v2/ from the registry over TLS, with or without a client certificate."""
    context = ssl.create_default_context(cafile=str(PKI_DIR / "ca.pem"))
    if client_cert:
        context.load_cert_chain(str(client_cert[0]), str(client_cert[1]))
    host, port = lab.registry.rsplit(":", 1)
    with (
        socket.create_connection((host, int(port)), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        tls.sendall(f"GET /v2/ HTTP/1.0\r\nHost: {lab.registry}\r\n\r\n".encode())
        # With TLS 1.3 a refused client certificate is reported at the first read.
        answer = tls.recv(1024)
        if not answer:
            raise ConnectionResetError("closed without an answer")
        return answer


def registry_client(host: str) -> tuple[Path, Path]:
    return PKI_DIR / f"{host}-registry-client.pem", PKI_DIR / f"{host}-registry-client-key.pem"


def test_registry_answers_a_client_with_a_registry_certificate(lab: Lab) -> None:
    for host in lab.masters + lab.nodes:
        assert registry_answer(lab, registry_client(host)).startswith(b"HTTP/1.0 200"), host


def test_registry_refuses_a_client_without_a_certificate(lab: Lab) -> None:
    with pytest.raises((ssl.SSLError, ConnectionError)):
        registry_answer(lab, None)


def test_registry_refuses_the_controllers_certificate(lab: Lab) -> None:
    # Signed by the cluster CA for the engines' APIs; the registry trusts only its clients CA.
    with pytest.raises((ssl.SSLError, ConnectionError)):
        registry_answer(lab, CONTROLLER)


def test_a_nodes_registry_key_opens_no_engine(lab: Lab) -> None:
    first, second = lab.nodes[:2]
    assert engine_version(lab.addresses[second], CONTROLLER).startswith(b"HTTP/1.0 200")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        engine_version(lab.addresses[second], registry_client(first))


def test_registry_listens_only_on_the_masters_lab_address(lab: Lab) -> None:
    port = lab.registry.rsplit(":", 1)[1]
    listening = lab.ssh(master(lab), f"ss -Hltn 'sport = :{port}'").split("\n")
    local = {line.split()[3] for line in listening if line.strip()}
    assert local == {lab.registry}, listening


def test_every_host_pulls_from_the_registry(lab: Lab) -> None:
    for host in lab.masters + lab.nodes:
        pulled = lab.ssh(host, f"docker pull -q {lab.registry}/podyard/busybox:1", check=False)
        assert pulled.strip() == f"{lab.registry}/podyard/busybox:1", host


# The manifest repository and the hand-over to the controller.


@pytest.fixture
def idle_after(lab: Lab) -> Iterator[None]:
    """Leave the repository with a manifest set that runs no pod."""
    yield
    push(lab, idle=IDLE)


def test_force_push_and_branch_deletion_are_refused(
    lab: Lab, tmp_path: Path, idle_after: None
) -> None:
    tip = push(lab, idle=IDLE)
    # A commit that does not descend from the tip: only a force push could put it there.
    stray = tmp_path / "stray"
    stray.mkdir()
    git(stray, "init", "-q", "-b", BRANCH)
    (stray / "idle.yaml").write_text(IDLE)
    git(stray, "add", "-A")
    git(stray, "commit", "-q", "-m", "History rewritten")
    forced = subprocess.run(
        ["git", "-C", str(stray), "push", "--force", repository_remote(lab), BRANCH],
        env=git_env(), capture_output=True, text=True, timeout=60, check=False,
    )
    assert forced.returncode != 0 and "non-fast-forward" in forced.stderr, forced.stderr
    deleted = subprocess.run(
        ["git", "-C", str(stray), "push", repository_remote(lab), f":{BRANCH}"],
        env=git_env(), capture_output=True, text=True, timeout=60, check=False,
    )
    assert deleted.returncode != 0 and "deletion prohibited" in deleted.stderr, deleted.stderr
    assert remote_tip(lab) == tip
    # An ordinary push on top of the tip still goes through.
    on_top = tmp_path / "on-top"
    on_top.mkdir()
    commit_on_tip(lab, on_top, idle=IDLE)
    git(on_top, "push", "-q", repository_remote(lab), BRANCH)
    assert remote_tip(lab) == git(on_top, "rev-parse", "HEAD").stdout.strip() != tip


def remote_tip(lab: Lab) -> str:
    listed = subprocess.run(
        ["git", "ls-remote", repository_remote(lab), f"refs/heads/{BRANCH}"],
        env=git_env(), capture_output=True, text=True, timeout=60, check=True,
    )
    return listed.stdout.split()[0]


def test_a_push_is_applied_through_the_controllers_own_clone(
    lab: Lab, idle_after: None
) -> None:
    host = master(lab)
    # Nothing runs on a push in the push account's name: no hook does the hand-over.
    hooks = lab.ssh(host, f"ls {REPOSITORY}/hooks").split()
    assert not [hook for hook in hooks if not hook.endswith(".sample")], hooks
    unit = lab.ssh(host, "systemctl show -p ExecStart --value podyard-controller")
    assert "--committed" in unit and CLONE in unit, unit
    name = f"handover{uuid.uuid4().hex[:6]}"
    commit = push(lab, **{name: rc(name, 2, lab.registry)})
    head = f"sudo -u {CONTROLLER_USER} git -C {CLONE} rev-parse HEAD"
    wait_until("the push in the controller's clone",
               lambda: lab.ssh(host, head, check=False).strip() == commit, timeout=30)
    wait_until("the pushed pods running",
               lambda: sum(count(lab, name).values()) == 2, timeout=90)
    journal = lab.ssh(host, "journalctl -u podyard-manifests-sync --no-pager -n 50")
    assert f"manifests at {commit}" in journal, journal
    # Replaced by the next push: the pods go.
    push(lab, idle=IDLE)
    wait_until("the pushed pods gone", lambda: sum(count(lab, name).values()) == 0, timeout=90)


def test_pushes_in_quick_succession_all_reach_the_clone(lab: Lab, idle_after: None) -> None:
    host = master(lab)
    head = f"sudo -u {CONTROLLER_USER} git -C {CLONE} rev-parse HEAD"
    # More pushes in ten seconds than systemd's default start limit allows (5).
    for _ in range(8):
        commit = push(lab, idle=IDLE)
    wait_until("the last push in the controller's clone",
               lambda: lab.ssh(host, head, check=False).strip() == commit, timeout=30)
    state = lab.ssh(host, "systemctl is-active podyard-manifests-sync.path", check=False)
    assert state.strip() == "active", state
