"""A node's Service rules as iptables-restore text: kube-proxy's layout, checked as text."""

from __future__ import annotations

import re

import pytest

from reconciler import model
from reconciler.plan import rules, services

pytestmark = pytest.mark.unit

PODS = ("10.244.2.0/24", "10.244.1.0/24")


def ep(ip: str, port: int = 8080) -> services.Endpoint:
    return services.Endpoint(ip, port, "default", f"pod-{ip}", "n1", f"uid-{ip}")


def view(
    name: str = "web", ip: str = "10.96.0.50", *, node_port: int = 0, protocol: str = "TCP",
    endpoints: tuple[services.Endpoint, ...] = (), namespace: str = "default",
    port_name: str = "",
) -> rules.ServicePorts:
    port = model.ServicePort(80, 8080, protocol, port_name)
    return rules.ServicePorts(namespace, name, ip, ((port, node_port, endpoints),))


def render(*views: rules.ServicePorts, scope: str = "default", **kw: object) -> rules.RuleSet:
    return rules.render(scope, views, pod_networks=PODS, **kw)  # type: ignore[arg-type]


def table(text: str, name: str) -> list[str]:
    """The lines of one table of iptables-restore text, without its header and COMMIT."""
    block = text.split(f"*{name}\n", 1)[1].split("COMMIT\n", 1)[0]
    return block.splitlines()


def chain(text: str, name: str, table_name: str = "nat") -> list[str]:
    return [line for line in table(text, table_name) if line.startswith(f"-A {name} ")]


FOUR = tuple(ep(f"10.244.1.{i}") for i in range(1, 5))


def test_chain_names_fit_iptables_28_characters() -> None:
    long = view("a" * 63, namespace="n" * 63, node_port=30080, endpoints=FOUR)
    for scope in ("default", "a-rather-long-scope-name-indeed"):
        ruleset = render(long, view("db", "10.96.0.51"), scope=scope, dns=("10.96.0.10", "x"))
        names = [c.split()[1] for c in ruleset.chains]
        assert names and all(len(n) <= 28 for n in names)
        declared = re.findall(r"^:(\S+) ", ruleset.text, re.MULTILINE)
        assert sorted(declared) == sorted(names)


def test_the_default_scope_s_chains_are_podyard_and_every_other_scope_has_its_own() -> None:
    assert rules.chain_prefix("default") == "PODYARD"
    others = {rules.chain_prefix(s) for s in ("demo", "w-1", "w-2", "bench")}
    assert len(others) == 4 and "PODYARD" not in others
    assert all(len(p) == 7 and p.startswith("PY") for p in others)
    ruleset = render(view(endpoints=FOUR), scope="demo")
    prefix = rules.chain_prefix("demo")
    assert ruleset.prefix == prefix
    assert all(c.split()[1].startswith(f"{prefix}-") for c in ruleset.chains)
    assert "PODYARD" not in ruleset.text


def test_one_endpoint_is_chosen_with_probabilities_one_over_those_left() -> None:
    text = render(view(endpoints=FOUR)).text
    (jump,) = [line for line in chain(text, "PODYARD-SERVICES") if "cluster IP" in line]
    svc = jump.split()[-1]
    picks = chain(text, svc)[1:]  # after the jump that marks traffic from outside
    assert len(picks) == 4
    found = [re.search(r"--probability (\S+)", line) for line in picks]
    assert [m.group(1) if m else None for m in found] == [
        "0.2500000000", "0.3333333333", "0.5000000000", None
    ]
    assert "statistic" not in picks[-1]


def test_a_single_endpoint_has_no_statistic() -> None:
    text = render(view(endpoints=FOUR[:1])).text
    assert "statistic" not in text


def test_traffic_from_outside_the_pod_networks_is_marked_for_masquerade() -> None:
    text = render(view(endpoints=FOUR)).text
    assert chain(text, "PODYARD-FROM-OUTSIDE") == [
        "-A PODYARD-FROM-OUTSIDE -s 10.244.1.0/24 -j RETURN",
        "-A PODYARD-FROM-OUTSIDE -s 10.244.2.0/24 -j RETURN",
        "-A PODYARD-FROM-OUTSIDE -j PODYARD-MARK-MASQ",
    ]


def test_each_endpoint_chain_masquerades_its_own_pod_before_the_dnat() -> None:
    text = render(view(endpoints=FOUR)).text
    seps = sorted({line.split()[1] for line in table(text, "nat") if "-SEP-" in line.split()[1]})
    assert len(seps) == 4
    for sep in seps:
        hairpin, dnat = chain(text, sep)
        ip = re.search(r"--to-destination (\S+):8080", dnat)
        assert ip is not None
        assert hairpin == f"-A {sep} -s {ip.group(1)}/32 -j PODYARD-MARK-MASQ"
        assert dnat == f"-A {sep} -p tcp -m tcp -j DNAT --to-destination {ip.group(1)}:8080"


def test_a_service_without_endpoints_is_rejected_in_the_filter_table() -> None:
    text = render(view(node_port=30080)).text
    assert chain(text, "PODYARD-SERVICES", "filter") == [
        '-A PODYARD-SERVICES -d 10.96.0.50/32 -p tcp -m tcp --dport 80 -m comment --comment '
        '"default/web:80/TCP has no endpoints" -j REJECT --reject-with icmp-port-unreachable',
        '-A PODYARD-SERVICES -m addrtype --dst-type LOCAL -p tcp -m tcp --dport 30080 '
        '-m comment --comment "default/web:80/TCP has no endpoints" '
        "-j REJECT --reject-with icmp-port-unreachable",
    ]
    assert "-SVC-" not in text and "DNAT" not in text


