"""The plan: a pure diff of desired state against observed pods, into actions.

Pure: `diff` reads no clock, no engine, no files; time, node list and name generation are
passed in, so every decision can be tested with plain values. Deletions come first in a plan,
then creations, then container restarts; the executor keeps that order between groups.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from reconciler import model, observe
from reconciler.plan import actions, schedule


@dataclass(frozen=True)
class Backoff:
    """Kubernetes' crash-loop backoff: 10 s doubling to 5 min, reset after 10 min of running."""

    initial: float = 10.0
    maximum: float = 300.0
    reset_after: float = 600.0

    def delay(self, streak: int) -> float:
        """How long to wait before the restart that follows `streak` quick restarts."""
        if streak <= 0:
            return 0.0
        return float(min(self.initial * 2 ** (streak - 1), self.maximum))


_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # the API server's: no vowels, no look-alikes


def random_suffix() -> str:
    """Five characters, as the API server appends to generateName."""
    return "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))


def random_uid(namespace: str = "", name: str = "") -> str:
    """A pod uid: 32 random hex characters, whatever the pod's namespace and name."""
    return secrets.token_hex(16)


@dataclass(frozen=True)
class Context:
    """The inputs of a diff that are not state: time, node list, name and uid sources."""

    now: float
    nodes: tuple[schedule.Node, ...]
    revision: str = ""
    backoff: Backoff = field(default_factory=Backoff)
    suffix: Callable[[], str] = random_suffix
    uid: Callable[[str, str], str] = random_uid


def diff(
    desired: model.DesiredState, observed: Sequence[observe.ObservedPod], ctx: Context
) -> actions.Plan:
    """Everything that must change for the observed pods to equal the desired state."""
    builder = _Builder(ctx, list(observed))
    declared_owners = set()
    for pod in desired.pods:
        builder.bare_pod(pod)
    for rc in desired.controllers:
        declared_owners.add((rc.namespace, owner_of(rc)))
        builder.controller(rc)
    builder.orphans({(p.namespace, p.name) for p in desired.pods}, declared_owners)
    return builder.plan()


def owner_of(rc: model.ReplicationController) -> str:
    """The owner label value of an RC's pods."""
    return f"ReplicationController/{rc.name}"


