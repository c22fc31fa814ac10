"""The Docker engine of one node, behind the small `Driver` protocol the executor uses.

It sends what `podspec` builds (a pod is a pause container owning the network and IPC
namespaces, app containers joining it) and reads containers back for `observe.py`. It makes no
decisions (that is `plan/`) and never sleeps or retries (that is `control/`). Only containers
and volumes carrying podyard's ownership label are ever stopped or removed.

While an event stream of the node is open (`watch_events`), `list_pods` reads from a
`ContainerCache`, as client-go's informers do: a full list once the stream is open, then only
the containers that events (or the driver's own actions) touched, one filtered list call for
all of them. Without a stream every `list_pods` is a full list.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import docker

from reconciler import errors, labels, observe, plan
from reconciler.cluster import config
from reconciler.engine import agents, cache, client, events, images, pause, podspec

PAUSE_IMAGE = pause.DEFAULT_IMAGE  # the CLI's --pause-image overrides it
REFRESH_MAX = 200  # more changed containers than this: one full list is cheaper
PROBE_TIMEOUT = 1.0  # seconds a liveness probe waits: a live engine answers in milliseconds


class Driver(Protocol):
    """What the executor, the loop and the CLI need from one node's engine."""

    node: str
    scope: str | None
    pause_image: str

    def probe(self) -> None: ...
    def info(self) -> observe.NodeInfo: ...
    def interrupt_events(self) -> None: ...
    def list_pods(self) -> tuple[observe.ObservedPod, ...]: ...
    def network(self) -> observe.NodeNetwork: ...
    def claim(self, claim: observe.Claim) -> None: ...
    def release(self, claim: observe.Claim) -> None: ...
    def program_rules(self, ruleset: plan.RuleSet) -> None: ...
    def program_dns(self, records: plan.DnsRecords) -> None: ...
    def create_pod(self, identity: plan.PodIdentity) -> None: ...
    def restart_container(self, action: plan.RestartContainer) -> None: ...
    def delete_pod(self, action: plan.DeletePod) -> None: ...
    def ensure_pause_image(self) -> str: ...
    def inspect(self, container_id: str) -> dict[str, Any]: ...
    def logs(
        self, container_id: str, *, follow: bool = False, tail: int | None = None
    ) -> Iterator[bytes]: ...
    def pod_events(self, uid: str, since: float) -> list[tuple[float, str]]: ...
    def watch_events(self, stop: threading.Event | None = None,
                     on_open: Callable[[], None] | None = None) -> Iterator[dict[str, Any]]: ...
    def invalidate_cache(self) -> None: ...
    def close(self) -> None: ...


def connect(
    cluster: config.Cluster,
    *,
    parallelism: int = 8,
    pause_image: str = PAUSE_IMAGE,
    scope: str | None = labels.DEFAULT_SCOPE,
) -> dict[str, Driver]:
    """One driver per node of the cluster, by node name; no engine is called yet.

    A driver sees and changes only the pods of its `scope`; `None` sees every scope (for
    looking, never for reconciling).
    """
    drivers: dict[str, Driver] = {}
    for n in cluster.nodes:
        api, probe_api = (
            _client(cluster, n, parallelism, timeout)
            for timeout in (client.DEFAULT_TIMEOUT, PROBE_TIMEOUT)
        )
        drivers[n.name] = DockerDriver(
            n.name, api, pause_image=pause_image, scope=scope, probe_api=probe_api
        )
    return drivers


def _client(
    cluster: config.Cluster, n: config.NodeConfig, parallelism: int, timeout: float
) -> docker.APIClient:
    if not n.endpoint.startswith("tcp://"):
        return client.local_api(n.endpoint, parallelism=parallelism, timeout=timeout)
    if cluster.tls is None:
        raise errors.ClusterError(f"node {n.name}: tcp:// endpoints need TLS files")
    return client.remote_api(
        n.name, n.endpoint, ca=cluster.tls.ca, cert=cluster.tls.cert, key=cluster.tls.key,
        parallelism=parallelism, timeout=timeout,
    )


