"""The `reconcile` command: validate, dry-run, converge once, or watch.

Exit codes (from `console.py`): 0 converged (or valid, with --validate), 1 invalid manifests
(nothing changed), 2 not converged within --timeout, 3 the cluster cannot be used,
4 an internal error (a bug: please report it).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn, assert_never

import yaml

from reconciler import errors, labels, manifests, model, plan
from reconciler.api import app
from reconciler.cli.console import (
    EXIT_NOT_CONVERGED,
    EXIT_OK,
    Console,
    guard,
)
from reconciler.cluster import config, health
from reconciler.control import passes, status, watch
from reconciler.engine import driver, podspec
from reconciler.manifests import files, policy

RECONCILE_HELP = """\
Make the containers on the cluster's Docker engines equal to a directory of Kubernetes v1
manifests (Pod, ReplicationController, Service, Namespace).

Without --cluster, the local engine (/var/run/docker.sock) is the one node.

examples:
  reconcile --validate manifests/     check the manifests, change nothing
  reconcile --dry-run manifests/      print the plan, change nothing
  reconcile --dry-run -o yaml m/      the plan with each container's exact create request
  reconcile manifests/                converge once, then exit
  reconcile --watch manifests/        keep converging on every change, until SIGTERM

exit codes: 0 converged, 1 invalid manifests (nothing changed), 2 not converged within
--timeout, 3 the cluster cannot be used, 4 internal error
"""


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
    p.add_argument(
        "-o",
        "--output",
        choices=["yaml", "json"],
        help="--dry-run: print the plan as YAML or JSON, with the exact Docker create "
        "request of every container and volume each action would make",
    )
    mode.add_argument("--watch", action="store_true", help="keep reconciling until SIGTERM")
    p.add_argument(
        "--committed",
        action="store_true",
        help="reconcile the committed Git HEAD tree, not the working tree",
    )
    p.add_argument("--cluster", type=Path, help="cluster file (default: the local engine)")
    p.add_argument(
        "--pod-security",
        choices=model.POD_SECURITY_LEVELS,
        help="Pod Security Standards level pods must keep to: baseline refuses hostPath "
        "volumes and hostPorts the cluster file's podSecurity does not allow, privileged "
        f"allows them (default: the cluster file's podSecurity.level, else {model.BASELINE})",
    )
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
        "--node-grace",
        type=float,
        help="seconds without an answer before a node is NotReady (default: the cluster "
        f"file's nodeGrace, else {health.DEFAULT_GRACE:g})",
    )
    p.add_argument(
        "--eviction-delay",
        type=float,
        help="seconds a node stays NotReady before its pods are replaced on other nodes "
        f"(default: the cluster file's evictionDelay, else {health.DEFAULT_EVICTION_DELAY:g})",
    )
    p.add_argument(
        "--scope",
        default=labels.DEFAULT_SCOPE,
        help="manage only pods of this scope, so several manifest sets can share engines "
        f"without pruning each other's pods (default {labels.DEFAULT_SCOPE})",
    )
    p.add_argument(
        "--allow-empty",
        action="store_true",
        help="let manifests that declare nothing delete every pod of the scope",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors and the summary")
    api = p.add_argument_group(
        "read-only Kubernetes API (for kubectl), with --watch; all four flags together")
    api.add_argument("--api-listen", metavar="HOST:PORT",
                     help="serve the cluster's objects over HTTPS at this address")
    api.add_argument("--api-cert", metavar="FILE", help="the server's certificate (PEM)")
    api.add_argument("--api-key", metavar="FILE", help="the server's private key (PEM)")
    api.add_argument("--api-client-ca", metavar="FILE",
                     help="the CA that signs the client certificates it accepts (PEM)")
    return p


def _check_api_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    files = {"--api-cert": args.api_cert, "--api-key": args.api_key,
             "--api-client-ca": args.api_client_ca}
    if not args.api_listen:
        given = [flag for flag, value in files.items() if value]
        if given:
            parser.error(f"{', '.join(given)} go with --api-listen")
        return
    if not args.watch:
        parser.error("--api-listen goes with --watch")
    missing = [flag for flag, value in files.items() if not value]
    if missing:
        parser.error(f"--api-listen needs {', '.join(missing)} (clients must present a "
                     "certificate signed by --api-client-ca)")


def reconcile_main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point of `reconcile`."""
    parser = reconcile_parser()
    args = parser.parse_args(argv)
    if args.output and not args.dry_run:
        parser.error("-o/--output goes with --dry-run")
    _check_api_flags(parser, args)
    console = Console(quiet=args.quiet)
    sys.exit(guard(lambda: _reconcile(args, console), console))


