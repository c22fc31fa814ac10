"""Benchmark: podyard's convergence on one Docker engine, against what the engine can do.

Measures, on the same engine in one run:
  * 0 -> N pods (an RC of N replicas, every pod running) against a floor: the same 2N
    containers (pause + app) created and started by a minimal Docker SDK script at the same
    parallelism;
  * N -> 0 against two floors: SDK force-removal (SIGKILL, what `docker rm -f` does) and the
    same graceful stop podyard does (SIGTERM to the app, which exits at once, then remove);
  * a pass that finds nothing to do with M pods running (observe + diff), both as one-shot
    `reconcile` does it (a full list of the node's containers) and as `--watch` does it (from
    the driver's container cache, kept fresh by the engine's event stream);
  * the controller's memory with M pods: tracemalloc peak of a pass, and the peak RSS of a
    fresh process doing one pass.

Usage: python bench/converge.py [--pods 100] [--idle-pods 500] [--parallelism 8] [--rounds 2]
Prints markdown. Everything it creates carries its own namespace label and scope (both
`bench-<random>`) and is removed at the end. Watch latency is measured by bench/watch.py.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import docker

from reconciler import execute, labels, model, observe, plan
from reconciler.engine import driver
from reconciler.plan import schedule

IMAGE = "podyard/busybox:1"
APP = ("sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait")  # exits at once on SIGTERM
FLOOR_LABEL = "io.podyard.bench"


@dataclass
class Bench:
    d: driver.DockerDriver
    api: docker.APIClient
    namespace: str
    parallelism: int

    def desired(self, replicas: int) -> model.DesiredState:
        spec = model.PodSpec(containers=(model.Container("app", IMAGE, command=APP),))
        tpl = model.PodTemplate(labels=(("app", "bench"),), annotations=(), spec=spec)
        rc = model.ReplicationController(
            self.namespace, "bench", tpl.labels, replicas, tpl.labels, tpl
        )
        return model.DesiredState(controllers=(rc,))

    def pods(self) -> list[observe.ObservedPod]:
        return [p for p in self.d.list_pods() if p.namespace == self.namespace]

    def one_pass(self, desired: model.DesiredState) -> plan.Plan:
        """Observe and diff: what a pass costs before it acts."""
        ctx = plan.Context(now=time.time(), nodes=(schedule.Node(self.d.node),))
        return plan.diff(desired, self.pods(), ctx)

    def converge(self, replicas: int) -> float:
        """Seconds until a pass plans nothing, every pod running."""
        desired = self.desired(replicas)
        started = time.perf_counter()
        while True:
            the_plan = self.one_pass(desired)
            if the_plan.empty and not the_plan.waiting:
                return time.perf_counter() - started
            outcome = execute.apply(the_plan, {self.d.node: self.d}, parallelism=self.parallelism)
            if outcome.failed:
                raise SystemExit(f"bench failed: {outcome.failed[0].error}")

    # -- the floors: the least any tool must do, with the SDK's low-level API --------------

    def floor_create(self, pods: int) -> float:
        pause_image = self.d.ensure_pause_image()
        labels = {FLOOR_LABEL: self.namespace}

        def pod(i: int) -> None:
            host = self.api.create_host_config(ipc_mode="shareable")
            pause = self.api.create_container(pause_image, labels=labels, host_config=host,
                                              name=f"floor_POD_{self.namespace}_{i}")["Id"]
            self.api.start(pause)
            host = self.api.create_host_config(network_mode=f"container:{pause}",
                                               ipc_mode=f"container:{pause}")
            app = self.api.create_container(IMAGE, entrypoint=list(APP), labels=labels,
                                            host_config=host,
                                            name=f"floor_app_{self.namespace}_{i}")
            self.api.start(app["Id"])

        return timed(lambda: self._parallel(pod, range(pods)))

    def floor_remove(self, graceful: bool) -> float:
        found = self.api.containers(all=True, filters={"label": f"{FLOOR_LABEL}={self.namespace}"})
        apps = [c["Id"] for c in found if c["Names"][0].startswith("/floor_app")]
        pauses = [c["Id"] for c in found if c["Names"][0].startswith("/floor_POD")]

        def remove_app(cid: str) -> None:
            if graceful:
                self.api.stop(cid, timeout=30)
            self.api.remove_container(cid, force=True)

        def remove_pod(i: int) -> None:
            remove_app(apps[i])
            self.api.remove_container(pauses[i], force=True)

        if graceful:
            return timed(lambda: self._parallel(remove_pod, range(len(apps))))
        return timed(lambda: self._parallel(
            lambda cid: self.api.remove_container(cid, force=True), apps + pauses))

    def _parallel(self, fn: Callable[..., None], items: Sequence[object] | range) -> None:
        with ThreadPoolExecutor(self.parallelism) as pool:
            list(pool.map(fn, items))


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


@dataclass(frozen=True)
class Idle:
    median: float
    worst: float
    listing: float  # median seconds of list_pods alone
    calls: int  # engine list calls made by the timed passes


def idle_pass(bench: Bench, pods: int, samples: int = 20) -> Idle:
    """A do-nothing pass, `samples` times: its median and worst, and the listing's share."""
    desired = bench.desired(pods)
    times, lists = [], []
    real = bench.d.api.containers
    calls = 0

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return real(*args, **kwargs)

    bench.d.api.containers = counted  # type: ignore[method-assign]
    try:
        for _ in range(samples):
            lists.append(timed(bench.pods))
            started = time.perf_counter()
            assert bench.one_pass(desired).empty
            times.append(time.perf_counter() - started)
    finally:
        del bench.d.api.containers  # the class's method again
    return Idle(statistics.median(times), max(times), statistics.median(lists), calls)


