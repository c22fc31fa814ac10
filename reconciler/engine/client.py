"""Clients for one node's engine, and the one place engine failures become podyard errors.

Every engine call in `engine/` runs inside `engine_errors`, which maps what docker-py and
requests raise into an error with intent (`errors.Unreachable`, `Conflict`, `NotFound`,
`Refused`), keeping the original as `__cause__` for debugging only: no caller inspects it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import docker
import docker.errors
import docker.tls
import requests

from reconciler import errors

API_VERSION = "1.41"  # Docker 20.10; newer engines accept it, and no call is made to ask
LOCAL_ENDPOINT = "unix:///var/run/docker.sock"
DEFAULT_TIMEOUT = 60.0  # seconds for one call; liveness is the probe's job, not this one's


def map_error(e: Exception, what: str) -> errors.EngineError:
    """The podyard error for an engine failure, by what the caller should do about it."""
    if isinstance(e, docker.errors.APIError):
        status = e.status_code or 0
        message = f"{what}: {e.explanation or e}"
        if status == 404:
            return errors.NotFound(message)
        if status == 409:
            return errors.Conflict(message)
        if status >= 500 or status == 0:
            return errors.Unreachable(message)
        return errors.Refused(message)
    if isinstance(e, requests.exceptions.RequestException | ConnectionError | TimeoutError):
        return errors.Unreachable(f"{what}: engine unreachable ({e})", delay=5.0)
    return errors.Refused(f"{what}: {e}")


@contextlib.contextmanager
def engine_errors(node: str, what: str) -> Iterator[None]:
    """Translate engine exceptions raised inside the block, keeping the cause."""
    try:
        yield
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as e:
        raise map_error(e, f"{what} on {node}") from e


def local_api(
    base_url: str = LOCAL_ENDPOINT, *, parallelism: int = 8, timeout: float = 60
) -> docker.APIClient:
    """A low-level client of an engine on this host; makes no call yet."""
    return docker.APIClient(
        base_url=base_url,
        version=API_VERSION,
        timeout=timeout,
        max_pool_size=parallelism + 2,  # the default 10 would serialise wider pools
    )


def remote_api(
    node: str,
    endpoint: str,
    *,
    ca: str,
    cert: str,
    key: str,
    parallelism: int = 8,
    timeout: float = 60,
) -> docker.APIClient:
    """A low-level client of a node's engine over mutual TLS (`tcp://node1:2376`)."""
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
    return api
