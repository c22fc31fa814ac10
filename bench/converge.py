"""Benchmark: podyard's convergence on one Docker engine, against what the engine can do.

Measures, on the same engine in one run:
  * 0 -> N pods (an RC of N replicas, every pod running) against a floor: the same 2N
    containers (pause + app) created and started by a minimal Docker SDK script at the same
    parallelism; N -> 0 against two floors: SDK force-removal (SIGKILL, what `docker rm -f`
    does) and the graceful stop podyard does (SIGTERM to the app, which exits at once, then
    remove). podyard's side is observe -> diff -> apply until a pass plans nothing.
  * With M pods: the controller process of `reconcile --watch` on a manifest of M replicas
    (in a temporary Git directory), run as a subprocess until it has converged: its own peak
    RSS (VmHWM in /proc/<pid>/status). Then, in this process, a `--watch` wake-up with
    nothing changed, as `reconciler.control.watch` makes it: `Loader.load()` (the manifest
    check, its `git` calls included) and `Controller.run_pass` (observe from the driver's
    container cache, kept live by the engine's event stream, open meanwhile; plan); and for
    comparison a one-shot `reconcile` pass, which lists every container.

Everything it creates carries its own namespace label and scope (both `bench-<random>`) and
is removed at the end. Watch latency is measured by bench/watch.py.

    .venv/bin/python bench/converge.py [--pods 100] [--idle-pods 500] [--parallelism 8]
                                       [--rounds 2] [--samples 20] [--output FILE]
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker

# Run as `python bench/converge.py`: the repository root, not bench/, must be on the path
# for `bench.report` and `tests.support` (and `reconciler` without an installed package).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import report
from reconciler import execute, labels, manifests, model, observe, plan
from reconciler.cluster import config
from reconciler.control import passes
from reconciler.engine import driver
from reconciler.plan import schedule
from tests import support

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


# -- M pods: the `--watch` controller process, and a `--watch` wake-up with nothing changed ----


class Quiet:
    """A `passes.Reporter` that keeps quiet, but for warnings."""

    def action(self, result: execute.Result) -> None:
        pass

    def info(self, message: str) -> None:
        pass

    def warn(self, message: str) -> None:
        print(f"controller: {message}", file=sys.stderr)


@dataclass
class Yard:
    """A Git directory holding one RC manifest of `replicas` pods, namespace = scope."""

    api: docker.APIClient
    root: Path
    namespace: str

    def create(self, replicas: int) -> None:
        self.root.mkdir()
        (self.root / "web.yaml").write_text(support.rc_manifest(self.namespace, replicas))
        env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.org",
               "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.org"}
        for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "bench"]):
            subprocess.run(["git", "-C", str(self.root), *args], check=True, env=env)

    def running(self) -> int:
        """Pods whose pause and app containers both run."""
        found = self.api.containers(filters={"label": f"{labels.NAMESPACE}={self.namespace}"})
        apps = sum(1 for c in found if c["Labels"].get(labels.CONTAINER) == "app")
        return min(apps, len(found) - apps)


@dataclass(frozen=True)
class WatchProcess:
    fill: float  # seconds from start to every pod running
    hwm_mb: float  # VmHWM once converged
    rss_mb: float  # VmRSS once converged


def watch_process(yard: Yard, pods: int, log: Path, timeout: float = 900) -> WatchProcess:
    """Run `reconcile --watch` until it has converged on `pods` pods; its memory, then stop it."""
    command = [str(Path(sys.executable).parent / "reconcile"), "--watch", "--scope",
               yard.namespace, str(yard.root)]
    with log.open("wb") as out:
        started = time.monotonic()
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        while yard.running() < pods:
            if process.poll() is not None or time.monotonic() - started > timeout:
                raise SystemExit(f"reconcile --watch did not converge:\n{log.read_text()}")
            time.sleep(0.5)
        fill = time.monotonic() - started
        quiet_since, size = time.monotonic(), log.stat().st_size
        while time.monotonic() - quiet_since < 3.0:  # converged: its output has gone quiet
            time.sleep(0.25)
            if log.stat().st_size != size:
                quiet_since, size = time.monotonic(), log.stat().st_size
        status = Path(f"/proc/{process.pid}/status").read_text()
        memory = {line.split(":")[0]: int(line.split()[1]) / 1024
                  for line in status.splitlines() if line.startswith(("VmHWM", "VmRSS"))}
        return WatchProcess(fill, memory["VmHWM"], memory["VmRSS"])
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def event_streams(drivers: Mapping[str, driver.Driver]) -> Iterator[None]:
    """Every node's event stream open and consumed, as the watch loop keeps them."""
    stop = threading.Event()
    threads = []
    for d in drivers.values():
        opened = threading.Event()

        def consume(d: driver.Driver = d, opened: threading.Event = opened) -> None:
            for _ in d.watch_events(stop, on_open=opened.set):
                pass

        threads.append(threading.Thread(target=consume, daemon=True))
        threads[-1].start()
        if not opened.wait(10):
            raise SystemExit("the engine's event stream did not open")
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)


