"""The Services' part of a plan: claims, each node's rules and DNS, the pods' env; pure."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence

import pytest

from reconciler import model, observe, plan
from reconciler.plan import network, schedule, services

pytestmark = pytest.mark.unit

NOW = 1_000_000.0
CIDR = "10.96.0.0/16"
OWNER = "ReplicationController/web"
WEB = (("app", "web"),)
NODES = ("n1", "n2")
DNS_IPS = {"n1": "172.17.0.53", "n2": "172.18.0.53"}


def template() -> model.PodTemplate:
    app = model.Container("app", "app:1", ports=(model.ContainerPort(8080, name="http"),),
                          env=(("OWN", "1"),))
    return model.PodTemplate(labels=WEB, annotations=(), spec=model.PodSpec(containers=(app,)))


def desired(replicas: int = 2, *extra: model.Service) -> model.DesiredState:
    rc = model.ReplicationController("default", "web", (), replicas, WEB, template())
    web = model.Service("default", "web", (), "NodePort", "", WEB,
                        (model.ServicePort(80, "http", "TCP", "http"),))
    return model.DesiredState(controllers=(rc,), services=(web, *extra))


def container(name: str, state: str = "running", ip: str = "", created: float = NOW - 100,
              **kw: object) -> observe.ObservedContainer:
    return observe.ObservedContainer(
        id=f"id-{name}-{next(_ids)}", name=name, docker_name=name, image="x", state=state,
        created=created, ip=ip, **kw,  # type: ignore[arg-type]
    )


_ids = itertools.count()


def pod(name: str, node: str, ip: str, app: observe.ObservedContainer | None = None,
        created: float = NOW - 100) -> observe.ObservedPod:
    return observe.ObservedPod(
        node=node, namespace="default", name=name, uid=f"uid-{name}", owner=OWNER,
        template_hash=template().hash, revision="", labels=WEB,
        pause=container("POD", ip=ip, created=created), containers=(app or container("app"),),
    )


PODS = [pod("web-a", "n1", "10.244.1.2"), pod("web-b", "n2", "10.244.2.2", created=NOW - 10)]


def agent(digest: str = "", running: bool = True, ip: str = "") -> observe.Agent:
    return observe.Agent("id", running, ip, digest)


def nodes(claims: Sequence[observe.Claim] = (), **per_node: observe.NodeNetwork
          ) -> dict[str, observe.NodeNetwork]:
    found = {n: observe.NodeNetwork(tuple(claims), agent(), agent(ip=DNS_IPS[n])) for n in NODES}
    found.update(per_node)
    return found


def net(found: Mapping[str, observe.NodeNetwork], scope: str = "default") -> network.Network:
    return network.Network(
        scope=scope, service_cidr=CIDR, nodes=found, serving=frozenset(NODES),
        pod_networks=("10.244.1.0/24", "10.244.2.0/24"), node_addresses=("10.0.0.11",),
    )


def ctx() -> plan.Context:
    names = (f"{i:05d}" for i in itertools.count())
    uids = (f"new-{i}" for i in itertools.count())
    return plan.Context(now=NOW, nodes=tuple(schedule.Node(n) for n in NODES),
                        suffix=lambda: next(names), uid=lambda ns, name: next(uids))


def services_plan(
    state: model.DesiredState, observed: Sequence[observe.ObservedPod],
    found: Mapping[str, observe.NodeNetwork], scope: str = "default",
) -> plan.Plan:
    pod_plan = plan.diff(state, observed, ctx())
    return plan.services_plan(state, observed, pod_plan, net(found, scope))


def settled(state: model.DesiredState, observed: Sequence[observe.ObservedPod]
            ) -> dict[str, observe.NodeNetwork]:
    """The nodes as they are once a first pass's claims and programs are all in place."""
    first = services_plan(state, observed, nodes())
    claims = tuple(sorted({a.claim for a in first.claims()}))
    found = {}
    for n in NODES:
        rules = next(a.rules for a in first.programs()
                     if isinstance(a, plan.ProgramRules) and a.node == n)
        dns = next(a.records for a in first.programs()
                   if isinstance(a, plan.ProgramDNS) and a.node == n)
        found[n] = observe.NodeNetwork(
            claims, agent(rules.digest), agent(dns.digest, ip=DNS_IPS[n])
        )
    return found


