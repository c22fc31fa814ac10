"""`reconcile --watch --api-listen` against the real engine, read by the real kubectl and the
official Python client over mutual TLS.

One controller serves the whole module: an RC of logging pods and a Service, in a scope and
namespace of their own. The tests that scale the RC come last. kubectl is the one on PATH
(`make tools` installs Debian's kubernetes-client) or PODYARD_KUBECTL.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import kubernetes
import pytest

from . import pki
from .conftest import Yard, cleanup
from .workloads import BUSYBOX

pytestmark = pytest.mark.docker
kube: Any = kubernetes  # the client's type hints are partial: its objects are read as Any

LOGGER = ("[sh, -c, \"trap 'exit 0' TERM; i=0; while true; do echo line $i; i=$((i+1)); "
          "sleep 0.5; done & wait\"]")


def manifests(ns: str, replicas: int) -> str:
    return f"""apiVersion: v1
kind: Namespace
metadata:
  name: {ns}
---
apiVersion: v1
kind: ReplicationController
metadata:
  name: web
  namespace: {ns}
  labels: {{tier: front}}
spec:
  replicas: {replicas}
  selector: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
      annotations: {{example.org/note: hello}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
        - name: app
          image: {BUSYBOX}
          command: {LOGGER}
          ports: [{{containerPort: 8080, name: http}}]
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: {ns}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: http, name: http}}]
"""


@dataclass
class Served:
    yard: Yard
    files: pki.Files
    port: int
    kubeconfig: Path
    home: Path
    process: subprocess.Popen[str]
    kubectl: str
    scaled: list[str] = field(default_factory=list)

    @property
    def ns(self) -> str:
        return self.yard.namespace

    def write(self, replicas: int) -> None:
        tmp = self.yard.file.with_suffix(".tmp")
        tmp.write_text(manifests(self.ns, replicas))
        tmp.replace(self.yard.file)

    def run(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.kubectl, "--kubeconfig", str(self.kubeconfig), "-n", self.ns, *args],
            capture_output=True, text=True, timeout=timeout,
            env={**os.environ, "HOME": str(self.home)},  # kubectl's discovery cache
        )

    def kubectl_ok(self, *args: str) -> str:
        done = self.run(*args)
        assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
        return done.stdout

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [self.kubectl, "--kubeconfig", str(self.kubeconfig), "-n", self.ns, *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "HOME": str(self.home)},
        )

    def https(self, path: str, cert: Path | None, key: Path | None) -> tuple[int, bytes]:
        context = ssl.create_default_context(cafile=str(self.files.ca))
        if cert is not None:
            context.load_cert_chain(str(cert), str(key))
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=context, timeout=10)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def core(self) -> Any:
        api = kube.config.new_client_from_config(config_file=str(self.kubeconfig))
        return kube.client.CoreV1Api(api)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_kubeconfig(path: Path, files: pki.Files, port: int, cert: Path, key: Path) -> None:
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "podyard", "cluster": {
            "server": f"https://127.0.0.1:{port}", "certificate-authority": str(files.ca)}}],
        "users": [{"name": "admin", "user": {
            "client-certificate": str(cert), "client-key": str(key)}}],
        "contexts": [{"name": "podyard", "context": {"cluster": "podyard", "user": "admin"}}],
        "current-context": "podyard",
    }))


@pytest.fixture(scope="module")
def served(engine: docker.APIClient, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Served]:
    kubectl = os.environ.get("PODYARD_KUBECTL") or shutil.which("kubectl")
    if not kubectl:  # a failure, never a skip: `make tools` installs it
        pytest.fail("kubectl is not installed (make tools installs kubernetes-client)",
                    pytrace=False)
    base = tmp_path_factory.mktemp("api")
    root, certs, home = base / "manifests", base / "pki", base / "home"
    for d in (root, certs, home):
        d.mkdir()
    files = pki.make(certs)
    port = free_port()
    config = base / "kubeconfig"
    write_kubeconfig(config, files, port, files.client_cert, files.client_key)
    yard = Yard(engine, root)
    tmp = yard.file.with_suffix(".tmp")
    tmp.write_text(manifests(yard.namespace, 1))
    tmp.replace(yard.file)
    process = yard.watch("--api-listen", f"127.0.0.1:{port}", "--api-cert",
                         str(files.server_cert), "--api-key", str(files.server_key),
                         "--api-client-ca", str(files.ca))
    s = Served(yard, files, port, config, home, process, kubectl)
    try:
        yard.wait_for(lambda: _running(s) == 1, "the first pod, Running in the API", 120)
        yield s
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        finally:
            cleanup(engine, yard.namespace)


def _running(s: Served) -> int:
    """Running pods as the API lists them (0 while it does not answer yet)."""
    try:
        status, body = s.https(f"/api/v1/namespaces/{s.ns}/pods", s.files.client_cert,
                               s.files.client_key)
    except OSError:
        return 0
    items = json.loads(body).get("items", []) if status == 200 else []
    return sum(p["status"].get("phase") == "Running" and all(
        c.get("ready") for c in p["status"].get("containerStatuses", [])) for p in items)


class Output:
    """A process's output lines with the time each came, filled in as they come."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[tuple[float, str]] = []
        stream = process.stdout
        assert stream is not None
        self._reader = threading.Thread(
            target=lambda: self.lines.extend((time.monotonic(), line) for line in stream),
            daemon=True)
        self._reader.start()

    def end(self) -> None:
        self.process.kill()
        self.process.wait()
        self._reader.join(10)
        if self.process.stdout is not None:
            self.process.stdout.close()


