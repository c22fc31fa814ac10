"""Benchmark: Services: rule sets at scale, the cost of DNAT, how soon a new pod is reached.

Three parts, on the local engine:
  * rules: for 100, 1,000 and 5,000 ClusterIP Services of 3 endpoints each, synthetic
    (addresses in 10.250.0.0/16, endpoints in 10.251.0.0/16: nothing real), the time to
    compute, pure: `network.services_plan` for a pass after one pod changed and for an idle
    pass (every address claimed, 3 Ready pods observed per Service), and its parts alone:
    `services.allocate`, `services.endpoints` for every Service, `rules.render`. Then the time of
    `Agents.program_rules` through the real node agent (scope `bench-rules`): the whole set
    onto no rules, the same set with one endpoint moved (what a pass pays when one pod
    changes), and the empty set (the removal), each checked on the host with `iptables-save`;
    `--rounds` rounds, fewer once a size's applies have taken `--apply-budget` seconds. Once
    per size, where an apply's time goes: the steps of the agent's `apply` script run alone
    through the engine's exec, on the set in place.
  * dnat: requests per second from one client container to a Service of 3 busybox httpd pods
    (`reconcile --scope bench-dnat`), through its ClusterIP and to one pod's IP directly, in
    rounds of one block each way, in ABBA order, each block `--requests` sequential `wget`s
    (a new process and a new TCP connection each), timed inside the client from /proc/uptime
    (10 ms resolution); the ratio is the median of each round's own ratio, so that load from
    elsewhere on the machine, which changes from round to round, touches both sides of it.
  * latency: under `reconcile --watch --scope bench-latency`, a Service's RC scaled from 1 to
    2 replicas by rewriting its manifest; from the engine's `start` event of the new pod's app
    container to the first answer from that pod through the ClusterIP, for a client container
    that sends 4 requests at once every 50 ms, each stamped with /proc/uptime.
Everything made is removed at the end: pods (`reconcile --allow-empty`), node agents, claims,
client containers, and the scopes' iptables chains and the jumps to them.

    .venv/bin/python bench/services.py [--parts rules,dnat,latency] [--sizes 100,1000,5000]
        [--endpoints 3] [--rounds 3] [--plan-budget 30] [--apply-budget 120]
        [--requests 300] [--dnat-rounds 12] [--latency-rounds 7] [--lock FILE] [--output FILE]

With `--lock FILE`, each part that uses the engine (each size of `rules` on its own) runs as
its own process under `flock FILE`, so that on a machine whose tests share the engine it is
held a few minutes at a time; the pure timings run outside the lock.
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import itertools
import json
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import docker

# Run as `python bench/services.py`: the repository root, not bench/, must be on the path
# for `bench.report` (and `reconciler` without an installed package).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import report
from bench import watch as watch_bench
from reconciler import labels, model, observe
from reconciler.engine import agents, client
from reconciler.plan import actions, network, rules, services
from tests import support

BIN = Path(sys.executable).parent
SERVICE_CIDR = "10.250.0.0/16"
POD_NETWORK = "10.251.0.0/16"
FIRST_SERVICE = 100  # service i gets 10.250.0.0 + 100 + i: above the static band and DNS
MOVED = 60000  # a moved endpoint of Service i: 10.251.0.0 + 60000 + i, apart from the others
RULES_SCOPE, DNAT_SCOPE, LATENCY_SCOPE = "bench-rules", "bench-dnat", "bench-latency"
NAMESPACE = "bench"
IMAGE = "podyard/busybox:1"
CLIENT_LABEL = "io.podyard.bench"  # on the client containers: not pods, never managed
DNAT_TARGET = 0.95
LATENCY_TARGET_S = 1.0
NODE = "local"
Data = dict[str, Any]


# -- part 1: rule sets at scale, pure -------------------------------------------------------


def synthetic(n: int, per: int, moved: int = -1) -> tuple[
        model.DesiredState, list[observe.ObservedPod], list[rules.ServicePorts]]:
    """`n` Services `svc-<i>` of `per` Ready pods each: the desired state, the observed pods,
    and the rules' view of them. `moved`: that Service's first pod has another IP."""
    svc_base = ipaddress.ip_address(SERVICE_CIDR.split("/")[0])
    pod_base = ipaddress.ip_address(POD_NETWORK.split("/")[0])
    port = model.ServicePort(80, 8080, "TCP", "http")
    desired, pods, views = [], [], []
    for i in range(n):
        selector = (("app", f"svc-{i}"),)
        desired.append(model.Service(NAMESPACE, f"svc-{i}", (), "ClusterIP", "", selector,
                                     (port,)))
        eps = []
        for j in range(per):
            k = MOVED + i if i == moved and j == 0 else i * per + j + 1
            ip, name, uid = str(pod_base + k), f"svc-{i}-{j}", f"uid-{i}-{j}"
            pause = observe.ObservedContainer(f"p{k}", labels.PAUSE, f"p{k}", "pause",
                                              "running", 0.0, ip=ip)
            app = observe.ObservedContainer(f"a{k}", "app", f"a{k}", "app", "running", 0.0)
            pods.append(observe.ObservedPod(NODE, NAMESPACE, name, uid, f"svc-{i}", "h", "",
                                            selector, pause, (app,)))
            eps.append(services.Endpoint(ip, 8080, NAMESPACE, name, NODE, uid))
        views.append(rules.ServicePorts(NAMESPACE, f"svc-{i}", str(svc_base + FIRST_SERVICE + i),
                                        ((port, 0, tuple(sorted(eps))),)))
    return model.DesiredState(services=tuple(desired)), pods, views


def steady_network(views: Sequence[rules.ServicePorts]) -> network.Network:
    """One node that already holds every Service's claim, as on every pass after the first."""
    claims = [observe.Claim(services.IP, v.ip, services.owner(RULES_SCOPE, v.namespace, v.name))
              for v in views]
    dns = services.owner(RULES_SCOPE, *services.DNS_SERVICE)
    claims.append(observe.Claim(services.IP, str(ipaddress.ip_address("10.250.0.10")), dns))
    node = observe.NodeNetwork(claims=tuple(claims), pod_network=POD_NETWORK)
    return network.Network(RULES_SCOPE, SERVICE_CIDR, {NODE: node}, frozenset({NODE}),
                           (POD_NETWORK,))


