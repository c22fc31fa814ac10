"""The engine layer's pure decisions: which pause images are pulled, whom a remote node trusts."""

from __future__ import annotations

from pathlib import Path

import docker.errors
import pytest
import requests

from reconciler import errors
from reconciler.engine import client, images

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("image", "remote"),
    [
        ("podyard/pause:1", False),
        ("pause", False),
        ("172.30.0.10:5000/podyard/pause:1", True),
        ("registry.example.org/pause:3.9", True),
        ("localhost/pause:1", True),
    ],
)
def test_a_pause_image_naming_a_registry_is_pulled_not_built(image: str, remote: bool) -> None:
    assert images.names_registry(image) is remote


def test_a_remote_node_trusts_only_the_cluster_ca(tmp_path: Path) -> None:
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("placeholder")
    api = client.remote_api(
        "node1", "tcp://192.0.2.11:2376", ca=str(tmp_path / "ca.pem"),
        cert=str(tmp_path / "cert.pem"), key=str(tmp_path / "key.pem"),
    )
    try:
        assert api.verify == str(tmp_path / "ca.pem")
        assert api.trust_env is False  # REQUESTS_CA_BUNDLE must not replace the cluster CA
    finally:
        api.close()


def _api_error(
    status: int, kind: type[docker.errors.APIError] = docker.errors.APIError
) -> Exception:
    response = requests.Response()
    response.status_code = status
    error: Exception = kind("engine said no", response=response, explanation="because")
    return error


@pytest.mark.parametrize(
    ("failure", "intent"),
    [
        (_api_error(404), errors.NotFound),
        (_api_error(404, docker.errors.ImageNotFound), errors.NotFound),
        (_api_error(409), errors.Conflict),
        (_api_error(400), errors.Refused),
        (_api_error(500), errors.Unreachable),
        (requests.exceptions.ConnectionError("refused"), errors.Unreachable),
        (requests.exceptions.ReadTimeout("timed out"), errors.Unreachable),
        (docker.errors.TLSParameterError("bad cert"), errors.Refused),
    ],
)
def test_engine_failures_are_mapped_once_to_what_the_caller_should_do(
    failure: Exception, intent: type[errors.EngineError]
) -> None:
    with pytest.raises(errors.EngineError) as raised, client.engine_errors("node1", "list"):
        raise failure
    assert type(raised.value) is intent
    assert str(raised.value).startswith("list on node1")
    assert (errors.Unreachable, errors.Conflict) == errors.RETRYABLE
