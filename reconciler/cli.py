"""Command line of `reconcile`, and what every command shares: output, exit codes, errors.

The only module that knows exit codes (`status.py`, behind `podyard`, uses these).
Whatever goes wrong, the user sees a one-line reason and a non-zero exit, never a traceback.

Exit codes of `reconcile`: 0 converged (or valid, with --validate), 1 invalid manifests
(nothing changed), 2 not converged within --timeout, 3 the cluster cannot be used,
4 an internal error (a bug: please report it).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from reconciler import driver, errors, execute, loop, manifests, model, nodes, observe, plan

EXIT_OK, EXIT_INVALID, EXIT_NOT_CONVERGED, EXIT_CLUSTER, EXIT_BUG = 0, 1, 2, 3, 4

RECONCILE_HELP = """\
Make the containers on the cluster's Docker engines equal to a directory of Kubernetes v1
manifests (Pod, ReplicationController, Service, Namespace).

Without --cluster, the local engine (/var/run/docker.sock) is the one node.

examples:
  reconcile --validate manifests/     check the manifests, change nothing
  reconcile --dry-run manifests/      print the plan, change nothing
  reconcile manifests/                converge once, then exit
  reconcile --watch manifests/        keep converging on every change, until SIGTERM

exit codes: 0 converged, 1 invalid manifests (nothing changed), 2 not converged within
--timeout, 3 the cluster cannot be used, 4 internal error
"""


class Console:
    """Thread-safe output: results of actions arrive from worker threads."""

    def __init__(self, out: TextIO = sys.stdout, err: TextIO = sys.stderr, quiet: bool = False):
        self.out, self.err, self.quiet = out, err, quiet
        self.lock = threading.Lock()
        self.counts = {"created": 0, "deleted": 0, "restarted": 0, "failed": 0}

    def action(self, result: execute.Result) -> None:
        """One finished action, as it happens."""
        verb = {plan.CreatePod: "created", plan.DeletePod: "deleted"}.get(
            type(result.action), "restarted"
        )
        with self.lock:
            if result.error:
                self.counts["failed"] += 1
                print(f"{result.action.describe()} FAILED: {result.error}", file=self.err)
            else:
                self.counts[verb] += 1
                if not self.quiet:
                    print(f"{result.action.describe()} ({result.seconds:.1f}s)", file=self.out)
            self.out.flush()

    def info(self, message: str) -> None:
        with self.lock:
            if not self.quiet:
                print(message, file=self.out, flush=True)

    def warn(self, message: str) -> None:
        with self.lock:
            print(f"warning: {message}", file=self.err, flush=True)


def reconcile_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="reconcile",
        description=RECONCILE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", type=Path, help="directory (or file) of manifests")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--validate", action="store_true", help="validate only; touch no engine")
    mode.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")
    mode.add_argument("--watch", action="store_true", help="keep reconciling until SIGTERM")
    p.add_argument(
        "--committed",
        action="store_true",
        help="reconcile the committed Git HEAD tree, not the working tree",
    )
    p.add_argument("--cluster", type=Path, help="cluster file (default: the local engine)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to converge (default 300)")
    p.add_argument(
        "--parallelism", type=int, default=8, help="actions at once per pass (default 8)"
    )
    p.add_argument(
        "--pause-image",
        default=driver.PAUSE_IMAGE,
        help=f"pause image; built locally when missing (default {driver.PAUSE_IMAGE})",
    )
    p.add_argument(
        "--resync", type=float, default=30.0, help="--watch: full pass every N s (default 30)"
    )
    p.add_argument(
        "--backoff-initial",
        type=float,
        default=10.0,
        help="crash-loop backoff start in s (default 10)",
    )
    p.add_argument(
        "--backoff-max", type=float, default=300.0, help="crash-loop backoff cap in s (default 300)"
    )
    p.add_argument(
        "--scope",
        default=observe.DEFAULT_SCOPE,
        help="manage only pods of this scope, so several manifest sets can share engines "
        f"without pruning each other's pods (default {observe.DEFAULT_SCOPE})",
    )
    p.add_argument(
        "--allow-empty",
        action="store_true",
        help="let manifests that declare nothing delete every pod of the scope",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors and the summary")
    return p


def reconcile_main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point of `reconcile`."""
    args = reconcile_parser().parse_args(argv)
    console = Console(quiet=args.quiet)
    sys.exit(guard(lambda: _reconcile(args, console), console))


