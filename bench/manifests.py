"""Benchmark: the manifest work of a `--watch` pass, with `manifests.Loader`, on 1,000 objects.

Writes 1,000 small objects (ReplicationControllers and Pods, alternately) into a Git
repository in a temporary directory, committed, in three layouts: 100 files of 10 objects,
one file of 1,000, and 1,000 files of one. For each layout, every round times:
  * full: `manifests.load(DIR)`, reading and validating every file (what each `--watch` pass
    cost before the Loader; the schemas are already compiled, as in a running controller);
  * idle: `Loader.load()` with nothing changed, as a pass woken by an engine event or the
    resync timer does it (the median of several calls); target <= 50 ms;
  * edited: `Loader.load()` right after one file was rewritten in place, as the pass a
    file event wakes does it (the edited file is read again, the others come from the cache).
Then where the idle load's time goes (the scan, `git rev-parse`, `git status`), the idle
load of `--committed` for reference, and checks, asserted, that an edited, an added and a
removed file are always seen, including same-size edits within the same second.

    .venv/bin/python bench/manifests.py [--rounds 7] [--samples 10] [--output FILE]

Needs no Docker engine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# Run as `python bench/manifests.py`: the repository root, not bench/, must be on the path
# for `bench.report` (and `reconciler` without an installed package).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import report
from reconciler import manifests, model
from reconciler.manifests import documents, files

OBJECTS = 1000
TARGET_MS = 50.0
LAYOUTS = ((100, 10), (1, 1000), (1000, 1))  # (files, objects per file)
SETTLE = files.RACY_NS / 1e9 + 0.2  # older than this, a file is trusted by its stat signature
GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.org",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.org"}
RC = """\
apiVersion: v1
kind: ReplicationController
metadata:
  name: app-{i:04d}
spec:
  replicas: {replicas}
  selector: {{app: app-{i:04d}}}
  template:
    metadata:
      labels: {{app: app-{i:04d}}}
    spec:
      containers:
        - name: app
          image: podyard/busybox:1
          command: ["sleep", "3600"]
"""
POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: app-{i:04d}
  labels: {{app: app-{i:04d}}}
spec:
  containers:
    - name: app
      image: podyard/busybox:1
      command: ["sleep", "3600"]
"""


@dataclass(frozen=True)
class Tree:
    """A Git repository of `files` manifest files holding `per_file` objects each."""

    root: Path
    files: int
    per_file: int

    @property
    def name(self) -> str:
        return f"{self.files} file{'s' * (self.files > 1)} x {self.per_file} " \
               f"object{'s' * (self.per_file > 1)}"

    def path(self, j: int) -> Path:
        return self.root / f"m-{j:04d}.yaml"

    def text(self, j: int, replicas: int = 1) -> str:
        """File j; its first object is the RC app-<first> with `replicas`."""
        first = j * self.per_file
        docs = [RC.format(i=i, replicas=replicas if i == first else 1) if i % 2 == 0
                else POD.format(i=i) for i in range(first, first + self.per_file)]
        return "---\n".join(docs)

    def create(self) -> None:
        self.root.mkdir()
        for j in range(self.files):
            self.path(j).write_text(self.text(j))
        git(self.root, "init", "-q")
        git(self.root, "add", "-A")
        git(self.root, "commit", "-qm", "1,000 objects")

    def edit(self, replicas: int) -> None:
        """Rewrite the first file in place, RC app-0000 with `replicas`: the same size."""
        with self.path(0).open("r+") as f:
            f.write(self.text(0, replicas))


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, env={**os.environ, **GIT_ENV})


def timed(fn: Callable[[], object]) -> float:
    """Milliseconds `fn` took."""
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1e3


def replicas_of(state: model.DesiredState, name: str) -> int | None:
    return next((c.replicas for c in state.controllers if c.name == name), None)


def settle() -> None:
    """Wait until every file is older than the Loader's racy window."""
    time.sleep(SETTLE)


