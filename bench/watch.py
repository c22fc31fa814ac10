"""Benchmark: how fast `reconcile --watch` acts on a change, measured from outside.

Starts `reconcile --watch --scope bench-<random>` on a ReplicationController manifest in a
temporary Git directory, waits until it has converged, then measures, several times each:
  * edit: from writing a manifest with one more replica to the engine's `start` event of the
    new pod's app container;
  * heal: from the engine's `die` event of a killed app container to the `start` event of its
    replacement.
Times come from the engine's event stream (`timeNano`) and this host's clock; both are the
same machine's clock. Also times, in this process, the steps of a pass after an edit: the
`Loader.load()` that re-reads the edited file, and a full list of the pods.

Everything it creates carries its namespace and scope and is removed at the end.

    .venv/bin/python bench/watch.py [--rounds 5] [--replicas 2] [--output FILE]
"""

from __future__ import annotations

import argparse
import os
import queue
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import docker

# Run as `python bench/watch.py`: the repository root, not bench/, must be on the path for
# `bench.report` and `tests.support` (and `reconciler` without an installed package).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import report
from reconciler import labels, manifests
from reconciler.engine import client, driver
from tests import support

BIN = Path(sys.executable).parent
GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.org",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.org"}


class Events:
    """The engine's events about the namespace's app containers, queued as they come."""

    def __init__(self, api: docker.APIClient, namespace: str) -> None:
        filters = {"type": "container", "event": ["start", "die"],
                   "label": [f"{labels.NAMESPACE}={namespace}", f"{labels.CONTAINER}=app"]}
        self.stream = api.events(filters=filters, decode=True)
        self.queue: queue.Queue[dict[str, Any]] = queue.Queue()
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        try:
            for event in self.stream:
                self.queue.put(event)
        except Exception:  # closed by `close`
            return

    def drain(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()

    def next(self, action: str, timeout: float = 60) -> dict[str, Any]:
        """The next event of that action; others before it are dropped."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SystemExit(f"no {action} event within {timeout:.0f}s")
            event = self.queue.get(timeout=left)
            if event.get("Action") == action:
                return event

    def close(self) -> None:
        self.stream.close()
        self.thread.join(timeout=5)


class Yard:
    """The manifest directory, the watching controller, and the engine it acts on."""

    def __init__(self, api: docker.APIClient, root: Path, namespace: str) -> None:
        self.api = api
        self.root = root
        self.namespace = namespace
        self.file = root / "web.yaml"
        self.log = root.parent / "watch.log"
        subprocess.run(["git", "init", "-q", str(root)], check=True)

    def write(self, replicas: int) -> float:
        """Replace the manifest in one rename, as an editor or `git checkout` does; when."""
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(support.rc_manifest(self.namespace, replicas))
        written = time.time()
        tmp.replace(self.file)
        return written

    def commit(self) -> None:
        env = {**os.environ, **GIT_ENV}
        subprocess.run(["git", "-C", str(self.root), "add", "-A"], check=True, env=env)
        subprocess.run(["git", "-C", str(self.root), "commit", "-qm", "bench"], check=True,
                       env=env)

    def running_apps(self) -> int:
        return len(self.api.containers(filters={"label": [
            f"{labels.NAMESPACE}={self.namespace}", f"{labels.CONTAINER}=app"]}))

    def wait_running(self, n: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.running_apps() != n:
            if time.monotonic() > deadline:
                raise SystemExit(f"not {n} pods within {timeout:.0f}s:\n{self.log.read_text()}")
            time.sleep(0.05)

    @contextmanager
    def watching(self, resync: float) -> Iterator[subprocess.Popen[bytes]]:
        with self.log.open("wb") as out:
            process = subprocess.Popen(
                [str(BIN / "reconcile"), "--watch", "--scope", self.namespace,
                 "--resync", str(resync), str(self.root)],
                stdout=out, stderr=subprocess.STDOUT,
            )
        try:
            yield process
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def measure(yard: Yard, events: Events, replicas: int, rounds: int) -> dict[str, list[float]]:
    """Seconds of each edit -> start and each die -> start, `rounds` of each."""
    edit, heal = [], []
    for r in range(rounds):
        n = replicas + r
        time.sleep(1.5)  # idle: every event of the last round handled, the pass settled
        events.drain()
        written = yard.write(n + 1)
        started = events.next("start")
        edit.append(started["timeNano"] / 1e9 - written)
        yard.wait_running(n + 1)
        time.sleep(1.5)
        events.drain()
        victim = yard.api.containers(filters={"label": [
            f"{labels.NAMESPACE}={yard.namespace}", f"{labels.CONTAINER}=app"]})[0]
        yard.api.kill(victim["Id"])
        died = events.next("die")
        started = events.next("start")
        heal.append((started["timeNano"] - died["timeNano"]) / 1e9)
        yard.wait_running(n + 1)
        print(f"round {r + 1}: edit {edit[-1] * 1000:.0f} ms, heal {heal[-1] * 1000:.0f} ms",
              file=sys.stderr)
    return {"edit": edit, "heal": heal}


def steps(yard: Yard, replicas: int, now: int) -> dict[str, float]:
    """Seconds of the steps of a pass after an edit: the `Loader.load()` that re-reads the
    edited file and a full list, timed here (median of 5 each); creating a pod as the
    controller reported it (to 0.1 s), the median over the edits' pods.
    """
    d = driver.DockerDriver.local(scope=yard.namespace)
    loader = manifests.Loader(yard.root)
    loads, lists = [], []
    try:
        for _ in range(5):
            loader.load()
            yard.write(now)  # the same manifest in a new file: the Loader must read it again
            started = time.perf_counter()
            assert loader.load().controllers[0].replicas == now
            loads.append(time.perf_counter() - started)
            started = time.perf_counter()
            d.list_pods()
            lists.append(time.perf_counter() - started)
            time.sleep(0.5)
    finally:
        d.close()
    created = re.findall(r"^\+ create pod .*\((\d+\.\d)s\)$", yard.log.read_text(), re.M)
    create = statistics.median(float(x) for x in created[replicas:]) if created else 0.0
    return {"load": statistics.median(loads), "list": statistics.median(lists),
            "create": create}


def cleanup(api: docker.APIClient, namespace: str) -> None:
    for c in api.containers(all=True, filters={"label": f"{labels.NAMESPACE}={namespace}"}):
        api.remove_container(c["Id"], force=True)
    for v in api.volumes(filters={"label": f"{labels.NAMESPACE}={namespace}"}).get(
            "Volumes") or ():
        api.remove_volume(v["Name"], force=True)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--replicas", type=int, default=2)
    p.add_argument("--resync", type=float, default=30.0)
    p.add_argument("--log", type=Path, help="keep the controller's output in this file")
    p.add_argument("--output", type=Path, default=report.default_output(__file__))
    args = p.parse_args(argv)
    out = report.Report("`reconcile --watch`: time to act", docker=True)
    out.describe(__doc__.split("\n\n")[1].strip())
    api = docker.APIClient(version=client.API_VERSION, timeout=120)
    namespace = f"bench-{secrets.token_hex(3)}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "manifests"
            root.mkdir()
            yard = Yard(api, root, namespace)
            yard.write(args.replicas)
            yard.commit()
            events = Events(api, namespace)
            try:
                with yard.watching(args.resync):
                    yard.wait_running(args.replicas)
                    times = measure(yard, events, args.replicas, args.rounds)
                    parts = steps(yard, args.replicas, args.replicas + args.rounds)
            finally:
                events.close()
                if args.log:
                    args.log.write_bytes(yard.log.read_bytes())
    finally:
        cleanup(api, namespace)
        api.close()
    write_results(out, times, parts, args)
    out.write(args.output)


def write_results(out: report.Report, times: dict[str, list[float]], parts: dict[str, float],
                  args: argparse.Namespace) -> None:
    edit, heal = [t * 1e3 for t in times["edit"]], [t * 1e3 for t in times["heal"]]
    out.rounds(f"{args.rounds} rounds, in order", {
        "manifest written (replicas +1) -> new app container started": edit,
        "app container killed (`die`) -> replacement started": heal,
    }, "ms")
    out.table(f"Time to act (median and worst of {args.rounds})",
              ["measurement", "median", "worst", "target"], [
                  ["manifest written (replicas +1) -> new app container started",
                   f"**{statistics.median(edit):.0f} ms**", f"{max(edit):.0f} ms",
                   "<= 1 s: " + ("met" if statistics.median(edit) <= 1000 else "**missed**")],
                  ["app container killed (`die`) -> replacement started",
                   f"**{statistics.median(heal):.0f} ms**", f"{max(heal):.0f} ms", ""],
              ],
              f"Where an edit's time goes: the loop waits 0.1 s after a file event for the "
              f"writer to finish (`Options.debounce`); `Loader.load()` re-reading the edited "
              f"file took {parts['load'] * 1e3:.0f} ms and a full list of the pods "
              f"{parts['list'] * 1e3:.0f} ms, timed here (medians of 5; `--watch` lists from "
              f"its cache, which costs no engine call when nothing else changed); creating a "
              f"pod took {parts['create']:.1f} s (median, as `reconcile --watch` reported "
              "it): create + start the pause container, then create + start the app "
              "container joining it.")


if __name__ == "__main__":
    main()