@dataclass
class Wakeups:
    """Milliseconds of each sample: the whole wake-up, and its two parts."""

    total: list[float]
    load: list[float]
    run_pass: list[float]
    list_calls: int  # engine list calls made by all the samples


def count_list_calls(drivers: Mapping[str, driver.Driver]) -> Callable[[], int]:
    """Count the engine's list calls from now on; returns a function giving the count."""
    calls = 0
    for d in drivers.values():
        assert isinstance(d, driver.DockerDriver)
        real = d.api.containers

        def counted(*args: Any, real: Any = real, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            return real(*args, **kwargs)

        d.api.containers = counted
    return lambda: calls


def wakeups(controller: passes.Controller, load: Callable[[], model.DesiredState],
            samples: int) -> Wakeups:
    """`samples` wake-ups with nothing changed, each as `watch.watch` makes it."""
    calls = count_list_calls(controller.drivers)
    out = Wakeups([], [], [], 0)
    last = load()
    for _ in range(samples):
        started = time.perf_counter()
        desired = load()
        changed = desired != last  # what the loop's `_reload` compares
        loaded = time.perf_counter()
        result = controller.run_pass(desired)
        done = time.perf_counter()
        assert result.plan.empty and result.outcome is None and not changed, result.plan
        out.total.append((done - started) * 1e3)
        out.load.append((loaded - started) * 1e3)
        out.run_pass.append((done - loaded) * 1e3)
        last = desired
    out.list_calls = calls()
    return out


def heap_peak(controller: passes.Controller, load: Callable[[], model.DesiredState]) -> float:
    """MB: tracemalloc's peak over one wake-up."""
    tracemalloc.start()
    controller.run_pass(load())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


@dataclass(frozen=True)
class Idle:
    process: WatchProcess
    watch: Wakeups  # --watch: Loader.load() + run_pass, event stream open
    one_shot: Wakeups  # one-shot reconcile: run_pass with a full list (no load per pass)
    heap_mb: float
    drain: float


def idle(bench: Bench, pods: int, samples: int, parallelism: int) -> Idle:
    """M pods filled by `reconcile --watch`; its memory; then wake-ups timed here; drained."""
    with tempfile.TemporaryDirectory(prefix="podyard-bench-") as tmp:
        yard = Yard(bench.api, Path(tmp) / "manifests", bench.namespace)
        yard.create(pods)
        process = watch_process(yard, pods, Path(tmp) / "watch.log")
        print(f"--watch filled {pods} pods in {process.fill:.1f} s; VmHWM "
              f"{process.hwm_mb:.1f} MB", file=sys.stderr)
        cluster = config.local_cluster()
        drivers = driver.connect(cluster, parallelism=parallelism, scope=bench.namespace)
        # As `reconcile --watch` builds it, but for the status file each pass writes.
        options = passes.Options(parallelism=parallelism,
                                 status_file=Path(tmp) / f"status-{bench.namespace}.json")
        controller = passes.Controller(cluster, drivers, options, Quiet())
        loader = manifests.Loader(yard.root)
        try:
            desired = loader.load()
            one_shot = wakeups(controller, lambda: desired, samples)
            with event_streams(drivers):
                controller.run_pass(loader.load())  # the full list that fills the cache
                time.sleep(1.0)  # the last events of the fill arrive
                controller.run_pass(loader.load())
                watch = wakeups(controller, loader.load, samples)
                heap = heap_peak(controller, loader.load)
        finally:
            controller.close()
    drain = bench.converge(0)
    return Idle(process, watch, one_shot, heap, drain)


# -- the run ----------------------------------------------------------------------------------


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
    p.add_argument("--samples", type=int, default=20, help="wake-ups timed with M pods")
    p.add_argument("--output", type=Path, default=report.default_output(__file__))
    args = p.parse_args(argv)
    namespace = f"bench-{secrets.token_hex(3)}"
    out = report.Report("Convergence on one Docker engine", docker=True,
                        facts=[f"images: {IMAGE} (built by `make images`), the pause image "
                               "built by podyard"])
    out.describe(__doc__.split("\n\n")[1].strip(),
                 "The app container is `sh -c 'trap \"exit 0\" TERM; sleep 3600 & wait'`, "
                 "which exits at once on SIGTERM, so graceful deletion is not a wait for the "
                 "grace period.")
    d = driver.DockerDriver.local(parallelism=args.parallelism, scope=namespace)
    bench = Bench(d, d.api, namespace, args.parallelism)
    d.ensure_pause_image()
    try:
        if args.rounds:
            compare(bench, args, out)
        write_idle(idle(bench, args.idle_pods, args.samples, args.parallelism), args, out)
    finally:
        cleanup(d.api, bench.namespace)
        d.close()
    out.write(args.output)


def compare(bench: Bench, args: argparse.Namespace, out: report.Report) -> None:
    n = args.pods
    names = ("floor: SDK create + start", f"podyard 0 -> {n}", "floor: SDK force-remove",
             "floor: SDK stop app + remove", f"podyard {n} -> 0")
    series: dict[str, list[float]] = {name: [] for name in names}
    for r in range(args.rounds):
        floor_up = bench.floor_create(n)
        floor_kill = bench.floor_remove(graceful=False)
        bench.floor_create(n)
        floor_stop = bench.floor_remove(graceful=True)
        up = bench.converge(n)
        down = bench.converge(0)
        values = (floor_up, up, floor_kill, floor_stop, down)
        for name, value in zip(names, values, strict=True):
            series[name].append(value)
        print(f"round {r + 1}: " + ", ".join(f"{x:.2f}s" for x in values), file=sys.stderr)
    out.rounds(f"{n} pods (pause + app each), parallelism {args.parallelism}", series, "s")
    med = {name: statistics.median(values) for name, values in series.items()}
    up, down = med[names[1]], med[names[4]]
    out.table(f"{n} pods on one engine: podyard against the engine's floor "
              f"(medians of {args.rounds})",
              ["measurement", "podyard", "floor", "ratio", "target"], [
                  [f"0 -> {n} pods running", f"{up:.2f} s", f"{med[names[0]]:.2f} s "
                   "(SDK create + start)", f"**{up / med[names[0]]:.2f}x**", "<= 1.3x"],
                  [f"{n} -> 0 pods", f"{down:.2f} s", f"{med[names[2]]:.2f} s (SDK "
                   "force-remove, SIGKILL)", f"**{down / med[names[2]]:.2f}x**", ""],
                  [f"{n} -> 0 pods", f"{down:.2f} s", f"{med[names[3]]:.2f} s (SDK stop "
                   "app + remove, as podyard does)", f"**{down / med[names[3]]:.2f}x**", ""],
              ],
              "The floor is a minimal script with the SDK's low-level API at the same "
              "parallelism: create + start the pause container, then create + start the app "
              "container joining its network and IPC namespaces. podyard's time runs until a "
              "pass plans nothing, so it includes that last observing pass. Each podyard "
              "measurement ran in the same round as its floors: the ratios are the fair part.")


def write_idle(result: Idle, args: argparse.Namespace, out: report.Report) -> None:
    m, samples = args.idle_pods, args.samples
    watch, one_shot = result.watch, result.one_shot
    out.rounds(f"{m} pods: `--watch` wake-ups with nothing changed, in order (ms)", {
        "wake-up: `Loader.load()` + `run_pass`": watch.total,
        "`Loader.load()`": watch.load,
        "`Controller.run_pass` (cache)": watch.run_pass,
        "one-shot pass: `run_pass` (full list)": one_shot.run_pass,
    }, "ms")

    def med(values: list[float]) -> str:
        return f"{statistics.median(values):.1f} ms (worst {max(values):.1f} ms)"

    total = statistics.median(watch.total)
    out.table(f"{m} pods running", ["measurement", "value", "target"], [
        [f"`--watch` wake-up with nothing changed: `Loader.load()` + `Controller.run_pass`, "
         f"event stream open, median of {samples}", f"**{med(watch.total)}**",
         "<= 100 ms: " + ("met" if total <= 100 else "**missed**")],
        ["... of which `Loader.load()` (scan, `git rev-parse`, `git status`)",
         med(watch.load), "<= 50 ms: " + (
             "met" if statistics.median(watch.load) <= 50 else "**missed**")],
        ["... of which `Controller.run_pass` (observe from the cache, plan)",
         med(watch.run_pass), ""],
        [f"engine list calls in those {samples} wake-ups", f"{watch.list_calls}", "0"],
        [f"one-shot `reconcile` pass (`run_pass`, a full list each), median of {samples}",
         med(one_shot.run_pass) + f"; {one_shot.list_calls} list calls", ""],
        ["peak RSS of the `reconcile --watch` process (VmHWM), converged on "
         f"{m} pods", f"**{result.process.hwm_mb:.1f} MB** (RSS then: "
         f"{result.process.rss_mb:.1f} MB)", "<= 100 MB: " + (
             "met" if result.process.hwm_mb <= 100 else "**missed**")],
        ["Python heap peak over one wake-up in this process (tracemalloc)",
         f"{result.heap_mb:.1f} MB", ""],
        [f"0 -> {m} pods by `reconcile --watch` (for reference)",
         f"{result.process.fill:.1f} s", ""],
        [f"{m} -> 0 pods (for reference)", f"{result.drain:.1f} s", ""],
    ],
        "The wake-up is timed in this process, as `reconciler.control.watch` makes it after "
        "`reconcile --watch` was stopped (its pods stay): the same Loader, driver and "
        "Controller classes, the local engine's event stream open and consumed so the "
        "driver's container cache is live; the first pass after opening it made the full "
        "list that fills the cache, and was not timed. The memory figure is the `--watch` "
        "process's own high-water mark after it filled and converged on the pods itself.")


if __name__ == "__main__":
    main()
