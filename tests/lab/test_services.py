"""Services across the lab's nodes: pushed manifests, real engines, traffic from real pods.

A web tier spread over both nodes behind a NodePort Service, a client pinned to node1, and the
primer's mysql + myweb pair (busybox stand-ins) that must find each other by env and by name.
"""

from __future__ import annotations

import re
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator

import pytest

from ..support import web_service
from .hosts import Lab
from .operate import push, wait_until

pytestmark = pytest.mark.lab

NODE_PORT = 30088

def manifests(registry: str, replicas: int = 3) -> dict[str, str]:
    image = f"{registry}/podyard/busybox:1"
    sleeper = "[sh, -c, \"trap 'exit 0' TERM; sleep 3600 & wait\"]"
    return {
        "web": web_service("default", replicas, image, node_port=NODE_PORT),
        "client": f"""\
apiVersion: v1
kind: Pod
metadata:
  name: client
spec:
  nodeSelector:
    zone: a
  terminationGracePeriodSeconds: 1
  containers:
    - name: client
      image: {image}
      command: {sleeper}
""",
        "mysql": f"""\
apiVersion: v1
kind: ReplicationController
metadata:
  name: mysql
spec:
  replicas: 1
  selector:
    app: mysql
  template:
    metadata:
      labels:
        app: mysql
    spec:
      nodeSelector:
        zone: b
      terminationGracePeriodSeconds: 1
      containers:
        - name: mysql
          image: {image}
          command: [nc, -ll, -p, "3306", -e, echo, mysql-ok]
          ports:
            - containerPort: 3306
---
apiVersion: v1
kind: Service
metadata:
  name: mysql
spec:
  selector:
    app: mysql
  ports:
    - port: 3306
---
apiVersion: v1
kind: Pod
metadata:
  name: myweb
spec:
  nodeSelector:
    zone: a
  terminationGracePeriodSeconds: 1
  containers:
    - name: myweb
      image: {image}
      command: {sleeper}
""",
    }


class Pods:
    """Find pods on the lab's engines and run commands inside them."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.clients = {node: lab.engine(node) for node in lab.nodes}

    def running(self, prefix: str) -> dict[str, tuple[str, str]]:
        """Running pods whose name starts with prefix: name -> (node, pod IP)."""
        found = {}
        for node, client in self.clients.items():
            for c in client.api.containers(filters={"label": [
                "io.podyard.managed=true", "io.podyard.container.name=POD",
                "io.podyard.pod.namespace=default",
            ]}):
                name = c["Labels"]["io.podyard.pod.name"]
                if name.startswith(prefix):
                    found[name] = (node, c["NetworkSettings"]["Networks"]["bridge"]["IPAddress"])
        return found

    def run(self, pod: str, script: str, timeout: int = 120) -> str:
        """Run a script in the pod's app container (waiting a little for it to start)."""
        deadline = time.monotonic() + 30
        while True:
            node, _ = self.running(pod)[pod]
            api = self.clients[node].api
            apps = [c for c in api.containers(filters={"label": [
                "io.podyard.managed=true", f"io.podyard.pod.name={pod}",
                "io.podyard.pod.namespace=default",
            ]}) if c["Labels"]["io.podyard.container.name"] != "POD"]
            if apps or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert apps, f"pod {pod} has no running app container"
        started = api.exec_create(apps[0]["Id"], ["timeout", str(timeout), "sh", "-c", script])
        return str(api.exec_start(started["Id"]).decode(errors="replace"))

    def requests(self, pod: str, url: str, count: int) -> Counter[str]:
        script = f"for i in $(seq {count}); do timeout 3 wget -qO- {url} || echo FAILED; done"
        return Counter(line.split()[0] for line in self.run(pod, script).splitlines() if line)

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


@pytest.fixture(scope="module")
def pods(lab: Lab) -> Iterator[Pods]:
    push(lab, **manifests(lab.registry))
    found = Pods(lab)
    wait_until("3 web pods, the client, mysql and myweb running", lambda: (
        len(found.running("web-")) == 3 and {"client", "myweb"} <= set(found.running(""))
        and len(found.running("mysql-")) == 1
    ), timeout=180)
    wait_until("the web Service to answer from the client", lambda: (
        "FAILED" not in found.requests("client", "http://web/cgi-bin/who", 3)
    ), timeout=60)
    yield found
    found.close()


