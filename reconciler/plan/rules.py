"""A node's packet rules for Services, rendered as `iptables-restore` text: pure.

Laid out like kube-proxy's iptables mode, in podyard's own chains (prefix `PODYARD` for the
default scope, `PY<5 hex>` for others, so scopes sharing an engine never touch each other's):

    nat PREROUTING, OUTPUT -> <P>-SERVICES
        -d <clusterIP> -p <proto> --dport <port>       -> <P>-SVC-<hash>   (one per port)
        -d <dns address> --dport 53                   -> DNAT to this node's DNS container
        -m addrtype --dst-type LOCAL (last)           -> <P>-NODEPORTS
    <P>-NODEPORTS  --dport <nodePort>: mark for masquerade, then -> <P>-SVC-<hash>
    <P>-SVC-<hash> traffic from outside the pod networks is marked; then one endpoint chosen
                   with `-m statistic --mode random --probability 1/(n-i)`
    <P>-SEP-<hash> the hairpin rule first (a pod reaching its own Service is masqueraded),
                   then the DNAT to <pod IP>:<targetPort>
    nat POSTROUTING -> <P>-POSTROUTING: masquerade only what carries the mark, so pod-to-pod
                   traffic keeps the client's source address
    filter INPUT, FORWARD, OUTPUT (new connections) -> <P>-SERVICES: REJECT a Service port
                   that has no endpoints (a fast "connection refused", never a hang)
    filter FORWARD -> <P>-FORWARD: accept marked and established traffic, and traffic from
                   the other nodes to the pod networks
    <P>-CANARY in both tables: a rule whose loss says someone flushed the tables

`engine/agents.py` applies the text with `iptables-restore --noflush`, ensures the jumps,
deletes this prefix's chains the text no longer has, and removes stale UDP conntrack entries.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from reconciler import model
from reconciler.plan import services

MARK = "0x8000"
DNS_PORT = 53


@dataclass(frozen=True)
class Jump:
    """A rule in a built-in chain that leads into podyard's chains: ensured, not rewritten."""

    table: str
    chain: str
    rule: str  # the rule spec after `-A <chain>`

    def line(self) -> str:
        return f"{self.table} {self.chain} {self.rule}"


@dataclass(frozen=True)
class RuleSet:
    """Everything one node's rules need, and a digest that says whether they changed."""

    prefix: str
    parts: tuple[str, ...]  # the text, in pieces shared between nodes (see `text`)
    chains: tuple[str, ...]  # "<table> <chain>" of every chain the text declares
    jumps: tuple[Jump, ...]
    udp: tuple[str, ...]  # "<address|-> <port> <endpoint IP|->": what conntrack must forget
    digest: str

    @property
    def text(self) -> str:
        """iptables-restore input: the nat and filter tables' podyard chains."""
        return "".join(self.parts)

    def files(self, since: RuleSet | None = None) -> dict[str, str]:
        """The files the node agent's apply script reads, by name; `since`: the rule set the
        node has now, to send only the chains that differ (see `delta`)."""
        partial = {"partial": "yes\n"} if since is not None else {}
        return {
            **partial,
            "rules": self.text if since is None else delta(since, self),
            "chains": "".join(f"{c}\n" for c in self.chains),
            "jumps": "".join(f"{j.line()}\n" for j in self.jumps),
            "udp": "".join(f"{u}\n" for u in self.udp),
            "canary": f"{self.prefix}-CANARY\n",
            "digest": self.digest + "\n",
        }


def delta(old: RuleSet, new: RuleSet) -> str:
    """iptables-restore input that turns a node's `old` rules into `new`: only the chains
    whose rules differ are rewritten (declaring a chain flushes it), and chains `new` no
    longer has are flushed, then deleted. As kube-proxy does, so that one endpoint moving
    among thousands of Services costs a few lines, not the whole set again."""
    before, after = _chains(old.text), _chains(new.text)
    out = []
    for table in ("nat", "filter"):
        changed = [c for c, rules in after.get(table, {}).items()
                   if before.get(table, {}).get(c) != rules]
        gone = [c for c in before.get(table, {}) if c not in after.get(table, {})]
        out += [f"*{table}\n", *(f":{c} - [0:0]\n" for c in (*changed, *gone))]
        out += [line for c in changed for line in after[table][c]]
        out += [*(f"-X {c}\n" for c in gone), "COMMIT\n"]
    return "".join(out)


