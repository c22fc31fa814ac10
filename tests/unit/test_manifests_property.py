"""Whatever the input, loading ends in a model or a ManifestError, never another exception;
and no name or label field podyard accepts breaks Kubernetes' own name rules.
"""

from __future__ import annotations

import copy
import json
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler import errors, manifests, model
from reconciler.manifests import schema

pytestmark = pytest.mark.unit

CORPUS = Path(__file__).parent / "corpus"
EXAMPLES = Path(__file__).parents[2] / "examples" / "manifests"
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# The valid corpus declares a hostPath volume and a hostPort (pod-full.yaml): allowed here, so
# the policy's allowances are exercised with every mutation too.
CORPUS_POLICY = model.PodSecurity(
    allowed_host_paths=("/var/log/podyard",), allowed_host_ports=((18080, 18080),)
)


def seed_documents() -> list[dict[str, Any]]:
    """Every valid document of the corpus and the examples, to mutate."""
    found = []
    for path in sorted([*(CORPUS / "valid").iterdir(), *EXAMPLES.iterdir()]):
        text = path.read_text(encoding="utf-8-sig")
        found += [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
    return found


SEEDS = seed_documents()

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=False,
    allow_infinity=False), st.text(max_size=12),
    st.sampled_from(["v1", "Pod", "Service", "ReplicationController", "Namespace", "List",
                     "250m", "12XB", "None", "NodePort", "http", "a/b", "-x", "10.0.0.1"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=12,
)


def load_text(text: str | bytes, name: str = "m.yaml") -> model.DesiredState | None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, name)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        try:
            return manifests.load(Path(tmp), pod_security=CORPUS_POLICY)
        except errors.ManifestError as e:
            assert e.problems
            assert all(isinstance(p, errors.Problem) and p.file == name for p in e.problems)
            return None


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a nested value."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += paths(item, (*prefix, i))
    return found


# Kubernetes' name rules (k8s.io/apimachinery/pkg/util/validation), copied from the Go source
# as the oracle: kubernetes-validate checks types, not names. Go's `^...$` spans the whole
# text, hence `fullmatch`.
_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_QUALIFIED = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
KUBERNETES_RULES: dict[str, tuple[str, int]] = {  # rule -> (pattern, maximum length)
    "dns-1123-label": (_LABEL, 63),
    "dns-1123-subdomain": (rf"{_LABEL}(\.{_LABEL})*", 253),
    "dns-1035-label": (r"[a-z]([-a-z0-9]*[a-z0-9])?", 63),
    "label-value": (rf"({_QUALIFIED})?", 63),
    "env-var-name": (r"[-._a-zA-Z][-._a-zA-Z0-9]*", 2**31),
    "port-name": (r"[a-z0-9]+(-[a-z0-9]+)*", 15),  # IsValidPortName, and it needs a letter
}


def kubernetes_accepts_name(rule: str, value: str) -> bool:
    """Whether the API server takes `value` under `rule`, as its Go code decides."""
    if rule == "qualified-name":
        prefix, slash, name = value.rpartition("/")
        return (not slash or kubernetes_accepts_name("dns-1123-subdomain", prefix)) and (
            len(name) <= 63 and re.fullmatch(_QUALIFIED, name) is not None)
    pattern, longest = KUBERNETES_RULES[rule]
    letter = rule != "port-name" or re.search("[a-z]", value) is not None
    return len(value) <= longest and re.fullmatch(pattern, value) is not None and letter


@dataclass(frozen=True)
class NameField:
    """A name or label field: `path` to it; a mapping key when `key`, else a value."""

    path: tuple[Any, ...]
    rule: str
    key: bool = False

    def value(self, doc: Any) -> Any:
        if self.key:
            return self.path[-1]
        for step in self.path:
            doc = doc[step]
        return doc