def guard(run: Callable[[], int], console: Console) -> int:
    """Run a command; map every failure to a message and an exit code."""
    try:
        return run()
    except errors.ManifestError as e:
        for problem in e.problems:
            print(f"error: {problem}", file=console.err)
        print(f"{e}; nothing was changed", file=console.err)
        return EXIT_INVALID
    except (errors.ClusterError, errors.EngineError, errors.TemporaryError) as e:
        print(f"error: {e}", file=console.err)
        return EXIT_CLUSTER
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as e:  # a bug: say so plainly rather than dump a traceback
        print(f"internal error: {type(e).__name__}: {e}", file=console.err)
        return EXIT_BUG


def _reconcile(args: argparse.Namespace, console: Console) -> int:
    def load() -> model.DesiredState:
        return manifests.load(args.path, committed=args.committed)

    desired = load()
    if args.validate:
        for line in manifests.summary(desired):
            console.info(line)
        console.info(f"revision: {desired.revision}")
        console.info(f"{args.path}: valid")
        return EXIT_OK
    if desired.services:
        # Said out loud rather than ignored: the Services are valid, but nothing forwards
        # their ClusterIP or NodePort to the pods yet.
        console.warn(
            f"{len(desired.services)} Service(s) validated but not applied: podyard does not "
            "program ClusterIP or NodePort forwarding yet"
        )
    cluster = nodes.load_cluster(args.cluster) if args.cluster else nodes.local_cluster()
    options = loop.Options(
        parallelism=args.parallelism,
        timeout=args.timeout,
        resync=args.resync,
        backoff=plan.Backoff(initial=args.backoff_initial, maximum=args.backoff_max),
        allow_empty=args.allow_empty,
    )
    drivers = driver.connect(
        cluster, parallelism=args.parallelism, pause_image=args.pause_image, scope=args.scope
    )
    controller = loop.Controller(cluster, drivers, options, console)
    try:
        if args.dry_run:
            return _dry_run(controller, desired, console)
        if args.watch:
            return _watch(controller, load, args.path, console)
        return _converge_once(controller, desired, console)
    finally:
        controller.close()


def _dry_run(controller: loop.Controller, desired: model.DesiredState, console: Console) -> int:
    observed = controller.observe_pods()
    the_plan = controller.plan(desired, observed)
    for action in the_plan.actions:
        console.info(action.describe())
    for reason in the_plan.waiting:
        console.info(f"  waiting: {reason}")
    if the_plan.empty:
        console.info(f"nothing to do: {len(observed)} pods match the manifests")
    else:
        console.info(f"{len(the_plan.actions)} actions planned (dry run: nothing changed)")
    return EXIT_OK


def _converge_once(
    controller: loop.Controller, desired: model.DesiredState, console: Console
) -> int:
    stop = _stop_on_signals()
    started = time.monotonic()
    converged, passes = controller.converge(desired, stop)
    seconds = time.monotonic() - started
    pods = passes[-1].pods if passes else 0
    if passes and all(p.plan.empty for p in passes):
        console.info(
            f"nothing to do: {pods} pods match the manifests (revision {desired.revision})"
        )
        return EXIT_OK
    c = console.counts
    summary = (
        f"{c['created']} created, {c['deleted']} deleted, {c['restarted']} restarted, "
        f"{c['failed']} failed in {seconds:.1f}s"
    )
    if converged:
        print(f"converged (revision {desired.revision}): {summary}", file=console.out)
        return EXIT_OK
    if stop.is_set():
        print(f"stopped: {summary}", file=console.out)
        return EXIT_OK
    print(f"not converged within {controller.options.timeout:.0f}s: {summary}", file=console.err)
    for reason in passes[-1].plan.waiting if passes else ():
        print(f"  waiting: {reason}", file=console.err)
    return EXIT_NOT_CONVERGED


def _watch(
    controller: loop.Controller,
    load: Callable[[], model.DesiredState],
    path: Path,
    console: Console,
) -> int:
    stop = _stop_on_signals()
    console.info(f"watching {path} (resync every {controller.options.resync:.0f}s)")
    loop.watch(controller, load, [path], stop)
    console.info("stopped")
    return EXIT_OK


def _stop_on_signals() -> threading.Event:
    """SIGTERM and SIGINT finish the action in flight, then stop."""
    stop = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
    return stop