class _Builder:
    """Accumulates a plan; each method handles one kind of declared object."""

    def __init__(self, ctx: Context, observed: list[observe.ObservedPod]) -> None:
        self.ctx = ctx
        self.observed = observed
        self.deletes: list[actions.DeletePod] = []
        self.deleted: set[str] = set()  # the uids in `deletes`
        self.creates: list[actions.CreatePod] = []
        self.restarts: list[actions.RestartContainer] = []
        self.waiting: list[str] = []
        self.unschedulable: list[tuple[str, str, str]] = []
        self.requeue: float = math.inf
        self.placed = schedule.Placement.from_pods(ctx.nodes, observed)
        # Each declared object looks up its pods here: a scan of every observed pod per
        # object would make a pass quadratic (100 RCs x 10,000 pods).
        self.by_group: dict[schedule.Group, list[observe.ObservedPod]] = {}
        for p in observed:
            self.by_group.setdefault(schedule.group(p.namespace, p.name, p.owner), []).append(p)

    def plan(self) -> actions.Plan:
        requeue = None if math.isinf(self.requeue) else max(self.requeue, 0.0)
        return actions.Plan(
            actions=(*self.deletes, *self.creates, *self.restarts),
            waiting=tuple(self.waiting),
            requeue_after=requeue,
            unschedulable=tuple(self.unschedulable),
        )

    # -- bare pods -------------------------------------------------------------------------

    def bare_pod(self, pod: model.Pod) -> None:
        mine = self.by_group.get(schedule.group(pod.namespace, pod.name, ""), [])
        wanted = pod.template.hash
        keep = _best([p for p in mine if p.template_hash == wanted and not _broken(p)])
        for p in mine:
            if p is not keep:
                self.delete(p, _why_replaced(p, wanted))
        if keep is None:
            reason = _why_replaced(mine[-1], wanted) if mine else "declared"
            self.create(pod.namespace, pod.name, "", pod.template, reason)
        else:
            self.heal(keep, pod.template)

    # -- replication controllers -----------------------------------------------------------

    def controller(self, rc: model.ReplicationController) -> None:
        owner = owner_of(rc)
        owned = self.by_group.get(schedule.group(rc.namespace, rc.name, owner), [])
        alive = []
        for p in owned:
            if _broken(p):
                self.delete(p, "pod sandbox is gone")
            else:
                alive.append(p)
        wanted = rc.template.hash  # once: hashing a template is not cheap
        current = [p for p in alive if p.template_hash == wanted]
        old = [p for p in alive if p.template_hash != wanted]
        for p in current:
            self.heal(p, rc.template)
        surge = 1 if old else 0  # roll one pod at a time, new before old
        room = max(0, rc.replicas + surge - len(alive))
        missing = min(max(0, rc.replicas - len(current)), room if old else rc.replicas)
        for _ in range(missing):
            name = model.generated_name(rc.name, self.ctx.suffix())
            reason = "rolling update" if old else f"replicas {len(current)} < {rc.replicas}"
            self.create(rc.namespace, name, owner, rc.template, reason)
        if old:
            self.retire(rc, old, ready=sum(p.ready for p in alive))
        extra = len(current) - rc.replicas
        if extra > 0:  # not `rank` otherwise: sorting every RC's pods would weigh on each pass
            for p in rank(current)[:extra]:
                self.delete(p, f"replicas {len(current)} > {rc.replicas}")

    def retire(
        self, rc: model.ReplicationController, old: list[observe.ObservedPod], ready: int
    ) -> None:
        """Delete a rolling update's old pods while `ready` pods stay at or above replicas."""
        for p in rank(old):
            if not p.ready or ready - 1 >= rc.replicas:
                self.delete(p, "template changed")
                ready -= p.ready
            else:
                self.waiting.append(f"rc/{rc.name}: rolling update waits for new pods to be ready")
                break

    # -- what nobody declares any more -----------------------------------------------------

    def orphans(self, bare: set[tuple[str, str]], owners: set[tuple[str, str]]) -> None:
        for p in self.observed:
            declared = (p.namespace, p.owner) in owners if p.owner else p.key in bare
            if not declared:
                self.delete(p, "no longer declared")

    # -- one pod's containers --------------------------------------------------------------

    def heal(self, pod: observe.ObservedPod, template: model.PodTemplate) -> None:
        """Restart or re-create app containers of a pod whose sandbox is running."""
        assert pod.pause is not None
        policy = template.spec.restart_policy
        for spec in template.spec.containers:
            seen = pod.container(spec.name)
            if seen is None or seen.state == "created":
                self.restart(pod, template, spec.name, seen, 0, "container missing")
                continue
            if (
                not seen.exited
                or policy == "Never"
                or (policy == "OnFailure" and seen.exit_code == 0)
            ):
                continue
            ran = seen.finished_at - seen.started_at
            streak = 0 if ran >= self.ctx.backoff.reset_after else seen.streak
            due = seen.finished_at + self.ctx.backoff.delay(streak)
            if due > self.ctx.now:
                self.requeue = min(self.requeue, due - self.ctx.now)
                name = actions.qualified(pod.namespace, pod.name)
                self.waiting.append(
                    f"pod {name}: back-off {due - self.ctx.now:.0f}s "
                    f"restarting failed container {spec.name}"
                )
                continue
            reason = f"exited with code {seen.exit_code}"
            self.restart(pod, template, spec.name, seen, streak + 1, reason)

    def restart(
        self,
        pod: observe.ObservedPod,
        template: model.PodTemplate,
        container: str,
        seen: observe.ObservedContainer | None,
        streak: int,
        reason: str,
    ) -> None:
        assert pod.pause is not None
        identity = actions.PodIdentity(
            pod.namespace, pod.name, pod.uid, pod.owner, template, pod.revision
        )
        restarts = (
            seen.restarts + 1
            if seen and seen.state != "created"
            else (seen.restarts if seen else 0)
        )
        self.restarts.append(
            actions.RestartContainer(
                node=pod.node,
                pod=identity,
                pause_id=pod.pause.id,
                container=container,
                old_id=seen.id if seen else "",
                restarts=restarts,
                streak=streak,
                reason=reason,
            )
        )

    def create(
        self, namespace: str, name: str, owner: str, template: model.PodTemplate, reason: str
    ) -> None:
        node, why_not = self.placed.choose(
            schedule.Demand.of(namespace, name, owner, template.spec)
        )
        if node is None:
            pod = actions.qualified(namespace, name)
            self.waiting.append(f"pod {pod} is unschedulable: {why_not}")
            self.unschedulable.append((namespace, name, why_not))
            return
        uid = self.ctx.uid(namespace, name)
        identity = actions.PodIdentity(namespace, name, uid, owner, template, self.ctx.revision)
        self.creates.append(actions.CreatePod(node, identity, reason))

    def delete(self, pod: observe.ObservedPod, reason: str) -> None:
        if pod.uid in self.deleted:  # a set: deleting 10,000 pods must not be quadratic
            return
        self.deleted.add(pod.uid)
        ids = tuple(c.id for c in pod.all_containers)
        self.deletes.append(
            actions.DeletePod(pod.node, pod.namespace, pod.name, pod.uid, ids, reason)
        )
        self.placed.release(pod)


def _why_replaced(pod: observe.ObservedPod, wanted_hash: str) -> str:
    """Why an observed copy of a bare pod gives way to another, in the plan's words."""
    if pod.template_hash != wanted_hash:
        return "spec changed"
    return "pod sandbox is gone" if _broken(pod) else "duplicate pod"


def _broken(pod: observe.ObservedPod) -> bool:
    """A pod whose sandbox (pause container) is missing or not running cannot be healed."""
    return pod.pause is None or not pod.pause.running


def _best(pods: Iterable[observe.ObservedPod]) -> observe.ObservedPod | None:
    """The most valuable of several candidates: the last of `rank`."""
    ranked = rank(list(pods))
    return ranked[-1] if ranked else None


def rank(pods: Sequence[observe.ObservedPod]) -> list[observe.ObservedPod]:
    """Least valuable first, as the Kubernetes controller ranks pods for deletion.

    Not running before running, not ready before ready, more restarts before fewer, newer
    before older; the uid breaks ties so the order is total and deterministic.
    """
    return sorted(
        pods,
        key=lambda p: (
            p.pause is not None and p.pause.running,
            p.ready,
            -p.restarts,
            -p.created,
            p.uid,
        ),
    )
