"""A node's Service machinery: address claims, the rule agent and the DNS agent.

- *Claims* are volumes named after the address they hold (`podyard-claim-ip-10.96.0.12`),
  labelled with the Service that holds it. The engine allows one volume per name, and creating
  an existing name returns the existing volume with its labels, so a claim is a
  compare-and-set: whoever created the volume first holds the address on that engine.
- The *rule agent* (`podyard-<scope>-proxy`) is a host-network container with NET_ADMIN from
  the node agent image; a rule set is copied into it and applied by its `apply` script
  through the engine's exec (`agent_image.py`). It exits when someone flushes the tables.
- The *DNS agent* (`podyard-<scope>-dns`) runs dnsmasq on the bridge network; each node's
  rules send the scope's DNS address there.

Pure parts (names, create bodies) are plain functions; `Agents` does the engine calls.
"""

from __future__ import annotations

import io
import tarfile
import threading
from collections.abc import Mapping
from typing import Any

import docker

from reconciler import errors, labels, observe
from reconciler.engine import agent_image, client
from reconciler.engine.podspec import HARDENING
from reconciler.plan import rules, services

SYSTEM = labels.SYSTEM
PROXY, DNS = "proxy", "dns"
CLAIM_OWNER, CLAIM_KIND = labels.CLAIM_OWNER, labels.CLAIM_KIND
CLAIM_VALUE, CLAIM_PORT = labels.CLAIM_VALUE, labels.CLAIM_PORT
WORKDIR = "/run/podyard"
AGENT_PIDS = 64


def agent_name(scope: str, role: str) -> str:
    return f"podyard-{scope}-{role}"


def claim_volume(claim: observe.Claim) -> str:
    """`podyard-claim-ip-10.96.0.12`, `podyard-claim-nodeport-30080-tcp`: one per address."""
    return f"podyard-claim-{claim.kind}-{claim.value.replace('/', '-').lower()}"


def claim_labels(claim: observe.Claim) -> dict[str, str]:
    return {
        labels.MANAGED: "true",
        labels.SCOPE: claim.scope,
        CLAIM_OWNER: claim.owner,
        CLAIM_KIND: claim.kind,
        CLAIM_VALUE: claim.value,
        CLAIM_PORT: claim.port,
    }


def claim_from_volume(volume: Mapping[str, Any]) -> observe.Claim | None:
    found = volume.get("Labels") or {}
    if not found.get(CLAIM_OWNER) or not found.get(CLAIM_VALUE):
        return None
    return observe.Claim(
        kind=found.get(CLAIM_KIND, ""),
        value=found[CLAIM_VALUE],
        owner=found[CLAIM_OWNER],
        port=found.get(CLAIM_PORT, ""),
        created=observe.parse_time(volume.get("CreatedAt")),
    )


def agent_spec(scope: str, node: str, role: str, image: str) -> dict[str, Any]:
    """The create body of a node agent: the rule agent in the host's network with
    NET_ADMIN; the DNS agent on the bridge, with Docker's defaults less NET_RAW."""
    host_config: dict[str, Any] = {
        **{k: list(v) if isinstance(v, list) else v for k, v in HARDENING.items()},
        "PidsLimit": AGENT_PIDS,
    }
    if role == PROXY:
        host_config.update(NetworkMode="host", CapAdd=["NET_ADMIN"])
    else:
        host_config.update(NetworkMode="default")
    return {
        "Image": image,
        "Entrypoint": ["/bin/sh", f"/agent/{'watch' if role == PROXY else 'dns'}"],
        "Labels": {labels.MANAGED: "true", labels.SCOPE: scope, labels.NODE: node,
                   SYSTEM: role},
        "StopTimeout": 2,
        "HostConfig": host_config,
    }


def agent_from_json(raw: observe.ContainerJSON, digest: str) -> observe.Agent:
    c = observe.container_from_json(raw)
    return observe.Agent(id=c.id, running=c.running, ip=c.ip, digest=digest)


