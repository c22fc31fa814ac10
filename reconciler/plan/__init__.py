"""The plan: pure code from (desired state, observed pods, context) to actions.

In: `model.DesiredState`, `observe.ObservedPod`s, a `Context` (time, nodes, name sources).
Out: a `Plan` of actions (`actions.py`), with what waits and when to look again.
No I/O, no clock, no randomness of its own: every decision is testable with plain values.

- `actions.py`  what a plan asks of a node (create a pod, delete one, restart a container)
- `pods.py`     the pod diff: bare pods, replication controllers, rollouts, crash-loop backoff
- `schedule.py` which node a new pod goes to, and why none fits
"""

from reconciler.plan.actions import (
    Action,
    CreatePod,
    DeletePod,
    Plan,
    PodIdentity,
    RestartContainer,
    qualified,
)
from reconciler.plan.pods import Backoff, Context, diff, owner_of, random_suffix, random_uid, rank

__all__ = [
    "Action",
    "Backoff",
    "Context",
    "CreatePod",
    "DeletePod",
    "Plan",
    "PodIdentity",
    "RestartContainer",
    "diff",
    "owner_of",
    "qualified",
    "random_suffix",
    "random_uid",
    "rank",
]
