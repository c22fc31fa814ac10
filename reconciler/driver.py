"""The Docker engine of one node, behind the small `Driver` protocol the executor uses.

The only module that imports `docker`. It turns plan actions into engine calls (pods built
as the kubelet builds them on Docker: a pause container owning the network and IPC
namespaces, app containers joining it) and reads containers back for `observe.py`. It maps
every engine failure to `errors.TemporaryError` or `errors.EngineError` in one place. It
makes no decisions (that is `plan.py`) and never sleeps or retries (that is the loop's job).
Only containers and volumes carrying `observe.MANAGED` are ever stopped or removed.

While an event stream of the node is open (`watch_events`), `list_pods` reads from a
`ContainerCache`, as client-go's informers do: a full list once the stream is open, then only
the containers that events (or the driver's own actions) touched, one filtered list call for
all of them. Without a stream every `list_pods` is a full list.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import Any, Protocol, TypeVar

import docker
import docker.errors
import docker.tls
import requests

from reconciler import cache, errors, model, nodes, observe, pause, plan

PAUSE_IMAGE = pause.DEFAULT_IMAGE  # the CLI's --pause-image overrides it
API_VERSION = "1.41"  # Docker 20.10; newer engines accept it, and no call is made to ask
GRACE = observe.PREFIX + "grace-period"  # terminationGracePeriodSeconds, read back on delete
PAUSE_STOP_SECONDS = 1  # the sandbox exits on SIGTERM; never let it hold up a deletion
PULL_REUSE_SECONDS = 30.0  # an `Always` pull this recent counts for the pods that follow
EVENTS = ("create", "start", "die", "oom", "destroy")  # what makes the loop look again
REFRESH_MAX = 200  # more changed containers than this: one full list is cheaper
HISTORY = ("create", "start", "kill", "die", "oom", "destroy")  # what `describe` shows

T = TypeVar("T")


class Driver(Protocol):
    """What the executor, the loop and the CLI need from one node's engine."""

    node: str

    def list_pods(self) -> tuple[observe.ObservedPod, ...]: ...
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
    cluster: nodes.Cluster,
    *,
    parallelism: int = 8,
    pause_image: str = PAUSE_IMAGE,
    scope: str | None = observe.DEFAULT_SCOPE,
) -> dict[str, Driver]:
    """One driver per node of the cluster, by node name; no engine is called yet.

    A driver sees and changes only the pods of its `scope`; `None` sees every scope (for
    looking, never for reconciling).
    """
    drivers: dict[str, Driver] = {}
    for n in cluster.nodes:
        if n.endpoint.startswith("tcp://"):
            if cluster.tls is None:
                raise errors.ClusterError(f"node {n.name}: tcp:// endpoints need TLS files")
            drivers[n.name] = DockerDriver.remote(
                n.name, n.endpoint, ca=cluster.tls.ca, cert=cluster.tls.cert,
                key=cluster.tls.key, parallelism=parallelism, pause_image=pause_image,
                scope=scope,
            )
        else:
            drivers[n.name] = DockerDriver.local(
                n.name, base_url=n.endpoint, parallelism=parallelism, pause_image=pause_image,
                scope=scope,
            )
    return drivers


def map_error(e: Exception, what: str) -> errors.PodyardError:
    """The podyard error for an engine failure: retry later, or a refusal retrying won't fix."""
    if isinstance(e, docker.errors.APIError):
        status = e.status_code or 0
        detail = e.explanation or str(e)
        message = f"{what}: {detail}"
        if status == 409 or status >= 500 or status == 0:
            return errors.TemporaryError(message)
        return errors.EngineError(message)
    if isinstance(e, requests.exceptions.RequestException | ConnectionError | TimeoutError):
        return errors.TemporaryError(f"{what}: engine unreachable ({e})", delay=5.0)
    return errors.EngineError(f"{what}: {e}")


@contextlib.contextmanager
def engine_errors(node: str, what: str) -> Iterator[None]:
    """Translate engine exceptions raised inside the block, keeping the cause."""
    try:
        yield
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as e:
        raise map_error(e, f"{what} on {node}") from e


