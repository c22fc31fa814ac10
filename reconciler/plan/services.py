"""Services, planned: ClusterIPs and NodePorts, endpoints, pods' environment and DNS records.

Pure, like the rest of `plan/`: in come the declared Services, the address claims found on
the nodes and the observed pods; out come values (`Allocation`, endpoints, env vars, DNS
records) that `plan/rules.py` renders into each node's rule set and `plan/network.py` turns
into actions.

An address is held by a *claim*: a record on the nodes' engines naming the Service that owns
it (`engine/agents.py` keeps it as a labelled volume named after the address, so an engine
holds at most one claim per address). Claims live on every node and are read back each pass,
so an address survives controller restarts and moves, and stays with its Service while other
Services come and go. Claims are per engine, not per scope: two scopes sharing an engine
never get the same address either.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from reconciler import model, observe

IP = observe.CLAIM_IP
NODE_PORT = observe.CLAIM_NODE_PORT
Claim = observe.Claim
NODE_PORTS = (30000, 32767)  # Kubernetes' default --service-node-port-range
CLUSTER_DOMAIN = "cluster.local"
DNS_SERVICE = ("kube-system", "kube-dns")  # who holds the cluster DNS address
DNS_OFFSET = 10  # 10.96.0.10, as kubeadm has it, when free
STATIC_BAND = 16  # the first addresses are left to Services that ask for one by name
NDOTS = 5

_Free = Callable[[str, str], bool]  # whether (kind, value) is claimed by nobody


def owner(scope: str, namespace: str, name: str) -> str:
    return f"{scope}/{namespace}/{name}"


def port_key(port: model.ServicePort) -> str:
    """How a Service port is named in claims and chains: its name, else number/protocol."""
    return port.name or f"{port.port}/{port.protocol}"


@dataclass(frozen=True)
class Allocation:
    """Who holds which address after this pass, and what must be claimed or released."""

    ips: Mapping[tuple[str, str], str]  # (namespace, name) -> ClusterIP
    node_ports: Mapping[tuple[str, str, str], int]  # (namespace, name, port key) -> nodePort
    dns_ip: str
    claim: tuple[Claim, ...] = ()  # new: to be written on every node
    release: tuple[Claim, ...] = ()  # this scope's claims nothing holds any more
    refused: tuple[tuple[str, str, str], ...] = ()  # (namespace, name, why) not programmed


def allocate(
    services: Sequence[model.Service], claims: Iterable[Claim], cidr: str, scope: str
) -> Allocation:
    """Keep every claim this scope's Services still need; allocate the rest.

    A Service asking for a clusterIP gets it unless another Service's claim holds it (as
    the API server refuses "provided IP is already allocated"). Others keep the address they
    hold, or get a free one: from a hash of their name upward, above the static band, so
    the same manifests tend to get the same addresses on a new cluster.
    """
    network = ipaddress.ip_network(cidr, strict=False)
    claims = list(claims)
    held = _by_value(claims)
    # Every claim of ours, the losers of a split brain too: one nothing uses is released, or
    # the node holding it would refuse the winner's claim on every pass.
    mine = {c for c in claims if c.scope == scope}
    used: set[Claim] = set()
    new: list[Claim] = []
    refused: list[tuple[str, str, str]] = []
    ips: dict[tuple[str, str], str] = {}
    node_ports: dict[tuple[str, str, str], int] = {}

    def take(kind: str, value: str, who: str, port: str = "") -> Claim:
        claim = held.get((kind, value))
        if claim is None:
            claim = Claim(kind, value, who, port)
            held[(kind, value)] = claim
            new.append(claim)
        used.add(claim)
        return claim

    def free(kind: str, value: str) -> bool:
        return (kind, value) not in held

    by_owner: dict[str, list[Claim]] = {}  # what each Service held as the pass began
    for c in held.values():
        by_owner.setdefault(c.owner, []).append(c)

    dns_owner = owner(scope, *DNS_SERVICE)
    dns_ip = _held_ip(by_owner, dns_owner) or _pick_ip(
        network, free, key=dns_owner, preferred=DNS_OFFSET
    )
    if dns_ip:
        take(IP, dns_ip, dns_owner)
    # Requested addresses first: a Service declared before one asking for an address by name
    # must not take it by chance in the same pass.
    for svc in sorted(services, key=lambda s: not s.cluster_ip):
        who = owner(scope, svc.namespace, svc.name)
        if svc.cluster_ip:
            holder = held.get((IP, svc.cluster_ip))
            if ipaddress.ip_address(svc.cluster_ip) not in network:
                refused.append((svc.namespace, svc.name,
                                f"clusterIP {svc.cluster_ip} is not in the service CIDR {cidr}"))
                continue
            if holder is not None and holder.owner != who:
                refused.append((svc.namespace, svc.name,
                                f"clusterIP {svc.cluster_ip} is already allocated to "
                                f"{_shown_owner(holder.owner)}"))
                continue
            ip = svc.cluster_ip
        else:
            ip = _held_ip(by_owner, who) or _pick_ip(network, free, key=who)
        if not ip:
            refused.append((svc.namespace, svc.name, f"the service CIDR {cidr} is full"))
            continue
        take(IP, ip, who)
        ips[(svc.namespace, svc.name)] = ip
        if svc.type != "NodePort":
            continue
        keys = {port_key(p) for p in svc.ports}
        for port in svc.ports:
            key = port_key(port)
            number = port.node_port or _held_port(by_owner, who, key, port.protocol)
            if number and port.node_port:
                holder = held.get((NODE_PORT, f"{number}/{port.protocol}"))
                renamed = holder is not None and holder.owner == who and holder.port not in keys
                if holder is not None and (holder.owner, holder.port) != (who, key) \
                        and not renamed:  # a port renamed or renumbered keeps its nodePort
                    refused.append((svc.namespace, svc.name,
                                    f"nodePort {number}/{port.protocol} is already allocated to "
                                    f"{_shown_owner(holder.owner)}"))
                    continue
            number = number or _pick_port(free, f"{who}/{key}", port.protocol)
            if not number:
                refused.append((svc.namespace, svc.name, "no free nodePort is left"))
                continue
            take(NODE_PORT, f"{number}/{port.protocol}", who, key)
            node_ports[(svc.namespace, svc.name, key)] = number
    return Allocation(
        ips=ips,
        node_ports=node_ports,
        dns_ip=dns_ip,
        claim=tuple(new),
        release=tuple(sorted(mine - used)),
        refused=tuple(refused),
    )


def _by_value(claims: Iterable[Claim]) -> dict[tuple[str, str], Claim]:
    """One holder per address: should two nodes disagree (a split brain), the oldest wins."""
    held: dict[tuple[str, str], Claim] = {}
    for c in sorted(claims, key=lambda c: (c.created, c.owner)):
        held.setdefault((c.kind, c.value), c)
    return held


def _held_ip(by_owner: Mapping[str, list[Claim]], who: str) -> str:
    found = sorted(c.value for c in by_owner.get(who, ()) if c.kind == IP)
    return found[0] if found else ""


def _held_port(by_owner: Mapping[str, list[Claim]], who: str, key: str, protocol: str) -> int:
    for c in by_owner.get(who, ()):
        number, _, proto = c.value.partition("/")
        if c.kind == NODE_PORT and c.port == key and proto == protocol:
            return int(number)
    return 0


def _hash(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


def _pick_ip(network: ipaddress.IPv4Network | ipaddress.IPv6Network, free: _Free,
             *, key: str, preferred: int = 0) -> str:
    size = network.num_addresses
    first = network.network_address
    if preferred and preferred < size - 1 and free(IP, str(first + preferred)):
        return str(first + preferred)
    low = min(STATIC_BAND, max(1, size // 4))
    span = size - 1 - low  # neither the network nor the broadcast address
    if span <= 0:
        return ""
    start = _hash(key) % span
    for i in range(span):
        candidate = str(first + low + (start + i) % span)
        if free(IP, candidate):
            return candidate
    return ""


def _pick_port(free: _Free, key: str, protocol: str) -> int:
    low, high = NODE_PORTS
    span = high - low + 1
    start = _hash(key) % span
    for i in range(span):
        number = low + (start + i) % span
        if free(NODE_PORT, f"{number}/{protocol}"):
            return number
    return 0


def _shown_owner(who: str) -> str:
    scope, _, rest = who.partition("/")
    return f"Service {rest} (scope {scope})"


# -- endpoints --------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Endpoint:
    """One pod serving one Service port."""

    ip: str
    port: int
    namespace: str = field(compare=False)
    pod: str = field(compare=False)
    node: str = field(compare=False)
    uid: str = field(compare=False)


Endpoints = Mapping[str, tuple[Endpoint, ...]]  # port key -> its endpoints, sorted


class PodIndex:
    """The pods that can serve (Ready, with an address, on a serving node), indexed by
    namespace and label: built once a pass, so a Service finds its pods without a scan."""

    def __init__(self, pods: Iterable[observe.ObservedPod], serving: Iterable[str]) -> None:
        nodes = set(serving)
        self._by: dict[tuple[str, str, str], list[observe.ObservedPod]] = {}
        for p in pods:
            if p.node in nodes and p.ip and p.ready:
                for key, value in p.labels:
                    self._by.setdefault((p.namespace, key, value), []).append(p)

    def select(self, namespace: str, selector: model.Pairs) -> list[observe.ObservedPod]:
        """The serving pods of a namespace whose labels include every pair of `selector`."""
        if not selector:
            return []
        smallest = min((self._by.get((namespace, k, v), []) for k, v in selector), key=len)
        wanted = dict(selector)
        return [p for p in smallest if _selects(wanted, p.labels)]


def endpoints(
    service: model.Service,
    pods: Iterable[observe.ObservedPod] | PodIndex,
    named_ports: Mapping[str, Mapping[str, int]],
    serving: Iterable[str] = (),
    leaving: frozenset[str] = frozenset(),
) -> Endpoints:
    """Each port's endpoints: the Ready pods matching the selector on a `serving` node.

    `named_ports`: pod uid -> container port name -> number, for named targetPorts. A pod in
    `leaving` (about to be deleted) is no endpoint any more, so that traffic stops reaching
    it before it is stopped. `pods` is a pass's `PodIndex` (then `serving` is already in it),
    or the observed pods. A Service without a selector has no endpoints (podyard has no
    manual Endpoints objects).
    """
    if not service.selector:
        return {port_key(p): () for p in service.ports}
    index = pods if isinstance(pods, PodIndex) else PodIndex(pods, serving)
    matching = [
        p for p in index.select(service.namespace, service.selector) if p.uid not in leaving
    ]
    found: dict[str, tuple[Endpoint, ...]] = {}
    for port in service.ports:
        each = []
        for p in matching:
            number = _target(port, named_ports.get(p.uid, {}))
            if number:
                each.append(Endpoint(p.ip, number, p.namespace, p.name, p.node, p.uid))
        found[port_key(port)] = tuple(sorted(set(each)))
    return found


def _selects(selector: Mapping[str, str], pod_labels: model.Pairs) -> bool:
    have = dict(pod_labels)
    return all(have.get(k) == v for k, v in selector.items())


def _target(port: model.ServicePort, named: Mapping[str, int]) -> int:
    if isinstance(port.target_port, int):
        return port.target_port
    return named.get(port.target_port, 0)


def named_ports(template: model.PodTemplate) -> dict[str, int]:
    """A template's named container ports: name -> number."""
    return {p.name: p.container_port for c in template.spec.containers for p in c.ports if p.name}


