"""Desired state for the docker tier, built in Python: small busybox pods and RCs."""

from __future__ import annotations

from typing import Any

from reconciler import model

BUSYBOX = "podyard/busybox:1"
# Exits at once on SIGTERM (busybox sleep as PID 1 would wait out the grace period).
SLEEPER = ("sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait")


def container(name: str = "app", command: tuple[str, ...] | None = SLEEPER,
              **kwargs: Any) -> model.Container:
    """A busybox container; by default one that exits at once on SIGTERM."""
    kwargs.setdefault("image", BUSYBOX)
    return model.Container(name=name, command=command, **kwargs)


def template(*containers: model.Container, labels: model.Pairs = (("app", "web"),),
             **spec: Any) -> model.PodTemplate:
    """A pod template; a short grace period keeps deletions of stubborn containers quick."""
    spec.setdefault("termination_grace_period_seconds", 2)
    pod_spec = model.PodSpec(containers=containers or (container(),), **spec)
    return model.PodTemplate(labels=labels, annotations=(), spec=pod_spec)


def rc(namespace: str, replicas: int, tpl: model.PodTemplate | None = None,
       name: str = "web") -> model.DesiredState:
    """One replication controller."""
    tpl = tpl or template()
    controller = model.ReplicationController(
        namespace=namespace, name=name, labels=tpl.labels, replicas=replicas,
        selector=tpl.labels, template=tpl,
    )
    return model.DesiredState(controllers=(controller,))


def bare(namespace: str, tpl: model.PodTemplate, name: str = "pod") -> model.DesiredState:
    """One bare pod."""
    return model.DesiredState(pods=(model.Pod(namespace=namespace, name=name, template=tpl),))