def _absent(e: docker.errors.APIError) -> bool:
    return bool(e.status_code == 404)


def container_name(identity: plan.PodIdentity, container: str, attempt: int) -> str:
    """The kubelet's naming convention, so `docker ps` reads like `crictl ps`."""
    pod = identity
    return f"k8s_{container}_{pod.name}_{pod.namespace}_{pod.uid}_{attempt}"


def volume_name(uid: str, volume: str) -> str:
    """An emptyDir's Docker volume: private to one pod, removed with it."""
    return f"podyard_{uid}_{volume}"


def pod_labels(
    identity: plan.PodIdentity, node: str, container: str, scope: str
) -> dict[str, str]:
    """The labels every container of the pod carries: podyard's whole persistent state."""
    spec = identity.template.spec
    return {
        observe.MANAGED: "true",
        observe.SCOPE: scope,
        observe.NAMESPACE: identity.namespace,
        observe.POD: identity.name,
        observe.UID: identity.uid,
        observe.CONTAINER: container,
        observe.OWNER: identity.owner,
        observe.TEMPLATE_HASH: identity.template_hash,
        observe.REVISION: identity.revision,
        observe.POD_LABELS: json.dumps(dict(identity.template.labels), sort_keys=True),
        observe.NODE: node,
        GRACE: str(spec.termination_grace_period_seconds),
    }


def spec_hash(container: model.Container) -> str:
    """A per-container content hash, stamped as `observe.SPEC`."""
    canonical = json.dumps(asdict(container), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:10]


