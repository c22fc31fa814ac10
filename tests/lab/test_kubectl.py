"""kubectl and the `kubernetes` Python client against the lab's controller, with the admin
kubeconfig site.yml fetched to `.lab/kubeconfig`.

The module pushes an RC of pods that print a numbered line every half second, spread over
both nodes, and a Service in front of them; what the clients show is checked against what the
nodes' engines run. kubectl is PODYARD_KUBECTL or the one on PATH (`make tools` installs
Debian's kubernetes-client when there is none). The repository is left with no pod running.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import urllib3
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .engine_api import ADMIN, CONTROLLER, engine_version
from .hosts import LAB_DIR, PKI_DIR, Lab, require_success, run_playbook
from .operate import push, running, wait_until
from .test_pki import expiring_copy

pytestmark = pytest.mark.lab
kube: Any = kubernetes  # the client's type hints are partial: its objects are read as Any

KUBECONFIG = LAB_DIR / "kubeconfig"
API_PORT = 6443
RC = "talker"
REPLICAS = 4
NS = "default"
IDLE = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: lab-idle\n"
TALK = ("[sh, -c, \"trap 'exit 0' TERM; i=0; while true; do echo line $i; i=$((i+1)); "
        "sleep 0.5; done & wait\"]")


def manifests(registry: str, replicas: int) -> dict[str, str]:
    """An RC of `replicas` talking pods and a Service selecting them."""
    return {RC: f"""\
apiVersion: v1
kind: ReplicationController
metadata:
  name: {RC}
spec:
  replicas: {replicas}
  selector:
    app: {RC}
  template:
    metadata:
      labels:
        app: {RC}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: app
          image: {registry}/podyard/busybox:1
          command: {TALK}
          ports: [{{containerPort: 8080, name: http}}]
---
apiVersion: v1
kind: Service
metadata:
  name: {RC}
spec:
  selector:
    app: {RC}
  ports: [{{port: 80, targetPort: http, name: http}}]
"""}


@dataclass
class Kubectl:
    lab: Lab
    binary: str
    home: Path

    def run(self, *args: str, kubeconfig: Path = KUBECONFIG, timeout: float = 60
            ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.binary, "--kubeconfig", str(kubeconfig), *args],
            capture_output=True, text=True, timeout=timeout, check=False,
            env={**os.environ, "HOME": str(self.home)},  # kubectl's discovery cache
        )

    def ok(self, *args: str) -> str:
        done = self.run(*args)
        assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
        return done.stdout

    def stream(self, *args: str) -> Stream:
        """kubectl with -w or -f, left running; its output read as it comes."""
        return Stream(subprocess.Popen(
            [self.binary, "--kubeconfig", str(KUBECONFIG), *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "HOME": str(self.home)},
        ))

    def core(self, kubeconfig: Path = KUBECONFIG) -> Any:
        api = kube.config.new_client_from_config(config_file=str(kubeconfig))
        return kube.client.CoreV1Api(api)

    def listed(self) -> list[str]:
        """The RC's pods the API lists, whatever their state."""
        pods = self.core().list_namespaced_pod(NS, label_selector=f"app={RC}").items
        return [p.metadata.name for p in pods]

    def ready(self) -> dict[str, tuple[str, str]]:
        """The RC's pods that the API shows Running and ready: {name: (node, pod IP)}."""
        pods = self.core().list_namespaced_pod(NS, label_selector=f"app={RC}").items
        return {
            p.metadata.name: (p.spec.node_name, p.status.pod_ip) for p in pods
            if p.status.phase == "Running" and p.metadata.deletion_timestamp is None
            and all(c.ready for c in p.status.container_statuses or [])
        }

    def apply(self, replicas: int) -> float:
        """Push the manifests with `replicas`; seconds until the nodes' engines run exactly
        that many of the RC's pods and the API shows them all Running."""
        started = time.monotonic()
        push(self.lab, **manifests(self.lab.registry, replicas))
        wait_until(f"{replicas} pods running on the engines",
                   lambda: engine_count(self.lab) == replicas, 180)
        engines = time.monotonic() - started
        wait_until(f"the API to list the engines' {replicas} pods, Running",
                   lambda: set(self.listed()) == set(self.ready()) == set(on_engines(self.lab)),
                   60)
        return engines


def engine_count(lab: Lab) -> int:
    return sum(name.startswith(f"{RC}-") for node in lab.nodes for name in running(lab, node))


