"""Operating the lab as a user would: push manifests, count the pods on the nodes' engines.

Shared by the lab tests and `bench/failover.py`.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

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


def push(lab: Lab, **files: str) -> None:
    """Replace the manifests in the master's repository with these files."""
    env = {
        "GIT_SSH_COMMAND": " ".join(["ssh", "-i", str(SSH_KEY), *SSH_OPTIONS]),
        "GIT_AUTHOR_NAME": "lab", "GIT_AUTHOR_EMAIL": "lab@example.org",
        "GIT_COMMITTER_NAME": "lab", "GIT_COMMITTER_EMAIL": "lab@example.org",
        "PATH": "/usr/bin:/bin",
    }
    remote = f"ssh://podyard@{lab.addresses[lab.masters[0]]}/srv/podyard/manifests.git"
    with tempfile.TemporaryDirectory() as work:
        for name, text in files.items():
            (Path(work) / f"{name}.yaml").write_text(text)

        def git(*args: str) -> None:
            subprocess.run(["git", "-C", work, *args], env=env, check=True,
                           capture_output=True, timeout=60)

        git("init", "-q", "-b", "main")
        git("add", "-A")
        git("commit", "-qm", f"push {uuid.uuid4().hex[:8]}")
        git("push", "-q", "--force", remote, "main")


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


def count(lab: Lab, prefix: str, nodes: list[str] | None = None) -> dict[str, int]:
    """Running pods whose name starts with `prefix`, per node."""
    return {
        n: sum(name.startswith(prefix) for name in running(lab, n))
        for n in (nodes or lab.nodes)
    }


def wait_until(what: str, check: Callable[[], bool], timeout: float) -> float:
    """Seconds until `check` holds; fails the test after `timeout`."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)
    return time.monotonic() - started
