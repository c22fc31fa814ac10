"""Benchmark: the controller's read-only Kubernetes API in the lab, over 500 pods.

With the lab up (`make lab`), an RC of 500 tiny busybox pods (`--pods`) is pushed to the
master's repository and run on the two nodes; then:

1. `kubectl get pods` over them as a user types it (the admin kubeconfig `.lab/kubeconfig`,
   discovery cached): the command's wall time, median of the rounds, beside kubectl's own
   start-up (`kubectl version --client`, no server), and the server's answer alone to the
   list request kubectl sends (a Table) and to the plain PodList the Python client asks for,
   timed by curl with the admin certificate (total less connect and TLS handshake).
   Target: the list answered within 100 ms.
2. The controller's pass on the master, woken one pass at a time (its clone's HEAD touched)
   with nothing to do, as its status file reports it (each pass records how long the one
   before took: manifests loaded from Git, nodes observed, plan made, snapshot handed to the
   API), with no API client and with 20 `kubectl get pods -w` watching every pod. Target:
   under 10 % slower with the watchers.
3. A push of 10 more replicas (from 490 to 500), from `git push` to all of them running,
   with and without the watchers.

500 is about what the lab holds: each node's pod subnet is a /24, whose 253 addresses go to
its pods and its DNS agent.

Everything runs on one machine: the lab's hosts, the controller, kubectl and curl share its
cores, so client work shows up as load on the controller too.

Usage: .venv/bin/python bench/api.py [--pods 500] [--rounds 15] [--passes 40] [--watchers 20]
(kubectl: PODYARD_KUBECTL, else the one on PATH)
"""

from __future__ import annotations

import argparse
import base64
import ipaddress
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Run as `python bench/api.py` from the repository root: make `bench` and `tests` importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import kubernetes
import yaml

from bench import report
from tests.lab import hosts, operate

kube: Any = kubernetes  # the client's type hints are partial
KUBECONFIG = hosts.LAB_DIR / "kubeconfig"
NAME = "apibench"
NS = "default"
EXTRA = 10
IDLE = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: lab-idle\n"
STATUS = "/run/podyard/status-default.json"
CLONE = "/var/lib/podyard/manifests"
# What kubectl get sends (kubectl 1.20 to 1.33 alike).
TABLE = ("application/json;as=Table;v=v1;g=meta.k8s.io,"
         "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")
# Wakes the controller once per `gap` seconds and prints what its status file says of the
# pass before: "<passes finished> <seconds of the last one>".
PASS_PROBE = """\
for i in $(seq {count}); do
  sudo -u podyard touch {clone}/.git/HEAD
  sleep {gap}
  python3 -c 'import json, sys; p = json.load(open(sys.argv[1])).get("passes", {{}}); \
print(p.get("finished", 0), p.get("lastSeconds", 0))' {status}
done
"""


def ms(values: list[float]) -> str:
    return f"{report.fmt(statistics.median(values) * 1e3)} ms"


