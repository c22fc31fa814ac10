"""Actions: what a plan asks of a node, as frozen values that describe themselves.

Pure data. The executor dispatches on the type (no default branch: a new action type is a
mypy error there until it has a handler); the CLI prints `describe()`.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler import model, observe
from reconciler.plan import rules, services


@dataclass(frozen=True)
class PodIdentity:
    """Everything needed to (re)build a pod's containers on a node."""

    namespace: str
    name: str
    uid: str
    owner: str  # "ReplicationController/web" or ""
    template: model.PodTemplate
    revision: str
    # Given at creation, outside the template (a new Service must not roll every pod):
    env: model.Pairs = ()  # the Services' variables, before the container's own env
    dns: services.DnsConfig | None = None  # resolv.conf; None: the engine's default

    @property
    def template_hash(self) -> str:
        return self.template.hash


@dataclass(frozen=True)
class CreatePod:
    node: str
    pod: PodIdentity
    reason: str

    def describe(self) -> str:
        owner = (
            f" ({self.pod.owner.replace('ReplicationController/', 'rc/')})"
            if self.pod.owner
            else ""
        )
        name = qualified(self.pod.namespace, self.pod.name)
        return f"+ create pod {name}{owner} on {self.node}: {self.reason}"


@dataclass(frozen=True)
class DeletePod:
    node: str
    namespace: str
    name: str
    uid: str
    container_ids: tuple[str, ...]
    reason: str

    def describe(self) -> str:
        return f"- delete pod {qualified(self.namespace, self.name)} on {self.node}: {self.reason}"


@dataclass(frozen=True)
class RestartContainer:
    """Replace one app container of a running pod: a new container joins the same pause."""

    node: str
    pod: PodIdentity
    pause_id: str
    container: str  # the Kubernetes container name
    old_id: str  # "" when the container is missing altogether
    restarts: int  # the new container's total restart count
    streak: int  # the new container's crash streak (drives the backoff)
    reason: str

    def describe(self) -> str:
        return (
            f"~ restart container {self.container} of pod "
            f"{qualified(self.pod.namespace, self.pod.name)} on {self.node}: {self.reason}"
        )


@dataclass(frozen=True)
class ClaimAddress:
    """Record on a node that a Service holds an address (every node holds every claim)."""

    node: str
    claim: observe.Claim

    def describe(self) -> str:
        return f"+ claim {_claimed(self.claim)} on {self.node}"


@dataclass(frozen=True)
class ReleaseAddress:
    """Forget a claim whose Service is gone."""

    node: str
    claim: observe.Claim

    def describe(self) -> str:
        return f"- release {_claimed(self.claim)} on {self.node}"


@dataclass(frozen=True)
class ProgramRules:
    """Apply a node's whole Service rule set at once (its agent started first if need be)."""

    node: str
    rules: rules.RuleSet
    reason: str

    def describe(self) -> str:
        return f"~ program service rules on {self.node}: {self.reason}"


@dataclass(frozen=True)
class ProgramDNS:
    """Give a node's cluster DNS the current records (its agent started first if need be)."""

    node: str
    records: services.DnsRecords
    reason: str

    def describe(self) -> str:
        return f"~ update cluster DNS on {self.node}: {self.reason}"


def _claimed(claim: observe.Claim) -> str:
    what = "clusterIP" if claim.kind == observe.CLAIM_IP else "nodePort"
    _, _, service = claim.owner.partition("/")
    return f"{what} {claim.value} for {service}"


Action = (
    CreatePod | DeletePod | RestartContainer | ClaimAddress | ReleaseAddress | ProgramRules
    | ProgramDNS
)


@dataclass(frozen=True)
class ServiceStatus:
    """One Service as a pass left it: its addresses and endpoints, or why it has none."""

    namespace: str
    name: str
    type: str
    cluster_ip: str
    ports: tuple[tuple[str, int, str, int, str], ...]  # (name, port, protocol, nodePort, target)
    endpoints: tuple[tuple[str, tuple[str, ...]], ...]  # (port key, ("ip:port", ...))
    selector: model.Pairs = ()
    created: float = 0.0
    problem: str = ""
    labels: model.Pairs = ()


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...] = ()
    # Why something declared is not (yet) acted on: backoff, rollout waiting, no node fits.
    waiting: tuple[str, ...] = ()
    # When the next pass is due even without events (crash-loop backoff expiring), in seconds.
    requeue_after: float | None = None
    # Pods no node can take now, as (namespace, name, the scheduler's reason).
    unschedulable: tuple[tuple[str, str, str], ...] = ()
    # Pods this plan deletes that serve a Service: deleted only once every node's new rules,
    # without them, are in place.
    serving: frozenset[str] = frozenset()
    services: tuple[ServiceStatus, ...] = ()  # what `podyard get svc` shows

    @property
    def empty(self) -> bool:
        return not self.actions

    def deletes(self) -> tuple[DeletePod, ...]:
        return tuple(a for a in self.actions if isinstance(a, DeletePod))

    def creates(self) -> tuple[CreatePod, ...]:
        return tuple(a for a in self.actions if isinstance(a, CreatePod))

    def restarts(self) -> tuple[RestartContainer, ...]:
        return tuple(a for a in self.actions if isinstance(a, RestartContainer))

    def claims(self) -> tuple[ClaimAddress, ...]:
        return tuple(a for a in self.actions if isinstance(a, ClaimAddress))

    def programs(self) -> tuple[ProgramRules | ProgramDNS, ...]:
        return tuple(a for a in self.actions if isinstance(a, ProgramRules | ProgramDNS))

    def releases(self) -> tuple[ReleaseAddress, ...]:
        return tuple(a for a in self.actions if isinstance(a, ReleaseAddress))



def qualified(namespace: str, name: str) -> str:
    """A pod's name as kubectl prints it: bare in `default`, `ns/name` elsewhere."""
    return name if namespace == model.DEFAULT_NAMESPACE else f"{namespace}/{name}"
