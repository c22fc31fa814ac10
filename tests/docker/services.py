"""Manifests and probes for the Services tests: a web tier that names its pod and its
client, a UDP echo, a client pod, and ways to send traffic from inside a pod."""

from __future__ import annotations

import socket
import struct
import subprocess
from collections import Counter

import docker

from reconciler import labels
from reconciler.plan import rules

from ..support import web_service
from .workloads import BUSYBOX

CLIENT = ("sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait")


def _indent(text: str, spaces: int) -> str:
    return "".join(" " * spaces + line + "\n" for line in text.splitlines())


def namespace(ns: str) -> str:
    return f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"


def web(ns: str, replicas: int, *, version: str = "1", service_type: str = "NodePort") -> str:
    """An RC of httpd pods and a Service in front of it (named port, NodePort allocated)."""
    return web_service(ns, replicas, version=version, service_type=service_type)


def udp_echo(ns: str, image: str, version: str = "1") -> str:
    """A UDP server whose answer names its pod: dnsmasq (from podyard's node agent image,
    busybox has no UDP server) answering `who.echo` with the pod's own address."""
    return f"""apiVersion: v1
kind: ReplicationController
metadata:
  name: echo
  namespace: {ns}
spec:
  replicas: 1
  selector:
    app: echo
  template:
    metadata:
      labels:
        app: echo
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: echo
          image: {image}
          imagePullPolicy: Never
          command: ["/usr/sbin/dnsmasq", "-k", "-p", "9999", "--no-resolv", "--no-hosts",
                    "--interface-name=who.echo,eth0", "--user=nobody", "--group=nogroup",
                    "--pid-file=/tmp/dnsmasq.pid"]
          env:
            - name: VERSION
              value: "{version}"
---
apiVersion: v1
kind: Service
metadata:
  name: echo
  namespace: {ns}
spec:
  selector:
    app: echo
  ports:
    - protocol: UDP
      port: 53535
      targetPort: 9999
"""


def agent_image(api: docker.APIClient) -> str:
    found = api.images(name="podyard/node-agent")
    assert found, "the node agent image is not built"
    return str(found[0]["RepoTags"][0])


def ask(address: str, port: int, *, source_port: int) -> str:
    """One DNS query for `who.echo` from this host, from a fixed source port; the address
    it answers, or "" when nothing answers within two seconds."""
    query = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
    query += b"".join(bytes([len(p)]) + p for p in (b"who", b"echo")) + b"\0"
    query += struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("", source_port))
        s.settimeout(2)
        s.sendto(query, (address, port))
        try:
            answer, _ = s.recvfrom(512)
        except TimeoutError:
            return ""
    if struct.unpack(">H", answer[6:8])[0] == 0:
        return ""
    return socket.inet_ntoa(answer[-4:])  # the one A record's address comes last


def client(ns: str, name: str = "client") -> str:
    command = ", ".join(f'"{part}"' for part in CLIENT)
    return f"""apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: {ns}
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: client
      image: {BUSYBOX}
      imagePullPolicy: IfNotPresent
      command: [{command}]
"""


def app_container(api: docker.APIClient, ns: str, pod: str) -> str:
    """The id of a pod's (first) app container."""
    found = api.containers(filters={"label": [f"{labels.NAMESPACE}={ns}", f"{labels.POD}={pod}"]})
    apps = [c for c in found if c["Labels"].get(labels.CONTAINER) != labels.PAUSE]
    assert apps, f"pod {pod} has no running app container"
    return str(apps[0]["Id"])


def pod_ip(api: docker.APIClient, ns: str, pod: str) -> str:
    found = api.containers(filters={"label": [
        f"{labels.NAMESPACE}={ns}", f"{labels.POD}={pod}", f"{labels.CONTAINER}={labels.PAUSE}",
    ]})
    return str(found[0]["NetworkSettings"]["Networks"]["bridge"]["IPAddress"])


def start_in(api: docker.APIClient, container: str, script: str) -> None:
    """Start a shell script in a container and leave it running."""
    started = api.exec_create(container, ["sh", "-c", script])
    api.exec_start(started["Id"], detach=True)


def run_in(api: docker.APIClient, container: str, script: str, timeout: int = 120) -> str:
    """Run a shell script in a container; its output (exit status not checked)."""
    started = api.exec_create(container, ["timeout", str(timeout), "sh", "-c", script])
    return str(api.exec_start(started["Id"]).decode(errors="replace"))


def requests(api: docker.APIClient, container: str, url: str, count: int) -> Counter[str]:
    """`count` requests from inside a container; how often each answer came (FAILED for
    a request that got no answer)."""
    script = (f"for i in $(seq {count}); do timeout 3 wget -qO- {url} || echo FAILED; done")
    lines = run_in(api, container, script).splitlines()
    return Counter(line.split()[0] for line in lines if line.strip())


def datagram(api: docker.APIClient, container: str, address: str, port: int,
             source_port: int) -> str:
    """One datagram from a fixed source port; the answer, or "" after a second."""
    script = f"echo hi | timeout 2 nc -u -w1 -p {source_port} {address} {port}"
    return run_in(api, container, script, timeout=5).strip()


def remove_chains(scope: str) -> None:
    """Delete a scope's Service chains and the jumps to them from this host's tables."""
    prefix = rules.chain_prefix(scope)
    for table in ("nat", "filter"):
        saved = subprocess.run(["iptables-save", "-t", table], capture_output=True,
                               text=True, check=False).stdout
        jumps = [line[3:] for line in saved.splitlines()
                 if line.startswith("-A ") and f"-j {prefix}-" in line
                 and not line.split()[1].startswith(prefix)]
        for rule in jumps:
            subprocess.run(f"iptables -t {table} -D {rule}", shell=True, check=False,
                           capture_output=True)
        chains = [line[1:].split()[0] for line in saved.splitlines()
                  if line.startswith(f":{prefix}-")]
        for chain in chains:
            subprocess.run(["iptables", "-t", table, "-F", chain], check=False,
                           capture_output=True)
        for chain in chains:
            subprocess.run(["iptables", "-t", table, "-X", chain], check=False,
                           capture_output=True)