def on_engines(lab: Lab) -> dict[str, str]:
    """The RC's pods the nodes' engines run: {name: node}."""
    return {name: node for node in lab.nodes for name in running(lab, node)
            if name.startswith(f"{RC}-")}


@pytest.fixture(scope="module")
def kubectl(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubectl]:
    binary = os.environ.get("PODYARD_KUBECTL") or shutil.which("kubectl")
    if not binary:  # a failure, never a skip: `make tools` installs it
        pytest.fail("kubectl is not installed (make tools installs kubernetes-client)",
                    pytrace=False)
    assert KUBECONFIG.exists(), "site.yml fetches the admin kubeconfig to .lab/kubeconfig"
    k = Kubectl(lab, binary, tmp_path_factory.mktemp("kubectl-home"))
    try:
        k.apply(REPLICAS)
        yield k
    finally:
        push(lab, idle=IDLE)


class Stream:
    """A kubectl that keeps printing (-w, -f): its output lines with the time each came."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        with self.process.stdout as stream:
            self.lines.extend((time.monotonic(), line) for line in stream)

    def text(self) -> str:
        return "".join(line for _, line in self.lines)

    def connected(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)
        self._reader.join(timeout=10)


# The kubeconfig and who may connect.


def test_kubeconfig_is_private_and_holds_the_admin_certificate(lab: Lab) -> None:
    assert KUBECONFIG.stat().st_mode & 0o777 == 0o600
    config = yaml.safe_load(KUBECONFIG.read_text())
    assert config["current-context"] == "podyard"
    [cluster] = config["clusters"]
    assert cluster["cluster"]["server"] == f"https://{lab.addresses[lab.masters[0]]}:{API_PORT}"
    [user] = config["users"]
    cert = x509.load_pem_x509_certificate(
        base64.b64decode(user["user"]["client-certificate-data"]))
    assert cert.subject.rfc4514_string() == "CN=kubernetes-admin,O=system:masters"
    # Signed by the API clients CA, which only the Kubernetes API trusts.
    ca = x509.load_pem_x509_certificate((PKI_DIR / "api-clients-ca.pem").read_bytes())
    assert cert.issuer == ca.subject


def test_the_admin_certificate_opens_no_engine(kubectl: Kubectl, lab: Lab, tmp_path: Path) -> None:
    # Whoever holds the kubeconfig reads the cluster; it does not make them root on the nodes.
    assert f"{RC}-" in kubectl.ok("get", "pods")
    for node in lab.nodes:
        assert engine_version(lab.addresses[node], CONTROLLER).startswith(b"HTTP/1.0 200")
        with pytest.raises((ssl.SSLError, ConnectionError)):
            engine_version(lab.addresses[node], ADMIN)
    # A certificate of the cluster CA (already root on the engines) may read the API too.
    done = kubectl.run("get", "pods", kubeconfig=kubeconfig_as(tmp_path, CONTROLLER))
    assert done.returncode == 0 and f"{RC}-" in done.stdout, done


def test_api_listens_on_the_masters_address_with_files_only_its_account_reads(lab: Lab) -> None:
    master = lab.masters[0]
    listening = lab.ssh(master, f"ss -Hltn 'sport = :{API_PORT}'").split("\n")
    assert {line.split()[3] for line in listening if line.strip()} == {
        f"{lab.addresses[master]}:{API_PORT}"}
    files = "/etc/podyard/pki/apiserver-key.pem /etc/podyard/pki/apiserver.pem " \
            "/etc/podyard/pki/api-client-ca.pem"
    assert set(lab.ssh(master, f"stat -c %U:%G:%a {files}").split()) == {"root:podyard:640"}
    assert lab.ssh(master, "stat -c %U:%a /etc/podyard/admin.conf").strip() == "root:600"
    served = lab.ssh(master, "openssl x509 -noout -ext subjectAltName "
                             "-in /etc/podyard/pki/apiserver.pem")
    for name in (f"IP Address:{lab.addresses[master]}", f"DNS:{master}", "DNS:kubernetes",
                 "DNS:kubernetes.default", "DNS:localhost", "IP Address:127.0.0.1"):
        assert name in served, served


def rogue_client(directory: Path) -> tuple[Path, Path]:
    """A client certificate and key from a CA the cluster does not know."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    cert = (x509.CertificateBuilder().subject_name(name("kubernetes-admin"))
            .issuer_name(name("someone else's CA")).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
            .sign(ca_key, hashes.SHA256()))
    cert_path, key_path = directory / "rogue.pem", directory / "rogue-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