def measure(tree: Tree, rounds: int, samples: int) -> dict[str, list[float]]:
    """Milliseconds per round of the full load, the idle Loader.load() and the edited one."""
    loader = manifests.Loader(tree.root)
    committed = manifests.Loader(tree.root, committed=True)
    loader.load()
    committed.load()
    series: dict[str, list[float]] = {"full": [], "edited": [], "idle": [], "committed": []}
    for r in range(rounds):
        series["full"].append(timed(lambda: manifests.load(tree.root)))
        replicas = 2 + r % 2
        tree.edit(replicas)
        started = time.perf_counter()
        state = loader.load()
        series["edited"].append((time.perf_counter() - started) * 1e3)
        assert replicas_of(state, "app-0000") == replicas, "an edited file was not seen"
        settle()
        cached = loader.load()  # the first pass after the racy window takes the file in
        idle = []
        for _ in range(samples):
            started = time.perf_counter()
            again = loader.load()
            idle.append((time.perf_counter() - started) * 1e3)
            assert again is cached, "an idle load did not return the cached state"
        series["idle"].append(statistics.median(idle))
        series["committed"].append(statistics.median(
            timed(committed.load) for _ in range(samples)))
        print(f"{tree.name}, round {r + 1}: " + ", ".join(
            f"{k} {v[-1]:.1f} ms" for k, v in series.items()), file=sys.stderr)
    return series


def breakdown(tree: Tree, samples: int) -> dict[str, float]:
    """Median milliseconds of the parts of an idle load, each timed on its own."""
    root = tree.root
    limits = documents.DEFAULT_LIMITS

    def run(*argv: str) -> Callable[[], object]:
        return lambda: subprocess.run(argv, cwd=root, capture_output=True, check=False)

    parts: dict[str, Callable[[], object]] = {
        "Loader.load() (idle, all of it)": manifests.Loader(root).load,
        "files.scan: walk + stat every file": lambda: files.scan(root, limits, committed=False),
        "files.revision: both git calls": lambda: files.revision(root),
        "git rev-parse --verify -q HEAD": run("git", "rev-parse", "--verify", "-q", "HEAD"),
        "git status --porcelain -- DIR": run("git", "status", "--porcelain", "--",
                                             root.resolve().as_posix()),
        "spawning `true` (the cost of any subprocess from this process)": run("true"),
    }
    loader = manifests.Loader(root)
    loader.load()
    parts["Loader.load() (idle, all of it)"] = loader.load
    return {name: statistics.median(timed(fn) for _ in range(samples))
            for name, fn in parts.items()}


def check_changes_seen(tree: Tree) -> list[str]:
    """Edits, additions and removals, each seen by the very next Loader.load(); asserted."""
    loader = manifests.Loader(tree.root)
    checked = []

    def expect(what: str, ok: Callable[[model.DesiredState], bool]) -> None:
        if not ok(loader.load()):
            raise SystemExit(f"NOT SEEN by Loader.load(): {what} ({tree.name})")
        checked.append(what)

    git(tree.root, "checkout", "-q", "--", ".")  # the tree as committed: app-0000 has 1
    settle()
    expect("the tree as committed", lambda s: replicas_of(s, "app-0000") == 1)
    loader.load()  # idle, cached
    tree.edit(4)
    expect("a settled file rewritten in place, same size", lambda s: replicas_of(
        s, "app-0000") == 4)
    tree.edit(5)
    expect("the same file rewritten again at once (same size, same second)",
           lambda s: replicas_of(s, "app-0000") == 5)
    tmp = tree.root / "m-0000.tmp"
    tmp.write_text(tree.text(0, 6))
    tmp.replace(tree.path(0))
    expect("a file replaced by a rename, as editors and git do",
           lambda s: replicas_of(s, "app-0000") == 6)
    settle()
    loader.load()
    added = tree.root / "zz-added.yaml"
    added.write_text(RC.format(i=9999, replicas=1))
    expect("a file added to a settled tree", lambda s: replicas_of(s, "app-9999") == 1)
    settle()
    loader.load()
    added.unlink()
    expect("a file removed from a settled tree", lambda s: replicas_of(s, "app-9999") is None)
    if tree.files > 1:
        settle()
        loader.load()
        kept = tree.path(1).read_text()
        tree.path(1).unlink()
        expect("a file of the committed tree removed (its objects gone)",
               lambda s: sum(s.counts().values()) == OBJECTS - tree.per_file)
        tree.path(1).write_text(kept)
        expect("the same file put back", lambda s: sum(s.counts().values()) == OBJECTS)
    git(tree.root, "checkout", "-q", "--", ".")
    expect("the edits undone by `git checkout`", lambda s: replicas_of(s, "app-0000") == 1)
    return checked


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--samples", type=int, default=10, help="idle loads per round")
    parser.add_argument("--output", type=Path, default=report.default_output(__file__))
    args = parser.parse_args()
    out = report.Report("The manifest cache: a `--watch` pass's manifest work, 1,000 objects",
                        docker=False, facts=[f"git {git_version()}"])
    out.describe(__doc__.split("\n\n")[1].strip())
    medians: dict[str, dict[str, float]] = {}
    parts: dict[str, dict[str, float]] = {}
    checks: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="podyard-bench-") as tmp:
        for n, (files_, per_file) in enumerate(LAYOUTS):
            tree = Tree(Path(tmp) / f"layout-{n}", files_, per_file)
            tree.create()
            assert sum(manifests.load(tree.root).counts().values()) == OBJECTS
            settle()
            series = measure(tree, args.rounds, args.samples)
            out.rounds(tree.name, {
                "full `manifests.load`": series["full"],
                "`Loader.load()` after one file was edited": series["edited"],
                f"`Loader.load()`, nothing changed (median of {args.samples})": series["idle"],
                f"`--committed` `Loader.load()`, nothing changed (median of {args.samples})":
                    series["committed"],
            }, "ms")
            medians[tree.name] = {k: statistics.median(v) for k, v in series.items()}
            parts[tree.name] = breakdown(tree, args.samples * 2)
            for check in check_changes_seen(tree):
                checks.setdefault(check, []).append(tree.name)
    write_results(out, medians, parts, checks, args)
    out.write(args.output)
    return 0