def pod_names(s: Served) -> list[str]:
    return s.kubectl_ok("get", "pods", "-o", "name").split()


def test_get_pods_wide_shows_kubectls_columns_and_the_node(served: Served) -> None:
    out = served.kubectl_ok("get", "pods", "-o", "wide")
    header, *rows = out.splitlines()
    assert header.split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE",
                              "NOMINATED", "NODE", "READINESS", "GATES"]
    [row] = rows
    name, ready, status, restarts = row.split()[:4]
    assert name.startswith("web-") and (ready, status, restarts) == ("1/1", "Running", "0")
    assert socket.gethostname() in row.split()


def test_get_rc_svc_ep_nodes_ns(served: Served) -> None:
    rc = served.kubectl_ok("get", "rc").splitlines()
    assert rc[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    assert rc[1].split()[:4] == ["web", "1", "1", "1"]
    svc, ep = served.kubectl_ok("get", "svc,ep").strip().split("\n\n")
    assert svc.splitlines()[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP",
                                           "PORT(S)", "AGE"]
    name, kind, ip, external, ports = svc.splitlines()[1].split()[:5]
    assert (name, kind, external, ports) == ("service/web", "ClusterIP", "<none>", "80/TCP")
    assert ip.startswith("10.96.")
    assert ep.splitlines()[1].split()[0] == "endpoints/web"
    assert ep.splitlines()[1].split()[1].endswith(":8080")
    nodes = served.kubectl_ok("get", "nodes", "-o", "wide").splitlines()
    assert nodes[0].split()[:5] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert nodes[1].split()[:2] == [socket.gethostname(), "Ready"]
    assert "docker://" in nodes[1]
    namespaces = served.kubectl_ok("get", "ns").split()
    assert served.ns in namespaces and "default" in namespaces


def test_get_events_shows_what_podyard_did(served: Served) -> None:
    out = served.kubectl_ok("get", "events")
    assert out.splitlines()[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT",
                                           "MESSAGE"]
    assert "SuccessfulCreate" in out and "replicationcontroller/web" in out
    assert "Scheduled" in out


def test_describe_pod_and_yaml(served: Served) -> None:
    [pod] = pod_names(served)
    described = served.kubectl_ok("describe", pod)
    assert "Controlled By:  ReplicationController/web" in described
    assert "example.org/note: hello" in described
    assert "Container ID:  docker://" in described
    assert "Successfully assigned" in described  # the pod's events
    doc = json.loads(served.kubectl_ok("get", pod, "-o", "json"))
    assert doc["metadata"]["ownerReferences"][0]["controller"] is True
    assert doc["status"]["containerStatuses"][0]["state"]["running"]["startedAt"]
    listed = served.kubectl_ok("get", "pods", "-o", "yaml")
    assert "kind: Pod\n" in listed and f"nodeName: {socket.gethostname()}" in listed


def test_logs_tail_and_follow(served: Served) -> None:
    [pod] = pod_names(served)
    assert "line 0" in served.kubectl_ok("logs", pod)
    assert len(served.kubectl_ok("logs", pod, "--tail=1").splitlines()) == 1
    follow = Output(served.popen("logs", "-f", pod, "--tail=1"))
    served.yard.wait_for(lambda: len(follow.lines) >= 2, "two lines from kubectl logs -f", 20)
    follow.end()
    first, second = (int(line.split()[1]) for _, line in follow.lines[:2])
    assert second > first  # written after the follow began


def test_writes_are_refused_with_where_changes_go(served: Served) -> None:
    [pod] = pod_names(served)
    done = served.run("delete", pod)
    assert done.returncode != 0
    assert "MethodNotAllowed" in done.stderr and "podyard is read-only" in done.stderr
    assert "Git repository" in done.stderr
    assert served.run("scale", "rc/web", "--replicas=3").returncode != 0
    assert pod_names(served) == [pod]


def test_python_client_lists_and_reads_logs(served: Served) -> None:
    core = served.core()
    pods = core.list_namespaced_pod(served.ns, label_selector="app=web")
    [pod] = pods.items
    assert pod.status.phase == "Running" and pod.metadata.resource_version
    assert pod.spec.containers[0].ports[0].container_port == 8080
    log = core.read_namespaced_pod_log(pod.metadata.name, served.ns, tail_lines=2)
    assert log.count("line") == 2
    assert core.list_node().items[0].status.node_info.container_runtime_version.startswith(
        "docker://")


def test_a_too_old_resource_version_is_gone(served: Served) -> None:
    status, body = served.https(f"/api/v1/namespaces/{served.ns}/pods?watch=1&resourceVersion=1",
                                served.files.client_cert, served.files.client_key)
    assert status == 410
    assert json.loads(body)["reason"] == "Expired"


@pytest.mark.parametrize("who", ["no certificate", "another CA's certificate"])
def test_clients_the_ca_did_not_sign_get_nothing(served: Served, who: str) -> None:
    cert, key = ((None, None) if who == "no certificate"
                 else (served.files.rogue_cert, served.files.rogue_key))
    with pytest.raises((ssl.SSLError, ConnectionError)):
        served.https("/version", cert, key)


def test_watchers_see_a_scale_up_as_it_happens(served: Served) -> None:
    before = {name.removeprefix("pod/") for name in pod_names(served)}
    watching = Output(served.popen("get", "pods", "-w"))
    lines = watching.lines
    seen: list[tuple[str, str]] = []

    def python_watch() -> None:
        w = kube.watch.Watch()
        for event in w.stream(served.core().list_namespaced_pod, served.ns, timeout_seconds=60):
            seen.append((event["type"], event["object"].metadata.name))
            if event["type"] == "ADDED" and seen[-1][1] not in before:
                w.stop()

    watcher = threading.Thread(target=python_watch, daemon=True)
    watcher.start()
    served.yard.wait_for(lambda: len(lines) >= 2, "kubectl get pods -w to list", 30)
    served.write(2)
    served.yard.wait_for(lambda: _running(served) == 2, "the second pod, Running", 60)
    running_at = time.monotonic()
    new = ({name.removeprefix("pod/") for name in pod_names(served)} - before).pop()
    served.yard.wait_for(
        lambda: any(new in line and "Running" in line for _, line in lines),
        "kubectl get pods -w to show the new pod Running", 10)
    shown_at = next(t for t, line in lines if new in line and "Running" in line)
    watching.end()
    assert shown_at - running_at < 1.0
    watcher.join(30)
    assert ("ADDED", new) in seen
