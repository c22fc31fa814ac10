"""Services on one host, through the command line and the real engine: ClusterIP and
NodePort traffic, DNS and env discovery, endpoints that follow scaling and rollouts, UDP,
restarts and flushed rules."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path

import docker
import pytest

from reconciler import labels
from reconciler.engine import agents
from reconciler.plan import rules

from . import services as svc
from .conftest import ROOT, Yard

pytestmark = pytest.mark.docker


def write(yard: Yard, name: str, text: str) -> None:
    path = yard.root / name
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def converge(yard: Yard) -> str:
    done = yard.reconcile("--timeout", "90")
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def claims(api: docker.APIClient, scope: str) -> dict[str, str]:
    """The scope's claims on the engine: owner (and port) -> address."""
    found = api.volumes(filters={"label": f"{labels.SCOPE}={scope}"}).get("Volumes") or ()
    return {
        f"{v['Labels'][agents.CLAIM_OWNER]}:{v['Labels'][agents.CLAIM_PORT]}":
            v["Labels"][agents.CLAIM_VALUE]
        for v in found if agents.CLAIM_OWNER in v["Labels"]
    }


def cluster_ip(api: docker.APIClient, yard: Yard, name: str) -> str:
    return claims(api, yard.scope)[f"{yard.scope}/{yard.namespace}/{name}:"]


def web_pods(api: docker.APIClient, ns: str) -> set[str]:
    found = api.containers(filters={"label": [
        f"{labels.NAMESPACE}={ns}", f"{labels.CONTAINER}={labels.PAUSE}",
    ]})
    return {c["Labels"][labels.POD] for c in found if c["Labels"][labels.POD].startswith("web-")}