class OverBudget(Exception):
    """A pure computation ran past its time budget and was stopped."""


def _stop(signum: int, frame: FrameType | None) -> None:
    raise OverBudget


def timed_pure(fn: Callable[[], object], rounds: int, budget: float) -> tuple[list[float], bool]:
    """Seconds of up to `rounds` calls, fewer once they have taken `budget` in all; and
    whether a call was stopped at `budget` seconds (then it is not among the times)."""
    times: list[float] = []
    previous = signal.signal(signal.SIGALRM, _stop)
    try:
        for _ in range(rounds):
            if sum(times) >= budget:
                break
            gc.collect()
            started = time.perf_counter()
            signal.setitimer(signal.ITIMER_REAL, budget)
            try:
                fn()
            except OverBudget:
                return times, True
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            times.append(time.perf_counter() - started)
    finally:
        signal.signal(signal.SIGALRM, previous)
    return times, False


def measure_compute(n: int, per: int, rounds: int, budget: float) -> Data:
    """The pure parts of a pass for `n` Services, each timed alone, and the rule set's size.

    A pass after one pod changed is timed on new pod objects each round, each with another
    Service's pod moved, so that nothing is reused from the round before (`services_plan`
    keeps its last result for the same objects, `rules.body` its last two); an idle pass on
    the same objects again, as the watch loop's drivers hand them back while nothing changes.
    """
    desired, pods, views = synthetic(n, per)
    net = steady_network(views)
    claims, serving = net.nodes[NODE].claims, net.serving
    ruleset = rules.render(RULES_SCOPE, views, pod_networks=(POD_NETWORK,))
    planned = network.services_plan(desired, pods, actions.Plan(), net).programs()
    texts = [a.rules.text for a in planned if isinstance(a, actions.ProgramRules)]
    assert texts == [ruleset.text], "services_plan renders the synthetic views"
    changed = [synthetic(n, per, moved=r)[1:] for r in range(1, rounds + 1)]
    pod_sets, view_sets = iter([c[0] for c in changed]), iter([c[1] for c in changed])
    index_sets = iter([c[0] for c in changed])
    data: Data = {"n": n, "rules": sum(line.startswith("-A ") for line in
                                       ruleset.text.splitlines()),
                  "chains": len(ruleset.chains), "bytes": len(ruleset.text)}
    steps: dict[str, Callable[[], object]] = {
        # first: the check above has just planned these very objects
        "idle": lambda: network.services_plan(desired, pods, actions.Plan(), net),
        "plan": lambda: network.services_plan(desired, next(pod_sets), actions.Plan(), net),
        "allocate": lambda: services.allocate(desired.services, claims, SERVICE_CIDR,
                                              RULES_SCOPE),
        "endpoints": lambda: endpoints_of_all(desired, next(index_sets), serving),
        "render": lambda: rules.render(RULES_SCOPE, next(view_sets),
                                       pod_networks=(POD_NETWORK,)),
    }
    for name, fn in steps.items():
        times, stopped = timed_pure(fn, rounds, budget)
        data[name], data[f"{name}_stopped"] = times, stopped
        shown = "stopped" if stopped and not times else f"{statistics.median(times):.3f} s"
        print(f"{n} Services: {name} {shown}", file=sys.stderr)
    return data


