"""The Services' part of a plan: claims, each node's rules and DNS, the pods' env; pure.

`services(...)` takes the pod plan of the same pass and returns it completed: address claims
and releases, a rule set and DNS records for each answering node whose agents lag behind,
the Services' variables and resolv.conf on every pod it creates, and the Services' status.
Pods the pod plan deletes leave the endpoints in this very pass, so their rules are gone
from every node before they are stopped (`execute.py` holds such deletions otherwise).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reconciler import model, observe
from reconciler.plan import actions, rules, services


@dataclass(frozen=True)
class Network:
    """What the Services' plan needs beyond desired state and pods."""

    scope: str
    service_cidr: str
    nodes: Mapping[str, observe.NodeNetwork]  # the answering nodes
    serving: frozenset[str]  # nodes whose pods may serve: Ready ones
    pod_networks: tuple[str, ...]  # the pods' subnets: their traffic is not masqueraded
    node_addresses: tuple[str, ...] = ()  # the nodes' own addresses (NodePort forwarding)


def services_plan(
    desired: model.DesiredState,
    observed: Sequence[observe.ObservedPod],
    pod_plan: actions.Plan,
    net: Network,
) -> actions.Plan:
    """The pod plan, completed with everything Services need on the answering nodes."""
    found = [c for n in net.nodes.values() for c in n.claims]
    allocation = services.allocate(desired.services, found, net.service_cidr, net.scope)
    leaving = frozenset(a.uid for a in pod_plan.deletes())
    derived = _derive(desired, observed, net, allocation, found, leaving)
    records = services.dns_records(desired.services, allocation)
    ours = [c for c in found if c.scope == net.scope and c not in allocation.release]
    wanted = sorted({*ours, *allocation.claim})
    todo: list[actions.Action] = []
    common = derived.body
    for node, state in sorted(net.nodes.items()):
        have = set(state.claims)
        todo += [actions.ClaimAddress(node, c) for c in wanted if c not in have]
        todo += [actions.ReleaseAddress(node, c) for c in allocation.release if c in have]
        dns_agent = state.dns
        dns = (allocation.dns_ip, dns_agent.ip) if dns_agent and dns_agent.running and \
            dns_agent.ip and allocation.dns_ip else None
        ruleset = rules.for_node(common, dns)
        why = _lagging(state.proxy, ruleset.digest, "rules")
        if why:
            todo.append(actions.ProgramRules(node, ruleset, why))
        why = _lagging(dns_agent, records.digest, "records")
        if why:
            todo.append(actions.ProgramDNS(node, records, why))
    return dataclasses.replace(
        pod_plan,
        actions=(*todo, *(_with_discovery(a, desired, allocation) for a in pod_plan.actions)),
        serving=derived.serving,
        services=derived.statuses,
        waiting=pod_plan.waiting + tuple(
            f"service {actions.qualified(ns, name)}: {why}" for ns, name, why in allocation.refused
        ),
    )


@dataclass(frozen=True)
class _Derived:
    """What a pass derives from the pods and the allocation: the same while they are."""

    statuses: tuple[actions.ServiceStatus, ...]
    serving: frozenset[str]  # pods this pass deletes that are endpoints now
    body: rules.Body


# The last derivation and what it was derived from: an idle pass, with the same manifests
# (the loader hands back the same state) and the same pod objects (the drivers hand back
# the same pods while nothing changed), reuses it instead of rebuilding every endpoint.
_last: list[tuple[tuple[object, ...], tuple[object, ...], _Derived]] = []


def _derive(
    desired: model.DesiredState,
    observed: Sequence[observe.ObservedPod],
    net: Network,
    allocation: services.Allocation,
    found: Sequence[observe.Claim],
    leaving: frozenset[str],
) -> _Derived:
    pods = tuple(observed)
    memo_key = (
        id(desired), tuple(map(id, pods)), net.serving, net.scope, net.pod_networks,
        net.node_addresses, leaving, tuple(sorted(allocation.ips.items())),
        tuple(sorted(allocation.node_ports.items())), allocation.refused,
        tuple(sorted((c.owner, c.created) for c in found if c.kind == observe.CLAIM_IP)),
    )
    if _last and _last[0][0] == memo_key:
        return _last[0][2]
    named = _named_ports(desired, observed)
    index = services.PodIndex(observed, net.serving)
    views, statuses, serving = [], [], set()
    created = {c.owner: c.created for c in found if c.kind == observe.CLAIM_IP}
    refused = {(ns, name): why for ns, name, why in allocation.refused}
    for svc in desired.services:
        key = (svc.namespace, svc.name)
        ip = allocation.ips.get(key, "")
        everyone = services.endpoints(svc, index, named) if ip else {}
        eps = {k: tuple(e for e in each if e.uid not in leaving) for k, each in everyone.items()}
        ports = tuple(
            (p, allocation.node_ports.get((*key, services.port_key(p)), 0),
             eps.get(services.port_key(p), ()))
            for p in svc.ports
        )
        if ip:
            views.append(rules.ServicePorts(svc.namespace, svc.name, ip, ports))
        serving |= {ep.uid for ep in _all(everyone)} & leaving
        statuses.append(actions.ServiceStatus(
            namespace=svc.namespace, name=svc.name, type=svc.type, cluster_ip=ip,
            ports=tuple((p.name, p.port, p.protocol, np, str(p.target_port))
                        for p, np, _ in ports),
            endpoints=tuple((services.port_key(p), tuple(f"{e.ip}:{e.port}" for e in e_))
                            for p, _, e_ in ports),
            selector=svc.selector,
            created=created.get(services.owner(net.scope, *key), 0.0),
            problem=refused.get(key, ""),
            labels=svc.labels,
        ))
    common = rules.body(net.scope, views, pod_networks=net.pod_networks,
                        node_addresses=net.node_addresses)
    derived = _Derived(tuple(statuses), frozenset(serving), common)
    _last[:] = [(memo_key, (desired, pods), derived)]  # the references keep the ids valid
    return derived


def _lagging(agent: observe.Agent | None, digest: str, what: str) -> str:
    """Why the agent must be given `what` again ("" if it holds them): the reason logged."""
    if agent is None:
        return "agent missing"
    if not agent.running:
        return "agent stopped"
    if agent.digest != digest:
        return f"{what} changed" if agent.digest else "not yet applied"
    return ""


def _all(eps: services.Endpoints) -> list[services.Endpoint]:
    return [e for each in eps.values() for e in each]


def _named_ports(
    desired: model.DesiredState, observed: Sequence[observe.ObservedPod]
) -> dict[str, dict[str, int]]:
    """Each pod's named container ports, from the template of what declares it."""
    templates: dict[tuple[str, str], model.PodTemplate] = {}
    for rc in desired.controllers:
        templates[(rc.namespace, f"ReplicationController/{rc.name}")] = rc.template
    for pod in desired.pods:
        templates[(pod.namespace, pod.name)] = pod.template
    named = {}
    for p in observed:
        template = templates.get((p.namespace, p.owner or p.name))
        if template is not None:
            named[p.uid] = services.named_ports(template)
    return named


def _with_discovery(
    action: actions.Action, desired: model.DesiredState, allocation: services.Allocation
) -> actions.Action:
    """A created pod or restarted container gets the Services' env; a new pod the DNS."""
    if not isinstance(action, actions.CreatePod | actions.RestartContainer):
        return action
    ns = action.pod.namespace
    pod = dataclasses.replace(
        action.pod,
        env=services.service_env(ns, desired.services, allocation),
        dns=services.dns_config(ns, allocation),
    )
    return dataclasses.replace(action, pod=pod)
