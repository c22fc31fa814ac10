"""The plan: pure code from (desired state, observed pods, context) to actions.

In: `model.DesiredState`, `observe.ObservedPod`s, a `Context` (time, nodes, name sources).
Out: a `Plan` of actions (`actions.py`), with what waits and when to look again.
No I/O, no clock, no randomness of its own: every decision is testable with plain values.

- `actions.py`  what a plan asks of a node (create a pod, delete one, restart a container)
- `pods.py`     the pod diff: bare pods, replication controllers, rollouts, crash-loop backoff
- `schedule.py` which node a new pod goes to, and why none fits
- `services.py` ClusterIPs and NodePorts (claims), endpoints, the Services' env and DNS records
- `rules.py`    one node's Service rules as iptables-restore text, laid out like kube-proxy's
- `network.py`  the Services' actions, added to a pass's pod plan
"""

from reconciler.plan.actions import (
    Action,
    ClaimAddress,
    CreatePod,
    DeletePod,
    Plan,
    PodIdentity,
    ProgramDNS,
    ProgramRules,
    ReleaseAddress,
    RestartContainer,
    ServiceStatus,
    qualified,
)
from reconciler.plan.network import Network, services_plan
from reconciler.plan.pods import Backoff, Context, diff, owner_of, random_suffix, random_uid, rank
from reconciler.plan.rules import RuleSet
from reconciler.plan.services import DnsRecords

__all__ = [
    "Action",
    "Backoff",
    "ClaimAddress",
    "Context",
    "CreatePod",
    "DeletePod",
    "DnsRecords",
    "Network",
    "Plan",
    "PodIdentity",
    "ProgramDNS",
    "ProgramRules",
    "ReleaseAddress",
    "RestartContainer",
    "RuleSet",
    "ServiceStatus",
    "diff",
    "owner_of",
    "qualified",
    "random_suffix",
    "random_uid",
    "rank",
    "services_plan",
]
