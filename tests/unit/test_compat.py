"""podyard never accepts what Kubernetes would reject, and its schemas are a subset of Kubernetes'.

Kubernetes' side is the `kubernetes-validate` package (strict mode), for the newest Kubernetes
release it ships. It checks types and fields, not names: for those, the oracle is a copy of the
API server's name rules (`test_manifests_property.kubernetes_accepts_name`).
"""

from __future__ import annotations

import importlib.resources
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from kubernetes_validate import utils

from reconciler import errors, manifests
from reconciler.manifests import files, schema

from .test_manifests_property import (
    CORPUS_POLICY,
    corrupted,
    kubernetes_accepts_name,
    mutated,
    name_fields,
)

pytestmark = pytest.mark.unit

KUBERNETES = utils.latest_version()
CORPUS = Path(__file__).parent / "corpus"
EXAMPLES = Path(__file__).parents[2] / "examples" / "manifests"
DEFINITIONS = Path(utils.__file__).parent / "kubernetes-json-schema" / (
    f"v{KUBERNETES}-local-strict") / "_definitions.json"


def objects(path: Path) -> Iterator[dict[str, Any]]:
    """Each object declared in a manifest file, List items unwrapped."""
    for doc in yaml.safe_load_all(path.read_text(encoding="utf-8-sig")):
        if isinstance(doc, dict):
            yield from doc["items"] if doc.get("kind") == "List" else [doc]


def accepted_files() -> list[Path]:
    found = [*(CORPUS / "valid").iterdir(), *EXAMPLES.iterdir()]
    return sorted(p for p in found if p.suffix in files.EXTENSIONS)


@pytest.mark.parametrize("path", accepted_files(), ids=lambda p: p.name)
def test_kubernetes_accepts_what_podyard_accepts(path: Path) -> None:
    manifests.load(path, pod_security=CORPUS_POLICY)
    for obj in objects(path):
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)


def test_compares_against_a_current_kubernetes_release() -> None:
    major, minor = (int(x) for x in KUBERNETES.split(".")[:2])
    assert (major, minor) >= (1, 30)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_kubernetes_accepts_every_mutated_manifest_podyard_accepts(doc: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "m.yaml")
        path.write_text(yaml.safe_dump(doc))
        try:
            manifests.load(path, pod_security=CORPUS_POLICY)
        except errors.ManifestError:
            return
    for obj in doc["items"] if doc.get("kind") == "List" else [doc]:
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)
    # mutated() puts line breaks and control characters into names and labels too.
    for field in name_fields(doc):
        assert kubernetes_accepts_name(field.rule, field.value(doc)), field


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corrupted())
def test_kubernetes_accepts_every_name_and_label_podyard_accepts(
    case: tuple[dict[str, Any], tuple[Any, ...]]
) -> None:
    doc, _ = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "m.yaml")
        path.write_text(yaml.safe_dump(doc))
        try:
            manifests.load(path, pod_security=CORPUS_POLICY)
        except errors.ManifestError:
            return
    for field in name_fields(doc):
        assert kubernetes_accepts_name(field.rule, field.value(doc)), field


# The schemas: same names, same types, and every other Kubernetes field listed as unsupported.


def kubernetes_definitions() -> dict[str, Any]:
    return json.loads(DEFINITIONS.read_text())["$defs"]  # type: ignore[no-any-return]


def schema_objects() -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, object schema) for each object schema naming the Kubernetes type it mirrors."""
    for kind in (*schema.KINDS, "common"):
        document = schema.schema(kind) if kind != "common" else json.loads(
            importlib.resources.files("reconciler.schemas").joinpath("common.json").read_text())
        for name, sub in [(kind, document), *document.get("$defs", {}).items()]:
            if str(sub.get("x-kubernetes-type", "")).startswith("io.k8s."):
                yield f"{kind}:{name}", sub


def json_types(schema: dict[str, Any], definitions: dict[str, Any]) -> set[str]:
    if "$ref" in schema:
        target = definitions[schema["$ref"].rsplit("/", 1)[-1]]
        if "oneOf" in target:
            return {t for option in target["oneOf"] for t in json_types(option, definitions)}
        return json_types(target, definitions)
    kind = schema.get("type", [])
    return {kind} if isinstance(kind, str) else set(kind)


@pytest.mark.parametrize(("where", "sub"), list(schema_objects()), ids=lambda x: x
                         if isinstance(x, str) else "")
def test_schema_is_a_subset_of_the_kubernetes_type(where: str, sub: dict[str, Any]) -> None:
    definitions = kubernetes_definitions()
    theirs = definitions[sub["x-kubernetes-type"]]["properties"]
    ours = sub["properties"]
    assert set(ours) <= set(theirs), f"{where}: fields Kubernetes does not have"
    assert sorted(sub.get("x-kubernetes-fields", [])) == sorted(set(theirs) - set(ours)), (
        f"{where}: x-kubernetes-fields must list exactly the Kubernetes fields podyard lacks")
    for name, field in ours.items():
        if "type" in field and "$ref" not in field:
            ours_types = {field["type"]} if isinstance(field["type"], str) else set(field["type"])
            assert ours_types <= json_types(theirs[name], definitions) | {"null"}, f"{where}.{name}"


def test_every_schema_validates_as_draft_2020_12() -> None:
    for kind in (*schema.KINDS, schema.LIST):
        document = schema.schema(kind)
        assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        schema.validator(kind).check_schema(document)