class DockerDriver:
    """One node: its name and one low-level client, shared by every worker thread."""

    def __init__(
        self,
        node: str,
        api: docker.APIClient,
        *,
        pause_image: str = pause.DEFAULT_IMAGE,
        scope: str | None = observe.DEFAULT_SCOPE,
    ) -> None:
        self.node = node
        self.api = api
        self.pause_image = pause_image
        self.scope = scope
        self._images: set[str] = set()  # images known present: one inspect per image, not per pod
        self._pulled: dict[str, float] = {}
        self._lock = threading.Lock()
        self._pause_ready = False
        # Exit state by container id: podyard never restarts a container in place (it makes
        # a new one), so an exited container's exit code and times never change.
        self._exits: dict[str, dict[str, Any]] = {}
        self.cache = cache.ContainerCache()

    @classmethod
    def local(
        cls,
        node: str | None = None,
        *,
        base_url: str = "unix:///var/run/docker.sock",
        parallelism: int = 8,
        pause_image: str = pause.DEFAULT_IMAGE,
        timeout: float = 60,
        scope: str | None = observe.DEFAULT_SCOPE,
    ) -> DockerDriver:
        """The engine on this host, named after it; makes no call to the engine yet."""
        api = docker.APIClient(
            base_url=base_url,
            version=API_VERSION,
            timeout=timeout,
            max_pool_size=parallelism + 2,  # the default 10 would serialise wider pools
        )
        return cls(node or socket.gethostname(), api, pause_image=pause_image, scope=scope)

    @classmethod
    def remote(
        cls,
        node: str,
        endpoint: str,
        *,
        ca: str,
        cert: str,
        key: str,
        parallelism: int = 8,
        pause_image: str = pause.DEFAULT_IMAGE,
        timeout: float = 60,
        scope: str | None = observe.DEFAULT_SCOPE,
    ) -> DockerDriver:
        """A node's engine over mutual TLS, e.g. endpoint `tcp://node1:2376`."""
        with engine_errors(node, "configure TLS"):
            tls = docker.tls.TLSConfig(client_cert=(cert, key), ca_cert=ca, verify=True)
            api = docker.APIClient(
                base_url=endpoint,
                version=API_VERSION,
                timeout=timeout,
                tls=tls,
                max_pool_size=parallelism + 2,
            )
            # The cluster CA is the only trust for a node: REQUESTS_CA_BUNDLE and proxy
            # settings in the environment must not silently replace it.
            api.trust_env = False
        return cls(node, api, pause_image=pause_image, scope=scope)

    def close(self) -> None:
        """Release the connection pool."""
        self.api.close()

    def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with engine_errors(self.node, what):
            return fn(*args, **kwargs)

    # -- observing --------------------------------------------------------------------------

    def list_pods(self) -> tuple[observe.ObservedPod, ...]:
        """Every podyard pod on the node.

        Without an event stream: one list call, plus an inspect per newly exited container.
        With one: from the cache, after one list call of the containers that changed (no
        call when nothing did).
        """
        if not self.cache.live:
            return observe.group_pods(self.node, self._list({"label": self._mine()}))
        token, ids, full = self.cache.pending()
        died = {cid for cid, event in ids.items() if event in ("die", "oom")}
        if full or len(ids) > REFRESH_MAX:
            self.cache.replace_all(self._list({"label": self._mine()}, died=died), token)
        elif ids:
            found = self._list({"id": sorted(ids), "label": self._mine()}, died=died,
                               prune=False)
            for gone in ids.keys() - {raw["Id"] for raw in found}:
                self._exits.pop(gone, None)
            self.cache.apply_refresh(found, ids, token)
        return observe.group_pods(self.node, self.cache.snapshot())

    def invalidate_cache(self) -> None:
        """Make the next `list_pods` a full list (the periodic resync)."""
        self.cache.invalidate()

    def _list(
        self, filters: dict[str, Any], *, died: set[str] | None = None, prune: bool = True
    ) -> list[observe.ContainerJSON]:
        """One list call, exit states merged in.

        `died`: ids the engine said died, each confirmed by an inspect. `prune` (a full
        list) forgets the exit states of the containers it does not return.
        """
        raws: list[observe.ContainerJSON] = self._call(
            "list containers", self.api.containers, all=True, filters=filters
        )
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
                state = self._call("inspect container", self.api.inspect_container,
                                   raw["Id"])["State"]
            except errors.EngineError as e:
                if isinstance(e.__cause__, docker.errors.APIError) and _absent(e.__cause__):
                    return None  # removed since the list: it is not there
                raise
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
        """The engine's full JSON for one container, for `describe`."""
        result: dict[str, Any] = self._call(
            "inspect container", self.api.inspect_container, container_id
        )
        return result

    def logs(
        self, container_id: str, *, follow: bool = False, tail: int | None = None
    ) -> Iterator[bytes]:
        """A container's output; with `follow`, chunks as they are written."""
        tail_arg: int | str = "all" if tail is None else tail
        with engine_errors(self.node, "read logs"):
            if not follow:
                yield self.api.logs(container_id, tail=tail_arg)
                return
            yield from self.api.logs(container_id, stream=True, follow=True, tail=tail_arg)

    def pod_events(self, uid: str, since: float) -> list[tuple[float, str]]:
        """One pod's container history, oldest first, as (Unix time, message) for `describe`."""
        filters = {
            "type": "container",
            "label": [f"{observe.MANAGED}=true", f"{observe.UID}={uid}"],
            "event": list(HISTORY),
        }
        with engine_errors(self.node, "read events"):
            found = list(self.api.events(
                since=int(since), until=int(time.time()) + 1, filters=filters, decode=True
            ))
        return [(e.get("timeNano", 0) / 1e9, event_message(e)) for e in found]

    def watch_events(
        self, stop: threading.Event | None = None, on_open: Callable[[], None] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Events about podyard containers from now on, until `stop` is set or the engine goes.

        While the stream is open `list_pods` serves from the cache, each event marking its
        container for a refresh. `on_open` is called once the engine has answered the
        subscription: a list made after that misses no change. The stream blocks between
        events, so a helper thread closes it when `stop` is set.
        """
        stream = self._call(
            "watch events", self.api.events, filters=self._event_filters(), decode=True
        )
        self.cache.opened()
        done = threading.Event()
        if stop is not None:
            threading.Thread(
                target=_close_when, args=(stream, stop, done), daemon=True, name="events-stop"
            ).start()
        try:
            if on_open is not None:
                on_open()
            with engine_errors(self.node, "watch events"):
                for event in stream:
                    if stop is not None and stop.is_set():
                        return
                    if event.get("id"):
                        self.cache.mark_dirty(str(event["id"]), event=str(event.get("Action")))
                    yield event
        finally:
            self.cache.closed()
            done.set()
            with contextlib.suppress(Exception):
                stream.close()

    def _mine(self) -> list[str]:
        """The label filter for this driver's pods: podyard's, and of its scope."""
        mine = [f"{observe.MANAGED}=true"]
        return [*mine, f"{observe.SCOPE}={self.scope}"] if self.scope else mine

    def _writing_scope(self) -> str:
        """The scope new containers are stamped with; a driver that sees every scope writes none."""
        if self.scope is None:
            raise errors.EngineError("a driver without a scope only observes; it creates nothing")
        return self.scope

    def _event_filters(self) -> dict[str, Any]:
        return {"type": "container", "label": self._mine(), "event": list(EVENTS)}

    # -- images -----------------------------------------------------------------------------

    def ensure_pause_image(self) -> str:
        """The pause image: pulled when it names a registry (as the cluster's does), else
        built on the node from the controller's busybox when missing."""
        with self._lock:
            if self._pause_ready:
                return self.pause_image
            if not self._image_present(self.pause_image):
                if _names_registry(self.pause_image):
                    self._pull(self.pause_image)
                else:
                    self._build_pause_image()
            self._pause_ready = True
            return self.pause_image

    def _build_pause_image(self) -> None:
        context = pause.build_context()
        output = self._call(
            "build the pause image",
            self.api.build,
            fileobj=io.BytesIO(context),
            custom_context=True,
            tag=self.pause_image,
            rm=True,
            decode=True,
        )
        with engine_errors(self.node, "build the pause image"):
            for line in output:
                if "error" in line:
                    raise errors.EngineError(
                        f"build the pause image on {self.node}: {line['error']}"
                    )
        self._images.add(self.pause_image)

    def _image_present(self, image: str) -> bool:
        if image in self._images:
            return True
        try:
            self._call("inspect image", self.api.inspect_image, image)
        except errors.EngineError as e:
            if isinstance(e.__cause__, docker.errors.APIError) and _absent(e.__cause__):
                return False
            raise
        self._images.add(image)
        return True

    def ensure_image(self, image: str, policy: str) -> None:
        """Apply `imagePullPolicy`: pull when Always (or when missing), refuse when Never."""
        if policy == "Always":
            with self._lock:
                if time.monotonic() - self._pulled.get(image, -1e9) < PULL_REUSE_SECONDS:
                    return
            self._pull(image)
            with self._lock:
                self._pulled[image] = time.monotonic()
            return
        if self._image_present(image):
            return
        if policy == "Never":
            raise errors.EngineError(
                f"image {image} is not present on {self.node} and imagePullPolicy is Never"
            )
        self._pull(image)

    def _pull(self, image: str) -> None:
        repository, tag = _split_image(image)
        self._call(f"pull image {image}", self.api.pull, repository, tag=tag)
        self._images.add(image)

    def forget_image(self, image: str) -> None:
        """Drop an image from the presence cache (it was removed behind our back)."""
        with self._lock:
            self._images.discard(image)

    # -- changing -------------------------------------------------------------------------

    def create_pod(self, identity: plan.PodIdentity) -> None:
        """Sandbox first, then volumes, then each app container in order.

        Images are checked before anything is created, so a missing image leaves nothing
        behind. A failure later leaves a partial pod, which the next plan deletes (no running
        sandbox) or heals (a missing app container); the error is raised either way.
        """
        spec = identity.template.spec
        for c in spec.containers:
            self.ensure_image(c.image, c.image_pull_policy)
        pause_id = self._create_pause(identity)
        self._ensure_volumes(identity)
        for c in spec.containers:
            self._start_app(identity, pause_id, c, restarts=0, streak=0)

    def restart_container(self, action: plan.RestartContainer) -> None:
        """Replace one app container: remove the old one, start a new one in the sandbox."""
        spec = next(c for c in action.pod.template.spec.containers if c.name == action.container)
        self.ensure_image(spec.image, spec.image_pull_policy)
        if action.old_id:
            self._remove(action.old_id, force=True)
        self._ensure_volumes(action.pod)
        self._start_app(
            action.pod, action.pause_id, spec, restarts=action.restarts, streak=action.streak
        )

    def delete_pod(self, action: plan.DeletePod) -> None:
        """Stop app containers gracefully (in parallel), then the sandbox, then volumes.

        The pod's containers are listed again by uid: that finds a container started after
        the plan was made, and the grace period each was created with.
        """
        found = self._call(
            "list pod containers",
            self.api.containers,
            all=True,
            filters={"label": [f"{observe.MANAGED}=true", f"{observe.UID}={action.uid}"]},
        )
        apps = [r for r in found if r["Labels"].get(observe.CONTAINER) != observe.PAUSE]
        sandboxes = [r for r in found if r["Labels"].get(observe.CONTAINER) == observe.PAUSE]
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

    def _create_pause(self, identity: plan.PodIdentity) -> str:
        image = self.ensure_pause_image()
        ports = [
            (p.container_port, p.protocol.lower(), p.host_port)
            for c in identity.template.spec.containers
            for p in c.ports
            if p.host_port
        ]
        host_config = self.api.create_host_config(
            ipc_mode="shareable",
            port_bindings={f"{cp}/{proto}": hp for cp, proto, hp in ports} or None,
        )
        created = self._create(
            image=image,
            name=container_name(identity, observe.PAUSE, 0),
            hostname=identity.name[:63],
            labels=pod_labels(identity, self.node, observe.PAUSE, self._writing_scope()),
            ports=[(cp, proto) for cp, proto, _ in ports] or None,
            host_config=host_config,
            stop_timeout=PAUSE_STOP_SECONDS,
        )
        self._call("start the pod sandbox", self.api.start, created)
        self.cache.mark_dirty(created)
        return created

    def _start_app(
        self,
        identity: plan.PodIdentity,
        pause_id: str,
        spec: model.Container,
        *,
        restarts: int,
        streak: int,
    ) -> str:
        labels = pod_labels(identity, self.node, spec.name, self._writing_scope())
        labels.update(
            {
                observe.RESTARTS: str(restarts),
                observe.STREAK: str(streak),
                observe.SPEC: spec_hash(spec),
            }
        )
        host_config = self.api.create_host_config(
            network_mode=f"container:{pause_id}",
            ipc_mode=f"container:{pause_id}",
            binds=self._binds(identity, spec) or None,
            **_limits(spec.resources),
        )
        created = self._create(
            image=spec.image,
            name=container_name(identity, spec.name, restarts),
            labels=labels,
            entrypoint=list(spec.command) if spec.command is not None else None,
            command=list(spec.args) if spec.args is not None else None,
            environment=[f"{k}={v}" for k, v in spec.env] or None,
            working_dir=spec.working_dir or None,
            host_config=host_config,
            stop_timeout=identity.template.spec.termination_grace_period_seconds,
        )
        self._call(f"start container {spec.name}", self.api.start, created)
        self.cache.mark_dirty(created)
        return created

    def _create(self, *, name: str, image: str, **config: Any) -> str:
        """Create a container; a name left over from an interrupted attempt is replaced."""
        try:
            return self._create_once(name=name, image=image, **config)
        except errors.TemporaryError as e:
            cause = e.__cause__
            if not (isinstance(cause, docker.errors.APIError) and cause.status_code == 409):
                raise
            leftover = self._owned(name)
            if leftover is None:
                raise
            self._remove(leftover, force=True)
            return self._create_once(name=name, image=image, **config)

    def _create_once(self, *, name: str, image: str, **config: Any) -> str:
        try:
            result = self._call(
                f"create container {name}", self.api.create_container, image, name=name, **config
            )
        except errors.EngineError as e:
            if isinstance(e.__cause__, docker.errors.ImageNotFound):
                self.forget_image(image)
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
        labels = found["Config"]["Labels"] or {}
        return str(found["Id"]) if labels.get(observe.MANAGED) == "true" else None

    def _binds(self, identity: plan.PodIdentity, spec: model.Container) -> dict[str, Any]:
        volumes = {v.name: v for v in identity.template.spec.volumes}
        binds: dict[str, Any] = {}
        for mount in spec.volume_mounts:
            volume = volumes[mount.name]
            source = (
                volume_name(identity.uid, volume.name) if volume.is_empty_dir else volume.host_path
            )
            mode = "ro" if mount.read_only else "rw"
            # An emptyDir starts empty, as in Kubernetes: no copy of the image's files.
            binds[source] = {
                "bind": mount.mount_path,
                "mode": mode + (",nocopy" if volume.is_empty_dir else ""),
            }
        return binds

    def _ensure_volumes(self, identity: plan.PodIdentity) -> None:
        # Created explicitly (not implicitly by a bind) so they carry podyard's labels.
        for volume in identity.template.spec.volumes:
            if volume.is_empty_dir:
                self._call(
                    "create volume",
                    self.api.create_volume,
                    volume_name(identity.uid, volume.name),
                    labels={
                        observe.MANAGED: "true",
                        observe.UID: identity.uid,
                        observe.NAMESPACE: identity.namespace,
                        observe.POD: identity.name,
                    },
                )

    def _remove_volumes(self, uid: str) -> None:
        listed = self._call(
            "list volumes",
            self.api.volumes,
            filters={"label": [f"{observe.MANAGED}=true", f"{observe.UID}={uid}"]},
        )
        for volume in listed.get("Volumes") or ():
            self._ignore_absent("remove volume", self.api.remove_volume, volume["Name"])

    def _stop_and_remove(self, raw: Mapping[str, Any]) -> None:
        grace = _int(raw["Labels"].get(GRACE), model.DEFAULT_GRACE_SECONDS)
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
            self._call(what, fn, *args, **kwargs)
        except errors.PodyardError as e:
            if isinstance(e.__cause__, docker.errors.APIError) and _absent(e.__cause__):
                return
            raise


def event_message(event: Mapping[str, Any]) -> str:
    """An engine event in kubectl's words: `container app died (exit code 1)`."""
    attributes = (event.get("Actor") or {}).get("Attributes") or {}
    name = attributes.get(observe.CONTAINER, "?")
    subject = "sandbox" if name == observe.PAUSE else f"container {name}"
    action = str(event.get("Action") or event.get("status") or "")
    words = {"create": "created", "start": "started", "kill": "killed", "die": "exited",
             "oom": "ran out of memory", "destroy": "removed"}
    text = f"{subject} {words.get(action, action)}"
    if action == "die" and "exitCode" in attributes:
        text += f" (exit code {attributes['exitCode']})"
    if action == "kill" and "signal" in attributes:
        text += f" (signal {attributes['signal']})"
    return text


def _close_when(stream: Any, stop: threading.Event, done: threading.Event) -> None:
    # Poll both: `done` ends this thread when the caller stops iterating first.
    while not done.is_set():
        if stop.wait(0.2):
            with contextlib.suppress(Exception):
                stream.close()
            return


def _limits(resources: model.Resources) -> dict[str, int]:
    """Docker's CPU and memory settings for Kubernetes requests and limits (as the kubelet)."""
    limits: dict[str, int] = {}
    if resources.cpu_limit:
        limits["nano_cpus"] = resources.cpu_limit * 1_000_000
    if resources.cpu_request:
        limits["cpu_shares"] = max(2, resources.cpu_request * 1024 // 1000)
    if resources.memory_limit:
        limits["mem_limit"] = resources.memory_limit
    return limits


def _names_registry(image: str) -> bool:
    """Whether an image reference starts with a registry host (`reg.example:5000/pause:1`)."""
    first, slash, _ = image.partition("/")
    return bool(slash) and ("." in first or ":" in first or first == "localhost")


def _split_image(image: str) -> tuple[str, str | None]:
    """`repo:tag` or `repo@digest` into what `pull` expects; the port of a registry is kept."""
    if "@" in image:
        return image, None
    name, _, tag = image.rpartition(":")
    if name and "/" not in tag:
        return name, tag
    return image, "latest"


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text else default
    except ValueError:
        return default