def test_node_ports_follow_the_cluster_ips_and_the_local_jump_comes_last() -> None:
    text = render(view("a", "10.96.0.50", node_port=30080, endpoints=FOUR[:2]),
                  view("b", "10.96.0.51", node_port=30081, endpoints=FOUR[2:]),
                  dns=("10.96.0.10", "172.17.0.5")).text
    nat = table(text, "nat")
    services_chain = chain(text, "PODYARD-SERVICES")
    assert services_chain[-1] == \
        "-A PODYARD-SERVICES -m addrtype --dst-type LOCAL -j PODYARD-NODEPORTS"
    assert [line for line in services_chain if "cluster DNS" in line] == services_chain[:2]
    last_cluster_ip = max(i for i, line in enumerate(nat) if "cluster IP" in line)
    first_node_port = min(i for i, line in enumerate(nat) if line.startswith("-A PODYARD-NODEP"))
    assert last_cluster_ip < first_node_port
    node_ports = chain(text, "PODYARD-NODEPORTS")
    assert [line.split("--dport ")[1].split()[0] for line in node_ports] == \
        ["30080", "30080", "30081", "30081"]
    assert node_ports[0].endswith("-j PODYARD-MARK-MASQ")


def test_the_cluster_dns_address_goes_to_this_node_s_dns_container() -> None:
    text = render(dns=("10.96.0.10", "172.17.0.5")).text
    dns = [line for line in chain(text, "PODYARD-SERVICES") if "cluster DNS" in line]
    assert [line.split()[5] for line in dns] == ["udp", "tcp"]
    assert all(line.endswith("-j DNAT --to-destination 172.17.0.5:53") for line in dns)
    assert "cluster DNS" not in render().text


def test_the_same_input_gives_the_same_text_and_digest() -> None:
    views = (view("a", node_port=30080, endpoints=FOUR), view("b", "10.96.0.51"))
    one = rules.render("default", views, pod_networks=PODS, node_addresses=("10.0.0.12",
                                                                             "10.0.0.11"))
    two = rules.render("default", views, pod_networks=tuple(reversed(PODS)),
                       node_addresses=("10.0.0.11", "10.0.0.12"))
    assert one.text.encode() == two.text.encode() and one.digest == two.digest
    assert one == two
    assert render(view("a", node_port=30080, endpoints=FOUR[:3])).digest != one.digest


def test_udp_services_tell_conntrack_what_to_forget() -> None:
    ruleset = render(view("dns", protocol="UDP", node_port=30053, endpoints=FOUR[:2]),
                     view("idle", "10.96.0.60", protocol="UDP"),
                     view("web", "10.96.0.70", endpoints=FOUR[:1]))
    assert ruleset.udp == (
        "10.96.0.50 80 10.244.1.1", "- 30053 10.244.1.1",
        "10.96.0.50 80 10.244.1.2", "- 30053 10.244.1.2",
        "10.96.0.60 80 -",
    )
    assert "-p udp -m udp" in ruleset.text


def test_node_addresses_may_forward_to_the_pod_networks() -> None:
    text = rules.render("default", (), pod_networks=PODS, node_addresses=("10.0.0.11",)).text
    assert "-A PODYARD-FORWARD -s 10.0.0.11/32 -d 10.244.1.0/24 -j ACCEPT" in text
    assert "-A PODYARD-FORWARD -s 10.0.0.11/32 -d 10.244.2.0/24 -j ACCEPT" in text


def test_the_files_the_agent_reads_hold_the_rules_chains_jumps_and_canary() -> None:
    ruleset = render(view(endpoints=FOUR))
    files = ruleset.files()
    assert files["rules"] == ruleset.text and files["digest"] == ruleset.digest + "\n"
    assert files["canary"] == "PODYARD-CANARY\n"
    assert "nat PREROUTING " in files["jumps"] and "filter INPUT " in files["jumps"]
    assert files["chains"].splitlines() == list(ruleset.chains)
    assert "-A PODYARD-CANARY -j RETURN" in table(ruleset.text, "filter")


def test_a_delta_rewrites_only_the_chains_that_changed_and_deletes_the_gone_ones() -> None:
    old = render(view(endpoints=FOUR))
    new = render(view(endpoints=FOUR[:3]))
    text = new.files(since=old)["rules"]
    declared = re.findall(r"^:(\S+) ", text, re.MULTILINE)
    deleted = re.findall(r"^-X (\S+)$", text, re.MULTILINE)
    gone = set(re.findall(r"^:(\S+-SEP-\S+) ", old.text, re.MULTILINE)) - set(
        re.findall(r"^:(\S+-SEP-\S+) ", new.text, re.MULTILINE))
    assert len(gone) == 1 and deleted == sorted(gone)
    # The service's chain changed (one endpoint fewer); the other endpoints' chains did not.
    assert any("-SVC-" in c for c in declared)
    assert not any(c in declared for c in re.findall(r"^:(\S+-SEP-\S+) ", new.text, re.M))
    assert text.count("COMMIT") == 2 and new.files(since=old)["partial"] == "yes\n"
    assert "partial" not in new.files()
    unchanged = new.files(since=new)["rules"]
    assert unchanged == "*nat\nCOMMIT\n*filter\nCOMMIT\n"