@contextmanager
def watching(d: driver.DockerDriver) -> Iterator[None]:
    """The node's event stream open and consumed, as `reconcile --watch` keeps it."""
    stop, opened = threading.Event(), threading.Event()

    def consume() -> None:
        for _ in d.watch_events(stop, on_open=opened.set):
            pass

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    if not opened.wait(10):
        raise SystemExit("the engine's event stream did not open")
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def pass_memory(bench: Bench, pods: int) -> tuple[float, float]:
    """MB: tracemalloc peak of one pass in this process, peak RSS of a process doing one."""
    desired = bench.desired(pods)
    tracemalloc.start()
    bench.one_pass(desired)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    child = subprocess.run(
        [sys.executable, __file__, "--one-pass", bench.namespace, "--idle-pods", str(pods)],
        check=True, capture_output=True, text=True,
    )
    return peak / 2**20, json.loads(child.stdout)["maxrss_kb"] / 1024


def one_pass_process(namespace: str, pods: int) -> None:
    """The child of `pass_memory`: a controller process that does one whole pass."""
    import resource

    d = driver.DockerDriver.local(scope=namespace)
    bench = Bench(d, d.api, namespace, 8)
    the_plan = bench.one_pass(bench.desired(pods))
    execute.apply(the_plan, {d.node: d})
    print(json.dumps({"maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "actions": len(the_plan.actions)}))


def cleanup(api: docker.APIClient, namespace: str) -> None:
    for label in (f"{labels.NAMESPACE}={namespace}", f"{FLOOR_LABEL}={namespace}"):
        found = api.containers(all=True, filters={"label": label})
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda c: api.remove_container(c["Id"], force=True), found))


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pods", type=int, default=100)
    p.add_argument("--idle-pods", type=int, default=500)
    p.add_argument("--parallelism", type=int, default=8)
    p.add_argument("--rounds", type=int, default=2, help="0 skips the N-pod comparison")
    p.add_argument("--one-pass", metavar="NAMESPACE", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one_pass:
        return one_pass_process(args.one_pass, args.idle_pods)
    namespace = f"bench-{secrets.token_hex(3)}"
    d = driver.DockerDriver.local(parallelism=args.parallelism, scope=namespace)
    bench = Bench(d, d.api, namespace, args.parallelism)
    d.ensure_pause_image()
    try:
        report(bench, args)
    finally:
        cleanup(d.api, bench.namespace)


def report(bench: Bench, args: argparse.Namespace) -> None:
    if args.rounds:
        compare(bench, args)
    idle(bench, args)


def compare(bench: Bench, args: argparse.Namespace) -> None:
    n, rows = args.pods, []
    for r in range(args.rounds):
        floor_up = bench.floor_create(n)
        floor_kill = bench.floor_remove(graceful=False)
        bench.floor_create(n)
        floor_stop = bench.floor_remove(graceful=True)
        up = bench.converge(n)
        down = bench.converge(0)
        rows.append((floor_up, up, floor_kill, floor_stop, down))
        print(f"round {r + 1}: " + ", ".join(f"{x:.2f}s" for x in rows[-1]), file=sys.stderr)
    med = [statistics.median(col) for col in zip(*rows, strict=True)]
    print(f"## {n} pods on one engine (parallelism {args.parallelism}, median of {args.rounds})\n")
    print("| measurement | podyard | floor | ratio |\n|---|---|---|---|")
    print(f"| 0 -> {n} pods running | {med[1]:.2f} s | {med[0]:.2f} s (SDK create+start) "
          f"| {med[1] / med[0]:.2f}x |")
    print(f"| {n} -> 0 pods | {med[4]:.2f} s | {med[2]:.2f} s (SDK force-remove) "
          f"| {med[4] / med[2]:.2f}x |")
    print(f"| {n} -> 0 pods | {med[4]:.2f} s | {med[3]:.2f} s (SDK stop app + remove) "
          f"| {med[4] / med[3]:.2f}x |")


def idle(bench: Bench, args: argparse.Namespace) -> None:
    m = args.idle_pods
    fill = bench.converge(m)
    full = idle_pass(bench, m)
    with watching(bench.d):
        bench.pods()  # the full list that fills the cache
        time.sleep(1.0)  # let the last events of the fill arrive
        bench.pods()
        cached = idle_pass(bench, m)
    traced, rss = pass_memory(bench, m)
    drain = bench.converge(0)
    print(f"\n## {m} pods running\n")
    print("| measurement | value | target |\n|---|---|---|")
    for name, idle_ in (("one-shot: full list", full), ("--watch: cache, nothing changed", cached)):
        print(f"| pass with nothing to do (observe + diff), {name}, median of 20 "
              f"| {idle_.median * 1000:.0f} ms (worst {idle_.worst * 1000:.0f} ms; listing "
              f"{idle_.listing * 1000:.0f} ms; {idle_.calls} engine calls in 40 listings) "
              f"| <= 100 ms |")
    print(f"| Python heap peak during a pass (tracemalloc) | {traced:.1f} MB | |")
    print(f"| peak RSS of a controller process doing a pass | {rss:.1f} MB | <= 100 MB |")
    print(f"| 0 -> {m} pods (for reference) | {fill:.1f} s | |")
    print(f"| {m} -> 0 pods (for reference) | {drain:.1f} s | |")


if __name__ == "__main__":
    main()
