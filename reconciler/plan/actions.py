"""Actions: what a plan asks of a node, as frozen values that describe themselves.

Pure data. The executor dispatches on the type (no default branch: a new action type is a
mypy error there until it has a handler); the CLI prints `describe()`.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler import model


@dataclass(frozen=True)
class PodIdentity:
    """Everything needed to (re)build a pod's containers on a node."""

    namespace: str
    name: str
    uid: str
    owner: str  # "ReplicationController/web" or ""
    template: model.PodTemplate
    revision: str

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


Action = CreatePod | DeletePod | RestartContainer


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...] = ()
    # Why something declared is not (yet) acted on: backoff, rollout waiting, no node fits.
    waiting: tuple[str, ...] = ()
    # When the next pass is due even without events (crash-loop backoff expiring), in seconds.
    requeue_after: float | None = None
    # Pods no node can take now, as (namespace, name, the scheduler's reason).
    unschedulable: tuple[tuple[str, str, str], ...] = ()

    @property
    def empty(self) -> bool:
        return not self.actions

    def deletes(self) -> tuple[DeletePod, ...]:
        return tuple(a for a in self.actions if isinstance(a, DeletePod))

    def creates(self) -> tuple[CreatePod, ...]:
        return tuple(a for a in self.actions if isinstance(a, CreatePod))

    def restarts(self) -> tuple[RestartContainer, ...]:
        return tuple(a for a in self.actions if isinstance(a, RestartContainer))




def qualified(namespace: str, name: str) -> str:
    """A pod's name as kubectl prints it: bare in `default`, `ns/name` elsewhere."""
    return name if namespace == model.DEFAULT_NAMESPACE else f"{namespace}/{name}"
