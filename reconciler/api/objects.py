"""Every object the API serves, built from one snapshot: the v1 JSON Kubernetes would write.

Pure apart from what a `Builder` remembers between snapshots (when an object without a time
of its own was first seen, each RC's generation, the names of pending pods), so consecutive
snapshots of an unchanged cluster give equal objects and a watch sees no change. Objects
carry no resourceVersion: the store stamps it.

Resource names are the API's plural ones (`RESOURCES`); objects are keyed by (namespace,
name), "" namespace for nodes and namespaces.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import Callable, Iterable
from typing import Any

from reconciler import model, observe, plan
from reconciler.api import meta, pods, snapshot
from reconciler.plan import services

RESOURCES = ("pods", "replicationcontrollers", "services", "endpoints", "nodes", "namespaces",
             "events")
Key = tuple[str, str]
Objects = dict[str, dict[Key, dict[str, Any]]]
MAX_PODS = "110"  # the kubelet's default; podyard sets no limit of its own
RC = "ReplicationController"


def endpoint_address(endpoint: str) -> str:
    """The IP address in `tcp://10.0.0.11:2376`; "" for a socket or a host name."""
    host = urllib.parse.urlsplit(endpoint).hostname or ""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return ""


class Builder:
    """Builds the object set of each snapshot; remembers only what keeps objects stable."""

    def __init__(self, address: Callable[[snapshot.NodeSeen], str] | None = None) -> None:
        self.memory = meta.Memory()
        self.address = address or (lambda n: endpoint_address(n.endpoint))
        self._generations: dict[Key, tuple[tuple[Any, ...], int]] = {}
        self._pending_names: dict[tuple[str, str], list[str]] = {}

    def build(self, snap: snapshot.Snapshot) -> Objects:
        """Pods, RCs, Services, Endpoints, nodes and namespaces (events come from the log)."""
        addresses = {n.name: self.address(n) for n in snap.nodes}
        found: dict[Key, list[observe.ObservedPod]] = {}
        for p in snap.pods:
            found.setdefault(p.key, []).append(p)
        best = {key: plan.rank(group)[-1] for key, group in found.items()}
        objects: Objects = {
            "pods": self._pods(snap, best, addresses),
            "replicationcontrollers": self._controllers(snap, list(best.values())),
            "services": {}, "endpoints": {},
            "nodes": {(
                "", n.name): self._node(snap, n, addresses[n.name]) for n in snap.nodes},
            "namespaces": self._namespaces(snap, list(best.values())),
            "events": {},
        }
        for s in snap.services:
            key = (s.namespace, s.name)
            objects["services"][key] = self._service(snap, s)
            objects["endpoints"][key] = _endpoints(s, objects["services"][key], best.values())
        self.memory.sweep()
        return objects

    # -- pods and RCs ----------------------------------------------------------------------

    def _pods(self, snap: snapshot.Snapshot, best: dict[Key, observe.ObservedPod],
              addresses: dict[str, str]) -> dict[Key, dict[str, Any]]:
        bare = {(p.namespace, p.name): p.template for p in snap.desired.pods}
        rcs = {(rc.namespace, rc.name): rc for rc in snap.desired.controllers}
        result = {}
        for key, p in sorted(best.items()):
            owner_kind, _, owner = p.owner.partition("/")
            rc = rcs.get((p.namespace, owner)) if owner_kind == RC else None
            template = rc.template if rc else bare.get(key) if not p.owner else None
            deleting = (self.memory.first(("deleting", p.uid), snap.time)
                        if p.uid in snap.deleting else None)
            result[key] = pods.pod(p, template, self._uid(snap, p.owner, p.namespace),
                                   addresses.get(p.node, ""), deleting)
        for (namespace, name), owner, template, reason in self._pending(snap):
            since = self.memory.first(("pending", namespace, name), snap.time)
            result[(namespace, name)] = pods.pending(
                namespace, name, owner, self._uid(snap, owner, namespace), template, reason, since)
        return result

    def _pending(
        self, snap: snapshot.Snapshot
    ) -> list[tuple[Key, str, model.PodTemplate, str]]:
        """Pods no node can take. An RC's get a new name in every pass: shown under the
        names they had first, so a watch does not see them come and go."""
        bare = {(p.namespace, p.name): p.template for p in snap.desired.pods}
        waiting: dict[tuple[str, str], list[tuple[str, str]]] = {}
        found = []
        for namespace, name, reason in snap.pending:
            if (namespace, name) in bare:
                found.append(((namespace, name), "", bare[(namespace, name)], reason))
                continue
            for rc in snap.desired.controllers:
                if rc.namespace == namespace and model.generated_name(rc.name, name[-5:]) == name:
                    waiting.setdefault((namespace, rc.name), []).append((name, reason))
        for (namespace, rc_name), named in sorted(waiting.items()):
            rc = next(r for r in snap.desired.controllers
                      if (r.namespace, r.name) == (namespace, rc_name))
            names = self._pending_names.setdefault((namespace, rc_name), [])
            for i, (name, reason) in enumerate(named):
                if i == len(names):
                    names.append(name)
                found.append(((namespace, names[i]), plan.owner_of(rc), rc.template, reason))
        for key in set(self._pending_names) - set(waiting):
            del self._pending_names[key]
        return found

    def _uid(self, snap: snapshot.Snapshot, owner: str, namespace: str) -> str:
        kind, _, name = owner.partition("/")
        return meta.stable_uid(snap.scope, kind, namespace, name) if name else ""

    def _controllers(self, snap: snapshot.Snapshot, seen: list[observe.ObservedPod]
                     ) -> dict[Key, dict[str, Any]]:
        result = {}
        for rc in snap.desired.controllers:
            owner = plan.owner_of(rc)
            mine = [p for p in seen if p.namespace == rc.namespace and p.owner == owner]
            oldest = min([p.created for p in mine] + [snap.time])
            key = (rc.namespace, rc.name)
            spec_key = (rc.replicas, rc.selector, rc.template.hash, rc.labels)
            last_spec, generation = self._generations.get(key, (spec_key, 1))
            generation += last_spec != spec_key
            self._generations[key] = (spec_key, generation)
            ready = sum(p.ready for p in mine)
            status: dict[str, Any] = {"replicas": len(mine), "fullyLabeledReplicas": len(mine)}
            if ready:
                status.update({"readyReplicas": ready, "availableReplicas": ready})
            status["observedGeneration"] = generation
            metadata: dict[str, Any] = {
                "name": rc.name, "namespace": rc.namespace,
                "uid": meta.stable_uid(snap.scope, RC, rc.namespace, rc.name),
                "generation": generation,
                "creationTimestamp": meta.timestamp(self.memory.first(("rc", *key), oldest)),
            }
            if rc.labels:
                metadata["labels"] = dict(rc.labels)
            template: dict[str, Any] = {"creationTimestamp": None}
            if rc.template.labels:
                template["labels"] = dict(rc.template.labels)
            if rc.template.annotations:
                template["annotations"] = dict(rc.template.annotations)
            result[key] = {
                "kind": RC, "apiVersion": "v1", "metadata": metadata,
                "spec": {"replicas": rc.replicas, "selector": dict(rc.selector),
                         "template": {"metadata": template,
                                      "spec": pods.pod_spec(rc.template.spec, "")}},
                "status": status,
            }
        for gone in set(self._generations) - set(result):
            del self._generations[gone]
        return result

    # -- Services --------------------------------------------------------------------------

    def _service(self, snap: snapshot.Snapshot, s: plan.ServiceStatus) -> dict[str, Any]:
        created = s.created or self.memory.first(("service", s.namespace, s.name), snap.time)
        metadata: dict[str, Any] = {
            "name": s.name, "namespace": s.namespace,
            "uid": meta.stable_uid(snap.scope, "Service", s.namespace, s.name),
            "creationTimestamp": meta.timestamp(created),
        }
        if s.labels:
            metadata["labels"] = dict(s.labels)
        if s.problem:
            metadata["annotations"] = {"podyard.io/problem": s.problem}
        ports = []
        for name, number, protocol, node_port, target in s.ports:
            port: dict[str, Any] = {"name": name} if name else {}
            port.update({"protocol": protocol, "port": number,
                         "targetPort": int(target) if target.isdigit() else target})
            if node_port:
                port["nodePort"] = node_port
            ports.append(port)
        spec: dict[str, Any] = {"ports": ports}
        if s.selector:
            spec["selector"] = dict(s.selector)
        if s.cluster_ip:
            spec.update({"clusterIP": s.cluster_ip, "clusterIPs": [s.cluster_ip]})
        spec.update({"type": s.type, "sessionAffinity": "None", "ipFamilies": ["IPv4"],
                     "ipFamilyPolicy": "SingleStack"})
        if s.type == "NodePort":
            spec["externalTrafficPolicy"] = "Cluster"
        return {"kind": "Service", "apiVersion": "v1", "metadata": metadata, "spec": spec,
                "status": {"loadBalancer": {}}}

    # -- nodes and namespaces ----------------------------------------------------------------

    def _node(self, snap: snapshot.Snapshot, n: snapshot.NodeSeen, address: str
              ) -> dict[str, Any]:
        first = n.first_seen or snap.time
        since = self.memory.first(("node", n.name, n.state), first if n.ready else snap.time)
        labels = {"kubernetes.io/hostname": n.name, "kubernetes.io/os": "linux", **dict(n.labels)}
        metadata = {"name": n.name, "uid": meta.stable_uid(snap.scope, "Node", n.name),
                    "creationTimestamp": meta.timestamp(first), "labels": labels}
        spec: dict[str, Any] = {}
        if not n.ready:
            spec["taints"] = [{"key": "node.kubernetes.io/unreachable", "effect": effect,
                               "timeAdded": meta.timestamp(since)}
                              for effect in ("NoSchedule", "NoExecute")]
        ready = {"type": "Ready", "status": "True" if n.ready else "Unknown",
                 "lastHeartbeatTime": meta.timestamp(n.last_answer),
                 "lastTransitionTime": meta.timestamp(since),
                 "reason": "KubeletReady" if n.ready else "NodeStatusUnknown",
                 "message": "the Docker engine is answering" if n.ready else
                 f"the Docker engine stopped answering: {n.last_error or 'no answer'}"}
        addresses = [{"type": "InternalIP", "address": address}] if address else []
        addresses.append({"type": "Hostname", "address": n.name})
        status: dict[str, Any] = {}
        info = n.info
        if info is not None and info.cpus:
            reserved = snap.reserved
            status["capacity"] = {"cpu": str(info.cpus), "memory": f"{info.memory // 1024}Ki",
                                  "pods": MAX_PODS}
            status["allocatable"] = {
                "cpu": meta.cpu(max(0, info.cpus * 1000 - reserved.cpu)),
                "memory": f"{max(0, info.memory - reserved.memory) // 1024}Ki",
                "pods": MAX_PODS,
            }
        status.update({"conditions": [ready], "addresses": addresses,
                       "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
                       "nodeInfo": _node_info(info)})
        return {"kind": "Node", "apiVersion": "v1", "metadata": metadata, "spec": spec,
                "status": status}

    def _namespaces(self, snap: snapshot.Snapshot, seen: list[observe.ObservedPod]
                    ) -> dict[Key, dict[str, Any]]:
        declared = {ns.name: ns for ns in snap.desired.namespaces}
        names = {model.DEFAULT_NAMESPACE, *declared, *(p.namespace for p in seen),
                 *(s.namespace for s in snap.services)}
        result = {}
        for name in sorted(names):
            oldest = min([p.created for p in seen if p.namespace == name] + [snap.time])
            labels = {"kubernetes.io/metadata.name": name}
            if name in declared:
                labels.update(dict(declared[name].labels))
            result[("", name)] = {
                "kind": "Namespace", "apiVersion": "v1",
                "metadata": {"name": name, "uid": meta.stable_uid(snap.scope, "Namespace", name),
                             "creationTimestamp": meta.timestamp(
                                 self.memory.first(("namespace", name), oldest)),
                             "labels": labels},
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            }
        return result


def _node_info(info: observe.NodeInfo | None) -> dict[str, str]:
    i = info or observe.NodeInfo()
    return {
        "machineID": "", "systemUUID": "", "bootID": "",
        "kernelVersion": i.kernel, "osImage": i.os,
        "containerRuntimeVersion": f"docker://{i.engine_version}" if i.engine_version else "",
        "kubeletVersion": meta.VERSION, "kubeProxyVersion": meta.VERSION,
        "operatingSystem": "linux", "architecture": "",
    }


def _endpoints(s: plan.ServiceStatus, service: dict[str, Any],
               seen: Iterable[observe.ObservedPod]) -> dict[str, Any]:
    """The Service's Ready endpoints, repacked as the API server does: addresses serving the
    same ports share a subset."""
    by_ip = {p.ip: p for p in seen if p.ip}
    endpoints = dict(s.endpoints)
    ports_of: dict[str, set[tuple[str, int, str]]] = {}
    for name, number, protocol, _node_port, target in s.ports:
        key = services.port_key(model.ServicePort(number, target, protocol, name))
        for endpoint in endpoints.get(key, ()):
            ip, _, port = endpoint.rpartition(":")
            ports_of.setdefault(ip, set()).add((name, int(port), protocol))
    subsets: dict[frozenset[tuple[str, int, str]], list[str]] = {}
    for ip, ports in ports_of.items():
        subsets.setdefault(frozenset(ports), []).append(ip)
    packed = []
    for served, ips in sorted(subsets.items(), key=lambda item: sorted(item[1])):
        addresses = []
        for ip in sorted(ips, key=_ip_order):
            address: dict[str, Any] = {"ip": ip}
            p = by_ip.get(ip)
            if p is not None:
                address["nodeName"] = p.node
                address["targetRef"] = {"kind": "Pod", "namespace": p.namespace,
                                        "name": p.name, "uid": meta.pod_uid(p.uid)}
            addresses.append(address)
        packed.append({"addresses": addresses, "ports": [
            ({"name": name} if name else {}) | {"port": port, "protocol": protocol}
            for name, port, protocol in sorted(served)]})
    metadata = {k: v for k, v in service["metadata"].items() if k != "annotations"}
    metadata["uid"] = meta.stable_uid(service["metadata"]["uid"], "Endpoints")
    doc: dict[str, Any] = {"kind": "Endpoints", "apiVersion": "v1", "metadata": metadata}
    if packed:
        doc["subsets"] = packed
    return doc


def _ip_order(ip: str) -> tuple[int, str]:
    try:
        return (int(ipaddress.ip_address(ip)), ip)
    except ValueError:
        return (0, ip)