def host_address() -> str:
    """This machine's address on its default route (not loopback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # no packet is sent
        return str(s.getsockname()[0])


@pytest.fixture
def web_yard(engine: docker.APIClient, yard: Yard) -> Yard:
    ns = yard.namespace
    write(yard, "ns.yaml", svc.namespace(ns))
    write(yard, "web.yaml", svc.web(ns, 3))
    write(yard, "client.yaml", svc.client(ns))
    converge(yard)
    return yard


def test_cluster_ip_dns_nodeport_and_env(engine: docker.APIClient, web_yard: Yard) -> None:
    yard, ns = web_yard, web_yard.namespace
    client = svc.app_container(engine, ns, "client")
    client_ip = svc.pod_ip(engine, ns, "client")
    ip = cluster_ip(engine, yard, "web")
    pods = web_pods(engine, ns)
    assert len(pods) == 3
    for address in (ip, "web", f"web.{ns}", f"web.{ns}.svc.cluster.local"):
        answers = svc.requests(engine, client, f"http://{address}/cgi-bin/who", 60)
        assert "FAILED" not in answers, (address, answers)
        assert set(answers) == pods, (address, answers)  # every backend answers some
    # Pod to pod through the ClusterIP keeps the client's address.
    seen = svc.run_in(engine, client, f"timeout 3 wget -qO- http://{ip}/cgi-bin/who")
    assert seen.split()[1].removeprefix("[::ffff:").rstrip("]") == client_ip
    # The NodePort answers on the host's own address, from the host.
    node_port = int(claims(engine, yard.scope)[f"{yard.scope}/{ns}/web:http"].split("/")[0])
    assert 30000 <= node_port <= 32767
    with socket.create_connection((host_address(), node_port), timeout=3) as conn:
        conn.sendall(b"GET /cgi-bin/who HTTP/1.0\r\n\r\n")
        answer = b"".join(iter(lambda: conn.recv(4096), b"")).decode()
    body = re.split(r"\r?\n\r?\n", answer, maxsplit=1)[-1]
    assert body.split()[0] in pods, answer
    # The kubelet's variables, and resolv.conf as it writes them.
    env = svc.run_in(engine, client, "env")
    assert f"WEB_SERVICE_HOST={ip}" in env.splitlines()
    assert "WEB_SERVICE_PORT_HTTP=80" in env.splitlines()
    assert f"WEB_PORT_80_TCP=tcp://{ip}:80" in env.splitlines()
    resolv = svc.run_in(engine, client, "cat /etc/resolv.conf")
    assert f"search {ns}.svc.cluster.local svc.cluster.local cluster.local" in resolv
    assert "options ndots:5" in resolv
    # A second run changes nothing, and says so.
    assert "nothing to do" in converge(yard)


def test_endpoints_follow_scaling_and_a_rollout_loses_no_request(
    engine: docker.APIClient, web_yard: Yard
) -> None:
    yard, ns = web_yard, web_yard.namespace
    client = svc.app_container(engine, ns, "client")
    url = "http://web/cgi-bin/who"
    for replicas in (5, 2):
        write(yard, "web.yaml", svc.web(ns, replicas))
        converge(yard)
        answers = svc.requests(engine, client, url, 60)
        assert "FAILED" not in answers
        assert set(answers) == web_pods(engine, ns) and len(answers) == replicas, answers
    # A rolling template change while the client loops requests through the Service.
    loop = ("mkdir -p /tmp; rm -f /tmp/stop /tmp/log; while [ ! -f /tmp/stop ]; do "
            "timeout 3 wget -qO- http://web/cgi-bin/who >/dev/null "
            "&& echo ok >> /tmp/log || echo FAILED >> /tmp/log; done; echo done >> /tmp/log")
    svc.start_in(engine, client, loop)
    try:
        yard.wait_for(lambda: "ok" in svc.run_in(engine, client, "cat /tmp/log"),
                      "the client's first answer", timeout=10)
        before = web_pods(engine, ns)
        write(yard, "web.yaml", svc.web(ns, 2, version="2"))
        converge(yard)
        assert web_pods(engine, ns).isdisjoint(before)  # every pod was replaced
        time.sleep(1)
    finally:
        svc.run_in(engine, client, "touch /tmp/stop")
    yard.wait_for(lambda: "done" in svc.run_in(engine, client, "cat /tmp/log"),
                  "the client loop to end", timeout=10)
    outcomes = Counter(svc.run_in(engine, client, "cat /tmp/log").split())
    assert outcomes["ok"] > 20, outcomes
    assert outcomes["FAILED"] == 0, outcomes


def test_a_service_created_after_the_client_resolves_and_no_endpoints_refuse_fast(
    engine: docker.APIClient, yard: Yard
) -> None:
    ns = yard.namespace
    write(yard, "ns.yaml", svc.namespace(ns))
    write(yard, "client.yaml", svc.client(ns))
    converge(yard)
    client = svc.app_container(engine, ns, "client")
    write(yard, "web.yaml", svc.web(ns, 0, service_type="ClusterIP"))
    converge(yard)
    ip = cluster_ip(engine, yard, "web")
    # The pod started before the Service existed: the name resolves all the same.
    lookup = svc.run_in(engine, client, "nslookup web 2>&1; echo END")
    assert ip in lookup, lookup
    # No endpoints: refused at once rather than left to time out.
    started = time.monotonic()
    out = svc.run_in(engine, client, f"timeout 5 wget -qO- http://{ip}/ 2>&1; echo rc=$?")
    assert "refused" in out.lower(), out
    assert time.monotonic() - started < 3
    write(yard, "web.yaml", svc.web(ns, 1, service_type="ClusterIP"))
    converge(yard)
    answers = svc.requests(engine, client, "http://web/cgi-bin/who", 5)
    assert set(answers) == web_pods(engine, ns), answers


def test_udp_reaches_the_new_backend_after_a_replacement(
    engine: docker.APIClient, yard: Yard
) -> None:
    ns = yard.namespace
    write(yard, "ns.yaml", svc.namespace(ns))
    write(yard, "echo.yaml", svc.web(ns, 0, service_type="ClusterIP"))  # builds the agent image
    converge(yard)
    image = svc.agent_image(engine)
    write(yard, "echo.yaml", svc.udp_echo(ns, image))
    converge(yard)
    ip = cluster_ip(engine, yard, "echo")
    first = svc.ask(ip, 53535, source_port=40000)
    assert first == svc.pod_ip(engine, ns, next(iter(echo_pods(engine, ns))))
    write(yard, "echo.yaml", svc.udp_echo(ns, image, version="2"))
    converge(yard)
    # Same source port, so the same conntrack entry, unless it went with its backend.
    second = svc.ask(ip, 53535, source_port=40000)
    assert second == svc.pod_ip(engine, ns, next(iter(echo_pods(engine, ns))))
    assert second != first


def echo_pods(api: docker.APIClient, ns: str) -> set[str]:
    found = api.containers(filters={"label": [
        f"{labels.NAMESPACE}={ns}", f"{labels.CONTAINER}={labels.PAUSE}",
    ]})
    return {c["Labels"][labels.POD] for c in found if c["Labels"][labels.POD].startswith("echo-")}


def test_claims_survive_a_killed_controller_and_flushed_rules_come_back(
    engine: docker.APIClient, web_yard: Yard
) -> None:
    yard, ns = web_yard, web_yard.namespace
    before = claims(engine, yard.scope)
    watcher = yard.watch()
    try:
        yard.wait_for(lambda: "watching" in yard.output(), "the watch loop to start")
        os.kill(watcher.pid, signal.SIGKILL)
        watcher.wait(10)
        watcher = yard.watch()
        yard.wait_for(lambda: "watching" in yard.output().split("watching", 1)[1]
                      if yard.output().count("watching") > 1 else False,
                      "the second watch loop to start")
        assert claims(engine, yard.scope) == before
        # Someone flushes podyard's chains and the jumps into them.
        svc.remove_chains(yard.scope)
        prefix = rules.chain_prefix(yard.scope)
        yard.wait_for(lambda: _has_jump(prefix), "the rules to be applied again", timeout=20)
        client = svc.app_container(engine, ns, "client")
        answers = svc.requests(engine, client, "http://web/cgi-bin/who", 40)
        assert "FAILED" not in answers and set(answers) == web_pods(engine, ns)
    finally:
        watcher.send_signal(signal.SIGTERM)
        watcher.wait(30)
    assert claims(engine, yard.scope) == before


def _has_jump(prefix: str) -> bool:
    saved = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True,
                           check=False).stdout
    return f"-A PREROUTING -m comment --comment \"podyard services\" -j {prefix}-SERVICES" in saved


def test_a_clusterip_outside_the_cidr_or_taken_is_refused_naming_both(
    engine: docker.APIClient, yard: Yard, tmp_path: Path
) -> None:
    ns = yard.namespace
    write(yard, "ns.yaml", svc.namespace(ns))
    fixed = "\n".join(["apiVersion: v1", "kind: Service", "metadata:", "  name: {name}",
                       f"  namespace: {ns}", "spec:", "  clusterIP: {ip}",
                       "  ports: [{{port: 80}}]", ""])
    write(yard, "a.yaml", fixed.format(name="a", ip="10.96.200.200"))
    write(yard, "b.yaml", fixed.format(name="b", ip="10.96.200.200"))
    write(yard, "c.yaml", fixed.format(name="c", ip="192.168.7.7"))
    done = yard.reconcile("--validate")
    assert done.returncode != 0
    assert "b.yaml:7: spec.clusterIP: clusterIP 10.96.200.200 is already used by Service " \
           f"{ns}/a (a.yaml:1)" in done.stderr, done.stderr
    assert "c.yaml:7: spec.clusterIP: 192.168.7.7 is not in the cluster's service CIDR" \
        in done.stderr, done.stderr


def test_the_primers_myweb_finds_mysql_by_name_and_by_its_variables(
    engine: docker.APIClient, yard: Yard
) -> None:
    for example in sorted((ROOT / "examples" / "primer").glob("*.yaml")):
        # As written, but with the NodePort allocated: a fixed one may be held on this engine.
        text = example.read_text().replace("      nodePort: 30001\n", "")
        write(yard, example.name, text)
    converge(yard)
    node_port = int(claims(engine, yard.scope)[f"{yard.scope}/default/myweb:8080/TCP"]
                    .split("/")[0])
    with socket.create_connection((host_address(), node_port), timeout=5) as conn:
        conn.sendall(b"GET /cgi-bin/index HTTP/1.0\r\n\r\n")
        page = b"".join(iter(lambda: conn.recv(4096), b"")).decode()
    assert "by name (mysql:3306): mysql stand-in: connected" in page, page
    assert re.search(r"by ClusterIP \(10\.96\.\d+\.\d+\): mysql stand-in: connected", page), page