class DockerDriver:
    """One node: its name and one low-level client, shared by every worker thread."""

    def __init__(
        self,
        node: str,
        api: docker.APIClient,
        *,
        pause_image: str = PAUSE_IMAGE,
        scope: str | None = labels.DEFAULT_SCOPE,
        probe_api: docker.APIClient | None = None,
    ) -> None:
        self.node = node
        self.api = api
        self.probe_api = probe_api or api  # a short timeout: a dead host must not hang it
        self.pause_image = pause_image
        self.scope = scope
        self.images = images.Images(node, api, pause_image)
        self.cache = cache.ContainerCache()
        # Exit state by container id: podyard never restarts a container in place (it makes
        # a new one), so an exited container's exit code and times never change.
        self._exits: dict[str, dict[str, Any]] = {}
        self._interrupt = threading.Event()
        # The pods of the last cached list, by the cache epoch they were read in.
        self._pods: tuple[int, tuple[observe.ObservedPod, ...]] | None = None
        self.agents = agents.Agents(node, api, scope)
        self._raws: list[observe.ContainerJSON] = []  # the last list_pods' containers

    @classmethod
    def local(
        cls,
        node: str | None = None,
        *,
        base_url: str = client.LOCAL_ENDPOINT,
        parallelism: int = 8,
        pause_image: str = PAUSE_IMAGE,
        timeout: float = 60,
        scope: str | None = labels.DEFAULT_SCOPE,
    ) -> DockerDriver:
        """The engine on this host, named after it; makes no call to the engine yet."""
        api = client.local_api(base_url, parallelism=parallelism, timeout=timeout)
        probe_api = client.local_api(base_url, parallelism=1, timeout=PROBE_TIMEOUT)
        return cls(node or socket.gethostname(), api, pause_image=pause_image, scope=scope,
                   probe_api=probe_api)

    def close(self) -> None:
        """Release the connection pools."""
        self.api.close()
        if self.probe_api is not self.api:
            self.probe_api.close()

    # -- liveness -------------------------------------------------------------------------

    def probe(self) -> None:
        """The engine's `/_ping`, waiting at most PROBE_TIMEOUT; Unreachable when it fails."""
        with client.engine_errors(self.node, "ping"):
            self.probe_api.ping()

    def info(self) -> observe.NodeInfo:
        """The node's capacity and versions, from the engine's `/info`."""
        with client.engine_errors(self.node, "read engine info"):
            return observe.NodeInfo.from_json(self.probe_api.info())

    def interrupt_events(self) -> None:
        """End the open event stream, if any: its node stopped answering, and a stream to a
        vanished host would otherwise wait forever (it has no read timeout)."""
        self._interrupt.set()

    # -- observing --------------------------------------------------------------------------

    def list_pods(self) -> tuple[observe.ObservedPod, ...]:
        """Every podyard pod on the node.

        Without an event stream: one list call, plus an inspect per newly exited container.
        With one: from the cache, after one list call of the containers that changed (no
        call when nothing did).
        """
        mine = labels.ownership_filter(self.scope)
        if not self.cache.live:
            self._raws = self._list({"label": mine})
            return observe.group_pods(self.node, self._raws)
        token, ids, full = self.cache.pending()
        if not ids and not full and self._pods is not None and self._pods[0] == token:
            return self._pods[1]  # nothing changed since the last list: nothing to decode
        died = {cid for cid, event in ids.items() if event in ("die", "oom")}
        if full or len(ids) > REFRESH_MAX:
            self.cache.replace_all(self._list({"label": mine}, died=died), token)
        elif ids:
            found = self._list({"id": sorted(ids), "label": mine}, died=died, prune=False)
            for gone in ids.keys() - {raw["Id"] for raw in found}:
                self._exits.pop(gone, None)
            self.cache.apply_refresh(found, ids, token)
        self._raws = self.cache.snapshot()
        pods = observe.group_pods(self.node, self._raws)
        self._pods = (token, pods)
        return pods

    def network(self) -> observe.NodeNetwork:
        """The node's claims and agents, as of the last `list_pods` (call that first)."""
        return self.agents.network(self._raws)

    def claim(self, claim: observe.Claim) -> None:
        self.agents.claim(claim)

    def release(self, claim: observe.Claim) -> None:
        self.agents.release(claim)

    def program_rules(self, ruleset: plan.RuleSet) -> None:
        self.cache.mark_dirty(self.agents.program_rules(ruleset))

    def program_dns(self, records: plan.DnsRecords) -> None:
        self.cache.mark_dirty(self.agents.program_dns(records))

    def invalidate_cache(self) -> None:
        """Make the next `list_pods` a full list (the periodic resync)."""
        self.cache.invalidate()
        self.agents.forget()

    def _list(
        self, filters: dict[str, Any], *, died: set[str] | None = None, prune: bool = True
    ) -> list[observe.ContainerJSON]:
        """One list call, exit states merged in.

        `died`: ids the engine said died, each confirmed by an inspect. `prune` (a full
        list) forgets the exit states of the containers it does not return.
        """
        with client.engine_errors(self.node, "list containers"):
            raws: list[observe.ContainerJSON] = self.api.containers(all=True, filters=filters)
        merged = [self._with_exit_state(raw, raw["Id"] in (died or ())) for raw in raws]
        if prune:
            listed = {raw["Id"] for raw in raws}
            for gone in set(self._exits) - listed:
                self._exits.pop(gone, None)
        return [raw for raw in merged if raw is not None]

    def _with_exit_state(
        self, raw: observe.ContainerJSON, died: bool = False
    ) -> observe.ContainerJSON | None:
        """The listed container with its exit code and times when it has exited.

        The list has no exit code or times; only exited containers need them (backoff).
        `died`: the engine sent `die` for it, and sends it before its list shows the exit,
        so the container's own state (inspect) is asked.
        """
        listed_exited = raw.get("State") in ("exited", "dead")
        if not listed_exited and not died:
            return raw
        exit_state = self._exits.get(raw["Id"]) if listed_exited else None
        if exit_state is None:
            try:
                state = self.inspect(raw["Id"])["State"]
            except errors.NotFound:
                return None  # removed since the list: it is not there
            raw["State"] = str(state.get("Status") or raw.get("State", ""))
            if raw["State"] not in ("exited", "dead"):
                return raw  # started again since
            exit_state = {
                "ExitCode": int(state.get("ExitCode", 0)),
                "StartedAt": state.get("StartedAt", ""),
                "FinishedAt": state.get("FinishedAt", ""),
                "OOMKilled": bool(state.get("OOMKilled", False)),
            }
            self._exits[raw["Id"]] = exit_state
        raw.update(exit_state)  # type: ignore[typeddict-item]
        return raw

    def inspect(self, container_id: str) -> dict[str, Any]:
        """The engine's full JSON for one container (`describe`, exit states)."""
        with client.engine_errors(self.node, "inspect container"):
            result: dict[str, Any] = self.api.inspect_container(container_id)
        return result

    def logs(
        self, container_id: str, *, follow: bool = False, tail: int | None = None
    ) -> Iterator[bytes]:
        """A container's output; with `follow`, chunks as they are written."""
        tail_arg: int | str = "all" if tail is None else tail
        with client.engine_errors(self.node, "read logs"):
            if not follow:
                yield self.api.logs(container_id, tail=tail_arg)
                return
            yield from self.api.logs(container_id, stream=True, follow=True, tail=tail_arg)

    def pod_events(self, uid: str, since: float) -> list[tuple[float, str]]:
        """One pod's container history, oldest first, as (Unix time, message)."""
        return events.pod_history(self.node, self.api, uid, since)

    def watch_events(
        self, stop: threading.Event | None = None, on_open: Callable[[], None] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Events about this driver's containers until `stop` or `interrupt_events`; the cache
        is live meanwhile."""
        self._interrupt.clear()
        return events.stream(
            self.node, self.api, self.scope, self.cache, (stop, self._interrupt), on_open
        )

    def ensure_pause_image(self) -> str:
        """The pause image, present on the node (pulled or built)."""
        return self.images.ensure_pause()

    # -- changing -------------------------------------------------------------------------

    def create_pod(self, identity: plan.PodIdentity) -> None:
        """Sandbox first, then volumes, then each app container in order.

        Images are checked before anything is created, so a missing image leaves nothing
        behind. A failure later leaves a partial pod, which the next plan deletes (no running
        sandbox) or heals (a missing app container); the error is raised either way.
        """
        for c in identity.template.spec.containers:
            self.images.ensure(c.image, c.image_pull_policy)
        specs = podspec.pod(identity, self.node, self._writing_scope(), self.ensure_pause_image())
        self._run(specs.pause)
        self._create_volumes(specs.volumes)
        for app in specs.apps:
            self._run(app)

    def restart_container(self, action: plan.RestartContainer) -> None:
        """Replace one app container: remove the old one, start a new one in the sandbox."""
        spec = next(c for c in action.pod.template.spec.containers if c.name == action.container)
        self.images.ensure(spec.image, spec.image_pull_policy)
        if action.old_id:
            self._remove(action.old_id, force=True)
        scope = self._writing_scope()
        self._create_volumes(podspec.volumes(action.pod, self.node, scope))
        self._run(podspec.app(
            action.pod, self.node, scope, spec, restarts=action.restarts, streak=action.streak
        ))

    def delete_pod(self, action: plan.DeletePod) -> None:
        """Stop app containers gracefully (in parallel), then the sandbox, then volumes.

        The pod's containers are listed again by uid: that finds a container started after
        the plan was made, and the grace period each was created with.
        """
        with client.engine_errors(self.node, "list pod containers"):
            found = self.api.containers(all=True, filters={"label": labels.pod_filter(action.uid)})
        apps = [r for r in found if r["Labels"].get(labels.CONTAINER) != labels.PAUSE]
        sandboxes = [r for r in found if r["Labels"].get(labels.CONTAINER) == labels.PAUSE]
        if len(apps) > 1:
            with ThreadPoolExecutor(len(apps)) as pool:
                list(pool.map(self._stop_and_remove, apps))
        else:
            for raw in apps:
                self._stop_and_remove(raw)
        for raw in sandboxes:
            self._remove(raw["Id"], force=True)  # the sandbox holds nothing worth a grace period
        self._remove_volumes(action.uid)

    # -- building blocks ----------------------------------------------------------------------

    def _writing_scope(self) -> str:
        """The scope new containers are stamped with; a driver that sees every scope writes none."""
        if self.scope is None:
            raise errors.Refused("a driver without a scope only observes; it creates nothing")
        return self.scope

    def _run(self, spec: podspec.ContainerSpec) -> str:
        """Create and start one container; a name left by an interrupted attempt is replaced."""
        try:
            created = self._create(spec)
        except errors.Conflict:
            leftover = self._owned(spec.name)
            if leftover is None:
                raise
            self._remove(leftover, force=True)
            created = self._create(spec)
        with client.engine_errors(self.node, f"start container {spec.name}"):
            self.api.start(created)
        self.cache.mark_dirty(created)
        return created

    def _create(self, spec: podspec.ContainerSpec) -> str:
        try:
            with client.engine_errors(self.node, f"create container {spec.name}"):
                result = self.api.create_container_from_config(dict(spec.config), spec.name)
        except errors.NotFound:
            self.images.forget(str(spec.config["Image"]))  # removed behind our back
            raise
        created = str(result["Id"])
        self.cache.mark_dirty(created)  # the next pass may come before the engine's event
        return created

    def _owned(self, name: str) -> str | None:
        """The id of the podyard container of that name; None if there is none."""
        try:
            found = self.inspect(name)
        except errors.PodyardError:
            return None
        return str(found["Id"]) if labels.managed(found["Config"]["Labels"]) else None

    def _create_volumes(self, volumes: tuple[podspec.VolumeSpec, ...]) -> None:
        # Created explicitly (not implicitly by a bind) so they carry podyard's labels.
        for volume in volumes:
            with client.engine_errors(self.node, "create volume"):
                self.api.create_volume(volume.name, labels=dict(volume.labels))

    def _remove_volumes(self, uid: str) -> None:
        with client.engine_errors(self.node, "list volumes"):
            listed = self.api.volumes(filters={"label": labels.pod_filter(uid)})
        for volume in listed.get("Volumes") or ():
            self._ignore_absent("remove volume", self.api.remove_volume, volume["Name"])

    def _stop_and_remove(self, raw: Mapping[str, Any]) -> None:
        grace = labels.decode_pod(raw["Labels"], self.node).grace
        if raw.get("State") in ("running", "restarting", "paused"):
            self._ignore_absent("stop container", self.api.stop, raw["Id"], timeout=grace)
        self._remove(raw["Id"], force=True)

    def _remove(self, container_id: str, *, force: bool) -> None:
        try:
            self._ignore_absent(
                "remove container", self.api.remove_container, container_id, force=force
            )
        finally:
            self.cache.mark_dirty(container_id)

    def _ignore_absent(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        # Deleting something already gone is success: another pass or a user got there first.
        try:
            with client.engine_errors(self.node, what):
                fn(*args, **kwargs)
        except errors.NotFound:
            return