def write_results(out: report.Report, medians: dict[str, dict[str, float]],
                  parts: dict[str, dict[str, float]], checks: dict[str, list[str]],
                  args: argparse.Namespace) -> None:
    rows = []
    for name, m in medians.items():
        met = "met" if m["idle"] <= TARGET_MS else "**missed**"
        rows.append([name, f"{m['full']:.0f} ms", f"{m['edited']:.1f} ms",
                     f"**{m['idle']:.1f} ms** ({met})", f"{m['full'] / m['idle']:.0f}x",
                     f"{m['full'] / m['edited']:.1f}x", f"{m['committed']:.1f} ms"])
    out.table(f"1,000 objects: medians of {args.rounds} rounds",
              ["layout", "full load", "Loader, one file edited", "Loader, nothing changed "
               f"(target <= {TARGET_MS:.0f} ms)", "full / idle", "full / edited",
               "`--committed`, nothing changed"], rows)
    worst = max(m["idle"] for m in medians.values())
    out.note("**Headline: `Loader.load()` with 1,000 unchanged objects takes " + ", ".join(
        f"{m['idle']:.1f} ms ({name})" for name, m in medians.items()) + f"** (medians): the "
        f"target of at most {TARGET_MS:.0f} ms is " + ("met in every layout" if worst <=
        TARGET_MS else "**missed**") + ". A full `manifests.load`, which every pass made "
        "before the Loader, takes " + ", ".join(f"{m['full'] / m['idle']:.0f}x"
                                                for m in medians.values()) + " as long.")
    layouts = list(parts)
    out.table(f"Where an idle `Loader.load()` goes (ms, medians of {args.samples * 2})",
              ["part", *layouts], [[name] + [report.fmt(parts[layout][name]) for layout in layouts]
                                   for name in parts[layouts[0]]],
              "Each part is timed on its own, after the rounds above. An idle load is "
              "`files.scan` plus `files.revision` (its two `git` calls, each a process "
              "spawned from this one) plus comparing the fingerprint of every file.")
    out.note("## Changes always seen (asserted in this run)",
             "Each seen by the very next `Loader.load()`, in the layouts named:",
             "\n".join(f"- {check} ({'; '.join(where)})" for check, where in checks.items()))


def git_version() -> str:
    done = subprocess.run(["git", "--version"], capture_output=True, text=True, check=True)
    return done.stdout.split()[-1]


if __name__ == "__main__":
    sys.exit(main())