def kubeconfig_as(directory: Path, client: tuple[Path, Path] | None) -> Path:
    """The admin kubeconfig with another user: no certificate, or the given one."""
    config = yaml.safe_load(KUBECONFIG.read_text())
    config["users"][0]["user"] = {} if client is None else {
        "client-certificate": str(client[0]), "client-key": str(client[1])}
    path = directory / ("anonymous" if client is None else "rogue")
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


@pytest.mark.parametrize("who", ["no certificate", "another CA's certificate"])
def test_clients_the_cluster_ca_did_not_sign_are_refused(
        kubectl: Kubectl, tmp_path: Path, who: str) -> None:
    config = kubeconfig_as(tmp_path, None if who == "no certificate" else rogue_client(tmp_path))
    # The probe works: the same kubeconfig with the admin's certificate lists the pods.
    assert f"{RC}-" in kubectl.ok("get", "pods")
    refused = kubectl.run("get", "pods", kubeconfig=config)
    assert refused.returncode != 0 and f"{RC}-" not in refused.stdout, refused
    with pytest.raises((kube.client.exceptions.ApiException, OSError, ssl.SSLError,
                        urllib3.exceptions.HTTPError)):
        kubectl.core(config).list_namespaced_pod(NS, _request_timeout=10)


# kubectl.


def test_get_pods_wide_shows_each_pods_node_and_ip(kubectl: Kubectl, lab: Lab) -> None:
    header, *rows = kubectl.ok("get", "pods", "-o", "wide", "-l", f"app={RC}").splitlines()
    columns = header.split()
    assert columns[:7] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    shown = {r.split()[0]: (r.split()[6], r.split()[5]) for r in rows}
    assert {name: node for name, (node, _) in shown.items()} == on_engines(lab)
    assert {node for node, _ in shown.values()} == set(lab.nodes)  # both nodes
    for row in rows:
        assert row.split()[1:3] == ["1/1", "Running"], row
    # Each IP is the address the pod has on its node (from the pod's own network namespace).
    for name, (node, ip) in shown.items():
        assert ipaddress.ip_address(ip) in ipaddress.ip_network(lab.pod_subnets[node]), name
        inside = lab.ssh(node, "docker exec $(docker ps -q --filter "
                               f"label=io.podyard.pod.name={name} --filter "
                               "label=io.podyard.container.name=app) hostname -i")
        assert inside.split() == [ip], (name, inside)


