"""Shared by the tests and the benchmarks: the RC manifest they write, and ansible-runner.

Pure helpers with no fixtures, so `bench/*.py` can import them as `tests.support` and the
test tiers as `..support`. Nothing here talks to Docker. ansible-runner is imported only by
`run_playbook`, so the unit tier collects where Ansible is not installed.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
LAB_INVENTORY = REPO / "inventory" / "lab"
BUSYBOX = "podyard/busybox:1"
# A container command in YAML flow style that exits at once on SIGTERM (busybox `sleep` as
# PID 1 ignores it, so a graceful stop would wait out the whole grace period).
SLEEPER = "[sh, -c, \"trap 'exit 0' TERM; sleep 3600 & wait\"]"
FAILURES = ("runner_on_failed", "runner_on_unreachable")


def web_rc(namespace: str, replicas: int | str, grace: int, containers: str) -> str:
    """An RC `web` (selector app=web) with the given container list, indented as a pod
    template's `containers:` entries."""
    return f"""\
apiVersion: v1
kind: ReplicationController
metadata:
  name: web
  namespace: {namespace}
spec:
  replicas: {replicas}
  selector:
    app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      terminationGracePeriodSeconds: {grace}
      containers:
{containers}"""


def namespace_document(name: str) -> str:
    """A Namespace, as the first document of a YAML stream (with its `---`)."""
    return f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n---\n"


def rc_manifest(namespace: str, replicas: int | str, image: str = BUSYBOX) -> str:
    """A Namespace and an RC `web` of `replicas` SLEEPER pods in it, as one YAML stream."""
    app = f"""\
        - name: app
          image: {image}
          command: {SLEEPER}
"""
    return namespace_document(namespace) + web_rc(namespace, replicas, 2, app)


# A web server answering /cgi-bin/who with "<pod name> <client address>". On SIGTERM it
# keeps answering for a second, as a real server drains its connections.
WHO_SCRIPT = r"""mkdir -p /www/cgi-bin
printf '#!/bin/sh\necho "Content-Type: text/plain"\necho\necho "$(hostname) $REMOTE_ADDR"\n' \
  > /www/cgi-bin/who
chmod +x /www/cgi-bin/who
trap 'sleep 1; exit 0' TERM
httpd -f -p 8080 -h /www & wait
"""


def web_service(
    namespace: str, replicas: int, image: str = BUSYBOX, *, version: str = "1",
    service_type: str = "NodePort", node_port: int = 0,
) -> str:
    """An RC `web` of WHO_SCRIPT pods (named port `http`) and a Service `web` in front of it;
    a NodePort is allocated unless `node_port` is given. `version` changes the template."""
    script = "".join(f"              {line}\n" for line in WHO_SCRIPT.splitlines())
    fixed = f"\n      nodePort: {node_port}" if node_port else ""
    web = f"""\
        - name: web
          image: {image}
          imagePullPolicy: IfNotPresent
          command: [sh, -c]
          args:
            - |
{script}          env:
            - name: VERSION
              value: "{version}"
          ports:
            - name: http
              containerPort: 8080
"""
    return f"""\
{web_rc(namespace, replicas, 3, web)}---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: {namespace}
spec:
  type: {service_type}
  selector:
    app: web
  ports:
    - name: http
      port: 80
      targetPort: http{fixed}
"""


@dataclass(frozen=True)
class PlaybookRun:
    """What one ansible-playbook run did, from ansible-runner's events."""

    playbook: str
    status: str
    rc: int
    stats: dict[str, dict[str, int]]
    changed_tasks: list[str] = field(default_factory=list)
    failed_tasks: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def changed_per_host(self) -> dict[str, int]:
        """Number of changed tasks per host."""
        return dict(self.stats.get("changed", {}))

    def ok_per_host(self) -> dict[str, int]:
        """Number of ok tasks per host: every host the play reached."""
        return dict(self.stats.get("ok", {}))


EventHandler = Callable[[dict[str, Any]], bool]


def run_playbook(
    playbook: str,
    *extra_args: str,
    inventory: Path = LAB_INVENTORY,
    event_handler: EventHandler | None = None,
) -> PlaybookRun:
    """Run a playbook of this repository (path relative to it) and summarise the run.

    `extra_args` go to ansible-playbook as they are; `event_handler` sees every event as it
    comes (for progress lines). The run is timed from start to the last event.
    """
    import ansible_runner  # lazily: the unit tier collects without Ansible installed

    env = {
        # ansible-playbook of this interpreter's environment, even without an activated venv.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
    }
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="podyard-runner-") as private:
        runner = ansible_runner.run(
            private_data_dir=private,
            project_dir=str(REPO),
            playbook=str(REPO / playbook),
            inventory=str(inventory),
            cmdline=" ".join(extra_args) or None,
            envvars=env,
            quiet=True,
            event_handler=event_handler,
        )
        seconds = time.monotonic() - started
        changed, failed = _tasks(runner.events)
        stats = runner.stats or {}
        return PlaybookRun(
            playbook=playbook,
            status=str(runner.status),
            rc=int(runner.rc),
            stats={key: value for key, value in stats.items() if isinstance(value, dict)},
            changed_tasks=changed,
            failed_tasks=failed,
            seconds=seconds,
        )


def _tasks(events: Any) -> tuple[list[str], list[str]]:
    """`host: task` of each changed task, and `host: task: message` of each failed one."""
    changed: list[str] = []
    failed: list[str] = []
    for event in events:
        data = event.get("event_data", {})
        where = f"{data.get('host')}: {data.get('task')}"
        if event["event"] == "runner_on_ok" and data.get("res", {}).get("changed"):
            changed.append(where)
        elif event["event"] in FAILURES and not data.get("ignore_errors"):
            failed.append(f"{where}: {data.get('res', {}).get('msg', '')}")
    return changed, failed