def _chains(text: str) -> dict[str, dict[str, list[str]]]:
    """table -> chain -> its rule lines (with their newlines), in the text's order."""
    tables: dict[str, dict[str, list[str]]] = {}
    table: dict[str, list[str]] = {}
    for line in text.splitlines(keepends=True):
        if line.startswith("*"):
            table = tables.setdefault(line[1:].strip(), {})
        elif line.startswith(":"):
            table.setdefault(line[1:].split(" ", 1)[0], [])
        elif line.startswith("-A "):
            table.setdefault(line.split(" ", 2)[1], []).append(line)
    return tables


@dataclass(frozen=True)
class ServicePorts:
    """One Service as the rules see it: its address and, per port, node port and endpoints."""

    namespace: str
    name: str
    ip: str
    ports: tuple[tuple[model.ServicePort, int, tuple[services.Endpoint, ...]], ...]


def chain_prefix(scope: str) -> str:
    """Seven characters, so that `<prefix>-SVC-<16 hex>` fits iptables' 28-character names."""
    if scope == "default":
        return "PODYARD"
    return "PY" + hashlib.sha256(scope.encode()).hexdigest()[:5].upper()


def _hash(*parts: str) -> str:
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return base64.b32encode(digest).decode()[:16]


@dataclass(frozen=True)
class Body:
    """What every node's rule set has in common; only the cluster DNS rules differ (they
    send the DNS address to that node's own DNS agent)."""

    prefix: str
    head: str  # up to where the DNS rules go
    tail: str
    chains: tuple[str, ...]
    jumps: tuple[Jump, ...]
    udp: tuple[str, ...]
    digest: str


def render(
    scope: str,
    views: Sequence[ServicePorts],
    *,
    pod_networks: Iterable[str],
    node_addresses: Iterable[str] = (),
    dns: tuple[str, str] | None = None,  # (the DNS ClusterIP, this node's DNS container IP)
) -> RuleSet:
    """The rule set of one node; the same input gives the same text, byte for byte."""
    return for_node(body(scope, views, pod_networks=pod_networks,
                         node_addresses=node_addresses), dns)


def for_node(common: Body, dns: tuple[str, str] | None) -> RuleSet:
    """One node's rule set: the common body with its own DNS rules."""
    p = common.prefix
    lines = []
    if dns is not None:
        dns_ip, local = dns
        lines = [
            f'-A {p}-SERVICES -d {dns_ip}/32 -p {proto} -m comment --comment "cluster DNS" '
            f"-m {proto} --dport {DNS_PORT} -j DNAT --to-destination {local}:{DNS_PORT}\n"
            for proto in ("udp", "tcp")
        ]
    middle = "".join(lines)
    digest = hashlib.sha256((common.digest + middle).encode()).hexdigest()[:16]
    return RuleSet(p, (common.head, middle, common.tail), common.chains, common.jumps,
                   common.udp, digest)


def body(
    scope: str,
    views: Sequence[ServicePorts],
    *,
    pod_networks: Iterable[str],
    node_addresses: Iterable[str] = (),
) -> Body:
    """The rules every node shares. Remembered for the last inputs: an idle pass, which asks
    again with the same Services and endpoints, renders nothing."""
    return _body(scope, tuple(views), tuple(sorted(set(pod_networks))),
                 tuple(sorted(set(node_addresses))))


