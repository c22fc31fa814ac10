"""Benchmark: planning at scale, pure code: `plan.diff` with scheduling, 10,000 pods, 100 nodes.

The desired state is 100 ReplicationControllers of 100 replicas each (10,000 pods), every
template with CPU and memory requests (three sizes, 50m-250m and 64-256 MiB), on 100 nodes
of 16 CPUs and 32 GiB with known allocatable, so every filter and score of the scheduler
runs for every pod. Each round times:
  * from nothing: `plan.diff` with no pod observed: 10,000 creations, each placed by
    `schedule.Placement.choose` over the 100 nodes; target <= 1 s;
  * idle: `plan.diff` with the 10,000 pods observed as they were placed (built as
    `observe.ObservedPod`s in memory, requests included), which plans nothing, as a
    `--watch` pass with nothing changed does; target <= 100 ms.
  * the Services' part of that idle pass: `plan.services_plan` with a ClusterIP Service in
    front of each RC (100 Services of 100 endpoints), every node already holding the
    claims, rules and DNS records, so it plans nothing either: address allocation,
    endpoints, and each node's rule set compared with what it applied; target <= 100 ms
    with the pod diff.
The plans are checked, asserted: every pod placed, no node over its allocatable, each RC's
replicas spread evenly (100 over 100 nodes: one per node), and the idle plan empty. Before
each timed diff, the garbage of the untimed set-up is collected (`gc.collect()`); the
collections that the diff's own allocations trigger are timed with it.

    .venv/bin/python bench/plan.py [--rcs 100] [--replicas 100] [--nodes 100] [--rounds 7]
                                   [--profile] [--output FILE]

Needs no Docker engine.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import dataclasses
import gc
import itertools
import pstats
import statistics
import sys
import time
from pathlib import Path

# Run as `python bench/plan.py`: the repository root, not bench/, must be on the path
# for `bench.report` (and `reconciler` without an installed package).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import report
from reconciler import model, observe, plan
from reconciler.plan import schedule

FROM_NOTHING_TARGET_S = 1.0
IDLE_TARGET_MS = 100.0
NODE_CPU = 16_000  # millicores
NODE_MEMORY = 32 * 2**30
SIZES = ((50, 64 * 2**20), (100, 128 * 2**20), (250, 256 * 2**20))  # (cpu, memory) per pod
NOW = 1_700_000_000.0


def desired_state(rcs: int, replicas: int) -> model.DesiredState:
    """`rcs` ReplicationControllers of `replicas` pods, each of one of three sizes."""
    controllers = []
    for i in range(rcs):
        cpu, memory = SIZES[i % len(SIZES)]
        resources = model.Resources(cpu_request=cpu, memory_request=memory)
        container = model.Container("app", f"registry.local/app-{i}:1", resources=resources)
        labels = (("app", f"app-{i:03d}"),)
        template = model.PodTemplate(labels, (), model.PodSpec(containers=(container,)))
        controllers.append(
            model.ReplicationController(
                "default", f"app-{i:03d}", labels, replicas, labels, template
            )
        )
    return model.DesiredState(controllers=tuple(controllers))


def nodes(count: int) -> tuple[schedule.Node, ...]:
    return tuple(
        schedule.Node(f"node-{i:03d}", (), True, NODE_CPU, NODE_MEMORY) for i in range(count)
    )


def context(cluster: tuple[schedule.Node, ...]) -> plan.Context:
    """Deterministic names and uids, so every round plans exactly the same."""
    names = itertools.count()
    return plan.Context(
        now=NOW,
        nodes=cluster,
        suffix=lambda: f"{next(names):05d}",
        uid=lambda namespace, name: f"uid-{namespace}-{name}",
    )


def observed_as_placed(created: plan.Plan) -> list[observe.ObservedPod]:
    """The pods of a plan as the next pass would observe them: running, labels read back."""
    pods = []
    for i, action in enumerate(created.creates()):
        identity = action.pod
        pause = observe.ObservedContainer(f"p{i}", "POD", f"p{i}", "pause", "running", NOW - 60,
                                          ip=f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
        app = observe.ObservedContainer(f"a{i}", "app", f"a{i}", "app", "running", NOW - 60)
        pods.append(
            observe.ObservedPod(
                node=action.node,
                namespace=identity.namespace,
                name=identity.name,
                uid=identity.uid,
                owner=identity.owner,
                template_hash=identity.template_hash,
                revision=identity.revision,
                labels=identity.template.labels,
                pause=pause,
                containers=(app,),
                requests=identity.template.spec.requests,
            )
        )
    return pods


def check(created: plan.Plan, idle: plan.Plan, args: argparse.Namespace) -> None:
    """What the timed plans must be, or the times mean nothing."""
    creates = created.creates()
    assert len(creates) == args.rcs * args.replicas and not created.waiting, "all placed"
    used: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    per_rc: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for a in creates:
        requests = a.pod.template.spec.requests
        used[a.node][0] += requests.cpu
        used[a.node][1] += requests.memory
        per_rc[a.pod.owner][a.node] += 1
    assert all(cpu <= NODE_CPU and mem <= NODE_MEMORY for cpu, mem in used.values())
    assert len(per_rc) == args.rcs
    for counts in per_rc.values():  # spread: no node holds two more of an RC than another
        spread = [counts[n.name] for n in nodes(args.nodes)]
        assert max(spread) - min(spread) <= 1, "each RC spread evenly"
    assert idle.empty and not idle.waiting, "the idle pass plans nothing"


def timed_diff(
    desired: model.DesiredState,
    observed: list[observe.ObservedPod],
    cluster: tuple[schedule.Node, ...],
) -> tuple[float, float, plan.Plan]:
    """One `plan.diff`: the seconds it took (wall clock, then this process's CPU time).

    The garbage of the untimed set-up (the previous round's plans, the observed pods just
    built) is collected first, so a collection it would trigger is not charged to the diff;
    the collections the diff's own allocations trigger are.
    """
    ctx = context(cluster)
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    result = plan.diff(desired, observed, ctx)
    return time.perf_counter() - wall, time.process_time() - cpu, result


def services_for(desired: model.DesiredState) -> model.DesiredState:
    """The same state with a ClusterIP Service in front of each RC."""
    return dataclasses.replace(desired, services=tuple(
        model.Service("default", rc.name, (), "ClusterIP", "", rc.selector,
                      (model.ServicePort(80, 8080),))
        for rc in desired.controllers
    ))


def settled_network(
    desired: model.DesiredState, observed: list[observe.ObservedPod], count: int
) -> plan.Network:
    """Every node holding the claims, rules and DNS records the Services need, as they are
    after the passes that put them there."""
    states = {n.name: observe.NodeNetwork(pod_network="10.0.0.0/8") for n in nodes(count)}
    for _ in range(3):
        net = plan.Network("default", "10.96.0.0/16", states, frozenset(states), ("10.0.0.0/8",))
        for action in plan.services_plan(desired, observed, plan.Plan(), net).actions:
            state = states[action.node]
            if isinstance(action, plan.ClaimAddress):
                state = dataclasses.replace(state, claims=(*state.claims, action.claim))
            elif isinstance(action, plan.ProgramRules):
                agent = observe.Agent("proxy", True, digest=action.rules.digest)
                state = dataclasses.replace(state, proxy=agent)
            elif isinstance(action, plan.ProgramDNS):
                agent = observe.Agent("dns", True, ip="10.0.0.2", digest=action.records.digest)
                state = dataclasses.replace(state, dns=agent)
            states[action.node] = state
    return net


def timed_services(
    desired: model.DesiredState, observed: list[observe.ObservedPod], idle: plan.Plan,
    net: plan.Network,
) -> tuple[float, float, plan.Plan]:
    """One `plan.services_plan` over an idle pod plan: its seconds, wall clock and CPU."""
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    result = plan.services_plan(desired, observed, idle, net)
    return time.perf_counter() - wall, time.process_time() - cpu, result


def measure(args: argparse.Namespace) -> dict[str, list[float]]:
    """Seconds per round of each measurement, wall clock and CPU time."""
    desired, cluster = desired_state(args.rcs, args.replicas), nodes(args.nodes)
    keys = ("scratch", "scratch cpu", "idle", "idle cpu", "services", "services cpu")
    series: dict[str, list[float]] = {k: [] for k in keys}
    with_services = services_for(desired)
    for _ in range(args.rounds):
        wall, cpu, created = timed_diff(desired, [], cluster)
        series["scratch"].append(wall)
        series["scratch cpu"].append(cpu)
        observed = observed_as_placed(created)
        wall, cpu, idle = timed_diff(desired, observed, cluster)
        series["idle"].append(wall)
        series["idle cpu"].append(cpu)
        check(created, idle, args)
        net = settled_network(with_services, observed, args.nodes)
        wall, cpu, settled = timed_services(with_services, observed, idle, net)
        assert settled.empty and len(settled.services) == args.rcs, "Services idle too"
        assert all(len(dict(s.endpoints)["80/TCP"]) == args.replicas for s in settled.services)
        series["services"].append(wall)
        series["services cpu"].append(cpu)
    return series


def profile(args: argparse.Namespace) -> None:
    """Where the time of one plan from nothing and one idle plan goes, on stderr."""
    desired, cluster = desired_state(args.rcs, args.replicas), nodes(args.nodes)
    profiler = cProfile.Profile()
    created = profiler.runcall(plan.diff, desired, [], context(cluster))
    observed = observed_as_placed(created)
    profiler.runcall(plan.diff, desired, observed, context(cluster))
    pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(15)


ROWS = (  # (series, what it is, target in seconds)
    ("scratch", "`plan.diff` from nothing: 10,000 creations, scheduled", FROM_NOTHING_TARGET_S),
    ("idle", "`plan.diff` idle: all observed, nothing planned", IDLE_TARGET_MS / 1000),
    ("services", "`plan.services_plan` idle: a Service per RC, every node up to date",
     IDLE_TARGET_MS / 1000),
)


def write_results(
    out: report.Report, series: dict[str, list[float]], args: argparse.Namespace
) -> None:
    pods = args.rcs * args.replicas
    out.rounds(
        f"{pods:,} pods ({args.rcs} RCs x {args.replicas}) on {args.nodes} nodes, per round",
        {
            f"{what}, {clock}": [s * 1000 for s in series[key + suffix]]
            for key, what, _ in ROWS
            for clock, suffix in (("wall clock", ""), ("CPU time", " cpu"))
        },
        "ms",
    )
    rows = []
    for key, what, target in ROWS:
        wall, cpu = statistics.median(series[key]), statistics.median(series[key + " cpu"])
        rows.append(
            [
                what,
                f"**{wall * 1000:.0f} ms**",
                f"{cpu * 1000:.0f} ms",
                f"{wall / pods * 1e6:.1f} µs",
                f"<= {target * 1000:.0f} ms",
                "met" if wall <= target else "**missed**",
            ]
        )
    out.table(
        f"{pods:,} pods on {args.nodes} nodes: medians of {args.rounds} rounds",
        ["measurement", "wall clock", "CPU time", "wall per pod", "target (wall)", ""],
        rows,
        "Checked in every round, asserted: every pod placed, no node over its allocatable "
        "CPU or memory, each RC spread evenly over the nodes, and the idle plan empty.",
        "CPU time is this process's own (`time.process_time`): what the diff costs whatever "
        "else the machine runs; the wall clock also counts waiting for a core (see the load "
        "average above).",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rcs", type=int, default=100)
    parser.add_argument("--replicas", type=int, default=100)
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="cProfile one round to stderr")
    parser.add_argument("--output", type=Path, default=report.default_output(__file__))
    args = parser.parse_args()
    if args.profile:
        profile(args)
        return 0
    out = report.Report(
        f"Planning at scale: {args.rcs * args.replicas:,} pods on {args.nodes} nodes",
        docker=False,
    )
    out.describe(__doc__.split("\n\n")[1].strip())
    write_results(out, measure(args), args)
    out.write(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