class Agents:
    """One node's claims and agents, through the node's client (thread-safe)."""

    def __init__(self, node: str, api: docker.APIClient, scope: str | None) -> None:
        self.node = node
        self.api = api
        self.scope = scope
        self._lock = threading.Lock()
        self._claims: dict[str, observe.Claim] | None = None  # by volume name
        self._digests: dict[str, str] = {}  # container id -> digest it applied
        self._applied: dict[str, rules.RuleSet] = {}  # the rule agent's id -> its rules
        self._image = ""
        self._subnet: str | None = None

    # -- observing ------------------------------------------------------------------------

    def network(self, raws: list[observe.ContainerJSON]) -> observe.NodeNetwork:
        """Claims (listed once, then kept up to date by this object) and the agents found
        among the node's listed containers."""
        found: dict[str, observe.Agent] = {}
        for raw in raws:
            role = (raw.get("Labels") or {}).get(SYSTEM)
            if role in (PROXY, DNS) and (role not in found or raw.get("State") == "running"):
                digest = self._digest(raw, role) if raw.get("State") == "running" else ""
                found[role] = agent_from_json(raw, digest)
        return observe.NodeNetwork(
            claims=tuple(sorted(self._list_claims().values())),
            proxy=found.get(PROXY),
            dns=found.get(DNS),
            pod_network=self._bridge_subnet(),
        )

    def _bridge_subnet(self) -> str:
        if self._subnet is None:
            with client.engine_errors(self.node, "inspect the bridge network"):
                found = self.api.inspect_network("bridge")
            configs = (found.get("IPAM") or {}).get("Config") or [{}]
            self._subnet = str(configs[0].get("Subnet") or "")
        return self._subnet

    def forget(self) -> None:
        """Read the claims again at the next look (the periodic resync)."""
        with self._lock:
            self._claims = None

    def _list_claims(self) -> dict[str, observe.Claim]:
        with self._lock:
            if self._claims is not None:
                return dict(self._claims)
        with client.engine_errors(self.node, "list claims"):
            listed = self.api.volumes(filters={"label": CLAIM_OWNER})
        claims = {}
        for volume in listed.get("Volumes") or ():
            claim = claim_from_volume(volume)
            if claim is not None:
                claims[volume["Name"]] = claim
        with self._lock:
            self._claims = claims
        return dict(claims)

    def _digest(self, raw: observe.ContainerJSON, role: str) -> str:
        """What a running agent last applied: remembered, or read from the agent once."""
        with self._lock:
            known = self._digests.get(raw["Id"])
        if known is not None:
            return known
        path = f"{WORKDIR}/current/digest" if role == PROXY else f"{WORKDIR}/digest"
        digest = self._read(raw["Id"], path).strip()
        with self._lock:
            self._digests[raw["Id"]] = digest
        return digest

    def _read(self, container: str, path: str) -> str:
        try:
            with client.engine_errors(self.node, "read agent state"):
                stream, _ = self.api.get_archive(container, path)
                data = b"".join(stream)
        except errors.NotFound:
            return ""
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            member = tar.next()
            extracted = tar.extractfile(member) if member else None
            return extracted.read().decode() if extracted else ""

    # -- changing -------------------------------------------------------------------------

    def claim(self, claim: observe.Claim) -> None:
        """Write a claim; Conflict if the engine already holds that address for another."""
        name = claim_volume(claim)
        with client.engine_errors(self.node, "claim address"):
            created = self.api.create_volume(name, labels=claim_labels(claim))
        held = claim_from_volume(created)
        if held is None or (held.owner, held.port) != (claim.owner, claim.port):
            holder = held.owner if held else "a volume podyard did not write"
            raise errors.Conflict(f"{claim.value} is already held by {holder} on {self.node}")
        with self._lock:
            if self._claims is not None:
                self._claims[name] = held

    def release(self, claim: observe.Claim) -> None:
        name = claim_volume(claim)
        try:
            with client.engine_errors(self.node, "release address"):
                self.api.remove_volume(name)
        except errors.NotFound:
            pass
        with self._lock:
            if self._claims is not None:
                self._claims.pop(name, None)

    def program_rules(self, ruleset: rules.RuleSet) -> str:
        """The rule agent running (a new one if it stopped), then the whole set applied."""
        agent = self._ensure(PROXY)
        with self._lock:
            applied = self._applied.get(agent)
            current = self._digests.get(agent)
        # Only the chains that changed, when this agent's rules are known to be `applied`.
        since = applied if applied is not None and applied.digest == current else None
        try:
            self._put(agent, "next", ruleset.files(since))
            self._exec(agent, ["/bin/sh", "/agent/apply"], "apply service rules")
        except errors.PodyardError:
            with self._lock:
                self._applied.pop(agent, None)  # the next attempt sends the whole set
            raise
        with self._lock:
            self._digests[agent] = ruleset.digest
            self._applied = {agent: ruleset}  # one rule agent per node and scope
        return agent

    def program_dns(self, records: services.DnsRecords) -> str:
        """The DNS agent running, then its records replaced."""
        agent = self._ensure(DNS)
        files = {"hosts": records.hosts, "srv.conf": "".join(f"srv-host={s}\n" for s in
                                                              records.srv),
                 "digest": records.digest + "\n"}
        self._put(agent, "next", files)
        self._exec(agent, ["/bin/sh", "/agent/dns-apply"], "update DNS records")
        with self._lock:
            self._digests[agent] = records.digest
        return agent

    def _ensure(self, role: str) -> str:
        """The running agent's id: started if stopped, made anew if missing or stale."""
        scope = self._writing_scope()
        name = agent_name(scope, role)
        image = self._ensure_image()
        try:
            with client.engine_errors(self.node, "inspect agent"):
                found = self.api.inspect_container(name)
        except errors.NotFound:
            found = None
        if found is not None:
            if found["State"]["Running"] and found["Config"]["Image"] == image:
                return str(found["Id"])
            if labels.managed(found["Config"]["Labels"]):
                with client.engine_errors(self.node, "remove stopped agent"):
                    self.api.remove_container(found["Id"], force=True)
        with client.engine_errors(self.node, f"create agent {name}"):
            created = self.api.create_container_from_config(
                agent_spec(scope, self.node, role, image), name
            )
            self.api.start(created["Id"])
        return str(created["Id"])

    def _ensure_image(self) -> str:
        image, context = agent_image.build_context()
        if self._image == image:
            return image
        try:
            with client.engine_errors(self.node, "inspect agent image"):
                self.api.inspect_image(image)
        except errors.NotFound:
            self._build(image, context)
        self._image = image
        return image

    def _build(self, image: str, context: bytes) -> None:
        what = "build the node agent image"
        with client.engine_errors(self.node, what):
            output = list(self.api.build(fileobj=io.BytesIO(context), custom_context=True,
                                         tag=image, rm=True, decode=True))
        failed = [line["error"] for line in output if "error" in line]
        if failed:
            raise errors.Refused(f"{what} on {self.node}: {failed[0]}")

    def _put(self, container: str, directory: str, files: Mapping[str, str]) -> None:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
            for name, text in files.items():
                data = text.encode()
                info = tarfile.TarInfo(f"{directory}/{name}")
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
        with client.engine_errors(self.node, "copy to agent"):
            self.api.put_archive(container, WORKDIR, buffer.getvalue())

    def _exec(self, container: str, command: list[str], what: str) -> None:
        with client.engine_errors(self.node, what):
            started = self.api.exec_create(container, command)
            output = self.api.exec_start(started["Id"])
            code = self.api.exec_inspect(started["Id"]).get("ExitCode")
        if code != 0:
            text = output.decode(errors="replace").strip()[-500:]
            raise errors.Refused(f"{what} on {self.node} failed ({code}): {text}")

    def _writing_scope(self) -> str:
        if self.scope is None:
            raise errors.Refused("a driver without a scope only observes; it changes nothing")
        return self.scope