def _reconcile(args: argparse.Namespace, console: Console) -> int:
    # Read first: its pod security policy is part of what makes the manifests valid.
    cluster = config.load_cluster(args.cluster) if args.cluster else config.local_cluster()
    pod_security = cluster.pod_security
    if args.pod_security:
        pod_security = dataclasses.replace(pod_security, level=args.pod_security)
    loader = manifests.Loader(
        args.path, committed=args.committed, pod_security=pod_security,
        trust=cluster.commit_trust, service_cidr=cluster.service_cidr,
    )
    try:
        desired = loader.load()
    except errors.ManifestError as e:
        if not args.watch:
            raise
        # A controller waits for valid manifests rather than exiting (and restarting) on them.
        for problem in e.problems:
            console.warn(f"invalid manifest: {problem}")
        desired = model.DesiredState()
    if args.validate:
        for line in manifests.summary(desired):
            console.info(line)
        console.info(f"revision: {desired.revision}")
        console.info(f"pod security: {policy.describe(pod_security)}")
        console.info(f"{args.path}: valid")
        return EXIT_OK
    options = passes.Options(
        parallelism=args.parallelism,
        timeout=args.timeout,
        resync=args.resync,
        backoff=plan.Backoff(initial=args.backoff_initial, maximum=args.backoff_max),
        allow_empty=args.allow_empty,
        node_grace=_first(args.node_grace, cluster.node_grace, health.DEFAULT_GRACE),
        eviction_delay=_first(
            args.eviction_delay, cluster.eviction_delay, health.DEFAULT_EVICTION_DELAY
        ),
        reserved=cluster.reserved,
        status_file=None if args.dry_run else status.default_path(args.scope),
    )
    # Bound and loaded before anything else: a bad address or TLS file fails at once.
    served = None if not args.api_listen else app.App(
        args.api_listen, args.api_cert, args.api_key, args.api_client_ca, cluster, args.scope,
        console)
    drivers = driver.connect(
        cluster, parallelism=args.parallelism, pause_image=args.pause_image, scope=args.scope
    )
    reporter = served.reporter if served else console
    controller = passes.Controller(cluster, drivers, options, reporter)
    try:
        if args.dry_run:
            return _dry_run(controller, desired, console, args.output)
        if args.watch:
            if served:
                served.attach(controller)
                served.start()
                console.info(f"serving the Kubernetes API (read-only) at https://{args.api_listen}")
            return _watch(controller, loader.load, args.path, console, args.committed)
        return _converge_once(controller, desired, console)
    finally:
        if served:
            served.close()
        controller.close()


def _first(*values: float | None) -> float:
    """The first value given: the flag, then the cluster file, then the default."""
    return next(v for v in values if v is not None)


def _dry_run(
    controller: passes.Controller, desired: model.DesiredState, console: Console,
    output: str | None,
) -> int:
    view = controller.survey()
    observed = list(view.pods)
    # Stable output from run to run: a pod's uid follows from its name (only the generated
    # names of RC pods still differ); nothing is created, so no uid is ever used.
    ctx = dataclasses.replace(controller.context(desired), uid=_name_uid)
    the_plan = controller.plan(desired, observed, ctx, view.networks)
    if output:
        document = plan_document(the_plan, controller.drivers, len(observed))
        if output == "json":
            print(json.dumps(document, indent=2), file=console.out)
        else:
            print(yaml.safe_dump(document, sort_keys=False), end="", file=console.out)
        return EXIT_OK
    for action in the_plan.actions:
        console.info(action.describe())
    for reason in the_plan.waiting:
        console.info(f"  waiting: {reason}")
    if the_plan.empty:
        console.info(f"nothing to do: {len(observed)} pods match the manifests")
    else:
        console.info(f"{len(the_plan.actions)} actions planned (dry run: nothing changed)")
    return EXIT_OK


def _name_uid(namespace: str, name: str) -> str:
    return hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()[:32]


def plan_document(
    the_plan: plan.Plan, drivers: Mapping[str, driver.Driver], observed: int
) -> dict[str, Any]:
    """The plan as data: each action, and for a creation the exact requests it would send."""
    items = [_action_document(a, drivers[a.node]) for a in the_plan.actions]
    return {
        "kind": "Plan",
        "observedPods": observed,
        "actions": items,
        "waiting": list(the_plan.waiting),
    }


def _action_document(action: plan.Action, d: driver.Driver) -> dict[str, Any]:
    scope = d.scope or labels.DEFAULT_SCOPE
    doc: dict[str, Any] = {"action": action.describe(), "node": action.node}
    match action:
        case plan.CreatePod():
            specs = podspec.pod(action.pod, action.node, scope, d.pause_image)
            doc.update(specs.as_dict())
        case plan.RestartContainer():
            container = next(
                c for c in action.pod.template.spec.containers if c.name == action.container
            )
            app = podspec.app(
                action.pod, action.node, scope, container,
                restarts=action.restarts, streak=action.streak,
            )
            doc.update({"remove": action.old_id or None, "container": app.as_dict()})
        case plan.DeletePod():
            doc.update({"uid": action.uid, "remove": list(action.container_ids)})
        case plan.ClaimAddress() | plan.ReleaseAddress():
            doc.update({"claim": dataclasses.asdict(action.claim) | {"created": None}})
        case plan.ProgramRules():
            doc.update({"digest": action.rules.digest, "iptables-restore": action.rules.text,
                        "jumps": [j.line() for j in action.rules.jumps]})
        case plan.ProgramDNS():
            doc.update({"digest": action.records.digest, "hosts": action.records.hosts,
                        "srv": list(action.records.srv)})
        case _:
            assert_never(action)
    return doc


def _converge_once(
    controller: passes.Controller, desired: model.DesiredState, console: Console
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
    controller: passes.Controller,
    load: Callable[[], model.DesiredState],
    path: Path,
    console: Console,
    committed: bool,
) -> int:
    stop = _stop_on_signals()
    console.info(f"watching {path} (resync every {controller.options.resync:.0f}s)")
    git_dir = files.git_dir(path) if committed else None
    watch.watch(controller, load, [path], stop, git_dir)
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