def test_get_rc_svc_ep_nodes_and_namespaces(kubectl: Kubectl, lab: Lab) -> None:
    rc = kubectl.ok("get", "rc", RC).splitlines()
    assert rc[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    assert rc[1].split()[:4] == [RC, str(REPLICAS), str(REPLICAS), str(REPLICAS)]
    svc, ep = kubectl.ok("get", "svc,ep", RC).strip().split("\n\n")
    name, kind, ip, external, ports = svc.splitlines()[1].split()[:5]
    assert (name, kind, external, ports) == (f"service/{RC}", "ClusterIP", "<none>", "80/TCP")
    assert ip.startswith("10.96.")
    endpoints = {e.rsplit(":", 1)[0] for e in ep.splitlines()[1].split()[1].split(",")}
    # kubectl shows at most three endpoints and "+ N more..."
    assert endpoints <= {pod_ip for _, pod_ip in kubectl.ready().values()}
    assert len(endpoints) == 3
    nodes = kubectl.ok("get", "nodes", "-o", "wide").splitlines()
    assert nodes[0].split()[:6] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP"]
    listed = {row.split()[0]: row.split() for row in nodes[1:]}
    assert set(listed) == set(lab.nodes)
    for node in lab.nodes:
        assert listed[node][1] == "Ready" and listed[node][5] == lab.addresses[node]
    assert {"default"} <= set(kubectl.ok("get", "ns", "-o", "name").replace(
        "namespace/", "").split())


def test_get_events_shows_the_rcs_pods_created_and_scheduled(kubectl: Kubectl) -> None:
    out = kubectl.ok("get", "events")
    assert out.splitlines()[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT",
                                           "MESSAGE"]
    assert any("SuccessfulCreate" in line and f"replicationcontroller/{RC}" in line
               for line in out.splitlines()), out
    assert any("Scheduled" in line and f"pod/{RC}-" in line for line in out.splitlines()), out


def test_describe_pod_and_node(kubectl: Kubectl, lab: Lab) -> None:
    name, (node, ip) = sorted(kubectl.ready().items())[0]
    pod = kubectl.ok("describe", "pod", name)
    assert f"Node:         {node}/{lab.addresses[node]}" in pod, pod
    assert f"IP:           {ip}" in pod
    assert f"Controlled By:  ReplicationController/{RC}" in pod
    assert "Container ID:  docker://" in pod and "State:          Running" in pod
    assert f"Successfully assigned {NS}/{name} to {node}" in pod  # the pod's events
    described = kubectl.ok("describe", "node", node)
    assert "Ready " in described and f"InternalIP:  {lab.addresses[node]}" in described
    assert name in described  # the pods it runs
    assert "docker://" in described


def test_get_pod_yaml(kubectl: Kubectl, lab: Lab) -> None:
    name, (node, ip) = sorted(kubectl.ready().items())[0]
    doc = yaml.safe_load(kubectl.ok("get", "pods", name, "-o", "yaml"))
    assert doc["kind"] == "Pod" and doc["metadata"]["name"] == name
    assert doc["spec"]["nodeName"] == node and doc["status"]["podIP"] == ip
    assert doc["status"]["hostIP"] == lab.addresses[node]
    assert doc["metadata"]["ownerReferences"][0]["name"] == RC
    assert doc["spec"]["containers"][0]["image"] == f"{lab.registry}/podyard/busybox:1"


def test_logs_and_logs_follow(kubectl: Kubectl) -> None:
    names = sorted(kubectl.ready())
    for name in names:  # whichever node runs it
        assert "line 0\n" in kubectl.ok("logs", name)
    follow = kubectl.stream("logs", "-f", "--tail=1", names[0])
    try:
        wait_until("three lines from kubectl logs -f", lambda: len(follow.lines) >= 3, 20)
    finally:
        follow.stop()
    numbers = [int(line.split()[1]) for _, line in follow.lines[:3]]
    assert numbers == sorted(numbers) and numbers[2] > numbers[0], follow.lines


def test_delete_pod_is_refused_with_podyards_message(kubectl: Kubectl, lab: Lab) -> None:
    name = sorted(kubectl.ready())[0]
    done = kubectl.run("delete", "pod", name)
    assert done.returncode != 0
    assert "MethodNotAllowed" in done.stderr and "podyard is read-only" in done.stderr
    assert "Git repository" in done.stderr, done.stderr
    assert name in on_engines(lab)


def test_get_pods_watch_prints_a_pod_created_by_a_push(kubectl: Kubectl) -> None:
    before = set(kubectl.ready())
    watching = kubectl.stream("get", "pods", "-w", "-l", f"app={RC}")
    try:
        wait_until("kubectl get pods -w to list", lambda: len(watching.lines) > len(before), 30)
        kubectl.apply(REPLICAS + 1)
        [new] = set(kubectl.ready()) - before
        wait_until("kubectl get pods -w to show the new pod Running",
                   lambda: any(new in line and "Running" in line for _, line in watching.lines),
                   15)
    finally:
        watching.stop()
        kubectl.apply(REPLICAS)


# The Python client.


def test_python_client_lists_watches_a_pushed_scale_up_and_reads_a_log(
        kubectl: Kubectl, lab: Lab) -> None:
    core = kubectl.core()
    listed = core.list_namespaced_pod(NS, label_selector=f"app={RC}")
    assert {p.metadata.name: p.spec.node_name for p in listed.items} == on_engines(lab)
    before = {p.metadata.name for p in listed.items}
    seen: list[tuple[str, str, str]] = []

    def follow() -> None:
        """Watch from the list's resourceVersion until two new pods are Running."""
        watch = kube.watch.Watch()
        for event in watch.stream(core.list_namespaced_pod, NS, label_selector=f"app={RC}",
                                  resource_version=listed.metadata.resource_version,
                                  timeout_seconds=120):
            pod = event["object"]
            seen.append((event["type"], pod.metadata.name, pod.status.phase))
            if len({n for _, n, phase in seen if phase == "Running"} - before) == 2:
                watch.stop()

    watcher = threading.Thread(target=follow, daemon=True)
    watcher.start()
    try:
        kubectl.apply(REPLICAS + 2)
        new = set(kubectl.ready()) - before
        assert len(new) == 2
        watcher.join(timeout=15)
        assert not watcher.is_alive(), f"the watch did not see both new pods Running: {seen}"
        assert new <= {n for kind, n, _ in seen if kind == "ADDED"}, seen
        name = sorted(new)[0]
        wait_until("two lines in the new pod's log",
                   lambda: core.read_namespaced_pod_log(name, NS).count("line ") >= 2, 10)
        log = core.read_namespaced_pod_log(name, NS, tail_lines=2)
        assert log.count("line ") == 2, log
    finally:
        kubectl.apply(REPLICAS)


# Streams held open do not hold the controller up.


def test_pushes_converge_as_fast_with_a_watch_and_a_log_follow_connected(
        kubectl: Kubectl, lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    alone = kubectl.apply(REPLICAS + 2)
    kubectl.apply(REPLICAS)
    before = set(on_engines(lab))
    watching = kubectl.stream("get", "pods", "-w")
    following = kubectl.stream("logs", "-f", sorted(before)[0])
    try:
        wait_until("both streams to print", lambda: bool(watching.lines and following.lines), 30)
        streamed = kubectl.apply(REPLICAS + 2)
        new = set(on_engines(lab)) - before
        assert len(new) == 2
        # Both are still connected and still streaming after the passes that acted.
        wait_until("the watch to show the new pods Running",
                   lambda: all(f"{n} " in watching.text() for n in new), 15)
        count = len(following.lines)
        wait_until("more lines from the follow", lambda: len(following.lines) > count + 1, 10)
        assert watching.connected() and following.connected()
    finally:
        watching.stop()
        following.stop()
        kubectl.apply(REPLICAS)
    with capsys.disabled():
        print(f"\npush -> {REPLICAS + 2} pods running: {alone:.1f} s alone, "
              f"{streamed:.1f} s with kubectl get pods -w and logs -f connected")


def test_the_fetched_kubeconfig_is_the_one_the_master_wrote(lab: Lab) -> None:
    # Compared by digest: an assertion must never print a key.
    written = lab.ssh(lab.masters[0], "sha256sum /etc/podyard/admin.conf").split()[0]
    assert written == hashlib.sha256(KUBECONFIG.read_bytes()).hexdigest()


# Renewal, last: it restarts the controller.


# What the controller role changes when podyard's source changed since the last run.
REINSTALL = {"Copy the wheels to the master", "Reinstall podyard when the wheels changed",
             "Record which source podyard was installed from", "Restart the controller"}


def served_serial(address: str) -> int:
    """The serial number of the certificate the API presents (to the admin's certificate)."""
    config = yaml.safe_load(KUBECONFIG.read_text())
    user = config["users"][0]["user"]
    with tempfile.TemporaryDirectory() as scratch:
        cert, key = Path(scratch) / "admin.pem", Path(scratch) / "admin-key.pem"
        cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
        key.touch(mode=0o600)
        key.write_bytes(base64.b64decode(user["client-key-data"]))
        context = ssl.create_default_context(cafile=str(PKI_DIR / "ca.pem"))
        context.load_cert_chain(str(cert), str(key))
        with (socket.create_connection((address, API_PORT), timeout=10) as raw,
              context.wrap_socket(raw, server_hostname=address) as tls):
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def test_an_api_certificate_expiring_within_30_days_is_reissued_and_served(
        kubectl: Kubectl, lab: Lab) -> None:
    master = lab.masters[0]
    path = PKI_DIR / f"{master}-apiserver.pem"
    path.write_bytes(expiring_copy(x509.load_pem_x509_certificate(path.read_bytes()), days=10))
    before = {p.name: p.read_bytes() for p in PKI_DIR.glob("*.pem")}
    run = run_playbook("site.yml", "--limit", master)
    require_success(run, "site.yml with the API's certificate 10 days from expiry")
    after = {p.name: p.read_bytes() for p in PKI_DIR.glob("*.pem")}
    assert {name for name in before if before[name] != after[name]} == {path.name}
    renewed = x509.load_pem_x509_certificate(path.read_bytes())
    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=30)
    assert renewed.not_valid_after_utc > soon
    tasks = {task.split(": ", 1)[1] for task in run.changed_tasks}
    # A source tree changed since the last run also reinstalls podyard: that is not the PKI.
    assert tasks - REINSTALL == {
        "Sign the API server's certificate (again when it expires within the renewal period)",
        "Copy the Kubernetes API's certificate",
        "Restart the controller with its new certificates",
    }, run.changed_tasks
    # The controller was restarted with it, and kubectl goes on with the same kubeconfig.
    address = lab.addresses[master]
    wait_until("the renewed certificate served", lambda: _serves(address, renewed), 60)
    wait_until("kubectl to list the pods again",
               lambda: kubectl.run("get", "pods").returncode == 0, 60)


def _serves(address: str, cert: x509.Certificate) -> bool:
    try:
        return served_serial(address) == cert.serial_number
    except OSError:
        return False