def test_cluster_ip_spreads_over_both_nodes_by_ip_and_every_dns_name(pods: Pods) -> None:
    web = pods.running("web-")
    assert {node for node, _ in web.values()} == {"node1", "node2"}, web
    address = pods.run("client", "nslookup web.default.svc.cluster.local 2>&1")
    cluster_ip = re.findall(r"Address: (10\.96\.\d+\.\d+)", address)[0]
    client_ip = pods.running("client")["client"][1]
    for name in (cluster_ip, "web", "web.default", "web.default.svc.cluster.local"):
        answers = pods.requests("client", f"http://{name}/cgi-bin/who", 60)
        assert "FAILED" not in answers, (name, answers)
        assert set(answers) == set(web), (name, answers)
    # Pod to pod across nodes keeps the client's address.
    seen = {line.split()[1].removeprefix("[::ffff:").rstrip("]") for line in pods.run(
        "client", "for i in 1 2 3 4 5 6; do timeout 3 wget -qO- http://web/cgi-bin/who; done"
    ).splitlines()}
    assert seen == {client_ip}, seen


def test_the_node_port_answers_on_every_nodes_address(lab: Lab, pods: Pods) -> None:
    web = set(pods.running("web-"))
    for node in lab.nodes:
        served = set()
        for _ in range(12):
            with socket.create_connection((lab.addresses[node], NODE_PORT), timeout=5) as conn:
                conn.sendall(b"GET /cgi-bin/who HTTP/1.0\r\n\r\n")
                answer = b"".join(iter(lambda: conn.recv(4096), b"")).decode()
            served.add(re.split(r"\r?\n\r?\n", answer, maxsplit=1)[-1].split()[0])
        assert served <= web and len(served) > 1, (node, served)


def test_myweb_finds_mysql_by_env_and_by_name(pods: Pods) -> None:
    env = pods.run("myweb", "env")
    assert re.search(r"^MYSQL_SERVICE_HOST=10\.96\.\d+\.\d+$", env, re.M), env
    assert "MYSQL_SERVICE_PORT=3306" in env.splitlines()
    by_env = pods.run("myweb", "nc $MYSQL_SERVICE_HOST $MYSQL_SERVICE_PORT </dev/null")
    by_name = pods.run("myweb", "nc mysql 3306 </dev/null")
    assert "mysql-ok" in by_env and "mysql-ok" in by_name, (by_env, by_name)


def test_a_flushed_nat_table_and_a_restarted_engine_are_repaired(
    lab: Lab, pods: Pods
) -> None:
    before = pods.run("client", "nslookup web.default.svc.cluster.local 2>&1")
    # Someone flushes node2's whole nat table: the rule agent notices and the rules return.
    lab.ssh("node2", "iptables -t nat -F")
    wait_until("node2's service rules to be back", lambda: "PODYARD-SERVICES" in lab.ssh(
        "node2", "iptables -t nat -S PREROUTING"), timeout=20)
    # The engine restarts (which also restores Docker's own nat rules): its pods and agents
    # come back, with the same ClusterIPs.
    lab.ssh("node2", "systemctl restart docker")
    wait_until("3 web pods running again", lambda: len(pods.running("web-")) == 3, timeout=120)
    wait_until("the Service to answer from every pod again", lambda: set(
        pods.requests("client", "http://web/cgi-bin/who", 30)) == set(pods.running("web-")),
        timeout=60)
    after = pods.run("client", "nslookup web.default.svc.cluster.local 2>&1")
    assert re.findall(r"Address: (10\.96\.\S+)", after) == re.findall(
        r"Address: (10\.96\.\S+)", before)
    # A web pod on node2 reaches its own Service, itself included (the hairpin, masqueraded by
    # the Services' POSTROUTING chain, which the restarted pod network must not shadow).
    here = next(name for name, (node, _) in pods.running("web-").items() if node == "node2")
    answers = pods.requests(here, "http://web/cgi-bin/who", 30)
    assert "FAILED" not in answers and here in answers, answers


def test_scaling_moves_the_endpoints(lab: Lab, pods: Pods) -> None:
    for replicas in (5, 2):
        push(lab, **manifests(lab.registry, replicas))
        wait_until(f"{replicas} web pods", _has(pods, replicas), timeout=120)
        wait_until("the endpoints to follow", lambda: set(pods.requests(
            "client", "http://web/cgi-bin/who", 30)) == set(pods.running("web-")), timeout=30)


def _has(pods: Pods, replicas: int) -> Callable[[], bool]:
    return lambda: len(pods.running("web-")) == replicas