def name_fields(doc: Any, at: tuple[Any, ...] = ()) -> Iterator[NameField]:
    """Every name and label field of an object (or a List's objects) that has the right type."""
    if not isinstance(doc, dict):
        return
    if doc.get("kind") == "List":
        for i, item in enumerate(_list(doc.get("items"))):
            yield from name_fields(item, (*at, "items", i))
        return
    kind, meta, spec = doc.get("kind"), _dict(doc.get("metadata")), _dict(doc.get("spec"))
    rule = {"Service": "dns-1035-label", "Namespace": "dns-1123-label"}.get(
        str(kind), "dns-1123-subdomain")
    yield from _strings((*at, "metadata"), meta, {"name": rule, "namespace": "dns-1123-label"})
    yield from _meta_maps((*at, "metadata"), meta)
    yield from _label_map((*at, "spec", "selector"), spec.get("selector"))
    if kind == "Pod":
        yield from _pod_spec((*at, "spec"), spec)
    template = _dict(spec.get("template"))
    if kind == "ReplicationController":
        where = (*at, "spec", "template")
        yield from _meta_maps((*where, "metadata"), _dict(template.get("metadata")))
        yield from _pod_spec((*where, "spec"), _dict(template.get("spec")))
    for i, port in enumerate(_list(spec.get("ports")) if kind == "Service" else []):
        if isinstance(port, dict) and port.get("name"):  # a Service port's name may be empty
            yield from _strings((*at, "spec", "ports", i), port, {"name": "dns-1123-label"})


def _pod_spec(at: tuple[Any, ...], spec: dict[str, Any]) -> Iterator[NameField]:
    yield from _label_map((*at, "nodeSelector"), spec.get("nodeSelector"))
    for i, volume in enumerate(_list(spec.get("volumes"))):
        yield from _strings((*at, "volumes", i), _dict(volume), {"name": "dns-1123-label"})
    for i, container in enumerate(_list(spec.get("containers"))):
        where, container = (*at, "containers", i), _dict(container)
        yield from _strings(where, container, {"name": "dns-1123-label"})
        for j, port in enumerate(_list(container.get("ports"))):
            yield from _strings((*where, "ports", j), _dict(port), {"name": "port-name"})
        for j, env in enumerate(_list(container.get("env"))):
            yield from _strings((*where, "env", j), _dict(env), {"name": "env-var-name"})


def _meta_maps(at: tuple[Any, ...], meta: dict[str, Any]) -> Iterator[NameField]:
    yield from _label_map((*at, "labels"), meta.get("labels"))
    for key in _dict(meta.get("annotations")):
        yield NameField((*at, "annotations", key), "qualified-name", key=True)


def _label_map(at: tuple[Any, ...], labels: Any) -> Iterator[NameField]:
    for key, value in _dict(labels).items():
        yield NameField((*at, key), "qualified-name", key=True)
        if isinstance(value, str):
            yield NameField((*at, key), "label-value")


def _strings(at: tuple[Any, ...], owner: dict[str, Any], rules: dict[str, str]) -> Iterator[
    NameField
]:
    for name, rule in rules.items():
        if isinstance(owner.get(name), str):
            yield NameField((*at, name), rule)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def corrupt(doc: dict[str, Any], field: NameField, text: str, at: int) -> tuple[Any, ...]:
    """Insert `text` at index `at` of the field's value (or key); the field's new path."""
    parent: Any = doc
    for step in field.path[:-1]:
        parent = parent[step]
    last = field.path[-1]
    if not field.key:
        parent[last] = parent[last][:at] + text + parent[last][at:]
        return field.path
    new = last[:at] + text + last[at:]
    items = list(parent.items())  # keep the key's place: lines stay in order
    parent.clear()
    parent.update((new if k == last else k, v) for k, v in items)
    return (*field.path[:-1], new)


# What Go's `$` never lets through and Python's `$` did before a final newline, and other
# control and line-breaking characters.
bad_characters = st.one_of(
    st.just("\n"),
    st.sampled_from(["\n", "\r\n", "\r", "\t", "\x00", "\x0b", "\x1b", "\x7f", "\x85",
                     "\u2028", " "]),
    st.characters(categories=["Cc"]),
)


