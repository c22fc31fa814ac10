"""The lab as the tests see it: its hosts, playbook runs, SSH and the engines' TLS API.

Playbooks run through ansible-runner, whose event stream gives per-host stats and the tasks
that changed or failed.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from ..support import PlaybookRun
from ..support import run_playbook as run_playbook  # re-exported: the lab tests use it

REPO = Path(__file__).resolve().parents[2]
INVENTORY = REPO / "inventory" / "lab"
LAB_DIR = REPO / ".lab"
PKI_DIR = LAB_DIR / "pki"
SSH_KEY = LAB_DIR / "id_ed25519"
# Written once site.yml has provisioned the lab; removed by the teardown.
STAMP = LAB_DIR / "provisioned"
SSH_OPTIONS = [
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
    "-o",
    "ConnectTimeout=10",
    "-o",
    "BatchMode=yes",
]


def require_success(run: PlaybookRun, what: str) -> None:
    """Fail the session with the hosts and tasks that failed."""
    if run.status != "successful":
        listing = "\n  ".join(run.failed_tasks) or "(no failed task reported)"
        pytest.fail(f"{what} failed ({run.status}, rc={run.rc}):\n  {listing}")


@dataclass(frozen=True)
class Lab:
    """The provisioned lab: its hosts' addresses, and ways to reach them."""

    addresses: dict[str, str]
    pod_subnets: dict[str, str]
    masters: list[str]
    nodes: list[str]
    registry: str
    first_run: PlaybookRun | None

    def ssh(self, host: str, command: str, user: str = "root", check: bool = True) -> str:
        """Run a shell command on a lab host over SSH and return its output."""
        result = subprocess.run(
            ["ssh", "-i", str(SSH_KEY), *SSH_OPTIONS, f"{user}@{self.addresses[host]}", command],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{host}: `{command}` exited {result.returncode}: {result.stderr.strip()}"
            )
        return result.stdout

    def engine(self, host: str, with_client_cert: bool = True) -> docker.DockerClient:
        """A Docker client for a host's TLS API (with the controller's certificate)."""
        client_cert = (
            (str(PKI_DIR / "controller.pem"), str(PKI_DIR / "controller-key.pem"))
            if with_client_cert
            else None
        )
        tls = docker.tls.TLSConfig(
            client_cert=client_cert, ca_cert=str(PKI_DIR / "ca.pem"), verify=True
        )
        client = docker.DockerClient(
            base_url=f"tcp://{self.addresses[host]}:2376", tls=tls, timeout=60, version="1.41"
        )
        # requests lets REQUESTS_CA_BUNDLE (set on many machines) replace the cluster CA.
        client.api.trust_env = False
        return client


def read_inventory() -> dict[str, Any]:
    """The lab inventory's groups and host variables."""
    loaded: dict[str, Any] = yaml.safe_load((INVENTORY / "hosts.yml").read_text())
    return loaded["all"]["children"]  # type: ignore[no-any-return]


def describe_lab(first_run: PlaybookRun | None = None) -> Lab:
    """The lab as the inventory describes it (whether or not it is up)."""
    groups = read_inventory()
    masters = list(groups["masters"]["hosts"])
    nodes = list(groups["nodes"]["hosts"])
    hostvars = {**groups["masters"]["hosts"], **groups["nodes"]["hosts"]}
    addresses = {host: variables["ansible_host"] for host, variables in hostvars.items()}
    return Lab(
        addresses=addresses,
        pod_subnets={node: hostvars[node]["podyard_pod_subnet"] for node in nodes},
        masters=masters,
        nodes=nodes,
        registry=f"{addresses[masters[0]]}:5000",
        first_run=first_run,
    )


def lab_is_up(hosts: list[str]) -> bool:
    """Whether every lab host's container is running and the lab tests provisioned it."""
    return STAMP.exists() and hosts_running(hosts)


def hosts_running(hosts: list[str]) -> bool:
    """Whether every lab host's container is running (`make lab` and the lab tests leave them
    so)."""
    client = docker.from_env()
    try:
        for host in hosts:
            try:
                container = client.containers.get(f"podyard-lab-{host}")
            except docker.errors.NotFound:
                return False
            if container.status != "running":
                return False
    finally:
        client.close()
    return True


def running_lab() -> Lab:
    """The lab, for a benchmark: exits with a message when its hosts are not running."""
    lab = describe_lab()
    if not hosts_running(lab.masters + lab.nodes):
        raise SystemExit("the lab is not up: run `make lab` first")
    return lab


def wait_for_ssh(lab: Lab, host: str, timeout: float = 90) -> None:
    """Wait until a host accepts SSH and systemd has finished booting."""
    deadline = time.monotonic() + timeout
    while True:
        out = lab.ssh(host, "systemctl is-system-running --wait", check=False).strip()
        if out in ("running", "degraded"):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{host} did not come back within {timeout} s (state {out!r})")
        time.sleep(1)
