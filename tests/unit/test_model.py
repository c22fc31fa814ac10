"""The desired-state model: quantities, defaults, and the pod template hash."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler import model

pytestmark = pytest.mark.unit

WEB_METADATA = {"labels": {"app": "web", "tier": "frontend"}}
WEB_SPEC = {
    "containers": [{
        "name": "web",
        "image": "podyard/busybox:1",
        "command": ["httpd", "-f", "-p", "8080"],
        "env": [{"name": "MODE", "value": "demo"}],
        "ports": [{"name": "http", "containerPort": 8080}],
        "resources": {"limits": {"cpu": "250m", "memory": "64Mi"}},
    }],
}
# Changing the hash function, or the model's fields, changes every running pod's identity:
# a deliberate decision, made by updating this value.
WEB_HASH = "6993305239"


def test_template_hash_is_golden() -> None:
    assert model.build_template(WEB_METADATA, WEB_SPEC).hash == WEB_HASH


def test_template_hash_ignores_mapping_order() -> None:
    reordered_spec = {"containers": [dict(reversed(WEB_SPEC["containers"][0].items()))]}
    reordered_meta = {"labels": dict(reversed(WEB_METADATA["labels"].items()))}
    assert model.build_template(reordered_meta, reordered_spec).hash == WEB_HASH


def test_template_hash_is_short_hex() -> None:
    digest = model.build_template(WEB_METADATA, WEB_SPEC).hash
    assert len(digest) == 10
    int(digest, 16)


@pytest.mark.parametrize("change", [
    {"image": "podyard/busybox:2"},
    {"command": ["httpd", "-f", "-p", "8081"]},
    {"args": []},
    {"env": [{"name": "MODE", "value": "prod"}]},
    {"resources": {"limits": {"cpu": "251m", "memory": "64Mi"}}},
    {"imagePullPolicy": "Always"},
    {"workingDir": "/www"},
])
def test_template_hash_changes_with_any_container_field(change: dict[str, object]) -> None:
    spec = {"containers": [{**WEB_SPEC["containers"][0], **change}]}
    assert model.build_template(WEB_METADATA, spec).hash != WEB_HASH


def test_template_hash_changes_with_labels_and_pod_fields() -> None:
    assert model.build_template({"labels": {"app": "web"}}, WEB_SPEC).hash != WEB_HASH
    for extra in ({"restartPolicy": "Never"}, {"terminationGracePeriodSeconds": 1},
                  {"nodeSelector": {"disk": "ssd"}}):
        assert model.build_template(WEB_METADATA, {**WEB_SPEC, **extra}).hash != WEB_HASH


names = st.text("abc-", min_size=1, max_size=4)
pairs = st.lists(st.tuples(names, names), max_size=2, unique_by=lambda p: p[0]).map(
    lambda items: tuple(sorted(items)))
containers = st.builds(
    model.Container,
    name=names,
    image=names,
    command=st.none() | st.lists(names, max_size=2).map(tuple),
    env=pairs,
    ports=st.lists(st.builds(model.ContainerPort, st.integers(1, 3)), max_size=2).map(tuple),
    resources=st.builds(model.Resources, st.integers(0, 2), st.integers(0, 2)),
    image_pull_policy=st.sampled_from(["Always", "IfNotPresent", "Never"]),
)
templates = st.builds(
    model.PodTemplate,
    labels=pairs,
    annotations=pairs,
    spec=st.builds(
        model.PodSpec,
        containers=st.lists(containers, min_size=1, max_size=2).map(tuple),
        volumes=st.lists(st.builds(model.Volume, names, st.sampled_from(["", "/a"])),
                         max_size=1).map(tuple),
        restart_policy=st.sampled_from(["Always", "Never"]),
        termination_grace_period_seconds=st.integers(0, 2),
    ),
)


@settings(max_examples=60, deadline=None)
@given(templates, templates)
def test_different_templates_have_different_hashes(
    a: model.PodTemplate, b: model.PodTemplate
) -> None:
    assert (a.hash == b.hash) == (a == b)


@settings(max_examples=50, deadline=None)
@given(templates)
def test_equal_templates_have_equal_hashes(template: model.PodTemplate) -> None:
    copy = dataclasses.replace(template, spec=dataclasses.replace(template.spec))
    assert copy.hash == template.hash


@pytest.mark.parametrize(("text", "value"), [
    ("250m", Decimal("0.25")),
    ("64Mi", Decimal(64 * 2**20)),
    ("1e3", Decimal(1000)),
    ("1.5G", Decimal(1_500_000_000)),
    ("+2", Decimal(2)),
    (2, Decimal(2)),
    (0.5, Decimal("0.5")),
])
def test_parses_quantities(text: str | int | float, value: Decimal) -> None:
    assert model.parse_quantity(text) == value


@pytest.mark.parametrize("text", ["12XB", "", "1 Gi", "Mi", "1e999999999999", True])
def test_refuses_bad_quantities_with_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        model.parse_quantity(text)


def test_limit_without_request_implies_the_request() -> None:
    resources = model.build_resources({"limits": {"cpu": "1", "memory": "1Ki"}})
    assert resources == model.Resources(1000, 1000, 1024, 1024)


@pytest.mark.parametrize(("image", "policy"), [
    ("busybox", "Always"),
    ("busybox:latest", "Always"),
    ("registry.example:5000/busybox", "Always"),
    ("busybox:1", "IfNotPresent"),
    ("busybox@sha256:abc", "IfNotPresent"),
])
def test_pull_policy_defaults_as_kubernetes_does(image: str, policy: str) -> None:
    assert model.build_container({"name": "c", "image": image}).image_pull_policy == policy


def test_service_target_port_defaults_to_port() -> None:
    service = model.build_service("default", {"name": "s"}, {"ports": [{"port": 80}]}, None)
    assert service.ports[0].target_port == 80
    assert (service.type, service.cluster_ip) == ("ClusterIP", "")