def endpoints_of_all(desired: model.DesiredState, pods: Sequence[observe.ObservedPod],
                     serving: frozenset[str]) -> list[services.Endpoints]:
    """Every Service's endpoints, as a pass finds them: through one index of the pods."""
    index = services.PodIndex(pods, serving)
    return [services.endpoints(s, index, {}) for s in desired.services]


# -- part 1: applying rule sets through the node agent ---------------------------------------


def iptables(*args: str, stdin: str | None = None) -> str:
    """The host's iptables tools (the nf_tables ones, as the agent's): their output."""
    done = subprocess.run(args, input=stdin, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{shlex.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def installed() -> str:
    """The host's nat and filter tables, as `iptables-save` writes them."""
    return "".join(iptables("iptables-save", "-t", t) for t in ("nat", "filter"))


def check_programmed(ruleset: rules.RuleSet, must_have: str = "") -> None:
    """The host's tables hold exactly the set's rules in the prefix's chains."""
    saved = installed()
    have = sum(line.startswith(f"-A {ruleset.prefix}-") for line in saved.splitlines())
    want = sum(line.startswith("-A ") for line in ruleset.text.splitlines())
    assert have == want, f"{have} rules of {ruleset.prefix} installed, {want} wanted"
    assert must_have in saved, f"{must_have!r} is not installed"


def remove_chains(prefix: str) -> None:
    """Delete the prefix's chains and every jump to them, from the nat and filter tables."""
    for table in ("nat", "filter"):
        saved = iptables("iptables-save", "-t", table).splitlines()
        jumps = ["-D" + line[2:] for line in saved
                 if line.startswith("-A ") and not line.startswith(f"-A {prefix}-")
                 and f"-j {prefix}-" in line]
        chains = [line[1:].split()[0] for line in saved if line.startswith(f":{prefix}-")]
        if jumps or chains:
            text = "\n".join([f"*{table}", *jumps, *(f":{c} - [0:0]" for c in chains),
                              *(f"-X {c}" for c in chains), "COMMIT", ""])
            iptables("iptables-restore", "--noflush", stdin=text)


def remove_scope(api: docker.APIClient, scope: str) -> None:
    """What a scope leaves after its pods are gone: agents, claims, client containers,
    its chains; and anything else labelled with it."""
    for filters in ({"label": f"{labels.SCOPE}={scope}"}, {"label": f"{CLIENT_LABEL}={scope}"}):
        for c in api.containers(all=True, filters=filters):
            api.remove_container(c["Id"], force=True)
    for v in api.volumes(filters={"label": f"{labels.SCOPE}={scope}"}).get("Volumes") or ():
        api.remove_volume(v["Name"], force=True)
    remove_chains(rules.chain_prefix(scope))


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


# The agent's `apply` script (`engine/agent_image.py`), its costly steps one at a time, run
# on the set in place (`current/`, as after an apply): what each step costs in an apply.
APPLY_STEPS = {
    "exec of `true` (the engine's exec, nothing run)": "true",
    "`iptables-restore --noflush` of the whole set":
        "iptables-restore --noflush < current/rules",
    "`iptables-save` of both tables, our chains picked out":
        'prefix=$(sed "s/-CANARY//" current/canary); for table in nat filter; do '
        'iptables-save -t "$table" | sed -n "s/^:\\($prefix-[^ ]*\\) .*/$table \\1/p"; '
        "done > /tmp/have",
    "`awk`: the chains to delete (in `have`, not in `chains`)":
        "awk 'NR == FNR { seen[$0]; next } !($0 in seen)' current/chains /tmp/have "
        "> /tmp/stale",
}


def apply_breakdown(api: docker.APIClient, agent: str) -> dict[str, float]:
    found = {}
    for what, command in APPLY_STEPS.items():
        started = time.perf_counter()
        run = api.exec_create(agent, ["/bin/sh", "-c", f"cd {agents.WORKDIR} && {command}"])
        output = api.exec_start(run["Id"])
        found[what] = time.perf_counter() - started
        if api.exec_inspect(run["Id"]).get("ExitCode") != 0:
            raise SystemExit(f"{command} failed in the agent: {output!r}")
    return found


def measure_applies(n: int, per: int, rounds: int, budget: float) -> Data:
    """Seconds of each apply of `n` Services' rule set through the node agent: `rounds`
    rounds, fewer once they have taken `budget` seconds."""
    # An apply of 5,000 Services takes tens of seconds; no client timeout may cut it short.
    api = client.local_api(timeout=900)
    node = agents.Agents(NODE, api, RULES_SCOPE)
    pods = (POD_NETWORK,)
    empty = rules.render(RULES_SCOPE, (), pod_networks=pods)
    whole = rules.render(RULES_SCOPE, synthetic(n, per)[2], pod_networks=pods)
    moved = rules.render(RULES_SCOPE, synthetic(n, per, moved=0)[2], pod_networks=pods)
    moved_ip = str(ipaddress.ip_address(POD_NETWORK.split("/")[0]) + MOVED)
    data: Data = {"n": n, "whole": [], "moved": [], "empty": [], "steps": {}}
    try:
        agent = node.program_rules(empty)  # the agent started, its image built: not timed
        for r in range(rounds):
            if sum(map(sum, (data["whole"], data["moved"], data["empty"]))) >= budget:
                break
            data["whole"].append(timed(lambda: node.program_rules(whole)))
            check_programmed(whole)
            data["moved"].append(timed(lambda: node.program_rules(moved)))
            check_programmed(moved, f"--to-destination {moved_ip}:8080")
            if r == 0:
                data["steps"] = apply_breakdown(api, agent)
            data["empty"].append(timed(lambda: node.program_rules(empty)))
            check_programmed(empty)
            print(f"{n} Services, round {r + 1}: whole {data['whole'][-1]:.2f} s, "
                  f"moved {data['moved'][-1]:.2f} s, empty {data['empty'][-1]:.2f} s",
                  file=sys.stderr)
        data["engine"] = report._docker()
    finally:
        try:
            node.program_rules(empty)
        finally:
            remove_scope(api, RULES_SCOPE)
            api.close()
    return data


# -- parts 2 and 3: a real Service of busybox httpd pods --------------------------------------


def web_manifest(namespace: str, replicas: int) -> str:
    """A Namespace, an RC `web` of httpd pods answering with their hostname, a Service `web`."""
    app = f"""\
        - name: app
          image: {IMAGE}
          imagePullPolicy: IfNotPresent
          command: ["sh", "-c"]
          args: ["mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"]
          ports:
            - containerPort: 8080
"""
    return support.namespace_document(namespace) + f"""\
{support.web_rc(namespace, replicas, 1, app)}---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: {namespace}
spec:
  selector:
    app: web
  ports:
    - port: 80
      targetPort: 8080
"""


def write_manifest(root: Path, namespace: str, replicas: int) -> None:
    """Replace the manifest in one rename, as an editor or `git checkout` does."""
    tmp = root.parent / "web.yaml.tmp"
    tmp.write_text(web_manifest(namespace, replicas))
    tmp.replace(root / "web.yaml")


def reconcile(scope: str, root: Path, *extra: str) -> None:
    done = subprocess.run([str(BIN / "reconcile"), "-q", "--scope", scope, *extra, str(root)],
                          capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise SystemExit(f"reconcile --scope {scope} failed ({done.returncode}):\n"
                         f"{done.stdout}{done.stderr}")


@contextmanager
def yard(api: docker.APIClient, scope: str) -> Iterator[Path]:
    """A manifests directory for `scope`; at the end its pods and all it left are removed."""
    with tempfile.TemporaryDirectory() as tmp:
        root, empty = Path(tmp) / "manifests", Path(tmp) / "empty"
        root.mkdir()
        empty.mkdir()
        try:
            yield root
        finally:
            try:
                reconcile(scope, empty, "--allow-empty")
            finally:
                remove_scope(api, scope)


def _find_cluster_ip(doc: object, name: str) -> str:
    """The clusterIP of the Service `name` somewhere in `podyard get svc -o json` output."""
    if isinstance(doc, list):
        return next((ip for d in doc if (ip := _find_cluster_ip(d, name))), "")
    if not isinstance(doc, dict):
        return ""
    meta, spec = doc.get("metadata"), doc.get("spec")
    if isinstance(meta, dict) and isinstance(spec, dict) and meta.get("name") == name:
        return str(spec.get("clusterIP") or "")
    if doc.get("name") == name and (doc.get("clusterIP") or doc.get("cluster_ip")):
        return str(doc.get("clusterIP") or doc.get("cluster_ip"))
    return next((ip for v in doc.values() if (ip := _find_cluster_ip(v, name))), "")


def cluster_ip(api: docker.APIClient, scope: str, namespace: str, name: str) -> str:
    """From `podyard get svc` where it exists, else from the address claims on the engine."""
    done = subprocess.run([str(BIN / "podyard"), "--scope", scope, "get", "svc", "-n",
                           namespace, "-o", "json"], capture_output=True, text=True,
                          timeout=60, check=False)
    if done.returncode == 0:
        try:
            found = _find_cluster_ip(json.loads(done.stdout), name)
        except json.JSONDecodeError:
            found = ""
        if found:
            return found
    owner = services.owner(scope, namespace, name)
    for v in api.volumes(filters={"label": [f"{labels.CLAIM_OWNER}={owner}",
                                            f"{labels.CLAIM_KIND}={services.IP}"]}
                         ).get("Volumes") or ():
        return str(v["Labels"][labels.CLAIM_VALUE])
    raise SystemExit(f"no ClusterIP found for {owner}")


def pod_ips(api: docker.APIClient, scope: str, namespace: str) -> dict[str, str]:
    """Pod name -> IP, from the pause containers (`docker inspect`)."""
    found = {}
    for c in api.containers(filters={"label": [f"{labels.SCOPE}={scope}",
                                               f"{labels.NAMESPACE}={namespace}",
                                               f"{labels.CONTAINER}={labels.PAUSE}"]}):
        networks = api.inspect_container(c["Id"])["NetworkSettings"]["Networks"] or {}
        ip = next((n["IPAddress"] for n in networks.values() if n.get("IPAddress")), "")
        found[c["Labels"][labels.POD]] = ip
    return found


def start_client(api: docker.APIClient, scope: str, command: list[str]) -> str:
    """A busybox container on the default bridge, like a pod's, for the scope's clients."""
    created = api.create_container(IMAGE, command, labels={CLIENT_LABEL: scope},
                                   host_config=api.create_host_config(), stop_signal="KILL")
    api.start(created["Id"])
    return str(created["Id"])


def in_client(api: docker.APIClient, container: str, command: list[str]) -> str:
    """Run a command in the client container: its stdout; its stderr if it fails."""
    run = api.exec_create(container, command)
    out, err = api.exec_start(run["Id"], demux=True)
    code = api.exec_inspect(run["Id"]).get("ExitCode")
    if code != 0:
        raise SystemExit(f"client script failed ({code}): {(err or b'').decode()[-500:]}")
    return (out or b"").decode()


# N sequential requests, each a new wget (a new TCP connection); the time from /proc/uptime
# (busybox `date` has no %N); `timeout` ends the round should one request hang.
ROUND = r"""
n=$1 url=$2
read start _ < /proc/uptime
i=0
while [ $i -lt $n ]; do wget -qO- "$url" || echo FAILED; i=$((i + 1)); done
read end _ < /proc/uptime
echo "elapsed $start $end"
"""


def dnat_round(api: docker.APIClient, container: str, url: str,
               n: int) -> tuple[float, Counter[str]]:
    """Seconds for `n` requests, and who answered how often."""
    out = in_client(api, container, ["timeout", "600", "sh", "-c", ROUND, "sh", str(n), url])
    answers: Counter[str] = Counter()
    elapsed = 0.0
    for line in out.splitlines():
        if line.startswith("elapsed "):
            _, start, end = line.split()
            elapsed = float(end) - float(start)
        elif line:
            answers[line] += 1
    if not elapsed or sum(answers.values()) != n or answers["FAILED"]:
        raise SystemExit(f"a round to {url} did not complete: {answers}, {out[-300:]!r}")
    return elapsed, answers


def wait_answering(api: docker.APIClient, container: str, url: str,
                   timeout: float = 60) -> None:
    """Until 20 requests in a row get answers (the rules may still be on their way)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            dnat_round(api, container, url, 20)
            return
        except SystemExit:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def measure_dnat(requests: int, rounds: int) -> Data:
    """Requests per second to the ClusterIP and to one pod directly, interleaved (ABBA)."""
    api = client.local_api(timeout=900)
    namespace = DNAT_SCOPE
    data: Data = {"cluster": [], "direct": [], "answers": {}}
    try:
        with yard(api, DNAT_SCOPE) as root:
            write_manifest(root, namespace, 3)
            reconcile(DNAT_SCOPE, root)
            ip, pods = cluster_ip(api, DNAT_SCOPE, namespace, "web"), pod_ips(
                api, DNAT_SCOPE, namespace)
            direct = sorted(pods.values())[0]
            urls = {"cluster": f"http://{ip}/", "direct": f"http://{direct}:8080/"}
            data.update(cluster_ip=ip, pod_ip=direct, pods=len(pods))
            container = start_client(api, DNAT_SCOPE, ["sleep", "3600"])
            for url in urls.values():  # warm up: ARP, the page in the cache
                wait_answering(api, container, url)
            answers: Counter[str] = Counter()
            for r in range(rounds):
                order = ("cluster", "direct") if r % 2 == 0 else ("direct", "cluster")
                for kind in order:
                    elapsed, who = dnat_round(api, container, urls[kind], requests)
                    data[kind].append(requests / elapsed)
                    if kind == "cluster":
                        answers += who
                print(f"dnat round {r + 1}: ClusterIP {data['cluster'][-1]:.0f}/s, "
                      f"pod IP {data['direct'][-1]:.0f}/s", file=sys.stderr)
            data["answers"] = dict(answers)
            data["engine"] = report._docker()
    finally:
        api.close()
    return data


# -- part 3: programming latency --------------------------------------------------------------

# Every 50 ms, 4 requests at once through the ClusterIP, each line "<uptime> <answer>".
POLL = r"""
url=$1
while :; do
  read t _ < /proc/uptime
  for j in 1 2 3 4; do (a=$(timeout 1 wget -qO- "$url" 2>/dev/null); echo "$t ${a:-none}") & done
  wait
  usleep 50000
done
"""


def uptime_offset() -> float:
    """Wall clock minus /proc/uptime: the clients' stamps, in this host's time."""
    return time.time() - float(Path("/proc/uptime").read_text().split()[0])


def first_answer(api: docker.APIClient, container: str, pod: str, since: float,
                 offset: float, timeout: float = 60) -> float:
    """When (wall clock) the client first got an answer from `pod`, stamped at or after
    `since` less the stamps' 10 ms resolution."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        logs = api.logs(container, stdout=True, stderr=False, since=int(since) - 1).decode()
        for line in logs.splitlines():
            stamp, _, answer = line.partition(" ")
            at = float(stamp) + offset
            if answer == pod and at >= since - 0.02:
                return at
        time.sleep(0.1)
    raise SystemExit(f"no answer from {pod} through the ClusterIP within {timeout:.0f}s")


def measure_latency(rounds: int, log: Path | None) -> Data:
    """Seconds from the new pod's app container `start` to its first answer via the ClusterIP."""
    api = client.local_api(timeout=120)
    namespace = LATENCY_SCOPE
    data: Data = {"latency": []}
    try:
        with yard(api, LATENCY_SCOPE) as root:
            write_manifest(root, namespace, 1)
            events = watch_bench.Events(api, namespace)
            with (root.parent / "watch.log").open("wb") as out:
                process = subprocess.Popen(
                    [str(BIN / "reconcile"), "--watch", "--scope", LATENCY_SCOPE, str(root)],
                    stdout=out, stderr=subprocess.STDOUT)
            try:
                data["latency"] = latency_rounds(api, events, root, namespace, rounds)
                data["engine"] = report._docker()
            finally:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                events.close()
                if log:
                    log.write_bytes((root.parent / "watch.log").read_bytes())
    finally:
        api.close()
    return data


def running_apps(api: docker.APIClient, namespace: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = api.containers(filters={"label": [
        f"{labels.SCOPE}={LATENCY_SCOPE}", f"{labels.NAMESPACE}={namespace}",
        f"{labels.CONTAINER}=app"]})
    return found


def wait_apps(api: docker.APIClient, namespace: str, n: int, timeout: float = 120) -> None:
    """Until exactly `n` app containers run (and no more are leaving)."""
    deadline = time.monotonic() + timeout
    while len(running_apps(api, namespace)) != n:
        if time.monotonic() > deadline:
            raise SystemExit(f"not {n} pods of {namespace} within {timeout:.0f}s")
        time.sleep(0.1)


def latency_rounds(api: docker.APIClient, events: watch_bench.Events, root: Path,
                   namespace: str, rounds: int) -> list[float]:
    wait_apps(api, namespace, 1)
    ip = cluster_ip(api, LATENCY_SCOPE, namespace, "web")
    offset = uptime_offset()
    container = start_client(api, LATENCY_SCOPE, ["sh", "-c", POLL, "sh", f"http://{ip}/"])
    first = running_apps(api, namespace)[0]["Labels"][labels.POD]
    first_answer(api, container, first, time.time() - 1, offset)  # the Service answers
    found = []
    for r in range(rounds):
        time.sleep(1.5)  # idle: the last round's events handled, its pass settled
        events.drain()
        write_manifest(root, namespace, 2)
        started = events.next("start")
        pod = started["Actor"]["Attributes"][labels.POD]
        at = started["timeNano"] / 1e9
        found.append(first_answer(api, container, pod, at, offset) - at)
        print(f"latency round {r + 1}: {found[-1] * 1000:.0f} ms", file=sys.stderr)
        wait_apps(api, namespace, 2)
        write_manifest(root, namespace, 1)
        wait_apps(api, namespace, 1)
    return found


# -- running the parts, in this process or each under a lock ----------------------------------


def run_part(part: str, args: argparse.Namespace) -> Data:
    """One part that uses the engine: `rules:<size>`, `dnat` or `latency`."""
    if part.startswith("rules:"):
        return measure_applies(int(part.split(":")[1]), args.endpoints, args.rounds,
                               args.apply_budget)
    if part == "dnat":
        return measure_dnat(args.requests, args.dnat_rounds)
    return measure_latency(args.latency_rounds, args.log)


def run_locked(part: str, args: argparse.Namespace, argv: Sequence[str]) -> Data:
    """The part as its own process under `flock`: the engine held for this part only."""
    with tempfile.NamedTemporaryFile(suffix=".json") as result:
        command = ["flock", str(args.lock), sys.executable, str(Path(__file__).resolve()),
                   *argv, "--part", part, "--part-output", result.name]
        done = subprocess.run(command, check=False)
        if done.returncode != 0:
            raise SystemExit(f"part {part} failed ({done.returncode})")
        data: Data = json.loads(Path(result.name).read_text())
        return data


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                epilog="Parts: " + __doc__.split("\n\n")[1].strip(),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", default="rules,dnat,latency",
                   help="which parts, comma-separated (default: all three)")
    p.add_argument("--sizes", default="100,1000,5000", help="numbers of Services (rules)")
    p.add_argument("--endpoints", type=int, default=3, help="endpoints per Service (rules)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of each size (rules)")
    p.add_argument("--plan-budget", type=float, default=30.0,
                   help="seconds a pure computation may take before it is stopped (rules)")
    p.add_argument("--apply-budget", type=float, default=120.0,
                   help="seconds of applies after which a size has no more rounds (rules)")
    p.add_argument("--requests", type=int, default=300, help="requests per round (dnat)")
    p.add_argument("--dnat-rounds", type=int, default=12, help="rounds of each path (dnat)")
    p.add_argument("--latency-rounds", type=int, default=7, help="scale-ups timed (latency)")
    p.add_argument("--lock", type=Path, help="run each engine part under `flock LOCK`")
    p.add_argument("--log", type=Path, help="keep the watching controller's output (latency)")
    p.add_argument("--output", type=Path, default=report.default_output(__file__))
    p.add_argument("--part", help=argparse.SUPPRESS)
    p.add_argument("--part-output", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(argv)
    if args.part:  # a child of `--lock`: one part, its data to a file
        args.part_output.write_text(json.dumps(run_part(args.part, args)))
        return
    parts = args.parts.split(",")
    sizes = [int(s) for s in args.sizes.split(",")]
    out = report.Report("Services: rule sets at scale, DNAT cost, programming latency",
                        docker=args.lock is None)
    out.describe(__doc__.split("\n\n")[1].strip())
    found: dict[str, Data] = {}
    if "rules" in parts:
        for n in sizes:
            found[f"compute:{n}"] = measure_compute(n, args.endpoints, args.rounds,
                                                    args.plan_budget)
    child_argv = [a for i, a in enumerate(argv) if not a.startswith("--lock") and not (
        i and argv[i - 1] == "--lock")]
    engine_parts = [f"rules:{n}" for n in sizes if "rules" in parts] + [
        p for p in ("dnat", "latency") if p in parts]
    for part in engine_parts:
        found[part] = run_locked(part, args, child_argv) if args.lock else run_part(part, args)
        if args.lock:
            out.docker = found[part]["engine"]
    write_results(out, found, sizes, args)
    out.write(args.output)


# -- the result file ------------------------------------------------------------------------


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _shown(data: Data, key: str, budget: float) -> str:
    if not data[key]:
        return f"> {budget:.0f} s (stopped)"
    return _time(_median(data[key]))


def _time(seconds: float) -> str:
    return f"{report.fmt(seconds * 1000)} ms" if seconds < 1 else f"{report.fmt(seconds)} s"


def write_results(out: report.Report, found: dict[str, Data], sizes: Sequence[int],
                  args: argparse.Namespace) -> None:
    if any(k.startswith("rules:") for k in found):
        write_rules(out, found, sizes, args)
    if "dnat" in found:
        write_dnat(out, found["dnat"], args)
    if "latency" in found:
        write_latency(out, found["latency"])


def write_rules(out: report.Report, found: dict[str, Data], sizes: Sequence[int],
                args: argparse.Namespace) -> None:
    ms = 1e3
    for n in sizes:
        c, a = found[f"compute:{n}"], found[f"rules:{n}"]
        out.rounds(f"Rule set of {n:,} Services x {args.endpoints} endpoints", {
            "services_plan, one pod changed": [t * ms for t in c["plan"]],
            "services_plan, idle (nothing changed)": [t * ms for t in c["idle"]],
            "services.allocate": [t * ms for t in c["allocate"]],
            "PodIndex + services.endpoints, every Service": [t * ms for t in c["endpoints"]],
            "rules.render": [t * ms for t in c["render"]],
            "apply: the whole set onto none": [t * ms for t in a["whole"]],
            "apply: one endpoint moved": [t * ms for t in a["moved"]],
            "apply: the empty set (removal)": [t * ms for t in a["empty"]],
        }, "ms")
    budget = args.plan_budget
    rows = []
    for n in sizes:
        c, a = found[f"compute:{n}"], found[f"rules:{n}"]
        moved = _median(a["moved"])
        rows.append([f"{n:,}", f"{c['rules']:,} / {c['chains']:,}",
                     _shown(c, "plan", budget), _shown(c, "idle", budget),
                     _time(_median(a["whole"])), f"**{_time(moved)}**",
                     _time(_median(a["empty"])), f"{report.fmt(moved / n * ms)} ms"])
    out.table(f"Rule-set scale (medians of up to {args.rounds} rounds)",
              ["Services", "rules / chains", "services_plan, one pod changed",
               "services_plan, idle", "apply: whole set", "apply: one endpoint moved",
               "apply: removal", "apply per Service (moved)"], rows,
              "An apply is `Agents.program_rules` as a pass calls it: the files copied into the "
              "node agent, then its `apply` script through the engine's exec "
              "(`iptables-restore --noflush`, the jumps checked, and for a whole set our chains "
              "listed and the stale ones deleted). The whole set goes to an agent whose rules "
              "are not known (the first apply, a new agent, a restarted controller); after "
              "that only the chains that changed are sent, so one moved endpoint rewrites one "
              "Service chain and two endpoint chains. Creating and deleting chains is what "
              "costs in iptables-nft: the whole set onto none, or the removal, is tens of "
              "thousands of chains at 5,000 Services.")
    for small, large in itertools.pairwise(sizes):
        growth = []
        for what, key, data in (("services_plan (one pod changed)", "plan", "compute"),
                                ("rules.render", "render", "compute"),
                                ("an apply (one endpoint moved)", "moved", "rules")):
            s, big = found[f"{data}:{small}"][key], found[f"{data}:{large}"][key]
            if s and big:
                growth.append(f"{what} x{_median(big) / _median(s):.1f}")
        if growth:
            out.note(f"From {small:,} to {large:,} Services (x{large / small:.0f}): "
                     + ", ".join(growth) + ".")
    parts = [[f"{n:,} Services", *(_shown(found[f"compute:{n}"], k, budget)
                                   for k in ("allocate", "endpoints", "render"))]
             for n in sizes]
    out.table("Where a pass's Service time goes (pure, medians)",
              ["size", "services.allocate", "PodIndex + services.endpoints (every Service)",
               "rules.render"], parts)
    steps = list(APPLY_STEPS)
    step_rows = [[s, *(_time(found[f"rules:{n}"]["steps"][s]) for n in sizes)] for s in steps]
    step_rows.append(["the whole apply (one endpoint moved, median)",
                      *(_time(_median(found[f"rules:{n}"]["moved"])) for n in sizes)])
    out.table("Where an apply's time goes (each step alone through exec, once, on the set "
              "in place)", ["step", *(f"{n:,} Services" for n in sizes)], step_rows)


def write_dnat(out: report.Report, d: Data, args: argparse.Namespace) -> None:
    cluster, direct = d["cluster"], d["direct"]
    ratios = [c / p for c, p in zip(cluster, direct, strict=True)]
    out.rounds(f"DNAT: {args.requests} sequential requests per block, requests/s "
               "(rounds in ABBA order)", {"through the ClusterIP": cluster,
                                          "to one pod IP directly": direct}, "requests/s")
    out.rounds("DNAT: each round's ratio", {"ClusterIP / pod IP": ratios}, "x")
    ratio = _median(ratios)
    rows = [[f"ClusterIP {d['cluster_ip']}:80 (3 pods)", f"**{_median(cluster):.0f}**",
             f"{1000 / _median(cluster):.2f} ms"],
            [f"pod IP {d['pod_ip']}:8080", f"**{_median(direct):.0f}**",
             f"{1000 / _median(direct):.2f} ms"]]
    spread = ", ".join(f"{n}" for _, n in sorted(d["answers"].items()))
    out.table(f"DNAT cost (median of {args.dnat_rounds} rounds each)",
              ["path", "requests/s", "per request"], rows,
              f"ClusterIP / pod IP, the median of the rounds' ratios: **{ratio:.3f}x** "
              f"(target >= {DNAT_TARGET}x: "
              + ("met" if ratio >= DNAT_TARGET else "**missed**") + "). "
              f"Through the ClusterIP, the {len(d['answers'])} pods answered {spread} of "
              f"the {args.requests * args.dnat_rounds} requests. Each request is a new "
              "`wget` process and TCP connection from a busybox container on the default "
              "bridge, to a busybox httpd; most of a request's time is the client's fork "
              "and exec, the same on both paths.")


def write_latency(out: report.Report, d: Data) -> None:
    ms = [t * 1e3 for t in d["latency"]]
    out.rounds("Programming latency, in order", {
        "new pod's app container started -> first answer from it via the ClusterIP": ms},
        "ms")
    med, worst = _median(ms), max(ms)
    out.table(f"Programming latency (median and worst of {len(ms)}, one host)",
              ["measurement", "median", "worst", "target"],
              [["app container `start` event -> first answer through the ClusterIP",
                f"**{med:.0f} ms**", f"{worst:.0f} ms",
                f"<= {LATENCY_TARGET_S:.0f} s: "
                + ("met" if med <= LATENCY_TARGET_S * 1e3 else "**missed**")]],
              "The watching controller sees the `start` event, passes, finds the pod Ready, "
              "renders the rule set and has the node agent apply it; the client's 4 requests "
              "every 50 ms (stamped at 10 ms resolution) pick one of the 2 endpoints at "
              "random, so noticing adds about a tick. This is the local one-host figure.")


if __name__ == "__main__":
    main()
