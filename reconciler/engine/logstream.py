"""A container's log, read on an engine connection of its own that any thread can close.

For the API's `pods/<name>/log`: a follow may hold its connection for hours, so it must not
take one of the controller's drivers' pooled connections, and a client that goes away must
end it at once, even while the engine has nothing to send (a blocked read is ended by
shutting its socket down). docker-py gives no handle on a streaming response's socket, so
this module reaches for the response the way docker-py's own stream helpers do.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

import docker

from reconciler import errors
from reconciler.cluster import config
from reconciler.engine import client

_HEADER = 8  # the engine's multiplexed stream: 1 byte stream, 3 padding, 4 length


class LogStream:
    """The output of one container as chunks of bytes; `close` ends it from any thread."""

    def __init__(self, node: str, api: docker.APIClient, response: Any, tty: bool) -> None:
        self.node = node
        self._api = api
        self._response = response
        self._tty = tty
        self._closed = threading.Event()
        self._socket = api._get_raw_response_socket(response)
        api._disable_socket_timeout(self._socket)  # a quiet container is not a dead engine

    def __iter__(self) -> Iterator[bytes]:
        try:
            with client.engine_errors(self.node, "read logs"):
                yield from (self._raw() if self._tty else self._frames())
        except errors.EngineError:
            if not self._closed.is_set():
                raise
        finally:
            self.close()

    def _frames(self) -> Iterator[bytes]:
        raw = self._response.raw
        while not self._closed.is_set():
            header = raw.read(_HEADER)
            if len(header) < _HEADER:
                return
            (length,) = struct.unpack(">xxxxL", header)
            data = raw.read(length) if length else b""
            if length and not data:
                return
            if data:
                yield data

    def _raw(self) -> Iterator[bytes]:
        raw = self._response.raw
        while not self._closed.is_set():
            data = raw.read1(4096) if hasattr(raw, "read1") else raw.read(1)
            if not data:
                return
            yield data

    def close(self) -> None:
        """End the stream: a read blocked on the engine returns at once."""
        if self._closed.is_set():
            return
        self._closed.set()
        sock = getattr(self._socket, "_sock", self._socket)
        with contextlib.suppress(OSError, AttributeError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(Exception):
            self._response.close()
        self._api.close()


def open_logs(
    cluster: config.Cluster,
    node: str,
    container_id: str,
    *,
    follow: bool = False,
    tail: int | None = None,
    timestamps: bool = False,
    since: float | None = None,
) -> LogStream:
    """A container's log from its node's engine, on a new client used for nothing else."""
    found = [n for n in cluster.nodes if n.name == node]
    if not found:
        raise errors.NotFound(f"node {node} is not in the cluster")
    api = _client(cluster, found[0])
    try:
        with client.engine_errors(node, "read logs"):
            tty = bool(api.inspect_container(container_id)["Config"].get("Tty"))
            params: dict[str, Any] = {
                "stdout": 1, "stderr": 1, "follow": int(follow), "timestamps": int(timestamps),
                "tail": "all" if tail is None else max(tail, 0),
            }
            if since:
                params["since"] = f"{since:.9f}"
            response = api._get(api._url("/containers/{0}/logs", container_id),
                                params=params, stream=True)
            api._raise_for_status(response)
            return LogStream(node, api, response, tty)
    except BaseException:
        api.close()
        raise


def _client(cluster: config.Cluster, n: config.NodeConfig) -> docker.APIClient:
    if not n.endpoint.startswith("tcp://"):
        return client.local_api(n.endpoint, parallelism=1)
    if cluster.tls is None:
        raise errors.ClusterError(f"node {n.name}: tcp:// endpoints need TLS files")
    return client.remote_api(n.name, n.endpoint, ca=cluster.tls.ca, cert=cluster.tls.cert,
                             key=cluster.tls.key, parallelism=1)