def rules_of(p: plan.Plan, node: str) -> str:
    return next(a.rules.text for a in p.programs()
                if isinstance(a, plan.ProgramRules) and a.node == node)


def test_a_first_pass_claims_everywhere_and_programs_every_node() -> None:
    p = services_plan(desired(), PODS, nodes())
    by_node = {n: sorted(a.claim.kind for a in p.claims() if a.node == n) for n in NODES}
    assert by_node == {n: ["ip", "ip", "nodeport"] for n in NODES}  # the DNS address, web's
    assert sorted((type(a).__name__, a.node) for a in p.programs()) == [
        ("ProgramDNS", "n1"), ("ProgramDNS", "n2"), ("ProgramRules", "n1"), ("ProgramRules", "n2")
    ]
    assert all(a.reason == "not yet applied" for a in p.programs())
    text = rules_of(p, "n1")
    assert "--to-destination 10.244.1.2:8080" in text and "--to-destination 10.244.2.2:8080" in text
    assert f"--to-destination {DNS_IPS['n1']}:53" in text
    assert f"--to-destination {DNS_IPS['n2']}:53" in rules_of(p, "n2")


def test_an_up_to_date_node_gets_nothing() -> None:
    p = services_plan(desired(), PODS, settled(desired(), PODS))
    assert p.empty and p.waiting == ()


def test_the_status_reports_each_service_s_address_ports_and_endpoints() -> None:
    found = settled(desired(), PODS)
    (status,) = services_plan(desired(), PODS, found).services
    ip = next(c.value for c in found["n1"].claims
              if c.kind == services.IP and c.owner == "default/default/web")
    node_port = next(int(c.value.split("/")[0]) for c in found["n1"].claims
                     if c.kind == services.NODE_PORT)
    assert (status.name, status.type, status.cluster_ip, status.selector) == (
        "web", "NodePort", ip, WEB
    )
    assert status.ports == (("http", 80, "TCP", node_port, "http"),)
    assert status.endpoints == (("http", ("10.244.1.2:8080", "10.244.2.2:8080")),)
    assert status.problem == ""


@pytest.mark.parametrize(
    ("proxy", "dns", "reasons"),
    [
        (None, "same", {"ProgramRules": "agent missing"}),
        (agent(running=False), "same", {"ProgramRules": "agent stopped"}),
        (agent("0123456789abcdef"), "same", {"ProgramRules": "rules changed"}),
        ("same", None, {"ProgramDNS": "agent missing"}),
        ("same", agent("0123456789abcdef", ip=DNS_IPS["n2"]), {"ProgramDNS": "records changed"}),
    ],
)
def test_a_lagging_agent_is_programmed_and_only_on_its_node(
    proxy: observe.Agent | str | None, dns: observe.Agent | str | None, reasons: dict[str, str]
) -> None:
    found = settled(desired(), PODS)
    n2 = found["n2"]
    found["n2"] = dataclasses.replace(
        n2, proxy=n2.proxy if proxy == "same" else proxy,  # type: ignore[arg-type]
        dns=n2.dns if dns == "same" else dns,  # type: ignore[arg-type]
    )
    p = services_plan(desired(), PODS, found)
    if dns is None:  # without a DNS container, n2's rules send nothing to one
        reasons = {**reasons, "ProgramRules": "rules changed"}
    assert {type(a).__name__: a.reason for a in p.programs()} == reasons
    assert {a.node for a in p.actions} == {"n2"}


def test_a_pod_being_deleted_leaves_the_endpoints_in_the_same_plan() -> None:
    found = settled(desired(), PODS)
    p = services_plan(desired(1), PODS, found)
    (delete,) = p.deletes()
    leaving, staying = sorted(PODS, key=lambda q: q.uid != delete.uid)
    assert p.serving == frozenset({leaving.uid})
    for n in NODES:  # every node's rules without it, before it is stopped
        text = rules_of(p, n)
        assert leaving.ip not in text and f"{staying.ip}:8080" in text
    (status,) = p.services
    assert status.endpoints == (("http", (f"{staying.ip}:8080",)),)


