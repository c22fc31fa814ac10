"""Services, planned: address claims, endpoints, the Services' env and DNS; plain values only."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

import pytest

from reconciler import model, observe, plan
from reconciler.engine import podspec
from reconciler.plan import services

pytestmark = pytest.mark.unit

CIDR = "10.96.0.0/16"
SCOPE = "default"
WEB = (("app", "web"),)


def port(
    number: int = 80, target: int | str = 8080, protocol: str = "TCP", name: str = "",
    node_port: int = 0,
) -> model.ServicePort:
    return model.ServicePort(number, target, protocol, name, node_port)


def svc(
    name: str, *ports: model.ServicePort, namespace: str = "default", kind: str = "ClusterIP",
    ip: str = "", selector: model.Pairs = WEB,
) -> model.Service:
    return model.Service(namespace, name, (), kind, ip, selector, ports or (port(),))


def after(allocation: services.Allocation, claims: Iterable[observe.Claim] = ()) -> list[Claim]:
    """The claims the nodes hold once a pass has claimed and released what it planned."""
    return sorted({*claims, *allocation.claim} - set(allocation.release))


Claim = observe.Claim


def allocate(
    declared: Sequence[model.Service], claims: Iterable[Claim] = (), cidr: str = CIDR,
    scope: str = SCOPE,
) -> services.Allocation:
    return services.allocate(declared, claims, cidr, scope)


# -- allocation -------------------------------------------------------------------------------


def test_addresses_stay_with_their_services_while_others_come_and_go() -> None:
    first = allocate([svc("a"), svc("b", kind="NodePort"), svc("c", kind="NodePort")])
    held = after(first)
    second = allocate([svc("c", kind="NodePort"), svc("d"), svc("a")], held)
    assert second.ips[("default", "a")] == first.ips[("default", "a")]
    assert second.ips[("default", "c")] == first.ips[("default", "c")]
    assert second.node_ports[("default", "c", "80/TCP")] == \
        first.node_ports[("default", "c", "80/TCP")]
    third = allocate([svc("a")], after(second, held))
    assert third.ips[("default", "a")] == first.ips[("default", "a")]
    assert third.dns_ip == first.dns_ip


def test_a_new_allocation_from_the_same_claims_changes_nothing() -> None:
    declared = [svc("a"), svc("b", port(53, 53, "UDP", "dns"), port(80, name="http"),
                            kind="NodePort"), svc("c", namespace="shop")]
    held = after(allocate(declared))
    again = allocate(declared, held)  # as a restarted controller reads the nodes' claims
    assert (again.claim, again.release, again.refused) == ((), (), ())
    assert again == allocate(list(reversed(declared)), held)


def test_a_requested_cluster_ip_is_honoured() -> None:
    got = allocate([svc("a", ip="10.96.7.7")])
    assert got.ips[("default", "a")] == "10.96.7.7"
    assert Claim(services.IP, "10.96.7.7", "default/default/a") in got.claim


def test_a_service_asking_for_its_own_address_keeps_it() -> None:
    held = after(allocate([svc("a", ip="10.96.7.7")]))
    again = allocate([svc("a", ip="10.96.7.7")], held)
    assert again.ips[("default", "a")] == "10.96.7.7" and again.refused == ()


@pytest.mark.parametrize("holder_scope", [SCOPE, "other"])
def test_a_requested_cluster_ip_held_by_another_service_is_refused_naming_it(
    holder_scope: str,
) -> None:
    held = after(allocate([svc("a", ip="10.96.7.7")], scope=holder_scope))
    got = allocate([svc("b", ip="10.96.7.7")], held)
    assert ("default", "b") not in got.ips
    assert got.refused == (("default", "b", "clusterIP 10.96.7.7 is already allocated to "
                                            f"Service default/a (scope {holder_scope})"),)


def test_a_requested_node_port_held_by_another_service_is_refused_naming_it() -> None:
    held = after(allocate([svc("a", port(node_port=30080), kind="NodePort")]))
    got = allocate([svc("a", port(node_port=30080), kind="NodePort"),
                    svc("b", port(node_port=30080), kind="NodePort")], held)
    assert got.node_ports[("default", "a", "80/TCP")] == 30080
    assert ("default", "b", "80/TCP") not in got.node_ports
    assert got.refused == (("default", "b", "nodePort 30080/TCP is already allocated to "
                                            "Service default/a (scope default)"),)


def test_the_same_node_port_number_is_free_for_another_protocol() -> None:
    got = allocate([svc("a", port(node_port=30053), kind="NodePort"),
                    svc("b", port(protocol="UDP", node_port=30053), kind="NodePort")])
    assert got.refused == ()
    assert got.node_ports[("default", "b", "80/UDP")] == 30053


def test_a_cluster_ip_outside_the_cidr_is_refused() -> None:
    got = allocate([svc("a", ip="10.97.0.5")])
    assert got.ips == {} and got.claim == (
        Claim(services.IP, got.dns_ip, "default/kube-system/kube-dns"),
    )
    assert got.refused == (
        ("default", "a", "clusterIP 10.97.0.5 is not in the service CIDR 10.96.0.0/16"),
    )


def test_the_claims_of_deleted_services_are_released_and_no_other_scope_s() -> None:
    held = after(allocate([svc("a"), svc("b", kind="NodePort")]))
    theirs = after(allocate([svc("x")], held, scope="other"), held)
    got = allocate([svc("a")], theirs)
    released = {(c.kind, c.owner) for c in got.release}
    assert released == {(services.IP, "default/default/b"),
                        (services.NODE_PORT, "default/default/b")}
    assert got.claim == ()


def test_a_service_that_changes_its_requested_address_releases_the_old_one() -> None:
    held = after(allocate([svc("a", ip="10.96.7.7")]))
    got = allocate([svc("a", ip="10.96.8.8")], held)
    assert got.ips[("default", "a")] == "10.96.8.8"
    assert [c.value for c in got.release] == ["10.96.7.7"]


def test_the_cluster_dns_prefers_the_tenth_address() -> None:
    assert allocate([]).dns_ip == "10.96.0.10"
    assert allocate([], cidr="10.100.0.0/24").dns_ip == "10.100.0.10"
    taken = after(allocate([], scope="first"))
    second = allocate([], taken, scope="second")
    assert second.dns_ip not in ("", "10.96.0.10")


def test_the_dns_address_is_never_given_to_a_service_that_asks_for_none() -> None:
    got = allocate([svc(f"s{i}") for i in range(200)])
    assert got.dns_ip not in got.ips.values()
    assert len(set(got.ips.values())) == 200


def test_node_ports_are_allocated_in_the_node_port_range_for_node_port_services_only() -> None:
    got = allocate([
        svc("web", port(80, name="http"), port(443, name="https"), kind="NodePort"),
        svc("db", port(5432)),
    ])
    numbers = [got.node_ports[("default", "web", key)] for key in ("http", "https")]
    assert all(30000 <= n <= 32767 for n in numbers) and numbers[0] != numbers[1]
    assert not any(key[1] == "db" for key in got.node_ports)


def test_a_requested_node_port_is_honoured() -> None:
    got = allocate([svc("web", port(node_port=31000), kind="NodePort")])
    assert got.node_ports == {("default", "web", "80/TCP"): 31000}


def test_automatic_addresses_avoid_the_network_and_the_static_band() -> None:
    got = allocate([svc(f"s{i}") for i in range(50)])
    for ip in got.ips.values():
        offset = int(ipaddress.ip_address(ip)) - int(ipaddress.ip_address("10.96.0.0"))
        assert services.STATIC_BAND <= offset < 2**16 - 1


def test_two_scopes_sharing_the_engines_never_get_the_same_address() -> None:
    small = "10.96.0.0/28"  # 11 addresses above the band, 10 taken: the hashes must collide
    names = [svc(f"s{i}", kind="NodePort") for i in range(4)]
    first = allocate(names, cidr=small, scope="one")
    second = allocate(names, after(first), cidr=small, scope="two")
    assert second.refused == ()
    assert not set(first.ips.values()) & set(second.ips.values())
    assert not set(first.node_ports.values()) & set(second.node_ports.values())
    assert first.dns_ip != second.dns_ip


def test_a_full_service_cidr_refuses_what_does_not_fit() -> None:
    got = allocate([svc(f"s{i}") for i in range(20)], cidr="10.96.0.0/28")
    full = [name for _, name, why in got.refused if "is full" in why]
    assert len(got.ips) + len(full) == 20 and full
    assert len({*got.ips.values(), got.dns_ip}) == len(got.ips) + 1


def test_the_oldest_claim_wins_when_nodes_disagree() -> None:
    old = Claim(services.IP, "10.96.1.1", "default/default/a", created=1.0)
    new = Claim(services.IP, "10.96.1.1", "default/default/b", created=2.0)
    got = allocate([svc("a"), svc("b")], [new, old])
    assert got.ips[("default", "a")] == "10.96.1.1"
    assert got.ips[("default", "b")] != "10.96.1.1"


# -- endpoints --------------------------------------------------------------------------------


def observed(
    name: str, *, ip: str = "", node: str = "n1", namespace: str = "default",
    pod_labels: model.Pairs = WEB, app: str = "running", pause: str = "running",
) -> observe.ObservedPod:
    number = int(name.rsplit("-", 1)[-1]) if name[-1].isdigit() else 9
    ip = ip or f"10.244.1.{number}"
    return observe.ObservedPod(
        node=node, namespace=namespace, name=name, uid=f"uid-{name}", owner="",
        template_hash="h", revision="", labels=pod_labels,
        pause=observe.ObservedContainer("p", "POD", "p", "pause", pause, 0.0, ip=ip),
        containers=(observe.ObservedContainer("a", "app", "a", "app", app, 0.0),),
    )


def ips(eps: services.Endpoints, key: str = "80/TCP") -> list[str]:
    return [f"{e.ip}:{e.port}" for e in eps[key]]


def test_endpoints_are_the_ready_pods_of_the_namespace_matching_the_selector() -> None:
    pods = [
        observed("web-3"),
        observed("web-1", pod_labels=(("app", "web"), ("tier", "front"))),  # a superset matches
        observed("web-2", app="exited"),  # not Ready
        observed("web-4", pause="exited"),  # its sandbox is gone
        observed("web-5", namespace="shop"),  # another namespace
        observed("db-6", pod_labels=(("app", "db"),)),
        observed("bare-7", pod_labels=()),
    ]
    eps = services.endpoints(svc("web"), pods, {}, serving={"n1"})
    assert ips(eps) == ["10.244.1.1:8080", "10.244.1.3:8080"]
    assert [e.pod for e in eps["80/TCP"]] == ["web-1", "web-3"]


def test_pods_on_nodes_that_do_not_serve_or_about_to_leave_are_no_endpoints() -> None:
    pods = [observed("web-1"), observed("web-2", node="n2"), observed("web-3")]
    eps = services.endpoints(svc("web"), pods, {}, serving={"n1"}, leaving=frozenset({"uid-web-3"}))
    assert ips(eps) == ["10.244.1.1:8080"]


def test_a_pod_without_an_address_is_no_endpoint() -> None:
    no_ip = observe.ObservedPod(
        node="n1", namespace="default", name="web-1", uid="u", owner="", template_hash="h",
        revision="", labels=WEB,
        pause=observe.ObservedContainer("p", "POD", "p", "pause", "running", 0.0),
        containers=(),
    )
    assert services.endpoints(svc("web"), [no_ip], {}, serving={"n1"}) == {"80/TCP": ()}


def test_a_named_target_port_is_resolved_per_pod() -> None:
    web = svc("web", port(80, "http", name="web"), port(81, 9090, name="admin"))
    pods = [observed("web-1"), observed("web-2"), observed("web-3")]
    named = {"uid-web-1": {"http": 8080}, "uid-web-2": {"http": 8081}}  # web-3 has no "http"
    eps = services.endpoints(web, pods, named, serving={"n1"})
    assert ips(eps, "web") == ["10.244.1.1:8080", "10.244.1.2:8081"]
    assert ips(eps, "admin") == ["10.244.1.1:9090", "10.244.1.2:9090", "10.244.1.3:9090"]


def test_named_ports_come_from_every_container_of_the_template() -> None:
    spec = model.PodSpec(containers=(
        model.Container("a", "i", ports=(model.ContainerPort(8080, name="http"),
                                         model.ContainerPort(9000))),
        model.Container("b", "i", ports=(model.ContainerPort(9090, name="metrics"),)),
    ))
    template = model.PodTemplate(labels=WEB, annotations=(), spec=spec)
    assert services.named_ports(template) == {"http": 8080, "metrics": 9090}


def test_a_service_without_a_selector_has_no_endpoints() -> None:
    eps = services.endpoints(svc("ext", port(80), port(443), selector=()), [observed("web-1")],
                             {}, serving={"n1"})
    assert eps == {"80/TCP": (), "443/TCP": ()}


# -- discovery: environment and DNS -----------------------------------------------------------


def test_service_variables_are_named_exactly_as_the_kubelet_names_them() -> None:
    my_db = svc("my-db", port(5432, name="pg-main"), port(9187, protocol="UDP", name="metrics"),
                ip="10.96.0.50")
    got = allocate([my_db])
    assert dict(services.service_env("default", [my_db], got)) == {
        "MY_DB_SERVICE_HOST": "10.96.0.50",
        "MY_DB_SERVICE_PORT": "5432",
        "MY_DB_SERVICE_PORT_PG_MAIN": "5432",
        "MY_DB_SERVICE_PORT_METRICS": "9187",
        "MY_DB_PORT": "tcp://10.96.0.50:5432",
        "MY_DB_PORT_5432_TCP": "tcp://10.96.0.50:5432",
        "MY_DB_PORT_5432_TCP_PROTO": "tcp",
        "MY_DB_PORT_5432_TCP_PORT": "5432",
        "MY_DB_PORT_5432_TCP_ADDR": "10.96.0.50",
        "MY_DB_PORT_9187_UDP": "udp://10.96.0.50:9187",
        "MY_DB_PORT_9187_UDP_PROTO": "udp",
        "MY_DB_PORT_9187_UDP_PORT": "9187",
        "MY_DB_PORT_9187_UDP_ADDR": "10.96.0.50",
    }


def test_an_unnamed_port_has_no_named_service_port_variable() -> None:
    web = svc("web", ip="10.96.0.60")
    names = [k for k, _ in services.service_env("default", [web], allocate([web]))]
    assert names == ["WEB_SERVICE_HOST", "WEB_SERVICE_PORT", "WEB_PORT", "WEB_PORT_80_TCP",
                     "WEB_PORT_80_TCP_PROTO", "WEB_PORT_80_TCP_PORT", "WEB_PORT_80_TCP_ADDR"]


def test_only_the_namespace_s_services_with_an_address_give_variables() -> None:
    declared = [svc("web"), svc("cart", namespace="shop"), svc("bad", ip="10.97.0.1")]
    names = {k for k, _ in services.service_env("default", declared, allocate(declared))}
    assert "WEB_SERVICE_HOST" in names
    assert not any(k.startswith(("CART_", "BAD_")) for k in names)


def identity(env: model.Pairs, *own: tuple[str, str], dns: services.DnsConfig | None = None
             ) -> tuple[plan.PodIdentity, model.Container]:
    container = model.Container("app", "busybox", env=own)
    spec = model.PodSpec(containers=(container,))
    template = model.PodTemplate(labels=WEB, annotations=(), spec=spec)
    return plan.PodIdentity("default", "web-1", "uid", "", template, "", env, dns), container


def test_the_container_s_own_variable_wins_over_a_service_variable() -> None:
    pod, container = identity(
        (("WEB_SERVICE_HOST", "10.96.0.60"), ("WEB_SERVICE_PORT", "80")),
        ("WEB_SERVICE_HOST", "override"), ("OWN", "1"),
    )
    config = podspec.app(pod, "n1", SCOPE, container, restarts=0, streak=0).config
    assert config["Env"] == ["WEB_SERVICE_PORT=80", "WEB_SERVICE_HOST=override", "OWN=1"]


def test_a_pod_resolves_through_the_cluster_dns_with_the_kubelet_s_search_list() -> None:
    dns = services.dns_config("shop", allocate([]))
    assert dns == services.DnsConfig(
        "10.96.0.10", ("shop.svc.cluster.local", "svc.cluster.local", "cluster.local"),
        ("ndots:5",),
    )
    pod, _ = identity((), dns=dns)
    host = podspec.pause(pod, "n1", SCOPE, "pause:1").config["HostConfig"]
    assert (host["Dns"], host["DnsSearch"], host["DnsOptions"]) == (
        ["10.96.0.10"], ["shop.svc.cluster.local", "svc.cluster.local", "cluster.local"],
        ["ndots:5"],
    )


def test_without_a_dns_address_a_pod_keeps_the_engine_s_resolver() -> None:
    none = services.Allocation(ips={}, node_ports={}, dns_ip="")
    assert services.dns_config("default", none) is None
    pod, _ = identity(())
    assert "Dns" not in podspec.pause(pod, "n1", SCOPE, "pause:1").config["HostConfig"]


def test_dns_records_name_every_service_with_an_address_and_its_named_ports() -> None:
    declared = [svc("web", port(80, name="http"), port(81), ip="10.96.0.60"),
                svc("bad", ip="10.97.0.1")]
    records = services.dns_records(declared, allocate(declared))
    assert records.hosts == "10.96.0.60 web.default.svc.cluster.local\n"
    assert records.srv == (
        "_http._tcp.web.default.svc.cluster.local,web.default.svc.cluster.local,80,0,100",
    )
    assert records.digest == services.dns_records(declared, allocate(declared)).digest
    moved = [svc("web", port(80, name="http"), port(81), ip="10.96.0.61")]
    assert services.dns_records(moved, allocate(moved)).digest != records.digest


def test_the_loser_of_a_split_brain_gives_up_its_claim_so_the_winner_s_can_be_written() -> None:
    old = Claim(services.IP, "10.96.1.1", "default/default/a", created=1.0)
    lost = Claim(services.IP, "10.96.1.1", "default/default/b", created=2.0)
    got = allocate([svc("a"), svc("b")], [old, lost])
    assert lost in got.release and old not in got.release


def test_an_address_requested_by_name_is_not_taken_by_a_service_declared_before() -> None:
    chosen = allocate([svc("a")], cidr="10.96.0.0/24").ips[("default", "a")]
    got = allocate([svc("a"), svc("b", ip=chosen)], cidr="10.96.0.0/24")
    assert got.refused == ()
    assert got.ips[("default", "b")] == chosen != got.ips[("default", "a")]


@pytest.mark.parametrize("renamed", [port(80, name="web", node_port=30080),
                                     port(8080, node_port=30080)])
def test_a_renamed_or_renumbered_port_keeps_its_requested_node_port(
    renamed: model.ServicePort,
) -> None:
    held = after(allocate([svc("web", port(80, node_port=30080), kind="NodePort")]))
    got = allocate([svc("web", renamed, kind="NodePort")], held)
    assert got.refused == () and (got.claim, got.release) == ((), ())
    assert got.node_ports == {("default", "web", services.port_key(renamed)): 30080}


def test_two_ports_of_one_service_never_share_a_node_port() -> None:
    held = after(allocate([svc("web", port(80, name="a"), kind="NodePort")]))
    taken = next(c for c in held if c.kind == services.NODE_PORT)
    number = int(taken.value.split("/")[0])
    got = allocate([svc("web", port(80, name="a"), port(81, name="b", node_port=number),
                        kind="NodePort")], held)
    assert got.node_ports == {("default", "web", "a"): number}
    assert got.refused == (("default", "web", f"nodePort {number}/TCP is already allocated to "
                                              "Service default/web (scope default)"),)