# -- discovery: environment and DNS -----------------------------------------------------------


def env_name(service_name: str) -> str:
    """`my-db` -> `MY_DB`, as the kubelet spells a Service in variable names."""
    return re.sub(r"[^A-Z0-9_]", "_", service_name.upper())


def service_env(
    namespace: str, services: Sequence[model.Service], allocation: Allocation
) -> model.Pairs:
    """The kubelet's variables for every Service of the namespace that has an address.

    `<NAME>_SERVICE_HOST`, `_SERVICE_PORT` (the first port), `_SERVICE_PORT_<PORT NAME>`,
    and the Docker-links style `<NAME>_PORT`, `<NAME>_PORT_<port>_<PROTO>` with `_PROTO`,
    `_PORT`, `_ADDR`.
    """
    env: list[tuple[str, str]] = []
    for svc in services:
        ip = allocation.ips.get((svc.namespace, svc.name))
        if svc.namespace != namespace or not ip or not svc.ports:
            continue
        name = env_name(svc.name)
        first = svc.ports[0]
        env += [(f"{name}_SERVICE_HOST", ip), (f"{name}_SERVICE_PORT", str(first.port))]
        for p in svc.ports:
            if p.name:
                env.append((f"{name}_SERVICE_PORT_{env_name(p.name)}", str(p.port)))
        env.append((f"{name}_PORT", f"{first.protocol.lower()}://{ip}:{first.port}"))
        for p in svc.ports:
            prefix = f"{name}_PORT_{p.port}_{p.protocol}"
            env += [
                (prefix, f"{p.protocol.lower()}://{ip}:{p.port}"),
                (f"{prefix}_PROTO", p.protocol.lower()),
                (f"{prefix}_PORT", str(p.port)),
                (f"{prefix}_ADDR", ip),
            ]
    return tuple(env)