def test_a_deleted_pod_that_served_no_service_is_not_held() -> None:
    state = desired(1)
    other = dataclasses.replace(state.services[0], selector=(("app", "other"),))
    state = dataclasses.replace(state, services=(other,))
    p = services_plan(state, PODS, nodes())
    assert p.deletes() and p.serving == frozenset()


def test_claims_missing_on_a_node_are_claimed_there_and_released_ones_where_present() -> None:
    found = settled(desired(), PODS)
    claims = found["n1"].claims
    gone = observe.Claim(services.IP, "10.96.200.1", "default/default/old")
    theirs = observe.Claim(services.IP, "10.96.200.2", "other/default/web")
    found["n1"] = dataclasses.replace(found["n1"], claims=(*claims, gone, theirs))
    found["n2"] = dataclasses.replace(found["n2"], claims=claims[1:])
    p = services_plan(desired(), PODS, found)
    assert [(a.node, a.claim) for a in p.claims()] == [("n2", claims[0])]
    assert [(a.node, a.claim) for a in p.releases()] == [("n1", gone)]


def test_a_new_service_s_claims_go_to_every_node_and_a_deleted_one_s_are_released() -> None:
    found = settled(desired(), PODS)
    extra = model.Service("default", "db", (), "ClusterIP", "", (("app", "db"),),
                          (model.ServicePort(5432, 5432),))
    p = services_plan(desired(2, extra), PODS, found)
    assert sorted(a.node for a in p.claims()) == ["n1", "n2"]
    assert {a.claim.owner for a in p.claims()} == {"default/default/db"}
    held = settled(desired(2, extra), PODS)
    p = services_plan(desired(), PODS, held)
    assert sorted(a.node for a in p.releases()) == ["n1", "n2"]
    assert {a.claim.owner for a in p.releases()} == {"default/default/db"}


def test_created_pods_and_restarted_containers_carry_the_env_and_the_dns() -> None:
    crashed = container("app", "exited", exit_code=1, started_at=NOW - 3, finished_at=NOW - 2)
    observed = [pod("web-a", "n1", "10.244.1.2", app=crashed)]
    p = services_plan(desired(), observed, nodes())
    (create,) = p.creates()
    (restart,) = p.restarts()
    for identity in (create.pod, restart.pod):
        env = dict(identity.env)
        assert env["WEB_SERVICE_PORT_HTTP"] == "80"
        assert env["WEB_SERVICE_HOST"] == next(s.cluster_ip for s in p.services)
        assert identity.dns is not None and identity.dns.nameserver == "10.96.0.10"
        assert identity.dns.search[0] == "default.svc.cluster.local"


def test_a_refused_service_waits_and_says_why() -> None:
    clash = model.Service("default", "clash", (), "ClusterIP", "10.96.0.10", WEB,
                          (model.ServicePort(80, 8080),))
    p = services_plan(desired(2, clash), PODS, settled(desired(), PODS))
    assert p.waiting == ("service clash: clusterIP 10.96.0.10 is already allocated to "
                         "Service kube-system/kube-dns (scope default)",)
    status = next(s for s in p.services if s.name == "clash")
    assert status.cluster_ip == "" and "already allocated" in status.problem
    assert p.actions == ()  # nothing to claim or program for it


def test_the_loser_of_a_split_brain_is_released_where_it_is_held() -> None:
    won = observe.Claim(services.IP, "10.96.1.1", "default/default/web", created=1.0)
    lost = observe.Claim(services.IP, "10.96.1.1", "default/default/db", created=2.0)
    db = model.Service("default", "db", (), "ClusterIP", "", (("app", "db"),),
                       (model.ServicePort(5432, 5432),))
    found = nodes()
    found["n1"] = dataclasses.replace(found["n1"], claims=(won,))
    found["n2"] = dataclasses.replace(found["n2"], claims=(lost,))
    p = services_plan(desired(2, db), PODS, found)
    assert [(a.node, a.claim) for a in p.releases()] == [("n2", lost)]
    assert lost not in {a.claim for a in p.claims()}