@st.composite
def corrupted(draw: st.DrawFn) -> tuple[dict[str, Any], tuple[Any, ...]]:
    """A valid document with one bad character put into one name or label field, and the
    path of that field (a key's path changes with it)."""
    doc: dict[str, Any] = copy.deepcopy(draw(st.sampled_from(SEEDS)))
    field = draw(st.sampled_from(list(name_fields(doc))))
    size = len(field.value(doc))
    at = draw(st.one_of(st.just(size), st.integers(0, size)))  # mostly trailing
    return doc, corrupt(doc, field, draw(bad_characters), at)


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    """A valid document with a few random edits: replace, delete, add, duplicate, or a bad
    character (a control character, a line break) put into a name or label field."""
    doc: dict[str, Any] = copy.deepcopy(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths(doc)[1:]))
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "delete", "add", "duplicate", "corrupt"]))
        fields = list(name_fields(doc))
        if action == "corrupt" and fields:
            field = draw(st.sampled_from(fields))
            size = len(field.value(doc))
            at = draw(st.one_of(st.just(size), st.integers(0, size)))  # mostly trailing
            corrupt(doc, field, draw(bad_characters), at)
        elif action == "replace":
            parent[path[-1]] = draw(values)
        elif action == "delete":
            del parent[path[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.text(max_size=10))] = draw(values)
        elif action == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[path[-1]]))
    return doc


@SETTINGS
@given(mutated())
def test_mutated_manifests_give_a_model_or_problems(doc: dict[str, Any]) -> None:
    load_text(yaml.safe_dump(doc))


@SETTINGS
@given(st.lists(mutated(), min_size=1, max_size=3))
def test_mutated_lists_as_json_give_a_model_or_problems(docs: list[dict[str, Any]]) -> None:
    load_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}), "m.json")


@SETTINGS
@given(values)
def test_random_values_give_a_model_or_problems(value: Any) -> None:
    load_text(yaml.safe_dump(value))


@SETTINGS
@given(st.text(max_size=200))
def test_random_text_gives_a_model_or_problems(text: str) -> None:
    load_text(text)


@SETTINGS
@given(st.binary(max_size=200))
def test_random_bytes_give_a_model_or_problems(data: bytes) -> None:
    load_text(data)


@SETTINGS
@given(st.sampled_from(SEEDS), st.integers(0, 400))
def test_truncated_manifests_give_a_model_or_problems(doc: dict[str, Any], cut: int) -> None:
    load_text(yaml.safe_dump(doc)[:cut])


@SETTINGS
@given(corrupted())
def test_a_bad_character_in_any_name_or_label_is_refused_at_that_field(
    case: tuple[dict[str, Any], tuple[Any, ...]]
) -> None:
    doc, where = case
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "m.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
        with pytest.raises(errors.ManifestError) as caught:
            manifests.load(Path(tmp), pod_security=CORPUS_POLICY)
    assert schema.format_path(where) in {p.field for p in caught.value.problems}


@pytest.mark.parametrize(("rule", "value", "accepted"), [
    ("dns-1123-label", "web", True),
    ("dns-1123-label", "web\n", False),  # Go's `$` is the end of the text
    ("dns-1123-subdomain", "a.b", True),
    ("dns-1035-label", "1web", False),
    ("label-value", "", True),
    ("label-value", "v1\n", False),
    ("qualified-name", "example.com/app", True),
    ("qualified-name", "app\t", False),
    ("env-var-name", "PATH\n", False),
    ("port-name", "http", True),
    ("port-name", "80", False),  # a port name needs a letter
])
def test_the_kubernetes_name_oracle_decides_as_the_api_server(
    rule: str, value: str, accepted: bool
) -> None:
    assert kubernetes_accepts_name(rule, value) is accepted