@dataclass(frozen=True)
class DnsConfig:
    """A pod's resolv.conf, as the kubelet writes it for dnsPolicy ClusterFirst."""

    nameserver: str
    search: tuple[str, ...]
    options: tuple[str, ...] = (f"ndots:{NDOTS}",)


def dns_config(namespace: str, allocation: Allocation) -> DnsConfig | None:
    if not allocation.dns_ip:
        return None
    search = (f"{namespace}.svc.{CLUSTER_DOMAIN}", f"svc.{CLUSTER_DOMAIN}", CLUSTER_DOMAIN)
    return DnsConfig(allocation.dns_ip, search)


@dataclass(frozen=True)
class DnsRecords:
    """What the cluster DNS answers: A records (a hosts file) and SRV records."""

    hosts: str  # "<ip> <fqdn>\n" lines
    srv: tuple[str, ...]  # dnsmasq `srv-host=` values

    @property
    def digest(self) -> str:
        text = self.hosts + "\n".join(self.srv)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def dns_records(services: Sequence[model.Service], allocation: Allocation) -> DnsRecords:
    """`<name>.<namespace>.svc.cluster.local` for each Service with an address, and
    `_<port>._<proto>.<name>.<namespace>.svc.cluster.local` SRV records for named ports."""
    hosts, srv = [], []
    for svc in services:
        ip = allocation.ips.get((svc.namespace, svc.name))
        if not ip:
            continue
        fqdn = f"{svc.name}.{svc.namespace}.svc.{CLUSTER_DOMAIN}"
        hosts.append(f"{ip} {fqdn}")
        for p in svc.ports:
            if p.name:
                srv.append(f"_{p.name}._{p.protocol.lower()}.{fqdn},{fqdn},{p.port},0,100")
    return DnsRecords("".join(f"{h}\n" for h in hosts), tuple(srv))