@dataclass
class Client:
    """kubectl, curl and the Python client with the admin kubeconfig."""

    kubectl: str
    home: Path  # kubectl's discovery cache lives here for the whole run
    certs: Path  # the kubeconfig's CA, certificate and key as files, for curl
    server: str
    watchers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    printed: list[bytearray] = field(default_factory=list)  # each watcher's output so far

    def env(self) -> dict[str, str]:
        return {**os.environ, "HOME": str(self.home)}

    def timed(self, *argv: str) -> tuple[float, str]:
        started = time.monotonic()
        done = subprocess.run(argv, capture_output=True, text=True, env=self.env(),
                              timeout=120, check=False)
        took = time.monotonic() - started
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed: {done.stderr}")
        return took, done.stdout

    def get_pods(self) -> tuple[float, int]:
        """Wall time of `kubectl get pods`, and the rows it printed."""
        took, out = self.timed(self.kubectl, "--kubeconfig", str(KUBECONFIG), "get", "pods",
                               "-l", f"app={NAME}")
        return took, len(out.splitlines()) - 1

    def start_up(self) -> float:
        return self.timed(self.kubectl, "version", "--client")[0]

    def request(self, path: str, accept: str) -> tuple[float, int]:
        """The server's time for one request alone (curl: total less connect and TLS), and
        the bytes of the answer."""
        out = self.timed(
            "curl", "-sS", "-o", "/dev/null", "--fail", "-H", f"Accept: {accept}",
            "--cacert", str(self.certs / "ca.pem"), "--cert", str(self.certs / "admin.pem"),
            "--key", str(self.certs / "admin-key.pem"),
            "-w", "%{time_pretransfer} %{time_total} %{size_download}", self.server + path,
        )[1].split()
        return float(out[1]) - float(out[0]), int(out[2])

    def watch(self, count: int) -> None:
        """Start `count` kubectl get pods -w, each watching every pod."""
        for _ in range(count):
            watcher = subprocess.Popen(
                [self.kubectl, "--kubeconfig", str(KUBECONFIG), "get", "pods", "-w"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=self.env())
            self.watchers.append(watcher)
            self.printed.append(bytearray())
            threading.Thread(target=_drain, args=(watcher, self.printed[-1]),
                             daemon=True).start()

    def shown_everywhere(self, names: set[str]) -> bool:
        """Whether every watcher has printed every one of these pod names."""
        return all(all(name.encode() in out for name in names) for out in self.printed)

    def connected(self) -> int:
        return sum(w.poll() is None for w in self.watchers)

    def stop_watching(self) -> None:
        for w in self.watchers:
            w.kill()
        for w in self.watchers:
            w.wait(timeout=30)
        self.watchers, self.printed = [], []


def _drain(process: subprocess.Popen[bytes], into: bytearray) -> None:
    """Keep what a watcher prints (a full pipe would stall it)."""
    assert process.stdout is not None
    with process.stdout as stream:
        for line in stream:
            into += line


def write_certs(directory: Path) -> str:
    """The kubeconfig's CA, client certificate and key as files (key 0600); its server."""
    config = yaml.safe_load(KUBECONFIG.read_text())
    cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
    for name, data in (("ca.pem", cluster["certificate-authority-data"]),
                       ("admin.pem", user["client-certificate-data"]),
                       ("admin-key.pem", user["client-key-data"])):
        path = directory / name
        path.touch(mode=0o600)
        path.write_bytes(base64.b64decode(data))
    return str(cluster["server"])


def running_in_api(core: Any) -> int:
    pods = core.list_namespaced_pod(NS, label_selector=f"app={NAME}").items
    return sum(p.status.phase == "Running" for p in pods)


def scale(lab: hosts.Lab, core: Any, replicas: int, timeout: float) -> float:
    """Push the RC with `replicas`; seconds until the engines run exactly that many, and the
    API lists them all Running."""
    started = time.monotonic()
    operate.push(lab, **{NAME: operate.rc(NAME, replicas, lab.registry)})
    operate.wait_until(f"{replicas} pods running",
                       lambda: sum(operate.count(lab, f"{NAME}-").values()) == replicas, timeout)
    took = time.monotonic() - started
    operate.wait_until(f"{replicas} pods Running in the API",
                       lambda: running_in_api(core) == replicas, 120)
    return took


def pushes(lab: hosts.Lab, core: Any, pods: int, rounds: int) -> list[float]:
    """Seconds from a push of EXTRA more replicas (up to `pods`) to all of them running."""
    took = []
    for i in range(rounds):
        scale(lab, core, pods - EXTRA, 300)
        settle(most=20)
        took.append(scale(lab, core, pods, 300))
        print(f"push round {i}: {took[-1]:.1f} s", flush=True)
    return took


def settle(most: float = 60, load: float = 3.0) -> None:
    """Wait (10 s at least, `most` at most) until this machine's load is below `load`: the
    lab's engines go on working for a while after creating or removing many containers."""
    time.sleep(10)
    deadline = time.monotonic() + most
    while os.getloadavg()[0] >= load and time.monotonic() < deadline:
        time.sleep(5)


def passes(lab: hosts.Lab, count: int, gap: float) -> list[float]:
    """Seconds of `count` idle passes of the controller, each woken on its own."""
    out = lab.ssh(lab.masters[0], PASS_PROBE.format(count=count + 2, clone=CLONE, gap=gap,
                                                    status=STATUS))
    seen: dict[int, float] = {}
    for line in out.splitlines():
        finished, seconds = line.split()
        seen[int(finished)] = float(seconds)
    # Passes the benchmark did not wake (a resync, an engine event) count too: they are passes.
    print(f"{max(seen) - min(seen)} passes finished for {count + 1} wake-ups", flush=True)
    # The first report may be of a pass from before this block began.
    return [seen[n] for n in sorted(seen)[1:]]


def controller_rss(lab: hosts.Lab) -> float:
    """The controller's resident memory on the master, in MiB."""
    pid = lab.ssh(lab.masters[0], "systemctl show -p MainPID --value podyard-controller").strip()
    return int(lab.ssh(lab.masters[0], f"ps -o rss= -p {pid}").strip()) / 1024


def mem_available() -> float:
    """This machine's available memory (the lab's hosts are its containers), in GiB."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 2**20
    return 0.0


@dataclass
class Results:
    get_pods: list[float] = field(default_factory=list)
    start_up: list[float] = field(default_factory=list)
    table: list[float] = field(default_factory=list)
    podlist: list[float] = field(default_factory=list)
    python: list[float] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)
    passes_alone: list[float] = field(default_factory=list)
    passes_watched: list[float] = field(default_factory=list)
    passes_after: list[float] = field(default_factory=list)
    push_alone: list[float] = field(default_factory=list)
    push_watched: list[float] = field(default_factory=list)
    rss: dict[str, float] = field(default_factory=dict)


def measure_lists(client: Client, core: Any, pods: int, rounds: int, out: Results) -> None:
    path = f"/api/v1/namespaces/{NS}/pods?labelSelector=app%3D{NAME}&limit=500"
    for i in range(rounds + 1):  # the first round warms every cache and is not counted
        took, rows = client.get_pods()
        if rows != pods:
            raise SystemExit(f"kubectl get pods printed {rows} rows, not {pods}")
        start = client.start_up()
        table, out.sizes["Table"] = client.request(path, TABLE)
        podlist, out.sizes["PodList"] = client.request(path, "application/json")
        started = time.monotonic()
        listed = core.list_namespaced_pod(NS, label_selector=f"app={NAME}")
        python = time.monotonic() - started
        assert len(listed.items) == pods
        if i:
            out.get_pods.append(took)
            out.start_up.append(start)
            out.table.append(table)
            out.podlist.append(podlist)
            out.python.append(python)
        print(f"list round {i}: kubectl get pods {took * 1e3:.0f} ms, start-up "
              f"{start * 1e3:.0f} ms, Table {table * 1e3:.0f} ms, PodList {podlist * 1e3:.0f} ms, "
              f"python client {python * 1e3:.0f} ms", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--passes", type=int, default=40)
    parser.add_argument("--watchers", type=int, default=20)
    parser.add_argument("--pushes", type=int, default=3)
    parser.add_argument("--gap", type=float, default=1.0,
                        help="seconds between the passes woken (default 1)")
    parser.add_argument("--output", type=Path, default=report.default_output(__file__))
    args = parser.parse_args()
    lab = hosts.running_lab()
    if not KUBECONFIG.exists():
        sys.exit(f"no {KUBECONFIG}: run `make lab` first")
    # Each node's pod subnet holds its pods and its DNS agent (network, gateway, broadcast out).
    room = sum(ipaddress.ip_network(s).num_addresses - 4 for s in lab.pod_subnets.values())
    if args.pods > room:
        sys.exit(f"--pods {args.pods}: the nodes' pod subnets hold {room} pods at most")
    kubectl = os.environ.get("PODYARD_KUBECTL") or shutil.which("kubectl")
    if not kubectl:
        sys.exit("kubectl is not installed (make tools installs kubernetes-client)")
    printed = subprocess.run([kubectl, "version", "--client"], capture_output=True, text=True,
                             check=True).stdout
    found = re.search(r"v\d+\.\d+\.\d+[^\"\s,]*", printed)
    version = found.group(0) if found else printed.splitlines()[0]
    # Made now: the date and the load it records are those of the start.
    result = report.Report(f"The Kubernetes API in the lab: kubectl over {args.pods} pods",
                           docker=True)
    core = kube.client.CoreV1Api(kube.config.new_client_from_config(
        config_file=str(KUBECONFIG)))
    out = Results()
    with tempfile.TemporaryDirectory() as scratch:
        home, certs = Path(scratch) / "home", Path(scratch) / "certs"
        home.mkdir()
        certs.mkdir(mode=0o700)
        client = Client(kubectl, home, certs, write_certs(certs))
        available = mem_available()
        try:
            print(f"pushing {args.pods} pods", flush=True)
            up = scale(lab, core, args.pods, timeout=args.pods + 600)
            memory = available - mem_available()
            print(f"{args.pods} pods running after {up:.0f} s, {memory:.1f} GiB", flush=True)
            settle(most=180)
            out.rss["no client"] = controller_rss(lab)
            measure_lists(client, core, args.pods, args.rounds, out)
            print("passes, no API client", flush=True)
            out.passes_alone = passes(lab, args.passes, args.gap)
            out.push_alone = pushes(lab, core, args.pods, args.pushes)
            print(f"passes, {args.watchers} watchers", flush=True)
            client.watch(args.watchers)
            settle()  # each has listed every pod before the passes are timed
            out.rss[f"{args.watchers} watchers"] = controller_rss(lab)
            out.passes_watched = passes(lab, args.passes, args.gap)
            out.push_watched = pushes(lab, core, args.pods, args.pushes)
            if client.connected() != args.watchers:
                raise SystemExit(f"only {client.connected()} watchers stayed connected")
            names = {n for node in lab.nodes for n in operate.running(lab, node)
                     if n.startswith(f"{NAME}-")}
            operate.wait_until("every watcher to show every pod",
                               lambda: client.shown_everywhere(names), 30)
            client.stop_watching()
            settle()
            print("passes, no API client again", flush=True)
            out.passes_after = passes(lab, args.passes, args.gap)
        finally:
            client.stop_watching()
            operate.push(lab, idle=IDLE)
    print("removing the pods", flush=True)
    operate.wait_until("no benchmark pod left",
                       lambda: sum(operate.count(lab, f"{NAME}-").values()) == 0,
                       args.pods + 600)
    write(result, args, out, version, up, memory)


def write(result: report.Report, args: argparse.Namespace, out: Results, version: str,
          up: float, memory: float) -> None:
    result.facts += [
        f"lab: 2 nodes and a master, containers acting as machines on this host; {args.pods} "
        f"pods (busybox sleep) of one RC, spread over the nodes, running after {up:.0f} s "
        f"from the push; they took {memory:.1f} GiB of this machine's memory",
        f"kubectl {version}, curl {curl_version()}, kubernetes Python client "
        f"{kubernetes.__version__}",
        "controller's resident memory: " + ", ".join(
            f"{v:.0f} MiB with {k}" for k, v in out.rss.items()),
    ]
    result.describe(__doc__.split("\n\n", 1)[1].split("Usage:")[0].strip())
    result.rounds("List rounds", {
        "`kubectl get pods` (wall)": [v * 1e3 for v in out.get_pods],
        "`kubectl version --client` (wall)": [v * 1e3 for v in out.start_up],
        "server: Table list (curl, request alone)": [v * 1e3 for v in out.table],
        "server: PodList (curl, request alone)": [v * 1e3 for v in out.podlist],
        "Python client `list_namespaced_pod` (objects built)": [v * 1e3 for v in out.python],
    }, "ms")
    result.rounds("Passes (idle, woken one at a time)", {
        "no API client": [v * 1e3 for v in out.passes_alone],
        f"{args.watchers} `kubectl get pods -w`": [v * 1e3 for v in out.passes_watched],
        "no API client again": [v * 1e3 for v in out.passes_after],
    }, "ms")
    result.rounds(f"Push of {EXTRA} more replicas (up to {args.pods}) -> all running", {
        "no API client": out.push_alone,
        f"{args.watchers} `kubectl get pods -w`": out.push_watched,
    }, "s")
    table = statistics.median(out.table)
    result.table(f"kubectl get pods over {args.pods} pods", ["measurement", "median", "target"], [
        ["`kubectl get pods` (start-up, discovery from its cache, TLS, list, printing)",
         f"**{ms(out.get_pods)}**", ""],
        ["... kubectl's own start-up (`kubectl version --client`)", ms(out.start_up), ""],
        [f"server's answer to kubectl's list (Table, {out.sizes['Table'] / 1024:.0f} KiB)",
         f"**{ms(out.table)}**", "<= 100 ms " + ("(met)" if table <= 0.1 else "(missed)")],
        [f"server's PodList (JSON, {out.sizes['PodList'] / 1024:.0f} KiB)", ms(out.podlist),
         ""],
        ["Python client `list_namespaced_pod` (request and objects built)", ms(out.python), ""],
    ])
    alone = statistics.median(out.passes_alone + out.passes_after)
    watched = statistics.median(out.passes_watched)
    slower = (watched / alone - 1) * 100
    result.table("The controller's pass, with watchers connected",
                 ["measurement", "median", "p90", "target"], [
        ["idle pass, no API client (before and after)", f"{report.fmt(alone * 1e3)} ms",
         f"{report.fmt(p90(out.passes_alone + out.passes_after) * 1e3)} ms", ""],
        [f"idle pass, {args.watchers} `kubectl get pods -w` connected",
         f"{report.fmt(watched * 1e3)} ms", f"{report.fmt(p90(out.passes_watched) * 1e3)} ms",
         ""],
        ["difference", f"**{slower:+.1f} %**", "",
         "< +10 % " + ("(met)" if slower < 10 else "(missed)")],
        [f"push of {EXTRA} more replicas (up to {args.pods}) -> running, no API client",
         f"{statistics.median(out.push_alone):.1f} s", "", ""],
        [f"... with {args.watchers} watchers", f"{statistics.median(out.push_watched):.1f} s",
         "", ""],
    ])
    result.note(
        f"The two blocks without a client, before and after the watchers: "
        f"{ms(out.passes_alone)} and {ms(out.passes_after)} (median): their difference is "
        "the noise of a lab sharing two cores. Each watcher listed all "
        f"{args.pods} pods (a Table) before its block and stayed connected through it and "
        "through the pushes, and showed every pod the pushes made."
        if out.passes_after else "")
    result.write(args.output)


def curl_version() -> str:
    done = subprocess.run(["curl", "--version"], capture_output=True, text=True, check=True)
    return done.stdout.split()[1]


def p90(values: list[float]) -> float:
    return sorted(values)[max(0, round(0.9 * len(values)) - 1)]


if __name__ == "__main__":
    main()
