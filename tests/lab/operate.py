"""Operating the lab as a user would: push manifests, count the pods on the nodes' engines.

Shared by the lab tests and `bench/failover.py`.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from reconciler import labels

from .hosts import SSH_KEY, SSH_OPTIONS, Lab

NETWORK = "podyard-lab"


def rc(name: str, replicas: int, registry: str, extra: str = "") -> str:
    return f"""\
apiVersion: v1
kind: ReplicationController
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      terminationGracePeriodSeconds: 1
{extra}      containers:
        - name: app
          image: {registry}/podyard/busybox:1
          command: [sh, -c, "trap 'exit 0' TERM; sleep 3600 & wait"]
"""


def bare_pod(name: str, registry: str, spec_extra: str = "") -> str:
    return f"""\
apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 1
{spec_extra}  containers:
    - name: app
      image: {registry}/podyard/busybox:1
      command: [sh, -c, "trap 'exit 0' TERM; sleep 3600 & wait"]
"""


# Pushes go to the push account, which owns the repository and holds nothing else.
PUSH_USER = "podyard-git"
REPOSITORY = "/srv/podyard/manifests.git"
BRANCH = "main"


def remote(lab: Lab) -> str:
    """The master's manifest repository, as users push to it."""
    return f"ssh://{PUSH_USER}@{lab.addresses[lab.masters[0]]}{REPOSITORY}"


def git_env() -> dict[str, str]:
    """Environment for git commands that reach the lab over SSH with the lab's key."""
    return {
        "GIT_SSH_COMMAND": " ".join(["ssh", "-i", str(SSH_KEY), *SSH_OPTIONS]),
        "GIT_AUTHOR_NAME": "lab", "GIT_AUTHOR_EMAIL": "lab@example.org",
        "GIT_COMMITTER_NAME": "lab", "GIT_COMMITTER_EMAIL": "lab@example.org",
        "PATH": "/usr/bin:/bin",
    }


def git(work: Path | str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run git in `work` with the lab's environment; raise with its stderr on failure."""
    done = subprocess.run(["git", "-C", str(work), *args], env=git_env(), text=True,
                          capture_output=True, timeout=60, check=False)
    if done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return done


def commit_on_tip(lab: Lab, work: Path, **files: str) -> None:
    """Commit exactly these files in `work`, on top of the branch's tip in the repository.

    The repository refuses force pushes, so a push that replaces the manifests is an ordinary
    commit whose tree holds only the new files (the old ones deleted), made on the tip.
    """
    git(work, "init", "-q", "-b", BRANCH)
    if git(work, "ls-remote", remote(lab), f"refs/heads/{BRANCH}").stdout.strip():
        git(work, "fetch", "-q", remote(lab), BRANCH)
        # HEAD moves to the tip; the index stays empty, so only the files below are committed.
        git(work, "update-ref", "HEAD", "FETCH_HEAD")
    for name, text in files.items():
        (work / f"{name}.yaml").write_text(text)
    git(work, "add", "-A")
    git(work, "commit", "-q", "--allow-empty", "-m", f"push {uuid.uuid4().hex[:8]}")


def push(lab: Lab, **files: str) -> str:
    """Replace the manifests in the master's repository with these files; the new commit."""
    with tempfile.TemporaryDirectory() as work:
        commit_on_tip(lab, Path(work), **files)
        git(work, "push", "-q", remote(lab), BRANCH)
        return git(work, "rev-parse", "HEAD").stdout.strip()


def running(lab: Lab, node: str) -> dict[str, list[str]]:
    """Running pods on a node's engine, as {pod name: [its owner]}; {} if it does not answer."""
    try:
        client = lab.engine(node)
    except Exception:
        return {}
    try:
        found = client.api.containers(filters={
            "label": ["io.podyard.managed=true", "io.podyard.container.name=POD"],
        })
    except Exception:
        return {}
    finally:
        client.close()
    return {c["Labels"]["io.podyard.pod.name"]: [c["Labels"]["io.podyard.owner"]] for c in found}


def pod_containers(lab: Lab, node: str, *filters: str) -> str:
    """The ids of the pod containers on a node's engine, in any state (narrowed by `docker ps`
    filters such as "status=exited"), asked over SSH. The node agents are podyard's too, but
    they belong on every node: they are not pods."""
    narrowed = "".join(f" --filter {f}" for f in filters)
    return lab.ssh(node, f"docker ps -aq --filter label={labels.UID}{narrowed}").strip()


def count(lab: Lab, prefix: str, nodes: list[str] | None = None) -> dict[str, int]:
    """Running pods whose name starts with `prefix`, per node."""
    return {
        n: sum(name.startswith(prefix) for name in running(lab, n))
        for n in (nodes or lab.nodes)
    }


STATUS = "/run/podyard/status-default.json"  # the controller's status file on the master


def passes_finished(lab: Lab) -> int:
    """How many passes the master's controller has finished (its status file says)."""
    status = lab.ssh(lab.masters[0], f"cat {STATUS}", check=False)
    try:
        return int(json.loads(status)["passes"]["finished"])
    except (ValueError, KeyError, TypeError):
        return -1  # not written yet, or being replaced


def settle(lab: Lab) -> None:
    """Wait until the pass under way now has finished: pods a test counts on the engines may
    still be in the middle of their creation, which a node failed now would cut short."""
    now = passes_finished(lab)
    wait_until("the controller's pass under way to finish", lambda: passes_finished(lab) > now, 60)


def wait_until(what: str, check: Callable[[], bool], timeout: float) -> float:
    """Seconds until `check` holds; fails the test after `timeout`."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)
    return time.monotonic() - started