@functools.lru_cache(maxsize=2)
def _body(
    scope: str,
    views: tuple[ServicePorts, ...],
    pods: tuple[str, ...],
    node_addresses: tuple[str, ...],
) -> Body:
    p = chain_prefix(scope)
    nat: list[str] = []
    filt: list[str] = []
    nat_chains = [f"{p}-SERVICES", f"{p}-NODEPORTS", f"{p}-POSTROUTING", f"{p}-MARK-MASQ",
                  f"{p}-FROM-OUTSIDE", f"{p}-CANARY"]
    filter_chains = [f"{p}-SERVICES", f"{p}-FORWARD", f"{p}-CANARY"]
    udp: list[str] = []

    nat += [
        f"-A {p}-CANARY -j RETURN",
        f"-A {p}-MARK-MASQ -j MARK --or-mark {MARK}",
        f"-A {p}-POSTROUTING -m mark ! --mark {MARK}/{MARK} -j RETURN",
        f"-A {p}-POSTROUTING -j MARK --xor-mark {MARK}",
        f'-A {p}-POSTROUTING -m comment --comment "podyard service traffic requiring SNAT" '
        f"-j MASQUERADE",
        *(f"-A {p}-FROM-OUTSIDE -s {net} -j RETURN" for net in pods),
        f"-A {p}-FROM-OUTSIDE -j {p}-MARK-MASQ",
    ]
    filt += [
        f"-A {p}-CANARY -j RETURN",
        f"-A {p}-FORWARD -m mark --mark {MARK}/{MARK} -j ACCEPT",
        f"-A {p}-FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        *(f"-A {p}-FORWARD -s {addr}/32 -d {net} -j ACCEPT"
          for addr in node_addresses for net in pods),
    ]
    base = len(nat)
    node_ports: list[str] = []
    for view in views:
        for port, node_port, eps in view.ports:
            proto = port.protocol.lower()
            name = f"{view.namespace}/{view.name}:{services.port_key(port)}"
            match = f"-p {proto} -m {proto}"
            if not eps:
                filt.append(
                    f'-A {p}-SERVICES -d {view.ip}/32 {match} --dport {port.port} '
                    f'-m comment --comment "{name} has no endpoints" '
                    f"-j REJECT --reject-with icmp-port-unreachable"
                )
                if node_port:
                    filt.append(
                        f'-A {p}-SERVICES -m addrtype --dst-type LOCAL {match} '
                        f'--dport {node_port} -m comment --comment "{name} has no endpoints" '
                        f"-j REJECT --reject-with icmp-port-unreachable"
                    )
                if proto == "udp":
                    udp.append(f"{view.ip} {port.port} -")
                continue
            svc = f"{p}-SVC-{_hash(scope, name)}"
            nat_chains.append(svc)
            nat.append(
                f'-A {p}-SERVICES -d {view.ip}/32 {match} --dport {port.port} '
                f'-m comment --comment "{name} cluster IP" -j {svc}'
            )
            if node_port:
                node_ports += [
                    f'-A {p}-NODEPORTS {match} --dport {node_port} '
                    f'-m comment --comment "{name}" -j {p}-MARK-MASQ',
                    f"-A {p}-NODEPORTS {match} --dport {node_port} -j {svc}",
                ]
            nat.append(f"-A {svc} -j {p}-FROM-OUTSIDE")
            for i, ep in enumerate(eps):
                sep = f"{p}-SEP-{_hash(scope, name, ep.ip, str(ep.port))}"
                nat_chains.append(sep)
                remaining = len(eps) - i
                pick = (
                    f"-m statistic --mode random --probability {1.0 / remaining:0.10f} "
                    if remaining > 1 else ""
                )
                nat.append(
                    f'-A {svc} -m comment --comment "{name} -> {ep.ip}:{ep.port}" {pick}-j {sep}'
                )
                nat += [
                    f"-A {sep} -s {ep.ip}/32 -j {p}-MARK-MASQ",
                    f"-A {sep} {match} -j DNAT --to-destination {ep.ip}:{ep.port}",
                ]
                if proto == "udp":
                    udp.append(f"{view.ip} {port.port} {ep.ip}")
                    if node_port:
                        udp.append(f"- {node_port} {ep.ip}")
    nat += node_ports
    nat.append(f"-A {p}-SERVICES -m addrtype --dst-type LOCAL -j {p}-NODEPORTS")

    jumps = (
        Jump("nat", "PREROUTING", f'-m comment --comment "podyard services" -j {p}-SERVICES'),
        Jump("nat", "OUTPUT", f'-m comment --comment "podyard services" -j {p}-SERVICES'),
        Jump("nat", "POSTROUTING",
             f'-m comment --comment "podyard postrouting" -j {p}-POSTROUTING'),
        Jump("filter", "FORWARD", f'-m comment --comment "podyard forward" -j {p}-FORWARD'),
        *(Jump("filter", chain, f"-m conntrack --ctstate NEW -m comment --comment "
                                f'"podyard services" -j {p}-SERVICES')
          for chain in ("INPUT", "FORWARD", "OUTPUT")),
    )
    head = "".join([
        "*nat\n",
        *(f":{c} - [0:0]\n" for c in nat_chains),
        *(f"{line}\n" for line in nat[:base]),
    ])
    tail = "".join([
        *(f"{line}\n" for line in nat[base:]),
        "COMMIT\n*filter\n",
        *(f":{c} - [0:0]\n" for c in filter_chains),
        *(f"{line}\n" for line in filt),
        "COMMIT\n",
    ])
    chains = (*(f"nat {c}" for c in nat_chains), *(f"filter {c}" for c in filter_chains))
    digest_input = head + tail + "".join(j.line() for j in jumps)
    digest = hashlib.sha256(digest_input.encode()).hexdigest()
    return Body(p, head, tail, chains, jumps, tuple(udp), digest)
